//! VuIO's SQLite databases, in their three eras (docs/MIGRATE.md):
//!
//! - **sqlx era, schema 1 and 2** (`media.db`): the version is the row
//!   `database_metadata.schema_version`, `PRAGMA user_version` is 0. Schema 2 stored `path` and
//!   `parent_path` lower-cased while `filename` kept the on-disk case.
//! - **rusqlite era, schema 1 to 6**: the version is `PRAGMA user_version`; STRICT tables,
//!   `*_secs` columns, promoted tag columns and the `media_tags` side table.
//!
//! Columns are found by name (`PRAGMA table_info`), never by position: an upgraded file has its
//! added columns at the end, a fresh one in the middle.
//!
//! What must stay true of reading the source (`open`): everything is read from one committed
//! state of it, and nothing is ever written beside it. A rollback-journal file is read in place
//! under SQLite's shared lock, held by a read transaction on every connection for the whole
//! run; a WAL-mode file, or one beside a hot journal, is read from a private copy that was
//! checked to hold one state of the database and its log or journal.
//!
//! Rows are read by two threads, each over half of the ids on its own connection, while the
//! caller's thread merges and commits. Of rows stored under one path, one is migrated
//! (`Duplicates`), so the records written are unique by path and a rerun writes nothing.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use xxhash_rust::xxh3::xxh3_64;

use super::{MAX_SKIPPED_ROWS, MigrateError, MigrateOptions, MigrateReport, SkippedRow};
use crate::playlist::{Entry, Playlist};
use crate::record::{Kind, Record};
use crate::store::Database;
use crate::store::format::MAX_RECORD_LEN;

/// The newest rusqlite-era schema this build knows.
pub const NEWEST_RUSQLITE: i64 = 6;

/// Which VuIO wrote the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// sqlx, `media.db`, schema 1 or 2.
    Sqlx,
    /// rusqlite, schema 1 to 6.
    Rusqlite,
}

impl Era {
    /// The name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Era::Sqlx => "sqlx",
            Era::Rusqlite => "rusqlite",
        }
    }
}

/// MIME types VuIO gave playlist files.
const PLAYLIST_MIMES: &[&str] = &[
    "audio/x-mpegurl",
    "audio/mpegurl",
    "application/vnd.apple.mpegurl",
    "application/x-mpegurl",
    "audio/x-scpls",
];

/// `media_files` columns read, by name; a column the source lacks reads as NULL. The first
/// [`PATH_COLUMNS`] are those that decide a row's path.
const COLUMNS: &[&str] = &[
    "id",
    "path",
    "parent_path",
    "filename",
    "size",
    "modified",
    "modified_secs",
    "mime_type",
    "duration",
    "duration_secs",
    "title",
    "artist",
    "album",
    "genre",
    "track_number",
    "year",
    "album_artist",
    "disc_number",
    "disc_total",
    "track_total",
    "compilation",
    "musicbrainz_track_id",
    "musicbrainz_album_id",
    "sample_rate",
    "channels",
    "bits_per_sample",
    "bit_rate",
    // Kept as tags: VuIO columns with no mediadb field.
    "composer",
    "comment",
    "bpm",
    "sort_title",
    "sort_artist",
    "sort_album",
    "release_date",
    "musicbrainz_artist_id",
    "codec",
];

/// How many of [`COLUMNS`], from the first, decide a row's path (id, path, parent_path,
/// filename, size, modified, modified_secs, mime_type): all that finding duplicates reads.
const PATH_COLUMNS: usize = 8;

/// Index of the first column kept as a tag.
const FIRST_TAG_COLUMN: usize = 27;

