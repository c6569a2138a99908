//! Inputs the fuzz targets in `fuzz/` found, kept as regression tests
//! (RELIABILITY.md, "Bad files"). Each file in `tests/data/fuzz/session_reader/`
//! is loaded strictly and recovering, in one part and in several, and the
//! state at every instant must follow docs/formats.md section 3: the last
//! snapshot at or before it (its entries up to the first that is not a
//! (string, number) pair), overlaid by every `noise.params` event at or
//! before it.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use integr8tor::envelope::Topic;
use integr8tor::session::reader::snapshot_entries;
use integr8tor::session::{ReadOptions, Reader, RecordRef, Session};

fn found(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no reproducers in {}", dir.display());
    files
}

type State = BTreeMap<String, u64>;

/// The state at `t` from the reader's records, the slow way.
fn expected_state(data: &[u8], recover: bool, t: i64) -> State {
    let mut snapshots: Vec<(i64, State)> = Vec::new();
    let mut params: Vec<(i64, String, u64)> = Vec::new();
    let mut r = Reader::new(data, Path::new("reproducer"), ReadOptions { recover });
    while let Ok(Some(rec)) = r.next() {
        match rec.record {
            RecordRef::Snapshot { ts_ms, state } => {
                let mut s = State::new();
                let _ = snapshot_entries(state, |p, v| {
                    s.insert(String::from_utf8_lossy(p).into_owned(), v.to_bits());
                });
                snapshots.push((ts_ms, s));
            }
            RecordRef::Event {
                known_topic: Some(Topic::Params),
                fields,
                ..
            } => {
                if let Some(name) = fields.name {
                    params.push((
                        fields.ts_ms,
                        String::from_utf8_lossy(name).into_owned(),
                        fields.value.to_bits(),
                    ));
                }
            }
            _ => {}
        }
    }
    snapshots.sort_by_key(|s| s.0);
    params.sort_by_key(|p| p.0);
    let mut state = snapshots
        .iter()
        .rev()
        .find(|s| s.0 <= t)
        .map(|s| s.1.clone())
        .unwrap_or_default();
    for (_, name, v) in params.into_iter().filter(|p| p.0 <= t) {
        state.insert(name, v);
    }
    state
}

fn state_of(s: &Session, t: i64) -> State {
    s.state_at(t)
        .into_iter()
        .map(|(id, v)| (s.name(id).to_owned(), v.to_bits()))
        .collect()
}

#[test]
fn session_reader_reproducers_load_with_the_state_the_format_defines() {
    let mut checked = 0;
    for path in found("session_reader") {
        let data = std::fs::read(&path).unwrap();
        for recover in [false, true] {
            for parts in [None, Some(2), Some(3)] {
                let opts = ReadOptions { recover };
                let go = |_| ControlFlow::Continue(());
                let loaded = match parts {
                    None => Session::open_with(&path, opts, go),
                    Some(n) => Session::open_in_parts(&path, opts, n, go),
                };
                let Ok(s) = loaded else {
                    // a strict load may refuse a damaged file; a recovering one may not
                    assert!(!recover, "{}: a recovering load failed", path.display());
                    continue;
                };
                let mut instants = vec![i64::MIN, 0, i64::MAX];
                instants.extend(s.snapshots().iter().map(|m| m.ts_ms));
                instants.extend(s.events().iter().map(|e| e.ts_ms));
                for t in instants {
                    assert_eq!(
                        state_of(&s, t),
                        expected_state(&data, recover, t),
                        "{} (recover {recover}, parts {parts:?}): state at {t}",
                        path.display()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 0);
}
