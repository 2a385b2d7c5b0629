//! Model-based tests of the engine: random sequences of batches (upserts, removals by path and by
//! id, commits and discarded batches), reopenings (file-backed with an intact, missing, damaged
//! or stale checkpoint, and in-memory from `MemStorage::to_bytes`), reader refreshes and held
//! snapshots, checked after every step against a `BTreeMap` model.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use mediadb::store::MemStorage;
use mediadb::{CommitError, Database, Kind, Record, Snapshot};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Paths

/// Paths the operations draw from: shared prefixes, a file named like a directory, non-UTF-8
/// bytes (invalid UTF-8, Latin-1), a NUL byte, a trailing slash, a double slash.
const POOL: &[&[u8]] = &[
    b"/m/a",
    b"/m/a/1.flac",
    b"/m/a/1.flac.bak",
    b"/m/a/10.flac",
    b"/m/ab/1.flac",
    b"/m/a b/1.flac",
    b"/m/a/b/c/deep.mp3",
    b"/m/\xff\xfe/x.ogg",
    b"/m/\xff\xfe",
    b"/m/caf\xc3\xa9/s.mp3",
    b"/m/caf\xe9/s.mp3",
    b"/m/a\x00nul/t.wav",
    b"/v/1.mkv",
    b"/v/d/",
    b"//double/x",
    b"/",
];

/// Paths that are never stored: prefixes and near misses of pool paths.
const ABSENT: &[&[u8]] = &[
    b"/m",
    b"/m/",
    b"/m/a/",
    b"/m/a/1",
    b"/m/a/1.fla",
    b"/m/a/1.flac\x00",
    b"/m/\xff",
    b"/v/d",
    b"/zzz",
    b"",
];

/// Directories `iter_dir` is checked on.
const DIRS: &[&[u8]] = &[
    b"/",
    b"/m",
    b"/m/",
    b"/m/a",
    b"/m/a/",
    b"/m/ab",
    b"/m/a/b",
    b"/m/\xff\xfe",
    b"/v",
    b"/v/d",
    b"/nothing",
];

/// What `iter_dir(dir)` promises: paths strictly below `dir`, at any depth.
fn under(path: &[u8], dir: &[u8]) -> bool {
    let dir = dir.strip_suffix(b"/").unwrap_or(dir);
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

// ---------------------------------------------------------------------------------------------
// The model

/// The committed state the database must show.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    /// Live records by path; each `Record::id` is the id the database gave it.
    map: BTreeMap<Vec<u8>, Record>,
    next_id: u64,
    seq: u64,
}

impl Model {
    fn empty() -> Model {
        Model {
            map: BTreeMap::new(),
            next_id: 1,
            seq: 0,
        }
    }

    fn path_of(&self, id: u64) -> Option<Vec<u8>> {
        self.map
            .iter()
            .find(|(_, r)| r.id == id)
            .map(|(p, _)| p.clone())
    }

    fn by_id(&self) -> Vec<Record> {
        let mut v: Vec<Record> = self.map.values().cloned().collect();
        v.sort_by_key(|r| r.id);
        v
    }
}

