//! `NAME.scans`: when each root was last scanned, for `stats`.
//!
//! An unchanged rescan commits nothing to the database, so the time of the last scan cannot live
//! in it. It lives in this small JSON file beside it instead, replaced whole (written under a
//! temporary name and renamed) after every scan that finishes. It is informational only: not
//! synced, never read by the engine, and a missing or unreadable one just shows no scan times.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use mediadb::scan::ScanReport;
use serde_json::{Value, json};

/// The scan log's path for database `db`.
fn log_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".scans");
    PathBuf::from(s)
}

/// One root's last scan.
pub(crate) struct RootScan {
    /// The root, as JSON (text, plus `root_b64` when it is not UTF-8).
    pub json: Value,
    /// The root for display.
    pub shown: String,
    /// When the scan finished (ns since the Unix epoch).
    pub finished_unix_ns: i64,
    /// Files seen by that scan (all of its roots together).
    pub files: u64,
}

fn key(root: &Path) -> Value {
    use std::os::unix::ffi::OsStrExt;
    let bytes = root.as_os_str().as_bytes();
    let mut v = json!({ "root": String::from_utf8_lossy(bytes) });
    if std::str::from_utf8(bytes).is_err() {
        v["root_b64"] = base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into();
    }
    v
}

/// Reads the scan log of `db`; empty when there is none or it cannot be read.
pub(crate) fn read(db: &Path) -> Vec<RootScan> {
    let Ok(text) = std::fs::read_to_string(log_path(db)) else {
        return Vec::new();
    };
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(&text) else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|v| {
            Some(RootScan {
                shown: v.get("root")?.as_str()?.to_owned(),
                finished_unix_ns: v.get("finished_unix_ns")?.as_i64()?,
                files: v.get("files")?.as_u64()?,
                json: v,
            })
        })
        .collect()
}

/// Records that the scan in `report` finished now. Errors are ignored: this is a note, not data.
pub(crate) fn record(db: &Path, report: &ScanReport) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let mut entries: Vec<Value> = read(db)
        .into_iter()
        .map(|r| r.json)
        .filter(|v| {
            !report.roots.iter().any(|root| {
                let k = key(root);
                v.get("root") == k.get("root") && v.get("root_b64") == k.get("root_b64")
            })
        })
        .collect();
    for (i, root) in report.roots.iter().enumerate() {
        let mut v = key(root);
        v["finished_unix_ns"] = now.into();
        v["files"] = report
            .files_per_root
            .get(i)
            .copied()
            .unwrap_or(report.files)
            .into();
        v["seconds"] = report.elapsed.as_secs_f64().into();
        entries.push(v);
    }
    entries.sort_by(|a, b| a["root"].as_str().cmp(&b["root"].as_str()));
    let path = log_path(db);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let text = Value::Array(entries).to_string();
    // Synced before the rename: a crash must leave the old note or the new one, not an empty
    // file (which `stats` reads as "never scanned").
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, text.as_bytes())?;
        f.sync_data()?;
        std::fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// `ns` since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn utc(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            super::utc(951_782_400_000_000_000),
            "2000-02-29 00:00:00 UTC"
        );
        assert_eq!(
            super::utc(1_795_649_401_000_000_000),
            "2026-11-25 23:30:01 UTC"
        );
    }
}
