//! The playback invariant on virtual time: at every instant of playback, for
//! every path that is not pinned, muted or outside a solo, the last value the
//! player sent equals the session's exact state there.
//!
//! The session is random (user drags, MIDI changes, preset bursts, `mod`-actor
//! changes, a skewed producer clock, snapshots holding paths no event sets)
//! and written with `rmpv`, not the project's writer. The expected state is
//! computed here by brute force from the records, by the rule of the formats
//! document (last snapshot at or before t, then every parameter event at or
//! before t in `ts_ms` order, stably), independently of `Session::state_at`.
//! The player is driven through seeks, loop wraps, speed changes, pauses,
//! steps, touches, holds, live touches and mute/solo changes at several
//! speeds, and the invariant is checked at 1,000 random instants per run.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integr8tor::clock::{Clock, VirtualClock};
use integr8tor::engine::player::{
    group_matches, PlayState, PlayerCommand, PlayerConfig, PlayerCore, ReplaySink, Replayed,
};
use integr8tor::session::Session;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rmpv::Value;

const PATHS: [&str; 8] = [
    "gen.1.cutoff",
    "gen.1.drive",
    "gen.2.cutoff",
    "gen.2.drive",
    "master.volume",
    "mod.1.rate",
    // only snapshots hold these at first (a recording started mid-performance)
    "gen.3.cutoff",
    "gen.3.drive",
];
const ACTORS: [&str; 4] = ["user", "midi", "preset", "mod"];

/// One parameter event as written: arrival order is the vector's order.
#[derive(Debug, Clone)]
struct Ev {
    ts: i64,
    actor: &'static str,
    path: &'static str,
    value: f64,
}

/// A record of the file, in file order.
enum Rec {
    Event(Ev),
    Snapshot(i64, BTreeMap<&'static str, f64>),
}

fn random_session(rng: &mut StdRng) -> Vec<Rec> {
    let t0 = 1_790_000_000_000i64;
    let mut evs: Vec<(i64, Ev)> = Vec::new(); // (arrival, event)
    let mut t = t0 + 50;
    while t < t0 + 20_000 {
        match rng.gen_range(0..10) {
            0 => {
                // a preset load: every touched path at one instant
                for path in &PATHS[..6] {
                    let v = (rng.gen::<f64>() * 1e6).round() / 1e6;
                    let ev = Ev {
                        ts: t,
                        actor: "preset",
                        path,
                        value: v,
                    };
                    evs.push((t, ev));
                }
            }
            1 => {
                // the other producer, with a skewed clock: stamped earlier than it arrives
                let ev = Ev {
                    ts: t - rng.gen_range(0..40),
                    actor: "midi",
                    path: PATHS[rng.gen_range(0..6)],
                    value: rng.gen(),
                };
                evs.push((t, ev));
            }
            _ => {
                let path = if rng.gen_bool(0.03) {
                    "gen.3.drive" // late in the take someone touches an untouched path
                } else {
                    PATHS[rng.gen_range(0..6)]
                };
                let ev = Ev {
                    ts: t,
                    actor: ACTORS[[0, 0, 0, 3][rng.gen_range(0..4)]],
                    path,
                    value: rng.gen(),
                };
                evs.push((t, ev));
            }
        }
        t += rng.gen_range(1..120);
    }
    evs.sort_by_key(|e| e.0); // arrival order
                              // snapshots by the writing rule, from a known state the recording started with
    let mut state: BTreeMap<&'static str, f64> = BTreeMap::new();
    state.insert("gen.3.cutoff", 0.25);
    state.insert("gen.3.drive", 0.75);
    let mut recs = Vec::new();
    let mut last_snap = i64::MIN;
    for (_, ev) in evs {
        state.insert(ev.path, ev.value);
        let ts = ev.ts;
        recs.push(Rec::Event(ev));
        if last_snap == i64::MIN || ts - last_snap > 2000 {
            // the untouched path drifts in the synth's known state between snapshots
            if rng.gen_bool(0.5) {
                state.insert("gen.3.cutoff", rng.gen());
            }
            recs.push(Rec::Snapshot(ts, state.clone()));
            last_snap = ts;
        }
    }
    recs
}

fn write_session(path: &std::path::Path, recs: &[Rec]) {
    let mut out = std::fs::File::create(path).unwrap();
    let s = |x: &str| Value::from(x);
    for (seq, r) in recs.iter().enumerate() {
        let v = match r {
            Rec::Event(e) => {
                let producer = if e.actor == "midi" {
                    "sc.bridge"
                } else {
                    "python.gui"
                };
                let data = Value::Map(vec![
                    (s("v"), Value::from(1)),
                    (s("session_id"), s("6f1c7a52-34b2-4c8e-9d43-0b8f6a1e2c3d")),
                    (s("producer_id"), s(producer)),
                    (s("seq"), Value::from(seq as u64 + 1)),
                    (s("ts_ms"), Value::from(e.ts)),
                    (s("path"), s(e.path)),
                    (s("value"), Value::F64(e.value)),
                    (s("value_mapped"), Value::Nil),
                    (s("actor"), s(e.actor)),
                    (s("source"), s("python")),
                ]);
                Value::Map(vec![
                    (s("type"), s("event")),
                    (s("topic"), s("noise.params")),
                    (s("key"), s(e.path)),
                    (s("data"), data),
                ])
            }
            Rec::Snapshot(ts, state) => Value::Map(vec![
                (s("type"), s("snapshot")),
                (s("ts_ms"), Value::from(*ts)),
                (
                    s("state"),
                    Value::Map(state.iter().map(|(k, v)| (s(k), Value::F64(*v))).collect()),
                ),
            ]),
        };
        rmpv::encode::write_value(&mut out, &v).unwrap();
    }
    out.flush().unwrap();
}

/// The exact state at `t`, and for each path the actor of the event that set
/// it (`None` when a snapshot did).
fn brute_state(recs: &[Rec], t: i64) -> BTreeMap<&'static str, (f64, Option<&'static str>)> {
    let mut state = BTreeMap::new();
    let mut best: Option<(i64, usize)> = None;
    for (i, r) in recs.iter().enumerate() {
        if let Rec::Snapshot(ts, _) = r {
            if *ts <= t && best.is_none_or(|(bts, _)| *ts >= bts) {
                best = Some((*ts, i));
            }
        }
    }
    if let Some((_, i)) = best {
        if let Rec::Snapshot(_, snap) = &recs[i] {
            for (k, v) in snap {
                state.insert(*k, (*v, None));
            }
        }
    }
    let mut evs: Vec<&Ev> = recs
        .iter()
        .filter_map(|r| match r {
            Rec::Event(e) if e.ts <= t => Some(e),
            _ => None,
        })
        .collect();
    evs.sort_by_key(|e| e.ts); // stable
    for e in evs {
        state.insert(e.path, (e.value, Some(e.actor)));
    }
    state
}

