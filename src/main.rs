//! The `mediadb` binary: parses the command line, calls the library, prints, and maps errors
//! to the exit codes documented in `mediadb --help` and the man page.

mod cli;
mod commands;
mod maintenance;
mod playlist_cmd;
mod scanlog;

use std::io::{self, Write};

/// mimalloc for the command-line tool (the library leaves the choice to its embedder): a scan
/// or migrate allocates and frees millions of small strings across threads, where glibc's
/// allocator spends a fifth of the time consolidating.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use mediadb::{Database, OpenError};

use cli::{Cli, Command, ProgressMode, ScanArgs, StatsArgs};
use mediadb::scan::{self, ScanConfig, ScanError, ScanReport};

/// Exit codes: the one place they are defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    /// Success.
    Ok = 0,
    /// Failed; the database is unchanged since its last commit (unless the message says the
    /// disk failed to confirm the last one, which may then be committed or not).
    Failed = 1,
    /// Usage or query syntax error.
    Usage = 2,
    /// Finished, but some files could not be read (`verify --fs`: some differ from their
    /// records).
    Partial = 3,
    /// Another writer holds the database lock.
    Busy = 4,
    /// The database is damaged or refused.
    Corrupt = 5,
}

/// An error on its way to stderr, with the exit code it maps to.
struct Failure {
    exit: Exit,
    message: String,
}

impl From<OpenError> for Failure {
    fn from(e: OpenError) -> Failure {
        let exit = match e {
            OpenError::Busy { .. } => Exit::Busy,
            OpenError::Corrupt { .. }
            | OpenError::NewerVersion { .. }
            | OpenError::NotADatabase { .. } => Exit::Corrupt,
            _ => Exit::Failed,
        };
        Failure {
            exit,
            message: e.to_string(),
        }
    }
}

impl From<mediadb::CommitError> for Failure {
    fn from(e: mediadb::CommitError) -> Failure {
        let exit = match e {
            mediadb::CommitError::Read(_) => Exit::Corrupt,
            _ => Exit::Failed,
        };
        Failure {
            exit,
            message: e.to_string(),
        }
    }
}

impl From<ScanError> for Failure {
    fn from(e: ScanError) -> Failure {
        match e {
            ScanError::Commit(c) => c.into(),
            ScanError::Read(r) => Failure {
                exit: Exit::Corrupt,
                message: r.to_string(),
            },
            ScanError::Pattern { .. } => Failure {
                exit: Exit::Usage,
                message: e.to_string(),
            },
            _ => Failure {
                exit: Exit::Failed,
                message: e.to_string(),
            },
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure {
            exit: Exit::Failed,
            message: e.to_string(),
        }
    }
}

fn default_db() -> Result<PathBuf, Failure> {
    // A relative value is ignored, as the XDG base directory specification says: the same
    // command must not find another database from another working directory.
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    let base = std::env::var_os("XDG_DATA_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|h| h.join(".local/share"))
        });
    match base {
        Some(b) => Ok(b.join("mediadb").join("library.mediadb")),
        None => Err(Failure {
            exit: Exit::Usage,
            message: "no database path: pass --db PATH or set MEDIADB_DB (HOME is not set, or not \
                      an absolute path)"
                .into(),
        }),
    }
}

/// Opens `path` for reading; when the file was cut short after its newest commit, says so on
/// stderr (the handle shows the newest whole commit).
fn open_reader(path: &std::path::Path) -> Result<Database, OpenError> {
    let db = Database::open_read_only(path)?;
    if let Some(what) = db.cut_short() {
        eprintln!(
            "mediadb: warning: {}: {what}; showing commit {}, the newest whole one; run \
             `mediadb recover OUT` to save what lies past it",
            path.display(),
            db.snapshot().seq()
        );
    } else if let Some(what) = db.damaged_slot() {
        eprintln!(
            "mediadb: warning: {}: {what}; run `mediadb verify`, and `mediadb recover OUT` \
             before the next write to save such a commit",
            path.display()
        );
    }
    Ok(db)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = run(cli);
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(f) => {
            if f.exit == Exit::Ok {
                return ExitCode::SUCCESS;
            }
            eprintln!("mediadb: {}", f.message);
            ExitCode::from(f.exit as u8)
        }
    }
}

/// Writes to stdout through a 64 KiB buffer (Rust's stdout alone flushes at every newline: one
/// `write` per output line); a closed pipe ends the program quietly with success.
fn out(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), Failure> {
    let stdout = io::stdout();
    let mut w = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    match f(&mut w).and_then(|()| w.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Failure {
            exit: Exit::Ok,
            message: String::new(),
        }),
        r => r.map_err(|e| Failure {
            exit: Exit::Failed,
            message: format!("cannot write to standard output: {e}"),
        }),
    }
}

