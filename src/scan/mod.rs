//! Scanning media trees into the database: walk (parallel, one `statx` per entry) → diff against
//! a snapshot (size, mtime, inode, extractor version; unchanged files are never opened) →
//! extract tags from new and changed files only (on the walk threads) → bounded channel →
//! batches committed as the scan goes → removals, guarded, at the end.
//!
//! What must stay true: an unchanged tree writes nothing; a root that is missing or unreadable,
//! a directory that could not be read, or a root that suddenly looks empty never causes
//! removals; one bad file never aborts the scan.

pub mod kind;
pub mod tags;
pub mod walk;

use std::os::fd::BorrowedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use crate::error::{CommitError, ReadError};
use crate::record::{Kind, Record};
use crate::store::columns::{ABSENT, Col};
use crate::store::format::{FLAG_ERROR, path_hash};
use crate::store::{Database, FileEntry, Snapshot};
use walk::{Excludes, Files, Visitor, WalkOptions, WalkProblem};

/// Directory names skipped by default: NAS and filesystem litter.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    "@eaDir",
    "#recycle",
    "#snapshot",
    ".snapshots",
    "lost+found",
    "$RECYCLE.BIN",
    "System Volume Information",
];

/// Removing more than this fraction of a root's records needs `allow_mass_removal`…
pub const MASS_REMOVAL_FRACTION: f64 = 0.5;
/// …unless at most this many records would go.
pub const MASS_REMOVAL_MIN: u64 = 20;

/// Default records per commit.
pub const DEFAULT_BATCH_SIZE: usize = 50_000;

/// Default for [`ScanConfig::commit_every`].
pub const DEFAULT_COMMIT_EVERY: Duration = Duration::from_secs(2);

/// How to scan.
#[derive(Clone, Debug)]
pub struct ScanConfig {
    /// Directories to scan.
    pub roots: Vec<PathBuf>,
    /// Walk and extraction threads.
    pub threads: usize,
    /// Records per commit.
    pub batch_size: usize,
    /// Longest a record that was read waits before it is committed, about: a batch is also
    /// committed, whatever its size, once its first record is this old. Tags read slowly (a
    /// network share, a sleeping disk) fill a batch slowly, and a scan killed before its first
    /// full batch would lose all of that reading; with this it loses at most about this long.
    pub commit_every: Duration,
    /// Extra glob patterns to skip (matched against names, or full paths for patterns with `/`).
    pub excludes: Vec<String>,
    /// Skip [`DEFAULT_EXCLUDES`].
    pub default_excludes: bool,
    /// Include hidden files and directories.
    pub hidden: bool,
    /// Follow symbolic links.
    pub follow_symlinks: bool,
    /// Re-read the tags of every file.
    pub force: bool,
    /// Compute the changes, write nothing.
    pub dry_run: bool,
    /// Allow removing more than the mass-removal threshold, or every record of an empty root.
    pub allow_mass_removal: bool,
}

impl Default for ScanConfig {
    fn default() -> ScanConfig {
        ScanConfig {
            roots: Vec::new(),
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            batch_size: DEFAULT_BATCH_SIZE,
            commit_every: DEFAULT_COMMIT_EVERY,
            excludes: Vec::new(),
            default_excludes: true,
            hidden: false,
            follow_symlinks: false,
            force: false,
            dry_run: false,
            allow_mass_removal: false,
        }
    }
}

/// Live counters a caller may poll (e.g. for a progress bar) while `scan` runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Regular files seen.
    pub files: AtomicU64,
    /// Directories read.
    pub dirs: AtomicU64,
    /// New or changed files whose tags were read.
    pub extracted: AtomicU64,
    /// Problems so far.
    pub errors: AtomicU64,
    /// Records committed so far.
    pub committed: AtomicU64,
}

/// A file or directory the scan could not read fully.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    /// Exact path bytes.
    pub path: Vec<u8>,
    /// What went wrong.
    pub message: String,
}

