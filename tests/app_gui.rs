//! The desktop app, headless (egui_kittest): controls send the right
//! commands, shortcuts work, every control has an accessible name, and the
//! real workers load the golden sessions (paths, duration, pins, errors).
#![cfg(feature = "gui")]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use integr8tor::app::workers::{
    self, LoadedSession, Outbox, PlayState, PlaybackStatus, RecordingStats,
};
use integr8tor::app::{Command, IntegratorApp, PlayerCommand, Settings, WorkerMsg};
use integr8tor::session::Session;

mod common;

use common::fixture;

fn test_settings() -> Settings {
    Settings {
        sessions_dir: std::env::temp_dir().join("integr8tor-gui-test-sessions"),
        ..Settings::default()
    }
}

/// An app over plain channels: the test plays the workers.
struct Fake {
    harness: Harness<'static, IntegratorApp>,
    commands: Receiver<Command>,
    inbox: Sender<WorkerMsg>,
}

impl Fake {
    fn new() -> Fake {
        let (cmd_tx, commands) = crossbeam_channel::unbounded();
        let (inbox, inbox_rx) = crossbeam_channel::unbounded();
        let outbox = Outbox::new(inbox.clone(), workers::no_waker());
        let app = IntegratorApp::with_channels(test_settings(), cmd_tx, inbox_rx, outbox);
        let harness = Harness::builder()
            .with_size([1400.0, 1000.0])
            .build_ui_state(|ui, app: &mut IntegratorApp| app.ui(ui), app);
        Fake {
            harness,
            commands,
            inbox,
        }
    }

    fn send(&mut self, msg: WorkerMsg) {
        self.inbox.send(msg).unwrap();
        self.harness.run_steps(3);
    }

    fn take(&mut self) -> Vec<Command> {
        self.harness.run_steps(2);
        self.commands.try_iter().collect()
    }

    fn load_fixture(&mut self) -> LoadedSession {
        let s = Session::open(&fixture("small-60s.msgpack")).unwrap();
        let loaded = LoadedSession::new(Arc::new(s), false);
        self.send(WorkerMsg::Loaded(loaded.clone()));
        self.take();
        loaded
    }
}

#[test]
fn transport_controls_send_the_right_commands_and_all_are_named() {
    let mut f = Fake::new();
    let loaded = f.load_fixture();
    let (first, last) = loaded.range;
    f.harness.check_accessibility();

    f.harness.get_by_label("Play").click();
    assert_eq!(f.take(), [Command::Transport(PlayerCommand::Play)]);

    // once the player says it plays, the same button pauses
    f.send(WorkerMsg::Playback(PlaybackStatus {
        state: PlayState::Playing,
        position_ms: first + 10_000,
        speed: 1.0,
        ..PlaybackStatus::default()
    }));
    assert!(f.harness.query_by_label("Play").is_none());
    f.harness.get_by_label("Pause").click();
    assert_eq!(f.take(), [Command::Transport(PlayerCommand::Pause)]);

    f.harness.get_by_label("Stop").click();
    assert_eq!(f.take(), [Command::Transport(PlayerCommand::Stop)]);
    f.harness.get_by_label("Step forward").click();
    f.harness.get_by_label("Step back").click();
    assert_eq!(
        f.take(),
        [
            Command::Transport(PlayerCommand::StepForward),
            Command::Transport(PlayerCommand::StepBack)
        ]
    );
    f.harness.get_by_label("Go to start").click();
    f.harness.get_by_label("Go to end").click();
    assert_eq!(
        f.take(),
        [
            Command::Transport(PlayerCommand::Seek(first)),
            Command::Transport(PlayerCommand::Seek(last))
        ]
    );

    f.harness
        .get_by_role_and_label(Role::Slider, "Speed")
        .set_value_accesskit(2.5);
    let cmds = f.take();
    assert_eq!(cmds, [Command::Transport(PlayerCommand::SetSpeed(2.5))]);

    // loop over the whole session, then A at the playhead, then off
    f.harness.get_by_label("Loop").click();
    assert_eq!(
        f.take(),
        [Command::Transport(PlayerCommand::SetLoop(Some((
            first, last
        ))))]
    );
    f.harness.get_by_label("Set loop start A").click();
    assert_eq!(
        f.take(),
        [Command::Transport(PlayerCommand::SetLoop(Some((
            first + 10_000,
            last
        ))))]
    );
    f.harness.get_by_label("Loop").click();
    assert_eq!(f.take(), [Command::Transport(PlayerCommand::SetLoop(None))]);

    // recording: start, then (once started) stop
    f.harness.get_by_label("Record").click();
    match f.take().as_slice() {
        [Command::StartRecording(rs)] => {
            assert_eq!(rs.sessions_dir, test_settings().sessions_dir);
            assert_eq!(rs.snapshot_interval_ms, 5000);
        }
        other => panic!("expected StartRecording, got {other:?}"),
    }
    f.send(WorkerMsg::RecordingStarted("/tmp/session-x.msgpack".into()));
    f.send(WorkerMsg::RecordingStats(RecordingStats {
        elapsed_ms: 12_300,
        events: 4321,
        bytes: 2_500_000,
        ..RecordingStats::default()
    }));
    assert!(f.harness.query_by_label_contains("REC 00:12.3").is_some());
    assert!(f.harness.query_by_label_contains("4,321 ev").is_some());
    assert!(f.harness.query_by_label_contains("2.5 MB").is_some());
    f.harness.get_by_label("Stop recording").click();
    assert_eq!(f.take(), [Command::StopRecording]);

    // mute and solo of a group
    f.harness.get_by_label("Mute gen.2").click();
    assert_eq!(
        f.take(),
        [Command::Transport(PlayerCommand::SetMuted {
            group: "gen.2.*".into(),
            muted: true
        })]
    );
    // master is at the bottom of the live list: scroll to it first
    f.harness.get_by_label("Solo master").scroll_to_me();
    f.harness.run_steps(3);
    f.harness.get_by_label("Solo master").click();
    assert_eq!(
        f.take(),
        [Command::Transport(PlayerCommand::SetSolo(Some(
            "master.*".into()
        )))]
    );
    f.harness.check_accessibility();
}

