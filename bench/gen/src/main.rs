//! `mediadb-gen`: deterministic synthetic media libraries for mediadb's scan benchmark.
//!
//! ```text
//! mediadb-gen plain  DIR --files N [--seed S] [--threads T]
//! mediadb-gen tagged DIR --files N --templates DIR [--seed S] [--threads T]
//! mediadb-gen mutate DIR --change PCT --add PCT --remove PCT [--seed S]
//! mediadb-gen records OUT.jsonl --records N [--seed S]
//! ```
//!
//! * `plain` lays out a NAS-style music library (`Artist/YEAR - Album/NN - Artist - Title.ext`,
//!   10–20 files per album directory, track names of 40–120 bytes, .flac/.mp3/.m4a tracks plus
//!   .jpg/.nfo/.cue files). Audio files are empty (a scanner indexes them without opening them),
//!   the others hold a few bytes. A million files take seconds, not minutes.
//! * `tagged` lays out the same shape with real audio: copies of the mp3/flac/ogg/m4a templates
//!   (not those under `broken/`), each retagged with its own title, artist, album, track, year.
//! * `mutate` changes, adds and removes the given percentages of an existing tree's files.
//! * `records` writes no tree but N records of a realistically tagged library as JSON Lines, in
//!   the shape `mediadb export` writes (see `records.rs`), for `mediadb import`.
//!
//! The same arguments and seed give the same tree (names, shapes, tags), whatever the thread
//! count. Each command prints one JSON line on stdout saying what it did.

mod mutate;
mod names;
mod records;
mod rng;
mod tagged;
mod tree;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Instant;

const USAGE: &str = "\
usage: mediadb-gen plain  DIR --files N [--seed S] [--threads T]
       mediadb-gen tagged DIR --files N --templates DIR [--seed S] [--threads T]
       mediadb-gen mutate DIR --change PCT --add PCT --remove PCT [--seed S]
       mediadb-gen records OUT.jsonl --records N [--seed S]

plain   a NAS-style music library of N files (empty audio, small .jpg/.nfo/.cue)
tagged  N real audio files: copies of the templates (mp3/flac/ogg/m4a not under broken/),
        each retagged with its own title/artist/album/track/year
mutate  change (audio: newer mtime; others: one byte appended), add (copies beside
        existing files) and remove the given percentages of DIR's files
records N records of a realistically tagged library (~N/100 artists of skewed popularity,
        albums, compilations, featured artists, ~45 genres, ~3% video, ~3% cover.jpg) as
        JSON Lines in the shape `mediadb export` writes, to OUT.jsonl (no files are made)

DIR must be absent or empty for plain and tagged; records creates or truncates OUT.jsonl.
The default seed is fixed, so runs are reproducible; --threads defaults to the number of
cores. Prints one JSON line.";

/// Parsed command line.
#[derive(Debug, Default)]
struct Args {
    mode: String,
    dir: PathBuf,
    files: Option<u64>,
    records: Option<u64>,
    templates: Option<PathBuf>,
    seed: u64,
    threads: usize,
    change: f64,
    add: f64,
    remove: f64,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args_os().skip(1);
    let mut a = Args {
        seed: rng::DEFAULT_SEED,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        ..Args::default()
    };
    let mut positional = Vec::new();
    while let Some(arg) = it.next() {
        let s = arg.to_string_lossy().into_owned();
        let mut value = |name: &str| -> Result<String, String> {
            it.next()
                .map(|v| v.to_string_lossy().into_owned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
            v.replace('_', "")
                .parse()
                .map_err(|_| format!("{name}: not a number: {v}"))
        }
        match s.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--files" => a.files = Some(num("--files", &value("--files")?)?),
            "--records" => a.records = Some(num("--records", &value("--records")?)?),
            "--seed" => a.seed = num("--seed", &value("--seed")?)?,
            "--threads" | "-t" => a.threads = num("--threads", &value("--threads")?)?,
            "--templates" => a.templates = Some(PathBuf::from(value("--templates")?)),
            "--change" => a.change = num("--change", &value("--change")?)?,
            "--add" => a.add = num("--add", &value("--add")?)?,
            "--remove" => a.remove = num("--remove", &value("--remove")?)?,
            _ if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => positional.push(arg),
        }
    }
    let [mode, dir] = <[_; 2]>::try_from(positional)
        .map_err(|_| "expected a command and a directory (or, for records, a file)".to_string())?;
    a.mode = mode.to_string_lossy().into_owned();
    a.dir = PathBuf::from(dir);
    for pct in [a.change, a.add, a.remove] {
        if !(0.0..=100.0).contains(&pct) {
            return Err(format!("percentages must be within 0..=100, not {pct}"));
        }
    }
    Ok(a)
}