/// Checks every read path of `s` against `m`.
fn check(s: &Snapshot, m: &Model) {
    let want = m.by_id();
    let got: Vec<Record> = s
        .iter()
        .map(|r| r.expect("record reads").to_record())
        .collect();
    assert_eq!(got, want, "iter() differs from the model");
    assert_eq!(s.len(), want.len() as u64, "len()");
    assert_eq!(s.is_empty(), want.is_empty());
    assert_eq!(s.seq(), m.seq, "seq()");
    let stats = s.stats();
    assert_eq!(stats.records, want.len() as u64, "stats().records");
    assert_eq!(stats.seq, m.seq, "stats().seq");
    assert_eq!(stats.next_id, m.next_id, "stats().next_id");

    // entries(): the same ids, and the fields a rescan diffs on.
    let entries: Vec<_> = s.entries().collect();
    assert_eq!(
        entries.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        want.iter().map(|r| r.id).collect::<Vec<_>>(),
        "entries() ids"
    );
    for ((id, e), r) in entries.iter().zip(&want) {
        assert_eq!(
            (e.size, e.mtime_ns, e.inode, e.extractor_version),
            (r.size, r.mtime_ns, r.inode, r.extractor_version),
            "entry of id {id}"
        );
        assert_eq!(e.flags & 1 == 1, r.error.is_some(), "error flag of id {id}");
        assert_eq!(s.entry_by_id(*id), Some(*e));
    }

    // Point lookups by path, present and absent.
    for p in POOL.iter().chain(ABSENT) {
        let want = m.map.get(*p);
        let got = s.get(p).expect("get reads").map(|v| v.to_record());
        assert_eq!(got.as_ref(), want, "get({:?})", String::from_utf8_lossy(p));
        let entry = s.entry(p).expect("entry reads").map(|(id, _)| id);
        assert_eq!(entry, want.map(|r| r.id), "entry({p:?})");
    }
    let many = s.get_many(POOL).expect("get_many reads");
    for (p, got) in POOL.iter().zip(many) {
        assert_eq!(got.map(|v| v.to_record()).as_ref(), m.map.get(*p));
    }
    let paths: Vec<&Vec<u8>> = m.map.keys().collect();
    let many = s.get_many(&paths).expect("get_many reads");
    for ((p, r), got) in m.map.iter().zip(many) {
        assert_eq!(
            got.map(|v| v.to_record()).as_ref(),
            Some(r),
            "get_many {p:?}"
        );
    }

    // Lookups by id, including dead and never-assigned ids.
    let mut by_id: BTreeMap<u64, &Record> = BTreeMap::new();
    for r in m.map.values() {
        by_id.insert(r.id, r);
    }
    for id in 0..m.next_id + 3 {
        let got = s
            .get_by_id(id)
            .expect("get_by_id reads")
            .map(|v| v.to_record());
        assert_eq!(got.as_ref(), by_id.get(&id).copied(), "get_by_id({id})");
        if got.is_none() {
            assert_eq!(s.entry_by_id(id), None);
        }
    }

    for dir in DIRS {
        let got: Vec<Record> = s
            .iter_dir(dir)
            .map(|r| r.expect("record reads").to_record())
            .collect();
        let want: Vec<Record> = want
            .iter()
            .filter(|r| under(&r.path, dir))
            .cloned()
            .collect();
        assert_eq!(got, want, "iter_dir({:?})", String::from_utf8_lossy(dir));
    }

    for (kind, n) in s.count_by_kind() {
        let want = m.map.values().filter(|r| r.kind == kind).count() as u64;
        assert_eq!(n, want, "count_by_kind {kind:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Operations

#[derive(Clone, Debug)]
enum Op {
    /// Upsert a record at `POOL[.0 % len]`.
    Upsert(usize, Box<Record>),
    /// Upsert a record that is too large to store: must fail and leave the batch unchanged.
    UpsertTooLarge(usize),
    /// Upsert with an empty path: must fail and leave the batch unchanged.
    UpsertEmptyPath,
    Remove(usize),
    /// Upsert at any path (the large test).
    UpsertAt(Vec<u8>, Box<Record>),
    /// Remove any path (the large test).
    RemoveAt(Vec<u8>),
    RemoveAbsent(usize),
    /// Remove by id: a live id (0), a dead or never-assigned id (1), id 0 (2), a huge id (3).
    RemoveId(u8, usize),
}

#[derive(Clone, Debug)]
enum IdxDamage {
    Keep,
    Delete,
    /// Flip one bit at this (scaled) position.
    FlipBit(usize),
    /// Truncate to this (scaled) length.
    Truncate(usize),
    /// Put back the checkpoint saved by the last `SaveIdx`, as if the writer had been killed
    /// after it (all later commits must be replayed).
    Stale,
    /// Replace with garbage of the right magic but nothing else.
    Garbage,
}

#[derive(Clone, Debug)]
enum Step {
    Batch(Vec<Op>, bool),
    Reopen(IdxDamage),
    /// Reopen after appending bytes past the committed length, as a crash during an append
    /// leaves them: they must be ignored, and overwritten by the next commit.
    ReopenWithTail(Vec<u8>),
    /// File-backed: open a reader if there is none, else check its old view and refresh it.
    Refresh,
    /// Keep a snapshot and the model it must keep showing.
    Hold,
    /// Write the checkpoint now and keep a copy of it for a later `Stale` reopen.
    SaveIdx,
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z é✓]{0,6}"
}

fn record() -> impl Strategy<Value = Record> {
    let ids = (
        prop_oneof![Just(0u64), any::<u64>()],
        any::<i64>(),
        any::<u64>(),
        0usize..5,
        any::<u16>(),
    );
    let tags = (
        option::of(text()),
        vec(text(), 0..3),
        option::of(text()),
        vec(text(), 0..2),
        option::of(any::<i32>()),
        option::of(any::<u32>()),
    );
    let audio = (
        option::of(any::<u64>()),
        option::of(any::<u32>()),
        option::of(any::<u8>()),
        option::of(any::<bool>()),
        option::of(text()),
        option::of(Just("audio/flac".to_owned())),
    );
    (ids, tags, audio).prop_map(
        |(
            (size, mtime_ns, inode, kind, extractor_version),
            (title, artists, album, genres, year, track),
            (duration_ms, sample_rate, channels, compilation, error, mime),
        )| Record {
            size,
            mtime_ns,
            inode,
            kind: [
                Kind::Other,
                Kind::Audio,
                Kind::Video,
                Kind::Image,
                Kind::Playlist,
            ][kind],
            extractor_version,
            title,
            artists,
            album,
            genres,
            year,
            track,
            duration_ms,
            sample_rate,
            channels,
            compilation,
            error,
            mime,
            ..Record::default()
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..POOL.len(), record()).prop_map(|(p, r)| Op::Upsert(p, Box::new(r))),
        4 => (0..POOL.len()).prop_map(Op::Remove),
        1 => (0..ABSENT.len()).prop_map(Op::RemoveAbsent),
        3 => (0u8..4, any::<usize>()).prop_map(|(k, i)| Op::RemoveId(k, i)),
        1 => (0..POOL.len()).prop_map(Op::UpsertTooLarge),
        1 => Just(Op::UpsertEmptyPath),
    ]
}

fn step(file_backed: bool) -> BoxedStrategy<Step> {
    let batch = (vec(op(), 0..8), prop::bool::weighted(0.85)).prop_map(|(o, c)| Step::Batch(o, c));
    let damage = prop_oneof![
        3 => Just(IdxDamage::Keep),
        1 => Just(IdxDamage::Delete),
        1 => any::<usize>().prop_map(IdxDamage::FlipBit),
        1 => any::<usize>().prop_map(IdxDamage::Truncate),
        2 => Just(IdxDamage::Stale),
        1 => Just(IdxDamage::Garbage),
    ];
    let tail = prop_oneof![
        vec(any::<u8>(), 1..600),
        (1usize..300).prop_map(|n| b"MDBF".repeat(n)),
    ]
    .prop_map(Step::ReopenWithTail);
    if file_backed {
        prop_oneof![
            12 => batch,
            3 => damage.prop_map(Step::Reopen),
            1 => tail,
            2 => Just(Step::Refresh),
            1 => Just(Step::Hold),
            1 => Just(Step::SaveIdx),
        ]
        .boxed()
    } else {
        prop_oneof![
            12 => batch,
            3 => Just(Step::Reopen(IdxDamage::Keep)),
            1 => tail,
            2 => Just(Step::Refresh),
            1 => Just(Step::Hold),
        ]
        .boxed()
    }
}

/// Applies one batch to `db` and to a copy of `m`; returns the model after the batch (the old
/// one when the batch is dropped or changes nothing).
fn run_batch(db: &mut Database, m: &Model, ops: &[Op], commit: bool) -> Model {
    let mut b = db.batch().expect("batch");
    let mut w = m.clone();
    // Paths whose last operation in this batch is an upsert.
    let mut upserted: BTreeSet<Vec<u8>> = BTreeSet::new();
    for op in ops {
        match op {
            Op::Upsert(_, rec) | Op::UpsertAt(_, rec) => {
                let path = match op {
                    Op::UpsertAt(path, _) => path.clone(),
                    Op::Upsert(p, _) => POOL[*p].to_vec(),
                    _ => unreachable!("matched above"),
                };
                let rec = Record {
                    path: path.clone(),
                    // Ignored by upsert; the model stores the id the database must assign.
                    id: 12345,
                    ..(**rec).clone()
                };
                let got = b.upsert(&rec).expect("upsert");
                let id = match w.map.get(&path) {
                    Some(old) => old.id,
                    None => {
                        w.next_id += 1;
                        w.next_id - 1
                    }
                };
                assert_eq!(got, id, "upsert({path:?}) id");
                w.map.insert(path.clone(), Record { id, ..rec });
                upserted.insert(path);
            }
            Op::UpsertTooLarge(p) => {
                let rec = Record {
                    title: Some("x".repeat((1 << 20) + 16)),
                    ..Record::new(POOL[*p].to_vec())
                };
                let r = b.upsert(&rec);
                assert!(
                    matches!(r, Err(CommitError::BadRecord { .. })),
                    "oversized record: {r:?}"
                );
            }
            Op::UpsertEmptyPath => {
                let r = b.upsert(&Record::new(Vec::new()));
                assert!(matches!(r, Err(CommitError::BadRecord { .. })), "{r:?}");
            }
            Op::Remove(_) | Op::RemoveAt(_) => {
                let path = match op {
                    Op::RemoveAt(path) => path.as_slice(),
                    Op::Remove(p) => POOL[*p],
                    _ => unreachable!("matched above"),
                };
                let got = b.remove(path).expect("remove");
                assert_eq!(got, w.map.remove(path).is_some(), "remove({path:?})");
                upserted.remove(path);
            }
            Op::RemoveAbsent(p) => {
                assert!(!b.remove(ABSENT[*p]).expect("remove"));
            }
            Op::RemoveId(kind, i) => {
                let id = match kind {
                    0 if !w.map.is_empty() => {
                        let ids: Vec<u64> = w.map.values().map(|r| r.id).collect();
                        ids[i % ids.len()]
                    }
                    0 | 1 => (*i as u64) % (w.next_id + 2),
                    2 => 0,
                    _ => u64::MAX - (*i as u64 % 3),
                };
                let want = match w.path_of(id) {
                    Some(p) => {
                        w.map.remove(&p);
                        upserted.remove(&p);
                        true
                    }
                    None => false,
                };
                assert_eq!(b.remove_id(id), want, "remove_id({id})");
            }
        }
    }
    if !commit {
        drop(b);
        return m.clone();
    }
    let info = b.commit().expect("commit");
    let live: BTreeSet<u64> = w.map.values().map(|r| r.id).collect();
    let removed = m.map.values().filter(|r| !live.contains(&r.id)).count() as u64;
    let written = !upserted.is_empty() || removed > 0;
    if !written {
        assert_eq!(
            w.map, m.map,
            "model: a batch that writes nothing changes nothing"
        );
        assert_eq!(info.seq, m.seq);
        assert_eq!(info.bytes, 0);
        return m.clone();
    }
    w.seq = m.seq + 1;
    let inserted = upserted
        .iter()
        .filter(|p| w.map[*p].id >= m.next_id)
        .count() as u64;
    assert_eq!(
        (info.seq, info.upserted, info.inserted, info.removed),
        (w.seq, upserted.len() as u64, inserted, removed),
        "CommitInfo"
    );
    assert!(info.bytes > 0);
    w
}

/// Ids only grow: a path that stays keeps its id, a new or re-inserted path gets an id above
/// every id handed out before.
fn check_ids(before: &Model, after: &Model, ever: &mut BTreeSet<u64>) {
    for (p, r) in &after.map {
        match before.map.get(p) {
            Some(old) if old.id == r.id => {}
            _ => {
                assert!(r.id >= before.next_id, "new id {} reuses an old one", r.id);
                assert!(ever.insert(r.id), "id {} handed out twice", r.id);
            }
        }
    }
    assert!(after.next_id >= before.next_id);
}

// ---------------------------------------------------------------------------------------------
// Harness

fn idx_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".idx");
    PathBuf::from(s)
}

