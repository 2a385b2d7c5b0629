//! Opening bad input, locking between writers and readers, and the index checkpoint as a cache
//! that is only used when it fits. Every refusal must be the typed error, with a message that
//! names the file, and never a panic.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mediadb::store::format::{FORMAT_VERSION, IdxHeader, LOG_START, SLOT_BLOCK, SLOT_LEN};
use mediadb::store::map::Mapping;
use mediadb::store::{MemStorage, Storage};
use mediadb::{CommitError, Database, Kind, OpenError, OpenOptions, Record};

// ---------------------------------------------------------------------------------------------
// Helpers

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn idx_path(db: &Path) -> PathBuf {
    sibling(db, ".idx")
}

/// Every live record, in id order; each is also looked up by its path, so a wrong hash table
/// (say, from a checkpoint that does not belong) shows.
fn state(db: &Database) -> Vec<Record> {
    let s = db.snapshot();
    let all: Vec<Record> = s
        .iter()
        .map(|r| r.expect("record reads").to_record())
        .collect();
    for r in &all {
        let got = s.get(&r.path).expect("reads").map(|v| v.to_record());
        assert_eq!(
            got.as_ref(),
            Some(r),
            "get({:?})",
            String::from_utf8_lossy(&r.path)
        );
    }
    all
}

/// Asserts the error's message names `path`.
fn names(e: &OpenError, path: &Path) {
    let msg = e.to_string();
    let shown = path.display().to_string();
    assert!(
        msg.contains(&shown),
        "message {msg:?} does not name {shown}"
    );
}

fn rec(path: &str, n: u64) -> Record {
    Record {
        size: n,
        mtime_ns: n as i64 * 1000,
        kind: Kind::Audio,
        title: Some(format!("title {n}")),
        artists: vec![format!("artist {}", n % 3)],
        ..Record::new(path.as_bytes().to_vec())
    }
}

/// Commits `rounds` batches (upserts, updates and removals) to `db`; returns the state and the
/// committed length after each commit, the state before any at index 0.
fn fill(db: &mut Database, tag: &str, rounds: u64) -> Vec<(u64, Vec<Record>)> {
    let mut out = vec![(db.snapshot().stats().committed_bytes, state(db))];
    for r in 0..rounds {
        let mut b = db.batch().expect("batch");
        for k in 0..3 {
            b.upsert(&rec(&format!("/{tag}/{}/{k}.flac", r % 2), r * 10 + k))
                .expect("upsert");
        }
        if r % 3 == 2 {
            b.remove(format!("/{tag}/0/0.flac").as_bytes())
                .expect("remove");
        }
        b.commit().expect("commit");
        out.push((db.snapshot().stats().committed_bytes, state(db)));
    }
    out
}

/// A database at `dir/name` with `rounds` commits, closed (so its checkpoint is written).
fn make_db(dir: &Path, name: &str, rounds: u64) -> (PathBuf, Vec<(u64, Vec<Record>)>) {
    let path = dir.join(name);
    let mut db = Database::create(&path).expect("create");
    let states = fill(&mut db, name, rounds);
    drop(db);
    assert!(
        idx_path(&path).exists(),
        "a closed writer leaves a checkpoint"
    );
    (path, states)
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

fn read_only() -> OpenOptions {
    OpenOptions {
        read_only: true,
        ..OpenOptions::default()
    }
}

/// Opens `bytes` as a database every way there is: writer and reader on a file, writable and
/// read-only storage. Returns the results (file writer, file reader, mem writable, mem reader).
fn open_all_ways(dir: &Path, bytes: &[u8]) -> Vec<(PathBuf, Result<Database, OpenError>)> {
    let path = dir.join("input.mediadb");
    let _ = fs::remove_file(idx_path(&path));
    fs::write(&path, bytes).expect("write");
    let storage = PathBuf::from("<storage>");
    vec![
        (path.clone(), Database::open(&path)),
        (path.clone(), Database::open_read_only(&path)),
        (
            storage.clone(),
            Database::with_storage(Arc::new(MemStorage::from_bytes(bytes.to_vec())), true),
        ),
        (
            storage,
            Database::with_storage(Arc::new(MemStorage::from_bytes(bytes.to_vec())), false),
        ),
    ]
}

/// Overwrites the `format_version` (and optionally `flags`) of the header slot at `off` and
/// recomputes its crc, per docs/FORMAT.md §1.1.
fn patch_slot(bytes: &mut [u8], off: usize, version: u32, flags: u32) {
    let slot = &mut bytes[off..off + SLOT_LEN];
    assert_eq!(&slot[..8], b"MEDIADB\0");
    slot[8..12].copy_from_slice(&version.to_le_bytes());
    slot[12..16].copy_from_slice(&flags.to_le_bytes());
    let crc = crc32c::crc32c(&slot[..124]);
    slot[124..128].copy_from_slice(&crc.to_le_bytes());
}

fn slot_generation(bytes: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(bytes[off + 16..off + 24].try_into().expect("8 bytes"))
}

/// Offsets of the (active, inactive) header slots: the active one has the higher generation.
fn slots_by_generation(bytes: &[u8]) -> (usize, usize) {
    let (a, b) = (0, SLOT_BLOCK as usize);
    if slot_generation(bytes, a) > slot_generation(bytes, b) {
        (a, b)
    } else {
        (b, a)
    }
}

// ---------------------------------------------------------------------------------------------
// Missing, empty and foreign files

#[test]
fn missing_file_is_not_found_every_way() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing.mediadb");
    let in_missing_dir = dir.path().join("no-such-dir").join("lib.mediadb");
    for p in [&path, &in_missing_dir] {
        for r in [
            Database::open(p),
            Database::open_read_only(p),
            Database::open_with(p, &read_only()),
            Database::open_with(
                p,
                &OpenOptions {
                    read_only: true,
                    create: true,
                    ..OpenOptions::default()
                },
            ),
        ] {
            let e = r.expect_err("nothing to open");
            assert!(matches!(e, OpenError::NotFound { .. }), "{p:?}: {e:?}");
            names(&e, p);
        }
        assert!(!p.exists());
    }
    // Failing to open a missing database leaves nothing behind.
    let left: Vec<_> = fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "stray files: {left:?}");
}

