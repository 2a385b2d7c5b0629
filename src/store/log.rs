//! Frames of the append-only log: reading and checking one frame, parsing its payload into a
//! verified `Batch`, and applying a batch to the index. Writing frames is `batch.rs`'s job; this
//! module is the one reader of frames, shared by open, refresh, verify and recover.

use flatbuffers::VerifierOptions;

use super::fb;
use super::format::{
    ALIGN, FRAME_HEADER_LEN, FrameHeader, LOG_START, MAX_PLAYLIST_LEN, MAX_RECORD_LEN, get_u32,
};
use super::index::{FileEntry, Index, PlaylistLoc};

/// Bytes at the end of a payload: the Batch's offset and length inside the payload.
pub(crate) const TRAILER_LEN: usize = 8;

/// A frame whose header, bounds and crc have been checked.
pub(crate) struct Frame<'a> {
    pub header: FrameHeader,
    pub payload: &'a [u8],
}

/// What is wrong at some byte offset of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Absolute byte offset in the database file.
    pub offset: u64,
    /// What is wrong there.
    pub what: String,
}

impl Damage {
    pub(crate) fn new(offset: u64, what: impl Into<String>) -> Damage {
        Damage {
            offset,
            what: what.into(),
        }
    }
}

/// Reads the frame at absolute `offset` from `log`, the committed bytes from `LOG_START` up to
/// `committed_len`.
pub(crate) fn read_frame(log: &[u8], offset: u64) -> Result<Frame<'_>, Damage> {
    let rel = (offset - LOG_START) as usize;
    let raw = log
        .get(rel..rel + FRAME_HEADER_LEN)
        .ok_or_else(|| Damage::new(offset, "frame header runs past the committed length"))?;
    let header = FrameHeader::decode(raw)
        .ok_or_else(|| Damage::new(offset, "not a frame header (bad magic or length)"))?;
    let start = rel + FRAME_HEADER_LEN;
    let payload = log
        .get(start..start + header.payload_len as usize)
        .ok_or_else(|| Damage::new(offset, "frame runs past the committed length"))?;
    if !FrameHeader::check(raw, payload) {
        return Err(Damage::new(offset, "frame checksum mismatch"));
    }
    Ok(Frame { header, payload })
}

pub(crate) fn batch_options(len: usize) -> VerifierOptions {
    VerifierOptions {
        max_depth: 4,
        max_tables: 4,
        max_apparent_size: len.saturating_mul(2),
        ignore_missing_null_terminator: false,
    }
}

/// Finds and verifies the Batch of a payload and checks every `RecordEntry` lies inside the
/// record area. `payload_offset` is only used to name offsets in errors.
pub(crate) fn parse_payload(payload: &[u8], payload_offset: u64) -> Result<fb::Batch<'_>, Damage> {
    let bad = |what: &str| Damage::new(payload_offset, what);
    if payload.len() < TRAILER_LEN {
        return Err(bad("payload too short for its trailer"));
    }
    let t = payload.len() - TRAILER_LEN;
    let batch_off = get_u32(payload, t) as usize;
    let batch_len = get_u32(payload, t + 4) as usize;
    if !batch_off.is_multiple_of(ALIGN) || batch_off.checked_add(batch_len).is_none_or(|e| e > t) {
        return Err(bad("batch trailer points outside the payload"));
    }
    let buf = &payload[batch_off..batch_off + batch_len];
    let batch =
        flatbuffers::root_with_opts::<fb::Batch>(&batch_options(batch_len), buf).map_err(|e| {
            Damage::new(
                payload_offset + batch_off as u64,
                format!("batch: {}", crate::record::flat_error(&e)),
            )
        })?;
    for re in batch.records().into_iter().flatten() {
        let (off, len) = (re.offset() as usize, re.len() as usize);
        if !off.is_multiple_of(ALIGN)
            || !(8..=MAX_RECORD_LEN + 4).contains(&len)
            || off + len > batch_off
        {
            return Err(Damage::new(
                payload_offset + batch_off as u64,
                format!("record {} lies outside the record area", re.id()),
            ));
        }
    }
    for pr in batch.playlists().into_iter().flatten() {
        if !playlist_ref_fits(pr, batch_off) {
            return Err(Damage::new(
                payload_offset + batch_off as u64,
                format!("playlist {} lies outside the record area", pr.id()),
            ));
        }
    }
    Ok(batch)
}

/// Whether a playlist's buffer lies, aligned and of a sane length, inside the record area that
/// ends at `area_end`.
pub(crate) fn playlist_ref_fits(pr: &fb::PlaylistRef, area_end: usize) -> bool {
    let (off, len) = (pr.offset() as usize, pr.len() as usize);
    off.is_multiple_of(ALIGN) && (8..=MAX_PLAYLIST_LEN + 4).contains(&len) && off + len <= area_end
}

