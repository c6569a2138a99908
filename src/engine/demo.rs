//! A simulated Noise Engine, so everything can be tried without the synth:
//! user drags on a few paths at up to 60 Hz, 16 mod buses at 30 Hz, level
//! meters at 30 Hz, note events, and a preset load every so often (all
//! params with `actor = "preset"`, a `preset_load` event and the full state
//! on `noise.state`). Everything goes through a [`Publisher`], so the rate
//! limits and keys are the real ones.

use crate::thread::NamedThread;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::EngineError;
use crate::clock::{Clock, MonotonicClock, SharedClock};
use crate::kafka::{Connection, Draft, PublishOutcome, Publisher, PublisherConfig};
use crate::{Actor, RawValue};

/// The demo synth's parameter paths.
pub fn demo_paths() -> Vec<String> {
    let mut paths = Vec::new();
    for g in 1..=4 {
        for p in ["cutoff", "resonance", "drive", "frequency", "level"] {
            paths.push(format!("gen.{g}.{p}"));
        }
    }
    for p in [
        "mod.1.rate",
        "mod.2.depth",
        "master.volume",
        "master.compressor.ratio",
    ] {
        paths.push(p.to_owned());
    }
    paths
}

/// How the demo behaves.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Producer id on every message.
    pub producer_id: String,
    /// Seed of the pseudo-random performer.
    pub seed: u64,
    /// Time between preset loads (the first is at the start).
    pub preset_every: Duration,
    /// Stop by itself after this long.
    pub duration: Option<Duration>,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            producer_id: "noise-engine.demo".to_owned(),
            seed: 0x1d2e_3f4a,
            preset_every: Duration::from_secs(20),
            duration: None,
        }
    }
}

/// What the demo got into the publisher's queue, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemoStats {
    /// `noise.params` with `actor = "user"`.
    pub user_params: u64,
    /// `noise.params` with `actor = "preset"`.
    pub preset_params: u64,
    /// `noise.mod`.
    pub mod_values: u64,
    /// `noise.audio`.
    pub levels: u64,
    /// `noise.events`.
    pub events: u64,
    /// `noise.state`.
    pub states: u64,
    /// Not queued (rate limited, queue full, rejected).
    pub not_queued: u64,
}

#[derive(Default)]
struct Counters {
    user_params: AtomicU64,
    preset_params: AtomicU64,
    mod_values: AtomicU64,
    levels: AtomicU64,
    events: AtomicU64,
    states: AtomicU64,
    not_queued: AtomicU64,
}

