//! End-to-end tests of `mediadb query`, `ls`, `export` and `import` (issue 5), driving the real
//! binary over databases filled through the library API.
//!
//! Query evaluation is checked against sets computed here, in plain Rust, from the generator's
//! own records: the oracle below does not use `mediadb::query`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine;
use mediadb::{Database, Kind, OpenOptions, Record};
use serde_json::Value as Json;

const BIN: &str = env!("CARGO_BIN_EXE_mediadb");

/// Every record field of BRIEF §2, in output order.
const FIELDS: [&str; 30] = [
    "id",
    "path",
    "dir",
    "name",
    "size",
    "mtime_ns",
    "kind",
    "mime",
    "title",
    "artist",
    "artists",
    "album",
    "album_artist",
    "genre",
    "genres",
    "year",
    "track",
    "track_total",
    "disc",
    "disc_total",
    "compilation",
    "duration_ms",
    "bitrate",
    "sample_rate",
    "channels",
    "bit_depth",
    "has_cover",
    "musicbrainz_track_id",
    "musicbrainz_album_id",
    "error",
];

// ---------------------------------------------------------------------------------------------
// Running the binary

fn cmd(db: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--db")
        .arg(db)
        .env_remove("MEDIADB_DB")
        .env_remove("COLUMNS")
        .stdin(Stdio::null());
    c
}

fn run(db: &Path, args: &[&str]) -> Output {
    cmd(db).args(args).output().expect("mediadb runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs and expects exit 0 with nothing on stderr; returns stdout.
fn ok(db: &Path, args: &[&str]) -> Vec<u8> {
    let o = run(db, args);
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "mediadb {args:?}: {}\nstderr: {}",
        o.status,
        text(&o.stderr)
    );
    o.stdout
}

fn ok_str(db: &Path, args: &[&str]) -> String {
    String::from_utf8(ok(db, args)).expect("stdout is UTF-8")
}

fn jsonl(db: &Path, args: &[&str]) -> Vec<Json> {
    let mut a = vec!["query", "--format", "jsonl"];
    a.extend_from_slice(args);
    ok_str(db, &a)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// The ids `query TERMS` selects.
fn query_ids(db: &Path, terms: &[String]) -> BTreeSet<u64> {
    let mut a = vec!["query", "--format", "jsonl", "--fields", "id"];
    a.extend(terms.iter().map(String::as_str));
    let out = ok_str(db, &a);
    let mut ids = BTreeSet::new();
    for line in out.lines() {
        let v: Json = serde_json::from_str(line).expect("JSON line");
        let obj = v.as_object().expect("object");
        assert_eq!(obj.len(), 1, "--fields id gives only the id: {line}");
        assert!(
            ids.insert(v["id"].as_u64().expect("numeric id")),
            "id twice: {line}"
        );
    }
    ids
}

fn write_db(path: &Path, records: &mut [Record]) {
    let mut db = Database::create(path).expect("create database");
    let mut b = db.batch().expect("batch");
    for r in records.iter_mut() {
        r.id = b.upsert(r).expect("upsert");
    }
    b.commit().expect("commit");
}

// ---------------------------------------------------------------------------------------------
// A deterministic library

/// SplitMix64: the same records on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
    /// Between `min` and `max` distinct values of `xs`.
    fn some(&mut self, xs: &[&str], min: u64, max: u64) -> Vec<String> {
        let n = self.range(min, max);
        let mut out: Vec<String> = Vec::new();
        while (out.len() as u64) < n {
            let x = self.pick(xs);
            if !out.iter().any(|o| o == x) {
                out.push(x.to_owned());
            }
        }
        out
    }
}

const ARTISTS: &[&str] = &[
    "Björk",
    "BJÖRK",
    "The Beatles",
    "Straße Band",
    "STRASSE Boys",
    "Sigur Rós",
    "AC/DC",
    "Daft Punk",
    "Beyoncé",
    "Motörhead",
    "Ólafur Arnalds",
    "Σίσυφος",
];
const ALBUMS: &[&str] = &[
    "Homogenic",
    "Debut",
    "Abbey Road",
    "Ágætis byrjun",
    "Discovery",
    "Hello, World",
    "Straßenmusik",
    "Live at the \"Roxy\"",
];
const GENRES: &[&str] = &[
    "Rock",
    "Pop",
    "Electronic",
    "Post-Rock",
    "Jazz",
    "Hip-Hop",
    "Ambient",
    "Folk",
    "Rock & Roll",
];
const TITLES: &[&str] = &[
    "Jóga",
    "Hyperballad",
    "Straße",
    "STRASSE Remix",
    "Hello, World",
    "Say \"Hi\"",
    "Re: Stacks",
    "ΣΊΣΥΦΟΣ",
    "Army of Me",
    "One More Time",
];
const COMPILATION: &str = "Now That's Mediadb";
const COMPILATION_MBID: &str = "9f0e3c3a-0000-4000-8000-00000000c0de";

/// A few hundred records covering every field and the case-folding corners.
fn generate(n: usize, seed: u64) -> Vec<Record> {
    let mut g = Rng(seed);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let kind = match g.below(100) {
            0..70 => Kind::Audio,
            70..80 => Kind::Video,
            80..88 => Kind::Image,
            88..93 => Kind::Playlist,
            _ => Kind::Other,
        };
        let (mime, ext) = match kind {
            Kind::Audio if g.chance(1, 2) => (Some("audio/flac"), "flac"),
            Kind::Audio => (Some("audio/mpeg"), "mp3"),
            Kind::Video => (Some("video/mp4"), "mp4"),
            Kind::Image => (Some("image/jpeg"), "jpg"),
            Kind::Playlist => (Some("audio/x-mpegurl"), "m3u"),
            Kind::Other => (None, "txt"),
        };
        let compilation = i % 23 == 5;
        let artists = if compilation {
            vec![g.pick(ARTISTS).to_owned()]
        } else {
            let max = if g.chance(1, 4) { 3 } else { 1 };
            let min = if g.chance(1, 15) { 0 } else { 1 };
            g.some(ARTISTS, min, max)
        };
        let album = if compilation {
            Some(COMPILATION.to_owned())
        } else if g.chance(5, 6) {
            Some(g.pick(ALBUMS).to_owned())
        } else {
            None
        };
        let album_artist = if compilation {
            (i % 2 == 0).then(|| "Various Artists".to_owned())
        } else if g.chance(1, 3) {
            artists.first().cloned()
        } else {
            None
        };
        let title = match g.below(3) {
            0 => None,
            1 => Some(g.pick(TITLES).to_owned()),
            _ => Some(format!("Track {}", g.range(1, 20))),
        };
        let track = g.chance(5, 6).then(|| g.range(1, 20) as u32);
        let disc = g.chance(1, 2).then(|| g.range(1, 2) as u32);
        let top = match i % 9 {
            0 => "Björk Live".to_owned(),
            _ => artists
                .first()
                .map_or("Unknown".to_owned(), |a| a.replace('/', "_")),
        };
        let path = format!(
            "/music/{top}/{}/{i:03} {}.{ext}",
            album.as_deref().unwrap_or("Singles").replace('/', "_"),
            title.as_deref().unwrap_or("untitled")
        );
        out.push(Record {
            path: path.into_bytes(),
            size: g.range(1000, 50_000_000),
            mtime_ns: 1_600_000_000_000_000_000 + g.below(1 << 40) as i64,
            kind,
            mime: mime.map(str::to_owned),
            title,
            artists,
            album,
            album_artist,
            genres: g.some(GENRES, 0, 3),
            year: g.chance(7, 8).then(|| g.range(1960, 2024) as i32),
            track,
            track_total: track.map(|t| t.max(12)),
            disc,
            disc_total: disc.map(|_| 2),
            compilation: if compilation {
                Some(true)
            } else {
                g.chance(1, 3).then_some(false)
            },
            duration_ms: g.chance(9, 10).then(|| g.range(30_000, 600_000)),
            bitrate: g.chance(1, 2).then(|| g.range(96, 1411) as u32),
            sample_rate: Some(44_100),
            channels: Some(2),
            bit_depth: g.chance(1, 2).then_some(16),
            has_cover: match g.below(3) {
                0 => None,
                1 => Some(true),
                _ => Some(false),
            },
            musicbrainz_track_id: g.chance(1, 2).then(|| format!("track-{i:04}")),
            musicbrainz_album_id: if compilation {
                Some(COMPILATION_MBID.to_owned())
            } else {
                None
            },
            error: g.chance(1, 12).then(|| "unreadable tag".to_owned()),
            ..Record::default()
        });
    }
    out
}

/// A temporary directory holding the generated library; the records carry their ids.
fn library(n: usize) -> (tempfile::TempDir, PathBuf, Vec<Record>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("lib.mediadb");
    let mut recs = generate(n, 0x5eed_0005);
    write_db(&db, &mut recs);
    (dir, db, recs)
}

// ---------------------------------------------------------------------------------------------
// The oracle: plain Rust over the generator's records

/// Full case folding for the characters the generator uses.
fn fold(s: &str) -> String {
    s.to_lowercase().replace('ß', "ss").replace('ς', "σ")
}

fn ci(hay: &str, needle: &str) -> bool {
    fold(hay).contains(&fold(needle))
}

fn path_of(r: &Record) -> String {
    text(&r.path)
}

fn dir_of(r: &Record) -> String {
    let p = path_of(r);
    p[..p.rfind('/').expect("absolute path")].to_owned()
}

fn joined(v: &[String]) -> Option<String> {
    (!v.is_empty()).then(|| v.join("; "))
}

fn bare(r: &Record, word: &str) -> bool {
    let one = |s: &Option<String>| s.as_deref().is_some_and(|s| ci(s, word));
    one(&r.title)
        || r.artists.iter().any(|a| ci(a, word))
        || one(&r.album)
        || one(&r.album_artist)
        || r.genres.iter().any(|g| ci(g, word))
        || ci(&path_of(r), word)
}

fn in_range<T: Copy + Into<i64>>(v: Option<T>, lo: Option<i64>, hi: Option<i64>) -> bool {
    v.is_some_and(|v| {
        let v = v.into();
        lo.is_none_or(|lo| v >= lo) && hi.is_none_or(|hi| v <= hi)
    })
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Audio => "audio",
        Kind::Video => "video",
        Kind::Image => "image",
        Kind::Playlist => "playlist",
        Kind::Other => "other",
    }
}

type Pred = Box<dyn Fn(&Record) -> bool>;

fn case(terms: &[&str], pred: impl Fn(&Record) -> bool + 'static) -> (Vec<String>, Pred) {
    (
        terms.iter().map(|s| (*s).to_owned()).collect(),
        Box::new(pred),
    )
}

