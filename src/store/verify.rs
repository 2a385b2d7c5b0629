//! Checking a database without trusting it ([`verify`]), checking the files it indexes
//! ([`verify_fs`]), and copying what is intact out of a damaged one ([`recover`]).
//!
//! `verify` and `recover` read the file with `pread` ([`Storage::read_at`]) through a window of
//! at most [`WINDOW`] bytes, never through the map: a damaged or truncated file cannot make them
//! fault, and their memory does not grow with the file. `verify` keeps 20 bytes of state per
//! record id (offset, length, a 32-bit path hash and a 32-bit digest of the index entry), plus
//! the window, the Batch of the frame being checked, and one bit per id while it compares the
//! checkpoint: about 20 MiB + 64 MiB for a 1,000,000-record database.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use flatbuffers::VerifierOptions;
use rayon::prelude::*;

use super::checkpoint::idx_path;
use super::crc;
use super::format::{
    ALIGN, ENTRY_LEN, FLAG_ERROR, FRAME_HEADER_LEN, FRAME_MAGIC, FrameHeader, HEADER_MAGIC, Header,
    IDX_CHUNK, IDX_HEADER_BLOCK, IDX_MAGIC, IDX_VERSION, IdxHeader, LOG_START, MAX_RECORD_LEN,
    PLAYLIST_LOC_LEN, SLOT_BLOCK, SLOT_LEN, SLOT_OFFSETS, SlotProblem, TABLE_SLOT_LEN, align_up,
    get_u32, get_u64, path_hash,
};
use super::index::{FileEntry, Fixed, Slot};
use super::log::{self, Damage, TRAILER_LEN};
use super::storage::{FileStorage, Storage};
use super::{Database, fb, open_error};
use crate::error::{CommitError, OpenError};
use crate::record::{self, RecordView};

/// What a frame that replay refuses means for opening.
const REPLAY_FAILS: &str = "replay stops here, so opening fails unless a checkpoint covers this \
                            frame (then a read of a record fails when the damage breaks its \
                            structure or its path, size, mtime, inode or kind; other damaged \
                            bytes are read as they are: run `recover`)";

/// At most this many problems (and missing or changed files) are listed in a report; the rest
/// are counted.
pub const MAX_LISTED: usize = 10_000;

/// Largest read `verify` and `recover` make at once, and so the bound on their buffer (a frame
/// larger than this is checked in several reads).
pub const WINDOW: usize = 64 << 20;

/// Items of `item` bytes read per window: a whole number of checkpoint chunks.
fn window_items(item: usize) -> usize {
    let chunk = IDX_CHUNK as usize;
    (WINDOW / item / chunk).max(1) * chunk
}

/// Appends the CRC-32C of each checkpoint chunk of `buf` (items of `item` bytes; `buf` starts
/// on a chunk boundary) to `out`.
fn chunk_crcs(buf: &[u8], item: usize, out: &mut Vec<u32>) {
    out.extend(buf.chunks(IDX_CHUNK as usize * item).map(crc::of));
}

// ---------------------------------------------------------------------------------------------
// Problems

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Bytes that opening, reading or committing rely on are wrong: the database is damaged
    /// (`mediadb verify` exits 5).
    Damage,
    /// Something is wrong that nothing relies on: a checkpoint that open ignores (and the next
    /// writer replaces), or stray bytes in the unused part of a header block.
    Warning,
}

impl Severity {
    /// `"damage"` or `"warning"`, for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Damage => "damage",
            Severity::Warning => "warning",
        }
    }
}

/// Which file a problem's offset refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// The database file `NAME`.
    Database,
    /// The index checkpoint `NAME.idx`.
    Checkpoint,
}

impl Location {
    /// `"database"` or `"checkpoint"`, for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Database => "database",
            Location::Checkpoint => "checkpoint",
        }
    }
}

/// What part of the format a problem concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// One header slot is unusable, or disagrees with the other slot or with the log.
    HeaderSlot,
    /// No header slot is usable, or the current header disagrees with the log it describes.
    Header,
    /// A frame header is unreadable (magic, length) or the frame runs past the log's end.
    Frame,
    /// A frame's CRC-32C does not match its bytes.
    Checksum,
    /// A frame's sequence number or `prev_crc` does not follow the frame before it.
    Chain,
    /// A frame's Batch FlatBuffer (or its trailer) fails verification.
    Batch,
    /// A record buffer fails FlatBuffer verification.
    Record,
    /// A record disagrees with the `RecordEntry` that describes it.
    Entry,
    /// A database invariant is broken (unique live paths, unique ids, removals of live ids,
    /// next_id bounds).
    Invariant,
    /// The index checkpoint is damaged, foreign, or disagrees with the log.
    Checkpoint,
    /// Bytes that are always zero are not.
    Padding,
}

impl ProblemKind {
    /// A stable lower-case name, for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::HeaderSlot => "header-slot",
            ProblemKind::Header => "header",
            ProblemKind::Frame => "frame",
            ProblemKind::Checksum => "checksum",
            ProblemKind::Chain => "chain",
            ProblemKind::Batch => "batch",
            ProblemKind::Record => "record",
            ProblemKind::Entry => "entry",
            ProblemKind::Invariant => "invariant",
            ProblemKind::Checkpoint => "checkpoint",
            ProblemKind::Padding => "padding",
        }
    }
}

/// One thing `verify` found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// How bad it is.
    pub severity: Severity,
    /// Which file `offset` is in.
    pub location: Location,
    /// Absolute byte offset in that file.
    pub offset: u64,
    /// What part of the format it concerns.
    pub kind: ProblemKind,
    /// What is wrong and what it means.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} byte {} ({}): {}",
            self.severity.as_str(),
            self.location.as_str(),
            self.offset,
            self.kind.as_str(),
            self.message
        )
    }
}

/// What `verify` found in one header slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotReport {
    /// Offset of the slot in the file (0 or 4096).
    pub offset: u64,
    /// The decoded slot, when its magic, checksum, version, flags and length are valid.
    pub header: Option<Header>,
    /// Why the slot is not usable, when it is not.
    pub problem: Option<String>,
}

/// What `verify` could say about the index checkpoint `NAME.idx`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointStatus {
    /// There is no checkpoint (or the database is not a file).
    Absent,
    /// It agrees with the log: every entry and the hash table, as of commit `seq`.
    Agrees {
        /// The commit it covers.
        seq: u64,
    },
    /// Problems were reported for it (open ignores it unless a problem is `Damage`).
    Problems,
    /// It could not be compared because the log is damaged before the commit it covers.
    NotCompared,
}

/// Everything [`verify`] found: counts, the state of both header slots and of the checkpoint,
/// and every problem with its offset.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// The database checked.
    pub path: PathBuf,
    /// Length of the file.
    pub file_len: u64,
    /// Both header slots, in file order.
    pub slots: [SlotReport; 2],
    /// Index into `slots` of the header in force (the valid slot with the higher generation).
    pub active_slot: Option<usize>,
    /// End of the committed log according to that header (the file length when none is valid).
    pub committed_len: u64,
    /// Bytes past `committed_len`: what an interrupted commit left; never read, and overwritten
    /// by the next commit. Not a problem.
    pub tail_bytes: u64,
    /// Frames checked.
    pub frames: u64,
    /// Record buffers checked (every upsert of every frame, live or not).
    pub records: u64,
    /// Removals in the log.
    pub removals: u64,
    /// Whether the replay reached `committed_len` without damage, so that `seq`, `next_id`,
    /// `live_records` and `live_bytes` describe the whole log (otherwise they stop at the first
    /// damaged frame).
    pub replayed: bool,
    /// Sequence number of the last frame checked.
    pub seq: u64,
    /// next_id after the last frame, as replayed.
    pub next_id: u64,
    /// Live records after the last frame, as replayed.
    pub live_records: u64,
    /// Bytes of live record buffers after the last frame, as replayed.
    pub live_bytes: u64,
    /// The checkpoint's state.
    pub checkpoint: CheckpointStatus,
    /// Every problem found, in file order (at most [`MAX_LISTED`]).
    pub problems: Vec<Problem>,
    /// Problems found beyond the [`MAX_LISTED`] listed.
    pub problems_omitted: u64,
}

impl VerifyReport {
    /// Whether nothing at all was found wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.problems_omitted == 0
    }

    /// Whether the database is damaged: some problem has [`Severity::Damage`] (the CLI exits 5).
    pub fn is_damaged(&self) -> bool {
        self.problems_omitted > 0 || self.problems.iter().any(|p| p.severity == Severity::Damage)
    }

    /// What the user can do about the problems found, if any.
    pub fn advice(&self) -> Option<String> {
        let name = self.path.display();
        if self.is_damaged() {
            Some(format!(
                "{name} is damaged. Run `mediadb recover OUT` to copy every record that still \
                 verifies into a new database OUT (it reports what was lost), check OUT with \
                 `mediadb verify`, then replace {name} with it; keep the damaged file until then. \
                 A rescan of the library restores what was lost."
            ))
        } else if !self.is_clean() {
            Some(format!(
                "{name} is sound. The warnings concern the index checkpoint or unused bytes: \
                 delete {name}.idx if it is named (the next writer rebuilds it from the log)."
            ))
        } else {
            None
        }
    }
}

#[derive(Default)]
struct Sink {
    list: Vec<Problem>,
    omitted: u64,
}

impl Sink {
    fn push(
        &mut self,
        severity: Severity,
        location: Location,
        offset: u64,
        kind: ProblemKind,
        message: impl Into<String>,
    ) {
        if self.list.len() < MAX_LISTED {
            self.list.push(Problem {
                severity,
                location,
                offset,
                kind,
                message: message.into(),
            });
        } else {
            self.omitted += 1;
        }
    }

    fn damage(&mut self, offset: u64, kind: ProblemKind, message: impl Into<String>) {
        self.push(Severity::Damage, Location::Database, offset, kind, message);
    }

