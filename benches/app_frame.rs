//! How long the window takes to build a frame, headless (egui without a
//! window or renderer: layout, painting and tessellation on this thread),
//! with the 1-hour session and with live data at the demo's rate; and how
//! long a sessions folder of 200 files takes to list, first and second time.
//!
//!     cargo bench --bench app_frame
//!
//! The session is `target/bench-data/big.msgpack` (written on first use by
//! `tests/data/make_golden.py --seconds 3600`, which needs Python
//! `msgpack`); `INTEGR8TOR_BENCH_FILE=PATH` uses another file.
//! `BENCH_FRAMES=N` sets the frames per case (default 300). Each case also
//! prints what its frame costs a software renderer (see [`coverage`]).
//!
//! Each case is timed twice: with the view still (buckets come from the
//! cache, as when paused) and with the view moving every frame (buckets
//! recomputed, as while following the playhead or panning). Printed: p50,
//! p99 and max per case. The live case feeds the window the demo's traffic
//! (20 paths dragged at 60 Hz, 16 mod buses and 5 meters at 30 Hz, notes) on
//! virtual time, after ten minutes of it are already in the history.

use std::path::PathBuf;
use std::process::Command as Process;
use std::sync::Arc;
use std::time::{Duration, Instant};

use integr8tor::app::timeline::markers::Marker;
use integr8tor::app::timeline::view::ViewCommand;
use integr8tor::app::workers::{self, LiveMsg, LoadedSession, Outbox, ScanCache};
use integr8tor::app::{IntegratorApp, Settings, Tab, WorkerMsg};
use integr8tor::session::Session;

const W: f32 = 1600.0;
const H: f32 = 1000.0;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The 1-hour session, made if missing.
fn big_file() -> PathBuf {
    if let Some(p) = std::env::var_os("INTEGR8TOR_BENCH_FILE") {
        return PathBuf::from(p);
    }
    let path = root().join("target/bench-data/big.msgpack");
    if !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap()).expect("creating target/bench-data");
        eprintln!(
            "writing {} with make_session.py (one hour)…",
            path.display()
        );
        let status = Process::new("python3")
            .arg(root().join("tests/data/make_golden.py"))
            .arg(&path)
            .args(["--seconds", "3600"])
            .status()
            .expect("running python3 (make_session.py writes the bench data)");
        assert!(
            status.success(),
            "make_session.py failed; it needs Python msgpack"
        );
    }
    path
}

struct Frames {
    app: IntegratorApp,
    ctx: egui::Context,
    inbox: crossbeam_channel::Sender<WorkerMsg>,
    time: f64,
    /// What the last frame would give the renderer.
    last: Vec<egui::ClippedPrimitive>,
}

/// What a frame costs a renderer: its triangles, and the 4x4 pixel blocks
/// their bounding boxes touch (each clipped to its clip rectangle), as a
/// multiple of the window's blocks. Mesa's llvmpipe (the renderer without a
/// GPU) shades whole 4x4 blocks per triangle, so a thin triangle costs far
/// more than its pixels: the blocks are its work per frame. With
/// `BENCH_PRIMS=1` the primitives touching the most blocks are listed.
fn coverage(prims: &[egui::ClippedPrimitive]) -> (usize, f64) {
    let mut triangles = 0;
    let mut blocks = 0usize;
    let mut per: Vec<(usize, usize, egui::Rect)> = Vec::new();
    for p in prims {
        let egui::epaint::Primitive::Mesh(mesh) = &p.primitive else {
            continue;
        };
        let before = blocks;
        let clip = p.clip_rect;
        let at = |i: u32| {
            let v = mesh.vertices[i as usize].pos;
            (
                f64::from(v.x.clamp(clip.min.x, clip.max.x)),
                f64::from(v.y.clamp(clip.min.y, clip.max.y)),
            )
        };
        for t in mesh.indices.chunks_exact(3) {
            triangles += 1;
            let (a, b, c) = (at(t[0]), at(t[1]), at(t[2]));
            let area2 = ((b.0 - a.0) * (c.1 - a.1) - (c.0 - a.0) * (b.1 - a.1)).abs();
            if area2.is_nan() || area2 <= 0.0 {
                continue; // empty after clipping, or not finite
            }
            let span = |lo: f64, hi: f64| ((hi / 4.0).ceil() - (lo / 4.0).floor()).max(1.0);
            blocks += (span(a.0.min(b.0).min(c.0), a.0.max(b.0).max(c.0))
                * span(a.1.min(b.1).min(c.1), a.1.max(b.1).max(c.1)))
                as usize;
        }
        per.push((blocks - before, mesh.indices.len() / 3, clip));
    }
    if std::env::var_os("BENCH_PRIMS").is_some() {
        per.sort_by_key(|p| std::cmp::Reverse(p.0));
        for (b, t, clip) in per.iter().take(12) {
            println!("    {b:>7} blocks, {t:>6} triangles, clip {clip:?}");
        }
    }
    (triangles, blocks as f64 * 16.0 / f64::from(W * H))
}

