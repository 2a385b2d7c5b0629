//! `mediadb-probe`: the floors under mediadb's scan on this machine, measured in the same run as
//! mediadb by `bench/run`.
//!
//! ```text
//! mediadb-probe walk ROOT... [--threads N]   getdents64 + one statx per file: the rescan floor
//! mediadb-probe tags ROOT... [--threads N]   that walk + lofty reading every audio file:
//!                                            the first-scan floor of a tagged library
//! ```
//!
//! Prints one JSON line (files, directories, errors, seconds, files per second) on stdout.
//! Exits 0, or 3 when some directory or file could not be read (the line is printed anyway),
//! or 2 on a usage error.

mod tags;
mod walk;

use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "\
usage: mediadb-probe walk ROOT... [--threads N]
       mediadb-probe tags ROOT... [--threads N]

walk  open + getdents64 per directory, one statx (type, size, mtime, inode) per regular file,
      relative to the directory's fd, over N threads: the floor under an unchanged rescan
tags  the same walk, then open + lofty probe and read (tags, properties, pictures) of every
      file with an audio extension: the floor under a first scan of a tagged library

--threads defaults to the number of cores. Prints one JSON line; exits 3 if anything could not
be read.";

/// Which floor.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Probe {
    Walk,
    Tags,
}

impl Probe {
    fn name(self) -> &'static str {
        match self {
            Probe::Walk => "walk",
            Probe::Tags => "tags",
        }
    }
}

struct Args {
    probe: Probe,
    roots: Vec<Vec<u8>>,
    threads: usize,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args_os().skip(1);
    let probe = match it.next().as_deref().and_then(|s| s.to_str()) {
        Some("walk") => Probe::Walk,
        Some("tags") => Probe::Tags,
        Some("-h" | "--help") => return Err(String::new()),
        Some(other) => return Err(format!("unknown probe {other}")),
        None => return Err("expected walk or tags".to_owned()),
    };
    let mut args = Args {
        probe,
        roots: Vec::new(),
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("-h" | "--help") => return Err(String::new()),
            Some("--threads" | "-t" | "-j") => {
                let v = it.next().ok_or("--threads needs a value")?;
                args.threads = v
                    .to_str()
                    .and_then(|s| s.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--threads: not a positive number: {v:?}"))?;
            }
            Some(s) if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => args.roots.push(arg.as_bytes().to_vec()),
        }
    }
    if args.roots.is_empty() {
        return Err("expected at least one ROOT".to_owned());
    }
    Ok(args)
}

/// Every file's work in the `walk` probe: nothing beyond the `statx`; counts the sizes.
struct SizeOnly;

impl walk::PerFile for SizeOnly {
    fn file(
        &self,
        _dir: std::os::fd::BorrowedFd<'_>,
        _name: &std::ffi::CStr,
        stat: &rustix::fs::Statx,
    ) -> Option<u64> {
        Some(stat.stx_size)
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
            eprintln!("mediadb-probe: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    let totals = match args.probe {
        Probe::Walk => walk::walk(&args.roots, args.threads, &SizeOnly),
        Probe::Tags => walk::walk(&args.roots, args.threads, &tags::ReadTags),
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"probe\":\"{}\",\"threads\":{},\"files\":{},\"dirs\":{},\"bytes\":{},\"errors\":{},\
         \"secs\":{secs:.4},\"files_per_s\":{:.0}}}",
        args.probe.name(),
        args.threads,
        totals.files,
        totals.dirs,
        totals.bytes,
        totals.errors,
        totals.files as f64 / secs.max(1e-9),
    );
    if totals.errors > 0 {
        eprintln!(
            "mediadb-probe: {} directories, entries or files could not be read",
            totals.errors
        );
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}
