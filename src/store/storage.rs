//! The I/O boundary of the engine. Every byte the engine writes goes through [`Storage`], so
//! tests can substitute a backend that crashes, tears or fails writes at any operation.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use super::map::Mapping;

/// Positional I/O on one database file.
///
/// Implementations must make `sync` a durability barrier: once it returns `Ok`, every write
/// issued before it survives a crash. Writes not yet synced may be lost, torn or garbled.
pub trait Storage: Send + Sync {
    /// Reads exactly `buf.len()` bytes at `offset`; fails with `UnexpectedEof` past the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`, growing the file if needed.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Current length of the file.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Sets the file length (the engine only ever grows files).
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes every earlier write durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;
    /// A hint, not a barrier: starts writing `len` bytes at `offset`, written just before, to
    /// the disk without waiting, so that a later [`sync`](Self::sync) has less left to wait
    /// for. Nothing may rely on it; the default does nothing.
    fn start_writeback(&self, offset: u64, len: u64) {
        let _ = (offset, len);
    }
    /// A read-only view of `len` committed bytes at `offset`.
    fn map(&self, offset: u64, len: u64) -> io::Result<Mapping>;
}

/// A database file on disk.
#[derive(Debug)]
pub struct FileStorage {
    file: File,
    random_access: bool,
}

impl FileStorage {
    /// Wraps an open file (opened for reading, and for writing if the handle will write).
    pub fn new(file: File) -> FileStorage {
        FileStorage {
            file,
            random_access: false,
        }
    }

    /// Maps with `MADV_RANDOM` (see [`Mapping::map_file_with`]): for a writer, whose reads
    /// through the map are point lookups.
    pub fn random_access(mut self) -> FileStorage {
        self.random_access = true;
        self
    }

    /// The underlying file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Storage for FileStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        write_all_at(&self.file, buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn start_writeback(&self, offset: u64, len: u64) {
        start_writeback(&self.file, offset, len);
    }
    fn map(&self, offset: u64, len: u64) -> io::Result<Mapping> {
        Mapping::map_file_with(&self.file, offset, len, self.random_access)
    }
}

/// The most bytes the engine hands to one write call.
///
/// A write of 2 MiB or more lets the kernel back the page cache with 2 MiB folios, and
/// allocating those can stall: on this project's test VM (Firecracker, with a DAMON scheme that
/// pages out idle memory), a 264 MB buffered write in 2 MiB or 8 MiB calls took 0.54–0.79 s in
/// most rounds, against 0.09–0.12 s in every round with calls of 64 KiB to 1 MiB (the same
/// process, the two alternated after a `cp` of 400 MB). `cp` itself, whose `copy_file_range`
/// splices 64 KiB at a time, never slowed down that way. Compaction of a 1M-record database
/// ran 0.52–0.74 s with whole 8 MiB writes, 0.23–0.33 s with 512 KiB calls and 0.20–0.26 s
/// with 1 MiB calls, the largest that stay below the 2 MiB order.
///
/// Pieces are cut from wherever a write starts, not at 1 MiB multiples of the file offset,
/// and that is on purpose. Writes that each fill a whole aligned MiB get 1 MiB folios, which
/// readers map with a fault per MiB: 100,000 random gets on 1M records took 388 faults
/// instead of 2,260 and ran about 5% faster. But on the test VM the kernel spent a quarter of
/// a 1M-record ingest in `copy_folio_from_iter_atomic` filling those folios, against 1.5%
/// (most likely because large folios come from memory the host must fault in again), and
/// ingest took 0.87–0.96 s against 0.48–0.54 s.
pub(crate) const WRITE_PIECE: usize = 1 << 20;

/// `write_all_at` in calls of at most [`WRITE_PIECE`] bytes.
pub(crate) fn write_all_at(file: &File, buf: &[u8], mut offset: u64) -> io::Result<()> {
    for piece in buf.chunks(WRITE_PIECE) {
        file.write_all_at(piece, offset)?;
        offset += piece.len() as u64;
    }
    Ok(())
}

/// An [`io::Write`] that hands at most [`WRITE_PIECE`] bytes to each write of the one it wraps.
pub(crate) struct Pieces<W>(pub W);

