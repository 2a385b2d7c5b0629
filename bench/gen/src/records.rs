//! `records`: a large tagged library as JSON Lines, in the shape `mediadb export` writes, for
//! `mediadb import` and the import and query benchmarks. No file is created but the output.
//!
//! The library is shaped like a real one, at any size:
//!
//! * about N/100 artists whose popularity is skewed (a Zipf–Mandelbrot law: the artist of rank
//!   `i` is drawn with weight `(i + 10)^-0.75`, after every artist got one album), some of them
//!   with Japanese, Chinese, Korean or accented names;
//! * albums of 8–20 tracks (5% on two discs) at `/music/Artist/YEAR - Album/NN - Title.ext`
//!   (`D-NN - Title.ext` on two discs), one format per album (flac, mp3, m4a, ogg, opus) with
//!   bitrate, sample rate, channels (and bit depth for flac) to match, durations of 90 s–9 min
//!   and sizes that follow from them (plus tags and embedded cover art);
//! * about 5% of the records on compilations (`/music/Various Artists/...`, album artist
//!   `Various Artists`, `compilation` true, an artist per track);
//! * featured artists on a few tracks (`artists` holds both; `artist` is the display join
//!   `A; B`, as export writes it), ~45 genres (skewed; 15% of albums have two), years
//!   1955–2025, track/disc numbers and totals as taggers write them (not always), MusicBrainz
//!   ids on 40% of albums, embedded cover art on 85% of albums;
//! * about 3% video (`/video/Movies/...` mkv and mp4, `/video/Music Videos/...` mp4; mkv
//!   untagged, as mediadb's extractor leaves it) and about 3% `cover.jpg` images in album
//!   directories (no tags).
//!
//! Every path is distinct. Keys are written as export writes them (alphabetically), every one
//! of them except `id`, which `import` does not need (it numbers records in order).
//! The plan (artists, albums) is drawn sequentially from the seed and each album's tracks from
//! an RNG derived from `(seed, album index)`, so the same seed always gives the same file.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::json_str;
use crate::names;
use crate::rng::SplitMix64;

/// What `write` wrote.
#[derive(Debug, Default)]
pub struct Summary {
    /// Records (lines) written.
    pub records: u64,
    /// Distinct artists credited on at least one record.
    pub artists: u64,
    /// Albums, compilations included.
    pub albums: u64,
    /// Records on compilations.
    pub compilation_records: u64,
    /// Audio, video and image records.
    pub audio: u64,
    /// Video records.
    pub video: u64,
    /// Image records.
    pub image: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Genres, most popular first (drawn with a skewed weight).
const GENRES: &[&str] = &[
    "Rock",
    "Pop",
    "Electronic",
    "Hip-Hop",
    "Jazz",
    "Alternative",
    "Indie",
    "Classical",
    "Metal",
    "Soundtrack",
    "Folk",
    "R&B",
    "Country",
    "Punk",
    "Soul",
    "Blues",
    "Ambient",
    "House",
    "Techno",
    "Reggae",
    "Funk",
    "World",
    "Hard Rock",
    "Singer-Songwriter",
    "Progressive Rock",
    "Drum & Bass",
    "Trip-Hop",
    "Synthpop",
    "New Wave",
    "Disco",
    "Latin",
    "Bossa Nova",
    "J-Pop",
    "K-Pop",
    "Post-Rock",
    "Shoegaze",
    "Grunge",
    "Trance",
    "Dubstep",
    "Gospel",
    "Opera",
    "Baroque",
    "Lo-Fi",
    "Chanson Française",
    "Música Popular Brasileira",
];

const JP_FAMILY: &[&str] = &[
    "山田", "佐藤", "鈴木", "高橋", "田中", "渡辺", "伊藤", "中村", "小林", "加藤", "吉田", "松本",
];
const JP_GIVEN: &[&str] = &[
    "花子", "健一", "美咲", "翔太", "由美", "大輔", "愛", "蓮", "陽菜", "拓海",
];
const ZH_FAMILY: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "黄", "赵"];
const ZH_GIVEN: &[&str] = &["伟", "芳", "娜", "静", "磊", "洋", "婷", "军", "杰"];
const KO_FAMILY: &[&str] = &["김", "이", "박", "최", "정", "강", "조"];
const KO_GIVEN: &[&str] = &[
    "민지", "서연", "지훈", "유나", "하늘", "다은", "준호", "수빈",
];
const KATAKANA: &[&str] = &[
    "ミッドナイト",
    "サクラ",
    "ネオン",
    "シグナル",
    "ドリーム",
    "ブルー",
    "スター",
    "レイン",
];
const CJK_ADJ: &[&str] = &[
    "青い",
    "遠い",
    "夏の",
    "夜明けの",
    "静かな",
    "最後の",
    "白い",
    "真夜中の",
    "忘れられた",
];
const CJK_NOUN: &[&str] = &[
    "月",
    "風",
    "記憶",
    "街",
    "海",
    "約束",
    "メロディ",
    "花",
    "空",
    "東京",
];