/// What a scan did (or, for a dry run, would do).
#[derive(Clone, Debug, Default)]
pub struct ScanReport {
    /// The roots, absolute.
    pub roots: Vec<PathBuf>,
    /// Regular files seen.
    pub files: u64,
    /// Regular files seen under each root, in the order of `roots`.
    pub files_per_root: Vec<u64>,
    /// New records.
    pub added: u64,
    /// Changed files re-read.
    pub updated: u64,
    /// Records removed (files gone).
    pub removed: u64,
    /// Files unchanged since the last scan (not opened).
    pub unchanged: u64,
    /// Files and directories that could not be read (see `problems`).
    pub errors: u64,
    /// The problems, in no particular order.
    pub problems: Vec<FileError>,
    /// For a dry run: the paths that would be added, updated and removed.
    pub planned: Option<Planned>,
    /// Sequence number after the scan.
    pub seq: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// The changes a dry run found.
#[derive(Clone, Debug, Default)]
pub struct Planned {
    /// New files.
    pub add: Vec<Vec<u8>>,
    /// Changed files.
    pub update: Vec<Vec<u8>>,
    /// Records whose files are gone.
    pub remove: Vec<Vec<u8>>,
}

/// Why a scan stopped or refused part of its work.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A root is missing, not a directory, or unreadable.
    #[error("{}: {message}; nothing was scanned or removed (is the volume mounted?)", .root.display())]
    Root {
        /// The root as given.
        root: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A bad `--exclude` pattern.
    #[error("bad exclude pattern {pattern:?}: {message}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why.
        message: String,
    },
    /// Removals were refused by the mass-removal guard; additions and updates were committed.
    #[error("{}: {would_remove} of its {records} records are gone from disk; nothing was removed (if the files really are gone, rerun with --allow-mass-removal)", .root.display())]
    MassRemoval {
        /// The root.
        root: PathBuf,
        /// Records that would be removed.
        would_remove: u64,
        /// Records under the root.
        records: u64,
        /// The rest of the scan's results.
        report: Box<ScanReport>,
    },
    /// Committing failed.
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// A committed record could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Records a walker thread gathers, across directories, before handing them to the writer in
/// one message: each message may wake the writer, and a wake-up costs more than a few records.
/// A smaller `--batch-size` lowers it to the batch size, so that what a batch commits is not
/// held back in a walker (a scan stopped by a crash keeps what its batches committed).
const FLUSH_AT: usize = 1024;

/// Messages the channel holds: enough (64K records) for the walkers to keep going while the
/// writer waits for a commit's fdatasync, few enough to bound the memory in flight.
const CHANNEL_BATCHES: usize = 64;

enum Msg {
    /// A record to store, with its path hash when the path had no record (new).
    Upsert(Box<Record>, Option<u64>),
    /// Dry run: a change that would be made.
    Planned(Vec<u8>, bool),
    /// The walk is over.
    Done,
}

/// What one walker gathers while it reads a directory.
#[derive(Default)]
struct Local {
    /// Messages for the writer, sent in one piece.
    msgs: Vec<Msg>,
    /// Path hashes of the files being visited.
    hashes: Vec<u64>,
    /// When the first of `msgs` was made.
    since: Option<Instant>,
    /// The directory's root, and counts for it: files, files with a record, unchanged files.
    root: usize,
    files: u64,
    known: u64,
    unchanged: u64,
}

struct ScanVisitor<'a> {
    snap: &'a Snapshot,
    seen: Vec<AtomicU64>,
    /// Per root: files seen that already had a record.
    known_per_root: Vec<AtomicU64>,
    /// Per root: regular files seen (a root with none looks empty).
    files_per_root: Vec<AtomicU64>,
    unchanged: AtomicU64,
    force: bool,
    dry_run: bool,
    tx: SyncSender<Vec<Msg>>,
    /// Per walker thread (by rayon index): messages waiting for a full message's worth.
    outbox: Vec<Mutex<Outbox>>,
    stop: &'a AtomicBool,
    progress: &'a Progress,
    problems: Mutex<Vec<FileError>>,
    /// Directories whose contents are unknown: nothing under them may be removed.
    unknown: Mutex<Vec<Vec<u8>>>,
    /// Records gathered before they are handed on (see [`FLUSH_AT`])…
    flush_at: usize,
    /// …or once the first of them is this old (half of [`ScanConfig::commit_every`]).
    hold: Duration,
    /// The database's own files, never indexed.
    own: OwnFiles,
}

/// The database being scanned into and the files beside it: by their full paths (the
/// directory's canonical path, as the walk builds paths from canonical roots), and by the
/// inodes of those that exist when the scan starts (for a walk that reaches them through a
/// followed link). A database kept inside a scanned tree must not index itself, or every
/// rescan would find it changed and commit again.
#[derive(Default)]
struct OwnFiles {
    /// The database file's name: every one of its files starts with it.
    name: Vec<u8>,
    paths: Vec<Vec<u8>>,
    inodes: Vec<u64>,
}

