//! Files written by an older format version are read as they are: a version-2 database
//! (records as `Record` tables) exports the same records as the build that wrote it, verifies
//! clean, and takes version-3 records beside its old ones through commits and compaction.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_mediadb");

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/format-v2")
        .join(name)
}

fn mediadb(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("MEDIADB_DB")
        .stdin(Stdio::null())
        .output()
        .expect("mediadb runs")
}

fn ok(db: &Path, args: &[&str]) -> String {
    let o = mediadb(db, args);
    assert!(
        o.status.success(),
        "mediadb {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf-8 output")
}

/// A private copy of the version-2 database (without its caches, which a reader rebuilds).
fn v2_copy(dir: &Path) -> PathBuf {
    let db = dir.join("library.mediadb");
    std::fs::copy(data("library.mediadb"), &db).expect("copy the v2 database");
    db
}

fn format_of(db: &Path) -> u64 {
    let stats: serde_json::Value =
        serde_json::from_str(&ok(db, &["stats", "--json"])).expect("stats --json");
    stats["format_version"].as_u64().expect("format_version")
}

#[test]
fn a_version_2_database_reads_as_the_build_that_wrote_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = v2_copy(dir.path());
    let want = std::fs::read_to_string(data("export.jsonl")).expect("expected export");
    assert_eq!(ok(&db, &["export"]), want, "every field of every record");
    let o = mediadb(&db, &["verify"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let q = ok(
        &db,
        &["query", "-f", "paths", "title:Together", "compilation:true"],
    );
    assert_eq!(
        q.lines().collect::<Vec<_>>(),
        ["/library/library/Various Artists/Shared Stage/04 Together.m4a"],
        "a query reads the old records' fields"
    );
}

#[test]
fn new_records_are_written_beside_old_ones_and_both_survive_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = v2_copy(dir.path());
    let old = std::fs::read_to_string(data("export.jsonl")).expect("expected export");
    // A new record and an update of an old one, written as version-3 records.
    let first = old.lines().nth(1).expect("a second record");
    let mut updated: serde_json::Value = serde_json::from_str(first).expect("json");
    updated["title"] = "Together (remaster)".into();
    updated["track"] = 0.into();
    updated["compilation"] = false.into();
    let mut added = updated.clone();
    added["path"] = "/library/new/added.flac".into();
    added["year"] = serde_json::Value::Null;
    added["has_cover"] = serde_json::Value::Null;
    assert_eq!(format_of(&db), 2, "reading writes nothing");
    let lines = format!("{updated}\n{added}\n");
    let input = dir.path().join("new.jsonl");
    std::fs::write(&input, &lines).expect("write jsonl");
    ok(&db, &["import", input.to_str().expect("utf-8 path")]);
    assert_eq!(format_of(&db), 3, "the first commit writes version-3 slots");

    let check = |when: &str| {
        let got = ok(&db, &["export"]);
        assert_eq!(got.lines().count(), old.lines().count() + 1, "{when}");
        for line in old.lines().filter(|l| *l != first) {
            assert!(
                got.contains(line),
                "{when}: old record kept as it was: {line}"
            );
        }
        let by_path = |p: &str| -> serde_json::Value {
            let line = got
                .lines()
                .find(|l| l.contains(&format!("\"path\":\"{p}\"")))
                .unwrap_or_else(|| panic!("{when}: {p} exported"));
            serde_json::from_str(line).expect("json")
        };
        let u = by_path(updated["path"].as_str().expect("path"));
        assert_eq!(u["title"], "Together (remaster)", "{when}");
        assert_eq!(u["track"], 0, "{when}: a present zero stays present");
        assert_eq!(u["compilation"], false, "{when}");
        assert_eq!(u["id"], updated["id"], "{when}: an update keeps its id");
        let a = by_path("/library/new/added.flac");
        assert!(
            a["year"].is_null() && a["has_cover"].is_null(),
            "{when}: absent stays absent"
        );
        assert_eq!(a["duration_ms"], updated["duration_ms"], "{when}");
        let o = mediadb(&db, &["verify"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{when}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    };
    check("after the commit");
    ok(&db, &["compact"]);
    check("after compaction");
}
