//! The commands that look after the database file itself: verify, recover, compact.

use std::io::IsTerminal;
use std::path::Path;

use mediadb::Database;
use mediadb::store::{self, CheckpointStatus, VerifyReport};
use serde_json::json;

use crate::cli::{CompactArgs, RecoverArgs, VerifyArgs};
use crate::{Exit, Failure, out};

/// A progress bar on stderr when it is a terminal, fed by a library callback.
fn bar(quiet: bool, what: &'static str) -> Option<indicatif::ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(0);
    b.set_message(what);
    b.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {percent}% {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(b)
}

fn checkpoint_text(c: &CheckpointStatus) -> String {
    match c {
        CheckpointStatus::Absent => "absent".into(),
        CheckpointStatus::Agrees { seq } => format!("agrees with the log (seq {seq})"),
        CheckpointStatus::Problems => "has problems (see below)".into(),
        CheckpointStatus::NotCompared => "not compared".into(),
    }
}

fn report_json(r: &VerifyReport) -> serde_json::Value {
    json!({
        "path": r.path.to_string_lossy(),
        "clean": r.is_clean(),
        "damaged": r.is_damaged(),
        "file_bytes": r.file_len,
        "committed_len": r.committed_len,
        "tail_bytes": r.tail_bytes,
        "active_slot": r.active_slot,
        "slots": r.slots.iter().map(|s| json!({
            "offset": s.offset,
            "valid": s.problem.is_none(),
            "generation": s.header.map(|h| h.generation),
            "problem": s.problem,
        })).collect::<Vec<_>>(),
        "frames": r.frames,
        "records": r.records,
        "removals": r.removals,
        "seq": r.seq,
        "next_id": r.next_id,
        "live_records": r.live_records,
        "live_bytes": r.live_bytes,
        "checkpoint": checkpoint_text(&r.checkpoint),
        "problems": r.problems.iter().map(|p| json!({
            "severity": p.severity.as_str(),
            "location": p.location.as_str(),
            "offset": p.offset,
            "kind": p.kind.as_str(),
            "message": p.message,
        })).collect::<Vec<_>>(),
        "problems_omitted": r.problems_omitted,
        "advice": r.advice(),
    })
}

pub(crate) fn verify(db_path: &Path, args: &VerifyArgs, quiet: bool) -> Result<Exit, Failure> {
    let b = bar(quiet, "verifying");
    let progress = |done: u64, total: u64| {
        if let Some(b) = &b {
            b.set_length(total);
            b.set_position(done);
        }
    };
    let report = store::verify(db_path, &progress)?;
    if let Some(b) = &b {
        b.finish_and_clear();
    }
    let fs = if args.fs && !report.is_damaged() {
        let b = bar(quiet, "checking files");
        let progress = |done: u64, total: u64| {
            if let Some(b) = &b {
                b.set_length(total);
                b.set_position(done);
            }
        };
        let r = store::verify_fs(db_path, &progress)?;
        if let Some(b) = &b {
            b.finish_and_clear();
        }
        Some(r)
    } else {
        None
    };
    // Files are not checked against a damaged database: its records cannot be trusted.
    let fs_skipped = args.fs && fs.is_none();
    let out_of_date = fs
        .as_ref()
        .is_some_and(|f| f.missing + f.changed + f.unreadable > 0);
    // `-q` (a cron job's check): the report only when there is something to read in it
    // (`--json` is data, and always printed).
    if quiet && !args.json && report.is_clean() && !out_of_date {
        return Ok(Exit::Ok);
    }
    if args.json {
        let mut v = report_json(&report);
        if fs_skipped {
            v["fs_not_checked"] = json!("the database is damaged");
        }
        if let Some(fs) = &fs {
            v["fs"] = json!({
                "checked": fs.checked,
                "missing": fs.missing,
                "changed": fs.changed,
                "unreadable": fs.unreadable,
                "problems": fs.problems.iter().map(|p| {
                    let mut o = json!({
                        "id": p.id,
                        "path": String::from_utf8_lossy(&p.path),
                        "kind": p.kind.as_str(),
                        "message": p.message,
                    });
                    if std::str::from_utf8(&p.path).is_err() {
                        use base64::Engine;
                        o["path_b64"] = base64::engine::general_purpose::STANDARD.encode(&p.path).into();
                    }
                    o
                }).collect::<Vec<_>>(),
                "problems_omitted": fs.problems_omitted,
            });
        }
        out(|w| writeln!(w, "{v}"))?;
    } else {
        out(|w| {
            writeln!(w, "database     {}", report.path.display())?;
            for (i, s) in report.slots.iter().enumerate() {
                let state = match (&s.problem, s.header) {
                    (None, Some(h)) => format!("valid, generation {}", h.generation),
                    (Some(p), _) => format!("invalid: {p}"),
                    (None, None) => "absent".into(),
                };
                let active = if report.active_slot == Some(i) {
                    " (active)"
                } else {
                    ""
                };
                writeln!(w, "slot {}       byte {}: {state}{active}", i, s.offset)?;
            }
            writeln!(
                w,
                "log          {} frames, committed length {}, {} bytes of ignored tail",
                report.frames, report.committed_len, report.tail_bytes
            )?;
            writeln!(
                w,
                "records      {} written, {} removals, {} live ({} bytes), seq {}, next id {}",
                report.records,
                report.removals,
                report.live_records,
                report.live_bytes,
                report.seq,
                report.next_id
            )?;
            writeln!(w, "checkpoint   {}", checkpoint_text(&report.checkpoint))?;
            for p in &report.problems {
                writeln!(w, "{p}")?;
            }
            if report.problems_omitted > 0 {
                writeln!(w, "... and {} more problems", report.problems_omitted)?;
            }
            if let Some(fs) = &fs {
                writeln!(
                    w,
                    "files        {} checked: {} missing, {} changed, {} unreadable",
                    fs.checked, fs.missing, fs.changed, fs.unreadable
                )?;
                for p in &fs.problems {
                    writeln!(w, "{}: {}", crate::shown(&p.path), p.message)?;
                }
            }
            if fs_skipped {
                writeln!(w, "files        not checked: the database is damaged")?;
            }
            let verdict = if report.is_damaged() {
                "DAMAGED"
            } else if report.is_clean() {
                "clean"
            } else {
                "sound, with warnings"
            };
            writeln!(w, "result       {verdict}")
        })?;
    }
    if let Some(advice) = report.advice().filter(|_| !quiet) {
        eprintln!("mediadb: {advice}");
    }
    Ok(if report.is_damaged() {
        Exit::Corrupt
    } else if out_of_date {
        // The database is sound, but not the library as it is on disk now.
        if !quiet {
            eprintln!(
                "mediadb: {}: some files are missing or changed since the last scan; \
                 run `mediadb scan` to bring the database up to date",
                db_path.display()
            );
        }
        Exit::Partial
    } else {
        Exit::Ok
    })
}

pub(crate) fn recover(db_path: &Path, args: &RecoverArgs, quiet: bool) -> Result<Exit, Failure> {
    // A name the database uses for itself would be written over or removed by it.
    crate::commands::refuse_database_output(db_path, &args.out)?;
    if args.out.as_os_str() == "-" {
        // `-` is stdout for export; a database is a file, and a file named `-` is a trap.
        return Err(crate::commands::usage(
            "recover writes a new database file, not a stream: name that file (./- if you \
             really mean one named -)"
                .to_owned(),
        ));
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(Failure {
            exit: Exit::Failed,
            message: format!(
                "{}: the directory to recover into does not exist; create it or name another OUT",
                dir.display()
            ),
        });
    }
    let b = bar(quiet, "recovering");
    let progress = |done: u64, total: u64| {
        if let Some(b) = &b {
            b.set_length(total);
            b.set_position(done);
        }
    };
    let r = store::recover(db_path, &args.out, &progress).map_err(|e| Failure {
        exit: match e {
            store::RecoverError::NotADatabase { .. } => Exit::Corrupt,
            _ => Exit::Failed,
        },
        message: e.to_string(),
    })?;
    if let Some(b) = &b {
        b.finish_and_clear();
    }
    if args.json {
        let v = json!({
            "source": r.source.to_string_lossy(),
            "out": r.out.to_string_lossy(),
            "source_bytes": r.source_len,
            "committed_len": r.committed_len,
            "frames_read": r.frames_read,
            "frames_damaged": r.frames_damaged,
            "records_kept": r.records_kept,
            "records_salvaged": r.records_salvaged,
            "records_superseded": r.records_superseded,
            "records_removed": r.records_removed,
            "records_damaged": r.records_damaged,
            "lost": r.lost.iter().map(|l| json!({
                "start": l.start, "end": l.end,
                "seqs": l.seqs.map(|(a, b)| [a, b]),
                "records_salvaged": l.records_salvaged,
            })).collect::<Vec<_>>(),
            "ignored_tail": r.ignored_tail,
            "next_id": r.next_id,
            "playlists_kept": r.playlists_kept,
            "playlists_damaged": r.playlists_damaged,
            "consequences": r.consequences(),
        });
        out(|w| writeln!(w, "{v}"))?;
    } else if !quiet {
        eprintln!(
            "mediadb: recovered {} records and {} playlists into {} ({} intact frames, {} damaged ranges, {} records salvaged from them)",
            r.records_kept,
            r.playlists_kept,
            r.out.display(),
            r.frames_read,
            r.frames_damaged,
            r.records_salvaged
        );
        for l in &r.lost {
            eprintln!(
                "mediadb: lost bytes {}..{}{}",
                l.start,
                l.end,
                l.seqs
                    .map(|(a, b)| format!(" (commits {a}..{b})"))
                    .unwrap_or_default()
            );
        }
        eprintln!("mediadb: {}", r.consequences());
    }
    Ok(Exit::Ok)
}

pub(crate) fn compact(db_path: &Path, args: &CompactArgs, quiet: bool) -> Result<Exit, Failure> {
    let opts = mediadb::OpenOptions {
        read_only: false,
        create: false,
        wait: std::time::Duration::from_secs_f64(args.wait.clamp(0.0, 1e7)),
    };
    let mut db = Database::open_with(db_path, &opts)?;
    let started = std::time::Instant::now();
    let r = db.compact().map_err(|e| Failure {
        exit: match e {
            store::CompactError::Damaged { .. } => Exit::Corrupt,
            _ => Exit::Failed,
        },
        message: e.to_string(),
    })?;
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        let v = json!({
            "path": r.path.to_string_lossy(),
            "before_bytes": r.before_bytes,
            "after_bytes": r.after_bytes,
            "reclaimed_bytes": r.reclaimed(),
            "records": r.records,
            "seq": r.seq,
            "next_id": r.next_id,
            "elapsed_secs": secs,
        });
        out(|w| writeln!(w, "{v}"))?;
    } else if !quiet {
        eprintln!(
            "mediadb: compacted {}: {} -> {} bytes ({} reclaimed), {} records, {secs:.2} s",
            r.path.display(),
            r.before_bytes,
            r.after_bytes,
            r.reclaimed(),
            r.records
        );
    }
    Ok(Exit::Ok)
}
