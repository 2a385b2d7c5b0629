//! `mediadb playlist` end to end: import and export round trips (m3u, m3u8, pls, Latin-1,
//! relative paths), and a playlist that lives through a rescan, a file's removal and return,
//! and compaction.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_mediadb");

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
    String::from_utf8(o.stdout).expect("UTF-8 output")
}

/// A small library: three empty audio files (scan indexes them without opening them).
fn library(root: &Path) {
    for rel in ["A/01 one.flac", "A/02 two.flac", "B/été.mp3"] {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, b"").expect("write");
    }
}

/// A scanned [`library`] in a new temporary directory: the directory, its path, the database.
fn scanned() -> (tempfile::TempDir, String, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = dir.path().to_str().expect("utf-8").to_owned();
    library(dir.path());
    let db = dir.path().join("lib.mediadb");
    ok(&db, &["scan", &r]);
    (dir, r, db)
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn import_export_round_trips_in_every_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("lib");
    library(&root);
    let db = dir.path().join("lib.mediadb");
    ok(&db, &["scan", root.to_str().expect("utf-8")]);
    let r = root.to_str().expect("utf-8");

    // Latin-1 .m3u with relative, backslashed entries, an EXTINF title and a missing file.
    let mut m3u = b"#EXTM3U\r\n#EXTINF:61,Someone - One\r\nA\\01 one.flac\r\nB/".to_vec();
    m3u.extend_from_slice(b"\xe9t\xe9.mp3\r\n../elsewhere/gone.mp3\r\nA/02 two.flac\r\n");
    std::fs::write(root.join("list.m3u"), &m3u).expect("write");
    let o = mediadb(
        &db,
        &["playlist", "import", &format!("{r}/list.m3u"), "--json"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(report["entries"], 4);
    assert_eq!(report["matched"], 3);
    assert_eq!(
        report["not_in_database"][0],
        format!("{}/elsewhere/gone.mp3", dir.path().display())
    );

    let shown = ok(&db, &["playlist", "show", "list", "--format", "paths"]);
    let want = [
        format!("{r}/A/01 one.flac"),
        format!("{r}/B/été.mp3"),
        format!("{}/elsewhere/gone.mp3", dir.path().display()),
        format!("{r}/A/02 two.flac"),
    ];
    assert_eq!(lines(&shown), want);

    for format in ["m3u", "m3u8", "pls"] {
        let out = dir.path().join(format!("out.{format}"));
        ok(
            &db,
            &[
                "playlist",
                "export",
                "list",
                "-o",
                out.to_str().expect("utf-8"),
                "--relative-to",
                r,
            ],
        );
        let text = std::fs::read_to_string(&out).expect("read");
        if format == "pls" {
            assert!(text.starts_with("[playlist]"), "{text}");
            assert!(text.contains("NumberOfEntries=4"), "{text}");
        } else {
            assert!(text.starts_with("#EXTM3U"), "{text}");
            assert!(text.contains("#EXTINF:61,Someone - One"), "{text}");
        }
        assert!(text.contains("A/01 one.flac"), "{text}");
        assert!(!text.contains(r), "relative paths only: {text}");
        // Importing the export (it sits in the library root, as the paths are relative to it)
        // gives the same entries.
        let back = root.join(format!("back.{format}"));
        std::fs::copy(&out, &back).expect("copy");
        ok(&db, &["playlist", "import", back.to_str().expect("utf-8")]);
        let again = ok(&db, &["playlist", "show", "back", "--format", "paths"]);
        assert_eq!(lines(&again), want, "{format}");
        ok(&db, &["playlist", "delete", "back"]);
    }

    // Re-importing the same file replaces its entries instead of making a second playlist.
    std::fs::write(root.join("list.m3u"), b"A/02 two.flac\n").expect("write");
    ok(&db, &["playlist", "import", &format!("{r}/list.m3u")]);
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&db, &["playlist", "list", "--json"])).expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(
        lines(&ok(&db, &["playlist", "show", "list", "-f", "paths"])),
        [format!("{r}/A/02 two.flac")]
    );

    // `export` carries playlists and `import` restores them into another database.
    let backup = dir.path().join("backup.jsonl");
    ok(&db, &["export", "-o", backup.to_str().expect("utf-8")]);
    let other = dir.path().join("other.mediadb");
    ok(&other, &["import", backup.to_str().expect("utf-8")]);
    assert_eq!(
        ok(
            &other,
            &[
                "playlist", "show", "list", "-f", "csv", "--fields", "id,path"
            ]
        ),
        ok(
            &db,
            &[
                "playlist", "show", "list", "-f", "csv", "--fields", "id,path"
            ]
        )
    );
    // With their ids, which a media server may have handed out.
    assert_eq!(
        ok(&other, &["playlist", "list", "--json"]),
        ok(&db, &["playlist", "list", "--json"])
    );
}