    fn cp(&mut self, severity: Severity, offset: u64, message: impl Into<String>) {
        self.push(
            severity,
            Location::Checkpoint,
            offset,
            ProblemKind::Checkpoint,
            message,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Reading through a window

/// Positional reads through one reused buffer of at most `window` bytes (more only when a single
/// request is larger).
pub(crate) struct Reader<'s> {
    storage: &'s dyn Storage,
    len: u64,
    window: usize,
    start: u64,
    buf: Vec<u8>,
}

impl<'s> Reader<'s> {
    pub(crate) fn new(storage: &'s dyn Storage, len: u64, window: usize) -> Reader<'s> {
        Reader {
            storage,
            len,
            window: window.max(FRAME_HEADER_LEN),
            start: 0,
            buf: Vec::new(),
        }
    }

    /// The `n` bytes at `off`, or `None` when they run past the end of the file.
    pub(crate) fn get(&mut self, off: u64, n: usize) -> io::Result<Option<&[u8]>> {
        let Some(end) = off.checked_add(n as u64).filter(|&e| e <= self.len) else {
            return Ok(None);
        };
        if off < self.start || end > self.start + self.buf.len() as u64 {
            let stop = self.len.min(off.saturating_add(self.window.max(n) as u64));
            let want = (stop - off) as usize;
            // Bytes from `off` that the buffer already holds move to its front instead of being
            // read again (a frame that straddles the end of the window).
            let have_end = self.start + self.buf.len() as u64;
            let kept = if off >= self.start && off < have_end {
                let from = (off - self.start) as usize;
                self.buf.copy_within(from.., 0);
                (have_end - off).min(want as u64) as usize
            } else {
                0
            };
            if self.buf.len() < want {
                if kept == 0 {
                    // A fresh zeroed allocation, not `resize`: no byte-by-byte fill.
                    self.buf = vec![0u8; want];
                } else {
                    self.buf.resize(want, 0);
                }
            }
            self.buf.truncate(want);
            self.start = off;
            if let Err(e) = self
                .storage
                .read_at(&mut self.buf[kept..], off + kept as u64)
            {
                self.buf.clear();
                return Err(io::Error::new(
                    e.kind(),
                    format!("reading {want} bytes at offset {off}: {e}"),
                ));
            }
        }
        let s = (off - self.start) as usize;
        Ok(Some(&self.buf[s..s + n]))
    }

    /// The `n` bytes at `off` as a copy, for a random access: read alone when the window does
    /// not hold them, so it does not move the window.
    pub(crate) fn get_small(&mut self, off: u64, n: usize) -> io::Result<Option<Vec<u8>>> {
        let Some(end) = off.checked_add(n as u64).filter(|&e| e <= self.len) else {
            return Ok(None);
        };
        if off >= self.start && end <= self.start + self.buf.len() as u64 {
            let s = (off - self.start) as usize;
            return Ok(Some(self.buf[s..s + n].to_vec()));
        }
        let mut v = vec![0u8; n];
        self.storage.read_at(&mut v, off)?;
        Ok(Some(v))
    }
}

// ---------------------------------------------------------------------------------------------
// Records against their entries

/// What an index entry or a `RecordEntry` says about one record.
#[derive(Clone, Copy, Debug)]
struct Expect {
    pub id: u64,
    pub path_hash: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
    pub kind: u8,
    pub extractor_version: u16,
    pub flags: u8,
    pub len: u32,
}

impl Expect {
    fn from_record_entry(e: &fb::RecordEntry) -> Expect {
        Expect {
            id: e.id(),
            path_hash: e.path_hash(),
            size: e.size(),
            mtime_ns: e.mtime_ns(),
            inode: e.inode(),
            kind: e.kind().0,
            extractor_version: e.extractor_version(),
            flags: e.flags(),
            len: e.len(),
        }
    }
}

/// Why a record buffer was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RecordFault {
    /// The buffer itself is not a valid record.
    Invalid(String),
    /// It is valid but says something else than its entry.
    Mismatch(String),
}

impl RecordFault {
    fn message(&self) -> &str {
        match self {
            RecordFault::Invalid(m) | RecordFault::Mismatch(m) => m,
        }
    }
}

/// Verifies the record buffer `bytes` (exactly the entry's `len` bytes) and that every field
/// the entry repeats agrees with it.
fn check_record<'a>(bytes: &'a [u8], x: &Expect) -> Result<RecordView<'a>, RecordFault> {
    let (v, len) = record::verify(bytes).map_err(|p| {
        RecordFault::Invalid(format!(
            "record {} fails FlatBuffer verification ({p}): its bytes are damaged",
            x.id
        ))
    })?;
    let mut bad = Vec::new();
    if len != x.len as usize {
        bad.push(format!("length {len} (entry says {})", x.len));
    }
    if v.id() != x.id {
        bad.push(format!("id {}", v.id()));
    }
    if v.path().is_empty() {
        bad.push("an empty path".to_owned());
    } else if path_hash(v.path()) != x.path_hash {
        bad.push("a path whose hash differs from the entry's".to_owned());
    }
    if v.size() != x.size {
        bad.push(format!("size {} (entry says {})", v.size(), x.size));
    }
    if v.mtime_ns() != x.mtime_ns {
        bad.push(format!(
            "mtime {} (entry says {})",
            v.mtime_ns(),
            x.mtime_ns
        ));
    }
    if v.inode() != x.inode {
        bad.push(format!("inode {} (entry says {})", v.inode(), x.inode));
    }
    if v.kind().to_fb().0 != x.kind {
        bad.push(format!(
            "kind {} (entry says {})",
            v.kind().to_fb().0,
            x.kind
        ));
    }
    if v.extractor_version() != x.extractor_version {
        bad.push(format!(
            "extractor version {} (entry says {})",
            v.extractor_version(),
            x.extractor_version
        ));
    }
    let flags = if v.error().is_some() { FLAG_ERROR } else { 0 };
    if flags != x.flags {
        bad.push(format!("flags {flags:#x} (entry says {:#x})", x.flags));
    }
    if bad.is_empty() {
        Ok(v)
    } else {
        Err(RecordFault::Mismatch(format!(
            "record {} disagrees with its entry: it has {}",
            x.id,
            bad.join(", ")
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// verify

/// Per-id state of the replay: 20 bytes per id.
struct State {
    /// Absolute offset of the live record; meaningless when `len` is 0.
    off: Vec<u64>,
    /// Record length; 0 when the id is not live.
    len: Vec<u32>,
    /// Low 32 bits of the path hash.
    hash: Vec<u32>,
    /// CRC-32C of the 48-byte index entry (docs/FORMAT.md §3), to compare with the checkpoint.
    digest: Vec<u32>,
    live_records: u64,
    live_bytes: u64,
    /// Live playlists: id → (absolute offset, length).
    playlists: std::collections::BTreeMap<u64, (u64, u32)>,
}

impl State {
    fn new() -> State {
        State {
            off: vec![0],
            len: vec![0],
            hash: vec![0],
            digest: vec![0],
            live_records: 0,
            live_bytes: 0,
            playlists: std::collections::BTreeMap::new(),
        }
    }

    fn next_id(&self) -> u64 {
        self.len.len() as u64
    }

    fn grow(&mut self, next_id: u64) {
        let n = next_id as usize;
        if n > self.len.len() {
            self.off.resize(n, 0);
            self.len.resize(n, 0);
            self.hash.resize(n, 0);
            self.digest.resize(n, 0);
        }
    }

    fn live(&self, id: u64) -> bool {
        self.len.get(id as usize).is_some_and(|&l| l != 0)
    }
}

/// The parts of a verified Batch that verify needs after the frame's bytes are gone.
struct BatchInfo {
    seq: u64,
    next_id: u64,
    entries: Vec<fb::RecordEntry>,
    removals: Vec<u64>,
    playlists: Vec<fb::PlaylistRef>,
    playlist_removals: Vec<u64>,
}

impl BatchInfo {
    fn of(b: &fb::Batch<'_>) -> BatchInfo {
        BatchInfo {
            seq: b.seq(),
            next_id: b.next_id(),
            entries: b.records().into_iter().flatten().copied().collect(),
            removals: b.removals().into_iter().flatten().collect(),
            playlists: b.playlists().into_iter().flatten().copied().collect(),
            playlist_removals: b.playlist_removals().into_iter().flatten().collect(),
        }
    }
}

/// One record's replay facts, computed alongside its verification.
#[derive(Clone, Copy)]
struct Facts {
    hash: u32,
    digest: u32,
}

fn facts(e: &fb::RecordEntry, payload_off: u64, with_digest: bool, b: &mut Vec<u8>) -> Facts {
    if !with_digest {
        return Facts {
            hash: e.path_hash() as u32,
            digest: 0,
        };
    }
    let entry = super::log::entry_of(e, payload_off);
    b.clear();
    entry.encode(b);
    Facts {
        hash: e.path_hash() as u32,
        digest: crc::of(b),
    }
}

fn digest_of(raw: &[u8]) -> u32 {
    crc::of(raw)
}

fn batch_options(len: usize) -> VerifierOptions {
    // The same limits as `log::parse_payload`.
    VerifierOptions {
        max_depth: 4,
        max_tables: 4,
        max_apparent_size: len.saturating_mul(2),
        ignore_missing_null_terminator: false,
    }
}

fn slot_name(i: usize) -> &'static str {
    if i == 0 { "A" } else { "B" }
}

/// A checkpoint that claims this database and waits for the walk to reach its commit.
struct PendingCp {
    file: File,
    header: IdxHeader,
}

struct Verifier<'a> {
    reader: Reader<'a>,
    sink: Sink,
    state: State,
    /// Whether the replay state is trustworthy (no frame damaged or refused so far).
    state_ok: bool,
    /// seq and crc of the last frame (as claimed by its header), for the chain check; `None`
    /// right after a damaged frame, whose fields cannot be trusted.
    chain: Option<(u64, u32)>,
    seq: u64,
    prev_crc: u32,
    end: u64,
    frames: u64,
    records: u64,
    removals: u64,
    older: Option<(usize, Header)>,
    older_seen: bool,
    cp: Option<PendingCp>,
    cp_status: CheckpointStatus,
    progress: &'a dyn Fn(u64, u64),
}

/// Checks the database at `path` without trusting any of it, reading with `pread`; see the
/// module documentation and [`VerifyReport`]. `progress` is called with (bytes checked, bytes
/// to check) as the log is walked.
///
/// Errors only when the file cannot be read at all, or holds no mediadb header and no log
/// (`OpenError::NotADatabase`); damage is reported in the report.
pub fn verify(
    path: impl AsRef<Path>,
    progress: &dyn Fn(u64, u64),
) -> Result<VerifyReport, OpenError> {
    let path = &super::resolve_path(path.as_ref());
    super::refuse_special(path)?;
    let file = File::open(path).map_err(|e| open_error(path, e))?;
    let storage = FileStorage::new(file);
    verify_impl(&storage, path, Some(&idx_path(path)), WINDOW, progress)
}

/// [`verify`] for a database held by any [`Storage`] (no checkpoint is checked). `name` only
/// names the database in the report.
pub fn verify_storage(
    storage: &dyn Storage,
    name: &Path,
    progress: &dyn Fn(u64, u64),
) -> Result<VerifyReport, OpenError> {
    verify_impl(storage, name, None, WINDOW, progress)
}

pub(crate) fn verify_impl(
    storage: &dyn Storage,
    name: &Path,
    idx: Option<&Path>,
    window: usize,
    progress: &dyn Fn(u64, u64),
) -> Result<VerifyReport, OpenError> {
    let io_err = |source| OpenError::Io {
        path: name.to_path_buf(),
        source,
    };
    let file_len = storage.len().map_err(io_err)?;
    let mut v = Verifier {
        reader: Reader::new(storage, file_len, window),
        sink: Sink::default(),
        state: State::new(),
        state_ok: true,
        chain: Some((0, 0)),
        seq: 0,
        prev_crc: 0,
        end: file_len,
        frames: 0,
        records: 0,
        removals: 0,
        older: None,
        older_seen: false,
        cp: None,
        cp_status: CheckpointStatus::Absent,
        progress,
    };
    let (slots, active, any_magic) = v.slots(file_len).map_err(io_err)?;
    if active.is_none() && !any_magic {
        let frame_magic = v
            .reader
            .get(LOG_START, FRAME_MAGIC.len())
            .map_err(io_err)?
            .is_some_and(|m| m == FRAME_MAGIC);
        if !frame_magic {
            return Err(OpenError::NotADatabase {
                path: name.to_path_buf(),
                detail: if file_len == 0 {
                    "the file is empty".into()
                } else {
                    "no mediadb header and no log".into()
                },
            });
        }
    }
    let active_header = active.map(|i| slots[i].header.expect("active slot is valid"));
    if let Some(h) = active_header {
        v.end = h.committed_len;
        if let Some(idx) = idx {
            v.open_checkpoint(idx, &h);
        }
    } else {
        v.sink.damage(
            0,
            ProblemKind::Header,
            "no valid header slot: open refuses the file. The log was checked up to the end of \
             the file",
        );
    }
    let walked = v.walk().map_err(io_err)?;
    let replayed = walked && v.state_ok;
    v.finish(active_header, walked).map_err(io_err)?;
    (v.progress)(v.end, v.end);
    Ok(VerifyReport {
        path: name.to_path_buf(),
        file_len,
        slots,
        active_slot: active,
        committed_len: v.end,
        tail_bytes: file_len.saturating_sub(v.end),
        frames: v.frames,
        records: v.records,
        removals: v.removals,
        replayed,
        seq: v.seq,
        next_id: v.state.next_id(),
        live_records: v.state.live_records,
        live_bytes: v.state.live_bytes,
        checkpoint: v.cp_status,
        problems: v.sink.list,
        problems_omitted: v.sink.omitted,
    })
}

impl Verifier<'_> {
    /// Checks both header slots; returns their reports, the active slot and whether any slot
    /// carries the header magic.
    fn slots(&mut self, file_len: u64) -> io::Result<([SlotReport; 2], Option<usize>, bool)> {
        let mut reports: Vec<SlotReport> = Vec::with_capacity(2);
        let mut any_magic = false;
        for (i, &off) in SLOT_OFFSETS.iter().enumerate() {
            let name = slot_name(i);
            let avail = file_len.saturating_sub(off).min(SLOT_LEN as u64) as usize;
            let mut raw = [0u8; SLOT_LEN];
            if avail > 0 {
                let got = self.reader.get(off, avail)?.expect("within the file");
                raw[..avail].copy_from_slice(got);
            }
            let has_magic = avail >= HEADER_MAGIC.len() && raw[..8] == HEADER_MAGIC;
            any_magic |= has_magic;
            let decoded = if avail < SLOT_LEN {
                Err(if has_magic {
                    SlotProblem::Truncated
                } else {
                    SlotProblem::NoMagic
                })
            } else {
                Header::decode(&raw, file_len)
            };
            let problem = match decoded {
                Ok(_) => None,
                Err(p) => Some(match p {
                    SlotProblem::NoMagic if avail == 0 => {
                        format!("header slot {name} is missing: the file ends at byte {file_len}")
                    }
                    SlotProblem::NoMagic => format!(
                        "header slot {name} has no mediadb magic: it was overwritten or zeroed"
                    ),
                    SlotProblem::BadCrc => format!(
                        "header slot {name} fails its checksum: it is damaged (a crash during a \
                         commit can tear the slot being written; the other slot then holds the \
                         commit before)"
                    ),
                    SlotProblem::NewerVersion(v) => format!(
                        "header slot {name} is format version {v}, newer than this build reads"
                    ),
                    SlotProblem::UnknownVersion(v) => {
                        format!("header slot {name} has unknown format version {v}")
                    }
                    SlotProblem::UnknownFlags(f) => {
                        format!("header slot {name} has unknown flags {f:#x}")
                    }
                    SlotProblem::BadLength(cl) => {
                        if Header::decode(&raw, u64::MAX).is_ok() && cl > file_len {
                            format!(
                                "header slot {name} says the log ends at byte {cl}, but the file \
                                 has only {file_len} bytes: the file is truncated"
                            )
                        } else {
                            format!("header slot {name} has an impossible committed length {cl}")
                        }
                    }
                    SlotProblem::Truncated => format!(
                        "header slot {name} is cut short: the file ends at byte {file_len}, \
                         inside it"
                    ),
                }),
            };
            if let Some(p) = &problem {
                self.sink.damage(off, ProblemKind::HeaderSlot, p.clone());
            }
            // The rest of the slot's block is always zero.
            let pad_start = off + SLOT_LEN as u64;
            let pad_len = file_len.min(off + SLOT_BLOCK).saturating_sub(pad_start) as usize;
            if pad_len > 0 {
                let pad = self
                    .reader
                    .get(pad_start, pad_len)?
                    .expect("within the file");
                const ZEROS: [u8; SLOT_BLOCK as usize] = [0; SLOT_BLOCK as usize];
                if pad != &ZEROS[..pad_len]
                    && let Some(k) = pad.iter().position(|&b| b != 0)
                {
                    self.sink.push(
                        Severity::Warning,
                        Location::Database,
                        pad_start + k as u64,
                        ProblemKind::Padding,
                        format!(
                            "the unused part of header block {name} holds non-zero bytes: nothing \
                             reads them, but mediadb never writes them (bit rot or a foreign write)"
                        ),
                    );
                }
            }
            reports.push(SlotReport {
                offset: off,
                header: decoded.ok(),
                problem,
            });
        }
        let active = (0..2)
            .filter(|&i| reports[i].header.is_some())
            .max_by_key(|&i| reports[i].header.map(|h| h.generation));
        // Generations alternate: slot A always holds odd ones, slot B even ones.
        for (i, r) in reports.iter().enumerate() {
            if let Some(h) = r.header
                && h.generation % 2 != if i == 0 { 1 } else { 0 }
            {
                self.sink.damage(
                    r.offset,
                    ProblemKind::HeaderSlot,
                    format!(
                        "header slot {} holds generation {}, which belongs in the other slot: \
                         the slots were swapped or copied",
                        slot_name(i),
                        h.generation
                    ),
                );
            }
        }
        if let (Some(a), Some(b)) = (reports[0].header, reports[1].header) {
            let (newer, older, oi) = if a.generation >= b.generation {
                (a, b, 1)
            } else {
                (b, a, 0)
            };
            let at = SLOT_OFFSETS[oi];
            if a.generation == b.generation {
                self.sink.damage(
                    at,
                    ProblemKind::HeaderSlot,
                    format!(
                        "both header slots have generation {}: one is a copy of the other",
                        a.generation
                    ),
                );
            } else if newer.generation - older.generation != 1 {
                self.sink.damage(
                    at,
                    ProblemKind::HeaderSlot,
                    format!(
                        "header generations {} and {} are not consecutive",
                        older.generation, newer.generation
                    ),
                );
            }
            if a.file_id != b.file_id || a.created_unix_ns != b.created_unix_ns {
                self.sink.damage(
                    at,
                    ProblemKind::HeaderSlot,
                    "the header slots belong to different databases (file_id or creation time \
                     differ)",
                );
            } else if older.committed_len > newer.committed_len || older.seq > newer.seq {
                self.sink.damage(
                    at,
                    ProblemKind::HeaderSlot,
                    format!(
                        "the older header slot describes a longer log (seq {}, {} bytes) than the \
                         newer one (seq {}, {} bytes)",
                        older.seq, older.committed_len, newer.seq, newer.committed_len
                    ),
                );
            } else {
                self.older = Some((oi, older));
            }
        }
        let slots: [SlotReport; 2] = reports.try_into().expect("two slots");
        Ok((slots, active, any_magic))
    }

    /// Reads the checkpoint's header; keeps it for comparison when it claims this database.
    fn open_checkpoint(&mut self, idx: &Path, h: &Header) {
        let file = match File::open(idx) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                self.cp_problem(Severity::Warning, 0, format!("cannot be read ({e})"));
                return;
            }
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut raw = [0u8; SLOT_LEN];
        if len < IDX_HEADER_BLOCK || file.read_exact_at(&mut raw, 0).is_err() {
            self.cp_problem(
                Severity::Warning,
                0,
                format!("is {len} bytes, too short for a checkpoint; open ignores it"),
            );
            return;
        }
        let Some(ch) = IdxHeader::decode(&raw) else {
            let version = get_u32(&raw, 8);
            let what = if raw[..8] != IDX_MAGIC {
                "is not a checkpoint (no magic)".to_owned()
            } else if crc::of(&raw[..124]) == get_u32(&raw, 124) && version != IDX_VERSION {
                format!(
                    "is a version-{version} checkpoint (this build reads version {IDX_VERSION})"
                )
            } else {
                "has a damaged header (checksum or sizes)".to_owned()
            };
            self.cp_problem(
                Severity::Warning,
                0,
                format!("{what}; open ignores it and the next writer replaces it"),
            );
            return;
        };
        if ch.file_id != h.file_id {
            self.cp_problem(
                Severity::Warning,
                16,
                "belongs to another database (its file_id differs); open ignores it",
            );
            return;
        }
        let why = if ch.committed_len < LOG_START || ch.committed_len > h.committed_len {
            Some(format!(
                "covers committed length {}, outside this log",
                ch.committed_len
            ))
        } else if ch.seq > h.seq {
            Some(format!(
                "covers seq {}, beyond this log's {}",
                ch.seq, h.seq
            ))
        } else if ch.next_id > h.next_id {
            Some(format!("has next_id {} beyond the header's", ch.next_id))
        } else if ch.file_len() != len {
            Some(format!(
                "is {len} bytes but its header implies {}: it is truncated or extended",
                ch.file_len()
            ))
        } else {
            None
        };
        if let Some(why) = why {
            self.cp_problem(
                Severity::Warning,
                0,
                format!("{why}; open ignores it and the next writer replaces it"),
            );
            return;
        }
        self.cp_status = CheckpointStatus::NotCompared;
        self.cp = Some(PendingCp { file, header: ch });
    }

    fn cp_problem(&mut self, severity: Severity, offset: u64, what: impl fmt::Display) {
        self.cp_status = CheckpointStatus::Problems;
        self.sink
            .cp(severity, offset, format!("the index checkpoint {what}"));
    }

    /// Walks the frames from `LOG_START` to `end`. Returns whether it reached `end` frame by
    /// frame (false when it had to skip unreadable bytes or stop).
    fn walk(&mut self) -> io::Result<bool> {
        let mut off = LOG_START;
        let mut whole = true;
        if self.end < LOG_START {
            return Ok(false);
        }
        self.at_boundary(off)?;
        while off < self.end {
            (self.progress)(off, self.end);
            let fh = if self.end - off < FRAME_HEADER_LEN as u64 {
                None
            } else {
                self.reader
                    .get(off, FRAME_HEADER_LEN)?
                    .map(|raw| (raw[..4] == FRAME_MAGIC, FrameHeader::decode(raw)))
            };
            let problem = match fh {
                None => Some(format!(
                    "the log ends inside a frame header ({} bytes left)",
                    self.end - off
                )),
                Some((false, _)) => Some("no frame magic where a frame should start".into()),
                Some((true, None)) => Some("frame header with an impossible payload length".into()),
                Some((true, Some(h))) if h.frame_len() > self.end - off => Some(format!(
                    "frame of {} bytes runs past the end of the log at byte {}",
                    h.frame_len(),
                    self.end
                )),
                Some((true, Some(_))) => None,
            };
            if let Some(p) = problem {
                whole = false;
                self.lose_state();
                let next = self.resync(off + ALIGN as u64)?;
                let skipped = match next {
                    Some(n) => format!("bytes [{off}, {n}) were skipped to the next intact frame"),
                    None => format!(
                        "no intact frame follows: bytes [{off}, {}) were not checked",
                        self.end
                    ),
                };
                self.sink
                    .damage(off, ProblemKind::Frame, format!("{p}; {skipped}"));
                self.chain = None;
                match next {
                    Some(n) => {
                        off = n;
                        continue;
                    }
                    None => break,
                }
            }
            let Some((_, Some(h))) = fh else {
                unreachable!("problem handled above")
            };
            self.frame(off, h)?;
            off += h.frame_len();
            self.at_boundary(off)?;
        }
        Ok(whole)
    }

    /// The first offset at or after `from` (8-aligned) where an intact frame starts: magic,
    /// length within the log and a matching checksum.
    fn resync(&mut self, from: u64) -> io::Result<Option<u64>> {
        let mut off = align_up(from as usize) as u64;
        while off + FRAME_HEADER_LEN as u64 <= self.end {
            if self.candidate(off)?.is_some() {
                return Ok(Some(off));
            }
            off += ALIGN as u64;
        }
        Ok(None)
    }

    /// The frame header at `off` if it is one whose checksum matches within `end`.
    fn candidate(&mut self, off: u64) -> io::Result<Option<FrameHeader>> {
        let Some(raw) = self.reader.get(off, FRAME_HEADER_LEN)? else {
            return Ok(None);
        };
        if raw[..4] != FRAME_MAGIC {
            return Ok(None);
        }
        let Some(h) = FrameHeader::decode(raw) else {
            return Ok(None);
        };
        if h.frame_len() > self.end - off {
            return Ok(None);
        }
        Ok(self.crc_ok(off, h)?.then_some(h))
    }

    fn crc_ok(&mut self, off: u64, h: FrameHeader) -> io::Result<bool> {
        let flen = h.frame_len() as usize;
        if flen <= self.reader.window {
            let b = self.reader.get(off, flen)?.expect("bounds checked");
            return Ok(FrameHeader::check(
                &b[..FRAME_HEADER_LEN],
                &b[FRAME_HEADER_LEN..],
            ));
        }
        let raw: Vec<u8> = self
            .reader
            .get(off, FRAME_HEADER_LEN)?
            .expect("bounds checked")
            .to_vec();
        let mut crc = crc::of(&raw[..20]);
        let mut at = off + FRAME_HEADER_LEN as u64;
        let end = off + flen as u64;
        while at < end {
            let n = ((end - at) as usize).min(self.reader.window);
            crc = crc::append(crc, self.reader.get(at, n)?.expect("bounds checked"));
            at += n as u64;
        }
        Ok(crc == h.crc)
    }

    fn lose_state(&mut self) {
        self.state_ok = false;
    }

    fn frame(&mut self, off: u64, h: FrameHeader) -> io::Result<()> {
        let poff = off + FRAME_HEADER_LEN as u64;
        let plen = h.payload_len as usize;
        let flen = h.frame_len() as usize;
        let crc_ok = self.crc_ok(off, h)?;
        if !crc_ok {
            self.sink.damage(
                off,
                ProblemKind::Checksum,
                format!(
                    "frame seq {} (bytes [{off}, {})) fails its checksum: some of its bytes are \
                     damaged; {REPLAY_FAILS}",
                    h.seq,
                    off + flen as u64
                ),
            );
        } else if let Some((seq, prev)) = if off == LOG_START {
            // The first frame of a file has seq 1, or a later one in a compacted file.
            Some((h.seq.max(1) - 1, 0))
        } else {
            self.chain
        } {
            if h.seq != seq + 1 {
                self.sink.damage(
                    off,
                    ProblemKind::Chain,
                    format!("frame seq {} does not follow seq {seq}", h.seq),
                );
                self.lose_state();
            } else if h.prev_crc != prev {
                self.sink.damage(
                    off,
                    ProblemKind::Chain,
                    format!(
                        "frame seq {} does not chain to the frame before it (prev_crc {:#010x}, \
                         expected {prev:#010x}): it is not that frame's successor",
                        h.seq, h.prev_crc
                    ),
                );
                self.lose_state();
            }
        }
        if !crc_ok {
            self.lose_state();
        }
        self.frames += 1;
        self.seq = h.seq;
        self.prev_crc = h.crc;
        self.chain = crc_ok.then_some((h.seq, h.crc));

        let parsed = if flen <= self.reader.window {
            let b = self.reader.get(off, flen)?.expect("bounds checked");
            log::parse_payload(&b[FRAME_HEADER_LEN..], poff).map(|b| BatchInfo::of(&b))
        } else {
            self.streamed_batch(poff, plen)?
        };
        let info = match parsed {
            Ok(info) => info,
            Err(d) => {
                self.sink.damage(
                    d.offset,
                    ProblemKind::Batch,
                    format!(
                        "frame seq {}: {}: the batch cannot be read, so its records and removals \
                         are unknown",
                        h.seq, d.what
                    ),
                );
                self.lose_state();
                return Ok(());
            }
        };
        if info.seq != h.seq {
            self.sink.damage(
                poff,
                ProblemKind::Batch,
                format!("batch says seq {} inside frame seq {}", info.seq, h.seq),
            );
            self.lose_state();
        }
        self.records += info.entries.len() as u64;
        self.removals += info.removals.len() as u64;

        // Each id at most once per batch, every upserted id below the batch's next_id.
        let mut ids: Vec<u64> = info.entries.iter().map(|e| e.id()).collect();
        ids.extend_from_slice(&info.removals);
        // Usually already in order: upserts of new ids, then removals of older ones.
        if !ids.is_sorted() {
            ids.par_sort_unstable();
        }
        for w in ids.windows(2).filter(|w| w[0] == w[1]) {
            self.sink.damage(
                poff,
                ProblemKind::Invariant,
                format!(
                    "frame seq {}: id {} appears twice in one batch",
                    h.seq, w[0]
                ),
            );
        }
        for e in &info.entries {
            if e.id() == 0 || e.id() >= info.next_id || e.path_hash() == 0 {
                self.sink.damage(
                    poff + u64::from(e.offset()),
                    ProblemKind::Invariant,
                    format!(
                        "frame seq {}: record entry with id {} outside [1, next_id {}) or a zero \
                         path hash; {REPLAY_FAILS}",
                        h.seq,
                        e.id(),
                        info.next_id
                    ),
                );
                self.lose_state();
            }
            if e.reserved() != 0 {
                self.sink.damage(
                    poff + u64::from(e.offset()),
                    ProblemKind::Entry,
                    format!("record entry {} has non-zero reserved bits", e.id()),
                );
            }
        }
        self.check_records(h.seq, poff, &info.entries)?;
        self.duplicate_paths_in_batch(h.seq, poff, &info.entries)?;
        self.check_playlists(h.seq, poff, &info)?;

        if self.state_ok {
            let prev = self.state.next_id();
            let max_new = (plen / ALIGN) as u64;
            if info.next_id < prev || info.next_id - prev > max_new {
                self.sink.damage(
                    poff,
                    ProblemKind::Invariant,
                    format!(
                        "frame seq {}: batch next_id {} does not follow {prev} in a {plen}-byte \
                         payload (at most one new id per 8 bytes); {REPLAY_FAILS}",
                        h.seq, info.next_id
                    ),
                );
                self.lose_state();
            }
        }
        if self.state_ok {
            self.state.grow(info.next_id);
            for &id in &info.removals {
                if !self.state.live(id) {
                    self.sink.damage(
                        poff,
                        ProblemKind::Invariant,
                        format!(
                            "frame seq {}: removes id {id}, which is not live; {REPLAY_FAILS}",
                            h.seq
                        ),
                    );
                    self.lose_state();
                    break;
                }
                let i = id as usize;
                self.state.live_records -= 1;
                self.state.live_bytes -= u64::from(self.state.len[i]);
                self.state.len[i] = 0;
                self.state.digest[i] = 0;
            }
        }
        if self.state_ok {
            // Entry digests are only needed until the checkpoint has been compared.
            let with_digest = self.cp.is_some();
            let computed: Vec<Facts> = info
                .entries
                .par_iter()
                .with_min_len(4096)
                .map_init(
                    || Vec::with_capacity(ENTRY_LEN),
                    |b, e| facts(e, poff, with_digest, b),
                )
                .collect();
            for e in &info.entries {
                if self.state.playlists.contains_key(&e.id()) {
                    self.sink.damage(
                        poff + u64::from(e.offset()),
                        ProblemKind::Invariant,
                        format!(
                            "frame seq {}: record id {} is a live playlist's id; {REPLAY_FAILS}",
                            h.seq,
                            e.id()
                        ),
                    );
                    self.lose_state();
                    return Ok(());
                }
            }
            for (e, f) in info.entries.iter().zip(computed) {
                let i = e.id() as usize;
                if self.state.len[i] != 0 {
                    self.state.live_bytes -= u64::from(self.state.len[i]);
                } else {
                    self.state.live_records += 1;
                }
                self.state.live_bytes += u64::from(e.len());
                self.state.off[i] = poff + u64::from(e.offset());
                self.state.len[i] = e.len();
                self.state.hash[i] = f.hash;
                self.state.digest[i] = f.digest;
            }
        }
        if self.state_ok {
            self.apply_playlists(h.seq, poff, &info);
        }
        Ok(())
    }

    /// Every playlist a batch writes must verify and carry its ref's id.
    fn check_playlists(&mut self, seq: u64, poff: u64, info: &BatchInfo) -> io::Result<()> {
        for pr in &info.playlists {
            let at = poff + u64::from(pr.offset());
            let what = match self.reader.get(at, pr.len() as usize)? {
                None => Some("runs past the committed length".to_owned()),
                Some(b) => match crate::playlist::verify(b) {
                    Err(e) => Some(e.0),
                    Ok(p) if p.id() != pr.id() => Some(format!("says id {}", p.id())),
                    Ok(_) => None,
                },
            };
            if let Some(what) = what {
                self.sink.damage(
                    at,
                    ProblemKind::Record,
                    format!("frame seq {seq}: playlist {}: {what}", pr.id()),
                );
            }
        }
        Ok(())
    }

    /// Replays a batch's playlist removals and writes, as `log::apply` does.
    fn apply_playlists(&mut self, seq: u64, poff: u64, info: &BatchInfo) {
        for &id in &info.playlist_removals {
            if self.state.playlists.remove(&id).is_none() {
                self.sink.damage(
                    poff,
                    ProblemKind::Invariant,
                    format!("frame seq {seq}: deletes playlist {id}, which does not exist; {REPLAY_FAILS}"),
                );
                self.lose_state();
                return;
            }
        }
        for pr in &info.playlists {
            let id = pr.id();
            if id == 0 || id >= info.next_id || self.state.live(id) {
                self.sink.damage(
                    poff + u64::from(pr.offset()),
                    ProblemKind::Invariant,
                    format!(
                        "frame seq {seq}: playlist id {id} is 0, not below next_id {}, or a live \
                         record's; {REPLAY_FAILS}",
                        info.next_id
                    ),
                );
                self.lose_state();
                return;
            }
            self.state
                .playlists
                .insert(id, (poff + u64::from(pr.offset()), pr.len()));
        }
    }

    /// Playlist names are unique among live playlists.
    fn duplicate_playlist_names(&mut self) -> io::Result<()> {
        let mut seen: HashMap<String, u64> = HashMap::new();
        let all: Vec<(u64, (u64, u32))> =
            self.state.playlists.iter().map(|(&k, &v)| (k, v)).collect();
        for (id, (off, len)) in all {
            let Some(b) = self.reader.get(off, len as usize)? else {
                continue;
            };
            let Ok(p) = crate::playlist::verify(b) else {
                continue;
            };
            if let Some(other) = seen.insert(p.name().to_owned(), id) {
                self.sink.damage(
                    off,
                    ProblemKind::Invariant,
                    format!(
                        "playlists {other} and {id} are both named {:?}: names are unique",
                        p.name()
                    ),
                );
            }
        }
        Ok(())
    }

    /// Parses the Batch of a frame too large for the window: the trailer, then the Batch
    /// buffer, with the checks of `log::parse_payload`.
    fn streamed_batch(&mut self, poff: u64, plen: usize) -> io::Result<Result<BatchInfo, Damage>> {
        if plen < TRAILER_LEN {
            return Ok(Err(Damage::new(poff, "payload too short for its trailer")));
        }
        let t = plen - TRAILER_LEN;
        let tr = self
            .reader
            .get(poff + t as u64, TRAILER_LEN)?
            .expect("bounds checked");
        let batch_off = get_u32(tr, 0) as usize;
        let batch_len = get_u32(tr, 4) as usize;
        if !batch_off.is_multiple_of(ALIGN)
            || batch_off.checked_add(batch_len).is_none_or(|e| e > t)
        {
            return Ok(Err(Damage::new(
                poff,
                "batch trailer points outside the payload",
            )));
        }
        let boff = poff + batch_off as u64;
        let buf = self.reader.get(boff, batch_len)?.expect("bounds checked");
        let batch = match flatbuffers::root_with_opts::<fb::Batch>(&batch_options(batch_len), buf) {
            Ok(b) => b,
            Err(e) => {
                let why = crate::record::flat_error(&e);
                return Ok(Err(Damage::new(boff, format!("batch: {why}"))));
            }
        };
        for re in batch.records().into_iter().flatten() {
            let (o, l) = (re.offset() as usize, re.len() as usize);
            if !o.is_multiple_of(ALIGN)
                || !(8..=MAX_RECORD_LEN + 4).contains(&l)
                || o + l > batch_off
            {
                return Ok(Err(Damage::new(
                    boff,
                    format!("record {} lies outside the record area", re.id()),
                )));
            }
        }
        for pr in batch.playlists().into_iter().flatten() {
            if !log::playlist_ref_fits(pr, batch_off) {
                return Ok(Err(Damage::new(
                    boff,
                    format!("playlist {} lies outside the record area", pr.id()),
                )));
            }
        }
        Ok(Ok(BatchInfo::of(&batch)))
    }

    /// Verifies every record of a batch against its entry, on all cores, reading the record
    /// area window by window.
    fn check_records(
        &mut self,
        seq: u64,
        poff: u64,
        entries: &[fb::RecordEntry],
    ) -> io::Result<()> {
        let mut order: Vec<u32> = (0..entries.len() as u32).collect();
        if !entries.is_sorted_by_key(|e| e.offset()) {
            order.sort_by_key(|&i| entries[i as usize].offset());
        }
        let window = self.reader.window as u64;
        let mut i = 0;
        while i < order.len() {
            let first = u64::from(entries[order[i] as usize].offset());
            let mut last_end = first;
            let mut j = i;
            while j < order.len() {
                let e = &entries[order[j] as usize];
                let e_end = u64::from(e.offset()) + u64::from(e.len());
                if j > i && e_end.max(last_end) - first > window {
                    break;
                }
                last_end = last_end.max(e_end);
                j += 1;
            }
            let base = poff + first;
            let bytes = self
                .reader
                .get(base, (last_end - first) as usize)?
                .expect("records lie inside the payload");
            let faults: Vec<(u64, RecordFault)> = order[i..j]
                .par_iter()
                .with_min_len(512)
                .filter_map(|&k| {
                    let e = &entries[k as usize];
                    let s = (u64::from(e.offset()) - first) as usize;
                    let rec = &bytes[s..s + e.len() as usize];
                    check_record(rec, &Expect::from_record_entry(e))
                        .err()
                        .map(|f| (poff + u64::from(e.offset()), f))
                })
                .collect();
            for (at, f) in faults {
                let kind = match f {
                    RecordFault::Invalid(_) => ProblemKind::Record,
                    RecordFault::Mismatch(_) => ProblemKind::Entry,
                };
                self.sink
                    .damage(at, kind, format!("frame seq {seq}: {}", f.message()));
            }
            (self.progress)(poff + last_end, self.end);
            i = j;
        }
        Ok(())
    }

    /// The path of the record at `off` of `len` bytes, if it verifies.
    fn path_at(&mut self, off: u64, len: u32) -> io::Result<Option<Vec<u8>>> {
        Ok(self
            .reader
            .get_small(off, len as usize)?
            .and_then(|b| record::verify(&b).ok().map(|(v, _)| v.path().to_vec())))
    }

    /// A path may appear only once among a batch's upserts.
    fn duplicate_paths_in_batch(
        &mut self,
        seq: u64,
        poff: u64,
        entries: &[fb::RecordEntry],
    ) -> io::Result<()> {
        let mut by_hash: Vec<(u64, usize)> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.path_hash(), i))
            .collect();
        by_hash.par_sort_unstable();
        let mut k = 0;
        while k < by_hash.len() {
            let mut m = k + 1;
            while m < by_hash.len() && by_hash[m].0 == by_hash[k].0 {
                m += 1;
            }
            if m - k > 1 {
                let mut seen: Vec<(Vec<u8>, u64)> = Vec::new();
                for &(_, i) in &by_hash[k..m] {
                    let e = &entries[i];
                    let at = poff + u64::from(e.offset());
                    if let Some(p) = self.path_at(at, e.len())? {
                        if let Some((_, other)) = seen.iter().find(|(q, _)| *q == p) {
                            self.sink.damage(
                                at,
                                ProblemKind::Invariant,
                                format!(
                                    "frame seq {seq}: ids {other} and {} are upserted with the \
                                     same path {:?} in one batch",
                                    e.id(),
                                    String::from_utf8_lossy(&p)
                                ),
                            );
                        } else {
                            seen.push((p, e.id()));
                        }
                    }
                }
            }
            k = m;
        }
        Ok(())
    }

    /// Called at every frame boundary: compares the older header slot and the checkpoint with
    /// the replay when they describe this position.
    fn at_boundary(&mut self, off: u64) -> io::Result<()> {
        if let Some((i, older)) = self.older
            && !self.older_seen
            && older.committed_len == off
        {
            self.older_seen = true;
            if self.state_ok && self.chain.is_some() {
                let diffs = self.header_diffs(&older);
                if !diffs.is_empty() {
                    self.sink.damage(
                        SLOT_OFFSETS[i],
                        ProblemKind::HeaderSlot,
                        format!(
                            "the older header slot {} disagrees with the log at its position \
                             (byte {off}): {}",
                            slot_name(i),
                            diffs.join(", ")
                        ),
                    );
                }
            }
        }
        if self
            .cp
            .as_ref()
            .is_some_and(|c| c.header.committed_len == off)
        {
            let cp = self.cp.take().expect("checked");
            self.check_checkpoint(&cp)?;
        }
        Ok(())
    }

    /// Fields of `h` that differ from the replay.
    fn header_diffs(&self, h: &Header) -> Vec<String> {
        let mut d = Vec::new();
        let mut cmp = |name: &str, header: u64, log: u64| {
            if header != log {
                d.push(format!("{name} {header} in the header, {log} in the log"));
            }
        };
        cmp("seq", h.seq, self.seq);
        cmp(
            "last_frame_crc",
            u64::from(h.last_frame_crc),
            u64::from(self.prev_crc),
        );
        cmp("next_id", h.next_id, self.state.next_id());
        cmp("live_records", h.live_records, self.state.live_records);
        cmp("live_bytes", h.live_bytes, self.state.live_bytes);
        d
    }

    /// Final checks: the header against the replay, the older slot's position, the checkpoint
    /// if the walk never reached it, unique live paths.
    fn finish(&mut self, active: Option<Header>, walked: bool) -> io::Result<()> {
        let usable = walked && self.state_ok;
        if let Some(h) = active {
            if usable {
                let diffs = self.header_diffs(&h);
                if !diffs.is_empty() {
                    self.sink.damage(
                        0,
                        ProblemKind::Header,
                        format!(
                            "the header disagrees with the log it describes: {}; open refuses the \
                             database",
                            diffs.join(", ")
                        ),
                    );
                }
            }
            if let Some((i, older)) = self.older
                && !self.older_seen
                && usable
            {
                self.sink.damage(
                    SLOT_OFFSETS[i],
                    ProblemKind::HeaderSlot,
                    format!(
                        "the older header slot {} says the log ends at byte {}, which is not a \
                         frame boundary",
                        slot_name(i),
                        older.committed_len
                    ),
                );
            }
        }
        if self.cp.take().is_some() {
            // The walk never reached the checkpoint's position.
            if usable {
                self.cp_problem(
                    Severity::Warning,
                    40,
                    "covers a committed length that is not a frame boundary; open ignores it",
                );
            } else {
                self.cp_status = CheckpointStatus::NotCompared;
            }
        }
        if usable {
            self.duplicate_live_paths()?;
            self.duplicate_playlist_names()?;
        }
        Ok(())
    }

    /// Live paths are unique: group live ids by path hash and compare the paths of each group.
    fn duplicate_live_paths(&mut self) -> io::Result<()> {
        let st = &self.state;
        let mut ids: Vec<u64> = (1..st.next_id()).filter(|&id| st.live(id)).collect();
        ids.par_sort_unstable_by_key(|&id| st.hash[id as usize]);
        let mut k = 0;
        while k < ids.len() {
            let h = self.state.hash[ids[k] as usize];
            let mut m = k + 1;
            while m < ids.len() && self.state.hash[ids[m] as usize] == h {
                m += 1;
            }
            if m - k > 1 {
                let mut seen: Vec<(Vec<u8>, u64)> = Vec::new();
                for &id in &ids[k..m] {
                    let (off, len) = (self.state.off[id as usize], self.state.len[id as usize]);
                    if let Some(p) = self.path_at(off, len)? {
                        if let Some((_, other)) = seen.iter().find(|(q, _)| *q == p) {
                            self.sink.damage(
                                off,
                                ProblemKind::Invariant,
                                format!(
                                    "ids {other} and {id} are both live with the path {:?}: a \
                                     path may have one record only",
                                    String::from_utf8_lossy(&p)
                                ),
                            );
                        } else {
                            seen.push((p, id));
                        }
                    }
                }
            }
            k = m;
        }
        Ok(())
    }

    /// Compares the checkpoint with the replay at its commit: header fields, every entry, the
    /// table. Section checksums that fail make the rest moot (open ignores the file).
    fn check_checkpoint(&mut self, cp: &PendingCp) -> io::Result<()> {
        let h = cp.header;
        if !(self.state_ok && self.chain.is_some()) {
            self.cp_status = CheckpointStatus::NotCompared;
            return Ok(());
        }
        if h.seq != self.seq || h.last_frame_crc != self.prev_crc {
            self.cp_problem(
                Severity::Warning,
                32,
                format!(
                    "says seq {} / last crc {:#010x} at byte {}, but the log has seq {} / \
                     {:#010x} there: it belongs to a different history; open ignores it",
                    h.seq, h.last_frame_crc, h.committed_len, self.seq, self.prev_crc
                ),
            );
            return Ok(());
        }
        if h.next_id != self.state.next_id()
            || h.live_records != self.state.live_records
            || h.live_bytes != self.state.live_bytes
        {
            self.cp_problem(
                Severity::Warning,
                56,
                format!(
                    "counts (next_id {}, live {} records, {} bytes) differ from the log's ({}, \
                     {}, {}) at seq {}; open ignores it",
                    h.next_id,
                    h.live_records,
                    h.live_bytes,
                    self.state.next_id(),
                    self.state.live_records,
                    self.state.live_bytes,
                    h.seq
                ),
            );
            return Ok(());
        }
        let problems_before = self.sink.list.len() as u64 + self.sink.omitted;
        // Entries.
        let n = h.next_id as usize;
        let per_chunk = window_items(ENTRY_LEN);
        let mut crcs = Vec::new();
        let mut mismatches: Vec<(u64, String)> = Vec::new();
        let mut buf = Vec::new();
        let mut id = 0usize;
        while id < n {
            let k = per_chunk.min(n - id);
            buf.resize(k * ENTRY_LEN, 0);
            let at = IDX_HEADER_BLOCK + (id * ENTRY_LEN) as u64;
            cp.file.read_exact_at(&mut buf, at)?;
            chunk_crcs(&buf, ENTRY_LEN, &mut crcs);
            for (j, raw) in buf.chunks_exact(ENTRY_LEN).enumerate() {
                let i = id + j;
                let e = FileEntry::decode(raw);
                let st = &self.state;
                let what = if st.len[i] == 0 {
                    (raw.iter().any(|&b| b != 0)).then(|| {
                        format!(
                            "says id {i} is live at byte {}, but it is not live at seq {}",
                            e.offset, h.seq
                        )
                    })
                } else if e.offset != st.off[i] || e.len != st.len[i] {
                    Some(format!(
                        "says id {i} is at byte {} ({} bytes), the log says byte {} ({} bytes)",
                        e.offset, e.len, st.off[i], st.len[i]
                    ))
                } else if digest_of(raw) != st.digest[i] {
                    Some(format!(
                        "entry for id {i} differs from the log's (hash, size, mtime, inode, kind, \
                         extractor version or flags)"
                    ))
                } else {
                    None
                };
                if let Some(w) = what
                    && mismatches.len() < MAX_LISTED
                {
                    mismatches.push((at + (j * ENTRY_LEN) as u64, w));
                }
            }
            id += k;
        }
        if let Some(k) = self.stored_crcs_differ(cp, 0, &crcs, h.entries_crc)? {
            self.cp_problem(
                Severity::Warning,
                IDX_HEADER_BLOCK + (k * IDX_CHUNK as usize * ENTRY_LEN) as u64,
                format!(
                    "entries chunk {k} fails its checksum: the checkpoint is damaged; a reader \
                     that touches it reports the damage, a writer ignores the checkpoint and \
                     replaces it; delete it to rebuild it now"
                ),
            );
            return Ok(());
        }
        for (at, w) in mismatches {
            self.cp_problem(
                Severity::Damage,
                at,
                format!("{w}: open would use this wrong entry; delete the checkpoint"),
            );
        }
        self.check_table(cp)?;
        self.check_cp_playlists(cp)?;
        if problems_before == self.sink.list.len() as u64 + self.sink.omitted {
            self.cp_status = CheckpointStatus::Agrees { seq: h.seq };
        }
        Ok(())
    }

    /// Compares the chunk crcs computed from a section with the list stored in the checkpoint
    /// (from list entry `first`) and with the header's crc of that list. Returns the first chunk
    /// whose data or stored crc is wrong, or the list's length when only the list's own crc is.
    fn stored_crcs_differ(
        &mut self,
        cp: &PendingCp,
        first: u64,
        computed: &[u32],
        list_crc: u32,
    ) -> io::Result<Option<usize>> {
        let mut stored = vec![0u8; computed.len() * 4];
        cp.file
            .read_exact_at(&mut stored, cp.header.chunk_crcs_offset() + first * 4)?;
        let bad = stored
            .chunks_exact(4)
            .zip(computed)
            .position(|(s, &c)| get_u32(s, 0) != c);
        Ok(bad.or((crc::of(&stored) != list_crc).then_some(computed.len())))
    }

    /// The checkpoint's playlist section must list exactly the live playlists, where they are.
    fn check_cp_playlists(&mut self, cp: &PendingCp) -> io::Result<()> {
        let h = cp.header;
        let mut buf = vec![0u8; h.playlists as usize * PLAYLIST_LOC_LEN];
        let at = h.playlists_offset();
        cp.file.read_exact_at(&mut buf, at)?;
        if crc::of(&buf) != h.playlists_crc {
            self.cp_problem(
                Severity::Warning,
                at,
                "playlist section fails its checksum: the checkpoint is damaged; open ignores it \
                 and the next writer replaces it",
            );
            return Ok(());
        }
        let listed: Vec<(u64, (u64, u32))> = buf
            .chunks_exact(PLAYLIST_LOC_LEN)
            .map(|l| (get_u64(l, 0), (get_u64(l, 8), get_u32(l, 16))))
            .collect();
        let live: Vec<(u64, (u64, u32))> =
            self.state.playlists.iter().map(|(&k, &v)| (k, v)).collect();
        if listed != live {
            self.cp_problem(
                Severity::Damage,
                at,
                format!(
                    "lists {} playlists, the log has {} live at seq {} (or they lie elsewhere): \
                     open would show the wrong playlists; delete the checkpoint",
                    listed.len(),
                    live.len(),
                    h.seq
                ),
            );
        }
        Ok(())
    }

    /// The table: checksum, occupancy, ids in range, and exactly one slot per live id, with
    /// its tag and record offset, reachable from its hash's home slot by linear probing (no
    /// empty slot in between); every other occupied slot a tombstone.
    fn check_table(&mut self, cp: &PendingCp) -> io::Result<()> {
        let h = cp.header;
        let cap = h.table_capacity;
        let mask = cap - 1;
        let toff = h.table_offset();
        let per_chunk = window_items(TABLE_SLOT_LEN) as u64;
        let mut buf = Vec::new();
        // The last empty slot of the table, for runs that wrap around its end.
        let mut last_empty: Option<u64> = None;
        let mut hi = cap;
        while hi > 0 && last_empty.is_none() {
            let lo = hi.saturating_sub(per_chunk);
            buf.resize(((hi - lo) as usize) * TABLE_SLOT_LEN, 0);
            cp.file
                .read_exact_at(&mut buf, toff + lo * TABLE_SLOT_LEN as u64)?;
            last_empty = buf
                .chunks_exact(TABLE_SLOT_LEN)
                .rposition(|s| Slot::decode(s).is_empty())
                .map(|p| lo + p as u64);
            hi = lo;
        }
        let next_id = self.state.next_id();
        let mut found = vec![0u64; (next_id as usize).div_ceil(64)];
        let mut crcs = Vec::new();
        let mut used = 0u64;
        let mut bad: Vec<(u64, String)> = Vec::new();
        let mut pos = 0u64;
        while pos < cap {
            let k = per_chunk.min(cap - pos);
            buf.resize(k as usize * TABLE_SLOT_LEN, 0);
            cp.file
                .read_exact_at(&mut buf, toff + pos * TABLE_SLOT_LEN as u64)?;
            chunk_crcs(&buf, TABLE_SLOT_LEN, &mut crcs);
            for (j, s) in buf.chunks_exact(TABLE_SLOT_LEN).enumerate() {
                let p = pos + j as u64;
                let slot = Slot::decode(s);
                let (tag, id) = (u64::from(slot.tag()), slot.id());
                if slot.is_empty() {
                    last_empty = Some(p);
                    continue;
                }
                used += 1;
                if slot.is_tombstone() {
                    continue;
                }
                if id == 0 || id >= next_id {
                    if bad.len() < MAX_LISTED {
                        bad.push((
                            toff + p * TABLE_SLOT_LEN as u64,
                            format!("table slot {p} holds id {id}, outside [1, {next_id})"),
                        ));
                    }
                    continue;
                }
                let i = id as usize;
                let wrong = if self.state.len[i] == 0 {
                    Some(format!(
                        "table slot {p} holds id {id}, which is not live: a get by its old \
                         path would return its last record"
                    ))
                } else if u64::from(self.state.hash[i]) != tag {
                    Some(format!(
                        "table slot {p} holds id {id} under another path's hash: a get by \
                         that path would return id {id}'s record"
                    ))
                } else if slot.at() != self.state.off[i] {
                    Some(format!(
                        "table slot {p} says id {id}'s record is at byte {}, the log says \
                         {}: a get would miss or return an older record",
                        slot.at(),
                        self.state.off[i]
                    ))
                } else if found[i / 64] & (1 << (i % 64)) != 0 {
                    Some(format!("table slot {p} holds id {id} a second time"))
                } else {
                    let d_home = p.wrapping_sub(tag & mask) & mask;
                    let d_empty = last_empty.map_or(cap, |le| p.wrapping_sub(le) & mask);
                    if d_home < d_empty {
                        found[i / 64] |= 1 << (i % 64);
                    }
                    None
                };
                if let Some(w) = wrong
                    && bad.len() < MAX_LISTED
                {
                    bad.push((toff + p * TABLE_SLOT_LEN as u64, w));
                }
            }
            pos += k;
        }
        let (entry_chunks, _) = h.chunk_counts();
        if let Some(k) = self.stored_crcs_differ(cp, entry_chunks, &crcs, h.table_crc)? {
            self.cp_problem(
                Severity::Warning,
                toff + (k * IDX_CHUNK as usize * TABLE_SLOT_LEN) as u64,
                format!(
                    "table chunk {k} fails its checksum: the checkpoint is damaged; a reader \
                     that touches it reports the damage, a writer ignores the checkpoint and \
                     replaces it; delete it to rebuild it now"
                ),
            );
            return Ok(());
        }
        if used != h.table_used {
            bad.push((
                96,
                format!("says {} table slots are used, {used} are", h.table_used),
            ));
        }
        for id in 1..next_id as usize {
            if self.state.len[id] != 0 && found[id / 64] & (1 << (id % 64)) == 0 {
                if bad.len() >= MAX_LISTED {
                    break;
                }
                bad.push((
                    toff,
                    format!(
                        "table has no slot for live id {id} where a lookup by its path looks: \
                         get() would miss it"
                    ),
                ));
            }
        }
        for (at, w) in bad {
            self.cp_problem(
                Severity::Damage,
                at,
                format!("{w}; open would use this wrong table: delete the checkpoint"),
            );
        }
        Ok(())
    }
}

