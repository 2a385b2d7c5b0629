//! The index checkpoint `NAME.idx`: the index serialized at one commit, mapped and used in place
//! on open so that opening a large database reads no records. It is only a cache: any doubt
//! (checksum, identity, position in the log) and it is ignored and the index rebuilt from the log.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::crc;
use super::format::{
    ENTRY_LEN, Header, IDX_CHUNK, IDX_HEADER_BLOCK, IdxHeader, LOG_START, PLAYLIST_LOC_LEN,
    TABLE_SLOT_LEN, get_u32, get_u64,
};
use super::index::{Chunked, Index, PlaylistLoc, Playlists, Slot, Table};
use super::map::Mapping;
use super::storage::StreamOut;

/// The checkpoint's path for database `db`.
pub(crate) fn idx_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".idx");
    PathBuf::from(s)
}

/// A loaded checkpoint and the commit it covers.
pub(crate) struct Loaded {
    pub index: Index,
    pub header: IdxHeader,
}

/// How much of a checkpoint [`load`] checks before handing it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Every chunk now (a writer, whose index becomes the next checkpoint): a damaged
    /// checkpoint is ignored and the index rebuilt from the log.
    Eager,
    /// Each chunk on first access (a reader): opening reads the header and the chunk-crc lists
    /// only, so a point lookup in a large database touches a few pages. A chunk that fails reads
    /// as empty and raises the index's damage flag, which fallible reads report.
    Lazy,
}

/// Loads the checkpoint of `db` if it is intact and belongs to a commit at or before `hdr`.
/// Linkage to the log beyond that is checked by the caller's replay.
pub(crate) fn load(db: &Path, hdr: &Header, check: Check) -> Option<Loaded> {
    let file = File::open(idx_path(db)).ok()?;
    let len = file.metadata().ok()?.len();
    if len < IDX_HEADER_BLOCK {
        return None;
    }
    let mut raw = [0u8; 128];
    file.read_exact_at(&mut raw, 0).ok()?;
    let h = IdxHeader::decode(&raw)?;
    if h.file_id != hdr.file_id
        || h.committed_len < LOG_START
        || h.seq > hdr.seq
        || h.committed_len > hdr.committed_len
        || h.file_len() != len
        || h.next_id > hdr.next_id
    {
        return None;
    }
    let map = match check {
        Check::Eager => Mapping::map_file_populated(&file, 0, len).ok()?,
        Check::Lazy => Mapping::map_file(&file, 0, len).ok()?,
    };
    let bytes = map.bytes();
    let entries_start = IDX_HEADER_BLOCK as usize;
    let table_start = h.table_offset() as usize;
    let playlists_start = h.playlists_offset() as usize;
    let crcs_start = h.chunk_crcs_offset() as usize;
    let (n_entry_chunks, n_table_chunks) = h.chunk_counts();
    let crc_list = |at: usize, n: u64| -> Vec<u32> {
        bytes[at..at + n as usize * 4]
            .chunks_exact(4)
            .map(|c| get_u32(c, 0))
            .collect()
    };
    let entry_crcs = crc_list(crcs_start, n_entry_chunks);
    let table_crcs = crc_list(crcs_start + n_entry_chunks as usize * 4, n_table_chunks);
    let list_bytes = |at: usize, n: u64| &bytes[at..at + n as usize * 4];
    if crc::of(list_bytes(crcs_start, n_entry_chunks)) != h.entries_crc
        || crc::of(list_bytes(
            crcs_start + n_entry_chunks as usize * 4,
            n_table_chunks,
        )) != h.table_crc
        || crc::of(&bytes[playlists_start..crcs_start]) != h.playlists_crc
    {
        return None;
    }
    if check == Check::Eager {
        let chunk_ok = |start: usize, item: usize, n: usize, crcs: &[u32]| {
            let per = IDX_CHUNK as usize * item;
            bytes[start..start + n * item]
                .chunks(per)
                .zip(crcs)
                .all(|(c, &crc)| crc::of(c) == crc)
        };
        if !chunk_ok(entries_start, ENTRY_LEN, h.next_id as usize, &entry_crcs)
            || !chunk_ok(
                table_start,
                TABLE_SLOT_LEN,
                h.table_capacity as usize,
                &table_crcs,
            )
        {
            // Only a writer checks eagerly, and it holds the lock: remove the damaged file so
            // that readers opening before its next checkpoint rebuild from the log instead of
            // meeting the damage (they check chunks only when they touch them).
            drop(map);
            let _ = fs::remove_file(idx_path(db));
            return None;
        }
    }
    let mut playlists = std::collections::BTreeMap::new();
    for loc in bytes[playlists_start..crcs_start].chunks_exact(PLAYLIST_LOC_LEN) {
        let at = PlaylistLoc {
            offset: get_u64(loc, 8),
            len: get_u32(loc, 16),
        };
        // Locations are checked against the log when a playlist is read, like records.
        if at.offset < LOG_START || at.offset >= h.committed_len {
            return None;
        }
        playlists.insert(get_u64(loc, 0), at);
    }
    let damage = Arc::new(AtomicBool::new(false));
    let lazy = check == Check::Lazy;
    let entries = Chunked::mapped(
        &map,
        entries_start,
        h.next_id as usize,
        lazy.then_some((&entry_crcs[..], &damage)),
    );
    let slots = Chunked::<Slot>::mapped(
        &map,
        table_start,
        h.table_capacity as usize,
        lazy.then_some((&table_crcs[..], &damage)),
    );
    Some(Loaded {
        index: Index {
            entries,
            table: Table::from_parts(slots, h.table_used as usize),
            live_records: h.live_records,
            live_bytes: h.live_bytes,
            playlists: Playlists::new(playlists),
            damage: damage.clone(),
        },
        header: h,
    })
}

