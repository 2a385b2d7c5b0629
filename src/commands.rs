//! The reading and bulk-loading commands: query, ls, export, import.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::mpsc;

use mediadb::query::eval::{self, GroupBy, SortKey};
use mediadb::query::import::{Line, LineError, parse_line};
use mediadb::query::output::{self, Column, Format, Sink, TABLE_FIELDS};
use mediadb::query::{Field, parse_args};
use mediadb::{Database, Kind, Snapshot};

use crate::cli::{ExportArgs, FormatArg, ImportArgs, LsArgs, QueryArgs};
use crate::{Exit, Failure, out};

/// Refuses an output file that is the database at `db_path` or one of its sidecars: writing it
/// would destroy the database (exit 2, nothing written).
pub(crate) fn refuse_database_output(db_path: &Path, output: &Path) -> Result<(), Failure> {
    if mediadb::store::is_database_file(db_path, output) {
        return Err(usage(format!(
            "{}: that is the database {} (or one of its files); write the output elsewhere",
            output.display(),
            db_path.display()
        )));
    }
    Ok(())
}

/// Writes the file `path` (not the database's: see [`refuse_database_output`]) the way a
/// backup must be written: into `PATH.tmp` beside it, synced, then renamed over it, so that a
/// failure part way (a full disk, a kill, a damaged record) leaves the file that was there as
/// it was, with its mode and (when allowed) owner passed on to the new one. Two writers of one
/// `path` do not share the temporary file: it is locked, and the second is refused. A symbolic
/// link is written through (its target is replaced, the link stays); a path that is not a
/// regular file (a FIFO, `/dev/stdout`) is written in place.
pub(crate) fn write_replacing<T>(
    db_path: &Path,
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<T>,
) -> Result<T, Failure> {
    refuse_database_output(db_path, path)?;
    let failed = |message: String| Failure {
        exit: Exit::Failed,
        message,
    };
    // The kernel follows `/dev/stdout`'s links to what they name (a pipe), which a path cannot.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        let fail = |e: io::Error| failed(format!("{}: {e}", path.display()));
        let mut w = io::BufWriter::new(std::fs::File::create(path).map_err(fail)?);
        return write(&mut w)
            .and_then(|t| w.flush().map(|()| t))
            .map_err(fail);
    }
    let target = mediadb::store::resolve_path(path);
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    refuse_database_output(db_path, &tmp)?;
    let file = lock_temporary(&tmp).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock => failed(format!(
            "{}: another export is writing it (through {}); retry when it is done",
            path.display(),
            tmp.display()
        )),
        _ => failed(format!(
            "{}: {e}; the temporary file of the export to {} cannot be written there (remove \
             what is in the way, or check the directory)",
            tmp.display(),
            path.display()
        )),
    })?;
    let result = (|| {
        let mut w = io::BufWriter::new(&file);
        let t = write(&mut w)?;
        w.flush()?;
        drop(w);
        if let Ok(old) = std::fs::metadata(&target) {
            use std::os::unix::fs::MetadataExt;
            file.set_permissions(old.permissions())?;
            // Only root may give a file away; anyone may keep their own.
            let _ = std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid()));
        }
        file.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        Ok(t)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e: io::Error| {
        failed(format!(
            "{}: {e}; nothing was written to it",
            path.display()
        ))
    })
}