#[test]
fn open_with_create_creates_a_missing_database_and_opens_an_existing_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lib.mediadb");
    let opts = OpenOptions {
        create: true,
        ..OpenOptions::default()
    };
    let mut db = Database::open_with(&path, &opts).expect("creates");
    assert!(db.is_writable());
    let states = fill(&mut db, "c", 2);
    drop(db);
    let db = Database::open_with(&path, &opts).expect("opens");
    assert_eq!(state(&db), states[2].1);
}

#[test]
fn empty_text_and_random_files_are_refused_without_panicking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut inputs: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        (
            "text".into(),
            b"#EXTM3U\n/music/a.flac\n/music/b.flac\n".repeat(300),
        ),
        ("zeros".into(), vec![0u8; 3 * SLOT_BLOCK as usize]),
    ];
    for (i, len) in [1usize, 100, 8 << 10, 1 << 20].into_iter().enumerate() {
        inputs.push((format!("random {len}"), noise(len, i as u64 + 7)));
        // The same with the header magic planted in both slots: a damaged database.
        let mut planted = noise(len.max(2 * SLOT_BLOCK as usize), i as u64 + 99);
        planted[..8].copy_from_slice(b"MEDIADB\0");
        planted[SLOT_BLOCK as usize..SLOT_BLOCK as usize + 8].copy_from_slice(b"MEDIADB\0");
        inputs.push((format!("random {len} with magic"), planted));
    }
    for (what, bytes) in &inputs {
        for (i, (shown, r)) in open_all_ways(dir.path(), bytes).into_iter().enumerate() {
            if bytes.is_empty() && i == 2 {
                // Documented: an empty writable storage is initialised as a new database.
                assert_eq!(r.expect("initialised").snapshot().seq(), 0);
                continue;
            }
            let e = r.expect_err(what);
            let planted = bytes.len() >= 8 && &bytes[..8] == b"MEDIADB\0";
            if planted {
                assert!(matches!(e, OpenError::Corrupt { .. }), "{what}: {e:?}");
            } else {
                assert!(matches!(e, OpenError::NotADatabase { .. }), "{what}: {e:?}");
            }
            names(&e, &shown);
        }
        // A refused file is left exactly as it was.
        assert_eq!(
            &fs::read(dir.path().join("input.mediadb")).expect("read"),
            bytes,
            "{what}"
        );
    }
}

#[test]
fn a_directory_is_not_a_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("adir.mediadb");
    fs::create_dir(&path).expect("mkdir");
    for r in [Database::open(&path), Database::open_read_only(&path)] {
        let e = r.expect_err("a directory");
        assert!(
            matches!(e, OpenError::Io { .. } | OpenError::NotADatabase { .. }),
            "{e:?}"
        );
        names(&e, &path);
    }
    let e = Database::create(&path).expect_err("exists");
    assert!(matches!(e, OpenError::Exists { .. }), "{e:?}");
}

// ---------------------------------------------------------------------------------------------
// Header versions and flags

#[test]
fn newer_format_version_is_refused_and_never_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, states) = make_db(dir.path(), "v.mediadb", 3);
    let good = fs::read(&path).expect("read");
    let (active, inactive) = slots_by_generation(&good);
    let cases: [(&str, &[usize]); 3] = [
        ("both slots", &[active, inactive]),
        ("the newest slot", &[active]),
        ("the older slot", &[inactive]),
    ];
    for (what, slots) in cases {
        let mut bytes = good.clone();
        for &off in slots {
            patch_slot(&mut bytes, off, FORMAT_VERSION + 1, 0);
        }
        for (shown, r) in open_all_ways(dir.path(), &bytes) {
            let e = r.expect_err(what);
            assert!(
                matches!(
                    e,
                    OpenError::NewerVersion {
                        found,
                        supported: FORMAT_VERSION,
                        ..
                    } if found == FORMAT_VERSION + 1
                ),
                "{what}: {e:?}"
            );
            names(&e, &shown);
            assert!(e.to_string().contains("upgrade"), "{e}");
        }
        assert_eq!(
            fs::read(dir.path().join("input.mediadb")).expect("read"),
            bytes,
            "{what}: a newer file is never written"
        );
    }
    // The untouched file still opens.
    let db = Database::open_read_only(&path).expect("opens");
    assert_eq!(state(&db), states[3].1);
}

#[test]
fn version_1_files_still_open() {
    // Format version 2 only added playlists and record tags; a version-1 file is read as is.
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, states) = make_db(dir.path(), "v1.mediadb", 2);
    let mut bytes = fs::read(dir.path().join("v1.mediadb")).expect("read");
    let (active, inactive) = slots_by_generation(&bytes);
    patch_slot(&mut bytes, active, 1, 0);
    patch_slot(&mut bytes, inactive, 1, 0);
    for (_, r) in open_all_ways(dir.path(), &bytes) {
        assert_eq!(state(&r.expect("a version-1 file opens")), states[2].1);
    }
}

#[test]
fn unknown_older_version_or_flags_with_valid_crc_are_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, states) = make_db(dir.path(), "f.mediadb", 2);
    let good = fs::read(&path).expect("read");
    let (active, inactive) = slots_by_generation(&good);
    for (version, flags) in [(0u32, 0u32), (1, 1), (1, 0x8000_0000)] {
        // Both slots bad: refused.
        let mut bytes = good.clone();
        patch_slot(&mut bytes, active, version, flags);
        patch_slot(&mut bytes, inactive, version, flags);
        for (shown, r) in open_all_ways(dir.path(), &bytes) {
            let e = r.expect_err("no usable slot");
            assert!(matches!(e, OpenError::Corrupt { .. }), "{e:?}");
            names(&e, &shown);
        }
        // Only the active slot bad: the other slot, one commit older, is used.
        let mut bytes = good.clone();
        patch_slot(&mut bytes, active, version, flags);
        fs::write(dir.path().join("older.mediadb"), &bytes).expect("write");
        let db = Database::open_read_only(dir.path().join("older.mediadb")).expect("opens");
        assert_eq!(state(&db), states[1].1);
    }
}

// ---------------------------------------------------------------------------------------------
// Truncation

