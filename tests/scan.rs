//! `mediadb scan` end to end: the real binary on trees built in temporary directories (see
//! `tests/util/mod.rs`), checked through the summary it prints and the database it leaves,
//! read back with the library.

mod util;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, SystemTime};

use mediadb::{Database, Kind};
use util::{Counts, Run, TestEnv, fixtures_library, show};

fn ids(env: &TestEnv) -> Vec<(Vec<u8>, u64)> {
    env.db_state()
        .into_iter()
        .map(|(p, _, id)| (p, id))
        .collect()
}

#[test]
fn add_modify_remove_rename_cycle() {
    let env = TestEnv::new();
    env.file_of_size("Artist/Album/cover.jpg", 100);
    env.file_of_size("Artist/notes.txt", 10);
    env.file_of_size("mix.m3u", 30);
    env.file("Artist/Album/empty.flac", b"");

    // Add.
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 4,
        added: 4,
        ..Counts::default()
    });
    env.assert_db(&[
        (b"Artist/Album/cover.jpg", 100),
        (b"Artist/Album/empty.flac", 0),
        (b"Artist/notes.txt", 10),
        (b"mix.m3u", 30),
    ]);
    let first_ids = ids(&env);
    let cover = env.record("Artist/Album/cover.jpg");
    assert_eq!(cover.kind, Kind::Image);
    assert_eq!(cover.mtime_ns, env.mtime_ns("Artist/Album/cover.jpg"));
    assert_eq!(
        cover.inode,
        fs::metadata(env.path("Artist/Album/cover.jpg"))
            .unwrap()
            .ino()
    );
    assert_eq!(env.record("mix.m3u").kind, Kind::Playlist);
    let empty = env.record("Artist/Album/empty.flac");
    assert_eq!(empty.kind, Kind::Audio);
    assert_eq!(
        empty.error, None,
        "an empty file is indexed without being opened"
    );

    // Size change: updated in place, same id.
    env.append("Artist/notes.txt", b"more");
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 4,
        updated: 1,
        unchanged: 3,
        ..Counts::default()
    });
    env.assert_db(&[
        (b"Artist/Album/cover.jpg", 100),
        (b"Artist/Album/empty.flac", 0),
        (b"Artist/notes.txt", 14),
        (b"mix.m3u", 30),
    ]);
    assert_eq!(ids(&env), first_ids, "an update keeps the record's id");

    // mtime-only change (same size, same inode): updated, the new mtime stored to the ns.
    let old = SystemTime::UNIX_EPOCH + Duration::new(1_000_000_000, 123_456_789);
    env.set_mtime("Artist/Album/cover.jpg", old);
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 4,
        updated: 1,
        unchanged: 3,
        ..Counts::default()
    });
    let cover2 = env.record("Artist/Album/cover.jpg");
    assert_eq!(cover2.mtime_ns, 1_000_000_000_123_456_789);
    assert_eq!((cover2.id, cover2.size), (cover.id, cover.size));

    // Replaced by a copy with the same size and mtime (a new inode, as rsync does): updated.
    let mix = env.path("mix.m3u");
    let mtime = fs::metadata(&mix).unwrap().modified().unwrap();
    let staged = env.base().join("mix.m3u.partial");
    fs::copy(&mix, &staged).unwrap();
    fs::File::options()
        .write(true)
        .open(&staged)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    fs::rename(&staged, &mix).unwrap();
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 4,
        updated: 1,
        unchanged: 3,
        ..Counts::default()
    });
    assert_eq!(
        env.record("mix.m3u").inode,
        fs::metadata(&mix).unwrap().ino()
    );
    assert_eq!(ids(&env), first_ids);

    // Remove.
    env.remove("mix.m3u");
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 3,
        removed: 1,
        unchanged: 3,
        ..Counts::default()
    });
    env.assert_db(&[
        (b"Artist/Album/cover.jpg", 100),
        (b"Artist/Album/empty.flac", 0),
        (b"Artist/notes.txt", 14),
    ]);

    // Rename: the old path goes, the new path is a new record with a never-used id.
    env.rename("Artist/notes.txt", "Artist/renamed.txt");
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 3,
        added: 1,
        removed: 1,
        unchanged: 2,
        ..Counts::default()
    });
    env.assert_db(&[
        (b"Artist/Album/cover.jpg", 100),
        (b"Artist/Album/empty.flac", 0),
        (b"Artist/renamed.txt", 14),
    ]);
    let max_old_id = first_ids.iter().map(|(_, id)| *id).max().unwrap();
    let renamed = env.record("Artist/renamed.txt");
    assert!(
        renamed.id > max_old_id,
        "ids are never reused: new id {} vs earlier ids {first_ids:?}",
        renamed.id
    );
    assert_eq!(env.record("Artist/Album/cover.jpg").id, cover.id);
    assert_eq!(env.record("Artist/Album/empty.flac").id, empty.id);
}

#[test]
fn unchanged_rescan_writes_nothing_and_force_rereads_everything() {
    let env = TestEnv::new();
    for i in 0..30 {
        env.file_of_size(format!("d{}/f{i:02}.txt", i % 3), i + 1);
    }
    let r = env.scan(&["--batch-size", "5"]);
    r.expect_code(0).expect_counts(Counts {
        files: 30,
        added: 30,
        ..Counts::default()
    });
    let seq = env.seq();
    assert_eq!(r.json()["seq"], seq, "the summary's seq is the database's");
    assert!(
        seq >= 6,
        "30 records in batches of 5 take 6 commits, got seq {seq}"
    );
    env.assert_db_matches_disk();
    let state = env.db_state();
    let bytes = env.db_bytes();

    let r = env.scan(&[]);
    r.expect_code(0).expect_counts(Counts {
        files: 30,
        unchanged: 30,
        ..Counts::default()
    });
    assert_eq!(r.json()["seq"], seq, "no commit for an unchanged tree");
    assert_eq!(env.seq(), seq);
    let after = env.db_bytes();
    assert_eq!(
        after.len(),
        bytes.len(),
        "an unchanged rescan grew the file"
    );
    assert!(
        after == bytes,
        "an unchanged rescan changed the database file"
    );

    // --force re-reads every file; what reads as its record says is not written again.
    env.scan(&["--force"]).expect_code(0).expect_counts(Counts {
        files: 30,
        unchanged: 30,
        ..Counts::default()
    });
    assert_eq!(env.db_state(), state);
    assert!(
        env.db_bytes() == bytes,
        "a forced rescan of an unchanged tree wrote"
    );
}