#[test]
fn a_playlist_survives_rescans_removal_return_and_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("lib");
    library(&root);
    let db = dir.path().join("lib.mediadb");
    let r = root.to_str().expect("utf-8");
    ok(&db, &["scan", r]);
    ok(&db, &["playlist", "create", "Road", "-d", "for the car"]);
    ok(
        &db,
        &[
            "playlist",
            "add",
            "Road",
            &format!("{r}/B/été.mp3"),
            &format!("{r}/A/01 one.flac"),
            &format!("{r}/B/été.mp3"),
        ],
    );
    let ids = |db: &Path| {
        ok(
            db,
            &[
                "playlist", "show", "Road", "-f", "csv", "--fields", "id,path",
            ],
        )
    };
    let before = ids(&db);
    ok(&db, &["scan", r]);
    assert_eq!(ids(&db), before, "an unchanged rescan changes nothing");

    // The file goes: its entries stay, shown as missing with id 0.
    std::fs::rename(root.join("B/été.mp3"), dir.path().join("away.mp3")).expect("mv");
    ok(&db, &["scan", r]);
    let gone = ok(
        &db,
        &[
            "playlist",
            "show",
            "Road",
            "-f",
            "jsonl",
            "--fields",
            "id,path,error",
        ],
    );
    let rows: Vec<serde_json::Value> = gone
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["id"], 0);
    assert!(
        rows[0]["error"]
            .as_str()
            .expect("error")
            .contains("missing")
    );
    assert_eq!(rows[0]["path"], format!("{r}/B/été.mp3"));
    let listed: serde_json::Value =
        serde_json::from_str(ok(&db, &["playlist", "list", "--json"]).trim()).expect("json");
    assert_eq!(listed[0]["missing"], 2);

    // It comes back: the entries re-attach (to its new id).
    std::fs::rename(dir.path().join("away.mp3"), root.join("B/été.mp3")).expect("mv");
    ok(&db, &["scan", r]);
    let back = ok(
        &db,
        &[
            "playlist", "show", "Road", "-f", "jsonl", "--fields", "id,error",
        ],
    );
    for l in back.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        assert_ne!(v["id"], 0, "{l}");
        assert!(v["error"].is_null(), "{l}");
    }

    // Compaction keeps it all.
    let before = ids(&db);
    ok(&db, &["compact"]);
    assert_eq!(ids(&db), before);
    ok(&db, &["verify"]);
    // Its playlists frame counted, nothing is left for a compaction to give back.
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&db, &["stats", "--json"])).expect("JSON");
    assert_eq!(stats["reclaimable_bytes"], 0, "{stats}");

    // Remove by position and by path.
    ok(&db, &["playlist", "remove", "Road", "1"]);
    ok(
        &db,
        &["playlist", "remove", "Road", &format!("{r}/A/01 one.flac")],
    );
    let left = ok(&db, &["playlist", "show", "Road", "-f", "paths"]);
    assert_eq!(lines(&left), [format!("{r}/B/été.mp3")]);

    // Errors: what the database lacks or already has fails (exit 1) and changes nothing:
    // an unknown playlist, an entry or position it does not have, a taken name, an unindexed
    // file.
    let before = std::fs::read(&db).expect("read");
    for args in [
        &["playlist", "show", "Nope"][..],
        &["playlist", "delete", "Nope"],
        &["playlist", "add", "Nope", "/x.mp3"],
        &["playlist", "export", "Nope"],
        &["playlist", "remove", "Road", "9"],
        &["playlist", "remove", "Road", "/not/in/it.mp3"],
    ] {
        let o = mediadb(&db, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert_eq!(std::fs::read(&db).expect("read"), before, "{args:?}");
    }
    // An argument wrong whatever the database holds is a usage error.
    let o = mediadb(&db, &["playlist", "remove", "Road", "0"]);
    assert_eq!(o.status.code(), Some(2));
    let o = mediadb(&db, &["playlist", "add", "Road", "/not/indexed.mp3"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        lines(&ok(&db, &["playlist", "show", "Road", "-f", "paths"])).len(),
        1
    );
    let o = mediadb(&db, &["playlist", "create", "Road"]);
    assert_eq!(o.status.code(), Some(1), "a taken name");

    // A directory adds every indexed file under it, in path order (a trailing slash or not);
    // one with nothing indexed under it is refused like an unindexed file.
    ok(&db, &["playlist", "create", "Dirs"]);
    ok(
        &db,
        &[
            "playlist",
            "add",
            "Dirs",
            &format!("{r}/A/"),
            &format!("{r}/B"),
        ],
    );
    let added = ok(&db, &["playlist", "show", "Dirs", "-f", "paths"]);
    assert_eq!(
        lines(&added),
        [
            format!("{r}/A/01 one.flac"),
            format!("{r}/A/02 two.flac"),
            format!("{r}/B/été.mp3")
        ]
    );
    std::fs::create_dir(root.join("empty")).expect("mkdir");
    let o = mediadb(&db, &["playlist", "add", "Dirs", &format!("{r}/empty")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        lines(&ok(&db, &["playlist", "show", "Dirs", "-f", "paths"])).len(),
        3
    );
}

#[test]
fn a_utf16_playlist_is_read_and_binary_data_is_refused() {
    let (dir, r, db) = scanned();
    let r = r.as_str();
    // As Windows' Notepad saves "Unicode": UTF-16 LE with its byte-order mark, CRLF.
    let text = format!("#EXTM3U\r\n{r}/A/01 one.flac\r\n{r}/B/été.mp3\r\n");
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(dir.path().join("wide.m3u"), utf16).expect("write");
    ok(&db, &["playlist", "import", &format!("{r}/wide.m3u")]);
    let shown = ok(&db, &["playlist", "show", "wide", "--format", "paths"]);
    assert_eq!(
        lines(&shown),
        [format!("{r}/A/01 one.flac"), format!("{r}/B/été.mp3")]
    );
    // Random bytes named .m3u are no playlist of missing files: exit 2, nothing made.
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(junk.contains(&0));
    std::fs::write(dir.path().join("junk.m3u"), junk).expect("write");
    let o = mediadb(&db, &["playlist", "import", &format!("{r}/junk.m3u")]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not a playlist: it holds binary data"),
        "{err}"
    );
    let list = ok(&db, &["playlist", "list"]);
    assert!(list.contains("wide") && !list.contains("junk"), "{list}");
}

#[test]
fn no_export_writes_over_the_database_or_its_files() {
    let (dir, r, db) = scanned();
    let r = r.as_str();
    ok(&db, &["playlist", "create", "p"]);
    let link = dir.path().join("link.mediadb");
    std::os::unix::fs::symlink(&db, &link).expect("symlink");
    let before = std::fs::read(&db).expect("read");
    let idx = format!("{r}/lib.mediadb.idx");
    let dotted = format!("{r}/./lib.mediadb");
    let compact_idx = format!("{r}/lib.mediadb.compact.tmp.idx");
    for target in [
        db.to_str().expect("utf-8"),
        &idx,
        &dotted,
        link.to_str().expect("utf-8"),
        &compact_idx,
    ] {
        for args in [
            &["export", "-o", target][..],
            &["playlist", "export", "p", "-o", target][..],
            &["recover", target][..],
        ] {
            let o = mediadb(&db, args);
            assert_eq!(o.status.code(), Some(2), "{args:?}");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("that is the database"), "{args:?}: {err}");
        }
    }
    assert_eq!(std::fs::read(&db).expect("read"), before);
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("stat")
            .file_type()
            .is_symlink()
    );
    ok(&db, &["verify"]);
    // Beside it, under another name, is fine.
    ok(&db, &["export", "-o", &format!("{r}/backup.jsonl")]);
}

