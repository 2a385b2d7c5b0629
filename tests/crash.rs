//! Crash consistency of the storage engine, checked against `docs/FORMAT.md` §2 and §5.
//!
//! A deterministic workload of mixed commits runs over [`FaultStorage`], which can kill the
//! "process" at any I/O operation and then say which bytes a reopened file could hold (each
//! unsynced write applied, dropped, torn or garbled). An in-test model predicts every id and the
//! full state after every commit, so a reopened database can be compared record for record.
//!
//! The same workload runs with `EIO` injected at every operation instead (the handle must
//! poison itself and lose nothing committed). The other tests damage a small database directly:
//! torn last commits, damaged header slots, a bit flip in every byte, and bit flips with the
//! checksums forged so that the parsers behind them see damaged input. The last test checks the
//! fault storage itself.
//!
//! No test catches panics: a panic anywhere in the engine fails the test.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use common::fault::{CrashMode, EIO, Fate, FaultStorage, Op as IoOp, Outcome};
use common::{SplitMix64, all_records, empty_db_image, open_image};
use mediadb::store::MemStorage;
use mediadb::store::format::path_hash;
use mediadb::store::format::{FrameHeader, Header, LOG_START, SLOT_LEN, SLOT_OFFSETS};
use mediadb::{CommitError, Database, Kind, OpenError, Record};

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// One operation of a batch.
#[derive(Clone, Debug)]
enum Op {
    Upsert(Box<Record>),
    /// `upsert_many`: the same as upserting each record in order.
    UpsertMany(Vec<Record>),
    Remove(Vec<u8>),
    RemoveId(u64),
}

/// What the model says an operation returns.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ret {
    Id(u64),
    Ids(Vec<u64>),
    Removed(bool),
}

/// One `batch()` .. `commit()`.
#[derive(Debug)]
struct Step {
    ops: Vec<Op>,
    rets: Vec<Ret>,
    /// The sequence number `commit()` reports (unchanged for a batch that writes nothing).
    seq_after: u64,
    /// Whether the commit writes a frame.
    writes: bool,
}

/// The expected database at one sequence number.
#[derive(Debug)]
struct State {
    seq: u64,
    next_id: u64,
    /// Live records in id order, `id` set to the id the model handed out.
    records: Vec<Arc<Record>>,
    /// Ids written by the commit that made this state and by the one before it.
    recent: BTreeSet<u64>,
}

/// A workload and the state after each of its commits (`states[seq]`).
#[derive(Debug)]
struct Plan {
    steps: Vec<Step>,
    states: Vec<State>,
}

/// The committed state as the model sees it.
#[derive(Default)]
struct Model {
    by_path: BTreeMap<Vec<u8>, Arc<Record>>,
    by_id: BTreeMap<u64, Vec<u8>>,
    /// Ids upserted by the last two commits.
    written: [Vec<u64>; 2],
    next_id: u64,
    seq: u64,
}

impl Model {
    fn new() -> Model {
        Model {
            next_id: 1,
            ..Model::default()
        }
    }

    fn state(&self) -> State {
        State {
            seq: self.seq,
            next_id: self.next_id,
            recent: self.written.iter().flatten().copied().collect(),
            records: self
                .by_id
                .values()
                .map(|p| self.by_path[p].clone())
                .collect(),
        }
    }
}

/// A batch in the model, following the documented semantics: operations apply in order, the
/// last one on a path wins, an updated path keeps its id, a new path (or a path removed earlier
/// in the batch) gets the next id, and ids are never reused.
struct ModelBatch<'m> {
    base: &'m Model,
    /// Committed ids removed by this batch.
    removed: BTreeSet<u64>,
    /// Live upserts of this batch.
    pending: BTreeMap<Vec<u8>, Record>,
    next_id: u64,
}

impl<'m> ModelBatch<'m> {
    fn new(base: &'m Model) -> ModelBatch<'m> {
        ModelBatch {
            base,
            removed: BTreeSet::new(),
            pending: BTreeMap::new(),
            next_id: base.next_id,
        }
    }

    fn committed_id(&self, path: &[u8]) -> Option<u64> {
        let id = self.base.by_path.get(path)?.id;
        (!self.removed.contains(&id)).then_some(id)
    }

    fn remove_committed(&mut self, id: u64) -> bool {
        self.base.by_id.contains_key(&id) && self.removed.insert(id)
    }

    fn upsert(&mut self, rec: &Record) -> u64 {
        let id = if let Some(p) = self.pending.get(&rec.path) {
            p.id
        } else if let Some(id) = self.committed_id(&rec.path) {
            id
        } else {
            self.next_id += 1;
            self.next_id - 1
        };
        let rec = Record { id, ..rec.clone() };
        self.pending.insert(rec.path.clone(), rec);
        id
    }

    fn apply(&mut self, op: &Op) -> Ret {
        match op {
            Op::Upsert(rec) => Ret::Id(self.upsert(rec)),
            Op::UpsertMany(recs) => Ret::Ids(recs.iter().map(|r| self.upsert(r)).collect()),
            Op::Remove(path) => {
                if let Some(p) = self.pending.remove(path) {
                    self.remove_committed(p.id);
                    return Ret::Removed(true);
                }
                Ret::Removed(match self.committed_id(path) {
                    Some(id) => self.remove_committed(id),
                    None => false,
                })
            }
            Op::RemoveId(id) => {
                let before = self.pending.len();
                self.pending.retain(|_, r| r.id != *id);
                let found = self.pending.len() != before;
                Ret::Removed(self.remove_committed(*id) || found)
            }
        }
    }

    /// The paths live in the batch's view: committed and not removed, or pending.
    fn live_paths(&self) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = self
            .base
            .by_path
            .iter()
            .filter(|(_, r)| !self.removed.contains(&r.id))
            .map(|(p, _)| p.clone())
            .collect();
        v.extend(self.pending.keys().cloned());
        v
    }

    fn id_of(&self, path: &[u8]) -> Option<u64> {
        self.pending
            .get(path)
            .map(|r| r.id)
            .or_else(|| self.committed_id(path))
    }

    /// Whether the commit writes anything (the engine skips a batch with no live upsert and
    /// no removal, and then hands the same ids out again).
    fn writes(&self) -> bool {
        !self.pending.is_empty() || !self.removed.is_empty()
    }

    fn into_change(self) -> Option<Change> {
        self.writes().then_some(Change {
            removed: self.removed,
            pending: self.pending,
            next_id: self.next_id,
        })
    }
}

/// What a batch that writes changes.
struct Change {
    removed: BTreeSet<u64>,
    pending: BTreeMap<Vec<u8>, Record>,
    next_id: u64,
}

