//! A [`Storage`] that injects faults: it simulates the process dying at a chosen I/O operation,
//! or a single operation failing with `EIO`, and it can say which bytes a crash would leave on
//! the disk.
//!
//! The model is the one `docs/FORMAT.md` §5 states: a successful `sync` makes every earlier write
//! durable; a write not followed by a successful `sync` may be lost, partly applied at any
//! granularity, or replaced by garbage. The storage keeps
//!
//! * the *live* bytes, what a process reading the file sees (every write applied at once);
//! * the *durable* image, the bytes as of the last successful `sync`;
//! * the *unsynced* writes (and `set_len` calls) since then, in order.
//!
//! I/O operations (`write_at`, `sync`, `set_len`) are numbered from 0 in the order they are
//! called; reads, `len` and `map` are not operations and are never counted.
//!
//! * [`FaultStorage::crash_at`]`(k)`: the process dies *during* operation `k`. A write at `k`
//!   is in flight, so it joins the unsynced writes (a crash image may hold any part of it); a
//!   sync at `k` does not complete. Operation `k` and every later call, reads included, fail.
//! * [`FaultStorage::fail_at`]`(k)`: operation `k` fails with `EIO` and the storage keeps
//!   running. A failed write changes nothing; a failed sync makes nothing durable (the unsynced
//!   writes stay unsynced: Linux may have dropped the dirty pages, so nothing may be assumed).
//! * [`FaultStorage::crash_image`]: the bytes a reopened file would hold after a crash now: the
//!   durable image with each unsynced write applied, dropped, torn or garbled.

use std::collections::BTreeSet;
use std::io;
use std::sync::{Mutex, MutexGuard};

use mediadb::store::Storage;
use mediadb::store::map::Mapping;

use super::SplitMix64;

/// Sector size for [`Fate::TornSectors`]: disks persist writes in units of at least this.
pub const SECTOR: u64 = 512;

/// `EIO` on Linux: the error [`FaultStorage::fail_at`] injects.
pub const EIO: i32 = 5;

/// One I/O operation, as recorded in the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `write_at(data, offset)`.
    Write {
        /// Where the write starts.
        offset: u64,
        /// The bytes written.
        data: Vec<u8>,
    },
    /// `set_len(len)`.
    SetLen(u64),
    /// `sync()`.
    Sync,
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Done,
    /// It failed with `EIO` (see [`FaultStorage::fail_at`]).
    Failed,
    /// The process died during it (see [`FaultStorage::crash_at`]).
    Crashed,
}

/// What a crash did to one unsynced write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// It landed whole.
    Applied,
    /// It was lost.
    Dropped,
    /// Only a prefix of it landed (at least one byte short of the whole).
    TornPrefix,
    /// Some of the 512-byte sectors it covers landed, the others did not.
    TornSectors,
    /// Its whole range holds random bytes.
    Garbled,
}

impl Fate {
    /// Every fate.
    pub const ALL: [Fate; 5] = [
        Fate::Applied,
        Fate::Dropped,
        Fate::TornPrefix,
        Fate::TornSectors,
        Fate::Garbled,
    ];
}

/// How [`FaultStorage::crash_image`] treats the unsynced writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write landed whole.
    AllApplied,
    /// Every unsynced write was lost: the durable image.
    AllDropped,
    /// Each unsynced write gets a fate drawn from the seed.
    Mixed,
    /// Every unsynced write gets this fate (random parts drawn from the seed).
    Each(Fate),
}

#[derive(Clone, Debug)]
enum Unsynced {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct State {
    live: Vec<u8>,
    durable: Vec<u8>,
    unsynced: Vec<Unsynced>,
    next_op: u64,
    crash_at: Option<u64>,
    crashed: bool,
    fail_at: BTreeSet<u64>,
    trace: Vec<(Op, Outcome)>,
}

/// The fault-injecting storage; see the module documentation.
#[derive(Debug, Default)]
pub struct FaultStorage {
    state: Mutex<State>,
}

fn crashed_error() -> io::Error {
    io::Error::other("fault injection: the process crashed")
}

/// Writes `data` at `offset` into `img`, growing it with zeros as needed.
fn put(img: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if img.len() < end {
        img.resize(end, 0);
    }
    img[start..end].copy_from_slice(data);
}

fn apply(img: &mut Vec<u8>, u: &Unsynced) {
    match u {
        Unsynced::Write { offset, data } => put(img, *offset, data),
        Unsynced::SetLen(len) => img.resize(*len as usize, 0),
    }
}

impl FaultStorage {
    /// An empty file.
    pub fn new() -> FaultStorage {
        FaultStorage::default()
    }