/// Replaces `path` by `bytes` under a new inode, so handles that map the old file (snapshots
/// loaded from a checkpoint) keep seeing the old bytes, as after a real checkpoint rename.
fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("replacing");
    fs::write(&tmp, bytes).expect("write");
    fs::rename(&tmp, path).expect("rename");
}

fn damage_idx(db: &Path, how: &IdxDamage, saved: Option<&Vec<u8>>) {
    let idx = idx_path(db);
    let cur = fs::read(&idx).ok();
    match how {
        IdxDamage::Keep => {}
        IdxDamage::Delete => {
            let _ = fs::remove_file(&idx);
        }
        IdxDamage::FlipBit(at) => {
            if let Some(mut b) = cur.filter(|b| !b.is_empty()) {
                let bit = at % (b.len() * 8);
                b[bit / 8] ^= 1 << (bit % 8);
                replace_file(&idx, &b);
            }
        }
        IdxDamage::Truncate(at) => {
            if let Some(b) = cur.filter(|b| !b.is_empty()) {
                replace_file(&idx, &b[..at % b.len()]);
            }
        }
        IdxDamage::Stale => {
            if let Some(b) = saved {
                replace_file(&idx, b);
            }
        }
        IdxDamage::Garbage => {
            let mut b = vec![0xa5u8; 8192];
            b[..8].copy_from_slice(b"MDBIDX\0\0");
            replace_file(&idx, &b);
        }
    }
}

