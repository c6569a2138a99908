//! The Kafka layer against tansu, a real broker written independently of
//! librdkafka (<https://github.com/tansu-io/tansu>).
//!
//! Each test starts its own `tansu broker` on a free loopback port with
//! in-memory storage and creates the topics through our admin API, so the
//! tests share nothing. tansu must be installed (`scripts/test` does it); when it
//! is missing the tests fail and say how to install it.

mod kafka_support;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integr8tor::kafka::{create_topics, topic_specs, Connection, Draft, StartFrom, TopicOutcome};
use integr8tor::{Actor, RawValue, Topic};
use kafka_support::*;
use rdkafka::admin::{AdminClient, AdminOptions, OwnedResourceSpecifier, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, Producer};

const INSTALL: &str = "cargo install tansu --features dynostore";

/// The tansu binary: on PATH, else in ~/.cargo/bin (or $CARGO_HOME/bin).
fn tansu_binary() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("tansu")).collect())
        .unwrap_or_default();
    if let Some(cargo_home) = std::env::var_os("CARGO_HOME") {
        candidates.push(PathBuf::from(cargo_home).join("bin").join("tansu"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo").join("bin").join("tansu"));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the tansu broker is not installed (looked on PATH and in ~/.cargo/bin); \
                 `scripts/test` installs it (or `{INSTALL}`)"
            )
        })
}

/// A running `tansu broker` with in-memory storage; killed on drop.
struct Tansu {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl Tansu {
    /// Starts tansu on a free loopback port and waits until it answers a
    /// metadata request. Retries on another port if the chosen one was taken
    /// in the meantime.
    fn start() -> Tansu {
        Tansu::start_with(&[])
    }

