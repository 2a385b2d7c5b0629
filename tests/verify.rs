//! `verify`, `verify_fs` and `recover` against healthy and damaged databases: one bit flipped in
//! every byte of a small database, truncation, swapped and copied header slots, damaged and
//! foreign checkpoints, a destroyed middle frame; and the fuzz corpus replayed through the fuzz
//! target's own function.

mod common;

#[path = "../fuzz/open_verify.rs"]
mod open_verify;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use mediadb::store::format::{
    FrameHeader, Header, IDX_CHUNK, IdxHeader, LOG_START, SLOT_BLOCK, SLOT_LEN, SLOT_OFFSETS,
};
use mediadb::store::{
    CheckpointStatus, FsProblemKind, Location, MemStorage, ProblemKind, RecoverError, Severity,
    VerifyReport, recover, verify, verify_fs, verify_storage,
};
use mediadb::{Database, Kind, OpenError, Record};

// ---------------------------------------------------------------------------------------------
// Helpers

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn no_progress(_: u64, _: u64) {}

/// A record with most fields set; `round` changes its content.
fn rec(i: u64, round: u64) -> Record {
    let mut r = Record::new(format!(
        "/music/Artist {}/Album {}/{i:04} Song.flac",
        i % 7,
        i % 3
    ));
    r.size = 1_000_000 + i * 17 + round;
    r.mtime_ns = 1_600_000_000_000_000_000 + (i * 1_000 + round) as i64;
    r.inode = 10_000 + i;
    r.kind = if i.is_multiple_of(5) {
        Kind::Image
    } else {
        Kind::Audio
    };
    r.extractor_version = 1;
    r.title = Some(format!("Song {i} take {round}"));
    r.artists = vec![format!("Artist {}", i % 7)];
    r.album = Some(format!("Album {}", i % 3));
    r.year = Some(1990 + (i % 30) as i32);
    r.track = Some((i % 12) as u32 + 1);
    r.duration_ms = Some(180_000 + i);
    if i.is_multiple_of(11) {
        r.error = Some("truncated tag".into());
    }
    r
}

/// Applies rounds of inserts, updates and removals to `db`; returns the expected live records
/// by path (ids included).
fn churn(db: &mut Database, rounds: u64, per_round: u64) -> Vec<Record> {
    for round in 0..rounds {
        let mut b = db.batch().expect("batch");
        for i in 0..per_round {
            let id = round * per_round / 2 + i;
            b.upsert(&rec(id, round)).expect("upsert");
        }
        if round > 0 {
            for i in (0..round * per_round / 2).step_by(9) {
                b.remove(rec(i, 0).path.as_slice()).expect("remove");
            }
        }
        b.commit().expect("commit");
    }
    common::all_records(db)
}

/// Offsets of every frame in an image, from its committed log.
fn frames(img: &[u8], committed_len: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut off = LOG_START;
    while off < committed_len {
        let h = FrameHeader::decode(&img[off as usize..]).expect("healthy frame");
        out.push((off, off + h.frame_len()));
        off += h.frame_len();
    }
    out
}

fn check_mem(img: Vec<u8>) -> VerifyReport {
    verify_storage(
        &MemStorage::from_bytes(img),
        Path::new("<mem>"),
        &no_progress,
    )
    .expect("verify reads the image")
}