impl Database {
    /// Checks the database at `path`; see [`verify`].
    pub fn verify(
        path: impl AsRef<Path>,
        progress: &dyn Fn(u64, u64),
    ) -> Result<VerifyReport, OpenError> {
        verify(path, progress)
    }
}

// ---------------------------------------------------------------------------------------------
// verify_fs

/// What the index says about a file, or what `stat` says now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileFacts {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the Unix epoch.
    pub mtime_ns: i64,
    /// Inode number.
    pub inode: u64,
}

/// How an indexed file differs from the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsProblemKind {
    /// The path no longer exists.
    Missing,
    /// Its size, mtime or inode differ from the record's.
    Changed,
    /// `stat` failed for another reason (permissions, I/O).
    Unreadable,
    /// The record itself could not be read from the database.
    DamagedRecord,
}

impl FsProblemKind {
    /// A stable lower-case name, for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FsProblemKind::Missing => "missing",
            FsProblemKind::Changed => "changed",
            FsProblemKind::Unreadable => "unreadable",
            FsProblemKind::DamagedRecord => "damaged-record",
        }
    }
}

/// One indexed file that does not match the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsProblem {
    /// The record's id.
    pub id: u64,
    /// The record's path (exact bytes).
    pub path: Vec<u8>,
    /// What differs.
    pub kind: FsProblemKind,
    /// What the database says.
    pub stored: FileFacts,
    /// What `stat` says now, when it succeeded.
    pub found: Option<FileFacts>,
    /// A sentence for humans.
    pub message: String,
}