impl Model {
    fn commit(&mut self, change: Change) {
        let Change {
            removed,
            pending,
            next_id,
        } = change;
        for id in removed {
            let path = self.by_id.remove(&id).expect("removed ids are live");
            self.by_path.remove(&path);
        }
        self.written.swap(0, 1);
        self.written[1] = pending.values().map(|r| r.id).collect();
        for (path, rec) in pending {
            if let Some(old) = self.by_path.get(&path) {
                assert_eq!(old.id, rec.id, "an update keeps the id");
            }
            self.by_id.insert(rec.id, path.clone());
            self.by_path.insert(path, Arc::new(rec));
        }
        self.next_id = next_id;
        self.seq += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Generating workloads
// ---------------------------------------------------------------------------------------------

/// Makes records with fresh paths and new versions of existing ones.
struct Gen {
    rng: SplitMix64,
    fresh: u64,
    /// Bumped for every record made, and part of its title, so a title names one version.
    version: u32,
    /// Whether some records get tags of a few KiB.
    long_tags: bool,
}

const ARTISTS: [&str; 6] = ["Nina", "Miles", "Björk", "Ali Farka Touré", "Can", "Sade"];
const GENRES: [&str; 5] = ["Jazz", "Rock", "Électronique", "Blues", "Soul"];

impl Gen {
    fn new(seed: u64, long_tags: bool) -> Gen {
        Gen {
            rng: SplitMix64::new(seed),
            fresh: 0,
            version: 0,
            long_tags,
        }
    }

    fn fresh_path(&mut self) -> Vec<u8> {
        self.fresh += 1;
        let n = self.fresh;
        let r = self.rng.below(20);
        if r == 0 {
            // Not UTF-8: paths are exact bytes.
            let mut p = b"/music/\xff\xfe odd/".to_vec();
            p.extend_from_slice(format!("{n:05}.mp3").as_bytes());
            p
        } else {
            let ext = ["flac", "mp3", "ogg", "jpg", "mkv", "m3u", "txt"][(r % 7) as usize];
            format!(
                "/music/Artist {:02}/Album {:02}/{n:05} Song.{ext}",
                n % 17,
                n % 5
            )
            .into_bytes()
        }
    }

    /// A record for `path` with a new version of its tags.
    fn record(&mut self, path: Vec<u8>) -> Box<Record> {
        self.version += 1;
        let v = self.version;
        let rng = &mut self.rng;
        let kind = match path.rsplit(|b| *b == b'.').next() {
            Some(b"flac" | b"mp3" | b"ogg") => Kind::Audio,
            Some(b"jpg") => Kind::Image,
            Some(b"mkv") => Kind::Video,
            Some(b"m3u") => Kind::Playlist,
            _ => Kind::Other,
        };
        let title = if self.long_tags && rng.chance(1, 25) {
            // An occasional long tag makes records of a few KiB.
            format!(
                "Long title v{v} {}",
                "la ".repeat(rng.range(300, 1200) as usize)
            )
        } else {
            format!("Title {v}")
        };
        let artists = (0..rng.below(4))
            .map(|_| (*rng.pick(&ARTISTS)).to_owned())
            .collect();
        let genres = (0..rng.below(3))
            .map(|_| (*rng.pick(&GENRES)).to_owned())
            .collect();
        Box::new(Record {
            id: 0,
            path,
            size: rng.below(1 << 32),
            mtime_ns: rng.next_u64() as i64 >> 8,
            inode: rng.next_u64(),
            kind,
            extractor_version: (v % 4) as u16,
            mime: rng.chance(3, 4).then(|| "audio/flac".to_owned()),
            title: Some(title),
            artists,
            album: rng.chance(2, 3).then(|| format!("Album {}", v % 13)),
            album_artist: rng.chance(1, 4).then(|| "Various".to_owned()),
            genres,
            year: rng.chance(2, 3).then(|| 1950 + rng.below(75) as i32),
            track: rng.chance(2, 3).then(|| rng.below(30) as u32),
            track_total: rng.chance(1, 3).then_some(30),
            disc: rng.chance(1, 4).then_some(1),
            disc_total: rng.chance(1, 4).then_some(2),
            duration_ms: rng.chance(2, 3).then(|| rng.below(600_000)),
            bitrate: rng.chance(1, 2).then_some(320),
            sample_rate: rng.chance(1, 2).then_some(44_100),
            channels: rng.chance(1, 2).then_some(2),
            bit_depth: rng.chance(1, 3).then_some(16),
            compilation: rng.chance(1, 5).then_some(false),
            has_cover: rng.chance(1, 3).then(|| rng.chance(1, 2)),
            musicbrainz_track_id: rng.chance(1, 5).then(|| format!("mb-track-{v}")),
            musicbrainz_album_id: rng.chance(1, 5).then(|| format!("mb-album-{v}")),
            error: rng.chance(1, 12).then(|| "truncated tag".to_owned()),
            tags: if rng.chance(1, 8) {
                vec![("Label".to_owned(), format!("L{v}"))]
            } else {
                Vec::new()
            },
        })
    }
}

/// What a step of the schedule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StepKind {
    /// Mixed random inserts, updates and removals.
    Random,
    /// A few inserts, updates and removals.
    Few,
    /// `batch()` then `commit()` with no operation.
    Empty,
    /// Operations that cancel out (insert then remove): nothing is written.
    NetEmpty,
    /// Ids handed out and dropped again within a batch that also writes.
    BurnedIds,
    /// Thousands of inserts.
    Big,
    /// Many updates and removals of the big batch's records.
    BigChurn,
}

/// Builds a workload of `kinds.len()` batches and runs the model over it.
fn build_plan(seed: u64, long_tags: bool, kinds: &[StepKind]) -> Plan {
    let mut g = Gen::new(seed, long_tags);
    let mut model = Model::new();
    let mut states = vec![model.state()];
    let mut steps = Vec::with_capacity(kinds.len());
    for &kind in kinds {
        let mut b = ModelBatch::new(&model);
        let mut ops = Vec::new();
        let mut rets = Vec::new();
        let mut run = |b: &mut ModelBatch<'_>, op: Op| {
            rets.push(b.apply(&op));
            ops.push(op);
        };
        match kind {
            StepKind::Empty => {}
            StepKind::NetEmpty => {
                let a = g.fresh_path();
                run(&mut b, Op::Upsert(g.record(a.clone())));
                run(&mut b, Op::Remove(a));
                let c = g.fresh_path();
                run(&mut b, Op::Upsert(g.record(c.clone())));
                let id = b.id_of(&c).expect("just inserted");
                run(&mut b, Op::RemoveId(id));
                run(&mut b, Op::Remove(b"/no/such/file".to_vec()));
                run(&mut b, Op::RemoveId(u64::MAX));
            }
            StepKind::BurnedIds => {
                for _ in 0..3 {
                    let p = g.fresh_path();
                    run(&mut b, Op::Upsert(g.record(p)));
                }
                let x = g.fresh_path();
                run(&mut b, Op::Upsert(g.record(x.clone())));
                run(&mut b, Op::Remove(x.clone()));
                let y = g.fresh_path();
                run(&mut b, Op::Upsert(g.record(y.clone())));
                let yid = b.id_of(&y).expect("just inserted");
                run(&mut b, Op::RemoveId(yid));
                // Re-inserting a path removed in the same batch gets a new id.
                run(&mut b, Op::Upsert(g.record(x)));
                let live = b.live_paths();
                if live.len() >= 3 {
                    // Update then remove a committed path; remove then re-insert another.
                    let p = live[0].clone();
                    run(&mut b, Op::Upsert(g.record(p.clone())));
                    run(&mut b, Op::Remove(p));
                    let q = live[1].clone();
                    run(&mut b, Op::Remove(q.clone()));
                    run(&mut b, Op::Upsert(g.record(q)));
                    // Update twice, then remove by id.
                    let r = live[2].clone();
                    run(&mut b, Op::Upsert(g.record(r.clone())));
                    run(&mut b, Op::Upsert(g.record(r.clone())));
                    let rid = b.id_of(&r).expect("live");
                    run(&mut b, Op::RemoveId(rid));
                }
                for _ in 0..2 {
                    let p = g.fresh_path();
                    run(&mut b, Op::Upsert(g.record(p)));
                }
            }
            StepKind::Big => {
                // Through upsert_many (parallel encoding): new paths, paths repeated within
                // the call (the later one wins) and updates of committed paths.
                let live = b.live_paths();
                let mut recs = Vec::with_capacity(2600);
                for i in 0..2500 {
                    let p = if i % 97 == 0 {
                        live[i % live.len()].clone()
                    } else {
                        g.fresh_path()
                    };
                    recs.push(*g.record(p));
                    if i % 101 == 0 {
                        let again = recs[i / 2].path.clone();
                        recs.push(*g.record(again));
                    }
                }
                run(&mut b, Op::UpsertMany(recs));
                let p = g.fresh_path();
                run(&mut b, Op::Upsert(g.record(p)));
            }
            StepKind::BigChurn => {
                let live = b.live_paths();
                for i in 0..400 {
                    let p = live[(i * 7) % live.len()].clone();
                    run(&mut b, Op::Upsert(g.record(p)));
                }
                for i in 0..200 {
                    let p = live[(i * 13 + 5) % live.len()].clone();
                    if i % 2 == 0 {
                        run(&mut b, Op::Remove(p));
                    } else if let Some(id) = b.id_of(&p) {
                        run(&mut b, Op::RemoveId(id));
                    }
                }
            }
            StepKind::Random | StepKind::Few => {
                let [inserts, updates, removes, remove_ids] = if kind == StepKind::Few {
                    [
                        g.rng.range(3, 9),
                        g.rng.below(3),
                        g.rng.below(2),
                        g.rng.below(2),
                    ]
                } else if g.rng.chance(1, 6) {
                    [
                        g.rng.range(60, 150),
                        g.rng.below(10),
                        g.rng.below(5),
                        g.rng.below(4),
                    ]
                } else {
                    [
                        g.rng.below(25),
                        g.rng.below(10),
                        g.rng.below(5),
                        g.rng.below(4),
                    ]
                };
                let mut left = [inserts, updates, removes, remove_ids];
                while left.iter().any(|n| *n > 0) {
                    let which = g.rng.below(4) as usize;
                    if left[which] == 0 {
                        continue;
                    }
                    left[which] -= 1;
                    let live = b.live_paths();
                    match which {
                        0 => {
                            let p = g.fresh_path();
                            run(&mut b, Op::Upsert(g.record(p)));
                        }
                        _ if live.is_empty() => {}
                        1 => {
                            let p = g.rng.pick(&live).clone();
                            run(&mut b, Op::Upsert(g.record(p)));
                        }
                        2 => {
                            let p = g.rng.pick(&live).clone();
                            run(&mut b, Op::Remove(p));
                        }
                        _ => {
                            let p = g.rng.pick(&live).clone();
                            let id = b.id_of(&p).expect("live");
                            run(&mut b, Op::RemoveId(id));
                        }
                    }
                }
                if g.rng.chance(1, 4) {
                    let bogus = b.next_id + 1000;
                    run(&mut b, Op::Remove(b"/music/never/was.flac".to_vec()));
                    run(&mut b, Op::RemoveId(bogus));
                }
                if !b.writes() {
                    // Every random step writes something.
                    let p = g.fresh_path();
                    run(&mut b, Op::Upsert(g.record(p)));
                }
            }
        }
        let writes = b.writes();
        if let Some(change) = b.into_change() {
            model.commit(change);
            states.push(model.state());
        }
        steps.push(Step {
            ops,
            rets,
            seq_after: model.seq,
            writes,
        });
    }
    Plan { steps, states }
}

