//! The Sessions view's export, headless (egui_kittest): the job runs on its
//! own worker thread, the window shows its progress and then its outcome,
//! and a failed export shows the reader's message and leaves no file.
#![cfg(feature = "gui")]

mod common;

use std::time::{Duration, Instant};

use common::fixture;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use integr8tor::app::export::{progress_ui, ExportPanel, JobState};

fn harness() -> Harness<'static, ExportPanel> {
    Harness::builder().with_size([900.0, 200.0]).build_ui_state(
        |ui, panel: &mut ExportPanel| progress_ui(ui, panel),
        ExportPanel::default(),
    )
}

/// Steps the window until the job has finished (the worker's outcome is the
/// condition; the deadline only turns a hang into a failure).
fn until_finished(h: &mut Harness<'static, ExportPanel>) -> JobState {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        h.step();
        match h.state().state() {
            Some(JobState::Choosing | JobState::Running { .. }) | None => {}
            Some(done) => {
                h.run_steps(2);
                return done;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the export worker never finished"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn an_export_runs_on_its_worker_and_the_window_shows_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("small.mcap");
    let mut h = harness();
    let ctx = h.ctx.clone();
    h.state_mut()
        .start(fixture("small-60s.msgpack"), out.clone(), &ctx);
    assert!(h.state().is_busy() || matches!(h.state().state(), Some(JobState::Done { .. })));
    let done = until_finished(&mut h);
    assert!(
        matches!(&done, JobState::Done { out: o, .. } if *o == out),
        "{done:?}"
    );
    assert!(std::fs::metadata(&out).unwrap().len() > 0);
    h.get_by_label_contains("Exported to small.mcap");
    let facts = common::small_facts();
    h.get_by_label_contains(&format!(
        "{} events and {} snapshots",
        facts["event_records"], facts["snapshot_records"]
    ));
    h.get_by_label("Dismiss export").click();
    h.run_steps(2);
    assert_eq!(h.state().state(), None);
}

#[test]
fn a_failed_export_shows_the_readers_message_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bad.csv");
    let mut h = harness();
    let ctx = h.ctx.clone();
    let corrupt = common::corrupt_small();
    h.state_mut().start(corrupt.path.clone(), out.clone(), &ctx);
    let done = until_finished(&mut h);
    let says = format!("corrupt at byte {}", corrupt.offset);
    match &done {
        JobState::Failed(m) => assert!(m.contains(&says), "{m}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    h.get_by_label_contains("Export failed");
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