fn assert_clean(r: &VerifyReport) {
    assert!(
        r.is_clean(),
        "expected a clean report, got:\n{}",
        r.problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn has(r: &VerifyReport, f: impl Fn(&mediadb::store::Problem) -> bool) -> bool {
    r.problems.iter().any(f)
}

/// A database file in `dir` with a few commits, closed (so its checkpoint is written).
fn make_file_db(dir: &Path, name: &str) -> (PathBuf, Vec<Record>) {
    let path = dir.join(name);
    let mut db = Database::create(&path).expect("create");
    let recs = churn(&mut db, 4, 60);
    drop(db);
    (path, recs)
}

// ---------------------------------------------------------------------------------------------
// Bit flips

/// The small database of the flip test (about 64 KiB, six commits with updates and removals)
/// plus an uncommitted tail: the frame of a seventh commit whose header write never happened.
fn flip_image() -> (Vec<u8>, u64) {
    let mem = Arc::new(MemStorage::new());
    let mut db = Database::with_storage(mem.clone(), true).expect("init");
    // Fewer, larger records (long text fields) keep the 65,000 verifications affordable in a
    // debug build: verifying costs per field, not per byte.
    for round in 0..6u64 {
        let mut b = db.batch().expect("batch");
        for i in 0..12 {
            let id = round * 6 + i;
            let mut r = rec(id, round);
            r.title = Some(format!("{} {id} {round}", "A long title. ".repeat(30)));
            r.album = Some("An album with a long name, ".repeat(8));
            r.mime = Some("audio/flac".into());
            b.upsert(&r).expect("upsert");
        }
        if round > 0 {
            for i in (0..round * 6).step_by(5) {
                b.remove(rec(i, 0).path.as_slice()).expect("remove");
            }
        }
        b.commit().expect("commit");
    }
    let committed = mem.to_bytes();
    let mut b = db.batch().expect("batch");
    b.upsert(&rec(999, 9)).expect("upsert");
    b.commit().expect("commit");
    let mut img = mem.to_bytes();
    img[..LOG_START as usize].copy_from_slice(&committed[..LOG_START as usize]);
    (img, committed.len() as u64)
}

#[test]
fn one_bit_flipped_in_every_byte_is_reported_where_checksummed() {
    let (img, committed) = flip_image();
    assert!(
        (40_000..100_000).contains(&img.len()),
        "image is {} bytes",
        img.len()
    );
    let clean = check_mem(img.clone());
    assert_clean(&clean);
    assert_eq!(clean.committed_len, committed);
    assert!(clean.tail_bytes > 0, "the image has an uncommitted tail");
    assert!(clean.frames >= 6);
    let frame_spans = frames(&img, committed);
    let failures: Vec<String> = (0..img.len())
        .into_par_iter()
        .filter_map(|pos| {
            let mut b = img.clone();
            b[pos] ^= 1 << (pos % 8);
            let p = pos as u64;
            // Open and iterate too (the fuzz target's oracle) wherever verify finds no damage,
            // and at every 32nd byte elsewhere; verify alone at the others, for time.
            let r = check_mem(b.clone());
            if !r.is_damaged() || pos % 32 == 0 {
                let again = open_verify::open_verify(&b).expect("still looks like a database");
                assert_eq!(again.problems, r.problems);
            }
            let in_slot = SLOT_OFFSETS
                .iter()
                .any(|&s| (s..s + SLOT_LEN as u64).contains(&p));
            let in_pad = !in_slot && p < LOG_START;
            let ok = if in_slot {
                r.is_damaged()
                    && has(&r, |x| {
                        x.kind == ProblemKind::HeaderSlot && x.offset == p / SLOT_BLOCK * SLOT_BLOCK
                    })
            } else if in_pad {
                // Unused bytes: nothing reads them, verify warns.
                !r.is_damaged() && has(&r, |x| x.kind == ProblemKind::Padding && x.offset == p)
            } else if p < committed {
                let (start, _) = frame_spans
                    .iter()
                    .copied()
                    .find(|&(s, e)| (s..e).contains(&p))
                    .expect("inside a frame");
                r.is_damaged()
                    && has(&r, |x| {
                        x.offset == start
                            && matches!(x.kind, ProblemKind::Checksum | ProblemKind::Frame)
                    })
            } else {
                // Past the committed length: never read.
                r.is_clean()
            };
            (!ok).then(|| format!("flip at byte {pos}: {:?}", r.problems))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} flips misreported, first: {}",
        failures.len(),
        failures[0]
    );
}

// ---------------------------------------------------------------------------------------------
// Healthy databases

#[test]
fn healthy_databases_of_every_shape_verify_clean_with_their_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Empty.
    let empty = dir.path().join("empty.mediadb");
    drop(Database::create(&empty).expect("create"));
    // One record with every field, a non-UTF-8 path and an error.
    let one = dir.path().join("one.mediadb");
    {
        let mut db = Database::create(&one).expect("create");
        let mut b = db.batch().expect("batch");
        let mut r = rec(1, 0);
        r.path = b"/m/\xff\xfe/x.flac".to_vec();
        r.musicbrainz_album_id = Some("a".into());
        b.upsert(&r).expect("upsert");
        b.commit().expect("commit");
    }
    // Updates and removals over several commits.
    let (churned, _) = make_file_db(dir.path(), "churn.mediadb");
    // Everything removed again.
    let gone = dir.path().join("gone.mediadb");
    {
        let mut db = Database::create(&gone).expect("create");
        let recs = churn(&mut db, 3, 40);
        let mut b = db.batch().expect("batch");
        for r in &recs {
            assert!(b.remove(&r.path).expect("remove"));
        }
        b.commit().expect("commit");
        assert_eq!(db.snapshot().len(), 0);
    }
    for path in [&empty, &one, &churned, &gone] {
        let r = verify(path, &no_progress).expect("verify");
        assert_clean(&r);
        assert!(
            matches!(r.checkpoint, CheckpointStatus::Agrees { seq } if seq == r.seq),
            "{}: {:?}",
            path.display(),
            r.checkpoint
        );
        assert!(
            r.slots
                .iter()
                .all(|s| s.header.is_some() && s.problem.is_none())
        );
        let db = Database::open_read_only(path).expect("open");
        let st = db.snapshot().stats();
        assert_eq!(
            (r.seq, r.next_id, r.live_records, r.live_bytes),
            (st.seq, st.next_id, st.records, st.live_bytes)
        );
        assert_eq!(r.advice(), None);
    }
}

#[test]
fn a_checkpoint_older_than_the_log_is_compared_at_its_own_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old-cp.mediadb");
    let mut db = Database::create(&path).expect("create");
    churn(&mut db, 2, 30);
    db.checkpoint().expect("checkpoint");
    let cp_seq = db.snapshot().seq();
    let mut b = db.batch().expect("batch");
    b.upsert(&rec(500, 1)).expect("upsert");
    b.remove(rec(31, 0).path.as_slice()).expect("remove");
    b.commit().expect("commit");
    // Verify while the writer is open: its checkpoint still covers the older commit.
    let r = verify(&path, &no_progress).expect("verify");
    assert_clean(&r);
    assert_eq!(r.checkpoint, CheckpointStatus::Agrees { seq: cp_seq });
    assert!(r.seq > cp_seq);
}

