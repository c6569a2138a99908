//! How fast each export of the 1-hour session runs, beside a straightforward
//! Python exporter of the same design (benches/python/export_baseline.py:
//! msgpack `Unpacker` plus `csv.writer` / `sqlite3.executemany`).
//!
//!     cargo bench --bench export
//!
//! The file is `target/bench-data/big.msgpack` (one hour, about 400 MB and
//! 1.8 M records), written on first use by `tests/data/make_golden.py`
//! (benches/support); `INTEGR8TOR_BENCH_FILE=PATH` uses another file.
//! `BENCH_EXPORT_FORMATS=csv,sqlite` picks formats; `BENCH_EXPORT_PYTHON=0`
//! skips the Python exporter.
//!
//! Each export runs in a child process of its own (this bench run again, or
//! python3) so that its peak RSS is its own; the printed table is the point:
//! seconds, records/s, input MB/s, output size and peak RSS per export, and
//! the speed-up over Python where there is a Python figure. The SQLite files
//! of both exporters are checked to have the same row counts in each table.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use integr8tor::export::{self, Control, ExportOptions, Format};
use serde_json::{json, Value};

mod support;
use support::bench_file;

const CHILD_FORMAT: &str = "INTEGR8TOR_EXPORT_CHILD";
const CHILD_IN: &str = "INTEGR8TOR_EXPORT_IN";
const CHILD_OUT: &str = "INTEGR8TOR_EXPORT_OUT";

fn proc_status_bytes(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Child mode: one export in this process, figures as one JSON line.
fn child(format: &str) {
    let format: Format = format.parse().expect("a format name");
    let input = PathBuf::from(std::env::var_os(CHILD_IN).expect("input path"));
    let out = PathBuf::from(std::env::var_os(CHILD_OUT).expect("output path"));
    let never = AtomicBool::new(false);
    let start = Instant::now();
    let stats = {
        let mut ctl = Control::new(&never, |_| {});
        let opts = ExportOptions {
            force: true,
            ..ExportOptions::default()
        };
        export::export(&input, &out, format, &opts, &mut ctl).expect("export")
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "seconds": secs,
            "records": stats.events + stats.snapshots,
            "messages": stats.messages,
            "output_bytes": stats.output_bytes,
            "peak_rss_bytes": proc_status_bytes("VmHWM").unwrap_or(0),
        })
    );
}

fn run_json(mut cmd: Command, what: &str) -> Value {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    assert!(
        o.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|_| panic!("{what} printed {text:?}"))
}

fn table_counts(db: &Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(db).expect("opening an exported database");
    ["params", "mod", "events", "snapshots"]
        .iter()
        .map(|t| {
            let n: i64 = conn
                .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
                .expect("counting rows");
            (t.to_string(), n)
        })
        .collect()
}

struct Row {
    name: String,
    seconds: f64,
    records: f64,
    output_bytes: f64,
    peak: f64,
}

fn main() {
    if let Ok(format) = std::env::var(CHILD_FORMAT) {
        child(&format);
        return;
    }
    let input = bench_file();
    let input_bytes = std::fs::metadata(&input).expect("bench file").len() as f64;
    let formats: Vec<Format> = match std::env::var("BENCH_EXPORT_FORMATS") {
        Ok(list) => list
            .split(',')
            .map(|f| f.parse().expect("a format"))
            .collect(),
        Err(_) => Format::ALL.to_vec(),
    };
    let python = std::env::var("BENCH_EXPORT_PYTHON").map_or(true, |v| v != "0");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = root.join("target/bench-data/export");
    std::fs::create_dir_all(&out_dir).expect("creating the output folder");
    // a warm page cache for every run
    let _ = std::fs::read(&input).map(drop);
    println!(
        "export benchmark: {} ({:.0} MB)",
        input.display(),
        input_bytes / 1e6
    );
    let me = std::env::current_exe().expect("this bench's path");
    let mut rows: Vec<Row> = Vec::new();
    for format in formats {
        let out = out_dir.join(format!("big.{}", format.extension()));
        let mut cmd = Command::new(&me);
        cmd.env(CHILD_FORMAT, format.name())
            .env(CHILD_IN, &input)
            .env(CHILD_OUT, &out);
        let r = run_json(cmd, &format!("the {format} export"));
        rows.push(Row {
            name: format!("integr8tor {format}"),
            seconds: r["seconds"].as_f64().unwrap(),
            records: r["records"].as_f64().unwrap(),
            output_bytes: r["output_bytes"].as_f64().unwrap(),
            peak: r["peak_rss_bytes"].as_f64().unwrap(),
        });
        let py_name = match format {
            Format::Csv => Some("csv"),
            Format::Sqlite => Some("sqlite"),
            _ => None,
        };
        if let (true, Some(py)) = (python, py_name) {
            let py_out = out_dir.join(format!("big-python.{}", format.extension()));
            let _ = std::fs::remove_file(&py_out);
            let mut cmd = Command::new("python3");
            cmd.arg(root.join("benches/python/export_baseline.py"))
                .arg(py)
                .arg(&input)
                .arg(&py_out);
            let r = run_json(cmd, "the Python exporter");
            let py_bytes = std::fs::metadata(&py_out).map_or(0, |m| m.len()) as f64;
            rows.push(Row {
                name: format!("python {py}"),
                seconds: r["seconds"].as_f64().unwrap(),
                records: r["records"].as_f64().unwrap(),
                output_bytes: py_bytes,
                peak: r["peak_rss_bytes"].as_f64().unwrap(),
            });
            if format == Format::Sqlite {
                let (a, b) = (table_counts(&out), table_counts(&py_out));
                println!("SQLite rows, integr8tor: {a:?}");
                println!("SQLite rows, python:     {b:?}");
                assert_eq!(a, b, "both exporters fill the same tables");
            }
            let _ = std::fs::remove_file(&py_out);
        }
        let _ = std::fs::remove_file(&out);
    }
    println!();
    println!(
        "{:<20} {:>9} {:>12} {:>9} {:>10} {:>10} {:>9}",
        "export", "seconds", "records/s", "MB/s in", "out MB", "peak MiB", "vs python"
    );
    for r in &rows {
        let py = rows
            .iter()
            .find(|p| p.name.starts_with("python") && r.name.ends_with(&p.name[7..]));
        let ratio = match py {
            Some(p) if !r.name.starts_with("python") => format!("{:.1}x", p.seconds / r.seconds),
            _ => String::new(),
        };
        println!(
            "{:<20} {:>9.2} {:>12.0} {:>9.0} {:>10.1} {:>10.1} {:>9}",
            r.name,
            r.seconds,
            r.records / r.seconds,
            input_bytes / 1e6 / r.seconds,
            r.output_bytes / 1e6,
            r.peak / (1024.0 * 1024.0),
            ratio
        );
    }
}
