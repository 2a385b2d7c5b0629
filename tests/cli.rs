//! The command line as a whole: the committed man page, shell completions, `--help` of every
//! subcommand, usage errors, and the shape of `stats --json`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use mediadb::{Database, Kind, OpenOptions, Record};
use serde_json::Value as Json;

const BIN: &str = env!("CARGO_BIN_EXE_mediadb");

fn mediadb(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("MEDIADB_DB")
        .stdin(Stdio::null())
        .output()
        .expect("mediadb runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn committed_man_pages_are_current() {
    let o = mediadb(&["man"]);
    assert!(o.status.success(), "mediadb man: {}", text(&o.stderr));
    assert!(text(&o.stdout).contains(".TH mediadb"), "roff output");
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let fresh = tempfile::tempdir().expect("tempdir");
    let dir = fresh.path().to_str().expect("utf-8");
    let o2 = mediadb(&["man", "--dir", dir]);
    assert!(
        o2.status.success(),
        "mediadb man --dir: {}",
        text(&o2.stderr)
    );
    let stale = "the clap definitions changed; regenerate the pages with\n\n    \
                 cargo run -q -- man --dir man\n";
    // The page on stdout is the main one of the directory.
    assert!(std::fs::read(fresh.path().join("mediadb.1")).expect("main page") == o.stdout);
    let names = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&committed), names(fresh.path()), "{stale}");
    for name in names(fresh.path()) {
        let want = std::fs::read(fresh.path().join(&name)).expect("read");
        let got = std::fs::read(committed.join(&name)).unwrap_or_default();
        assert!(got == want, "man/{}: {stale}", name.to_string_lossy());
    }
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let o = mediadb(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", text(&o.stderr));
        let script = text(&o.stdout);
        assert!(script.len() > 200, "{shell}: a real script: {script:?}");
        assert!(script.contains("mediadb"), "{shell}: names the command");
        for sub in ["query", "scan", "format", "group-by"] {
            assert!(script.contains(sub), "{shell}: completes {sub}");
        }
        assert!(o.stderr.is_empty(), "{shell}: {}", text(&o.stderr));
    }
    let o = mediadb(&["completions", "tcsh"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
    assert!(o.stdout.is_empty());
}

/// The subcommands `mediadb --help` lists (so new ones are covered without editing this).
fn subcommands() -> Vec<String> {
    let o = mediadb(&["--help"]);
    assert!(o.status.success());
    let help = text(&o.stdout);
    let mut in_commands = false;
    let mut out = Vec::new();
    for line in help.lines() {
        if line.starts_with("Commands:") {
            in_commands = true;
            continue;
        }
        if in_commands {
            if !line.starts_with("  ") {
                break;
            }
            let name = line.split_whitespace().next().expect("a name");
            if name != "help" {
                out.push(name.to_owned());
            }
        }
    }
    out
}

#[test]
fn every_subcommand_has_help_and_rejects_unknown_flags() {
    let subs = subcommands();
    for expected in [
        "scan",
        "query",
        "ls",
        "stats",
        "export",
        "import",
        "completions",
    ] {
        assert!(subs.iter().any(|s| s == expected), "{expected} in {subs:?}");
    }
    for top in [
        &["--help"][..],
        &["-h"][..],
        &["help"][..],
        &["--version"][..],
    ] {
        let o = mediadb(top);
        assert_eq!(o.status.code(), Some(0), "{top:?}");
        assert!(!o.stdout.is_empty(), "{top:?} prints to stdout");
    }
    for sub in &subs {
        for flag in ["--help", "-h"] {
            let o = mediadb(&[sub, flag]);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{sub} {flag}: {}",
                text(&o.stderr)
            );
            let help = text(&o.stdout);
            assert!(help.contains("Usage: mediadb"), "{sub} {flag}: {help}");
            assert!(o.stderr.is_empty(), "{sub} {flag}: help goes to stdout");
        }
        let o = mediadb(&["help", sub]);
        assert_eq!(o.status.code(), Some(0), "help {sub}");
        let o = mediadb(&[sub, "--no-such-flag"]);
        assert_eq!(o.status.code(), Some(2), "{sub} --no-such-flag");
        assert!(
            o.stdout.is_empty(),
            "{sub}: usage errors print nothing on stdout"
        );
        assert!(
            text(&o.stderr).contains("--no-such-flag"),
            "{sub}: {}",
            text(&o.stderr)
        );
    }
    for bad in [
        &["--no-such-flag"][..],
        &["no-such-command"][..],
        &[][..],
        &["query", "--format", "xml"][..],
        &["query", "--limit", "many"][..],
        &["query", "-0", "--format", "json"][..],
        &["query", "--count", "--group-by", "artist"][..],
        &["import"][..],
        &["scan"][..],
    ] {
        let o = mediadb(bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o.stderr));
        assert!(o.stdout.is_empty(), "{bad:?}");
    }
}