#[test]
fn progress_reaches_the_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = make_file_db(dir.path(), "p.mediadb");
    let last = std::sync::Mutex::new((0u64, 0u64));
    let r = verify(&path, &|done, total| {
        let mut l = last.lock().expect("lock");
        assert!(done <= total);
        *l = (done, total);
    })
    .expect("verify");
    assert_eq!(
        *last.lock().expect("lock"),
        (r.committed_len, r.committed_len)
    );
}

// ---------------------------------------------------------------------------------------------
// Damage

#[test]
fn missing_empty_and_foreign_files_are_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.mediadb");
    assert!(matches!(
        verify(&missing, &no_progress),
        Err(OpenError::NotFound { .. })
    ));
    let empty = dir.path().join("empty");
    fs::write(&empty, b"").expect("write");
    assert!(matches!(
        verify(&empty, &no_progress),
        Err(OpenError::NotADatabase { .. })
    ));
    let text = dir.path().join("text");
    fs::write(&text, "hello world\n".repeat(1000)).expect("write");
    let e = verify(&text, &no_progress).expect_err("refused");
    assert!(matches!(e, OpenError::NotADatabase { .. }), "{e}");
    assert!(e.to_string().contains(&text.display().to_string()));
    assert!(matches!(
        verify(dir.path(), &no_progress),
        Err(OpenError::NotADatabase { .. })
    ));
}

#[test]
fn a_truncated_file_is_damaged_at_every_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = make_file_db(dir.path(), "t.mediadb");
    let img = fs::read(&path).expect("read");
    let cut_path = dir.path().join("cut.mediadb");
    let cuts = [
        img.len() - 1,
        img.len() - 100,
        img.len() / 2,
        LOG_START as usize + 10,
        LOG_START as usize,
        SLOT_BLOCK as usize + 64,
        100,
    ];
    for cut in cuts {
        fs::write(&cut_path, &img[..cut]).expect("write");
        let r = verify(&cut_path, &no_progress).expect("verify");
        assert!(r.is_damaged(), "cut at {cut}");
        if cut >= LOG_START as usize {
            assert!(
                has(&r, |p| p.message.contains("truncated")),
                "cut at {cut}: {:?}",
                r.problems
            );
        }
        assert!(r.advice().expect("advice").contains("mediadb recover"));
    }
}