impl fmt::Display for FsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (id {}): {}",
            self.kind.as_str(),
            String::from_utf8_lossy(&self.path),
            self.id,
            self.message
        )
    }
}

/// What [`verify_fs`] found.
#[derive(Clone, Debug, Default)]
pub struct FsReport {
    /// Live records checked.
    pub checked: u64,
    /// Files that no longer exist.
    pub missing: u64,
    /// Files whose size, mtime or inode changed.
    pub changed: u64,
    /// Files `stat` failed on otherwise, or records that could not be read.
    pub unreadable: u64,
    /// The problems, in id order (at most [`MAX_LISTED`]).
    pub problems: Vec<FsProblem>,
    /// Problems beyond the [`MAX_LISTED`] listed.
    pub problems_omitted: u64,
}

impl FsReport {
    /// Whether every indexed file is on disk, unchanged.
    pub fn is_clean(&self) -> bool {
        self.missing == 0 && self.changed == 0 && self.unreadable == 0
    }
}

/// `stat`s the path of every live record of the database at `path` (following symlinks, as a
/// scan that followed them recorded them) and reports the files that are missing or whose size,
/// mtime or inode differ. Opens the database read-only and writes nothing. `progress` is called
/// with (records checked, records).
pub fn verify_fs(
    path: impl AsRef<Path>,
    progress: &dyn Fn(u64, u64),
) -> Result<FsReport, OpenError> {
    let db = Database::open_read_only(path)?;
    Ok(check_fs(&db, progress))
}

