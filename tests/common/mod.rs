//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The directory of the golden session files of the current file format.
pub const GOLDEN_DIR: &str = "tests/data/v1";

/// A golden file of the current format: `tests/data/v1/NAME`.
pub fn fixture(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(GOLDEN_DIR)
        .join(name);
    assert!(
        p.exists(),
        "golden file {} is missing: `python3 tests/data/make_golden.py` writes it",
        p.display()
    );
    p
}

/// Runs the built `integr8tor` binary.
pub fn integr8tor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_integr8tor"))
        .args(args)
        .output()
        .expect("running integr8tor")
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The facts file of a golden session (`NAME.facts.json` for `NAME.msgpack`).
pub fn facts(session: &str) -> serde_json::Value {
    let name = session.trim_end_matches(".msgpack");
    let text = std::fs::read_to_string(fixture(&format!("{name}.facts.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The facts file of the small golden session.
pub fn small_facts() -> serde_json::Value {
    facts("small-60s.msgpack")
}

/// A fact that is a count.
pub fn count(facts: &serde_json::Value, key: &str) -> u64 {
    facts[key]
        .as_u64()
        .unwrap_or_else(|| panic!("facts lack the count {key}"))
}

/// Where each record of a session file starts, found with `rmpv` (a reader
/// independent of the project's), and the file's bytes.
pub fn record_offsets(path: &Path) -> (Vec<u64>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let mut rest = &bytes[..];
    let mut offsets = Vec::new();
    while !rest.is_empty() {
        offsets.push((bytes.len() - rest.len()) as u64);
        rmpv::decode::read_value(&mut rest).expect("a golden file is whole MessagePack");
    }
    (offsets, bytes)
}

/// A damaged copy of the small golden session, in its own temporary directory.
pub struct Damaged {
    /// Holds the file; removed on drop.
    pub dir: tempfile::TempDir,
    /// The damaged file.
    pub path: PathBuf,
    /// How many whole records come before the damage.
    pub records_before: u64,
    /// The byte offset where the damage starts.
    pub offset: u64,
    /// How many bytes of a cut record are left at the end (truncated copies).
    pub dropped_bytes: u64,
}

/// `small-60s.msgpack` ending `cut` bytes into record number `record`
/// (counted from 0): the file a recorder leaves when it dies mid-write.
pub fn truncated(record: usize, cut: usize) -> Damaged {
    let (offsets, bytes) = record_offsets(&fixture("small-60s.msgpack"));
    let start = offsets[record] as usize;
    let end = offsets.get(record + 1).map_or(bytes.len(), |&o| o as usize);
    assert!(
        cut > 0 && start + cut < end,
        "the cut lies inside the record"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truncated.msgpack");
    std::fs::write(&path, &bytes[..start + cut]).unwrap();
    Damaged {
        dir,
        path,
        records_before: record as u64,
        offset: start as u64,
        dropped_bytes: cut as u64,
    }
}

/// `small-60s.msgpack` with `garbage` inserted where record number `record`
/// (counted from 0) starts.
pub fn corrupt(record: usize, garbage: &[u8]) -> Damaged {
    let (offsets, bytes) = record_offsets(&fixture("small-60s.msgpack"));
    let at = offsets[record] as usize;
    let mut damaged = bytes[..at].to_vec();
    damaged.extend_from_slice(garbage);
    damaged.extend_from_slice(&bytes[at..]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.msgpack");
    std::fs::write(&path, damaged).unwrap();
    Damaged {
        dir,
        path,
        records_before: record as u64,
        offset: at as u64,
        dropped_bytes: 0,
    }
}

/// The usual truncated copy: cut 37 bytes into record 20,000.
pub fn truncated_small() -> Damaged {
    truncated(20_000, 37)
}

/// The usual corrupt copy: 9 bytes that are not MessagePack (0xc1 is never
/// used) at the start of record 15,000.
pub fn corrupt_small() -> Damaged {
    corrupt(15_000, &[0xc1; 9])
}
