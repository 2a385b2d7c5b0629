//! A test environment for integration tests that drive the real `mediadb` binary, in the style
//! of ripgrep's `tests/util.rs` and fd's `tests/testenv`: a temporary directory holding a media
//! tree (`lib/`) and a database (`db/library.mediadb`), helpers to shape the tree (files of given
//! bytes or sizes, directories, symlinks, FIFOs, names that are not UTF-8), a runner that never
//! hangs a test, and readers of the database's content with readable diffs on mismatch.
//!
//! Every test binary that says `mod util;` compiles this module, and not every binary uses
//! every helper.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use mediadb::{Database, Record};
use serde_json::Value as Json;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_mediadb");

/// How long one run of the binary may take before the test fails as hung. Generous: a debug
/// build on a busy two-core machine; a hang is what this catches, not slowness.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The uid and gid used to run the binary without root's powers (`nobody` on Debian).
pub const NOBODY: u32 = 65534;

/// `fixtures/library` of this crate.
pub fn fixtures_library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/library")
}

/// A path as text for messages: as is when it is UTF-8, else with its bytes escaped.
pub fn show(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.escape_ascii().to_string(),
    }
}

/// The outcome of one run of the binary.
#[derive(Debug)]
pub struct Run {
    /// The arguments (for messages).
    pub args: Vec<OsString>,
    /// The exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    /// Raw stdout.
    pub stdout: Vec<u8>,
    /// stderr, lossily decoded.
    pub stderr: String,
    /// stdout parsed as JSON, when it is exactly one JSON value (whitespace around it allowed).
    pub json: Option<Json>,
}

/// The counts of a scan summary (`--json`), for comparing in one assertion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Regular files seen.
    pub files: u64,
    /// New records.
    pub added: u64,
    /// Changed files re-read.
    pub updated: u64,
    /// Records removed.
    pub removed: u64,
    /// Files unchanged.
    pub unchanged: u64,
    /// Problems.
    pub errors: u64,
}

impl Run {
    /// stdout, lossily decoded.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// What the run was and printed, for assertion messages.
    pub fn describe(&self) -> String {
        let args: Vec<_> = self.args.iter().map(|a| show(a.as_bytes())).collect();
        format!(
            "`mediadb {}` exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            args.join(" "),
            self.code,
            self.stdout_text(),
            self.stderr
        )
    }