/// Applies a verified batch to `index`. `payload_offset` is the absolute offset of the payload,
/// which record offsets are relative to; `payload_len` is the payload's length.
pub(crate) fn apply(
    index: &mut Index,
    batch: &fb::Batch<'_>,
    payload_offset: u64,
    payload_len: usize,
) -> Result<(), Damage> {
    let bad = |what: String| Damage::new(payload_offset, what);
    let prev_next = index.next_id();
    let next = batch.next_id();
    let records = batch.records();
    // A batch may hand out more ids than it stores records: an id given to a record that was
    // removed again in the same batch is skipped, never reused. Every id handed out had its
    // record encoded into the payload (at least ALIGN bytes each), which bounds the growth.
    let max_new = (payload_len / ALIGN) as u64;
    if next < prev_next || next - prev_next > max_new {
        return Err(bad(format!(
            "batch next_id {next} does not follow {prev_next} in a {payload_len}-byte payload"
        )));
    }
    index.reserve_ids(next);
    for id in batch.removals().into_iter().flatten() {
        if !index.remove(id) {
            return Err(bad(format!("batch removes id {id}, which is not live")));
        }
    }
    let mut items = Vec::with_capacity(records.map_or(0, |r| r.len()));
    for re in records.into_iter().flatten() {
        let id = re.id();
        if id == 0 || id >= next || re.path_hash() == 0 {
            return Err(bad(format!("record entry with invalid id {id} or hash")));
        }
        if index.playlists.contains_key(&id) {
            return Err(bad(format!("record id {id} is a playlist's id")));
        }
        items.push((id, entry_of(re, payload_offset)));
    }
    index
        .upsert_many(&items)
        .map_err(|id| bad(format!("batch stores id {id} twice")))?;
    apply_playlists(index, batch, payload_offset, next).map_err(bad)
}

/// Applies a batch's playlist removals and writes (after its records).
fn apply_playlists(
    index: &mut Index,
    batch: &fb::Batch<'_>,
    payload_offset: u64,
    next_id: u64,
) -> Result<(), String> {
    let removals = batch.playlist_removals();
    let refs = batch.playlists();
    if removals.is_none_or(|r| r.is_empty()) && refs.is_none_or(|r| r.is_empty()) {
        return Ok(());
    }
    let playlists = std::sync::Arc::make_mut(&mut index.playlists);
    for id in removals.into_iter().flatten() {
        if playlists.remove(&id).is_none() {
            return Err(format!("batch deletes playlist {id}, which does not exist"));
        }
    }
    for pr in refs.into_iter().flatten() {
        let id = pr.id();
        let is_record = index.entries.get(id as usize).is_some_and(|e| e.is_live());
        if id == 0 || id >= next_id || is_record {
            return Err(format!("playlist with invalid id {id}"));
        }
        let loc = PlaylistLoc {
            offset: payload_offset + u64::from(pr.offset()),
            len: pr.len(),
        };
        playlists.insert(id, loc);
    }
    Ok(())
}

/// The index entry a `RecordEntry` of the payload at `payload_offset` describes.
pub(crate) fn entry_of(re: &fb::RecordEntry, payload_offset: u64) -> FileEntry {
    FileEntry {
        path_hash: re.path_hash(),
        size: re.size(),
        mtime_ns: re.mtime_ns(),
        inode: re.inode(),
        offset: payload_offset + u64::from(re.offset()),
        len: re.len(),
        extractor_version: re.extractor_version(),
        kind: re.kind().0,
        flags: re.flags(),
    }
}

/// The `len` bytes at absolute file `offset` of `log` (the committed bytes from `LOG_START`),
/// if they lie inside it.
pub(crate) fn committed_bytes(log: &[u8], offset: u64, len: u32) -> Option<&[u8]> {
    let rel = usize::try_from(offset.checked_sub(LOG_START)?).ok()?;
    log.get(rel..rel.checked_add(len as usize)?)
}

/// Where replay stops, for checking against the header.
pub(crate) struct ReplayEnd {
    pub seq: u64,
    pub last_crc: u32,
}

/// Replays frames from `from` to the end of `log`, starting after sequence `seq` whose frame crc
/// was `prev_crc`.
pub(crate) fn replay(
    index: &mut Index,
    log: &[u8],
    from: u64,
    mut seq: u64,
    mut prev_crc: u32,
) -> Result<ReplayEnd, Damage> {
    let end = LOG_START + log.len() as u64;
    let mut offset = from;
    while offset < end {
        let frame = read_frame(log, offset)?;
        if frame.header.seq != seq + 1 {
            return Err(Damage::new(
                offset,
                format!("frame seq {} does not follow {seq}", frame.header.seq),
            ));
        }
        if frame.header.prev_crc != prev_crc {
            return Err(Damage::new(
                offset,
                "frame does not chain to the one before it",
            ));
        }
        let payload_offset = offset + FRAME_HEADER_LEN as u64;
        let batch = parse_payload(frame.payload, payload_offset)?;
        if batch.seq() != frame.header.seq {
            return Err(Damage::new(offset, "batch seq differs from its frame's"));
        }
        apply(index, &batch, payload_offset, frame.payload.len())?;
        seq = frame.header.seq;
        prev_crc = frame.header.crc;
        offset += frame.header.frame_len();
    }
    Ok(ReplayEnd {
        seq,
        last_crc: prev_crc,
    })
}
