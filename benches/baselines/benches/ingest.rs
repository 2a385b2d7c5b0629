//! Ingest benchmark: mediadb against SQLite (rusqlite, WAL) and LMDB (heed), plus the physical
//! floor (one buffer, written in 1 MiB calls, one `sync_data`).
//!
//! Generates N synthetic music-library records (deterministic, before any timing), then per
//! engine measures: durable ingest of all N, open + first get on a fresh handle, and 100,000
//! random gets by path (every one checked against the record's path or key, inode and title; the
//! probes are copied out of the input first, so the timed loops do not reach into it). mediadb
//! also reports its index checkpoint (written when the writer is dropped), and
//! `random_get_many`: 100,000 other random paths looked up 1,000 at a time with
//! `Snapshot::get_many`, on a handle opened afresh (LMDB and SQLite have no such call; its
//! ratio line is against LMDB's single gets, and says so). SQLite and LMDB report their close.
//! One JSON line per measurement goes to stdout, then ratio lines; progress goes to stderr.
//!
//! Run: `cargo bench --workspace --bench ingest`. Environment:
//! * `MEDIADB_BENCH_N` — number of records (default 1,000,000; e.g. 20000 for a quick run);
//! * `MEDIADB_BENCH_DIR` — where the databases go (default `std::env::temp_dir()`); all engines
//!   use the same filesystem. The directory is removed at the end.
//! * `MEDIADB_BENCH_ENGINES` — which of `mediadb,sqlite,lmdb,floor` to run (comma-separated,
//!   default all; the ratio lines need all four). `bench/run` runs one engine per process, so
//!   that `/usr/bin/time` gives each its own peak RSS. `mediadb-inline` (only when named) is
//!   mediadb with its write-ahead off (`Database::set_write_ahead(0)`): every byte of a batch
//!   is written inside `commit()`, the baseline the write-ahead is measured against.
//!
//! Every ingest line also carries `cpu_secs` (the process's CPU time, all threads, during the
//! ingest) and `input_peak_rss_kb` (the process's peak RSS once the records were generated,
//! before the engine ran: the part of a whole-process peak that is the input, not the engine).
//!
//! Reads run with a warm page cache (the files were just written); no timing is asserted.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mediadb::{Database, Kind, Record};
use mediadb_baselines::{Rng, emit, size_of};
use serde_json::{Value, json};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Records per mediadb commit.
const BATCH: usize = 100_000;
/// Random gets per engine.
const GETS: usize = 100_000;
/// Seed of the generator; everything generated is a function of it and N.
const SEED: u64 = 0x6d65_6469_6164_6221;
/// LMDB map size.
const LMDB_MAP: usize = 4 << 30;

// ---------------------------------------------------------------------------------------------
// Deterministic generator

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ra", "ven", "tor", "el", "an", "dru", "sha", "mor", "bel", "qui", "zen",
    "ox", "lu", "fa", "ri", "gon", "nel", "sta", "vi", "cor", "dal", "ith", "ur", "pe", "thal",
    "wyn", "bra", "jo", "sen", "ka", "mar", "lin", "dos", "ve", "ga", "ny", "ho",
];

const WORDS: &[&str] = &[
    "night",
    "river",
    "love",
    "fire",
    "dream",
    "city",
    "light",
    "heart",
    "stone",
    "blue",
    "rain",
    "shadow",
    "summer",
    "winter",
    "gold",
    "silver",
    "road",
    "home",
    "ghost",
    "ocean",
    "morning",
    "electric",
    "wild",
    "broken",
    "golden",
    "last",
    "first",
    "dance",
    "song",
    "sky",
    "moon",
    "sun",
    "star",
    "paper",
    "glass",
    "iron",
    "velvet",
    "echo",
    "machine",
    "garden",
    "wolf",
    "thunder",
    "silence",
    "midnight",
    "highway",
    "mirror",
    "diamond",
    "honey",
    "desert",
    "storm",
    "fever",
    "crystal",
    "neon",
    "island",
    "heaven",
    "harbor",
    "secret",
    "forever",
    "tonight",
    "yesterday",
    "running",
    "falling",
    "burning",
    "lonely",
    "sweet",
    "little",
    "big",
    "black",
    "white",
    "red",
    "green",
    "young",
    "old",
    "northern",
    "southern",
    "holy",
    "lost",
    "hollow",
    "bright",
    "slow",
    "fast",
    "strange",
    "quiet",
    "loud",
    "empty",
    "open",
    "hidden",
];

