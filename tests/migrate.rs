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
    // Named directly, and through a symbolic link whose directory has no log beside it.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let link = elsewhere.path().join("link.db");
    std::os::unix::fs::symlink(&src, &link).expect("symlink");
    for given in [&src, &link] {
        let db_dir = tempfile::tempdir().expect("tempdir");
        let mut db = Database::create(db_dir.path().join("lib.mediadb")).expect("create");
        run(&mut db, given, 1000).expect("migrate");
        assert!(
            db.snapshot()
                .get(b"/srv/music/wal/only-in-the-log.flac")
                .expect("read")
                .is_some(),
            "{}: the row committed to the WAL is migrated",
            given.display()
        );
    }
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

/// Opens a copy of a fixture for writing, as VuIO would.
fn writer(src: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(src).expect("open source");
    conn.create_collation("natural_order", |a: &str, b: &str| a.cmp(b))
        .expect("collation");
    conn
}

/// Begins a transaction that rewrites every title with a cache of one page, so that SQLite
/// writes uncommitted pages into the database file (holding its exclusive lock) and the old
/// ones into the `-journal`.
fn spill_uncommitted_titles(conn: &rusqlite::Connection) {
    conn.execute_batch(
        "PRAGMA cache_size = 1; BEGIN;
         UPDATE media_files SET title = 'UNCOMMITTED ' || id;",
    )
    .expect("uncommitted update");
}

fn uncommitted_titles(db: &Database) -> usize {
    db.snapshot()
        .iter()
        .filter(|r| {
            r.as_ref()
                .expect("record")
                .title()
                .is_some_and(|t| t.starts_with("UNCOMMITTED"))
        })
        .count()
}

/// VuIO in the middle of a write transaction whose pages have reached the file: migrate waits
/// for it to end and reads what is committed, never the transaction's pages.
#[test]
fn a_write_in_progress_is_waited_for_and_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = source(dir.path(), "v1");
    let conn = writer(&src);
    spill_uncommitted_titles(&conn);
    assert!(dir.path().join("v1.db-journal").exists());
    let rollback = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        conn.execute_batch("ROLLBACK").expect("rollback");
    });
    let mut db = Database::create(dir.path().join("lib.mediadb")).expect("create");
    let report = run(&mut db, &src, 1000).expect("migrate");
    rollback.join().expect("writer thread");
    assert_eq!(report.records_inserted, 199, "{report:?}");
    assert_eq!(
        uncommitted_titles(&db),
        0,
        "an uncommitted title was migrated"
    );
}

/// VuIO killed in the middle of a write leaves a hot journal beside its database: migrate reads
/// the database as SQLite rolls it back (from a copy: a reader may not write the source), and
/// leaves both files as they were.
#[test]
fn a_hot_journal_is_rolled_back_not_read() {
    let live = tempfile::tempdir().expect("tempdir");
    let src = source(live.path(), "v1");
    let conn = writer(&src);
    spill_uncommitted_titles(&conn);
    // The files as a crash at this moment leaves them.
    let dir = tempfile::tempdir().expect("tempdir");
    let crashed = dir.path().join("v1.db");
    std::fs::copy(&src, &crashed).expect("copy db");
    std::fs::copy(
        live.path().join("v1.db-journal"),
        dir.path().join("v1.db-journal"),
    )
    .expect("copy journal");
    drop(conn);
    let before = dir_listing(dir.path());
    let db_dir = tempfile::tempdir().expect("tempdir");
    let mut db = Database::create(db_dir.path().join("lib.mediadb")).expect("create");
    let report = run(&mut db, &crashed, 1000).expect("migrate");
    assert_eq!(report.records_inserted, 199, "{report:?}");
    assert_eq!(
        uncommitted_titles(&db),
        0,
        "an uncommitted title was migrated"
    );
    assert_eq!(
        dir_listing(dir.path()),
        before,
        "migrate wrote beside the source"
    );
}

