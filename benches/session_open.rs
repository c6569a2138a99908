//! How fast a big session loads, how much memory it takes, and how fast the
//! exact state at an instant comes back.
//!
//!     cargo bench --bench session_open
//!
//! The file is `target/bench-data/big.msgpack` (one hour, about 400 MB and
//! 1.8 M records), written on first use by the golden files' independent
//! Python encoder (`tests/data/make_golden.py`, needs Python `msgpack`).
//! `INTEGR8TOR_BENCH_FILE=PATH` uses another file instead; `BENCH_OPEN_RUNS=N`
//! changes the number of timed loads (default 7); `BENCH_PARTS=N` loads with
//! `Session::open_in_parts(.., N, ..)` (e.g. 1: one thread) instead of
//! `Session::open` (one part per core).
//!
//! The printed summary is the point: load time (median of several loads on a
//! warm page cache), records/s and MB/s, peak memory (VmHWM from
//! /proc/self/status, and the part of it the load added), live heap bytes per
//! event (measured by the counting allocator below, and as
//! `Session::heap_bytes()` reports it), and `state_at` latency percentiles
//! over 10,000 random instants. Criterion then times `state_at` and
//! `value_at` on their own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use integr8tor::engine::latency::percentile;
use integr8tor::session::Session;
use rand::{rngs::StdRng, Rng, SeedableRng};