/// An audio format: extension, MIME type (as mediadb's classifier gives it), weight in percent.
struct Format {
    ext: &'static str,
    mime: &'static str,
    weight: u64,
}

const FORMATS: &[Format] = &[
    Format {
        ext: "flac",
        mime: "audio/flac",
        weight: 35,
    },
    Format {
        ext: "mp3",
        mime: "audio/mpeg",
        weight: 38,
    },
    Format {
        ext: "m4a",
        mime: "audio/mp4",
        weight: 13,
    },
    Format {
        ext: "ogg",
        mime: "audio/ogg",
        weight: 8,
    },
    Format {
        ext: "opus",
        mime: "audio/ogg",
        weight: 6,
    },
];

const VARIOUS: &str = "Various Artists";

/// Cumulative weights `(i + offset)^-0.75` for ranks `0..n`, drawn from by binary search. Only
/// `sqrt` and arithmetic (exactly rounded in IEEE 754), so the same on every machine.
struct Zipf {
    cum: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, offset: f64) -> Self {
        let mut total = 0.0;
        let cum = (0..n.max(1))
            .map(|i| {
                let x = i as f64 + offset;
                total += 1.0 / (x.sqrt() * x.sqrt().sqrt());
                total
            })
            .collect();
        Zipf { cum }
    }

    fn sample(&self, g: &mut SplitMix64) -> usize {
        let total = *self.cum.last().unwrap_or(&1.0);
        let u = (g.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
        self.cum
            .partition_point(|&c| c <= u)
            .min(self.cum.len() - 1)
    }
}

struct Artist {
    name: String,
    cjk: bool,
    genre: usize,
    start: u64,
}

/// One album of the plan; its tracks are drawn when it is written.
struct Album {
    /// `None`: a Various Artists compilation.
    artist: Option<usize>,
    title: String,
    dir: String,
    year: u64,
    genres: Vec<usize>,
    format: usize,
    tracks: u64,
    discs: u64,
    cover_file: bool,
}

/// `s` usable as one path component.
fn component(s: &str) -> String {
    s.replace('/', "-")
}

/// A name in Japanese, Chinese, Korean or katakana.
fn cjk_name(g: &mut SplitMix64) -> String {
    match g.below(5) {
        0 | 1 => format!("{}{}", g.pick(JP_FAMILY), g.pick(JP_GIVEN)),
        2 => {
            let mut s = format!("{}{}", g.pick(ZH_FAMILY), g.pick(ZH_GIVEN));
            if g.chance(50) {
                s.push_str(g.pick(ZH_GIVEN));
            }
            s
        }
        3 => format!("{}{}", g.pick(KO_FAMILY), g.pick(KO_GIVEN)),
        _ => format!("{}・{}", g.pick(KATAKANA), g.pick(KATAKANA)),
    }
}