    /// A file whose durable contents are `image`.
    pub fn from_image(image: Vec<u8>) -> FaultStorage {
        FaultStorage {
            state: Mutex::new(State {
                live: image.clone(),
                durable: image,
                ..State::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already; keep the state usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The process dies during operation `k` (see the module documentation).
    pub fn crash_at(&self, k: u64) {
        self.lock().crash_at = Some(k);
    }

    /// Operation `k` fails with `EIO`; the storage keeps running.
    pub fn fail_at(&self, k: u64) {
        self.lock().fail_at.insert(k);
    }

    /// Operations started so far (the index the next one will get).
    pub fn ops(&self) -> u64 {
        self.lock().next_op
    }

    /// Whether the simulated crash has happened.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Every operation so far with its outcome, in order (index `k` is operation `k`).
    pub fn trace(&self) -> Vec<(Op, Outcome)> {
        self.lock().trace.clone()
    }

    /// The bytes as of the last successful sync.
    pub fn durable_image(&self) -> Vec<u8> {
        self.lock().durable.clone()
    }

    /// The bytes a reader sees now: every write applied.
    pub fn live_image(&self) -> Vec<u8> {
        self.lock().live.clone()
    }

    /// Number of writes and `set_len`s not yet made durable.
    pub fn unsynced(&self) -> usize {
        self.lock().unsynced.len()
    }

    /// The bytes a reopened file would hold after a crash now: the durable image plus each
    /// unsynced operation, in order, treated as `mode` says (random choices from `seed`).
    pub fn crash_image(&self, mode: CrashMode, seed: u64) -> Vec<u8> {
        self.crash_image_with_fates(mode, seed).0
    }

    /// [`FaultStorage::crash_image`], also returning the fate given to each unsynced write
    /// (`set_len` calls get `Applied` or `Dropped`), for failure messages.
    pub fn crash_image_with_fates(&self, mode: CrashMode, seed: u64) -> (Vec<u8>, Vec<Fate>) {
        let st = self.lock();
        let mut rng = SplitMix64::new(seed);
        let mut img = st.durable.clone();
        let mut fates = Vec::with_capacity(st.unsynced.len());
        for u in &st.unsynced {
            let fate = match mode {
                CrashMode::AllApplied => Fate::Applied,
                CrashMode::AllDropped => Fate::Dropped,
                CrashMode::Mixed => *rng.pick(&Fate::ALL),
                CrashMode::Each(f) => f,
            };
            match u {
                Unsynced::SetLen(_) => {
                    let applied = match fate {
                        Fate::Applied => true,
                        Fate::Dropped => false,
                        _ => rng.chance(1, 2),
                    };
                    if applied {
                        apply(&mut img, u);
                    }
                    fates.push(if applied {
                        Fate::Applied
                    } else {
                        Fate::Dropped
                    });
                }
                Unsynced::Write { offset, data } => {
                    land(&mut img, *offset, data, fate, &mut rng);
                    fates.push(fate);
                }
            }
        }
        (img, fates)
    }
}

impl State {
    /// Numbers the next operation and decides whether it runs, fails or crashes.
    fn begin(&mut self, op: Op) -> Result<(), io::Error> {
        if self.crashed {
            return Err(crashed_error());
        }
        let k = self.next_op;
        self.next_op += 1;
        if self.crash_at == Some(k) {
            self.crashed = true;
            match &op {
                Op::Write { offset, data } => self.unsynced.push(Unsynced::Write {
                    offset: *offset,
                    data: data.clone(),
                }),
                Op::SetLen(len) => self.unsynced.push(Unsynced::SetLen(*len)),
                Op::Sync => {}
            }
            self.trace.push((op, Outcome::Crashed));
            return Err(crashed_error());
        }
        if self.fail_at.contains(&k) {
            self.trace.push((op, Outcome::Failed));
            return Err(io::Error::from_raw_os_error(EIO));
        }
        self.trace.push((op, Outcome::Done));
        Ok(())
    }
}

/// Lands one unsynced write on `img` as `fate` says.
fn land(img: &mut Vec<u8>, offset: u64, data: &[u8], fate: Fate, rng: &mut SplitMix64) {
    match fate {
        Fate::Applied => put(img, offset, data),
        Fate::Dropped => {}
        Fate::TornPrefix => {
            // At least one byte short of the whole write; possibly nothing.
            let n = rng.below(data.len() as u64) as usize;
            put(img, offset, &data[..n]);
        }
        Fate::TornSectors => {
            let end = offset + data.len() as u64;
            let mut at = offset;
            while at < end {
                let sector_end = ((at / SECTOR) + 1) * SECTOR;
                let piece_end = sector_end.min(end);
                if rng.chance(1, 2) {
                    let (a, b) = ((at - offset) as usize, (piece_end - offset) as usize);
                    put(img, at, &data[a..b]);
                }
                at = piece_end;
            }
        }
        Fate::Garbled => {
            let mut junk = vec![0u8; data.len()];
            rng.fill(&mut junk);
            put(img, offset, &junk);
        }
    }
}

fn read_range(bytes: &[u8], offset: u64, len: usize) -> io::Result<&[u8]> {
    let start =
        usize::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    start
        .checked_add(len)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
}

impl Storage for FaultStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let st = self.lock();
        if st.crashed {
            return Err(crashed_error());
        }
        buf.copy_from_slice(read_range(&st.live, offset, buf.len())?);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.lock();
        let op = Op::Write {
            offset,
            data: buf.to_vec(),
        };
        st.begin(op)?;
        put(&mut st.live, offset, buf);
        st.unsynced.push(Unsynced::Write {
            offset,
            data: buf.to_vec(),
        });
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let st = self.lock();
        if st.crashed {
            return Err(crashed_error());
        }
        Ok(st.live.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        st.begin(Op::SetLen(len))?;
        st.live.resize(len as usize, 0);
        st.unsynced.push(Unsynced::SetLen(len));
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut st = self.lock();
        st.begin(Op::Sync)?;
        let st = &mut *st;
        for u in st.unsynced.drain(..) {
            apply(&mut st.durable, &u);
        }
        debug_assert_eq!(st.durable, st.live);
        Ok(())
    }

    fn map(&self, offset: u64, len: u64) -> io::Result<Mapping> {
        let st = self.lock();
        if st.crashed {
            return Err(crashed_error());
        }
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(Mapping::from_vec(
            read_range(&st.live, offset, len)?.to_vec(),
        ))
    }
}
