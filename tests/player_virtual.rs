//! The player on virtual time: every dispatch is checked at its exact clock
//! instant. The core is driven the way its thread drives it: jump the clock
//! to the next deadline, advance, repeat.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use integr8tor::clock::{Clock, VirtualClock};
use integr8tor::engine::player::{
    group_matches, PlayState, Player, PlayerCommand, PlayerConfig, PlayerCore, ReplaySink, Replayed,
};
use integr8tor::session::{Session, SessionWriter};
use integr8tor::{Actor, Envelope};

/// One message the player sent: clock ms, path, value.
type Sent = (f64, String, f64);

#[derive(Clone)]
struct Capture {
    clock: VirtualClock,
    sent: Arc<Mutex<Vec<Sent>>>,
}

impl ReplaySink for Capture {
    fn param(&mut self, m: Replayed<'_>) {
        let at = self.clock.now().as_secs_f64() * 1000.0;
        self.sent
            .lock()
            .unwrap()
            .push((at, m.path.to_owned(), m.value));
    }
    fn mod_value(&mut self, _bus: i64, m: Replayed<'_>) {
        self.param(m);
    }
}

struct Rig {
    clock: VirtualClock,
    capture: Capture,
    core: PlayerCore,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn new(events: &[(i64, Actor, &str, f64)], config: PlayerConfig) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.msgpack");
        let mut w = SessionWriter::create(&path).unwrap();
        for (seq, (ts, actor, p, v)) in events.iter().enumerate() {
            let env =
                Envelope::param_change("s", "synth", seq as u64 + 1, *ts, actor.clone(), p, *v);
            w.append_envelope(&env).unwrap();
        }
        w.finish().unwrap();
        let session = Arc::new(Session::open(&path).unwrap());
        let clock = VirtualClock::new();
        let capture = Capture {
            clock: clock.clone(),
            sent: Arc::default(),
        };
        let core = PlayerCore::new(session, Box::new(capture.clone()), config);
        Rig {
            clock,
            capture,
            core,
            _dir: dir,
        }
    }

    fn now(&self) -> Duration {
        self.clock.now()
    }

    fn at(&mut self, clock_ms: f64) {
        let t = Duration::from_secs_f64(clock_ms / 1000.0);
        while let Some(d) = self.core.next_deadline() {
            if d > t {
                break;
            }
            self.clock.set(d);
            self.core.advance(d);
        }
        self.clock.set(t);
        self.core.advance(t);
    }

    fn cmd(&mut self, c: PlayerCommand) {
        let now = self.now();
        self.core.handle(c, now);
    }

    fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.capture.sent.lock().unwrap())
    }
}

fn base() -> Vec<(i64, Actor, &'static str, f64)> {
    vec![
        (1000, Actor::User, "gen.1.cutoff", 0.1),
        (1100, Actor::User, "gen.2.drive", 0.2),
        (1150, Actor::Preset, "master.volume", 0.8),
        (1250, Actor::User, "gen.1.cutoff", 0.3),
        (1300, Actor::Midi, "gen.2.drive", 0.9),
        (1400, Actor::User, "master.volume", 0.5),
        (2000, Actor::User, "gen.2.drive", 0.25),
    ]
}

fn s(at: f64, p: &str, v: f64) -> Sent {
    (at, p.to_owned(), v)
}

#[test]
fn user_midi_and_preset_changes_go_out_in_order_at_their_recorded_spacing() {
    let mut events = base();
    events.push((1500, Actor::Mod, "gen.1.cutoff", 0.99));
    let mut r = Rig::new(&events, PlayerConfig::default());
    r.at(10.0);
    r.cmd(PlayerCommand::Play);
    r.at(5000.0);
    assert_eq!(
        r.take(),
        vec![
            s(10.0, "gen.1.cutoff", 0.1),
            s(110.0, "gen.2.drive", 0.2),
            s(160.0, "master.volume", 0.8),
            s(260.0, "gen.1.cutoff", 0.3),
            s(310.0, "gen.2.drive", 0.9),
            s(410.0, "master.volume", 0.5),
            s(1010.0, "gen.2.drive", 0.25),
        ],
        "user, preset and midi changes, not the mod one, each due at (ts - first) / speed"
    );
    let status = r.core.status(r.now());
    assert_eq!(status.dispatched, 7);
    assert_eq!(status.lateness.max_us, 0.0, "virtual time is exact");
    assert!(r.core.take_finished());
    assert_eq!(r.core.state(), PlayState::Paused);
}