/// The main workload: 60 batches, 55 of which write, one of them with 2500 records.
fn main_plan() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(|| {
        use StepKind::*;
        let mut kinds = vec![Random; 60];
        for i in [9, 23, 37, 58] {
            kinds[i] = Empty;
        }
        kinds[14] = BurnedIds;
        kinds[30] = NetEmpty;
        // Late, so that most crash points have a small file: five commits follow it.
        kinds[54] = Big;
        kinds[56] = BigChurn;
        let plan = build_plan(0x6d65_6469_6164_6231, true, &kinds);
        let commits = plan.steps.iter().filter(|s| s.writes).count();
        assert!(commits >= 50, "only {commits} commits");
        plan
    })
}

/// A small workload: a few commits of a few records each (about 20 KiB).
fn small_plan() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(|| {
        use StepKind::*;
        build_plan(
            0x736d_616c_6c21,
            false,
            &[Few, Few, BurnedIds, Few, Few, Few],
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Running workloads and checking databases
// ---------------------------------------------------------------------------------------------

/// How far a run got.
struct Run {
    /// The last sequence number `commit()` acknowledged.
    acked: u64,
    /// The sequence number of the commit that failed (`acked` when none failed).
    attempted: u64,
    /// The error of the commit that failed.
    error: Option<CommitError>,
}

/// Runs `steps` on `db`, checking every return value against the model, until a commit fails.
fn run_steps(db: &mut Database, steps: &[Step]) -> Run {
    let mut acked = db.snapshot().seq();
    for (i, step) in steps.iter().enumerate() {
        let mut b = db.batch().expect("batch() on a healthy handle");
        for (op, want) in step.ops.iter().zip(&step.rets) {
            let got = match op {
                Op::Upsert(rec) => Ret::Id(b.upsert(rec).expect("upsert")),
                Op::UpsertMany(recs) => Ret::Ids(b.upsert_many(recs).expect("upsert_many")),
                Op::Remove(path) => Ret::Removed(b.remove(path).expect("remove")),
                Op::RemoveId(id) => Ret::Removed(b.remove_id(*id)),
            };
            if got != *want {
                let what = match op {
                    Op::UpsertMany(recs) => format!("upsert_many of {} records", recs.len()),
                    other => format!("{other:?}"),
                };
                panic!("step {i}: {what}: got {got:?}, the model says {want:?}");
            }
        }
        match b.commit() {
            Ok(info) => {
                assert_eq!(info.seq, step.seq_after, "step {i}");
                acked = info.seq;
            }
            Err(e) => {
                assert!(step.writes, "step {i} writes nothing yet failed: {e}");
                return Run {
                    acked,
                    attempted: step.seq_after,
                    error: Some(e),
                };
            }
        }
    }
    Run {
        acked,
        attempted: acked,
        error: None,
    }
}

/// Asserts `db` holds exactly the records `want`: sequence number, count, every live id with
/// its index entry, every record's bytes (for a large state: the records in `read`, which the
/// last commits wrote, and a sample of the rest), and point reads by path and by id.
///
/// Reading every record of a large state at every crash point would dominate the runtime, and
/// the records a crash can touch are the ones the last commits wrote; older ones were durable
/// long before, and the bit-flip tests cover damage to them.
fn assert_records(db: &Database, seq: u64, want: &[Arc<Record>], read: &BTreeSet<u64>, ctx: &str) {
    let snap = db.snapshot();
    assert_eq!(snap.seq(), seq, "{ctx}: seq");
    assert_eq!(snap.len(), want.len() as u64, "{ctx}: record count");
    let mut entries = snap.entries();
    for (i, w) in want.iter().enumerate() {
        let (id, e) = entries
            .next()
            .unwrap_or_else(|| panic!("{ctx}: record {} missing", w.id));
        let entry_ok = id == w.id
            && e.path_hash == path_hash(&w.path)
            && (e.size, e.mtime_ns, e.inode, e.extractor_version)
                == (w.size, w.mtime_ns, w.inode, w.extractor_version);
        assert!(entry_ok, "{ctx}: entry {id} {e:?} for {w:?}");
        if want.len() <= 256 || i % 61 == 0 || read.contains(&id) {
            let got = snap
                .get_by_id(id)
                .unwrap_or_else(|e| panic!("{ctx}: record {id}: {e}"))
                .unwrap_or_else(|| panic!("{ctx}: record {id} not live"))
                .to_record();
            assert!(
                got == **w,
                "{ctx}: record differs\n got {got:?}\nwant {w:?}"
            );
        }
    }
    assert!(
        entries.next().is_none(),
        "{ctx}: more records than expected"
    );
    let step = (want.len() / 16).max(1);
    for w in want.iter().step_by(step) {
        let by_path = snap.get(&w.path).expect("get").expect("present");
        assert_eq!(by_path.id(), w.id, "{ctx}: get");
    }
    assert!(
        snap.get(b"/music/never/was.flac").expect("get").is_none(),
        "{ctx}"
    );
}

fn assert_state(db: &Database, want: &State, ctx: &str) {
    assert_records(db, want.seq, &want.records, &want.recent, ctx);
}

/// Reopens a crash image and checks it shows one of the states the crash may leave, with the
/// model's ids. Then makes a further commit on it (writing over whatever the crash left past
/// the committed length), itself crashed at one of its operations or not at all as `seed`
/// says, and reopens that.
fn check_recovery(image: Vec<u8>, plan: &Plan, acked: u64, attempted: u64, seed: u64, ctx: &str) {
    // Opening makes no I/O operation, so the second crash can be armed first.
    let fault = Arc::new(FaultStorage::from_image(image));
    // A commit makes four operations: half the images see one of them crash.
    let second_crash = seed % 8;
    if second_crash < 4 {
        fault.crash_at(second_crash);
    }
    let mut db = Database::with_storage(fault.clone(), true)
        .unwrap_or_else(|e| panic!("{ctx}: reopening failed: {e}"));
    let seq = db.snapshot().seq();
    assert!(
        acked <= seq && seq <= attempted,
        "{ctx}: recovered seq {seq}, expected {acked}..={attempted}"
    );
    let want = &plan.states[seq as usize];
    assert_state(&db, want, ctx);

    let ctx = format!("{ctx}, then a commit crashed at its op {second_crash}");
    let extra_path = b"/after/the/crash.flac".to_vec();
    let mut extra = Record::new(extra_path.clone());
    extra.title = Some("written after recovery".into());
    let mut b = db.batch().expect("batch after recovery");
    let id = b.upsert(&extra).expect("upsert after recovery");
    assert_eq!(
        id, want.next_id,
        "{ctx}: ids go on from the recovered commit"
    );
    let mut after: Vec<Arc<Record>> = want.records.clone();
    if !after.is_empty() {
        let victim = after.remove(0);
        assert!(b.remove_id(victim.id), "{ctx}");
    }
    after.push(Arc::new(Record { id, ..extra }));
    let image = match b.commit() {
        Ok(info) => {
            assert!(!fault.crashed(), "{ctx}: the commit succeeded");
            assert_eq!(info.seq, seq + 1, "{ctx}");
            fault.durable_image()
        }
        Err(e) => {
            assert!(fault.crashed(), "{ctx}: {e}");
            fault.crash_image(CrashMode::Mixed, seed)
        }
    };
    drop(db);

    // The records were compared above; here the index (every live id) and the two changes,
    // if they landed.
    let mem = Arc::new(MemStorage::from_bytes(image));
    let mut db = Database::with_storage(mem.clone(), fault.crashed())
        .unwrap_or_else(|e| panic!("{ctx}: reopening after the further commit: {e}"));
    let snap = db.snapshot();
    let (got_seq, want_records) = match snap.seq() {
        s if s == seq + 1 => (s, &after),
        s if s == seq && fault.crashed() => (s, &want.records),
        s => panic!("{ctx}: seq {s} after the further commit"),
    };
    let ids: Vec<u64> = snap.entries().map(|(id, _)| id).collect();
    let want_ids: Vec<u64> = want_records.iter().map(|r| r.id).collect();
    assert_eq!(ids, want_ids, "{ctx}: live ids");
    let got = snap.get(&extra_path).expect("get").map(|v| v.to_record());
    let want_extra = (got_seq == seq + 1).then(|| (**after.last().expect("pushed")).clone());
    assert_eq!(got, want_extra, "{ctx}");
    for w in want_records
        .iter()
        .step_by(want_records.len().div_ceil(8).max(1))
    {
        let id = snap.get(&w.path).expect("get").map(|v| v.id());
        assert_eq!(id, Some(w.id), "{ctx}");
    }
    drop(snap);
    if !fault.crashed() {
        // Opened read-only: the further commit landed and reopened.
        return;
    }

    // After the second crash, a commit that lands.
    let third = Record::new(b"/after/the/second/crash.flac".to_vec());
    let mut b = db.batch().expect("batch after the second crash");
    let id = b.upsert(&third).expect("upsert");
    let info = b
        .commit()
        .unwrap_or_else(|e| panic!("{ctx}: commit after the second crash: {e}"));
    assert_eq!(info.seq, got_seq + 1, "{ctx}");
    drop(db);
    let db = Database::with_storage(Arc::new(MemStorage::from_bytes(mem.to_bytes())), false)
        .unwrap_or_else(|e| panic!("{ctx}: reopening after the third commit: {e}"));
    let snap = db.snapshot();
    assert_eq!(snap.seq(), got_seq + 1, "{ctx}");
    assert_eq!(snap.len(), want_records.len() as u64 + 1, "{ctx}");
    let got = snap.get(&third.path).expect("get").map(|v| v.id());
    assert_eq!(got, Some(id), "{ctx}");
}

fn op_name(trace: &[(IoOp, Outcome)], k: u64) -> String {
    match trace.get(k as usize) {
        Some((IoOp::Write { offset, data }, _)) => format!("write {}@{offset}", data.len()),
        Some((IoOp::SetLen(n), _)) => format!("set_len {n}"),
        Some((IoOp::Sync, _)) => "sync".to_owned(),
        None => "?".to_owned(),
    }
}

/// Runs the whole main workload without faults, writing batches ahead in `write_ahead`-byte
/// segments; returns the number of I/O operations it makes and checks the final state.
fn count_ops(plan: &Plan, base: &[u8], write_ahead: usize) -> u64 {
    let fault = Arc::new(FaultStorage::from_image(base.to_vec()));
    let mut db = Database::with_storage(fault.clone(), true).expect("open");
    db.set_write_ahead(write_ahead);
    if let Some(e) = run_steps(&mut db, &plan.steps).error {
        panic!("the workload without faults: {e}");
    }
    let last = plan.states.last().expect("states");
    assert_state(&db, last, "the workload without faults");
    assert_eq!(fault.unsynced(), 0, "every commit ends with a sync");
    // At least a write and a sync per commit (today: frame, sync, header slot, sync).
    let commits = plan.steps.iter().filter(|s| s.writes).count() as u64;
    assert!(fault.ops() >= 2 * commits, "{} operations", fault.ops());
    fault.ops()
}

// ---------------------------------------------------------------------------------------------
// Crashes at every operation
// ---------------------------------------------------------------------------------------------

/// The crash images checked at every crash point: every unsynced write applied, every one
/// dropped, each torn or garbled, and three random mixes.
fn images_for(k: u64) -> [(CrashMode, u64); 8] {
    [
        (CrashMode::AllApplied, k * 11),
        (CrashMode::AllDropped, k * 11 + 1),
        (CrashMode::Each(Fate::TornPrefix), k * 11 + 2),
        (CrashMode::Each(Fate::TornSectors), k * 11 + 3),
        (CrashMode::Each(Fate::Garbled), k * 11 + 4),
        (CrashMode::Mixed, k * 11 + 5),
        (CrashMode::Mixed, k * 11 + 6),
        (CrashMode::Mixed, k * 11 + 7),
    ]
}

fn crash_at_ops(ks: impl Iterator<Item = u64>, write_ahead: usize) {
    let plan = main_plan();
    let base = empty_db_image();
    let total = count_ops(plan, &base, write_ahead);
    for k in ks.take_while(|k| *k < total) {
        let fault = Arc::new(FaultStorage::from_image(base.clone()));
        fault.crash_at(k);
        let mut db = Database::with_storage(fault.clone(), true).expect("open");
        db.set_write_ahead(write_ahead);
        let run = run_steps(&mut db, &plan.steps);
        let trace = fault.trace();
        let what = format!("crash during op {k} ({})", op_name(&trace, k));
        let err = run
            .error
            .unwrap_or_else(|| panic!("{what}: no commit failed"));
        // A crash at the sync after the header slot's write is told as unconfirmed.
        assert!(
            matches!(
                err,
                CommitError::Io { .. } | CommitError::Unconfirmed { .. }
            ),
            "{what}: {err:?}"
        );
        assert!(fault.crashed(), "{what}");
        assert_eq!(run.attempted, run.acked + 1, "{what}");
        // The failed commit was not published, and the handle refuses to go on.
        assert_eq!(db.snapshot().seq(), run.acked, "{what}");
        assert!(
            matches!(db.batch(), Err(CommitError::Poisoned { .. })),
            "{what}"
        );
        drop(db);
        for (mode, seed) in images_for(k) {
            let (image, fates) = fault.crash_image_with_fates(mode, seed);
            let ctx = format!("{what}, image {mode:?} seed {seed} fates {fates:?}");
            check_recovery(image, plan, run.acked, run.attempted, seed, &ctx);
        }
    }
}

// The crash points are split over two tests so that the harness can run them side by side.

#[test]
fn crash_at_every_even_operation_recovers_a_committed_state() {
    crash_at_ops((0..).step_by(2), 0);
}

#[test]
fn crash_at_every_odd_operation_recovers_a_committed_state() {
    crash_at_ops((1..).step_by(2), 0);
}

/// The same, with batches written ahead of their commits by a background thread in small
/// segments (each handed to writeback as it is written), so a crash also lands between
/// segments, and in the middle of a batch that is still being built.
#[test]
fn crash_at_every_even_operation_while_writing_ahead_recovers_a_committed_state() {
    crash_at_ops((0..).step_by(2), 4096);
}

#[test]
fn crash_at_every_odd_operation_while_writing_ahead_recovers_a_committed_state() {
    crash_at_ops((1..).step_by(2), 4096);
}

#[test]
fn crash_while_creating_a_database_leaves_it_openable_or_refused() {
    // with_storage initialises an empty storage with one write and one sync. A crash in
    // between leaves a file that is empty (initialised afresh on the next open), complete, or
    // partial; a partial one is refused with a typed error (it never held data).
    for k in 0..2 {
        for seed in 0..40u64 {
            let fault = Arc::new(FaultStorage::new());
            fault.crash_at(k);
            let err = Database::with_storage(fault.clone(), true).expect_err("crashed");
            assert!(matches!(err, OpenError::Io { .. }), "{err:?}");
            let mode = match seed {
                0 => CrashMode::AllApplied,
                1 => CrashMode::AllDropped,
                _ => CrashMode::Mixed,
            };
            let image = fault.crash_image(mode, seed);
            let must_open = mode == CrashMode::AllApplied || image.is_empty();
            match open_image(image).0 {
                Ok(db) => {
                    assert_eq!(db.snapshot().seq(), 0);
                    assert!(db.snapshot().is_empty());
                }
                Err(OpenError::NotADatabase { .. } | OpenError::Corrupt { .. }) if !must_open => {}
                Err(e) => panic!("crash during op {k}, {mode:?} {seed}: {e:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// EIO
// ---------------------------------------------------------------------------------------------

#[test]
fn eio_on_any_operation_poisons_the_handle_and_loses_no_commit() {
    let plan = main_plan();
    let base = empty_db_image();
    let total = count_ops(plan, &base, 0);
    let mut syncs = 0;
    let mut unconfirmed = 0u64;
    for k in 0..total {
        let fault = Arc::new(FaultStorage::from_image(base.clone()));
        fault.fail_at(k);
        let mut db = Database::with_storage(fault.clone(), true).expect("open");
        let run = run_steps(&mut db, &plan.steps);
        let trace = fault.trace();
        let what = format!("EIO on op {k} ({})", op_name(&trace, k));
        syncs += u64::from(trace[k as usize].0 == IoOp::Sync);
        match run.error {
            Some(CommitError::Io { ref source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(EIO), "{what}");
            }
            // Only the sync right after a header slot's write leaves the commit unknown.
            Some(CommitError::Unconfirmed { ref source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(EIO), "{what}");
                let slot_write = k
                    .checked_sub(1)
                    .and_then(|i| trace.get(i as usize))
                    .is_some_and(
                        |(op, _)| matches!(op, IoOp::Write { offset, .. } if *offset < LOG_START),
                    );
                assert!(
                    matches!(trace[k as usize].0, IoOp::Sync) && slot_write,
                    "{what}"
                );
                unconfirmed += 1;
            }
            ref other => panic!("{what}: {other:?}"),
        }
        assert!(!fault.crashed());
        // Nothing of the failed commit is visible through the handle, which is poisoned.
        assert_eq!(db.snapshot().seq(), run.acked, "{what}");
        for _ in 0..2 {
            assert!(
                matches!(db.batch(), Err(CommitError::Poisoned { .. })),
                "{what}"
            );
        }
        assert_eq!(
            fault.ops(),
            k + 1,
            "{what}: the poisoned handle did no more I/O"
        );
        drop(db);

        // After a crash now, the durable image or (if the dirty pages survived) every write.
        for (name, image) in [
            ("durable image", fault.durable_image()),
            ("live image", fault.live_image()),
        ] {
            let (db, _) = open_image(image);
            let db = db.unwrap_or_else(|e| panic!("{what}, {name}: {e}"));
            let seq = db.snapshot().seq();
            assert!(
                seq == run.acked || seq == run.attempted,
                "{what}, {name}: seq {seq}, expected {} or {}",
                run.acked,
                run.attempted
            );
            assert_state(&db, &plan.states[seq as usize], &format!("{what}, {name}"));
        }

        // Or without a crash: a new handle on the same (working again) storage goes on.
        let mut db = Database::with_storage(fault.clone(), true)
            .unwrap_or_else(|e| panic!("{what}: reopening the storage: {e}"));
        let seq = db.snapshot().seq();
        assert!(
            seq == run.acked || seq == run.attempted,
            "{what}: seq {seq}"
        );
        let rest: Vec<&Step> = plan.steps.iter().filter(|s| s.seq_after > seq).collect();
        if let Some(next) = rest.first() {
            // Redo the next commit the way the model expects (same ids).
            if let Some(e) = run_steps(&mut db, std::slice::from_ref(next)).error {
                panic!("{what}: commit after reopening: {e}");
            }
            assert_state(
                &db,
                &plan.states[next.seq_after as usize],
                &format!("{what}, commit after reopening"),
            );
        }
    }
    let commits = plan.steps.iter().filter(|s| s.writes).count() as u64;
    assert!(syncs >= commits, "{syncs} syncs");
    // Every commit's last sync is told as unconfirmed.
    assert!(
        unconfirmed >= commits,
        "{unconfirmed} unconfirmed of {commits} commits"
    );
}

// ---------------------------------------------------------------------------------------------
// A small database, damaged directly
// ---------------------------------------------------------------------------------------------

/// The small workload, committed over a fault storage: returns the storage (trace included)
/// and the image before the last commit.
fn small_db() -> (Arc<FaultStorage>, Vec<u8>, &'static Plan) {
    let plan = small_plan();
    let fault = Arc::new(FaultStorage::from_image(empty_db_image()));
    let mut db = Database::with_storage(fault.clone(), true).expect("open");
    let (last, rest) = plan.steps.split_last().expect("steps");
    if let Some(e) = run_steps(&mut db, rest).error {
        panic!("small workload: {e}");
    }
    let before = fault.durable_image();
    if let Some(e) = run_steps(&mut db, std::slice::from_ref(last)).error {
        panic!("small workload, last commit: {e}");
    }
    assert!(last.writes);
    assert_state(&db, plan.states.last().expect("state"), "small db");
    (fault, before, plan)
}

/// The last commit's frame write and header slot write, from the trace.
struct LastCommit {
    frame_at: u64,
    frame: Vec<u8>,
    slot_at: u64,
    slot: Vec<u8>,
}

fn last_commit(fault: &FaultStorage) -> LastCommit {
    let trace = fault.trace();
    let writes: Vec<(u64, &Vec<u8>)> = trace
        .iter()
        .filter_map(|(op, outcome)| match op {
            IoOp::Write { offset, data } if *outcome == Outcome::Done => Some((*offset, data)),
            _ => None,
        })
        .collect();
    let slot = writes
        .iter()
        .rposition(|(at, _)| *at < LOG_START)
        .expect("a header slot write");
    let frame = writes[..slot]
        .iter()
        .rposition(|(at, _)| *at >= LOG_START)
        .expect("a frame write before it");
    let ((frame_at, frame), (slot_at, slot)) = (writes[frame], writes[slot]);
    assert!(SLOT_OFFSETS.contains(&slot_at));
    assert_eq!(slot.len(), SLOT_LEN);
    LastCommit {
        frame_at,
        frame: frame.clone(),
        slot_at,
        slot: slot.clone(),
    }
}

fn expect_state(image: Vec<u8>, want: &State, ctx: &str) {
    let (db, _) = open_image(image);
    let db = db.unwrap_or_else(|e| panic!("{ctx}: {e}"));
    assert_state(&db, want, ctx);
}

fn expect_corrupt(image: Vec<u8>, ctx: &str) {
    match open_image(image).0 {
        Err(OpenError::Corrupt { .. }) => {}
        Err(e) => panic!("{ctx}: expected Corrupt, got {e:?}"),
        Ok(db) => panic!(
            "{ctx}: expected Corrupt, opened at seq {}",
            db.snapshot().seq()
        ),
    }
}

#[test]
fn torn_last_commit_recovers_exactly_the_previous_commit() {
    let (fault, before, plan) = small_db();
    let full = fault.durable_image();
    let lc = last_commit(&fault);
    let n = plan.states.len() - 1;
    let (prev, new) = (&plan.states[n - 1], &plan.states[n]);
    let end = lc.frame_at as usize + lc.frame.len();
    assert_eq!(
        before.len() as u64,
        lc.frame_at,
        "no tail before the last commit"
    );
    assert_eq!(full.len(), end);

    // FORMAT.md §2 step 2: the frame is being appended and the header slot is not written, so
    // the active slot still names the previous commit, whose committed_len is where the frame
    // starts: whatever part of the frame landed (cut short, or the rest zero) is past it and
    // ignored.
    for c in 0..=lc.frame.len() {
        let mut cut = before.clone();
        cut.extend_from_slice(&lc.frame[..c]);
        let mut zeroed = cut.clone();
        zeroed.resize(end, 0);
        expect_state(cut, prev, &format!("frame cut at {c}"));
        expect_state(zeroed, prev, &format!("frame zeroed from {c}"));
    }

    // §2 step 4: the frame is durable and the header slot write is torn at byte c. The slot then
    // holds the new bytes before c and the old (or zero) bytes after; its crc fails unless those
    // bytes equal the new slot's, so open uses the other slot: exactly the previous commit. A
    // slot equal to the new one (c = 128) is the new commit.
    let s = lc.slot_at as usize;
    let mut saw = [0usize; 2];
    for c in 0..=SLOT_LEN {
        for zero_rest in [false, true] {
            let mut img = full.clone();
            if zero_rest {
                img[s + c..s + SLOT_LEN].fill(0);
            } else {
                img[s + c..s + SLOT_LEN].copy_from_slice(&before[s + c..s + SLOT_LEN]);
            }
            let landed = img[s..s + SLOT_LEN] == lc.slot[..];
            let want = if landed { new } else { prev };
            saw[usize::from(landed)] += 1;
            expect_state(
                img,
                want,
                &format!("slot cut at {c}, zero rest {zero_rest}"),
            );
        }
    }
    assert!(saw[0] >= 2 * SLOT_LEN - 8 && saw[1] >= 2, "{saw:?}");

    // Beyond the disk model of §5 (the sync between frame and slot was skipped, and the slot
    // landed but the frame did not), or a file cut short later: a file cut inside the frame is
    // shorter than the new slot's committed_len, so that slot is invalid (§1.1); readers get
    // the previous commit and are told of the cut, and a writer refuses the file (§2), which
    // would otherwise append over the frame's surviving bytes. A frame whose bytes were zeroed
    // is committed data that fails its crc: Corrupt.
    for c in 0..lc.frame.len() {
        let at = lc.frame_at as usize + c;
        let ctx = format!("new slot, file cut at frame byte {c}");
        let mem = Arc::new(MemStorage::from_bytes(full[..at].to_vec()));
        let db = Database::with_storage(mem, false).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_state(&db, prev, &ctx);
        assert!(db.cut_short().is_some(), "{ctx}: the cut is not told");
        expect_corrupt(full[..at].to_vec(), &ctx);
        let mut zeroed = full.clone();
        zeroed[at..].fill(0);
        if zeroed == full {
            expect_state(
                zeroed,
                new,
                &format!("new slot, frame zeroed from {c} (no change)"),
            );
        } else {
            expect_corrupt(zeroed, &format!("new slot, frame zeroed from {c}"));
        }
    }
}

#[test]
fn damaged_header_slot_falls_back_to_the_other_slot() {
    let (fault, _, plan) = small_db();
    let full = fault.durable_image();
    let lc = last_commit(&fault);
    let n = plan.states.len() - 1;
    let prev = &plan.states[n - 1];
    let active = lc.slot_at as usize;
    let inactive = SLOT_OFFSETS
        .into_iter()
        .find(|o| *o != lc.slot_at)
        .expect("two slots") as usize;
    for i in 0..SLOT_LEN {
        for bit in 0..8 {
            let mask = 1u8 << bit;
            // The active slot damaged: the other slot (the previous commit) is used.
            let mut img = full.clone();
            img[active + i] ^= mask;
            expect_state(
                img.clone(),
                prev,
                &format!("active slot byte {i} bit {bit}"),
            );
            // Readers are told when the slot still carries the magic (past it, a damaged slot
            // is one whose checksum fails).
            if i >= 8 {
                let mem = Arc::new(MemStorage::from_bytes(img.clone()));
                let db = Database::with_storage(mem, false).expect("opens");
                assert!(db.damaged_slot().is_some(), "byte {i} bit {bit}: not told");
            }

            // Both damaged: refused. With the magic gone from both it is not a database at all.
            let j = (i * 37 + 11) % SLOT_LEN;
            for other in [i, j] {
                let mut both = img.clone();
                both[inactive + other] ^= mask;
                let ctx = format!("both slots, bytes {i} and {other}, bit {bit}");
                match open_image(both).0 {
                    Err(OpenError::NotADatabase { .. }) if i < 8 && other < 8 => {}
                    Err(OpenError::Corrupt { .. }) if i >= 8 || other >= 8 => {}
                    Err(e) => panic!("{ctx}: {e:?}"),
                    Ok(db) => panic!("{ctx}: opened at seq {}", db.snapshot().seq()),
                }
            }
        }
    }
}

/// Flips bit `i % 8` of byte `i`.
fn flip(image: &[u8], i: usize) -> Vec<u8> {
    let mut img = image.to_vec();
    img[i] ^= 1 << (i % 8);
    img
}

#[test]
fn bit_flip_in_every_byte_is_detected_or_harmless() {
    // The small database plus an uncommitted tail: the frame of one more commit, synced, whose
    // header slot write never landed.
    let (fault, _, plan) = small_db();
    let n = plan.states.len() - 1;
    let want = &plan.states[n];
    let tail_fault = Arc::new(FaultStorage::from_image(fault.durable_image()));
    {
        let mut db = Database::with_storage(tail_fault.clone(), true).expect("open");
        tail_fault.crash_at(2); // the header slot write of the next commit
        let mut b = db.batch().expect("batch");
        for i in 0..4 {
            b.upsert(&Record::new(format!("/tail/{i}.flac").into_bytes()))
                .expect("upsert");
        }
        assert!(b.commit().is_err());
    }
    let image = tail_fault.crash_image(CrashMode::AllDropped, 0);
    let lc = last_commit(&fault);
    let active = lc.slot_at as usize;
    let committed_len = lc.frame_at as usize + lc.frame.len();
    assert!(image.len() > committed_len, "there is a tail");
    assert!(
        (16 << 10..=64 << 10).contains(&image.len()),
        "{} bytes",
        image.len()
    );
    expect_state(image.clone(), want, "the image itself");

    for i in 0..image.len() {
        let img = flip(&image, i);
        let ctx = format!("bit {} of byte {i}", i % 8);
        let in_slot = |s: usize| (s..s + SLOT_LEN).contains(&i);
        if in_slot(active) {
            // §1.1: the slot's crc fails; the other slot is the previous commit.
            expect_state(img, &plan.states[n - 1], &ctx);
        } else if (LOG_START as usize..committed_len).contains(&i) {
            // §1.2: every committed frame byte is under a crc the open checks.
            expect_corrupt(img, &ctx);
        } else {
            // The inactive slot, slot padding and the uncommitted tail are never trusted.
            expect_state(img, want, &ctx);
        }
    }
}

#[test]
fn bit_flips_with_forged_checksums_never_panic() {
    // A flip in the last frame with its crc (and the header's last_frame_crc) recomputed, so that
    // open parses the damaged payload: it must fail with a typed error or open a database whose
    // every read returns a record or a typed error, and commits on it must not panic.
    let (fault, _, plan) = small_db();
    let full = fault.durable_image();
    let lc = last_commit(&fault);
    let file_len = full.len() as u64;
    let mut raw_slot = [0u8; SLOT_LEN];
    raw_slot.copy_from_slice(&lc.slot);
    let header = Header::decode(&raw_slot, file_len).expect("valid slot");
    let f = lc.frame_at as usize;
    let (mut opened, mut refused, mut read_errors) = (0, 0, 0);
    // Bytes 8..20 of the frame header (seq, prev_crc) and the whole payload; the magic and
    // length are checked before any crc (see the plain bit-flip test).
    for i in (8..20).chain(24..lc.frame.len()) {
        let mut frame = lc.frame.clone();
        frame[i] ^= 1 << (i % 8);
        let seq = u64::from_le_bytes(frame[8..16].try_into().expect("8 bytes"));
        let prev_crc = u32::from_le_bytes(frame[16..20].try_into().expect("4 bytes"));
        let (raw, crc) = FrameHeader::encode(seq, prev_crc, &frame[24..]);
        frame[..24].copy_from_slice(&raw);
        let mut img = full.clone();
        img[f..f + frame.len()].copy_from_slice(&frame);
        let forged = Header {
            last_frame_crc: crc,
            ..header
        };
        let s = lc.slot_at as usize;
        img[s..s + SLOT_LEN].copy_from_slice(&forged.encode());

        let (db, _) = open_image(img);
        let Ok(mut db) = db else {
            refused += 1;
            continue;
        };
        opened += 1;
        let snap = db.snapshot();
        let _ = snap.stats();
        let _ = snap.count_by_kind();
        for r in snap.iter() {
            match r {
                Ok(v) => {
                    let _ = v.to_record();
                }
                Err(_) => read_errors += 1,
            }
        }
        for st in &plan.states {
            for w in &st.records {
                let _ = snap.get(&w.path);
                let _ = snap.get_by_id(w.id);
            }
        }
        drop(snap);
        let mut b = db.batch().expect("batch");
        let _ = b.upsert(&Record::new(b"/forged/new.flac".to_vec()));
        for st in plan.states.iter().rev().take(2) {
            for w in st.records.iter().take(3) {
                let _ = b.upsert(&Record::new(w.path.clone()));
                let _ = b.remove(&w.path);
                let _ = b.remove_id(w.id);
            }
        }
        let _ = b.commit();
    }
    // The checks above ran on both kinds of outcome.
    assert!(
        opened > 0 && refused > 0,
        "opened {opened}, refused {refused}"
    );
    assert!(read_errors > 0, "no flip reached a record read");
}

#[test]
fn records_survive_reopening_unchanged() {
    // A plain round trip of the main workload through bytes, as a baseline for the tests
    // above: the model and the engine agree on every record and id.
    let plan = main_plan();
    let mem = Arc::new(MemStorage::new());
    let mut db = Database::with_storage(mem.clone(), true).expect("create");
    if let Some(e) = run_steps(&mut db, &plan.steps).error {
        panic!("{e}");
    }
    drop(db);
    let (db, _) = open_image(mem.to_bytes());
    let db = db.expect("reopen");
    let want = plan.states.last().expect("state");
    assert_state(&db, want, "reopened");
    let got = all_records(&db);
    let ids: Vec<u64> = got.iter().map(|r| r.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order");
}

#[test]
fn fault_storage_models_synced_and_unsynced_writes() {
    use mediadb::store::Storage;
    let f = FaultStorage::from_image(vec![1u8; 1024]);
    f.write_at(&[0xaa; 1000], 100).expect("write");
    f.sync().expect("sync");
    let durable = f.durable_image();
    assert_eq!(durable.len(), 1100);
    assert!(durable[100..].iter().all(|b| *b == 0xaa));

    // An EIO write changes nothing; an EIO sync makes nothing durable.
    f.fail_at(2);
    f.fail_at(4);
    let eio = f.write_at(&[9; 10], 0).expect_err("EIO");
    assert_eq!(eio.raw_os_error(), Some(EIO));
    assert_eq!(f.live_image(), durable);
    f.write_at(&[0xbb; 1100], 600).expect("write");
    assert_eq!(f.sync().expect_err("EIO").raw_os_error(), Some(EIO));
    assert_eq!(f.durable_image(), durable);
    assert_eq!(f.unsynced(), 1);

    // The process dies during the next sync: everything fails from then on.
    f.crash_at(5);
    assert!(f.sync().is_err() && f.crashed());
    let mut buf = [0u8; 4];
    assert!(f.read_at(&mut buf, 0).is_err() && f.len().is_err());
    assert!(f.write_at(&[1], 0).is_err());
    assert_eq!(f.ops(), 6, "calls after the crash are not operations");
    let outcomes: Vec<Outcome> = f.trace().into_iter().map(|(_, o)| o).collect();
    use Outcome::*;
    assert_eq!(outcomes, [Done, Done, Failed, Done, Failed, Crashed]);

    let mut applied = durable.clone();
    applied.resize(1700, 0);
    applied[600..].fill(0xbb);
    assert_eq!(f.crash_image(CrashMode::AllApplied, 0), applied);
    assert_eq!(f.crash_image(CrashMode::AllDropped, 0), durable);
    let (mut prefixes, mut seen) = (BTreeSet::new(), BTreeSet::new());
    for seed in 0..64 {
        for fate in [Fate::TornPrefix, Fate::TornSectors, Fate::Garbled] {
            let (img, fates) = f.crash_image_with_fates(CrashMode::Each(fate), seed);
            assert_eq!(fates, [fate]);
            assert_eq!(
                img[..600],
                durable[..600],
                "{fate:?} {seed}: outside the write"
            );
            // What each byte of the write's range became: the new byte (1), the old one (0).
            let landed: Vec<bool> = (600..1700).map(|i| img.get(i) == Some(&0xbb)).collect();
            // A byte the write did not land on is as before (zero if the file grew past it).
            let kept = |i: usize| img.get(i).unwrap_or(&0) == durable.get(i).unwrap_or(&0);
            match fate {
                Fate::TornPrefix => {
                    let n = landed.iter().take_while(|l| **l).count();
                    assert!(n < 1100, "a torn write is short of the whole");
                    assert!((600 + n..1700).all(kept), "{seed}: after the prefix");
                    prefixes.insert(n);
                }
                Fate::TornSectors => {
                    // Pieces split at absolute 512-byte boundaries land whole or not at all.
                    for (a, b) in [(600, 1024), (1024, 1536), (1536, 1700)] {
                        let new = (a..b).all(|i| img.get(i) == Some(&0xbb));
                        assert!(new || (a..b).all(kept), "{seed}: sector {a}..{b}");
                        seen.insert(new);
                    }
                }
                _ => {
                    assert_eq!(img.len(), 1700);
                    assert!(landed.iter().filter(|l| **l).count() < 100, "random bytes");
                }
            }
        }
    }
    assert!(
        prefixes.len() > 32,
        "prefixes of many lengths: {prefixes:?}"
    );
    assert_eq!(
        seen.len(),
        2,
        "sectors that landed and sectors that did not"
    );
}