enum Backend {
    File {
        _dir: tempfile::TempDir,
        path: PathBuf,
        saved_idx: Option<Vec<u8>>,
    },
    Mem(Arc<MemStorage>),
}

struct Harness {
    backend: Backend,
    db: Option<Database>,
    model: Model,
    /// A read-only handle and the model it was last moved to.
    reader: Option<(Database, Model)>,
    held: Vec<(Snapshot, Model)>,
    ever: BTreeSet<u64>,
}

impl Harness {
    fn new(file_backed: bool) -> Harness {
        let (backend, db) = if file_backed {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("lib.mediadb");
            let db = Database::create(&path).expect("create");
            (
                Backend::File {
                    _dir: dir,
                    path,
                    saved_idx: None,
                },
                db,
            )
        } else {
            let mem = Arc::new(MemStorage::new());
            let db = Database::with_storage(mem.clone(), true).expect("with_storage");
            (Backend::Mem(mem), db)
        };
        Harness {
            backend,
            db: Some(db),
            model: Model::empty(),
            reader: None,
            held: Vec::new(),
            ever: BTreeSet::new(),
        }
    }

    fn db(&mut self) -> &mut Database {
        self.db.as_mut().expect("open")
    }

    fn step(&mut self, s: &Step) {
        match s {
            Step::Batch(ops, commit) => {
                let before = self.model.clone();
                let after = run_batch(self.db(), &before, ops, *commit);
                check_ids(&before, &after, &mut self.ever);
                self.model = after;
            }
            Step::Reopen(how) => {
                drop(self.db.take());
                match &mut self.backend {
                    Backend::File {
                        path, saved_idx, ..
                    } => {
                        damage_idx(path, how, saved_idx.as_ref());
                        self.db = Some(Database::open(&*path).expect("reopen"));
                    }
                    Backend::Mem(mem) => {
                        let fresh = Arc::new(MemStorage::from_bytes(mem.to_bytes()));
                        *mem = fresh.clone();
                        self.db = Some(Database::with_storage(fresh, true).expect("reopen"));
                        // A reader of the old storage would never see new commits.
                        self.reader = None;
                    }
                }
            }
            Step::ReopenWithTail(tail) => {
                drop(self.db.take());
                match &mut self.backend {
                    Backend::File { path, .. } => {
                        let mut f = fs::OpenOptions::new()
                            .append(true)
                            .open(&*path)
                            .expect("open");
                        std::io::Write::write_all(&mut f, tail).expect("append");
                        self.db = Some(Database::open(&*path).expect("reopen"));
                    }
                    Backend::Mem(mem) => {
                        let mut bytes = mem.to_bytes();
                        bytes.extend_from_slice(tail);
                        let fresh = Arc::new(MemStorage::from_bytes(bytes));
                        *mem = fresh.clone();
                        self.db = Some(Database::with_storage(fresh, true).expect("reopen"));
                        self.reader = None;
                    }
                }
            }
            Step::Refresh => match self.reader.take() {
                None => {
                    let reader = match &self.backend {
                        Backend::File { path, .. } => Database::open_read_only(path),
                        Backend::Mem(mem) => Database::with_storage(mem.clone(), false),
                    }
                    .expect("open reader");
                    assert!(!reader.is_writable());
                    self.reader = Some((reader, self.model.clone()));
                }
                Some((mut reader, old)) => {
                    check(&reader.snapshot(), &old);
                    let before = reader.snapshot();
                    let changed = reader.refresh().expect("refresh");
                    assert_eq!(changed, old.seq != self.model.seq, "refresh() result");
                    check(&before, &old);
                    self.reader = Some((reader, self.model.clone()));
                }
            },
            Step::Hold => {
                let snap = self.db().snapshot();
                self.held.push((snap, self.model.clone()));
                if self.held.len() > 3 {
                    self.held.remove(0);
                }
            }
            Step::SaveIdx => {
                self.db().checkpoint().expect("checkpoint");
                if let Backend::File {
                    path, saved_idx, ..
                } = &mut self.backend
                {
                    *saved_idx = fs::read(idx_path(path)).ok();
                }
            }
        }
        self.check_all();
    }