/// `s` as a JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn run(a: &Args) -> Result<String, String> {
    let start = Instant::now();
    let dir_json = json_str(&a.dir.to_string_lossy());
    let err = |e: std::io::Error| e.to_string();
    match a.mode.as_str() {
        "plain" | "tagged" => {
            let files = a.files.ok_or("--files N is required")?;
            let templates = if a.mode == "tagged" {
                let t = a.templates.as_ref().ok_or("--templates DIR is required")?;
                tagged::load_templates(t).map_err(err)?
            } else {
                Vec::new()
            };
            let (albums, artist_dirs) = tree::plan(&a.dir, files, a.seed).map_err(err)?;
            let totals = tree::Totals::default();
            totals.dirs.store(artist_dirs, Ordering::Relaxed);
            if a.mode == "plain" {
                tree::write_all(&albums, a.threads, &totals, |al, t| {
                    tree::make_plain(al, a.seed, t)
                })
            } else {
                tree::write_all(&albums, a.threads, &totals, |al, t| {
                    tagged::make_tagged(al, a.seed, &templates, t)
                })
            }
            .map_err(err)?;
            let secs = start.elapsed().as_secs_f64();
            let made = totals.files.load(Ordering::Relaxed);
            Ok(format!(
                "{{\"mode\":\"{}\",\"dir\":{dir_json},\"seed\":{},\"files\":{made},\"dirs\":{},\
                 \"bytes\":{},\"templates\":{},\"secs\":{secs:.3},\"files_per_s\":{:.0}}}",
                a.mode,
                a.seed,
                totals.dirs.load(Ordering::Relaxed),
                totals.bytes.load(Ordering::Relaxed),
                templates.len(),
                made as f64 / secs.max(1e-9),
            ))
        }
        "mutate" => {
            let m = mutate::mutate(&a.dir, a.change, a.add, a.remove, a.seed).map_err(err)?;
            let secs = start.elapsed().as_secs_f64();
            Ok(format!(
                "{{\"mode\":\"mutate\",\"dir\":{dir_json},\"seed\":{},\"files_before\":{},\
                 \"changed\":{},\"added\":{},\"removed\":{},\"files_after\":{},\"secs\":{secs:.3}}}",
                a.seed,
                m.before,
                m.changed,
                m.added,
                m.removed,
                m.before + m.added - m.removed,
            ))
        }
        "records" => {
            let n = a.records.ok_or("--records N is required")?;
            let s = records::write(&a.dir, n, a.seed).map_err(err)?;
            let secs = start.elapsed().as_secs_f64();
            Ok(format!(
                "{{\"mode\":\"records\",\"out\":{dir_json},\"seed\":{},\"records\":{},\
                 \"artists\":{},\"albums\":{},\"compilation_records\":{},\"audio\":{},\
                 \"video\":{},\"image\":{},\"bytes\":{},\"secs\":{secs:.3}}}",
                a.seed,
                s.records,
                s.artists,
                s.albums,
                s.compilation_records,
                s.audio,
                s.video,
                s.image,
                s.bytes,
            ))
        }
        other => Err(format!("unknown command {other}")),
    }
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mediadb-gen: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mediadb-gen: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_listing(root: &std::path::Path) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let md = e.metadata().unwrap();
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                if md.is_dir() {
                    stack.push(e.path());
                } else {
                    out.push((rel, md.len()));
                }
            }
        }
        out.sort();
        out
    }

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("mediadb-gen-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn gen_plain(dir: &std::path::Path, files: u64, threads: usize) {
        let a = Args {
            mode: "plain".into(),
            dir: dir.to_path_buf(),
            files: Some(files),
            seed: 42,
            threads,
            ..Args::default()
        };
        run(&a).unwrap();
    }

    #[test]
    fn plain_is_exact_and_deterministic_across_thread_counts() {
        let (a, b) = (scratch("a"), scratch("b"));
        gen_plain(&a, 1234, 1);
        gen_plain(&b, 1234, 3);
        let (la, lb) = (tree_listing(&a), tree_listing(&b));
        assert_eq!(la.len(), 1234);
        assert_eq!(la, lb);
        let m = mutate::mutate(&a, 1.0, 2.0, 3.0, 9).unwrap();
        assert_eq!((m.changed, m.added, m.removed), (12, 25, 37));
        assert_eq!(tree_listing(&a).len(), 1234 + 25 - 37);
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::remove_dir_all(&b).unwrap();
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