/// Opens the temporary file `tmp` (never through a symbolic link), takes an exclusive lock on
/// it and empties it. `WouldBlock` when another writer holds it. The lock is retried on the
/// file the path names now, if the one opened was renamed away meanwhile.
fn lock_temporary(tmp: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    for _ in 0..8 {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            // Not through a link; and a FIFO in the way fails instead of waiting for a reader.
            .custom_flags(
                (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
            )
            .open(tmp)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let (held, named) = (file.metadata()?, std::fs::symlink_metadata(tmp));
        if named.is_ok_and(|n| (n.dev(), n.ino()) == (held.dev(), held.ino())) {
            file.set_len(0)?;
            return Ok(file);
        }
    }
    Err(io::Error::other("the file keeps being replaced"))
}

pub(crate) fn usage(message: String) -> Failure {
    Failure {
        exit: Exit::Usage,
        message,
    }
}

pub(crate) fn corrupt(e: mediadb::ReadError) -> Failure {
    Failure {
        exit: Exit::Corrupt,
        message: e.to_string(),
    }
}

pub(crate) fn width() -> usize {
    terminal_size::terminal_size().map_or(120, |(w, _)| w.0 as usize)
}

/// Where record output goes: stdout, a terminal or not.
pub(crate) fn sink() -> Sink {
    Sink {
        terminal: io::stdout().is_terminal(),
        width: width(),
    }
}

pub(crate) fn format_of(arg: Option<FormatArg>) -> Format {
    match arg {
        Some(FormatArg::Table) => Format::Table,
        Some(FormatArg::Json) => Format::Json,
        Some(FormatArg::Jsonl) => Format::Jsonl,
        Some(FormatArg::Csv) => Format::Csv,
        Some(FormatArg::Paths) => Format::Paths,
        None if io::stdout().is_terminal() => Format::Table,
        None => Format::Paths,
    }
}

/// The columns of a format when `--fields` is not given.
fn default_columns(format: Format) -> Vec<Column> {
    if format == Format::Table {
        TABLE_FIELDS.map(Column::Field).to_vec()
    } else {
        Column::all()
    }
}

pub(crate) fn parse_fields(names: &[String], format: Format) -> Result<Vec<Column>, Failure> {
    if names.is_empty() {
        return Ok(default_columns(format));
    }
    let columns = names
        .iter()
        .map(|n| {
            Column::from_name(n.trim()).ok_or_else(|| {
                usage(format!(
                    "unknown field `{n}` in --fields; fields are: {}",
                    Column::all_names()
                ))
            })
        })
        .collect::<Result<Vec<Column>, Failure>>()?;
    if matches!(format, Format::Paths | Format::Print0) {
        return Err(usage(
            "--fields does not apply to paths output (-0, --format paths, or the default when \
             stdout is not a terminal); add --format table, json, jsonl or csv"
                .into(),
        ));
    }
    Ok(columns)
}

fn parse_sort(keys: &[String]) -> Result<Vec<SortKey>, Failure> {
    keys.iter()
        .map(|k| {
            let (name, descending) = match k.strip_suffix('-') {
                Some(n) => (n, true),
                None => (k.strip_suffix('+').unwrap_or(k), false),
            };
            let field = Field::from_name(name).ok_or_else(|| {
                usage(format!(
                    "unknown field `{name}` in --sort; fields are: {}",
                    Field::all_names()
                ))
            })?;
            Ok(SortKey { field, descending })
        })
        .collect()
}

/// How `--group-by` rows are sorted.
#[derive(Clone, Copy)]
enum GroupSort {
    /// By the group's name (the field grouped by), in natural order.
    Name { descending: bool },
    /// By the number of records.
    Count { descending: bool },
}

/// The one `--sort` key that `--group-by` rows take: `count`, or the name of the field grouped
/// by (or `name`), each ascending or descending.
fn parse_group_sort(keys: &[String], by: GroupBy) -> Result<GroupSort, Failure> {
    let Some(key) = keys.first() else {
        return Ok(GroupSort::Name { descending: false });
    };
    if keys.len() > 1 {
        return Err(usage(
            "--group-by takes one --sort key: count, or the field grouped by".into(),
        ));
    }
    let (name, descending) = match key.strip_suffix('-') {
        Some(n) => (n, true),
        None => (key.strip_suffix('+').unwrap_or(key), false),
    };
    if name == "count" {
        Ok(GroupSort::Count { descending })
    } else if name == "name" || GroupBy::from_name(name) == Some(by) {
        Ok(GroupSort::Name { descending })
    } else {
        Err(usage(format!(
            "cannot sort `--group-by {}` rows by `{name}`; sort them by count or {}",
            by.name(),
            by.name()
        )))
    }
}

fn kind_of(s: &str) -> Result<Kind, Failure> {
    Kind::ALL
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| {
            usage(format!(
                "unknown kind `{s}`; kinds are audio, video, image, playlist, other"
            ))
        })
}

/// Makes sure the directory of a database about to be created exists. Only the default
/// location (`$XDG_DATA_HOME/mediadb`) is made when missing: a `--db` or `$MEDIADB_DB` whose
/// directory is missing (a share that is not mounted, a link to one) is an error, not a new,
/// empty library on the local disk.
pub(crate) fn database_dir(db_path: &Path) -> Result<(), Failure> {
    let Some(parent) = db_path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    if parent.is_dir() {
        return Ok(());
    }
    if let Ok(target) = std::fs::read_link(parent) {
        // A link to a share that is not mounted: making the directory would not help.
        let what = if parent.exists() {
            "is not a directory"
        } else {
            "does not exist (is the volume mounted?)"
        };
        return Err(Failure {
            exit: Exit::Failed,
            message: format!(
                "{}: a symbolic link to {}, which {what}; mount or create it, or pass --db PATH",
                parent.display(),
                target.display()
            ),
        });
    }
    let default = crate::default_db().ok();
    if default.as_deref().and_then(Path::parent) == Some(parent) {
        return std::fs::create_dir_all(parent).map_err(|e| Failure {
            exit: Exit::Failed,
            message: format!(
                "{}: cannot create the database directory: {e}",
                parent.display()
            ),
        });
    }
    Err(Failure {
        exit: Exit::Failed,
        message: format!(
            "{}: the database's directory does not exist (is the volume mounted?); create it \
             first",
            parent.display()
        ),
    })
}