fn run(cli: Cli) -> Result<Exit, Failure> {
    // `--db`, else `$MEDIADB_DB` unless it is empty (as shells leave `MEDIADB_DB=`), else
    // the default.
    let from_env = || {
        std::env::var_os("MEDIADB_DB")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    // A symbolic link is followed: the lock and sidecars belong beside the database itself.
    let db_path = || {
        cli.db
            .clone()
            .or_else(from_env)
            .map_or_else(default_db, Ok)
            .map(|p| mediadb::store::resolve_path(&p))
    };
    match &cli.command {
        Command::Stats(args) => stats(&db_path()?, args),
        Command::Query(args) => commands::query(&db_path()?, args),
        Command::Ls(args) => commands::ls(&db_path()?, args, cli.quiet),
        Command::Export(args) => commands::export(&db_path()?, args),
        Command::Verify(args) => maintenance::verify(&db_path()?, args, cli.quiet),
        Command::Recover(args) => maintenance::recover(&db_path()?, args, cli.quiet),
        Command::Compact(args) => maintenance::compact(&db_path()?, args, cli.quiet),
        Command::Import(args) => commands::import(&db_path()?, args, cli.quiet),
        Command::Scan(args) => scan_cmd(&db_path()?, args, cli.quiet, cli.verbose),
        Command::Migrate(args) => playlist_cmd::migrate(&db_path()?, args, cli.quiet),
        Command::Playlist(cmd) => playlist_cmd::playlist(&db_path()?, cmd, cli.quiet),
        Command::Completions { shell } => {
            out(|w| {
                clap_complete::generate(*shell, &mut Cli::command(), "mediadb", w);
                Ok(())
            })?;
            Ok(Exit::Ok)
        }
        Command::Man { dir: None } => {
            // As `generate_to` below makes the main page.
            let mut cmd = Cli::command().disable_help_subcommand(true);
            cmd.build();
            let man = clap_mangen::Man::new(cmd);
            out(|w| man.render(w))?;
            Ok(Exit::Ok)
        }
        Command::Man { dir: Some(dir) } => {
            // The main page names a page per subcommand (mediadb-scan(1)): these are they.
            clap_mangen::generate_to(Cli::command(), dir).map_err(|e| Failure {
                exit: Exit::Failed,
                message: format!("{}: {e}", dir.display()),
            })?;
            Ok(Exit::Ok)
        }
    }
}

fn output_escape(s: &str) -> String {
    mediadb::query::output::escape_controls(s).into_owned()
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn stats(path: &std::path::Path, args: &StatsArgs) -> Result<Exit, Failure> {
    use mediadb::query::{GroupBy, Query};
    let db = open_reader(path)?;
    let snap = db.snapshot();
    let s = snap.stats();
    let reclaimable = snap.reclaimable_bytes();
    let file_bytes = db.file_len().map_err(Failure::from)?;
    let by_kind = snap.count_by_kind();
    let corrupt = |e: mediadb::ReadError| Failure {
        exit: Exit::Corrupt,
        message: e.to_string(),
    };
    let all = Query::default();
    let groups = |by| snap.count_groups(&all, by).map_err(corrupt);
    let (artists, albums, genres) = (
        groups(GroupBy::Artist)?,
        groups(GroupBy::Album)?,
        groups(GroupBy::Genre)?,
    );
    let with_errors = snap
        .entries()
        .filter(|(_, e)| e.flags & mediadb::store::format::FLAG_ERROR != 0)
        .count();
    let media_bytes: u64 = snap.entries().map(|(_, e)| e.size).sum();
    snap.index_intact().map_err(corrupt)?;
    let scans = scanlog::read(path);
    if args.json {
        let kinds: serde_json::Map<String, serde_json::Value> = by_kind
            .iter()
            .map(|(k, n)| (k.as_str().to_owned(), (*n).into()))
            .collect();
        let v = serde_json::json!({
            "path": path.to_string_lossy(),
            "format_version": s.format_version,
            "seq": s.seq,
            "records": s.records,
            "by_kind": kinds,
            "media_bytes": media_bytes,
            "artists": artists,
            "albums": albums,
            "genres": genres,
            "records_with_errors": with_errors,
            "playlists": snap.playlist_count(),
            "scans": scans.iter().map(|r| {
                let mut v = r.json.clone();
                v["files"] = r.files.into();
                v
            }).collect::<Vec<_>>(),
            "next_id": s.next_id,
            "file_bytes": file_bytes,
            "committed_bytes": s.committed_bytes,
            "live_bytes": s.live_bytes,
            "dead_bytes": s.dead_bytes,
            "reclaimable_bytes": reclaimable,
            "created_unix_ns": s.created_unix_ns,
        });
        out(|w| writeln!(w, "{v}"))?;
    } else {
        let kinds = by_kind
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{} {n}", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        out(|w| {
            writeln!(w, "database    {}", path.display())?;
            writeln!(w, "format      {}", s.format_version)?;
            writeln!(w, "sequence    {}", s.seq)?;
            if kinds.is_empty() {
                writeln!(w, "records     {}", s.records)?;
            } else {
                writeln!(w, "records     {} ({kinds})", s.records)?;
            }
            writeln!(w, "media       {}", human_bytes(media_bytes))?;
            writeln!(w, "artists     {artists}")?;
            writeln!(w, "albums      {albums}")?;
            writeln!(w, "genres      {genres}")?;
            writeln!(w, "playlists   {}", snap.playlist_count())?;
            if scans.is_empty() {
                writeln!(w, "last scan   never (no scan log beside the database)")?;
            }
            for r in &scans {
                writeln!(
                    w,
                    "last scan   {}  {} ({} files)",
                    output_escape(&r.shown),
                    scanlog::utc(r.finished_unix_ns),
                    r.files
                )?;
            }
            writeln!(
                w,
                "errors      {with_errors} records could not be read fully (query error: to list them)"
            )?;
            writeln!(
                w,
                "file size   {} (live records {}, other {}; compact would reclaim about {})",
                human_bytes(file_bytes),
                human_bytes(s.live_bytes),
                human_bytes(s.dead_bytes),
                human_bytes(reclaimable)
            )
        })?;
    }
    Ok(Exit::Ok)
}