    /// Panics (showing the run) unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}\n{}",
            self.describe()
        );
        self
    }

    /// The parsed JSON summary; panics (showing the run) when stdout is not one JSON value.
    #[track_caller]
    pub fn json(&self) -> &Json {
        match &self.json {
            Some(j) => j,
            None => panic!("stdout is not one JSON value\n{}", self.describe()),
        }
    }

    /// The summary's counts.
    #[track_caller]
    pub fn counts(&self) -> Counts {
        let j = self.json();
        let n = |k: &str| {
            j[k].as_u64().unwrap_or_else(|| {
                panic!("summary field {k:?} is not a count\n{}", self.describe())
            })
        };
        Counts {
            files: n("files"),
            added: n("added"),
            updated: n("updated"),
            removed: n("removed"),
            unchanged: n("unchanged"),
            errors: n("errors"),
        }
    }

    /// Panics (showing the run) unless the summary's counts are `expected`.
    #[track_caller]
    pub fn expect_counts(&self, expected: Counts) -> &Run {
        let got = self.counts();
        assert_eq!(got, expected, "summary counts differ\n{}", self.describe());
        self
    }

    /// The exact path bytes of a `{"path", "path_b64"?}` JSON object.
    #[track_caller]
    pub fn path_of(v: &Json) -> Vec<u8> {
        use base64::Engine;
        match v.get("path_b64").and_then(Json::as_str) {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("path_b64 is base64"),
            None => v["path"]
                .as_str()
                .unwrap_or_else(|| panic!("no path in {v}"))
                .as_bytes()
                .to_vec(),
        }
    }

    /// The exact paths of the summary's `problems`, sorted.
    #[track_caller]
    pub fn problem_paths(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<_> = self.json()["problems"]
            .as_array()
            .unwrap_or_else(|| panic!("no problems array\n{}", self.describe()))
            .iter()
            .map(Run::path_of)
            .collect();
        out.sort();
        out
    }

    /// The problem messages for `path`.
    #[track_caller]
    pub fn problem_messages(&self, path: &[u8]) -> Vec<String> {
        self.json()["problems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| Run::path_of(p) == path)
            .map(|p| p["error"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The exact paths of a dry run's `planned.<what>` (`add`, `update`, `remove`), sorted.
    #[track_caller]
    pub fn planned(&self, what: &str) -> Vec<Vec<u8>> {
        let mut out: Vec<_> = self.json()["planned"][what]
            .as_array()
            .unwrap_or_else(|| panic!("no planned.{what}\n{}", self.describe()))
            .iter()
            .map(Run::path_of)
            .collect();
        out.sort();
        out
    }
}

/// A running binary (see [`TestEnv::spawn`]).
pub struct Running {
    child: Child,
    args: Vec<OsString>,
}

impl Running {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has ended.
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Sends SIGKILL (a no-op when it already ended) and reaps the process.
    pub fn kill9(mut self) -> Option<i32> {
        let _ = self.child.kill();
        self.child.wait().expect("wait").code()
    }

    /// Waits for the end (failing the test after [`TIMEOUT`]) and collects the output.
    #[track_caller]
    pub fn finish(self) -> Run {
        finish(self.child, self.args)
    }
}

#[track_caller]
fn finish(mut child: Child, args: Vec<OsString>) -> Run {
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let shown: Vec<_> = args.iter().map(|a| show(a.as_bytes())).collect();
            panic!(
                "`mediadb {}` did not finish within {TIMEOUT:?}: it hangs (killed)",
                shown.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = String::from_utf8_lossy(&err.join().expect("stderr reader")).into_owned();
    let json = std::str::from_utf8(&stdout)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| serde_json::from_str(s).ok());
    Run {
        args,
        code: status.code(),
        stdout,
        stderr,
        json,
    }
}

/// A temporary directory with a media tree and a database path, removed when dropped.
pub struct TestEnv {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    db: PathBuf,
    as_user: Option<u32>,
}

impl Default for TestEnv {
    fn default() -> TestEnv {
        TestEnv::new()
    }
}

impl TestEnv {
    /// An empty tree `BASE/lib` and the database path `BASE/db/library.mediadb` (its directory
    /// made, the file not: a `--db` in a missing directory is refused).
    pub fn new() -> TestEnv {
        let tmp = tempfile::Builder::new()
            .prefix("mediadb-scan-")
            .tempdir()
            .expect("temp dir");
        // Canonical, so it equals the absolute roots the scan stores.
        let base = fs::canonicalize(tmp.path()).expect("canonical temp dir");
        let root = base.join("lib");
        fs::create_dir(&root).expect("create lib/");
        fs::create_dir(base.join("db")).expect("create db/");
        let db = base.join("db").join("library.mediadb");
        TestEnv {
            _tmp: tmp,
            base,
            root,
            db,
            as_user: None,
        }
    }

    /// The temporary directory holding everything.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The media tree's root (absolute, canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The database path.
    pub fn db(&self) -> &Path {
        &self.db
    }

    /// Uses another database file, `BASE/db/NAME`, from now on.
    pub fn use_db(&mut self, name: &str) {
        self.db = self.base.join("db").join(name);
    }

    /// The absolute path of `rel` (bytes, so names need not be UTF-8) under the root.
    pub fn path(&self, rel: impl AsRef<[u8]>) -> PathBuf {
        self.root.join(OsStr::from_bytes(rel.as_ref()))
    }

    /// The absolute path of `rel` under the root, as the bytes the database stores.
    pub fn abs(&self, rel: impl AsRef<[u8]>) -> Vec<u8> {
        self.path(rel).into_os_string().into_vec()
    }

    /// Creates (or overwrites) file `rel` with `contents`, creating its parent directories.
    pub fn file(&self, rel: impl AsRef<[u8]>, contents: &[u8]) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("create parent dirs");
        }
        fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// Creates file `rel` of `size` bytes (a repeating pattern).
    pub fn file_of_size(&self, rel: impl AsRef<[u8]>, size: usize) -> PathBuf {
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        self.file(rel, &data)
    }

    /// Creates directory `rel` (and its parents).
    pub fn dir(&self, rel: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        p
    }

    /// Creates a symbolic link `rel` pointing to `target` (taken literally, may be relative).
    pub fn symlink(&self, target: impl AsRef<[u8]>, rel: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("create parent dirs");
        }
        std::os::unix::fs::symlink(OsStr::from_bytes(target.as_ref()), &p)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", p.display()));
        p
    }

    /// Creates a FIFO (named pipe) `rel`.
    pub fn fifo(&self, rel: impl AsRef<[u8]>) -> PathBuf {
        use rustix::fs::{CWD, FileType, Mode};
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("create parent dirs");
        }
        rustix::fs::mknodat(CWD, &p, FileType::Fifo, Mode::from_raw_mode(0o644), 0)
            .unwrap_or_else(|e| panic!("mkfifo {}: {e}", p.display()));
        p
    }

    /// Removes file (or symlink) `rel`.
    pub fn remove(&self, rel: impl AsRef<[u8]>) {
        let p = self.path(rel);
        fs::remove_file(&p).unwrap_or_else(|e| panic!("rm {}: {e}", p.display()));
    }

    /// Renames `from` to `to` (both under the root).
    pub fn rename(&self, from: impl AsRef<[u8]>, to: impl AsRef<[u8]>) {
        let (a, b) = (self.path(from), self.path(to));
        fs::rename(&a, &b).unwrap_or_else(|e| panic!("mv {} {}: {e}", a.display(), b.display()));
    }

    /// Appends `more` to file `rel` (changing its size, keeping its inode).
    pub fn append(&self, rel: impl AsRef<[u8]>, more: &[u8]) {
        use std::io::Write;
        let p = self.path(rel);
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
        f.write_all(more).expect("append");
    }

    /// Sets the modification time of file `rel`.
    pub fn set_mtime(&self, rel: impl AsRef<[u8]>, t: SystemTime) {
        let p = self.path(rel);
        fs::File::options()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_modified(t))
            .unwrap_or_else(|e| panic!("set mtime of {}: {e}", p.display()));
    }

    /// The modification time of `rel` in ns since the epoch, as the scan records it.
    pub fn mtime_ns(&self, rel: impl AsRef<[u8]>) -> i64 {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(self.path(rel)).expect("stat");
        m.mtime() * 1_000_000_000 + m.mtime_nsec()
    }

    /// Copies the tree at `from` (files, directories) to `rel` under the root.
    pub fn copy_tree(&self, from: &Path, rel: impl AsRef<[u8]>) {
        fn copy(from: &Path, to: &Path) {
            fs::create_dir_all(to).expect("mkdir");
            for e in fs::read_dir(from).expect("read fixture dir") {
                let e = e.expect("dir entry");
                let ty = e.file_type().expect("file type");
                let dest = to.join(e.file_name());
                if ty.is_dir() {
                    copy(&e.path(), &dest);
                } else if ty.is_file() {
                    fs::copy(e.path(), &dest).expect("copy file");
                }
            }
        }
        copy(from, &self.path(rel));
    }

    /// From now on, runs the binary as `nobody` and hands the whole temporary directory to it,
    /// so that permission bits bind it even when the tests run as root. Returns false (and
    /// changes nothing) when that is impossible here.
    pub fn run_unprivileged(&mut self) -> bool {
        fn chown_all(p: &Path, id: u32) -> std::io::Result<()> {
            std::os::unix::fs::lchown(p, Some(id), Some(id))?;
            if fs::symlink_metadata(p)?.is_dir() {
                for e in fs::read_dir(p)? {
                    chown_all(&e?.path(), id)?;
                }
            }
            Ok(())
        }
        if chown_all(&self.base, NOBODY).is_err() {
            return false;
        }
        // Can a process as that user run at all (setuid may be forbidden in this sandbox)?
        let ok = Command::new(BIN)
            .arg("--version")
            .uid(NOBODY)
            .gid(NOBODY)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            self.as_user = Some(NOBODY);
        }
        ok
    }

    /// Whether this process ignores permission bits (root): tested, not assumed.
    pub fn permissions_ignored(&self) -> bool {
        use std::os::unix::fs::PermissionsExt;
        let probe = self.base.join("perm-probe");
        fs::create_dir(&probe).expect("mkdir probe");
        fs::set_permissions(&probe, fs::Permissions::from_mode(0o000)).expect("chmod probe");
        let ignored = fs::read_dir(&probe).is_ok();
        fs::set_permissions(&probe, fs::Permissions::from_mode(0o755)).expect("chmod probe");
        fs::remove_dir(&probe).expect("rmdir probe");
        ignored
    }

    /// A `mediadb --db DB ARGS...` command, not started.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> (Command, Vec<OsString>) {
        let mut all: Vec<OsString> = vec!["--db".into(), self.db.clone().into_os_string()];
        all.extend(args.iter().map(|a| a.as_ref().to_owned()));
        let mut cmd = Command::new(BIN);
        cmd.args(&all)
            .env_remove("MEDIADB_DB")
            .env("XDG_DATA_HOME", self.base.join("xdg"))
            .current_dir(&self.base)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(id) = self.as_user {
            cmd.uid(id).gid(id);
        }
        (cmd, all)
    }

    /// Starts `mediadb --db DB ARGS...` and returns at once.
    pub fn spawn<S: AsRef<OsStr>>(&self, args: &[S]) -> Running {
        let (mut cmd, args) = self.command(args);
        let child = cmd.spawn().expect("start mediadb");
        Running { child, args }
    }

    /// Runs `mediadb --db DB ARGS...` to its end (failing the test if it hangs).
    #[track_caller]
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        let (mut cmd, args) = self.command(args);
        let child = cmd.spawn().expect("start mediadb");
        finish(child, args)
    }

    /// Runs `mediadb --db DB scan ROOT --json EXTRA...`.
    #[track_caller]
    pub fn scan(&self, extra: &[&str]) -> Run {
        let mut args: Vec<OsString> = vec!["scan".into(), self.root.clone().into_os_string()];
        args.push("--json".into());
        args.extend(extra.iter().map(OsString::from));
        self.run(&args)
    }

    /// The database file's bytes.
    pub fn db_bytes(&self) -> Vec<u8> {
        fs::read(&self.db).unwrap_or_else(|e| panic!("read {}: {e}", self.db.display()))
    }

    /// Opens the database read-only (no lock).
    #[track_caller]
    pub fn open(&self) -> Database {
        Database::open_read_only(&self.db)
            .unwrap_or_else(|e| panic!("open {} read-only: {e}", self.db.display()))
    }

    /// Every record, in id order.
    #[track_caller]
    pub fn records(&self) -> Vec<Record> {
        let db = self.open();
        let snap = db.snapshot();
        let recs: Vec<Record> = snap
            .iter()
            .map(|r| r.expect("a readable record").to_record())
            .collect();
        assert_eq!(recs.len() as u64, snap.len(), "iter() yields len() records");
        recs
    }

    /// The record of `rel` under the root; panics when there is none.
    #[track_caller]
    pub fn record(&self, rel: impl AsRef<[u8]>) -> Record {
        let path = self.abs(rel);
        let db = self.open();
        let snap = db.snapshot();
        snap.get(&path)
            .expect("readable")
            .unwrap_or_else(|| panic!("no record for {}", show(&path)))
            .to_record()
    }

    /// The sequence number of the last commit.
    pub fn seq(&self) -> u64 {
        self.open().snapshot().seq()
    }

    /// The database's content as (path, size, id), sorted by path.
    #[track_caller]
    pub fn db_state(&self) -> Vec<(Vec<u8>, u64, u64)> {
        let mut v: Vec<_> = self
            .records()
            .into_iter()
            .map(|r| (r.path, r.size, r.id))
            .collect();
        v.sort();
        v
    }

    /// Asserts that the database holds exactly `expected`: (path relative to the root, size).
    #[track_caller]
    pub fn assert_db(&self, expected: &[(&[u8], u64)]) {
        let mut expected: Vec<(Vec<u8>, u64)> =
            expected.iter().map(|(p, s)| (self.abs(p), *s)).collect();
        expected.sort();
        let actual: Vec<(Vec<u8>, u64)> = self
            .db_state()
            .into_iter()
            .map(|(p, s, _)| (p, s))
            .collect();
        if let Some(diff) = diff_files(&self.root, &expected, &actual) {
            panic!("the database does not hold what the test expects\n{diff}");
        }
    }

    /// Asserts that the database holds exactly the regular files now under the root (every
    /// one, with its size), skipping nothing: for trees without hidden, excluded or special
    /// entries.
    #[track_caller]
    pub fn assert_db_matches_disk(&self) {
        let mut on_disk = Vec::new();
        walk_files(&self.root, &mut on_disk);
        on_disk.sort();
        let actual: Vec<(Vec<u8>, u64)> = self
            .db_state()
            .into_iter()
            .map(|(p, s, _)| (p, s))
            .collect();
        if let Some(diff) = diff_files(&self.root, &on_disk, &actual) {
            panic!("the database does not hold what is on disk\n{diff}");
        }
    }
}

