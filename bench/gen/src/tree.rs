//! The shape of a NAS music library, and the parallel writer that creates it.
//!
//! `ROOT/Artist/YEAR - Album/NN - Artist - Title.ext`: each artist has 1–6 albums, each album
//! directory 10–20 files. The plan (artists, albums, file counts) is drawn sequentially from the
//! seed; the files of each album are drawn from an RNG derived from `(seed, album index)`, so
//! albums can be written by several threads and the tree is the same whatever the thread count.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::names;
use crate::rng::SplitMix64;

/// One album directory to create.
#[derive(Debug, Clone)]
pub struct Album {
    /// Position in the plan; with the run's seed it seeds this album's own RNG.
    pub index: u64,
    /// `ROOT/Artist/YEAR - Album`.
    pub dir: PathBuf,
    /// The artist, as tagged.
    pub artist: String,
    /// The album title, as tagged.
    pub title: String,
    /// Release year.
    pub year: u64,
    /// Genre, as tagged.
    pub genre: &'static str,
    /// How many files this album holds (all subdirectories included).
    pub files: u64,
}

/// Genres given to albums.
const GENRES: &[&str] = &[
    "Rock",
    "Pop",
    "Jazz",
    "Classical",
    "Electronic",
    "Hip-Hop",
    "Folk",
    "Metal",
    "Blues",
    "Soundtrack",
    "World",
    "Ambient",
];

/// Plans `files` files under `root`: creates `root` and the artist directories, and returns
/// the albums (not yet created) whose file counts add up to exactly `files`.
pub fn plan(root: &Path, files: u64, seed: u64) -> io::Result<(Vec<Album>, u64)> {
    fs::create_dir_all(root)?;
    if fs::read_dir(root)?.next().is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is not empty", root.display()),
        ));
    }
    let mut g = SplitMix64::new(seed);
    let mut albums = Vec::new();
    let mut artists_seen = HashSet::new();
    let mut left = files;
    let mut dirs = 0u64;
    while left > 0 {
        let mut artist = names::artist(&mut g);
        let mut n = 2;
        while !artists_seen.insert(artist.clone()) {
            artist = format!("{} {n}", names::artist(&mut g));
            n += 1;
        }
        let artist_dir = root.join(&artist);
        fs::create_dir(&artist_dir)?;
        dirs += 1;
        let genre = g.pick(GENRES);
        let mut titles = HashSet::new();
        for _ in 0..g.range(1, 6) {
            if left == 0 {
                break;
            }
            let year = g.range(1960, 2025);
            let title = names::album(&mut g);
            let dir_name = names::album_dir(year, &title);
            if !titles.insert(dir_name.clone()) {
                continue;
            }
            let count = g.range(10, 20).min(left);
            left -= count;
            albums.push(Album {
                index: albums.len() as u64,
                dir: artist_dir.join(dir_name),
                artist: artist.clone(),
                title,
                year,
                genre,
                files: count,
            });
        }
    }
    Ok((albums, dirs))
}

/// Totals of what was written.
#[derive(Debug, Default)]
pub struct Totals {
    /// Regular files created.
    pub files: AtomicU64,
    /// Directories created.
    pub dirs: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
}

/// Creates a new file (never overwriting) holding `data`.
pub fn write_new(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    if !data.is_empty() {
        f.write_all(data)?;
    }
    Ok(())
}

/// Runs `make(album, totals)` for every album on `threads` threads; stops at the first error
/// and returns it.
pub fn write_all<F>(albums: &[Album], threads: usize, totals: &Totals, make: F) -> io::Result<()>
where
    F: Fn(&Album, &Totals) -> io::Result<()> + Sync,
{
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<io::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(album) = albums.get(i) else { break };
                    if let Err(e) = make(album, totals) {
                        let e = io::Error::new(e.kind(), format!("{}: {e}", album.dir.display()));
                        failed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                        next.store(albums.len(), Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Audio formats of plain albums, with their weights in percent.
const PLAIN_FORMATS: &[(&str, u64)] = &[("flac", 45), ("mp3", 40), ("m4a", 15)];

/// Creates one album of the plain library: empty audio files (so a scanner indexes them
/// without opening them) plus cover art, `.nfo` and `.cue` files of a few bytes; 5% of the
/// larger albums are split into `CD1`/`CD2` subdirectories.
pub fn make_plain(album: &Album, seed: u64, totals: &Totals) -> io::Result<()> {
    let mut g = SplitMix64::derive(seed, album.index);
    let roll = g.below(100);
    let mut acc = 0;
    let mut ext = PLAIN_FORMATS[0].0;
    for &(e, w) in PLAIN_FORMATS {
        acc += w;
        if roll < acc {
            ext = e;
            break;
        }
    }
    // Extra files at album level: (name, content).
    let mut extras: Vec<(String, &[u8])> = vec![("cover.jpg".into(), b"\xFF\xD8\xFF\xD9")];
    if album.files >= 12 && g.chance(30) {
        extras.push(("folder.jpg".into(), b"\xFF\xD8\xFF\xD9"));
    }
    if album.files >= 12 && g.chance(40) {
        extras.push((
            format!("{} - {}.nfo", album.artist, album.title).replace('/', "-"),
            b"Ripped with EAC 1.6\n",
        ));
    }
    if album.files >= 12 && ext == "flac" && g.chance(30) {
        extras.push((
            format!("{} - {}.cue", album.artist, album.title).replace('/', "-"),
            b"REM GENRE Rock\n",
        ));
    }
    let extras_n = (extras.len() as u64).min(album.files);
    let tracks = album.files - extras_n;
    fs::create_dir(&album.dir)?;
    let mut dirs = 1;
    let mut bytes = 0u64;
    for (name, data) in extras.iter().take(extras_n as usize) {
        write_new(&album.dir.join(name), data)?;
        bytes += data.len() as u64;
    }
    let discs = if tracks >= 12 && g.chance(5) { 2 } else { 1 };
    let per_disc = tracks.div_ceil(discs);
    let mut made = 0;
    for disc in 1..=discs {
        let dir = if discs == 1 {
            album.dir.clone()
        } else {
            let d = album.dir.join(format!("CD{disc}"));
            fs::create_dir(&d)?;
            dirs += 1;
            d
        };
        let n = per_disc.min(tracks - made);
        for t in 1..=n {
            let title = names::title(&mut g);
            let name = names::track_file(&mut g, t, &album.artist, &title, ext);
            write_new(&dir.join(name), b"")?;
        }
        made += n;
    }
    totals.files.fetch_add(album.files, Ordering::Relaxed);
    totals.dirs.fetch_add(dirs, Ordering::Relaxed);
    totals.bytes.fetch_add(bytes, Ordering::Relaxed);
    Ok(())
}