/// What opening `bytes[..t]` must give: the state of the newest commit whose header slot
/// survives, else a typed error.
/// With `idx`, the file-backed copy also gets the full database's checkpoint beside it.
fn check_truncation(bytes: &[u8], states: &[(u64, Vec<Record>)], dir: &Path, idx: Option<&[u8]>) {
    let n = states.len() - 1;
    let p = dir.join("cut.mediadb");
    if let Some(idx) = idx {
        fs::write(idx_path(&p), idx).expect("write idx");
    }
    for t in 0..=bytes.len() {
        let cut = &bytes[..t];
        let want = [n, n.saturating_sub(1)]
            .into_iter()
            .find(|&k| states[k].0 <= t as u64);
        let mut results = vec![(
            PathBuf::from("<storage>"),
            Database::with_storage(Arc::new(MemStorage::from_bytes(cut.to_vec())), false),
        )];
        fs::write(&p, cut).expect("write");
        results.push((p.clone(), Database::open_read_only(&p)));
        for (shown, r) in results {
            match (r, want) {
                (Ok(db), Some(k)) => {
                    assert_eq!(db.snapshot().seq(), k as u64, "cut at {t}");
                    assert_eq!(state(&db), states[k].1, "cut at {t}");
                }
                (Err(e), None) => {
                    if t < 8 {
                        assert!(
                            matches!(e, OpenError::NotADatabase { .. }),
                            "cut at {t}: {e:?}"
                        );
                    } else {
                        assert!(matches!(e, OpenError::Corrupt { .. }), "cut at {t}: {e:?}");
                    }
                    names(&e, &shown);
                }
                (r, want) => panic!("cut at {t}: got {:?}, want state {want:?}", r.err()),
            }
        }
    }
}

#[test]
fn truncated_database_opens_a_surviving_commit_or_fails_typed() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An empty database: every cut below LOG_START is refused, LOG_START itself is empty.
    let (empty, empty_states) = make_db(dir.path(), "empty.mediadb", 0);
    let bytes = fs::read(&empty).expect("read");
    assert_eq!(bytes.len() as u64, LOG_START);
    check_truncation(&bytes, &empty_states, dir.path(), None);

    // A database with commits: cuts inside the last frame fall back to the commit before it.
    let (full, states) = make_db(dir.path(), "full.mediadb", 4);
    let bytes = fs::read(&full).expect("read");
    assert_eq!(bytes.len() as u64, states[4].0);
    check_truncation(&bytes, &states, dir.path(), None);
    let idx = fs::read(idx_path(&full)).expect("read idx");
    check_truncation(&bytes, &states, dir.path(), Some(&idx));
}

#[test]
fn a_database_cut_after_its_newest_commit_is_read_at_the_commit_before_and_not_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, states) = make_db(dir.path(), "w.mediadb", 3);
    let bytes = fs::read(&path).expect("read");
    let (l2, l3) = (states[2].0 as usize, states[3].0 as usize);
    for t in [l2, l2 + 1, (l2 + l3) / 2, l3 - 1] {
        fs::write(&path, &bytes[..t]).expect("write");
        // Commit 3's header slot is whole: the file was cut after it was made (a copy that
        // stopped), which no crash does. Readers get commit 2, and are told.
        let db = Database::open_read_only(&path).expect("opens the older commit");
        assert_eq!(state(&db), states[2].1, "cut at {t}");
        let lost = db.cut_short().expect("the cut is told");
        assert!(
            lost.contains("cut short") && lost.contains(&l3.to_string()),
            "{lost}"
        );
        drop(db);
        // A writer would append over the frame past commit 2, which `recover` can still read.
        let e = Database::open(&path).expect_err("a writer refuses it");
        assert!(matches!(e, OpenError::Corrupt { .. }), "cut at {t}: {e:?}");
        names(&e, &path);
        assert_eq!(
            fs::read(&path).expect("read"),
            &bytes[..t],
            "cut at {t}: written to"
        );
    }
    // Whole again: nothing was lost, nothing is told.
    fs::write(&path, &bytes).expect("write");
    assert_eq!(Database::open(&path).expect("opens").cut_short(), None);
}

// ---------------------------------------------------------------------------------------------
// create and locking

#[test]
fn create_on_an_existing_path_is_exists_and_leaves_it_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = make_db(dir.path(), "e.mediadb", 1);
    let other = dir.path().join("notes.txt");
    fs::write(&other, b"not a database").expect("write");
    for p in [&path, &other] {
        let before = fs::read(p).expect("read");
        let e = Database::create(p).expect_err("exists");
        assert!(matches!(e, OpenError::Exists { .. }), "{e:?}");
        names(&e, p);
        assert_eq!(fs::read(p).expect("read"), before);
    }
}

#[test]
fn second_writer_is_busy_with_the_first_writers_pid_until_it_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = make_db(dir.path(), "lock.mediadb", 1);
    let mut first = Database::open(&path).expect("first writer");
    let pid = std::process::id();

    let e = Database::open(&path).expect_err("second writer");
    assert!(
        matches!(e, OpenError::Busy { pid: Some(p), .. } if p == pid),
        "{e:?}"
    );
    names(&e, &path);
    assert!(e.to_string().contains(&format!("pid {pid}")), "{e}");
    let e = Database::create(&path).expect_err("create while locked");
    assert!(
        matches!(e, OpenError::Busy { .. } | OpenError::Exists { .. }),
        "{e:?}"
    );

    let started = Instant::now();
    let e = Database::open_with(
        &path,
        &OpenOptions {
            wait: Duration::from_millis(300),
            ..OpenOptions::default()
        },
    )
    .expect_err("still busy after waiting");
    let waited = started.elapsed();
    assert!(
        matches!(e, OpenError::Busy { pid: Some(p), .. } if p == pid),
        "{e:?}"
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );

    // Readers take no lock: they open while the writer holds it, and see its commits.
    let mut reader = Database::open_read_only(&path).expect("reader");
    assert!(matches!(reader.batch(), Err(CommitError::ReadOnly { .. })));
    let mut b = first.batch().expect("batch");
    b.upsert(&rec("/lock/new.flac", 5)).expect("upsert");
    b.commit().expect("commit");
    assert!(reader.refresh().expect("refresh"));
    assert_eq!(state(&reader), state(&first));

    drop(first);
    let second = Database::open(&path).expect("the lock is free once the first closes");
    assert_eq!(state(&second), state(&reader));
}

#[test]
fn waiting_writer_gets_the_lock_when_the_first_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = make_db(dir.path(), "wait.mediadb", 1);
    let first = Database::open(&path).expect("first writer");
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        drop(first);
    });
    let started = Instant::now();
    let db = Database::open_with(
        &path,
        &OpenOptions {
            wait: Duration::from_secs(20),
            ..OpenOptions::default()
        },
    )
    .expect("gets the lock within the wait");
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(db.is_writable());
    closer.join().expect("closer");
}

