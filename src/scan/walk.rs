//! The parallel directory walk: `getdents64` (through `rustix::fs::RawDir`, into a 64 KiB
//! buffer) and one `statx` per entry relative to the directory's fd, one rayon task per
//! directory (work-stealing across `--threads`). No recursion on the stack, so deep trees cannot
//! overflow it, and a directory deeper than `PATH_MAX` is opened a piece at a time.
//!
//! Policy (documented in `docs/SCAN.md`):
//! * only regular files are reported; FIFOs, sockets and devices are skipped without being
//!   opened;
//! * symlinks are skipped unless `follow_symlinks`; then directory loops are caught by
//!   (dev, inode) of the ancestors and dangling links are reported;
//! * hidden entries (names starting with `.`) are skipped unless `hidden`;
//! * excluded names (globs) are skipped with their subtree.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, StatxFlags};

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
    /// What lies at `path` and below it is unknown (not absent): a directory could not be
    /// read, or an entry could not be looked at for another reason than its being gone.
    pub subtree: bool,
}

/// Receives the walk's findings, from many threads at once.
pub trait Visitor: Sync {
    /// State kept while one directory is read (e.g. results to hand on in one piece).
    type Local: Default;
    /// Regular files of one directory under root number `root` (a directory's files come in
    /// one or more pieces of at most [`FILES_PER_CALL`]). `dir` is the directory, held open:
    /// a file opens as its name relative to it, without resolving the path again.
    fn files(&self, local: &mut Self::Local, root: usize, dir: BorrowedFd<'_>, files: &Files);
    /// A problem; the walk goes on.
    fn problem(&self, problem: WalkProblem);
    /// A directory was read completely.
    fn dir_done(&self, _local: &mut Self::Local) {}
}

/// Bytes of directory entries one `getdents64` call may return (a name is at most 255 bytes,
/// so any entry fits).
const DIRENT_BUF: usize = 64 * 1024;

/// Files handed to [`Visitor::files`] at once: enough for the visitor's index lookups to
/// overlap their cache misses, few enough to keep the memory per walker small.
pub const FILES_PER_CALL: usize = 256;

/// Regular files of one directory with their stat, in directory order.
#[derive(Default)]
pub struct Files {
    /// Each file's full path, then a NUL.
    buf: Vec<u8>,
    items: Vec<Item>,
}

#[derive(Clone, Copy)]
struct Item {
    start: usize,
    /// Where the name starts (it ends where the path does).
    name: usize,
    end: usize,
    stat: FileStat,
}

/// One file of [`Files`].
#[derive(Clone, Copy, Debug)]
pub struct FileRef<'a> {
    /// The full path.
    pub path: &'a [u8],
    /// The name in its directory.
    pub name: &'a CStr,
    /// What `statx` said.
    pub stat: FileStat,
}

impl Files {
    /// Number of files.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The files, in directory order.
    pub fn iter(&self) -> impl Iterator<Item = FileRef<'_>> + '_ {
        self.items.iter().map(|it| FileRef {
            path: &self.buf[it.start..it.end],
            // The walk stores each name as the directory entry's C string gave it: no NUL
            // inside, one after.
            name: CStr::from_bytes_with_nul(&self.buf[it.name..=it.end]).unwrap_or_default(),
            stat: it.stat,
        })
    }

    fn push(&mut self, path: &[u8], name_len: usize, stat: FileStat) {
        let start = self.buf.len();
        self.buf.extend_from_slice(path);
        let end = self.buf.len();
        self.buf.push(0);
        self.items.push(Item {
            start,
            name: end - name_len,
            end,
            stat,
        });
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.items.clear();
    }
}

/// How to walk.
#[derive(Clone, Debug, Default)]
pub struct WalkOptions {
    /// Follow symbolic links (loops are detected).
    pub follow_symlinks: bool,
    /// Include names starting with `.`.
    pub hidden: bool,
    /// Names (or, for patterns with `/`, full paths) to skip with their subtrees.
    pub excludes: Excludes,
}

/// Exclude patterns, split so that the common cases cost little per entry: a pattern with no
/// glob syntax and no `/` is a name compared as bytes; other patterns without `/` are globs
/// over the name; patterns with `/` are globs over the name and the full path.
#[derive(Clone, Debug, Default)]
pub struct Excludes {
    names: Vec<Box<[u8]>>,
    name_globs: GlobSet,
    path_globs: GlobSet,
}