#[test]
fn a_speed_change_mid_play_keeps_the_position() {
    let mut r = Rig::new(&base(), PlayerConfig::default());
    r.cmd(PlayerCommand::Play);
    r.at(150.0); // session 1150
    r.cmd(PlayerCommand::SetSpeed(2.0));
    assert_eq!(r.core.status(r.now()).position_ms, 1150);
    r.at(1000.0);
    let sent = r.take();
    assert_eq!(
        sent[3..],
        [
            s(200.0, "gen.1.cutoff", 0.3),  // 150 + 100 / 2
            s(225.0, "gen.2.drive", 0.9),   // 150 + 150 / 2
            s(275.0, "master.volume", 0.5), // 150 + 250 / 2
            s(575.0, "gen.2.drive", 0.25),  // 150 + 850 / 2
        ]
    );
    r.cmd(PlayerCommand::SetSpeed(100.0));
    assert_eq!(r.core.status(r.now()).speed, 8.0, "clamped to 8x");
}

/// A player stopped (the app replaces it when the bus changes) says where it
/// was, so its successor goes on from there: nobody else keeps a copy.
#[test]
fn a_stopped_player_returns_its_final_status() {
    let r = Rig::new(&base(), PlayerConfig::default());
    let session = Arc::clone(r.core.session());
    let clock = VirtualClock::new();
    let sink = Capture {
        clock: clock.clone(),
        sent: Arc::default(),
    };
    let player = Player::start(
        session,
        Box::new(sink.clone()),
        Arc::new(clock),
        PlayerConfig::default(),
    )
    .unwrap();
    player.send(PlayerCommand::SetSpeed(2.0));
    player.send(PlayerCommand::SetLoop(Some((1100, 1400))));
    player.send(PlayerCommand::Seek(1300));
    let last = player.stop().expect("the player's thread ended normally");
    assert_eq!(last.position_ms, 1300);
    assert_eq!(last.speed, 2.0);
    assert_eq!(last.loop_range, Some((1100, 1400)));
    assert_ne!(last.state, PlayState::Playing);
    // the loop moved the position to 1100 and the seek to 1300, each
    // republishing the state there, all before the player stopped
    let sent = sink.sent.lock().unwrap();
    let mut at_1300: Vec<(&str, f64)> =
        sent[2..].iter().map(|(_, p, v)| (p.as_str(), *v)).collect();
    at_1300.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        at_1300,
        [
            ("gen.1.cutoff", 0.3),
            ("gen.2.drive", 0.9),
            ("master.volume", 0.8)
        ]
    );
}

#[test]
fn pause_holds_and_resume_continues_where_it_was() {
    let mut r = Rig::new(&base(), PlayerConfig::default());
    r.cmd(PlayerCommand::Play);
    r.at(50.0);
    r.cmd(PlayerCommand::Pause);
    r.at(10_000.0);
    assert_eq!(r.take(), vec![s(0.0, "gen.1.cutoff", 0.1)]);
    assert_eq!(r.core.status(r.now()).position_ms, 1050);
    r.cmd(PlayerCommand::Play);
    r.at(10_100.0);
    assert_eq!(
        r.take(),
        vec![
            s(10_050.0, "gen.2.drive", 0.2),
            s(10_100.0, "master.volume", 0.8)
        ]
    );
}

#[test]
fn seek_republishes_the_exact_state_then_continues() {
    let mut r = Rig::new(&base(), PlayerConfig::default());
    r.cmd(PlayerCommand::Play);
    r.at(20.0);
    r.take();
    r.cmd(PlayerCommand::Seek(1300));
    let mut state = r.take();
    state.sort_by(|a, b| a.1.cmp(&b.1));
    // every actor counts for the state: the midi and preset values too
    assert_eq!(
        state,
        vec![
            s(20.0, "gen.1.cutoff", 0.3),
            s(20.0, "gen.2.drive", 0.9),
            s(20.0, "master.volume", 0.8),
        ]
    );
    r.at(2000.0);
    assert_eq!(
        r.take(),
        vec![
            s(120.0, "master.volume", 0.5),
            s(720.0, "gen.2.drive", 0.25)
        ]
    );
}