#[test]
fn force_finds_tags_changed_behind_an_unchanged_stat() {
    let env = TestEnv::new();
    let song = "song.mp3";
    fs::copy(
        fixtures_library().join("The Testers/Ninety Nine/07 Old School.mp3"),
        env.path(song),
    )
    .unwrap();
    env.scan(&[]).expect_code(0);
    assert_eq!(env.record(song).title.as_deref(), Some("Old School"));
    // The title rewritten in place, same length, and the mtime put back: size, mtime and
    // inode are as they were, so only --force can see it.
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(env.path(song))
        .unwrap();
    let mtime = file.metadata().unwrap().modified().unwrap();
    let mut bytes = fs::read(env.path(song)).unwrap();
    let at = bytes.windows(10).position(|w| w == b"Old School").unwrap();
    bytes[at..at + 10].copy_from_slice(b"New School");
    use std::os::unix::fs::FileExt;
    file.write_all_at(&bytes, 0).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 1,
        unchanged: 1,
        ..Counts::default()
    });
    assert_eq!(env.record(song).title.as_deref(), Some("Old School"));
    env.scan(&["--force"]).expect_code(0).expect_counts(Counts {
        files: 1,
        updated: 1,
        ..Counts::default()
    });
    assert_eq!(env.record(song).title.as_deref(), Some("New School"));
}

#[test]
fn fixture_tags_land_in_the_database() {
    let env = TestEnv::new();
    env.copy_tree(&fixtures_library(), "");
    let broken: Vec<Vec<u8>> = {
        let mut v = vec![
            env.abs("broken/truncated.flac"),
            env.abs("broken/bad-id3-header.mp3"),
            env.abs("broken/random-bytes.ogg"),
        ];
        v.sort();
        v
    };
    let r = env.scan(&[]);
    r.expect_code(3);
    let c = r.counts();
    assert_eq!((c.added, c.errors), (c.files, 3), "{}", r.describe());
    assert_eq!(r.problem_paths(), broken, "{}", r.describe());
    for p in &broken {
        assert!(
            r.stderr.contains(&format!("mediadb: {}: ", show(p))),
            "stderr lists {}\n{}",
            show(p),
            r.describe()
        );
    }
    env.assert_db_matches_disk();

    let recs = env.records();
    let mut with_error: Vec<Vec<u8>> = recs
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.path.clone())
        .collect();
    with_error.sort();
    assert_eq!(with_error, broken, "exactly the broken files have `error`");

    let flac = env.record("Björk/Homogenic/01 Jóga.flac");
    assert_eq!(flac.kind, Kind::Audio);
    assert_eq!(flac.title.as_deref(), Some("Jóga"));
    assert_eq!(flac.artists, ["Björk"]);
    assert_eq!(flac.album.as_deref(), Some("Homogenic"));
    assert_eq!(flac.album_artist.as_deref(), Some("Björk"));
    assert_eq!((flac.track, flac.track_total), (Some(1), Some(10)));
    assert_eq!(flac.year, Some(1997));
    assert_eq!(flac.genres, ["Electronic"]);
    assert_eq!(flac.has_cover, Some(true));
    assert_eq!(
        flac.musicbrainz_track_id.as_deref(),
        Some("1c0f9b3e-0000-4000-8000-000000000001")
    );
    assert_eq!(flac.sample_rate, Some(8000));
    assert_eq!(flac.error, None);

    let duet = env.record("Various Artists/Shared Stage/03 Duet.mp3");
    assert_eq!(duet.title.as_deref(), Some("Duet"));
    assert_eq!(duet.artists, ["Alice Example", "Bob Example"]);
    assert_eq!(duet.album_artist.as_deref(), Some("Various Artists"));
    assert_eq!((duet.track, duet.track_total), (Some(3), Some(12)));
    assert_eq!(duet.compilation, Some(true));
    assert_eq!(duet.genres, ["Pop", "Jazz"]);
    assert_eq!(
        duet.musicbrainz_album_id.as_deref(),
        Some("1c0f9b3e-0000-4000-8000-0000000000a1")
    );

    let ogg = env.record("日本語/テスト アルバム/02 日本語の歌.ogg");
    assert_eq!(ogg.title.as_deref(), Some("日本語の歌"));
    assert_eq!(ogg.artists, ["山田太郎", "Guest Singer"]);
    assert_eq!((ogg.track, ogg.track_total), (Some(3), Some(12)));
    assert_eq!((ogg.disc, ogg.disc_total), (Some(2), Some(3)));

    let v1 = env.record("The Testers/Ninety Nine/07 Old School.mp3");
    assert_eq!(v1.title.as_deref(), Some("Old School"));
    assert_eq!((v1.track, v1.year), (Some(7), Some(1985)));

    let video = env.record("video/Tiny Clip.mp4");
    assert_eq!(video.kind, Kind::Video);
    assert_eq!(video.title.as_deref(), Some("Tiny Clip"));
    assert_eq!(env.record("images/cover.png").kind, Kind::Image);
    assert_eq!(env.record("playlists/Mix.m3u").kind, Kind::Playlist);
}

