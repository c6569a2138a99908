//! The idempotent publisher: stamps identity fields, limits rates, never blocks.
//!
//! [`Publisher::publish`] runs on the caller's thread (the player, the UI's
//! touch controls) and costs a rate-limit lookup, one MessagePack encode into a
//! reused buffer and one non-blocking enqueue into librdkafka. When the local
//! queue is full the message is dropped and counted; it never waits for the
//! broker. Delivery reports come back on the publisher's polling thread,
//! where they are counted and failures are logged and sent as
//! [`PublisherEvent`]s.
//!
//! The polling thread rests while nothing is in flight: it waits for the
//! next publish (which wakes it) or [`IDLE_POLL`], so an idle publisher
//! costs a few wake-ups a second. (rdkafka's own `ThreadedProducer` polls
//! every 100 ms and spins through the last millisecond of each poll, as
//! librdkafka's wait ends up to a millisecond before rdkafka's deadline:
//! about 0.7 % of a core per idle producer.)
//!
//! `seq` is strictly increasing per (session_id, producer_id): the publisher
//! holds both, and [`Publisher::set_session`] starts a new session at seq 1.
//! Sends happen under one lock, so seq order is enqueue order and per-key
//! order on the bus follows it (librdkafka's idempotent producer keeps order
//! per partition through retries).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use hashbrown::HashMap;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::util::Timeout;

use super::config::Connection;
use super::ratelimit::{RateDecision, RateLimiter, RateLimits};
use super::{unix_ms_now, BusError};
use crate::clock::SharedClock;
use crate::envelope::{Actor, Body, Envelope, RawValue, Topic};

/// How a publisher is set up. Every librdkafka default here can also be
/// overridden with a pass-through option on the [`Connection`].
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// This producer's id, e.g. `integr8tor.player`.
    pub producer_id: String,
    /// The session to stamp; change it later with [`Publisher::set_session`].
    pub session_id: String,
    /// The envelope's `source` field for drafts that do not set one.
    pub source: String,
    /// Rate limits (docs/formats.md section 2 by default).
    pub rate_limits: RateLimits,
    /// `enable.idempotence` (default true).
    pub idempotence: bool,
    /// `acks` (default `all`).
    pub acks: String,
    /// `compression.type` (default `lz4`).
    pub compression: String,
    /// `linger.ms` (default 5).
    pub linger_ms: u32,
    /// `batch.size` in bytes (default 16384).
    pub batch_size: u32,
    /// How long dropping the publisher waits for queued messages (default 2 s).
    pub flush_on_drop: Duration,
    /// Capacity of the event channel; events beyond it are dropped (still counted).
    pub event_capacity: usize,
}

impl PublisherConfig {
    /// Defaults for a producer id and session.
    pub fn new(producer_id: impl Into<String>, session_id: impl Into<String>) -> PublisherConfig {
        PublisherConfig {
            producer_id: producer_id.into(),
            session_id: session_id.into(),
            source: "integr8tor".to_owned(),
            rate_limits: RateLimits::default(),
            idempotence: true,
            acks: "all".to_owned(),
            compression: "lz4".to_owned(),
            linger_ms: 5,
            batch_size: 16_384,
            flush_on_drop: Duration::from_secs(2),
            event_capacity: 1024,
        }
    }

    fn librdkafka_defaults(&self) -> Vec<(&'static str, String)> {
        vec![
            ("enable.idempotence", self.idempotence.to_string()),
            ("acks", self.acks.clone()),
            ("compression.type", self.compression.clone()),
            ("linger.ms", self.linger_ms.to_string()),
            ("batch.size", self.batch_size.to_string()),
            ("client.id", self.producer_id.clone()),
        ]
    }
}

/// A message to publish: what the caller says. The publisher fills in `v`,
/// `session_id`, `producer_id` and `seq`, and `ts_ms` when it is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Who caused it; decides rate limiting (`replay`, `preset` are exempt).
    pub actor: Actor,
    /// The topic-specific fields; also decide topic and key.
    pub body: Body,
    /// When it happened (Unix ms); `None` means now.
    pub ts_ms: Option<i64>,
    /// The `source` field; `None` uses the publisher's.
    pub source: Option<String>,
    /// Extra fields, written after the known ones in this order.
    pub extra: Vec<(String, RawValue)>,
}

impl Draft {
    /// A parameter change on `noise.params`.
    pub fn param(actor: Actor, path: impl Into<String>, value: f64) -> Draft {
        Draft::new(
            actor,
            Body::Param {
                path: path.into(),
                value,
                value_mapped: None,
                has_value_mapped: false,
            },
        )
    }

    /// A mod bus value on `noise.mod` (actor `mod`).
    pub fn mod_value(bus: i64, value: f64, source_type: Option<String>) -> Draft {
        Draft::new(
            Actor::Mod,
            Body::Mod {
                path: format!("bus.{bus}"),
                bus,
                value,
                source_type,
            },
        )
    }