mod support;
use support::bench_file;

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(now, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Live heap bytes now.
fn live() -> usize {
    LIVE.load(Relaxed)
}

/// Restarts peak tracking from the current live bytes.
fn reset_peak() {
    PEAK.store(live(), Relaxed);
}

/// A `kB` field of /proc/self/status, in bytes.
fn proc_status_bytes(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line[field.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// CPU time (user + system) of the whole process so far, every thread
/// included, from /proc/self/stat (in clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // the fields after the command name, which is in parentheses
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Resets VmHWM to the current RSS (Linux 4.0+); false where that is refused.
fn reset_hwm() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mb(bytes: impl Into<f64>) -> f64 {
    bytes.into() / 1e6
}

fn mib(bytes: impl Into<f64>) -> f64 {
    bytes.into() / (1024.0 * 1024.0)
}

/// Reads the file once through a small buffer so that every timed load sees
/// a warm page cache, without the bench itself holding the file in memory.
fn warm_page_cache(path: &Path) {
    let mut f = std::fs::File::open(path).expect("opening the bench file");
    let mut buf = vec![0u8; 4 << 20];
    while f.read(&mut buf).expect("reading the bench file") > 0 {}
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "meets target"
    } else {
        "MISSES target"
    }
}

struct Summary {
    file: PathBuf,
    file_bytes: u64,
    records: u64,
    events: usize,
    open_times: Vec<Duration>,
    cpu_times: Vec<Duration>,
    rss_before: u64,
    hwm_first: u64,
    hwm_load_peaks: Vec<u64>,
    heap_peak_during_load: usize,
    heap_live_after_load: usize,
    heap_bytes_reported: usize,
}

/// `Session::open`, or `Session::open_in_parts` with `BENCH_PARTS` parts.
fn open(path: &Path) -> Session {
    let parts: Option<usize> = std::env::var("BENCH_PARTS")
        .ok()
        .and_then(|s| s.parse().ok());
    match parts {
        Some(n) => Session::open_in_parts(path, Default::default(), n, |_| {
            std::ops::ControlFlow::Continue(())
        }),
        None => Session::open(path),
    }
    .expect("loading the bench file")
}

fn measure_open(path: &Path) -> (Session, Summary) {
    let runs: usize = std::env::var("BENCH_OPEN_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7)
        .max(1);
    let file_bytes = std::fs::metadata(path).expect("bench file").len();
    warm_page_cache(path);

    let rss_before = proc_status_bytes("VmRSS").unwrap_or(0);
    let hwm_resettable = reset_hwm();
    let heap_before = live();
    reset_peak();

    // First load: memory is measured on it (nothing else is live yet).
    let cpu = cpu_time();
    let t = Instant::now();
    let first = open(path);
    let first_time = t.elapsed();
    let first_cpu = cpu_time() - cpu;
    let heap_peak_during_load = PEAK.load(Relaxed) - heap_before;
    let heap_live_after_load = live() - heap_before;
    let hwm_first = proc_status_bytes("VmHWM").unwrap_or(0);
    let heap_bytes_reported = first.heap_bytes();
    let records = first.read_report().event_records + first.read_report().snapshot_records;
    let events = first.events().len();
    drop(first);

    let mut open_times = vec![first_time];
    let mut cpu_times = vec![first_cpu];
    let mut hwm_load_peaks = vec![hwm_first.saturating_sub(rss_before)];
    let mut kept = None;
    for i in 1..runs {
        let rss = proc_status_bytes("VmRSS").unwrap_or(0);
        reset_hwm();
        let cpu = cpu_time();
        let t = Instant::now();
        let s = open(path);
        open_times.push(t.elapsed());
        cpu_times.push(cpu_time() - cpu);
        if hwm_resettable {
            let hwm = proc_status_bytes("VmHWM").unwrap_or(0);
            hwm_load_peaks.push(hwm.saturating_sub(rss));
        }
        if i + 1 == runs {
            kept = Some(s);
        }
    }
    let session = match kept {
        Some(s) => s,
        None => open(path),
    };
    (
        session,
        Summary {
            file: path.to_owned(),
            file_bytes,
            records,
            events,
            open_times,
            cpu_times,
            rss_before,
            hwm_first,
            hwm_load_peaks,
            heap_peak_during_load,
            heap_live_after_load,
            heap_bytes_reported,
        },
    )
}

/// Random instants spread over the session and a little beyond both ends.
fn instants(s: &Session, n: usize, seed: u64) -> Vec<i64> {
    let (first, last) = s.time_range().expect("the bench file has events");
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| rng.gen_range(first - 1_000..=last + 1_000))
        .collect()
}

fn measure_state_at(s: &Session) -> Vec<Duration> {
    let ts = instants(s, 10_000, 7);
    // one pass to fault in and warm the tables, as a scrubbing UI would have
    for &t in ts.iter().take(1_000) {
        black_box(s.state_at(t));
    }
    let mut lat: Vec<Duration> = ts
        .iter()
        .map(|&t| {
            let start = Instant::now();
            let st = s.state_at(black_box(t));
            let d = start.elapsed();
            black_box(st);
            d
        })
        .collect();
    lat.sort_unstable();
    lat
}

fn print_summary(sum: &Summary, lat: &[Duration]) {
    let mut times = sum.open_times.clone();
    times.sort_unstable();
    let median = times[times.len() / 2];
    let secs = median.as_secs_f64();
    let per_event_live = sum.heap_live_after_load as f64 / sum.events as f64;
    let per_event_reported = sum.heap_bytes_reported as f64 / sum.events as f64;
    let per_event_peak = sum.heap_peak_during_load as f64 / sum.events as f64;
    // the later loads only: the first is printed on its own
    let mut peaks = sum.hwm_load_peaks[1.min(sum.hwm_load_peaks.len() - 1)..].to_vec();
    peaks.sort_unstable();
    let load_peak = peaks[peaks.len() / 2];
    let (p50, p99, max) = (
        percentile(lat, 0.50).unwrap(),
        percentile(lat, 0.99).unwrap(),
        *lat.last().unwrap(),
    );
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    println!();
    let how = match std::env::var("BENCH_PARTS") {
        Ok(n) => format!("Session::open_in_parts(.., {n}, ..)"),
        Err(_) => "Session::open".to_owned(),
    };
    println!("== {how} on {} ==", sum.file.display());
    println!(
        "file:            {:.1} MB, {} records, {} events",
        mb(sum.file_bytes as f64),
        sum.records,
        sum.events
    );
    println!(
        "machine:         {threads} hardware threads, load average {}",
        loadavg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "open time:       median {:.3} s over {} loads (min {:.3} s, max {:.3} s; warm page cache)  [target <= 0.5 s: {}]",
        secs,
        times.len(),
        times[0].as_secs_f64(),
        times.last().unwrap().as_secs_f64(),
        verdict(secs <= 0.5)
    );
    let cpu_total: Duration = sum.cpu_times.iter().sum();
    let cpu_mean = cpu_total.as_secs_f64() / sum.cpu_times.len() as f64;
    println!(
        "cpu time:        {:.3} s per load on average (all threads, user + system; {:.2} cores busy at the median)",
        cpu_mean,
        cpu_mean / secs
    );
    println!(
        "throughput:      {:.2} M records/s, {:.0} MB/s",
        sum.records as f64 / secs / 1e6,
        mb(sum.file_bytes as f64) / secs
    );
    println!(
        "peak RSS:        VmHWM {:.1} MiB after the first load; RSS before it {:.1} MiB",
        mib(sum.hwm_first as f64),
        mib(sum.rss_before as f64)
    );
    println!(
        "load's own peak: {:.1} MiB of RSS above the RSS before it (first load; later loads, reusing memory the allocator kept: median {:.1} MiB); heap peak during the first load {:.1} MiB ({:.1} bytes/event)",
        mib(sum.hwm_first.saturating_sub(sum.rss_before) as f64),
        mib(load_peak as f64),
        mib(sum.heap_peak_during_load as f64),
        per_event_peak
    );
    println!(
        "heap after load: {:.1} MiB live = {:.1} bytes/event (counting allocator)  [target <= 64: {}]",
        mib(sum.heap_live_after_load as f64),
        per_event_live,
        verdict(per_event_live <= 64.0)
    );
    println!(
        "heap_bytes():    {:.1} MiB = {:.1} bytes/event as Session::heap_bytes() reports ({:+.1}% vs counted)",
        mib(sum.heap_bytes_reported as f64),
        per_event_reported,
        (sum.heap_bytes_reported as f64 / sum.heap_live_after_load as f64 - 1.0) * 100.0
    );
    println!(
        "state_at:        p50 {:.2} µs, p99 {:.2} µs, max {:.2} µs over {} random instants  [target p99 <= 50 µs: {}]",
        micros(p50),
        micros(p99),
        micros(max),
        lat.len(),
        verdict(p99 <= Duration::from_micros(50))
    );
    println!();
}

fn main() {
    let path = bench_file();
    let (session, summary) = measure_open(&path);
    let lat = measure_state_at(&session);
    print_summary(&summary, &lat);

    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let ts = instants(&session, 4_096, 11);
    let mut i = 0usize;
    c.bench_function("state_at/random instant", |b| {
        b.iter(|| {
            i = (i + 1) & 4_095;
            black_box(session.state_at(black_box(ts[i])))
        })
    });
    let name = session.param_ids()[0];
    c.bench_function("value_at/random instant", |b| {
        b.iter(|| {
            i = (i + 1) & 4_095;
            black_box(session.value_at(name, black_box(ts[i])))
        })
    });
    c.final_summary();
}