fn cjk_title(g: &mut SplitMix64) -> String {
    format!("{}{}", g.pick(CJK_ADJ), g.pick(CJK_NOUN))
}

fn pick_format(g: &mut SplitMix64) -> usize {
    let roll = g.below(100);
    let mut acc = 0;
    for (i, f) in FORMATS.iter().enumerate() {
        acc += f.weight;
        if roll < acc {
            return i;
        }
    }
    0
}

/// Unix seconds at the start of `year` (close enough for plausible mtimes).
fn year_start(year: u64) -> u64 {
    (year.max(1970) - 1970) * 31_556_952
}

/// 2025-06-01, the newest mtime.
const NEWEST: u64 = 1_748_736_000;

fn uuid(g: &mut SplitMix64) -> String {
    let (a, b) = (g.next_u64(), g.next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// One record's fields, written as JSON in export's key order.
#[derive(Default)]
struct Rec {
    album: Option<String>,
    album_artist: Option<String>,
    artists: Vec<String>,
    bit_depth: Option<u64>,
    bitrate: Option<u64>,
    channels: Option<u64>,
    compilation: Option<bool>,
    dir: String,
    disc: Option<u64>,
    disc_total: Option<u64>,
    duration_ms: Option<u64>,
    genres: Vec<String>,
    has_cover: Option<bool>,
    kind: &'static str,
    mime: &'static str,
    mtime_ns: u64,
    mb_album: Option<String>,
    mb_track: Option<String>,
    name: String,
    sample_rate: Option<u64>,
    size: u64,
    title: Option<String>,
    track: Option<u64>,
    track_total: Option<u64>,
    year: Option<u64>,
}

fn put_str(out: &mut String, key: &str, v: Option<&str>) {
    let _ = write!(out, "\"{key}\":");
    match v {
        Some(s) => out.push_str(&json_str(s)),
        None => out.push_str("null"),
    }
    out.push(',');
}

fn put_num(out: &mut String, key: &str, v: Option<u64>) {
    match v {
        Some(n) => {
            let _ = write!(out, "\"{key}\":{n},");
        }
        None => {
            let _ = write!(out, "\"{key}\":null,");
        }
    }
}

fn put_bool(out: &mut String, key: &str, v: Option<bool>) {
    match v {
        Some(b) => {
            let _ = write!(out, "\"{key}\":{b},");
        }
        None => {
            let _ = write!(out, "\"{key}\":null,");
        }
    }
}

fn put_list(out: &mut String, key: &str, v: &[String]) {
    let _ = write!(out, "\"{key}\":[");
    for (i, s) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_str(s));
    }
    out.push_str("],");
}

impl Rec {
    /// Appends the record as one JSON line, keys in the order `mediadb export` writes them.
    fn write_json(&self, inode: u64, out: &mut String) {
        let joined = |l: &[String]| (!l.is_empty()).then(|| l.join("; "));
        out.push('{');
        put_str(out, "album", self.album.as_deref());
        put_str(out, "album_artist", self.album_artist.as_deref());
        put_str(out, "artist", joined(&self.artists).as_deref());
        put_list(out, "artists", &self.artists);
        put_num(out, "bit_depth", self.bit_depth);
        put_num(out, "bitrate", self.bitrate);
        put_num(out, "channels", self.channels);
        put_bool(out, "compilation", self.compilation);
        put_str(out, "dir", Some(&self.dir));
        put_num(out, "disc", self.disc);
        put_num(out, "disc_total", self.disc_total);
        put_num(out, "duration_ms", self.duration_ms);
        put_str(out, "error", None);
        put_num(out, "extractor_version", Some(1));
        put_str(out, "genre", joined(&self.genres).as_deref());
        put_list(out, "genres", &self.genres);
        put_bool(out, "has_cover", self.has_cover);
        put_num(out, "inode", Some(inode));
        put_str(out, "kind", Some(self.kind));
        put_str(out, "mime", Some(self.mime));
        put_num(out, "mtime_ns", Some(self.mtime_ns));
        put_str(out, "musicbrainz_album_id", self.mb_album.as_deref());
        put_str(out, "musicbrainz_track_id", self.mb_track.as_deref());
        put_str(out, "name", Some(&self.name));
        put_str(out, "path", Some(&format!("{}/{}", self.dir, self.name)));
        put_num(out, "sample_rate", self.sample_rate);
        put_num(out, "size", Some(self.size));
        put_str(out, "title", self.title.as_deref());
        put_num(out, "track", self.track);
        put_num(out, "track_total", self.track_total);
        put_num(out, "year", self.year);
        out.pop();
        out.push_str("}\n");
    }
}

