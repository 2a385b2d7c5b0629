//! Compaction: it keeps exactly the live records, their ids, the sequence number and next_id;
//! readers opened before keep their snapshot; the result verifies clean and takes commits; a
//! crash (or an I/O error) at any operation of writing the new file leaves the old database,
//! complete; free space is checked first.

mod common;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::fault::{CrashMode, FaultStorage};
use mediadb::store::map::Mapping;
use mediadb::store::{
    CheckpointStatus, CompactError, MemStorage, Storage, check_free_space, verify, verify_storage,
};
use mediadb::{Database, Kind, Record};

fn no_progress(_: u64, _: u64) {}

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn rec(i: u64, round: u64) -> Record {
    let mut r = Record::new(format!("/lib/{:03}/{i:05}.flac", i % 100));
    r.size = 4_000_000 + i + round;
    r.mtime_ns = 1_700_000_000_000_000_000 + (i * 7 + round) as i64;
    r.inode = 50_000 + i;
    r.kind = Kind::Audio;
    r.title = Some(format!("Title {i} v{round}"));
    r.artists = vec!["Someone".into(), format!("Guest {}", i % 9)];
    r.year = Some(2000 + (i % 20) as i32);
    if i.is_multiple_of(13) {
        r.error = Some("bad frame".into());
    }
    r
}

/// A database with inserts, updates and removals over several commits, half of it dead.
fn build(db: &mut Database, n: u64) {
    for round in 0..4 {
        let mut b = db.batch().expect("batch");
        for i in 0..n {
            if round == 0 || i % 2 == round % 2 {
                b.upsert(&rec(i, round)).expect("upsert");
            }
        }
        if round == 3 {
            for i in (0..n).step_by(3) {
                b.remove(&rec(i, 0).path).expect("remove");
            }
        }
        b.commit().expect("commit");
    }
}