#[test]
fn names_that_are_not_utf8_round_trip() {
    let env = TestEnv::new();
    let good: &[u8] = b"caf\xe9/ok \xff\xfe.txt";
    let bad: &[u8] = b"caf\xe9/bad \x80.ogg";
    let nfd = "Bjo\u{308}rk.txt"; // decomposed: stored as is, not normalised
    let nfc = "Bj\u{f6}rk.txt";
    env.file(good, b"hello");
    fs::copy(
        fixtures_library().join("broken/random-bytes.ogg"),
        env.path(bad),
    )
    .unwrap();
    env.file(nfd, b"d");
    env.file(nfc, b"c");

    let r = env.scan(&[]);
    r.expect_code(3).expect_counts(Counts {
        files: 4,
        added: 4,
        errors: 1,
        ..Counts::default()
    });
    env.assert_db(&[
        (good, 5),
        (bad, 2048),
        (nfd.as_bytes(), 1),
        (nfc.as_bytes(), 1),
    ]);
    // The stored bytes are the on-disk bytes, read back from the directory itself.
    let on_disk: Vec<Vec<u8>> = fs::read_dir(env.path(b"caf\xe9"))
        .unwrap()
        .map(|e| e.unwrap().path().into_os_string().into_encoded_bytes())
        .collect();
    for p in on_disk {
        let db = env.open();
        assert!(
            db.snapshot().get(&p).unwrap().is_some(),
            "no record with the exact bytes {}",
            show(&p)
        );
    }
    let problems = r.json()["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{}", r.describe());
    assert!(problems[0]["path"].is_string());
    assert!(
        problems[0]["path_b64"].is_string(),
        "a non-UTF-8 path carries path_b64: {}",
        problems[0]
    );
    assert_eq!(Run::path_of(&problems[0]), env.abs(bad));
    assert!(
        std::str::from_utf8(&r.stdout).is_ok(),
        "stdout stays valid UTF-8"
    );

    // A dry run lists new and gone non-UTF-8 paths exactly, via path_b64.
    let new: &[u8] = b"caf\xe9/new \xc0.txt";
    env.file(new, b"new");
    env.remove(good);
    let r = env.scan(&["--dry-run"]);
    r.expect_code(0);
    assert_eq!(r.planned("add"), vec![env.abs(new)], "{}", r.describe());
    assert_eq!(r.planned("remove"), vec![env.abs(good)], "{}", r.describe());
    for what in ["add", "remove"] {
        assert!(
            r.json()["planned"][what][0]["path_b64"].is_string(),
            "planned.{what} carries path_b64\n{}",
            r.describe()
        );
    }
    assert!(
        std::str::from_utf8(&r.stdout).is_ok(),
        "stdout is UTF-8 JSON"
    );

    env.scan(&[]).expect_code(0);
    env.assert_db(&[
        (new, 3),
        (bad, 2048),
        (nfd.as_bytes(), 1),
        (nfc.as_bytes(), 1),
    ]);
}

#[test]
fn fifos_are_skipped_without_blocking() {
    let env = TestEnv::new();
    env.file("a.txt", b"x");
    // Audio names: a scan that opened them would block forever (nobody writes to them).
    env.fifo("pipe.mp3");
    env.fifo("sub/pipe.flac");
    env.symlink("pipe.mp3", "link-to-pipe.mp3");
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 1,
        added: 1,
        ..Counts::default()
    });
    env.assert_db(&[(b"a.txt", 1)]);
    // Following symlinks reaches the FIFO through the link: still skipped unopened.
    env.scan(&["--follow-symlinks"])
        .expect_code(0)
        .expect_counts(Counts {
            files: 1,
            unchanged: 1,
            ..Counts::default()
        });
    env.assert_db(&[(b"a.txt", 1)]);
}

#[test]
fn a_tree_deeper_than_path_max_is_walked_to_the_bottom() {
    use rustix::fs::{CWD, Mode, OFlags, mkdirat, openat};
    let env = TestEnv::new();
    env.file("top.txt", b"x");
    // 700 levels of a 12-byte name: the file's path is over 9,000 bytes, past PATH_MAX (4096),
    // so it can only be made (and walked) a directory at a time, as `find` walks it.
    let name = "d".repeat(12);
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = openat(CWD, env.root(), flags, Mode::empty()).expect("open root");
    for _ in 0..700 {
        mkdirat(&dir, name.as_str(), Mode::from(0o755)).expect("mkdir");
        dir = openat(&dir, name.as_str(), flags, Mode::empty()).expect("open dir");
    }
    let create = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC;
    let f = openat(&dir, "deep.flac", create, Mode::from(0o644)).expect("create");
    rustix::io::write(&f, b"not really flac").expect("write");
    let deep = format!("{}/deep.flac", vec![name.as_str(); 700].join("/"));
    assert!(env.abs(&deep).len() > 9000);

    // The deep file is indexed; its unreadable tags are reported, as for any corrupt file.
    env.scan(&[]).expect_code(3).expect_counts(Counts {
        files: 2,
        added: 2,
        errors: 1,
        ..Counts::default()
    });
    env.assert_db(&[(b"top.txt", 1), (deep.as_bytes(), 15)]);
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 2,
        unchanged: 2,
        ..Counts::default()
    });
    // `verify --fs` finds it where it was indexed.
    let v = env.run(&["verify", "--fs", "--json"]);
    v.expect_code(0);
    let fs = &v.json()["fs"];
    assert_eq!(
        (fs["checked"].as_u64(), fs["unreadable"].as_u64()),
        (Some(2), Some(0)),
        "{fs}"
    );
    // A file gone since the scan: the database is sound but out of date, exit 3 (a script's
    // `verify --fs && ...` must not take it as in step), and a rescan brings it back to 0.
    // With -q (a cron job), a clean check prints nothing at all.
    let v = env.run(&["-q", "verify", "--fs"]);
    v.expect_code(0);
    assert!(v.stdout.is_empty() && v.stderr.is_empty(), "{v:?}");
    // JSON is data: printed all the same.
    let v = env.run(&["-q", "verify", "--fs", "--json"]);
    v.expect_code(0);
    assert_eq!(v.json()["fs"]["checked"].as_u64(), Some(2));
    std::fs::remove_file(std::ffi::OsStr::from_bytes(&env.abs("top.txt"))).expect("rm");
    let v = env.run(&["verify", "--fs"]);
    v.expect_code(3);
    let out = String::from_utf8_lossy(&v.stdout);
    assert!(out.contains("1 missing"), "{out}");
    assert!(v.stderr.contains("run `mediadb scan`"), "{}", v.stderr);
    // ... and one that found something prints its report.
    let v = env.run(&["-q", "verify", "--fs"]);
    v.expect_code(3);
    assert!(String::from_utf8_lossy(&v.stdout).contains("1 missing"));
    env.scan(&[]).expect_code(0);
    env.run(&["verify", "--fs"]).expect_code(0);
    // A damaged database: its records are not checked against the files, and it says so.
    let mut bytes = std::fs::read(env.db()).expect("read");
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    std::fs::write(env.db(), &bytes).expect("write");
    let v = env.run(&["verify", "--fs"]);
    v.expect_code(5);
    let out = String::from_utf8_lossy(&v.stdout);
    assert!(
        out.contains("not checked: the database is damaged"),
        "{out}"
    );
    let v = env.run(&["verify", "--fs", "--json"]);
    v.expect_code(5);
    assert_eq!(v.json()["fs_not_checked"], "the database is damaged");
}

