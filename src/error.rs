//! Typed errors, one enum per kind of operation. Messages name the file and what to do; the
//! binary maps each variant to an exit code.

use std::io;
use std::path::PathBuf;

fn shown(p: &std::path::Path) -> std::path::Display<'_> {
    p.display()
}

/// What a user can do about an I/O error met while opening or creating a file.
fn io_fix(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::PermissionDenied => {
            "check the permissions of the file and its directory, or pass --db PATH elsewhere"
        }
        io::ErrorKind::ReadOnlyFilesystem => {
            "the filesystem is read-only; pass --db PATH on a writable one"
        }
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => "free space, then retry",
        io::ErrorKind::NotADirectory => "a part of the path is not a directory; check --db",
        io::ErrorKind::InvalidFilename => {
            "the path is too long or invalid; pass a shorter --db PATH"
        }
        io::ErrorKind::NotFound => {
            "it cannot be created there; check the path or pass --db PATH elsewhere"
        }
        _ => "check the path and the disk, then retry",
    }
}

/// Opening or creating a database failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// There is no database at the path.
    #[error("{}: no database here; run `mediadb scan DIR` to create one, or pass --db PATH", shown(.path))]
    NotFound {
        /// The database path.
        path: PathBuf,
    },
    /// `create` found an existing file.
    #[error("{}: already exists; open it instead, or remove it first", shown(.path))]
    Exists {
        /// The database path.
        path: PathBuf,
    },
    /// The file is not a mediadb database.
    #[error("{}: not a mediadb database ({detail}); check --db", shown(.path))]
    NotADatabase {
        /// The database path.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// Written by a newer mediadb.
    #[error("{}: written by a newer mediadb (format {found}, this build reads {supported}); upgrade mediadb", shown(.path))]
    NewerVersion {
        /// The database path.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The committed data is damaged.
    #[error("{}: damaged at byte {offset}: {what}; run `mediadb verify` for a full report and `mediadb recover OUT` to save what is intact", shown(.path))]
    Corrupt {
        /// The database path.
        path: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// Another process holds the writer lock.
    #[error("{}: locked by another writer{}; retry later or with --wait SECS", shown(.path), .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Busy {
        /// The database path.
        path: PathBuf,
        /// The holder's pid, when it wrote one.
        pid: Option<u32>,
    },
    /// An I/O error, e.g. permissions or a read-only directory.
    #[error("{}: {source}; {}", shown(.path), io_fix(.source))]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// A commit (or starting a batch) failed. Nothing of the batch is committed, except as
/// [`CommitError::Unconfirmed`] and [`CommitError::Unpublished`] say.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// An earlier write or sync failed; this handle refuses further writes.
    #[error("{}: an earlier write failed, so this handle stopped writing; reopen the database (everything committed is intact)", shown(.path))]
    Poisoned {
        /// The database path.
        path: PathBuf,
    },
    /// The handle was opened read-only.
    #[error("{}: opened read-only; open it for writing to change it", shown(.path))]
    ReadOnly {
        /// The database path.
        path: PathBuf,
    },
    /// A record cannot be stored.
    #[error("record {}: {what}", String::from_utf8_lossy(.path))]
    BadRecord {
        /// The record's path.
        path: Vec<u8>,
        /// Why.
        what: String,
    },
    /// A playlist cannot be stored (its name is taken, it does not exist, it is too large).
    #[error("playlist {name:?}: {what}")]
    BadPlaylist {
        /// The playlist's name.
        name: String,
        /// Why.
        what: String,
    },
    /// The batch is larger than one frame may be.
    #[error("{}: batch of {bytes} bytes exceeds the 1 GiB frame limit; commit smaller batches", shown(.path))]
    TooLarge {
        /// The database path.
        path: PathBuf,
        /// Size of the batch.
        bytes: u64,
    },
    /// Reading an existing record failed while resolving a path.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The batch is durably committed, but this handle could not map it (e.g. out of address
    /// space); the handle is poisoned and a reopen shows the commit.
    #[error("{}: the batch was committed, but mapping it failed: {source}; reopen the database to see it", shown(.path))]
    Unpublished {
        /// The database path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The batch and its header slot were written, but the disk failed the sync that makes
    /// the slot durable: the batch may be committed or not (readers may see it now, and a
    /// crash may still lose it). The handle is poisoned; a reopen shows which.
    #[error("{}: the disk failed to confirm the commit ({source}): this batch may or may not be committed; reopen the database (mediadb stats) to see which, after fixing the disk", shown(.path))]
    Unconfirmed {
        /// The database path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Writing or syncing failed (e.g. the disk is full); the handle is now poisoned.
    #[error("{}: write failed: {source}; nothing of this batch was committed (free space or fix the disk, then retry)", shown(.path))]
    Io {
        /// The database path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// Reading committed data failed: its bytes are damaged.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A record (or playlist) fails its checks.
    #[error("damaged record at byte {offset}: {what}; run `mediadb verify`")]
    Record {
        /// Byte offset of the record.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A chunk of the index checkpoint (`NAME.idx`) that this read needed fails its checksum.
    /// The log is not affected: the checkpoint is a cache that the next writer rewrites.
    #[error(
        "the index checkpoint (the database's .idx file) is damaged; delete it (the next open rebuilds it from the log) or run `mediadb scan` or another writer, which replaces it"
    )]
    IndexDamaged,
}
