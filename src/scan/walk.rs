//! The parallel directory walk: `getdents64` through `rustix::fs::Dir` and one `statx` per entry
//! relative to the directory's fd, one rayon task per directory (work-stealing across
//! `--threads`). No recursion on the stack, so deep trees cannot overflow it.
//!
//! Policy (documented in `docs/SCAN.md`):
//! * only regular files are reported; FIFOs, sockets and devices are skipped without being
//!   opened;
//! * symlinks are skipped unless `follow_symlinks`; then directory loops are caught by
//!   (dev, inode) of the ancestors and dangling links are reported;
//! * hidden entries (names starting with `.`) are skipped unless `hidden`;
//! * excluded names (globs) are skipped with their subtree.

use std::ffi::CStr;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use globset::GlobSet;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, StatxFlags};

/// What the walk learns about a regular file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the Unix epoch.
    pub mtime_ns: i64,
    /// Inode number.
    pub inode: u64,
}

/// Something the walk could not do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalkProblem {
    /// The path involved.
    pub path: Vec<u8>,
    /// What went wrong.
    pub message: String,
    /// A directory could not be read: what lies below it is unknown (not absent).
    pub subtree: bool,
}

/// Receives the walk's findings, from many threads at once.
pub trait Visitor: Sync {
    /// State kept while one directory is read (e.g. results to hand on in one piece).
    type Local: Default;
    /// A regular file under root number `root`; `at` opens it without resolving `path` again.
    fn file(
        &self,
        local: &mut Self::Local,
        root: usize,
        path: &[u8],
        stat: &FileStat,
        at: FileAt<'_>,
    );
    /// A problem; the walk goes on.
    fn problem(&self, problem: WalkProblem);
    /// A directory was read completely.
    fn dir_done(&self, _local: &mut Self::Local) {}
}

/// How to walk.
#[derive(Clone, Debug, Default)]
pub struct WalkOptions {
    /// Follow symbolic links (loops are detected).
    pub follow_symlinks: bool,
    /// Include names starting with `.`.
    pub hidden: bool,
    /// Names (or, for patterns with `/`, full paths) to skip with their subtrees.
    pub excludes: GlobSet,
}

/// Ancestors of a directory, for loop detection when following symlinks.
struct Ancestor {
    dev: u64,
    ino: u64,
    parent: Option<Arc<Ancestor>>,
}

fn is_loop(chain: &Option<Arc<Ancestor>>, dev: u64, ino: u64) -> bool {
    let mut cur = chain.as_deref();
    while let Some(a) = cur {
        if a.dev == dev && a.ino == ino {
            return true;
        }
        cur = a.parent.as_deref();
    }
    false
}

const STATX_MASK: StatxFlags = StatxFlags::TYPE
    .union(StatxFlags::SIZE)
    .union(StatxFlags::MTIME)
    .union(StatxFlags::INO);

fn dev_of(st: &rustix::fs::Statx) -> u64 {
    (u64::from(st.stx_dev_major) << 32) | u64::from(st.stx_dev_minor)
}

/// Where a file is: its directory, held open by the walk, and its name in it.
#[derive(Clone, Copy, Debug)]
pub struct FileAt<'a> {
    /// The directory.
    pub dir: std::os::fd::BorrowedFd<'a>,
    /// The file's name in it.
    pub name: &'a CStr,
}

fn file_stat(st: &rustix::fs::Statx) -> FileStat {
    FileStat {
        size: st.stx_size,
        mtime_ns: st
            .stx_mtime
            .tv_sec
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(st.stx_mtime.tv_nsec)),
        inode: st.stx_ino,
    }
}

fn os_message(e: rustix::io::Errno) -> String {
    std::io::Error::from(e).to_string()
}

/// Walks every root (absolute paths of directories) on `pool`, calling `visitor` for each
/// regular file. Returns when the whole walk is done.
pub fn walk<V: Visitor>(
    pool: &rayon::ThreadPool,
    roots: &[Vec<u8>],
    opts: &WalkOptions,
    visitor: &V,
) {
    pool.scope(|scope| {
        for (root_idx, root) in roots.iter().enumerate() {
            let root = root.clone();
            scope.spawn(move |scope| {
                let chain = if opts.follow_symlinks {
                    rustix::fs::statx(
                        rustix::fs::CWD,
                        root.as_slice(),
                        AtFlags::empty(),
                        STATX_MASK,
                    )
                    .ok()
                    .map(|st| {
                        Arc::new(Ancestor {
                            dev: dev_of(&st),
                            ino: st.stx_ino,
                            parent: None,
                        })
                    })
                } else {
                    None
                };
                walk_dir(scope, root_idx, root, chain, opts, visitor);
            });
        }
    });
}