fn report_coverage(name: &str, f: &Frames) {
    let (triangles, blocks) = coverage(&f.last);
    println!("  {name}: {triangles} triangles touching {blocks:.2}x the window's 4x4 blocks");
}

impl Frames {
    fn new() -> Frames {
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        // the commands the window sends are not needed here
        std::mem::forget(cmd_rx);
        let (inbox, inbox_rx) = crossbeam_channel::unbounded();
        let outbox = Outbox::new(inbox.clone(), workers::no_waker());
        let settings = Settings {
            sessions_dir: std::env::temp_dir().join("integr8tor-bench-sessions"),
            ..Settings::default()
        };
        let app = IntegratorApp::with_channels(settings, cmd_tx, inbox_rx, outbox);
        Frames {
            app,
            ctx: egui::Context::default(),
            inbox,
            time: 0.0,
            last: Vec::new(),
        }
    }

    /// Builds one frame and tessellates it; returns how long that took.
    fn frame(&mut self) -> Duration {
        self.time += 1.0 / 60.0;
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(W, H),
            )),
            time: Some(self.time),
            // the pointer over the lanes, as when a performer looks at them
            events: vec![egui::Event::PointerMoved(egui::pos2(W * 0.6, H * 0.5))],
            ..Default::default()
        };
        let start = Instant::now();
        let app = &mut self.app;
        let out = self.ctx.run_ui(input, |ui| app.ui(ui));
        let prims = self.ctx.tessellate(out.shapes, out.pixels_per_point);
        std::hint::black_box(prims.len());
        let took = start.elapsed();
        self.last = prims;
        took
    }
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let q = |f: f64| times[((times.len() - 1) as f64 * f).round() as usize];
    println!(
        "{name:<44} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  ({} frames)",
        q(0.5).as_secs_f64() * 1e3,
        q(0.99).as_secs_f64() * 1e3,
        q(1.0).as_secs_f64() * 1e3,
        times.len()
    );
}

