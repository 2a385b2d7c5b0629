//! mediadb indexes media libraries into a crash-safe, memory-mapped database.
//!
//! The engine ([`Database`], [`Snapshot`], [`WriteBatch`]) is an append-only log of checksummed
//! frames behind two header slots; see `docs/FORMAT.md` for the bytes and the promises.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("lib.mediadb");
//! use mediadb::{Database, Kind, Record};
//!
//! let mut db = Database::create(&path)?;
//! let mut batch = db.batch()?;
//! let mut rec = Record::new(b"/music/Artist/Album/01 Song.flac".to_vec());
//! rec.kind = Kind::Audio;
//! rec.title = Some("Song".into());
//! let id = batch.upsert(&rec)?;
//! batch.commit()?;
//!
//! let snap = db.snapshot();
//! let got = snap.get(b"/music/Artist/Album/01 Song.flac")?.expect("stored");
//! assert_eq!(got.id(), id);
//! assert_eq!(got.title(), Some("Song"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod error;
mod longpath;
pub mod migrate;
pub mod playlist;
pub mod query;
pub mod record;
pub mod scan;
pub mod store;

pub use error::{CommitError, OpenError, ReadError};
pub use record::{Kind, Record, RecordView};
pub use store::{
    CommitInfo, CompactError, CompactReport, Damage, Database, FileEntry, OpenOptions,
    RecoverError, RecoverReport, Snapshot, Stats, VerifyReport, WriteBatch,
};