const GENRES: &[&str] = &[
    "Rock",
    "Pop",
    "Jazz",
    "Blues",
    "Classical",
    "Electronic",
    "Hip-Hop",
    "Folk",
    "Country",
    "Metal",
    "Punk",
    "Soul",
    "Funk",
    "Reggae",
    "Ambient",
    "Indie Rock",
    "Alternative",
    "Soundtrack",
    "World",
    "R&B",
    "Singer-Songwriter",
    "Post-Rock",
    "Techno",
    "House",
    "Drum & Bass",
    "Latin",
    "Gospel",
    "Experimental",
];

const PREFIX: &str = "/srv/music/";
const MIN_PATH: usize = 60;
const MAX_PATH: usize = 120;

fn capitalize(w: &str) -> String {
    let mut s = String::with_capacity(w.len());
    let mut chars = w.chars();
    if let Some(c) = chars.next() {
        s.extend(c.to_uppercase());
        s.push_str(chars.as_str());
    }
    s
}

fn made_up_name(rng: &mut Rng) -> String {
    let n = rng.range(2, 3);
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(rng.pick(SYLLABLES));
    }
    capitalize(&s)
}

fn words(rng: &mut Rng, lo: u64, hi: u64) -> String {
    let n = rng.range(lo, hi);
    let mut out: Vec<String> = Vec::new();
    for _ in 0..n {
        out.push(capitalize(rng.pick(WORDS)));
    }
    out.join(" ")
}

fn artist_name(rng: &mut Rng) -> String {
    let s = match rng.below(10) {
        0..=2 => format!("The {}s", capitalize(rng.pick(WORDS))),
        3..=6 => format!("{} {}", made_up_name(rng), made_up_name(rng)),
        7 => format!("{} & the {}", made_up_name(rng), words(rng, 1, 2)),
        _ => made_up_name(rng),
    };
    truncate(s, 30)
}

/// Cuts `s` to at most `max` bytes (on a char boundary) and trims trailing spaces.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    let t = s.trim_end().len();
    s.truncate(t);
    s
}