/// Every syntax form, with what it must select.
fn cases(recs: &[Record]) -> Vec<(Vec<String>, Pred)> {
    // A year and an id that occur, so equality has something to find.
    let year = recs.iter().find_map(|r| r.year).expect("a year");
    let id = recs[17].id;
    let year_s = format!("year:{year}");
    let id_s = format!("id:{id}");
    // A subtree rooted at one file is that file; beside it, its directory's other files.
    let file = path_of(&recs[23]);
    let file_s = format!("path:{file}");
    let not_file_s = format!("^path:{file}");
    let file_dir_s = format!("path:{}", &file[..file.rfind('/').expect("slash")]);
    let mut v = vec![
        // Bare words: case-insensitive, Unicode case folding, over six fields.
        case(&["björk"], |r| bare(r, "björk")),
        case(&["BJÖRK"], |r| bare(r, "björk")),
        case(&["straße"], |r| bare(r, "strasse")),
        case(&["STRASSE"], |r| bare(r, "straße")),
        case(&["σίσυφος"], |r| bare(r, "ΣΊΣΥΦΟΣ")),
        case(&["rock"], |r| bare(r, "rock")),
        case(&["Re: Stacks"], |r| bare(r, "Re: Stacks")),
        case(&["hello,", "world"], |r| {
            bare(r, "hello") || bare(r, "world")
        }),
        // A word holding a `/` can span a path's directory and name.
        case(&["björk/"], |r| bare(r, "björk/")),
        case(&["live/debut/0"], |r| bare(r, "live/debut/0")),
        // field:value substring; artist/genre are the joined display values.
        case(&["artist:beatles"], |r| {
            joined(&r.artists).is_some_and(|a| ci(&a, "beatles"))
        }),
        case(&["artists:ÖR"], |r| r.artists.iter().any(|a| ci(a, "ör"))),
        case(&["artist:s; b"], |r| {
            joined(&r.artists).is_some_and(|a| ci(&a, "s; b"))
        }),
        case(&["genre:rock"], |r| {
            joined(&r.genres).is_some_and(|g| ci(&g, "rock"))
        }),
        case(&["title:STRASSE"], |r| {
            r.title.as_deref().is_some_and(|t| ci(t, "strasse"))
        }),
        case(&["title:"], |r| r.title.is_some()),
        case(&["^title:"], |r| r.title.is_none()),
        case(&["name::^0[0-9]+ untitled[.]"], |r| {
            let p = path_of(r);
            let name = &p[p.rfind('/').expect("slash") + 1..];
            name.len() > 3
                && name.as_bytes()[0] == b'0'
                && name[1..]
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .starts_with(" untitled.")
        }),
        case(&["album:hello, world"], |r| {
            r.album.as_deref().is_some_and(|a| ci(a, "hello, world"))
        }),
        case(&["name:track 1"], |r| {
            let p = path_of(r);
            ci(&p[p.rfind('/').expect("slash") + 1..], "track 1")
        }),
        case(&["dir:björk"], |r| ci(&dir_of(r), "björk")),
        case(&["path:live"], |r| ci(&path_of(r), "live")),
        // field:=exact: case-sensitive; multi-valued fields match any value.
        case(&["artists:=Björk"], |r| {
            r.artists.iter().any(|a| a == "Björk")
        }),
        case(&["artist:=The Beatles"], |r| {
            joined(&r.artists).as_deref() == Some("The Beatles")
        }),
        case(&["genres:=Rock"], |r| r.genres.iter().any(|g| g == "Rock")),
        case(&["title:=Straße"], |r| {
            r.title.as_deref() == Some("Straße")
        }),
        case(&["album_artist:=Various Artists"], |r| {
            r.album_artist.as_deref() == Some("Various Artists")
        }),
        case(
            &[&format!("musicbrainz_album_id:={COMPILATION_MBID}")],
            |r| r.musicbrainz_album_id.as_deref() == Some(COMPILATION_MBID),
        ),
        // field::regex
        case(&["title::^Track [0-9]$"], |r| {
            r.title.as_deref().is_some_and(|t| {
                t.strip_prefix("Track ")
                    .is_some_and(|d| d.len() == 1 && d.as_bytes()[0].is_ascii_digit())
            })
        }),
        case(&["genres::^(Rock|Pop)$"], |r| {
            r.genres.iter().any(|g| g == "Rock" || g == "Pop")
        }),
        case(&["artists::(?i)^björk$"], |r| {
            r.artists.iter().any(|a| a == "Björk" || a == "BJÖRK")
        }),
        case(&["path::\\.(flac|mp3)$"], |r| {
            let p = path_of(r);
            p.ends_with(".flac") || p.ends_with(".mp3")
        }),
        // Numbers: equality and ranges.
        case(&[&year_s], move |r| r.year == Some(year)),
        case(&[&id_s], move |r| r.id == id),
        case(&["year:1990..1999"], |r| {
            in_range(r.year, Some(1990), Some(1999))
        }),
        case(&["year:..1970"], |r| in_range(r.year, None, Some(1970))),
        case(&["year:2010.."], |r| in_range(r.year, Some(2010), None)),
        case(&["duration_ms:..240000"], |r| {
            in_range(r.duration_ms.map(|d| d as i64), None, Some(240_000))
        }),
        case(&["size:25000000.."], |r| {
            in_range(Some(r.size as i64), Some(25_000_000), None)
        }),
        case(&["track:1..3"], |r| in_range(r.track, Some(1), Some(3))),
        case(&["disc:=2"], |r| r.disc == Some(2)),
        case(&["bitrate:..320"], |r| in_range(r.bitrate, None, Some(320))),
        // Paths: a subtree, not a prefix of a sibling's name ("Björk Live").
        case(&["path:/music/Björk"], |r| {
            path_of(r).starts_with("/music/Björk/")
        }),
        case(&["path:/music/Björk/"], |r| {
            path_of(r).starts_with("/music/Björk/")
        }),
        case(&["path:/music/Björk Live/Debut"], |r| {
            path_of(r).starts_with("/music/Björk Live/Debut/")
        }),
        case(&["^path:/music/Björk"], |r| {
            !path_of(r).starts_with("/music/Björk/")
        }),
        case(&["path:/music/Björk", ",", "kind:video"], |r| {
            path_of(r).starts_with("/music/Björk/") || r.kind == Kind::Video
        }),
        case(&[&file_s], {
            let file = file.clone();
            move |r| path_of(r) == file
        }),
        case(&[&not_file_s, &file_dir_s], {
            let dir = format!("{}/", &file[..file.rfind('/').expect("slash")]);
            move |r| path_of(r) != file && path_of(r).starts_with(&dir)
        }),
        // Kind, mime, error, booleans.
        case(&["kind:audio"], |r| r.kind == Kind::Audio),
        case(&["kind:video"], |r| r.kind == Kind::Video),
        case(&["kind:=playlist"], |r| r.kind == Kind::Playlist),
        case(&["mime:audio/flac"], |r| {
            r.mime.as_deref() == Some("audio/flac")
        }),
        case(&["mime:audio"], |r| {
            r.mime.as_deref().is_some_and(|m| m.contains("audio"))
        }),
        case(&["error:"], |r| r.error.is_some()),
        case(&["has_cover:true"], |r| r.has_cover == Some(true)),
        case(&["has_cover:false"], |r| r.has_cover == Some(false)),
        case(&["compilation:yes"], |r| r.compilation == Some(true)),
        case(&["musicbrainz_track_id:"], |r| {
            r.musicbrainz_track_id.is_some()
        }),
        // Negation.
        case(&["^error:"], |r| r.error.is_none()),
        case(&["^has_cover:true"], |r| r.has_cover != Some(true)),
        case(&["^kind:audio"], |r| r.kind != Kind::Audio),
        case(&["^genres:rock"], |r| {
            !r.genres.iter().any(|g| ci(g, "rock"))
        }),
        case(&["^year:1990..1999"], |r| {
            !in_range(r.year, Some(1990), Some(1999))
        }),
        case(&["^björk"], |r| !bare(r, "björk")),
        // AND, OR, and both.
        case(&["kind:audio", "year:2000..", "^genres:jazz"], |r| {
            r.kind == Kind::Audio
                && in_range(r.year, Some(2000), None)
                && !r.genres.iter().any(|g| ci(g, "jazz"))
        }),
        case(&["genres:=Jazz", ",", "year:..1965"], |r| {
            r.genres.iter().any(|g| g == "Jazz") || in_range(r.year, None, Some(1965))
        }),
        case(&["artist:daft,", "album:homogenic"], |r| {
            joined(&r.artists).is_some_and(|a| ci(&a, "daft"))
                || r.album.as_deref().is_some_and(|a| ci(a, "homogenic"))
        }),
        case(
            &["kind:video", "has_cover:true", ",", "kind:image", "^error:"],
            |r| {
                (r.kind == Kind::Video && r.has_cover == Some(true))
                    || (r.kind == Kind::Image && r.error.is_none())
            },
        ),
    ];
    // The empty query selects everything.
    v.push((Vec::new(), Box::new(|_| true)));
    v
}