fn assert_clean(r: &mediadb::store::VerifyReport) {
    assert!(
        r.is_clean(),
        "{}",
        r.problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn state(db: &Database) -> (Vec<Record>, u64, u64) {
    let st = db.snapshot().stats();
    (common::all_records(db), st.seq, st.next_id)
}

#[test]
fn compaction_keeps_records_ids_seq_and_next_id_and_shrinks_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.mediadb");
    let mut db = Database::create(&path).expect("create");
    build(&mut db, 600);
    let before = state(&db);
    let len_before = fs::metadata(&path).expect("stat").len();
    let created = db.snapshot().stats().created_unix_ns;
    let reclaimable = db.snapshot().reclaimable_bytes();

    let report = db.compact().expect("compact");
    assert_eq!(report.before_bytes, len_before);
    // The estimate errs low, by a Batch's overestimate a frame at most.
    assert!(
        reclaimable <= report.reclaimed() && report.reclaimed() - reclaimable < 1024,
        "estimated {reclaimable}, reclaimed {}",
        report.reclaimed()
    );
    // Once compacted, nothing more is to be had, though index entries and frames remain.
    assert_eq!(db.snapshot().reclaimable_bytes(), 0);
    assert!(db.snapshot().stats().dead_bytes > 0);
    assert_eq!(report.after_bytes, fs::metadata(&path).expect("stat").len());
    assert!(report.after_bytes < report.before_bytes / 2, "{report:?}");
    assert_eq!(report.reclaimed(), report.before_bytes - report.after_bytes);
    assert_eq!(
        (report.records, report.seq, report.next_id),
        (before.0.len() as u64, before.1, before.2)
    );
    assert!(report.checkpoint_written);
    // The handle continues on the new file.
    assert_eq!(state(&db), before);
    assert_eq!(db.snapshot().stats().created_unix_ns, created);
    assert!(!sibling(&path, ".compact.tmp").exists());
    assert!(!sibling(&path, ".compact.tmp.idx").exists());

    // It verifies clean, checkpoint included, while the writer still holds it.
    let r = verify(&path, &no_progress).expect("verify");
    assert_clean(&r);
    assert_eq!(r.checkpoint, CheckpointStatus::Agrees { seq: before.1 });

    // It takes commits; new ids continue above the old next_id.
    let mut b = db.batch().expect("batch");
    let id = b
        .upsert(&Record::new(b"/lib/new.flac".to_vec()))
        .expect("upsert");
    b.remove(&before.0[0].path).expect("remove");
    b.upsert(&rec(1, 9)).expect("update");
    b.commit().expect("commit");
    assert_eq!(id, before.2);
    let after = state(&db);
    drop(db);
    let reopened = Database::open(&path).expect("reopen");
    assert_eq!(state(&reopened), after);
    drop(reopened);
    assert_clean(&verify(&path, &no_progress).expect("verify"));

    // Compacting again, and once more on an unchanged database, keeps everything too.
    let mut db = Database::open(&path).expect("open");
    db.compact().expect("compact");
    let again = db.compact().expect("compact twice");
    assert_eq!(again.before_bytes, again.after_bytes);
    assert_eq!(state(&db), after);
    drop(db);
    assert_clean(&verify(&path, &no_progress).expect("verify"));
}

#[test]
fn readers_opened_before_keep_their_snapshot_and_refresh_moves_them_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.mediadb");
    let mut db = Database::create(&path).expect("create");
    build(&mut db, 300);
    let before = common::all_records(&db);
    let mut reader = Database::open_read_only(&path).expect("reader");
    let snap = reader.snapshot();
    let writer_snap = db.snapshot();

    db.compact().expect("compact");
    let mut b = db.batch().expect("batch");
    b.upsert(&Record::new(b"/lib/after.flac".to_vec()))
        .expect("upsert");
    b.commit().expect("commit");

    // Old snapshots and the reader read the old file, unchanged.
    for s in [&snap, &writer_snap, &reader.snapshot()] {
        let got: Vec<Record> = s.iter().map(|r| r.expect("reads").to_record()).collect();
        assert_eq!(got, before);
        for r in &before {
            assert_eq!(s.get(&r.path).expect("reads").map(|v| v.id()), Some(r.id));
        }
    }
    // refresh notices the new file and shows the commit made after compaction.
    assert!(reader.refresh().expect("refresh"));
    assert_eq!(reader.snapshot().len(), before.len() as u64 + 1);
    assert!(
        reader
            .snapshot()
            .get(b"/lib/after.flac")
            .expect("reads")
            .is_some()
    );
    assert!(!reader.refresh().expect("refresh"));
}

#[test]
fn empty_all_removed_and_sparse_databases_compact() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Never written.
    let empty = dir.path().join("e.mediadb");
    let mut db = Database::create(&empty).expect("create");
    let r = db.compact().expect("compact");
    assert_eq!((r.records, r.seq, r.next_id, r.frames), (0, 0, 1, 0));
    drop(db);
    assert_clean(&verify(&empty, &no_progress).expect("verify"));

    // Everything removed: next_id survives in a padding frame.
    let gone = dir.path().join("g.mediadb");
    let mut db = Database::create(&gone).expect("create");
    build(&mut db, 200);
    let all = common::all_records(&db);
    let mut b = db.batch().expect("batch");
    for r in &all {
        b.remove(&r.path).expect("remove");
    }
    b.commit().expect("commit");
    let (_, seq, next_id) = state(&db);
    let r = db.compact().expect("compact");
    assert_eq!(
        (r.records, r.seq, r.next_id, r.frames),
        (0, seq, next_id, 1)
    );
    let mut b = db.batch().expect("batch");
    assert_eq!(b.upsert(&rec(1, 1)).expect("upsert"), next_id);
    b.commit().expect("commit");
    drop(db);
    assert_clean(&verify(&gone, &no_progress).expect("verify"));

    // Few survivors among many dead ids.
    let sparse = dir.path().join("s.mediadb");
    let mut db = Database::create(&sparse).expect("create");
    let mut b = db.batch().expect("batch");
    for i in 0..5000 {
        b.upsert(&rec(i, 0)).expect("upsert");
    }
    b.commit().expect("commit");
    let mut b = db.batch().expect("batch");
    for i in 0..5000 {
        if i % 1000 != 999 {
            b.remove(&rec(i, 0).path).expect("remove");
        }
    }
    b.commit().expect("commit");
    let before = state(&db);
    db.compact().expect("compact");
    assert_eq!(state(&db), before);
    drop(db);
    let reopened = Database::open_read_only(&sparse).expect("open");
    assert_eq!(state(&reopened), before);
    assert_clean(&verify(&sparse, &no_progress).expect("verify"));
}

