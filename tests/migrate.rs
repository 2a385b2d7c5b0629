//! `migrate` from VuIO's SQLite databases of every era, against the fixtures and the oracle that
//! `scripts/make-vuio-fixtures.py` computes independently (tests/data/vuio/README.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mediadb::migrate::{self, MigrateError, MigrateOptions, MigrateReport};
use mediadb::playlist::{self, Target};
use mediadb::query::Field;
use mediadb::query::output::record_json;
use mediadb::{Database, Record};
use serde_json::{Value, json};

const ERAS: [&str; 4] = ["v1", "v2", "v6", "v6-upgraded"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vuio")
        .join(name)
}

/// Copies fixture `name` into `dir` so a test can see whether migrate writes beside it.
fn source(dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(format!("{name}.db"));
    std::fs::copy(fixture(&format!("{name}.db")), &to).expect("copy fixture");
    to
}

fn run(db: &mut Database, src: &Path, batch: usize) -> Result<MigrateReport, MigrateError> {
    migrate::migrate(db, src, &MigrateOptions { batch_size: batch }, &|_, _| ())
}

const KEYS: [&str; 24] = [
    "path",
    "size",
    "mtime_ns",
    "kind",
    "mime",
    "title",
    "artists",
    "album",
    "album_artist",
    "genres",
    "year",
    "track",
    "track_total",
    "disc",
    "disc_total",
    "compilation",
    "duration_ms",
    "bitrate",
    "sample_rate",
    "channels",
    "bit_depth",
    "musicbrainz_track_id",
    "musicbrainz_album_id",
    "tags",
];

/// The database's records in the oracle's shape, sorted by path.
fn records(db: &Database) -> Vec<Value> {
    let snap = db.snapshot();
    let mut out: Vec<Value> = snap
        .iter()
        .map(|r| {
            let r = r.expect("record verifies");
            let full = record_json(&r, &Field::ALL);
            let mut o = serde_json::Map::new();
            for k in KEYS {
                let v = full.get(k).cloned().unwrap_or(if k == "tags" {
                    json!([])
                } else {
                    Value::Null
                });
                o.insert(k.to_owned(), v);
            }
            Value::Object(o)
        })
        .collect();
    out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    out
}

fn playlists(db: &Database) -> Vec<Value> {
    let snap = db.snapshot();
    let mut all: Vec<Value> = snap
        .playlists()
        .expect("playlists verify")
        .iter()
        .map(|p| {
            let entries: Vec<Value> = p
                .entries
                .iter()
                .map(|e| {
                    let dangling = matches!(
                        playlist::resolve(&snap, e).expect("resolves"),
                        Target::Missing
                    );
                    json!({"path": String::from_utf8_lossy(&e.path), "dangling": dangling})
                })
                .collect();
            json!({
                "name": p.name,
                "description": p.description,
                "source_path": p.source_path.as_deref().map(String::from_utf8_lossy),
                "entries": entries,
            })
        })
        .collect();
    all.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    all
}

fn read_json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name)).expect("oracle file");
    serde_json::from_str(&text).expect("oracle JSON")
}

fn read_jsonl(name: &str) -> Vec<Value> {
    std::fs::read_to_string(fixture(name))
        .expect("oracle file")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("oracle JSON line"))
        .collect()
}