/// Text for a terminal: lossy UTF-8 with control characters escaped, so no raw ESC gets through.
fn shown(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for c in String::from_utf8_lossy(bytes).chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn path_json(path: &[u8]) -> serde_json::Value {
    use base64::Engine;
    match std::str::from_utf8(path) {
        Ok(s) => serde_json::json!({ "path": s }),
        Err(_) => serde_json::json!({
            "path": String::from_utf8_lossy(path),
            "path_b64": base64::engine::general_purpose::STANDARD.encode(path),
        }),
    }
}

fn rate(n: u64, secs: f64) -> String {
    let r = if secs > 0.0 { n as f64 / secs } else { 0.0 };
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}K", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn scan_cmd(
    db_path: &std::path::Path,
    args: &ScanArgs,
    quiet: bool,
    verbose: bool,
) -> Result<Exit, Failure> {
    use std::io::IsTerminal;
    if !args.dry_run {
        commands::database_dir(db_path)?;
    }
    let opts = mediadb::OpenOptions {
        read_only: false,
        create: !args.dry_run,
        wait: std::time::Duration::from_secs_f64(args.wait.clamp(0.0, 1e7)),
    };
    let mut db = if args.dry_run && !db_path.exists() {
        // A dry run against no database shows everything as new, and creates nothing.
        let mem = std::sync::Arc::new(mediadb::store::MemStorage::new());
        Database::with_storage(mem, true)?
    } else if args.dry_run {
        // Reads only: no lock, so it never waits for (or blocks) a running scan.
        open_reader(db_path)?
    } else {
        Database::open_with(db_path, &opts)?
    };
    let cfg = ScanConfig {
        roots: args.roots.clone(),
        threads: args
            .threads
            .map_or_else(|| ScanConfig::default().threads, |t| t as usize),
        batch_size: args.batch_size as usize,
        commit_every: scan::DEFAULT_COMMIT_EVERY,
        excludes: args.exclude.clone(),
        default_excludes: !args.no_default_excludes,
        hidden: args.hidden,
        follow_symlinks: args.follow_symlinks,
        force: args.force,
        dry_run: args.dry_run,
        allow_mass_removal: args.allow_mass_removal,
    };
    mediadb::scan::tags::quiet_panics();
    let progress = scan::Progress::default();
    let show_progress = !quiet
        && match args.progress {
            ProgressMode::Always => true,
            ProgressMode::Never => false,
            ProgressMode::Auto => io::stderr().is_terminal(),
        };
    let done = std::sync::atomic::AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        if show_progress {
            s.spawn(|| draw_progress(&progress, &done));
        }
        let r = scan::scan(&mut db, &cfg, &progress);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    });
    let (report, refusal) = match result {
        Ok(r) => (r, None),
        Err(e @ ScanError::MassRemoval { .. }) => {
            let msg = e.to_string();
            let ScanError::MassRemoval {
                report,
                root,
                would_remove,
                records,
            } = e
            else {
                unreachable!()
            };
            let why = serde_json::json!({
                "root": root.to_string_lossy(),
                "would_remove": would_remove,
                "records": records,
            });
            (*report, Some((msg, why)))
        }
        Err(e) => return Err(e.into()),
    };
    if !args.dry_run && refusal.is_none() {
        scanlog::record(db_path, &report);
    }
    // Written on close anyway, where a failure would go unsaid (a full disk): the database is
    // whole without it, but every open replays what it does not cover.
    if let Err(e) = db.checkpoint()
        && !quiet
    {
        eprintln!(
            "mediadb: {}: the index checkpoint could not be written ({e}); the database is \
             complete, but opening it stays slower until a writer can write one",
            db_path.display()
        );
    }
    print_scan(
        &report,
        args,
        quiet,
        verbose,
        refusal.as_ref().map(|(_, why)| why),
    )?;
    if let Some((msg, _)) = refusal {
        return Err(Failure {
            exit: Exit::Failed,
            message: msg,
        });
    }
    Ok(if report.errors > 0 {
        Exit::Partial
    } else {
        Exit::Ok
    })
}