    fn check_all(&mut self) {
        let model = self.model.clone();
        check(&self.db().snapshot(), &model);
        if let Some((reader, m)) = &self.reader {
            check(&reader.snapshot(), m);
        }
        for (snap, m) in &self.held {
            check(snap, m);
        }
    }

    /// Ends the run with one more reopen of each kind the backend supports.
    fn finish(mut self) {
        let kinds: &[IdxDamage] = match self.backend {
            Backend::File { .. } => &[IdxDamage::Keep, IdxDamage::Delete, IdxDamage::Stale],
            Backend::Mem(_) => &[IdxDamage::Keep],
        };
        for k in kinds {
            self.step(&Step::Reopen(k.clone()));
        }
    }
}

fn run(steps: &[Step], file_backed: bool) {
    let mut h = Harness::new(file_backed);
    h.check_all();
    for s in steps {
        h.step(s);
    }
    h.finish();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn file_backed_database_matches_model(steps in vec(step(true), 1..40)) {
        run(&steps, true);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mem_backed_database_matches_model(steps in vec(step(false), 1..40)) {
        run(&steps, false);
    }
}

/// One change inside a batch, for [`upsert_many_is_upserting_each_record_in_order`].
#[derive(Clone, Debug)]
enum Change {
    /// `upsert_many` of these paths (indexes into `POOL`), sizes from their position.
    Many(Vec<usize>),
    Upsert(usize),
    Remove(usize),
    Commit,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => vec(0..POOL.len(), 0..24).prop_map(Change::Many),
        2 => (0..POOL.len()).prop_map(Change::Upsert),
        1 => (0..POOL.len()).prop_map(Change::Remove),
        1 => Just(Change::Commit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// `upsert_many` (which resolves paths repeated within the call, pending in the batch or
    /// committed, all at once) gives the same ids, records and counts as upserting each record
    /// in order with `upsert`.
    #[test]
    fn upsert_many_is_upserting_each_record_in_order(changes in vec(change(), 1..30)) {
        let open = || Database::with_storage(Arc::new(MemStorage::new()), true).expect("mem");
        let all_records = |db: &Database| -> Vec<Record> {
            db.snapshot().iter().map(|r| r.expect("record reads").to_record()).collect()
        };
        let (mut many, mut one) = (open(), open());
        let rec = |i: usize, size: u64| Record { size, ..Record::new(POOL[i].to_vec()) };
        let mut size = 0;
        for batch in changes.split(|c| matches!(c, Change::Commit)) {
            let (mut m, mut o) = (many.batch().expect("batch"), one.batch().expect("batch"));
            for c in batch {
                match c {
                    Change::Many(paths) => {
                        let recs: Vec<Record> = paths
                            .iter()
                            .map(|&i| {
                                size += 1;
                                rec(i, size)
                            })
                            .collect();
                        let ids = m.upsert_many(&recs).expect("upsert_many");
                        let one_by_one: Vec<u64> =
                            recs.iter().map(|r| o.upsert(r).expect("upsert")).collect();
                        prop_assert_eq!(ids, one_by_one);
                    }
                    Change::Upsert(i) => {
                        size += 1;
                        let (a, b) = (m.upsert(&rec(*i, size)), o.upsert(&rec(*i, size)));
                        prop_assert_eq!(a.expect("upsert"), b.expect("upsert"));
                    }
                    Change::Remove(i) => {
                        let (a, b) = (m.remove(POOL[*i]), o.remove(POOL[*i]));
                        prop_assert_eq!(a.expect("remove"), b.expect("remove"));
                    }
                    Change::Commit => unreachable!("split at commits"),
                }
            }
            let (cm, co) = (m.commit().expect("commit"), o.commit().expect("commit"));
            prop_assert_eq!(
                (cm.upserted, cm.inserted, cm.removed),
                (co.upserted, co.inserted, co.removed)
            );
            prop_assert_eq!(all_records(&many), all_records(&one));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshot isolation across threads

#[test]
fn snapshots_sent_to_threads_keep_their_state_while_the_writer_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut db = Database::create(dir.path().join("lib.mediadb")).expect("create");
    let mut model = Model::empty();
    let (tx, rx) = mpsc::channel::<(Snapshot, Model)>();
    let rx = std::sync::Mutex::new(rx);
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let mut seen: Vec<(Snapshot, Model)> = Vec::new();
                    loop {
                        let next = rx.lock().expect("lock").recv();
                        let Ok((snap, m)) = next else { break };
                        // Re-check everything held so far while the writer keeps committing.
                        for (s, m) in &seen {
                            check(s, m);
                        }
                        check(&snap, &m);
                        let clone = snap.clone();
                        seen.push((clone, m));
                    }
                    for (s, m) in &seen {
                        check(s, m);
                    }
                    seen.len()
                })
            })
            .collect();
        for round in 0..24usize {
            tx.send((db.snapshot(), model.clone())).expect("send");
            let ops: Vec<Op> = (0..4)
                .map(|k| {
                    let p = (round * 7 + k * 3) % POOL.len();
                    match (round + k) % 5 {
                        0 => Op::Remove(p),
                        1 => Op::RemoveId(0, round + k),
                        _ => Op::Upsert(
                            p,
                            Box::new(Record {
                                size: (round * 10 + k) as u64,
                                title: Some(format!("round {round}")),
                                ..Record::default()
                            }),
                        ),
                    }
                })
                .collect();
            let next = run_batch(&mut db, &model, &ops, true);
            model = next;
            check(&db.snapshot(), &model);
        }
        drop(tx);
        let total: usize = readers
            .into_iter()
            .map(|r| r.join().expect("reader thread"))
            .sum();
        assert_eq!(total, 24);
    });
}

