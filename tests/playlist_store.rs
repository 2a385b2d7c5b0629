//! Playlists in the engine: stored, read back after reopen (with and without the checkpoint),
//! kept by compaction, checked by verify, and resolved against records as files come and go.

use mediadb::playlist::{self, Entry, Playlist, Target};
use mediadb::{Database, Record};

fn rec(path: &str) -> Record {
    Record::new(path.as_bytes().to_vec())
}

fn names(db: &Database) -> Vec<String> {
    let snap = db.snapshot();
    snap.playlists()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect()
}

#[test]
fn playlists_survive_reopen_compaction_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lib.mediadb");
    let mut db = Database::create(&path).unwrap();
    let mut b = db.batch().unwrap();
    let a = b.upsert(&rec("/m/a.flac")).unwrap();
    let c = b.upsert(&rec("/m/c.flac")).unwrap();
    let mix = Playlist {
        name: "Mix".into(),
        description: Some("evening".into()),
        entries: vec![
            Entry::new(a, "/m/a.flac"),
            Entry::new(c, "/m/c.flac"),
            Entry::new(a, "/m/a.flac"),
        ],
        ..Playlist::default()
    };
    let mix_id = b.put_playlist(&mix).unwrap();
    b.put_playlist(&Playlist {
        name: "Empty".into(),
        ..Playlist::default()
    })
    .unwrap();
    b.commit().unwrap();
    assert_ne!(mix_id, a);
    assert_ne!(mix_id, c);

    // A second playlist of the same name is refused; renaming to a free one works.
    let mut b = db.batch().unwrap();
    let dup = Playlist {
        name: "Mix".into(),
        ..Playlist::default()
    };
    assert!(b.put_playlist(&dup).is_err());
    // So is a name that is empty or blank.
    for name in ["", " \t "] {
        let blank = Playlist {
            name: name.into(),
            ..Playlist::default()
        };
        let e = b.put_playlist(&blank).expect_err("blank name");
        assert!(e.to_string().contains("not blank"), "{name:?}: {e}");
    }
    drop(b);

    // New ids never collide with the playlist's.
    let mut b = db.batch().unwrap();
    let d = b.upsert(&rec("/m/d.flac")).unwrap();
    b.remove(b"/m/c.flac").unwrap();
    b.commit().unwrap();
    assert!(d > mix_id);
    assert_eq!(names(&db), ["Empty", "Mix"]);
    drop(db);

    // Reopen with the checkpoint, then without it.
    for drop_cp in [false, true] {
        if drop_cp {
            std::fs::remove_file(dir.path().join("lib.mediadb.idx")).unwrap();
        }
        let db = Database::open_read_only(&path).unwrap();
        let snap = db.snapshot();
        let got = snap.playlist_by_name("Mix").unwrap().unwrap();
        assert_eq!(got.id, mix_id);
        assert_eq!(got.entries, mix.entries);
        assert_eq!(got.description.as_deref(), Some("evening"));
        // The removed file's entry dangles; the others resolve.
        let t: Vec<bool> = got
            .entries
            .iter()
            .map(|e| matches!(playlist::resolve(&snap, e).unwrap(), Target::Live(_)))
            .collect();
        assert_eq!(t, [true, false, true]);
    }
    let report = mediadb::store::verify(&path, &|_, _| ()).unwrap();
    assert!(report.is_clean(), "{report:?}");

    // The file comes back (with a new id): the dangling entry re-attaches by path.
    let mut db = Database::open(&path).unwrap();
    let mut b = db.batch().unwrap();
    let c2 = b.upsert(&rec("/m/c.flac")).unwrap();
    b.commit().unwrap();
    assert_ne!(c2, c);
    let snap = db.snapshot();
    let got = snap.playlist(mix_id).unwrap().unwrap();
    match playlist::resolve(&snap, &got.entries[1]).unwrap() {
        Target::Live(v) => assert_eq!(v.id(), c2),
        Target::Missing => panic!("the returned file must re-attach"),
    }

    // Compaction keeps playlists, their ids and entries.
    db.compact().unwrap();
    assert_eq!(names(&db), ["Empty", "Mix"]);
    assert_eq!(
        db.snapshot().playlist(mix_id).unwrap().unwrap().entries,
        mix.entries
    );
    drop(db);
    let report = mediadb::store::verify(&path, &|_, _| ()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    let db = Database::open(&path).unwrap();
    assert_eq!(names(&db), ["Empty", "Mix"]);

    // Delete.
    let mut db = db;
    let mut b = db.batch().unwrap();
    assert!(b.delete_playlist(mix_id));
    assert!(!b.delete_playlist(12345));
    b.commit().unwrap();
    assert_eq!(names(&db), ["Empty"]);
    drop(db);
    let db = Database::open_read_only(&path).unwrap();
    assert_eq!(names(&db), ["Empty"]);
    assert!(
        mediadb::store::verify(&path, &|_, _| ())
            .unwrap()
            .is_clean()
    );
    drop(db);

    // Renaming the database (its checkpoint keeps the old name) loses nothing.
    let moved = dir.path().join("renamed.mediadb");
    std::fs::rename(&path, &moved).unwrap();
    let db = Database::open(&moved).unwrap();
    assert_eq!(names(&db), ["Empty"]);
}