/// The artists, each with a distinct name.
fn make_artists(g: &mut SplitMix64, n: usize, genre_zipf: &Zipf) -> Vec<Artist> {
    let mut seen: HashSet<String> = HashSet::new();
    seen.insert(VARIOUS.to_string());
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let (mut name, mut cjk) = (String::new(), false);
        for attempt in 0.. {
            cjk = g.chance(4);
            name = if cjk { cjk_name(g) } else { names::artist(g) };
            if attempt >= 8 {
                name = format!("{name} {}", attempt - 6);
            }
            if seen.insert(name.clone()) {
                break;
            }
        }
        let start = 1955 + g.below(66);
        out.push(Artist {
            name,
            cjk,
            genre: genre_zipf.sample(g),
            start,
        });
    }
    out
}

/// Plans one album of at most `left` records (tracks plus maybe a cover.jpg).
fn plan_album(
    g: &mut SplitMix64,
    artist: Option<usize>,
    artists: &[Artist],
    genre_zipf: &Zipf,
    left: u64,
    dirs: &mut HashSet<String>,
) -> Album {
    let (year, mut genre) = match artist {
        Some(a) => {
            let ar = &artists[a];
            (
                g.range(ar.start, (ar.start + 30).min(2025)),
                if g.chance(85) {
                    ar.genre
                } else {
                    genre_zipf.sample(g)
                },
            )
        }
        None => (g.range(1970, 2025), genre_zipf.sample(g)),
    };
    if artist.is_none() && g.chance(30) {
        genre = 1; // Pop
    }
    let mut genres = vec![genre];
    if g.chance(15) {
        let second = genre_zipf.sample(g);
        if second != genre {
            genres.push(second);
        }
    }
    let owner = artist.map_or(VARIOUS, |a| artists[a].name.as_str());
    let mut title = String::new();
    let mut dir = String::new();
    for attempt in 0.. {
        title = match artist {
            Some(a) if artists[a].cjk && g.chance(50) => cjk_title(g),
            Some(_) => names::album(g),
            None => match g.below(4) {
                0 => format!("{} Classics", GENRES[genre]),
                1 => format!("Best of {year}"),
                2 => format!("{} Vol. {}", names::album(g), g.range(1, 12)),
                _ => names::album(g),
            },
        };
        if attempt >= 6 {
            title = format!("{title} ({})", attempt - 4);
        }
        dir = format!("/music/{}/{year} - {}", component(owner), component(&title));
        if dirs.insert(dir.clone()) {
            break;
        }
    }
    let mut tracks = g.range(8, 20);
    let mut discs = if g.chance(5) { 2 } else { 1 };
    let mut cover_file = g.chance(45);
    if tracks + u64::from(cover_file) > left {
        cover_file = false;
        tracks = left.max(1);
        discs = 1;
    }
    Album {
        artist,
        title,
        dir,
        year,
        genres,
        format: pick_format(g),
        tracks,
        discs,
        cover_file,
    }
}

