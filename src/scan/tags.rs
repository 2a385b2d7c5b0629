//! Reading tags and audio properties with `lofty`, isolated so that no file can take the scan
//! down: [`extract`] never panics, never prints, and bounds what one file can make it allocate.
//!
//! # What is read
//! [`Kind::Audio`] and [`Kind::Video`] files whose extension `lofty` knows (mp3, flac, ogg,
//! opus, m4a/mp4/m4v/3gp, wav, aiff, ape, wv, mpc, spx, aac). The first 36 bytes decide the
//! container when they carry a recognisable magic (so an `.ogg` holding Opus, or an `.mp3` that
//! is really MP4, is read as what it is); otherwise the extension decides. Formats `lofty` does
//! not read have readers of our own in the submodules: ASF (wma, wmv, asf), DSF, Matroska and
//! WebM, AVI, FLV, MPEG transport and program streams, and Ogg files whose first stream is not
//! Vorbis, Opus or Speex (Theora video, FLAC in Ogg). Files none of them supports (dff, mid, …)
//! get no tags and **no error**: that is a limit of the extractor, not a fault of the file.
//! Other kinds are not opened.
//!
//! # A file that fails to read
//! It keeps its error, and what a second read can still give: leniently (invalid items
//! dropped) when a tag failed, else its stream properties alone; its tags alone when the stream
//! failed. See `read` for the rules that keep this to at most two more reads.
//!
//! # Isolation
//! - Every `lofty` call runs inside [`std::panic::catch_unwind`]; a panic becomes `error`.
//! - `lofty`'s allocation limit ([`ALLOCATION_LIMIT`]) caps each length-prefixed buffer it
//!   allocates up front (a FLAC metadata block, one Vorbis comment, an MP4 `ilst`, an APE item,
//!   a RIFF chunk); a larger claim is an error, not an allocation. Items `lofty` reads to their
//!   end instead (ID3v2 frames) grow only with the bytes really in the file. The limit is set
//!   with `lofty::config::apply_global_options`, which is **thread-local**: [`init_thread`]
//!   applies it, and [`extract`] applies it on a thread's first use, so every worker thread is
//!   covered whether or not its start handler calls [`init_thread`].
//! - Known gap: `lofty` inflates zlib-compressed ID3v2 frames (feature
//!   `id3v2_compression_support`, on by default) and reads them to their end without the limit,
//!   so a crafted file can still make it allocate about a thousand times the frame's size.
//!   `lofty` 0.25.5 does not build with that feature off; turn it off once it does.
//! - A panic hook is process-global, so the library installs none; the binary calls
//!   [`quiet_panics`] once to keep panics inside the extractor off stderr.
//!
//! # Cover art
//! `lofty`'s `ParseOptions::read_cover_art(false)` skips picture frames and blocks and leaves
//! no trace of them, so `lofty` cannot tell whether a file has a cover without reading them.
//! Files are therefore read **with** pictures, under the allocation limit, and the pictures are
//! dropped as soon as `has_cover` is known. Reading them costs little more than skipping them:
//! ID3v2 frames are skipped by reading them anyway, and Vorbis comments and the MP4 `ilst` are
//! loaded whole either way; only FLAC picture blocks are truly seeked over. If that read fails
//! on the allocation limit, the file is read again without pictures; if that succeeds, the only
//! thing that differed was a picture too large to load (a FLAC picture block over the limit),
//! so `has_cover` is `true` and `error` stays unset. A picture over the limit inside a Vorbis
//! comment or an `ilst` makes the file an error either way.
//!
//! # Field rules
//! Tags are consulted primary tag first (ID3v2 before ID3v1 and APE, …); each field comes from
//! the first tag that has it. `artists` is the multi-valued `ARTISTS` item when present, else
//! every artist value (repeated Vorbis `ARTIST` fields, MP4 data atoms, NUL-separated ID3v2.4
//! values), exact duplicates removed. Genres given as ID3v1 numbers (`"17"`, `"(17)"`) become
//! names. `year` is the first four digits of the recording date (then year, release date,
//! original release date). `"3/12"` in a track or disc number gives both number and total.

use std::cell::Cell;
use std::error::Error;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Once;

use lofty::config::{GlobalOptions, ParseOptions, ParsingMode, apply_global_options};
use lofty::error::{AllocationError, FileParseError, TagParseError};
use lofty::file::{AudioFile, FileType, TaggedFile, TaggedFileExt};
use lofty::id3::Lyrics3v2ParseError;
use lofty::probe::Probe;
use lofty::tag::{ItemKey, Tag};

use crate::record::{Kind, Record};

mod asf;
mod avi;
mod dff;
mod dsf;
mod flv;
mod mkv;
mod mp4;
mod mpeg;
mod ogg;
mod tta;
mod wav;

/// `file`'s length, for the readers of our own; the message is one line.
fn file_len(file: &std::fs::File) -> Result<u64, String> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| cannot_read(&e))
}

/// How every error of the system's in opening or reading a file begins (a failed `open`, a
/// read that returned `EIO`, …), as against a file whose contents are damaged.
const CANNOT_READ: &str = "cannot read the file: ";

/// The one-line error of a file the system failed to open or read.
fn cannot_read(e: &std::io::Error) -> String {
    one_line(&format!("{CANNOT_READ}{e}"))
}

/// The operating system's error in `e`'s chain, if a system call failed (not a file found
/// short or malformed, which `lofty` also reports as I/O errors, without an OS error code).
fn os_error(e: &FileParseError) -> Option<&std::io::Error> {
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.raw_os_error().is_some()
        {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

/// Whether a record's `error` says the system failed to open or read the file (permissions, a
/// failing disk, a file replaced as it was read) rather than that its contents are damaged:
/// then nothing is known of the file, and a rescan reads it again even though its size and
/// mtime are unchanged (a `chmod` changes neither). Also true of records written before such
/// errors had their own wording, whose message ends with the system's `(os error N)`.
pub fn is_retryable(error: &str) -> bool {
    error.starts_with(CANNOT_READ) || error.contains("(os error ")
}

/// Version of this extractor; a rescan re-reads files whose record has an older one, except
/// as [`is_current`] says.
///
/// Version 2: a file that fails to read is read again, leniently or for its tags alone or for
/// its stream properties alone (see `read`), and keeps what that gives beside its error.
/// Version 3: ASF files (wma, wmv, asf) are read, and MPEG layer I (mp1) and AIFF-C (afc)
/// files are classified as audio and read.
/// Version 4: ID3v1 genre numbers are named as Winamp, mutagen and TagLib name them (see
/// `GENRES`); a rescan does not re-read records for this alone, `scan --force` does.
/// Version 5: DSF files are read.
/// Version 6: Matroska, WebM, AVI and FLV files are read (duration, audio properties, tags),
/// and MPEG transport and program streams for their duration; an MP4 or QuickTime video
/// without a sound track is not an error, its duration comes from the movie header (a rescan
/// re-reads the records that version 5 failed).
/// Version 7: Ogg video (Theora), FLAC in Ogg and Ogg files that begin with a Skeleton stream
/// are read (duration, audio properties, tags); `.oga`, `.ogv` and `.ogm` files are opened.
/// Version 8: WAVE files that `lofty` refuses (RF64 and BW64; compressed: ADPCM, GSM, …; a
/// `data` chunk that does not fit the file: piped, still recording, cut) are read; a rescan
/// re-reads the records that version 7 failed.
/// Version 9: DSDIFF (`.dff`) and TrueAudio (`.tta`) files are read; `.3g2`, `.3gpp`, `.f4v` and `.f4a` files are
/// read as MP4; every Opus stream reports 48 kHz, the rate it decodes at, not the encoder's
/// input rate; HE-AAC in MP4 reports the rate SBR plays at and USAC its real channel count;
/// an MP4 file whose codec `lofty` does not know, or whose movie header runs past its end,
/// gets its duration, rate and channels from the sound track's header; an Ogg file `lofty`
/// refuses is read by the reader of our own. A rescan re-reads the records that
/// version 8 failed and those of the extensions concerned, except MP4 (`scan --force` does).
/// Version 10: an Ogg file whose last page, or a Matroska or WebM file whose segment, runs past
/// its end (a download that stopped) is reported `file cut short`, an Ogg one with the length
/// its whole pages reach (`lofty` gave none). A rescan re-reads the records that version 9
/// failed; clean ones wait for `scan --force` (re-reading every Ogg and Matroska file of a
/// library to find the few cut short is not worth it).
pub const EXTRACTOR_VERSION: u16 = 10;

/// Whether the record of `path`, written by extractor `version` with an error or without, is
/// still current. Versions since 1 changed what is kept of files that fail to read, how files
/// of a few extensions are read (`READ_SINCE`), and the names of ID3v1 genre numbers. A
/// rescan re-reads records for the first two; for the names alone, which few records have,
/// re-reading a whole library is not worth it (`scan --force` does). So a clean record of any
/// other file from version 1 on is current.
pub fn is_current(version: u16, had_error: bool, path: &[u8]) -> bool {
    if version >= EXTRACTOR_VERSION {
        return true;
    }
    let needed = if had_error {
        EXTRACTOR_VERSION
    } else {
        READ_SINCE
            .iter()
            .find(|(ext, _)| has_extension(path, &[ext]))
            .map_or(1, |&(_, since)| since)
    };
    version >= needed
}

/// Whether `path` has one of `exts` (lower case) as its extension, in any case.
fn has_extension(path: &[u8], exts: &[&[u8]]) -> bool {
    let Some(dot) = path.iter().rposition(|&b| b == b'.') else {
        return false;
    };
    let ext = &path[dot + 1..];
    exts.iter().any(|a| ext.eq_ignore_ascii_case(a))
}

/// Whether `path` names an ASF file (`.wma`, `.wmv`, `.asf`, in any case).
fn is_asf_name(path: &[u8]) -> bool {
    has_extension(path, &[b"wma", b"wmv", b"asf"])
}

/// Extensions whose files are read only since an extractor version after 1, with that
/// version: records of theirs from before say nothing of their tags.
const READ_SINCE: [(&[u8], u16); 29] = [
    (b"wma", 3),
    (b"wmv", 3),
    (b"asf", 3),
    (b"mp1", 3),
    (b"afc", 3),
    (b"dsf", 5),
    (b"dff", 9),
    (b"tta", 9),
    (b"3g2", 9),
    (b"3gpp", 9),
    (b"f4v", 9),
    (b"f4a", 9),
    (b"opus", 9),
    (b"mkv", 9),
    (b"mka", 9),
    (b"webm", 9),
    (b"weba", 9),
    (b"mk3d", 9),
    (b"avi", 6),
    (b"ts", 6),
    (b"mts", 6),
    (b"m2ts", 6),
    (b"mpg", 6),
    (b"mpeg", 6),
    (b"vob", 6),
    (b"flv", 6),
    (b"oga", 7),
    (b"ogv", 7),
    (b"ogm", 7),
];

/// Most bytes `lofty` may allocate up front for one length-prefixed item (a FLAC metadata
/// block, a Vorbis comment, an MP4 `ilst`, …); see the module documentation.
pub const ALLOCATION_LIMIT: usize = 16 * 1024 * 1024;

/// Longest `error` message kept, in bytes.
const MAX_ERROR_LEN: usize = 400;

thread_local! {
    /// Set while this thread runs `lofty`: the panic hook of [`quiet_panics`] stays silent.
    static IN_EXTRACTOR: Cell<bool> = const { Cell::new(false) };
    /// Whether `lofty`'s options were applied on this thread.
    static CONFIGURED: Cell<bool> = const { Cell::new(false) };
}

/// Applies the extractor's `lofty` options (allocation limit, no custom resolvers, no
/// format-specific leftovers) to the calling thread. Idempotent and cheap; call it at the start
/// of every worker thread. [`extract`] also calls it on a thread's first use.
pub fn init_thread() {
    configure(ALLOCATION_LIMIT);
}

fn configure(allocation_limit: usize) {
    apply_global_options(
        GlobalOptions::new()
            .allocation_limit(allocation_limit)
            .use_custom_resolvers(false)
            .preserve_format_specific_items(false),
    );
    CONFIGURED.with(|c| c.set(true));
}

/// Installs, once per process, a panic hook that says nothing about panics raised on a thread
/// while it is inside [`extract`] (they become the record's `error`), and hands every other
/// panic to the hook that was installed before. For binaries; the library never calls it.
pub fn quiet_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let quiet = IN_EXTRACTOR.try_with(Cell::get).unwrap_or(false);
            if !quiet {
                previous(info);
            }
        }));
    });
}

/// Marks the current thread as inside the extractor until dropped.
struct InExtractor {
    was: bool,
}

impl InExtractor {
    fn enter() -> InExtractor {
        InExtractor {
            was: IN_EXTRACTOR.with(|f| f.replace(true)),
        }
    }
}