/// A reader refreshing in a loop while the writer commits only ever sees whole commits.
#[test]
fn reader_refreshing_during_commits_sees_only_whole_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lib.mediadb");
    let mut db = Database::create(&path).expect("create");
    let mut reader = Database::open_read_only(&path).expect("reader");
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut models = vec![Model::empty()];
    let seen = std::thread::scope(|scope| {
        let seen = scope.spawn(|| {
            let mut seen = vec![reader.snapshot()];
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                if reader.refresh().expect("refresh") {
                    seen.push(reader.snapshot());
                }
            }
            reader.refresh().expect("refresh");
            seen.push(reader.snapshot());
            seen
        });
        for round in 0..60usize {
            let m = models.last().expect("model").clone();
            let ops: Vec<Op> = (0..3)
                .map(|k| {
                    let p = (round * 5 + k) % POOL.len();
                    if (round + k) % 4 == 0 {
                        Op::Remove(p)
                    } else {
                        Op::Upsert(
                            p,
                            Box::new(Record {
                                size: round as u64,
                                ..Record::default()
                            }),
                        )
                    }
                })
                .collect();
            let next = run_batch(&mut db, &m, &ops, true);
            if next.seq != m.seq {
                models.push(next);
            }
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        seen.join().expect("reader thread")
    });
    for s in &seen {
        check(s, &models[s.seq() as usize]);
    }
    assert_eq!(seen.last().expect("one").seq(), models.len() as u64 - 1);
}