#[derive(Clone)]
struct LastSent(Arc<Mutex<BTreeMap<String, f64>>>);

impl ReplaySink for LastSent {
    fn param(&mut self, m: Replayed<'_>) {
        if let Some(env) = &m.recorded {
            assert_eq!(env.param().map(|p| p.1), Some(m.value), "{m:?}");
        }
        self.0.lock().unwrap().insert(m.path.to_owned(), m.value);
    }
    fn mod_value(&mut self, _bus: i64, _m: Replayed<'_>) {}
}

struct Run {
    clock: VirtualClock,
    core: PlayerCore,
    sent: LastSent,
    recs: Vec<Rec>,
    muted: Vec<String>,
    solo: Option<String>,
    checks: u64,
    /// The last operations, for a failure's message.
    log: Vec<String>,
}

impl Run {
    fn at(&mut self, t: Duration) {
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
        let now = self.clock.now();
        self.core.handle(c, now);
    }

    fn check(&mut self, what: &str) {
        let now = self.clock.now();
        let status = self.core.status(now);
        if status.state == PlayState::Stopped {
            return;
        }
        let t = status.position_ms;
        let expected = brute_state(&self.recs, t);
        let sent = self.sent.0.lock().unwrap();
        for (path, (value, actor)) in expected {
            let pinned = status.pins.iter().any(|p| p.path == path);
            let muted = self.muted.iter().any(|g| group_matches(g, path))
                || self
                    .solo
                    .as_deref()
                    .is_some_and(|g| !group_matches(g, path));
            // a path the modulation moved last is the live modulation's
            if pinned || muted || actor == Some("mod") {
                continue;
            }
            assert_eq!(
                sent.get(path).copied(),
                Some(value),
                "{path} at {t} after {what} (speed {}, state {:?}); last operations: {:#?}",
                status.speed,
                status.state,
                &self.log[self.log.len().saturating_sub(8)..]
            );
            self.checks += 1;
        }
    }
}

fn run_once(seed: u64, speed: f64) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let recs = random_session(&mut rng);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("take.msgpack");
    write_session(&file, &recs);
    let session = Arc::new(Session::open(&file).unwrap());
    let (first, last) = session.time_range().unwrap();
    let clock = VirtualClock::new();
    let sent = LastSent(Arc::default());
    let config = PlayerConfig {
        speed,
        ..PlayerConfig::default()
    };
    let core = PlayerCore::new(session, Box::new(sent.clone()), config);
    let mut run = Run {
        clock,
        core,
        sent,
        recs,
        muted: Vec::new(),
        solo: None,
        checks: 0,
        log: Vec::new(),
    };
    run.cmd(PlayerCommand::Play);
    let groups = ["gen.1.*", "gen.2.*", "master.*", "gen.3.*"];
    for _ in 0..1000 {
        let step = Duration::from_micros(rng.gen_range(0..400_000));
        let to = run.clock.now() + step;
        run.at(to);
        let what = match rng.gen_range(0..40) {
            0..=3 => {
                let t = rng.gen_range(first - 500..last + 500);
                run.cmd(PlayerCommand::Seek(t));
                "seek"
            }
            4 => {
                let a = rng.gen_range(first..last);
                let b = (a + rng.gen_range(200..4000)).min(last);
                run.cmd(PlayerCommand::SetLoop(Some((a, b))));
                "loop"
            }
            5 => {
                run.cmd(PlayerCommand::SetLoop(None));
                "loop off"
            }
            6 | 7 => {
                run.cmd(PlayerCommand::SetSpeed(rng.gen_range(0.1..8.0)));
                "speed"
            }
            8 => {
                run.cmd(PlayerCommand::Pause);
                "pause"
            }
            9 | 10 => {
                run.cmd(PlayerCommand::Play);
                "play"
            }
            11 => {
                run.cmd(PlayerCommand::Pause);
                run.cmd(PlayerCommand::StepForward);
                "step forward"
            }
            12 => {
                run.cmd(PlayerCommand::Pause);
                run.cmd(PlayerCommand::StepBack);
                "step back"
            }
            13 | 14 => {
                run.cmd(PlayerCommand::Touch(PATHS[rng.gen_range(0..8)].into()));
                "touch"
            }
            15 => {
                run.cmd(PlayerCommand::Hold(PATHS[rng.gen_range(0..8)].into()));
                "hold"
            }
            16 | 21 | 22 => {
                // the performer lets go of whatever the pointer held
                for p in PATHS {
                    run.cmd(PlayerCommand::Release(p.into()));
                }
                "release"
            }
            17 => {
                run.cmd(PlayerCommand::LiveUser {
                    path: PATHS[rng.gen_range(0..8)].into(),
                    producer_id: "noise-engine".into(),
                    value: rng.gen(),
                });
                "live touch"
            }
            18 | 19 => {
                let g = groups[rng.gen_range(0..groups.len())].to_owned();
                let muted = !run.muted.contains(&g);
                run.muted.retain(|x| *x != g);
                if muted {
                    run.muted.push(g.clone());
                }
                run.cmd(PlayerCommand::SetMuted { group: g, muted });
                "mute"
            }
            20 => {
                let g = rng
                    .gen_bool(0.5)
                    .then(|| groups[rng.gen_range(0..groups.len())].to_owned());
                run.solo = g.clone();
                run.cmd(PlayerCommand::SetSolo(g));
                "solo"
            }
            _ => "time",
        };
        let st = run.core.status(run.clock.now());
        let line = format!(
            "{what}: now at {} {:?} pins {:?}",
            st.position_ms, st.state, st.pins
        );
        run.log.push(line);
        run.check(what);
    }
    run.checks
}