#[test]
fn symlinks_are_followed_only_when_asked() {
    let mut env = TestEnv::new();
    env.file_of_size("real/a.txt", 3);
    env.symlink("real/a.txt", "link.txt");
    env.symlink("real", "linkdir");
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 1,
        added: 1,
        ..Counts::default()
    });
    env.assert_db(&[(b"real/a.txt", 3)]);

    env.use_db("follow.mediadb");
    env.scan(&["--follow-symlinks"])
        .expect_code(0)
        .expect_counts(Counts {
            files: 3,
            added: 3,
            ..Counts::default()
        });
    env.assert_db(&[(b"real/a.txt", 3), (b"link.txt", 3), (b"linkdir/a.txt", 3)]);
}

#[test]
fn symlink_loops_are_reported_and_the_scan_ends() {
    let env = TestEnv::new();
    env.file_of_size("a/x.txt", 4);
    env.symlink("..", "a/up"); // back to the root, an ancestor
    env.symlink(".", "a/self");
    env.scan(&[]).expect_code(0);
    env.assert_db(&[(b"a/x.txt", 4)]);

    let r = env.scan(&["--follow-symlinks"]);
    r.expect_code(3);
    assert_eq!(
        r.problem_paths(),
        vec![env.abs("a/self"), env.abs("a/up")],
        "{}",
        r.describe()
    );
    for p in ["a/self", "a/up"] {
        let msgs = r.problem_messages(&env.abs(p));
        assert!(msgs.iter().any(|m| m.contains("loop")), "{p}: {msgs:?}");
    }
    env.assert_db(&[(b"a/x.txt", 4)]);
}

#[test]
fn dangling_symlinks_are_reported_when_following() {
    let env = TestEnv::new();
    env.file("ok.txt", b"1");
    env.symlink("nowhere.mp3", "gone.mp3");
    let r = env.scan(&[]);
    r.expect_code(0);
    assert_eq!(r.problem_paths(), Vec::<Vec<u8>>::new());

    let r = env.scan(&["--follow-symlinks"]);
    r.expect_code(3);
    assert_eq!(r.problem_paths(), vec![env.abs("gone.mp3")]);
    assert!(
        r.problem_messages(&env.abs("gone.mp3"))[0].contains("dangling"),
        "{}",
        r.describe()
    );
    assert!(r.stderr.contains("gone.mp3"), "{}", r.describe());
    env.assert_db(&[(b"ok.txt", 1)]);
}

#[test]
fn hidden_names_nas_litter_and_exclude_globs() {
    let mut env = TestEnv::new();
    env.file("keep.txt", b"k");
    env.file(".hidden.txt", b"hh");
    env.file(".hdir/inside.txt", b"iii");
    env.file("@eaDir/thumb.jpg", b"tttt");
    env.file("Album/@eaDir/cover.jpg", b"ccccc");
    env.file("Album/01.txt", b"xxxxxx");
    env.file("Album/song.tmp", b"tmp1tmp");
    env.file("draft.tmp", b"tmp2tmp2");
    let base: &[(&[u8], u64)] = &[
        (b"keep.txt", 1),
        (b"Album/01.txt", 6),
        (b"Album/song.tmp", 7),
        (b"draft.tmp", 8),
    ];

    env.use_db("default.mediadb");
    env.scan(&[]).expect_code(0);
    env.assert_db(base);

    env.use_db("hidden.mediadb");
    env.scan(&["--hidden"]).expect_code(0);
    let mut want = base.to_vec();
    want.extend_from_slice(&[(b".hidden.txt", 2), (b".hdir/inside.txt", 3)]);
    env.assert_db(&want);

    env.use_db("litter.mediadb");
    env.scan(&["--no-default-excludes"]).expect_code(0);
    let mut want = base.to_vec();
    want.extend_from_slice(&[(b"@eaDir/thumb.jpg", 4), (b"Album/@eaDir/cover.jpg", 5)]);
    env.assert_db(&want);

    env.use_db("exclude.mediadb");
    env.scan(&["--exclude", "*.tmp"]).expect_code(0);
    env.assert_db(&[(b"keep.txt", 1), (b"Album/01.txt", 6)]);

    env.use_db("exclude-dir.mediadb");
    env.scan(&["-E", "Album", "--exclude", "*.tmp"])
        .expect_code(0);
    env.assert_db(&[(b"keep.txt", 1)]);

    // As fd and gitignore read them: a `/` at the end names a directory, and a pattern with a
    // `/` inside is relative to the root scanned.
    for (i, pat) in ["Album/", "./Album", "Album/*.tmp", "*/song.tmp", "Album/**"]
        .iter()
        .enumerate()
    {
        env.use_db(&format!("relative-{i}.mediadb"));
        env.scan(&["--exclude", pat]).expect_code(0);
        let want: &[(&[u8], u64)] = if pat.contains("tmp") {
            &[(b"keep.txt", 1), (b"Album/01.txt", 6), (b"draft.tmp", 8)]
        } else {
            &[(b"keep.txt", 1), (b"draft.tmp", 8)]
        };
        env.assert_db(want);
    }

    // An absolute pattern written through a symbolic link to the tree matches the tree.
    let link = env.base().join("link");
    std::os::unix::fs::symlink(env.root(), &link).expect("symlink");
    for (i, pat) in ["Album", "Album/*.tmp"].iter().enumerate() {
        env.use_db(&format!("through-link-{i}.mediadb"));
        let abs = format!("{}/{pat}", link.display());
        env.scan(&["--exclude", &abs]).expect_code(0);
        let want: &[(&[u8], u64)] = if pat.contains("tmp") {
            &[(b"keep.txt", 1), (b"Album/01.txt", 6), (b"draft.tmp", 8)]
        } else {
            &[(b"keep.txt", 1), (b"draft.tmp", 8)]
        };
        env.assert_db(want);
    }

    let r = env.scan(&["--exclude", "a[b"]);
    r.expect_code(2);
    assert!(r.stderr.contains("a[b"), "{}", r.describe());
}