#[test]
fn a_loop_wraps_and_republishes_the_state_at_its_start() {
    let mut r = Rig::new(&base(), PlayerConfig::default());
    r.cmd(PlayerCommand::SetLoop(Some((1050, 1260))));
    let seek = r.take();
    assert_eq!(
        seek,
        vec![s(0.0, "gen.1.cutoff", 0.1)],
        "moved into the loop"
    );
    r.cmd(PlayerCommand::Play);
    r.at(450.0);
    assert_eq!(
        r.take(),
        vec![
            s(50.0, "gen.2.drive", 0.2),
            s(100.0, "master.volume", 0.8),
            s(200.0, "gen.1.cutoff", 0.3),
            // wrap at 210: the state at 1050
            s(210.0, "gen.1.cutoff", 0.1),
            s(260.0, "gen.2.drive", 0.2),
            s(310.0, "master.volume", 0.8),
            s(410.0, "gen.1.cutoff", 0.3),
            s(420.0, "gen.1.cutoff", 0.1),
        ]
    );
}

#[test]
fn a_touched_path_is_left_alone_then_returns_to_the_session() {
    let events = vec![
        (0, Actor::User, "gen.1.cutoff", 0.0),
        (500, Actor::User, "gen.1.cutoff", 0.5),
        (1000, Actor::User, "gen.1.cutoff", 0.6),
        (1000, Actor::User, "gen.2.drive", 0.1),
        (3500, Actor::User, "gen.1.cutoff", 0.7),
        (4000, Actor::User, "gen.1.cutoff", 0.8),
    ];
    let mut r = Rig::new(&events, PlayerConfig::default());
    r.cmd(PlayerCommand::Play);
    r.at(100.0);
    r.cmd(PlayerCommand::Touch("gen.1.cutoff".into()));
    r.at(900.0);
    r.cmd(PlayerCommand::Touch("gen.1.cutoff".into())); // extends to 3900
    let pins = r.core.status(r.now()).pins;
    assert_eq!(pins.len(), 1);
    assert_eq!(
        (pins[0].path.as_str(), pins[0].left_ms, pins[0].held),
        ("gen.1.cutoff", 3000, false)
    );
    r.at(5000.0);
    assert_eq!(
        r.take(),
        vec![
            s(0.0, "gen.1.cutoff", 0.0),
            s(1000.0, "gen.2.drive", 0.1),
            // the pin ran out at 3900: the session value there (from 3500)
            s(3900.0, "gen.1.cutoff", 0.7),
            s(4000.0, "gen.1.cutoff", 0.8),
        ]
    );
    let status = r.core.status(r.now());
    assert_eq!(status.skipped_pinned, 3);
    assert!(status.pins.is_empty());
}

#[test]
fn a_live_user_message_from_another_producer_pins_its_path() {
    let events = vec![
        (0, Actor::User, "gen.1.cutoff", 0.0),
        (1000, Actor::User, "gen.1.cutoff", 0.5),
        (2000, Actor::User, "gen.2.drive", 0.4),
        (2500, Actor::User, "gen.2.drive", 0.6),
    ];
    let mut r = Rig::new(&events, PlayerConfig::default());
    r.cmd(PlayerCommand::Play);
    r.at(500.0);
    r.cmd(PlayerCommand::LiveUser {
        path: "gen.1.cutoff".into(),
        producer_id: "noise-engine".into(),
        value: 0.9,
    });
    // the player's own messages coming back are not a performer
    r.cmd(PlayerCommand::LiveUser {
        path: "gen.2.drive".into(),
        producer_id: PlayerConfig::default().producer_id,
        value: 0.9,
    });
    r.at(4000.0);
    let sent = r.take();
    assert!(
        !sent.iter().any(|m| m.0 == 1000.0),
        "pinned by the live message: {sent:?}"
    );
    assert!(sent.contains(&s(2000.0, "gen.2.drive", 0.4)));
    assert!(sent.contains(&s(2500.0, "gen.2.drive", 0.6)));
    assert!(
        sent.contains(&s(3500.0, "gen.1.cutoff", 0.5)),
        "pin expiry resend: {sent:?}"
    );
}