impl Drop for InExtractor {
    fn drop(&mut self) {
        IN_EXTRACTOR.with(|f| f.set(self.was));
    }
}

/// Fills `rec`'s tag and property fields from the file at `path`, of kind `kind` (from
/// [`super::kind::classify`]).
///
/// Sets `rec.extractor_version` to [`EXTRACTOR_VERSION`]. First resets every field it owns
/// (tags, properties, `has_cover`, `error`), so a record from an earlier extraction can be
/// passed in; leaves `path`, `size`, `mtime_ns`, `inode`, `kind` and `mime` alone. On failure
/// `rec.error` holds a one-line message and the other fields stay empty. Never panics.
pub fn extract(path: &Path, kind: Kind, rec: &mut Record) {
    extract_with(path, kind, rec, &|| File::open(path));
}

/// As [`extract`], opening the file as `name` relative to the directory `dir` (the walk holds
/// the directory open, so this spares resolving the whole path again). `path` is used to pick
/// the format by extension.
pub fn extract_at(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::CStr,
    path: &Path,
    kind: Kind,
    rec: &mut Record,
) {
    use rustix::fs::{Mode, OFlags};
    // Non-blocking: a FIFO swapped in since the walk's stat must not hang the scan.
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    extract_with(path, kind, rec, &|| {
        rustix::fs::openat(dir, name, flags, Mode::empty())
            .map(File::from)
            .map_err(std::io::Error::from)
    });
}

fn extract_with(
    path: &Path,
    kind: Kind,
    rec: &mut Record,
    open: &dyn Fn() -> std::io::Result<File>,
) {
    rec.extractor_version = EXTRACTOR_VERSION;
    move_fields(Record::default(), rec);
    if !matches!(kind, Kind::Audio | Kind::Video) {
        return;
    }
    if !CONFIGURED.with(Cell::get) {
        init_thread();
    }
    match isolated(|| read(path, kind, open)) {
        Ok(Some(found)) => move_fields(bounded(found), rec),
        Ok(None) => {}
        Err(message) => rec.error = Some(message),
    }
}

/// Longest text a tag field keeps, in bytes (cut at a character boundary).
const MAX_TEXT: usize = 16 << 10;
/// Most values a list field (artists, genres) keeps, and most bytes of them.
const MAX_VALUES: usize = 1024;
const MAX_LIST_BYTES: usize = 64 << 10;

/// `rec` with its tag fields cut to [`MAX_TEXT`], [`MAX_VALUES`] and [`MAX_LIST_BYTES`]:
/// whatever a file's tags hold (200,000 artists in one frame), its record stays far inside
/// the store's record limit.
fn bounded(mut rec: Record) -> Record {
    fn cut_list(list: &mut Vec<String>) {
        list.truncate(MAX_VALUES);
        let mut bytes = 0;
        let mut keep = 0;
        for v in list.iter_mut() {
            cut_to(v, MAX_TEXT);
            bytes += v.len();
            if bytes > MAX_LIST_BYTES {
                break;
            }
            keep += 1;
        }
        list.truncate(keep);
    }
    for s in [
        &mut rec.title,
        &mut rec.album,
        &mut rec.album_artist,
        &mut rec.musicbrainz_track_id,
        &mut rec.musicbrainz_album_id,
    ]
    .into_iter()
    .flatten()
    {
        cut_to(s, MAX_TEXT);
    }
    cut_list(&mut rec.artists);
    cut_list(&mut rec.genres);
    rec
}

/// Runs `f` marked as inside the extractor, turning a panic into an error message.
fn isolated<F>(f: F) -> Result<Option<Record>, String>
where
    F: FnOnce() -> Result<Option<Record>, String>,
{
    let outcome = {
        let _inside = InExtractor::enter();
        panic::catch_unwind(AssertUnwindSafe(f))
    };
    outcome.unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("unknown panic");
        Err(one_line(&format!("tag reader panicked: {what}")))
    })
}

/// Moves the fields [`extract`] owns from `from` into `to`.
fn move_fields(from: Record, to: &mut Record) {
    to.title = from.title;
    to.artists = from.artists;
    to.album = from.album;
    to.album_artist = from.album_artist;
    to.genres = from.genres;
    to.year = from.year;
    to.track = from.track;
    to.track_total = from.track_total;
    to.disc = from.disc;
    to.disc_total = from.disc_total;
    to.duration_ms = from.duration_ms;
    to.bitrate = from.bitrate;
    to.sample_rate = from.sample_rate;
    to.channels = from.channels;
    to.bit_depth = from.bit_depth;
    to.compilation = from.compilation;
    to.has_cover = from.has_cover;
    to.musicbrainz_track_id = from.musicbrainz_track_id;
    to.musicbrainz_album_id = from.musicbrainz_album_id;
    to.error = from.error;
}

/// Reads the file: `Ok(None)` when `lofty` does not support it, `Err` with a one-line message
/// when it cannot be read.
fn read(
    path: &Path,
    kind: Kind,
    open: &dyn Fn() -> std::io::Result<File>,
) -> Result<Option<Record>, String> {
    let name = path.as_os_str().as_encoded_bytes();
    // QuickTime movies are MP4's ancestor, atom for atom, and 3GPP2 and Flash video files are
    // MP4 files under other names: `lofty` reads them as MP4.
    let quicktime = || has_extension(name, MP4_NAMES).then_some(FileType::Mp4);
    let lofty_type = FileType::from_path(path).or_else(quicktime);
    let own = own_reader_by_name(name);
    if lofty_type.is_none() && own.is_none() {
        return Ok(None);
    }
    // Opened once for every attempt below: a file that cannot be opened now (permissions, a
    // failing disk) says so plainly, and a rescan tries it again (see `is_retryable`).
    let file = &open().map_err(|e| cannot_read(&e))?;
    // What the first bytes show wins over the name, both for the formats read here and for
    // those `lofty` reads (see `read_file`). The first parse below starts from this block
    // instead of reading it again.
    let first = PreadReader::loaded(file).map_err(|e| cannot_read(&e))?;
    let head = first.head();
    let wave = wav::is_wave(head);
    let ogg = head.starts_with(b"OggS");
    let mp4 = head.get(4..8) == Some(b"ftyp");
    let id3v2_len = tta::id3v2_len(head);
    let by_extension = match (own_reader_by_content(&first.block), lofty_type) {
        (Some(reader), _) => return Ok(Some(read_own(file, reader))),
        (None, Some(t)) => t,
        (None, None) => match FileType::from_buffer(head) {
            // Only types whose first bytes say so for certain: MPEG audio and AAC are told by
            // a frame sync that many bytes can pass for.
            Some(t) if !matches!(t, FileType::Mpeg | FileType::Aac) => t,
            // The name's own reader (there is one: else this returned above), which says
            // what the file is not.
            _ => return Ok(own.map(|reader| read_own(file, reader))),
        },
    };
    if let Some(what) = too_many_tag_items(file, &first.block, by_extension) {
        // `lofty` files each ID3v2 frame and APE item after a search of those before it, so
        // a tag of 100,000 (2.4 MB) would take it a minute; no real tag comes near the limit.
        let properties_only = ParseOptions::new()
            .parsing_mode(ParsingMode::Relaxed)
            .read_tags(false)
            .read_cover_art(false);
        let mut out = Record::default();
        if let Ok(f) = read_file_with(first, by_extension, properties_only) {
            fill_properties(&f, kind, &mut out);
        }
        out.error = Some(format!("{what}: tags not read"));
        return Ok(Some(out));
    }
    let options = ParseOptions::new()
        .parsing_mode(ParsingMode::BestAttempt)
        .read_properties(true)
        .read_tags(true)
        .read_cover_art(true);
    let mut out = Record::default();
    // Whether an MP4 file is cut short, once a look at its sound track has said.
    let mut cut = None;
    match read_file_with(first, by_extension, options) {
        Ok(tagged) => {
            let has_cover = tagged.tags().iter().any(|t| t.picture_count() > 0);
            fill(&tagged, kind, &mut out);
            out.has_cover = Some(has_cover);
            let mp4 = mp4 || tagged.file_type() == FileType::Mp4;
            let suspect = out.sample_rate.is_none_or(|r| r <= 24_000) || out.channels > Some(8);
            if mp4 && (suspect || kind == Kind::Video) {
                // `lofty` reads an MP4 file's audio config no further than its core: HE-AAC
                // (whose SBR plays at twice the core's rate, 22.05 kHz for 44.1) comes out at
                // the core's rate, and the channels of an escaped object type (USAC) come out
                // as bits of something else; and it takes AC-3's and E-AC-3's channels from
                // the sample entry, which says 2 for 5.1 (a movie's usual sound).
                if let Some(sound) = mp4::sound(file) {
                    cut = Some(sound.cut);
                    if sound.from_config {
                        out.sample_rate = sound.sample_rate.or(out.sample_rate);
                        out.channels = sound.channels.or(out.channels);
                    }
                    if out.channels > Some(8) {
                        out.channels = sound.channels.filter(|&c| c <= 8);
                    }
                }
            }
            if ogg && out.duration_ms.is_none() {
                // `lofty` takes an Ogg file's length from its very last page, and gives none
                // when that page is cut short (a download that stopped): the whole pages before
                // it (or, when none reaches anywhere, its header) still say how far it goes.
                let mut pages = Record::default();
                match ogg::read(file, &mut pages) {
                    Ok(()) => out.duration_ms = pages.duration_ms,
                    Err(cut) if cut == ogg::CUT => {
                        out.duration_ms = pages.duration_ms;
                        out.error = Some(cut);
                    }
                    Err(_) => {}
                }
            }
        }
        Err(first) if is_allocation_error(&first) => {
            let mut without_pictures = options;
            let file = read_file(file, by_extension, without_pictures.read_cover_art(false))
                .map_err(|_| describe(&first))?;
            fill(&file, kind, &mut out);
            out.has_cover = Some(true);
        }
        Err(first) if is_budget_spent(&first) => {
            // Another read by `lofty` (leniently, for the tags alone) would search as far
            // again: an ID3v2 tag at the start is read alone.
            if let Some(len) = id3v2_len.filter(|&len| len <= read_budget()) {
                let _ = dsf::read_id3(file, 0, len, &mut out);
            }
            out.error = Some(budget_error(by_extension));
        }
        Err(first) => {
            if let Some(e) = os_error(&first) {
                // The system failed a read: nothing says the file is damaged, so nothing more
                // is read from it now, and a rescan tries it again.
                return Err(cannot_read(e));
            }
            // One damaged part need not cost the rest of the file. When a tag failed, the file
            // is read again leniently (invalid items dropped), else for its stream properties
            // alone; when the stream failed, for its tags alone. Either way the record keeps
            // the first error, so it still says what could not be read. At most two more
            // reads, and none that would only search the whole file again for the stream.
            // (`ParseOptions`' setters change the value they are called on and return a copy:
            // a chain is used for its result.)
            if wave
                && !is_tag_error(&first)
                && let Some(rec) = wave_stream(file)
            {
                return Ok(Some(rec));
            }
            if ogg
                && !is_tag_error(&first)
                && let Some(rec) = ogg_stream(file)
            {
                return Ok(Some(rec));
            }
            let lenient = { options }.parsing_mode(ParsingMode::Relaxed);
            let kept = if is_tag_error(&first) {
                let properties_only = { lenient }.read_tags(false).read_cover_art(false);
                if let Ok(file) = read_file(file, by_extension, lenient) {
                    fill(&file, kind, &mut out);
                    out.has_cover = Some(file.tags().iter().any(|t| t.picture_count() > 0));
                    "the rest was read"
                } else if let Ok(file) = read_file(file, by_extension, properties_only) {
                    fill_properties(&file, kind, &mut out);
                    "tags not read, stream properties were"
                } else {
                    return Err(describe(&first));
                }
            } else if kind == Kind::Video && is_soundless_movie(&first) {
                // A video without a sound track (a timelapse, a screen recording) is not
                // damaged: its tags, and its duration from the movie header.
                let tags_only = { lenient }.read_properties(false);
                if let Ok(tagged) = read_file(file, by_extension, tags_only) {
                    fill_tags(&tagged, &mut out);
                    out.has_cover = Some(tagged.tags().iter().any(|t| t.picture_count() > 0));
                }
                out.duration_ms = mp4::movie_duration_ms(file);
                return Ok(Some(out));
            } else if (mp4 || by_extension == FileType::Mp4)
                && let Some(sound) = mp4::sound(file)
                    .or_else(|| {
                        // Cut before its sound track's headers: nothing of them, but the
                        // record says why.
                        mp4::cut_short(file).then(|| mp4::Sound {
                            cut: true,
                            ..mp4::Sound::default()
                        })
                    })
                    .filter(|s| s.duration_ms.is_some() || s.cut)
            {
                // A codec `lofty` does not know (Vorbis in MP4), a config it misreads, or a
                // movie header that runs past the end of the file: the sound track's own
                // header still gives the duration, rate and channels, and the tags are read
                // alone. Only a file cut short is an error.
                let tags_only = { lenient }.read_properties(false);
                if let Ok(tagged) = read_file(file, by_extension, tags_only) {
                    fill_tags(&tagged, &mut out);
                    out.has_cover = Some(tagged.tags().iter().any(|t| t.picture_count() > 0));
                }
                out.duration_ms = sound.duration_ms;
                out.sample_rate = sound.sample_rate;
                out.channels = sound.channels;
                if sound.cut {
                    out.error = Some(MP4_CUT.to_owned());
                }
                return Ok(Some(out));
            } else {
                let tags_only = { lenient }.read_properties(false);
                let file = tags_may_be_found(file, by_extension)
                    .then(|| read_file(file, by_extension, tags_only).ok())
                    .flatten();
                let Some(file) = file else {
                    return Err(describe(&first));
                };
                fill_tags(&file, &mut out);
                out.has_cover = Some(file.tags().iter().any(|t| t.picture_count() > 0));
                "tags read, stream properties not"
            };
            out.error = Some(one_line(&format!("{} ({kept})", describe(&first))));
        }
    }
    if (mp4 || by_extension == FileType::Mp4) && cut.unwrap_or_else(|| mp4::cut_short(file)) {
        // `lofty` reads the headers of an MP4 file whose media data stops part way (an
        // interrupted download) as if it were whole; the record says it is not.
        out.error = Some(MP4_CUT.to_owned());
    }
    Ok(Some(out))
}