/// Writes `n` records to `out` (created or truncated).
pub fn write(out: &Path, n: u64, seed: u64) -> io::Result<Summary> {
    let mut g = SplitMix64::new(seed ^ 0x7265_636f_7264_7321); // "records!"
    let genre_zipf = Zipf::new(GENRES.len(), 2.0);
    let n_artists = (n / 100).max(1) as usize;
    let artists = make_artists(&mut g, n_artists, &genre_zipf);
    let artist_zipf = Zipf::new(n_artists, 10.0);

    // The budget: ~3% video, ~5% compilations, the rest albums of artists (with cover.jpg).
    let video_n = n * 3 / 100;
    let comp_n = n * 5 / 100;
    let main_n = n - video_n - comp_n;
    let mut dirs = HashSet::new();
    let mut albums: Vec<Album> = Vec::new();
    let mut left = main_n;
    let mut next_artist = 0;
    while left > 0 {
        // Every artist gets one album, then albums go to artists by popularity.
        let a = if next_artist < n_artists {
            next_artist += 1;
            next_artist - 1
        } else {
            artist_zipf.sample(&mut g)
        };
        let al = plan_album(&mut g, Some(a), &artists, &genre_zipf, left, &mut dirs);
        left -= al.tracks + u64::from(al.cover_file);
        albums.push(al);
    }
    // Walk order: an artist's albums together.
    albums.sort_by_key(|al| al.artist);
    let mut left = comp_n;
    while left > 0 {
        let al = plan_album(&mut g, None, &artists, &genre_zipf, left, &mut dirs);
        left -= al.tracks + u64::from(al.cover_file);
        albums.push(al);
    }

    let mut w = BufWriter::with_capacity(1 << 20, File::create(out)?);
    let mut s = Summary::default();
    let mut credited = vec![false; n_artists];
    let mut inode = 393_217u64;
    let mut line = String::with_capacity(2048);
    let mut emit = |rec: &Rec, g: &mut SplitMix64, s: &mut Summary| -> io::Result<()> {
        line.clear();
        inode += g.range(1, 3);
        rec.write_json(inode, &mut line);
        w.write_all(line.as_bytes())?;
        s.records += 1;
        s.bytes += line.len() as u64;
        match rec.kind {
            "audio" => s.audio += 1,
            "video" => s.video += 1,
            _ => s.image += 1,
        }
        Ok(())
    };

    for (index, al) in albums.iter().enumerate() {
        let mut g = SplitMix64::derive(seed, index as u64);
        write_album(
            al,
            &artists,
            &artist_zipf,
            &mut credited,
            &mut g,
            &mut |r, g| {
                if r.compilation == Some(true) {
                    s.compilation_records += 1;
                }
                emit(r, g, &mut s)
            },
        )?;
    }
    s.albums = albums.len() as u64;

    // Videos: movies (mkv untagged, mp4 tagged) and music videos (mp4).
    let mut g = SplitMix64::derive(seed, u64::MAX);
    let mut paths = HashSet::new();
    for _ in 0..video_n {
        let movie = g.chance(60);
        let mp4 = !movie || g.chance(30);
        let year = g.range(1955, 2025);
        let (dir, stem, title, artist, duration_ms, bitrate) = if movie {
            let title = names::album(&mut g);
            let stem = format!("{} ({year})", component(&title));
            (
                format!("/video/Movies/{stem}"),
                stem,
                title,
                None,
                g.range(80 * 60_000, 170 * 60_000),
                g.range(1_500, 12_000),
            )
        } else {
            let a = artist_zipf.sample(&mut g);
            credited[a] = true;
            let title = names::title(&mut g);
            (
                format!("/video/Music Videos/{}", component(&artists[a].name)),
                component(&title),
                title,
                Some(a),
                g.range(180_000, 360_000),
                g.range(2_000, 8_000),
            )
        };
        let ext = if mp4 { "mp4" } else { "mkv" };
        let mut name = format!("{stem}.{ext}");
        let mut k = 2;
        while !paths.insert(format!("{dir}/{name}")) {
            name = format!("{stem} ({k}).{ext}");
            k += 1;
        }
        let added = g.range(year_start(year.max(2005)), NEWEST);
        let mut rec = Rec {
            dir,
            name,
            kind: "video",
            mime: if mp4 { "video/mp4" } else { "video/x-matroska" },
            size: duration_ms * bitrate / 8 + g.range(10_000, 2_000_000),
            mtime_ns: added * 1_000_000_000 + g.below(1_000_000_000),
            ..Rec::default()
        };
        if mp4 {
            // What the extractor reads from an MP4: properties, and the tags it carries.
            rec.duration_ms = Some(duration_ms);
            rec.bitrate = Some(bitrate);
            rec.sample_rate = Some(48_000);
            rec.channels = Some(if movie && g.chance(50) { 6 } else { 2 });
            rec.has_cover = Some(false);
            if !movie || g.chance(70) {
                rec.title = Some(title);
                rec.year = Some(year);
            }
            if let Some(a) = artist {
                rec.artists = vec![artists[a].name.clone()];
            }
        }
        emit(&rec, &mut g, &mut s)?;
    }
    w.flush()?;
    s.artists = credited.iter().filter(|&&c| c).count() as u64;
    Ok(s)
}