fn check_fs(db: &Database, progress: &dyn Fn(u64, u64)) -> FsReport {
    const CHUNK: usize = 4096;
    let snap = db.snapshot();
    let total = snap.len();
    let mut report = FsReport::default();
    let mut batch: Vec<(u64, FileEntry)> = Vec::with_capacity(CHUNK);
    let mut entries = snap.entries();
    loop {
        batch.clear();
        batch.extend(entries.by_ref().take(CHUNK));
        if batch.is_empty() {
            break;
        }
        let found: Vec<FsProblem> = batch
            .par_iter()
            .filter_map(|&(id, e)| {
                let stored = FileFacts {
                    size: e.size,
                    mtime_ns: e.mtime_ns,
                    inode: e.inode,
                };
                let rec = match snap.get_by_id(id) {
                    Ok(Some(r)) => r,
                    Ok(None) => return None,
                    Err(err) => {
                        return Some(FsProblem {
                            id,
                            path: Vec::new(),
                            kind: FsProblemKind::DamagedRecord,
                            stored,
                            found: None,
                            message: err.to_string(),
                        });
                    }
                };
                let p = rec.path();
                let mk = |kind, found, message: String| FsProblem {
                    id,
                    path: p.to_vec(),
                    kind,
                    stored,
                    found,
                    message,
                };
                use rustix::fs::StatxFlags;
                let mask = StatxFlags::SIZE | StatxFlags::MTIME | StatxFlags::INO;
                match crate::longpath::statx(p, mask) {
                    Err(rustix::io::Errno::NOENT) => {
                        Some(mk(FsProblemKind::Missing, None, "no longer exists".into()))
                    }
                    Err(err) => Some(mk(
                        FsProblemKind::Unreadable,
                        None,
                        io::Error::from(err).to_string(),
                    )),
                    Ok(m) => {
                        let now = FileFacts {
                            size: m.stx_size,
                            mtime_ns: m
                                .stx_mtime
                                .tv_sec
                                .saturating_mul(1_000_000_000)
                                .saturating_add(i64::from(m.stx_mtime.tv_nsec)),
                            inode: m.stx_ino,
                        };
                        let mut d = Vec::new();
                        if now.size != stored.size {
                            d.push(format!("size {} -> {}", stored.size, now.size));
                        }
                        if now.mtime_ns != stored.mtime_ns {
                            d.push(format!("mtime {} -> {}", stored.mtime_ns, now.mtime_ns));
                        }
                        if now.inode != stored.inode {
                            d.push(format!("inode {} -> {}", stored.inode, now.inode));
                        }
                        (!d.is_empty()).then(|| {
                            mk(
                                FsProblemKind::Changed,
                                Some(now),
                                format!("changed since it was indexed: {}", d.join(", ")),
                            )
                        })
                    }
                }
            })
            .collect();
        report.checked += batch.len() as u64;
        for p in found {
            match p.kind {
                FsProblemKind::Missing => report.missing += 1,
                FsProblemKind::Changed => report.changed += 1,
                FsProblemKind::Unreadable | FsProblemKind::DamagedRecord => report.unreadable += 1,
            }
            if report.problems.len() < MAX_LISTED {
                report.problems.push(p);
            } else {
                report.problems_omitted += 1;
            }
        }
        progress(report.checked, total);
    }
    report
}