/// The error of an MP4 file cut short.
const MP4_CUT: &str = "file cut short: an atom (movie header or media data) runs past the end of the file; read \
     as far as it goes";

/// Extensions of MP4 (ISO base media) files that `lofty` does not know by name.
const MP4_NAMES: &[&[u8]] = &[b"mov", b"qt", b"3g2", b"3gpp", b"f4v", b"f4a"];

/// Most frames an ID3v2 tag, or items an APEv2 tag, may have for a file's tags to be read.
const MAX_ID3_FRAMES: usize = 8192;

/// Why the file's tags must not be handed to `lofty`, if they must not: an ID3v2 tag (at the
/// start, or in a WAVE or AIFF chunk) or an APEv2 tag (at the end of the formats that carry
/// one) of more than [`MAX_ID3_FRAMES`] entries.
fn too_many_tag_items(file: &File, block: &[u8], ty: FileType) -> Option<String> {
    let too_many = || Some(format!("ID3v2 tag of more than {MAX_ID3_FRAMES} frames"));
    if id3_frames_over(file, block, 0, MAX_ID3_FRAMES) {
        return too_many();
    }
    if let Some(at) = id3_chunk(file, block)
        && id3_frames_over(file, block, at, MAX_ID3_FRAMES)
    {
        return too_many();
    }
    let ape = matches!(
        FileType::from_buffer(block).unwrap_or(ty),
        FileType::Mpeg | FileType::Ape | FileType::WavPack | FileType::Mpc
    );
    if ape && ape_items(file).is_some_and(|n| n > MAX_ID3_FRAMES as u64) {
        return Some(format!("APEv2 tag of more than {MAX_ID3_FRAMES} items"));
    }
    None
}

/// The item count of an APEv2 tag at the end of the file (before an ID3v1 tag, if any).
fn ape_items(file: &File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata().ok()?.len();
    let mut tail = [0u8; 160];
    let start = len.saturating_sub(tail.len() as u64);
    let n = usize::try_from(len - start).ok()?;
    file.read_exact_at(&mut tail[..n], start).ok()?;
    let tail = &tail[..n];
    let footer_at = |end: usize| {
        end.checked_sub(32)
            .filter(|&at| &tail[at..at + 8] == b"APETAGEX")
    };
    let at = footer_at(n).or_else(|| {
        let id3v1 = n
            .checked_sub(128)
            .filter(|&at| tail[at..].starts_with(b"TAG"))?;
        footer_at(id3v1)
    })?;
    Some(u64::from(get_u32_le(&tail[at + 16..at + 20])))
}

fn get_u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The offset of the ID3v2 tag in a WAVE (`id3 ` chunk) or AIFF (`ID3 ` chunk) file.
fn id3_chunk(file: &File, block: &[u8]) -> Option<u64> {
    let little = if block.starts_with(b"RIFF") && block.get(8..12) == Some(b"WAVE") {
        true
    } else if block.starts_with(b"FORM") && matches!(block.get(8..12), Some(b"AIFF" | b"AIFC")) {
        false
    } else {
        return None;
    };
    let len = file.metadata().ok()?.len();
    let mut at = 12u64;
    let mut buf = [0u8; 8];
    for _ in 0..1024 {
        if at + 8 > len {
            return None;
        }
        let h = read_exact_from(file, block, at, &mut buf)?;
        let size = if little {
            get_u32_le(&h[4..8])
        } else {
            u32::from_be_bytes([h[4], h[5], h[6], h[7]])
        };
        if h[..4].eq_ignore_ascii_case(b"id3 ") {
            return Some(at + 8);
        }
        at += 8 + u64::from(size) + u64::from(size & 1);
    }
    None
}

/// Whether the file starts with an ID3v2 tag of more than `limit` frames. Frame headers are
/// read from `block` (the file's first bytes) where it holds them, else with one small read
/// each; a tag too small to hold that many frames is not walked at all. A frame header that
/// is not one (padding, garbage) ends the count.
fn id3_frames_over(file: &File, block: &[u8], start: u64, limit: usize) -> bool {
    let mut h = [0u8; 10];
    if read_exact_from(file, block, start, &mut h).is_none() || !h.starts_with(b"ID3") {
        return false;
    }
    let syncsafe = |b: &[u8]| {
        b.iter()
            .try_fold(0u64, |n, &x| (x < 0x80).then_some(n << 7 | u64::from(x)))
    };
    let version = h[3];
    let Some(size) = syncsafe(&h[6..10]).filter(|_| (2..=4).contains(&version)) else {
        return false;
    };
    let (header, id_len) = if version == 2 { (6, 3) } else { (10, 4) };
    // Every frame is at least a header and a byte.
    if size / (header + 1) <= limit as u64 {
        return false;
    }
    let end = start + 10 + size;
    let mut at = start + 10;
    let mut buf = [0u8; 10];
    if h[5] & 0x40 != 0 && version >= 3 {
        // An extended header: its size leads it (without itself in version 3).
        let Some(ext) = read_exact_from(file, block, at, &mut buf[..4]) else {
            return false;
        };
        at += if version == 3 {
            4 + u64::from(u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]))
        } else {
            syncsafe(ext).unwrap_or(0)
        };
    }
    let mut frames = 0;
    while at + header <= end {
        let Some(f) = read_exact_from(file, block, at, &mut buf[..header as usize]) else {
            return false;
        };
        if !f[..id_len]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return false;
        }
        let len = match version {
            2 => u64::from(u32::from_be_bytes([0, f[3], f[4], f[5]])),
            3 => u64::from(u32::from_be_bytes([f[4], f[5], f[6], f[7]])),
            // Some writers put plain sizes in version 4.
            _ => syncsafe(&f[4..8])
                .unwrap_or_else(|| u64::from(u32::from_be_bytes([f[4], f[5], f[6], f[7]]))),
        };
        frames += 1;
        if frames > limit {
            return true;
        }
        at += header + len;
    }
    false
}

/// `buf.len()` bytes at `at`: from `block` (the file from offset 0) when it holds them, else
/// read from the file.
fn read_exact_from<'b>(file: &File, block: &[u8], at: u64, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let start = usize::try_from(at).ok()?;
    if let Some(b) = block.get(start..start + buf.len()) {
        buf.copy_from_slice(b);
    } else {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, at).ok()?;
    }
    Some(buf)
}

/// A WAVE file whose stream `lofty` refused, read by the reader of our own: `lofty` reads only
/// samples of whole bytes, from a `data` chunk that fits the file, and a compressed, piped,
/// still recording or cut file is none of those. `None` when that reader finds no duration
/// either.
fn wave_stream(file: &File) -> Option<Record> {
    let mut out = Record::default();
    wav::read(file, &mut out).ok()?;
    out.duration_ms.is_some().then_some(out)
}

/// An Ogg file whose stream `lofty` refused ("too little data" from a Vorbis setup header split
/// over pages it did not expect), read by the reader of our own, which checks each page and
/// takes the length from the granule position of the last whole one (or of a last page cut
/// short, with that error). `None` when that reader finds no duration either.
fn ogg_stream(file: &File) -> Option<Record> {
    let mut out = Record::default();
    match ogg::read(file, &mut out) {
        Ok(()) => {}
        Err(cut) if cut == ogg::CUT => out.error = Some(cut),
        Err(_) => return None,
    }
    out.duration_ms.is_some().then_some(out)
}

/// A reader of our own for a format `lofty` does not read.
type OwnReader = fn(&File, &mut Record) -> Result<(), String>;

/// The reader of our own for a file named `name`, if any.
fn own_reader_by_name(name: &[u8]) -> Option<OwnReader> {
    if is_asf_name(name) {
        Some(asf::read)
    } else if has_extension(name, &[b"dsf"]) {
        Some(dsf::read)
    } else if has_extension(name, &[b"dff"]) {
        Some(dff::read)
    } else if has_extension(name, &[b"tta"]) {
        Some(tta::read)
    } else if has_extension(name, &[b"mkv", b"mka", b"webm", b"weba", b"mk3d"]) {
        Some(mkv::read)
    } else if has_extension(name, &[b"avi"]) {
        Some(avi::read)
    } else if has_extension(name, MPEG_STREAMS) {
        Some(mpeg::read)
    } else if has_extension(name, &[b"flv"]) {
        Some(flv::read)
    } else if has_extension(name, &[b"ogv", b"oga", b"ogm"]) {
        Some(ogg::read)
    } else {
        None
    }
}

/// Extensions of MPEG transport and program streams.
const MPEG_STREAMS: &[&[u8]] = &[b"ts", b"mts", b"m2ts", b"mpg", b"mpeg", b"vob"];

/// The reader of our own for a file whose first bytes are `head` (as many as were read: an Ogg
/// page must be whole to be checked), if they show its format.
fn own_reader_by_content(head: &[u8]) -> Option<OwnReader> {
    if asf::is_asf(head) {
        Some(asf::read)
    } else if dsf::is_dsf(head) {
        Some(dsf::read)
    } else if dff::is_dff(head) {
        Some(dff::read)
    } else if tta::is_tta(head) {
        Some(tta::read)
    } else if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        Some(mkv::read)
    } else if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"AVI ") {
        Some(avi::read)
    } else if mpeg::is_program_stream(head) {
        Some(mpeg::read)
    } else if head.starts_with(b"FLV\x01") {
        Some(flv::read)
    } else if wav::is_rf64(head) {
        Some(wav::read)
    } else if ogg::is_other_ogg(head) {
        Some(ogg::read)
    } else {
        None
    }
}

/// What `reader` makes of `file`: when it fails part way (a tag it cannot read, a file cut
/// short), the record keeps what it found before, with the error.
fn read_own(file: &File, reader: OwnReader) -> Record {
    let mut out = Record::default();
    if let Err(e) = reader(file, &mut out) {
        out.error = Some(one_line(&e));
    }
    out
}

/// Opens the file and parses it as the type its first bytes show, else as `by_extension`.
fn read_file(
    file: &File,
    by_extension: FileType,
    options: ParseOptions,
) -> Result<TaggedFile, FileParseError> {
    read_file_with(PreadReader::new(file), by_extension, options)
}

/// As [`read_file`], from a reader of the file at offset 0.
fn read_file_with(
    mut file: PreadReader<'_>,
    by_extension: FileType,
    options: ParseOptions,
) -> Result<TaggedFile, FileParseError> {
    #[cfg(test)]
    tests::READS.with(|n| n.set(n.get() + 1));
    let mut head = [0u8; 36];
    let mut len = 0;
    while len < head.len() {
        match file.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    file.seek(SeekFrom::Start(0))?;
    let ty = FileType::from_buffer(&head[..len]).unwrap_or(by_extension);
    Probe::with_file_type(file, ty).options(options).read()
}

/// The sample rate of every Opus stream: Opus always decodes at 48 kHz (RFC 6716 §2), and the
/// rate in its header (`OpusHead`, a Matroska track's `SamplingFrequency`) is only the rate the
/// encoder was fed, kept for information. TagLib, mutagen and ffprobe report 48 kHz too.
const OPUS_RATE: u32 = 48_000;

/// Bytes [`PreadReader`] reads at once: all of a small file, the tag area of most large ones.
const READ_BLOCK: usize = 32 * 1024;

/// Most bytes one read of a file by `lofty` may take. Its readers of MPEG audio and ADTS AAC
/// search for the stream's first frame as far as the file goes: through a file of zeros named
/// `.mp3` (preallocated, or sparse) at about 8 s per GiB, while the scan holds the writer lock.
/// No real file needs more than its tags and headers read, which the largest pictures keep
/// under this.
const READ_BUDGET: u64 = 128 << 20;

/// [`READ_BUDGET`], or a test's smaller one.
fn read_budget() -> u64 {
    #[cfg(test)]
    if let Some(budget) = tests::BUDGET.with(Cell::get) {
        return budget;
    }
    READ_BUDGET
}

/// The error a [`PreadReader`] gives once it has read [`READ_BUDGET`] bytes.
#[derive(Debug)]
struct ReadBudgetSpent;

impl std::fmt::Display for ReadBudgetSpent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read {} MiB of it without coming to an end",
            read_budget() >> 20
        )
    }
}