fn stats(db: &Path) -> Json {
    let o = Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(["stats", "--json"])
        .env_remove("MEDIADB_DB")
        .output()
        .expect("runs");
    assert!(o.status.success(), "stats: {}", text(&o.stderr));
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

fn check_stats_shape(v: &Json) {
    let obj = v.as_object().expect("an object");
    assert!(obj["path"].is_string(), "path: {v}");
    for k in [
        "format_version",
        "seq",
        "records",
        "media_bytes",
        "artists",
        "albums",
        "genres",
        "records_with_errors",
        "playlists",
        "next_id",
        "file_bytes",
        "committed_bytes",
        "live_bytes",
        "dead_bytes",
        "reclaimable_bytes",
        "created_unix_ns",
    ] {
        assert!(
            obj.get(k).is_some_and(Json::is_u64),
            "`{k}` is a whole number: {v}"
        );
    }
    let kinds = obj["by_kind"].as_object().expect("by_kind is an object");
    for k in ["audio", "video", "image", "playlist", "other"] {
        assert!(kinds.get(k).is_some_and(Json::is_u64), "by_kind.{k}: {v}");
    }
    let by_kind: u64 = kinds.values().map(|n| n.as_u64().expect("count")).sum();
    assert_eq!(by_kind, v["records"].as_u64().expect("records"));
    let n = |k: &str| v[k].as_u64().expect("number");
    assert!(n("committed_bytes") <= n("file_bytes"), "{v}");
    assert!(
        n("live_bytes") + n("dead_bytes") <= n("committed_bytes"),
        "{v}"
    );
    assert!(n("reclaimable_bytes") <= n("dead_bytes"), "{v}");
}

#[test]
fn stats_json_has_typed_fields_on_empty_and_filled_databases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("s.mediadb");
    drop(Database::create(&db).expect("create"));
    let empty = stats(&db);
    check_stats_shape(&empty);
    for k in [
        "records",
        "media_bytes",
        "artists",
        "albums",
        "genres",
        "records_with_errors",
        "playlists",
        "live_bytes",
    ] {
        assert_eq!(empty[k], 0, "{k} of an empty database: {empty}");
    }

    {
        let mut d = open_writer(&db);
        let mut b = d.batch().expect("batch");
        let rec = |p: &str, kind, artists: &[&str], album: Option<&str>, genres: &[&str]| Record {
            path: p.as_bytes().to_vec(),
            size: 1000,
            kind,
            artists: artists.iter().map(|s| (*s).to_owned()).collect(),
            album: album.map(str::to_owned),
            genres: genres.iter().map(|s| (*s).to_owned()).collect(),
            ..Record::default()
        };
        for r in [
            rec(
                "/m/a/1.flac",
                Kind::Audio,
                &["A", "B"],
                Some("X"),
                &["Rock"],
            ),
            rec(
                "/m/a/2.flac",
                Kind::Audio,
                &["A"],
                Some("X"),
                &["Rock", "Pop"],
            ),
            rec("/m/b/1.flac", Kind::Audio, &["C"], Some("Y"), &[]),
            rec("/m/v.mp4", Kind::Video, &[], None, &[]),
            rec("/m/c.jpg", Kind::Image, &[], None, &[]),
        ] {
            b.upsert(&r).expect("upsert");
        }
        let mut bad = rec("/m/bad.mp3", Kind::Audio, &[], None, &[]);
        bad.error = Some("truncated".into());
        b.upsert(&bad).expect("upsert");
        b.commit().expect("commit");
    }
    let full = stats(&db);
    check_stats_shape(&full);
    assert_eq!(full["records"], 6);
    assert_eq!(full["by_kind"]["audio"], 4);
    assert_eq!(full["by_kind"]["video"], 1);
    assert_eq!(full["by_kind"]["image"], 1);
    assert_eq!(full["media_bytes"], 6000);
    assert_eq!(full["artists"], 3);
    assert_eq!(full["albums"], 2);
    assert_eq!(full["genres"], 2);
    assert_eq!(full["records_with_errors"], 1);
    assert!(full["seq"].as_u64() > empty["seq"].as_u64());
    assert!(full["live_bytes"].as_u64() > Some(0));

    // The human form names the same numbers.
    let o = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .arg("stats")
        .env_remove("MEDIADB_DB")
        .output()
        .expect("runs");
    assert!(o.status.success());
    let human = text(&o.stdout);
    assert!(human.contains("records     6"), "{human}");

    // A missing database is an error, not an empty report.
    let o = Command::new(BIN)
        .arg("--db")
        .arg(dir.path().join("missing.mediadb"))
        .args(["stats", "--json"])
        .env_remove("MEDIADB_DB")
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty());
}