/// A running demo. Dropping it stops it and flushes its publisher.
pub struct Demo {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    thread: NamedThread<()>,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Demo {
    /// Starts publishing.
    pub fn start(connection: &Connection, config: DemoConfig) -> Result<Demo, EngineError> {
        let clock: SharedClock = Arc::new(MonotonicClock::new());
        let publisher = Publisher::new(
            connection,
            PublisherConfig {
                source: "demo".to_owned(),
                ..PublisherConfig::new(config.producer_id.clone(), super::new_session_id())
            },
            Arc::clone(&clock),
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let thread = {
            let stop = Arc::clone(&stop);
            let counters = Arc::clone(&counters);
            NamedThread::spawn("demo", move || {
                Performer::new(publisher, config, counters).run(&*clock, &stop)
            })
            .map_err(|error| EngineError::Io {
                context: "starting the demo thread".to_owned(),
                error,
            })?
        };
        Ok(Demo {
            stop,
            counters,
            thread,
        })
    }

    /// What was queued so far.
    pub fn stats(&self) -> DemoStats {
        let c = &self.counters;
        DemoStats {
            user_params: c.user_params.load(Ordering::Relaxed),
            preset_params: c.preset_params.load(Ordering::Relaxed),
            mod_values: c.mod_values.load(Ordering::Relaxed),
            levels: c.levels.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
            states: c.states.load(Ordering::Relaxed),
            not_queued: c.not_queued.load(Ordering::Relaxed),
        }
    }

    /// Whether it stopped by itself (its duration ran out).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Stops, waits for the queued messages to be delivered, returns the counts.
    pub fn stop(mut self) -> DemoStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.thread.join_quietly();
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Drag {
    path: usize,
    from: f64,
    to: f64,
    start_tick: u64,
    ticks: u64,
}

struct Performer {
    publisher: Publisher,
    config: DemoConfig,
    counters: Arc<Counters>,
    rng: Rng,
    paths: Vec<String>,
    values: Vec<f64>,
    drags: Vec<Drag>,
    notes_on: Vec<i64>,
    preset_no: u64,
}

/// The performer's tick: 60 Hz.
const TICK: Duration = Duration::from_nanos(16_666_667);

impl Performer {
    fn new(publisher: Publisher, config: DemoConfig, counters: Arc<Counters>) -> Performer {
        let paths = demo_paths();
        let mut rng = Rng(config.seed | 1);
        let values = paths.iter().map(|_| rng.unit()).collect();
        Performer {
            publisher,
            config,
            counters,
            rng,
            paths,
            values,
            drags: Vec::new(),
            notes_on: Vec::new(),
            preset_no: 0,
        }
    }

    fn count(&self, outcome: PublishOutcome, counter: &AtomicU64) {
        match outcome {
            PublishOutcome::Queued { .. } => counter.fetch_add(1, Ordering::Relaxed),
            _ => self.counters.not_queued.fetch_add(1, Ordering::Relaxed),
        };
    }

    fn run(mut self, clock: &dyn Clock, stop: &AtomicBool) {
        let start = clock.now();
        let preset_ticks = (self.config.preset_every.as_secs_f64() / TICK.as_secs_f64())
            .round()
            .max(1.0) as u64;
        let mut tick: u64 = 0;
        while !stop.load(Ordering::Acquire) {
            let elapsed = TICK * tick as u32;
            if self.config.duration.is_some_and(|d| elapsed >= d) {
                break;
            }
            clock.sleep_until(start + elapsed);
            if tick % preset_ticks == 0 {
                self.load_preset();
            }
            self.perform(tick);
            if tick % 2 == 0 {
                self.modulate(tick);
                self.meter(tick);
            }
            self.publisher.flush_rate_limited();
            tick += 1;
        }
        for note in std::mem::take(&mut self.notes_on) {
            self.note(false, note);
        }
        if let Err(e) = self.publisher.flush(Duration::from_secs(5)) {
            log::warn!("demo: not every message was delivered: {e}");
        }
    }

    fn load_preset(&mut self) {
        self.preset_no += 1;
        let name = format!("demo_{}", self.preset_no);
        let outcome = self.publisher.publish(Draft::event(
            Actor::Preset,
            "preset_load",
            vec![(
                "preset".to_owned(),
                RawValue::from_value(&name.as_str().into()),
            )],
        ));
        self.count(outcome, &self.counters.events);
        self.drags.clear();
        for i in 0..self.paths.len() {
            self.values[i] = (self.rng.unit() * 1000.0).round() / 1000.0;
            let outcome = self.publisher.publish(Draft::param(
                Actor::Preset,
                self.paths[i].clone(),
                self.values[i],
            ));
            self.count(outcome, &self.counters.preset_params);
        }
        let state = rmpv::Value::Map(
            self.paths
                .iter()
                .zip(&self.values)
                .map(|(p, v)| (p.as_str().into(), (*v).into()))
                .collect(),
        );
        let outcome = self
            .publisher
            .publish(Draft::state("preset", RawValue::from_value(&state)));
        self.count(outcome, &self.counters.states);
    }

    fn perform(&mut self, tick: u64) {
        // start a gesture now and then, at most three at once
        if self.drags.len() < 3 && self.rng.below(45) == 0 {
            let path = self.rng.below(self.paths.len() as u64) as usize;
            if !self.drags.iter().any(|d| d.path == path) {
                let to = self.rng.unit();
                self.drags.push(Drag {
                    path,
                    from: self.values[path],
                    to,
                    start_tick: tick,
                    ticks: 30 + self.rng.below(150),
                });
            }
        }
        let mut moves = Vec::new();
        self.drags.retain(|d| {
            let t = ((tick - d.start_tick) as f64 / d.ticks as f64).min(1.0);
            // ease in and out, with a little hand tremor
            let eased = t * t * (3.0 - 2.0 * t);
            let wobble = (tick as f64 * 0.7 + d.path as f64).sin() * 0.004 * (1.0 - t);
            let v = (d.from + (d.to - d.from) * eased + wobble).clamp(0.0, 1.0);
            moves.push((d.path, (v * 10_000.0).round() / 10_000.0));
            t < 1.0
        });
        for (path, v) in moves {
            self.values[path] = v;
            let outcome =
                self.publisher
                    .publish(Draft::param(Actor::User, self.paths[path].clone(), v));
            self.count(outcome, &self.counters.user_params);
        }
        // notes: about two a second, each held for a while
        if self.rng.below(30) == 0 {
            let note = 36 + self.rng.below(48) as i64;
            self.note(true, note);
            self.notes_on.push(note);
        }
        if self.notes_on.len() > 2 || (!self.notes_on.is_empty() && self.rng.below(40) == 0) {
            let note = self.notes_on.remove(0);
            self.note(false, note);
        }
    }

    fn note(&mut self, on: bool, note: i64) {
        let mut fields = vec![("note".to_owned(), RawValue::from_value(&note.into()))];
        if on {
            let velocity = 40 + self.rng.below(80) as i64;
            fields.push((
                "velocity".to_owned(),
                RawValue::from_value(&velocity.into()),
            ));
        }
        let kind = if on { "note_on" } else { "note_off" };
        let outcome = self
            .publisher
            .publish(Draft::event(Actor::Midi, kind, fields));
        self.count(outcome, &self.counters.events);
    }

    fn modulate(&mut self, tick: u64) {
        let t = tick as f64 / 60.0;
        for bus in 0..16i64 {
            let rate = 0.1 + bus as f64 * 0.07;
            let value = if bus < 8 {
                (0.5 + 0.5 * (std::f64::consts::TAU * rate * t + bus as f64).sin()).clamp(0.0, 1.0)
            } else {
                // slow random walk ("sloth")
                let prev = 0.5 + 0.4 * (t * rate * 0.3 + bus as f64).sin();
                (prev + (self.rng.unit() - 0.5) * 0.02).clamp(0.0, 1.0)
            };
            let value = (value * 100_000.0).round() / 100_000.0;
            let source = if bus < 8 { "lfo" } else { "sloth" };
            let outcome =
                self.publisher
                    .publish(Draft::mod_value(bus, value, Some(source.to_owned())));
            self.count(outcome, &self.counters.mod_values);
        }
    }

    fn meter(&mut self, tick: u64) {
        let t = tick as f64 / 60.0;
        let sources = ["gen.1", "gen.2", "gen.3", "gen.4", "master"];
        for (i, source) in sources.iter().enumerate() {
            let env = if self.notes_on.is_empty() { 0.15 } else { 0.75 };
            let peak = (env * (0.8 + 0.2 * (t * 3.0 + i as f64).sin()) + self.rng.unit() * 0.05)
                .clamp(0.0, 1.0);
            let outcome = self
                .publisher
                .publish(Draft::audio(*source, peak, Some(peak * 0.6)));
            self.count(outcome, &self.counters.levels);
        }
    }
}
