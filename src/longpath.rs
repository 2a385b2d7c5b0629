//! Paths longer than `PATH_MAX`. A tree can nest deeper than the kernel accepts in one path
//! (4096 bytes): `find` walks it, and so must a scan, though `open` of the whole path fails with
//! `ENAMETOOLONG`.

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{AtFlags, Mode, OFlags, Statx, StatxFlags};

/// Longest path handed to the kernel at once when [`open`] splits one: under `PATH_MAX`
/// (4096, counting the NUL).
const PATH_PIECE: usize = 4000;

/// Opens `path` as `openat(CWD, path, flags)` does, but also when it is longer than `PATH_MAX`:
/// the leading directories are opened a piece at a time, each relative to the one before, with
/// `O_PATH`. Symlinks resolve as in one whole-path lookup: `flags` applies to the last component
/// only.
pub(crate) fn open(path: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
    use rustix::io::Errno;
    let mut dir: Option<OwnedFd> = None;
    let mut rest = path;
    loop {
        let at = dir.as_ref().map_or(rustix::fs::CWD, |d| d.as_fd());
        if rest.len() < PATH_PIECE {
            return rustix::fs::openat(at, rest, flags, Mode::empty());
        }
        // Split at the last '/' of the piece: a name is at most 255 bytes, so there is one.
        let cut = rest[..PATH_PIECE]
            .iter()
            .rposition(|&b| b == b'/')
            .filter(|&i| i > 0)
            .ok_or(Errno::NAMETOOLONG)?;
        let through = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        dir = Some(rustix::fs::openat(
            at,
            &rest[..cut],
            through,
            Mode::empty(),
        )?);
        rest = &rest[cut..];
        while let [b'/', tail @ ..] = rest {
            rest = tail;
        }
        if rest.is_empty() {
            // `path` named a directory and ended in '/'.
            rest = b".";
        }
    }
}

/// `statx` of `path` (following symlinks) for the fields in `mask`, at any length.
pub(crate) fn statx(path: &[u8], mask: StatxFlags) -> rustix::io::Result<Statx> {
    match rustix::fs::statx(rustix::fs::CWD, path, AtFlags::empty(), mask) {
        Err(rustix::io::Errno::NAMETOOLONG) => {
            let fd = open(path, OFlags::PATH | OFlags::CLOEXEC)?;
            rustix::fs::statx(&fd, c"", AtFlags::EMPTY_PATH, mask)
        }
        other => other,
    }
}