impl OwnFiles {
    fn of(db: &Path) -> OwnFiles {
        use std::os::unix::fs::MetadataExt;
        let files = crate::store::database_files(db);
        let Some(name) = files[0].file_name() else {
            return OwnFiles::default();
        };
        OwnFiles {
            name: name.as_bytes().to_vec(),
            inodes: files
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.ino())
                .collect(),
            paths: files
                .into_iter()
                .map(|p| p.into_os_string().into_vec())
                .collect(),
        }
    }

    fn holds(&self, f: &walk::FileRef<'_>) -> bool {
        !self.paths.is_empty()
            && f.name.to_bytes().starts_with(&self.name)
            && (self.inodes.contains(&f.stat.inode) || self.paths.iter().any(|p| p == f.path))
    }
}

/// Messages a walker thread gathered across directories, and when the first was made.
#[derive(Default)]
struct Outbox {
    msgs: Vec<Msg>,
    since: Option<Instant>,
}

impl Outbox {
    fn take(&mut self) -> Vec<Msg> {
        self.since = None;
        std::mem::take(&mut self.msgs)
    }
}

impl ScanVisitor<'_> {
    fn mark_seen(&self, id: u64) {
        if let Some(w) = self.seen.get((id / 64) as usize) {
            w.fetch_or(1 << (id % 64), Relaxed);
        }
    }

    /// Hands the messages gathered so far to the writer, in one piece.
    fn flush(&self, local: &mut Vec<Msg>) {
        if local.is_empty() {
            return;
        }
        let msgs = std::mem::take(local);
        if self.stop.load(Relaxed) || self.tx.send(msgs).is_err() {
            self.stop.store(true, Relaxed);
        }
    }

    /// Moves a directory's messages, made since `since`, to this thread's outbox, and sends
    /// the outbox when full or held too long. Then sends any other thread's outbox held too
    /// long: a thread may go on walking elsewhere for a while without posting.
    fn post(&self, msgs: &mut Vec<Msg>, since: Option<Instant>) {
        if msgs.is_empty() {
            return;
        }
        let i = rayon::current_thread_index().unwrap_or(0) % self.outbox.len();
        let mut out = self.outbox[i].lock().unwrap_or_else(|e| e.into_inner());
        out.msgs.append(msgs);
        let since = *out.since.get_or_insert(since.unwrap_or_else(Instant::now));
        let old = since.elapsed() >= self.hold;
        if out.msgs.len() >= self.flush_at || old {
            let mut full = out.take();
            drop(out);
            self.flush(&mut full);
        }
        if old {
            for o in &self.outbox {
                let Ok(mut o) = o.try_lock() else { continue };
                if o.since.is_some_and(|t| t.elapsed() >= self.hold) {
                    let mut msgs = o.take();
                    drop(o);
                    self.flush(&mut msgs);
                }
            }
        }
    }

    /// Sends what every outbox holds (once the walk is over).
    fn flush_outboxes(&self) {
        for o in &self.outbox {
            let mut msgs = o.lock().unwrap_or_else(|e| e.into_inner()).take();
            self.flush(&mut msgs);
        }
    }

    fn record_problem(&self, path: &[u8], message: String) {
        self.progress.errors.fetch_add(1, Relaxed);
        let mut p = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        p.push(FileError {
            path: path.to_vec(),
            message,
        });
    }

    fn visit(
        &self,
        local: &mut Local,
        dir: BorrowedFd<'_>,
        file: walk::FileRef<'_>,
        hash: u64,
    ) -> Result<(), ReadError> {
        let (path, stat) = (file.path, &file.stat);
        let mut retry = None;
        if !self.force {
            // Unchanged: same hash, size, mtime and inode, read by a current extractor. A
            // different path with the same 64-bit hash *and* the same stat triple is not a risk
            // worth a read.
            let hit = self.snap.entries_with_hash(hash).find(|(_, e)| {
                e.size == stat.size
                    && e.mtime_ns == stat.mtime_ns
                    && e.inode == stat.inode
                    && tags::is_current(e.extractor_version, e.flags & FLAG_ERROR != 0, path)
            });
            if let Some((id, e)) = hit {
                // A file the system failed to read is read again (see `tags::is_retryable`).
                retry = self.retryable(id, &e)?;
                if retry.is_none() {
                    self.mark_seen(id);
                    local.known += 1;
                    local.unchanged += 1;
                    return Ok(());
                }
            }
        }
        let existing = self.snap.entry(path)?;
        if let Some((id, _)) = existing {
            self.mark_seen(id);
            local.known += 1;
        }
        let new = existing.is_none();
        if self.dry_run {
            local.msgs.push(Msg::Planned(path.to_vec(), new));
            return Ok(());
        }
        let (kind, mime) = kind::classify(path);
        let mut rec = Record {
            path: path.to_vec(),
            size: stat.size,
            mtime_ns: stat.mtime_ns,
            inode: stat.inode,
            kind,
            mime: mime.map(str::to_owned),
            extractor_version: tags::EXTRACTOR_VERSION,
            ..Record::default()
        };
        // An empty file has nothing to read: it is indexed without being opened.
        if matches!(kind, Kind::Audio | Kind::Video) && stat.size > 0 {
            let p = Path::new(std::ffi::OsStr::from_bytes(path));
            tags::extract_at(dir, file.name, p, kind, &mut rec);
            self.progress.extracted.fetch_add(1, Relaxed);
        }
        if let Some(e) = &rec.error {
            self.record_problem(path, e.clone());
        }
        // With --force every file is read again; one that reads as its record already says
        // is not written again (a forced rescan of an unchanged library writes nothing).
        let forced = match existing {
            Some((id, _)) if self.force && retry.is_none() => {
                self.snap.get_by_id(id)?.map(|v| v.to_record())
            }
            _ => None,
        };
        if let Some(old) = retry.or(forced) {
            // The id is the database's; the rest is what was read.
            rec.id = old.id;
            if old == rec {
                // Read again and found (or failed) the same: nothing to write.
                local.unchanged += 1;
                return Ok(());
            }
        }
        let new = new.then_some(hash);
        local.msgs.push(Msg::Upsert(Box::new(rec), new));
        Ok(())
    }
}

