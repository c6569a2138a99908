//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// `../shared/fixtures/NAME`, relative to the project root.
pub fn fixture(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared")
        .join("fixtures")
        .join(name);
    assert!(
        p.exists(),
        "fixture {} is missing: the tests read ../shared/fixtures beside the checkout",
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

/// The facts file of the small fixture.
pub fn small_facts() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("small-60s.facts.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}
