//! `mediadb migrate` and `mediadb playlist ...`: bringing a library over from VuIO, and
//! playlists.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use mediadb::migrate::{self, MigrateError, MigrateOptions, MigrateReport};
use mediadb::playlist::formats::{self, ExportEntry, Format as FileFormat};
use mediadb::playlist::{self, Entry, Playlist, Target};
use mediadb::query::eval::{self, SortKey};
use mediadb::query::output::{self, Format};
use mediadb::query::{Field, Query, parse_args};
use mediadb::record::EncodedRecord;
use mediadb::{Database, Record, Snapshot};

use crate::cli::{MigrateArgs, PlaylistCommand, PlaylistShowArgs, ProgressMode};
use crate::commands::{corrupt, format_of, open_writer, parse_fields, sink, usage, width};
use crate::{Exit, Failure, out};

impl From<MigrateError> for Failure {
    fn from(e: MigrateError) -> Failure {
        let exit = match &e {
            MigrateError::Unsupported { .. } => Exit::Usage,
            MigrateError::Commit(mediadb::CommitError::Read(_)) => Exit::Corrupt,
            MigrateError::Read(_) => Exit::Corrupt,
            _ => Exit::Failed,
        };
        Failure {
            exit,
            message: e.to_string(),
        }
    }
}

fn show_progress(mode: ProgressMode, quiet: bool) -> bool {
    match mode {
        ProgressMode::Always => true,
        ProgressMode::Never => false,
        ProgressMode::Auto => !quiet && std::io::stderr().is_terminal(),
    }
}

pub(crate) fn migrate(db_path: &Path, args: &MigrateArgs, quiet: bool) -> Result<Exit, Failure> {
    let started = std::time::Instant::now();
    if !args.source.exists() {
        return Err(Failure {
            exit: Exit::Usage,
            message: format!(
                "{}: no such file; give the path of VuIO's database file",
                args.source.display()
            ),
        });
    }
    let created = !db_path.exists();
    let mut db = open_writer(db_path, args.wait)?;
    let bar = show_progress(args.progress, quiet).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(10));
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows ({per_sec}) {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let progress = |done: u64, total: u64| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    };
    let opts = MigrateOptions {
        batch_size: args.batch_size as usize,
    };
    let result = migrate::migrate(&mut db, &args.source, &opts, &progress);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if result.is_err() && created && db.snapshot().seq() == 0 {
        // A source refused before anything was committed leaves no empty database behind
        // (without --db, that would be the default library).
        drop(db);
        remove_new_database(db_path);
    }
    let report = result?;
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        let mut v = serde_json::to_value(&report).map_err(|e| Failure {
            exit: Exit::Failed,
            message: e.to_string(),
        })?;
        v["seconds"] = serde_json::json!(secs);
        out(|w| writeln!(w, "{v}"))?;
    }
    if !quiet {
        print_migrate(&report, secs);
    }
    Ok(Exit::Ok)
}