/// A writer that keeps its lock is not read through: migrate gives up after its wait, saying
/// that VuIO is writing the file and what to do.
#[test]
fn a_source_locked_by_a_writer_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = source(dir.path(), "v1");
    let conn = writer(&src);
    spill_uncommitted_titles(&conn);
    let mut db = Database::create(dir.path().join("lib.mediadb")).expect("create");
    let result = run(&mut db, &src, 1000);
    drop(conn);
    match result {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("v1.db") && msg.contains("stop VuIO"), "{msg}");
        }
        Ok(report) => panic!("read a locked source: {report:?}"),
    }
    assert_eq!(db.snapshot().seq(), 0, "nothing may be written");
}

/// Inserts a row into a copy of `v1.db` (sqlx era: no STRICT tables).
fn insert_v1_row(src: &Path, id: i64, path: rusqlite::types::Value, title: &str) {
    writer(src)
        .execute(
            "INSERT INTO media_files (id, path, parent_path, filename, size, modified, mime_type,
                 title, created_at, updated_at)
             VALUES (?1, ?2, '/h', 'f.mp3', 1, 1, 'audio/mpeg', ?3, 0, 0)",
            rusqlite::params![id, path, title],
        )
        .expect("insert");
}

/// A row whose record would be over the record limit (a tag that holds megabytes) is skipped and
/// counted, and the rows after it and the playlists are migrated.
#[test]
fn an_oversized_row_is_skipped_and_the_run_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = source(dir.path(), "v1");
    let huge = "x".repeat(3 << 20);
    insert_v1_row(&src, 5000, "/h/huge.mp3".to_owned().into(), &huge);
    insert_v1_row(&src, 5001, "/h/after.mp3".to_owned().into(), "after");
    let mut db = Database::create(dir.path().join("lib.mediadb")).expect("create");
    let report = run(&mut db, &src, 50).expect("migrate");
    assert_eq!(report.skipped.get("too_large"), Some(&1), "{report:?}");
    assert_eq!(report.records_inserted, 200, "{report:?}");
    assert_eq!(report.playlists, 4, "{report:?}");
    assert_eq!(report.playlists_written, 4, "{report:?}");
    assert!(
        report
            .skipped_rows
            .iter()
            .any(|r| r.id == 5000 && r.path == "/h/huge.mp3" && r.reason == "too_large"),
        "{:?}",
        report.skipped_rows
    );
    let snap = db.snapshot();
    assert!(snap.get(b"/h/after.mp3").expect("read").is_some());
    assert!(snap.get(b"/h/huge.mp3").expect("read").is_none());
    drop(snap);
    let again = run(&mut db, &src, 50).expect("rerun");
    assert_eq!(again.commits, 0, "{again:?}");
}

