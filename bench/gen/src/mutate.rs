//! Changes, adds and removes a percentage of a tree's files, for "rescan after 1% changed".
//!
//! Files are listed and sorted by path, then picked with the seeded RNG, so the same tree and
//! seed always pick the same files. A changed audio file gets a newer mtime (its bytes stay
//! valid, so a tag reader sees a real change of metadata only); any other changed file gets one
//! byte appended (size and mtime change). An added file is a copy of a random existing file,
//! beside it, under a new name. Removed files are picked among the files not copied.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::rng::SplitMix64;

/// Extensions treated as audio (changed by mtime only).
const AUDIO_EXTS: &[&str] = &["flac", "mp3", "m4a", "ogg", "opus", "wav"];

/// What a mutation did.
#[derive(Debug, Default)]
pub struct Mutation {
    /// Files in the tree before.
    pub before: u64,
    /// Files changed.
    pub changed: u64,
    /// Files added.
    pub added: u64,
    /// Files removed.
    pub removed: u64,
}

/// Lists the regular files under `root`, sorted.
fn list_files(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort_unstable();
    Ok(files)
}

fn count(n: usize, pct: f64) -> usize {
    ((n as f64 * pct / 100.0).round() as usize).min(n)
}

fn is_audio(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Changes one file: audio gets a newer mtime, anything else one more byte.
fn change(path: &Path) -> io::Result<()> {
    if is_audio(path) {
        let f = fs::OpenOptions::new().write(true).open(path)?;
        let old = f.metadata()?.modified()?;
        let now = SystemTime::now();
        let new = if now > old + Duration::from_millis(1) {
            now
        } else {
            old + Duration::from_secs(1)
        };
        f.set_modified(new)
    } else {
        fs::OpenOptions::new()
            .append(true)
            .open(path)?
            .write_all(b"\n")
    }
}

/// A name beside `src` that does not exist yet: `stem (copy SEED-I).ext`.
fn new_name(src: &Path, seed: u64, i: usize) -> PathBuf {
    let stem = src
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem: String = stem.chars().take(100).collect();
    let ext = src.extension().map(|e| e.to_string_lossy().into_owned());
    let mut k = 0;
    loop {
        let name = match &ext {
            Some(e) => format!("{stem} (copy {seed:x}-{i}-{k}).{e}"),
            None => format!("{stem} (copy {seed:x}-{i}-{k})"),
        };
        let p = src.with_file_name(name);
        if fs::symlink_metadata(&p).is_err() {
            return p;
        }
        k += 1;
    }
}

/// Applies the mutation to the tree under `root`.
pub fn mutate(
    root: &Path,
    change_pct: f64,
    add_pct: f64,
    remove_pct: f64,
    seed: u64,
) -> io::Result<Mutation> {
    let files = list_files(root)?;
    let n = files.len();
    let (nc, na, nr) = (
        count(n, change_pct),
        count(n, add_pct),
        count(n, remove_pct),
    );
    // A partial Fisher-Yates shuffle picks distinct files: the changed ones first, then the
    // sources of the copies, then the removed ones.
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut g = SplitMix64::new(seed);
    let picks = (nc + na + nr).min(n);
    for i in 0..picks {
        let j = i + g.below((n - i) as u64) as usize;
        order.swap(i, j);
    }
    let mut m = Mutation {
        before: n as u64,
        ..Mutation::default()
    };
    let mut it = order[..picks].iter().map(|&i| &files[i as usize]);
    for path in it.by_ref().take(nc) {
        change(path)?;
        m.changed += 1;
    }
    for (i, src) in it.by_ref().take(na).enumerate() {
        fs::copy(src, new_name(src, seed, i))?;
        m.added += 1;
    }
    for path in it.take(nr) {
        fs::remove_file(path)?;
        m.removed += 1;
    }
    Ok(m)
}