#[test]
fn nested_and_repeated_roots_index_each_file_once() {
    let env = TestEnv::new();
    env.file_of_size("a/1.txt", 1);
    env.file_of_size("a/b/2.txt", 2);
    env.file_of_size("3.txt", 3);
    let root = env.root().to_path_buf();
    let r = env.run(&[
        "scan".as_ref(),
        root.as_os_str(),
        root.join("a").as_os_str(),
        root.join("a/b").as_os_str(),
        root.as_os_str(),
        "--json".as_ref(),
    ]);
    r.expect_code(0).expect_counts(Counts {
        files: 3,
        added: 3,
        ..Counts::default()
    });
    assert_eq!(r.json()["roots"], serde_json::json!([env.root()]));
    env.assert_db_matches_disk();
}

#[test]
fn a_missing_root_fails_and_removes_nothing() {
    let env = TestEnv::new();
    for i in 0..3 {
        env.file_of_size(format!("f{i}.txt"), 10 + i);
    }
    env.scan(&[]).expect_code(0);
    let bytes = env.db_bytes();

    // As if the volume were unmounted.
    let moved = env.base().join("lib-unmounted");
    fs::rename(env.root(), &moved).unwrap();
    for extra in [&[][..], &["--allow-mass-removal"][..]] {
        let r = env.scan(extra);
        r.expect_code(1);
        assert!(r.stdout.is_empty(), "{}", r.describe());
        assert!(
            r.stderr.contains(&env.root().display().to_string()),
            "the message names the root\n{}",
            r.describe()
        );
        assert!(env.db_bytes() == bytes, "the database changed");
    }

    // A root that is a file is no better.
    fs::write(env.root(), b"not a directory").unwrap();
    env.scan(&[]).expect_code(1);
    assert!(env.db_bytes() == bytes, "the database changed");

    fs::remove_file(env.root()).unwrap();
    fs::rename(&moved, env.root()).unwrap();
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 3,
        unchanged: 3,
        ..Counts::default()
    });
}

#[test]
fn an_emptied_root_is_not_wiped_without_allow_mass_removal() {
    let env = TestEnv::new();
    let files = ["a.txt", "b.txt", "sub/c.txt", "sub/deeper/d.txt", "e.txt"];
    for (i, f) in files.iter().enumerate() {
        env.file_of_size(f, i + 1);
    }
    env.scan(&[]).expect_code(0);
    let state = env.db_state();
    for f in files {
        env.remove(f); // the directories stay
    }
    let r = env.scan(&[]);
    r.expect_code(1).expect_counts(Counts::default());
    assert!(
        r.stderr.contains("--allow-mass-removal"),
        "{}",
        r.describe()
    );
    assert_eq!(env.db_state(), state, "nothing was removed");
    let refused = &r.json()["removal_refused"];
    assert_eq!(refused["would_remove"], 5, "{}", r.describe());
    assert_eq!(refused["records"], 5, "{}", r.describe());

    let r = env.scan(&["--allow-mass-removal"]);
    r.expect_code(0).expect_counts(Counts {
        removed: 5,
        ..Counts::default()
    });
    assert!(r.json()["removal_refused"].is_null());
    assert_eq!(env.db_state(), vec![]);
}

#[test]
fn renaming_every_file_of_a_small_root_is_not_a_mass_removal() {
    // The root does not look empty (it has files), and fewer than 20 records go.
    let env = TestEnv::new();
    for f in ["a.txt", "b.txt", "c.txt"] {
        env.file(f, f.as_bytes());
    }
    env.scan(&[]).expect_code(0);
    for f in ["a.txt", "b.txt", "c.txt"] {
        env.rename(f, format!("renamed-{f}"));
    }
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 3,
        added: 3,
        removed: 3,
        ..Counts::default()
    });
    env.assert_db_matches_disk();
}

#[test]
fn mass_removal_guard() {
    let env = TestEnv::new();
    // A sibling root whose name extends this root's ("lib2" vs "lib"): never touched.
    let sibling = env.base().join("lib2");
    fs::create_dir(&sibling).unwrap();
    for i in 0..3 {
        fs::write(sibling.join(format!("s{i}.txt")), b"sib").unwrap();
    }
    env.run(&["scan".as_ref(), sibling.as_os_str()])
        .expect_code(0);

    let name = |i: usize| format!("f{i:02}.txt");
    for i in 0..60 {
        env.file_of_size(name(i), i);
    }
    env.scan(&[]).expect_code(0);

    // 25 of 60: more than 20 but not more than half: allowed.
    for i in 0..25 {
        env.remove(name(i));
    }
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 35,
        removed: 25,
        unchanged: 35,
        ..Counts::default()
    });

    // 21 of 35: more than 20 and more than half: refused, but the new file is committed.
    for i in 25..46 {
        env.remove(name(i));
    }
    env.file("new.txt", b"new");
    let r = env.scan(&[]);
    r.expect_code(1).expect_counts(Counts {
        files: 15,
        added: 1,
        unchanged: 14,
        ..Counts::default()
    });
    assert!(
        r.stderr.contains("21 of its 35") && r.stderr.contains("--allow-mass-removal"),
        "{}",
        r.describe()
    );
    assert_eq!(
        env.db_state().len(),
        3 + 36,
        "nothing removed, new.txt added"
    );
    assert!(
        env.open()
            .snapshot()
            .get(&env.abs("new.txt"))
            .unwrap()
            .is_some()
    );

    env.scan(&[]).expect_code(1);
    env.scan(&["--allow-mass-removal"])
        .expect_code(0)
        .expect_counts(Counts {
            files: 15,
            removed: 21,
            unchanged: 15,
            ..Counts::default()
        });
    let state = env.db_state();
    let mut on_disk: Vec<Vec<u8>> = (46..60).map(|i| env.abs(name(i))).collect();
    on_disk.push(env.abs("new.txt"));
    for i in 0..3 {
        on_disk.push(
            sibling
                .join(format!("s{i}.txt"))
                .into_os_string()
                .into_encoded_bytes(),
        );
    }
    on_disk.sort();
    let got: Vec<Vec<u8>> = state.into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(
        got.iter().map(|p| show(p)).collect::<Vec<_>>(),
        on_disk.iter().map(|p| show(p)).collect::<Vec<_>>()
    );
}