#[test]
fn stale_or_garbled_lock_file_does_not_block_a_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, states) = make_db(dir.path(), "stale.mediadb", 2);
    for content in [&b"4194303\n"[..], b"", b"not a pid \xff"] {
        fs::write(sibling(&path, ".lock"), content).expect("write lock");
        let db = Database::open(&path).expect("no writer holds the lock");
        assert_eq!(state(&db), states[2].1);
    }
}

#[test]
fn reader_keeps_its_snapshot_until_refresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, states) = make_db(dir.path(), "r.mediadb", 2);
    let mut writer = Database::open(&path).expect("writer");
    let mut reader = Database::open_read_only(&path).expect("reader");
    let old = reader.snapshot();
    assert_eq!(state(&reader), states[2].1);
    assert!(!reader.refresh().expect("refresh"), "nothing new yet");

    let mut b = writer.batch().expect("batch");
    b.upsert(&rec("/r/new.flac", 1)).expect("upsert");
    b.remove(b"/r.mediadb/1/1.flac").expect("remove");
    b.commit().expect("commit");
    let after = state(&writer);
    assert_ne!(after, states[2].1);

    assert_eq!(state(&reader), states[2].1, "no refresh, no change");
    assert!(reader.refresh().expect("refresh"));
    assert_eq!(state(&reader), after);
    assert_eq!(reader.snapshot().seq(), writer.snapshot().seq());
    assert!(!reader.refresh().expect("refresh"));
    // A snapshot taken before the refresh still shows the old commit.
    let old_state: Vec<Record> = old.iter().map(|r| r.expect("reads").to_record()).collect();
    assert_eq!(old_state, states[2].1);
}

/// Memory with two test hooks: `len()` runs `hook` (once) after measuring, so that a hook that
/// commits through another handle leaves the caller with a length from before those commits;
/// and writes fail while `fail_writes` is set.
#[derive(Default)]
struct HookedStorage {
    inner: MemStorage,
    hook: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    fail_writes: std::sync::atomic::AtomicBool,
    fail_syncs: std::sync::atomic::AtomicBool,
}

impl HookedStorage {
    /// Makes every later write fail, or stops doing so.
    fn fail_writes(&self, on: bool) {
        self.fail_writes
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes every later sync fail, or stops doing so.
    fn fail_syncs(&self, on: bool) {
        self.fail_syncs
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Storage for HookedStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        if self.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other("injected write failure"));
        }
        self.inner.write_at(buf, offset)
    }
    fn len(&self) -> std::io::Result<u64> {
        let len = self.inner.len()?;
        let hook = self.hook.lock().expect("lock").take();
        if let Some(hook) = hook {
            hook();
        }
        Ok(len)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync(&self) -> std::io::Result<()> {
        if self.fail_syncs.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other("injected sync failure"));
        }
        self.inner.sync()
    }
    fn map(&self, offset: u64, len: u64) -> std::io::Result<Mapping> {
        self.inner.map(offset, len)
    }
}

#[test]
fn a_failed_write_ahead_of_a_dropped_batch_poisons_the_handle_and_loses_nothing() {
    let storage = Arc::new(HookedStorage::default());
    let fail = |on| storage.fail_writes(on);
    let mut db = Database::with_storage(storage.clone(), true).expect("create");
    let mut batch = db.batch().expect("batch");
    batch.upsert(&rec("/m/kept.flac", 1)).expect("upsert");
    batch.commit().expect("commit");
    let kept = state(&db);

    // Small segments, so that the batch below is written ahead while it is built.
    db.set_write_ahead(4096);
    fail(true);
    let mut batch = db.batch().expect("batch");
    for n in 0..200 {
        batch
            .upsert(&rec(&format!("/m/{n}.flac"), n))
            .expect("upserts only fill memory");
    }
    drop(batch);
    let e = db.batch().expect_err("the handle stopped writing");
    assert!(matches!(e, CommitError::Poisoned { .. }), "{e:?}");

    // Reopened on the same bytes: the commit before is all there.
    fail(false);
    drop(db);
    let db = Database::with_storage(storage, false).expect("reopen");
    assert_eq!(state(&db), kept);
}

/// A commit applies its frame to the index while its I/O runs; when the I/O fails, the
/// poisoned handle must still show the commit before, not the failed batch.
#[test]
fn a_commit_whose_sync_fails_leaves_the_handle_showing_the_commit_before() {
    sync_fails_in_a_commit_with(0);
}

/// The same with a batch large enough that the commit does its I/O on a thread of its own.
#[test]
fn a_large_commit_whose_sync_fails_leaves_the_handle_showing_the_commit_before() {
    sync_fails_in_a_commit_with(3000);
}

/// A commit that updates, inserts and removes, plus `more` new records, and whose sync fails.
fn sync_fails_in_a_commit_with(more: u64) {
    let storage = Arc::new(HookedStorage::default());
    let mut db = Database::with_storage(storage.clone(), true).expect("create");
    let mut batch = db.batch().expect("batch");
    for n in 0..50 {
        batch
            .upsert(&rec(&format!("/m/{n}.flac"), n))
            .expect("upsert");
    }
    batch.commit().expect("commit");
    let kept = state(&db);

    storage.fail_syncs(true);
    let mut batch = db.batch().expect("batch");
    batch.upsert(&rec("/m/3.flac", 333)).expect("an update");
    batch.upsert(&rec("/m/new.flac", 7)).expect("an insert");
    assert!(batch.remove(b"/m/4.flac").expect("a removal"));
    let many: Vec<Record> = (0..more)
        .map(|n| rec(&format!("/m/more/{n}.flac"), n))
        .collect();
    batch.upsert_many(&many).expect("more inserts");
    let e = batch.commit().expect_err("the sync fails");
    assert!(matches!(e, CommitError::Io { .. }), "{e:?}");

    // The handle answers from the commit before, by path too.
    assert_eq!(state(&db), kept);
    let s = db.snapshot();
    assert_eq!(s.get(b"/m/3.flac").expect("get").expect("kept").size(), 3);
    assert!(s.get(b"/m/new.flac").expect("get").is_none());
    assert!(s.get(b"/m/4.flac").expect("get").is_some());
    if more > 0 {
        assert!(s.get(b"/m/more/0.flac").expect("get").is_none());
    }
    let e = db.batch().expect_err("the handle stopped writing");
    assert!(matches!(e, CommitError::Poisoned { .. }), "{e:?}");

    // Reopened on the same bytes: the commit before is all there.
    storage.fail_syncs(false);
    drop(db);
    let db = Database::with_storage(storage, false).expect("reopen");
    assert_eq!(state(&db), kept);
}