#[test]
fn keyboard_shortcuts_work() {
    let mut f = Fake::new();
    let loaded = f.load_fixture();
    let (first, last) = loaded.range;
    let press = |f: &mut Fake, key| {
        f.harness.key_press(key);
        f.take()
    };
    assert_eq!(
        press(&mut f, egui::Key::Space),
        [Command::Transport(PlayerCommand::Play)]
    );
    assert!(matches!(
        press(&mut f, egui::Key::R).as_slice(),
        [Command::StartRecording(_)]
    ));
    assert_eq!(
        press(&mut f, egui::Key::ArrowLeft),
        [Command::Transport(PlayerCommand::StepBack)]
    );
    assert_eq!(
        press(&mut f, egui::Key::ArrowRight),
        [Command::Transport(PlayerCommand::StepForward)]
    );
    assert_eq!(
        press(&mut f, egui::Key::Home),
        [Command::Transport(PlayerCommand::Seek(first))]
    );
    assert_eq!(
        press(&mut f, egui::Key::End),
        [Command::Transport(PlayerCommand::Seek(last))]
    );
    assert_eq!(
        press(&mut f, egui::Key::L),
        [Command::Transport(PlayerCommand::SetLoop(Some((
            first, last
        ))))]
    );
    assert_eq!(
        press(&mut f, egui::Key::L),
        [Command::Transport(PlayerCommand::SetLoop(None))]
    );
    // a clicked (focused) button does not swallow the shortcuts, nor fire twice
    f.harness.get_by_label("Stop").click();
    assert_eq!(f.take(), [Command::Transport(PlayerCommand::Stop)]);
    assert_eq!(
        press(&mut f, egui::Key::Space),
        [Command::Transport(PlayerCommand::Play)]
    );
    // Space pauses while playing
    f.send(WorkerMsg::Playback(PlaybackStatus {
        state: PlayState::Playing,
        speed: 1.0,
        position_ms: first,
        ..PlaybackStatus::default()
    }));
    assert_eq!(
        press(&mut f, egui::Key::Space),
        [Command::Transport(PlayerCommand::Pause)]
    );
}