impl Excludes {
    /// Builds the matcher; `glob` turns one pattern into a glob (or says why it is bad), and
    /// `too_big` reports a set of globs that does not compile as a whole.
    pub fn new<E>(
        patterns: &[&str],
        glob: impl Fn(&str) -> Result<Glob, E>,
        too_big: impl Fn(globset::Error) -> E,
    ) -> Result<Excludes, E> {
        let mut names = Vec::new();
        let (mut by_name, mut by_path) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        for &pat in patterns {
            let g = glob(pat)?;
            if pat.contains('/') {
                by_path.add(g);
            } else if pat.contains(['*', '?', '[', ']', '{', '}', '\\']) {
                by_name.add(g);
            } else {
                names.push(pat.as_bytes().into());
            }
        }
        Ok(Excludes {
            names,
            name_globs: by_name.build().map_err(&too_big)?,
            path_globs: by_path.build().map_err(&too_big)?,
        })
    }

    /// Whether the entry `name` at `path` is excluded.
    pub fn is_match(&self, name: &[u8], path: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt;
        if self.names.iter().any(|n| **n == *name) {
            return true;
        }
        let os = |b| std::ffi::OsStr::from_bytes(b);
        (!self.name_globs.is_empty() && self.name_globs.is_match(os(name)))
            || (!self.path_globs.is_empty()
                && (self.path_globs.is_match(os(name)) || self.path_globs.is_match(os(path))))
    }
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
    let opened = match rustix::fs::openat(rustix::fs::CWD, dir.as_slice(), flags, Mode::empty()) {
        Err(rustix::io::Errno::NAMETOOLONG) => crate::longpath::open(&dir, flags),
        other => other,
    };
    let fd: OwnedFd = match opened {
        Ok(fd) => fd,
        Err(e) => return problem(&dir, e, true),
    };
    // Our own fd and buffer: `Dir::read_from` would reopen the directory and read it in
    // smaller pieces, which costs three more syscalls per directory than the walk itself.
    let mut buf = Vec::with_capacity(DIRENT_BUF);
    let mut entries = RawDir::new(&fd, buf.spare_capacity_mut());
    let mut path = dir.clone();
    if path.last() != Some(&b'/') {
        path.push(b'/');
    }
    let base = path.len();
    let mut local = V::Local::default();
    let mut files = Files::default();
    while let Some(entry) = entries.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                // The rest of this directory is unknown.
                problem(&dir, e, true);
                break;
            }
        };
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        if !opts.hidden && name.first() == Some(&b'.') {
            continue;
        }
        path.truncate(base);
        path.extend_from_slice(name);
        if opts.excludes.is_match(name, &path) {
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
                let gone = e == rustix::io::Errno::NOENT;
                visitor.problem(WalkProblem {
                    path: path.clone(),
                    message: if gone && follow {
                        "dangling symbolic link".to_owned()
                    } else {
                        os_message(e)
                    },
                    // Gone since the directory was read, or a link to nothing: absent. Any
                    // other failure (a directory that can be listed but not searched, an I/O
                    // error) says nothing about the entry, whose record must stay.
                    subtree: !gone,
                });
                continue;
            }
        };
        ty = FileType::from_raw_mode(u32::from(st.stx_mode));
        match ty {
            FileType::RegularFile => {
                files.push(&path, name.len(), file_stat(&st));
                if files.len() >= FILES_PER_CALL {
                    visitor.files(&mut local, root, fd.as_fd(), &files);
                    files.clear();
                }
            }
            FileType::Directory => {
                spawn_dir(scope, root, path.clone(), Some(&st), &chain, opts, visitor);
            }
            _ => {}
        }
    }
    if !files.is_empty() {
        visitor.files(&mut local, root, fd.as_fd(), &files);
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
            None => match crate::longpath::statx(&path, STATX_MASK) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn excludes(patterns: &[&str]) -> Excludes {
        let glob = |p: &str| globset::GlobBuilder::new(p).literal_separator(true).build();
        Excludes::new(patterns, glob, |e| e).expect("valid patterns")
    }

    #[test]
    fn names_globs_and_path_globs_match_as_documented() {
        let ex = excludes(&["@eaDir", "*.tmp", "/lib/skip/**", "{keep,a/b}", "x?z"]);
        let cases = [
            (&b"@eaDir"[..], &b"/lib/m/@eaDir"[..], true),
            (b"song.tmp", b"/lib/song.tmp", true),
            (b"anything", b"/lib/skip/anything", true),
            (b"keep", b"/lib/keep", true),
            (b"b", b"a/b", true),
            (b"xyz", b"/lib/xyz", true),
            (b"@eaDirX", b"/lib/@eaDirX", false),
            (b"song.tmp.mp3", b"/lib/song.tmp.mp3", false),
            (b"skip", b"/lib/skip", false),
            (b"b", b"/lib/a/b", false),
            (b"xz", b"/lib/xz", false),
        ];
        for (name, path, excluded) in cases {
            let path_text = String::from_utf8_lossy(path);
            assert_eq!(ex.is_match(name, path), excluded, "{path_text:?}");
        }
        assert!(!excludes(&[]).is_match(b"a", b"/a"));
    }
}