#[test]
fn a_pin_can_glide_back_to_the_session() {
    let events = vec![
        (0, Actor::User, "gen.1.cutoff", 0.2),
        (10_000, Actor::User, "gen.2.drive", 0.4),
    ];
    let config = PlayerConfig {
        glide_ms: 100,
        glide_step_ms: 25,
        pin_ms: 1000,
        ..PlayerConfig::default()
    };
    let mut r = Rig::new(&events, config);
    r.cmd(PlayerCommand::Play);
    r.at(100.0);
    r.take();
    r.cmd(PlayerCommand::LiveUser {
        path: "gen.1.cutoff".into(),
        producer_id: "synth".into(),
        value: 1.0,
    });
    r.at(1300.0);
    let sent: Vec<(f64, f64)> = r.take().into_iter().map(|m| (m.0, m.2)).collect();
    let expect = [
        (1100.0, 1.0),
        (1125.0, 0.8),
        (1150.0, 0.6),
        (1175.0, 0.4),
        (1200.0, 0.2),
    ];
    assert_eq!(sent.len(), expect.len(), "{sent:?}");
    for ((t, v), (et, ev)) in sent.iter().zip(expect) {
        assert_eq!(*t, et);
        assert!((v - ev).abs() < 1e-9, "{sent:?}");
    }
}

#[test]
fn muted_and_soloed_groups() {
    let mut r = Rig::new(&base(), PlayerConfig::default());
    r.cmd(PlayerCommand::SetMuted {
        group: "gen.2.*".into(),
        muted: true,
    });
    r.cmd(PlayerCommand::Play);
    r.at(450.0);
    r.cmd(PlayerCommand::SetMuted {
        group: "gen.2.*".into(),
        muted: false,
    });
    r.cmd(PlayerCommand::SetSolo(Some("gen.2.*".into())));
    r.at(5000.0);
    assert_eq!(
        r.take(),
        vec![
            s(0.0, "gen.1.cutoff", 0.1),
            s(150.0, "master.volume", 0.8),
            s(250.0, "gen.1.cutoff", 0.3),
            s(400.0, "master.volume", 0.5),
            // un-muted: gen.2 gets its current session value at once
            s(450.0, "gen.2.drive", 0.9),
            s(1000.0, "gen.2.drive", 0.25),
        ]
    );
    assert_eq!(r.core.status(r.now()).skipped_muted, 2);
    assert!(group_matches("master.*", "master.volume"));
    assert!(!group_matches("gen.1.*", "gen.10.cutoff"));
    assert!(group_matches("*", "anything"));
}

#[test]
fn stepping_while_paused_moves_one_instant_at_a_time() {
    let mut r = Rig::new(&base(), PlayerConfig::default());
    for _ in 0..4 {
        r.cmd(PlayerCommand::StepForward);
    }
    assert_eq!(r.core.status(r.now()).position_ms, 1250);
    r.cmd(PlayerCommand::StepBack);
    assert_eq!(r.core.status(r.now()).position_ms, 1150);
    r.cmd(PlayerCommand::StepBack);
    assert_eq!(r.core.status(r.now()).position_ms, 1100);
    assert_eq!(
        r.take(),
        vec![
            s(0.0, "gen.1.cutoff", 0.1),
            s(0.0, "gen.2.drive", 0.2),
            s(0.0, "master.volume", 0.8),
            s(0.0, "gen.1.cutoff", 0.3),
            s(0.0, "gen.1.cutoff", 0.1), // undo 0.3
                                         // undoing the first master.volume: it had no earlier value, nothing to send
        ]
    );
    r.cmd(PlayerCommand::StepForward);
    assert_eq!(r.take(), vec![s(0.0, "master.volume", 0.8)]);
    assert_eq!(r.core.state(), PlayState::Paused);
}