/// N records of a synthetic music library: artists with 1–8 albums of 5–18 tracks each, unique
/// paths of 60–120 bytes.
fn generate(n: usize, rng: &mut Rng) -> Vec<Record> {
    let mut out = Vec::with_capacity(n);
    let mut artists = HashSet::new();
    let mut inode = 1_000_000 + rng.below(1 << 20);
    let base_mtime: i64 = 1_500_000_000_000_000_000;
    while out.len() < n {
        let mut artist = artist_name(rng);
        while !artists.insert(artist.clone()) {
            artist = artist_name(rng);
        }
        let genre = rng.pick(GENRES);
        let mut albums = HashSet::new();
        for _ in 0..rng.range(1, 8) {
            let (year, album) = loop {
                let year = rng.range(1955, 2025) as i32;
                let album = truncate(words(rng, 1, 4), 35);
                if albums.insert((year, album.clone())) {
                    break (year, album);
                }
            };
            let tracks = rng.range(5, 18) as u32;
            for track in 1..=tracks {
                if out.len() == n {
                    break;
                }
                let dir = format!("{PREFIX}{artist}/{year} - {album}/{track:02} ");
                let room = MAX_PATH - dir.len() - ".flac".len();
                let mut title = words(rng, 1, 5);
                while dir.len() + title.len() + ".flac".len() < MIN_PATH {
                    title.push(' ');
                    title.push_str(&capitalize(rng.pick(WORDS)));
                }
                let title = truncate(title, room);
                let path = format!("{dir}{title}.flac");
                debug_assert!((MIN_PATH..=MAX_PATH).contains(&path.len()), "{path}");
                let duration_ms = rng.range(90_000, 600_000);
                inode += rng.range(1, 7);
                out.push(Record {
                    path: path.into_bytes(),
                    size: duration_ms * rng.range(80, 140) + rng.below(1 << 16),
                    mtime_ns: base_mtime + rng.below(1 << 58) as i64,
                    inode,
                    kind: Kind::Audio,
                    mime: Some("audio/flac".into()),
                    title: Some(title),
                    artists: vec![artist.clone()],
                    album: Some(album.clone()),
                    genres: vec![genre.to_owned()],
                    year: Some(year),
                    track: Some(track),
                    duration_ms: Some(duration_ms),
                    ..Record::default()
                });
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Hand-written compact encoding (LMDB values and the floor)

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn first(v: &[String]) -> &str {
    v.first().map_or("", String::as_str)
}

/// Every field but the path: fixed-width numbers, then u16-length-prefixed strings.
fn encode_compact(r: &Record, out: &mut Vec<u8>) {
    out.push(r.kind as u8);
    out.extend_from_slice(&r.year.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&r.track.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&r.duration_ms.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&r.size.to_le_bytes());
    out.extend_from_slice(&r.mtime_ns.to_le_bytes());
    out.extend_from_slice(&r.inode.to_le_bytes());
    put_str(out, first(&r.artists));
    put_str(out, r.album.as_deref().unwrap_or(""));
    put_str(out, r.title.as_deref().unwrap_or(""));
    put_str(out, first(&r.genres));
    put_str(out, r.mime.as_deref().unwrap_or(""));
}

/// A decoded compact value, borrowing its strings.
#[derive(Debug)]
struct Compact<'a> {
    kind: u8,
    year: i32,
    track: u32,
    duration_ms: u64,
    size: u64,
    mtime_ns: i64,
    inode: u64,
    strings: [&'a [u8]; 5],
}

fn decode_compact(b: &[u8]) -> Option<Compact<'_>> {
    let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let mut c = Compact {
        kind: *b.first()?,
        year: u32_at(1)? as i32,
        track: u32_at(5)?,
        duration_ms: u64_at(9)?,
        size: u64_at(17)?,
        mtime_ns: u64_at(25)? as i64,
        inode: u64_at(33)?,
        strings: [&[]; 5],
    };
    let mut o = 41;
    for s in &mut c.strings {
        let len = usize::from(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
        *s = b.get(o + 2..o + 2 + len)?;
        o += 2 + len;
    }
    (o == b.len()).then_some(c)
}

// ---------------------------------------------------------------------------------------------
// Measurements and output

struct Timed {
    ingest: Duration,
    /// Process CPU time (every thread) during `ingest`.
    ingest_cpu: Duration,
    /// Of `ingest`, the time spent inside commit calls.
    commit: Duration,
    /// mediadb: checkpoint on drop; SQLite, LMDB: close.
    after: Duration,
    file_bytes: u64,
    open_first_get: Duration,
    random_get: Duration,
    /// mediadb only: as many other random paths, looked up 1,000 at a time with `get_many`
    /// on a handle opened afresh.
    random_get_many: Option<Duration>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn line(bench: &str, engine: &str, n: usize, d: Duration, ops: usize, file_bytes: u64) -> Value {
    json!({
        "bench": bench,
        "engine": engine,
        "records": n,
        "ops": ops,
        "secs": secs(d),
        "per_s": ops as f64 / secs(d),
        "file_bytes": file_bytes,
    })
}

fn with(mut v: Value, extra: Value) -> Value {
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// CPU time of the whole process (every thread) so far.
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clock id is a constant the kernel
    // knows; clock_gettime writes nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The process's peak resident set so far, in KiB (`VmHWM`), or 0 if unknown.
fn peak_rss_kb() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Engines named in `MEDIADB_BENCH_ENGINES` (all when unset).
fn selected_engines() -> Res<Vec<String>> {
    const DEFAULT: [&str; 4] = ["mediadb", "sqlite", "lmdb", "floor"];
    const ALL: [&str; 5] = ["mediadb", "mediadb-inline", "sqlite", "lmdb", "floor"];
    let Ok(list) = std::env::var("MEDIADB_BENCH_ENGINES") else {
        return Ok(DEFAULT.iter().map(|s| (*s).to_owned()).collect());
    };
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !ALL.contains(&name) {
            return Err(format!(
                "MEDIADB_BENCH_ENGINES: unknown engine {name:?} (known: {})",
                ALL.join(",")
            )
            .into());
        }
        out.push(name.to_owned());
    }
    Ok(out)
}

/// Flushes everything written so far (untimed), so one engine's writeback does not land in the
/// next one's timing.
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

// ---------------------------------------------------------------------------------------------
// mediadb

fn run_mediadb(dir: &Path, recs: &[Record], probe_first: usize, probes: &[Probe]) -> Res<Timed> {
    mediadb_with(dir, recs, probe_first, probes, true)
}

/// mediadb with every byte of a batch written inside `commit()`.
fn run_mediadb_inline(
    dir: &Path,
    recs: &[Record],
    probe_first: usize,
    probes: &[Probe],
) -> Res<Timed> {
    mediadb_with(dir, recs, probe_first, probes, false)
}

fn mediadb_with(
    dir: &Path,
    recs: &[Record],
    probe_first: usize,
    probes: &[Probe],
    write_ahead: bool,
) -> Res<Timed> {
    let path = dir.join("lib.mediadb");
    let mut db = Database::create(&path)?;
    if !write_ahead {
        db.set_write_ahead(0);
    }
    let mut commit = Duration::ZERO;
    let mut log_bytes = 0;
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    for chunk in recs.chunks(BATCH) {
        let mut batch = db.batch()?;
        batch.upsert_many(chunk)?;
        let tc = Instant::now();
        let info = batch.commit()?;
        commit += tc.elapsed();
        assert_eq!(info.inserted, chunk.len() as u64);
        log_bytes += info.bytes;
    }
    let ingest = t0.elapsed();
    let ingest_cpu = process_cpu().saturating_sub(cpu0);
    let t1 = Instant::now();
    drop(db);
    let after = t1.elapsed();
    let idx = with_suffix(&path, ".idx");
    let lock = with_suffix(&path, ".lock");
    let file_bytes = size_of(&path) + size_of(&idx) + size_of(&lock);
    eprintln!(
        "mediadb: log {} bytes appended, file {} + idx {} bytes",
        log_bytes,
        size_of(&path),
        size_of(&idx)
    );
    settle();

    let t2 = Instant::now();
    let db = Database::open_read_only(&path)?;
    let snap = db.snapshot();
    let want = &recs[probe_first];
    let got = snap.get(&want.path)?.ok_or("first get: not found")?;
    assert_eq!(got.path(), &want.path[..]);
    let open_first_get = t2.elapsed();

    let t3 = Instant::now();
    for want in probes {
        let got = snap.get(&want.path)?.ok_or("random get: not found")?;
        assert_eq!(got.path(), &want.path[..]);
        assert_eq!(got.inode(), want.inode);
        assert_eq!(got.title().unwrap_or(""), want.title);
    }
    let random_get = t3.elapsed();
    drop(snap);
    drop(db);

    // Other paths than the gets above (whose records those left in cache), on a new handle
    // (whose map has no pages yet): the same cold start as the gets had.
    let mut rng = Rng(SEED ^ 0x6765_745f_6d61_6e79);
    let others: Vec<Probe> = (0..probes.len())
        .map(|_| Probe::of(&recs[rng.below(recs.len() as u64) as usize]))
        .collect();
    let paths: Vec<&[u8]> = others.iter().map(|p| &p.path[..]).collect();
    let db = Database::open_read_only(&path)?;
    let snap = db.snapshot();
    let t4 = Instant::now();
    for (group, wants) in paths.chunks(1000).zip(others.chunks(1000)) {
        for (got, want) in snap.get_many(group)?.iter().zip(wants) {
            let got = got.as_ref().ok_or("get_many: not found")?;
            assert_eq!(got.path(), &want.path[..]);
            assert_eq!(got.inode(), want.inode);
            assert_eq!(got.title().unwrap_or(""), want.title);
        }
    }
    let random_get_many = Some(t4.elapsed());
    Ok(Timed {
        ingest,
        ingest_cpu,
        commit,
        after,
        file_bytes,
        open_first_get,
        random_get,
        random_get_many,
    })
}

// ---------------------------------------------------------------------------------------------
// SQLite

const SQL_SCHEMA: &str = "
    CREATE TABLE tracks (
        id INTEGER PRIMARY KEY,
        path BLOB NOT NULL,
        artist TEXT,
        album TEXT,
        title TEXT,
        genre TEXT,
        year INTEGER,
        track INTEGER,
        duration_ms INTEGER,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        mime TEXT
    );
    CREATE UNIQUE INDEX tracks_path ON tracks(path);";

const SQL_INSERT: &str = "INSERT INTO tracks (path, artist, album, title, genre, year, track, \
     duration_ms, size, mtime_ns, inode, kind, mime) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

const SQL_GET: &str = "SELECT path, artist, album, title, genre, year, track, duration_ms, size, \
     mtime_ns, inode, kind, mime FROM tracks WHERE path = ?1";

/// Runs the get statement for `path`; reads every column; returns (path matches, inode).
fn sqlite_get(stmt: &mut rusqlite::Statement<'_>, path: &[u8]) -> Res<(bool, u64)> {
    Ok(stmt.query_row([path], |row| {
        for c in 1..13 {
            row.get_ref(c)?;
        }
        let same = row.get_ref(0)?.as_blob().is_ok_and(|p| p == path);
        Ok((same, row.get::<_, i64>(10)? as u64))
    })?)
}

fn run_sqlite(dir: &Path, recs: &[Record], probe_first: usize, probes: &[Probe]) -> Res<Timed> {
    use rusqlite::{Connection, OpenFlags, params};
    let path = dir.join("lib.sqlite");
    let mut conn = Connection::open(&path)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SQL_SCHEMA)?;

    let cpu0 = process_cpu();
    let t0 = Instant::now();
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare(SQL_INSERT)?;
        for r in recs {
            stmt.execute(params![
                &r.path[..],
                first(&r.artists),
                r.album.as_deref(),
                r.title.as_deref(),
                first(&r.genres),
                r.year,
                r.track,
                r.duration_ms.map(|d| d as i64),
                r.size as i64,
                r.mtime_ns,
                r.inode as i64,
                r.kind as u8,
                r.mime.as_deref(),
            ])?;
        }
    }
    let tc = Instant::now();
    tx.commit()?;
    let commit = tc.elapsed();
    let ingest = t0.elapsed();
    let ingest_cpu = process_cpu().saturating_sub(cpu0);
    let wal_at_commit = size_of(&with_suffix(&path, "-wal"));
    let t1 = Instant::now();
    conn.close().map_err(|(_, e)| e)?;
    let after = t1.elapsed();
    let file_bytes = size_of(&path)
        + size_of(&with_suffix(&path, "-wal"))
        + size_of(&with_suffix(&path, "-shm"));
    eprintln!(
        "sqlite: wal {wal_at_commit} bytes after commit; after close db {} bytes",
        size_of(&path)
    );
    settle();

    let t2 = Instant::now();
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mut stmt = conn.prepare(SQL_GET)?;
    let want = &recs[probe_first];
    let (same, _) = sqlite_get(&mut stmt, &want.path)?;
    assert!(same, "first get: wrong path");
    let open_first_get = t2.elapsed();

    let t3 = Instant::now();
    for want in probes {
        let (same, inode) = sqlite_get(&mut stmt, &want.path)?;
        assert!(same, "random get: wrong path");
        assert_eq!(inode, want.inode);
    }
    let random_get = t3.elapsed();
    Ok(Timed {
        ingest,
        ingest_cpu,
        commit,
        after,
        file_bytes,
        open_first_get,
        random_get,
        random_get_many: None,
    })
}

// ---------------------------------------------------------------------------------------------
// LMDB

fn open_lmdb(dir: &Path) -> Res<heed::Env> {
    // SAFETY: this process opens the environment once at a time (the writer's env is closed
    // before the reader's opens) and nothing else touches the directory.
    Ok(unsafe { heed::EnvOpenOptions::new().map_size(LMDB_MAP).open(dir)? })
}

/// Checks a value returned for `want.path`. LMDB returns the value of exactly the key asked for
/// and the value holds no path, so identity is checked with the unique inode and the title.
/// One random get: the path to look up and what the record found must hold.
struct Probe {
    path: Vec<u8>,
    inode: u64,
    title: String,
    kind: u8,
}

impl Probe {
    fn of(r: &Record) -> Probe {
        Probe {
            path: r.path.clone(),
            inode: r.inode,
            title: r.title.clone().unwrap_or_default(),
            kind: r.kind as u8,
        }
    }
}

fn check_lmdb(value: Option<&[u8]>, want: &Probe) -> Res<()> {
    let c = decode_compact(value.ok_or("not found")?).ok_or("undecodable value")?;
    assert_eq!(c.inode, want.inode);
    assert_eq!(c.strings[2], want.title.as_bytes());
    assert_eq!(c.kind, want.kind);
    let _ = (c.year, c.track, c.duration_ms, c.size, c.mtime_ns);
    Ok(())
}

fn run_lmdb(dir: &Path, recs: &[Record], probe_first: usize, probes: &[Probe]) -> Res<Timed> {
    use heed::types::Bytes;
    let env_dir = dir.join("lmdb");
    fs::create_dir(&env_dir)?;
    let env = open_lmdb(&env_dir)?;

    let cpu0 = process_cpu();
    let t0 = Instant::now();
    let mut wtxn = env.write_txn()?;
    let db: heed::Database<Bytes, Bytes> = env.create_database(&mut wtxn, None)?;
    let mut buf = Vec::with_capacity(512);
    for r in recs {
        buf.clear();
        encode_compact(r, &mut buf);
        db.put(&mut wtxn, &r.path, &buf)?;
    }
    let tc = Instant::now();
    wtxn.commit()?;
    let commit = tc.elapsed();
    let ingest = t0.elapsed();
    let ingest_cpu = process_cpu().saturating_sub(cpu0);
    let t1 = Instant::now();
    env.prepare_for_closing().wait();
    let after = t1.elapsed();
    let file_bytes = size_of(&env_dir.join("data.mdb")) + size_of(&env_dir.join("lock.mdb"));
    settle();

    let first = Probe::of(&recs[probe_first]);
    let t2 = Instant::now();
    let env = open_lmdb(&env_dir)?;
    let rtxn = env.read_txn()?;
    let db: heed::Database<Bytes, Bytes> =
        env.open_database(&rtxn, None)?.ok_or("no main database")?;
    check_lmdb(db.get(&rtxn, &first.path)?, &first)?;
    let open_first_get = t2.elapsed();

    let t3 = Instant::now();
    for want in probes {
        check_lmdb(db.get(&rtxn, &want.path)?, want)?;
    }
    let random_get = t3.elapsed();
    drop(rtxn);
    env.prepare_for_closing().wait();
    Ok(Timed {
        ingest,
        ingest_cpu,
        commit,
        after,
        file_bytes,
        open_first_get,
        random_get,
        random_get_many: None,
    })
}

// ---------------------------------------------------------------------------------------------
// Floor

/// Serializes every record (length-prefixed path, then the compact encoding) into one buffer,
/// writes it in 1 MiB calls and makes it durable with one `sync_data`.
fn run_floor(dir: &Path, recs: &[Record]) -> Res<Value> {
    let path = dir.join("floor.bin");
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    let mut buf = Vec::new();
    for r in recs {
        let at = buf.len();
        buf.extend_from_slice(&[0u8; 4]);
        buf.extend_from_slice(&(r.path.len() as u16).to_le_bytes());
        buf.extend_from_slice(&r.path);
        encode_compact(r, &mut buf);
        let len = (buf.len() - at - 4) as u32;
        buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    let encoded = t0.elapsed();
    let mut f = File::create(&path)?;
    // In 1 MiB calls, as mediadb writes: one call of the whole buffer lets the kernel back the
    // page cache with large folios, whose allocation stalls on some machines (0.46 s for this
    // write on the 2-core VM of docs/BENCHMARKS.md, against about 0.1 s in pieces).
    for piece in buf.chunks(1 << 20) {
        f.write_all(piece)?;
    }
    let written = t0.elapsed();
    f.sync_data()?;
    let total = t0.elapsed();
    let cpu = process_cpu().saturating_sub(cpu0);
    drop(f);
    Ok(with(
        line(
            "ingest",
            "floor",
            recs.len(),
            total,
            recs.len(),
            size_of(&path),
        ),
        json!({
            "encode_secs": secs(encoded),
            "write_secs": secs(written - encoded),
            "sync_secs": secs(total - written),
            "cpu_secs": secs(cpu),
        }),
    ))
}

// ---------------------------------------------------------------------------------------------

fn main() -> Res<()> {
    let n: usize = match std::env::var("MEDIADB_BENCH_N") {
        Ok(s) => s.trim().replace('_', "").parse()?,
        Err(_) => 1_000_000,
    };
    assert!(n > 0, "MEDIADB_BENCH_N must be positive");
    let base = std::env::var_os("MEDIADB_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let selected = selected_engines()?;
    let tmp = tempfile::Builder::new()
        .prefix("mediadb-bench-")
        .tempdir_in(&base)?;

    let mut rng = Rng(SEED);
    let t = Instant::now();
    let recs = generate(n, &mut rng);
    let probe_first = rng.below(n as u64) as usize;
    // What each random get looks up and checks, copied out of `recs` in probe order, so that
    // the timed loops walk a small array instead of reaching into the 700 MB input.
    let probes: Vec<Probe> = (0..GETS)
        .map(|_| Probe::of(&recs[rng.below(n as u64) as usize]))
        .collect();
    let path_bytes: usize = recs.iter().map(|r| r.path.len()).sum();
    eprintln!(
        "generated {n} records in {:.2}s (mean path {:.1} bytes) under {}",
        t.elapsed().as_secs_f64(),
        path_bytes as f64 / n as f64,
        tmp.path().display()
    );
    let input_peak_rss_kb = peak_rss_kb();

    type Runner = fn(&Path, &[Record], usize, &[Probe]) -> Res<Timed>;
    let engines: [(&str, Runner); 4] = [
        ("mediadb", run_mediadb),
        ("mediadb-inline", run_mediadb_inline),
        ("sqlite", run_sqlite),
        ("lmdb", run_lmdb),
    ];
    let mut results = Vec::new();
    for (name, run) in engines {
        if !selected.iter().any(|s| s == name) {
            continue;
        }
        let dir = tmp.path().join(name);
        fs::create_dir(&dir)?;
        settle();
        eprintln!("{name}: running");
        let r = run(&dir, &recs, probe_first, &probes)?;
        emit(&with(
            line("ingest", name, n, r.ingest, n, r.file_bytes),
            json!({
                "commit_secs": secs(r.commit),
                "cpu_secs": secs(r.ingest_cpu),
                "input_peak_rss_kb": input_peak_rss_kb,
            }),
        ));
        if name.starts_with("mediadb") {
            emit(&line("checkpoint", name, n, r.after, n, r.file_bytes));
        } else {
            emit(&line("close", name, n, r.after, 1, r.file_bytes));
        }
        emit(&line(
            "open_first_get",
            name,
            n,
            r.open_first_get,
            1,
            r.file_bytes,
        ));
        emit(&line(
            "random_get",
            name,
            n,
            r.random_get,
            GETS,
            r.file_bytes,
        ));
        if let Some(d) = r.random_get_many {
            emit(&line("random_get_many", name, n, d, GETS, r.file_bytes));
        }
        fs::remove_dir_all(&dir)?;
        results.push((name, r));
    }
    let get = |name: &str| results.iter().find(|(e, _)| *e == name).map(|r| &r.1);
    let ratio = |what: &str, v: f64| emit(&json!({ "ratio": what, "value": v, "of": "secs" }));
    if let (Some(m), Some(i)) = (get("mediadb"), get("mediadb-inline")) {
        ratio(
            "ingest mediadb/mediadb-inline",
            secs(m.ingest) / secs(i.ingest),
        );
    }
    if !selected.iter().any(|s| s == "floor") {
        return Ok(());
    }
    settle();
    let floor_dir = tmp.path().join("floor");
    fs::create_dir(&floor_dir)?;
    let floor = with(
        run_floor(&floor_dir, &recs)?,
        json!({ "input_peak_rss_kb": input_peak_rss_kb }),
    );
    emit(&floor);
    let floor_secs = floor["secs"].as_f64().unwrap_or(f64::NAN);
    let (Some(m), Some(s), Some(l)) = (get("mediadb"), get("sqlite"), get("lmdb")) else {
        return Ok(());
    };
    ratio("ingest mediadb/lmdb", secs(m.ingest) / secs(l.ingest));
    ratio("ingest mediadb/sqlite", secs(m.ingest) / secs(s.ingest));
    ratio("ingest mediadb/floor", secs(m.ingest) / floor_secs);
    ratio(
        "random_get mediadb/lmdb",
        secs(m.random_get) / secs(l.random_get),
    );
    if let Some(d) = m.random_get_many {
        // Not like for like: LMDB has no lookup of many keys at once, so its single gets are
        // what a caller of either would have.
        ratio(
            "random_get_many mediadb/lmdb random_get",
            secs(d) / secs(l.random_get),
        );
    }
    ratio(
        "random_get mediadb/sqlite",
        secs(m.random_get) / secs(s.random_get),
    );
    for (name, r) in &results {
        emit(&json!({
            "metric": "open_first_get_ms",
            "engine": name,
            "value": secs(r.open_first_get) * 1e3,
        }));
    }
    Ok(())
}