#[test]
fn recover_keeps_the_last_intact_version_of_each_playlist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lib.mediadb");
    let mut db = Database::create(&path).unwrap();
    let mut b = db.batch().unwrap();
    let a = b.upsert(&rec("/m/a.flac")).unwrap();
    let mut p = Playlist {
        name: "Mix".into(),
        entries: vec![Entry::new(a, "/m/a.flac")],
        ..Playlist::default()
    };
    p.id = b.put_playlist(&p).unwrap();
    let gone = b
        .put_playlist(&Playlist {
            name: "Gone".into(),
            ..Playlist::default()
        })
        .unwrap();
    b.commit().unwrap();
    let mut b = db.batch().unwrap();
    p.entries.push(Entry::new(0, "/m/never.flac"));
    b.put_playlist(&p).unwrap();
    b.delete_playlist(gone);
    b.commit().unwrap();
    drop(db);

    let out = dir.path().join("out.mediadb");
    let report = mediadb::store::recover(&path, &out, &|_, _| ()).unwrap();
    assert_eq!(report.playlists_kept, 1);
    let db = Database::open_read_only(&out).unwrap();
    let snap = db.snapshot();
    let got = snap.playlist_by_name("Mix").unwrap().unwrap();
    assert_eq!(got.entries.len(), 2);
    assert_eq!(got.entries[0].record_id, a);
    assert!(snap.playlist_by_name("Gone").unwrap().is_none());
}

#[test]
fn a_restored_playlist_keeps_its_id_when_that_id_was_never_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("restore.mediadb");
    let mut db = Database::create(&path).unwrap();
    let mut b = db.batch().unwrap();
    let mut recs: Vec<Record> = (0..5).map(|i| rec(&format!("/m/{i}.flac"))).collect();
    for (i, r) in recs.iter_mut().enumerate() {
        r.id = 10 + i as u64;
    }
    let ids = b.restore_many(&recs).unwrap();
    assert_eq!(ids, [10, 11, 12, 13, 14]);
    b.commit().unwrap();
    let named = |name: &str, id: u64| Playlist {
        id,
        name: name.into(),
        entries: vec![Entry::new(10, "/m/0.flac")],
        ..Playlist::default()
    };
    let mut b = db.batch().unwrap();
    // Free and above every id used: kept, in ascending order.
    assert_eq!(b.restore_playlist(&named("a", 15)).unwrap(), 15);
    assert_eq!(b.restore_playlist(&named("b", 17)).unwrap(), 17);
    // Below ids already handed out (13 is a record's; 16 lies below 17 now): a new id.
    let c = b.restore_playlist(&named("c", 13)).unwrap();
    let d = b.restore_playlist(&named("d", 16)).unwrap();
    assert_eq!((c, d), (18, 19));
    // Far past what this batch may hand out: a new id, not a jump of the id space.
    assert_eq!(b.restore_playlist(&named("e", u64::MAX)).unwrap(), 20);
    // A plain put_playlist still refuses an id no playlist has.
    assert!(b.put_playlist(&named("f", 1000)).is_err());
    b.commit().unwrap();
    // The id of a live playlist replaces it; a new id under a name taken is refused.
    let mut b = db.batch().unwrap();
    assert_eq!(b.restore_playlist(&named("a", 15)).unwrap(), 15);
    assert!(b.restore_playlist(&named("b", 99)).is_err());
    b.commit().unwrap();
    drop(db);
    let mut db = Database::open(&path).unwrap();
    let got: Vec<(u64, String)> = db
        .snapshot()
        .playlists()
        .unwrap()
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let want: Vec<(u64, String)> = [(15, "a"), (17, "b"), (18, "c"), (19, "d"), (20, "e")]
        .into_iter()
        .map(|(i, n)| (i, n.to_owned()))
        .collect();
    let mut got = got;
    got.sort();
    assert_eq!(got, want);
    let mut b = db.batch().unwrap();
    assert_eq!(
        b.upsert(&rec("/m/new.flac")).unwrap(),
        21,
        "ids are never reused"
    );
    drop(b);
    assert!(
        mediadb::store::verify(&path, &|_, _| ())
            .unwrap()
            .is_clean()
    );
}

#[test]
fn a_restored_id_at_any_distance_leaves_a_database_that_opens_and_verifies() {
    // Each batch may hand out only as many ids as its payload has ALIGN-byte units: an id
    // asked for past that is not kept, and one kept right at the edge must still open.
    let dir = tempfile::tempdir().unwrap();
    let mut kept = 0;
    for k in 0..120u64 {
        let path = dir.path().join(format!("edge-{k}.mediadb"));
        let mut db = Database::create(&path).unwrap();
        let mut b = db.batch().unwrap();
        let p = Playlist {
            id: 1 + k,
            name: format!("p{k}"),
            entries: vec![Entry::new(0, "/m/x.flac")],
            ..Playlist::default()
        };
        let id = b.restore_playlist(&p).unwrap();
        assert!(id == 1 + k || id == 1, "asked {}, got {id}", 1 + k);
        kept += u64::from(id == 1 + k && k > 0);
        b.commit().unwrap();
        drop(db);
        let mut db = Database::open(&path).unwrap();
        assert_eq!(db.snapshot().playlists().unwrap()[0].id, id);
        let mut b = db.batch().unwrap();
        assert_eq!(b.upsert(&rec("/m/y.flac")).unwrap(), id + 1);
        b.commit().unwrap();
        drop(db);
        let report = mediadb::store::verify(&path, &|_, _| ()).unwrap();
        assert!(report.is_clean(), "k {k}: {report:?}");
    }
    assert!(
        kept > 0 && kept < 119,
        "some ids past the bound ({kept} kept)"
    );
}