fn dir_listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn every_era_migrates_field_by_field_and_a_rerun_changes_nothing() {
    for era in ERAS {
        let src_dir = tempfile::tempdir().expect("tempdir");
        let src = source(src_dir.path(), era);
        let before = dir_listing(src_dir.path());
        let db_dir = tempfile::tempdir().expect("tempdir");
        let mut db = Database::create(db_dir.path().join("lib.mediadb")).expect("create");
        // A small batch size makes the run commit several batches.
        let report = run(&mut db, &src, 37).unwrap_or_else(|e| panic!("{era}: {e}"));
        assert_eq!(
            dir_listing(src_dir.path()),
            before,
            "{era}: migrate wrote beside the source"
        );

        let want = read_json(&format!("{era}.expected-report.json"));
        assert_eq!(json!(report.era), want["era"], "{era}");
        assert_eq!(
            json!(report.schema_version),
            want["schema_version"],
            "{era}"
        );
        assert_eq!(json!(report.rows_read), want["rows_read"], "{era}");
        assert_eq!(
            json!(report.records_written),
            want["records_written"],
            "{era}"
        );
        let mut skipped: BTreeMap<String, u64> = report
            .skipped
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        for (k, v) in &report.skipped_entries {
            skipped.insert((*k).to_owned(), *v);
        }
        assert_eq!(json!(skipped), want["skipped"], "{era}: skipped");
        assert_eq!(json!(report.playlists), want["playlists"], "{era}");
        assert_eq!(
            json!(report.playlist_entries),
            want["playlist_entries"],
            "{era}"
        );

        let got = records(&db);
        let expected = read_jsonl(&format!("{era}.expected.jsonl"));
        assert_eq!(got.len(), expected.len(), "{era}: record count");
        for (g, w) in got.iter().zip(&expected) {
            for k in KEYS {
                assert_eq!(g[k], w[k], "{era}: {} field {k}", w["path"]);
            }
        }
        let want_lists = read_json(&format!("{era}.expected-playlists.json"));
        assert_eq!(json!(playlists(&db)), want_lists, "{era}: playlists");

        // Again: nothing is written.
        let seq = db.snapshot().seq();
        let again = run(&mut db, &src, 1000).expect("rerun");
        assert_eq!(again.records_written, 0, "{era}: {again:?}");
        assert_eq!(again.playlists_written, 0, "{era}: {again:?}");
        assert_eq!(again.commits, 0, "{era}");
        assert_eq!(db.snapshot().seq(), seq, "{era}: a rerun committed");
        assert_eq!(records(&db), got, "{era}");

        let path = db.path().to_path_buf();
        drop(db);
        let v = mediadb::store::verify(&path, &|_, _| ()).expect("verify");
        assert!(v.is_clean(), "{era}: {v:?}");
    }
}

#[test]
fn unknown_and_newer_schemas_are_refused() {
    for name in ["future", "unknown"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = source(dir.path(), name);
        let mut db = Database::create(dir.path().join("lib.mediadb")).expect("create");
        match run(&mut db, &src, 100) {
            Err(MigrateError::Unsupported { detail, .. }) => {
                if name == "future" {
                    assert!(detail.contains("newer"), "{detail}");
                }
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(db.snapshot().seq(), 0, "{name}: nothing may be written");
    }
    // Not SQLite at all.
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![7u8; 8192]).expect("write");
    let mut db = Database::create(dir.path().join("lib.mediadb")).expect("create");
    assert!(matches!(
        run(&mut db, &junk, 100),
        Err(MigrateError::Unsupported { .. })
    ));
}

#[test]
fn scanned_records_that_are_newer_are_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = source(dir.path(), "v6");
    let expected = read_jsonl("v6.expected.jsonl");
    let first = &expected[0];
    let path = first["path"].as_str().expect("path").as_bytes().to_vec();
    let mut db = Database::create(dir.path().join("lib.mediadb")).expect("create");
    let scanned = Record {
        title: Some("From the file itself".into()),
        extractor_version: 3,
        mtime_ns: first["mtime_ns"].as_i64().expect("mtime"),
        inode: 99,
        ..Record::new(path.clone())
    };
    let mut b = db.batch().expect("batch");
    b.upsert(&scanned).expect("upsert");
    b.commit().expect("commit");
    let report = run(&mut db, &src, 1000).expect("migrate");
    assert_eq!(report.records_kept_newer, 1);
    let snap = db.snapshot();
    let got = snap.get(&path).expect("read").expect("present");
    assert_eq!(got.title(), Some("From the file itself"));
    assert_eq!(got.inode(), 99);
}

#[test]
fn a_source_in_wal_mode_is_read_with_its_log_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = source(dir.path(), "v6");
    let conn = rusqlite::Connection::open(&src).expect("open");
    conn.create_collation("natural_order", |a: &str, b: &str| a.cmp(b))
        .expect("collation");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
         INSERT INTO media_files (path, parent_path, filename, size, modified_secs, mime_type,
             mime_family, created_at_secs, updated_at_secs)
         VALUES ('/srv/music/wal/only-in-the-log.flac', '/srv/music/wal',
             'only-in-the-log.flac', 5, 1700000000, 'audio/flac', 'audio', 0, 0);",
    )
    .expect("write into the WAL");
    let wal = dir.path().join("v6.db-wal");
    assert!(std::fs::metadata(&wal).expect("wal").len() > 0);
    let before = std::fs::read(&src).expect("read");
    let db_dir = tempfile::tempdir().expect("tempdir");
    let mut db = Database::create(db_dir.path().join("lib.mediadb")).expect("create");
    run(&mut db, &src, 1000).expect("migrate");
    assert!(
        db.snapshot()
            .get(b"/srv/music/wal/only-in-the-log.flac")
            .expect("read")
            .is_some(),
        "the row committed to the WAL is migrated"
    );
    assert_eq!(std::fs::read(&src).expect("read"), before);
    drop(conn);
}