/// Opens the database for writing, creating it when missing (see [`database_dir`]), waiting
/// up to `wait` seconds for another writer.
pub(crate) fn open_writer(db_path: &Path, wait: f64) -> Result<Database, Failure> {
    database_dir(db_path)?;
    Ok(open_writer_at(db_path, wait)?)
}

/// [`open_writer`] once the directory is there, with the engine's own error.
pub(crate) fn open_writer_at(db_path: &Path, wait: f64) -> Result<Database, mediadb::OpenError> {
    let opts = mediadb::OpenOptions {
        read_only: false,
        create: true,
        wait: std::time::Duration::from_secs_f64(wait.clamp(0.0, 1e7)),
    };
    Database::open_with(db_path, &opts)
}

/// A `path:` term naming a directory relative to the working directory (`path:.`,
/// `path:./Album`, `path:../x`), made absolute as `ls` makes its argument: the directory's
/// canonical path when it exists (the scan stores canonical paths), else the path joined to the
/// working directory. Any other term is as given (`path:abc` is a substring of the path).
pub(crate) fn absolute_path_term(term: &std::ffi::OsStr) -> std::ffi::OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let raw = term.as_bytes();
    let (negate, body) = match raw.strip_prefix(b"^") {
        Some(rest) => (&b"^"[..], rest),
        None => (&b""[..], raw),
    };
    let (body, comma) = match body.strip_suffix(b",") {
        Some(b) => (b, &b","[..]),
        None => (body, &b""[..]),
    };
    let Some(dir) = body.strip_prefix(b"path:") else {
        return term.to_owned();
    };
    let relative = dir == b"." || dir == b".." || dir.starts_with(b"./") || dir.starts_with(b"../");
    let abs = if relative {
        let dir = Path::new(std::ffi::OsStr::from_bytes(dir));
        std::fs::canonicalize(dir)
            .map(|c| c.into_os_string().into_vec())
            .unwrap_or_else(|_| crate::playlist_cmd::absolute(dir))
    } else if dir.starts_with(b"/") {
        // Written through a symbolic link: the scan stores paths from canonical roots.
        match crate::playlist_cmd::canonical(dir) {
            Some(real) => real,
            None => return term.to_owned(),
        }
    } else {
        return term.to_owned();
    };
    // A directory whose name ends in a comma keeps a `/` after it: a `,` at the end of a term
    // would end its OR group.
    let keep_dir = if comma.is_empty() && abs.ends_with(b",") {
        &b"/"[..]
    } else {
        &b""[..]
    };
    std::ffi::OsString::from_vec([negate, b"path:", &abs, keep_dir, comma].concat())
}

pub(crate) fn query(db_path: &Path, args: &QueryArgs) -> Result<Exit, Failure> {
    let terms: Vec<std::ffi::OsString> = args
        .terms
        .iter()
        .map(|t| absolute_path_term(t.as_ref()))
        .collect();
    let q = parse_args(&terms).map_err(|e| usage(e.to_string()))?;
    let format = if args.print0 {
        Format::Print0
    } else {
        format_of(args.format)
    };
    // --count lists nothing: its fields are checked by name only.
    let fields = parse_fields(
        &args.fields,
        if args.count { Format::Jsonl } else { format },
    )?;
    let group = match &args.group_by {
        Some(g) => Some(GroupBy::from_name(g).ok_or_else(|| {
            usage(format!(
                "cannot group by `{g}`; use artist, album_artist, album, genre, year, dir or kind"
            ))
        })?),
        None => None,
    };
    let group_sort = group
        .map(|by| parse_group_sort(&args.sort, by))
        .transpose()?;
    if let Some(by) = group {
        // Group rows are a name and a count: no paths to list, no record fields to pick.
        if matches!(args.format, Some(FormatArg::Paths)) {
            return Err(usage(format!(
                "--group-by {} rows have no paths; use --format table, json, jsonl or csv",
                by.name()
            )));
        }
        if !args.fields.is_empty() {
            return Err(usage(format!(
                "--fields does not apply to --group-by {} rows (name and count)",
                by.name()
            )));
        }
    }
    let sort = if group.is_some() {
        Vec::new()
    } else {
        parse_sort(&args.sort)?
    };
    let db = crate::open_reader(db_path)?;
    let snap = db.snapshot();
    if args.count {
        let n = eval::count(&snap, &q).map_err(corrupt)?;
        // As if the records were listed: --limit caps the count too.
        let n = args.limit.map_or(n, |l| n.min(l as u64));
        out(|w| writeln!(w, "{n}"))?;
        return Ok(Exit::Ok);
    }
    if let Some(by) = group {
        let mut rows = snap.group_by(&q, by).map_err(corrupt)?;
        // Rows come by name; a sort by count keeps that order among equal counts.
        match group_sort {
            Some(GroupSort::Count { descending }) => rows.sort_by(|a, b| {
                if descending {
                    b.count.cmp(&a.count)
                } else {
                    a.count.cmp(&b.count)
                }
            }),
            Some(GroupSort::Name { descending: true }) => rows.reverse(),
            _ => {}
        }
        if let Some(n) = args.limit {
            rows.truncate(n);
        }
        out(|w| output::write_groups(w, &rows, by, format, sink()))?;
        return Ok(Exit::Ok);
    }
    if sort.is_empty()
        && matches!(format, Format::Paths | Format::Print0)
        && let Some(paths) = eval::select_paths(&snap, &q, args.limit)
    {
        // Only paths are printed: the column cache has them without reading the records.
        let paths = paths.map_err(corrupt)?;
        out(|w| output::write_paths(w, paths.iter(), format, sink()))?;
        return Ok(Exit::Ok);
    }
    let records = eval::select(&snap, &q, &sort, args.limit).map_err(corrupt)?;
    out(|w| output::write_records(w, &records, &fields, format, sink()))?;
    Ok(Exit::Ok)
}