#[test]
fn swapped_or_copied_header_slots_are_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = make_file_db(dir.path(), "h.mediadb");
    let img = fs::read(&path).expect("read");
    let b = SLOT_BLOCK as usize;
    let p2 = dir.path().join("h2.mediadb");
    let mut swapped = img.clone();
    swapped[..b].copy_from_slice(&img[b..2 * b]);
    swapped[b..2 * b].copy_from_slice(&img[..b]);
    let mut copied_a = img.clone();
    copied_a[b..2 * b].copy_from_slice(&img[..b]);
    let mut copied_b = img.clone();
    copied_b[..b].copy_from_slice(&img[b..2 * b]);
    for (what, bytes) in [
        ("swapped", swapped),
        ("A copied to B", copied_a),
        ("B copied to A", copied_b),
    ] {
        fs::write(&p2, &bytes).expect("write");
        let _ = fs::remove_file(sibling(&p2, ".idx"));
        let r = verify(&p2, &no_progress).expect("verify");
        assert!(r.is_damaged(), "{what}");
        assert!(
            has(&r, |p| p.kind == ProblemKind::HeaderSlot),
            "{what}: {:?}",
            r.problems
        );
    }
    // An older slot in its right place and generation, whose counts are not the log's at its
    // position (as a misdirected or buggy write would leave it).
    let gen_of = |img: &[u8], i: usize| {
        let raw: [u8; SLOT_LEN] = img[i * b..i * b + SLOT_LEN].try_into().expect("slot");
        Header::decode(&raw, u64::MAX).expect("valid slot")
    };
    let older = if gen_of(&img, 0).generation < gen_of(&img, 1).generation {
        0
    } else {
        1
    };
    let mut h = gen_of(&img, older);
    h.live_records += 1;
    let mut forged = img.clone();
    forged[older * b..older * b + SLOT_LEN].copy_from_slice(&h.encode());
    fs::write(&p2, &forged).expect("write");
    let r = verify(&p2, &no_progress).expect("verify");
    assert!(r.is_damaged());
    assert!(
        has(&r, |p| p.kind == ProblemKind::HeaderSlot
            && p.offset == SLOT_OFFSETS[older]
            && p.message.contains("live_records")),
        "{:?}",
        r.problems
    );
    // The database itself still opens: the newer slot is intact.
    Database::open_read_only(&p2).expect("opens");
}

#[test]
fn a_damaged_or_foreign_checkpoint_is_reported_without_damning_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = make_file_db(dir.path(), "c.mediadb");
    let idx = sibling(&path, ".idx");
    let good = fs::read(&idx).expect("read idx");

    // A flipped byte in the entries section.
    let mut bad = good.clone();
    bad[4096 + 48 * 3 + 9] ^= 4;
    fs::write(&idx, &bad).expect("write");
    let r = verify(&path, &no_progress).expect("verify");
    assert!(!r.is_damaged() && !r.is_clean());
    assert_eq!(r.checkpoint, CheckpointStatus::Problems);
    assert!(has(&r, |p| p.location == Location::Checkpoint
        && p.severity == Severity::Warning
        && p.message.contains("checksum")));
    assert!(r.advice().expect("advice").contains(".idx"));

    // A checkpoint of another database.
    let (other, _) = make_file_db(dir.path(), "other.mediadb");
    fs::copy(sibling(&other, ".idx"), &idx).expect("copy");
    let r = verify(&path, &no_progress).expect("verify");
    assert!(!r.is_damaged());
    assert!(has(&r, |p| p.location == Location::Checkpoint
        && p.message.contains("another database")));

    // A garbled header.
    let mut bad = good.clone();
    bad[50] ^= 1;
    fs::write(&idx, &bad).expect("write");
    let r = verify(&path, &no_progress).expect("verify");
    assert!(has(&r, |p| p.location == Location::Checkpoint));

    // A checkpoint an older build wrote: sound, but of another version.
    let mut old = good.clone();
    old[8..12].copy_from_slice(&3u32.to_le_bytes());
    let crc = crc32c::crc32c(&old[..124]);
    old[124..128].copy_from_slice(&crc.to_le_bytes());
    fs::write(&idx, &old).expect("write");
    let r = verify(&path, &no_progress).expect("verify");
    assert!(!r.is_damaged());
    assert!(
        has(&r, |p| p.location == Location::Checkpoint
            && p.severity == Severity::Warning
            && p.message.contains("version-3 checkpoint")),
        "{:?}",
        r.problems
    );

    // Back to the good one.
    fs::write(&idx, &good).expect("write");
    assert_clean(&verify(&path, &no_progress).expect("verify"));
}

/// Rewrites the checkpoint with `edit` applied to its bytes and every checksum recomputed, as a
/// buggy writer would produce it.
fn forge_checkpoint(idx: &Path, edit: impl Fn(&mut [u8], &IdxHeader)) {
    let mut b = fs::read(idx).expect("read idx");
    let mut h = IdxHeader::decode(&b[..128]).expect("valid header");
    edit(&mut b, &h);
    // Per-chunk crcs of the entries and the table, stored as lists whose crcs the header holds.
    let lists = h.chunk_crcs_offset() as usize;
    let mut list = |start: usize, n: usize, item: usize, at: usize| -> u32 {
        let crcs: Vec<u8> = b[start..start + n * item]
            .chunks(IDX_CHUNK as usize * item)
            .flat_map(|c| crc32c::crc32c(c).to_le_bytes())
            .collect();
        b[at..at + crcs.len()].copy_from_slice(&crcs);
        crc32c::crc32c(&crcs)
    };
    let (entry_chunks, _) = h.chunk_counts();
    h.entries_crc = list(4096, h.next_id as usize, 48, lists);
    h.table_crc = list(
        h.table_offset() as usize,
        h.table_capacity as usize,
        16,
        lists + entry_chunks as usize * 4,
    );
    b[..128].copy_from_slice(&h.encode());
    fs::write(idx, &b).expect("write idx");
}