impl Database {
    /// Checks the indexed files against the disk; see [`verify_fs`].
    pub fn verify_fs(
        path: impl AsRef<Path>,
        progress: &dyn Fn(u64, u64),
    ) -> Result<FsReport, OpenError> {
        verify_fs(path, progress)
    }
}

// ---------------------------------------------------------------------------------------------
// recover

/// Recovering a damaged database failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// The damaged database cannot be read at all.
    #[error("{}: cannot read the database to recover: {source}; check the path and that the file is readable", .path.display())]
    Source {
        /// The damaged database.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file holds no header slot, frame or record of a mediadb database.
    #[error("{}: not a mediadb database (no header, frame or record found); check the path or --db", .path.display())]
    NotADatabase {
        /// The file given.
        path: PathBuf,
    },
    /// The output path already exists: recover writes only to a new file.
    #[error("{}: already exists; give recover a path that does not exist yet (the damaged database is never written)", .path.display())]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },
    /// The output database cannot be created (e.g. its directory is not writable).
    #[error("cannot create the recovered database: {0}")]
    Output(#[from] OpenError),
    /// Writing the output database failed; nothing was left at its path.
    #[error("writing the recovered database {}: {source}; nothing was left there; retry once that is solved", .path.display())]
    Commit {
        /// The output database.
        path: PathBuf,
        /// The error.
        source: CommitError,
    },
}

/// Bytes of the damaged file that `recover` could not read as intact frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostRange {
    /// First byte of the damaged range.
    pub start: u64,
    /// End of the damaged range (exclusive).
    pub end: u64,
    /// Sequence numbers of the batches lost with it, when the intact frames around it tell.
    pub seqs: Option<(u64, u64)>,
    /// Records copied from it anyway (record buffers that still verify).
    pub records_salvaged: u64,
}

