//! Helpers shared by the integration tests: a deterministic random source, the fault-injecting
//! storage ([`fault`]) and small database helpers.
//!
//! Every test binary that says `mod common;` compiles this module, and not every binary uses
//! every helper.
#![allow(dead_code)]

pub mod fault;

use std::sync::Arc;

use mediadb::store::MemStorage;
use mediadb::{Database, OpenError, Record};

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast and good enough to drive tests from a
/// fixed seed, so every run makes the same choices.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose whole output is fixed by `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n == 0`). The modulo bias is irrelevant for tests.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The bytes of a freshly created, empty database (what `with_storage` writes into an empty
/// storage).
pub fn empty_db_image() -> Vec<u8> {
    let mem = Arc::new(MemStorage::new());
    let db = Database::with_storage(mem.clone(), true).expect("initialise an empty storage");
    drop(db);
    mem.to_bytes()
}

/// Opens `image` as a writable storage-backed database; also returns the storage so the caller
/// can read the bytes back after further commits.
pub fn open_image(image: Vec<u8>) -> (Result<Database, OpenError>, Arc<MemStorage>) {
    let mem = Arc::new(MemStorage::from_bytes(image));
    (Database::with_storage(mem.clone(), true), mem)
}

/// Every live record of `db`, in id order, as owned records. Panics (failing the test) on a
/// read error.
pub fn all_records(db: &Database) -> Vec<Record> {
    db.snapshot()
        .iter()
        .map(|r| r.expect("a live record reads back").to_record())
        .collect()
}