/// Thousands of records: the path table grows (rebuilds) and ids cross index chunk boundaries,
/// through commits, a checkpoint, a rebuild from the log and an in-memory copy.
#[test]
fn large_batches_grow_the_table_and_cross_chunk_boundaries() {
    let bulk = |i: usize| format!("/m/bulk/{}/{i}.flac", i % 7).into_bytes();
    let upsert = |i: usize, size: u64| {
        Op::UpsertAt(
            bulk(i),
            Box::new(Record {
                size,
                kind: if i.is_multiple_of(2) {
                    Kind::Audio
                } else {
                    Kind::Image
                },
                ..Record::default()
            }),
        )
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lib.mediadb");
    let mut db = Database::create(&path).expect("create");
    let mut m = Model::empty();
    let mut ever = BTreeSet::new();
    let mut step = |db: &mut Database, m: &mut Model, ops: Vec<Op>| {
        let next = run_batch(db, m, &ops, true);
        check_ids(m, &next, &mut ever);
        *m = next;
        check(&db.snapshot(), m);
    };
    step(&mut db, &mut m, (0..3000).map(|i| upsert(i, 1)).collect());
    // Update every 5th, remove every 3rd, add more: ids pass 4096.
    let mut ops: Vec<Op> = (0..3000).step_by(5).map(|i| upsert(i, 2)).collect();
    ops.extend((0..3000).step_by(3).map(|i| Op::RemoveAt(bulk(i))));
    ops.extend((3000..4500).map(|i| upsert(i, 3)));
    step(&mut db, &mut m, ops);
    let held = (db.snapshot(), m.clone());
    drop(db);
    let mut db = Database::open(&path).expect("reopen with checkpoint");
    check(&db.snapshot(), &m);
    // Re-insert the removed paths: new ids, above every earlier one.
    step(
        &mut db,
        &mut m,
        (0..3000).step_by(3).map(|i| upsert(i, 4)).collect(),
    );
    assert!(m.next_id > 5000);
    drop(db);
    fs::remove_file(idx_path(&path)).expect("rm idx");
    let db = Database::open(&path).expect("reopen from the log");
    check(&db.snapshot(), &m);
    let bytes = fs::read(&path).expect("read");
    let mem = Database::with_storage(Arc::new(MemStorage::from_bytes(bytes)), false).expect("mem");
    check(&mem.snapshot(), &m);
    check(&held.0, &held.1);
}

#[test]
fn snapshot_taken_before_a_commit_keeps_the_old_state() {
    let mut db = Database::with_storage(Arc::new(MemStorage::new()), true).expect("mem");
    let m0 = Model::empty();
    let ops = [Op::Upsert(1, Box::default()), Op::Upsert(4, Box::default())];
    let m1 = run_batch(&mut db, &m0, &ops, true);
    let s1 = db.snapshot();
    let ops = [
        Op::Remove(1),
        Op::Upsert(
            4,
            Box::new(Record {
                size: 9,
                ..Record::default()
            }),
        ),
        Op::Upsert(7, Box::default()),
    ];
    let m2 = run_batch(&mut db, &m1, &ops, true);
    assert_ne!(m1, m2);
    check(&s1, &m1);
    check(&db.snapshot(), &m2);
}

// ---------------------------------------------------------------------------------------------
// Regressions

/// An id handed to a record that is removed again in the same batch used to make the frame's
/// `next_id` exceed what the reader accepted: the commit was durable but failed to apply,
/// poisoned the handle, and every later open failed with `Corrupt`.
#[test]
fn upsert_then_remove_in_one_batch_keeps_the_database_openable() {
    for how in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lib.mediadb");
        let mut db = Database::create(&path).expect("create");
        let mut b = db.batch().expect("batch");
        let p = b.upsert(&Record::new(b"/p".to_vec())).expect("upsert");
        match how {
            0 => assert!(b.remove(b"/p").expect("remove")),
            1 => assert!(b.remove_id(p)),
            _ => {
                assert!(b.remove(b"/p").expect("remove"));
                let again = b.upsert(&Record::new(b"/p".to_vec())).expect("upsert");
                assert!(again > p);
            }
        }
        let q = b.upsert(&Record::new(b"/q".to_vec())).expect("upsert");
        b.commit().expect("commit");
        let mut b = db.batch().expect("a later batch");
        let r = b.upsert(&Record::new(b"/r".to_vec())).expect("upsert");
        assert!(r > q);
        b.commit().expect("commit");
        drop(db);
        std::fs::remove_file(idx_path(&path)).expect("remove idx");
        let db = Database::open(&path).expect("reopen");
        let s = db.snapshot();
        assert_eq!(s.get_by_id(q).expect("read").expect("q").path(), b"/q");
        assert_eq!(s.len(), if how == 2 { 3 } else { 2 });
    }
}