pub(crate) fn ls(db_path: &Path, args: &LsArgs, quiet: bool) -> Result<Exit, Failure> {
    let kind = args.kind.as_deref().map(kind_of).transpose()?;
    let format = if args.print0 {
        Format::Print0
    } else {
        format_of(args.format)
    };
    let fields = parse_fields(&args.fields, format)?;
    let db = crate::open_reader(db_path)?;
    let snap = db.snapshot();
    let (dir, listing) = match &args.dir {
        Some(d) => list_dir_arg(&snap, d, kind)?,
        None => (b"/".to_vec(), snap.list_dir(b"/", kind).map_err(corrupt)?),
    };
    if listing.is_empty() {
        nothing_under(&snap, &dir, args.dir.as_deref(), kind, quiet)?;
    }
    if args.json {
        let dirs: Vec<_> = listing
            .dirs
            .iter()
            .map(|(p, n)| {
                let mut v = serde_json::json!({ "path": String::from_utf8_lossy(p), "count": n });
                if std::str::from_utf8(p).is_err() {
                    use base64::Engine as _;
                    v["path_b64"] = base64::engine::general_purpose::STANDARD.encode(p).into();
                }
                v
            })
            .collect();
        let files: Vec<_> = listing
            .files
            .iter()
            .map(|r| output::record_json(r, &Field::ALL))
            .collect();
        out(|w| writeln!(w, "{}", serde_json::json!({ "dirs": dirs, "files": files })))?;
        return Ok(Exit::Ok);
    }
    let sink = sink();
    out(|w| {
        for (p, n) in &listing.dirs {
            match format {
                Format::Table => writeln!(w, "{}/  ({n})", output::escape_path(p))?,
                Format::Paths => output::write_path_line(w, p, "/", sink)?,
                Format::Print0 => {
                    w.write_all(p)?;
                    w.write_all(b"/\0")?;
                }
                // A line that is not a record would break a JSON or CSV reader: these carry
                // the files only (`--json` gives directories and files in one object).
                Format::Json | Format::Jsonl | Format::Csv => {}
            }
        }
        output::write_records(w, &listing.files, &fields, format, sink)
    })?;
    Ok(Exit::Ok)
}

/// The listing of directory argument `dir`, and the directory listed: `dir` made absolute
/// against the working directory (lexically, as `playlist add` takes paths) or, when no record
/// is there, its canonical form, which is how `scan` stores its roots (symlinks resolved).
fn list_dir_arg<'s>(
    snap: &'s Snapshot,
    dir: &Path,
    kind: Option<Kind>,
) -> Result<(Vec<u8>, eval::Listing<'s>), Failure> {
    use std::os::unix::ffi::OsStringExt;
    let given = crate::playlist_cmd::absolute(dir);
    let listing = snap.list_dir(&given, kind).map_err(corrupt)?;
    if listing.is_empty()
        && let Ok(canonical) = std::fs::canonicalize(dir)
    {
        let canonical = canonical.into_os_string().into_vec();
        if canonical != given {
            let there = snap.list_dir(&canonical, kind).map_err(corrupt)?;
            if !there.is_empty() {
                return Ok((canonical, there));
            }
        }
    }
    Ok((given, listing))
}