fn walk_files(dir: &Path, out: &mut Vec<(Vec<u8>, u64)>) {
    for e in fs::read_dir(dir).expect("read dir") {
        let e = e.expect("entry");
        let ty = e.file_type().expect("type");
        if ty.is_dir() {
            walk_files(&e.path(), out);
        } else if ty.is_file() {
            let size = e.metadata().expect("stat").len();
            out.push((e.path().into_os_string().into_vec(), size));
        }
    }
}

/// A readable difference between two sets of (path, size), or `None` when they are equal.
/// Paths are shown relative to `root` when under it.
pub fn diff_files(
    root: &Path,
    expected: &[(Vec<u8>, u64)],
    actual: &[(Vec<u8>, u64)],
) -> Option<String> {
    let rel = |p: &[u8]| {
        let r = root.as_os_str().as_bytes();
        match p.strip_prefix(r).and_then(|s| s.strip_prefix(b"/")) {
            Some(s) => show(s),
            None => show(p),
        }
    };
    let mut exp: BTreeMap<&[u8], Vec<u64>> = BTreeMap::new();
    for (p, s) in expected {
        exp.entry(p).or_default().push(*s);
    }
    let mut act: BTreeMap<&[u8], Vec<u64>> = BTreeMap::new();
    for (p, s) in actual {
        act.entry(p).or_default().push(*s);
    }
    let mut lines = String::new();
    for (p, sizes) in &exp {
        match act.get(p) {
            None => writeln!(lines, "  missing     {}  ({} bytes)", rel(p), sizes[0]).unwrap(),
            Some(got) if got != sizes => writeln!(
                lines,
                "  differs     {}  expected size {:?}, found {:?}",
                rel(p),
                sizes,
                got
            )
            .unwrap(),
            Some(_) => {}
        }
    }
    for (p, sizes) in &act {
        if !exp.contains_key(p) {
            writeln!(lines, "  unexpected  {}  ({} bytes)", rel(p), sizes[0]).unwrap();
        }
        if sizes.len() > 1 {
            writeln!(lines, "  duplicated  {}  ({} records)", rel(p), sizes.len()).unwrap();
        }
    }
    if lines.is_empty() {
        return None;
    }
    let list = |v: &[(Vec<u8>, u64)]| {
        let mut s = String::new();
        for (p, size) in v.iter().take(40) {
            writeln!(s, "    {}  ({size})", rel(p)).unwrap();
        }
        if v.len() > 40 {
            writeln!(s, "    ... and {} more", v.len() - 40).unwrap();
        }
        s
    };
    Some(format!(
        "(relative to {}; expected {} entries, found {})\n{lines}expected:\n{}found:\n{}",
        root.display(),
        expected.len(),
        actual.len(),
        list(expected),
        list(actual)
    ))
}
