//! Verify and compact benchmark.
//!
//! Builds a database of N synthetic music-library records (committed in batches of 50,000, as a
//! scan does), then measures:
//! * `verify` of it (every frame, Batch and record buffer, the checkpoint): records per second;
//! * after removing every other record (half of the records dead), `compact` of a copy of it,
//!   against `cp` of the same file in the same run (and `cp` followed by an fsync of the copy,
//!   since compaction syncs its output); five rounds each, the two in alternating order, medians
//!   reported, every round listed in `secs_all`.
//!
//! One JSON line per measurement goes to stdout, then ratio lines; progress goes to stderr. The
//! compact/cp line also lists each round's own ratio (`per_round`), and those of the rounds
//! where compaction went first (`compact_first`) and where `cp` did (`cp_first`).
//!
//! Run: `cargo bench -p mediadb-baselines --bench verify_compact`. Environment:
//! * `MEDIADB_BENCH_N` — number of records (default 1,000,000);
//! * `MEDIADB_BENCH_SETTLE_SECS` — pause before each timed cp or compaction (default 10);
//! * `MEDIADB_BENCH_DIR` — where the databases go (default `std::env::temp_dir()`); removed at
//!   the end.
//!
//! Everything runs with a warm page cache (the files were just written).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mediadb::store::verify;
use mediadb::{Database, Kind, Record};
use mediadb_baselines::{Rng, emit, size_of};
use serde_json::json;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const BATCH: usize = 50_000;
const ROUNDS: usize = 5;

/// Word-making on top of the shared generator.
trait Words {
    fn word(&mut self) -> &'static str;
    fn words(&mut self, n: u64) -> String;
}