/// Rows whose paths name one file (`//`, a `/` at the end; VuIO's `UNIQUE(path)` takes both)
/// give one record: the newest row by its modification time, of equal times the lowest id. The
/// others are counted, each record once, and a rerun writes nothing.
#[test]
fn rows_that_name_one_path_give_one_record_and_a_rerun_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = source(dir.path(), "v1");
    let (p1, p2): (String, String) = writer(&src)
        .query_row(
            "SELECT (SELECT path FROM media_files WHERE id = 2),
                    (SELECT path FROM media_files WHERE id = 3)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("paths");
    let conn = writer(&src);
    // A newer row under `//`: it wins. A row of the same time under a trailing `/`, with a
    // higher id: the original wins.
    conn.execute(
        "INSERT INTO media_files (id, path, parent_path, filename, size, modified, mime_type,
             title, created_at, updated_at)
         SELECT 9001, ?1, parent_path, filename, size, modified + 10, mime_type, 'NEWER COPY',
             created_at, updated_at FROM media_files WHERE id = 2",
        [p1.replacen('/', "//", 2)],
    )
    .expect("insert");
    conn.execute(
        "INSERT INTO media_files (id, path, parent_path, filename, size, modified, mime_type,
             title, created_at, updated_at)
         SELECT 9002, ?1, parent_path, filename, size, modified, mime_type, 'SAME-TIME COPY',
             created_at, updated_at FROM media_files WHERE id = 3",
        [format!("{p2}/")],
    )
    .expect("insert");
    drop(conn);
    let mut db = Database::create(dir.path().join("lib.mediadb")).expect("create");
    let report = run(&mut db, &src, 37).expect("migrate");
    assert_eq!(report.rows_read, 201);
    assert_eq!(report.skipped.get("duplicate_path"), Some(&2), "{report:?}");
    assert_eq!(report.records_inserted, 199, "{report:?}");
    assert_eq!(report.records_written, 199, "{report:?}");
    let snap = db.snapshot();
    assert_eq!(snap.len(), 199);
    let title = |p: &str| {
        snap.get(p.as_bytes())
            .expect("read")
            .expect("present")
            .title()
            .map(str::to_owned)
    };
    assert_eq!(title(&p1).as_deref(), Some("NEWER COPY"));
    assert_ne!(title(&p2).as_deref(), Some("SAME-TIME COPY"));
    drop(snap);
    let records_before = records(&db);
    for _ in 0..2 {
        let again = run(&mut db, &src, 37).expect("rerun");
        assert_eq!(again.commits, 0, "{again:?}");
        assert_eq!(again.records_written, 0, "{again:?}");
        assert_eq!(again.skipped.get("duplicate_path"), Some(&2), "{again:?}");
        assert_eq!(records(&db), records_before);
    }
}

/// A table rebuilt without `UNIQUE` may hold a row twice, id and all: one record, counted once.
#[test]
fn a_row_stored_twice_gives_one_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = source(dir.path(), "v1");
    writer(&src)
        .execute_batch(
            "PRAGMA foreign_keys = OFF;
             CREATE TABLE mf2 AS SELECT * FROM media_files;
             DROP TABLE media_files; ALTER TABLE mf2 RENAME TO media_files;
             INSERT INTO media_files SELECT * FROM media_files;",
        )
        .expect("rebuild");
    let mut db = Database::create(dir.path().join("lib.mediadb")).expect("create");
    let report = run(&mut db, &src, 1000).expect("migrate");
    assert_eq!(report.rows_read, 398);
    assert_eq!(report.records_inserted, 199, "{report:?}");
    assert_eq!(
        report.skipped.get("duplicate_path"),
        Some(&199),
        "{report:?}"
    );
    let again = run(&mut db, &src, 1000).expect("rerun");
    assert_eq!(again.commits, 0, "{again:?}");
}

/// A path stored as a blob holds a name that is not UTF-8: it is migrated byte for byte (mediadb
/// paths are bytes), and a playlist entry naming its row finds the record.
#[test]
fn a_path_stored_as_a_blob_is_migrated_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = source(dir.path(), "v1");
    let raw = b"/h/caf\xe9.mp3".to_vec();
    insert_v1_row(&src, 5000, raw.clone().into(), "latin-1 name");
    writer(&src)
        .execute(
            "INSERT INTO playlist_entries (playlist_id, media_file_id, position, created_at)
             SELECT id, 5000, 1000, 0 FROM playlists ORDER BY id LIMIT 1",
            [],
        )
        .expect("entry");
    let mut db = Database::create(dir.path().join("lib.mediadb")).expect("create");
    let report = run(&mut db, &src, 1000).expect("migrate");
    assert_eq!(report.skipped.get("empty_path"), None, "{report:?}");
    assert_eq!(report.records_inserted, 200, "{report:?}");
    let snap = db.snapshot();
    let rec = snap
        .get(&raw)
        .expect("read")
        .expect("the blob path is a record");
    assert_eq!(rec.title(), Some("latin-1 name"));
    let found = snap
        .playlists()
        .expect("playlists")
        .iter()
        .flat_map(|p| p.entries.iter())
        .any(|e| e.path == raw && !matches!(playlist::resolve(&snap, e), Ok(Target::Missing)));
    assert!(found, "the playlist entry resolves to the record");
}