impl Error for ReadBudgetSpent {}

/// Whether `e` is a [`PreadReader`]'s refusal to read past its budget.
fn is_budget_spent(e: &FileParseError) -> bool {
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<ReadBudgetSpent>())
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The error of a file whose read was stopped by [`READ_BUDGET`].
fn budget_error(ty: FileType) -> String {
    let stream = match ty {
        FileType::Mpeg => "MPEG audio".to_owned(),
        FileType::Aac => "AAC".to_owned(),
        other => format!("{other:?}"),
    };
    format!(
        "{stream} stream not read: none found in the first {} MiB (a file of zeros, or not what \
         its name says)",
        read_budget() >> 20
    )
}

/// A buffered reader for the tag reader that keeps the file position itself and reads with
/// `pread`: `lofty` seeks and asks for the position often, and through a `BufReader` each of
/// those is an `lseek` that also throws the buffer away. Here a seek is arithmetic, a read
/// inside the block already read is a copy, and the file's length is asked once, the first time
/// a seek is made from the end.
struct PreadReader<'f> {
    file: &'f File,
    len: Option<u64>,
    pos: u64,
    block: Vec<u8>,
    /// File offset of `block[0]`.
    block_at: u64,
    /// Bytes that may still be read from the file (see [`READ_BUDGET`]).
    budget: u64,
}

impl PreadReader<'_> {
    /// A reader at offset 0 whose first block is read already.
    fn loaded(file: &File) -> std::io::Result<PreadReader<'_>> {
        let mut r = PreadReader::new(file);
        r.block.resize(READ_BLOCK, 0);
        let n = r.read_at(0, None)?;
        r.block.truncate(n);
        Ok(r)
    }

    /// `pread` into `out`, or into the block when `None`, within the budget.
    fn read_at(&mut self, at: u64, out: Option<&mut [u8]>) -> std::io::Result<usize> {
        if self.budget == 0 {
            return Err(std::io::Error::other(ReadBudgetSpent));
        }
        let buf = out.unwrap_or(&mut self.block);
        let want = buf
            .len()
            .min(usize::try_from(self.budget).unwrap_or(usize::MAX));
        let n = read_at(self.file, &mut buf[..want], at)?;
        self.budget -= n as u64;
        Ok(n)
    }

    /// The first bytes of the block read (fewer when the file is shorter): enough to tell
    /// every format by.
    fn head(&self) -> &[u8] {
        &self.block[..self.block.len().min(36)]
    }

    fn new(file: &File) -> PreadReader<'_> {
        PreadReader {
            file,
            len: None,
            pos: 0,
            block: Vec::new(),
            block_at: 0,
            budget: read_budget(),
        }
    }
}

/// `pread`, retried when interrupted.
fn read_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    loop {
        match file.read_at(buf, at) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

impl Read for PreadReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let in_block = self
            .pos
            .checked_sub(self.block_at)
            .and_then(|off| usize::try_from(off).ok())
            .filter(|&off| off < self.block.len());
        let off = match in_block {
            Some(off) => off,
            None if out.len() >= READ_BLOCK => {
                let n = self.read_at(self.pos, Some(out))?;
                self.pos += n as u64;
                return Ok(n);
            }
            None => {
                self.block.resize(READ_BLOCK, 0);
                let n = match self.read_at(self.pos, None) {
                    Ok(n) => n,
                    Err(e) => {
                        self.block.clear();
                        return Err(e);
                    }
                };
                self.block.truncate(n);
                self.block_at = self.pos;
                if n == 0 {
                    return Ok(0);
                }
                0
            }
        };
        let n = out.len().min(self.block.len() - off);
        out[..n].copy_from_slice(&self.block[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PreadReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => {
                let len = match self.len {
                    Some(len) => len,
                    None => *self.len.insert(self.file.metadata()?.len()),
                };
                len.checked_add_signed(d)
            }
        };
        self.pos = target.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )
        })?;
        Ok(self.pos)
    }

    fn stream_position(&mut self) -> std::io::Result<u64> {
        Ok(self.pos)
    }
}

fn is_allocation_error(e: &FileParseError) -> bool {
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<AllocationError>() {
            return true;
        }
        cur = err.source();
    }
    describe(e).contains("exceed global limits")
}

/// Whether `e` arose in one of the file's tags rather than in its stream.
/// Whether `e` is `lofty`'s refusal of an MP4 file that has no audio track: it reads a file's
/// stream properties from that track.
fn is_soundless_movie(e: &FileParseError) -> bool {
    describe(e) == "failed to parse Mp4 file: file contains no audio tracks"
}

fn is_tag_error(e: &FileParseError) -> bool {
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<TagParseError>() || err.is::<Lyrics3v2ParseError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Whether reading a file whose stream could not be read, for its tags alone, may find any.
/// Not for an MPEG file with no tag at either end (an ID3v2 tag at its start, an ID3v1 or APE
/// tag at its end): reading it for its tags would search all of it again for the first frame
/// (the reader does so whatever it is asked for), which in a large file that holds no stream
/// takes as long as the failed read did, to find nothing.
fn tags_may_be_found(file: &File, by_extension: FileType) -> bool {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 36];
    let Ok(n) = file.read_at(&mut head, 0) else {
        return false;
    };
    let head = &head[..n];
    if FileType::from_buffer(head).unwrap_or(by_extension) != FileType::Mpeg
        || head.starts_with(b"ID3")
    {
        return true;
    }
    // The last 160 bytes: an ID3v1 tag is the last 128, an APE footer the last 32 before it
    // or at the very end.
    let len = file.metadata().map_or(0, |m| m.len());
    let mut tail = [0u8; 160];
    let at = len.saturating_sub(tail.len() as u64);
    let Ok(n) = file.read_at(&mut tail, at) else {
        return false;
    };
    let tail = &tail[..n];
    let ends_with_at = |what: &[u8], from_end: usize| {
        tail.len() >= from_end && tail[tail.len() - from_end..].starts_with(what)
    };
    ends_with_at(b"TAG", 128) || ends_with_at(b"APETAGEX", 32) || ends_with_at(b"APETAGEX", 160)
}

/// The error and its sources on one line: `"failed to parse Flac file: …"`.
fn describe(e: &FileParseError) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !s.is_empty() && parts.last() != Some(&s) {
            parts.push(s);
        }
        cur = err.source();
    }
    one_line(&parts.join(": "))
}

/// Cuts `s` to at most `max` bytes, at a character boundary; whether it was cut.
fn cut_to(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut at = max;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
    true
}

/// `s` with control characters turned into spaces, trimmed, and cut to [`MAX_ERROR_LEN`].
fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if cut_to(&mut out, MAX_ERROR_LEN) {
        out.push('…');
    }
    let trimmed = out.trim();
    if trimmed.is_empty() {
        "unreadable".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Copies tags and properties from `file` into `out`.
fn fill(file: &TaggedFile, kind: Kind, out: &mut Record) {
    fill_tags(file, out);
    fill_properties(file, kind, out);
}

/// The tag fields of `out` from `file`'s tags.
fn fill_tags(file: &TaggedFile, out: &mut Record) {
    let primary = file.primary_tag();
    let tags: Vec<&Tag> = primary
        .into_iter()
        .chain(
            file.tags()
                .iter()
                .filter(|t| primary.is_none_or(|p| !std::ptr::eq(*t, p))),
        )
        .collect();
    fill_from_tags(&tags, out);
}

/// The tag fields of `out` from `tags`, the first tag consulted first (see the field rules in
/// the module's documentation).
fn fill_from_tags(tags: &[&Tag], out: &mut Record) {
    let first = |key: ItemKey| tags.iter().find_map(|t| t.get_strings(key).find_map(clean));
    let all = |key: ItemKey| -> Vec<String> {
        let mut values: Vec<String> = Vec::new();
        if let Some(tag) = tags
            .iter()
            .find(|t| t.get_strings(key).any(|v| clean(v).is_some()))
        {
            for v in tag.get_strings(key).filter_map(clean) {
                if !values.contains(&v) {
                    values.push(v);
                }
            }
        }
        values
    };

    out.title = first(ItemKey::TrackTitle);
    out.artists = all(ItemKey::TrackArtists);
    if out.artists.is_empty() {
        out.artists = all(ItemKey::TrackArtist);
    }
    out.album = first(ItemKey::AlbumTitle);
    out.album_artist = first(ItemKey::AlbumArtist);
    for g in all(ItemKey::Genre) {
        let g = genre_name(&g);
        if !out.genres.contains(&g) {
            out.genres.push(g);
        }
    }
    out.year = [
        ItemKey::RecordingDate,
        ItemKey::Year,
        ItemKey::ReleaseDate,
        ItemKey::OriginalReleaseDate,
    ]
    .into_iter()
    .find_map(|key| tags.iter().flat_map(|t| t.get_strings(key)).find_map(year));
    (out.track, out.track_total) = number_pair(
        first(ItemKey::TrackNumber).as_deref(),
        first(ItemKey::TrackTotal).as_deref(),
    );
    (out.disc, out.disc_total) = number_pair(
        first(ItemKey::DiscNumber).as_deref(),
        first(ItemKey::DiscTotal).as_deref(),
    );
    out.compilation = first(ItemKey::FlagCompilation).and_then(|v| flag(&v));
    out.musicbrainz_track_id = first(ItemKey::MusicBrainzRecordingId);
    out.musicbrainz_album_id = first(ItemKey::MusicBrainzReleaseId);
}

/// The stream fields of `out` from `file`'s properties.
fn fill_properties(file: &TaggedFile, kind: Kind, out: &mut Record) {
    let props = file.properties();
    let duration = props.duration().as_millis();
    out.duration_ms = (duration > 0).then(|| u64::try_from(duration).unwrap_or(u64::MAX));
    let overall = if kind == Kind::Audio {
        props.overall_bitrate()
    } else {
        None
    };
    out.bitrate = props.audio_bitrate().or(overall).filter(|&b| b > 0);
    out.sample_rate = if file.file_type() == FileType::Opus {
        Some(OPUS_RATE)
    } else {
        props.sample_rate().filter(|&r| r > 0)
    };
    out.channels = props.channels().filter(|&c| c > 0);
    out.bit_depth = props.bit_depth().filter(|&b| b > 0);
}

/// A tag value trimmed of whitespace and NUL padding, if anything is left.
fn clean(v: &str) -> Option<String> {
    let t = v.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!t.is_empty()).then(|| t.to_owned())
}