#[test]
fn an_unreadable_directory_protects_its_records() {
    let mut env = TestEnv::new();
    env.file_of_size("open/a.txt", 1);
    env.file_of_size("open/b.txt", 2);
    env.file_of_size("locked/c.txt", 3);
    env.file_of_size("locked/deep/d.txt", 4);
    // Root ignores permission bits, so chmod 000 would not make anything unreadable for it:
    // then the binary runs as `nobody`, for whom the bits do bind.
    if env.permissions_ignored() && !env.run_unprivileged() {
        eprintln!(
            "SKIPPED an_unreadable_directory_protects_its_records: running as root and cannot \
             run the binary as another user here, so no directory can be made unreadable"
        );
        return;
    }
    env.scan(&[]).expect_code(0);
    let chmod = |p: &std::path::Path, mode| {
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap()
    };

    let locked = env.path("locked");
    chmod(&locked, 0o000);
    env.remove("open/b.txt");
    let r = env.scan(&[]);
    chmod(&locked, 0o755);
    r.expect_code(3);
    assert_eq!(
        r.problem_paths(),
        vec![env.abs("locked")],
        "{}",
        r.describe()
    );
    assert_eq!(
        r.counts().removed,
        1,
        "open/b.txt is really gone\n{}",
        r.describe()
    );
    env.assert_db(&[
        (b"open/a.txt", 1),
        (b"locked/c.txt", 3),
        (b"locked/deep/d.txt", 4),
    ]);

    // A directory deeper down, too.
    let deep = env.path("locked/deep");
    chmod(&deep, 0o000);
    let r = env.scan(&[]);
    chmod(&deep, 0o755);
    r.expect_code(3);
    assert_eq!(r.problem_paths(), vec![env.abs("locked/deep")]);
    assert_eq!(r.counts().removed, 0);
    env.assert_db_matches_disk();

    // An unreadable root: a failure, nothing removed.
    let bytes = env.db_bytes();
    chmod(env.root(), 0o000);
    let r = env.scan(&[]);
    chmod(env.root(), 0o755);
    r.expect_code(1);
    assert!(env.db_bytes() == bytes, "the database changed");

    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 3,
        unchanged: 3,
        ..Counts::default()
    });
}

#[test]
fn dry_run_lists_changes_and_writes_nothing() {
    let env = TestEnv::new();
    env.file("keep.txt", b"kkk");
    env.file("change.txt", b"cccc");
    env.file("gone.txt", b"ggggg");
    env.scan(&[]).expect_code(0);
    env.file("new.txt", b"nnnnnn");
    env.append("change.txt", b"!!");
    env.remove("gone.txt");
    let bytes = env.db_bytes();

    let root = env.root().as_os_str().to_owned();
    let r = env.run(&["scan".as_ref(), root.as_os_str(), "--dry-run".as_ref()]);
    r.expect_code(0);
    let lines: Vec<String> = r.stdout_text().lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            format!("+ {}", show(&env.abs("new.txt"))),
            format!("~ {}", show(&env.abs("change.txt"))),
            format!("- {}", show(&env.abs("gone.txt"))),
        ],
        "{}",
        r.describe()
    );
    assert!(env.db_bytes() == bytes, "a dry run changed the database");

    let r = env.scan(&["--dry-run"]);
    r.expect_code(0).expect_counts(Counts {
        files: 3,
        added: 1,
        updated: 1,
        removed: 1,
        unchanged: 1,
        errors: 0,
    });
    assert_eq!(r.json()["dry_run"], true);
    assert_eq!(r.planned("add"), vec![env.abs("new.txt")]);
    assert_eq!(r.planned("update"), vec![env.abs("change.txt")]);
    assert_eq!(r.planned("remove"), vec![env.abs("gone.txt")]);
    assert!(env.db_bytes() == bytes, "a dry run changed the database");

    // The real scan does what the dry run said.
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 3,
        added: 1,
        updated: 1,
        removed: 1,
        unchanged: 1,
        errors: 0,
    });
    env.assert_db_matches_disk();
}

#[test]
fn dry_run_without_a_database_creates_nothing() {
    let mut env = TestEnv::new();
    env.file("a.txt", b"a");
    env.file("b/c.txt", b"c");
    env.use_db("not-yet/library.mediadb");
    let r = env.scan(&["--dry-run"]);
    r.expect_code(0).expect_counts(Counts {
        files: 2,
        added: 2,
        ..Counts::default()
    });
    assert_eq!(r.planned("add"), vec![env.abs("a.txt"), env.abs("b/c.txt")]);
    assert!(!env.db().exists(), "a dry run created the database");
    let dir = env.db().parent().unwrap();
    assert!(
        !dir.exists(),
        "a dry run created the database's directory {}",
        dir.display()
    );
}

