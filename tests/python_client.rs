//! `integr8tor broker` in its own process, used by a Python confluent-kafka
//! client (tests/python/interop.py) and by this process's Publisher and
//! Subscriber through the address it prints.
//!
//! Needs python3 with `confluent_kafka` and `msgpack` (`scripts/test` installs them).

mod kafka_support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use integr8tor::kafka::{Connection, Draft, StartFrom, Subscriber, SubscriberConfig};
use integr8tor::{Actor, Body, Topic};
use kafka_support::*;

/// A running `integr8tor broker` child; killed on drop if still running.
struct BrokerProcess {
    child: Child,
    bootstrap: String,
    /// The rest of stdout, line by line, read on a helper thread.
    _stdout: mpsc::Receiver<String>,
}

impl BrokerProcess {
    fn start(port: u16) -> BrokerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_integr8tor"))
            .args(["broker", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("running integr8tor broker");
        let lines = read_lines(child.stdout.take().expect("stdout"));
        let first = lines.recv_timeout(Duration::from_secs(30));
        let first = match first {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("integr8tor broker printed no line within 30 s (status {status:?})");
            }
        };
        let bootstrap = first
            .strip_prefix("bootstrap: ")
            .unwrap_or_else(|| panic!("first line is not `bootstrap: ADDR`: {first:?}"))
            .to_owned();
        let (host, port_text) = bootstrap.rsplit_once(':').expect("host:port");
        assert_eq!(host, "127.0.0.1", "{first:?}");
        let printed_port: u16 = port_text.parse().expect("a port number");
        assert_ne!(printed_port, 0);
        if port != 0 {
            assert_eq!(printed_port, port);
        }
        BrokerProcess {
            child,
            bootstrap,
            _stdout: lines,
        }
    }

    /// Sends `signal` (e.g. "TERM") and waits for the process to end.
    fn stop_with(mut self, signal: &str) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -{signal} {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the broker") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "integr8tor broker still running 20 s after SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    rx
}

fn python_with_clients() -> &'static str {
    let ok = Command::new("python3")
        .args(["-c", "import confluent_kafka, msgpack"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3 with confluent_kafka and msgpack is needed: `scripts/test` installs them \
         (or `python3 -m pip install confluent-kafka msgpack`)"
    );
    "python3"
}

#[test]
fn a_python_client_and_this_process_talk_through_the_broker_process() {
    let python = python_with_clients();
    let broker = BrokerProcess::start(0);
    let conn = Connection::new(broker.bootstrap.clone());

    // Rust -> broker process, before Python reads
    let publisher = bulk_publisher(&conn, "integr8tor.interop", "session-rust");
    for i in 0..12 {
        publisher.publish(Draft::param(
            Actor::User,
            format!("gen.{}.cutoff", i % 3),
            f64::from(i) / 16.0,
        ));
    }
    publisher.flush(Duration::from_secs(20)).expect("flush");
    assert_eq!(publisher.stats().delivered, 12);

    let mut config = SubscriberConfig::new(unique_group("py-interop"), &[Topic::Params])
        .start_from(StartFrom::Earliest);
    config.fetch_wait_max_ms = Some(5);
    let sub = Subscriber::start(&conn, config).expect("subscriber");

    // Python produces 20 and reads back its own 20 and our 12
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/interop.py");
    let out = Command::new(python)
        .arg(&script)
        .args([
            broker.bootstrap.as_str(),
            "session-py",
            "20",
            "integr8tor.interop",
            "12",
        ])
        .output()
        .expect("running interop.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "interop.py failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    let report: serde_json::Value = serde_json::from_str(
        stdout
            .lines()
            .last()
            .unwrap_or_else(|| panic!("interop.py printed nothing; stderr: {stderr}")),
    )
    .expect("interop.py prints JSON");
    assert_eq!(
        report["own_read_back"],
        serde_json::json!((1..=20).collect::<Vec<u64>>())
    );
    let mut foreign: Vec<(u64, String, f64, String, String)> = report["foreign"]
        .as_array()
        .expect("foreign")
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["path"].as_str().unwrap().to_owned(),
                m["value"].as_f64().unwrap(),
                m["session_id"].as_str().unwrap().to_owned(),
                m["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    foreign.sort_by_key(|m| m.0);
    let expected: Vec<(u64, String, f64, String, String)> = (0..12u32)
        .map(|i| {
            (
                u64::from(i) + 1,
                format!("gen.{}.cutoff", i % 3),
                f64::from(i) / 16.0,
                "session-rust".to_owned(),
                "user".to_owned(),
            )
        })
        .collect();
    assert_eq!(foreign, expected, "what Python read of our messages");

    // Python -> this process: our subscriber decodes what Python produced
    let mut got = Collected::default();
    collect_messages(&sub, &mut got, 32, Duration::from_secs(30));
    let from_python: Vec<_> = got
        .messages
        .iter()
        .filter(|m| m.envelope().producer_id == "python.interop")
        .collect();
    assert_eq!(from_python.len(), 20);
    let mut seqs: Vec<u64> = from_python.iter().map(|m| m.envelope().seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    for m in &from_python {
        let seq = m.envelope().seq;
        assert_eq!(m.envelope().session_id, "session-py");
        assert_eq!(m.envelope().source.as_deref(), Some("python"));
        assert_eq!(m.key(), Some(format!("py.{}.level", seq % 4).as_str()));
        match &m.envelope().body {
            Body::Param {
                path,
                value,
                value_mapped,
                has_value_mapped,
            } => {
                assert_eq!(path, &format!("py.{}.level", seq % 4));
                assert_eq!(*value, seq as f64 / 100.0);
                assert_eq!((*value_mapped, *has_value_mapped), (None, true));
            }
            other => panic!("not a param: {other:?}"),
        }
        let extra = m
            .envelope()
            .extra_field("py_extra")
            .expect("unknown fields are kept")
            .decode()
            .unwrap();
        assert_eq!(
            extra,
            rmpv::Value::Array(vec![rmpv::Value::from(seq), rmpv::Value::from("x")])
        );
    }
    assert_eq!(sub.stats().malformed, 0);
    drop(sub);
    drop(publisher);

    let status = broker.stop_with("TERM");
    assert!(status.success(), "broker exit on SIGTERM: {status}");
}

#[test]
fn the_broker_stops_cleanly_on_sigint() {
    let broker = BrokerProcess::start(0);
    let status = broker.stop_with("INT");
    assert!(status.success(), "broker exit on SIGINT: {status}");
}

#[test]
fn a_taken_port_fails_with_one_clear_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_integr8tor"))
        .args(["broker", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running integr8tor broker");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("integr8tor broker kept running on a taken port");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stdout, "", "nothing is announced");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr:?}");
    assert!(
        lines[0].contains(&format!("127.0.0.1:{port}")) && lines[0].contains("in use"),
        "{}",
        lines[0]
    );
    drop(taken);
}
