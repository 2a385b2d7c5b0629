//! The index checkpoint `NAME.idx`: the index serialized at one commit, mapped and used in place
//! on open so that opening a large database reads no records. It is only a cache: any doubt
//! (checksum, identity, position in the log) and it is ignored and the index rebuilt from the log.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::format::{
    ENTRY_LEN, Header, IDX_HEADER_BLOCK, IdxHeader, LOG_START, PLAYLIST_LOC_LEN, get_u32, get_u64,
};
use super::index::{Chunked, Index, PlaylistLoc, Playlists, Slot, Table};
use super::map::Mapping;

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

/// Loads the checkpoint of `db` if it is intact and belongs to a commit at or before `hdr`.
/// Linkage to the log beyond that is checked by the caller's replay.
pub(crate) fn load(db: &Path, hdr: &Header) -> Option<Loaded> {
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
    let map = Mapping::map_file_populated(&file, 0, len).ok()?;
    let bytes = map.bytes();
    let entries_start = IDX_HEADER_BLOCK as usize;
    let entries_end = entries_start + h.next_id as usize * ENTRY_LEN;
    let table_start = h.table_offset() as usize;
    let playlists_start = h.playlists_offset() as usize;
    if crc32c::crc32c(&bytes[entries_start..entries_end]) != h.entries_crc
        || crc32c::crc32c(&bytes[table_start..playlists_start]) != h.table_crc
        || crc32c::crc32c(&bytes[playlists_start..]) != h.playlists_crc
    {
        return None;
    }
    let mut playlists = std::collections::BTreeMap::new();
    for loc in bytes[playlists_start..].chunks_exact(PLAYLIST_LOC_LEN) {
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
    let entries = Chunked::mapped(&map, entries_start, h.next_id as usize);
    let slots = Chunked::<Slot>::mapped(&map, table_start, h.table_capacity as usize);
    Some(Loaded {
        index: Index {
            entries,
            table: Table::from_parts(slots, h.table_used as usize),
            live_records: h.live_records,
            live_bytes: h.live_bytes,
            playlists: Playlists::new(playlists),
        },
        header: h,
    })
}

/// Writes a checkpoint of `index` at commit `hdr` to `NAME.idx.tmp` and renames it over
/// `NAME.idx`. Not synced: a checkpoint torn by a crash fails its checksums and is ignored.
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
    let file = File::create(tmp)?;
    let mut h = IdxHeader {
        file_id: hdr.file_id,
        seq: hdr.seq,
        committed_len: hdr.committed_len,
        last_frame_crc: hdr.last_frame_crc,
        next_id: index.next_id(),
        table_capacity: index.table.capacity() as u64,
        live_records: index.live_records,
        live_bytes: index.live_bytes,
        entries_crc: 0,
        table_crc: 0,
        table_used: index.table.used() as u64,
        playlists: index.playlists.len() as u64,
        playlists_crc: 0,
    };
    let mut out = BufWriter::with_capacity(1 << 20, &file);
    out.write_all(&[0u8; IDX_HEADER_BLOCK as usize])?;
    // Streamed a chunk at a time: a checkpoint never holds the whole index in a second copy.
    let (entries_crc, entries_len) = index.entries.write_to(&mut out)?;
    h.entries_crc = entries_crc;
    let pad = h.table_offset() - IDX_HEADER_BLOCK - entries_len;
    out.write_all(&vec![0u8; pad as usize])?;
    h.table_crc = index.table.slots().write_to(&mut out)?.0;
    let mut locs = Vec::with_capacity(index.playlists.len() * PLAYLIST_LOC_LEN);
    for (&id, loc) in index.playlists.iter() {
        locs.extend_from_slice(&id.to_le_bytes());
        locs.extend_from_slice(&loc.offset.to_le_bytes());
        locs.extend_from_slice(&loc.len.to_le_bytes());
        locs.extend_from_slice(&0u32.to_le_bytes());
    }
    h.playlists_crc = crc32c::crc32c(&locs);
    out.write_all(&locs)?;
    out.flush()?;
    drop(out);
    file.write_all_at(&h.encode(), 0)?;
    Ok(())
}