/// Regression: the header slots were checked against a file length read before them, so a
/// reader that opened or refreshed while the writer made two commits found both slots "past
/// the end of the file" and reported a live database as `Corrupt`.
#[test]
fn reader_racing_two_commits_sees_the_newest_instead_of_corrupt() {
    let storage = Arc::new(HookedStorage::default());
    let writer = Arc::new(Mutex::new(
        Database::with_storage(storage.clone(), true).expect("writer"),
    ));
    let commit_twice = |tag: &'static str| {
        let writer = Arc::clone(&writer);
        Box::new(move || {
            let mut db = writer.lock().expect("lock");
            for k in 0..2 {
                let mut b = db.batch().expect("batch");
                b.upsert(&rec(&format!("/race/{tag}{k}.flac"), k))
                    .expect("upsert");
                b.commit().expect("commit");
            }
        }) as Box<dyn FnOnce() + Send>
    };
    fill(&mut writer.lock().expect("lock"), "race", 1);

    // Opening races two commits.
    *storage.hook.lock().expect("lock") = Some(commit_twice("open"));
    let mut reader = Database::with_storage(storage.clone(), false).expect("open while racing");
    assert_eq!(reader.snapshot().seq(), 3);
    assert_eq!(state(&reader), state(&writer.lock().expect("lock")));

    // Refreshing races two commits.
    *storage.hook.lock().expect("lock") = Some(commit_twice("refresh"));
    assert!(reader.refresh().expect("refresh while racing"));
    assert_eq!(reader.snapshot().seq(), 5);
    assert_eq!(state(&reader), state(&writer.lock().expect("lock")));
}

// ---------------------------------------------------------------------------------------------
// Permissions and paths that cannot work

#[test]
fn unusable_directories_and_files_give_io_errors_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");

    // A path whose parent is a regular file: no permission bits involved.
    let file = dir.path().join("plain-file");
    fs::write(&file, b"x").expect("write");
    let under_file = file.join("lib.mediadb");
    for r in [
        Database::create(&under_file),
        Database::open(&under_file),
        Database::open_read_only(&under_file),
        Database::open_with(
            &under_file,
            &OpenOptions {
                create: true,
                ..OpenOptions::default()
            },
        ),
    ] {
        let e = r.expect_err("parent is a file");
        assert!(matches!(e, OpenError::Io { .. }), "{e:?}");
        names(&e, &under_file);
        // ... and says what to do about it.
        assert!(
            e.to_string().ends_with("not a directory; check --db"),
            "{e}"
        );
    }

    // A read-only directory and an unreadable file. Root ignores permission bits; detect that.
    let ro = dir.path().join("ro");
    fs::create_dir(&ro).expect("mkdir");
    let (existing, states) = make_db(&ro, "lib.mediadb", 2);
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).expect("chmod");
    let enforced = fs::write(ro.join("probe"), b"").is_err();
    let new_db = ro.join("new.mediadb");
    let created = Database::create(&new_db);
    let reader = Database::open_read_only(&existing);
    let unreadable_result = {
        fs::set_permissions(&existing, fs::Permissions::from_mode(0o000)).expect("chmod");
        let r = Database::open_read_only(&existing).map(|db| state(&db));
        fs::set_permissions(&existing, fs::Permissions::from_mode(0o644)).expect("chmod");
        r
    };
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).expect("chmod back");

    // Reading needs no write permission on the directory.
    assert_eq!(
        state(&reader.expect("reader in a read-only dir")),
        states[2].1
    );
    if enforced {
        let e = created.expect_err("cannot create in a read-only directory");
        assert!(matches!(e, OpenError::Io { .. }), "{e:?}");
        names(&e, &new_db);
        assert!(e.to_string().contains("check the permissions"), "{e}");
        let e = unreadable_result.expect_err("unreadable file");
        assert!(matches!(e, OpenError::Io { .. }), "{e:?}");
        names(&e, &existing);
    } else {
        // Running as root: the bits are not enforced, so both simply work.
        assert!(created.is_ok());
        assert_eq!(unreadable_result.expect("root reads anything"), states[2].1);
    }
}

// ---------------------------------------------------------------------------------------------
// The index checkpoint is a cache

#[test]
fn checkpoint_of_another_database_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, _) = make_db(dir.path(), "a.mediadb", 5);
    let (b, b_states) = make_db(dir.path(), "b.mediadb", 2);
    fs::copy(idx_path(&a), idx_path(&b)).expect("copy idx");
    assert_eq!(
        state(&Database::open_read_only(&b).expect("open")),
        b_states[2].1
    );
    let db = Database::open(&b).expect("open");
    assert_eq!(state(&db), b_states[2].1);
}

#[test]
fn checkpoint_of_another_database_claiming_this_ones_position_is_ignored() {
    // Two databases built by the same operations on different paths of the same length: their
    // logs have the same shape, so only the file id tells their checkpoints apart.
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, _) = make_db(dir.path(), "a.mediadb", 3);
    let (b, b_states) = make_db(dir.path(), "b.mediadb", 3);
    let a_idx = fs::read(idx_path(&a)).expect("read");
    let b_idx = fs::read(idx_path(&b)).expect("read");
    let (ha, hb) = (
        IdxHeader::decode(&a_idx).expect("valid"),
        IdxHeader::decode(&b_idx).expect("valid"),
    );
    assert_ne!(ha.file_id, hb.file_id);
    assert_eq!(a_idx.len(), b_idx.len());
    let claimed = IdxHeader {
        file_id: ha.file_id,
        ..hb
    };
    let mut forged = a_idx.clone();
    forged[..SLOT_LEN].copy_from_slice(
        &IdxHeader {
            entries_crc: ha.entries_crc,
            table_crc: ha.table_crc,
            ..claimed
        }
        .encode(),
    );
    fs::write(idx_path(&b), &forged).expect("write");
    assert_eq!(
        state(&Database::open_read_only(&b).expect("open")),
        b_states[3].1
    );
    fs::write(idx_path(&b), &forged).expect("write");
    assert_eq!(state(&Database::open(&b).expect("open")), b_states[3].1);
}