#[test]
fn every_syntax_form_selects_the_hand_computed_set() {
    let (_dir, db, recs) = library(400);
    let all: BTreeSet<u64> = recs.iter().map(|r| r.id).collect();
    assert_eq!(all.len(), recs.len(), "paths are unique");
    let mut failures = Vec::new();
    for (terms, pred) in cases(&recs) {
        let want: BTreeSet<u64> = recs.iter().filter(|r| pred(r)).map(|r| r.id).collect();
        if !terms.is_empty() {
            assert!(
                !want.is_empty() && want.len() < recs.len(),
                "the generator should make {terms:?} select some but not all records ({} of {})",
                want.len(),
                recs.len()
            );
        }
        let got = query_ids(&db, &terms);
        if got != want {
            let missing: Vec<_> = want.difference(&got).take(5).collect();
            let extra: Vec<_> = got.difference(&want).take(5).collect();
            failures.push(format!(
                "{terms:?}: want {} got {}; missing e.g. {:?}, unexpected e.g. {:?}",
                want.len(),
                got.len(),
                missing
                    .iter()
                    .map(|id| path_of(&recs[(**id - 1) as usize]))
                    .collect::<Vec<_>>(),
                extra
                    .iter()
                    .map(|id| path_of(&recs[(**id - 1) as usize]))
                    .collect::<Vec<_>>()
            ));
        }
        // --count agrees with the listing.
        let mut a = vec!["query", "--count"];
        a.extend(terms.iter().map(String::as_str));
        let n: usize = ok_str(&db, &a).trim().parse().expect("a number");
        if n != want.len() {
            failures.push(format!("--count {terms:?}: want {} got {n}", want.len()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn case_folded_spellings_select_the_same_records() {
    let (_dir, db, _recs) = library(400);
    let q = |t: &str| query_ids(&db, &[t.to_owned()]);
    assert_eq!(q("björk"), q("BJÖRK"));
    assert_eq!(q("straße"), q("STRASSE"));
    assert_eq!(q("artists:straße"), q("artists:strasse"));
    assert_eq!(q("Σίσυφος"), q("ΣΊΣΥΦΟΣ"));
    // Exact matches are case-sensitive.
    assert_ne!(q("artists:=Björk"), q("artists:=BJÖRK"));
}

#[test]
fn malformed_queries_exit_2_naming_the_term() {
    let (_dir, db, _recs) = library(20);
    for (args, bad) in [
        (vec!["query", "nope:x"], "nope:x"),
        (
            vec!["query", "kind:audio", "title::(unclosed"],
            "title::(unclosed",
        ),
        (vec!["query", "year:19x0..1999"], "year:19x0..1999"),
        (vec!["query", "year:.."], "year:.."),
        (vec!["query", "year:abc"], "year:abc"),
        (vec!["query", "has_cover:maybe"], "has_cover:maybe"),
        (vec!["query", "a", ",", ","], ","),
        (vec!["query", "--count", "genres::["], "genres::["),
        (vec!["query", "--sort", "nope"], "nope"),
        (vec!["query", "--fields", "id,nope"], "nope"),
        (vec!["query", "--group-by", "colour"], "colour"),
        (vec!["ls", "--kind", "sound"], "sound"),
    ] {
        let o = run(&db, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(o.stdout.is_empty(), "{args:?} printed {}", text(&o.stdout));
        let err = text(&o.stderr);
        assert!(
            err.contains(bad),
            "{args:?}: stderr {err:?} should name {bad:?}"
        );
        assert!(err.starts_with("mediadb: "), "{args:?}: {err:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Output formats

/// The expected JSON value of field `f` of `r`.
fn expected_json(r: &Record, f: &str) -> Json {
    let s = |v: &Option<String>| v.clone().map_or(Json::Null, Json::from);
    let n = |v: Option<i64>| v.map_or(Json::Null, Json::from);
    let list = |v: &[String]| Json::from(v.to_vec());
    match f {
        "id" => r.id.into(),
        "path" => path_of(r).into(),
        "dir" => dir_of(r).into(),
        "name" => {
            let p = path_of(r);
            p[p.rfind('/').expect("slash") + 1..].into()
        }
        "size" => r.size.into(),
        "mtime_ns" => r.mtime_ns.into(),
        "kind" => kind_name(r.kind).into(),
        "mime" => s(&r.mime),
        "title" => s(&r.title),
        "artist" => s(&joined(&r.artists)),
        "artists" => list(&r.artists),
        "album" => s(&r.album),
        "album_artist" => s(&r.album_artist),
        "genre" => s(&joined(&r.genres)),
        "genres" => list(&r.genres),
        "year" => n(r.year.map(i64::from)),
        "track" => n(r.track.map(i64::from)),
        "track_total" => n(r.track_total.map(i64::from)),
        "disc" => n(r.disc.map(i64::from)),
        "disc_total" => n(r.disc_total.map(i64::from)),
        "compilation" => r.compilation.map_or(Json::Null, Json::from),
        "duration_ms" => n(r.duration_ms.map(|d| d as i64)),
        "bitrate" => n(r.bitrate.map(i64::from)),
        "sample_rate" => n(r.sample_rate.map(i64::from)),
        "channels" => n(r.channels.map(i64::from)),
        "bit_depth" => n(r.bit_depth.map(i64::from)),
        "has_cover" => r.has_cover.map_or(Json::Null, Json::from),
        "musicbrainz_track_id" => s(&r.musicbrainz_track_id),
        "musicbrainz_album_id" => s(&r.musicbrainz_album_id),
        "error" => s(&r.error),
        other => panic!("unknown field {other}"),
    }
}

/// The text a CSV/table cell shows for a JSON value: lists joined with "; ", null empty.
fn cell(v: &Json) -> String {
    match v {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        Json::Array(a) => a
            .iter()
            .map(|x| x.as_str().expect("string list"))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

fn by_id(recs: &[Record]) -> BTreeMap<u64, &Record> {
    recs.iter().map(|r| (r.id, r)).collect()
}

#[test]
fn json_is_one_array_of_brief_shaped_records() {
    let (_dir, db, recs) = library(150);
    let v: Json = serde_json::from_slice(&ok(&db, &["query", "--format", "json"])).expect("JSON");
    let arr = v.as_array().expect("one array");
    assert_eq!(arr.len(), recs.len());
    let recs = by_id(&recs);
    let mut seen = BTreeSet::new();
    for o in arr {
        let obj = o.as_object().expect("object");
        let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(keys, FIELDS.iter().copied().collect(), "field names");
        let id = o["id"].as_u64().expect("id is a number");
        seen.insert(id);
        let r = recs[&id];
        for f in FIELDS {
            assert_eq!(o[f], expected_json(r, f), "field {f} of {}", path_of(r));
        }
        assert!(o["artists"].is_array() && o["genres"].is_array());
    }
    assert_eq!(seen.len(), recs.len());
    // An empty result is an empty array, exit 0.
    let empty: Json = serde_json::from_slice(&ok(
        &db,
        &["query", "--format", "json", "title:=no such title"],
    ))
    .expect("JSON");
    assert_eq!(empty, Json::Array(Vec::new()));
    // --fields picks and orders the fields.
    let v: Json = serde_json::from_slice(&ok(
        &db,
        &[
            "query",
            "--format",
            "json",
            "--fields",
            "title,year,artists",
        ],
    ))
    .expect("JSON");
    for o in v.as_array().expect("array") {
        let keys: BTreeSet<&str> = o
            .as_object()
            .expect("obj")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["artists", "title", "year"].into_iter().collect());
    }
}

#[test]
fn jsonl_is_one_record_per_line_in_path_order() {
    let (_dir, db, recs) = library(150);
    let lines = jsonl(&db, &[]);
    assert_eq!(lines.len(), recs.len());
    let recs = by_id(&recs);
    for o in &lines {
        let r = recs[&o["id"].as_u64().expect("id")];
        for f in FIELDS {
            assert_eq!(o[f], expected_json(r, f), "field {f}");
        }
    }
    // The default order is natural path order, and `paths` follows it.
    let paths: Vec<String> = lines
        .iter()
        .map(|o| o["path"].as_str().expect("path").to_owned())
        .collect();
    for w in paths.windows(2) {
        assert!(
            mediadb::query::natural_cmp(w[0].as_bytes(), w[1].as_bytes()).is_lt(),
            "{:?} before {:?}",
            w[0],
            w[1]
        );
    }
    let listed = ok_str(&db, &["query", "--format", "paths"]);
    assert_eq!(listed.lines().collect::<Vec<_>>(), paths);
    // Piped stdout without --format means paths.
    assert_eq!(ok_str(&db, &["query"]), listed);
}

#[test]
fn csv_parses_back_with_header_and_quoting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("csv.mediadb");
    let mut recs = generate(80, 7);
    recs[0].title = Some("comma, \"quoted\" and\nnewline".into());
    recs[1].album = Some("\"\"".into());
    recs[2].artists = vec!["A, B".into(), "C \"D\"".into()];
    recs[3].title = Some(String::new());
    write_db(&db, &mut recs);
    let out = ok_str(&db, &["query", "--format", "csv"]);
    let mut rd = csv::ReaderBuilder::new().from_reader(out.as_bytes());
    let header: Vec<String> = rd
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, FIELDS);
    let recs = by_id(&recs);
    let mut n = 0;
    for row in rd.records() {
        let row = row.expect("valid CSV row");
        n += 1;
        let r = recs[&row[0].parse::<u64>().expect("id")];
        for (i, f) in FIELDS.iter().enumerate() {
            let want = cell(&expected_json(r, f));
            assert_eq!(&row[i], want, "field {f} of {}", path_of(r));
        }
    }
    assert_eq!(n, recs.len());
    // RFC 4180: CRLF ends a record; the title's newline is a real one, inside quotes.
    assert_eq!(out.matches("\r\n").count(), recs.len() + 1);
    assert_eq!(out.lines().count(), recs.len() + 2);
    assert!(
        out.contains("\"comma, \"\"quoted\"\" and\nnewline\""),
        "{out:?}"
    );
    // --fields sets the header.
    let out = ok_str(&db, &["query", "--format", "csv", "--fields", "title,id"]);
    assert!(out.starts_with("title,id\r\n"), "{out:?}");
}

fn width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

#[test]
fn table_has_a_header_and_fits_the_default_width() {
    // On a pipe the terminal width is unknown and COLUMNS is not consulted: tables are 120
    // columns wide.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("t.mediadb");
    let mut recs = generate(60, 11);
    recs[0].title = Some("An extremely long title ".repeat(12));
    recs[1].album = Some("東京事変 ".repeat(20));
    recs[2].artists = vec!["Wide 音楽家 ".repeat(15)];
    write_db(&db, &mut recs);
    for args in [
        vec!["query", "--format", "table"],
        vec![
            "query",
            "--format",
            "table",
            "--fields",
            "id,title,album,path",
        ],
        vec!["query", "--format", "table", "--group-by", "album"],
        vec!["ls", "--format", "table", "/music"],
    ] {
        let out = ok_str(&db, &args);
        let lines: Vec<&str> = out.lines().collect();
        for l in &lines {
            assert!(width(l) <= 120, "{args:?}: {} columns: {l:?}", width(l));
        }
        if args[0] == "query" {
            let header = lines.first().expect("a header");
            assert_eq!(header.to_uppercase(), *header, "header is the field names");
            if args.len() == 3 {
                for f in ["ARTIST", "ALBUM", "TRACK", "TITLE", "YEAR", "PATH"] {
                    assert!(header.contains(f), "{header:?} has {f}");
                }
                assert_eq!(lines.len(), recs.len() + 1);
            }
        }
    }
    // Truncated cells end with an ellipsis; the long title is cut, not wrapped.
    let out = ok_str(&db, &["query", "--format", "table", "--fields", "title"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("An extremely long title") && l.ends_with('…'))
    );
}

// ---------------------------------------------------------------------------------------------
// Exact bytes and control characters

fn odd_paths() -> Vec<Vec<u8>> {
    vec![
        b"/w/plain.flac".to_vec(),
        b"/w/caf\xe9 latin1.flac".to_vec(),
        b"/w/\xff\xfe raw.mp3".to_vec(),
        b"/w/new\nline.flac".to_vec(),
        b"/w/esc\x1b[31mred.flac".to_vec(),
        b"/w/tab\tand\rcr.ogg".to_vec(),
        "/w/ünïcødé ✓.flac".as_bytes().to_vec(),
    ]
}

fn odd_library() -> (tempfile::TempDir, PathBuf, Vec<Record>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("odd.mediadb");
    let mut recs: Vec<Record> = odd_paths()
        .into_iter()
        .enumerate()
        .map(|(i, p)| Record {
            path: p,
            kind: Kind::Audio,
            title: Some(format!("Evil\u{1b}[31mRed {i}\nsecond line\u{7}")),
            artists: vec!["Esc\u{1b}]0;title\u{7}Artist".into(), "Plain".into()],
            album: Some(format!("Album {i}")),
            album_artist: Some("Bad\u{1b}[2JAA".into()),
            genres: vec!["Noise\r".into()],
            ..Record::default()
        })
        .collect();
    write_db(&db, &mut recs);
    (dir, db, recs)
}

#[test]
fn print0_writes_exact_path_bytes() {
    let (_dir, db, recs) = odd_library();
    let out = ok(&db, &["query", "-0"]);
    assert_eq!(out.last(), Some(&0), "every path ends with NUL");
    let got: BTreeSet<Vec<u8>> = out[..out.len() - 1]
        .split(|b| *b == 0)
        .map(<[u8]>::to_vec)
        .collect();
    let want: BTreeSet<Vec<u8>> = recs.iter().map(|r| r.path.clone()).collect();
    assert_eq!(got, want);
    assert_eq!(out.iter().filter(|b| **b == 0).count(), recs.len());
    // With a query, and in the same order as the other formats.
    let out = ok(&db, &["query", "--print0", "path:raw"]);
    assert_eq!(out, b"/w/\xff\xfe raw.mp3\0");
    let order: Vec<String> = jsonl(&db, &["--fields", "id"])
        .iter()
        .map(|o| o["id"].to_string())
        .collect();
    let by: BTreeMap<String, &[u8]> = recs
        .iter()
        .map(|r| (r.id.to_string(), &r.path[..]))
        .collect();
    let mut expected = Vec::new();
    for id in &order {
        expected.extend_from_slice(by[id]);
        expected.push(0);
    }
    assert_eq!(ok(&db, &["query", "-0"]), expected);
}

#[test]
fn json_carries_path_b64_for_non_utf8_paths() {
    let (_dir, db, recs) = odd_library();
    let b64 = base64::engine::general_purpose::STANDARD;
    let by = by_id(&recs);
    for args in [
        vec!["query", "--format", "jsonl"],
        vec!["query", "--format", "jsonl", "--fields", "id,path"],
    ] {
        let lines = jsonl(&db, &args[3..]);
        assert_eq!(lines.len(), recs.len());
        for o in &lines {
            let r = by[&o["id"].as_u64().expect("id")];
            assert_eq!(o["path"], Json::from(path_of(r)), "lossy path");
            match std::str::from_utf8(&r.path) {
                Ok(_) => assert!(o.get("path_b64").is_none(), "{o}"),
                Err(_) => {
                    let enc = o["path_b64"].as_str().expect("path_b64 for non-UTF-8");
                    assert_eq!(b64.decode(enc).expect("base64"), r.path);
                }
            }
        }
    }
    let arr: Json = serde_json::from_slice(&ok(&db, &["query", "--format", "json"])).expect("JSON");
    let n = arr
        .as_array()
        .expect("array")
        .iter()
        .filter(|o| o.get("path_b64").is_some())
        .count();
    assert_eq!(n, 2, "two paths are not UTF-8");
}

fn assert_no_raw_controls(what: &str, out: &[u8], lines: usize) {
    assert!(!out.contains(&0x1b), "{what}: raw ESC in {:?}", text(out));
    assert!(!out.contains(&0x07), "{what}: raw BEL in {:?}", text(out));
    let s = text(out);
    let s = s.replace("\r\n", "\n");
    assert!(!s.contains('\r'), "{what}: raw CR in {s:?}");
    assert_eq!(s.lines().count(), lines, "{what}: one line per row: {s:?}");
}

/// Runs `mediadb --db DB ARGS` with stdout on a pseudo-terminal (120 columns, output
/// processing off so that the bytes read are the program's) and returns what it wrote there;
/// expects exit 0 and nothing on stderr.
fn on_terminal(db: &Path, args: &[&str]) -> Vec<u8> {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use rustix::termios::{
        OptionalActions, OutputModes, Winsize, tcgetattr, tcsetattr, tcsetwinsize,
    };
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = openpt(flags).expect("openpt");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC;
    let terminal = rustix::fs::open(name.as_c_str(), flags, Mode::empty()).expect("open the pty");
    let mut modes = tcgetattr(&terminal).expect("tcgetattr");
    modes.output_modes.remove(OutputModes::OPOST);
    tcsetattr(&terminal, OptionalActions::Now, &modes).expect("tcsetattr");
    let size = Winsize {
        ws_row: 50,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    tcsetwinsize(&master, size).expect("window size");
    // The command holds this process's copy of the terminal; it goes with the command, so that
    // reading ends when the child has closed its own.
    let child = {
        let mut c = cmd(db);
        c.args(args)
            .stdout(Stdio::from(terminal))
            .stderr(Stdio::piped());
        c.spawn().expect("spawn")
    };
    let mut out = Vec::new();
    // When the child has closed the terminal, reading gives what is left, then EIO.
    let _ = std::fs::File::from(master).read_to_end(&mut out);
    let o = child.wait_with_output().expect("wait");
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "mediadb {args:?} on a terminal: {}\nstderr: {}",
        o.status,
        text(&o.stderr)
    );
    out
}

#[test]
fn control_characters_never_reach_a_terminal_raw() {
    let (_dir, db, recs) = odd_library();
    let n = recs.len();
    let t = |args: &[&str]| on_terminal(&db, args);
    assert_no_raw_controls("paths", &t(&["query", "--format", "paths"]), n);
    assert_no_raw_controls("the default (table)", &t(&["query"]), n + 1);
    assert_no_raw_controls(
        "table, all fields",
        &t(&["query", "--format", "table", "--fields", &FIELDS.join(",")]),
        n + 1,
    );
    assert_no_raw_controls("csv", &t(&["query", "--format", "csv"]), n + 1);
    assert_no_raw_controls("jsonl", &t(&["query", "--format", "jsonl"]), n);
    assert_no_raw_controls("json", &t(&["query", "--format", "json"]), n + 2);
    // Grouped rows (names and album artists) and directory listings too.
    for by in ["artist", "album", "album_artist", "genre", "dir"] {
        for format in ["table", "csv", "jsonl"] {
            let out = t(&["query", "--group-by", by, "--format", format]);
            assert!(
                !out.contains(&0x1b) && !out.contains(&0x07),
                "--group-by {by} --format {format}: raw ESC or BEL: {:?}",
                text(&out)
            );
        }
    }
    for format in ["table", "csv", "paths"] {
        let out = t(&["ls", "/w", "--format", format]);
        assert!(
            !out.contains(&0x1b),
            "ls --format {format}: raw ESC: {:?}",
            text(&out)
        );
    }
    assert!(!t(&["ls", "/w", "--json"]).contains(&0x1b));
    // The title is still all there, escaped.
    let csv_out = text(&t(&[
        "query",
        "--format",
        "csv",
        "--fields",
        "title",
        "path:plain",
    ]));
    assert!(
        csv_out.contains("Evil\\x1b[31mRed 0\\nsecond line\\x07"),
        "{csv_out:?}"
    );
}

#[test]
fn paths_on_a_terminal_escape_backslashes_and_bytes_that_are_not_utf8() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("t.mediadb");
    let mut recs: Vec<Record> = [
        &b"/w/a\\tb.flac"[..],
        b"/w/a\tb.flac",
        b"/w/caf\xe9.flac",
        b"/w/new\nline.flac",
    ]
    .into_iter()
    .map(|p| Record::new(p.to_vec()))
    .collect();
    write_db(&db, &mut recs);
    let out = on_terminal(&db, &["query", "--format", "paths"]);
    let out = String::from_utf8(out).expect("escaped output is UTF-8");
    let lines: BTreeSet<&str> = out.lines().collect();
    let want: BTreeSet<&str> = [
        "/w/a\\\\tb.flac",
        "/w/a\\tb.flac",
        "/w/caf\\xe9.flac",
        "/w/new\\nline.flac",
    ]
    .into();
    assert_eq!(lines, want, "one distinct line per path: {out:?}");
    assert_eq!(out.lines().count(), recs.len());
}

#[test]
fn tables_and_json_escape_control_characters_into_a_pipe_too() {
    let (_dir, db, recs) = odd_library();
    let n = recs.len();
    let q = |args: &[&str]| ok(&db, args);
    assert_no_raw_controls("table", &q(&["query", "--format", "table"]), n + 1);
    assert_no_raw_controls("jsonl", &q(&["query", "--format", "jsonl"]), n);
    assert_no_raw_controls("json", &q(&["query", "--format", "json"]), n + 2);
    for by in ["artist", "album", "album_artist", "genre", "dir"] {
        for format in ["table", "jsonl"] {
            let out = q(&["query", "--group-by", by, "--format", format]);
            assert!(
                !out.contains(&0x1b),
                "--group-by {by} --format {format}: raw ESC: {:?}",
                text(&out)
            );
        }
    }
    assert!(!q(&["ls", "/w", "--format", "table"]).contains(&0x1b));
    assert!(!q(&["ls", "/w", "--json"]).contains(&0x1b));
}

#[test]
fn piped_paths_and_csv_carry_names_and_values_exactly() {
    let (_dir, db, recs) = odd_library();
    let by = by_id(&recs);
    let b64 = base64::engine::general_purpose::STANDARD;
    // paths: each path's exact bytes and a newline, in the order of the other formats; also
    // the default format into a pipe.
    let mut want = Vec::new();
    for o in jsonl(&db, &["--fields", "id"]) {
        want.extend_from_slice(&by[&o["id"].as_u64().expect("id")].path);
        want.push(b'\n');
    }
    assert_eq!(ok(&db, &["query", "--format", "paths"]), want);
    assert_eq!(ok(&db, &["query"]), want);
    // CSV: the tags' real characters, quoted; the path lossily, its bytes in path_b64.
    let out = ok_str(
        &db,
        &[
            "query",
            "--format",
            "csv",
            "--fields",
            "id,title,artist,path,path_b64",
        ],
    );
    let mut rd = csv::Reader::from_reader(out.as_bytes());
    assert_eq!(
        rd.headers().expect("header"),
        vec!["id", "title", "artist", "path", "path_b64"]
    );
    let mut n = 0;
    for row in rd.records() {
        let row = row.expect("valid CSV row");
        let r = by[&row[0].parse::<u64>().expect("id")];
        assert_eq!(&row[1], r.title.as_deref().expect("title"));
        assert_eq!(&row[2], r.artists.join("; "));
        assert_eq!(&row[3], path_of(r));
        assert_eq!(b64.decode(&row[4]).expect("base64"), r.path);
        n += 1;
    }
    assert_eq!(n, recs.len());
    // Asked for, path_b64 is in every format that takes --fields, for every path.
    for o in jsonl(&db, &["--fields", "id,path_b64"]) {
        let r = by[&o["id"].as_u64().expect("id")];
        let enc = o["path_b64"].as_str().expect("path_b64 for every path");
        assert_eq!(b64.decode(enc).expect("base64"), r.path);
    }
    let table = ok_str(
        &db,
        &["query", "--format", "table", "--fields", "id,path_b64"],
    );
    for r in &recs {
        assert!(table.contains(&b64.encode(&r.path)), "{table}");
    }
}

/// Runs `mediadb --db DB ARGS` in directory `cwd`.
fn run_in(cwd: &Path, db: &Path, args: &[&str]) -> Output {
    cmd(db)
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("mediadb runs")
}

#[test]
fn piped_paths_name_the_real_files_whatever_bytes_they_hold() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let base = std::fs::canonicalize(dir.path()).expect("canonical temp dir");
    let db = base.join("db.mediadb");
    let lib = base.join("lib");
    // Two names that used to print the same line, a backslash, a byte that is not UTF-8.
    let names: [&[u8]; 5] = [
        b"a\\tb.txt",
        b"a\tb.txt",
        b"back\\slash.txt",
        b"caf\xe9.txt",
        b"esc\x1b[1m.txt",
    ];
    std::fs::create_dir(&lib).expect("mkdir lib");
    for n in names {
        std::fs::write(lib.join(std::ffi::OsStr::from_bytes(n)), b"x").expect("write");
    }
    let o = run_in(&base, &db, &["scan", "lib"]);
    assert!(o.status.success(), "scan: {}", text(&o.stderr));
    // What `mediadb query | while IFS= read -r p; do [ -e "$p" ]; done` sees.
    let out = ok(&db, &["query"]);
    let lines: Vec<&[u8]> = out
        .strip_suffix(b"\n")
        .expect("a last newline")
        .split(|b| *b == b'\n')
        .collect();
    assert_eq!(lines.len(), names.len(), "{}", text(&out));
    for l in &lines {
        assert!(
            Path::new(std::ffi::OsStr::from_bytes(l)).exists(),
            "no file {:?}",
            l.escape_ascii().to_string()
        );
    }
    let distinct: BTreeSet<&[u8]> = lines.iter().copied().collect();
    assert_eq!(distinct.len(), names.len());
    // ls takes a relative directory as scan takes its roots.
    let o = run_in(&base, &db, &["ls", "lib"]);
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "ls lib: {}",
        text(&o.stderr)
    );
    let mut listed: Vec<&[u8]> = o
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut all = lines.clone();
    listed.sort();
    all.sort();
    assert_eq!(listed, all, "ls lib lists what query lists");
    let o = run_in(&lib, &db, &["ls", "."]);
    assert_eq!(
        o.stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        names.len()
    );
}

#[test]
fn ls_says_when_no_record_is_under_a_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = std::fs::canonicalize(dir.path()).expect("canonical temp dir");
    let db = base.join("db.mediadb");
    std::fs::create_dir_all(base.join("lib/a")).expect("mkdir");
    std::fs::create_dir(base.join("empty")).expect("mkdir");
    std::fs::write(base.join("lib/a/x.txt"), b"x").expect("write");
    let o = run_in(&base, &db, &["scan", "lib"]);
    assert!(o.status.success(), "scan: {}", text(&o.stderr));
    // On disk but never scanned: a note, exit 0; -q leaves the note out.
    let o = run_in(&base, &db, &["ls", "empty"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty());
    let empty = base.join("empty");
    assert_eq!(
        text(&o.stderr),
        format!(
            "mediadb: no records under {0} in the database; `mediadb scan {0}` indexes it\n",
            empty.display()
        )
    );
    let o = run_in(&base, &db, &["-q", "ls", "empty"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    // --json still gives the (empty) listing.
    let o = run_in(&base, &db, &["ls", "--json", "empty"]);
    assert_eq!(o.status.code(), Some(0));
    let v: Json = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v, serde_json::json!({"dirs": [], "files": []}));
    // Neither on disk nor in the database: exit 1.
    for arg in ["missing", "/no/such/dir"] {
        let o = run_in(&base, &db, &["ls", arg]);
        assert_eq!(o.status.code(), Some(1), "ls {arg}: {}", text(&o.stderr));
        assert!(o.stdout.is_empty());
        assert!(
            text(&o.stderr).contains("no such directory on disk"),
            "{}",
            text(&o.stderr)
        );
    }
    // Records of other kinds are there: an empty answer, as a query's, said nothing about.
    let o = run_in(&base, &db, &["ls", "--kind", "audio", "lib/a"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        o.stdout.is_empty() && o.stderr.is_empty(),
        "{}",
        text(&o.stderr)
    );
    // A relative directory and its subdirectory, with and without a trailing slash.
    let o = run_in(&base, &db, &["ls", "lib/"]);
    assert_eq!(
        text(&o.stdout),
        format!("{}/\n", base.join("lib/a").display())
    );
    let o = run_in(&base.join("lib"), &db, &["ls", "a"]);
    assert_eq!(
        text(&o.stdout),
        format!("{}\n", base.join("lib/a/x.txt").display())
    );
}

// ---------------------------------------------------------------------------------------------
// Sorting, limits, counts, groups

fn titled(titles: &[Option<&str>]) -> (tempfile::TempDir, PathBuf, Vec<Record>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("s.mediadb");
    let mut recs: Vec<Record> = titles
        .iter()
        .enumerate()
        .map(|(i, t)| Record {
            path: format!("/s/{:02}.flac", 20 - i).into_bytes(),
            kind: Kind::Audio,
            title: t.map(str::to_owned),
            year: (i % 3 != 0).then_some(2000 + (i % 2) as i32),
            ..Record::default()
        })
        .collect();
    write_db(&db, &mut recs);
    (dir, db, recs)
}

fn field_list(db: &Path, args: &[&str], field: &str) -> Vec<Json> {
    let mut a = vec!["--fields", field];
    a.extend_from_slice(args);
    jsonl(db, &a)
        .into_iter()
        .map(|o| o[field].clone())
        .collect()
}

/// `--limit` with `--sort` keeps only the first matches while it reads them, never sorting
/// them all: the answer must be the full sorted list cut short, ties in the keys (years,
/// artists, absent values) and paths that differ only in leading zeros or case included, at
/// every limit.
#[test]
fn a_limited_sort_is_the_full_sort_cut_short() {
    use mediadb::query::eval::{SortKey, select};
    use mediadb::query::{Field, parse};
    let (_dir, db, mut recs) = library(3000);
    let cols = db.with_extension("mediadb.cols");
    let cache_before = std::fs::read(&cols).expect("the writer left a column cache");
    // One commit past the cache: every 100th record retagged (its row in the cache now holds
    // what the record no longer does), and paths natural order tells apart only by their bytes
    // ("01" and "1", "A" and "a"), under one directory, with the same tags.
    {
        let mut w = open_writer(&db);
        let mut b = w.batch().expect("batch");
        for (i, r) in recs.iter_mut().enumerate().step_by(100) {
            r.year = Some(2100 + (i % 3) as i32);
            r.title = Some(format!("000 retitled {i}"));
            r.artists = vec!["Aaa".into()];
            r.id = b.upsert(r).expect("upsert");
        }
        for name in [
            "/tie/a1.mp3",
            "/tie/a01.mp3",
            "/tie/a001.mp3",
            "/tie/A1.mp3",
        ] {
            let r = Record {
                path: name.as_bytes().to_vec(),
                kind: Kind::Audio,
                year: Some(1999),
                ..Record::default()
            };
            b.upsert(&r).expect("upsert");
        }
        b.commit().expect("commit");
    }
    let key = |field, descending| SortKey { field, descending };
    // Keys the cache holds (read from its columns and the index entries), keys only records
    // hold, and both.
    let sorts = [
        vec![key(Field::Year, true)],
        vec![key(Field::Year, false)],
        vec![key(Field::Title, false)],
        vec![key(Field::Artist, false), key(Field::Year, true)],
        vec![key(Field::Artists, true), key(Field::Album, false)],
        vec![key(Field::Genre, false), key(Field::AlbumArtist, true)],
        vec![key(Field::MtimeNs, true)],
        vec![key(Field::Size, false), key(Field::Id, true)],
        vec![key(Field::Genres, true), key(Field::Track, false)],
        vec![key(Field::Path, true)],
        vec![],
    ];
    assert!(
        std::fs::read(&cols).expect("the cache") == cache_before,
        "a small commit leaves the cache lagging"
    );
    // The cache covers all but the records of the last commit; then there is none.
    for cache in [true, false] {
        if !cache {
            std::fs::remove_file(&cols).expect("remove the cache");
        }
        let snap = Database::open_read_only(&db).expect("open").snapshot();
        for terms in [&[][..], &["year:1990..2005"][..], &["^artist:a"][..]] {
            let query = parse(terms).expect("parses");
            for sort in &sorts {
                let all: Vec<u64> = select(&snap, &query, sort, None)
                    .expect("select")
                    .iter()
                    .map(|r| r.id())
                    .collect();
                let len = all.len();
                for n in [0, 1, 2, 3, 7, 64, 500, len.saturating_sub(1), len, len + 5] {
                    let first: Vec<u64> = select(&snap, &query, sort, Some(n))
                        .expect("select")
                        .iter()
                        .map(|r| r.id())
                        .collect();
                    assert_eq!(
                        first,
                        all[..n.min(len)],
                        "{terms:?} sorted by {sort:?}, limit {n}, cache {cache}"
                    );
                }
            }
        }
    }
}

#[test]
fn sort_is_natural_stable_repeatable_and_limited() {
    let (_dir, db, _recs) = titled(&[
        Some("track 10"),
        Some("Track 2"),
        None,
        Some("track 1"),
        Some("track 02b"),
        Some("a"),
        Some("Track 2"),
        Some("B side"),
    ]);
    let titles = |args: &[&str]| -> Vec<String> {
        field_list(&db, args, "title").iter().map(cell).collect()
    };
    assert_eq!(
        titles(&["--sort", "title"]),
        [
            "a",
            "B side",
            "track 1",
            "Track 2",
            "Track 2",
            "track 02b",
            "track 10",
            ""
        ]
    );
    assert_eq!(titles(&["--sort", "title+"]), titles(&["--sort", "title"]));
    // Descending reverses the values; absent values stay last.
    assert_eq!(
        titles(&["--sort", "title-"]),
        [
            "track 10",
            "track 02b",
            "Track 2",
            "Track 2",
            "track 1",
            "B side",
            "a",
            ""
        ]
    );
    // Ties keep path order (natural), so equal titles come out by path.
    let paths =
        |args: &[&str]| -> Vec<String> { field_list(&db, args, "path").iter().map(cell).collect() };
    let p = paths(&["--sort", "title", "title:=Track 2"]);
    assert_eq!(p, ["/s/14.flac", "/s/19.flac"]);
    // Repeated keys: year descending (absent years last), then title ascending.
    let rows = jsonl(
        &db,
        &[
            "--sort",
            "year-",
            "--sort",
            "title",
            "--fields",
            "year,title",
        ],
    );
    let got: Vec<(Json, String)> = rows
        .iter()
        .map(|o| (o["year"].clone(), cell(&o["title"])))
        .collect();
    let want: Vec<(Json, String)> = [
        (Some(2001), "a"),
        (Some(2001), "B side"),
        (Some(2001), "Track 2"),
        (Some(2000), "track 02b"),
        (Some(2000), ""),
        (None, "track 1"),
        (None, "Track 2"),
        (None, "track 10"),
    ]
    .into_iter()
    .map(|(y, t)| (y.map_or(Json::Null, Json::from), t.to_owned()))
    .collect();
    assert_eq!(got, want);
    // Ascending, absent years are last too.
    let years = field_list(&db, &["--sort", "year"], "year");
    assert_eq!(years.iter().filter(|y| y.is_null()).count(), 3);
    assert!(years[5..].iter().all(Json::is_null), "{years:?}");
    // --limit applies after sorting.
    assert_eq!(
        titles(&["--sort", "title", "--limit", "3"]),
        ["a", "B side", "track 1"]
    );
    assert_eq!(titles(&["--sort", "title-", "--limit", "1"]), ["track 10"]);
    assert!(titles(&["--limit", "0"]).is_empty());
    // Numbers sort as numbers.
    let (_d2, db2, _) = library(120);
    let sizes: Vec<i64> = field_list(&db2, &["--sort", "size-"], "size")
        .iter()
        .map(|v| v.as_i64().expect("size"))
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
    assert_eq!(sizes.len(), 120);
}

#[test]
fn count_prints_a_number_and_zero_is_success() {
    let (_dir, db, recs) = library(90);
    assert_eq!(
        ok_str(&db, &["query", "--count"]),
        format!("{}\n", recs.len())
    );
    assert_eq!(
        ok_str(&db, &["query", "--count", "title:=no such thing"]),
        "0\n"
    );
    assert_eq!(
        ok_str(&db, &["query", "-c", "kind:audio"]).trim(),
        recs.iter()
            .filter(|r| r.kind == Kind::Audio)
            .count()
            .to_string()
    );
    // An empty listing is success too, with nothing printed.
    assert_eq!(ok_str(&db, &["query", "title:=no such thing"]), "");
    assert_eq!(
        ok_str(&db, &["query", "--format", "jsonl", "title:=no such thing"]),
        ""
    );
    let csv_out = ok_str(&db, &["query", "--format", "csv", "title:=no such thing"]);
    assert!(
        csv_out.lines().count() <= 1,
        "at most a header: {csv_out:?}"
    );
}

/// `--group-by BY` rows as (name, count), plus album_artist for albums.
fn groups(db: &Path, by: &str, terms: &[&str]) -> Vec<(String, Option<String>, u64)> {
    let mut a = vec!["--group-by", by];
    a.extend_from_slice(terms);
    jsonl(db, &a)
        .iter()
        .map(|o| {
            let obj = o.as_object().expect("object");
            let allowed: BTreeSet<&str> = if by == "album" {
                [by, "album_artist", "count"].into_iter().collect()
            } else {
                [by, "count"].into_iter().collect()
            };
            assert_eq!(
                obj.keys().map(String::as_str).collect::<BTreeSet<_>>(),
                allowed,
                "{o}"
            );
            let name = if by == "year" {
                o[by].as_i64().expect("a year is a number").to_string()
            } else {
                o[by].as_str().expect("name is a string").to_owned()
            };
            (
                name,
                o.get("album_artist")
                    .and_then(Json::as_str)
                    .map(str::to_owned),
                o["count"].as_u64().expect("count"),
            )
        })
        .collect()
}

fn tally(keys: impl IntoIterator<Item = String>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for k in keys {
        *m.entry(k).or_default() += 1;
    }
    m
}

fn as_map(rows: &[(String, Option<String>, u64)]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (name, _, n) in rows {
        assert!(m.insert(name.clone(), *n).is_none(), "{name} twice");
    }
    m
}

#[test]
fn group_by_counts_each_browse_category() {
    let (_dir, db, recs) = library(400);
    let audio: Vec<&Record> = recs.iter().filter(|r| r.kind == Kind::Audio).collect();
    let all: Vec<&Record> = recs.iter().collect();
    for (sel, terms) in [(&all, &[][..]), (&audio, &["kind:audio"][..])] {
        let artists = tally(sel.iter().flat_map(|r| r.artists.clone()));
        assert_eq!(
            as_map(&groups(&db, "artist", terms)),
            artists,
            "artists {terms:?}"
        );
        // A multi-valued record counts once per value: more rows' worth than records.
        assert!(
            artists.values().sum::<u64>()
                > sel.iter().filter(|r| !r.artists.is_empty()).count() as u64
        );
        let genres = tally(sel.iter().flat_map(|r| r.genres.clone()));
        assert_eq!(
            as_map(&groups(&db, "genre", terms)),
            genres,
            "genres {terms:?}"
        );
        let years = tally(sel.iter().filter_map(|r| r.year.map(|y| y.to_string())));
        let rows = groups(&db, "year", terms);
        assert_eq!(as_map(&rows), years, "years {terms:?}");
        let order: Vec<i64> = rows.iter().map(|r| r.0.parse().expect("year")).collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "years ascending: {order:?}"
        );
        assert_eq!(
            as_map(&groups(&db, "dir", terms)),
            tally(sel.iter().map(|r| dir_of(r)))
        );
        assert_eq!(
            as_map(&groups(&db, "kind", terms)),
            tally(sel.iter().map(|r| kind_name(r.kind).to_owned()))
        );
        assert_eq!(
            as_map(&groups(&db, "album_artist", terms)),
            tally(sel.iter().filter_map(|r| r.album_artist.clone()))
        );
        // Albums: by MusicBrainz album id when present, else album artist (or first artist)
        // and title.
        let mut albums: BTreeMap<String, (String, u64)> = BTreeMap::new();
        for r in sel.iter() {
            let Some(album) = &r.album else { continue };
            let aa = r
                .album_artist
                .clone()
                .or_else(|| r.artists.first().cloned());
            let key = match &r.musicbrainz_album_id {
                Some(mb) => format!("mb {mb}"),
                None => format!("t {aa:?} {album}"),
            };
            albums.entry(key).or_insert((album.clone(), 0)).1 += 1;
        }
        let mut want: Vec<(String, u64)> = albums.into_values().collect();
        want.sort();
        let rows = groups(&db, "album", terms);
        let mut got: Vec<(String, u64)> = rows.iter().map(|(n, _, c)| (n.clone(), *c)).collect();
        got.sort();
        assert_eq!(got, want, "albums {terms:?}");
        // The compilation: several artists, one MusicBrainz album id, one row.
        let comp: Vec<_> = rows.iter().filter(|r| r.0 == COMPILATION).collect();
        let tracks = sel
            .iter()
            .filter(|r| r.album.as_deref() == Some(COMPILATION))
            .count() as u64;
        let comp_artists: BTreeSet<&String> = sel
            .iter()
            .filter(|r| r.album.as_deref() == Some(COMPILATION))
            .flat_map(|r| &r.artists)
            .collect();
        assert!(
            tracks >= 3 && comp_artists.len() >= 2,
            "generator makes a real compilation"
        );
        assert_eq!(comp.len(), 1, "{comp:?}");
        assert_eq!(comp[0].2, tracks);
    }
    // --limit cuts rows; a query that matches nothing gives no rows.
    assert_eq!(groups(&db, "artist", &["--limit", "2"]).len(), 2);
    // --sort takes count or the grouped field: by count, ties in name order; names reversed.
    let by_name = groups(&db, "genre", &[]);
    let mut by_count = by_name.clone();
    by_count.sort_by_key(|r| std::cmp::Reverse(r.2));
    assert_eq!(groups(&db, "genre", &["--sort", "count-"]), by_count);
    by_count.sort_by_key(|r| r.2);
    assert_eq!(groups(&db, "genre", &["--sort", "count"]), by_count);
    let reversed: Vec<_> = by_name.iter().rev().cloned().collect();
    assert_eq!(groups(&db, "genre", &["--sort", "genre-"]), reversed);
    assert_eq!(groups(&db, "genre", &["--sort", "name+"]), by_name);
    assert_eq!(
        groups(&db, "artist", &["--sort", "count-", "--limit", "1"])[0].2,
        groups(&db, "artist", &[])
            .iter()
            .map(|r| r.2)
            .max()
            .expect("rows")
    );
    // Group rows have no paths and no record fields.
    for args in [
        &["query", "--group-by", "genre", "--sort", "title"][..],
        &["query", "--group-by", "genre", "--format", "paths"][..],
        &["query", "--group-by", "genre", "--fields", "title"][..],
    ] {
        assert_eq!(run(&db, args).status.code(), Some(2), "{args:?}");
    }
    assert!(groups(&db, "artist", &["title:=nothing at all"]).is_empty());
    // Plural spellings are accepted for the multi-valued categories.
    assert_eq!(
        groups(&db, "genre", &[]).len(),
        jsonl(&db, &["--group-by", "genres"]).len()
    );
    // JSON and CSV carry the same rows.
    let j: Json = serde_json::from_slice(&ok(
        &db,
        &["query", "--group-by", "artist", "--format", "json"],
    ))
    .expect("JSON");
    assert_eq!(
        j.as_array().expect("array").len(),
        groups(&db, "artist", &[]).len()
    );
    let csv_out = ok_str(&db, &["query", "--group-by", "album", "--format", "csv"]);
    let mut rd = csv::Reader::from_reader(csv_out.as_bytes());
    let header: Vec<String> = rd
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, ["album", "count", "album_artist"]);
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), groups(&db, "album", &[]).len());
    assert!(rows.iter().any(|r| &r[0] == "Hello, World"), "quoted comma");
    assert!(
        rows.iter().any(|r| &r[0] == "Live at the \"Roxy\""),
        "quoted quotes"
    );
    let comp: Vec<_> = rows.iter().filter(|r| &r[0] == COMPILATION).collect();
    assert_eq!(comp.len(), 1);
    let json_comp = groups(&db, "album", &[])
        .into_iter()
        .find(|r| r.0 == COMPILATION)
        .expect("compilation row");
    assert_eq!(comp[0][1], json_comp.2.to_string());
    assert_eq!(comp[0][2], json_comp.1.unwrap_or_default());
}

// ---------------------------------------------------------------------------------------------
// Closed pipes

#[test]
fn closing_the_pipe_after_one_line_exits_0_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("big.mediadb");
    {
        let recs = generate(20_000, 99);
        let mut d = Database::create(&db).expect("create");
        let mut b = d.batch().expect("batch");
        b.upsert_many(&recs).expect("upsert_many");
        b.commit().expect("commit");
    }
    for args in [
        &["query", "--format", "jsonl"][..],
        &["query", "--format", "json"][..],
        &["query", "--format", "paths"][..],
        &["query", "--format", "csv"][..],
        &["query", "--format", "table"][..],
        &["query", "-0"][..],
        &["query", "--group-by", "dir", "--format", "jsonl"][..],
        &["ls", "/music/Björk Live/Debut"][..],
        &["export"][..],
    ] {
        let mut child = cmd(&db)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = Vec::new();
        stdout.read_until(b'\n', &mut first).expect("read a line");
        assert!(!first.is_empty(), "{args:?} printed something");
        drop(stdout);
        let mut err = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .expect("read stderr");
        let status = child.wait().expect("wait");
        assert_eq!(status.code(), Some(0), "{args:?}: {status}, stderr {err:?}");
        assert!(
            err.is_empty(),
            "{args:?}: quiet on a closed pipe, got {err:?}"
        );
    }
    // A full disk is no closed pipe: exit 1, saying where the output was going.
    let full = std::fs::File::options()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let o = cmd(&db)
        .args(["query", "--format", "jsonl"])
        .stdout(full)
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot write to standard output: No space left"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// ls

#[test]
fn ls_lists_dirs_with_recursive_counts_then_files_in_album_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("ls.mediadb");
    let rec = |path: &str, kind: Kind, disc: Option<u32>, track: Option<u32>| Record {
        path: path.as_bytes().to_vec(),
        kind,
        disc,
        track,
        title: Some(path.rsplit('/').next().expect("name").to_owned()),
        ..Record::default()
    };
    let a = Kind::Audio;
    let mut recs = vec![
        rec("/lib/A/track 10.flac", a, None, None),
        rec("/lib/A/track 2.flac", a, None, None),
        rec("/lib/A/z first.flac", a, Some(1), Some(1)),
        rec("/lib/A/y second.flac", a, Some(1), Some(2)),
        rec("/lib/A/x disc2.flac", a, Some(2), Some(1)),
        rec("/lib/A/w ten.flac", a, Some(1), Some(10)),
        rec("/lib/A/cover.jpg", Kind::Image, None, None),
        rec("/lib/A/v nodisc.flac", a, None, Some(3)),
        rec("/lib/A/Sub 10/a.flac", a, None, None),
        rec("/lib/A/Sub 2/a.flac", a, None, None),
        rec("/lib/A/Sub 2/deeper/b.flac", a, None, None),
        rec("/lib/A/Sub 2/deeper/c.mp4", Kind::Video, None, None),
        rec("/lib/AB/x.flac", a, None, None),
        rec("/lib/top.flac", a, None, None),
    ];
    write_db(&db, &mut recs);
    // Subdirectories in natural order, then files by disc (none = 0), track (none last) and
    // natural name.
    let expected = [
        "/lib/A/Sub 2/",
        "/lib/A/Sub 10/",
        "/lib/A/v nodisc.flac",
        "/lib/A/cover.jpg",
        "/lib/A/track 2.flac",
        "/lib/A/track 10.flac",
        "/lib/A/z first.flac",
        "/lib/A/y second.flac",
        "/lib/A/w ten.flac",
        "/lib/A/x disc2.flac",
    ];
    let out = ok_str(&db, &["ls", "/lib/A"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
    assert_eq!(ok_str(&db, &["ls", "/lib/A/"]), out);
    let files: Vec<&str> = expected[2..].to_vec();
    // A table shows the recursive counts beside the directories, then a header and the files.
    let table = ok_str(&db, &["ls", "/lib/A", "--format", "table"]);
    let tl: Vec<&str> = table.lines().collect();
    assert_eq!(
        tl[..2],
        ["/lib/A/Sub 2/  (3)", "/lib/A/Sub 10/  (1)"],
        "{table}"
    );
    assert!(tl[2].starts_with("ARTIST"), "{table}");
    assert_eq!(tl.len(), 2 + 1 + files.len(), "{table}");
    // --json: {dirs: [{path, count}], files: [records]}; counts are recursive.
    let v: Json = serde_json::from_slice(&ok(&db, &["ls", "/lib/A", "--json"])).expect("JSON");
    let dirs: Vec<(String, u64)> = v["dirs"]
        .as_array()
        .expect("dirs")
        .iter()
        .map(|d| {
            (
                d["path"].as_str().expect("path").to_owned(),
                d["count"].as_u64().expect("count"),
            )
        })
        .collect();
    assert_eq!(
        dirs,
        [
            ("/lib/A/Sub 2".to_owned(), 3),
            ("/lib/A/Sub 10".to_owned(), 1)
        ]
    );
    let records: Vec<&Json> = v["files"].as_array().expect("files").iter().collect();
    for f in &records {
        let keys: BTreeSet<&str> = f
            .as_object()
            .expect("record")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, FIELDS.iter().copied().collect());
    }
    let json_paths: Vec<String> = records.iter().map(|f| cell(&f["path"])).collect();
    assert_eq!(json_paths, files, "--json keeps the order");
    // JSON Lines and CSV carry the files only: a directory line would break their readers.
    let jsonl = ok_str(&db, &["ls", "/lib/A", "--format", "jsonl"]);
    let jsonl: Vec<String> = jsonl
        .lines()
        .map(|l| cell(&serde_json::from_str::<Json>(l).expect("a JSON line")["path"]))
        .collect();
    assert_eq!(jsonl, files);
    let csv = ok_str(&db, &["ls", "/lib/A", "--format", "csv"]);
    assert!(csv.starts_with("id,path,"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + files.len(), "{csv}");
    // --kind filters files and counts.
    let v: Json = serde_json::from_slice(&ok(&db, &["ls", "/lib/A", "--json", "--kind", "video"]))
        .expect("JSON");
    assert_eq!(
        v["dirs"],
        serde_json::json!([{"path": "/lib/A/Sub 2", "count": 1}])
    );
    assert_eq!(v["files"], serde_json::json!([]));
    let v: Json = serde_json::from_slice(&ok(&db, &["ls", "/lib/A", "--json", "--kind", "image"]))
        .expect("JSON");
    assert_eq!(v["dirs"], serde_json::json!([]));
    assert_eq!(v["files"].as_array().expect("files").len(), 1);
    // The root, with or without a trailing slash; "/lib/A" is not a prefix of "/lib/AB".
    assert_eq!(ok_str(&db, &["ls", "/lib/"]), ok_str(&db, &["ls", "/lib"]));
    assert_eq!(
        ok_str(&db, &["ls", "/lib"]),
        "/lib/A/\n/lib/AB/\n/lib/top.flac\n"
    );
    assert_eq!(ok_str(&db, &["ls"]), "/lib/\n");
    let v: Json = serde_json::from_slice(&ok(&db, &["ls", "--json"])).expect("JSON");
    assert_eq!(
        v["dirs"],
        serde_json::json!([{"path": "/lib", "count": recs.len()}])
    );
    // A directory with no records that is not on disk either is an error (exit 1), said on
    // stderr.
    let o = run(&db, &["ls", "/nowhere"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty());
    assert_eq!(
        text(&o.stderr),
        "mediadb: no records under /nowhere in the database, and no such directory on disk\n"
    );
    // --format jsonl for the files.
    let out = ok_str(&db, &["ls", "/lib", "--format", "jsonl"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with('{') && l.contains("/lib/top.flac")),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// export / import

fn export(db: &Path, to: &Path) {
    let o = run(db, &["export", "-o", to.to_str().expect("utf-8 temp path")]);
    assert!(o.status.success(), "export: {}", text(&o.stderr));
    assert!(o.stdout.is_empty());
}

fn import(db: &Path, from: &Path, extra: &[&str]) -> Output {
    let mut a = vec!["import", from.to_str().expect("utf-8 temp path")];
    a.extend_from_slice(extra);
    run(db, &a)
}

fn all_fields_but_id() -> String {
    FIELDS[1..].join(",")
}

/// A database of `n` generated records, exported to backup.jsonl beside it.
fn exported(n: usize) -> (tempfile::TempDir, PathBuf, PathBuf, Vec<Record>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src.mediadb");
    let mut recs = generate(n, 3);
    write_db(&src, &mut recs);
    let file = dir.path().join("backup.jsonl");
    export(&src, &file);
    (dir, src, file, recs)
}

#[test]
fn a_failed_export_leaves_the_previous_backup_as_it_was() {
    let (dir, src, file, recs) = exported(300);
    let good = std::fs::read(&file).expect("read export");
    // A record damaged since (a byte of its path): the export stops at it, before the backup
    // is replaced.
    let mut bytes = std::fs::read(&src).expect("read");
    let path = &recs[150].path;
    let at = bytes
        .windows(path.len())
        .position(|w| w == &path[..])
        .expect("the record's path is in the file");
    bytes[at + path.len() - 3] ^= 0x01;
    std::fs::write(&src, &bytes).expect("write");
    let o = run(&src, &["export", "-o", file.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o.stderr));
    assert!(
        std::fs::read(&file).expect("read") == good,
        "the backup was changed"
    );
    assert!(!dir.path().join("backup.jsonl.tmp").exists());
}

#[test]
fn export_keeps_the_backups_mode_and_never_writes_through_its_temporary_name() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, src, file, _) = exported(50);
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    export(&src, &file);
    assert_eq!(mode(&file), 0o600, "a private backup stays private");
    // A link where the temporary file goes is not followed: the file it names is untouched.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious").expect("write");
    std::os::unix::fs::symlink(&victim, dir.path().join("backup.jsonl.tmp")).expect("symlink");
    let good = std::fs::read(&file).expect("read");
    let o = run(&src, &["export", "-o", file.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("backup.jsonl.tmp"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
    assert!(std::fs::read(&file).expect("read") == good);
}

#[test]
fn export_then_import_restores_identical_query_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src.mediadb");
    let mut recs = generate(300, 3);
    // The odd names travel too.
    for (i, p) in odd_paths().into_iter().enumerate() {
        recs.push(Record {
            path: p,
            title: Some(format!("odd {i}\u{1b}")),
            ..Record::default()
        });
    }
    write_db(&src, &mut recs);
    let file = dir.path().join("backup.jsonl");
    export(&src, &file);
    let exported = std::fs::read(&file).expect("read export");
    assert_eq!(exported, ok(&src, &["export"]), "-o and stdout agree");
    assert_eq!(exported.iter().filter(|b| **b == b'\n').count(), recs.len());
    let dst = dir.path().join("restored.mediadb");
    let o = import(&dst, &file, &["-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    for args in [
        &["query", "--format", "jsonl"][..],
        &["query", "-0"][..],
        &["query", "--format", "csv"][..],
        &["query", "--group-by", "album", "--format", "jsonl"][..],
        &["export"][..],
    ] {
        assert!(
            ok(&src, args) == ok(&dst, args),
            "{args:?} differs after restore"
        );
    }
    // The same through stdin, with --json.
    let dst2 = dir.path().join("restored2.mediadb");
    let out = cmd(&dst2)
        .args(["import", "-", "--json", "--batch-size", "64"])
        .stdin(std::fs::File::open(&file).expect("open"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary: Json = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(summary["imported"], Json::from(recs.len()));
    assert_eq!(summary["skipped"], Json::from(0));
    assert_eq!(
        ok(&src, &["query", "--format", "jsonl"]),
        ok(&dst2, &["query", "--format", "jsonl"])
    );
}

#[test]
fn export_then_import_after_removals_keeps_every_field_but_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src.mediadb");
    let mut recs = generate(120, 4);
    write_db(&src, &mut recs);
    {
        let mut db = open_writer(&src);
        let mut b = db.batch().expect("batch");
        for r in recs.iter().step_by(7) {
            assert!(b.remove(&r.path).expect("remove"));
        }
        b.commit().expect("commit");
    }
    let file = dir.path().join("backup.jsonl");
    export(&src, &file);
    let dst = dir.path().join("restored.mediadb");
    let o = import(&dst, &file, &["-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let fields = all_fields_but_id();
    let q = ["query", "--format", "jsonl", "--fields", &fields];
    assert_eq!(text(&ok(&src, &q)), text(&ok(&dst, &q)));
    let n = recs.len() - recs.len().div_ceil(7);
    assert_eq!(ok_str(&dst, &["query", "--count"]), format!("{n}\n"));
    // Ids are not compared: `import` assigns ids afresh in file order, so they match the
    // original only when it had no removals (the test above compares them).
}

#[test]
fn a_bad_import_line_aborts_the_batch_unless_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src.mediadb");
    let mut recs = generate(10, 5);
    write_db(&src, &mut recs);
    let good = ok_str(&src, &["export"]);
    let mut lines: Vec<&str> = good.lines().collect();
    // Line 8 is bad; the blank line 4 is ignored but still counted.
    lines.insert(3, "");
    lines.insert(7, r#"{"path": "/x.flac", "year": "nineteen"}"#);
    let file = dir.path().join("bad.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").expect("write");

    // Default batch: nothing of it is committed.
    let dst = dir.path().join("a.mediadb");
    let o = import(&dst, &file, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("line 8"), "names the line: {err}");
    assert!(err.contains("year"), "says what is wrong: {err}");
    assert!(o.stdout.is_empty());
    assert!(
        !dst.exists(),
        "a failed import leaves no new, empty database"
    );

    // Batches of 3: the two full batches before line 8 (lines 1-2, 3+5, 6...) are committed,
    // the current one is not.
    let dst = dir.path().join("b.mediadb");
    let o = import(&dst, &file, &["--batch-size", "3"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("line 8"));
    // Valid records before line 8: file lines 1,2,3,5,6,7 = 6 records = two batches of 3.
    assert_eq!(ok_str(&dst, &["query", "--count"]), "6\n");
    let dst = dir.path().join("c.mediadb");
    let o = import(&dst, &file, &["--batch-size", "4"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        ok_str(&dst, &["query", "--count"]),
        "4\n",
        "the partial batch of 2 is dropped"
    );

    // --skip-bad: everything else is imported, the line is reported, exit 3.
    for (name, extra) in [
        ("d.mediadb", &["--skip-bad"][..]),
        ("e.mediadb", &["--skip-bad", "--batch-size", "3"][..]),
    ] {
        let dst = dir.path().join(name);
        let o = import(&dst, &file, extra);
        assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
        assert!(text(&o.stderr).contains("line 8"), "{}", text(&o.stderr));
        assert_eq!(
            ok(&src, &["query", "--format", "jsonl"]),
            ok(&dst, &["query", "--format", "jsonl"]),
            "{extra:?}"
        );
    }

    // Other kinds of bad line: not JSON, not an object, no path, bad kind, bad base64.
    for bad in [
        "{not json",
        "[1, 2]",
        r#"{"title": "no path"}"#,
        r#"{"path": "/k.flac", "kind": "hologram"}"#,
        r#"{"path_b64": "!!!", "path": "/b.flac"}"#,
        r#"{"path": "/t.flac", "track": -1}"#,
        r#"{"path": "/a.flac", "artists": "not a list"}"#,
    ] {
        let f = dir.path().join("one.jsonl");
        std::fs::write(&f, format!("{}\n{bad}\n", lines[0])).expect("write");
        let dst = dir.path().join("one.mediadb");
        let _ = std::fs::remove_file(&dst);
        let o = import(&dst, &f, &[]);
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains("line 2"),
            "{bad}: {}",
            text(&o.stderr)
        );
        assert!(
            !dst.exists(),
            "{bad}: a failed import leaves no new database"
        );
    }
}

/// 9000 lines of records, with a blank line at every 1000th and CRLF endings on every third;
/// line `bad` is replaced by `bad_line`. Returns the file's bytes.
fn long_import(bad: usize, bad_line: &[u8]) -> Vec<u8> {
    let mut text = Vec::new();
    for n in 1..=9000 {
        if n == bad {
            text.extend_from_slice(bad_line);
        } else if n % 1000 != 0 {
            text.extend_from_slice(
                format!(r#"{{"path": "/m/{n}.flac", "title": "t{n}"}}"#).as_bytes(),
            );
        }
        text.extend_from_slice(if n % 3 == 0 { b"\r\n" } else { b"\n" });
    }
    text
}

/// Import parses lines 8192 at a time on another thread while it commits: a bad line in a later
/// chunk, or on either side of a chunk's end, is still named by its exact number, the batches
/// before it are committed and nothing of its own batch is.
#[test]
fn a_bad_line_past_the_first_parsed_chunk_is_numbered_exactly_and_stops_its_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("long.jsonl");
    let f = file.display();
    for bad in [8192, 8193, 8500] {
        std::fs::write(
            &file,
            long_import(bad, br#"{"path": "/bad.flac", "track": -1}"#),
        )
        .expect("write");
        let stopped = |committed: usize| {
            format!(
                "mediadb: {f}: line {bad}: `track` is out of range; stopped, {committed} records committed before it (use --skip-bad to skip bad lines)\n"
            )
        };
        let dst = dir.path().join(format!("default-{bad}.mediadb"));
        let o = import(&dst, &file, &[]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
        assert_eq!(text(&o.stderr), stopped(0));
        assert!(
            !dst.exists(),
            "a failed import leaves no new, empty database"
        );

        // Batches of 5000: the first (lines 1-5005, less 5 blank lines) is committed.
        let dst = dir.path().join(format!("batches-{bad}.mediadb"));
        let o = import(&dst, &file, &["--batch-size", "5000"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
        assert_eq!(text(&o.stderr), stopped(5000));
        assert_eq!(ok_str(&dst, &["query", "--count"]), "5000\n");
        assert_eq!(
            ok_str(&dst, &["query", "path:/m/5005.flac", "--count"]),
            "1\n"
        );
        assert_eq!(
            ok_str(&dst, &["query", "path:/m/5006.flac", "--count"]),
            "0\n"
        );

        // --skip-bad: every other record, in batches or not.
        for extra in [
            &["--skip-bad"][..],
            &["--skip-bad", "--batch-size", "5000"][..],
        ] {
            let dst = dir
                .path()
                .join(format!("skip-{bad}-{}.mediadb", extra.len()));
            let o = import(&dst, &file, extra);
            assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
            let err = text(&o.stderr);
            assert!(
                err.starts_with(&format!(
                    "mediadb: {f}: line {bad}: `track` is out of range; skipped\n"
                )),
                "{err}"
            );
            assert!(
                err.contains("imported 8990 records and 0 playlists, skipped 1,"),
                "{err}"
            );
            assert_eq!(ok_str(&dst, &["query", "--count"]), "8990\n");
            assert_eq!(
                ok_str(&dst, &["query", "title:=t9", "--format", "paths"]),
                "/m/9.flac\n",
                "a CRLF line reads as its LF twin"
            );
        }
    }
}

/// A line that is not UTF-8 is a bad line: it stops the import, or is skipped with --skip-bad.
#[test]
fn a_line_that_is_not_utf8_is_a_bad_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("latin1.jsonl");
    std::fs::write(&file, long_import(8700, b"{\"path\": \"/caf\xe9.flac\"}")).expect("write");
    let said = format!(
        "mediadb: {}: line 8700: is not UTF-8 (byte 15 of the line); JSON Lines are UTF-8, and a \
         path that is not goes in `path_b64`",
        file.display()
    );
    let dst = dir.path().join("stop.mediadb");
    let o = import(&dst, &file, &["--batch-size", "5000"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr),
        format!(
            "{said}; stopped, 5000 records committed before it (use --skip-bad to skip bad lines)\n"
        )
    );
    assert_eq!(ok_str(&dst, &["query", "--count"]), "5000\n");
    let dst = dir.path().join("skip.mediadb");
    let o = import(&dst, &file, &["--skip-bad"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).starts_with(&format!("{said}; skipped\n")),
        "{}",
        text(&o.stderr)
    );
    // 9000 lines, 9 of them blank, one bad.
    assert_eq!(ok_str(&dst, &["query", "--count"]), "8990\n");
}

/// A byte-order mark opens the file; an over-long line, a blank playlist name, a playlist entry
/// no scan could store and a second playlist of one name are bad lines, named by number.
#[test]
fn import_reads_a_bom_and_refuses_long_lines_and_bad_playlists_by_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines: Vec<Vec<u8>> = vec![
        b"\xef\xbb\xbf{\"path\": \"/m/1.flac\"}".to_vec(),
        br#"{"playlist": {"name": "P", "entries": [{"path": "/m/1.flac"}]}}"#.to_vec(),
        br#"{"playlist": {"name": "P"}}"#.to_vec(),
        br#"{"playlist": {"name": "  "}}"#.to_vec(),
        br#"{"playlist": {"name": "Q", "entries": [{"path": "http://radio.example/s"}, {"path": "C:/Music/a.mp3"}, {"path": "//nas/share/b.mp3"}, {"path": "rel/a.flac"}]}}"#.to_vec(),
        [
            &b"{\"path\": \"/m/long.flac\", \"title\": \""[..],
            &vec![b'x'; 65 << 20],
            b"\"}",
        ]
        .concat(),
        br#"{"path": "/m/2.flac"}"#.to_vec(),
        // What importing a playlist file stores: URLs, drive and UNC paths as written.
        br#"{"playlist": {"name": "R", "entries": [{"path": "http://radio.example/s"}, {"path": "C:/Music/a.mp3"}, {"path": "//nas/share/b.mp3"}]}}"#.to_vec(),
    ];
    let file = dir.path().join("odd.jsonl");
    std::fs::write(&file, lines.join(&b"\n"[..])).expect("write");
    let dst = dir.path().join("skip.mediadb");
    let o = import(&dst, &file, &["--skip-bad"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    for (n, what) in [
        (
            3,
            "playlist \"P\": line 2 has a playlist of that name already",
        ),
        (4, "a playlist needs a name that is not blank"),
        (
            5,
            "entry 4: \"rel/a.flac\" is neither an absolute path nor a URL",
        ),
        (6, "is longer than 64 MiB"),
    ] {
        assert!(
            err.contains(&format!("line {n}: ")) && err.contains(what),
            "line {n}: {err}"
        );
    }
    assert!(
        !err.contains("line 1:") && !err.contains("line 7:") && !err.contains("line 8:"),
        "{err}"
    );
    assert_eq!(ok_str(&dst, &["query", "--count"]), "2\n");
    assert_eq!(
        ok_str(&dst, &["playlist", "list"]).lines().count(),
        3,
        "a header, P and R"
    );
    // Without --skip-bad the second P stops the import at its line.
    let dst = dir.path().join("stop.mediadb");
    let o = import(&dst, &file, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains(": line 3: playlist \"P\""),
        "{}",
        text(&o.stderr)
    );
}

/// Terms on kind, size, mtime and id are decided on index entries without reading records;
/// that path must agree with evaluating every record.
#[test]
fn entry_only_queries_agree_with_record_evaluation() {
    let (_dir, path, _records) = library(400);
    let db = Database::open_read_only(&path).expect("open");
    let snap = db.snapshot();
    let queries: &[&[&str]] = &[
        &["kind:=audio"],
        &["kind:aud"],
        &["^kind:=audio"],
        &["kind::^(video|image)$"],
        &["size:1000.."],
        &["size:..5000", "kind:=audio"],
        &["kind:=image", ",", "size:0..10"],
        &["id:5"],
        &["mtime_ns:0.."],
    ];
    let mut partial = 0;
    for q in queries {
        let args: Vec<String> = q.iter().map(|s| (*s).to_owned()).collect();
        let query = mediadb::query::parse(&args).expect("parses");
        let brute = snap
            .iter()
            .filter(|r| query.matches(r.as_ref().expect("record")))
            .count() as u64;
        let counted = mediadb::query::eval::count(&snap, &query).expect("count");
        assert_eq!(counted, brute, "{q:?}");
        let selected = mediadb::query::eval::select(&snap, &query, &[], None).expect("select");
        assert_eq!(selected.len() as u64, brute, "{q:?}");
        partial += usize::from(brute > 0 && brute < 400);
    }
    assert!(
        partial >= 5,
        "the library must make most of these queries select a part"
    );
}

/// Every case's ids and count, and every `--group-by` listing (whole and filtered).
fn answers(db: &Path, recs: &[Record]) -> Vec<String> {
    let mut out = Vec::new();
    for (terms, _) in cases(recs) {
        out.push(format!("{terms:?} -> {:?}", query_ids(db, &terms)));
        let mut a = vec!["query", "--count"];
        a.extend(terms.iter().map(String::as_str));
        out.push(format!("--count {terms:?} -> {}", ok_str(db, &a).trim()));
        // Paths alone come from the cache's columns where it covers the records.
        let mut a = vec!["query", "--format", "paths"];
        a.extend(terms.iter().map(String::as_str));
        out.push(format!("--format paths {terms:?} -> {}", ok_str(db, &a)));
    }
    for by in [
        "artist",
        "album_artist",
        "album",
        "genre",
        "year",
        "dir",
        "kind",
    ] {
        for terms in [
            &[][..],
            &["kind:audio"][..],
            &["year:..1990"][..],
            &["^artist:a"][..],
        ] {
            let mut a = vec!["query", "--group-by", by, "--format", "jsonl"];
            a.extend_from_slice(terms);
            out.push(format!("{a:?} -> {}", ok_str(db, &a)));
        }
    }
    // `stats` counts the groups without listing them.
    let stats: Json =
        serde_json::from_str(&ok_str(db, &["stats", "--json"])).expect("stats --json");
    for (field, by) in [
        ("artists", "artist"),
        ("albums", "album"),
        ("genres", "genre"),
    ] {
        let a = ["query", "--group-by", by, "--format", "jsonl"];
        let rows = ok_str(db, &a).lines().count() as u64;
        assert_eq!(
            stats[field].as_u64(),
            Some(rows),
            "stats {field}: the --group-by {by} rows"
        );
        out.push(format!("stats {field} -> {}", stats[field]));
    }
    // Directory listings at every level of a few records' paths, whole and by kind.
    let mut dirs: BTreeSet<String> = BTreeSet::from(["/".to_owned()]);
    for r in recs.iter().step_by(37) {
        let p = path_of(r);
        for (i, _) in p.match_indices('/').skip(1) {
            dirs.insert(p[..i].to_owned());
        }
    }
    for d in &dirs {
        for kind in [&[][..], &["--kind", "audio"][..]] {
            let mut a = vec!["ls", d.as_str(), "--json"];
            a.extend_from_slice(kind);
            out.push(format!("{a:?} -> {}", ok_str(db, &a)));
        }
    }
    out
}

#[test]
fn the_column_cache_fresh_stale_damaged_or_missing_gives_the_same_answers() {
    let (dir, db, mut recs) = library(400);
    let cols = dir.path().join("lib.mediadb.cols");
    let fresh_cache = std::fs::read(&cols).expect("the writer wrote a column cache");
    let fresh = answers(&db, &recs);
    // Change every third record's browse fields in a later commit, then put the old cache back:
    // it now covers only some of the records, and the rest must be read from the log.
    {
        let mut w = open_writer(&db);
        let mut b = w.batch().expect("batch");
        for (i, r) in recs.iter_mut().enumerate().filter(|(i, _)| i % 3 == 0) {
            r.artists = vec![format!("Zed {i}"), "Zoë".into()];
            r.genres = vec!["Zydeco".into()];
            r.album = Some(format!("Later {}", i % 7));
            r.album_artist = (i % 2 == 0).then(|| "Zed".to_owned());
            r.year = Some(1801 + (i % 5) as i32);
            r.title = match (i / 3) % 3 {
                0 => None,
                1 => Some(format!("Straße {i}")),
                _ => Some("Zeta".to_owned()),
            };
            r.id = b.upsert(r).expect("upsert");
        }
        b.commit().expect("commit");
    }
    let rebuilt = answers(&db, &recs);
    std::fs::write(&cols, &fresh_cache).expect("restore the old cache");
    assert_eq!(answers(&db, &recs), rebuilt, "a stale cache");
    std::fs::remove_file(&cols).expect("remove cache");
    assert_eq!(answers(&db, &recs), rebuilt, "no cache");
    // A cache that fails its checksums is not used.
    let mut bad = fresh_cache.clone();
    let at = bad.len() - 7;
    bad[at] ^= 0x40;
    std::fs::write(&cols, &bad).expect("damaged cache");
    assert_eq!(answers(&db, &recs), rebuilt, "a damaged cache");
    assert_ne!(fresh, rebuilt, "the update changed answers");
    // The oracle agrees with the answers after the update.
    for (terms, pred) in cases(&recs) {
        let want: BTreeSet<u64> = recs.iter().filter(|r| pred(r)).map(|r| r.id).collect();
        assert_eq!(query_ids(&db, &terms), want, "{terms:?}");
    }
}

/// A cache that lags the log by a few frames: the ids those frames store are found from the
/// frames themselves (so that the other rows decide without their index entries), and every
/// answer, `ls` included, is that of no cache. A damaged frame past the cache makes every
/// entry be read instead, with the same answers.
#[test]
fn a_cache_some_frames_behind_answers_as_no_cache_does() {
    let (dir, db, mut recs) = library(2000);
    let cols = dir.path().join("lib.mediadb.cols");
    let old_cache = std::fs::read(&cols).expect("a column cache");
    let committed = || -> u64 {
        let stats: Json =
            serde_json::from_str(&ok_str(&db, &["stats", "--json"])).expect("stats --json");
        stats["committed_bytes"].as_u64().expect("committed_bytes")
    };
    let covered = u64::from_le_bytes(old_cache[32..40].try_into().expect("8 bytes"));
    // Three frames past the cache: tags changed on one record in 25 (their rows now say what
    // the records no longer hold), a few removed, and new records, some in new directories.
    {
        let mut w = open_writer(&db);
        let mut b = w.batch().expect("batch");
        for (i, r) in recs.iter_mut().enumerate().filter(|(i, _)| i % 25 == 0) {
            r.artists = vec![format!("Zed {i}")];
            r.genres = vec!["Zydeco".into()];
            r.album = Some("Later".into());
            r.year = Some(1801);
            r.title = Some(format!("Straße {i}"));
            r.kind = Kind::Video;
            r.id = b.upsert(r).expect("upsert");
        }
        b.commit().expect("commit");
        let mut b = w.batch().expect("batch");
        let removed: BTreeSet<Vec<u8>> = recs
            .iter()
            .skip(7)
            .step_by(97)
            .map(|r| r.path.clone())
            .collect();
        for p in &removed {
            assert!(b.remove(p).expect("remove"));
        }
        b.commit().expect("commit");
        recs.retain(|r| !removed.contains(&r.path));
        let mut b = w.batch().expect("batch");
        let mut added = Vec::new();
        for (i, base) in recs.iter().step_by(211).enumerate() {
            let mut r = base.clone();
            let parent = path_of(base)
                .rsplit_once('/')
                .expect("a parent")
                .0
                .to_owned();
            let p = if i % 2 == 0 {
                format!("{parent}/Bonus {i}.flac")
            } else {
                format!("{parent}/New Disc/{i}.flac")
            };
            r.path = p.into_bytes();
            r.title = Some(format!("Bonus {i}"));
            r.id = b.upsert(&r).expect("upsert");
            added.push(r);
        }
        b.commit().expect("commit");
        drop(w);
        recs.extend(added);
    }
    std::fs::remove_file(&cols).expect("remove the cache");
    let none = answers(&db, &recs);
    std::fs::write(&cols, &old_cache).expect("put the old cache back");
    let end = committed();
    assert!(
        (end - covered) * 4 <= end,
        "the lag ({} of {end} bytes) is one the frames are read for",
        end - covered
    );
    assert_eq!(answers(&db, &recs), none, "a cache three frames behind");
    // Damage in the last frame's payload (the byte before its trailer): that frame fails its
    // checksum, so the ids past the cache cannot be told from the frames.
    let mut file = std::fs::read(&db).expect("read the database");
    let at = usize::try_from(end).expect("fits") - 9;
    file[at] ^= 0x5a;
    std::fs::write(&db, &file).expect("damage the last frame");
    assert_eq!(answers(&db, &recs), none, "a damaged frame past the cache");
}

/// A writer leaves a column cache that lags the log by a little as it is (a rescan that changed
/// a few files does not rewrite it); answers stay exact, since the records past it are read.
/// A larger change and compaction bring it up to date.
#[test]
fn a_cache_that_lags_a_little_is_kept_and_answers_stay_exact() {
    // Enough records that one more frame (a 4 KiB page at least) is within the slack.
    let (dir, db, mut recs) = library(3000);
    let cols = dir.path().join("lib.mediadb.cols");
    let read = || std::fs::read(&cols).expect("a column cache");
    let first = read();
    let retitle = |recs: &mut [Record], which: &[usize], title: &str| {
        let mut w = open_writer(&db);
        let mut b = w.batch().expect("batch");
        for &i in which {
            recs[i].title = Some(format!("{title} {i}"));
            recs[i].id = b.upsert(&recs[i]).expect("upsert");
        }
        b.commit().expect("commit");
        w
    };
    let oracle = |recs: &[Record], word: &str| -> BTreeSet<u64> {
        recs.iter()
            .filter(|r| bare(r, word))
            .map(|r| r.id)
            .collect()
    };
    drop(retitle(&mut recs, &[3], "Quokka"));
    assert!(
        read() == first,
        "one changed record leaves the cache as it was"
    );
    assert_eq!(
        query_ids(&db, &["quokka".to_owned()]),
        oracle(&recs, "quokka")
    );
    assert_eq!(oracle(&recs, "quokka").len(), 1);
    // An explicit checkpoint (every scan writes one) leaves it too.
    let mut w = retitle(&mut recs, &[5], "Wombat");
    w.checkpoint().expect("checkpoint");
    drop(w);
    let second = read();
    assert!(
        second == first,
        "checkpoint() leaves a cache that lags a little"
    );
    assert_eq!(
        query_ids(&db, &["wombat".to_owned()]),
        oracle(&recs, "wombat")
    );
    // A change to a quarter of the records is past the slack.
    let many: Vec<usize> = (0..recs.len()).step_by(4).collect();
    drop(retitle(&mut recs, &many, "Numbat"));
    let third = read();
    assert!(third != second, "a large change rewrites the cache");
    assert_eq!(
        query_ids(&db, &["numbat".to_owned()]),
        oracle(&recs, "numbat")
    );
    // A small lag again, then compaction: the cache is brought up to date and carried over.
    drop(retitle(&mut recs, &[7], "Bilby"));
    assert!(read() == third, "a small lag again");
    open_writer(&db).compact().expect("compact");
    assert!(read() != third, "compaction updates the cache it carries");
    for word in ["bilby", "numbat", "wombat", "quokka", "track"] {
        assert_eq!(
            query_ids(&db, &[word.to_owned()]),
            oracle(&recs, word),
            "{word} after compaction"
        );
    }
}

/// Listing thousands of paths builds them from the cache's `dir` and `rest` columns: the same
/// bytes, in the same order, as reading the records, fresh cache, lagging cache or none.
#[test]
fn many_paths_from_the_cache_are_the_paths_of_the_records() {
    let (dir, db, mut recs) = library(8000);
    let cols = dir.path().join("lib.mediadb.cols");
    let listings = || -> Vec<Vec<u8>> {
        [
            &["query", "--format", "paths"][..],
            &["query", "-0"][..],
            &["query", "-0", "^straße"][..],
            &[
                "query",
                "-0",
                "--limit",
                "4500",
                "kind:audio",
                ",",
                "year:..2000",
            ][..],
        ]
        .iter()
        .map(|a| ok(&db, a))
        .collect()
    };
    let fresh = listings();
    let n = fresh[2].iter().filter(|b| **b == 0).count();
    assert!(
        n > 4096,
        "{n} matches: enough to take the paths from the columns"
    );
    // A lagging cache: one more record, and one moved to a new path, past it.
    {
        let mut w = open_writer(&db);
        let mut b = w.batch().expect("batch");
        let mut extra = recs[9].clone();
        extra.path = b"/music/Zz/new \xff.flac".to_vec();
        b.upsert(&extra).expect("upsert");
        b.remove(&recs[10].path).expect("remove");
        recs[10].path = b"/music/Aa/moved.flac".to_vec();
        b.upsert(&recs[10]).expect("upsert");
        b.commit().expect("commit");
    }
    let lagging = listings();
    assert_ne!(lagging, fresh, "the commit changed the listings");
    std::fs::remove_file(&cols).expect("remove the cache");
    assert!(listings() == lagging, "without the cache, the same bytes");
    for want in [&b"/music/Zz/new \xff.flac\0"[..], b"/music/Aa/moved.flac\0"] {
        assert!(lagging[1].windows(want.len()).any(|w| w == want));
    }
}

/// Bare words and terms on the title, name and path are decided on the column cache's rows:
/// paths the scanner never makes (`/x`, `//y`, relative, not UTF-8, ending in `/`) and
/// characters that fold (the Kelvin sign) give the answers of reading every record.
#[test]
fn title_name_and_path_terms_on_odd_paths_agree_with_and_without_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("odd.mediadb");
    let paths: &[&[u8]] = &[
        b"/x",
        b"//y",
        b"rel",
        b"rel/a/b",
        b"/",
        b"/m/dir/",
        b"/m/caf\xe9/x.flac",
        b"/m/a\xff/\xfe\xe2\x82.mp3",
        b"/m/\xe2\x82/\xac.mp3",
        "/m/\u{212a}elvin/t.flac".as_bytes(),
        "/m/Straße/Ümlaut.ogg".as_bytes(),
        b"/m/k/\xe2\x84\xaa.flac",
    ];
    {
        let mut db = Database::create(&path).expect("create");
        let mut b = db.batch().expect("batch");
        for (i, p) in paths.iter().enumerate() {
            let mut r = Record::new(p.to_vec());
            r.title = match i % 3 {
                0 => None,
                1 => Some(String::new()),
                _ => Some(format!("K{i} \u{212a}")),
            };
            b.upsert(&r).expect("upsert");
        }
        b.commit().expect("commit");
    }
    let cols = dir.path().join("odd.mediadb.cols");
    assert!(cols.exists(), "the writer wrote a column cache");
    let queries: &[&[&str]] = &[
        &["k"],
        &["K"],
        &["\u{fffd}"],
        &["\u{fffd}/\u{fffd}"],
        &["e/x"],
        &["/"],
        &["//"],
        &["x"],
        &["rel/a"],
        &["strasse/ü"],
        &["title:"],
        &["^title:"],
        &["title:k"],
        &["title:="],
        &["name:x"],
        &["name:="],
        &["name:=y"],
        &["name:=rel"],
        &["name::^$"],
        &["path:=/x"],
        &["path:=//y"],
        &["path:/m"],
        &["path::^/[^/]"],
        &["path:a/b"],
        &["dir:=/"],
        &["dir:="],
        &["^elvin/"],
    ];
    let answers = || -> Vec<(String, Vec<u64>, u64)> {
        let db = Database::open_read_only(&path).expect("open");
        let snap = db.snapshot();
        queries
            .iter()
            .map(|q| {
                let args: Vec<String> = q.iter().map(|s| (*s).to_owned()).collect();
                let query = mediadb::query::parse(&args).expect("parses");
                let brute: Vec<u64> = snap
                    .iter()
                    .map(|r| r.expect("record"))
                    .filter(|r| query.matches(r))
                    .map(|r| r.id())
                    .collect();
                let mut selected: Vec<u64> = mediadb::query::eval::select(&snap, &query, &[], None)
                    .expect("select")
                    .iter()
                    .map(|r| r.id())
                    .collect();
                selected.sort_unstable();
                let counted = mediadb::query::eval::count(&snap, &query).expect("count");
                let in_order: Vec<Vec<u8>> = mediadb::query::eval::select(&snap, &query, &[], None)
                    .expect("select")
                    .iter()
                    .map(|r| r.path().to_vec())
                    .collect();
                if let Some(paths) = mediadb::query::eval::select_paths(&snap, &query, None) {
                    let paths: Vec<Vec<u8>> = paths
                        .expect("select_paths")
                        .iter()
                        .map(<[u8]>::to_vec)
                        .collect();
                    assert_eq!(paths, in_order, "{q:?}: select_paths against select");
                }
                assert_eq!(selected, brute, "{q:?}: select against every record");
                assert_eq!(counted, brute.len() as u64, "{q:?}: count");
                (format!("{q:?}"), selected, counted)
            })
            .collect()
    };
    let with_cache = answers();
    std::fs::remove_file(&cols).expect("remove the cache");
    assert_eq!(answers(), with_cache, "the same answers without the cache");
    let hits = with_cache
        .iter()
        .filter(|(_, ids, _)| !ids.is_empty())
        .count();
    assert!(
        hits >= 20,
        "most of these queries select something: {with_cache:?}"
    );
}

/// Opens `path` for writing, waiting a little for the lock. A handle this test has just dropped
/// can hold it a moment longer: a child that another test is spawning shares the lock file's
/// description from its fork until it execs.
fn open_writer(path: &Path) -> Database {
    let opts = OpenOptions {
        wait: std::time::Duration::from_secs(10),
        ..OpenOptions::default()
    };
    Database::open_with(path, &opts).expect("open for writing")
}

#[test]
fn a_reader_that_closes_the_pipe_early_ends_a_long_listing_quietly() {
    // Far more output than the pipe and the output buffer hold together, so that mediadb is
    // still writing when the reader goes away (as `mediadb query | head -1` does).
    let (_dir, db, recs) = library(6000);
    let total: usize = recs.iter().map(|r| r.path.len() + 1).sum();
    assert!(total > 256 << 10, "{total} bytes of output");
    let mut child = cmd(&db)
        .args(["query", "--format", "paths"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mediadb runs");
    let mut first = [0u8; 1];
    let mut stdout = child.stdout.take().expect("piped");
    stdout.read_exact(&mut first).expect("some output");
    drop(stdout);
    let o = child.wait_with_output().expect("mediadb exits");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(o.stderr.is_empty(), "no message: {}", text(&o.stderr));
}

#[test]
fn ls_lists_exact_bytes_with_print0_and_takes_fields_which_paths_output_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("ls.mediadb");
    let mut recs: Vec<Record> = [&b"/w/a\nb.mp3"[..], b"/w/\xff.mp3", b"/w/sub/x.mp3"]
        .iter()
        .map(|p| {
            let mut r = Record::new(p.to_vec());
            r.title = Some("T".into());
            r
        })
        .collect();
    write_db(&db, &mut recs);
    assert_eq!(
        ok(&db, &["ls", "/w", "-0"]),
        b"/w/sub/\0/w/a\nb.mp3\0/w/\xff.mp3\0"
    );
    let b64 = |p: &[u8]| base64::engine::general_purpose::STANDARD.encode(p);
    assert_eq!(
        ok_str(
            &db,
            &["ls", "/w", "--format", "csv", "--fields", "path_b64,title"]
        ),
        format!(
            "path_b64,title\r\n{},T\r\n{},T\r\n",
            b64(b"/w/a\nb.mp3"),
            b64(b"/w/\xff.mp3")
        )
    );
    // Paths output prints paths only: --fields there is a mistake, said so.
    for args in [
        &["ls", "/w", "-0", "--fields", "title"][..],
        &["ls", "/w", "--format", "paths", "--fields", "title"][..],
        &["query", "-0", "--fields", "title"][..],
        &["query", "--format", "paths", "--fields", "title"][..],
    ] {
        let o = run(&db, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            text(&o.stderr).contains("--fields"),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
}

/// A directory whose name ends in a comma is selected with `path:DIR,/`, as `--help` says,
/// also when the term is made absolute (the directory exists) or given relative.
#[test]
fn a_directory_ending_in_a_comma_is_a_subtree_with_a_trailing_slash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = std::fs::canonicalize(dir.path()).expect("canonical temp dir");
    for d in ["lib/x,", "lib/y"] {
        std::fs::create_dir_all(base.join(d)).expect("mkdir");
    }
    for f in ["lib/x,/a.mp3", "lib/y/b.mp3", "lib/c.mp3"] {
        std::fs::write(base.join(f), b"").expect("write");
    }
    let db = base.join("lib.mediadb");
    let lib = base.join("lib");
    let o = run_in(&base, &db, &["scan", "-q", "lib"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let abs = format!("path:{}/x,/", lib.display());
    for (args, want) in [
        (vec!["query", "-c", &abs], "1\n"),
        (vec!["query", "-c", &abs, "kind:audio"], "1\n"),
        (vec!["query", "-c", "path:./lib/x,/", "kind:audio"], "1\n"),
        (vec!["query", "-c", &format!("^{abs}")], "2\n"),
        // A trailing comma still ends an OR group.
        (
            vec!["query", "-c", "path:./lib/y,", "path:./lib/x,/"],
            "2\n",
        ),
        // --count lists nothing, so --fields does not make it a paths listing.
        (vec!["query", "-c", "--fields", "title"], "3\n"),
    ] {
        let o = run_in(&base, &db, &args);
        assert_eq!(
            (text(&o.stdout).as_str(), o.status.code()),
            (want, Some(0)),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
}