    /// A level meter on `noise.audio` (actor `telemetry`).
    pub fn audio(path: impl Into<String>, peak: f64, rms: Option<f64>) -> Draft {
        Draft::new(
            Actor::Telemetry,
            Body::Audio {
                path: path.into(),
                peak,
                rms,
                has_rms: rms.is_some(),
            },
        )
    }

    /// An event on `noise.events`; `fields` are merged into the top-level map.
    pub fn event(
        actor: Actor,
        event_type: impl Into<String>,
        fields: Vec<(String, RawValue)>,
    ) -> Draft {
        Draft {
            extra: fields,
            ..Draft::new(
                actor,
                Body::Event {
                    event_type: event_type.into(),
                },
            )
        }
    }

    /// A full state on `noise.state` (actor `preset`); `state` must be a map.
    pub fn state(key: impl Into<String>, state: RawValue) -> Draft {
        Draft::new(
            Actor::Preset,
            Body::State {
                key: key.into(),
                state,
            },
        )
    }

    /// A draft with this body and actor, stamped now.
    pub fn new(actor: Actor, body: Body) -> Draft {
        Draft {
            actor,
            body,
            ts_ms: None,
            source: None,
            extra: Vec::new(),
        }
    }

    /// Re-publishes a received envelope's content (body, extras, source,
    /// ts_ms) under `actor`; the identity fields will be this publisher's.
    pub fn from_envelope(envelope: Envelope, actor: Actor) -> Draft {
        Draft {
            actor,
            body: envelope.body,
            ts_ms: Some(envelope.ts_ms),
            source: envelope.source,
            extra: envelope.extra,
        }
    }

    fn topic(&self) -> Topic {
        self.body.topic()
    }

    fn key(&self) -> &str {
        self.body.kafka_key()
    }
}

/// What became of one publish call. None of these waited for the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// In librdkafka's queue with this seq; delivery is reported asynchronously.
    Queued {
        /// The seq stamped on it.
        seq: u64,
    },
    /// Over the key's rate limit: dropped. It is kept as the key's latest
    /// value, which [`Publisher::flush_rate_limited`] sends once the key opens.
    RateLimited {
        /// When the key accepts again.
        retry_after: Duration,
    },
    /// librdkafka's local queue is full (the broker is slow or away): dropped.
    QueueFull,
    /// librdkafka refused the message (too large, ...): dropped.
    Rejected {
        /// Why, in words.
        error: String,
    },
}

/// Something that happened after a publish call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublisherEvent {
    /// A queued message was not delivered (e.g. `message.timeout.ms` ran out).
    DeliveryFailed {
        /// Topic name.
        topic: String,
        /// Kafka key.
        key: Option<String>,
        /// The seq it carried.
        seq: u64,
        /// Why, in words.
        error: String,
    },
    /// The client reported a problem reaching the brokers (it keeps retrying).
    BrokerError {
        /// librdkafka's description.
        error: String,
    },
}

/// Counters since the publisher was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// Accepted into librdkafka's queue.
    pub queued: u64,
    /// Acknowledged by the brokers.
    pub delivered: u64,
    /// Dropped by the rate limits.
    pub rate_limited: u64,
    /// Dropped because the local queue was full.
    pub queue_full: u64,
    /// Refused by librdkafka at enqueue.
    pub rejected: u64,
    /// Queued but never delivered.
    pub delivery_failed: u64,
    /// Client-level errors reported (connection refused, auth failure, ...).
    pub broker_errors: u64,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    delivered: AtomicU64,
    rate_limited: AtomicU64,
    queue_full: AtomicU64,
    rejected: AtomicU64,
    delivery_failed: AtomicU64,
    broker_errors: AtomicU64,
}

/// How long one poll waits while messages are in flight (delivery reports
/// are handled as they come; a stop is noticed within this).
const BUSY_POLL: Duration = Duration::from_millis(100);
/// How long the polling thread rests with nothing in flight before it looks
/// for broker errors again (a publish wakes it at once).
pub const IDLE_POLL: Duration = Duration::from_millis(250);

/// The thread that serves the producer's delivery reports and errors.
struct Poller {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    fn start(producer: Arc<BaseProducer<PublisherContext>>) -> std::io::Result<Poller> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("publisher-poll".to_owned())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    // in flight counts queued reports and callbacks too
                    if producer.in_flight_count() > 0 {
                        producer.poll(BUSY_POLL);
                    } else {
                        producer.poll(Duration::ZERO);
                        std::thread::park_timeout(IDLE_POLL);
                    }
                }
            })?;
        Ok(Poller {
            stop,
            thread: Some(thread),
        })
    }

    /// Wakes the thread when it rests (a message went out).
    fn wake(&self) {
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            if t.join().is_err() {
                log::warn!("publisher: the polling thread panicked");
            }
        }
    }
}