#[test]
fn a_preset_load_is_one_step_and_goes_out_as_the_burst_it_was() {
    let events = vec![
        (1000, Actor::User, "gen.1.cutoff", 0.1),
        (2000, Actor::Preset, "gen.1.cutoff", 0.5),
        (2000, Actor::Preset, "gen.1.drive", 0.6),
        (2000, Actor::Preset, "master.volume", 0.7),
        (3000, Actor::User, "gen.1.drive", 0.2),
    ];
    let mut r = Rig::new(&events, PlayerConfig::default());
    r.cmd(PlayerCommand::StepForward);
    r.cmd(PlayerCommand::StepForward);
    assert_eq!(r.core.status(r.now()).position_ms, 2000);
    r.take();
    r.cmd(PlayerCommand::StepBack);
    let mut undone = r.take();
    undone.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        undone,
        vec![s(0.0, "gen.1.cutoff", 0.1)],
        "the whole preset is undone; only cutoff had a value before it"
    );
    r.cmd(PlayerCommand::Play);
    r.at(1500.0);
    assert_eq!(
        r.take(),
        vec![
            s(1000.0, "gen.1.cutoff", 0.5),
            s(1000.0, "gen.1.drive", 0.6),
            s(1000.0, "master.volume", 0.7),
        ],
        "all three at the same instant, in file order"
    );
}

#[test]
fn a_held_touch_pins_until_released_then_for_the_pin_duration() {
    let events = vec![
        (0, Actor::User, "gen.1.cutoff", 0.0),
        (5000, Actor::User, "gen.1.cutoff", 0.5),
        (9000, Actor::User, "gen.1.cutoff", 0.6),
        (12_000, Actor::User, "gen.1.cutoff", 0.7),
    ];
    let mut r = Rig::new(&events, PlayerConfig::default());
    r.cmd(PlayerCommand::Play);
    r.at(100.0);
    r.cmd(PlayerCommand::Hold("gen.1.cutoff".into()));
    r.at(8000.0);
    let pins = r.core.status(r.now()).pins;
    assert!(pins[0].held, "{pins:?}");
    assert_eq!(r.take(), vec![s(0.0, "gen.1.cutoff", 0.0)]);
    r.cmd(PlayerCommand::Release("gen.1.cutoff".into()));
    r.at(13_000.0);
    assert_eq!(
        r.take(),
        vec![
            // released at 8000: the pin runs out at 11000, the session value there goes out
            s(11_000.0, "gen.1.cutoff", 0.6),
            s(12_000.0, "gen.1.cutoff", 0.7),
        ]
    );
    assert_eq!(r.core.status(r.now()).skipped_pinned, 2);
}

#[test]
fn stop_returns_to_the_start_and_play_replays_from_there() {
    let mut r = Rig::new(&base(), PlayerConfig::default());
    r.cmd(PlayerCommand::Play);
    r.at(300.0);
    r.cmd(PlayerCommand::Stop);
    assert_eq!(r.core.status(r.now()).position_ms, 1000);
    r.take();
    r.at(1000.0);
    assert!(r.take().is_empty(), "stopped means silent");
    r.cmd(PlayerCommand::Play);
    r.at(1000.0);
    assert_eq!(r.take(), vec![s(1000.0, "gen.1.cutoff", 0.1)]);
}

#[test]
fn from_and_to_bound_playback_and_start_from_the_state_there() {
    let config = PlayerConfig {
        from: Some(1200),
        to: Some(1500),
        ..PlayerConfig::default()
    };
    let mut r = Rig::new(&base(), config);
    r.cmd(PlayerCommand::Play);
    let mut start = r.take();
    start.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        start,
        vec![
            s(0.0, "gen.1.cutoff", 0.1),
            s(0.0, "gen.2.drive", 0.2),
            s(0.0, "master.volume", 0.8)
        ]
    );
    r.at(5000.0);
    assert_eq!(
        r.take(),
        vec![
            s(50.0, "gen.1.cutoff", 0.3),
            s(100.0, "gen.2.drive", 0.9),
            s(200.0, "master.volume", 0.5)
        ]
    );
    assert!(r.core.take_finished());
}