/// Byte offset in checkpoint `b` of the table slot of `rec` (docs/FORMAT.md §3: the path
/// hash's low 32 bits, then the id in 48 bits).
fn slot_at(b: &[u8], h: &IdxHeader, rec: &Record) -> usize {
    let hash = mediadb::store::format::path_hash(&rec.path);
    let t = h.table_offset() as usize;
    (0..h.table_capacity as usize)
        .map(|s| t + s * 16)
        .find(|&at| {
            b[at..at + 4] == hash.to_le_bytes()[..4]
                && b[at + 4..at + 10] == rec.id.to_le_bytes()[..6]
        })
        .expect("the record has a slot")
}

#[test]
fn a_checkpoint_with_valid_checksums_but_wrong_content_is_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, recs) = make_file_db(dir.path(), "f.mediadb");
    let idx = sibling(&path, ".idx");
    let good = fs::read(&idx).expect("read idx");
    let id = recs[5].id as usize;

    // A wrong size in one live entry: open uses it (that is why verify calls it damage).
    forge_checkpoint(&idx, |b, _| b[4096 + id * 48 + 8] ^= 1);
    let db = Database::open_read_only(&path).expect("open");
    assert_ne!(
        db.snapshot().entry_by_id(id as u64).expect("live").size,
        recs[5].size
    );
    drop(db);
    let r = verify(&path, &no_progress).expect("verify");
    assert!(r.is_damaged());
    assert!(
        has(&r, |p| p.location == Location::Checkpoint
            && p.severity == Severity::Damage
            && p.offset == 4096 + id as u64 * 48),
        "{:?}",
        r.problems
    );

    // A live id's table slot cleared: lookups by path would miss it.
    fs::write(&idx, &good).expect("write");
    forge_checkpoint(&idx, |b, h| {
        let at = slot_at(b, h, &recs[7]);
        b[at..at + 16].fill(0);
    });
    let r = verify(&path, &no_progress).expect("verify");
    assert!(r.is_damaged());
    assert!(
        has(&r, |p| p.location == Location::Checkpoint
            && p.message.contains(&format!("live id {}", recs[7].id))),
        "{:?}",
        r.problems
    );

    // A live id's slot with another record offset (a stale one, as a table that kept old
    // offsets would hold): a get by path reads the record there, so it is damage too.
    fs::write(&idx, &good).expect("write");
    forge_checkpoint(&idx, |b, h| {
        // docs/FORMAT.md §3: `at` is the last 6 bytes of the slot.
        b[slot_at(b, h, &recs[9]) + 10] ^= 0x40;
    });
    let r = verify(&path, &no_progress).expect("verify");
    assert!(r.is_damaged());
    assert!(
        has(&r, |p| p.location == Location::Checkpoint
            && p.severity == Severity::Damage
            && p.message.contains(&format!(
                "id {}'s record is at byte",
                recs[9].id
            ))),
        "{:?}",
        r.problems
    );
    fs::write(&idx, &good).expect("write");
    assert_clean(&verify(&path, &no_progress).expect("verify"));
}

#[test]
fn a_destroyed_middle_frame_is_reported_and_the_walk_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = make_file_db(dir.path(), "m.mediadb");
    let mut img = fs::read(&path).expect("read");
    let r0 = verify(&path, &no_progress).expect("verify");
    let spans = frames(&img, r0.committed_len);
    let (s, e) = spans[1];
    // dd over the whole frame, header included.
    for (k, b) in img[s as usize..e as usize].iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(31) ^ 0x5a;
    }
    fs::write(&path, &img).expect("write");
    let r = verify(&path, &no_progress).expect("verify");
    assert!(r.is_damaged());
    assert!(has(&r, |p| p.offset == s && p.kind == ProblemKind::Frame));
    // The frames after it were still checked.
    assert_eq!(r.frames, spans.len() as u64 - 1, "{:?}", r.problems);
    assert_eq!(r.checkpoint, CheckpointStatus::NotCompared);
}

// ---------------------------------------------------------------------------------------------
// recover