#[test]
fn checkpoint_of_a_forked_copy_with_the_same_file_id_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (orig, _) = make_db(dir.path(), "orig.mediadb", 2);
    let fork = dir.path().join("fork.mediadb");
    fs::copy(&orig, &fork).expect("copy");
    fs::copy(idx_path(&orig), idx_path(&fork)).expect("copy");
    // Both go on with different batches whose frames have the same lengths, so the original's
    // checkpoint lands on a frame boundary of the fork; only the crc chain tells them apart.
    let mut want = Vec::new();
    for (p, size) in [(&orig, 1u64), (&fork, 2)] {
        let mut db = Database::open(p).expect("open");
        for round in 0..2 {
            let mut b = db.batch().expect("batch");
            b.upsert(&rec("/forked/x.flac", size * 10 + round))
                .expect("upsert");
            b.commit().expect("commit");
            if p == &orig && round == 0 {
                db.checkpoint().expect("checkpoint");
                fs::copy(idx_path(p), dir.path().join("orig-mid.idx")).expect("copy");
            }
        }
        want.push(state(&db));
    }
    assert_eq!(
        fs::metadata(&orig).expect("meta").len(),
        fs::metadata(&fork).expect("meta").len()
    );
    for from in [idx_path(&orig), dir.path().join("orig-mid.idx")] {
        fs::copy(&from, idx_path(&fork)).expect("copy");
        assert_eq!(
            state(&Database::open_read_only(&fork).expect("open")),
            want[1]
        );
        fs::copy(&from, idx_path(&fork)).expect("copy");
        assert_eq!(state(&Database::open(&fork).expect("open")), want[1]);
    }
}

#[test]
fn checkpoint_older_than_the_log_is_replayed_forward() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.mediadb");
    let mut db = Database::create(&path).expect("create");
    fill(&mut db, "x", 3);
    db.checkpoint().expect("checkpoint");
    let old_idx = fs::read(idx_path(&path)).expect("read idx");
    let states = fill(&mut db, "y", 4);
    let want = states.last().expect("state").1.clone();
    drop(db); // writes a newer checkpoint...
    fs::write(idx_path(&path), &old_idx).expect("restore"); // ...as if the writer had been killed
    assert_eq!(state(&Database::open_read_only(&path).expect("open")), want);
    let mut db = Database::open(&path).expect("open");
    assert_eq!(state(&db), want);
    // And the writer goes on from there.
    let mut b = db.batch().expect("batch");
    b.upsert(&rec("/z.flac", 1)).expect("upsert");
    b.commit().expect("commit");
    let want = state(&db);
    drop(db);
    assert_eq!(state(&Database::open(&path).expect("open")), want);
}

#[test]
fn truncated_or_bit_flipped_checkpoint_is_ignored_or_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, states) = make_db(dir.path(), "t.mediadb", 4);
    let want = &states[4].1;
    let good = fs::read(idx_path(&path)).expect("read idx");
    let len = good.len();
    let h = IdxHeader::decode(&good).expect("a valid checkpoint");
    // Bytes a reader checks only when it touches their chunk.
    let lazily_checked = 4096..h.playlists_offset() as usize;
    let check = |bytes: &[u8], at: Option<usize>, what: &str| {
        fs::write(idx_path(&path), bytes).expect("write idx");
        let db = Database::open_read_only(&path).expect(what);
        match at {
            // A reader meets a damaged chunk as an error, never as a wrong answer.
            Some(at) if lazily_checked.contains(&at) => {
                let s = db.snapshot();
                let walked: Result<Vec<Record>, _> =
                    s.iter().map(|r| r.map(|v| v.to_record())).collect();
                match walked {
                    Ok(all) => assert_eq!(&all, want, "{what}"),
                    Err(e) => assert!(matches!(e, mediadb::ReadError::IndexDamaged), "{what}: {e}"),
                }
                // A writer checks every chunk, ignores the damaged checkpoint and sees all.
                drop(db);
                fs::write(idx_path(&path), bytes).expect("write idx");
                let w = Database::open(&path).expect("writer");
                assert_eq!(&state(&w), want, "{what} (writer)");
            }
            _ => assert_eq!(&state(&db), want, "{what}"),
        }
    };
    for t in [0, 1, 127, 128, 4095, 4096, 4097, len / 2, len - 16, len - 1] {
        check(&good[..t], None, &format!("idx cut at {t}"));
    }
    let mut longer = good.clone();
    longer.extend_from_slice(&[0u8; 16]);
    check(&longer, None, "idx with bytes appended");
    // Every bit of the header, and a spread of bits in the entries, the table and the lists.
    let bits: Vec<usize> = (0..128 * 8)
        .chain((4096 * 8..len * 8).step_by(8 * 61 + 3))
        .collect();
    for bit in bits {
        let mut b = good.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        check(&b, Some(bit / 8), &format!("idx bit {bit} flipped"));
    }
    // A reader that touches a damaged entry reports it. A get by path reads no entry (the
    // table, intact here, says where the record is), so it still answers, and rightly.
    let mut b = good.clone();
    b[4096 + 48 + 10] ^= 0x10;
    fs::write(idx_path(&path), &b).expect("write idx");
    let r = Database::open_read_only(&path).expect("reader");
    let s = r.snapshot();
    let got = s.get(&want[0].path).expect("get").expect("found");
    assert_eq!(&got.to_record(), &want[0]);
    let err = s.entry(&want[0].path).expect_err("damage reported");
    assert!(matches!(err, mediadb::ReadError::IndexDamaged), "{err}");
    assert!(err.to_string().contains(".idx"), "{err}");
    // A damaged table chunk: the get misses and says why.
    let mut b = good.clone();
    b[h.table_offset() as usize + 3] ^= 0x10;
    fs::write(idx_path(&path), &b).expect("write idx");
    let r = Database::open_read_only(&path).expect("reader");
    let err = r
        .snapshot()
        .get(&want[0].path)
        .expect_err("damage reported");
    assert!(matches!(err, mediadb::ReadError::IndexDamaged), "{err}");
    // A writer opened over a damaged checkpoint replaces it with a good one.
    drop(Database::open(&path).expect("writer"));
    assert_eq!(
        &state(&Database::open_read_only(&path).expect("open")),
        want
    );
}