impl fmt::Display for LostRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bytes [{}, {})", self.start, self.end)?;
        if let Some((a, b)) = self.seqs {
            if a == b {
                write!(f, ", batch seq {a}")?;
            } else {
                write!(f, ", batches seq {a}..={b}")?;
            }
        }
        write!(f, ": {} records salvaged", self.records_salvaged)
    }
}

/// What [`recover`] did.
#[derive(Clone, Debug, Default)]
pub struct RecoverReport {
    /// The damaged database.
    pub source: PathBuf,
    /// The new database.
    pub out: PathBuf,
    /// Length of the damaged file.
    pub source_len: u64,
    /// Committed length according to the damaged file's newest header slot whose checksum holds
    /// (beyond `source_len` when the file was truncated), if one does.
    pub committed_len: Option<u64>,
    /// Intact frames read (magic, length, checksum and Batch all valid).
    pub frames_read: u64,
    /// Damaged ranges found (each may span several frames).
    pub frames_damaged: u64,
    /// Records written to the new database.
    pub records_kept: u64,
    /// Of those, records taken from damaged ranges.
    pub records_salvaged: u64,
    /// Record versions dropped because a later one of the same id, or a later record with the
    /// same path, was kept.
    pub records_superseded: u64,
    /// Records dropped because an intact frame removed them.
    pub records_removed: u64,
    /// Records lost to damage: buffers in intact frames that failed verification, and records
    /// in damaged ranges that disagree with their Batch entry and have no sound version.
    pub records_damaged: u64,
    /// The ranges that could not be read as intact frames, in file order.
    pub lost: Vec<LostRange>,
    /// Bytes past the committed length that were ignored (what an interrupted commit left).
    pub ignored_tail: u64,
    /// next_id of the new database.
    pub next_id: u64,
    /// Playlists written to the new database (their last intact version each).
    pub playlists_kept: u64,
    /// Playlist versions in intact frames that failed verification.
    pub playlists_damaged: u64,
}

impl RecoverReport {
    /// A paragraph saying what may be missing or stale in the new database.
    pub fn consequences(&self) -> String {
        if self.lost.is_empty() && self.records_damaged == 0 {
            return "Every committed batch was intact: nothing was lost.".into();
        }
        let mut text = String::new();
        if self.lost.iter().any(|l| l.end > self.source_len) {
            text = format!(
                "The file was truncated: it has {} bytes, its header says more. ",
                self.source_len
            );
        }
        text.push_str(
            "Batches in the damaged ranges are lost: records they added are missing unless \
             salvaged, records they updated may hold an older version, and records they removed \
             may be back. Rescan the library to bring the new database up to date.",
        );
        text
    }
}

#[derive(Clone, Copy)]
struct Found {
    off: u64,
    len: u32,
    salvaged: bool,
}

/// Copies every record of the damaged database `src` that still verifies into a new database
/// `out` (which must not exist), with its original id, and reports what was lost. The copy is
/// written as `OUT.recovering` and renamed to `out` once whole, so a recover that fails or is
/// killed leaves no partial `out` (the next one removes what it left).
///
/// `src` is read with `pread` and its header is used only for its committed length (and only
/// when a slot's checksum holds). Frames are found by their magic at 8-byte-aligned offsets from
/// `LOG_START` to the end of the file, so a damaged frame does not hide the ones after it.
/// Intact frames give their records, removals and next_id; damaged ranges are searched for
/// record buffers that still verify. For each id the version furthest into the file wins, ids
/// removed by an intact frame are dropped, and of two live records with one path the later
/// wins. `progress` is called with (bytes scanned, file length).
pub fn recover(
    src: impl AsRef<Path>,
    out: impl AsRef<Path>,
    progress: &dyn Fn(u64, u64),
) -> Result<RecoverReport, RecoverError> {
    let (src, out) = (src.as_ref(), out.as_ref());
    let source_err = |source| RecoverError::Source {
        path: src.to_path_buf(),
        source,
    };
    if out.exists() {
        return Err(RecoverError::OutputExists {
            path: out.to_path_buf(),
        });
    }
    if super::refuse_special(src).is_err() {
        return Err(RecoverError::NotADatabase {
            path: src.to_path_buf(),
        });
    }
    let file = File::open(src).map_err(source_err)?;
    let storage = FileStorage::new(file);
    let len = storage.len().map_err(source_err)?;
    let mut report = RecoverReport {
        source: src.to_path_buf(),
        out: out.to_path_buf(),
        source_len: len,
        ..RecoverReport::default()
    };
    let mut reader = Reader::new(&storage, len, WINDOW);

    // The slot with the highest generation whose checksum holds, even when the file is now
    // shorter than the log it describes (then the file was truncated).
    let mut best: Option<Header> = None;
    for off in SLOT_OFFSETS {
        if let Some(raw) = reader.get(off, SLOT_LEN).map_err(source_err)? {
            let raw: [u8; SLOT_LEN] = raw.try_into().expect("slot length");
            if let Ok(h) = Header::decode(&raw, u64::MAX)
                && best.is_none_or(|b| h.generation > b.generation)
            {
                best = Some(h);
            }
        }
    }
    report.committed_len = best.map(|h| h.committed_len);
    let mut limit = best.map_or(len, |h| h.committed_len.min(len));
    let mut next_ids: Vec<u64> = best.map(|h| h.next_id).into_iter().collect();

    let mut found: HashMap<u64, Found> = HashMap::new();
    let mut removed: HashSet<u64> = HashSet::new();
    // Ids of records found damaged in a damaged range (see `salvage`).
    let mut rejected: HashSet<u64> = HashSet::new();
    // Playlists by id, in log order: the last intact version wins, a deletion drops it.
    let mut playlists: std::collections::BTreeMap<u64, crate::playlist::Playlist> =
        std::collections::BTreeMap::new();
    let mut last: Option<(u64, u32)> = None;
    let mut region: Option<u64> = None;
    let mut off = LOG_START;
    let keep = |found: &mut HashMap<u64, Found>, id: u64, f: Found| {
        let e = found.entry(id).or_insert(f);
        if f.off > e.off {
            *e = f;
        }
    };
    while off + FRAME_HEADER_LEN as u64 <= len {
        progress(off, len);
        let intact = intact_frame(&mut reader, off).map_err(source_err)?;
        let accept = intact.as_ref().is_some_and(|(h, _)| {
            off < limit || last.is_some_and(|(s, c)| h.seq == s + 1 && h.prev_crc == c)
        });
        let Some((h, info)) = intact.filter(|_| accept) else {
            region.get_or_insert(off);
            off += ALIGN as u64;
            continue;
        };
        if let Some(start) = region.take() {
            let n = salvage(
                &mut reader,
                start,
                off.min(limit),
                &mut found,
                &mut rejected,
                &keep,
            )
            .map_err(source_err)?;
            let seqs = last
                .map_or(Some(1), |(s, _)| Some(s + 1))
                .filter(|&a| a < h.seq)
                .map(|a| (a, h.seq - 1));
            report.lost.push(LostRange {
                start,
                end: off,
                seqs,
                records_salvaged: n,
            });
        }
        let poff = off + FRAME_HEADER_LEN as u64;
        for e in &info.entries {
            let at = poff + u64::from(e.offset());
            let bytes = reader
                .get(at, e.len() as usize)
                .map_err(source_err)?
                .expect("inside an intact frame");
            if check_record(bytes, &Expect::from_record_entry(e)).is_ok() {
                keep(
                    &mut found,
                    e.id(),
                    Found {
                        off: at,
                        len: e.len(),
                        salvaged: false,
                    },
                );
            } else {
                report.records_damaged += 1;
            }
        }
        removed.extend(info.removals.iter().copied());
        for id in &info.playlist_removals {
            playlists.remove(id);
        }
        for pr in &info.playlists {
            let at = poff + u64::from(pr.offset());
            let decoded = reader
                .get(at, pr.len() as usize)
                .map_err(source_err)?
                .and_then(|b| crate::playlist::decode(b).ok())
                .filter(|p| p.id == pr.id());
            match decoded {
                Some(p) => {
                    playlists.insert(pr.id(), p);
                }
                None => report.playlists_damaged += 1,
            }
        }
        next_ids.push(info.next_id);
        report.frames_read += 1;
        last = Some((h.seq, h.crc));
        off += h.frame_len();
        limit = limit.max(off);
    }
    // The end of the log: a damaged range up to the committed length, or past the end of a
    // truncated file. Batches the best header counts beyond the last intact frame are lost.
    let after = last.map_or(0, |(s, _)| s);
    let lost_seqs = best
        .map(|h| h.seq)
        .filter(|&s| s > after)
        .map(|s| (after + 1, s));
    let truncated_to = best.map(|h| h.committed_len).filter(|&c| c > len);
    let scanned_end = len.min(limit);
    let tail = region.take().filter(|&s| s < scanned_end);
    if tail.is_some() || truncated_to.is_some() {
        let start = tail.unwrap_or(scanned_end);
        let n = if start < scanned_end {
            salvage(
                &mut reader,
                start,
                scanned_end,
                &mut found,
                &mut rejected,
                &keep,
            )
            .map_err(source_err)?
        } else {
            0
        };
        report.lost.push(LostRange {
            start,
            end: truncated_to.unwrap_or(scanned_end),
            seqs: lost_seqs,
            records_salvaged: n,
        });
    }
    report.ignored_tail = len.saturating_sub(limit.max(LOG_START));
    report.frames_damaged = report.lost.len() as u64;
    progress(len, len);

    // A damaged record with no sound version anywhere is lost, unless a removal dropped it.
    report.records_damaged += rejected
        .iter()
        .filter(|id| !found.contains_key(id) && !removed.contains(id))
        .count() as u64;
    // Drop removed ids; of two live records with one path, keep the later.
    let before = found.len();
    found.retain(|id, _| !removed.contains(id));
    report.records_removed = (before - found.len()) as u64;
    let mut by_off: Vec<(u64, Found)> = found.into_iter().collect();
    by_off.sort_unstable_by_key(|(_, f)| f.off);
    let mut paths: HashMap<u64, Vec<(u64, usize)>> = HashMap::new();
    let mut dropped = vec![false; by_off.len()];
    for (k, &(id, f)) in by_off.iter().enumerate() {
        let Some(p) = record_path(&mut reader, f).map_err(source_err)? else {
            dropped[k] = true;
            continue;
        };
        let same = paths.entry(path_hash(&p)).or_default();
        for (_, j) in same.iter() {
            let q = record_path(&mut reader, by_off[*j].1).map_err(source_err)?;
            if q.as_deref() == Some(&p[..]) && !dropped[*j] {
                dropped[*j] = true;
                report.records_superseded += 1;
            }
        }
        same.push((id, k));
    }
    let mut kept: Vec<(u64, Found)> = by_off
        .into_iter()
        .zip(dropped)
        .filter_map(|(x, d)| (!d).then_some(x))
        .collect();
    kept.sort_unstable_by_key(|(id, _)| *id);
    let max_id = kept.last().map_or(0, |(id, _)| *id);
    // An authentic next_id never exceeds one id per 8 bytes of the file.
    let bound = max_id + 1 + len / ALIGN as u64;
    let next_id = next_ids
        .into_iter()
        .filter(|&n| n <= bound)
        .fold(max_id + 1, u64::max);

    // Nothing of a database anywhere: the wrong file, and an empty "recovered" copy would say
    // nothing was lost.
    if report.committed_len.is_none()
        && report.frames_read == 0
        && kept.is_empty()
        && playlists.is_empty()
    {
        return Err(RecoverError::NotADatabase {
            path: src.to_path_buf(),
        });
    }

    // Write through the normal commit path, under a temporary name that becomes `out` once the
    // copy is whole: a recover that is killed or fails part way leaves no `out` that would pass
    // for the whole copy (`verify` calls a partial one clean).
    let tmp = Unfinished::start(out)?;
    let mut db = Database::create(&tmp.path)?;
    let commit_err = |source| RecoverError::Commit {
        path: out.to_path_buf(),
        source,
    };
    const PER_BATCH: usize = 10_000;
    let batches = kept.len().div_ceil(PER_BATCH);
    for (nth, chunk) in kept.chunks(PER_BATCH).enumerate() {
        let mut recs = Vec::with_capacity(chunk.len());
        for &(id, f) in chunk {
            // Verified when found; read again in case the file changed since.
            match reader
                .get(f.off, f.len as usize)
                .map_err(source_err)?
                .and_then(|b| record::verify(b).ok())
            {
                Some((v, _)) => recs.push((id, v.to_record(), f.salvaged)),
                None => report.records_damaged += 1,
            }
        }
        let mut batch = db.batch().map_err(commit_err)?;
        for (id, rec, salvaged) in &recs {
            batch.upsert_with_id(rec, *id).map_err(commit_err)?;
            report.records_kept += 1;
            report.records_salvaged += u64::from(*salvaged);
        }
        if nth + 1 == batches {
            batch.advance_next_id(next_id).map_err(commit_err)?;
        }
        batch.commit().map_err(commit_err)?;
    }
    if !playlists.is_empty() {
        // Entries re-attach by path to what was recovered; names stay unique (the last kept).
        let snap = db.snapshot();
        let mut names = HashSet::new();
        let mut lists = Vec::with_capacity(playlists.len());
        for mut p in playlists.into_values().rev() {
            if !names.insert(p.name.clone()) {
                continue;
            }
            for e in &mut p.entries {
                e.record_id = match snap.entry(&e.path) {
                    Ok(Some((id, _))) => id,
                    _ => 0,
                };
            }
            p.id = 0;
            lists.push(p);
        }
        drop(snap);
        let mut batch = db.batch().map_err(commit_err)?;
        for p in lists.iter().rev() {
            batch.put_playlist(p).map_err(commit_err)?;
        }
        batch.commit().map_err(commit_err)?;
        report.playlists_kept = lists.len() as u64;
    }
    report.next_id = db.snapshot().stats().next_id;
    drop(db);
    tmp.publish(out)?;
    Ok(report)
}