#[test]
fn recover_keeps_every_record_outside_a_destroyed_middle_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.mediadb");
    let mut db = Database::create(&path).expect("create");
    let mut by_commit: Vec<Vec<Record>> = Vec::new();
    for c in 0..5u64 {
        let mut b = db.batch().expect("batch");
        let mut mine = Vec::new();
        for i in 0..40 {
            let mut r = rec(c * 1000 + i, c);
            r.id = b.upsert(&r).expect("upsert");
            mine.push(r);
        }
        // Later commits update and remove records of the first one.
        if c >= 3 {
            let mut r = rec(c, 7);
            r.id = b.upsert(&r).expect("update");
            by_commit[0].retain(|x| x.path != r.path);
            mine.push(r);
            assert!(b.remove(&rec(10 + c, 0).path).expect("remove"));
            by_commit[0].retain(|x| x.path != rec(10 + c, 0).path);
        }
        b.commit().expect("commit");
        by_commit.push(mine);
    }
    let next_id = db.snapshot().stats().next_id;
    drop(db);
    let expected_all: Vec<Record> = by_commit.concat();
    let r0 = verify(&path, &no_progress).expect("verify");
    assert_clean(&r0);
    let img = fs::read(&path).expect("read");
    let spans = frames(&img, r0.committed_len);
    let (s, e) = spans[2];

    // 1. The frame overwritten whole: its records are lost, every other one is kept.
    let mut dd = img.clone();
    dd[s as usize..e as usize].fill(0xa5);
    let src = dir.path().join("dd.mediadb");
    fs::write(&src, &dd).expect("write");
    let out = dir.path().join("dd-out.mediadb");
    let rep = recover(&src, &out, &no_progress).expect("recover");
    let got = common::all_records(&Database::open_read_only(&out).expect("open out"));
    let mut want: Vec<Record> = expected_all
        .iter()
        .filter(|r| !by_commit[2].iter().any(|x| x.id == r.id))
        .cloned()
        .collect();
    want.sort_by_key(|r| r.id);
    assert_eq!(got, want);
    assert_eq!(rep.records_kept, want.len() as u64);
    assert_eq!(rep.frames_read, 4);
    assert_eq!(rep.lost.len(), 1);
    assert_eq!((rep.lost[0].start, rep.lost[0].end), (s, e));
    assert_eq!(rep.lost[0].seqs, Some((3, 3)));
    assert_eq!(rep.lost[0].records_salvaged, 0);
    assert!(rep.next_id >= next_id);
    assert_clean(&verify(&out, &no_progress).expect("verify out"));
    assert!(rep.lost[0].to_string().contains("seq 3"));
    // The copy was written as dd-out.mediadb.recovering and renamed once whole; nothing of
    // that name is left.
    let names: Vec<String> = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains(".recovering")),
        "{names:?}"
    );
    // What a recover that was killed left under that name is replaced, not taken for a copy.
    let again = dir.path().join("again.mediadb");
    fs::write(
        dir.path().join("again.mediadb.recovering"),
        b"half a database",
    )
    .expect("write");
    fs::write(dir.path().join("again.mediadb.recovering.idx"), b"stale").expect("write");
    let rep2 = recover(&src, &again, &no_progress).expect("recover over leftovers");
    assert_eq!(rep2.records_kept, rep.records_kept);
    assert_clean(&verify(&again, &no_progress).expect("verify again"));
    assert!(!dir.path().join("again.mediadb.recovering").exists());
    assert!(!dir.path().join("again.mediadb.recovering.idx").exists());

    // 2. One bit flipped in the frame: its records still verify and are salvaged.
    // (In the frame header's seq field: the checksum fails, the records are intact.)
    let mut flipped = img.clone();
    flipped[s as usize + 9] ^= 8;
    let src = dir.path().join("flip.mediadb");
    fs::write(&src, &flipped).expect("write");
    let out = dir.path().join("flip-out.mediadb");
    let rep = recover(&src, &out, &no_progress).expect("recover");
    let got = common::all_records(&Database::open_read_only(&out).expect("open out"));
    let mut want = expected_all.clone();
    want.sort_by_key(|r| r.id);
    assert_eq!(got, want);
    assert_eq!(rep.records_salvaged, 40);
    assert_clean(&verify(&out, &no_progress).expect("verify out"));

    // 3. One byte of a record's path changed: the record still verifies, but its path no
    // longer hashes to what the frame's Batch says, so it is not salvaged under that path.
    let victim = &by_commit[2][5];
    // Recovers a copy of the image with bit `bit` of the byte `skip` past `bytes` (in frame 2)
    // flipped, into NAME-out.mediadb.
    let recover_flipped = |name: &str, bytes: &[u8], skip: usize, bit: u8| {
        let mut img = img.clone();
        let at = s as usize
            + img[s as usize..e as usize]
                .windows(bytes.len())
                .position(|w| w == bytes)
                .expect("the bytes are in their frame");
        img[at + skip] ^= bit;
        let src = dir.path().join(format!("{name}.mediadb"));
        fs::write(&src, &img).expect("write");
        let out = dir.path().join(format!("{name}-out.mediadb"));
        let rep = recover(&src, &out, &no_progress).expect("recover");
        (src, out, rep)
    };
    let (src, out, rep) = recover_flipped("bent", &victim.path, 8, 0x20);
    let got = common::all_records(&Database::open_read_only(&out).expect("open out"));
    let mut want: Vec<Record> = expected_all
        .iter()
        .filter(|r| r.id != victim.id)
        .cloned()
        .collect();
    want.sort_by_key(|r| r.id);
    assert_eq!(got, want);
    assert_eq!(rep.records_salvaged, 39);
    assert_eq!(rep.records_damaged, 1, "the dropped record is counted");
    assert_clean(&verify(&out, &no_progress).expect("verify out"));

    // 3b. Its size changed instead (the fixed fields, id then size): dropped and counted too,
    // not carried into a copy that would then verify clean.
    let mut fixed = victim.id.to_le_bytes().to_vec();
    fixed.extend_from_slice(&victim.size.to_le_bytes());
    let (_, out3, rep) = recover_flipped("resized", &fixed, 8, 0x01);
    let got = common::all_records(&Database::open_read_only(&out3).expect("open out"));
    assert_eq!(got, want);
    assert_eq!((rep.records_salvaged, rep.records_damaged), (39, 1));
    assert!(!rep.consequences().contains("nothing was lost"));
    assert_clean(&verify(&out3, &no_progress).expect("verify out"));

    // 4. The output must not exist.
    let e = recover(&src, &out, &no_progress).expect_err("out exists");
    assert!(e.to_string().contains(&out.display().to_string()), "{e}");
}