/// librdkafka callbacks, run on the polling thread.
struct PublisherContext {
    counters: Arc<Counters>,
    events: Sender<PublisherEvent>,
}

impl ClientContext for PublisherContext {
    /// librdkafka's own lines go to the log at debug level; what they mean
    /// reaches the owner as [`PublisherEvent`]s.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        super::quiet_log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.counters.broker_errors.fetch_add(1, Ordering::Relaxed);
        log::debug!("publisher: {error}: {reason}");
        let _ = self.events.try_send(PublisherEvent::BrokerError {
            error: format!("{reason} ({})", super::error_in_words(&error)),
        });
    }
}

impl ProducerContext for PublisherContext {
    /// The message's seq.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        match result {
            Ok(_) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                self.counters
                    .delivery_failed
                    .fetch_add(1, Ordering::Relaxed);
                let key = message
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned());
                // counted and sent as an event: one line per message would
                // flood the terminal when the brokers are gone
                log::debug!(
                    "publisher: message seq {seq} to {} (key {key:?}) not delivered: {error}",
                    message.topic()
                );
                // a full channel means nobody is draining it; the counter still counts
                let _ = self.events.try_send(PublisherEvent::DeliveryFailed {
                    topic: message.topic().to_owned(),
                    key,
                    seq: seq as u64,
                    error: super::error_in_words(error),
                });
            }
        }
    }
}

struct State {
    session_id: String,
    next_seq: u64,
    limiter: RateLimiter,
    /// The latest rate-limited draft per (topic, key), sent by `flush_rate_limited`.
    pending: HashMap<(Topic, String), Draft>,
    buf: Vec<u8>,
    /// Copies of the producer id and default source, moved into each
    /// envelope for encoding and taken back after, so a publish allocates
    /// no identity strings.
    producer_id: String,
    source: String,
}

/// An idempotent, rate-limited, never-blocking Kafka producer of envelopes.
/// Shared by reference between threads (`&self` methods, internally locked).
pub struct Publisher {
    /// Declared first so it is joined before the producer's last handle goes.
    poller: Poller,
    producer: Arc<BaseProducer<PublisherContext>>,
    state: Mutex<State>,
    counters: Arc<Counters>,
    events: Receiver<PublisherEvent>,
    producer_id: String,
    brokers: String,
    flush_on_drop: Duration,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("producer_id", &self.producer_id)
            .field("brokers", &self.brokers)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Creates the producer. Fails only on bad configuration; an unreachable
    /// broker is not an error here (messages queue and delivery is retried).
    pub fn new(
        connection: &Connection,
        config: PublisherConfig,
        clock: SharedClock,
    ) -> Result<Publisher, BusError> {
        let counters = Arc::new(Counters::default());
        let (tx, events) = crossbeam_channel::bounded(config.event_capacity.max(1));
        let context = PublisherContext {
            counters: Arc::clone(&counters),
            events: tx,
        };
        let producer: BaseProducer<PublisherContext> = connection
            .client_config(&config.librdkafka_defaults())
            .create_with_context(context)
            .map_err(|e| BusError::client("creating the producer", connection.brokers(), e))?;
        let producer = Arc::new(producer);
        let poller = Poller::start(Arc::clone(&producer)).map_err(|error| BusError::Io {
            context: "starting the publisher's polling thread".to_owned(),
            error,
        })?;
        Ok(Publisher {
            poller,
            producer,
            state: Mutex::new(State {
                session_id: config.session_id,
                next_seq: 1,
                limiter: RateLimiter::new(config.rate_limits, clock),
                pending: HashMap::new(),
                buf: Vec::with_capacity(256),
                producer_id: config.producer_id.clone(),
                source: config.source,
            }),
            counters,
            events,
            producer_id: config.producer_id,
            brokers: connection.brokers().to_owned(),
            flush_on_drop: config.flush_on_drop,
        })
    }

    /// Publishes one message without waiting for anything.
    pub fn publish(&self, draft: Draft) -> PublishOutcome {
        let mut state = self.lock();
        let topic = draft.topic();
        let decision = state.limiter.check(topic, draft.key(), draft.actor.kind());
        match decision {
            RateDecision::Allow => {
                if !state.pending.is_empty() {
                    // a newer value supersedes a held one
                    state.pending.remove(&(topic, draft.key().to_owned()));
                }
                self.send_locked(&mut state, draft)
            }
            RateDecision::Drop { retry_after } => {
                self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                state.pending.insert((topic, draft.key().to_owned()), draft);
                PublishOutcome::RateLimited { retry_after }
            }
        }
    }