impl Words for Rng {
    fn word(&mut self) -> &'static str {
        const WORDS: &[&str] = &[
            "night", "river", "love", "fire", "dream", "city", "light", "heart", "stone", "blue",
            "rain", "shadow", "summer", "winter", "gold", "silver", "road", "home", "ghost",
            "ocean", "morning", "electric", "wild", "broken", "golden", "last", "first", "dance",
        ];
        WORDS[self.below(WORDS.len() as u64) as usize]
    }

    fn words(&mut self, n: u64) -> String {
        (0..1 + self.below(n))
            .map(|_| self.word())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Record `i` of a library: ~15 tracks per album, ~6 albums per artist, paths of 60–120 bytes.
fn record(i: u64, rng: &mut Rng) -> Record {
    let artist = i / 90;
    let album = i / 15;
    let title = rng.words(5);
    let duration_ms = 90_000 + rng.below(500_000);
    Record {
        path: format!(
            "/srv/media/music/Artist {artist:05} {}/{} - Album {album:06}/{:02} {title}.flac",
            ["Band", "Ensemble", "Trio"][(artist % 3) as usize],
            1960 + album % 60,
            i % 15 + 1
        )
        .into_bytes(),
        size: duration_ms * 110 + rng.below(1 << 16),
        mtime_ns: 1_500_000_000_000_000_000 + rng.below(1 << 58) as i64,
        inode: 1_000_000 + i,
        kind: Kind::Audio,
        extractor_version: 1,
        mime: Some("audio/flac".into()),
        title: Some(title),
        artists: vec![format!("Artist {artist:05}")],
        album: Some(format!("Album {album:06}")),
        genres: vec![rng.word().to_owned()],
        year: Some(1960 + (album % 60) as i32),
        track: Some((i % 15 + 1) as u32),
        track_total: Some(15),
        duration_ms: Some(duration_ms),
        bitrate: Some(900 + rng.below(300) as u32),
        sample_rate: Some(44_100),
        channels: Some(2),
        bit_depth: Some(16),
        ..Record::default()
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The pause before each timed step, so that the writes of the step before have reached the
/// disk (`MEDIADB_BENCH_SETTLE_SECS`, default 10). On this project's VM the disk stays busy for
/// seconds after an fsync returns (the host is still writing, it seems): with no pause or with
/// 3 s, compaction after a cp ran 2-4x slower than before one, its syncs and page-cache writes
/// both slower; with 10 s, every round of both steps ran at the same speed.
fn settle_time() -> Res<Duration> {
    Ok(Duration::from_secs(
        match std::env::var("MEDIADB_BENCH_SETTLE_SECS") {
            Ok(s) => s.trim().parse()?,
            Err(_) => 10,
        },
    ))
}

fn remove_db(path: &Path) {
    for suffix in ["", ".idx", ".lock", ".compact.tmp", ".compact.tmp.idx"] {
        let mut s = path.as_os_str().to_owned();
        s.push(suffix);
        let _ = fs::remove_file(PathBuf::from(s));
    }
}

fn main() -> Res<()> {
    let n: u64 = std::env::var("MEDIADB_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let base = std::env::var_os("MEDIADB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("mediadb-verify-compact-")
        .tempdir_in(base)?;
    let path = dir.path().join("bench.mediadb");

    eprintln!("building {n} records in batches of {BATCH}");
    let mut rng = Rng(0x7665_7269_6679_2121);
    let t = Instant::now();
    let mut db = Database::create(&path)?;
    let mut next = 0u64;
    while next < n {
        let end = (next + BATCH as u64).min(n);
        let recs: Vec<Record> = (next..end).map(|i| record(i, &mut rng)).collect();
        let mut b = db.batch()?;
        b.upsert_many(&recs)?;
        b.commit()?;
        next = end;
    }
    drop(db);
    eprintln!("built in {:.1}s", t.elapsed().as_secs_f64());

    // verify, three times; the median counts.
    let mut times = Vec::new();
    let mut report = None;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let r = verify(&path, &|_, _| {})?;
        times.push(t.elapsed());
        assert!(r.is_clean(), "{:?}", r.problems);
        report = Some(r);
    }
    let r = report.expect("ran");
    let d = median(times.clone());
    emit(&json!({
        "bench": "verify",
        "engine": "mediadb",
        "records": r.records,
        "frames": r.frames,
        "secs": d.as_secs_f64(),
        "secs_all": times.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        "records_per_s": r.records as f64 / d.as_secs_f64(),
        "file_bytes": r.file_len,
        "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
    }));

    // Half of the records dead.
    eprintln!("removing every other record");
    let mut db = Database::open(&path)?;
    let mut id = 2u64;
    while id <= n {
        let mut b = db.batch()?;
        while id <= n && b.len() < BATCH {
            assert!(b.remove_id(id));
            id += 2;
        }
        b.commit()?;
    }
    drop(db);
    let half = path.with_extension("half");
    fs::copy(&path, &half)?;
    let live = Database::open_read_only(&half)?.snapshot().len();
    eprintln!("{live} live records of {n}");

    let settle = settle_time()?;
    let mut cp = Vec::new();
    let mut cp_sync = Vec::new();
    let mut compact = Vec::new();
    let mut sizes = (0, 0);
    for round in 0..ROUNDS {
        // The database to compact: a copy, made and synced before anything is timed.
        let copy = dir.path().join(format!("copy{round}.mediadb"));
        fs::copy(&half, &copy)?;
        File::open(&copy)?.sync_all()?;
        let mut db = Database::open(&copy)?;
        let cp_out = dir.path().join(format!("cp{round}.mediadb"));
        // Which of the two goes first alternates: on a VM, the second may be handed fresh
        // page-cache pages that the host must back anew, several times slower to fill, and a
        // fixed order would charge that to one side every round.
        for compact_now in [round % 2 == 1, round % 2 == 0] {
            std::thread::sleep(settle);
            if compact_now {
                let t = Instant::now();
                let rep = db.compact()?;
                compact.push(t.elapsed());
                sizes = (rep.before_bytes, rep.after_bytes);
                assert_eq!(rep.records, live);
            } else {
                let t = Instant::now();
                let st = Command::new("cp").arg(&half).arg(&cp_out).status()?;
                assert!(st.success());
                cp.push(t.elapsed());
                File::open(&cp_out)?.sync_all()?;
                cp_sync.push(t.elapsed());
            }
        }
        drop(db);
        remove_db(&copy);
        fs::remove_file(&cp_out)?;
    }
    let all = |v: &[Duration]| v.iter().map(Duration::as_secs_f64).collect::<Vec<_>>();
    let (cp_all, cp_sync_all, compact_all) = (all(&cp), all(&cp_sync), all(&compact));
    let (cp, cp_sync, compact_d) = (median(cp), median(cp_sync), median(compact.clone()));
    emit(&json!({
        "bench": "compact",
        "engine": "mediadb",
        "records": n,
        "live": live,
        "secs": compact_d.as_secs_f64(),
        "secs_all": compact_all,
        "before_bytes": sizes.0,
        "after_bytes": sizes.1,
    }));
    emit(
        &json!({"bench": "cp", "engine": "cp", "secs": cp.as_secs_f64(), "secs_all": cp_all, "file_bytes": size_of(&half)}),
    );
    emit(
        &json!({"bench": "cp+fsync", "engine": "cp", "secs": cp_sync.as_secs_f64(), "secs_all": cp_sync_all, "file_bytes": size_of(&half)}),
    );
    // Each round's own ratio too: this VM has slow phases that hit both steps of a round.
    let per_round: Vec<f64> = compact_all
        .iter()
        .zip(&cp_all)
        .map(|(c, p)| c / p)
        .collect();
    // And the rounds split by which step went first (odd rounds: compaction), so that an order
    // effect (the second step paying for the first one's writeback) shows instead of hiding in
    // the median.
    let by_order =
        |first: usize| -> Vec<f64> { per_round.iter().skip(first).step_by(2).copied().collect() };
    emit(&json!({
        "ratio": "compact/cp",
        "value": compact_d.as_secs_f64() / cp.as_secs_f64(),
        "per_round": per_round,
        "compact_first": by_order(1),
        "cp_first": by_order(0),
    }));
    emit(
        &json!({"ratio": "compact/(cp+fsync)", "value": compact_d.as_secs_f64() / cp_sync.as_secs_f64()}),
    );
    emit(&json!({"ratio": "verify records/s", "value": r.records as f64 / d.as_secs_f64()}));
    Ok(())
}