#[test]
fn count_is_capped_by_limit_and_ls_json_gives_exact_directory_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("c.mediadb");
    {
        let mut d = Database::create(&db).expect("create");
        let mut b = d.batch().expect("batch");
        for p in [&b"/m/a.flac"[..], b"/m/b.flac", b"/m/\xffdir/c.flac"] {
            b.upsert(&Record::new(p.to_vec())).expect("upsert");
        }
        b.commit().expect("commit");
    }
    let db_arg = db.to_str().expect("utf-8");
    let count = |extra: &[&str]| {
        let mut args = vec!["--db", db_arg, "query", "--count"];
        args.extend_from_slice(extra);
        let o = mediadb(&args);
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout).trim().to_owned()
    };
    assert_eq!(count(&[]), "3");
    assert_eq!(count(&["--limit", "2"]), "2");
    assert_eq!(count(&["--limit", "10"]), "3");

    let o = mediadb(&["--db", db_arg, "ls", "/m", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: Json = serde_json::from_slice(&o.stdout).expect("json");
    let d = &v["dirs"][0];
    assert_eq!(d["count"], 1);
    assert_eq!(d["path_b64"], "L20v/2Rpcg==", "{v}");
}

/// Opens `path` for writing, waiting a little for the lock. A handle this test has just dropped
/// can hold it a moment longer: a child that another test is spawning shares the lock file's
/// description from its fork until it execs.
fn open_writer(path: &Path) -> Database {
    let opts = OpenOptions {
        wait: std::time::Duration::from_secs(10),
        ..OpenOptions::default()
    };
    Database::open_with(path, &opts).expect("open for writing")
}

/// The default database: `$XDG_DATA_HOME/mediadb/library.mediadb`, a relative value ignored
/// (as the XDG specification says) for `$HOME/.local/share`; neither usable, a usage error.
#[test]
fn the_default_database_takes_absolute_locations_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("mkdir");
    let run = |xdg: Option<&str>, home: &str| {
        let mut c = Command::new(BIN);
        c.args(["query", "-c"])
            .current_dir(dir.path())
            .env_remove("MEDIADB_DB")
            .env("HOME", home);
        match xdg {
            Some(x) => c.env("XDG_DATA_HOME", x),
            None => c.env_remove("XDG_DATA_HOME"),
        };
        c.output().expect("runs")
    };
    let h = home.to_str().expect("utf-8");
    let o = run(Some("relative/data"), h);
    assert!(
        text(&o.stderr).contains(&format!("{h}/.local/share/mediadb/library.mediadb")),
        "{}",
        text(&o.stderr)
    );
    let o = run(None, "");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("no database path"));
}