#[test]
fn read_only_poisoned_and_storage_handles_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ro.mediadb");
    drop(Database::create(&path).expect("create"));
    let mut ro = Database::open_read_only(&path).expect("open");
    let e = ro.compact().expect_err("read-only");
    assert!(matches!(e, CompactError::ReadOnly { .. }));
    assert!(e.to_string().contains(&path.display().to_string()));
    let mut mem = Database::with_storage(Arc::new(MemStorage::new()), true).expect("mem");
    assert!(matches!(
        mem.compact().expect_err("storage"),
        CompactError::NotAFile { .. }
    ));
    // compact_into wants an empty storage.
    let full = MemStorage::from_bytes(vec![1, 2, 3]);
    assert!(matches!(
        mem.compact_into(&full).expect_err("not empty"),
        CompactError::NotEmpty { len: 3, .. }
    ));
}

#[test]
fn free_space_below_the_need_is_refused() {
    let p = Path::new("/data/lib.mediadb");
    let e = check_free_space(p, Path::new("/data"), 10_000, 9_999).expect_err("refused");
    assert!(matches!(
        e,
        CompactError::NoSpace {
            needed: 10_000,
            available: 9_999,
            ..
        }
    ));
    let msg = e.to_string();
    assert!(msg.contains("/data/lib.mediadb") && msg.contains("nothing was changed"));
    assert!(check_free_space(p, Path::new("/data"), 10_000, 10_000).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Faults

/// The old database's records, and a database of the same shape in memory.
fn mem_db(n: u64) -> (Database, Vec<Record>) {
    let mut db = Database::with_storage(Arc::new(MemStorage::new()), true).expect("mem");
    build(&mut db, n);
    let recs = common::all_records(&db);
    (db, recs)
}

#[test]
fn a_crash_at_every_operation_of_writing_the_new_file_leaves_old_or_new_complete() {
    let (db, recs) = mem_db(400);
    let old_stats = db.snapshot().stats();

    // A full run: count the operations; the durable image is complete and verifies clean.
    let full = FaultStorage::new();
    db.compact_into(&full).expect("compact");
    let ops = full.ops();
    assert!(ops >= 4, "{ops} operations");
    assert_eq!(
        full.unsynced(),
        0,
        "everything written is synced before returning"
    );
    let image = full.durable_image();
    assert_eq!(image, full.live_image());
    assert_clean(
        &verify_storage(
            &MemStorage::from_bytes(image.clone()),
            Path::new("new"),
            &no_progress,
        )
        .expect("verify"),
    );
    let new = Database::with_storage(Arc::new(MemStorage::from_bytes(image)), false).expect("open");
    assert_eq!(common::all_records(&new), recs);
    let st = new.snapshot().stats();
    assert_eq!((st.seq, st.next_id), (old_stats.seq, old_stats.next_id));

    // A crash at operation k: compaction reports it and the old database is untouched (the
    // rename never happens). Whatever the crash left of the new file is never taken for a
    // complete database: the header slots are written last, after every frame.
    for k in 0..ops {
        let fs = FaultStorage::new();
        fs.crash_at(k);
        assert!(db.compact_into(&fs).is_err(), "crash at {k} not reported");
        assert!(fs.crashed());
        assert_eq!(common::all_records(&db), recs, "crash at {k}");
        for (mode, seed) in [
            (CrashMode::AllApplied, 1),
            (CrashMode::AllDropped, 2),
            (CrashMode::Mixed, 3 + k),
        ] {
            let img = fs.crash_image(mode, seed);
            if let Ok(partial) =
                Database::with_storage(Arc::new(MemStorage::from_bytes(img.clone())), false)
            {
                // Only a write of the last header slot can make the new file open.
                assert_eq!(
                    common::all_records(&partial),
                    recs,
                    "crash at {k}, {mode:?}"
                );
            }
        }
    }
}

/// A storage wrapping another that fails every operation from the `fail_at`-th on, as a process
/// that died there would (counted like `FaultStorage`: writes, set_len, sync).
struct Failing {
    inner: Arc<dyn Storage>,
    fail_at: u64,
    ops: AtomicU64,
}

impl Failing {
    fn op(&self) -> io::Result<()> {
        if self.ops.fetch_add(1, Ordering::SeqCst) >= self.fail_at {
            return Err(io::Error::other("injected failure"));
        }
        Ok(())
    }
}

impl Storage for Failing {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.op()?;
        self.inner.write_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.op()?;
        self.inner.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.op()?;
        self.inner.sync()
    }
    fn map(&self, offset: u64, len: u64) -> io::Result<Mapping> {
        self.inner.map(offset, len)
    }
}

#[test]
fn a_failure_at_every_operation_of_a_file_compaction_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f.mediadb");
    let mut db = Database::create(&path).expect("create");
    build(&mut db, 300);
    db.checkpoint().expect("checkpoint");
    let before = state(&db);
    let bytes = fs::read(&path).expect("read");
    let idx = fs::read(sibling(&path, ".idx")).expect("read idx");
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    db.compact_with(&move |s| {
        let c = counted.clone();
        Arc::new(Counting { inner: s, count: c })
    })
    .expect("compact");
    let ops = count.load(Ordering::SeqCst);
    drop(db);
    assert!(ops >= 4);

    for k in 0..ops {
        fs::write(&path, &bytes).expect("restore");
        fs::write(sibling(&path, ".idx"), &idx).expect("restore idx");
        let mut db = Database::open(&path).expect("open");
        let e = db
            .compact_with(&move |s| {
                Arc::new(Failing {
                    inner: s,
                    fail_at: k,
                    ops: AtomicU64::new(0),
                })
            })
            .expect_err("fails");
        assert!(matches!(e, CompactError::Io { .. }), "op {k}: {e}");
        assert!(e.to_string().contains("was not changed"), "{e}");
        // Nothing changed, no temporary file is left, the handle still works.
        assert_eq!(fs::read(&path).expect("read"), bytes, "op {k}");
        assert!(!sibling(&path, ".compact.tmp").exists(), "op {k}");
        assert!(!sibling(&path, ".compact.tmp.idx").exists(), "op {k}");
        assert_eq!(state(&db), before);
        let mut b = db.batch().expect("batch");
        b.upsert(&rec(90_000 + k, 0)).expect("upsert");
        b.commit().expect("commit after a failed compaction");
        drop(db);
        assert_clean(&verify(&path, &no_progress).expect("verify"));
    }
}

