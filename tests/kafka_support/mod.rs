//! Helpers shared by the Kafka integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integr8tor::clock::{MonotonicClock, SharedClock};
use integr8tor::kafka::{
    Connection, ConnectionState, Malformed, Publisher, PublisherConfig, RateLimits, Received,
    StartFrom, Subscriber, SubscriberConfig, SubscriberEvent,
};
use integr8tor::Topic;

/// Everything a subscriber sent, in order.
#[derive(Debug, Default)]
pub struct Collected {
    pub messages: Vec<Received>,
    pub malformed: Vec<Malformed>,
    pub states: Vec<ConnectionState>,
    pub errors: Vec<String>,
    /// Retention gaps reported.
    pub gaps: Vec<integr8tor::kafka::Gap>,
    /// Event kinds in arrival order: 'M' message (one per message), 'X' malformed, 'C' connection.
    pub order: String,
}

impl Collected {
    pub fn absorb(&mut self, event: SubscriberEvent) {
        match event {
            SubscriberEvent::Messages(batch) => {
                for m in batch {
                    self.order.push('M');
                    self.messages.push(m);
                }
            }
            SubscriberEvent::Malformed(m) => {
                self.order.push('X');
                self.malformed.push(m);
            }
            SubscriberEvent::Connection(s) => {
                self.order.push('C');
                self.states.push(s);
            }
            SubscriberEvent::ConsumeError { error } => self.errors.push(error),
            SubscriberEvent::Gap(g) => {
                self.order.push('G');
                self.gaps.push(g);
            }
        }
    }
}

/// Drains events until `done` says so or `timeout` passes.
pub fn collect_until(
    sub: &Subscriber,
    into: &mut Collected,
    timeout: Duration,
    done: impl Fn(&Collected) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    while !done(into) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match sub
            .events()
            .recv_timeout(left.min(Duration::from_millis(100)))
        {
            Ok(e) => into.absorb(e),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return false,
        }
    }
    true
}

/// Collects until `n` messages arrived; panics with what arrived on timeout.
pub fn collect_messages(sub: &Subscriber, into: &mut Collected, n: usize, timeout: Duration) {
    let ok = collect_until(sub, into, timeout, |c| c.messages.len() >= n);
    assert!(
        ok,
        "expected {n} messages within {timeout:?}, got {} (stats {:?}, states {:?}, errors {:?})",
        into.messages.len(),
        sub.stats(),
        into.states,
        into.errors
    );
}

/// Waits for partitions to be assigned (so `Latest` subscribers miss nothing after it).
pub fn wait_connected(sub: &Subscriber, into: &mut Collected, timeout: Duration) {
    let ok = collect_until(sub, into, timeout, |c| {
        c.states.last() == Some(&ConnectionState::Connected)
    });
    assert!(
        ok,
        "subscriber not connected within {timeout:?}: {:?}",
        into.states
    );
}

static GROUPS: AtomicU32 = AtomicU32::new(0);

/// A group id unique to this test process.
pub fn unique_group(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        GROUPS.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn clock() -> SharedClock {
    Arc::new(MonotonicClock::new())
}

/// A publisher without rate limits (for bulk tests).
pub fn bulk_publisher(conn: &Connection, producer_id: &str, session: &str) -> Publisher {
    let mut config = PublisherConfig::new(producer_id, session);
    config.rate_limits = RateLimits::unlimited();
    Publisher::new(conn, config, clock()).expect("publisher")
}

pub fn subscriber(
    conn: &Connection,
    topics: &[Topic],
    group: &str,
    start: StartFrom,
) -> Subscriber {
    Subscriber::start(conn, SubscriberConfig::new(group, topics).start_from(start))
        .expect("subscriber")
}

/// A plain rdkafka producer for sending raw bytes (duplicates, garbage).
pub fn raw_producer(conn: &Connection) -> rdkafka::producer::BaseProducer {
    conn.client_config(&[("linger.ms", "0".to_owned())])
        .create()
        .expect("raw producer")
}

pub fn send_raw(
    producer: &rdkafka::producer::BaseProducer,
    topic: Topic,
    key: &str,
    payload: &[u8],
) {
    use rdkafka::producer::{BaseRecord, Producer};
    producer
        .send(BaseRecord::to(topic.name()).key(key).payload(payload))
        .map_err(|(e, _)| e)
        .expect("enqueue raw");
    producer.flush(Duration::from_secs(10)).expect("flush raw");
}

/// A valid envelope map with the given identity, encoded.
pub fn envelope_bytes(topic: Topic, session: &str, producer: &str, seq: u64) -> Vec<u8> {
    use rmpv::Value;
    let mut entries = vec![
        (Value::from("v"), Value::from(1)),
        (Value::from("session_id"), Value::from(session)),
        (Value::from("producer_id"), Value::from(producer)),
        (Value::from("seq"), Value::from(seq)),
        (Value::from("ts_ms"), Value::from(1_790_000_000_000i64)),
        (Value::from("actor"), Value::from("midi")),
    ];
    match topic {
        Topic::Events => {
            entries.push((Value::from("type"), Value::from("note_on")));
            entries.push((Value::from("note"), Value::from(60)));
        }
        Topic::Params => {
            entries.push((Value::from("path"), Value::from("gen.1.cutoff")));
            entries.push((Value::from("value"), Value::F64(0.5)));
        }
        other => panic!("envelope_bytes does not build {other}"),
    }
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &Value::Map(entries)).expect("encode");
    out
}