/// Says that no record is under `dir` (argument `arg`, none for `/`): a note on stderr when
/// the directory is on disk (exit 0, as for a query that matches nothing), an error (exit 1)
/// when it is not. Says nothing when records of other kinds than `kind` are there.
fn nothing_under(
    snap: &Snapshot,
    dir: &[u8],
    arg: Option<&Path>,
    kind: Option<Kind>,
    quiet: bool,
) -> Result<(), Failure> {
    if kind.is_some() && !snap.list_dir(dir, None).map_err(corrupt)?.is_empty() {
        return Ok(());
    }
    let shown = output::escape_path(dir);
    let failed = |message: String| {
        Err(Failure {
            exit: Exit::Failed,
            message,
        })
    };
    match std::fs::metadata(arg.unwrap_or(Path::new("/"))) {
        Ok(m) if m.is_dir() => {
            if !quiet {
                if arg.is_none() {
                    eprintln!("mediadb: the database has no records; `mediadb scan DIR` adds some");
                } else {
                    eprintln!(
                        "mediadb: no records under {shown} in the database; `mediadb scan {shown}` indexes it"
                    );
                }
            }
            Ok(())
        }
        Ok(_) => failed(format!(
            "no records under {shown}: it is a file, not a directory (`mediadb query path:{shown}` shows its record)"
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => failed(format!(
            "no records under {shown} in the database, and no such directory on disk"
        )),
        Err(e) => failed(format!(
            "no records under {shown} in the database, and it cannot be checked on disk: {e}"
        )),
    }
}

pub(crate) fn export(db_path: &Path, args: &ExportArgs) -> Result<Exit, Failure> {
    let db = crate::open_reader(db_path)?;
    let snap = db.snapshot();
    let write_all = |w: &mut dyn Write| -> io::Result<Result<(), mediadb::ReadError>> {
        for r in snap.iter() {
            let r = match r {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            // Beyond the query shape: what a rescan after a restore needs to recognise
            // unchanged files without re-reading their tags.
            let mut v = output::record_json(&r, &Field::ALL);
            v["inode"] = r.inode().into();
            v["extractor_version"] = r.extractor_version().into();
            serde_json::to_writer(&mut *w, &v)?;
            w.write_all(b"\n")?;
        }
        // Playlists after the records they point at.
        let lists = match snap.playlists() {
            Ok(l) => l,
            Err(e) => return Ok(Err(e)),
        };
        for p in &lists {
            serde_json::to_writer(
                &mut *w,
                &serde_json::json!({ "playlist": mediadb::playlist::to_json(p) }),
            )?;
            w.write_all(b"\n")?;
        }
        Ok(Ok(()))
    };
    // `-o -` is stdout, as for most tools.
    let result = match args.output.as_deref().filter(|o| *o != Path::new("-")) {
        Some(path) => {
            // A damaged record stops the export before the old backup is replaced.
            let mut damaged = None;
            let written = write_replacing(db_path, path, |w| match write_all(w)? {
                Ok(()) => Ok(()),
                Err(e) => {
                    damaged = Some(e);
                    Err(io::Error::other("a damaged record"))
                }
            });
            match (written, damaged) {
                (_, Some(e)) => Err(e),
                (Ok(()), None) => Ok(()),
                (Err(f), None) => return Err(f),
            }
        }
        None => {
            let mut result = Ok(());
            out(|w| {
                result = write_all(w)?;
                Ok(())
            })?;
            result
        }
    };
    result.map_err(corrupt)?;
    Ok(Exit::Ok)
}

pub(crate) fn import(db_path: &Path, args: &ImportArgs, quiet: bool) -> Result<Exit, Failure> {
    let created = !db_path.exists();
    let result = import_into(db_path, args, quiet);
    if result.is_err()
        && created
        && Database::open_read_only(db_path).is_ok_and(|db| db.snapshot().seq() == 0)
    {
        // An import that fails before it commits anything leaves no empty database behind
        // (without --db, that would be the default library).
        crate::playlist_cmd::remove_new_database(db_path);
    }
    result
}

fn import_into(db_path: &Path, args: &ImportArgs, quiet: bool) -> Result<Exit, Failure> {
    let started = std::time::Instant::now();
    let reader: Box<dyn BufRead + Send> = if args.file.as_os_str() == "-" {
        Box::new(io::BufReader::new(io::stdin()))
    } else {
        let f = std::fs::File::open(&args.file).map_err(|e| Failure {
            exit: Exit::Failed,
            message: format!("{}: {e}", args.file.display()),
        })?;
        Box::new(io::BufReader::with_capacity(1 << 20, f))
    };
    let mut db = open_writer(db_path, args.wait)?;
    let name = args.file.display().to_string();
    // Another thread reads and parses the input and hands over each batch once it is full,
    // so that the next batch is parsed while this thread commits the last one. The hand-over
    // waits for this thread to take it, and each committed batch goes back through `spare` to
    // be emptied and refilled there (off this thread): about two batches of records are alive
    // at a time.
    let (tx, rx) = mpsc::sync_channel(0);
    let (spare_tx, spare_rx) = mpsc::channel();
    let parser = Parser {
        batch_size: args.batch_size as usize,
        skip_bad: args.skip_bad,
        tx,
        spare: spare_rx,
    };
    let parsing = std::thread::spawn(move || parser.run(reader));
    let (mut imported, mut skipped, mut unchanged) = (0u64, 0u64, 0u64);
    let mut playlists: Vec<(usize, mediadb::playlist::Playlist)> = Vec::new();
    // On an early return the parsing thread is left to end on its own: its next send fails.
    for piece in rx {
        match piece {
            Piece::Batch(mut records) => {
                // A record stored exactly so already (an export imported again) is not written
                // again: the file would grow by a copy of the library each time.
                let snap = db.snapshot();
                let before = records.len();
                records.retain(|r| !stored_as(&snap, r));
                drop(snap);
                unchanged += (before - records.len()) as u64;
                if !records.is_empty() {
                    // What a failed batch leaves is worth saying: a rerun picks up from there.
                    let so_far = |e: mediadb::CommitError| {
                        let mut f = Failure::from(e);
                        f.message = format!(
                            "{}; {imported} records of earlier batches are committed (a rerun \
                             skips the records already stored)",
                            f.message
                        );
                        f
                    };
                    let mut batch = db.batch().map_err(so_far)?;
                    batch.restore_many(&records).map_err(so_far)?;
                    imported += batch.commit().map_err(so_far)?.upserted;
                }
                let _ = spare_tx.send(records);
            }
            Piece::Notes(notes) => {
                playlists.extend(notes.playlists);
                for (n, e) in notes.skipped {
                    skipped += 1;
                    if !quiet {
                        eprintln!("mediadb: {name}: line {n}: {e}; skipped");
                    }
                }
            }
            Piece::Stop(n, Stop::Bad(e)) => {
                return Err(Failure {
                    exit: Exit::Failed,
                    message: format!(
                        "{name}: line {n}: {e}; stopped, {imported} records committed before it (use --skip-bad to skip bad lines)"
                    ),
                });
            }
            Piece::Stop(n, Stop::Unreadable(e)) => {
                return Err(Failure {
                    exit: Exit::Failed,
                    message: format!(
                        "{name}: line {n}: {e}; nothing of the current batch was committed"
                    ),
                });
            }
        }
    }
    // The channel is closed: the parsing thread has returned.
    if let Err(panic) = parsing.join() {
        std::panic::resume_unwind(panic);
    }
    let restored = restore_playlists(&mut db, playlists).map_err(|(n, mut f)| {
        f.message = format!(
            "{name}: line {n}: {}; no playlist was imported, the {imported} records are \
             committed",
            f.message
        );
        f
    })?;
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        out(|w| {
            writeln!(
                w,
                "{}",
                serde_json::json!({ "imported": imported, "unchanged": unchanged, "playlists": restored, "skipped": skipped, "seq": db.snapshot().seq(), "elapsed_secs": secs })
            )
        })?;
    }
    if !quiet {
        let same = if unchanged > 0 {
            format!(" ({unchanged} more were stored as they are already)")
        } else {
            String::new()
        };
        eprintln!(
            "mediadb: imported {imported} records{same} and {restored} playlists, skipped {skipped}, {secs:.2} s"
        );
    }
    Ok(if skipped > 0 { Exit::Partial } else { Exit::Ok })
}

/// Whether `rec` is stored already exactly as it is (its id too, when it has one).
fn stored_as(snap: &mediadb::Snapshot, rec: &mediadb::Record) -> bool {
    match snap.get(&rec.path) {
        Ok(Some(view)) => {
            let mut stored = view.to_record();
            if rec.id == 0 {
                stored.id = 0;
            }
            stored == *rec
        }
        _ => false,
    }
}

/// What the parsing thread of `import` hands over, in the order of the input. Line numbers
/// count from 1, blank lines included.
enum Piece {
    /// `batch_size` records, or fewer for the last batch of the input.
    Batch(Vec<mediadb::Record>),
    /// The playlists and the skipped bad lines (`--skip-bad`) of at most one chunk, handed over
    /// together so that a file of bad lines is not handed over line by line.
    Notes(Notes),
    /// The import stops at this line; the records after the last full batch are not sent.
    Stop(usize, Stop),
}

/// Lines of a chunk that are neither records nor blank.
#[derive(Default)]
struct Notes {
    /// Each with its line.
    playlists: Vec<(usize, mediadb::playlist::Playlist)>,
    skipped: Vec<(usize, LineError)>,
}

/// Why the import stops at a line.
enum Stop {
    /// Not a record or playlist (without `--skip-bad`).
    Bad(LineError),
    /// A read error: never skipped.
    Unreadable(io::Error),
}

/// The parsing side of `import`.
struct Parser {
    batch_size: usize,
    skip_bad: bool,
    tx: mpsc::SyncSender<Piece>,
    /// Batches already committed, to be reused.
    spare: mpsc::Receiver<Vec<mediadb::Record>>,
}

impl Parser {
    /// Lines read and parsed at a time, at most.
    const CHUNK: usize = 8192;
    /// Bytes of lines read at a time: a chunk ends at the line that reaches this.
    const CHUNK_BYTES: usize = 64 << 20;
    /// The longest line read: far over any record's (1 MiB encoded) or playlist's (16 MiB)
    /// line. A longer one is bad (skipped to its end without being held in memory), so that a
    /// file that is not JSON Lines at all (a disk image, /dev/zero) cannot take the memory.
    const MAX_LINE: usize = 64 << 20;

    /// Reads `reader` to its end or to the first line the import stops at, a chunk of lines at
    /// a time, each chunk parsed on all cores and then taken in order. Returns early when the
    /// receiver is gone. Lines split as `BufRead::lines` splits them: at `\n`, less one `\r`
    /// before it.
    fn run(self, mut reader: Box<dyn BufRead + Send>) {
        use rayon::prelude::*;
        let mut buf = Vec::new();
        let mut ends = Vec::with_capacity(Self::CHUNK);
        let mut parsed = Vec::with_capacity(Self::CHUNK);
        let mut batch = Vec::with_capacity(self.batch_size);
        let mut first = 0;
        let mut long = Vec::new();
        // Each playlist name with the line that gave it: a second playlist of one name is bad.
        let mut names: std::collections::HashMap<String, usize> = Default::default();
        loop {
            buf.clear();
            ends.clear();
            long.clear();
            let mut error = None;
            let mut last = false;
            while ends.len() < Self::CHUNK && buf.len() < Self::CHUNK_BYTES {
                match read_line_capped(reader.as_mut(), &mut buf, Self::MAX_LINE, self.skip_bad) {
                    Ok(LineRead::End) => {
                        last = true;
                        break;
                    }
                    Ok(LineRead::Line) => ends.push(buf.len()),
                    Ok(LineRead::TooLong) => {
                        long.push(ends.len());
                        ends.push(buf.len());
                        if !self.skip_bad {
                            // The import stops at it: nothing after it is read.
                            last = true;
                            break;
                        }
                    }
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            (0..ends.len())
                .into_par_iter()
                .map(|k| {
                    if long.contains(&k) {
                        return Err(Stop::Bad(bad_line(format!(
                            "is longer than {} MiB, which no record or playlist line is (is \
                             this a JSON Lines export?)",
                            Self::MAX_LINE >> 20
                        ))));
                    }
                    let mut line = &buf[if k == 0 { 0 } else { ends[k - 1] }..ends[k]];
                    if let Some(l) = line.strip_suffix(b"\n") {
                        line = l.strip_suffix(b"\r").unwrap_or(l);
                    }
                    if first == 0 && k == 0 {
                        // A byte-order mark, as some editors write at the start of UTF-8.
                        line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
                    }
                    let line = std::str::from_utf8(line).map_err(|e| {
                        Stop::Bad(bad_line(format!(
                            "is not UTF-8 (byte {} of the line); JSON Lines are UTF-8, and a \
                             path that is not goes in `path_b64`",
                            e.valid_up_to() + 1
                        )))
                    })?;
                    parse_line(line).map_err(Stop::Bad)
                })
                .collect_into_vec(&mut parsed);
            // Notes go before the batch or stop that follows them, in the order of the input.
            let mut notes = Notes::default();
            for (k, line) in parsed.drain(..).enumerate() {
                let n = first + k + 1;
                match line {
                    Ok(Line::Blank) => {}
                    Ok(Line::Record(r)) => {
                        batch.push(r);
                        if batch.len() == self.batch_size {
                            let full = std::mem::take(&mut batch);
                            if !self.send_notes(&mut notes)
                                || self.tx.send(Piece::Batch(full)).is_err()
                            {
                                return;
                            }
                            batch = self.empty_batch();
                        }
                    }
                    Ok(Line::Playlist(p)) => match names.get(&p.name) {
                        Some(&m) => {
                            let e = bad_line(format!(
                                "playlist {:?}: line {m} has a playlist of that name already",
                                p.name
                            ));
                            if self.skip_bad {
                                notes.skipped.push((n, e));
                            } else {
                                if self.send_notes(&mut notes) {
                                    let _ = self.tx.send(Piece::Stop(n, Stop::Bad(e)));
                                }
                                return;
                            }
                        }
                        None => {
                            names.insert(p.name.clone(), n);
                            notes.playlists.push((n, p));
                        }
                    },
                    Err(Stop::Bad(e)) if self.skip_bad => notes.skipped.push((n, e)),
                    Err(stop) => {
                        if self.send_notes(&mut notes) {
                            let _ = self.tx.send(Piece::Stop(n, stop));
                        }
                        return;
                    }
                }
            }
            if !self.send_notes(&mut notes) {
                return;
            }
            if let Some(e) = error {
                let _ = self
                    .tx
                    .send(Piece::Stop(first + ends.len() + 1, Stop::Unreadable(e)));
                return;
            }
            if last {
                if !batch.is_empty() {
                    let _ = self.tx.send(Piece::Batch(batch));
                }
                return;
            }
            first += ends.len();
        }
    }

    /// The batch committed before the one just handed over (the committing thread sends it
    /// back before it takes the next), emptied here rather than on that thread; a new one only
    /// for the first two batches.
    fn empty_batch(&self) -> Vec<mediadb::Record> {
        match self.spare.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Vec::with_capacity(self.batch_size),
        }
    }

    /// Hands over `notes` unless empty, leaving them empty; false when the receiver is gone.
    fn send_notes(&self, notes: &mut Notes) -> bool {
        if notes.playlists.is_empty() && notes.skipped.is_empty() {
            return true;
        }
        self.tx.send(Piece::Notes(std::mem::take(notes))).is_ok()
    }
}

/// A line that is bad before it is parsed.
fn bad_line(message: String) -> LineError {
    LineError::Record(mediadb::query::import::ImportError(message))
}

/// What [`read_line_capped`] read.
enum LineRead {
    /// The input ended before any byte.
    End,
    /// A line (with its `\n`, unless the input ended first) was appended.
    Line,
    /// A line was longer than the cap; nothing of it was appended (see `skip_rest`).
    TooLong,
}

/// Appends the next line of `reader` to `buf`, as `read_until(b'\n')` would, unless it is
/// longer than `cap` bytes: then nothing of it is kept, and it is read to its end when
/// `skip_rest` (to go on after it), else no further (the input may never end, as /dev/zero).
fn read_line_capped(
    reader: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
    skip_rest: bool,
) -> io::Result<LineRead> {
    let start = buf.len();
    let mut over = false;
    let mut any = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        any = true;
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if !over {
            // The cap is on the line without its `\n`.
            if buf.len() - start + take - usize::from(done) > cap {
                over = true;
                buf.truncate(start);
                if !skip_rest {
                    break;
                }
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        reader.consume(take);
        if done {
            break;
        }
    }
    Ok(match (any, over) {
        (false, _) => LineRead::End,
        (true, false) => LineRead::Line,
        (true, true) => LineRead::TooLong,
    })
}

/// Writes imported playlists in one commit: each entry re-attached to the record now at its path
/// (ids may have changed on the way), a playlist of the same name replaced, a new one under the
/// id the file gives it when that id is free.
/// A failure names the line of the playlist it is about (that of the first for the commit).
fn restore_playlists(
    db: &mut Database,
    playlists: Vec<(usize, mediadb::playlist::Playlist)>,
) -> Result<u64, (usize, Failure)> {
    let Some(&(first, _)) = playlists.first() else {
        return Ok(0);
    };
    let at = |n: usize| move |f: Failure| (n, f);
    let snap = db.snapshot();
    let mut ready = Vec::with_capacity(playlists.len());
    for (n, mut p) in playlists {
        for e in &mut p.entries {
            e.record_id = snap
                .entry(&e.path)
                .map_err(corrupt)
                .map_err(at(n))?
                .map_or(0, |(id, _)| id);
        }
        // One of the same name is replaced and keeps its id; a new one asks for the id the
        // file gives it, which it gets when that id was never used here.
        if let Some(old) = snap
            .playlist_by_name(&p.name)
            .map_err(corrupt)
            .map_err(at(n))?
        {
            p.id = old.id;
        }
        ready.push((n, p));
    }
    drop(snap);
    // In ascending id order, so that each id asked for can still be given.
    ready.sort_by_key(|(_, p)| p.id);
    let mut batch = db.batch().map_err(Failure::from).map_err(at(first))?;
    for (n, p) in &ready {
        batch
            .restore_playlist(p)
            .map_err(Failure::from)
            .map_err(at(*n))?;
    }
    batch.commit().map_err(Failure::from).map_err(at(first))?;
    Ok(ready.len() as u64)
}
