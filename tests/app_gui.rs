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
    self, LoadedSession, Outbox, PlayState, PlayerStatus, RecordingStats,
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
    f.send(WorkerMsg::Playback(PlayerStatus {
        state: PlayState::Playing,
        position_ms: first + 10_000,
        speed: 1.0,
        ..PlayerStatus::default()
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

    // loop over the whole session; once the player says it loops, A at the
    // playhead moves the loop; then off
    f.harness.get_by_label("Loop").click();
    assert_eq!(
        f.take(),
        [Command::Transport(PlayerCommand::SetLoop(Some((
            first, last
        ))))]
    );
    f.send(WorkerMsg::Playback(PlayerStatus {
        state: PlayState::Paused,
        position_ms: first + 10_000,
        speed: 1.0,
        loop_range: Some((first, last)),
        ..PlayerStatus::default()
    }));
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
    // the button shows what the player reports: muted, so it unmutes
    f.send(WorkerMsg::Playback(PlayerStatus {
        muted: vec!["gen.2.*".into()],
        speed: 1.0,
        ..PlayerStatus::default()
    }));
    f.harness.get_by_label("Mute gen.2").click();
    assert_eq!(
        f.take(),
        [Command::Transport(PlayerCommand::SetMuted {
            group: "gen.2.*".into(),
            muted: false
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
    // the loop is on when the player says so; then L turns it off
    f.send(WorkerMsg::Playback(PlayerStatus {
        loop_range: Some((first, last)),
        position_ms: first + 5_000,
        speed: 1.0,
        state: PlayState::Paused,
        ..PlayerStatus::default()
    }));
    assert_eq!(
        press(&mut f, egui::Key::L),
        [Command::Transport(PlayerCommand::SetLoop(None))]
    );
    // Shift+arrows move one second
    let shift = |f: &mut Fake, key| {
        f.harness.key_press_modifiers(egui::Modifiers::SHIFT, key);
        f.take()
    };
    assert_eq!(
        shift(&mut f, egui::Key::ArrowRight),
        [Command::Transport(PlayerCommand::Seek(first + 6_000))]
    );
    assert_eq!(
        shift(&mut f, egui::Key::ArrowLeft),
        [Command::Transport(PlayerCommand::Seek(first + 4_000))]
    );
    // a clicked (focused) button does not swallow the shortcuts, nor fire twice
    f.harness.get_by_label("Stop").click();
    assert_eq!(f.take(), [Command::Transport(PlayerCommand::Stop)]);
    assert_eq!(
        press(&mut f, egui::Key::Space),
        [Command::Transport(PlayerCommand::Play)]
    );
    // Space pauses while playing
    f.send(WorkerMsg::Playback(PlayerStatus {
        state: PlayState::Playing,
        speed: 1.0,
        position_ms: first,
        ..PlayerStatus::default()
    }));
    assert_eq!(
        press(&mut f, egui::Key::Space),
        [Command::Transport(PlayerCommand::Pause)]
    );
}

/// A live `gen.1.cutoff` of 0.2 from another program's user.
fn live_cutoff() -> WorkerMsg {
    WorkerMsg::Live(vec![workers::LiveMsg::Param {
        path: "gen.1.cutoff".into(),
        value: 0.2,
        value_mapped: None,
        actor: "user".into(),
        producer: "python.gui".into(),
        ts_ms: 1,
    }])
}

#[test]
fn dragging_a_value_is_a_touch() {
    let mut f = Fake::new();
    f.send(live_cutoff());
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

/// An app over plain channels at 60 frames a second of virtual time.
fn fake_at_60fps() -> Fake {
    let (cmd_tx, commands) = crossbeam_channel::unbounded();
    let (inbox, inbox_rx) = crossbeam_channel::unbounded();
    let outbox = Outbox::new(inbox.clone(), workers::no_waker());
    let app = IntegratorApp::with_channels(test_settings(), cmd_tx, inbox_rx, outbox);
    let harness = Harness::builder()
        .with_size([1400.0, 1000.0])
        .with_step_dt(1.0 / 60.0)
        .build_ui_state(|ui, app: &mut IntegratorApp| app.ui(ui), app);
    Fake {
        harness,
        commands,
        inbox,
    }
}

fn pointer(f: &mut Fake, e: egui::Event) {
    f.harness.input_mut().events.push(e);
}

fn press(pos: egui::Pos2, pressed: bool) -> egui::Event {
    egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::NONE,
    }
}

/// The instant the scrub bar maps x to (the bar spans the session).
fn instant_at(rect: egui::Rect, range: (i64, i64), x: f32) -> i64 {
    let f = ((x - rect.left()) / rect.width()).clamp(0.0, 1.0) as f64;
    range.0 + (f * (range.1 - range.0) as f64).round() as i64
}

fn seeks(cmds: &[Command]) -> Vec<i64> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Transport(PlayerCommand::Seek(t)) => Some(*t),
            _ => None,
        })
        .collect()
}

#[test]
fn a_click_on_the_scrub_bar_within_one_frame_seeks_under_the_pointer() {
    let mut f = fake_at_60fps();
    let loaded = f.load_fixture();
    let bar = f
        .harness
        .get_by_role_and_label(Role::Slider, "Position")
        .rect();
    let at = egui::pos2(bar.left() + bar.width() * 0.3, bar.center().y);
    // press and release in the same frame
    pointer(&mut f, egui::Event::PointerMoved(at));
    pointer(&mut f, press(at, true));
    pointer(&mut f, press(at, false));
    f.harness.step();
    let cmds = f.take();
    let want = instant_at(bar, loaded.range, at.x);
    assert_eq!(seeks(&cmds), [want], "{cmds:?}");
    assert!(want > loaded.range.0 + 17_000 && want < loaded.range.0 + 19_000);
}

#[test]
fn dragging_the_scrub_bar_is_an_audible_scrub_at_most_30_seeks_a_second() {
    let mut f = fake_at_60fps();
    let loaded = f.load_fixture();
    let (first, _) = loaded.range;
    f.send(WorkerMsg::Playback(PlayerStatus {
        state: PlayState::Playing,
        position_ms: first,
        speed: 1.0,
        ..PlayerStatus::default()
    }));
    f.take();
    let bar = f
        .harness
        .get_by_role_and_label(Role::Slider, "Position")
        .rect();
    let mut at = egui::pos2(bar.left() + 40.0, bar.center().y);
    pointer(&mut f, egui::Event::PointerMoved(at));
    pointer(&mut f, press(at, true));
    f.harness.step();
    let mut sent = f.commands.try_iter().collect::<Vec<_>>();
    assert_eq!(
        sent.first(),
        Some(&Command::Transport(PlayerCommand::Pause)),
        "a scrub holds playback"
    );
    // two seconds of virtual time, the pointer moving every frame
    let frames = 120;
    for _ in 0..frames {
        at.x += 3.0;
        pointer(&mut f, egui::Event::PointerMoved(at));
        f.harness.step();
        // the Live panel shows the session's exact state under the pointer at once
        let app = f.harness.state();
        let (t, values) = app.ui_state().scrub_state.clone().expect("scrubbing");
        assert_eq!(t, instant_at(bar, loaded.range, at.x));
        let exact = loaded.session.state_at(t);
        assert_eq!(values.len(), exact.len());
        for (id, v) in exact {
            assert_eq!(values[loaded.session.name(id)], v);
        }
        sent.extend(f.commands.try_iter());
    }
    let during = seeks(&sent).len();
    assert!(
        (30..=61).contains(&during),
        "{during} seeks in 2 s of dragging: at most 30 a second, yet all the way"
    );
    pointer(&mut f, press(at, false));
    f.harness.step();
    let end: Vec<Command> = f.take();
    let last_t = instant_at(bar, loaded.range, at.x);
    let mut all = sent.clone();
    all.extend(end.iter().cloned());
    assert_eq!(
        seeks(&all).last(),
        Some(&last_t),
        "the release lands exactly"
    );
    assert_eq!(
        end.last(),
        Some(&Command::Transport(PlayerCommand::Play)),
        "playback continues from there: {end:?}"
    );
    assert!(f.harness.state().ui_state().scrub_state.is_none());
}

fn timeline(f: &mut Fake) {
    f.harness.get_by_label("Timeline").click();
    f.harness.run_steps(3);
}

#[test]
fn hovering_a_lane_shows_the_nearest_events_fields() {
    let mut f = Fake::new();
    let loaded = f.load_fixture();
    timeline(&mut f);
    let lane = f.harness.get_by_label("lane gen.1.cutoff").rect();
    let lanes = f.harness.get_by_label("Timeline lanes").rect();
    let x = lanes.left() + 170.0 + (lanes.width() - 170.0) * 0.4;
    let at = egui::pos2(x, lane.center().y);
    f.harness.hover_at(at);
    f.harness.run_steps(4);
    let r = f
        .harness
        .state()
        .ui_state()
        .timeline
        .hover
        .clone()
        .expect("a readout");
    assert_eq!(r.path, "gen.1.cutoff");
    // the nearest event, found the slow way
    let s = &loaded.session;
    let id = s.name_id("gen.1.cutoff").unwrap();
    let lane_events: Vec<_> = s.lane(id).iter().map(|&i| s.events()[i as usize]).collect();
    let left = lanes.left() + 170.0;
    let t = instant_at(
        egui::Rect::from_min_max(egui::pos2(left, 0.0), egui::pos2(lanes.right(), 1.0)),
        loaded.range,
        x,
    );
    let nearest = lane_events
        .iter()
        .min_by_key(|e| (e.ts_ms - t).abs())
        .unwrap();
    assert!(
        (r.ts_ms - nearest.ts_ms).abs() <= (loaded.duration_ms() / 1000),
        "{} vs {}",
        r.ts_ms,
        nearest.ts_ms
    );
    let env = s.envelope(nearest).unwrap();
    assert_eq!(r.producer, env.producer_id);
    assert_eq!(r.actor, env.actor.as_ref().unwrap().as_str());
    assert_eq!(r.value, nearest.value);
    // and the tooltip says so
    assert!(f.harness.query_by_label("value_mapped").is_some());
    assert!(f.harness.query_all_by_label(&r.producer).next().is_some());
    assert!(f.harness.query_all_by_label(&r.actor).next().is_some());
}

fn session_view(f: &Fake, range: (i64, i64)) -> (i64, i64) {
    f.harness.state().ui_state().session_view.visible(range)
}

#[test]
fn zoom_pan_fit_and_follow_change_the_visible_range_and_never_seek() {
    let mut f = Fake::new();
    let loaded = f.load_fixture();
    let range = (loaded.range.0, loaded.range.1);
    timeline(&mut f);
    f.take();
    let lanes = f.harness.get_by_label("Timeline lanes").rect();
    let at = egui::pos2(
        lanes.left() + 170.0 + (lanes.width() - 170.0) * 0.5,
        lanes.top() + 60.0,
    );
    f.harness.hover_at(at);
    f.harness.step();
    // pinch (or Ctrl+wheel) zooms in about the pointer
    f.harness.event(egui::Event::Zoom(4.0));
    f.harness.run_steps(2);
    let (a, b) = session_view(&f, range);
    let full = range.1 - range.0;
    assert!((b - a) < full / 3, "zoomed in: {a}..{b}");
    let mid = range.0 + full / 2;
    assert!(
        a < mid && mid < b,
        "the instant under the pointer stays in view"
    );
    // `-` zooms out, `+` in
    f.harness.key_press(egui::Key::Minus);
    f.harness.run_steps(2);
    let (a2, b2) = session_view(&f, range);
    assert!(b2 - a2 > b - a);
    f.harness.key_press(egui::Key::Plus);
    f.harness.run_steps(2);
    let (a3, b3) = session_view(&f, range);
    assert!(b3 - a3 < b2 - a2);
    // Shift+wheel pans
    f.harness.event_modifiers(
        egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: egui::vec2(0.0, -200.0),
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Unknown,
            modifiers: egui::Modifiers::SHIFT,
        },
        egui::Modifiers::SHIFT,
    );
    f.harness.run_steps(20);
    let (a4, b4) = session_view(&f, range);
    assert_eq!(b4 - a4, b3 - a3, "a pan keeps the span");
    assert_ne!(a4, a3, "Shift+wheel moved the view");
    // panning turned following off
    assert!(!f.harness.state().ui_state().session_view.follow());
    f.harness.get_by_label("Follow playhead").click();
    f.harness.run_steps(2);
    assert!(f.harness.state().ui_state().session_view.follow());
    // while playing, the view follows a playhead that leaves it
    let far = if a4 - range.0 > full / 2 {
        range.0 + 1000
    } else {
        range.1 - 1000
    };
    f.send(WorkerMsg::Playback(PlayerStatus {
        state: PlayState::Playing,
        position_ms: far,
        speed: 1.0,
        ..PlayerStatus::default()
    }));
    f.harness.run_steps(2);
    let (a5, b5) = session_view(&f, range);
    assert!(a5 <= far && far <= b5, "{a5}..{b5} follows {far}");
    f.send(WorkerMsg::Playback(PlayerStatus {
        state: PlayState::Paused,
        position_ms: far,
        speed: 1.0,
        ..PlayerStatus::default()
    }));
    // double-click fits, and does not seek
    f.take();
    let at = egui::pos2(lanes.left() + 400.0, lanes.top() + 60.0);
    for pressed in [true, false, true, false] {
        pointer(&mut f, press(at, pressed));
    }
    f.harness.step();
    let cmds = f.take();
    assert_eq!(session_view(&f, range), range);
    assert!(seeks(&cmds).is_empty(), "{cmds:?}");
}

#[test]
fn the_golden_sessions_preset_loads_are_marked_on_the_timeline() {
    let mut f = Fake::new();
    let loaded = f.load_fixture();
    timeline(&mut f);
    let s = &loaded.session;
    let id = s.name_id("preset_load").expect("the fixture loads presets");
    let loads: Vec<_> = s.lane(id).iter().map(|&i| s.events()[i as usize]).collect();
    assert!(!loads.is_empty());
    for e in &loads {
        let env = s.envelope(e).unwrap();
        let preset = env
            .extra
            .iter()
            .find(|(k, _)| k == "preset")
            .map(|(_, v)| v.decode().unwrap().as_str().unwrap().to_owned())
            .unwrap();
        assert!(
            f.harness
                .query_by_label(&format!("preset {preset}"))
                .is_some(),
            "no marker for {preset}"
        );
    }
    // notes have their own lane
    assert!(f.harness.query_by_label("notes").is_some() || !loaded.markers.is_empty());
}

/// A session file with one parameter path, written record by record.
fn one_path_session(dir: &std::path::Path, path: &str) -> PathBuf {
    use rmpv::Value;
    let file = dir.join(format!("{path}.msgpack"));
    let mut out = Vec::new();
    for i in 0..50i64 {
        let data = Value::Map(vec![
            ("v".into(), 1.into()),
            ("session_id".into(), "s".into()),
            ("producer_id".into(), "p".into()),
            ("seq".into(), (i + 1).into()),
            ("ts_ms".into(), (1_790_000_000_000 + i * 100).into()),
            ("actor".into(), "user".into()),
            ("path".into(), path.into()),
            ("value".into(), Value::F64(i as f64 / 50.0)),
        ]);
        let rec = Value::Map(vec![
            ("type".into(), "event".into()),
            ("topic".into(), "noise.params".into()),
            ("key".into(), path.into()),
            ("data".into(), data),
        ]);
        rmpv::encode::write_value(&mut out, &rec).unwrap();
    }
    std::fs::write(&file, out).unwrap();
    file
}

#[test]
fn a_reloaded_session_shows_its_own_lanes() {
    let mut f = Fake::new();
    f.load_fixture();
    timeline(&mut f);
    assert!(f.harness.query_by_label("lane gen.1.cutoff").is_some());
    let dir = tempfile::tempdir().unwrap();
    let other = Session::open(&one_path_session(dir.path(), "fx.delay.time")).unwrap();
    f.send(WorkerMsg::Loaded(LoadedSession::new(
        Arc::new(other),
        false,
    )));
    f.harness.run_steps(3);
    assert!(f.harness.query_by_label("lane fx.delay.time").is_some());
    assert!(
        f.harness.query_by_label("lane gen.1.cutoff").is_none(),
        "the old session's lanes are gone"
    );
}

#[test]
fn without_a_system_dialog_the_sessions_view_says_so_and_a_typed_path_opens() {
    let mut f = Fake::new();
    f.harness.get_by_label("Sessions").click();
    f.harness.run_steps(2);
    f.send(WorkerMsg::DialogUnavailable(
        "no system file dialog here".into(),
    ));
    assert!(f
        .harness
        .query_by_label("no system file dialog here: type the file's path below.")
        .is_some());
    f.harness.get_by_label("Path").focus();
    f.harness.run_steps(1);
    f.harness.get_by_label("Path").type_text("/srv/gig.msgpack");
    f.harness.run_steps(2);
    f.take();
    f.harness.get_by_label("Open path").click();
    assert_eq!(
        f.take(),
        [Command::Open {
            path: "/srv/gig.msgpack".into(),
            recover: false
        }]
    );
}

#[test]
fn at_800_by_500_every_control_is_reachable() {
    let (cmd_tx, _commands) = crossbeam_channel::unbounded();
    let (inbox, inbox_rx) = crossbeam_channel::unbounded();
    let outbox = Outbox::new(inbox.clone(), workers::no_waker());
    let app = IntegratorApp::with_channels(test_settings(), cmd_tx, inbox_rx, outbox);
    let mut h = Harness::builder()
        .with_size([800.0, 500.0])
        .build_ui_state(|ui, app: &mut IntegratorApp| app.ui(ui), app);
    let s = Session::open(&fixture("small-60s.msgpack")).unwrap();
    inbox
        .send(WorkerMsg::Loaded(LoadedSession::new(Arc::new(s), false)))
        .unwrap();
    h.run_steps(4);
    let screen = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(800.0, 500.0));
    for name in [
        "Record",
        "Play",
        "Stop",
        "Step back",
        "Step forward",
        "Go to start",
        "Go to end",
        "Loop",
        "Set loop start A",
        "Set loop end B",
        "Timeline",
        "Mod buses",
        "Sessions",
        "Settings",
        "Live panel",
    ] {
        let r = h.get_by_label(name).rect();
        assert!(
            screen.contains_rect(r),
            "{name} at {r:?} is outside the 800x500 window"
        );
    }
    let speed = h.get_by_role_and_label(Role::Slider, "Speed").rect();
    assert!(screen.contains_rect(speed), "the speed slider at {speed:?}");
    // recording does not move the playback controls
    let play_before = h.get_by_label("Play").rect();
    inbox
        .send(WorkerMsg::RecordingStarted(
            "/tmp/a-very-long-session-file-name-2026-11-25-162250.msgpack".into(),
        ))
        .unwrap();
    inbox
        .send(WorkerMsg::RecordingStats(RecordingStats {
            elapsed_ms: 3_723_000,
            events: 123_456_789,
            bytes: 99_000_000_000,
            ..RecordingStats::default()
        }))
        .unwrap();
    h.run_steps(3);
    assert_eq!(h.get_by_label("Play").rect(), play_before);
}

/// The app's own producer (touches, and the player's republishing) stamps a
/// version-4 UUID session id, like `play` and `demo` (docs/formats.md section 2).
#[test]
fn a_touch_from_the_app_goes_out_as_user_with_a_version_4_uuid_session() {
    use integr8tor::app::control::{Control, ControlConfig};
    use integr8tor::app::workers::BusSettings;
    use integr8tor::kafka::{
        Connection, EmbeddedBroker, StartFrom, Subscriber, SubscriberConfig, SubscriberEvent,
    };
    use integr8tor::{ActorKind, Topic};

    let broker = EmbeddedBroker::start(None).unwrap();
    let (inbox, outbox_rx) = crossbeam_channel::unbounded();
    let outbox = Outbox::new(inbox, workers::no_waker());
    let control = Control::start(
        outbox,
        ControlConfig {
            pin_ms: 3000,
            connect: Some(BusSettings {
                brokers: Some(broker.bootstrap().to_owned()),
                options: Vec::new(),
                group_id: "integr8tor-uuid-test".to_owned(),
                start: StartFrom::Latest,
            }),
            demo: false,
        },
    )
    .unwrap();
    let sub = Subscriber::start(
        &Connection::to_embedded(&broker),
        SubscriberConfig::new("uuid-test-reader", &[Topic::Params]).start_from(StartFrom::Earliest),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut touches = 0;
    let found = loop {
        assert!(
            Instant::now() < deadline,
            "the app's touch never reached noise.params"
        );
        // touch until the app's publisher is up (it connects in the background)
        touches += 1;
        control
            .sender()
            .send(Command::Touch {
                path: "gen.1.cutoff".to_owned(),
                value: 0.25,
                held: false,
            })
            .unwrap();
        while outbox_rx.try_recv().is_ok() {}
        if let Ok(SubscriberEvent::Messages(batch)) =
            sub.events().recv_timeout(Duration::from_millis(300))
        {
            if let Some(m) = batch.into_iter().find(|m| m.actor == ActorKind::User) {
                break m.envelope();
            }
        }
    };
    assert!(touches >= 1);
    assert!(
        found.producer_id.starts_with("integr8tor.app."),
        "{}",
        found.producer_id
    );
    let id = uuid::Uuid::parse_str(&found.session_id)
        .unwrap_or_else(|e| panic!("{:?} is not a UUID: {e}", found.session_id));
    assert_eq!(id.get_version_num(), 4, "{id}");
    drop(control);
}

/// When the next frame is asked for after the last one (`None`: never).
fn next_repaint(f: &Fake) -> Option<Duration> {
    let out = &f.harness.output().viewport_output;
    out.get(&egui::ViewportId::ROOT)
        .map(|v| v.repaint_delay)
        .filter(|d| *d != Duration::MAX)
}

#[test]
fn paused_and_quiet_the_window_asks_for_no_frame_and_live_data_at_the_live_rate() {
    let mut f = fake_at_60fps();
    f.load_fixture();
    f.send(WorkerMsg::Playback(PlayerStatus {
        state: PlayState::Paused,
        position_ms: 1000,
        speed: 1.0,
        ..PlayerStatus::default()
    }));
    // let hover tooltips and first-frame layout settle, then nothing arrives
    f.harness.run_steps(30);
    for _ in 0..5 {
        f.harness.step();
        assert_eq!(
            next_repaint(&f),
            None,
            "a paused, quiet window draws nothing"
        );
    }
    // a live value: it flashes, so frames follow at the Live redraw rate
    f.send(live_cutoff());
    let live = test_settings().live_frame();
    assert_eq!(next_repaint(&f), Some(live));
    assert!(
        live >= Duration::from_secs(1) / 30,
        "at most 30 frames a second"
    );
}