#[test]
fn a_busy_database_exits_4_and_wait_succeeds_once_released() {
    let env = TestEnv::new();
    env.file("a.txt", b"a");
    env.scan(&[]).expect_code(0);

    let holder = Database::open(env.db()).expect("open for writing");
    let r = env.scan(&[]);
    r.expect_code(4);
    assert!(
        r.stderr.contains(&env.db().display().to_string()),
        "the message names the database\n{}",
        r.describe()
    );
    assert!(r.stdout.is_empty(), "{}", r.describe());
    // A dry run takes no lock.
    env.scan(&["--dry-run"]).expect_code(0);

    env.file("late.txt", b"late");
    let root = env.root().as_os_str().to_owned();
    let mut waiting = env.spawn(&[
        "scan".as_ref(),
        root.as_os_str(),
        "--json".as_ref(),
        "--wait".as_ref(),
        "5".as_ref(),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !waiting.has_exited(),
        "scan --wait 5 ended while the lock was held"
    );
    drop(holder);
    waiting.finish().expect_code(0).expect_counts(Counts {
        files: 2,
        added: 1,
        unchanged: 1,
        ..Counts::default()
    });
    env.assert_db_matches_disk();
}

#[test]
fn a_killed_scan_keeps_its_commits_and_the_rerun_completes_exactly() {
    const DIRS: usize = 40;
    const PER_DIR: usize = 500;
    const N: u64 = (DIRS * PER_DIR) as u64;
    let env = TestEnv::new();
    for d in 0..DIRS {
        let dir = env.dir(format!("d{d:02}"));
        for f in 0..PER_DIR {
            let n = d * PER_DIR + f;
            fs::write(dir.join(format!("f{f:03}.txt")), &b"0123456789"[..n % 11]).unwrap();
        }
    }
    let root = env.root().as_os_str().to_owned();
    let scan_args = |json: bool| {
        let mut a = vec![
            "scan".into(),
            root.clone(),
            "--batch-size".into(),
            "500".into(),
        ];
        if json {
            a.push(std::ffi::OsString::from("--json"));
        }
        a
    };

    // Twice: start a scan and kill -9 it as soon as it has committed something new (or it
    // ended on its own); what it committed survives, and the next run continues from there.
    let mut committed = 0;
    for round in 1..=2 {
        let mut child = env.spawn(&scan_args(false));
        loop {
            let visible = Database::open_read_only(env.db()).map_or(0, |db| db.snapshot().len());
            if visible > committed || child.has_exited() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let code = child.kill9();
        let now = Database::open_read_only(env.db())
            .expect("opens after kill -9")
            .snapshot()
            .len();
        eprintln!("round {round}: killed (exit {code:?}) with {now} of {N} records committed");
        assert!(now >= committed, "a commit was lost: {committed} -> {now}");
        committed = now;
        // What was committed is true: each record a real file, with its size, once.
        for (path, size, _) in env.db_state() {
            let on_disk = fs::metadata(std::ffi::OsStr::from_bytes(&path))
                .unwrap()
                .len();
            assert_eq!(size, on_disk, "{}", show(&path));
        }
    }

    let r = env.run(&scan_args(true));
    r.expect_code(0).expect_counts(Counts {
        files: N,
        added: N - committed,
        unchanged: committed,
        ..Counts::default()
    });
    env.assert_db_matches_disk();
    // The killed writer's lock is gone and the file opens for writing, every record readable.
    let db = Database::open(env.db()).expect("opens for writing");
    let snap = db.snapshot();
    assert_eq!(snap.len(), N);
    assert_eq!(snap.iter().filter(|r| r.is_ok()).count() as u64, N);
}

#[test]
fn json_is_one_object_on_stdout_and_the_summary_goes_to_stderr() {
    let env = TestEnv::new();
    env.file("a.txt", b"a");
    env.file("b/c.txt", b"c");
    let root = env.root().as_os_str().to_owned();
    let scan = |pre: &[&str], post: &[&str]| {
        let mut a: Vec<std::ffi::OsString> = pre.iter().map(Into::into).collect();
        a.push("scan".into());
        a.push(root.clone());
        a.extend(post.iter().map(Into::into));
        env.run(&a)
    };

    let r = scan(&[], &["--json"]);
    r.expect_code(0);
    let text = r.stdout_text();
    assert_eq!(text.lines().count(), 1, "one line\n{}", r.describe());
    assert!(text.ends_with('\n'));
    let obj = r.json().as_object().expect("an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "added",
            "dry_run",
            "elapsed_secs",
            "errors",
            "files",
            "files_per_sec",
            "problems",
            "removal_refused",
            "removed",
            "roots",
            "seq",
            "unchanged",
            "updated"
        ]
    );
    assert_eq!(r.json()["roots"], serde_json::json!([env.root()]));
    assert_eq!(r.json()["dry_run"], false);
    assert!(r.json()["elapsed_secs"].is_f64() && r.json()["files_per_sec"].is_number());
    let err_lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(err_lines.len(), 1, "{}", r.describe());
    assert!(
        err_lines[0].starts_with(
            "mediadb: scanned 2 files: 2 added, 0 updated, 0 removed, 0 unchanged, 0 errors"
        ),
        "{}",
        r.describe()
    );

    let r = scan(&["-q"], &["--json"]);
    r.expect_code(0).expect_counts(Counts {
        files: 2,
        unchanged: 2,
        ..Counts::default()
    });
    assert_eq!(r.stderr, "", "-q: nothing on stderr");

    let r = scan(&[], &[]);
    r.expect_code(0);
    assert!(
        r.stdout.is_empty(),
        "no data, nothing on stdout\n{}",
        r.describe()
    );
    assert!(
        r.stderr.starts_with("mediadb: scanned 2 files"),
        "{}",
        r.describe()
    );
    assert_eq!(r.stderr.lines().count(), 1);

    let r = scan(&["-q"], &[]);
    r.expect_code(0);
    assert!(
        r.stdout.is_empty() && r.stderr.is_empty(),
        "{}",
        r.describe()
    );
}

#[test]
fn an_older_extractor_s_failed_reads_are_read_again_and_its_clean_ones_kept() {
    let env = TestEnv::new();
    fs::copy(
        fixtures_library().join("Björk/Homogenic/01 Jóga.flac"),
        env.path("clean.flac"),
    )
    .unwrap();
    fs::copy(
        fixtures_library().join("broken/truncated.flac"),
        env.path("broken.flac"),
    )
    .unwrap();
    env.scan(&[]).expect_code(3).expect_counts(Counts {
        files: 2,
        added: 2,
        errors: 1,
        ..Counts::default()
    });
    // Both records as extractor version 1 left them, the stat fields unchanged.
    {
        let mut db = Database::open(env.db()).unwrap();
        let mut batch = db.batch().unwrap();
        for name in ["clean.flac", "broken.flac"] {
            let mut rec = env.record(name);
            rec.extractor_version = 1;
            batch.upsert(&rec).unwrap();
        }
        batch.commit().unwrap();
    }
    assert!(env.record("broken.flac").error.is_some());
    // The failed read is retried under the current extractor; the clean one stays as it is.
    env.scan(&[]).expect_code(3).expect_counts(Counts {
        files: 2,
        updated: 1,
        unchanged: 1,
        errors: 1,
        ..Counts::default()
    });
    assert_eq!(env.record("clean.flac").extractor_version, 1);
    assert!(env.record("broken.flac").extractor_version > 1);
    // Now both are current.
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 2,
        unchanged: 2,
        ..Counts::default()
    });
}