/// The database `recover` writes, at `OUT.recovering` until it is whole; removed with the files
/// beside it when dropped before [`publish`](Self::publish).
struct Unfinished {
    path: PathBuf,
}

impl Unfinished {
    /// Claims `OUT.recovering`, removing what a recover that was killed left there (unless a
    /// recover into `out` is running now, which holds its lock).
    fn start(out: &Path) -> Result<Unfinished, RecoverError> {
        let mut path = out.as_os_str().to_owned();
        path.push(".recovering");
        let path = PathBuf::from(path);
        if path.exists() {
            let lock = super::lock::acquire(&path, std::time::Duration::ZERO)?;
            remove_with_sidecars(&path);
            drop(lock);
        }
        Ok(Unfinished { path })
    }

    /// Moves the finished database to `out`, refusing to replace an `out` that appeared
    /// meanwhile, then its index checkpoint and column cache (caches: an open before they
    /// arrive rebuilds what it needs).
    fn publish(self, out: &Path) -> Result<(), RecoverError> {
        let io = |source| {
            RecoverError::Output(OpenError::Io {
                path: out.to_path_buf(),
                source,
            })
        };
        // A hard link fails when `out` exists, where a rename would replace it.
        match fs::hard_link(&self.path, out) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(RecoverError::OutputExists {
                    path: out.to_path_buf(),
                });
            }
            // A filesystem without hard links.
            Err(_) if !out.exists() => fs::rename(&self.path, out).map_err(io)?,
            Err(e) => return Err(io(e)),
        }
        for suffix in [".idx", ".cols"] {
            let (mut from, mut to) = (self.path.as_os_str().to_owned(), out.as_os_str().to_owned());
            from.push(suffix);
            to.push(suffix);
            if Path::new(&from).exists() {
                fs::rename(&from, &to).map_err(io)?;
            }
        }
        super::sync_parent(out).map_err(io)
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        // Unfinished: all of it. Published: what is left under the temporary name (a second
        // link to the database now at `out`, its lock, caches that could not be moved).
        remove_with_sidecars(&self.path);
    }
}

/// Removes the database at `path` and the files beside it.
fn remove_with_sidecars(path: &Path) {
    for p in std::iter::once(path.to_path_buf()).chain(super::SIDECAR_SUFFIXES.iter().map(|s| {
        let mut p = path.as_os_str().to_owned();
        p.push(s);
        PathBuf::from(p)
    })) {
        let _ = fs::remove_file(p);
    }
}

/// The frame at `off` if it is intact: magic, length within the file, checksum and Batch.
fn intact_frame(reader: &mut Reader<'_>, off: u64) -> io::Result<Option<(FrameHeader, BatchInfo)>> {
    let Some(raw) = reader.get(off, FRAME_HEADER_LEN)? else {
        return Ok(None);
    };
    if raw[..4] != FRAME_MAGIC {
        return Ok(None);
    }
    let Some(h) = FrameHeader::decode(raw) else {
        return Ok(None);
    };
    let Some(b) = reader.get(off, h.frame_len() as usize)? else {
        return Ok(None);
    };
    let (raw, payload) = b.split_at(FRAME_HEADER_LEN);
    if !FrameHeader::check(raw, payload) {
        return Ok(None);
    }
    let poff = off + FRAME_HEADER_LEN as u64;
    Ok(log::parse_payload(payload, poff)
        .ok()
        .filter(|b| b.seq() == h.seq)
        .map(|b| (h, BatchInfo::of(&b))))
}

/// Searches `[start, end)` for record buffers that verify (at 8-byte-aligned offsets, where
/// records start); returns how many were found. A buffer that verifies but disagrees with every
/// entry the range's surviving Batches give its id (a damaged path, kind, size, …) is not
/// salvaged: its id goes into `rejected`.
fn salvage(
    reader: &mut Reader<'_>,
    start: u64,
    end: u64,
    found: &mut HashMap<u64, Found>,
    rejected: &mut HashSet<u64>,
    keep: &impl Fn(&mut HashMap<u64, Found>, u64, Found),
) -> io::Result<u64> {
    let claimed = claimed_entries(reader, start, end)?;
    let mut n = 0;
    let mut off = align_up(start as usize) as u64;
    while off + 8 <= end {
        let avail = ((end - off) as usize).min(MAX_RECORD_LEN + 4);
        let bytes = reader.get(off, avail)?.expect("inside the file");
        let prefix = get_u32(bytes, 0) as usize;
        if (4..=MAX_RECORD_LEN).contains(&prefix)
            && prefix + 4 <= avail
            && let Ok((v, rlen)) = record::verify(bytes)
            && v.id() != 0
            && !v.path().is_empty()
        {
            let agrees = claimed.get(&v.id()).is_none_or(|entries| {
                entries
                    .iter()
                    .any(|x| check_record(&bytes[..rlen], x).is_ok())
            });
            if agrees {
                keep(
                    found,
                    v.id(),
                    Found {
                        off,
                        len: rlen as u32,
                        salvaged: true,
                    },
                );
                n += 1;
            } else {
                rejected.insert(v.id());
            }
            off += align_up(rlen) as u64;
            continue;
        }
        off += ALIGN as u64;
    }
    Ok(n)
}

/// The index entries of every record id that the Batches of a damaged range list, as far as
/// its frames still decode. A damaged range starts where a frame should: when that frame's
/// header and Batch (and then the next frame's) survived, a record that no longer agrees with
/// what its Batch says of it (its path's hash, size, mtime, inode, kind, …) was damaged, and is
/// not salvaged as it is.
fn claimed_entries(
    reader: &mut Reader<'_>,
    start: u64,
    end: u64,
) -> io::Result<HashMap<u64, Vec<Expect>>> {
    let mut claimed: HashMap<u64, Vec<Expect>> = HashMap::new();
    let mut at = start;
    while at + FRAME_HEADER_LEN as u64 <= end {
        let Some(h) = reader
            .get(at, FRAME_HEADER_LEN)?
            .and_then(FrameHeader::decode)
        else {
            break;
        };
        let poff = at + FRAME_HEADER_LEN as u64;
        let plen = h.payload_len as usize;
        if at.saturating_add(h.frame_len()) > end || plen > WINDOW {
            break;
        }
        let Some(payload) = reader.get(poff, plen)? else {
            break;
        };
        let Ok(batch) = log::parse_payload(payload, poff) else {
            break;
        };
        for e in batch.records().into_iter().flatten() {
            claimed
                .entry(e.id())
                .or_default()
                .push(Expect::from_record_entry(e));
        }
        at += h.frame_len();
    }
    Ok(claimed)
}

fn record_path(reader: &mut Reader<'_>, f: Found) -> io::Result<Option<Vec<u8>>> {
    Ok(reader
        .get_small(f.off, f.len as usize)?
        .and_then(|b| record::verify(&b).ok().map(|(v, _)| v.path().to_vec())))
}

impl Database {
    /// Copies what is intact of the damaged database `src` into a new database `out`; see
    /// [`recover`].
    pub fn recover(
        src: impl AsRef<Path>,
        out: impl AsRef<Path>,
        progress: &dyn Fn(u64, u64),
    ) -> Result<RecoverReport, RecoverError> {
        recover(src, out, progress)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::Record;
    use crate::store::MemStorage;

    fn sample(n: u64) -> Arc<MemStorage> {
        let mem = Arc::new(MemStorage::new());
        let mut db = Database::with_storage(mem.clone(), true).expect("init");
        for round in 0..3u64 {
            let mut b = db.batch().expect("batch");
            for i in 0..n {
                let mut r = Record::new(format!("/m/{i}.flac").into_bytes());
                r.size = i * 10 + round;
                r.title = Some("x".repeat((i % 50) as usize));
                b.upsert(&r).expect("upsert");
            }
            if round == 2 {
                b.remove(b"/m/3.flac").expect("remove");
            }
            b.commit().expect("commit");
        }
        mem
    }

    #[test]
    fn a_small_window_streams_frames_and_agrees_with_a_large_one() {
        let mem = sample(300);
        let name = Path::new("<mem>");
        let big = verify_impl(&*mem, name, None, WINDOW, &|_, _| {}).expect("verify");
        assert!(big.is_clean(), "{:?}", big.problems);
        for window in [64, 1000, 4096] {
            let small = verify_impl(&*mem, name, None, window, &|_, _| {}).expect("verify");
            assert!(small.is_clean(), "window {window}: {:?}", small.problems);
            assert_eq!(
                (
                    small.frames,
                    small.records,
                    small.live_records,
                    small.live_bytes
                ),
                (big.frames, big.records, big.live_records, big.live_bytes)
            );
        }
        // Damage is found the same way through either path.
        let mut bytes = mem.to_bytes();
        let mid = bytes.len() - 200;
        bytes[mid] ^= 0x10;
        let bad = MemStorage::from_bytes(bytes);
        for window in [64, 4096, WINDOW] {
            let r = verify_impl(&bad, name, None, window, &|_, _| {}).expect("verify");
            assert!(r.is_damaged(), "window {window}");
        }
    }
}