#[test]
fn recover_of_a_healthy_or_header_less_database_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, recs) = make_file_db(dir.path(), "ok.mediadb");
    let out = dir.path().join("ok-out.mediadb");
    let rep = recover(&path, &out, &no_progress).expect("recover");
    assert!(rep.lost.is_empty());
    assert_eq!(
        common::all_records(&Database::open_read_only(&out).expect("open")),
        recs
    );
    assert!(rep.consequences().contains("nothing was lost"));
    // An output that exists, the source itself included, is refused and left as it was.
    let before = fs::read(&path).expect("read");
    for existing in [&out, &path] {
        let e = recover(&path, existing, &no_progress).expect_err("output exists");
        assert!(matches!(e, RecoverError::OutputExists { .. }), "{e:?}");
        assert!(e.to_string().contains("does not exist yet"), "{e}");
    }
    assert_eq!(fs::read(&path).expect("read"), before);
    // Both header slots zeroed: the log alone is enough.
    let mut img = fs::read(&path).expect("read");
    img[..LOG_START as usize].fill(0);
    let src = dir.path().join("nohdr.mediadb");
    fs::write(&src, &img).expect("write");
    assert!(verify(&src, &no_progress).expect("verify").is_damaged());
    let out = dir.path().join("nohdr-out.mediadb");
    let rep = recover(&src, &out, &no_progress).expect("recover");
    assert_eq!(rep.committed_len, None);
    assert_eq!(
        common::all_records(&Database::open_read_only(&out).expect("open")),
        recs
    );
}

#[test]
fn recover_of_a_truncated_file_salvages_the_cut_frame_and_reports_the_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, recs) = make_file_db(dir.path(), "cut.mediadb");
    let img = fs::read(&path).expect("read");
    let r0 = verify(&path, &no_progress).expect("verify");
    let spans = frames(&img, r0.committed_len);
    let (s, e) = *spans.last().expect("frames");
    let cut = (s + e) / 2;
    let src = dir.path().join("cut-src.mediadb");
    fs::write(&src, &img[..cut as usize]).expect("write");
    let out = dir.path().join("cut-out.mediadb");
    let rep = recover(&src, &out, &no_progress).expect("recover");
    assert_eq!(rep.frames_read, spans.len() as u64 - 1);
    assert_eq!(rep.lost.len(), 1);
    let lost = &rep.lost[0];
    assert_eq!((lost.start, lost.end), (s, r0.committed_len));
    assert_eq!(lost.seqs, Some((r0.seq, r0.seq)));
    assert!(lost.records_salvaged > 0);
    assert!(rep.consequences().contains("truncated"));
    // Every record kept is a final version, id and all, or a record the lost batch removed.
    let got = common::all_records(&Database::open_read_only(&out).expect("open"));
    for r in &got {
        assert!(
            recs.contains(r) || !recs.iter().any(|x| x.id == r.id),
            "{r:?}"
        );
    }
    assert_clean(&verify(&out, &no_progress).expect("verify out"));
}

// ---------------------------------------------------------------------------------------------
// verify --fs