fn print_migrate(r: &MigrateReport, secs: f64) {
    let rate = if secs > 0.0 {
        r.rows_read as f64 / secs
    } else {
        0.0
    };
    eprintln!(
        "migrated {} (VuIO {} era, schema {}): {} rows read in {secs:.2}s ({rate:.0} rows/s)",
        r.source.display(),
        r.era,
        r.schema_version,
        r.rows_read,
    );
    eprintln!(
        "  records: {} written ({} new), {} unchanged, {} kept (the database's own record is newer)",
        r.records_written, r.records_inserted, r.records_unchanged, r.records_kept_newer
    );
    for (why, n) in &r.skipped {
        let what = match *why {
            "stream" => "radio streams and URLs (not files; kept only as playlist entries)",
            "empty_path" => "rows with an empty path",
            "not_absolute" => "rows whose path is not an absolute Unix path",
            "bad_size" => "rows with a negative or missing size",
            "too_large" => "rows whose record would be over the 1 MiB record limit (a huge tag)",
            "duplicate_path" => {
                "rows whose path, once normalized, is another row's (the newest row is kept)"
            }
            "dot_dot_in_path" => "rows whose path has a `..` component",
            "nul_in_path" => "rows whose path holds a NUL byte",
            other => other,
        };
        eprintln!("  skipped {n}: {what}");
    }
    // A few of them by id, so that they can be found in the source; --json lists more.
    const SHOWN: usize = 10;
    for row in r.skipped_rows.iter().take(SHOWN) {
        eprintln!(
            "    row {} ({}): {}",
            row.id,
            row.reason,
            output::escape_controls(&row.path)
        );
    }
    // Streams are counted, not listed.
    let listable: u64 = r
        .skipped
        .iter()
        .filter(|(why, _)| **why != "stream")
        .map(|(_, n)| n)
        .sum();
    let shown = r.skipped_rows.len().min(SHOWN) as u64;
    if listable > shown {
        eprintln!(
            "    ... and {} more (--json lists the first {})",
            listable - shown,
            mediadb::migrate::MAX_SKIPPED_ROWS
        );
    }
    if r.lossy_paths > 0 {
        eprintln!(
            "  {} paths were stored lossily by VuIO (U+FFFD for bytes that were not UTF-8): kept as stored; a scan indexes the real files",
            r.lossy_paths
        );
    }
    eprintln!(
        "  playlists: {} read, {} written, {} entries ({} dangling: URLs or files not in the database)",
        r.playlists, r.playlists_written, r.playlist_entries, r.dangling_entries
    );
    for (why, n) in &r.skipped_entries {
        eprintln!("  skipped {n} playlist entries: {why} (the row they name is gone)");
    }
    if r.renamed_playlists > 0 {
        eprintln!(
            "  renamed {} playlists whose names were taken (suffix \"(VuIO ID)\")",
            r.renamed_playlists
        );
    }
}

// ---------------------------------------------------------------------------------------------
// playlist

/// What the database's state refuses (a name no playlist has, or one that is taken; an entry
/// or position a playlist lacks): the command failed (exit 1, as `ls` of a directory that is
/// neither in the database nor on disk, or `add` of a file that is not indexed). Exit 2 is
/// kept for arguments wrong whatever the database holds.
fn failed(message: String) -> Failure {
    Failure {
        exit: Exit::Failed,
        message,
    }
}

fn not_found(name: &str) -> Failure {
    failed(format!(
        "no playlist is named {name:?}; `mediadb playlist list` shows them"
    ))
}