/// Position of `name` in [`COLUMNS`].
const fn col(name: &str) -> usize {
    let mut i = 0;
    while i < COLUMNS.len() {
        if str_eq(COLUMNS[i], name) {
            return i;
        }
        i += 1;
    }
    panic!("unknown column");
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The opened source: a connection holding a read transaction for the whole migration, so that
/// everything migrate reads belongs to one commit.
struct Source {
    conn: Connection,
    /// The source as the user named it, for messages.
    path: PathBuf,
    /// The private copy that is read instead of the source, removed when its last connection
    /// is gone.
    copy: Option<Arc<TempCopy>>,
}

/// A private directory holding a copy of the source, removed on drop.
struct TempCopy(PathBuf);

impl TempCopy {
    /// The copy of the database file.
    fn db(&self) -> PathBuf {
        self.0.join("source.db")
    }
}

impl Drop for TempCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes the copies in `tmp` that a migrate killed by a signal left (a copy is removed when
/// its run ends, but not when the run is killed): a `mediadb-migrate-PID-…` directory whose
/// process is gone. Nothing is removed where `/proc` cannot tell which processes run.
fn remove_stale_copies(tmp: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("mediadb-migrate-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let gone = pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists();
        if gone && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The first bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// Length of the SQLite file header.
const HEADER_LEN: usize = 100;
/// Header offsets of the file format write and read versions: 2 in WAL mode, 1 with a rollback
/// journal.
const HEADER_WRITE_VERSION: usize = 18;
const HEADER_READ_VERSION: usize = 19;
/// How long a read of a source in rollback-journal mode waits for a writer's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How many copies are taken of a source that changes while it is copied before giving up.
const COPY_ATTEMPTS: u32 = 5;

/// `path` as an SQLite URI path: every byte outside the unreserved set percent-encoded.
fn uri_path(path: &Path) -> String {
    let mut out = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn sql_err(path: &Path, what: &str) -> impl FnOnce(rusqlite::Error) -> MigrateError {
    let path = path.to_path_buf();
    let what = what.to_owned();
    move |source| {
        let code = match &source {
            rusqlite::Error::SqliteFailure(e, _) => Some((e.code, e.extended_code)),
            _ => None,
        };
        match code {
            Some((rusqlite::ErrorCode::NotADatabase, _)) => MigrateError::Unsupported {
                path,
                detail: "not an SQLite database; give the path of VuIO's database file".into(),
            },
            Some((rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked, _)) => {
                MigrateError::Busy {
                    path,
                    detail: format!(
                        "VuIO (or another program) is writing it and held its lock for over {} s",
                        BUSY_TIMEOUT.as_secs()
                    ),
                }
            }
            Some((_, rusqlite::ffi::SQLITE_READONLY_ROLLBACK)) => MigrateError::Busy {
                path,
                detail: "a write to it was interrupted while it was being read".into(),
            },
            _ => MigrateError::Source { path, what, source },
        }
    }
}

fn is_readonly_rollback(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_READONLY_ROLLBACK)
}

/// `path` with `suffix` appended: the `-wal` or `-journal` beside a database.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Opens the source for reading one committed state of it, without writing anything beside it:
///
/// - a database with a rollback journal is opened read-only (no `immutable`: SQLite's shared
///   lock and its check for a hot journal apply), and a read transaction is begun, held until
///   the returned `Source` is dropped. While it is held no writer can commit, so every read sees
///   the same commit;
/// - a database in WAL mode, or one beside a `-wal` file (which SQLite would open as a WAL
///   whatever the header says), cannot be read in place without SQLite making or writing its
///   `-shm`: it is copied with its log into a private temporary directory, and the copy is read;
/// - a database beside a hot journal (a writer stopped in the middle of a transaction) cannot be
///   rolled back read-only: it is copied with its journal, and SQLite rolls the copy back.
///
/// A copy is checked against the source after it is taken and taken again if either file
/// changed meanwhile, so that it holds one state of both.
fn open(path: &Path) -> Result<Source, MigrateError> {
    let meta = std::fs::metadata(path).map_err(|e| MigrateError::Copy {
        path: path.to_path_buf(),
        source: e,
    })?;
    if !meta.is_file() {
        return Err(MigrateError::Unsupported {
            path: path.to_path_buf(),
            detail: "not a file; give the path of VuIO's database file".into(),
        });
    }
    let mut header = Vec::with_capacity(HEADER_LEN);
    std::fs::File::open(path)
        .and_then(|f| f.take(HEADER_LEN as u64).read_to_end(&mut header))
        .map_err(|e| MigrateError::Copy {
            path: path.to_path_buf(),
            source: e,
        })?;
    if header.len() < HEADER_LEN || !header.starts_with(SQLITE_MAGIC) {
        return Err(MigrateError::Unsupported {
            path: path.to_path_buf(),
            detail: "not an SQLite database; give the path of VuIO's database file".into(),
        });
    }
    let wal_mode = header[HEADER_WRITE_VERSION] == 2 || header[HEADER_READ_VERSION] == 2;
    if wal_mode || std::fs::symlink_metadata(beside(path, "-wal")).is_ok() {
        return open_copy(path, "-wal");
    }
    match connect(path, false) {
        Ok(conn) => Ok(Source {
            conn,
            path: path.to_path_buf(),
            copy: None,
        }),
        Err(e) if is_readonly_rollback(&e) => open_copy(path, "-journal"),
        Err(e) => Err(sql_err(path, "opening it read-only")(e)),
    }
}

/// Opens the source read-only (`copy` false: no `immutable`, so SQLite's locks and its check
/// for a hot journal apply) or a private copy of it (`copy` true: it may be written, SQLite rolls
/// a copied journal back and keeps a copied WAL's index beside it), sets what reading VuIO's
/// files needs, and begins the read transaction.
fn connect(file: &Path, copy: bool) -> rusqlite::Result<Connection> {
    // Used from one thread at a time: no per-call mutex.
    let conn = if copy {
        Connection::open_with_flags(
            file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?
    } else {
        Connection::open_with_flags(
            uri_path(file),
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // VuIO 6's indexes use this collation; SQLite refuses to touch them without it.
    conn.create_collation("natural_order", |a: &str, b: &str| {
        crate::query::natural_cmp(a.as_bytes(), b.as_bytes())
    })?;
    // The first read takes the shared lock (and checks for a hot journal); the open transaction
    // keeps the lock until the connection closes.
    conn.execute_batch("BEGIN")?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })?;
    Ok(conn)
}

/// Copies the source and its `suffix` file (`-wal` or `-journal`, when there is one) into a
/// private temporary directory and opens the copy.
fn open_copy(path: &Path, suffix: &str) -> Result<Source, MigrateError> {
    let copy = Arc::new(copy_consistent(path, suffix)?);
    let db = copy.db();
    let conn = connect(&db, true).map_err(sql_err(path, "opening a copy of it"))?;
    Ok(Source {
        conn,
        path: path.to_path_buf(),
        copy: Some(copy),
    })
}

/// A copy of the database at `path` and of the file beside it named with `suffix`, as they were
/// at one moment: both are compared with the source after copying, and copied again (a few
/// times, waiting longer each time) when either changed meanwhile. Equal bytes after the copy
/// ended mean the files held those bytes at the moment the second copy ended: SQLite only moves
/// a database and its log forward.
fn copy_consistent(path: &Path, suffix: &str) -> Result<TempCopy, MigrateError> {
    copy_consistent_with(path, suffix, &|from, to| std::fs::copy(from, to).map(drop))
}

/// [`copy_consistent`], copying each file with `copy_file` (a test's copy changes the source).
fn copy_consistent_with(
    path: &Path,
    suffix: &str,
    copy_file: &dyn Fn(&Path, &Path) -> std::io::Result<()>,
) -> Result<TempCopy, MigrateError> {
    let copy_err = |source| MigrateError::Copy {
        path: path.to_path_buf(),
        source,
    };
    let side = beside(path, suffix);
    remove_stale_copies(&std::env::temp_dir());
    for attempt in 0..COPY_ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(100 << attempt));
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("mediadb-migrate-{}-{nanos}", std::process::id()));
        // Only this user may read the copy: the library may be private.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(copy_err)?;
        let copy = TempCopy(dir);
        let db = copy.db();
        let side_copy = beside(&db, suffix);
        copy_file(path, &db).map_err(copy_err)?;
        let had_side = match copy_file(&side, &side_copy) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(copy_err(e)),
        };
        // A copy keeps the source's mode; SQLite must be able to write it (to roll a journal
        // back, or to check a log point), or it reads it as a read-only source.
        for (copied, there) in [(&db, true), (&side_copy, had_side)] {
            if there {
                std::fs::set_permissions(copied, std::fs::Permissions::from_mode(0o600))
                    .map_err(copy_err)?;
            }
        }
        let same_side = if had_side {
            same_bytes(&side, &side_copy).map_err(copy_err)?
        } else {
            std::fs::symlink_metadata(&side).is_err()
        };
        if same_side && same_bytes(path, &db).map_err(copy_err)? {
            return Ok(copy);
        }
    }
    Err(MigrateError::Busy {
        path: path.to_path_buf(),
        detail: format!(
            "it changed each of the {COPY_ATTEMPTS} times it was copied to be read: VuIO is writing it"
        ),
    })
}

/// Whether the file at `a` holds exactly the bytes of the file at `b`; a missing `a` does not.
fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    let mut fa = match std::fs::File::open(a) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut fb = std::fs::File::open(b)?;
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the file ends; the number of bytes read.
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Source {
    /// Another connection to what `self` reads, for a second reader thread. Its transaction
    /// begins while `self`'s holds the shared lock, so both read the same commit.
    fn another(&self) -> Result<Source, MigrateError> {
        let conn = match &self.copy {
            Some(copy) => connect(&copy.db(), true),
            None => connect(&self.path, false),
        }
        .map_err(self.err("opening it for a second reader"))?;
        Ok(Source {
            conn,
            path: self.path.clone(),
            copy: self.copy.clone(),
        })
    }

    fn err(&self, what: &str) -> impl FnOnce(rusqlite::Error) -> MigrateError {
        sql_err(&self.path, what)
    }

    fn unsupported(&self, detail: String) -> MigrateError {
        MigrateError::Unsupported {
            path: self.path.clone(),
            detail,
        }
    }

    fn tables(&self) -> Result<HashSet<String>, MigrateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .map_err(self.err("reading its schema"))?;
        let names: HashSet<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.err("reading its schema"))?
            .collect::<Result<_, _>>()
            .map_err(self.err("reading its schema"))?;
        Ok(names)
    }

    fn columns(&self, table: &str) -> Result<HashSet<String>, MigrateError> {
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA table_info(\"{table}\")"))
            .map_err(self.err("reading its schema"))?;
        let names: HashSet<String> = stmt
            .query_map([], |r| r.get::<_, String>(1))
            .map_err(self.err("reading its schema"))?
            .collect::<Result<_, _>>()
            .map_err(self.err("reading its schema"))?;
        Ok(names)
    }

    /// The era and schema version, or a refusal that says what the file is.
    fn detect(&self, tables: &HashSet<String>) -> Result<(Era, i64), MigrateError> {
        if !tables.contains("media_files") {
            return Err(self.unsupported(
                "has no media_files table: not a VuIO database, nothing to migrate".into(),
            ));
        }
        let user_version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.err("reading its version"))?;
        if user_version == 0 {
            if !tables.contains("database_metadata") {
                return Err(self.unsupported(
                    "has a media_files table but no schema version (neither \
                     database_metadata nor user_version): not a VuIO schema migrate knows"
                        .into(),
                ));
            }
            let v: Option<String> = self
                .conn
                .query_row(
                    "SELECT value FROM database_metadata WHERE key = 'schema_version'",
                    [],
                    |r| r.get(0),
                )
                .map_or_else(
                    |e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e),
                    },
                    |v| Ok(Some(v)),
                )
                .map_err(self.err("reading database_metadata"))?;
            return match v.as_deref().map(str::trim) {
                Some("1") => Ok((Era::Sqlx, 1)),
                Some("2") => Ok((Era::Sqlx, 2)),
                Some(other) => Err(self.unsupported(format!(
                    "VuIO media.db schema version {other:?} is not one migrate knows (1 or 2); \
                     a newer mediadb may"
                ))),
                None => Err(self.unsupported(
                    "database_metadata holds no schema_version: not a VuIO schema migrate knows"
                        .into(),
                )),
            };
        }
        if (1..=NEWEST_RUSQLITE).contains(&user_version) {
            return Ok((Era::Rusqlite, user_version));
        }
        if user_version > NEWEST_RUSQLITE {
            return Err(self.unsupported(format!(
                "VuIO schema version {user_version} is newer than this mediadb knows \
                 ({NEWEST_RUSQLITE}); upgrade mediadb"
            )));
        }
        Err(self.unsupported(format!(
            "user_version {user_version} is not a VuIO schema version"
        )))
    }
}