impl ScanVisitor<'_> {
    /// The record of entry `id` when the file must be read again although its stat is
    /// unchanged: when the system failed to read it last time.
    fn retryable(&self, id: u64, e: &FileEntry) -> Result<Option<Record>, ReadError> {
        if e.flags & FLAG_ERROR == 0 {
            return Ok(None);
        }
        let Some(view) = self.snap.get_by_id(id)? else {
            return Ok(None);
        };
        Ok(view
            .error()
            .is_some_and(tags::is_retryable)
            .then(|| view.to_record()))
    }
}

impl Visitor for ScanVisitor<'_> {
    type Local = Local;

    fn files(&self, local: &mut Local, root: usize, dir: BorrowedFd<'_>, files: &Files) {
        if self.stop.load(Relaxed) {
            return;
        }
        local.root = root;
        let own = files.iter().filter(|f| self.own.holds(f)).count();
        let counted = (files.len() - own) as u64;
        local.files += counted;
        self.progress.files.fetch_add(counted, Relaxed);
        let mut hashes = std::mem::take(&mut local.hashes);
        hashes.clear();
        hashes.extend(files.iter().map(|f| path_hash(f.path)));
        // The lookups below miss the cache one after the other; touching every slot first
        // lets those misses overlap.
        self.snap.touch_hashes(&hashes);
        for (file, &hash) in files.iter().zip(&hashes) {
            if own > 0 && self.own.holds(&file) {
                continue;
            }
            if let Err(e) = self.visit(local, dir, file, hash) {
                // The old record is unreadable: treat the file as unknown this time.
                self.record_problem(file.path, e.to_string());
            }
            let n = local.msgs.len();
            if n == 0 {
                continue;
            }
            // The clock is read for the first message and every 8th after it: a large
            // directory of slowly read files must not hold its records for long either.
            let since = *local.since.get_or_insert_with(Instant::now);
            if n >= self.flush_at || (n.is_multiple_of(8) && since.elapsed() >= self.hold) {
                self.post(&mut local.msgs, local.since.take());
            }
        }
        local.hashes = hashes;
        self.post(&mut local.msgs, local.since.take());
    }

    fn problem(&self, p: WalkProblem) {
        if p.subtree {
            let mut u = self.unknown.lock().unwrap_or_else(|e| e.into_inner());
            u.push(p.path.clone());
        }
        self.record_problem(&p.path, p.message);
    }

    fn dir_done(&self, local: &mut Local) {
        if local.files > 0 {
            self.files_per_root[local.root].fetch_add(local.files, Relaxed);
            self.known_per_root[local.root].fetch_add(local.known, Relaxed);
            self.unchanged.fetch_add(local.unchanged, Relaxed);
        }
        self.progress.dirs.fetch_add(1, Relaxed);
    }
}