/// Counts the operations that go through it.
struct Counting {
    inner: Arc<dyn Storage>,
    count: Arc<AtomicU64>,
}

impl Storage for Counting {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.inner.write_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.inner.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.inner.sync()
    }
    fn map(&self, offset: u64, len: u64) -> io::Result<Mapping> {
        self.inner.map(offset, len)
    }
}

#[test]
fn a_damaged_frame_of_live_records_stops_compaction_before_anything_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("d.mediadb");
    let mut db = Database::create(&path).expect("create");
    build(&mut db, 100);
    let victim = common::all_records(&db)[10].clone();
    let e = db
        .snapshot()
        .entry(&victim.path)
        .expect("reads")
        .expect("live")
        .1;
    drop(db);
    // Bit rot inside a live record, after the database was opened with its checkpoint.
    let mut bytes = fs::read(&path).expect("read");
    bytes[e.offset as usize + 6] ^= 0x40;
    fs::write(&path, &bytes).expect("write");
    let mut db = Database::open(&path).expect("open");
    let err = db.compact().expect_err("damaged");
    assert!(
        matches!(err, CompactError::Damaged { offset, .. } if offset < e.offset),
        "{err}"
    );
    assert!(err.to_string().contains("mediadb recover"));
    assert_eq!(fs::read(&path).expect("read"), bytes);
    assert!(!sibling(&path, ".compact.tmp").exists());
}