fn frames_per_case() -> usize {
    std::env::var("BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

fn session_cases(f: &mut Frames, loaded: &LoadedSession) {
    let n = frames_per_case();
    let (first, last) = loaded.range;
    f.app.ui_state_mut().tab = Tab::Timeline;
    let cases: [(&str, Option<i64>); 3] = [
        ("fully zoomed out", None),
        ("5-minute window", Some(300_000)),
        ("10-second window", Some(10_000)),
    ];
    for (name, span) in cases {
        let st = f.app.ui_state_mut();
        st.session_view.reset();
        let bounds = (first, last);
        if let Some(span) = span {
            let full = (last - first) as f64;
            let _ = st.session_view.apply(
                ViewCommand::Zoom {
                    factor: full / span as f64,
                    at: first + (last - first) / 3,
                },
                bounds,
            );
        }
        for _ in 0..5 {
            f.frame();
        }
        let still: Vec<Duration> = (0..n).map(|_| f.frame()).collect();
        report(&format!("session, {name}, still"), still);
        report_coverage(name, f);
        let step = span.unwrap_or(last - first) / 200;
        let moving: Vec<Duration> = (0..n)
            .map(|i| {
                let st = f.app.ui_state_mut();
                if span.is_some() {
                    let dir = if (i / 100) % 2 == 0 { 1 } else { -1 };
                    let _ = st
                        .session_view
                        .apply(ViewCommand::Pan(dir * step.max(1)), bounds);
                } else {
                    // zoomed out: the view cannot move; change the width instead
                    st.session_view.reset();
                    st.timeline.cache = Default::default();
                }
                f.frame()
            })
            .collect();
        report(&format!("session, {name}, moving"), moving);
    }
}

/// The demo's traffic for `dt_ms` starting at `t_ms`, as the window receives it.
fn demo_batch(t_ms: i64, dt_ms: i64, paths: &[String]) -> Vec<LiveMsg> {
    let mut out = Vec::new();
    let mut t = t_ms;
    while t < t_ms + dt_ms {
        let tick = t / 16;
        // user drags at 60 Hz on a few paths at a time
        for (i, p) in paths
            .iter()
            .enumerate()
            .filter(|(i, _)| (tick as usize + i) % 5 == 0)
        {
            out.push(LiveMsg::Param {
                path: p.clone(),
                value: ((t as f64 / 700.0 + i as f64).sin() * 0.5 + 0.5).clamp(0.0, 1.0),
                value_mapped: Some(440.0),
                actor: "user".to_owned(),
                producer: "noise-engine.demo".to_owned(),
                ts_ms: t,
            });
        }
        if tick % 2 == 0 {
            for bus in 0..16 {
                out.push(LiveMsg::Mod {
                    bus,
                    value: (t as f64 / 300.0 + bus as f64).sin(),
                    ts_ms: t,
                });
            }
            for g in 0..5 {
                out.push(LiveMsg::Audio {
                    source: format!("gen.{g}"),
                    peak: 0.5,
                    rms: Some(0.3),
                });
            }
        }
        if tick % 30 == 0 {
            out.push(LiveMsg::Event {
                ts_ms: t,
                event_type: "note_on".to_owned(),
                detail: "note=60 velocity=100".to_owned(),
                actor: "midi".to_owned(),
                marker: Marker::from_event(t, "note_on", &[]),
            });
        }
        t += 16;
    }
    out
}

fn live_case() {
    let n = frames_per_case();
    let mut f = Frames::new();
    f.app.ui_state_mut().tab = Tab::Timeline;
    let paths = integr8tor::engine::demo::demo_paths();
    let start = 1_790_000_000_000i64;
    // ten minutes already received
    let mut t = start;
    for _ in 0..600 {
        f.inbox
            .send(WorkerMsg::Live(demo_batch(t, 1000, &paths)))
            .unwrap();
        t += 1000;
        f.frame();
    }
    while !f.app.inbox_is_empty() {
        f.frame();
    }
    let per_frame = 1000 / 30;
    let times: Vec<Duration> = (0..n)
        .map(|_| {
            f.inbox
                .send(WorkerMsg::Live(demo_batch(t, per_frame, &paths)))
                .unwrap();
            t += per_frame;
            f.frame()
        })
        .collect();
    let h = &f.app.model().history;
    report("live, demo at full rate, following", times);
    report_coverage("live", &f);
    println!(
        "  live history: {} events, {:.1} MB counted, {:.1} MB held",
        h.events(),
        h.bytes() as f64 / 1e6,
        h.heap_bytes() as f64 / 1e6
    );
    // inspecting the past while data keeps arriving
    {
        let bounds = f.app.model().history.range().unwrap();
        let st = f.app.ui_state_mut();
        let _ = st.live_view.apply(ViewCommand::Pan(-300_000), bounds);
    }
    let times: Vec<Duration> = (0..n)
        .map(|_| {
            f.inbox
                .send(WorkerMsg::Live(demo_batch(t, per_frame, &paths)))
                .unwrap();
            t += per_frame;
            f.frame()
        })
        .collect();
    report("live, demo at full rate, 5 min back", times);
}

fn rescan_case() {
    let dir = root().join("target/bench-data/sessions-200");
    let src = root().join("tests/data/v1/small-60s.msgpack");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..200 {
        let p = dir.join(format!("session-{i:03}.msgpack"));
        if !p.exists() {
            // hard links: 200 files to read, no disk spent
            std::fs::hard_link(&src, &p)
                .or_else(|_| std::fs::copy(&src, &p).map(|_| ()))
                .unwrap();
        }
    }
    let cache = std::sync::Mutex::new(ScanCache::default());
    for pass in ["first", "second"] {
        let start = Instant::now();
        let mut n = 0;
        workers::scan_folder(&dir, &cache, |_| {
            n += 1;
            true
        })
        .unwrap();
        println!(
            "rescan of 200 files, {pass} scan: {:>8.1} ms ({n} listed, {} read so far)",
            start.elapsed().as_secs_f64() * 1e3,
            cache.lock().unwrap().reads
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this once quickly
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let path = big_file();
    let load = Instant::now();
    let session = Session::open(&path).expect("the bench session loads");
    let loaded = LoadedSession::new(Arc::new(session), false);
    println!(
        "{}: {} events, {} lanes, {} markers; open + summaries {:.2} s",
        path.display(),
        loaded.events,
        loaded.summaries.len(),
        loaded.markers.len(),
        load.elapsed().as_secs_f64()
    );
    let mut f = Frames::new();
    f.inbox.send(WorkerMsg::Loaded(loaded.clone())).unwrap();
    f.frame();
    session_cases(&mut f, &loaded);
    live_case();
    rescan_case();
}