#[test]
fn dragging_a_value_is_a_touch() {
    let mut f = Fake::new();
    f.send(WorkerMsg::Live(vec![workers::LiveMsg::Param {
        path: "gen.1.cutoff".into(),
        value: 0.2,
        actor: "user".into(),
        producer: "python.gui".into(),
        ts_ms: 1,
    }]));
    f.harness
        .get_by_label("gen.1.cutoff")
        .set_value_accesskit(0.75);
    assert_eq!(
        f.take(),
        [Command::Touch {
            path: "gen.1.cutoff".into(),
            value: 0.75,
            held: false
        }]
    );
}

/// Steps the real app until `done` holds (workers run on their own threads).
fn wait_for(
    harness: &mut Harness<'static, IntegratorApp>,
    what: &str,
    done: impl Fn(&IntegratorApp) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(harness.state()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    harness.run_steps(3);
}

fn offline_harness() -> Harness<'static, IntegratorApp> {
    let app = IntegratorApp::offline(test_settings());
    Harness::builder()
        .with_size([1400.0, 1100.0])
        .build_ui_state(|ui, app: &mut IntegratorApp| app.ui(ui), app)
}

/// A file dropped on the window.
#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// `3300793` as `3,300,793`.
fn with_commas(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn drop_file(harness: &mut Harness<'static, IntegratorApp>, path: PathBuf) {
    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(Dropped(path)));
    harness.step();
}

#[test]
fn opening_the_small_fixture_shows_its_24_paths_and_duration_and_a_touch_pins() {
    let facts = common::small_facts();
    let mut h = offline_harness();
    drop_file(&mut h, fixture("small-60s.msgpack"));
    wait_for(
        &mut h,
        "the session to load and its player to report",
        |app| app.model().session.is_some(),
    );
    let paths = facts["param_paths"].as_array().unwrap();
    for p in paths {
        let p = p.as_str().unwrap();
        assert!(h.query_by_label(p).is_some(), "live panel lacks {p}");
    }
    let duration = facts["last_ts_ms"].as_i64().unwrap() - facts["first_ts_ms"].as_i64().unwrap();
    let readout = format!(
        "/ {:02}:{:02}.{}",
        duration / 60_000,
        duration / 1000 % 60,
        duration / 100 % 10
    );
    assert!(
        h.query_by_label_contains(&readout).is_some(),
        "the position readout shows the duration"
    );
    h.check_accessibility();

    // play, then touch a value: the path shows a pin with its countdown
    h.get_by_label("Play").click();
    wait_for(&mut h, "playback", |app| {
        app.model().playback.state == PlayState::Playing
    });
    assert!(h.query_by_label_contains("📌").is_none());
    h.get_by_label("gen.1.cutoff").set_value_accesskit(0.9);
    wait_for(&mut h, "the pin", |app| {
        app.model().pin_left_ms("gen.1.cutoff").is_some()
    });
    let pin = h.get_by_label_contains("📌");
    let node = pin.accesskit_node();
    let text = node
        .label()
        .filter(|l| l.contains('📌'))
        .or_else(|| node.value())
        .unwrap_or_default()
        .to_string();
    let secs: f64 = text
        .trim_start_matches("📌")
        .trim()
        .trim_end_matches('s')
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("pin countdown in seconds, got {text:?}"));
    assert!(secs > 0.0 && secs <= 3.0, "{text}");
}

#[test]
fn the_corrupt_fixture_shows_the_error_with_its_offset_and_offers_recovery() {
    let mut h = offline_harness();
    let bad = common::corrupt_small();
    drop_file(&mut h, bad.path.clone());
    wait_for(&mut h, "the load to fail", |app| {
        matches!(
            app.model().load,
            integr8tor::app::model::LoadView::Failed(_)
        )
    });
    assert!(
        h.query_by_label_contains(&bad.offset.to_string()).is_some(),
        "the reader's message names the offset"
    );
    let grouped = with_commas(bad.offset);
    assert!(h
        .query_by_label_contains(&format!("before byte {grouped}"))
        .is_some());
    h.check_accessibility();
    h.get_by_label("Recover readable part").click();
    wait_for(&mut h, "the recovered load", |app| {
        app.model().session.is_some()
    });
    let s = h.state().model().session.clone().unwrap();
    assert!(s.recovered);
    assert_eq!(s.report.corrupt.as_ref().unwrap().offset, bad.offset);
    assert_eq!(
        s.report.event_records + s.report.snapshot_records + s.report.unknown_records,
        bad.records_before
    );
}