    /// Sends each rate-limited key's latest dropped value whose key has opened
    /// again, so the last position of a fast gesture is not lost. Call it
    /// periodically (each UI frame, each player tick); returns how many were
    /// queued. Values still inside their limit stay held.
    pub fn flush_rate_limited(&self) -> usize {
        let mut state = self.lock();
        if state.pending.is_empty() {
            return 0;
        }
        let keys: Vec<(Topic, String)> = state.pending.keys().cloned().collect();
        let mut sent = 0;
        for (topic, key) in keys {
            let actor = match state.pending.get(&(topic, key.clone())) {
                Some(d) => d.actor.kind(),
                None => continue,
            };
            if state.limiter.check(topic, &key, actor) == RateDecision::Allow {
                if let Some(draft) = state.pending.remove(&(topic, key)) {
                    if matches!(
                        self.send_locked(&mut state, draft),
                        PublishOutcome::Queued { .. }
                    ) {
                        sent += 1;
                    }
                }
            }
        }
        sent
    }

    /// How many rate-limited values are held for [`Publisher::flush_rate_limited`].
    pub fn held_count(&self) -> usize {
        self.lock().pending.len()
    }

    /// Starts a new session: later messages carry `session_id` and seq restarts at 1.
    /// Held rate-limited values of the old session are discarded.
    pub fn set_session(&self, session_id: impl Into<String>) {
        let mut state = self.lock();
        state.session_id = session_id.into();
        state.next_seq = 1;
        state.pending.clear();
    }

    /// The current session id.
    pub fn session_id(&self) -> String {
        self.lock().session_id.clone()
    }

    /// The seq the next queued message will carry.
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// This publisher's producer id.
    pub fn producer_id(&self) -> &str {
        &self.producer_id
    }

    /// Delivery failures and broker errors, as they happen. Clone the
    /// receiver to hand it to another thread.
    pub fn events(&self) -> &Receiver<PublisherEvent> {
        &self.events
    }

    /// The counters now.
    pub fn stats(&self) -> PublisherStats {
        let c = &self.counters;
        PublisherStats {
            queued: c.queued.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            queue_full: c.queue_full.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            delivery_failed: c.delivery_failed.load(Ordering::Relaxed),
            broker_errors: c.broker_errors.load(Ordering::Relaxed),
        }
    }

    /// Messages queued or in flight, not yet reported delivered or failed.
    pub fn in_flight(&self) -> usize {
        usize::try_from(self.producer.in_flight_count()).unwrap_or(0)
    }

    /// Waits up to `timeout` until every queued message is delivered or failed.
    /// This one call blocks; use it at shutdown or from a worker, not the UI.
    pub fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        self.producer
            .flush(Timeout::After(timeout))
            .map_err(|e| BusError::client("flushing the producer", &self.brokers, e))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // a panic while holding the lock leaves plain counters and maps, still usable
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send_locked(&self, state: &mut State, draft: Draft) -> PublishOutcome {
        let seq = state.next_seq;
        let topic = draft.topic();
        let own_source = draft.source.is_none();
        let mut envelope = Envelope {
            v: 1,
            session_id: std::mem::take(&mut state.session_id),
            producer_id: std::mem::take(&mut state.producer_id),
            seq,
            ts_ms: draft.ts_ms.unwrap_or_else(unix_ms_now),
            actor: Some(draft.actor),
            source: Some(
                draft
                    .source
                    .unwrap_or_else(|| std::mem::take(&mut state.source)),
            ),
            body: draft.body,
            extra: draft.extra,
        };
        state.buf.clear();
        envelope.encode_into(&mut state.buf);
        // the identity strings go back for the next message
        state.session_id = std::mem::take(&mut envelope.session_id);
        state.producer_id = std::mem::take(&mut envelope.producer_id);
        if own_source {
            if let Some(source) = envelope.source.take() {
                state.source = source;
            }
        }
        let record = BaseRecord::with_opaque_to(topic.name(), seq as usize)
            .key(envelope.kafka_key())
            .payload(&state.buf[..]);
        match self.producer.send(record) {
            Ok(()) => {
                state.next_seq += 1;
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
                self.poller.wake();
                PublishOutcome::Queued { seq }
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                self.counters.queue_full.fetch_add(1, Ordering::Relaxed);
                PublishOutcome::QueueFull
            }
            Err((e, _)) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                log::debug!("publisher: {} refused a message: {e}", topic.name());
                PublishOutcome::Rejected {
                    error: super::error_in_words(&e),
                }
            }
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if self.producer.in_flight_count() > 0 {
            if let Err(e) = self.producer.flush(Timeout::After(self.flush_on_drop)) {
                log::warn!(
                    "publisher: {} messages still undelivered after {:?}: {e}",
                    self.producer.in_flight_count(),
                    self.flush_on_drop
                );
            }
        }
    }
}