/// Text of a value: NULL, a blob, or only whitespace is absent.
fn text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Text(b) => {
            if b.iter().all(u8::is_ascii_whitespace) {
                return None;
            }
            let s = match std::str::from_utf8(b) {
                Ok(s) => s.to_owned(),
                Err(_) => String::from_utf8_lossy(b).into_owned(),
            };
            (!s.trim().is_empty()).then_some(s)
        }
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Null | ValueRef::Blob(_) => None,
    }
}

/// An integer, from an INTEGER, a whole REAL or decimal text.
fn int(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Real(f) if f.is_finite() && f.abs() < 9.0e18 => Some(f.round_ties_even() as i64),
        ValueRef::Text(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

fn real(v: ValueRef<'_>) -> Option<f64> {
    match v {
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Real(f) => f.is_finite().then_some(f),
        ValueRef::Text(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

fn narrow<T: TryFrom<i64>>(v: Option<i64>) -> Option<T> {
    v.and_then(|x| T::try_from(x).ok())
}

/// The kind VuIO's MIME type means; a missing MIME type falls back to the extension.
fn kind_of(mime: Option<String>, path: &[u8]) -> (Kind, Option<String>) {
    let Some(m) = mime else {
        let (k, m) = crate::scan::kind::classify(path);
        return (k, m.map(str::to_owned));
    };
    let prefix = |p: &str| m.get(..p.len()).is_some_and(|x| x.eq_ignore_ascii_case(p));
    let kind = if PLAYLIST_MIMES.iter().any(|p| m.eq_ignore_ascii_case(p)) {
        Kind::Playlist
    } else if prefix("audio/") {
        Kind::Audio
    } else if prefix("video/") {
        Kind::Video
    } else if prefix("image/") {
        Kind::Image
    } else {
        Kind::Other
    };
    (kind, Some(m))
}

fn is_url(path: &[u8]) -> bool {
    let prefix = |p: &[u8]| {
        path.get(..p.len())
            .is_some_and(|x| x.eq_ignore_ascii_case(p))
    };
    prefix(b"http://") || prefix(b"https://")
}

/// The bytes of a `path` value: text or a blob exactly as stored (mediadb paths are bytes, and
/// a blob holds a name that is not UTF-8), a number as its decimal text. NULL, empty or only
/// whitespace is absent.
fn path_bytes(v: ValueRef<'_>) -> Option<Vec<u8>> {
    let b = match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
        ValueRef::Integer(i) => i.to_string().into_bytes(),
        ValueRef::Real(f) => f.to_string().into_bytes(),
        ValueRef::Null => return None,
    };
    (!b.iter().all(u8::is_ascii_whitespace)).then_some(b)
}

/// An absolute `path` as a scan would store it: `//` and `.` components taken out (each names
/// the same file as without), and no `/` at its end. `Err` with the reason to skip the row for a
/// path holding a NUL byte (no file name can) or a `..` component (which, through a symbolic
/// link, may name another file than the path without it): such a record would never match a
/// file, and `import` refuses it.
fn normal_path(path: &[u8]) -> Result<Vec<u8>, &'static str> {
    if path.contains(&0) {
        return Err("nul_in_path");
    }
    let mut out = Vec::with_capacity(path.len());
    for c in path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        if c == b".." {
            return Err("dot_dot_in_path");
        }
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        return Err("not_a_file_path");
    }
    Ok(out)
}

/// The on-disk path of a row. Schema 2 of the sqlx era lower-cased `path` and `parent_path` but
/// kept `filename`'s case: where `parent_path/filename` is `path` but for case, that is the
/// better path (the directories' case is lost for good).
fn real_path(
    era: Era,
    version: i64,
    path: Vec<u8>,
    parent: Option<&str>,
    name: Option<&str>,
) -> Vec<u8> {
    if era == Era::Sqlx
        && version == 2
        && let (Some(parent), Some(name), Ok(stored)) = (parent, name, std::str::from_utf8(&path))
    {
        let joined = if parent.ends_with('/') {
            format!("{parent}{name}")
        } else {
            format!("{parent}/{name}")
        };
        if joined != stored && joined.to_lowercase() == stored.to_lowercase() {
            return joined.into_bytes();
        }
    }
    path
}

/// The path a row's record is stored under, but for symbolic links ([`CanonicalDirs`]): the
/// on-disk path ([`real_path`]), absolute and normalised ([`normal_path`]); `Err` with the
/// reason to skip the row.
fn file_path(
    era: Era,
    version: i64,
    stored: Vec<u8>,
    parent: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<u8>, &'static str> {
    let path = real_path(era, version, stored, parent, name);
    if !path.starts_with(b"/") {
        return Err("not_absolute");
    }
    normal_path(&path)
}

/// A `media_tags` key, normalised for matching: lower case, no spaces or underscores.
fn tag_key(k: &str) -> String {
    k.chars()
        .filter(|c| *c != ' ' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Folds a row's `media_tags` into its record: a few keys fill fields the columns left empty,
/// the rest become tags.
fn apply_media_tags(rec: &mut Record, tags: Vec<(String, String)>) {
    let mut artists = Vec::new();
    for (key, value) in tags {
        let fill = |field: &mut Option<u32>, value: &str| -> bool {
            if field.is_none()
                && let Ok(n) = value.trim().parse()
            {
                *field = Some(n);
                return true;
            }
            false
        };
        let used = match tag_key(&key).as_str() {
            "artists" => {
                artists.extend(value.split("; ").map(str::to_owned));
                true
            }
            "musicbrainztrackid" if rec.musicbrainz_track_id.is_none() => {
                rec.musicbrainz_track_id = Some(value.clone());
                true
            }
            "musicbrainzalbumid" if rec.musicbrainz_album_id.is_none() => {
                rec.musicbrainz_album_id = Some(value.clone());
                true
            }
            "tracktotal" | "totaltracks" => fill(&mut rec.track_total, &value),
            "disctotal" | "totaldiscs" => fill(&mut rec.disc_total, &value),
            _ => false,
        };
        if !used {
            rec.tags.push((key, value));
        }
    }
    if !artists.is_empty() {
        rec.artists = artists;
    }
}

/// Outcome of converting one row.
#[allow(
    clippy::large_enum_variant,
    reason = "one value per row, moved straight into the batch: boxing it would cost an allocation per row"
)]
enum Row {
    Record(Record, i64),
    Skip(&'static str),
}

fn convert(era: Era, version: i64, r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    // The column's index is computed at compile time.
    macro_rules! get {
        ($name:literal) => {
            r.get_ref(const { col($name) })
        };
    }
    let vuio_id = int(get!("id")?).unwrap_or(0);
    let Some(stored) = path_bytes(get!("path")?) else {
        return Ok(Row::Skip("empty_path"));
    };
    let mime = text(get!("mime_type")?);
    if is_url(&stored) || mime.as_deref() == Some("audio/radio") {
        return Ok(Row::Skip("stream"));
    }
    let (parent, name) = if era == Era::Sqlx && version == 2 {
        (text(get!("parent_path")?), text(get!("filename")?))
    } else {
        (None, None)
    };
    let path = match file_path(era, version, stored, parent.as_deref(), name.as_deref()) {
        Ok(path) => path,
        Err(why) => return Ok(Row::Skip(why)),
    };
    let Some(size) = int(get!("size")?).and_then(|s| u64::try_from(s).ok()) else {
        return Ok(Row::Skip("bad_size"));
    };
    let secs = int(get!("modified_secs")?)
        .or(int(get!("modified")?))
        .unwrap_or(0);
    let (kind, mime) = kind_of(mime, &path);
    let duration_ms = match real(get!("duration_secs")?) {
        Some(s) if s >= 0.0 => Some((s * 1000.0).round_ties_even() as u64),
        Some(_) => None,
        None => int(get!("duration")?).and_then(|d| u64::try_from(d).ok()),
    };
    let mut rec = Record {
        path,
        size,
        mtime_ns: secs.saturating_mul(1_000_000_000),
        kind,
        mime,
        title: text(get!("title")?),
        artists: text(get!("artist")?).into_iter().collect(),
        album: text(get!("album")?),
        album_artist: text(get!("album_artist")?),
        genres: text(get!("genre")?).into_iter().collect(),
        year: narrow(int(get!("year")?)),
        track: narrow(int(get!("track_number")?)),
        track_total: narrow(int(get!("track_total")?)),
        disc: narrow(int(get!("disc_number")?)),
        disc_total: narrow(int(get!("disc_total")?)),
        duration_ms,
        bitrate: real(get!("bit_rate")?)
            .filter(|b| *b >= 0.0)
            .and_then(|b| narrow(Some((b / 1000.0).round_ties_even() as i64))),
        sample_rate: narrow(int(get!("sample_rate")?)),
        channels: narrow(int(get!("channels")?)),
        bit_depth: narrow(int(get!("bits_per_sample")?)),
        compilation: int(get!("compilation")?).map(|c| c != 0),
        musicbrainz_track_id: text(get!("musicbrainz_track_id")?),
        musicbrainz_album_id: text(get!("musicbrainz_album_id")?),
        ..Record::default()
    };
    for (i, name) in COLUMNS.iter().enumerate().skip(FIRST_TAG_COLUMN) {
        if let Some(v) = text(r.get_ref(i)?) {
            rec.tags.push(((*name).to_owned(), v));
        }
    }
    Ok(Row::Record(rec, vuio_id))
}

/// Reads `media_tags` in file-id order beside the files, one file's rows at a time.
struct TagCursor<'s> {
    rows: Option<rusqlite::Rows<'s>>,
    peeked: Option<(i64, String, String)>,
}

impl TagCursor<'_> {
    fn next_row(&mut self) -> rusqlite::Result<Option<(i64, String, String)>> {
        if let Some(p) = self.peeked.take() {
            return Ok(Some(p));
        }
        let Some(rows) = self.rows.as_mut() else {
            return Ok(None);
        };
        Ok(match rows.next()? {
            Some(r) => Some((
                int(r.get_ref(0)?).unwrap_or(i64::MIN),
                text(r.get_ref(1)?).unwrap_or_default(),
                text(r.get_ref(2)?).unwrap_or_default(),
            )),
            None => None,
        })
    }

    /// The tags of file `id` (rows of smaller ids, whose files were skipped, are passed over).
    fn take(&mut self, id: i64) -> rusqlite::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        while let Some(row) = self.next_row()? {
            if row.0 < id {
                continue;
            }
            if row.0 > id {
                self.peeked = Some(row);
                break;
            }
            if !row.1.is_empty() && !row.2.is_empty() {
                out.push((row.1, row.2));
            }
        }
        Ok(out)
    }
}