fn excluded(opts: &WalkOptions, name: &[u8], path: &[u8]) -> bool {
    if opts.excludes.is_empty() {
        return false;
    }
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::OsStr::from_bytes(name);
    let path = std::ffi::OsStr::from_bytes(path);
    opts.excludes.is_match(name) || opts.excludes.is_match(path)
}

fn walk_dir<'s, V: Visitor>(
    scope: &rayon::Scope<'s>,
    root: usize,
    dir: Vec<u8>,
    chain: Option<Arc<Ancestor>>,
    opts: &'s WalkOptions,
    visitor: &'s V,
) {
    let problem = |path: &[u8], e: rustix::io::Errno, subtree: bool| {
        visitor.problem(WalkProblem {
            path: path.to_vec(),
            message: os_message(e),
            subtree,
        });
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOCTTY;
    let flags = if opts.follow_symlinks {
        flags
    } else {
        flags | OFlags::NOFOLLOW
    };
    let fd: OwnedFd =
        match rustix::fs::openat(rustix::fs::CWD, dir.as_slice(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) => return problem(&dir, e, true),
        };
    let mut entries = match Dir::read_from(&fd) {
        Ok(d) => d,
        Err(e) => return problem(&dir, e, true),
    };
    let mut path = dir.clone();
    if path.last() != Some(&b'/') {
        path.push(b'/');
    }
    let base = path.len();
    let mut local = V::Local::default();
    while let Some(entry) = entries.read() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                // The rest of this directory is unknown.
                problem(&dir, e, true);
                break;
            }
        };
        let cname: &CStr = entry.file_name();
        let name = cname.to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        if !opts.hidden && name.first() == Some(&b'.') {
            continue;
        }
        path.truncate(base);
        path.extend_from_slice(name);
        if excluded(opts, name, &path) {
            continue;
        }
        let mut ty = entry.file_type();
        let follow = ty == FileType::Symlink && opts.follow_symlinks;
        let need_stat = ty == FileType::RegularFile || ty == FileType::Unknown || follow;
        if !need_stat {
            if ty == FileType::Directory {
                spawn_dir(scope, root, path.clone(), None, &chain, opts, visitor);
            }
            // Symlinks (not followed), FIFOs, sockets, devices: skipped unopened.
            continue;
        }
        let at = if follow {
            AtFlags::empty()
        } else {
            AtFlags::SYMLINK_NOFOLLOW
        };
        let st = match rustix::fs::statx(&fd, name, at, STATX_MASK) {
            Ok(st) => st,
            Err(e) => {
                let dangling = follow && e == rustix::io::Errno::NOENT;
                visitor.problem(WalkProblem {
                    path: path.clone(),
                    message: if dangling {
                        "dangling symbolic link".to_owned()
                    } else {
                        os_message(e)
                    },
                    subtree: false,
                });
                continue;
            }
        };
        ty = FileType::from_raw_mode(u32::from(st.stx_mode));
        match ty {
            FileType::RegularFile => {
                let at = FileAt {
                    dir: std::os::fd::AsFd::as_fd(&fd),
                    name: cname,
                };
                visitor.file(&mut local, root, &path, &file_stat(&st), at)
            }
            FileType::Directory => {
                spawn_dir(scope, root, path.clone(), Some(&st), &chain, opts, visitor);
            }
            _ => {}
        }
    }
    visitor.dir_done(&mut local);
}

fn spawn_dir<'s, V: Visitor>(
    scope: &rayon::Scope<'s>,
    root: usize,
    path: Vec<u8>,
    st: Option<&rustix::fs::Statx>,
    chain: &Option<Arc<Ancestor>>,
    opts: &'s WalkOptions,
    visitor: &'s V,
) {
    let child_chain = if opts.follow_symlinks {
        let st = match st {
            Some(st) => *st,
            None => match rustix::fs::statx(
                rustix::fs::CWD,
                path.as_slice(),
                AtFlags::empty(),
                STATX_MASK,
            ) {
                Ok(st) => st,
                Err(e) => {
                    visitor.problem(WalkProblem {
                        path,
                        message: os_message(e),
                        subtree: true,
                    });
                    return;
                }
            },
        };
        let (dev, ino) = (dev_of(&st), st.stx_ino);
        if is_loop(chain, dev, ino) {
            visitor.problem(WalkProblem {
                path,
                message: "symbolic link loop (directory is its own ancestor); skipped".to_owned(),
                subtree: false,
            });
            return;
        }
        Some(Arc::new(Ancestor {
            dev,
            ino,
            parent: chain.clone(),
        }))
    } else {
        None
    };
    scope.spawn(move |scope| walk_dir(scope, root, path, child_chain, opts, visitor));
}