#[test]
fn dash_as_output_is_stdout() {
    let (_dir, r, db) = scanned();
    let r = r.as_str();
    ok(&db, &["playlist", "create", "p"]);
    ok(
        &db,
        &["playlist", "add", "p", &format!("{r}/A/01 one.flac")],
    );
    let cwd_dash = std::env::current_dir().expect("cwd").join("-");
    let jsonl = ok(&db, &["export", "-o", "-"]);
    // Three records and the playlist.
    assert_eq!(lines(&jsonl).len(), 4);
    let m3u = ok(
        &db,
        &["playlist", "export", "p", "--format", "m3u", "-o", "-"],
    );
    assert!(m3u.contains("01 one.flac"), "{m3u}");
    // `recover` writes a database, which stdout cannot be: refused, no file named `-`.
    let o = mediadb(&db, &["recover", "-"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a stream"));
    // Nor can it go into a directory that is not there.
    let o = mediadb(&db, &["recover", &format!("{r}/no/such/dir/out.mediadb")]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no/such/dir: the directory to recover into does not exist"),
        "{err}"
    );
    assert!(!cwd_dash.exists());
}

/// `path:` with a directory relative to the working directory, as `ls` takes one.
#[test]
fn a_relative_path_term_is_taken_from_the_working_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical");
    let r = root.to_str().expect("utf-8");
    library(&root);
    let db = root.join("lib.mediadb");
    ok(&db, &["scan", r]);
    let in_dir = |cwd: &Path, args: &[&str]| {
        let o = Command::new(BIN)
            .current_dir(cwd)
            .arg("--db")
            .arg(&db)
            .args(args)
            .env_remove("MEDIADB_DB")
            .output()
            .expect("runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).expect("UTF-8")
    };
    let a = in_dir(&root, &["query", "-f", "paths", "path:./A"]);
    assert_eq!(
        lines(&a),
        [format!("{r}/A/01 one.flac"), format!("{r}/A/02 two.flac")]
    );
    let not_a = in_dir(&root.join("A"), &["query", "-f", "paths", "^path:."]);
    assert_eq!(lines(&not_a), [format!("{r}/B/été.mp3")]);
    let up = in_dir(&root.join("B"), &["query", "-c", "path:../A"]);
    assert_eq!(up.trim(), "2");
    // Without `./`, a path term is a substring of the path, as before.
    assert_eq!(in_dir(&root, &["query", "-c", "path:A/0"]).trim(), "2");
}

/// A library reached through a symbolic link is stored under the real path (the scan follows
/// its roots to their canonical form); a path written through the link still finds its record
/// in `playlist add`, `playlist import` and `query path:`.
#[test]
fn paths_through_a_symlinked_root_find_their_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().canonicalize().expect("canonical");
    let real = base.join("real");
    library(&real);
    let link = base.join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let l = link.to_str().expect("utf-8");
    let db = base.join("lib.mediadb");
    ok(&db, &["scan", l]);
    let count = |args: &[&str]| ok(&db, args).trim().to_owned();
    assert_eq!(count(&["query", "-c", &format!("path:{l}/A")]), "2");
    ok(&db, &["playlist", "create", "p"]);
    ok(
        &db,
        &[
            "playlist",
            "add",
            "p",
            &format!("{l}/A/01 one.flac"),
            &format!("{l}/B"),
        ],
    );
    let shown = ok(&db, &["playlist", "show", "p", "--format", "paths"]);
    let r = real.to_str().expect("utf-8");
    assert_eq!(
        lines(&shown),
        [format!("{r}/A/01 one.flac"), format!("{r}/B/été.mp3")]
    );
    std::fs::write(base.join("l.m3u"), format!("{l}/A/02 two.flac\n")).expect("write");
    let o = mediadb(
        &db,
        &[
            "playlist",
            "import",
            base.join("l.m3u").to_str().expect("utf-8"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 in the database"));
}

/// Importing an export into the database it came from writes nothing: the records are stored
/// as they are already.
#[test]
fn importing_an_export_again_writes_nothing() {
    let (dir, _r, db) = scanned();
    let backup = dir.path().join("backup.jsonl");
    ok(&db, &["export", "-o", backup.to_str().expect("utf-8")]);
    let before = std::fs::read(&db).expect("read");
    let report: serde_json::Value = serde_json::from_str(&ok(
        &db,
        &["import", "--json", backup.to_str().expect("utf-8")],
    ))
    .expect("JSON");
    assert_eq!(
        (report["imported"].as_u64(), report["unchanged"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(std::fs::read(&db).expect("read"), before);
}

/// An import that fails before it commits anything leaves no new, empty database behind.
#[test]
fn a_failed_import_leaves_no_empty_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"path\": \"relative.mp3\"}\n").expect("write");
    let db = dir.path().join("new.mediadb");
    let o = mediadb(&db, &["import", bad.to_str().expect("utf-8")]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!db.exists());
    assert!(!dir.path().join("new.mediadb.lock").exists());
}

#[test]
fn export_then_import_keeps_playlist_ids() {
    // VuIO's fixture: five playlists whose ids do not follow their names' order.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("a.mediadb");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vuio/v6.db");
    ok(&db, &["migrate", src]);
    let before = ok(&db, &["playlist", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&before).expect("json");
    let ids: Vec<u64> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p["id"].as_u64())
        .collect();
    assert!(ids.len() >= 3 && !ids.is_sorted(), "{before}");
    let backup = dir.path().join("backup.jsonl");
    ok(&db, &["export", "-o", backup.to_str().expect("utf-8")]);
    let other = dir.path().join("b.mediadb");
    ok(&other, &["import", backup.to_str().expect("utf-8")]);
    assert_eq!(ok(&other, &["playlist", "list", "--json"]), before);
}