#[test]
fn checkpoint_with_valid_checksums_but_impossible_positions_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, states) = make_db(dir.path(), "p.mediadb", 3);
    let want = &states[3].1;
    let good = fs::read(idx_path(&path)).expect("read idx");
    let h = IdxHeader::decode(&good).expect("a valid checkpoint");
    let variants: Vec<(&str, IdxHeader)> = vec![
        (
            "committed_len 0",
            IdxHeader {
                committed_len: 0,
                ..h
            },
        ),
        (
            "committed_len inside the slots",
            IdxHeader {
                committed_len: 100,
                ..h
            },
        ),
        (
            "committed_len LOG_START - 8",
            IdxHeader {
                committed_len: LOG_START - 8,
                ..h
            },
        ),
        (
            "committed_len mid-frame",
            IdxHeader {
                committed_len: h.committed_len - 8,
                ..h
            },
        ),
        (
            "committed_len unaligned",
            IdxHeader {
                committed_len: h.committed_len - 3,
                ..h
            },
        ),
        (
            "seq off by one",
            IdxHeader {
                seq: h.seq - 1,
                ..h
            },
        ),
        (
            "seq ahead",
            IdxHeader {
                seq: h.seq + 1,
                ..h
            },
        ),
        (
            "last_frame_crc wrong",
            IdxHeader {
                last_frame_crc: h.last_frame_crc ^ 1,
                ..h
            },
        ),
        (
            "live_records wrong",
            IdxHeader {
                live_records: h.live_records + 1,
                ..h
            },
        ),
        (
            "live_bytes wrong",
            IdxHeader {
                live_bytes: h.live_bytes - 1,
                ..h
            },
        ),
        (
            "table_used huge",
            IdxHeader {
                table_used: u64::MAX / 2 + 1,
                ..h
            },
        ),
        (
            "table_used over half",
            IdxHeader {
                table_used: h.table_capacity / 2 + 1,
                ..h
            },
        ),
        (
            "next_id huge",
            IdxHeader {
                next_id: u64::MAX,
                ..h
            },
        ),
        (
            "table_capacity huge",
            IdxHeader {
                table_capacity: 1 << 62,
                ..h
            },
        ),
    ];
    for (what, v) in variants {
        let mut b = good.clone();
        b[..SLOT_LEN].copy_from_slice(&v.encode());
        fs::write(idx_path(&path), &b).expect("write idx");
        let db = Database::open_read_only(&path).expect(what);
        assert_eq!(&state(&db), want, "{what}");
    }
}

#[test]
fn checkpoint_of_an_older_version_is_ignored_and_replaced_by_the_next_writer() {
    // Version 3 had other table slots (docs/FORMAT.md §3): a build that reads version 4 must
    // not use them. Its header is otherwise sound, crc included.
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, states) = make_db(dir.path(), "v.mediadb", 4);
    let mut idx = fs::read(idx_path(&path)).expect("read idx");
    idx[8..12].copy_from_slice(&3u32.to_le_bytes());
    let crc = crc32c::crc32c(&idx[..124]);
    idx[124..128].copy_from_slice(&crc.to_le_bytes());
    fs::write(idx_path(&path), &idx).expect("write");
    assert!(
        IdxHeader::decode(&idx).is_none(),
        "not this build's version"
    );

    assert_eq!(
        state(&Database::open_read_only(&path).expect("open")),
        states[4].1,
        "a reader rebuilds the index from the log"
    );
    let db = Database::open(&path).expect("open");
    assert_eq!(state(&db), states[4].1);
    drop(db);
    let idx = fs::read(idx_path(&path)).expect("read idx");
    assert!(
        IdxHeader::decode(&idx).is_some(),
        "the writer replaced it with a checkpoint of this version"
    );
}

#[test]
fn a_writer_that_stays_open_checkpoints_once_enough_is_committed_and_time_has_passed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("auto.mediadb");
    let mut db = Database::create(&path).expect("create");
    let checkpoint_seq = || {
        fs::read(idx_path(&path))
            .ok()
            .and_then(|b| IdxHeader::decode(&b))
            .map(|h| h.seq)
    };
    let mut n = 0;
    let mut commit = |db: &mut Database| {
        let mut batch = db.batch().expect("batch");
        for _ in 0..20 {
            n += 1;
            batch
                .upsert(&rec(&format!("/m/{n}.flac"), n))
                .expect("upsert");
        }
        batch.commit().expect("commit").seq
    };

    // The defaults (64 MiB, 30 s): small commits write no checkpoint while the handle is open.
    commit(&mut db);
    let before = checkpoint_seq();
    commit(&mut db);
    assert_eq!(checkpoint_seq(), before);

    // Due by size and time: every commit leaves a checkpoint of itself.
    db.set_auto_checkpoint(1000, Duration::ZERO);
    for _ in 0..3 {
        let seq = commit(&mut db);
        assert_eq!(checkpoint_seq(), Some(seq));
    }

    // Enough bytes, but the interval since the last one has not passed.
    db.set_auto_checkpoint(1000, Duration::from_secs(3600));
    let seq = commit(&mut db);
    assert_eq!(checkpoint_seq(), Some(seq - 1));

    // Off.
    db.set_auto_checkpoint(u64::MAX, Duration::ZERO);
    commit(&mut db);
    assert_eq!(checkpoint_seq(), Some(seq - 1));

    // What was written is a checkpoint readers use: it agrees with the log.
    let want = state(&db);
    drop(db);
    assert_eq!(state(&Database::open_read_only(&path).expect("open")), want);
}

#[test]
fn deleted_checkpoint_is_rebuilt_with_the_same_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, states) = make_db(dir.path(), "d.mediadb", 4);
    let with_idx = state(&Database::open_read_only(&path).expect("open"));
    fs::remove_file(idx_path(&path)).expect("rm idx");
    let db = Database::open(&path).expect("open");
    assert_eq!(state(&db), with_idx);
    assert_eq!(with_idx, states[4].1);
    drop(db);
    assert!(idx_path(&path).exists(), "the writer writes it again");
}