#[test]
fn verify_fs_reports_missing_and_changed_files_and_writes_nothing() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = dir.path().join("lib");
    fs::create_dir(&lib).expect("mkdir");
    let path = dir.path().join("fs.mediadb");
    let mut db = Database::create(&path).expect("create");
    let mut b = db.batch().expect("batch");
    for i in 0..5 {
        let f = lib.join(format!("{i}.flac"));
        fs::write(&f, vec![0u8; 100 + i]).expect("write");
        let m = fs::metadata(&f).expect("stat");
        let mut r = Record::new(f.as_os_str().as_encoded_bytes().to_vec());
        r.size = m.len();
        r.mtime_ns = m.mtime() * 1_000_000_000 + m.mtime_nsec();
        r.inode = m.ino();
        b.upsert(&r).expect("upsert");
    }
    b.commit().expect("commit");
    drop(db);
    let clean = verify_fs(&path, &no_progress).expect("verify_fs");
    assert!(clean.is_clean());
    assert_eq!(clean.checked, 5);
    fs::remove_file(lib.join("1.flac")).expect("rm");
    fs::write(lib.join("3.flac"), vec![1u8; 7]).expect("rewrite");
    let before = fs::read(&path).expect("read");
    let r = verify_fs(&path, &no_progress).expect("verify_fs");
    assert_eq!((r.missing, r.changed, r.unreadable), (1, 1, 0));
    assert_eq!(r.problems.len(), 2);
    let missing = r
        .problems
        .iter()
        .find(|p| p.kind == FsProblemKind::Missing)
        .expect("missing");
    assert!(missing.path.ends_with(b"1.flac"));
    let changed = r
        .problems
        .iter()
        .find(|p| p.kind == FsProblemKind::Changed)
        .expect("changed");
    assert_eq!(changed.found.expect("stat").size, 7);
    assert!(changed.to_string().contains("size 103 -> 7"), "{changed}");
    assert_eq!(
        fs::read(&path).expect("read"),
        before,
        "verify_fs wrote nothing"
    );
}

/// A frame whose payload is large enough (over 16 KiB) that its checksum takes the engine's
/// fast CRC path: a bit flipped anywhere in it is still reported at that frame, and open finds
/// the same damage verify does.
#[test]
fn a_flip_in_a_large_frame_is_reported_at_its_frame() {
    let mem = Arc::new(MemStorage::new());
    let mut db = Database::with_storage(mem.clone(), true).expect("init");
    let mut b = db.batch().expect("batch");
    for i in 0..60 {
        let mut r = rec(i, 0);
        r.title = Some(format!("{} {i}", "A long title. ".repeat(40)));
        b.upsert(&r).expect("upsert");
    }
    b.commit().expect("commit");
    let img = mem.to_bytes();
    let committed = img.len() as u64;
    let spans = frames(&img, committed);
    let &(start, end) = spans.last().expect("one frame");
    assert!(
        end - start > 3 * (16 << 10),
        "the frame is {} bytes",
        end - start
    );
    assert_clean(&check_mem(img.clone()));
    let failures: Vec<String> = (start..end)
        .step_by(97)
        .chain(end - 8..end)
        .collect::<Vec<_>>()
        .into_par_iter()
        .filter_map(|p| {
            let mut b = img.clone();
            b[p as usize] ^= 1 << (p % 8);
            let r = check_mem(b.clone());
            let again = open_verify::open_verify(&b).expect("still looks like a database");
            let ok = r.is_damaged()
                && again.problems == r.problems
                && has(&r, |x| {
                    x.offset == start
                        && matches!(x.kind, ProblemKind::Checksum | ProblemKind::Frame)
                });
            (!ok).then(|| format!("flip at byte {p}: {:?}", r.problems))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} misreported, first: {}",
        failures.len(),
        failures[0]
    );
}

// ---------------------------------------------------------------------------------------------
// Fuzz corpus and crashers

/// Every seed of the fuzz target, replayed through the target's own function.
#[test]
fn fuzz_seed_corpus_replays_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus-seed/open_verify");
    let mut n = 0;
    for entry in fs::read_dir(&dir).expect("seed corpus") {
        let path = entry.expect("entry").path();
        let bytes = fs::read(&path).expect("read seed");
        let r = open_verify::open_verify(&bytes);
        if path
            .file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with("ok-"))
        {
            let r = r.expect("a database");
            assert!(r.is_clean(), "{}: {:?}", path.display(), r.problems);
        }
        n += 1;
    }
    assert!(n >= 3, "seed corpus has {n} files");
}

/// Inputs the fuzzer found that once crashed, or that exercise a corner worth keeping.
#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz-regressions");
    if let Ok(entries) = fs::read_dir(&dir) {
        for entry in entries {
            let path = entry.expect("entry").path();
            let _ = open_verify::open_verify(&fs::read(&path).expect("read"));
        }
    }
}
