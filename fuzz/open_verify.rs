//! The body of the `open_verify` fuzz target, shared with `tests/verify.rs` (which replays the
//! seed corpus through it): arbitrary bytes as a database file are opened, iterated, looked up
//! and verified. Nothing may panic, hang or allocate without bound, and one oracle holds: when
//! `verify` reports no damage, opening succeeds and every live record reads back, by id and by
//! path.

use std::path::Path;
use std::sync::Arc;

use mediadb::Database;
use mediadb::store::{MemStorage, VerifyReport, verify_storage};

/// Records read per input at most, so a huge valid input cannot make one run slow.
const MAX_READS: usize = 100_000;

/// Opens, iterates and verifies `bytes`; returns verify's report when the bytes look like a
/// database at all.
pub fn open_verify(bytes: &[u8]) -> Option<VerifyReport> {
    let mem = Arc::new(MemStorage::from_bytes(bytes.to_vec()));
    let opened = Database::with_storage(mem.clone(), false);
    let mut all_read = None;
    if let Ok(db) = &opened {
        let snap = db.snapshot();
        let _ = snap.stats();
        let _ = snap.count_by_kind();
        let mut ok = true;
        for r in snap.iter().take(MAX_READS) {
            match r {
                Ok(v) => {
                    let rec = v.to_record();
                    let by_path = snap.get(&rec.path).ok().flatten().map(|v| v.id());
                    let by_id = snap.get_by_id(rec.id).ok().flatten().map(|v| v.id());
                    ok &= by_path == Some(rec.id) && by_id == Some(rec.id);
                }
                Err(_) => ok = false,
            }
        }
        all_read = Some(ok);
    }
    let report = verify_storage(&*mem, Path::new("<fuzz>"), &|_, _| {}).ok();
    if let Some(r) = &report
        && !r.is_damaged()
    {
        assert!(
            opened.is_ok(),
            "verify found no damage but open failed: {:?}\n{:#?}",
            opened.err(),
            r.problems
        );
        assert_eq!(
            all_read,
            Some(true),
            "verify found no damage but a record does not read back"
        );
    }
    report
}
