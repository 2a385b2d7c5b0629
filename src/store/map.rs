//! The read-only memory map of committed bytes: the only module with `unsafe`.
//!
//! Contract that makes mapping sound here:
//! * the map is read-only (`PROT_READ`, `MAP_SHARED`), so we never write through it;
//! * it covers only bytes that are committed (`[LOG_START, committed_len)` of the snapshot that
//!   made it), and mediadb never modifies committed bytes: the log is append-only, header slots
//!   live below `LOG_START` and are never mapped, and writes land at or past `committed_len`;
//! * mediadb never shrinks a database file (compaction writes a new file and renames it over the
//!   old one, so an old map keeps the old inode alive and unchanged).
//!
//! A foreign process that truncates or rewrites the file breaks this contract, as it would for
//! any mmap-based database (LMDB documents the same); it can make reads fault with SIGBUS. Every
//! access through the map is bounds-checked against the mapped length, and every FlatBuffer read
//! from it is verified first, so arbitrary *contents* are safe.

use std::fs::File;
use std::io;
use std::ops::Deref;
use std::sync::Arc;

/// Bytes of a file range, shared by every snapshot that sees them.
#[derive(Clone)]
pub struct Mapping {
    bytes: Arc<dyn Deref<Target = [u8]> + Send + Sync>,
}

impl Mapping {
    /// A mapping that holds bytes in memory (used by in-memory storages and for empty ranges).
    pub fn from_vec(v: Vec<u8>) -> Mapping {
        Mapping { bytes: Arc::new(v) }
    }

    /// Maps `len` bytes of `file` starting at `offset`, read-only.
    pub fn map_file(file: &File, offset: u64, len: u64) -> io::Result<Mapping> {
        Mapping::map_file_with(file, offset, len, false)
    }

    /// As [`map_file`](Self::map_file); with `random`, the kernel is told that reads will be
    /// scattered (`MADV_RANDOM`), so a point read maps the one page it needs instead of a
    /// read-ahead window: a writer that looks up a few thousand records of a large log keeps a
    /// few thousand pages resident, not hundreds of megabytes.
    pub fn map_file_with(file: &File, offset: u64, len: u64, random: bool) -> io::Result<Mapping> {
        if len == 0 {
            return Ok(Mapping::from_vec(Vec::new()));
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "map too large"))?;
        // SAFETY: the map is read-only and covers only committed bytes, which mediadb never
        // modifies or truncates (see the module contract). `len` is within the file: callers
        // pass a committed length that was checked against the file length, and the file never
        // shrinks. memmap2 aligns `offset` to the page size itself.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(len)
                .map(file)?
        };
        if random {
            // Only a hint: a kernel that refuses it reads ahead as usual.
            let _ = map.advise(memmap2::Advice::Random);
        }
        Ok(Mapping {
            bytes: Arc::new(map),
        })
    }

    /// Maps `len` bytes of `file` starting at `offset` and faults them in ahead of use.
    pub fn map_file_populated(file: &File, offset: u64, len: u64) -> io::Result<Mapping> {
        if len == 0 {
            return Ok(Mapping::from_vec(Vec::new()));
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "map too large"))?;
        // SAFETY: as in `map_file`; the checkpoint file this maps is written whole under a
        // temporary name and renamed into place, and is never modified or truncated afterwards.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(len)
                .populate()
                .map(file)?
        };
        Ok(Mapping {
            bytes: Arc::new(map),
        })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mapping({} bytes)", self.bytes.len())
    }
}