    /// Starts tansu with extra `broker` arguments. With `--authentication`
    /// only a TCP connect is awaited (metadata needs a SASL login).
    fn start_with(extra: &[&str]) -> Tansu {
        let binary = tansu_binary();
        let authenticated = extra.contains(&"--authentication");
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let url = format!("tcp://127.0.0.1:{port}");
            let log = tempfile::NamedTempFile::new().expect("log file");
            let child = Command::new(&binary)
                .args([
                    "broker",
                    "--storage-engine",
                    "memory://tansu/",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(log.reopen().expect("log file"))
                .stderr(log.reopen().expect("log file"))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            let mut tansu = Tansu { child, port, log };
            match tansu.wait_ready(Duration::from_secs(30), !authenticated) {
                Ok(()) => return tansu,
                Err(why) => {
                    last_log = format!("{why}\n--- tansu log ---\n{}", tansu.log_text());
                    // dropped here: killed, and we try another port
                }
            }
        }
        panic!("tansu did not start: {last_log}");
    }

    fn wait_ready(&mut self, timeout: Duration, metadata: bool) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("tansu exited with {status}"));
            }
            if Instant::now() > deadline {
                return Err(format!("tansu did not answer within {timeout:?}"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                if !metadata {
                    return Ok(());
                }
                let probe: BaseProducer = self.connection().client_config(&[]).create().unwrap();
                if probe
                    .client()
                    .fetch_metadata(None, Duration::from_secs(2))
                    .is_ok()
                {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn connection(&self) -> Connection {
        Connection::new(self.bootstrap())
    }

    /// A fresh broker with the five topics created through our admin API.
    fn with_topics() -> (Tansu, Connection) {
        let tansu = Tansu::start();
        let conn = tansu.connection();
        let outcomes = create_topics(&conn, 1, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("creating topics on tansu: {e}\n{}", tansu.log_text()));
        assert!(
            outcomes.iter().all(|(_, o)| *o == TopicOutcome::Created),
            "{outcomes:?}"
        );
        (tansu, conn)
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = self.log.reopen() {
            let _ = f.read_to_string(&mut text);
        }
        // the tail is what matters
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Partition counts as the broker reports them in metadata.
fn partition_counts(conn: &Connection) -> BTreeMap<String, usize> {
    let client: BaseProducer = conn.client_config(&[]).create().unwrap();
    let metadata = client
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_owned(), t.partitions().len()))
        .collect()
}

#[test]
fn topics_are_created_with_their_partitions_and_configs_and_then_reported_as_existing() {
    let tansu = Tansu::start();
    let conn = tansu.connection();
    let first = create_topics(&conn, 1, Duration::from_secs(30)).expect("first run");
    assert_eq!(
        first,
        Topic::ALL
            .iter()
            .map(|t| (*t, TopicOutcome::Created))
            .collect::<Vec<_>>()
    );

    let counts = partition_counts(&conn);
    for spec in topic_specs() {
        assert_eq!(
            counts.get(spec.topic.name()),
            Some(&(spec.partitions as usize)),
            "{}: {counts:?}",
            spec.topic
        );
    }

    // the configs reached the broker: ask it back with DescribeConfigs
    let admin: AdminClient<DefaultClientContext> = conn.client_config(&[]).create().unwrap();
    let names: Vec<String> = topic_specs()
        .iter()
        .map(|s| s.topic.name().to_owned())
        .collect();
    let resources: Vec<ResourceSpecifier<'_>> =
        names.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
    let described = futures_block_on(admin.describe_configs(
        &resources,
        &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
    ))
    .expect("describe configs");
    let described: Vec<_> = described
        .into_iter()
        .map(|r| r.expect("a described topic"))
        .collect();
    for spec in topic_specs() {
        let resource = described
            .iter()
            .find(|r| r.specifier == OwnedResourceSpecifier::Topic(spec.topic.name().to_owned()))
            .unwrap_or_else(|| panic!("{} was not described", spec.topic));
        for (key, value) in spec.configs {
            let entry = resource
                .get(key)
                .unwrap_or_else(|| panic!("{}: no {key} in {:?}", spec.topic, resource.entries));
            assert_eq!(entry.value.as_deref(), Some(*value), "{} {key}", spec.topic);
        }
    }

    let second = create_topics(&conn, 1, Duration::from_secs(30)).expect("second run");
    for (spec, (topic, outcome)) in topic_specs().iter().zip(&second) {
        assert_eq!(spec.topic, *topic);
        assert_eq!(
            *outcome,
            TopicOutcome::Existed {
                partitions: Some(spec.partitions as usize)
            }
        );
    }
}

#[test]
fn the_topics_command_creates_then_says_they_exist() {
    let tansu = Tansu::start();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_integr8tor"))
            .args(["topics", "create", "--brokers", &tansu.bootstrap()])
            .output()
            .expect("running integr8tor");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "{:?}\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        );
        stdout
    };
    let first = run();
    assert_eq!(
        first.lines().collect::<Vec<_>>(),
        vec![
            "noise.params: created (4 partitions)",
            "noise.mod: created (1 partition)",
            "noise.audio: created (1 partition)",
            "noise.events: created (1 partition)",
            "noise.state: created (1 partition)",
        ]
    );
    let second = run();
    assert_eq!(
        second.lines().collect::<Vec<_>>(),
        vec![
            "noise.params: exists",
            "noise.mod: exists",
            "noise.audio: exists",
            "noise.events: exists",
            "noise.state: exists",
        ]
    );
}

#[test]
fn every_topic_round_trips_through_tansu() {
    let (tansu, conn) = Tansu::with_topics();
    let publisher = bulk_publisher(&conn, "test.tansu", "session-tansu");
    let sub = subscriber(
        &conn,
        &Topic::ALL,
        &unique_group("tansu-rt"),
        StartFrom::Earliest,
    );
    let mut sent: Vec<(Topic, String)> = Vec::new();
    for round in 0..10 {
        let v = f64::from(round) / 10.0;
        for p in 0..6 {
            let path = format!("gen.{p}.cutoff");
            publisher.publish(Draft::param(Actor::User, path.clone(), v));
            sent.push((Topic::Params, path));
        }
        publisher.publish(Draft::mod_value(3, v, Some("lfo".into())));
        sent.push((Topic::Mod, "bus.3".to_owned()));
        publisher.publish(Draft::audio("master", v, Some(v / 2.0)));
        sent.push((Topic::Audio, "master".to_owned()));
        let note = RawValue::from_value(&rmpv::Value::from(60 + round));
        publisher.publish(Draft::event(
            Actor::Midi,
            "note_on",
            vec![("note".to_owned(), note)],
        ));
        sent.push((Topic::Events, "note_on".to_owned()));
        let state = RawValue::from_value(&rmpv::Value::Map(vec![(
            rmpv::Value::from("gen.1.cutoff"),
            rmpv::Value::F64(v),
        )]));
        publisher.publish(Draft::state("preset", state));
        sent.push((Topic::State, "preset".to_owned()));
    }
    publisher
        .flush(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("flush: {e}\n{}", tansu.log_text()));
    let stats = publisher.stats();
    assert_eq!(stats.delivered, sent.len() as u64, "{stats:?}");

    let mut got = Collected::default();
    collect_messages(&sub, &mut got, sent.len(), Duration::from_secs(60));
    collect_until(&sub, &mut got, Duration::from_millis(500), |_| false);
    assert_eq!(got.messages.len(), sent.len());
    assert!(got.malformed.is_empty(), "{:?}", got.malformed);

    let mut per_key: BTreeMap<(Topic, String), Vec<&integr8tor::kafka::Received>> = BTreeMap::new();
    for m in &got.messages {
        let key = m.key().map(str::to_owned).expect("keyed");
        assert_eq!(key, m.envelope().kafka_key());
        assert_eq!(m.envelope().topic(), m.topic);
        assert_eq!(m.envelope().producer_id, "test.tansu");
        per_key.entry((m.topic, key)).or_default().push(m);
    }
    let mut expected: BTreeMap<(Topic, String), usize> = BTreeMap::new();
    for k in &sent {
        *expected.entry(k.clone()).or_default() += 1;
    }
    assert_eq!(
        per_key
            .iter()
            .map(|(k, v)| (k.clone(), v.len()))
            .collect::<BTreeMap<_, _>>(),
        expected
    );
    for (k, msgs) in &per_key {
        for w in msgs.windows(2) {
            assert!(
                w[0].envelope().seq < w[1].envelope().seq,
                "{k:?} out of order"
            );
            assert!(w[0].offset < w[1].offset, "{k:?} offsets");
            assert_eq!(
                w[0].partition, w[1].partition,
                "{k:?}: one key, one partition"
            );
        }
    }
    let params_partitions: std::collections::BTreeSet<i32> = got
        .messages
        .iter()
        .filter(|m| m.topic == Topic::Params)
        .map(|m| m.partition)
        .collect();
    assert!(params_partitions.len() > 1, "{params_partitions:?}");
    let note = got
        .messages
        .iter()
        .find(|m| m.topic == Topic::Events)
        .and_then(|m| m.envelope().extra_field("note").map(|v| v.decode()))
        .expect("the event's own field survives")
        .unwrap();
    assert_eq!(note, rmpv::Value::from(60));
    assert_eq!(sub.stats().duplicates, 0);
}

#[test]
fn a_duplicate_triple_is_delivered_once() {
    let (_tansu, conn) = Tansu::with_topics();
    let sub = subscriber(
        &conn,
        &[Topic::Events],
        &unique_group("tansu-dup"),
        StartFrom::Earliest,
    );
    let raw = raw_producer(&conn);
    // what a producer retrying without idempotence would leave on the log
    let first = envelope_bytes(Topic::Events, "s-dup", "python.gui", 1);
    for _ in 0..3 {
        send_raw(&raw, Topic::Events, "note_on", &first);
    }
    send_raw(
        &raw,
        Topic::Events,
        "note_on",
        &envelope_bytes(Topic::Events, "s-dup", "python.gui", 2),
    );
    // same seq, other producer: not a duplicate
    send_raw(
        &raw,
        Topic::Events,
        "note_on",
        &envelope_bytes(Topic::Events, "s-dup", "sc.bridge", 1),
    );

    let mut got = Collected::default();
    collect_messages(&sub, &mut got, 3, Duration::from_secs(60));
    // give a wrongly delivered copy time to show up
    collect_until(&sub, &mut got, Duration::from_secs(1), |_| false);
    let ids: Vec<(String, u64, i64)> = got
        .messages
        .iter()
        .map(|m| (m.envelope().producer_id.clone(), m.envelope().seq, m.offset))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("python.gui".to_owned(), 1, 0),
            ("python.gui".to_owned(), 2, 3),
            ("sc.bridge".to_owned(), 1, 4),
        ]
    );
    let stats = sub.stats();
    assert_eq!((stats.received, stats.duplicates), (5, 2), "{stats:?}");
}

#[test]
fn a_restarted_subscriber_resumes_where_it_committed_on_tansu() {
    let (_tansu, conn) = Tansu::with_topics();
    let publisher = bulk_publisher(&conn, "test.tansu.resume", "s");
    let group = unique_group("tansu-resume");
    for i in 0..10 {
        publisher.publish(Draft::param(Actor::User, format!("p{}", i % 3), 0.1));
    }
    publisher.flush(Duration::from_secs(30)).unwrap();

    let first = subscriber(&conn, &[Topic::Params], &group, StartFrom::Earliest);
    let mut got = Collected::default();
    collect_messages(&first, &mut got, 10, Duration::from_secs(60));
    let first_stats = first.stop();
    assert_eq!(first_stats.delivered, 10);

    for i in 10..15 {
        publisher.publish(Draft::param(Actor::User, format!("p{}", i % 3), 0.2));
    }
    publisher.flush(Duration::from_secs(30)).unwrap();

    let second = subscriber(&conn, &[Topic::Params], &group, StartFrom::Earliest);
    let mut again = Collected::default();
    collect_messages(&second, &mut again, 5, Duration::from_secs(60));
    collect_until(&second, &mut again, Duration::from_secs(1), |_| false);
    let mut seqs: Vec<u64> = again.messages.iter().map(|m| m.envelope().seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (11..=15).collect::<Vec<_>>());
    assert_eq!(
        second.stats().received,
        5,
        "nothing before the commit is read again"
    );
}

/// rdkafka's admin futures are driven by its own thread; park until done.
fn futures_block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// tansu with `--authentication` wants a SASL login. With in-memory storage
/// no SCRAM user can be created (its own `tansu user create` is refused as
/// not authenticated, and it offers no PLAIN), so what can be checked is that
/// our SASL options reach the broker and its refusal comes back in words.
#[test]
fn a_sasl_broker_refusing_us_is_reported_in_words() {
    let tansu = Tansu::start_with(&["--authentication"]);
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_integr8tor"))
            .args(["topics", "create", "--brokers", &tansu.bootstrap()])
            .args(["--timeout", "5"])
            .args(extra)
            .output()
            .expect("running integr8tor");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{extra:?}: one line expected: {stderr:?}");
        lines[0].to_owned()
    };
    let line = run(&[
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        "sasl.mechanism=SCRAM-SHA-256",
        "-X",
        "sasl.username=alice",
        "-X",
        "sasl.password=wrong",
    ]);
    assert!(
        line.contains("SASL authentication error") && line.contains("unknown-user"),
        "{line}"
    );
    // without SASL the broker hangs up; the cause is in the line
    let line = run(&[]);
    assert!(
        line.contains("Broker transport failure") && line.contains("Disconnected"),
        "{line}"
    );
}
