//! What the benches share: the 1-hour session file they measure.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The 1-hour benchmark session: `INTEGR8TOR_BENCH_FILE` if set, else
/// `target/bench-data/big.msgpack`, written on first use by the golden
/// files' independent Python encoder (`tests/data/make_golden.py
/// --seconds 3600`, about 400 MB and 1.8 M records; needs Python `msgpack`).
pub fn bench_file() -> PathBuf {
    if let Some(p) = std::env::var_os("INTEGR8TOR_BENCH_FILE") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("target/bench-data/big.msgpack");
    if path.exists() {
        return path;
    }
    let script = root.join("tests/data/make_golden.py");
    std::fs::create_dir_all(path.parent().unwrap()).expect("creating target/bench-data");
    // write under another name and rename, so an interrupted run leaves no half file
    let partial = path.with_extension("msgpack.partial");
    eprintln!(
        "writing {} with {} --seconds 3600 (about 400 MB; takes about half a minute)",
        path.display(),
        script.display()
    );
    let status = Command::new("python3")
        .arg(&script)
        .arg(&partial)
        .args(["--seconds", "3600"])
        .status()
        .expect("running python3 (the bench data is written by tests/data/make_golden.py)");
    assert!(
        status.success(),
        "make_golden.py failed ({status}); it needs Python `msgpack`"
    );
    std::fs::rename(&partial, &path).expect("renaming the bench file into place");
    path
}