fn find(snap: &Snapshot, name: &str) -> Result<Playlist, Failure> {
    snap.playlist_by_name(name)
        .map_err(corrupt)?
        .ok_or_else(|| not_found(name))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// `p` made absolute against the working directory, lexically normalised.
/// Opens the database for a playlist command, which does not wait for another writer: a busy
/// database says to retry later (the `--wait SECS` of scan, import, migrate and compact is not
/// one of its options).
fn playlist_writer(db_path: &Path) -> Result<Database, Failure> {
    crate::commands::database_dir(db_path)?;
    crate::commands::open_writer_at(db_path, 0.0).map_err(|e| match e {
        mediadb::OpenError::Busy { path, pid } => Failure {
            exit: Exit::Busy,
            message: format!(
                "{}: locked by another writer{}; retry when it is done",
                crate::shown(path.as_os_str().as_encoded_bytes()),
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            ),
        },
        e => e.into(),
    })
}

/// Removes a database this command created and committed nothing to, and its files.
pub(crate) fn remove_new_database(db_path: &Path) {
    for suffix in ["", ".idx", ".cols", ".lock"] {
        let mut p = db_path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// The canonical path of `path` (symbolic links followed), when it exists and differs.
pub(crate) fn canonical(path: &[u8]) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    std::fs::canonicalize(std::ffi::OsStr::from_bytes(path))
        .ok()
        .map(|c| c.into_os_string().into_vec())
        .filter(|c| c != path)
}

pub(crate) fn absolute(p: &Path) -> Vec<u8> {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    formats::normalize(abs.as_os_str().as_bytes())
}

fn commit_playlist(db: &mut Database, p: &Playlist) -> Result<u64, Failure> {
    let mut batch = db.batch()?;
    let id = batch.put_playlist(p).map_err(|e| match e {
        // A taken name or a playlist too large: the database's state refuses it (exit 1).
        mediadb::CommitError::BadPlaylist { .. } => failed(e.to_string()),
        e => e.into(),
    })?;
    batch.commit()?;
    Ok(id)
}

pub(crate) fn playlist(
    db_path: &Path,
    cmd: &PlaylistCommand,
    quiet: bool,
) -> Result<Exit, Failure> {
    match cmd {
        PlaylistCommand::Create { name, description } => {
            let mut db = playlist_writer(db_path)?;
            let now = now_ns();
            let p = Playlist {
                name: name.clone(),
                description: description.clone(),
                created_unix_ns: now,
                updated_unix_ns: now,
                ..Playlist::default()
            };
            commit_playlist(&mut db, &p)?;
            Ok(Exit::Ok)
        }
        PlaylistCommand::List { json } => list(db_path, *json),
        PlaylistCommand::Show(args) => show(db_path, args),
        PlaylistCommand::Add { name, items, query } => add(db_path, name, items, *query),
        PlaylistCommand::Remove { name, items } => remove(db_path, name, items),
        PlaylistCommand::Delete { name } => {
            let mut db = playlist_writer(db_path)?;
            let p = find(&db.snapshot(), name)?;
            let mut batch = db.batch()?;
            batch.delete_playlist(p.id);
            batch.commit()?;
            Ok(Exit::Ok)
        }
        PlaylistCommand::Import { file, name, json } => {
            import(db_path, file, name.as_deref(), *json, quiet)
        }
        PlaylistCommand::Export {
            name,
            format,
            relative_to,
            output,
        } => export(
            db_path,
            name,
            format.as_deref(),
            relative_to.as_deref(),
            output.as_deref().filter(|o| *o != Path::new("-")),
        ),
    }
}

/// How many of `p`'s entries resolve to no record.
fn missing(snap: &Snapshot, p: &Playlist) -> Result<usize, Failure> {
    let mut n = 0;
    for e in &p.entries {
        if matches!(
            playlist::resolve(snap, e).map_err(corrupt)?,
            Target::Missing
        ) {
            n += 1;
        }
    }
    Ok(n)
}

fn list(db_path: &Path, json: bool) -> Result<Exit, Failure> {
    let db = crate::open_reader(db_path)?;
    let snap = db.snapshot();
    let all = snap.playlists().map_err(corrupt)?;
    let mut rows = Vec::with_capacity(all.len());
    for p in &all {
        rows.push((p, missing(&snap, p)?));
    }
    out(|w| {
        if json {
            let all: Vec<serde_json::Value> = rows
                .iter()
                .map(|(p, missing)| {
                    serde_json::json!({
                        "id": p.id,
                        "name": p.name,
                        "description": p.description,
                        "source_path": p.source_path.as_deref().map(String::from_utf8_lossy),
                        "entries": p.entries.len(),
                        "missing": missing,
                    })
                })
                .collect();
            writeln!(w, "{}", serde_json::Value::Array(all))?;
            return Ok(());
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|(p, missing)| {
                vec![
                    output::escape_controls(&p.name).into_owned(),
                    p.entries.len().to_string(),
                    missing.to_string(),
                    output::escape_controls(p.description.as_deref().unwrap_or_default())
                        .into_owned(),
                ]
            })
            .collect();
        let header = ["NAME", "ENTRIES", "MISSING", "DESCRIPTION"].map(str::to_owned);
        output::write_grid(w, &header, &cells, width())
    })?;
    Ok(Exit::Ok)
}

/// The record shown for an entry whose file is missing: id 0, the entry's path, its playlist
/// title and duration, and `error` saying so.
fn placeholder(e: &Entry) -> Record {
    Record {
        path: e.path.clone(),
        title: e.title.clone(),
        duration_ms: e.duration_ms,
        error: Some("missing: no file with this path is in the database".into()),
        ..Record::default()
    }
}

fn show(db_path: &Path, args: &PlaylistShowArgs) -> Result<Exit, Failure> {
    let format = if args.print0 {
        Format::Print0
    } else {
        format_of(args.format)
    };
    let fields = parse_fields(&args.fields, format)?;
    let db = crate::open_reader(db_path)?;
    let snap = db.snapshot();
    let p = find(&snap, &args.name)?;
    let mut targets = Vec::with_capacity(p.entries.len());
    let mut stand_ins = Vec::new();
    for e in &p.entries {
        let t = playlist::resolve(&snap, e).map_err(corrupt)?;
        if matches!(t, Target::Missing) {
            stand_ins.push(EncodedRecord::new(&placeholder(e)));
        }
        targets.push(t);
    }
    let mut stand_in = stand_ins.iter();
    let views: Vec<_> = targets
        .into_iter()
        .filter_map(|t| match t {
            Target::Live(v) => Some(v),
            Target::Missing => stand_in.next().and_then(EncodedRecord::view),
        })
        .collect();
    out(|w| output::write_records(w, &views, &fields, format, sink()))?;
    Ok(Exit::Ok)
}

fn add(db_path: &Path, name: &str, items: &[OsString], query: bool) -> Result<Exit, Failure> {
    let mut db = playlist_writer(db_path)?;
    let snap = db.snapshot();
    let mut p = find(&snap, name)?;
    let by_path = [SortKey {
        field: Field::Path,
        descending: false,
    }];
    if query {
        let terms: Vec<std::ffi::OsString> = items
            .iter()
            .map(|t| crate::commands::absolute_path_term(t.as_ref()))
            .collect();
        let q = parse_args(&terms).map_err(|e| usage(e.to_string()))?;
        let found = eval::select(&snap, &q, &by_path, None).map_err(corrupt)?;
        p.entries
            .extend(found.iter().map(|v| Entry::new(v.id(), v.path().to_vec())));
    } else {
        let mut unknown = Vec::new();
        for item in items {
            let path = absolute(Path::new(item));
            // Through a symbolic link, the scan's path (from its canonical root) when the path
            // as given is no record's.
            let path = match snap.entry(&path).map_err(corrupt)? {
                Some(_) => path,
                None => canonical(&path).unwrap_or(path),
            };
            if let Some((id, _)) = snap.entry(&path).map_err(corrupt)? {
                p.entries.push(Entry::new(id, path));
                continue;
            }
            // A directory: every indexed file under it, in path order.
            let under =
                eval::select(&snap, &Query::subtree(&path), &by_path, None).map_err(corrupt)?;
            if under.is_empty() {
                unknown.push(String::from_utf8_lossy(&path).into_owned());
            }
            p.entries
                .extend(under.iter().map(|v| Entry::new(v.id(), v.path().to_vec())));
        }
        if !unknown.is_empty() {
            return Err(Failure {
                exit: Exit::Failed,
                message: format!(
                    "not in the database: {}; scan them first (nothing was added)",
                    unknown.join(", ")
                ),
            });
        }
    }
    drop(snap);
    p.updated_unix_ns = now_ns();
    commit_playlist(&mut db, &p)?;
    Ok(Exit::Ok)
}

fn remove(db_path: &Path, name: &str, items: &[OsString]) -> Result<Exit, Failure> {
    let mut db = playlist_writer(db_path)?;
    let mut p = find(&db.snapshot(), name)?;
    let n = p.entries.len();
    let mut drop_at = vec![false; n];
    for item in items {
        if let Some(pos) = item.to_str().and_then(|s| s.parse::<usize>().ok()) {
            if pos == 0 {
                return Err(usage(format!(
                    "position 0 of playlist {name:?}: positions count from 1"
                )));
            }
            if pos > n {
                return Err(failed(format!(
                    "position {pos} is outside 1..={n} of playlist {name:?}"
                )));
            }
            drop_at[pos - 1] = true;
        } else {
            let path = absolute(Path::new(item));
            let before = drop_at.iter().filter(|d| **d).count();
            for (i, e) in p.entries.iter().enumerate() {
                if e.path == path {
                    drop_at[i] = true;
                }
            }
            if drop_at.iter().filter(|d| **d).count() == before {
                return Err(failed(format!(
                    "playlist {name:?} has no entry {}",
                    String::from_utf8_lossy(&path)
                )));
            }
        }
    }
    let mut i = 0;
    p.entries.retain(|_| {
        i += 1;
        !drop_at[i - 1]
    });
    p.updated_unix_ns = now_ns();
    commit_playlist(&mut db, &p)?;
    Ok(Exit::Ok)
}

fn import(
    db_path: &Path,
    file: &Path,
    name: Option<&str>,
    json: bool,
    quiet: bool,
) -> Result<Exit, Failure> {
    let abs = absolute(file);
    let format = FileFormat::from_path(&abs).ok_or_else(|| {
        usage(format!(
            "{}: not a playlist file; import reads .m3u, .m3u8 and .pls",
            file.display()
        ))
    })?;
    let bytes = std::fs::read(file).map_err(|e| Failure {
        exit: Exit::Failed,
        message: format!("{}: {e}", file.display()),
    })?;
    let dir = match abs.iter().rposition(|&b| b == b'/') {
        Some(0) => b"/".to_vec(),
        Some(i) => abs[..i].to_vec(),
        None => b"/".to_vec(),
    };
    let parsed = formats::read(&bytes, format, &dir).map_err(|why| {
        usage(format!(
            "{}: not a playlist: {why}; import reads text .m3u, .m3u8 and .pls files",
            file.display()
        ))
    })?;
    let mut db = playlist_writer(db_path)?;
    let snap = db.snapshot();
    let mut entries = Vec::with_capacity(parsed.len());
    let mut unmatched = Vec::new();
    for e in parsed {
        // A line's exact bytes first (a name that is not UTF-8, as `export` writes it to an
        // .m3u or .pls), then its Latin-1 reading.
        // Last, the canonical path of a line written through a symbolic link (a scan stores
        // paths from canonical roots).
        let mut found = None;
        let real = canonical(&e.path);
        for path in e.raw_path.into_iter().chain([e.path.clone()]).chain(real) {
            if let Some((id, _)) = snap.entry(&path).map_err(corrupt)? {
                found = Some((id, path));
                break;
            }
        }
        let (id, path) = found.unwrap_or((0, e.path));
        if id == 0 {
            unmatched.push(String::from_utf8_lossy(&path).into_owned());
        }
        entries.push(Entry {
            record_id: id,
            path,
            title: e.title,
            duration_ms: e
                .duration_secs
                .filter(|s| *s >= 0)
                .map(|s| (s as u64).saturating_mul(1000)),
        });
    }
    // Re-importing the same file replaces the playlist made from it.
    let all = snap.playlists().map_err(corrupt)?;
    let default_name = Path::new(std::ffi::OsStr::from_bytes(&abs))
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "playlist".into());
    let name = name.map_or(default_name, str::to_owned);
    let same_source = all
        .iter()
        .find(|p| p.source_path.as_deref() == Some(abs.as_slice()));
    let now = now_ns();
    let p = match same_source {
        Some(old) => Playlist {
            entries,
            updated_unix_ns: now,
            name: if old.name == name {
                old.name.clone()
            } else {
                name
            },
            ..old.clone()
        },
        None => Playlist {
            name,
            source_path: Some(abs.clone()),
            created_unix_ns: now,
            updated_unix_ns: now,
            entries,
            ..Playlist::default()
        },
    };
    drop(snap);
    let replaced = p.id != 0;
    commit_playlist(&mut db, &p)?;
    let total = p.entries.len();
    if json {
        let v = serde_json::json!({
            "playlist": p.name,
            "source": String::from_utf8_lossy(&abs),
            "replaced": replaced,
            "entries": total,
            "matched": total - unmatched.len(),
            "not_in_database": unmatched,
        });
        out(|w| writeln!(w, "{v}"))?;
    }
    if !quiet {
        eprintln!(
            "{} playlist {:?}: {total} entries, {} in the database, {} not (kept, shown as missing)",
            if replaced { "replaced" } else { "imported" },
            p.name,
            total - unmatched.len(),
            unmatched.len()
        );
        for u in unmatched.iter().take(20) {
            let mut shown = output::escape_controls(u).into_owned();
            if shown.len() > 300 {
                let mut cut = 300;
                while !shown.is_char_boundary(cut) {
                    cut -= 1;
                }
                shown.truncate(cut);
                shown.push('…');
            }
            eprintln!("  not in the database: {shown}");
        }
        if unmatched.len() > 20 {
            eprintln!("  ... and {} more (--json lists all)", unmatched.len() - 20);
        }
    }
    Ok(Exit::Ok)
}

fn export(
    db_path: &Path,
    name: &str,
    format: Option<&str>,
    relative_to: Option<&Path>,
    output_path: Option<&Path>,
) -> Result<Exit, Failure> {
    let format = match format {
        Some(f) => FileFormat::from_name(f).ok_or_else(|| {
            usage(format!(
                "unknown playlist format `{f}`; use m3u, m3u8 or pls"
            ))
        })?,
        None => output_path
            .and_then(|o| FileFormat::from_path(o.as_os_str().as_bytes()))
            .unwrap_or(FileFormat::M3u8),
    };
    let db = crate::open_reader(db_path)?;
    let snap = db.snapshot();
    let p = find(&snap, name)?;
    struct Line {
        path: Vec<u8>,
        artist: Option<String>,
        title: Option<String>,
        duration_ms: Option<u64>,
    }
    let mut lines = Vec::with_capacity(p.entries.len());
    for e in &p.entries {
        lines.push(match playlist::resolve(&snap, e).map_err(corrupt)? {
            Target::Live(v) => {
                let artists: Vec<&str> = v.artists().collect();
                Line {
                    path: v.path().to_vec(),
                    artist: (!artists.is_empty()).then(|| artists.join("; ")),
                    title: v.title().map(str::to_owned).or_else(|| e.title.clone()),
                    duration_ms: v.duration_ms().or(e.duration_ms),
                }
            }
            Target::Missing => Line {
                path: e.path.clone(),
                artist: None,
                title: e.title.clone(),
                duration_ms: e.duration_ms,
            },
        });
    }
    let entries: Vec<ExportEntry<'_>> = lines
        .iter()
        .map(|l| ExportEntry {
            path: &l.path,
            artist: l.artist.as_deref(),
            title: l.title.as_deref(),
            duration_ms: l.duration_ms,
        })
        .collect();
    let rel = relative_to.map(absolute);
    match output_path {
        Some(o) => {
            let mut buf = Vec::new();
            formats::write(&mut buf, format, &entries, rel.as_deref())?;
            crate::commands::write_replacing(db_path, o, |w| w.write_all(&buf))?;
        }
        None => out(|w| formats::write(w, format, &entries, rel.as_deref()))?,
    }
    Ok(Exit::Ok)
}