fn under(path: &[u8], dir: &[u8]) -> bool {
    let dir = dir.strip_suffix(b"/").unwrap_or(dir);
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

/// Whether a file in directory `dir` (a path's part before its last `/`) lies [`under`] `root`.
fn dir_within(dir: &[u8], root: &[u8]) -> bool {
    let root = root.strip_suffix(b"/").unwrap_or(root);
    dir == root || (dir.starts_with(root) && dir.get(root.len()) == Some(&b'/'))
}

fn build_walk_options(cfg: &ScanConfig, roots: &[PathBuf]) -> Result<WalkOptions, ScanError> {
    let defaults = if cfg.default_excludes {
        DEFAULT_EXCLUDES
    } else {
        &[]
    };
    let user: Vec<String> = cfg
        .excludes
        .iter()
        .flat_map(|p| user_patterns(p, roots))
        .collect();
    let patterns: Vec<&str> = defaults
        .iter()
        .copied()
        .chain(user.iter().map(String::as_str))
        .collect();
    let excludes = Excludes::new(
        &patterns,
        |pat| {
            globset::GlobBuilder::new(pat)
                .literal_separator(true)
                .build()
                .map_err(|e| ScanError::Pattern {
                    pattern: pat.to_owned(),
                    message: e.kind().to_string(),
                })
        },
        |e| ScanError::Pattern {
            pattern: String::new(),
            message: e.to_string(),
        },
    )?;
    Ok(WalkOptions {
        follow_symlinks: cfg.follow_symlinks,
        hidden: cfg.hidden,
        excludes,
    })
}

/// An `--exclude` pattern as the walk matches it, as fd and gitignore read one: a `/` at its end
/// only says the name is a directory's (`keep/` is `keep`), and a pattern with a `/` that does
/// not start at the top of the file system (`lib/keep`, `./lib/keep`, `*/keep`) is relative to
/// each scanned root. (A pattern starting with `**` matches at any depth as it is.)
fn user_patterns(pat: &str, roots: &[PathBuf]) -> Vec<String> {
    let pat = match pat.strip_suffix('/') {
        Some(p) if !p.is_empty() && !p.ends_with('/') => p,
        _ => pat,
    };
    if pat.starts_with('/') {
        return absolute_patterns(pat);
    }
    if !pat.contains('/') || pat.starts_with("**") {
        return vec![pat.to_owned()];
    }
    let rel = pat.trim_start_matches("./");
    roots
        .iter()
        .filter_map(|r| r.to_str())
        .map(|r| format!("{}/{rel}", globset::escape(r.trim_end_matches('/'))))
        .collect()
}

/// An absolute pattern, and the same with the directories before its first wildcard made
/// canonical when that differs (`/link/keep` also as `/real/keep`): the walk builds paths from
/// canonical roots, so a pattern written through a symbolic link would otherwise match nothing.
fn absolute_patterns(pat: &str) -> Vec<String> {
    let mut out = vec![pat.to_owned()];
    let wild = pat
        .find(['*', '?', '[', ']', '{', '}', '\\'])
        .unwrap_or(pat.len());
    // The longest run of whole components before the first wildcard.
    let literal = match pat[..wild].rfind('/') {
        Some(_) if wild == pat.len() => pat,
        Some(end) => &pat[..end],
        None => return out,
    };
    if let Ok(real) = std::fs::canonicalize(literal)
        && let Some(real) = real.to_str()
        && real != literal
    {
        out.push(format!(
            "{}{}",
            globset::escape(real),
            &pat[literal.len()..]
        ));
    }
    out
}

/// Checks a root and returns its absolute, canonical form.
fn check_root(root: &Path) -> Result<PathBuf, ScanError> {
    let bad = |message: String| ScanError::Root {
        root: root.to_path_buf(),
        message,
    };
    let abs = std::fs::canonicalize(root).map_err(|e| bad(e.to_string()))?;
    let meta = std::fs::metadata(&abs).map_err(|e| bad(e.to_string()))?;
    if !meta.is_dir() {
        return Err(bad("not a directory".into()));
    }
    std::fs::read_dir(&abs).map_err(|e| bad(format!("cannot read it: {e}")))?;
    Ok(abs)
}

/// Scans `cfg.roots` into `db`. Commits as it goes; see the module doc for the guarantees.
pub fn scan(
    db: &mut Database,
    cfg: &ScanConfig,
    progress: &Progress,
) -> Result<ScanReport, ScanError> {
    let started = Instant::now();
    let mut roots = Vec::with_capacity(cfg.roots.len());
    for r in &cfg.roots {
        roots.push(check_root(r)?);
    }
    roots.sort();
    roots.dedup();
    // A root inside another one is walked as part of it; walking it again would visit, count
    // and extract its files twice. (Sorted, so an outer root comes before the roots inside it.)
    let mut outer: Vec<PathBuf> = Vec::with_capacity(roots.len());
    for r in roots {
        if !outer.iter().any(|o| r.starts_with(o)) {
            outer.push(r);
        }
    }
    let roots = outer;
    let root_bytes: Vec<Vec<u8>> = roots
        .iter()
        .map(|r| r.as_os_str().as_bytes().to_vec())
        .collect();
    let walk_opts = build_walk_options(cfg, &roots)?;
    let snap = db.snapshot();
    let words = snap.stats().next_id.div_ceil(64) as usize;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.threads.max(1))
        .thread_name(|i| format!("mediadb-scan-{i}"))
        .start_handler(|_| tags::init_thread())
        .build()
        .map_err(|e| ScanError::Root {
            root: PathBuf::new(),
            message: format!("cannot start threads: {e}"),
        })?;
    let (tx, rx) = sync_channel::<Vec<Msg>>(CHANNEL_BATCHES);
    let stop = AtomicBool::new(false);
    let visitor = ScanVisitor {
        snap: &snap,
        seen: (0..words).map(|_| AtomicU64::new(0)).collect(),
        known_per_root: roots.iter().map(|_| AtomicU64::new(0)).collect(),
        files_per_root: roots.iter().map(|_| AtomicU64::new(0)).collect(),
        unchanged: AtomicU64::new(0),
        force: cfg.force,
        dry_run: cfg.dry_run,
        tx,
        outbox: (0..cfg.threads.max(1)).map(|_| Mutex::default()).collect(),
        stop: &stop,
        progress,
        problems: Mutex::new(Vec::new()),
        unknown: Mutex::new(Vec::new()),
        flush_at: FLUSH_AT.min(cfg.batch_size.max(1)),
        hold: cfg.commit_every / 2,
        own: OwnFiles::of(db.path()),
    };
    let mut report = ScanReport {
        roots: roots.clone(),
        ..ScanReport::default()
    };
    let mut planned = Planned::default();
    let batch_size = cfg.batch_size.max(1);
    // Files whose record could not be stored.
    let mut unstored: Vec<FileError> = Vec::new();

    let writer_result: Result<(), ScanError> = std::thread::scope(|s| {
        let visitor = &visitor;
        let walk_opts = &walk_opts;
        let root_bytes = &root_bytes;
        let pool = &pool;
        let walker = s.spawn(move || {
            walk::walk(pool, root_bytes, walk_opts, visitor);
            visitor.flush_outboxes();
            // The visitor (and its sender) outlives this thread; say it is over.
            let _ = visitor.tx.send(vec![Msg::Done]);
        });
        let result = (|| {
            if cfg.dry_run {
                for msg in rx.iter().flatten() {
                    match msg {
                        Msg::Done => break,
                        Msg::Planned(path, true) => planned.add.push(path),
                        Msg::Planned(path, false) => planned.update.push(path),
                        Msg::Upsert(..) => {}
                    }
                }
                return Ok(());
            }
            let mut batch = db.batch()?;
            // When the batch's first record arrived: a batch this old is committed whatever
            // its size (`commit_every`), also when nothing more arrives.
            let mut since: Option<Instant> = None;
            let hold = cfg.commit_every / 2;
            'messages: loop {
                let msgs = match since {
                    Some(t) => match rx.recv_timeout(hold.saturating_sub(t.elapsed())) {
                        Ok(msgs) => msgs,
                        Err(RecvTimeoutError::Timeout) => Vec::new(),
                        Err(RecvTimeoutError::Disconnected) => break,
                    },
                    None => match rx.recv() {
                        Ok(msgs) => msgs,
                        Err(_) => break,
                    },
                };
                for msg in msgs {
                    match msg {
                        Msg::Done => break 'messages,
                        Msg::Planned(..) => {}
                        Msg::Upsert(rec, new_hash) => {
                            // The walk yields each path once, and the snapshot it diffs against
                            // is this writer's state before the scan: a path it found new is new.
                            let put = match new_hash {
                                Some(hash) => batch.insert_new(&rec, hash),
                                None => batch.upsert(&rec),
                            };
                            match put {
                                Ok(_) if new_hash.is_some() => report.added += 1,
                                Ok(_) => report.updated += 1,
                                // One file's record that cannot be stored (a path too long for
                                // the record limit) is that file's problem, not the scan's; the
                                // batch is as it was before the call.
                                Err(CommitError::BadRecord { what, .. }) => {
                                    progress.errors.fetch_add(1, Relaxed);
                                    unstored.push(FileError {
                                        path: rec.path.clone(),
                                        message: format!("not stored: its record {what}"),
                                    });
                                }
                                Err(e) => return Err(e.into()),
                            }
                            if batch.len() >= batch_size {
                                let info = batch.commit()?;
                                progress.committed.fetch_add(info.upserted, Relaxed);
                                batch = db.batch()?;
                                since = None;
                            } else if since.is_none() && !batch.is_empty() {
                                since = Some(Instant::now());
                            }
                        }
                    }
                }
                if since.is_some_and(|t| t.elapsed() >= hold) {
                    let info = batch.commit()?;
                    progress.committed.fetch_add(info.upserted, Relaxed);
                    batch = db.batch()?;
                    since = None;
                }
            }
            let info = batch.commit()?;
            progress.committed.fetch_add(info.upserted, Relaxed);
            Ok(())
        })();
        if result.is_err() {
            stop.store(true, Relaxed);
            drop(rx);
        }
        // The walker ends on its own once the channel is closed or the tree is done.
        let _ = walker.join();
        result
    });
    // Drop the sender inside the visitor before reading its state.
    let ScanVisitor {
        seen,
        known_per_root,
        files_per_root,
        unchanged,
        problems,
        unknown,
        tx,
        ..
    } = visitor;
    drop(tx);
    writer_result?;
    let visitor_seen = |id: u64| {
        seen.get((id / 64) as usize)
            .is_some_and(|w| w.load(Relaxed) & (1 << (id % 64)) != 0)
    };
    report.files = progress.files.load(Relaxed);
    report.files_per_root = files_per_root.iter().map(|n| n.load(Relaxed)).collect();
    report.unchanged = unchanged.load(Relaxed);
    report.problems = problems.into_inner().unwrap_or_else(|e| e.into_inner());
    report.problems.append(&mut unstored);
    report.errors = report.problems.len() as u64;
    let unknown = unknown.into_inner().unwrap_or_else(|e| e.into_inner());

    // Removals: records under a scanned root that the walk did not see, except under
    // directories whose contents are unknown.
    let mut gone: Vec<Vec<(u64, Vec<u8>)>> = roots.iter().map(|_| Vec::new()).collect();
    // A record the column cache covers is read only when its directory lies under a scanned
    // root: scanning one root of a large library does not read every other root's records.
    let cols = snap.columns();
    let dirs = cols.and_then(|c| c.column(Col::Dir));
    for (id, e) in snap.entries() {
        if visitor_seen(id) {
            continue;
        }
        if let (Some(c), Some(dirs)) = (cols, &dirs)
            && c.covers(id, &e)
        {
            let ord = dirs.one(id);
            if ord != ABSENT
                && !root_bytes
                    .iter()
                    .any(|root| dir_within(dirs.value(ord), root))
            {
                continue;
            }
        }
        let Some(rec) = snap.get_by_id(id)? else {
            continue;
        };
        let path = rec.path();
        let Some(r) = root_bytes.iter().position(|root| under(path, root)) else {
            continue;
        };
        if unknown
            .iter()
            .any(|u| under(path, u) || path == u.as_slice())
        {
            continue;
        }
        gone[r].push((id, path.to_vec()));
    }
    let mut refused = None;
    for (r, ids) in gone.iter_mut().enumerate() {
        let would = ids.len() as u64;
        let records = would + known_per_root[r].load(Relaxed);
        let mass =
            would > MASS_REMOVAL_MIN && (would as f64) > MASS_REMOVAL_FRACTION * records as f64;
        // The root looks empty (no file at all under it) while records under it would go. A
        // root whose files were all renamed does not look empty: only the threshold applies.
        let emptied = would > 0 && files_per_root[r].load(Relaxed) == 0;
        if (mass || emptied) && !cfg.allow_mass_removal {
            refused.get_or_insert((roots[r].clone(), would, records));
            ids.clear();
        }
    }
    if cfg.dry_run {
        planned.remove = gone.into_iter().flatten().map(|(_, p)| p).collect();
        report.added = planned.add.len() as u64;
        report.updated = planned.update.len() as u64;
        report.removed = planned.remove.len() as u64;
        report.planned = Some(planned);
    } else {
        for chunk in gone
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .chunks(batch_size)
        {
            let mut batch = db.batch()?;
            for (id, _) in chunk {
                if batch.remove_id(*id) {
                    report.removed += 1;
                }
            }
            batch.commit()?;
        }
    }
    report.seq = db.snapshot().seq();
    report.elapsed = started.elapsed();
    if let Some((root, would_remove, records)) = refused {
        return Err(ScanError::MassRemoval {
            root,
            would_remove,
            records,
            report: Box::new(report),
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans a tree of 20 directories of 10 files with `commit_every`, in batches far larger
    /// than the tree; returns the records and the commits made.
    fn scan_with(commit_every: Duration) -> (u64, u64) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lib");
        for d in 0..20 {
            let sub = root.join(format!("d{d:02}"));
            std::fs::create_dir_all(&sub).unwrap();
            for f in 0..10 {
                std::fs::write(sub.join(format!("{f}.txt")), [b'x'; 3]).unwrap();
            }
        }
        let mut db = Database::create(dir.path().join("t.mediadb")).unwrap();
        let cfg = ScanConfig {
            roots: vec![root],
            threads: 2,
            batch_size: 1_000_000,
            commit_every,
            ..ScanConfig::default()
        };
        let report = scan(&mut db, &cfg, &Progress::default()).unwrap();
        assert_eq!(report.added, 200);
        let snap = db.snapshot();
        (snap.len(), snap.seq())
    }

    #[test]
    fn a_database_inside_a_scanned_tree_does_not_index_itself() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        std::fs::create_dir(&lib).unwrap();
        std::fs::write(lib.join("a.flac"), b"").unwrap();
        std::fs::write(lib.join("library.mediadb.old"), b"a file of the user's").unwrap();
        // Reached through a path that is not the walk's: a `..` and a symbolic link.
        std::os::unix::fs::symlink(&lib, dir.path().join("link")).unwrap();
        let db_path = dir.path().join("link/../lib/library.mediadb");
        let mut db = Database::create(&db_path).unwrap();
        let cfg = ScanConfig {
            roots: vec![lib.clone()],
            ..ScanConfig::default()
        };
        for round in 0..3 {
            let report = scan(&mut db, &cfg, &Progress::default()).unwrap();
            assert_eq!(report.files, 2, "round {round}");
            assert_eq!(
                report.added,
                if round == 0 { 2 } else { 0 },
                "round {round}"
            );
            assert_eq!(report.updated, 0, "round {round}");
            // Checkpoints and the column cache are written beside it as it goes.
            db.checkpoint().unwrap();
        }
        assert_eq!(db.snapshot().seq(), 1, "unchanged rescans commit nothing");
        let names: Vec<Vec<u8>> = db
            .snapshot()
            .iter()
            .map(|r| r.unwrap().path().to_vec())
            .collect();
        assert_eq!(names.len(), 2);
        assert!(names.iter().all(|p| !p.ends_with(b"library.mediadb")));
    }

    #[test]
    fn a_database_reached_through_a_followed_link_does_not_index_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (lib, real) = (dir.path().join("lib"), dir.path().join("real"));
        std::fs::create_dir(&lib).unwrap();
        std::fs::create_dir(&real).unwrap();
        std::fs::write(lib.join("a.flac"), b"").unwrap();
        std::os::unix::fs::symlink(&real, lib.join("link")).unwrap();
        let mut db = Database::create(real.join("library.mediadb")).unwrap();
        db.checkpoint().unwrap();
        let cfg = ScanConfig {
            roots: vec![lib],
            follow_symlinks: true,
            ..ScanConfig::default()
        };
        for round in 0..2 {
            let report = scan(&mut db, &cfg, &Progress::default()).unwrap();
            assert_eq!((report.files, report.updated), (1, 0), "round {round}");
        }
        assert_eq!(db.snapshot().len(), 1);
    }

    #[test]
    fn records_wait_no_longer_than_commit_every_for_a_full_batch() {
        // Never old enough: one commit at the end, as the batch never fills.
        assert_eq!(scan_with(Duration::MAX), (200, 1));
        // Always old enough: each directory's records are sent on their own (20 or more
        // messages), and every message is committed on its own.
        let (records, commits) = scan_with(Duration::ZERO);
        assert_eq!(records, 200);
        assert!(commits >= 20, "{commits} commit(s)");
    }

    #[test]
    fn a_files_directory_is_within_a_root_exactly_when_the_file_is_under_it() {
        let paths: [&[u8]; 8] = [
            b"/a",
            b"/a/b",
            b"/a/b/c.mp3",
            b"/ab/c",
            b"/a/bc/d",
            b"/x/a/b",
            b"/a//b",
            b"/\xff/\xfe.flac",
        ];
        let roots: [&[u8]; 6] = [b"/", b"/a", b"/a/", b"/a/b", b"/ab", b"/\xff"];
        for path in paths {
            let dir = crate::record::split_path(path).0;
            for root in roots {
                assert_eq!(
                    dir_within(dir, root),
                    under(path, root),
                    "{:?} in {:?}",
                    String::from_utf8_lossy(path),
                    String::from_utf8_lossy(root)
                );
            }
        }
    }
}