/// The ID3v1 genres by number (0 to 191), named as Winamp defined them and as mutagen, TagLib
/// and beets name them. `lofty`'s own list words 24 of them otherwise (`Classic rock`,
/// `Jazz & Funk`, and for 133 a slur where this list has `Afro-Punk`).
const GENRES: [&str; 192] = [
    "Blues",
    "Classic Rock",
    "Country",
    "Dance",
    "Disco",
    "Funk",
    "Grunge",
    "Hip-Hop",
    "Jazz",
    "Metal",
    "New Age",
    "Oldies",
    "Other",
    "Pop",
    "R&B",
    "Rap",
    "Reggae",
    "Rock",
    "Techno",
    "Industrial",
    "Alternative",
    "Ska",
    "Death Metal",
    "Pranks",
    "Soundtrack",
    "Euro-Techno",
    "Ambient",
    "Trip-Hop",
    "Vocal",
    "Jazz+Funk",
    "Fusion",
    "Trance",
    "Classical",
    "Instrumental",
    "Acid",
    "House",
    "Game",
    "Sound Clip",
    "Gospel",
    "Noise",
    "Alt. Rock",
    "Bass",
    "Soul",
    "Punk",
    "Space",
    "Meditative",
    "Instrumental Pop",
    "Instrumental Rock",
    "Ethnic",
    "Gothic",
    "Darkwave",
    "Techno-Industrial",
    "Electronic",
    "Pop-Folk",
    "Eurodance",
    "Dream",
    "Southern Rock",
    "Comedy",
    "Cult",
    "Gangsta Rap",
    "Top 40",
    "Christian Rap",
    "Pop/Funk",
    "Jungle",
    "Native American",
    "Cabaret",
    "New Wave",
    "Psychedelic",
    "Rave",
    "Showtunes",
    "Trailer",
    "Lo-Fi",
    "Tribal",
    "Acid Punk",
    "Acid Jazz",
    "Polka",
    "Retro",
    "Musical",
    "Rock & Roll",
    "Hard Rock",
    "Folk",
    "Folk-Rock",
    "National Folk",
    "Swing",
    "Fast-Fusion",
    "Bebop",
    "Latin",
    "Revival",
    "Celtic",
    "Bluegrass",
    "Avantgarde",
    "Gothic Rock",
    "Progressive Rock",
    "Psychedelic Rock",
    "Symphonic Rock",
    "Slow Rock",
    "Big Band",
    "Chorus",
    "Easy Listening",
    "Acoustic",
    "Humour",
    "Speech",
    "Chanson",
    "Opera",
    "Chamber Music",
    "Sonata",
    "Symphony",
    "Booty Bass",
    "Primus",
    "Porn Groove",
    "Satire",
    "Slow Jam",
    "Club",
    "Tango",
    "Samba",
    "Folklore",
    "Ballad",
    "Power Ballad",
    "Rhythmic Soul",
    "Freestyle",
    "Duet",
    "Punk Rock",
    "Drum Solo",
    "A Cappella",
    "Euro-House",
    "Dance Hall",
    "Goa",
    "Drum & Bass",
    "Club-House",
    "Hardcore",
    "Terror",
    "Indie",
    "BritPop",
    "Afro-Punk",
    "Polsk Punk",
    "Beat",
    "Christian Gangsta Rap",
    "Heavy Metal",
    "Black Metal",
    "Crossover",
    "Contemporary Christian",
    "Christian Rock",
    "Merengue",
    "Salsa",
    "Thrash Metal",
    "Anime",
    "JPop",
    "Synthpop",
    "Abstract",
    "Art Rock",
    "Baroque",
    "Bhangra",
    "Big Beat",
    "Breakbeat",
    "Chillout",
    "Downtempo",
    "Dub",
    "EBM",
    "Eclectic",
    "Electro",
    "Electroclash",
    "Emo",
    "Experimental",
    "Garage",
    "Global",
    "IDM",
    "Illbient",
    "Industro-Goth",
    "Jam Band",
    "Krautrock",
    "Leftfield",
    "Lounge",
    "Math Rock",
    "New Romantic",
    "Nu-Breakz",
    "Post-Punk",
    "Post-Rock",
    "Psytrance",
    "Shoegaze",
    "Space Rock",
    "Trop Rock",
    "World Music",
    "Neoclassical",
    "Audiobook",
    "Audio Theatre",
    "Neue Deutsche Welle",
    "Podcast",
    "Indie Rock",
    "G-Funk",
    "Dubstep",
    "Garage Rock",
    "Psybient",
];

/// ID3v1 genre numbers (`"17"`, `"(17)"`, `"(17)Rock"`, `"(RX)"`) as names from [`GENRES`];
/// a name in `lofty`'s words for one of them (how an ID3v1 tag's genre byte reaches us) as the
/// same genre's name from [`GENRES`]; anything else as is.
fn genre_name(g: &str) -> String {
    let by_number = |n: &str| -> Option<String> {
        if n.is_empty() || n.len() > 3 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let i: usize = n.parse().ok()?;
        GENRES.get(i).map(|s| (*s).to_owned())
    };
    if let Some(name) = by_number(g) {
        return name;
    }
    if let Some(rest) = g.strip_prefix('(')
        && let Some((inner, refinement)) = rest.split_once(')')
    {
        if let Some(r) = clean(refinement) {
            return r;
        }
        match inner {
            "RX" => return "Remix".to_owned(),
            "CR" => return "Cover".to_owned(),
            _ => {}
        }
        if let Some(name) = by_number(inner) {
            return name;
        }
    }
    lofty::id3::v1::GENRES
        .iter()
        .position(|l| *l == g)
        .and_then(|i| GENRES.get(i))
        .map_or_else(|| g.to_owned(), |s| (*s).to_owned())
}

/// The year from a date such as `"1997"`, `"1997-09-22"` or `"1997-09-22T10:00"`: its first
/// four characters, if they are digits and not `0000`.
fn year(date: &str) -> Option<i32> {
    let d = date.trim().as_bytes();
    let digits = d.get(..4)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let y = digits
        .iter()
        .fold(0i32, |acc, b| acc * 10 + i32::from(b - b'0'));
    (y > 0).then_some(y)
}

/// Number and total from a number field (`"3"`, `"03"`, `"3/12"`) and a separate total field;
/// the separate total wins when both give one.
fn number_pair(number: Option<&str>, total: Option<&str>) -> (Option<u32>, Option<u32>) {
    let (n, inline_total) = match number.map(|s| s.split_once('/').unwrap_or((s, ""))) {
        Some((n, t)) => (parse_u32(n), parse_u32(t)),
        None => (None, None),
    };
    (n, total.and_then(parse_u32).or(inline_total))
}