fn draw_progress(p: &scan::Progress, done: &std::sync::atomic::AtomicBool) {
    use std::sync::atomic::Ordering::Relaxed;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(10));
    let started = std::time::Instant::now();
    while !done.load(Relaxed) {
        let files = p.files.load(Relaxed);
        bar.set_message(format!(
            "{files} files ({}/s), {} dirs, {} tags read, {} committed, {} errors",
            rate(files, started.elapsed().as_secs_f64()),
            p.dirs.load(Relaxed),
            p.extracted.load(Relaxed),
            p.committed.load(Relaxed),
            p.errors.load(Relaxed),
        ));
        bar.tick();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

/// Problems listed on stderr without -v.
const MAX_PROBLEM_LINES: usize = 100;

/// Prints a scan's summary; `refused` says which root's removals the mass-removal guard
/// withheld (`removal_refused` in `--json`, `null` when none were).
fn print_scan(
    report: &ScanReport,
    args: &ScanArgs,
    quiet: bool,
    verbose: bool,
    refused: Option<&serde_json::Value>,
) -> Result<(), Failure> {
    let secs = report.elapsed.as_secs_f64();
    let per_s = if secs > 0.0 {
        report.files as f64 / secs
    } else {
        0.0
    };
    if args.json {
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| {
                let mut v = path_json(&p.path);
                v["error"] = p.message.clone().into();
                v
            })
            .collect();
        let mut v = serde_json::json!({
            "roots": report.roots.iter().map(|r| r.to_string_lossy()).collect::<Vec<_>>(),
            "dry_run": args.dry_run,
            "files": report.files,
            "added": report.added,
            "updated": report.updated,
            "removed": report.removed,
            "removal_refused": refused,
            "unchanged": report.unchanged,
            "errors": report.errors,
            "problems": problems,
            "seq": report.seq,
            "elapsed_secs": secs,
            "files_per_sec": per_s,
        });
        if let Some(p) = &report.planned {
            let list = |v: &[Vec<u8>]| v.iter().map(|p| path_json(p)).collect::<Vec<_>>();
            v["planned"] = serde_json::json!({
                "add": list(&p.add), "update": list(&p.update), "remove": list(&p.remove),
            });
        }
        out(|w| writeln!(w, "{v}"))?;
    } else if let Some(p) = &report.planned {
        out(|w| {
            for (sign, list) in [('+', &p.add), ('~', &p.update), ('-', &p.remove)] {
                for path in list.iter() {
                    writeln!(w, "{sign} {}", shown(path))?;
                }
            }
            Ok(())
        })?;
    }
    if !quiet {
        let shown_max = if verbose {
            usize::MAX
        } else {
            MAX_PROBLEM_LINES
        };
        for p in report.problems.iter().take(shown_max) {
            eprintln!(
                "mediadb: {}: {}",
                shown(&p.path),
                shown(p.message.as_bytes())
            );
        }
        if report.problems.len() > shown_max {
            eprintln!(
                "mediadb: ... and {} more problems (all of them: -v, or --json)",
                report.problems.len() - shown_max
            );
        }
        let (verb, would) = if args.dry_run {
            ("(dry run) scanned", "would be ")
        } else {
            ("scanned", "")
        };
        eprintln!(
            "mediadb: {verb} {} files: {} {would}added, {} {would}updated, {} {would}removed, {} unchanged, {} errors; {} files/s, {:.2} s",
            report.files,
            report.added,
            report.updated,
            report.removed,
            report.unchanged,
            report.errors,
            rate(report.files, secs),
            secs
        );
    }
    Ok(())
}
