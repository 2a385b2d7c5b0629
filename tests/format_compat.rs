//! Files written by an older format version are read as they are: a version-2 database
//! (records as `Record` tables) exports the same records as the build that wrote it, verifies
//! clean, and takes version-3 records beside its old ones through commits and compaction.

mod util;

use std::path::{Path, PathBuf};

use util::TestEnv;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/format-v2")
        .join(name)
}

/// A test environment whose database is a private copy of the version-2 one (without its
/// caches, which a reader rebuilds).
fn v2_env() -> TestEnv {
    let env = TestEnv::new();
    let db = env.db();
    std::fs::create_dir_all(db.parent().expect("db/")).expect("create db/");
    std::fs::copy(data("library.mediadb"), db).expect("copy the v2 database");
    env
}

/// stdout of `mediadb --db DB ARGS...`, which must succeed.
#[track_caller]
fn ok(env: &TestEnv, args: &[&str]) -> String {
    env.run(args).expect_code(0).stdout_text()
}

fn format_of(env: &TestEnv) -> u64 {
    let stats: serde_json::Value =
        serde_json::from_str(&ok(env, &["stats", "--json"])).expect("stats --json");
    stats["format_version"].as_u64().expect("format_version")
}

#[test]
fn a_version_2_database_reads_as_the_build_that_wrote_it() {
    let env = v2_env();
    let want = std::fs::read_to_string(data("export.jsonl")).expect("expected export");
    assert_eq!(ok(&env, &["export"]), want, "every field of every record");
    ok(&env, &["verify"]);
    let q = ok(
        &env,
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
    let env = v2_env();
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
    assert_eq!(format_of(&env), 2, "reading writes nothing");
    let lines = format!("{updated}\n{added}\n");
    let input = env.base().join("new.jsonl");
    std::fs::write(&input, &lines).expect("write jsonl");
    ok(&env, &["import", input.to_str().expect("utf-8 path")]);
    assert_eq!(
        format_of(&env),
        3,
        "the first commit writes version-3 slots"
    );

    let check = |when: &str| {
        let got = ok(&env, &["export"]);
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
        ok(&env, &["verify"]);
    };
    check("after the commit");
    ok(&env, &["compact"]);
    check("after compaction");
}
