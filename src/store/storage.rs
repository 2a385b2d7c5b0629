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
    /// Writes `bufs` one after another from `offset`, as [`write_at`](Self::write_at) of
    /// their concatenation would. The default writes each in turn.
    fn write_vectored_at(&self, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
        let mut at = offset;
        for buf in bufs {
            self.write_at(buf, at)?;
            at += buf.len() as u64;
        }
        Ok(())
    }
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
    fn write_vectored_at(&self, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
        write_all_vectored_at(&self.file, bufs, offset)
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

/// The most bytes the engine hands to one write call, and the file offsets its writes are cut
/// at: a write never crosses a multiple of `WRITE_PIECE`.
///
/// The kernel picks the size of the page-cache folios a buffered write fills from the length
/// and the alignment of the write: a write that covers a whole aligned MiB fills one 1 MiB
/// folio, and the map of a file written so takes one page fault per MiB instead of one per
/// few pages. 100,000 random gets on a 1M-record database written in aligned 1 MiB pieces
/// took 382 page faults, against 2,260 for pieces cut anywhere, and ran 2–10% faster
/// (`/tmp`-built get bench, pairs alternated, this project's test VM).
///
/// A write of 2 MiB or more lets the kernel back the page cache with 2 MiB folios, and
/// allocating those can stall: on this project's test VM (Firecracker, with a DAMON scheme that
/// pages out idle memory), a 264 MB buffered write in 2 MiB or 8 MiB calls took 0.54–0.79 s in
/// most rounds, against 0.09–0.12 s in every round with calls of 64 KiB to 1 MiB (the same
/// process, the two alternated after a `cp` of 400 MB). `cp` itself, whose `copy_file_range`
/// splices 64 KiB at a time, never slowed down that way. Compaction of a 1M-record database
/// ran 0.52–0.74 s with whole 8 MiB writes, 0.23–0.33 s with 512 KiB calls and 0.20–0.26 s
/// with 1 MiB calls, the largest that stay below the 2 MiB order.
pub(crate) const WRITE_PIECE: usize = 1 << 20;

/// Bytes from `offset` to the next multiple of `align` (`align` when `offset` is one).
pub(crate) fn to_boundary(offset: u64, align: u64) -> u64 {
    align - offset % align
}

/// `write_all_at`, cut where the file offset crosses a multiple of [`WRITE_PIECE`].
pub(crate) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset + done as u64;
        let n = (buf.len() - done).min(to_boundary(at, WRITE_PIECE as u64) as usize);
        file.write_all_at(&buf[done..done + n], at)?;
        done += n;
    }
    Ok(())
}

/// `bufs` one after another from `offset`, in `pwritev` calls cut where the file offset
/// crosses a multiple of [`WRITE_PIECE`], so that pieces of the payload handed over apart
/// still fill whole folios without a copy.
pub(crate) fn write_all_vectored_at(file: &File, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = Vec::with_capacity(bufs.len());
    let mut at = offset;
    let (mut i, mut skip) = (0, 0);
    while i < bufs.len() {
        let mut room = to_boundary(at, WRITE_PIECE as u64) as usize;
        slices.clear();
        while room > 0 && i < bufs.len() {
            let rest = &bufs[i][skip..];
            let take = rest.len().min(room);
            if take > 0 {
                slices.push(io::IoSlice::new(&rest[..take]));
            }
            room -= take;
            at += take as u64;
            if take == rest.len() {
                (i, skip) = (i + 1, 0);
            } else {
                skip += take;
            }
        }
        let len: usize = slices.iter().map(|s| s.len()).sum();
        pwritev_all(file, &mut slices, at - len as u64)?;
    }
    Ok(())
}

/// `pwritev` until every byte of `slices` is written.
fn pwritev_all(file: &File, mut slices: &mut [io::IoSlice<'_>], mut offset: u64) -> io::Result<()> {
    while !slices.is_empty() {
        match rustix::io::pwritev(file, slices, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                offset += n as u64;
                io::IoSlice::advance_slices(&mut slices, n);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
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

/// A file written front to back from some offset, buffered so that each write to the file
/// ends where the file offset crosses a multiple of [`WRITE_PIECE`] (whole aligned pieces,
/// see there), and that starts writing back every [`WRITEBACK_EVERY`] bytes as they are
/// written, so that the `fdatasync` at the end has little left to wait for.
///
/// [`flush`](io::Write::flush) writes what is buffered; dropping it without a flush writes
/// nothing more.
pub(crate) struct StreamOut<'f> {
    file: &'f File,
    /// Where the first buffered byte goes.
    at: u64,
    /// Bytes waiting for the next boundary.
    buf: Vec<u8>,
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
            buf: Vec::new(),
            hinted: at,
        }
    }

    /// Writes `bytes` at the buffer's place (the buffer must be empty or be `bytes`' start).
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, self.at)?;
        self.at += bytes.len() as u64;
        if self.at - self.hinted >= WRITEBACK_EVERY {
            start_writeback(self.file, self.hinted, self.at - self.hinted);
            self.hinted = self.at;
        }
        Ok(())
    }
}

impl io::Write for StreamOut<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let end = self.at + self.buf.len() as u64;
        let n = data
            .len()
            .min(to_boundary(end, WRITE_PIECE as u64) as usize);
        if self.buf.is_empty() && n == to_boundary(end, WRITE_PIECE as u64) as usize {
            // Up to the boundary straight from `data`, without a copy.
            self.put(&data[..n])?;
            return Ok(n);
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(WRITE_PIECE);
        }
        self.buf.extend_from_slice(&data[..n]);
        if (self.at + self.buf.len() as u64).is_multiple_of(WRITE_PIECE as u64) {
            self.flush()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let result = self.put(&buf);
        self.buf = buf;
        self.buf.clear();
        result
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
    fn vectored_writes_land_in_order_across_piece_boundaries() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        let storage = FileStorage::new(File::create_new(&path).expect("create"));
        let data = pattern(3 * WRITE_PIECE + 999);
        // Slices of odd sizes, one empty, one spanning two boundaries.
        let cuts = [0, 5, 5, WRITE_PIECE - 3, 2 * WRITE_PIECE + 700, data.len()];
        let slices: Vec<&[u8]> = cuts.windows(2).map(|w| &data[w[0]..w[1]]).collect();
        storage
            .write_vectored_at(&slices, 11)
            .expect("vectored write");
        let back = std::fs::read(&path).expect("read back");
        assert_eq!(back.len(), 11 + data.len());
        assert!(
            back[11..] == data[..],
            "the slices are not where they belong"
        );
    }

    #[test]
    fn a_stream_loses_nothing_whatever_the_sizes_of_its_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        let file = File::create_new(&path).expect("create");
        let data = pattern(4 * WRITE_PIECE + 77);
        let mut out = StreamOut::at(&file, 3);
        let mut at = 0;
        for (i, n) in [1, 4096, WRITE_PIECE + 5, 17, 2 * WRITE_PIECE, 3, usize::MAX]
            .into_iter()
            .enumerate()
        {
            let n = n.min(data.len() - at);
            out.write_all(&data[at..at + n]).expect("write");
            at += n;
            if i == 2 {
                out.flush().expect("a flush in between");
            }
        }
        out.flush().expect("flush");
        let back = std::fs::read(&path).expect("read back");
        assert_eq!(back.len(), 3 + data.len());
        assert!(back[3..] == data[..], "the stream is not what was written");
    }
}