/// Migrates the VuIO database at `source` into `db`; see the module documentation and
/// docs/MIGRATE.md. `progress` is called with (rows read, rows in the source).
pub fn migrate(
    db: &mut Database,
    source: &Path,
    opts: &MigrateOptions,
    progress: &dyn Fn(u64, u64),
) -> Result<MigrateReport, MigrateError> {
    // The file a symbolic link names: SQLite looks for its -wal and -journal beside that file,
    // and so must the choice between reading it in place and reading a copy.
    let real = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
    let src = open(&real)?;
    let tables = src.tables()?;
    let (era, version) = src.detect(&tables)?;
    let mut report = MigrateReport {
        source: source.to_path_buf(),
        era: era.as_str(),
        schema_version: version,
        ..MigrateReport::default()
    };
    let have = src.columns("media_files")?;
    for needed in ["id", "path", "size"] {
        if !have.contains(needed) {
            return Err(src.unsupported(format!(
                "media_files has no `{needed}` column: not a VuIO schema migrate knows"
            )));
        }
    }
    let select = COLUMNS
        .iter()
        .map(|c| {
            if have.contains(*c) {
                format!("\"{c}\"")
            } else {
                "NULL".to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let total: i64 = src
        .conn
        .query_row("SELECT count(*) FROM media_files", [], |r| r.get(0))
        .map_err(src.err("counting media_files"))?;
    let total = total.max(0) as u64;

    // Two threads read and convert rows, each over half of the ids and on its own connection,
    // while this one merges and commits the batches they send.
    let batch_size = opts.batch_size.max(1);
    let (lo, hi): (i64, i64) = src
        .conn
        .query_row(
            "SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM media_files",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(src.err("reading media_files"))?;
    let mid = lo + (hi - lo) / 2 + 1;
    let duplicates = find_duplicates(&src, era, version, &have, total)?;
    let second = src.another()?;
    let fresh = db.snapshot().is_empty();
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<Record>)>(2);
    let media_tags = tables.contains("media_tags");
    let (sources, read) = std::thread::scope(|scope| {
        let mut readers = Vec::new();
        let mut recycle = Vec::new();
        for (k, (source, range)) in [(src, (i64::MIN, mid)), (second, (mid, i64::MAX))]
            .into_iter()
            .enumerate()
        {
            // Written batches go back to their reader to be dropped: memory is freed by the
            // thread that allocated it, which keeps the allocator out of cross-thread frees.
            let (recycle_tx, recycle_rx) = std::sync::mpsc::channel::<Vec<Record>>();
            recycle.push(recycle_tx);
            let tx = tx.clone();
            let select = &select;
            let duplicates = &duplicates;
            readers.push(scope.spawn(move || {
                let job = ReadJob {
                    era,
                    version,
                    select,
                    media_tags,
                    range,
                    batch_size,
                    duplicates,
                };
                let read = read_rows(&source, &job, |batch| {
                    while let Ok(done) = recycle_rx.try_recv() {
                        drop(done);
                    }
                    tx.send((k, batch)).is_ok()
                });
                (source, read)
            }));
        }
        drop(tx);
        let mut written = Ok(());
        let mut rows_seen = 0u64;
        for (k, mut batch) in rx.iter() {
            rows_seen += batch.len() as u64;
            written = write_records(db, &mut batch, &mut report, fresh);
            if written.is_err() {
                break;
            }
            let _ = recycle[k].send(batch);
            progress(rows_seen, total);
        }
        // On a write error the channel closes here, and the readers stop at their next send.
        drop(rx);
        let mut sources = Vec::new();
        let mut counts = ReadCounts::default();
        let mut read = Ok(());
        for r in readers {
            let (source, result) = r.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            sources.push(source);
            match result {
                Ok(c) => counts.add(c),
                Err(e) => read = read.and(Err(e)),
            }
        }
        (sources, written.and(read).map(|()| counts))
    });
    let src = sources
        .into_iter()
        .next()
        .expect("the first reader returns its source");
    let counts = read?;
    report.rows_read = counts.rows_read;
    report.skipped = counts.skipped;
    report.skipped_rows = counts.skipped_rows;
    report.tags = counts.tags;
    report.lossy_paths = counts.lossy_paths;
    progress(report.rows_read, total);
    if tables.contains("playlists") && tables.contains("playlist_entries") {
        migrate_playlists(db, &src, era, version, &mut report)?;
    }
    Ok(report)
}

/// What the reader counted.
#[derive(Default)]
struct ReadCounts {
    rows_read: u64,
    skipped: std::collections::BTreeMap<&'static str, u64>,
    /// The first skipped rows (by id) other than streams.
    skipped_rows: Vec<SkippedRow>,
    tags: u64,
    lossy_paths: u64,
}

impl ReadCounts {
    fn add(&mut self, other: ReadCounts) {
        self.rows_read += other.rows_read;
        for (k, v) in other.skipped {
            *self.skipped.entry(k).or_default() += v;
        }
        self.skipped_rows.extend(other.skipped_rows);
        self.skipped_rows.sort_by_key(|r| r.id);
        self.skipped_rows.truncate(MAX_SKIPPED_ROWS);
        self.tags += other.tags;
        self.lossy_paths += other.lossy_paths;
    }

    /// Counts `row` as skipped for `why`, and lists it unless it is a stream (not a file).
    fn skip(&mut self, row: &rusqlite::Row<'_>, why: &'static str) {
        *self.skipped.entry(why).or_default() += 1;
        if why == "stream" || self.skipped_rows.len() >= MAX_SKIPPED_ROWS {
            return;
        }
        let id = row.get_ref(col("id")).ok().and_then(int).unwrap_or(0);
        let path = row
            .get_ref(col("path"))
            .ok()
            .and_then(path_bytes)
            .unwrap_or_default();
        let mut path = String::from_utf8_lossy(&path[..path.len().min(4096)]).into_owned();
        if path.len() >= 4096 {
            path.push('…');
        }
        self.skipped_rows.push(SkippedRow {
            id,
            path,
            reason: why,
        });
    }
}

/// Whether `rec` encodes to more than a record may hold ([`MAX_RECORD_LEN`]); such a row is
/// skipped (`too_large`), as the database would refuse its batch. A bound on the encoded size
/// decides a usual record without encoding it.
fn too_large(rec: &Record) -> bool {
    if size_bound(rec) <= MAX_RECORD_LEN {
        return false;
    }
    let mut encoded = Vec::new();
    crate::record::encode(rec, 1, &mut encoded);
    encoded.len() - 4 > MAX_RECORD_LEN
}

/// At least the length of `rec` encoded, its length prefix included.
fn size_bound(rec: &Record) -> usize {
    let strs = [
        &rec.mime,
        &rec.title,
        &rec.album,
        &rec.album_artist,
        &rec.musicbrainz_track_id,
        &rec.musicbrainz_album_id,
        &rec.error,
    ];
    let lens = strs
        .into_iter()
        .flatten()
        .chain(&rec.artists)
        .chain(&rec.genres)
        .map(String::len)
        .chain(rec.tags.iter().flat_map(|(k, v)| [k.len(), v.len()]))
        .chain([rec.path.len()]);
    // An object costs its bytes and at most 16 more (its length, a NUL, alignment, its offset
    // in a list); the prefix, the vtable, the table and its fixed fields less than 1024 in all.
    lens.fold(1024usize, |n, len| n.saturating_add(len).saturating_add(16))
}

/// Rows whose records would be stored under one path (`/a//b` and `/a/b`, or a directory
/// reached directly and through a symbolic link; VuIO's `UNIQUE(path)` allows both): one of
/// them is migrated, the newest by its modification time and of equal times the lowest id; the
/// others are skipped (`duplicate_path`). A rerun so picks the same row and writes nothing.
#[derive(Default)]
struct Duplicates {
    /// Hashes of the paths more than one row would be stored under (and of paths that merely
    /// share a hash with another).
    hashes: HashSet<u64>,
    /// The row migrated for each of those paths.
    winners: HashMap<Vec<u8>, i64>,
    /// The paths whose row has been migrated: a table without `UNIQUE` may repeat a row, id
    /// and all, and only its first copy is.
    taken: std::sync::Mutex<HashSet<Vec<u8>>>,
}

impl Duplicates {
    /// Whether the row `id`, stored under `path`, is migrated.
    fn keeps(&self, path: &[u8], id: i64) -> bool {
        if self.hashes.is_empty() || !self.hashes.contains(&xxh3_64(path)) {
            return true;
        }
        match self.winners.get(path) {
            None => true,
            Some(&winner) if winner != id => false,
            Some(_) => self
                .taken
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(path.to_vec()),
        }
    }
}

/// Finds the rows of `media_files` that would be stored under one path. A first pass keeps a
/// hash of each row's path (8 bytes a row, freed before the rows are migrated); only when two
/// hashes are equal does a second pass compare those rows' paths.
fn find_duplicates(
    src: &Source,
    era: Era,
    version: i64,
    have: &HashSet<String>,
    total: u64,
) -> Result<Duplicates, MigrateError> {
    // What `convert` needs to decide a row's path; the rest reads as NULL.
    const NEEDED: &[&str] = COLUMNS.split_at(PATH_COLUMNS).0;
    let select = COLUMNS
        .iter()
        .map(|c| {
            if NEEDED.contains(c) && have.contains(*c) {
                format!("\"{c}\"")
            } else {
                "NULL".to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let reading = "reading media_files";
    let survey = |visit: &mut dyn FnMut(Vec<u8>, i64, i64)| -> Result<(), MigrateError> {
        let mut stmt = src
            .conn
            .prepare(&format!("SELECT {select} FROM media_files"))
            .map_err(src.err(reading))?;
        let mut rows = stmt.query([]).map_err(src.err(reading))?;
        let mut dirs = CanonicalDirs::default();
        while let Some(row) = rows.next().map_err(src.err(reading))? {
            if let Row::Record(rec, id) = convert(era, version, row).map_err(src.err(reading))? {
                visit(dirs.real(rec.path), rec.mtime_ns, id);
            }
        }
        Ok(())
    };
    let mut hashes = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    survey(&mut |path, _, _| hashes.push(xxh3_64(&path)))?;
    hashes.sort_unstable();
    let shared: HashSet<u64> = hashes
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    drop(hashes);
    if shared.is_empty() {
        return Ok(Duplicates::default());
    }
    let mut best: HashMap<Vec<u8>, (i64, i64)> = HashMap::new();
    survey(&mut |path, mtime, id| {
        if !shared.contains(&xxh3_64(&path)) {
            return;
        }
        let b = best.entry(path).or_insert((mtime, id));
        if mtime > b.0 || (mtime == b.0 && id < b.1) {
            *b = (mtime, id);
        }
    })?;
    Ok(Duplicates {
        hashes: shared,
        winners: best.into_iter().map(|(p, (_, id))| (p, id)).collect(),
        taken: Default::default(),
    })
}

/// What one reader reads: rows with `range.0 <= id < range.1`.
struct ReadJob<'a> {
    era: Era,
    version: i64,
    select: &'a str,
    media_tags: bool,
    range: (i64, i64),
    batch_size: usize,
    duplicates: &'a Duplicates,
}

/// Reads and converts every `media_files` row (with its `media_tags`), sending records in
/// batches of `batch_size`. Stops early, without error, when the receiver is gone.
fn read_rows(
    src: &Source,
    job: &ReadJob<'_>,
    mut send: impl FnMut(Vec<Record>) -> bool,
) -> Result<ReadCounts, MigrateError> {
    let ReadJob {
        era,
        version,
        select,
        media_tags,
        range,
        batch_size,
        duplicates,
    } = *job;
    let reading = "reading media_files";
    let mut counts = ReadCounts::default();
    let mut stmt = src
        .conn
        .prepare(&format!(
            "SELECT {select} FROM media_files WHERE id >= ?1 AND id < ?2 ORDER BY id"
        ))
        .map_err(src.err(reading))?;
    let mut rows = stmt.query(range).map_err(src.err(reading))?;
    let mut tag_stmt = if media_tags {
        Some(
            src.conn
                .prepare(
                    "SELECT media_file_id, key, value FROM media_tags \
                     WHERE media_file_id >= ?1 AND media_file_id < ?2 \
                     ORDER BY media_file_id, rowid",
                )
                .map_err(src.err("reading media_tags"))?,
        )
    } else {
        None
    };
    let mut tags = TagCursor {
        rows: match tag_stmt.as_mut() {
            Some(s) => Some(s.query(range).map_err(src.err("reading media_tags"))?),
            None => None,
        },
        peeked: None,
    };
    let mut pending: Vec<Record> = Vec::with_capacity(batch_size.min(1 << 16));
    let mut dirs = CanonicalDirs::default();
    while let Some(row) = rows.next().map_err(src.err(reading))? {
        counts.rows_read += 1;
        match convert(era, version, row).map_err(src.err(reading))? {
            Row::Skip(why) => counts.skip(row, why),
            Row::Record(mut rec, vuio_id) => {
                rec.path = dirs.real(std::mem::take(&mut rec.path));
                let extra = tags.take(vuio_id).map_err(src.err("reading media_tags"))?;
                if !duplicates.keeps(&rec.path, vuio_id) {
                    counts.skip(row, "duplicate_path");
                    continue;
                }
                apply_media_tags(&mut rec, extra);
                if too_large(&rec) {
                    counts.skip(row, "too_large");
                    continue;
                }
                rec.tags.sort();
                counts.tags += rec.tags.len() as u64;
                if rec.path.windows(3).any(|w| w == "\u{FFFD}".as_bytes()) {
                    counts.lossy_paths += 1;
                }
                pending.push(rec);
            }
        }
        if pending.len() >= batch_size {
            let full = std::mem::replace(&mut pending, Vec::with_capacity(batch_size.min(1 << 16)));
            if !send(full) {
                return Ok(counts);
            }
        }
    }
    if !pending.is_empty() {
        send(pending);
    }
    Ok(counts)
}

/// The canonical form of the directories rows name, each looked up once: a scan stores a file
/// under its root's canonical path (symbolic links followed), so a VuIO path written through a
/// link (`/srv/music` → `/mnt/nas/music`) is stored as the scan would store it, and a scan after
/// the migration finds the record instead of adding the file a second time. A directory that
/// does not exist (any more) is kept as VuIO wrote it.
#[derive(Default)]
struct CanonicalDirs(HashMap<Vec<u8>, Option<Vec<u8>>>);

impl CanonicalDirs {
    /// Most directories remembered; past that, the lookups are made again.
    const MAX: usize = 1 << 16;

    fn real(&mut self, path: Vec<u8>) -> Vec<u8> {
        let Some(slash) = path.iter().rposition(|&b| b == b'/').filter(|&i| i > 0) else {
            return path;
        };
        let (dir, name) = path.split_at(slash);
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        let real = self.0.entry(dir.to_vec()).or_insert_with(|| {
            std::fs::canonicalize(std::ffi::OsStr::from_bytes(dir))
                .ok()
                .map(|c| c.into_os_string().into_vec())
                .filter(|c| c != dir)
        });
        match real {
            Some(real) => [&real[..], name].concat(),
            None => path,
        }
    }
}

/// Merges a batch of converted rows into `db` by path, in one commit.
fn write_records(
    db: &mut Database,
    pending: &mut Vec<Record>,
    report: &mut MigrateReport,
    fresh: bool,
) -> Result<(), MigrateError> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut inserted = 0;
    let mut keep = Vec::with_capacity(pending.len());
    {
        let snap = db.snapshot();
        let existing = if fresh {
            // The database was empty when the migration began, and the rows' paths are unique
            // (of rows that would share a path, one is migrated): nothing to merge with, so
            // skip the lookups.
            vec![None; pending.len()]
        } else {
            let paths: Vec<&[u8]> = pending.iter().map(|r| r.path.as_slice()).collect();
            snap.get_many(&paths)?
        };
        for (rec, old) in pending.iter().zip(existing) {
            keep.push(match old {
                None => {
                    inserted += 1;
                    true
                }
                Some(old) if old.extractor_version() > 0 && old.mtime_ns() >= rec.mtime_ns => {
                    report.records_kept_newer += 1;
                    false
                }
                Some(old) => {
                    let same = old.to_record()
                        == Record {
                            id: old.id(),
                            ..rec.clone()
                        };
                    if same {
                        report.records_unchanged += 1;
                    }
                    !same
                }
            });
        }
    }
    // Only what changes is written; `pending` keeps it (the caller frees it).
    let mut k = keep.iter();
    pending.retain(|_| k.next().copied().unwrap_or(false));
    if pending.is_empty() {
        return Ok(());
    }
    let mut batch = db.batch()?;
    batch.upsert_many(pending)?;
    let info = batch.commit()?;
    report.records_written += info.upserted;
    report.records_inserted += inserted;
    report.commits += 1;
    Ok(())
}

/// The columns of a playlist row.
struct PlaylistRow {
    id: i64,
    name: String,
    description: Option<String>,
    source_path: Option<String>,
    created: i64,
    updated: i64,
}

fn migrate_playlists(
    db: &mut Database,
    src: &Source,
    era: Era,
    version: i64,
    report: &mut MigrateReport,
) -> Result<(), MigrateError> {
    let have = src.columns("playlists")?;
    let pick = |names: &[&str]| {
        names
            .iter()
            .find(|n| have.contains(**n))
            .map_or("NULL".to_owned(), |n| format!("\"{n}\""))
    };
    let sql = format!(
        "SELECT id, name, {}, {}, {}, {} FROM playlists ORDER BY id",
        pick(&["description"]),
        pick(&["source_path"]),
        pick(&["created_at_secs", "created_at"]),
        pick(&["updated_at_secs", "updated_at"]),
    );
    let what = "reading playlists";
    let mut stmt = src.conn.prepare(&sql).map_err(src.err(what))?;
    let lists: Vec<PlaylistRow> = stmt
        .query_map([], |r| {
            Ok(PlaylistRow {
                id: int(r.get_ref(0)?).unwrap_or(0),
                name: text(r.get_ref(1)?).unwrap_or_default(),
                description: text(r.get_ref(2)?),
                source_path: text(r.get_ref(3)?),
                created: int(r.get_ref(4)?).unwrap_or(0),
                updated: int(r.get_ref(5)?).unwrap_or(0),
            })
        })
        .map_err(src.err(what))?
        .collect::<Result<_, _>>()
        .map_err(src.err(what))?;

    // Entries in position order; a duplicate position (impossible by VuIO's keys) keeps rowid
    // order. A row that names no file yields NULLs.
    let what = "reading playlist_entries";
    let mut stmt = src
        .conn
        .prepare(
            "SELECT e.playlist_id, m.id, m.path, m.parent_path, m.filename \
             FROM playlist_entries e LEFT JOIN media_files m ON m.id = e.media_file_id \
             ORDER BY e.playlist_id, e.position, e.rowid",
        )
        .map_err(src.err(what))?;
    let has_parent = src.columns("media_files")?.contains("parent_path");
    let mut entries: HashMap<i64, Vec<Entry>> = HashMap::new();
    let mut dirs = CanonicalDirs::default();
    let snap = db.snapshot();
    let mut rows = stmt.query([]).map_err(src.err(what))?;
    while let Some(r) = rows.next().map_err(src.err(what))? {
        let pid = int(r.get_ref(0).map_err(src.err(what))?).unwrap_or(0);
        let target = r.get_ref(1).map_err(src.err(what))?;
        let stored = path_bytes(r.get_ref(2).map_err(src.err(what))?);
        let (Some(_), Some(stored)) = (int(target), stored) else {
            *report
                .skipped_entries
                .entry("missing_entry_target")
                .or_default() += 1;
            continue;
        };
        let (parent, name) = if has_parent {
            (
                text(r.get_ref(3).map_err(src.err(what))?),
                text(r.get_ref(4).map_err(src.err(what))?),
            )
        } else {
            (None, None)
        };
        let (parent, name) = (parent.as_deref(), name.as_deref());
        // The entry names its row's record by the path the record was stored under; a row that
        // was skipped leaves the entry dangling with the row's own path.
        let (path, record_id) = if is_url(&stored) {
            (stored, 0)
        } else {
            match file_path(era, version, stored.clone(), parent, name) {
                Ok(path) => {
                    let path = dirs.real(path);
                    let id = snap.entry(&path)?.map_or(0, |(id, _)| id);
                    (path, id)
                }
                Err(_) => (real_path(era, version, stored, parent, name), 0),
            }
        };
        if record_id == 0 {
            report.dangling_entries += 1;
        }
        entries
            .entry(pid)
            .or_default()
            .push(Entry::new(record_id, path));
    }
    drop(rows);

    let mut existing: HashMap<String, Playlist> = snap
        .playlists()?
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
    drop(snap);
    let mut seen_names: HashSet<String> = HashSet::new();
    let mut batch_lists: Vec<Playlist> = Vec::new();
    for row in lists {
        report.playlists += 1;
        let mut name = if row.name.trim().is_empty() {
            format!("VuIO playlist {}", row.id)
        } else {
            row.name.clone()
        };
        if !seen_names.insert(name.clone()) {
            name = format!("{name} (VuIO {})", row.id);
            seen_names.insert(name.clone());
            report.renamed_playlists += 1;
        }
        let list_entries = entries.remove(&row.id).unwrap_or_default();
        report.playlist_entries += list_entries.len() as u64;
        let old = existing.remove(&name);
        let p = Playlist {
            id: old.as_ref().map_or(0, |o| o.id),
            name,
            description: row.description,
            source_path: row.source_path.map(|s| OsString::from(s).into_vec()),
            created_unix_ns: row.created.saturating_mul(1_000_000_000),
            updated_unix_ns: row.updated.saturating_mul(1_000_000_000),
            entries: list_entries,
        };
        if old.as_ref() != Some(&p) {
            batch_lists.push(p);
        }
    }
    for chunk in batch_lists.chunks(256) {
        let mut batch = db.batch()?;
        for p in chunk {
            batch.put_playlist(p)?;
        }
        batch.commit()?;
        report.playlists_written += chunk.len() as u64;
        report.commits += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded_len(rec: &Record) -> usize {
        let mut out = Vec::new();
        crate::record::encode(rec, u64::MAX, &mut out);
        out.len()
    }

    #[test]
    fn the_size_bound_is_never_below_the_encoded_size() {
        let full = Record {
            mime: Some("audio/flac".into()),
            title: Some("t".into()),
            album: Some(String::new()),
            album_artist: Some("aa".into()),
            artists: vec!["a".into(), String::new(), "ccc".into()],
            genres: vec![String::new(); 7],
            musicbrainz_track_id: Some("x".repeat(36)),
            musicbrainz_album_id: Some("y".into()),
            error: Some("e".into()),
            tags: (0..2000)
                .map(|i| ("k".repeat(i % 5), "v".repeat(i % 3)))
                .collect(),
            year: Some(1),
            track: Some(2),
            ..Record::new(b"/a".to_vec())
        };
        let records = [
            Record::new(b"/".to_vec()),
            Record::new(vec![b'/'; 3]),
            full.clone(),
            Record {
                tags: vec![(String::new(), String::new()); 60_000],
                ..full
            },
        ];
        for rec in &records {
            assert!(size_bound(rec) >= encoded_len(rec), "{}", encoded_len(rec));
        }
    }

    #[test]
    fn a_record_over_the_limit_is_too_large_and_one_under_it_is_not() {
        let with_title = |n: usize| Record {
            title: Some("x".repeat(n)),
            ..Record::new(b"/m/a.mp3".to_vec())
        };
        assert!(!too_large(&with_title(1000)));
        // Past the bound, so encoded to decide, and still within the limit.
        let near = with_title(MAX_RECORD_LEN - 600);
        assert!(size_bound(&near) > MAX_RECORD_LEN);
        assert!(!too_large(&near));
        assert!(too_large(&with_title(MAX_RECORD_LEN)));
    }

    #[test]
    fn a_copy_is_one_state_of_the_database_and_its_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("x.db");
        std::fs::write(&db, vec![7u8; 3 << 20]).expect("write db");
        std::fs::write(beside(&db, "-wal"), b"log").expect("write wal");
        // A source its reader may not write: SQLite must still be able to write the copy.
        for f in [db.clone(), beside(&db, "-wal")] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o444)).expect("chmod");
        }
        let copy = copy_consistent(&db, "-wal").expect("a still source is copied");
        for f in [copy.db(), beside(&copy.db(), "-wal")] {
            let mode = std::fs::metadata(&f).expect("copied").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", f.display());
        }
        assert_eq!(std::fs::read(copy.db()).expect("copy"), vec![7u8; 3 << 20]);
        assert_eq!(
            std::fs::read(beside(&copy.db(), "-wal")).expect("copy"),
            b"log"
        );
        let without = copy_consistent(&db, "-journal").expect("no journal: copied");
        assert!(!beside(&without.db(), "-journal").exists());
        let copied_dir = copy.0.clone();
        drop(copy);
        assert!(!copied_dir.exists(), "the copy is removed");
    }

    /// Copies like `std::fs::copy`, then writes to the log it copied (as VuIO would meanwhile)
    /// on the first `writes` copies of it.
    fn copy_then_write(writes: u32) -> impl Fn(&Path, &Path) -> std::io::Result<()> {
        let done = std::sync::atomic::AtomicU32::new(0);
        move |from, to| {
            std::fs::copy(from, to)?;
            let n = done.load(std::sync::atomic::Ordering::Relaxed);
            if from.to_string_lossy().ends_with("-wal") && n < writes {
                done.store(n + 1, std::sync::atomic::Ordering::Relaxed);
                use std::os::unix::fs::FileExt;
                let f = std::fs::OpenOptions::new().write(true).open(from)?;
                f.write_all_at(&(n + 1).to_le_bytes(), 0)?;
            }
            Ok(())
        }
    }

    #[test]
    fn a_log_written_while_it_is_copied_is_copied_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("x.db");
        std::fs::write(&db, vec![7u8; 1 << 20]).expect("write db");
        let wal = beside(&db, "-wal");
        std::fs::write(&wal, [0u8; 64]).expect("write wal");
        let copy = copy_consistent_with(&db, "-wal", &copy_then_write(2)).expect("third copy");
        let log = std::fs::read(beside(&copy.db(), "-wal")).expect("copied log");
        assert_eq!(log, std::fs::read(&wal).expect("log"));
        assert_eq!(log[0], 2, "the copy holds the log after its last write");
    }

    #[test]
    fn copies_left_by_a_killed_migrate_are_removed_and_others_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // No process has pid 4194304 (above the kernel's pid_max): its copy is stale.
        let stale = tmp.path().join("mediadb-migrate-4194304-1");
        let mine = tmp
            .path()
            .join(format!("mediadb-migrate-{}-1", std::process::id()));
        let other = tmp.path().join("mediadb-migrate-notapid");
        for d in [&stale, &mine, &other] {
            std::fs::create_dir(d).expect("mkdir");
            std::fs::write(d.join("source.db"), b"x").expect("write");
        }
        remove_stale_copies(tmp.path());
        assert!(!stale.exists(), "the killed run's copy is removed");
        assert!(mine.exists() && other.exists(), "the rest is left alone");
    }

    #[test]
    fn a_log_that_keeps_changing_while_it_is_copied_is_refused_as_busy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("x.db");
        std::fs::write(&db, vec![7u8; 1 << 20]).expect("write db");
        std::fs::write(beside(&db, "-wal"), [0u8; 64]).expect("write wal");
        match copy_consistent_with(&db, "-wal", &copy_then_write(u32::MAX)) {
            Err(MigrateError::Busy { detail, .. }) => {
                assert!(detail.contains("VuIO is writing it"), "{detail}");
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a changing log was copied as one state"),
        }
    }
}