#[test]
fn the_replayed_state_equals_the_exact_state_at_every_checked_instant() {
    let mut checks = 0;
    for (seed, speed) in [(1, 1.0), (2, 0.5), (3, 2.0), (4, 8.0), (5, 0.1)] {
        checks += run_once(seed, speed);
    }
    // the checks compared many (instant, path) pairs, not a handful
    assert!(checks > 8_000, "only {checks} comparisons");
}

#[test]
fn state_at_counts_what_only_a_snapshot_holds() {
    let mut rng = StdRng::seed_from_u64(9);
    let recs = random_session(&mut rng);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("take.msgpack");
    write_session(&file, &recs);
    let session = Session::open(&file).unwrap();
    let (first, last) = session.time_range().unwrap();
    for _ in 0..500 {
        let t = rng.gen_range(first - 100..last + 100);
        let expected: BTreeMap<String, f64> = brute_state(&recs, t)
            .into_iter()
            .map(|(k, (v, _))| (k.to_owned(), v))
            .collect();
        let got: BTreeMap<String, f64> = session
            .state_at(t)
            .into_iter()
            .map(|(n, v)| (session.name(n).to_owned(), v))
            .collect();
        assert_eq!(got, expected, "at {t}");
        for (path, v) in &expected {
            let id = session.name_id(path).unwrap();
            assert_eq!(session.value_at(id, t), Some(*v), "{path} at {t}");
        }
    }
    assert!(
        session.param_paths().any(|p| p == "gen.3.cutoff"),
        "a path only snapshots hold is a parameter of the session"
    );
}