#[test]
fn a_file_the_system_failed_to_read_is_read_again_once_it_can_be() {
    let mut env = TestEnv::new();
    fs::copy(
        fixtures_library().join("Björk/Homogenic/01 Jóga.flac"),
        env.path("song.flac"),
    )
    .unwrap();
    fs::copy(
        fixtures_library().join("broken/truncated.flac"),
        env.path("broken.flac"),
    )
    .unwrap();
    if env.permissions_ignored() && !env.run_unprivileged() {
        eprintln!(
            "SKIPPED a_file_the_system_failed_to_read_is_read_again_once_it_can_be: running as \
             root and cannot run the binary as another user here, so no file can be made \
             unreadable"
        );
        return;
    }
    let chmod = |mode| {
        fs::set_permissions(env.path("song.flac"), fs::Permissions::from_mode(mode)).unwrap()
    };
    // A chmod changes neither size nor mtime: only the record's error can say to read again.
    chmod(0o000);
    let r = env.scan(&[]);
    r.expect_code(3).expect_counts(Counts {
        files: 2,
        added: 2,
        errors: 2,
        ..Counts::default()
    });
    let rec = env.record("song.flac");
    let error = rec.error.as_deref().unwrap_or_default();
    assert!(error.starts_with("cannot read the file: "), "{error}");
    assert!(rec.title.is_none());

    // Still unreadable: tried again, reported again, and nothing written.
    let bytes = env.db_bytes();
    env.scan(&[]).expect_code(3).expect_counts(Counts {
        files: 2,
        unchanged: 2,
        errors: 1,
        ..Counts::default()
    });
    assert!(env.db_bytes() == bytes, "the database changed");

    // Readable again: read, and the damaged file is not read again.
    chmod(0o644);
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 2,
        updated: 1,
        unchanged: 1,
        ..Counts::default()
    });
    let rec = env.record("song.flac");
    assert_eq!(rec.error, None);
    assert_eq!(rec.title.as_deref(), Some("Jóga"));
}

#[test]
fn a_file_that_cannot_be_looked_at_keeps_its_record() {
    let mut env = TestEnv::new();
    fs::create_dir(env.path("listable")).unwrap();
    fs::copy(
        fixtures_library().join("Björk/Homogenic/01 Jóga.flac"),
        env.path("listable/song.flac"),
    )
    .unwrap();
    if env.permissions_ignored() && !env.run_unprivileged() {
        eprintln!(
            "SKIPPED a_file_that_cannot_be_looked_at_keeps_its_record: running as root and \
             cannot run the binary as another user here"
        );
        return;
    }
    env.scan(&[]).expect_code(0).expect_counts(Counts {
        files: 1,
        added: 1,
        ..Counts::default()
    });
    // Its name can be listed, but without the search bit the file cannot be stat'ed: what it
    // is now is unknown, which is not gone.
    let mode = |m| fs::set_permissions(env.path("listable"), fs::Permissions::from_mode(m));
    mode(0o644).unwrap();
    let r = env.scan(&[]);
    mode(0o755).unwrap();
    r.expect_code(3).expect_counts(Counts {
        errors: 1,
        ..Counts::default()
    });
    assert_eq!(
        env.record("listable/song.flac").title.as_deref(),
        Some("Jóga")
    );
}

/// A `--db` in a directory that does not exist (a share that is not mounted, or a link into
/// one) is refused, and no directory is made; only the default location is created.
#[test]
fn a_database_directory_that_does_not_exist_is_not_made() {
    let env = TestEnv::new();
    env.file("a.txt", b"a");
    let bin = env!("CARGO_BIN_EXE_mediadb");
    let missing = env.base().join("nas/music/library.mediadb");
    let link = env.base().join("link.mediadb");
    std::os::unix::fs::symlink(&missing, &link).expect("symlink");
    for db in [&missing, &link] {
        let o = std::process::Command::new(bin)
            .arg("--db")
            .arg(db)
            .arg("scan")
            .arg(env.root())
            .env_remove("MEDIADB_DB")
            .output()
            .expect("runs");
        assert_eq!(o.status.code(), Some(1), "{}", db.display());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("does not exist (is the volume mounted?)"),
            "{err}"
        );
        assert!(!env.base().join("nas").exists());
    }
    // The default location is made.
    let scan_in = |data_home: &std::path::Path| {
        std::process::Command::new(bin)
            .arg("scan")
            .arg(env.root())
            .env_remove("MEDIADB_DB")
            .env("XDG_DATA_HOME", data_home)
            .output()
            .expect("runs")
    };
    let data = env.base().join("data");
    let o = scan_in(&data);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(data.join("mediadb/library.mediadb").is_file());
    // ... but not through a link to a share that is not mounted, which is named.
    let linked = env.base().join("linked");
    fs::create_dir(&linked).expect("mkdir");
    std::os::unix::fs::symlink(env.base().join("nas"), linked.join("mediadb")).expect("symlink");
    let o = scan_in(&linked);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("a symbolic link to") && err.contains("is the volume mounted?"),
        "{err}"
    );
    assert!(!env.base().join("nas").exists());
}