/// Writes one album's tracks (and its cover.jpg) through `emit`.
fn write_album(
    al: &Album,
    artists: &[Artist],
    artist_zipf: &Zipf,
    credited: &mut [bool],
    g: &mut SplitMix64,
    emit: &mut dyn FnMut(&Rec, &mut SplitMix64) -> io::Result<()>,
) -> io::Result<()> {
    let fmt = &FORMATS[al.format];
    let compilation = al.artist.is_none();
    // Album-level tagging habits.
    let album_artist_tagged = compilation || g.chance(70);
    let disc_tagged = al.discs > 1 || g.chance(60);
    let track_total_tagged = g.chance(80);
    let embedded_cover = g.chance(85);
    let cover_bytes = if embedded_cover {
        g.range(30_000, 600_000)
    } else {
        0
    };
    let mb_album = g.chance(40).then(|| uuid(g));
    let channels = if g.chance(1) { 1 } else { 2 };
    // (sample rate, bit depth, nominal kbps or None for per-track)
    let (sample_rate, bit_depth, nominal) = match fmt.ext {
        "flac" => {
            if g.chance(80) {
                (44_100, Some(16), None)
            } else {
                (g.pick(&[44_100, 48_000, 96_000, 192_000]), Some(24), None)
            }
        }
        "mp3" => {
            let r = g.pick(&[320, 320, 320, 256, 192, 192, 128, 0]);
            (44_100, None, (r > 0).then_some(r))
        }
        "m4a" => (44_100, None, Some(g.pick(&[256, 256, 256, 128, 320]))),
        "ogg" => (44_100, None, Some(g.pick(&[160, 192, 256, 320]))),
        _ => (48_000, None, Some(g.pick(&[96, 128, 128, 160]))),
    };
    let added = g.range(year_start(al.year.max(2004)), NEWEST);
    let mut mtime = added * 1_000_000_000 + g.below(1_000_000_000);
    let main_artist = al.artist.map(|a| artists[a].name.clone());
    let cjk = al.artist.is_some_and(|a| artists[a].cjk);
    let genres: Vec<String> = al.genres.iter().map(|&i| GENRES[i].to_string()).collect();
    if let Some(a) = al.artist {
        credited[a] = true;
    }

    let per_disc = al.tracks.div_ceil(al.discs);
    let mut made = 0;
    for disc in 1..=al.discs {
        let on_disc = per_disc.min(al.tracks - made);
        for t in 1..=on_disc {
            let mut credits: Vec<String> = Vec::with_capacity(2);
            let lead = if compilation {
                artist_zipf.sample(g)
            } else {
                al.artist.unwrap_or(0)
            };
            credited[lead] = true;
            credits.push(artists[lead].name.clone());
            let mut title = if cjk && g.chance(50) {
                cjk_title(g)
            } else {
                names::title(g)
            };
            if g.chance(if compilation { 8 } else { 6 }) {
                let f = artist_zipf.sample(g);
                if f != lead {
                    credited[f] = true;
                    credits.push(artists[f].name.clone());
                    if g.chance(50) {
                        title = format!("{title} (feat. {})", artists[f].name);
                    }
                }
            }
            let duration_ms = if g.chance(80) {
                g.range(150_000, 300_000)
            } else {
                g.range(90_000, 540_000)
            };
            let bitrate = match (fmt.ext, nominal) {
                ("flac", _) => {
                    let raw = sample_rate * bit_depth.unwrap_or(16) * channels / 1000;
                    raw * g.range(45, 75) / 100
                }
                (_, Some(r)) => r,
                (_, None) => g.range(190, 270), // mp3 VBR V0
            };
            let size = duration_ms * bitrate / 8 + g.range(2_000, 12_000) + cover_bytes;
            mtime += g.range(3, 40) * 1_000_000_000 + g.below(1_000_000);
            let name = if al.discs > 1 {
                format!("{disc}-{t:02} - {}.{}", component(&title), fmt.ext)
            } else {
                format!("{t:02} - {}.{}", component(&title), fmt.ext)
            };
            let rec = Rec {
                album: Some(al.title.clone()),
                album_artist: if compilation {
                    Some(VARIOUS.to_string())
                } else if album_artist_tagged {
                    main_artist.clone()
                } else {
                    None
                },
                artists: credits,
                bit_depth,
                bitrate: Some(bitrate),
                channels: Some(channels),
                compilation: compilation.then_some(true),
                dir: al.dir.clone(),
                disc: disc_tagged.then_some(disc),
                disc_total: disc_tagged.then_some(al.discs),
                duration_ms: Some(duration_ms),
                genres: genres.clone(),
                has_cover: Some(embedded_cover),
                kind: "audio",
                mime: fmt.mime,
                mtime_ns: mtime,
                mb_album: mb_album.clone(),
                mb_track: mb_album.is_some().then(|| uuid(g)),
                name,
                sample_rate: Some(sample_rate),
                size,
                title: Some(title),
                track: Some(t),
                track_total: track_total_tagged.then_some(on_disc),
                year: Some(al.year),
            };
            emit(&rec, g)?;
        }
        made += on_disc;
    }
    if al.cover_file {
        let rec = Rec {
            dir: al.dir.clone(),
            name: "cover.jpg".into(),
            kind: "image",
            mime: "image/jpeg",
            size: g.range(40_000, 1_500_000),
            mtime_ns: mtime + g.range(1, 30) * 1_000_000_000,
            ..Rec::default()
        };
        emit(&rec, g)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: u64, seed: u64) -> Vec<String> {
        let p = std::env::temp_dir().join(format!(
            "mediadb-gen-records-{}-{n}-{seed}.jsonl",
            std::process::id()
        ));
        let s = write(&p, n, seed).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(s.records, n);
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn exact_count_distinct_paths_deterministic() {
        for n in [1, 7, 100, 5000] {
            let a = lines(n, 11);
            assert_eq!(a.len() as u64, n);
            let paths: HashSet<&str> = a
                .iter()
                .map(|l| {
                    let i = l.find("\"path\":\"").unwrap() + 8;
                    let j = l[i..].find("\",\"").unwrap();
                    &l[i..i + j]
                })
                .collect();
            assert_eq!(paths.len() as u64, n, "paths must be distinct");
            assert_eq!(a, lines(n, 11));
        }
        assert_ne!(lines(100, 1), lines(100, 2));
    }

    #[test]
    fn records_have_export_shape() {
        for l in lines(3000, 5) {
            assert!(l.starts_with("{\"album\":") && l.ends_with('}'), "{l}");
            assert!(!l.contains("\"id\":"));
            for key in ["\"kind\":", "\"mime\":", "\"size\":", "\"mtime_ns\":"] {
                assert!(l.contains(key), "{key} in {l}");
            }
        }
    }
}