#[test]
fn a_directory_fifo_or_device_is_refused_without_blocking_or_leaving_a_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo.mediadb");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    let mut paths = vec![dir.path().to_path_buf(), PathBuf::from("/dev/null")];
    if made.is_ok_and(|s| s.success()) {
        // Opening a FIFO for reading would wait for a writer that never comes.
        paths.push(fifo);
    }
    for p in &paths {
        for r in [
            Database::open_read_only(p),
            Database::open(p),
            Database::create(p),
        ] {
            let e = r.expect_err("refused");
            assert!(
                matches!(e, OpenError::NotADatabase { .. } | OpenError::Exists { .. }),
                "{}: {e:?}",
                p.display()
            );
        }
        let e = mediadb::store::verify(p, &|_, _| {}).expect_err("refused");
        assert!(matches!(e, OpenError::NotADatabase { .. }), "{e:?}");
        let out = dir.path().join("out.mediadb");
        let e = mediadb::store::recover(p, &out, &|_, _| {}).expect_err("refused");
        assert!(
            matches!(e, mediadb::RecoverError::NotADatabase { .. }),
            "{e:?}"
        );
        assert!(!out.exists());
    }
    assert!(!Path::new("/dev/null.lock").exists());
    // A regular file that holds nothing of a database: recover says so, and writes nothing.
    let text = dir.path().join("notes.txt");
    fs::write(&text, "hello\n").expect("write");
    let out = dir.path().join("out.mediadb");
    let e = mediadb::store::recover(&text, &out, &|_, _| {}).expect_err("refused");
    assert!(
        matches!(e, mediadb::RecoverError::NotADatabase { .. }),
        "{e:?}"
    );
    assert!(!out.exists());
}

#[test]
fn a_damaged_path_in_a_record_a_checkpoint_covers_is_never_handed_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("flip.mediadb");
    let mut db = Database::create(&path).expect("create");
    let mut b = db.batch().expect("batch");
    for (i, p) in ["/m/first.flac", "/m/second.flac", "/m/third.flac"]
        .iter()
        .enumerate()
    {
        b.upsert(&rec(p, i as u64 + 1)).expect("upsert");
    }
    b.commit().expect("commit");
    drop(db);
    assert!(idx_path(&path).exists());
    // One bit of the second record's path: open takes the index from the checkpoint and does
    // not read the frame again, so its crc is not what finds this.
    let mut bytes = fs::read(&path).expect("read");
    let at = bytes
        .windows(b"second".len())
        .position(|w| w == b"second")
        .expect("the path is stored");
    bytes[at] ^= 0x04; // "second" -> "wecond"
    fs::write(&path, &bytes).expect("write");

    let db = Database::open_read_only(&path).expect("opens from the checkpoint");
    let s = db.snapshot();
    let read: Vec<_> = s.iter().collect();
    assert_eq!(read.len(), 3);
    assert!(read[0].is_ok() && read[2].is_ok());
    let e = read[1].as_ref().expect_err("the damaged record is refused");
    assert!(e.to_string().contains("damaged"), "{e}");
    // By path: neither the old path (the stored one differs) nor the damaged one (its hash is
    // not in the table) finds it.
    assert!(s.get(b"/m/second.flac").expect("reads").is_none());
    assert!(s.get(b"/m/wecond.flac").expect("reads").is_none());
    assert!(s.get(b"/m/third.flac").expect("reads").is_some());
}

/// A database reached through a symbolic link is the database the link names: one lock (a
/// writer through the link and one through the real path exclude each other), sidecars beside
/// the real file, and `compact` replaces the real file, leaving the link a link.
#[test]
fn a_symlinked_database_shares_the_real_files_lock_and_sidecars() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join("real")).expect("mkdir");
    fs::create_dir(dir.path().join("links")).expect("mkdir");
    let real = dir.path().join("real/lib.mediadb");
    let link = dir.path().join("links/lib.mediadb");
    std::os::unix::fs::symlink("../real/lib.mediadb", &link).expect("symlink");
    // Created through a link to a missing file: made where the link points.
    let mut db = Database::create(&link).expect("create through the link");
    assert!(real.is_file());
    let mut b = db.batch().expect("batch");
    b.upsert(&rec("/m/a.flac", 1)).expect("upsert");
    b.commit().expect("commit");
    // The other path is held by the same lock.
    let busy_through = |p: &Path| match Database::open(p) {
        Err(OpenError::Busy { .. }) => {}
        other => panic!(
            "expected Busy through {}, got {:?}",
            p.display(),
            other.map(|_| ())
        ),
    };
    busy_through(&real);
    drop(db);
    let db = Database::open(&real).expect("open");
    busy_through(&link);
    drop(db);
    // Compacting through the link rewrites the real file.
    let mut db = Database::open(&link).expect("open through the link");
    db.compact().expect("compact");
    drop(db);
    assert!(
        fs::symlink_metadata(&link)
            .expect("stat")
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        Database::open_read_only(&real)
            .expect("open")
            .snapshot()
            .len(),
        1
    );
    for suffix in [".lock", ".idx"] {
        assert!(
            sibling(&real, suffix).exists(),
            "{suffix} beside the real file"
        );
        assert!(!sibling(&link, suffix).exists(), "{suffix} beside the link");
    }
}

/// A loop of symbolic links is an error, and the links are left as they were (a database made
/// at the path would have replaced one).
#[test]
fn a_loop_of_links_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a.mediadb"), dir.path().join("b.mediadb"));
    std::os::unix::fs::symlink(&b, &a).expect("symlink");
    std::os::unix::fs::symlink(&a, &b).expect("symlink");
    assert!(matches!(Database::create(&a), Err(OpenError::Io { .. })));
    let opts = OpenOptions {
        create: true,
        ..OpenOptions::default()
    };
    assert!(matches!(
        Database::open_with(&b, &opts),
        Err(OpenError::Io { .. })
    ));
    assert!(Database::open_read_only(&a).is_err());
    for p in [&a, &b] {
        assert!(
            fs::symlink_metadata(p)
                .expect("stat")
                .file_type()
                .is_symlink()
        );
    }
}

#[test]
fn a_writer_removes_the_temporary_files_a_killed_writer_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, states) = make_db(dir.path(), "t.mediadb", 1);
    let temps: Vec<PathBuf> = [".compact.tmp", ".compact.tmp.idx", ".idx.tmp", ".cols.tmp"]
        .iter()
        .map(|s| PathBuf::from(format!("{}{s}", path.display())))
        .collect();
    for t in &temps {
        fs::write(t, vec![7u8; 4096]).expect("write");
    }
    // A reader takes no lock, so a writer may be compacting: it leaves them.
    drop(Database::open_read_only(&path).expect("reader"));
    assert!(temps.iter().all(|t| t.exists()));
    // A writer holds the lock, so no one else is writing them.
    let db = Database::open(&path).expect("writer");
    assert!(temps.iter().all(|t| !t.exists()), "{temps:?}");
    assert_eq!(state(&db), states[1].1);
}
