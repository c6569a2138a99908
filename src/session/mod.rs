//! Session files: the streaming reader and writer of docs/formats.md section 3,
//! and [`Session`], a file loaded for browsing, scrubbing and playback.

pub mod loaded;
pub mod reader;
mod split;
pub mod writer;

pub use loaded::{
    EventEntry, LoadError, LoadProgress, NameId, Session, SnapshotChange, SnapshotMark, NO_NAME,
};
pub use reader::{Corruption, ReadError, ReadOptions, ReadReport, Reader, RecordRef};
pub use writer::{SessionWriter, WriteError, WriterStats, FLUSH_INTERVAL, SNAPSHOT_INTERVAL_MS};
