//! `mediadb migrate`: bring a library over from another system's database. Today that is VuIO's
//! SQLite database in each of its schema eras ([`vuio`]); see `docs/MIGRATE.md` for every rule.
//!
//! Migration is a merge by path into the open database, in batches, each committed durably:
//! memory stays bounded by the batch size, an interrupted run leaves whole batches, and a rerun
//! of the same source writes nothing.

pub mod vuio;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{CommitError, ReadError};

pub use vuio::{Era, migrate};

/// How to migrate.
#[derive(Clone, Debug)]
pub struct MigrateOptions {
    /// Rows per committed batch.
    pub batch_size: usize,
}

impl Default for MigrateOptions {
    fn default() -> MigrateOptions {
        MigrateOptions { batch_size: 10_000 }
    }
}

/// What a migration did. Every row read is accounted for: written, unchanged, kept (the
/// database's own record was newer) or skipped with a reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MigrateReport {
    /// The source database.
    pub source: PathBuf,
    /// `"sqlx"` (VuIO's `media.db`, schema 1 and 2) or `"rusqlite"` (schema 1 to 6).
    pub era: &'static str,
    /// The source's schema version.
    pub schema_version: i64,
    /// `media_files` rows read.
    pub rows_read: u64,
    /// Records inserted or updated.
    pub records_written: u64,
    /// Of those, records that were new to the database.
    pub records_inserted: u64,
    /// Rows whose record was already in the database exactly as migrate would write it.
    pub records_unchanged: u64,
    /// Rows not written because the database's record (from a scan) is as new or newer.
    pub records_kept_newer: u64,
    /// Rows that are not migrated, by reason (`stream`, `empty_path`, `not_absolute`,
    /// `nul_in_path`, `dot_dot_in_path`, `not_a_file_path`, `bad_size`, `too_large`,
    /// `duplicate_path`).
    pub skipped: BTreeMap<&'static str, u64>,
    /// The skipped rows other than streams, each with its VuIO id, path and reason, in id
    /// order; the first [`MAX_SKIPPED_ROWS`] of them.
    pub skipped_rows: Vec<SkippedRow>,
    /// Paths that VuIO stored lossily (a non-UTF-8 name, now holding U+FFFD): migrated as
    /// stored, but they will not match the file on disk.
    pub lossy_paths: u64,
    /// Extra tags carried over into records' `tags`.
    pub tags: u64,
    /// Playlists read.
    pub playlists: u64,
    /// Playlists created or replaced.
    pub playlists_written: u64,
    /// Playlist entries written (in every playlist read).
    pub playlist_entries: u64,
    /// Of those, entries that point at no record: URLs (radio streams) and skipped rows.
    pub dangling_entries: u64,
    /// Playlist entries dropped, by reason (`missing_entry_target`: the row it names is gone).
    pub skipped_entries: BTreeMap<&'static str, u64>,
    /// Playlists renamed because another had the same name (VuIO 6 allows that).
    pub renamed_playlists: u64,
    /// Commits made.
    pub commits: u64,
}

/// Most rows listed in [`MigrateReport::skipped_rows`].
pub const MAX_SKIPPED_ROWS: usize = 1000;

/// A source row that was not migrated.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SkippedRow {
    /// Its `media_files.id`.
    pub id: i64,
    /// Its `path` as stored (bytes that are not UTF-8 shown as U+FFFD; cut after 4096 bytes).
    pub path: String,
    /// Why, as counted in [`MigrateReport::skipped`].
    pub reason: &'static str,
}

/// What a user can do about an SQLite error met while reading the source.
fn sqlite_fix(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::CannotOpen | C::PermissionDenied | C::ReadOnly) => {
            "check that the file and its directory are readable"
        }
        Some(C::DatabaseBusy | C::DatabaseLocked) => {
            "stop VuIO (or whatever writes it), then retry"
        }
        Some(C::DatabaseCorrupt) => {
            "the source database is damaged; repair it with `sqlite3 FILE .recover` first"
        }
        _ => "check that this is VuIO's database file",
    }
}

/// Why a migration stopped. Batches committed before the error stay committed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The source is not a database migrate knows.
    #[error("{}: {detail}", .path.display())]
    Unsupported {
        /// The source.
        path: PathBuf,
        /// What it is and what to do.
        detail: String,
    },
    /// The source could not be opened or read.
    #[error("{}: {what}: {source}; {}", .path.display(), sqlite_fix(.source))]
    Source {
        /// The source.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The source is being written, or a write to it was interrupted, and one committed state of
    /// it could not be read.
    #[error("{}: {detail}; stop VuIO (or whatever writes it), then retry", .path.display())]
    Busy {
        /// The source.
        path: PathBuf,
        /// What was seen.
        detail: String,
    },
    /// Copying the source aside (with its write-ahead log or its journal) failed.
    #[error("{}: copying it aside to read one committed state of it: {source}; check that it is readable and that the temporary directory has room", .path.display())]
    Copy {
        /// The source.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Committing to the database failed.
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// Reading the database failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}