fn parse_u32(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A boolean tag value: `1`/`true`/`yes` or `0`/`false`/`no`.
fn flag(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Some(true),
        "0" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// What the tests of the readers of our own share.
#[cfg(test)]
mod own_reader_tests {
    use super::{OwnReader, Record};
    use std::fs::File;

    /// `reader`'s result and record for a file holding `bytes`.
    pub(super) fn read_bytes(reader: OwnReader, bytes: &[u8]) -> (Result<(), String>, Record) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).unwrap();
        let mut rec = Record::default();
        let r = reader(&File::open(&path).unwrap(), &mut rec);
        (r, rec)
    }

    /// Runs `reader` on every `step`th prefix of `whole`, and on `whole` with each byte in turn
    /// replaced by a pseudo-random one (xorshift from `seed`): a panic fails the test.
    pub(super) fn survives_damage(reader: OwnReader, whole: &[u8], step: usize, seed: u32) {
        for cut in (0..whole.len()).step_by(step) {
            let _ = read_bytes(reader, &whole[..cut]);
        }
        let mut x = seed;
        for i in 0..whole.len() {
            let mut bad = whole.to_vec();
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            bad[i] = x as u8;
            let _ = read_bytes(reader, &bad);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::scan::kind::classify;

    thread_local! {
        /// Parses of a file this thread began (`read_file` calls).
        pub(super) static READS: Cell<usize> = const { Cell::new(0) };
        /// A read budget in place of [`READ_BUDGET`] for this thread.
        pub(super) static BUDGET: Cell<Option<u64>> = const { Cell::new(None) };
    }

    #[test]
    fn a_file_of_zeros_is_not_searched_to_its_end() {
        // A preallocated or sparse file named `.mp3` or `.aac`: `lofty` would search all of it
        // for a first frame. Here the budget is 1 MiB and the files 8 MiB; an ID3v2 tag at the
        // start is still read.
        BUDGET.with(|b| b.set(Some(1 << 20)));
        let dir = tempfile::tempdir().unwrap();
        let tag = std::fs::read(fixture("The Testers/Ninety Nine/05 Version Three.mp3")).unwrap();
        let tag = &tag[..usize::try_from(tta::id3v2_len(&tag).unwrap()).unwrap()];
        for (name, head) in [
            ("zeros.mp3", &[][..]),
            ("zeros.aac", &[]),
            ("tagged.mp3", tag),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, head).unwrap();
            std::fs::File::options()
                .append(true)
                .open(&path)
                .unwrap()
                .set_len(8 << 20)
                .unwrap();
            let mut rec = Record::default();
            extract(&path, Kind::Audio, &mut rec);
            let error = rec.error.unwrap_or_default();
            assert!(
                error.contains("stream not read: none found in the first 1 MiB"),
                "{name}: {error}"
            );
            assert!(!is_retryable(&error));
            assert_eq!(rec.title.is_some(), !head.is_empty(), "{name}");
        }
        BUDGET.with(|b| b.set(None));
    }

    #[test]
    fn failures_of_the_system_are_retryable_and_damaged_contents_are_not() {
        let denied = std::io::Error::from_raw_os_error(13);
        assert!(is_retryable(&cannot_read(&denied)));
        // As versions before the wording was their own put it.
        assert!(is_retryable(
            "failed to parse file: Permission denied (os error 13)"
        ));
        let eio = FileParseError::from(std::io::Error::from_raw_os_error(5));
        assert_eq!(
            os_error(&eio).and_then(std::io::Error::raw_os_error),
            Some(5)
        );
        // A file found short is damaged, not unreadable: lofty says so with an I/O error that
        // carries no OS error code.
        let short = FileParseError::from(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert!(os_error(&short).is_none());
        assert!(!is_retryable(&describe(&short)));
        assert!(!is_retryable(
            "failed to parse Flac file: FLAC: File missing \"fLaC\" stream marker"
        ));
    }

    const MB_TRACK: &str = "1c0f9b3e-0000-4000-8000-000000000001";
    const MB_ALBUM: &str = "1c0f9b3e-0000-4000-8000-0000000000a1";

    /// An ID3v2.3 tag holding `frames` (id, body with its encoding byte first): frame sizes
    /// plain big-endian, the tag's size syncsafe.
    pub(super) fn id3v23(frames: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (id, b) in frames {
            body.extend_from_slice(&id[..]);
            body.extend((b.len() as u32).to_be_bytes());
            body.extend([0, 0]);
            body.extend_from_slice(b);
        }
        let n = body.len() as u32;
        let mut tag = b"ID3\x03\x00\x00".to_vec();
        tag.extend([21, 14, 7, 0].map(|shift| (n >> shift) as u8 & 0x7F));
        tag.extend(body);
        tag
    }

    /// What `reader` gives for a file holding `bytes`.
    pub(super) fn read_bytes_with(
        reader: fn(&File, &mut Record) -> Result<(), String>,
        bytes: &[u8],
    ) -> (Result<(), String>, Record) {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        let mut rec = Record::default();
        (reader(&f, &mut rec), rec)
    }

    /// `bytes` written to a file named `name` and extracted as audio.
    /// What a scan records of `bytes` as an audio file named `name`.
    pub(super) fn extract_bytes(name: &str, bytes: &[u8]) -> Record {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut rec = Record::default();
        extract(&path, Kind::Audio, &mut rec);
        rec
    }

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/library")
            .join(rel)
    }

    /// Extracts `rel` the way a scan does: kind from the path, a fresh record.
    fn read_fixture(rel: &str) -> Record {
        let path = fixture(rel);
        let (kind, _) = classify(path.as_os_str().as_encoded_bytes());
        let mut rec = Record::new(path.as_os_str().as_encoded_bytes());
        extract(&path, kind, &mut rec);
        assert_eq!(rec.extractor_version, EXTRACTOR_VERSION, "{rel}");
        rec
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn mp3_id3v23() {
        let r = read_fixture("The Testers/Ninety Nine/05 Version Three.mp3");
        assert_eq!(r.error, None);
        assert_eq!(r.title.as_deref(), Some("Version Three"));
        assert_eq!(r.artists, strings(&["The Testers"]));
        assert_eq!(r.album.as_deref(), Some("Ninety Nine"));
        assert_eq!(r.album_artist, None);
        assert_eq!(r.genres, strings(&["Rock"]), "TCON (17) is Rock");
        assert_eq!(r.year, Some(1999));
        assert_eq!((r.track, r.track_total), (Some(5), Some(9)));
        assert_eq!((r.disc, r.disc_total), (Some(1), Some(2)));
        assert_eq!(r.compilation, None);
        assert_eq!(r.has_cover, Some(false));
        assert_eq!(r.sample_rate, Some(22050));
        assert_eq!(r.channels, Some(1));
        assert!(matches!(r.bitrate, Some(30..=40)), "{:?}", r.bitrate);
        assert!(
            matches!(r.duration_ms, Some(950..=1150)),
            "{:?}",
            r.duration_ms
        );
    }

    #[test]
    fn mp3_id3v1_only() {
        let r = read_fixture("The Testers/Ninety Nine/07 Old School.mp3");
        assert_eq!(r.error, None);
        assert_eq!(r.title.as_deref(), Some("Old School"));
        assert_eq!(r.artists, strings(&["The Testers"]));
        assert_eq!(r.album.as_deref(), Some("Ninety Nine"));
        assert_eq!(r.year, Some(1985));
        assert_eq!((r.track, r.track_total), (Some(7), None));
        assert_eq!(r.genres, strings(&["Rock"]), "ID3v1 genre 17");
        assert_eq!(r.has_cover, Some(false));
        assert_eq!(r.sample_rate, Some(22050));
    }

    #[test]
    fn mp3_id3v24_multi_artist_track_of_total_compilation_cover() {
        let r = read_fixture("Various Artists/Shared Stage/03 Duet.mp3");
        assert_eq!(r.error, None);
        assert_eq!(r.title.as_deref(), Some("Duet"));
        assert_eq!(r.artists, strings(&["Alice Example", "Bob Example"]));
        assert_eq!(r.album_artist.as_deref(), Some("Various Artists"));
        assert_eq!(r.album.as_deref(), Some("Shared Stage"));
        assert_eq!(r.genres, strings(&["Pop", "Jazz"]));
        assert_eq!(r.year, Some(2003));
        assert_eq!((r.track, r.track_total), (Some(3), Some(12)));
        assert_eq!((r.disc, r.disc_total), (Some(1), Some(1)));
        assert_eq!(r.compilation, Some(true));
        assert_eq!(r.has_cover, Some(true));
        assert_eq!(r.musicbrainz_track_id.as_deref(), Some(MB_TRACK));
        assert_eq!(r.musicbrainz_album_id.as_deref(), Some(MB_ALBUM));
        assert_eq!(r.channels, Some(1));
    }

    #[test]
    fn flac_non_ascii_cover_and_musicbrainz() {
        let r = read_fixture("Björk/Homogenic/01 Jóga.flac");
        assert_eq!(r.error, None);
        assert_eq!(r.title.as_deref(), Some("Jóga"));
        assert_eq!(r.artists, strings(&["Björk"]));
        assert_eq!(r.album_artist.as_deref(), Some("Björk"));
        assert_eq!(r.album.as_deref(), Some("Homogenic"));
        assert_eq!(r.genres, strings(&["Electronic"]));
        assert_eq!(r.year, Some(1997));
        assert_eq!((r.track, r.track_total), (Some(1), Some(10)));
        assert_eq!((r.disc, r.disc_total), (Some(1), Some(1)));
        assert_eq!(r.compilation, None);
        assert_eq!(r.has_cover, Some(true));
        assert_eq!(r.musicbrainz_track_id.as_deref(), Some(MB_TRACK));
        assert_eq!(r.musicbrainz_album_id.as_deref(), Some(MB_ALBUM));
        assert_eq!(r.duration_ms, Some(1000));
        assert_eq!(r.sample_rate, Some(8000));
        assert_eq!(r.channels, Some(1));
        assert_eq!(r.bit_depth, Some(16));
        assert!(r.bitrate.is_some_and(|b| b > 0));
    }

    #[test]
    fn ogg_vorbis_japanese_multi_artist_slash_track_compilation() {
        let r = read_fixture("日本語/テスト アルバム/02 日本語の歌.ogg");
        assert_eq!(r.error, None);
        assert_eq!(r.title.as_deref(), Some("日本語の歌"));
        assert_eq!(r.artists, strings(&["山田太郎", "Guest Singer"]));
        assert_eq!(r.album.as_deref(), Some("テスト アルバム"));
        assert_eq!(r.album_artist.as_deref(), Some("日本語"));
        assert_eq!(r.genres, strings(&["J-Pop"]));
        assert_eq!(r.year, Some(2010));
        assert_eq!(
            (r.track, r.track_total),
            (Some(3), Some(12)),
            "TRACKNUMBER=3/12"
        );
        assert_eq!((r.disc, r.disc_total), (Some(2), Some(3)), "DISCNUMBER=2/3");
        assert_eq!(r.compilation, Some(true));
        assert_eq!(r.has_cover, Some(false));
        assert_eq!(r.duration_ms, Some(1000));
        assert_eq!(r.sample_rate, Some(22050));
        assert_eq!(r.channels, Some(1));
    }

    #[test]
    fn opus_with_picture_block() {
        let r = read_fixture("Opus Ensemble/Low Bitrate/04 Whisper.opus");
        assert_eq!(r.error, None);
        assert_eq!(r.title.as_deref(), Some("Whisper"));
        assert_eq!(r.artists, strings(&["Opus Ensemble"]));
        assert_eq!(r.genres, strings(&["Ambient"]));
        assert_eq!(r.year, Some(2021));
        assert_eq!((r.track, r.track_total), (Some(4), None));
        assert_eq!(r.has_cover, Some(true));
        assert_eq!(r.sample_rate, Some(48000));
        assert_eq!(r.channels, Some(1));
        assert_eq!(r.duration_ms, Some(1000));
    }

    #[test]
    fn m4a_multi_artist_trkn_cpil_covr() {
        let r = read_fixture("Various Artists/Shared Stage/04 Together.m4a");
        assert_eq!(r.error, None);
        assert_eq!(r.title.as_deref(), Some("Together"));
        assert_eq!(r.artists, strings(&["Alice Example", "Carol Example"]));
        assert_eq!(r.album_artist.as_deref(), Some("Various Artists"));
        assert_eq!(r.album.as_deref(), Some("Shared Stage"));
        assert_eq!(r.genres, strings(&["Pop"]));
        assert_eq!(r.year, Some(2003));
        assert_eq!((r.track, r.track_total), (Some(4), Some(12)));
        assert_eq!((r.disc, r.disc_total), (Some(1), Some(1)));
        assert_eq!(r.compilation, Some(true));
        assert_eq!(r.has_cover, Some(true));
        assert_eq!(r.musicbrainz_track_id.as_deref(), Some(MB_TRACK));
        assert_eq!(r.musicbrainz_album_id.as_deref(), Some(MB_ALBUM));
        assert_eq!(r.sample_rate, Some(22050));
        assert_eq!(r.channels, Some(1));
        assert!(
            matches!(r.duration_ms, Some(950..=1150)),
            "{:?}",
            r.duration_ms
        );
    }

    #[test]
    fn wav_with_id3_chunk() {
        let r = read_fixture("Wave Makers/Raw/01 Plain Wave.wav");
        assert_eq!(r.error, None);
        assert_eq!(r.title.as_deref(), Some("Plain Wave"));
        assert_eq!(r.artists, strings(&["Wave Makers"]));
        assert_eq!(r.album.as_deref(), Some("Raw"));
        assert_eq!(r.year, Some(2015));
        assert_eq!(r.track, Some(1));
        assert_eq!(r.has_cover, Some(false));
        assert_eq!(r.duration_ms, Some(1000));
        assert_eq!(r.bitrate, Some(128), "8000 Hz × 16 bit × 1 channel");
        assert_eq!(r.sample_rate, Some(8000));
        assert_eq!(r.channels, Some(1));
        assert_eq!(r.bit_depth, Some(16));
    }

    #[test]
    fn mp4_video_title_and_audio_track() {
        let r = read_fixture("video/Tiny Clip.mp4");
        assert_eq!(r.error, None);
        assert_eq!(r.title.as_deref(), Some("Tiny Clip"));
        assert!(r.artists.is_empty());
        assert_eq!(r.has_cover, Some(false));
        assert_eq!(r.sample_rate, Some(8000));
        assert_eq!(r.channels, Some(1));
        assert!(
            matches!(r.duration_ms, Some(950..=1200)),
            "{:?}",
            r.duration_ms
        );
    }

    #[test]
    fn broken_files_get_an_error_and_nothing_else() {
        for rel in [
            "broken/truncated.flac",
            "broken/bad-id3-header.mp3",
            "broken/random-bytes.ogg",
        ] {
            let r = read_fixture(rel);
            let error = r.error.clone().unwrap_or_else(|| panic!("{rel}: no error"));
            assert!(
                !error.is_empty() && !error.contains('\n'),
                "{rel}: {error:?}"
            );
            assert_eq!(
                Record {
                    error: None,
                    ..r.clone()
                },
                Record {
                    extractor_version: EXTRACTOR_VERSION,
                    ..Record::new(r.path.clone())
                },
                "{rel}"
            );
        }
    }

    #[test]
    fn missing_file_is_an_error() {
        let mut rec = Record::default();
        extract(&fixture("nowhere/gone.mp3"), Kind::Audio, &mut rec);
        assert!(rec.error.is_some());
    }

    #[test]
    fn other_kinds_are_not_opened() {
        for (rel, kind) in [
            ("images/cover.png", Kind::Image),
            ("playlists/Mix.m3u", Kind::Playlist),
            ("Björk/Homogenic/01 Jóga.flac", Kind::Other),
        ] {
            let mut rec = Record::default();
            extract(&fixture(rel), kind, &mut rec);
            assert_eq!(
                rec,
                Record {
                    extractor_version: EXTRACTOR_VERSION,
                    ..Record::default()
                },
                "{rel}"
            );
        }
    }

    #[test]
    fn an_id3_tag_of_too_many_frames_is_not_read_but_the_stream_is() {
        let song = std::fs::read(fixture("The Testers/Ninety Nine/07 Old School.mp3")).unwrap();
        // The fixture's own tag goes; what follows it is the stream.
        let n = song[6..10]
            .iter()
            .fold(0usize, |n, &b| n << 7 | usize::from(b));
        let stream = &song[10 + n..];
        let dir = tempfile::tempdir().unwrap();
        for (frames, over) in [(MAX_ID3_FRAMES, false), (MAX_ID3_FRAMES + 1, true)] {
            let bodies: Vec<Vec<u8>> = (0..frames)
                .map(|i| format!("\u{3}d{i}\0v").into_bytes())
                .collect();
            let list: Vec<(&[u8; 4], &[u8])> =
                bodies.iter().map(|b| (b"TXXX", b.as_slice())).collect();
            let path = dir.path().join(format!("{frames}.mp3"));
            std::fs::write(&path, [id3v23(&list), stream.to_vec()].concat()).unwrap();
            let mut rec = Record::default();
            extract(&path, Kind::Audio, &mut rec);
            assert!(rec.duration_ms.is_some(), "{frames}: {rec:?}");
            let error = rec.error.unwrap_or_default();
            assert_eq!(
                error.contains("more than 8192 frames"),
                over,
                "{frames}: {error}"
            );
        }
    }

    #[test]
    fn ape_tags_and_id3_chunks_of_too_many_items_are_found() {
        let check = |bytes: &[u8], ty: FileType| {
            let mut f = tempfile::tempfile().unwrap();
            std::io::Write::write_all(&mut f, bytes).unwrap();
            too_many_tag_items(&f, &bytes[..bytes.len().min(READ_BLOCK)], ty)
        };
        // An APEv2 footer (before an ID3v1 tag or not) says how many items the tag holds.
        let footer = |items: u32| {
            let mut f = b"APETAGEX".to_vec();
            for v in [2000u32, 32, items, 0, 0, 0] {
                f.extend(v.to_le_bytes());
            }
            f
        };
        let stream = vec![0u8; 4096];
        for (items, over) in [(8192, false), (8193, true)] {
            let mp3 = [stream.clone(), footer(items)].concat();
            assert_eq!(check(&mp3, FileType::Mpeg).is_some(), over, "{items}");
            let mut id3v1 = b"TAG".to_vec();
            id3v1.resize(128, 0);
            let mp3 = [stream.clone(), footer(items), id3v1].concat();
            assert_eq!(
                check(&mp3, FileType::Mpeg).is_some(),
                over,
                "{items} + ID3v1"
            );
        }
        // A FLAC file's tail is not looked at for an APE tag.
        assert!(check(&[b"fLaC".to_vec(), footer(9000)].concat(), FileType::Flac).is_none());
        // An ID3v2 tag in a WAVE file's `id3 ` chunk.
        for (frames, over) in [(100, false), (MAX_ID3_FRAMES + 1, true)] {
            let body = b"\x03d\0v".to_vec();
            let tag = id3v23(&vec![(b"TXXX", body.as_slice()); frames]);
            let mut chunks = b"fmt \x10\0\0\0".to_vec();
            chunks.extend([1, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x80, 0x3e, 0, 0, 2, 0, 16, 0]);
            chunks.extend(b"data\x04\0\0\0\0\0\0\0");
            chunks.extend(b"id3 ");
            chunks.extend((tag.len() as u32).to_le_bytes());
            chunks.extend(&tag);
            let mut wav = b"RIFF".to_vec();
            wav.extend((chunks.len() as u32 + 4).to_le_bytes());
            wav.extend(b"WAVE");
            wav.extend(chunks);
            assert_eq!(check(&wav, FileType::Wav).is_some(), over, "{frames}");
        }
    }

    #[test]
    fn an_ogg_file_whose_last_page_is_cut_takes_its_length_from_the_last_whole_page() {
        let song = std::fs::read(fixture("日本語/テスト アルバム/02 日本語の歌.ogg")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole.ogg");
        std::fs::write(&whole, &song).unwrap();
        let mut rec = Record::default();
        extract(&whole, Kind::Audio, &mut rec);
        assert_eq!(rec.duration_ms, Some(1000), "{rec:?}");
        // The last page (granule 22,050) cut in half: the page before ends at 22,016 samples.
        let cut = dir.path().join("cut.ogg");
        std::fs::write(&cut, &song[..song.len() - 26]).unwrap();
        let mut rec = Record::default();
        extract(&cut, Kind::Audio, &mut rec);
        assert_eq!(rec.duration_ms, Some(998), "{rec:?}");
        assert_eq!(rec.error, None);
    }

    #[test]
    fn tag_fields_are_bounded_whatever_the_file_holds() {
        let rec = bounded(Record {
            title: Some("é".repeat(MAX_TEXT)),
            artists: (0..200_000).map(|i| format!("artist {i}")).collect(),
            genres: vec!["x".repeat(MAX_LIST_BYTES + 1)],
            ..Record::default()
        });
        let title = rec.title.unwrap();
        assert!(title.len() <= MAX_TEXT && title.len() > MAX_TEXT - 2);
        assert_eq!(rec.artists.len(), MAX_VALUES);
        assert_eq!(
            rec.artists[MAX_VALUES - 1],
            format!("artist {}", MAX_VALUES - 1)
        );
        // One value over the list's bytes: cut to the text limit, which fits.
        assert_eq!(rec.genres, ["x".repeat(MAX_TEXT)]);
        let mut whole = Record::new(b"/m/a.flac".to_vec());
        whole.artists = vec!["A".repeat(MAX_TEXT); MAX_VALUES];
        assert!(bounded(whole).artists.len() == MAX_LIST_BYTES / MAX_TEXT);
    }

    #[test]
    fn unsupported_formats_get_no_tags_and_no_error() {
        let dir = tempfile::tempdir().unwrap();
        // Bytes that could pass for an MPEG frame sync must not be read as MP3.
        let junk: Vec<u8> = (0..4096u32)
            .map(|i| [0xFF, 0xFB, 0x90, 0x00][i as usize % 4])
            .collect();
        for name in ["a.mid", "a.ac3"] {
            let path = dir.path().join(name);
            std::fs::write(&path, &junk).unwrap();
            let (kind, _) = classify(path.as_os_str().as_encoded_bytes());
            assert!(matches!(kind, Kind::Audio | Kind::Video), "{name}");
            let mut rec = Record::default();
            extract(&path, kind, &mut rec);
            assert_eq!(rec.error, None, "{name}");
            assert_eq!(rec.title, None, "{name}");
            assert_eq!(rec.duration_ms, None, "{name}");
            assert_eq!(rec.extractor_version, EXTRACTOR_VERSION);
        }
    }

    #[test]
    fn formats_read_here_are_told_by_content_before_name() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let (kind, _) = classify(path.as_os_str().as_encoded_bytes());
            let mut rec = Record::default();
            extract(&path, kind, &mut rec);
            rec
        };
        // Junk named as a format of ours: an error that says what it is not.
        let junk = vec![0x5Au8; 512];
        let rec = write("junk.mkv", &junk);
        assert_eq!(
            rec.error.as_deref(),
            Some("not a Matroska file: no EBML header at its start")
        );
        let rec = write("junk.avi", &junk);
        assert!(rec.error.unwrap_or_default().starts_with("not an AVI file"));
        // Matroska named .mp4 and .avi is read as Matroska: an EBML header and a segment with
        // an info element of 2.5 s (timestamp scale left at its default of 1 ms).
        let mut mkv = vec![0x1A, 0x45, 0xDF, 0xA3, 0x80];
        let info = [
            &[0x15, 0x49, 0xA9, 0x66, 0x8B, 0x44, 0x89, 0x88][..],
            &2500f64.to_be_bytes(),
        ]
        .concat();
        mkv.extend([0x18, 0x53, 0x80, 0x67, 0x80 | info.len() as u8]);
        mkv.extend(&info);
        for name in ["clip.mp4", "clip.avi", "clip.mkv"] {
            let rec = write(name, &mkv);
            assert_eq!((rec.error, rec.duration_ms), (None, Some(2500)), "{name}");
        }
        // And a FLAC file named .mkv is read by lofty.
        let flac = std::fs::read(fixture("Björk/Homogenic/01 Jóga.flac")).unwrap();
        let rec = write("song.mka", &flac);
        assert_eq!((rec.error, rec.title.as_deref()), (None, Some("Jóga")));
    }

    #[test]
    fn content_decides_over_a_wrong_extension() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("really-opus.ogg");
        std::fs::copy(fixture("Opus Ensemble/Low Bitrate/04 Whisper.opus"), &path).unwrap();
        let mut rec = Record::default();
        extract(&path, Kind::Audio, &mut rec);
        assert_eq!(rec.error, None);
        assert_eq!(rec.title.as_deref(), Some("Whisper"));
        assert_eq!(rec.sample_rate, Some(48000));
    }

    #[test]
    fn non_utf8_file_names_are_read() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9 \xff\xfe.flac");
        let path = dir.path().join(name);
        std::fs::copy(fixture("Björk/Homogenic/01 Jóga.flac"), &path).unwrap();
        let (kind, mime) = classify(path.as_os_str().as_bytes());
        assert_eq!((kind, mime), (Kind::Audio, Some("audio/flac")));
        let mut rec = Record::new(path.as_os_str().as_bytes());
        extract(&path, kind, &mut rec);
        assert_eq!(rec.error, None);
        assert_eq!(rec.title.as_deref(), Some("Jóga"));
        assert_eq!(rec.has_cover, Some(true));
        assert_eq!(rec.path, path.as_os_str().as_bytes());
    }

    #[test]
    fn stale_fields_are_reset_and_caller_fields_kept() {
        let mut rec = Record {
            mime: Some("audio/flac".into()),
            size: 42,
            title: Some("stale".into()),
            artists: strings(&["stale"]),
            track: Some(99),
            has_cover: Some(true),
            error: Some("old error".into()),
            extractor_version: 0,
            ..Record::new(b"/x".to_vec())
        };
        extract(&fixture("broken/truncated.flac"), Kind::Audio, &mut rec);
        assert_eq!(rec.title, None);
        assert!(rec.artists.is_empty());
        assert_eq!(rec.track, None);
        assert_eq!(rec.has_cover, None);
        assert!(rec.error.as_deref().is_some_and(|e| e != "old error"));
        assert_eq!((rec.size, rec.mime.as_deref()), (42, Some("audio/flac")));
        assert_eq!(rec.path, b"/x");
        extract(&fixture("images/cover.png"), Kind::Image, &mut rec);
        assert_eq!(rec.error, None);
    }

    /// The FLAC fixture with its picture block replaced by one holding `picture_len` bytes;
    /// also returns the length of its Vorbis comment block.
    fn flac_with_big_picture(picture_len: usize) -> (Vec<u8>, usize) {
        let src = std::fs::read(fixture("Björk/Homogenic/01 Jóga.flac")).unwrap();
        assert_eq!(&src[..4], b"fLaC");
        let mut blocks = Vec::new();
        let mut at = 4;
        loop {
            let (ty, last) = (src[at] & 0x7F, src[at] & 0x80 != 0);
            let len = u32::from_be_bytes([0, src[at + 1], src[at + 2], src[at + 3]]) as usize;
            blocks.push((ty, src[at + 4..at + 4 + len].to_vec()));
            at += 4 + len;
            if last {
                break;
            }
        }
        let comments_len = blocks.iter().find(|b| b.0 == 4).unwrap().1.len();
        let mut pic = Vec::new();
        for field in [3u32, 9] {
            pic.extend_from_slice(&field.to_be_bytes());
        }
        pic.extend_from_slice(b"image/png");
        for field in [0u32, 16, 16, 24, 0, picture_len as u32] {
            pic.extend_from_slice(&field.to_be_bytes());
        }
        pic.resize(pic.len() + picture_len, 0xAB);
        blocks.retain(|b| b.0 != 6);
        blocks.push((6, pic));
        let mut out = b"fLaC".to_vec();
        let n = blocks.len();
        for (i, (ty, body)) in blocks.into_iter().enumerate() {
            let last = if i + 1 == n { 0x80 } else { 0 };
            out.push(ty | last);
            out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(&body);
        }
        out.extend_from_slice(&src[at..]);
        (out, comments_len)
    }

    #[test]
    fn a_flac_whose_comments_are_damaged_keeps_its_stream_properties() {
        let src = std::fs::read(fixture("Björk/Homogenic/01 Jóga.flac")).unwrap();
        let mut bytes = src.clone();
        // Find the Vorbis comment block and give its first comment an impossible length.
        let mut at = 4;
        loop {
            let (ty, last) = (bytes[at] & 0x7F, bytes[at] & 0x80 != 0);
            let len = u32::from_be_bytes([0, bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
            if ty == 4 {
                let body = at + 4;
                let vendor = u32::from_le_bytes(bytes[body..body + 4].try_into().unwrap());
                let first = body + 4 + vendor as usize + 4;
                bytes[first..first + 4].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
                break;
            }
            assert!(!last, "the fixture has a Vorbis comment block");
            at += 4 + len as usize;
        }
        let rec = extract_bytes("damaged comments.flac", &bytes);
        let error = rec.error.as_deref().unwrap_or("");
        assert!(error.contains("stream properties were"), "{error}");
        assert_eq!(rec.title, None);
        let mut intact = Record::default();
        extract(
            &fixture("Björk/Homogenic/01 Jóga.flac"),
            Kind::Audio,
            &mut intact,
        );
        assert_eq!(intact.error, None);
        assert!(intact.duration_ms.is_some());
        assert_eq!(
            (rec.duration_ms, rec.sample_rate, rec.channels),
            (intact.duration_ms, intact.sample_rate, intact.channels)
        );
    }

    #[test]
    fn an_mp3_with_one_bad_frame_keeps_its_other_tags() {
        let src = std::fs::read(fixture("The Testers/Ninety Nine/07 Old School.mp3")).unwrap();
        // The MPEG stream without the fixture's own ID3v2 tag, if it has one.
        let audio = if &src[..3] == b"ID3" {
            let size = src[6..10]
                .iter()
                .fold(0usize, |n, &b| (n << 7) | usize::from(b & 0x7F));
            &src[10 + size..]
        } else {
            &src[..]
        };
        // A year that is not a number, as in mutagen's bad-TYER-frame.mp3.
        let mut bytes = id3v23(&[(b"TIT2", b"\x00Kept title"), (b"TYER", b"\x00\xfe\xff")]);
        bytes.extend_from_slice(audio);
        let rec = extract_bytes("bad frame.mp3", &bytes);
        let error = rec.error.as_deref().unwrap_or("");
        assert!(
            error.contains("TDRC") && error.contains("the rest was read"),
            "{error}"
        );
        assert_eq!(rec.title.as_deref(), Some("Kept title"));
        assert!(rec.duration_ms.is_some());
    }

    #[test]
    fn an_mp3_without_audio_frames_keeps_its_tags() {
        // A tag and no MPEG stream, as in tinytag's test samples: the tag is all there is.
        let mut bytes = id3v23(&[(b"TIT2", b"\x00Only a tag"), (b"TPE1", b"\x00Somebody")]);
        bytes.extend(std::iter::repeat_n(0x11, 300));
        let rec = extract_bytes("tag only.mp3", &bytes);
        let error = rec.error.as_deref().unwrap_or("");
        assert!(
            error.contains("tags read, stream properties not"),
            "{error}"
        );
        assert_eq!(rec.title.as_deref(), Some("Only a tag"));
        assert_eq!(rec.artists, ["Somebody"]);
        assert_eq!(rec.duration_ms, None);
    }

    #[test]
    fn a_video_without_a_sound_track_is_not_an_error() {
        fn atom(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
            let mut a = (8 + body.len() as u32).to_be_bytes().to_vec();
            a.extend_from_slice(kind);
            a.extend_from_slice(body);
            a
        }
        // A movie of 4.321 s whose one track is video.
        let mut mvhd = vec![0u8; 12];
        mvhd.extend(1000u32.to_be_bytes());
        mvhd.extend(4321u32.to_be_bytes());
        mvhd.extend([0u8; 80]);
        let mut hdlr = vec![0u8; 8];
        hdlr.extend(b"vide");
        hdlr.extend([0u8; 13]);
        let trak = atom(b"trak", &atom(b"mdia", &atom(b"hdlr", &hdlr)));
        let mut moov = atom(b"mvhd", &mvhd);
        moov.extend(trak);
        let mut bytes = atom(b"ftyp", b"isom\0\0\0\0isom");
        bytes.extend(atom(b"moov", &moov));

        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join("timelapse.mp4");
        std::fs::write(&video, &bytes).unwrap();
        let mut rec = Record::default();
        extract(&video, Kind::Video, &mut rec);
        assert_eq!(rec.error, None);
        assert_eq!(rec.duration_ms, Some(4321));
        // QuickTime, read as the MP4 it is.
        let movie = dir.path().join("timelapse.MOV");
        std::fs::write(&movie, &bytes).unwrap();
        let mut rec = Record::default();
        extract(&movie, Kind::Video, &mut rec);
        assert_eq!((rec.error, rec.duration_ms), (None, Some(4321)));

        // Audio with no audio track is another matter.
        let audio = dir.path().join("song.m4a");
        std::fs::write(&audio, &bytes).unwrap();
        let mut rec = Record::default();
        extract(&audio, Kind::Audio, &mut rec);
        let error = rec.error.unwrap_or_default();
        assert!(error.contains("no audio tracks"), "{error}");
    }

    #[test]
    fn an_mpeg_stream_that_is_not_found_is_not_searched_for_again() {
        // Noise named .mp3: the reader searches all of it for a frame and fails. With no ID3v2
        // tag at its start, a tags-only read would only search it again.
        let dir = tempfile::tempdir().unwrap();
        let noise: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut tagged = b"ID3\x03\x00\x00\x00\x00\x00\x10".to_vec();
        tagged.extend([0u8; 16]);
        tagged.extend(&noise);
        // An ID3v1 tag: "TAG", then title, artist and album of 30 bytes each, year, comment.
        let mut v1 = noise.clone();
        let mut tag = b"TAG".to_vec();
        for field in [&b"Tail title"[..], b"Tail artist", b"Tail album"] {
            let mut f = field.to_vec();
            f.resize(30, 0);
            tag.extend(f);
        }
        tag.extend(b"1999");
        tag.resize(127, 0);
        tag.push(255);
        v1.extend(tag);
        let cases = [
            ("noise.mp3", &noise, 1),
            ("tagged noise.mp3", &tagged, 2),
            ("noise with id3v1.mp3", &v1, 2),
        ];
        for (name, bytes, reads) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let opens = Cell::new(0);
            let open = || {
                opens.set(opens.get() + 1);
                File::open(&path)
            };
            let mut rec = Record::default();
            READS.with(|n| n.set(0));
            extract_with(&path, Kind::Audio, &mut rec, &open);
            assert!(rec.error.is_some(), "{name}");
            assert_eq!(READS.with(Cell::get), reads, "{name}: {:?}", rec.error);
            assert_eq!(opens.get(), 1, "{name}: every read shares one open");
        }
        let mut rec = Record::default();
        extract(
            &dir.path().join("noise with id3v1.mp3"),
            Kind::Audio,
            &mut rec,
        );
        assert_eq!(rec.title.as_deref(), Some("Tail title"));
        assert_eq!(rec.year, Some(1999));
    }

    #[test]
    fn which_older_records_are_current() {
        let current = |v, err, p: &str| is_current(v, err, p.as_bytes());
        assert!(current(EXTRACTOR_VERSION, true, "/a/b.wma"));
        assert!(current(1, false, "/a/b.flac"));
        assert!(!current(0, false, "/a/b.flac"));
        assert!(!current(1, true, "/a/b.flac"));
        assert!(!current(2, false, "/a/b.WMA"));
        assert!(!current(1, false, "/a/b.asf"));
        assert!(current(1, false, "/a/wma"));
        assert!(current(2, false, "/a/b.wmav"));
        assert!(!current(2, false, "/a/b.mp1"));
        assert!(!current(1, false, "/a/b.AFC"));
        assert!(!current(4, false, "/a/b.dsf"));
        assert!(current(4, false, "/a/b.ac3"));
        // Version 9 reads DSDIFF, TrueAudio, more MP4 names and Opus rates; MP4 waits for
        // --force.
        assert!(!current(8, false, "/a/b.dff"));
        assert!(!current(8, false, "/a/b.tta"));
        assert!(!current(8, false, "/a/b.3g2"));
        assert!(!current(8, false, "/a/b.opus"));
        assert!(!current(8, false, "/a/b.webm"));
        assert!(current(8, false, "/a/b.m4a"));
        assert!(current(8, false, "/a/b.mp3"));
        assert!(!current(8, true, "/a/b.mp3"));
        // Version 10 reports Ogg and Matroska files cut short: clean records wait for --force.
        assert!(current(9, false, "/a/b.ogg"));
        assert!(current(9, false, "/a/b.mkv"));
        assert!(!current(9, true, "/a/b.ogg"));
    }

    #[test]
    fn oversized_picture_is_dropped_but_counted_as_a_cover() {
        let (bytes, comments_len) = flac_with_big_picture(4000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big cover.flac");
        std::fs::write(&path, bytes).unwrap();
        // On a fresh thread, a limit above every other item but below the picture.
        std::thread::spawn(move || {
            configure(comments_len + 1000);
            let with_pictures = ParseOptions::new().read_cover_art(true);
            let Err(first) = read_file(
                &File::open(&path).expect("open"),
                FileType::Flac,
                with_pictures,
            ) else {
                panic!("the picture should exceed the limit");
            };
            assert!(is_allocation_error(&first), "{}", describe(&first));
            let mut rec = Record::default();
            extract(&path, Kind::Audio, &mut rec);
            assert_eq!(rec.error, None);
            assert_eq!(rec.has_cover, Some(true));
            assert_eq!(rec.title.as_deref(), Some("Jóga"));
            // With the normal limit the same file reads in one pass.
            init_thread();
            let mut rec = Record::default();
            extract(&path, Kind::Audio, &mut rec);
            assert_eq!((rec.error, rec.has_cover), (None, Some(true)));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn an_item_over_the_limit_is_an_error_not_an_allocation() {
        std::thread::spawn(|| {
            configure(64);
            let mut rec = Record::default();
            extract(
                &fixture("Björk/Homogenic/01 Jóga.flac"),
                Kind::Audio,
                &mut rec,
            );
            let error = rec
                .error
                .expect("the Vorbis comment block exceeds 64 bytes");
            assert!(error.contains("exceed"), "{error}");
            assert_eq!(rec.title, None);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn allocation_limit_is_per_thread_and_applied_on_first_use() {
        std::thread::spawn(|| {
            assert!(!CONFIGURED.with(Cell::get));
            let mut rec = Record::default();
            extract(
                &fixture("Björk/Homogenic/01 Jóga.flac"),
                Kind::Audio,
                &mut rec,
            );
            assert!(CONFIGURED.with(Cell::get));
            assert_eq!(rec.error, None);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn panics_become_errors_and_the_flag_is_restored() {
        quiet_panics();
        quiet_panics();
        let r = isolated(|| panic!("boom {}", 7));
        assert_eq!(r, Err("tag reader panicked: boom 7".to_owned()));
        let r = isolated(|| std::panic::panic_any(5u8));
        assert_eq!(r, Err("tag reader panicked: unknown panic".to_owned()));
        assert!(!IN_EXTRACTOR.with(Cell::get));
        assert_eq!(isolated(|| Ok(None)), Ok(None));
        assert!(!IN_EXTRACTOR.with(Cell::get));
    }

    #[test]
    fn field_parsers() {
        assert_eq!(number_pair(Some("3/12"), None), (Some(3), Some(12)));
        assert_eq!(number_pair(Some(" 03 / 12 "), None), (Some(3), Some(12)));
        assert_eq!(number_pair(Some("3/12"), Some("13")), (Some(3), Some(13)));
        assert_eq!(number_pair(Some("/12"), None), (None, Some(12)));
        assert_eq!(number_pair(Some("x"), Some("y")), (None, None));
        assert_eq!(number_pair(None, Some("10")), (None, Some(10)));
        assert_eq!(number_pair(Some("99999999999"), None), (None, None));
        assert_eq!(year("1997-09-22"), Some(1997));
        assert_eq!(year(" 2004"), Some(2004));
        assert_eq!(year("2004.06.03"), Some(2004));
        assert_eq!(year("97"), None);
        assert_eq!(year("0000"), None);
        assert_eq!(year("日本語日本語"), None);
        assert_eq!(genre_name("17"), "Rock");
        assert_eq!(genre_name("(17)"), "Rock");
        assert_eq!(genre_name("(17)Hard Rock"), "Hard Rock");
        assert_eq!(genre_name("(RX)"), "Remix");
        assert_eq!(genre_name("(999)"), "(999)");
        assert_eq!(genre_name("2001"), "2001");
        assert_eq!(genre_name("Jazz"), "Jazz");
        // Winamp's names, not lofty's words for the same numbers.
        assert_eq!(genre_name("1"), "Classic Rock");
        assert_eq!(genre_name("(133)"), "Afro-Punk");
        assert_eq!(genre_name("Classic rock"), "Classic Rock");
        assert_eq!(genre_name("Jazz & Funk"), "Jazz+Funk");
        assert_eq!(GENRES.len(), lofty::id3::v1::GENRES.len());
        assert_eq!(flag("1"), Some(true));
        assert_eq!(flag("TRUE"), Some(true));
        assert_eq!(flag("0"), Some(false));
        assert_eq!(flag("maybe"), None);
        assert_eq!(clean(" a\0\0"), Some("a".to_owned()));
        assert_eq!(clean("\0 "), None);
        let long = one_line(&format!("a\nb{}", "é".repeat(500)));
        assert!(long.starts_with("a b") && !long.contains('\n'));
        assert!(long.len() <= MAX_ERROR_LEN + '…'.len_utf8());
        assert_eq!(one_line(" \n "), "unreadable");
    }

    /// SplitMix64: a small deterministic generator for the mutation test.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
        fn byte(&mut self) -> u8 {
            self.next() as u8
        }
    }

    /// One random damage to `data`: flipped bytes, an overwritten range, a cut, a duplicated
    /// range, a removed range, or a size field set to a huge value.
    fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
        let len = data.len();
        match rng.below(6) {
            0 => {
                for _ in 0..=rng.below(8) {
                    let i = rng.below(len);
                    data[i] ^= 1 << rng.below(8);
                }
            }
            1 => {
                let at = rng.below(len);
                let n = rng.below(64).min(len - at);
                for b in &mut data[at..at + n] {
                    *b = rng.byte();
                }
            }
            2 => data.truncate(rng.below(len)),
            3 => {
                let at = rng.below(len);
                let n = rng.below(256).min(len - at);
                let copy = data[at..at + n].to_vec();
                let to = rng.below(len);
                data.splice(to..to, copy);
            }
            4 => {
                let at = rng.below(len);
                let n = rng.below(128).min(len - at);
                data.drain(at..at + n);
            }
            _ => {
                let at = rng.below(len.saturating_sub(4));
                let huge = [[0xFF; 4], [0x7F; 4], [0x80, 0, 0, 0], [0, 0xFF, 0xFF, 0xF0]];
                let end = (at + 4).min(len);
                data[at..end].copy_from_slice(&huge[rng.below(4)][..end - at]);
            }
        }
    }

    #[test]
    fn mutated_fixtures_never_panic_or_hang() {
        const PER_FILE: usize = 50;
        let sources = [
            "The Testers/Ninety Nine/05 Version Three.mp3",
            "The Testers/Ninety Nine/07 Old School.mp3",
            "Various Artists/Shared Stage/03 Duet.mp3",
            "Björk/Homogenic/01 Jóga.flac",
            "日本語/テスト アルバム/02 日本語の歌.ogg",
            "Opus Ensemble/Low Bitrate/04 Whisper.opus",
            "Various Artists/Shared Stage/04 Together.m4a",
            "Wave Makers/Raw/01 Plain Wave.wav",
            "video/Tiny Clip.mp4",
        ];
        let dir = tempfile::tempdir().unwrap();
        let dir_path = dir.path().to_path_buf();
        let (tx, rx) = mpsc::channel::<(String, Record)>();
        // The worker reports each file before and after extraction, so a hang names the file.
        let worker = std::thread::spawn(move || {
            let mut rng = Rng(0x6d65_6469_6164_6221);
            for (n, rel) in sources.iter().enumerate() {
                let original = std::fs::read(fixture(rel)).unwrap();
                let ext = Path::new(rel).extension().unwrap().to_str().unwrap();
                for i in 0..PER_FILE {
                    let mut data = original.clone();
                    for _ in 0..=rng.below(3) {
                        if !data.is_empty() {
                            mutate(&mut rng, &mut data);
                        }
                    }
                    let path = dir_path.join(format!("m{n}-{i}.{ext}"));
                    std::fs::write(&path, &data).unwrap();
                    let (kind, _) = classify(path.as_os_str().as_encoded_bytes());
                    let label = format!("{rel} mutation {i} ({})", path.display());
                    let mut rec = Record::default();
                    extract(&path, kind, &mut rec);
                    if tx.send((label, rec)).is_err() {
                        return;
                    }
                    std::fs::remove_file(&path).unwrap();
                }
            }
        });
        let mut seen = 0;
        let mut errors = 0;
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok((label, rec)) => {
                    seen += 1;
                    assert_eq!(rec.extractor_version, EXTRACTOR_VERSION, "{label}");
                    if let Some(e) = &rec.error {
                        errors += 1;
                        assert!(!e.is_empty() && !e.contains('\n'), "{label}: {e:?}");
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("extract hung after {seen} files")
                }
            }
        }
        worker.join().expect("no panic escapes extract");
        assert_eq!(seen, sources.len() * PER_FILE);
        // The damage is real: some copies must fail to parse.
        assert!(errors > 0);
    }
}