/// Writes a checkpoint of `index` at commit `hdr` to `NAME.idx.tmp`, syncs it and renames it
/// over `NAME.idx`. Synced so that a power cut cannot leave a renamed but torn checkpoint, which
/// readers (who check chunks lazily) would meet as damage rather than ignore.
pub(crate) fn write(db: &Path, hdr: &Header, index: &Index) -> io::Result<()> {
    let path = idx_path(db);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = write_to(&tmp, hdr, index).and_then(|()| fs::rename(&tmp, &path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_to(tmp: &Path, hdr: &Header, index: &Index) -> io::Result<()> {
    let tight = index.tight_table();
    let table = tight.as_ref().unwrap_or(&index.table);
    let file = File::create(tmp)?;
    let mut h = IdxHeader {
        file_id: hdr.file_id,
        seq: hdr.seq,
        committed_len: hdr.committed_len,
        last_frame_crc: hdr.last_frame_crc,
        next_id: index.next_id(),
        table_capacity: table.capacity() as u64,
        live_records: index.live_records,
        live_bytes: index.live_bytes,
        entries_crc: 0,
        table_crc: 0,
        table_used: table.used() as u64,
        playlists: index.playlists.len() as u64,
        playlists_crc: 0,
    };
    // Two threads, each about half the bytes: the first the header block and the first `split`
    // chunks of entries, the second the other entries, the padding and the table. What runs
    // side by side is the encoding and checksumming of chunks (the kernel takes buffered writes
    // to one file in turn). Each streams a chunk at a time: a checkpoint never holds the whole
    // index in a second copy.
    let entries = &index.entries;
    let chunk_bytes = IDX_CHUNK * ENTRY_LEN as u64;
    let entries_len = entries.len() as u64 * ENTRY_LEN as u64;
    let table_len = h.table_capacity * TABLE_SLOT_LEN as u64;
    let split = ((entries_len + table_len) / 2)
        .div_ceil(chunk_bytes)
        .min(entries.chunk_count() as u64);
    let second_at = IDX_HEADER_BLOCK + (split * chunk_bytes).min(entries_len);
    let stream = |at| BufWriter::with_capacity(1 << 20, StreamOut::at(&file, at));
    let (first, second) = rayon::join(
        || {
            let mut out = stream(0);
            out.write_all(&[0u8; IDX_HEADER_BLOCK as usize])?;
            let (crcs, _) = entries.write_chunks_to(0..split as usize, &mut out)?;
            out.flush()?;
            Ok::<_, io::Error>(crcs)
        },
        || {
            let mut out = stream(second_at);
            let (crcs, _) =
                entries.write_chunks_to(split as usize..entries.chunk_count(), &mut out)?;
            let pad = h.table_offset() - IDX_HEADER_BLOCK - entries_len;
            out.write_all(&vec![0u8; pad as usize])?;
            let (table_crcs, _) = table.slots().write_to(&mut out)?;
            out.flush()?;
            Ok::<_, io::Error>((crcs, table_crcs))
        },
    );
    let mut entry_crcs = first?;
    let (rest, table_crcs) = second?;
    entry_crcs.extend(rest);
    let mut out = stream(h.playlists_offset());
    let mut locs = Vec::with_capacity(index.playlists.len() * PLAYLIST_LOC_LEN);
    for (&id, loc) in index.playlists.iter() {
        locs.extend_from_slice(&id.to_le_bytes());
        locs.extend_from_slice(&loc.offset.to_le_bytes());
        locs.extend_from_slice(&loc.len.to_le_bytes());
        locs.extend_from_slice(&0u32.to_le_bytes());
    }
    h.playlists_crc = crc::of(&locs);
    out.write_all(&locs)?;
    let list = |crcs: &[u32]| -> Vec<u8> { crcs.iter().flat_map(|c| c.to_le_bytes()).collect() };
    let (entry_list, table_list) = (list(&entry_crcs), list(&table_crcs));
    h.entries_crc = crc::of(&entry_list);
    h.table_crc = crc::of(&table_list);
    out.write_all(&entry_list)?;
    out.write_all(&table_list)?;
    out.flush()?;
    drop(out);
    file.write_all_at(&h.encode(), 0)?;
    file.sync_data()?;
    Ok(())
}