impl<W: io::Write> io::Write for Pieces<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(&buf[..buf.len().min(WRITE_PIECE)])
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Starts writing back `len` bytes of `file` at `offset` (see [`Storage::start_writeback`]).
///
/// On Linux this is `posix_fadvise(POSIX_FADV_DONTNEED)`, which queues the range's dirty pages
/// for writeback and returns. Pages that are still dirty or under writeback stay cached (only
/// clean, unmapped pages are dropped, and bytes written just before are neither). Its errors
/// are ignored: a failed writeback is reported by the next `fdatasync`.
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    if let Some(len) = std::num::NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// A file written front to back from some offset, that starts writing back every
/// [`WRITEBACK_EVERY`] bytes as they are written, so that the `fdatasync` at the end has little
/// left to wait for.
pub(crate) struct StreamOut<'f> {
    file: &'f File,
    /// Where the next byte goes.
    at: u64,
    /// Bytes before this one were handed to writeback.
    hinted: u64,
}

/// Bytes a [`StreamOut`] writes between writeback hints.
const WRITEBACK_EVERY: u64 = 8 << 20;

impl<'f> StreamOut<'f> {
    /// Writes from byte `at` of `file`.
    pub(crate) fn at(file: &'f File, at: u64) -> StreamOut<'f> {
        StreamOut {
            file,
            at,
            hinted: at,
        }
    }
}

impl io::Write for StreamOut<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self
            .file
            .write_at(&buf[..buf.len().min(WRITE_PIECE)], self.at)?;
        self.at += n as u64;
        if self.at - self.hinted >= WRITEBACK_EVERY {
            start_writeback(self.file, self.hinted, self.at - self.hinted);
            self.hinted = self.at;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A database held in memory: for tests and for embedding without a file.
#[derive(Debug, Default)]
pub struct MemStorage {
    bytes: Mutex<Vec<u8>>,
}

impl MemStorage {
    /// An empty in-memory file.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// An in-memory file holding `bytes`.
    pub fn from_bytes(bytes: Vec<u8>) -> MemStorage {
        MemStorage {
            bytes: Mutex::new(bytes),
        }
    }

    /// A copy of the current contents.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn range(offset: u64, len: usize) -> io::Result<std::ops::Range<usize>> {
    let start = usize::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    let end = start
        .checked_add(len)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    Ok(start..end)
}

impl Storage for MemStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let bytes = self.lock();
        let r = range(offset, buf.len())?;
        let src = bytes
            .get(r)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut bytes = self.lock();
        let r = range(offset, buf.len())?;
        if bytes.len() < r.end {
            bytes.resize(r.end, 0);
        }
        bytes[r].copy_from_slice(buf);
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.lock().len() as u64)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))?;
        self.lock().resize(len, 0);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    fn map(&self, offset: u64, len: u64) -> io::Result<Mapping> {
        let bytes = self.lock();
        let r = range(offset, usize::try_from(len).unwrap_or(usize::MAX))?;
        let src = bytes
            .get(r)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        Ok(Mapping::from_vec(src.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Bytes that differ at every position, so a piece written at the wrong offset shows.
    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8 ^ (i >> 16) as u8).collect()
    }

    #[test]
    fn writes_larger_than_a_piece_land_whole_and_in_place() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        let file = File::create_new(&path).expect("create");
        let storage = FileStorage::new(file);
        let big = pattern(2 * WRITE_PIECE + 12_345);
        storage.write_at(b"head", 0).expect("small write");
        storage.write_at(&big, 7).expect("big write");
        let mut back = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut back))
            .expect("read back");
        assert_eq!(back.len(), 7 + big.len());
        assert_eq!(&back[..4], b"head");
        assert_eq!(&back[4..7], &[0, 0, 0]);
        assert!(back[7..] == big[..], "the pieces are not where they belong");
    }

    #[test]
    fn pieces_hands_on_at_most_a_piece_per_write_and_loses_nothing() {
        /// Records the size of every write it gets.
        struct Sizes(Vec<usize>, Vec<u8>);
        impl io::Write for Sizes {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.push(buf.len());
                self.1.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let data = pattern(3 * WRITE_PIECE + 1);
        let mut out = Pieces(Sizes(Vec::new(), Vec::new()));
        out.write_all(&data).expect("write_all");
        let Pieces(Sizes(sizes, got)) = out;
        assert!(sizes.iter().all(|&n| n <= WRITE_PIECE), "{sizes:?}");
        assert_eq!(sizes.len(), 4);
        assert!(got == data);
    }
}