#[test]
fn the_truncated_fixture_loads_and_says_how_much_was_dropped() {
    let mut h = offline_harness();
    let cut = common::truncated_small();
    drop_file(&mut h, cut.path.clone());
    wait_for(&mut h, "the load", |app| app.model().session.is_some());
    assert_eq!(
        h.state()
            .model()
            .session
            .as_ref()
            .unwrap()
            .report
            .dropped_bytes,
        cut.dropped_bytes
    );
    // the Sessions view states it
    h.get_by_label("Sessions").click();
    h.run_steps(3);
    assert!(h
        .query_by_label_contains(&format!("{} bytes dropped", cut.dropped_bytes))
        .is_some());
}

#[test]
fn the_sessions_folder_is_listed_in_the_background_with_duration_events_and_size() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("small-60s.msgpack"), dir.path().join("gig.msgpack")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a session").unwrap();
    let settings = Settings {
        sessions_dir: dir.path().to_path_buf(),
        ..Settings::default()
    };
    let app = IntegratorApp::offline(settings);
    let mut h = Harness::builder()
        .with_size([1400.0, 1100.0])
        .build_ui_state(|ui, app: &mut IntegratorApp| app.ui(ui), app);
    h.get_by_label("Sessions").click();
    h.run_steps(2);
    h.get_by_label("Rescan folder").click();
    wait_for(&mut h, "the listing", |app| {
        let b = &app.model().browser;
        !b.scanning && !b.files.is_empty()
    });
    let facts = common::small_facts();
    let events = common::count(&facts, "event_records");
    let (first, last) = (
        facts["first_ts_ms"].as_i64().unwrap(),
        facts["last_ts_ms"].as_i64().unwrap(),
    );
    let files = &h.state().model().browser.files;
    assert_eq!(files.len(), 1, "only .msgpack files are listed");
    assert_eq!(files[0].events, events);
    assert_eq!(files[0].duration_ms, last - first);
    assert!(h.query_by_label("gig.msgpack").is_some());
    assert!(h.query_by_label(&with_commas(events)).is_some());
    assert!(h
        .query_by_label(&integr8tor::human::date_time(first))
        .is_some());
    h.get_by_label("Open gig.msgpack").click();
    wait_for(&mut h, "the load", |app| app.model().session.is_some());
    assert_eq!(
        h.state().settings().recent_files.first(),
        Some(&dir.path().join("gig.msgpack")),
        "an opened file goes to the recent list"
    );
}

#[test]
fn applying_new_brokers_in_settings_reconnects_without_a_restart() {
    let mut f = Fake::new();
    f.harness.get_by_label("Settings").click();
    f.harness.run_steps(2);
    f.harness.get_by_label("Brokers").focus();
    f.harness.run_steps(1);
    f.harness.get_by_label("Brokers").type_text("kafka-1:9092");
    f.harness.run_steps(2);
    f.take();
    f.harness.get_by_label("Apply").click();
    let cmds = f.take();
    match cmds.as_slice() {
        [Command::Connect(bus)] => {
            assert_eq!(bus.brokers.as_deref(), Some("kafka-1:9092"));
        }
        other => panic!("expected one Connect, got {other:?}"),
    }
    assert_eq!(f.harness.state().settings().brokers, "kafka-1:9092");
}

#[test]
fn a_folder_chosen_in_the_dialog_becomes_the_sessions_folder_on_apply() {
    let mut f = Fake::new();
    f.harness.get_by_label("Settings").click();
    f.harness.run_steps(2);
    // the button that opens the system dialog is there and named
    f.harness.get_by_label("Choose sessions folder");
    let chosen = PathBuf::from("/srv/gigs/sessions");
    f.send(WorkerMsg::FolderChosen(chosen.clone()));
    assert_eq!(
        f.harness.get_by_label("Sessions folder").value().as_deref(),
        Some("/srv/gigs/sessions"),
        "the draft shows the chosen folder"
    );
    // nothing is saved before Apply
    assert_ne!(f.harness.state().settings().sessions_dir, chosen);
    f.take();
    f.harness.get_by_label("Apply").click();
    let cmds = f.take();
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::ScanSessions(dir) if *dir == chosen)),
        "{cmds:?}"
    );
    assert_eq!(f.harness.state().settings().sessions_dir, chosen);
}