/// A path no scan would store is skipped with its reason, or, when it names its file another
/// way (`//`, `/./`, a `/` at its end), stored as a scan would store it: a record under a path
/// `import` refuses would never match its file, and `-0` would split one holding a NUL in two.
#[test]
fn paths_are_stored_as_a_scan_would_or_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = source(dir.path(), "v6");
    let conn = rusqlite::Connection::open(&src).expect("open source");
    let ids: Vec<i64> = {
        let mut q = conn
            .prepare("SELECT id FROM media_files ORDER BY id LIMIT 4")
            .expect("prepare");
        q.query_map([], |r| r.get(0))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect()
    };
    for (id, path) in ids
        .iter()
        .zip(["/m//a/./b.flac/", "/m/../m/c.flac", "/m/d\0e.flac", "//"])
    {
        conn.execute(
            "UPDATE media_files SET path = ?1 WHERE id = ?2",
            rusqlite::params![path, id],
        )
        .expect("update");
    }
    drop(conn);
    let mut db = Database::create(dir.path().join("lib.mediadb")).expect("create");
    let report = run(&mut db, &src, 1000).expect("migrate");
    for why in ["dot_dot_in_path", "nul_in_path", "not_a_file_path"] {
        assert_eq!(
            report.skipped.get(why),
            Some(&1),
            "{why}: {:?}",
            report.skipped
        );
    }
    let snap = db.snapshot();
    assert!(snap.get(b"/m/a/b.flac").expect("read").is_some());
    for r in snap.iter() {
        let r = r.expect("record");
        let p = r.path();
        assert!(
            !p.contains(&0) && !p.ends_with(b"/"),
            "{:?}",
            String::from_utf8_lossy(p)
        );
        assert!(
            p[1..]
                .split(|&b| b == b'/')
                .all(|c| !c.is_empty() && c != b"." && c != b".."),
            "{:?}",
            String::from_utf8_lossy(p)
        );
    }
}

/// A source in WAL mode with no log left (as VuIO leaves its database when it stops) is read
/// without a file made beside it, so a reader who may not write there can migrate it.
#[test]
fn a_source_in_wal_mode_without_a_log_gets_nothing_written_beside_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = source(dir.path(), "v1");
    let conn = rusqlite::Connection::open(&src).expect("open");
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .expect("WAL");
    assert_eq!(mode, "wal");
    drop(conn);
    let before = dir_listing(dir.path());
    assert!(
        before
            .keys()
            .all(|k| !k.ends_with("-wal") && !k.ends_with("-shm"))
    );
    let db_dir = tempfile::tempdir().expect("tempdir");
    let mut db = Database::create(db_dir.path().join("lib.mediadb")).expect("create");
    let report = run(&mut db, &src, 1000).expect("migrate");
    assert!(report.records_inserted > 0);
    assert_eq!(dir_listing(dir.path()), before);
}

/// A VuIO path written through a symbolic link is stored as a scan stores it, under the real
/// directory, so a scan after the migration finds the record rather than adding the file again.
#[test]
fn paths_through_a_symbolic_link_are_stored_as_a_scan_stores_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().canonicalize().expect("canonical");
    std::fs::create_dir(base.join("real")).expect("mkdir");
    std::os::unix::fs::symlink(base.join("real"), base.join("link")).expect("symlink");
    let src = source(&base, "v6");
    let conn = rusqlite::Connection::open(&src).expect("open source");
    let id: i64 = conn
        .query_row("SELECT id FROM media_files ORDER BY id LIMIT 1", [], |r| {
            r.get(0)
        })
        .expect("a row");
    let through_link = format!("{}/link/song.flac", base.display());
    conn.execute(
        "UPDATE media_files SET path = ?1 WHERE id = ?2",
        rusqlite::params![through_link, id],
    )
    .expect("update");
    drop(conn);
    let mut db = Database::create(base.join("lib.mediadb")).expect("create");
    run(&mut db, &src, 1000).expect("migrate");
    let snap = db.snapshot();
    let real = format!("{}/real/song.flac", base.display());
    assert!(snap.get(real.as_bytes()).expect("read").is_some());
    assert!(snap.get(through_link.as_bytes()).expect("read").is_none());
}