/// A failed upsert (record too large) must leave the batch as it was: it used to drop an
/// earlier upsert of the same path from the batch, and to use up an id with no record.
#[test]
fn failed_upsert_leaves_the_batch_unchanged() {
    let mut db = Database::with_storage(Arc::new(MemStorage::new()), true).expect("mem");
    let mut b = db.batch().expect("batch");
    let rec = Record {
        size: 1,
        ..Record::new(b"/a".to_vec())
    };
    let a = b.upsert(&rec).expect("upsert");
    let huge = Record {
        title: Some("x".repeat(2 << 20)),
        ..Record::new(b"/a".to_vec())
    };
    for _ in 0..20 {
        assert!(matches!(
            b.upsert(&huge),
            Err(CommitError::BadRecord { .. })
        ));
        assert!(matches!(
            b.upsert(&Record {
                path: b"/new".to_vec(),
                ..huge.clone()
            }),
            Err(CommitError::BadRecord { .. })
        ));
    }
    let c = b.upsert(&Record::new(b"/c".to_vec())).expect("upsert");
    assert_eq!(c, a + 1, "failed upserts must not use up ids");
    b.commit().expect("commit");
    let s = db.snapshot();
    assert_eq!(
        s.get(b"/a").expect("read").map(|v| v.to_record()),
        Some(Record { id: a, ..rec })
    );
    assert_eq!(s.len(), 2);
    assert_eq!(s.stats().next_id, c + 1);
}

/// A bulk upsert with an empty path among its records is refused whole, naming that record,
/// and leaves the batch as it was.
#[test]
fn upsert_many_refuses_an_empty_path_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut db = Database::create(dir.path().join("lib.mediadb")).expect("create");
    let mut b = db.batch().expect("batch");
    b.upsert(&Record::new(b"/m/kept.flac".to_vec()))
        .expect("upsert");
    let recs = [
        Record::new(b"/m/a.flac".to_vec()),
        Record::new(Vec::new()),
        Record::new(b"/m/b.flac".to_vec()),
    ];
    let e = b.upsert_many(&recs).expect_err("an empty path");
    assert!(
        matches!(&e, CommitError::BadRecord { path, what } if path.is_empty() && what == "empty path"),
        "{e:?}"
    );
    assert_eq!(b.len(), 1, "the refused call left nothing in the batch");
    b.commit().expect("commit");
    let s = db.snapshot();
    assert_eq!(s.len(), 1);
    assert!(s.get(b"/m/a.flac").expect("get").is_none());
}
