//! The subscriber: one named consumer thread that decodes, deduplicates and
//! forwards.
//!
//! The thread polls librdkafka, checks each payload in place as an
//! [`EnvelopeView`] for its topic (no allocation), drops (session_id,
//! producer_id, seq) triples it has already seen (a [`DedupWindow`], 50,000
//! by default) and sends what is left in batches on a bounded crossbeam
//! channel as [`SubscriberEvent::Messages`]; the payloads of a batch share
//! one buffer. A batch is
//! whatever librdkafka has ready right now (up to `max_batch`), so batching
//! adds no latency; it only amortizes the channel hand-off at high rates.
//!
//! Malformed payloads are counted and reported with topic, partition and
//! offset; consumption goes on. Connection trouble is reported as
//! [`ConnectionState::Retrying`] with librdkafka's own words, and
//! [`ConnectionState::Connected`] once the group has assigned partitions or a
//! metadata probe succeeds again.
//!
//! A position that falls out of the range the brokers still hold (retention
//! deleted what was not read yet) resumes at the oldest message they hold,
//! never at the end: `auto.offset.reset` is always `earliest`, and
//! [`StartFrom::Latest`] is applied by the subscriber itself when partitions
//! are assigned (the committed offset if there is one, else the end of the
//! partition at its first assignment). Messages skipped that way are counted
//! and reported as a [`Gap`] with topic, partition and offsets.
//!
//! Offsets are stored only after their batch is on the channel and committed
//! by librdkafka's auto-commit, plus a synchronous commit when the subscriber
//! stops: a subscriber restarted on the same group resumes after the last
//! message it handed over (at-least-once; the window catches replays).
//!
//! When the channel is full the thread waits (backpressure: a recorder must
//! not lose messages), checking for a stop request every 100 ms.

use crate::thread::NamedThread;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::config::Connection;
use super::dedup::{DedupWindow, DEFAULT_WINDOW};
use super::{unix_ms_now, BusError};
use crate::envelope::{ActorKind, Envelope, EnvelopeView, Topic};

/// `fetch.wait.max.ms` used against the embedded broker. librdkafka's mock
/// broker holds an empty fetch for the full wait even when data arrives, so
/// the default of 500 ms would be the latency; real brokers answer as soon as
/// data is there and keep librdkafka's default.
pub const EMBEDDED_FETCH_WAIT_MS: u32 = 1;

/// `fetch.wait.max.ms` elsewhere. A real Kafka or Redpanda broker answers a
/// fetch as soon as data arrives, so this only sets how often an idle
/// consumer asks; but brokers that hold an empty fetch for the whole wait
/// (librdkafka's mock behind `--brokers`, e.g. another `integr8tor broker`)
/// would otherwise add librdkafka's default 500 ms to every message, and the
/// recorder promises to lose at most 100 ms when killed.
pub const DEFAULT_FETCH_WAIT_MS: u32 = 10;

/// `session.timeout.ms` used against the embedded broker (see [`Subscriber::start`]).
pub const EMBEDDED_SESSION_TIMEOUT_MS: u32 = 3000;

/// `fetch.queue.backoff.ms` for every subscriber. When a partition's local
/// queue is over `queued.min.messages` (the subscriber is behind), librdkafka
/// waits this long before fetching it again; its default of 1000 ms starves
/// a subscriber that catches up faster than that (draining a backlog from the
/// embedded broker ran at a quarter of the speed). The wait is local: no
/// request is sent while the queue is full.
pub const FETCH_QUEUE_BACKOFF_MS: u32 = 1;

/// Messages that share one receive timestamp: stamping each one costs two
/// clock reads, and messages polled in one burst arrived together anyway.
const STAMP_EVERY: u32 = 64;

/// Default for [`SubscriberConfig::max_batch_bytes`].
pub const DEFAULT_MAX_BATCH_BYTES: usize = 16 << 20;

/// Where a group with no committed offset starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// Only messages produced from now on (the live view).
    #[default]
    Latest,
    /// Everything the brokers still hold.
    Earliest,
}

/// How a subscriber is set up.
#[derive(Debug, Clone)]
pub struct SubscriberConfig {
    /// Topics to consume.
    pub topics: Vec<Topic>,
    /// Consumer group; a restarted subscriber on the same group resumes where it committed.
    pub group_id: String,
    /// Start position when the group has no committed offset.
    pub start: StartFrom,
    /// Triples remembered for duplicate detection.
    pub dedup_window: usize,
    /// Channel capacity, in events (a batch of messages is one event).
    pub channel_capacity: usize,
    /// Most messages per [`SubscriberEvent::Messages`] batch.
    pub max_batch: usize,
    /// A batch is handed over before its payloads would pass this many bytes
    /// (a larger payload makes a batch of its own). Bounds the memory one
    /// held `Received` keeps alive; at most 4 GiB.
    pub max_batch_bytes: usize,
    /// Where partitions without a committed offset start under
    /// [`StartFrom::Latest`], instead of their end at assignment (a recorder
    /// continues exactly where its initial state was read up to).
    pub start_offsets: Vec<(Topic, i32, i64)>,
    /// `fetch.wait.max.ms`; `None`: [`EMBEDDED_FETCH_WAIT_MS`] on the embedded
    /// broker, [`DEFAULT_FETCH_WAIT_MS`] elsewhere. A `-X` option still wins.
    pub fetch_wait_max_ms: Option<u32>,
    /// Thread name.
    pub thread_name: String,
    /// How partitions are taken: through the consumer group (resumable) or
    /// directly (live views).
    pub assignment: Assignment,
}

/// How a subscriber takes its topics' partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    /// Joins the consumer group, which assigns the partitions; offsets are
    /// committed, so a subscriber restarted on the same group resumes. A
    /// broker outage can make the group rebalance, and some brokers (the
    /// embedded one among them) hold a rebalance for the whole session
    /// timeout.
    Group,
    /// Takes every partition the brokers list for the topics, with no group
    /// membership and no commits: nothing to rebalance, so an outage only
    /// pauses reading. For live views, which start at the latest messages on a
    /// group of their own anyway. Partitions added later are not read.
    Direct,
}

impl SubscriberConfig {
    /// Defaults for a group and topics.
    pub fn new(group_id: impl Into<String>, topics: &[Topic]) -> SubscriberConfig {
        SubscriberConfig {
            topics: topics.to_vec(),
            group_id: group_id.into(),
            start: StartFrom::Latest,
            dedup_window: DEFAULT_WINDOW,
            channel_capacity: 1024,
            max_batch: 1024,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            start_offsets: Vec::new(),
            fetch_wait_max_ms: None,
            thread_name: "kafka-subscriber".to_owned(),
            assignment: Assignment::Group,
        }
    }

    /// Sets the start position.
    pub fn start_from(mut self, start: StartFrom) -> Self {
        self.start = start;
        self
    }
}

/// One decoded, deduplicated message.
///
/// It keeps the payload exactly as received (the recorder writes it
/// verbatim) and the few envelope fields a recorder needs; [`Received::view`]
/// reads every field in place without allocating, [`Received::envelope`]
/// makes an owned copy. The payloads of one batch share one buffer, so the
/// subscriber allocates per batch, not per message; holding on to one
/// `Received` keeps its batch's bytes alive (at most `max_batch` payloads
/// and `max_batch_bytes`, 16 MiB by default).
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// Its topic.
    pub topic: Topic,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
    /// The record's Kafka timestamp (create or log-append time), if any.
    pub kafka_timestamp_ms: Option<i64>,
    /// When this process received it (monotonic).
    pub received_at: Instant,
    /// When this process received it (Unix ms).
    pub received_unix_ms: i64,
    /// The envelope's `ts_ms`.
    pub ts_ms: i64,
    /// The envelope's actor.
    pub actor: ActorKind,
    /// The batch's payloads, one after the other.
    bytes: Arc<Vec<u8>>,
    /// Where this message's payload is in `bytes`: an envelope for `topic`.
    payload: Range<u32>,
    /// Where the envelope's own key (path, event type or state key) is in `bytes`.
    own_key: Range<u32>,
    /// `value` of a `noise.params` message.
    param_value: Option<f64>,
    key: ReceivedKey,
}

/// The Kafka key, stored only when it is not the envelope's own.
#[derive(Debug, Clone, PartialEq)]
enum ReceivedKey {
    Absent,
    /// The key docs/formats.md section 1 assigns, as nearly every producer sends.
    Envelope,
    /// Any other key, exactly as received.
    Other(Box<[u8]>),
}

impl Received {
    /// The envelope's fields, read in place.
    pub fn view(&self) -> EnvelopeView<'_> {
        EnvelopeView::decode(self.topic, self.payload())
            .expect("a Received holds only payloads that decoded for its topic")
    }

    /// An owned copy of the envelope.
    pub fn envelope(&self) -> Envelope {
        self.view().to_envelope()
    }

    /// The payload exactly as received.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.payload.start as usize..self.payload.end as usize]
    }

    /// The Kafka key as text, if the message had one and it is UTF-8
    /// (see [`Received::key_bytes`] for the bytes as received).
    pub fn key(&self) -> Option<&str> {
        match &self.key {
            ReceivedKey::Absent => None,
            ReceivedKey::Envelope => Some(self.envelope_key()),
            ReceivedKey::Other(k) => std::str::from_utf8(k).ok(),
        }
    }

    /// The Kafka key exactly as received (`None`: the message had none).
    pub fn key_bytes(&self) -> Option<&[u8]> {
        match &self.key {
            ReceivedKey::Absent => None,
            ReceivedKey::Envelope => Some(self.envelope_key().as_bytes()),
            ReceivedKey::Other(k) => Some(k),
        }
    }

    /// The key docs/formats.md section 1 gives the envelope (path, event type or
    /// state key), whatever key the message came with.
    pub fn envelope_key(&self) -> &str {
        let range = self.own_key.start as usize..self.own_key.end as usize;
        std::str::from_utf8(&self.bytes[range])
            .expect("the key was checked as UTF-8 when the payload was decoded")
    }

    /// Path and value of a `noise.params` message.
    pub fn param(&self) -> Option<(&str, f64)> {
        self.param_value.map(|value| (self.envelope_key(), value))
    }
}

/// Where `part`, a slice of `whole`, starts and ends in it, shifted by `base`.
fn span_in(whole: &[u8], part: &[u8], base: usize) -> Range<u32> {
    let start = base + (part.as_ptr() as usize - whole.as_ptr() as usize);
    start as u32..(start + part.len()) as u32
}

fn received_key(key: Option<&[u8]>, view: &EnvelopeView<'_>) -> ReceivedKey {
    match key {
        None => ReceivedKey::Absent,
        // comparing bytes is cheaper than validating UTF-8 again
        Some(k) if k == view.kafka_key().as_bytes() => ReceivedKey::Envelope,
        Some(k) => ReceivedKey::Other(k.into()),
    }
}

/// Messages the brokers deleted before the subscriber read them: its position
/// fell out of the retained range and it resumed at the oldest message held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The topic.
    pub topic: Topic,
    /// Kafka partition.
    pub partition: i32,
    /// The first offset that was not read.
    pub from_offset: i64,
    /// Where reading resumed (the oldest offset still held).
    pub resumed_at: i64,
}

impl Gap {
    /// How many messages were lost to retention.
    pub fn missing(&self) -> u64 {
        (self.resumed_at - self.from_offset).max(0) as u64
    }
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}[{}]: {} messages (offsets {} to {}) were deleted by the broker before they were read; resumed at offset {}",
            self.topic,
            self.partition,
            self.missing(),
            self.from_offset,
            self.resumed_at - 1,
            self.resumed_at
        )
    }
}

/// A message that could not be decoded and was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Topic name.
    pub topic: String,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
    /// Kafka key, if any.
    pub key: Option<String>,
    /// Why it was skipped.
    pub error: String,
}

/// How the subscriber's link to the brokers is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Talking to the brokers (partitions assigned or metadata answered).
    Connected,
    /// Trouble; librdkafka keeps retrying on its own.
    Retrying {
        /// The broker's or librdkafka's words.
        error: String,
    },
}

/// What the subscriber thread sends.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriberEvent {
    /// New messages, in arrival order (per partition in offset order).
    Messages(Vec<Received>),
    /// A skipped message.
    Malformed(Malformed),
    /// Messages deleted by the brokers before they were read.
    Gap(Gap),
    /// The connection changed.
    Connection(ConnectionState),
    /// Consumption reported an error that is not about the connection
    /// (e.g. a topic that does not exist); consumption goes on.
    ConsumeError {
        /// In words.
        error: String,
    },
}

/// Counters since the subscriber started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Records read from Kafka.
    pub received: u64,
    /// Messages forwarded on the channel.
    pub delivered: u64,
    /// Dropped as already seen.
    pub duplicates: u64,
    /// Skipped as undecodable.
    pub malformed: u64,
    /// Non-connection consume errors.
    pub consume_errors: u64,
    /// Connection-level errors reported by librdkafka.
    pub broker_errors: u64,
    /// Messages the brokers had deleted before they were read (see [`Gap`]).
    pub gap_messages: u64,
    /// Times reading resumed after such a gap.
    pub gaps: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    malformed: AtomicU64,
    consume_errors: AtomicU64,
    broker_errors: AtomicU64,
    gap_messages: AtomicU64,
    gaps: AtomicU64,
}

/// Things librdkafka told the context during a poll, read by the thread after it.
enum Note {
    BrokerError(String),
    /// Partitions assigned, with the offset reading starts from where known.
    Assigned(Vec<(Topic, i32, Option<i64>)>),
}

struct SubscriberContext {
    notes: Mutex<Vec<Note>>,
    has_notes: AtomicBool,
    counters: Arc<Counters>,
    start: StartFrom,
    /// Where each partition without a committed offset started, at its
    /// first assignment (so a later re-assignment does not skip ahead).
    first_starts: Mutex<HashMap<(String, i32), i64>>,
    /// Whether committed offsets exist to look up (group assignment).
    committed: bool,
}

/// How long a rebalance may wait on the brokers for committed offsets and
/// watermarks before falling back to librdkafka's own choice.
const ASSIGN_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

impl SubscriberContext {
    fn note(&self, note: Note) {
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        notes.push(note);
        self.has_notes.store(true, Ordering::Release);
    }

    fn take_notes(&self) -> Vec<Note> {
        if !self.has_notes.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ClientContext for SubscriberContext {
    /// librdkafka's own lines go to the log at debug level; what they mean
    /// reaches the owner as [`ConnectionState`]s.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        super::quiet_log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.counters.broker_errors.fetch_add(1, Ordering::Relaxed);
        log::debug!("subscriber: {error}: {reason}");
        let words = if reason.is_empty() {
            super::error_in_words(&error)
        } else {
            reason.to_owned()
        };
        self.note(Note::BrokerError(words));
    }
}

impl SubscriberContext {
    /// Sets where each assigned partition starts: its committed offset, or
    /// for [`StartFrom::Latest`] the end of the partition when it was first
    /// assigned; [`StartFrom::Earliest`] leaves the rest to `auto.offset.reset`.
    fn choose_starts(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &TopicPartitionList,
    ) -> Vec<(Topic, i32, Option<i64>)> {
        let committed = if self.committed {
            consumer
                .committed_offsets(tpl.clone(), ASSIGN_LOOKUP_TIMEOUT)
                .map_err(|e| log::warn!("subscriber: reading committed offsets: {e}"))
                .ok()
        } else {
            None
        };
        let mut firsts = self.first_starts.lock().unwrap_or_else(|p| p.into_inner());
        let mut starts = Vec::new();
        for mut elem in tpl.elements() {
            let (topic, partition) = (elem.topic().to_owned(), elem.partition());
            let committed_at = committed
                .as_ref()
                .and_then(|c| c.find_partition(&topic, partition))
                .and_then(|e| match e.offset() {
                    Offset::Offset(n) => Some(n),
                    _ => None,
                });
            let start = match (committed_at, self.start) {
                (Some(n), _) => Some(n),
                (None, StartFrom::Earliest) => {
                    if !self.committed {
                        // no group to ask: the oldest message held
                        let _ = elem.set_offset(Offset::Beginning);
                    }
                    None
                }
                (None, StartFrom::Latest) => match firsts.get(&(topic.clone(), partition)) {
                    Some(&n) => Some(n),
                    None => {
                        match consumer.fetch_watermarks(&topic, partition, ASSIGN_LOOKUP_TIMEOUT) {
                            Ok((_, high)) => {
                                firsts.insert((topic.clone(), partition), high);
                                Some(high)
                            }
                            Err(e) => {
                                log::warn!(
                                "subscriber: reading the end of {topic}[{partition}]: {e}; starting at its end"
                            );
                                let _ = elem.set_offset(Offset::End);
                                None
                            }
                        }
                    }
                },
            };
            let start = match start {
                Some(n) => match elem.set_offset(Offset::Offset(n)) {
                    Ok(()) => Some(n),
                    Err(e) => {
                        log::warn!("subscriber: cannot start {topic}[{partition}] at {n}: {e}");
                        None
                    }
                },
                None => None,
            };
            if let Some(t) = Topic::from_name(&topic) {
                starts.push((t, partition, start));
            }
        }
        starts
    }
}

impl ConsumerContext for SubscriberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let starts = self.choose_starts(consumer, tpl);
            self.note(Note::Assigned(starts));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                log::info!("subscriber: assigned {} partitions", tpl.count());
            }
            Rebalance::Revoke(tpl) => log::info!("subscriber: revoked {} partitions", tpl.count()),
            Rebalance::Error(e) => {
                log::warn!("subscriber: rebalance failed: {e}");
                self.note(Note::BrokerError(format!(
                    "rebalance failed: {}",
                    super::error_in_words(e)
                )));
            }
        }
    }
}

/// A running consumer thread. Dropping it (or [`Subscriber::stop`]) stops the
/// thread, commits what was handed over and joins.
pub struct Subscriber {
    events: Receiver<SubscriberEvent>,
    stop: Arc<AtomicBool>,
    thread: NamedThread<()>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    /// Creates the consumer, subscribes and starts the thread. Fails on bad
    /// configuration; an unreachable broker is reported on the channel.
    pub fn start(
        connection: &Connection,
        config: SubscriberConfig,
    ) -> Result<Subscriber, BusError> {
        let counters = Arc::new(Counters::default());
        let context = SubscriberContext {
            notes: Mutex::new(Vec::new()),
            has_notes: AtomicBool::new(false),
            counters: Arc::clone(&counters),
            start: config.start,
            first_starts: Mutex::new(
                config
                    .start_offsets
                    .iter()
                    .map(|&(t, p, o)| ((t.name().to_owned(), p), o))
                    .collect(),
            ),
            committed: config.assignment == Assignment::Group,
        };
        let direct = config.assignment == Assignment::Direct;
        let mut defaults: Vec<(&str, String)> = vec![
            ("group.id", config.group_id.clone()),
            ("enable.auto.commit", (!direct).to_string()),
            ("enable.auto.offset.store", "false".to_owned()),
            ("enable.partition.eof", "false".to_owned()),
            // also what happens when a position falls out of the retained
            // range: resume at the oldest message held, never skip to the end
            // ("latest" is applied when partitions are assigned)
            ("auto.offset.reset", "earliest".to_owned()),
            ("client.id", config.thread_name.clone()),
            ("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS.to_string()),
            // KIP-714 client metrics: with it on, librdkafka records every
            // poll (one per message) in a locked histogram, for brokers that
            // collect client metrics; ours do not need it
            ("enable.metrics.push", "false".to_owned()),
        ];
        let fetch_wait = config
            .fetch_wait_max_ms
            .or(Some(if connection.is_embedded() {
                EMBEDDED_FETCH_WAIT_MS
            } else {
                DEFAULT_FETCH_WAIT_MS
            }));
        if let Some(ms) = fetch_wait {
            defaults.push(("fetch.wait.max.ms", ms.to_string()));
        }
        if connection.is_embedded() {
            // The mock broker holds a rebalance for the whole session timeout
            // (45 s by default) when a member rejoins a group that another
            // member just left; a short session keeps a restarted recorder or
            // live view from stalling that long.
            defaults.push((
                "session.timeout.ms",
                EMBEDDED_SESSION_TIMEOUT_MS.to_string(),
            ));
            defaults.push(("heartbeat.interval.ms", "500".to_owned()));
        }
        let consumer: BaseConsumer<SubscriberContext> = connection
            .client_config(&defaults)
            .create_with_context(context)
            .map_err(|e| BusError::client("creating the consumer", connection.brokers(), e))?;
        if !direct {
            let names: Vec<&str> = config.topics.iter().map(|t| t.name()).collect();
            consumer
                .subscribe(&names)
                .map_err(|e| BusError::client("subscribing", connection.brokers(), e))?;
        }

        let (tx, events) = crossbeam_channel::bounded(config.channel_capacity.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            tx,
            stop: Arc::clone(&stop),
            counters: Arc::clone(&counters),
            dedup: DedupWindow::new(config.dedup_window),
            max_batch: config.max_batch.max(1),
            max_batch_bytes: config.max_batch_bytes.min(u32::MAX as usize),
            batch: Vec::new(),
            bytes: Vec::new(),
            no_bytes: Arc::new(Vec::new()),
            offsets: Vec::new(),
            next_offsets: HashMap::new(),
            batch_received: 0,
            batch_duplicates: 0,
            connected: None,
            last_error: None,
            last_probe: Instant::now(),
            stamp: None,
            direct: direct.then(|| config.topics.clone()),
        };
        let thread = NamedThread::spawn(config.thread_name.clone(), move || worker.run(consumer))
            .map_err(|error| BusError::Io {
            context: "starting the subscriber thread".to_owned(),
            error,
        })?;
        Ok(Subscriber {
            events,
            stop,
            thread,
            counters,
        })
    }

    /// The channel of messages and state changes. Clone it to hand it to another thread.
    pub fn events(&self) -> &Receiver<SubscriberEvent> {
        &self.events
    }

    /// The counters now.
    pub fn stats(&self) -> SubscriberStats {
        let c = &self.counters;
        SubscriberStats {
            received: c.received.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            consume_errors: c.consume_errors.load(Ordering::Relaxed),
            broker_errors: c.broker_errors.load(Ordering::Relaxed),
            gap_messages: c.gap_messages.load(Ordering::Relaxed),
            gaps: c.gaps.load(Ordering::Relaxed),
        }
    }

    /// Stops the thread (committing what was handed over), joins it and
    /// returns the final counters.
    pub fn stop(mut self) -> SubscriberStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.thread.join_quietly();
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The poll timeout while idle: how quickly a stop request is noticed.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How often a subscriber in trouble probes the brokers with a metadata request.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long such a probe waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);

type SubscriberConsumer = BaseConsumer<SubscriberContext>;

/// The thread's state; the consumer is passed alongside because polled
/// messages borrow it.
struct Worker {
    tx: Sender<SubscriberEvent>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    dedup: DedupWindow,
    max_batch: usize,
    max_batch_bytes: usize,
    /// Messages decoded since the last hand-over; their `bytes` is
    /// `no_bytes` until [`Worker::flush_batch`] shares out `bytes`.
    batch: Vec<Received>,
    bytes: Vec<u8>,
    no_bytes: Arc<Vec<u8>>,
    /// Highest offset handed over per (topic, partition) in the current batch.
    offsets: Vec<(Topic, i32, i64)>,
    /// The offset expected next per partition, to see retention gaps.
    next_offsets: HashMap<(Topic, i32), i64>,
    batch_received: u64,
    batch_duplicates: u64,
    /// `None` before anything is known.
    connected: Option<bool>,
    last_error: Option<String>,
    last_probe: Instant,
    /// The receive time shared by the next few messages, and how many used it.
    stamp: Option<(Instant, i64, u32)>,
    /// [`Assignment::Direct`]: the topics to take every partition of.
    direct: Option<Vec<Topic>>,
}

impl Worker {
    fn run(mut self, consumer: SubscriberConsumer) {
        if let Some(topics) = self.direct.take() {
            if !self.assign_directly(&consumer, &topics) {
                return;
            }
        }
        while !self.stop.load(Ordering::Acquire) {
            let first = consumer.poll(IDLE_POLL);
            let got_any = first.is_some();
            self.stamp = None;
            if let Some(first) = first {
                self.handle(&consumer, first);
                while self.batch.len() < self.max_batch {
                    match consumer.poll(Duration::ZERO) {
                        Some(next) => self.handle(&consumer, next),
                        None => break,
                    }
                }
            }
            self.flush_batch(&consumer);
            self.handle_notes(&consumer);
            if !got_any && self.connected == Some(false) && self.last_probe.elapsed() >= PROBE_EVERY
            {
                self.probe(&consumer);
            }
        }
        self.flush_batch(&consumer);
        if !consumer.context().committed {
            return;
        }
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => log::warn!("subscriber: final commit failed: {e}"),
        }
    }

    /// [`Assignment::Direct`]: asks the brokers for the topics' partitions
    /// until they answer (reporting the trouble meanwhile) and assigns them
    /// all, each from where [`SubscriberContext::choose_starts`] says. False
    /// when asked to stop first.
    fn assign_directly(&mut self, consumer: &SubscriberConsumer, topics: &[Topic]) -> bool {
        while !self.stop.load(Ordering::Acquire) {
            let tpl = match consumer.fetch_metadata(None, PROBE_TIMEOUT) {
                Ok(metadata) => {
                    let mut tpl = TopicPartitionList::new();
                    for t in metadata.topics() {
                        let known = topics.iter().any(|topic| topic.name() == t.name());
                        if known && t.error().is_none() {
                            for p in t.partitions() {
                                tpl.add_partition(t.name(), p.id());
                            }
                        }
                    }
                    tpl
                }
                Err(e) => {
                    self.set_connected(ConnectionState::Retrying {
                        error: super::error_in_words(&e),
                    });
                    std::thread::sleep(PROBE_EVERY.min(IDLE_POLL));
                    continue;
                }
            };
            if tpl.count() == 0 {
                // the topics do not exist yet: ask again shortly
                std::thread::sleep(PROBE_EVERY);
                continue;
            }
            let starts = consumer.context().choose_starts(consumer, &tpl);
            if let Err(e) = consumer.assign(&tpl) {
                self.set_connected(ConnectionState::Retrying {
                    error: super::error_in_words(&e),
                });
                std::thread::sleep(PROBE_EVERY);
                continue;
            }
            log::info!("subscriber: took {} partitions directly", tpl.count());
            consumer.context().note(Note::Assigned(starts));
            self.handle_notes(consumer);
            return true;
        }
        false
    }

    fn handle(
        &mut self,
        consumer: &SubscriberConsumer,
        polled: Result<BorrowedMessage<'_>, KafkaError>,
    ) {
        let message = match polled {
            Ok(m) => m,
            Err(e) => return self.consume_error(consumer, e),
        };
        if consumer.context().has_notes.load(Ordering::Acquire) {
            // an assignment made during this poll says where its partitions
            // start: know it before their first message
            self.flush_batch(consumer);
            self.handle_notes(consumer);
        }
        self.batch_received += 1;
        let partition = message.partition();
        let offset = message.offset();
        self.check_gap(consumer, message.topic(), partition, offset);
        let decoded = match Topic::from_name(message.topic()) {
            None => Err(format!(
                "{} is not one of the noise.* topics",
                message.topic()
            )),
            Some(topic) => match message.payload() {
                None => Err("no payload (a tombstone)".to_owned()),
                Some(payload) => match EnvelopeView::decode(topic, payload) {
                    Ok(view) => Ok((topic, view, payload)),
                    Err(e) => Err(e.to_string()),
                },
            },
        };
        let (topic, view, payload) = match decoded {
            Ok(d) => d,
            Err(error) => {
                let key = message
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned());
                let topic = message.topic().to_owned();
                // the owner reports it (rate limited); the log keeps every one
                log::debug!("subscriber: skipped {topic}[{partition}]@{offset}: {error}");
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                if let Some(t) = Topic::from_name(&topic) {
                    self.note_offset(t, partition, offset);
                }
                // keep arrival order: what came before goes first
                self.flush_batch(consumer);
                self.send(SubscriberEvent::Malformed(Malformed {
                    topic,
                    partition,
                    offset,
                    key,
                    error,
                }));
                return;
            }
        };
        if !self.bytes.is_empty() && self.bytes.len() + payload.len() > self.max_batch_bytes {
            // keeps a batch's memory bounded and its u32 offsets valid; before
            // this message's offset is noted, so it is not committed unseen
            self.flush_batch(consumer);
        }
        self.note_offset(topic, partition, offset);
        if !self
            .dedup
            .insert(view.session_id, view.producer_id, view.seq)
        {
            self.batch_duplicates += 1;
            return;
        }
        let key = received_key(message.key(), &view);
        let (received_at, received_unix_ms) = self.now();
        let base = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.batch.push(Received {
            topic,
            partition,
            offset,
            kafka_timestamp_ms: message.timestamp().to_millis(),
            received_at,
            received_unix_ms,
            ts_ms: view.ts_ms,
            actor: view.actor_kind(),
            // the real buffer is shared out when the batch is handed over
            bytes: Arc::clone(&self.no_bytes),
            payload: span_in(payload, payload, base),
            own_key: span_in(payload, view.kafka_key().as_bytes(), base),
            param_value: view.param().map(|(_, value)| value),
            key,
        });
        if self.connected != Some(true) {
            self.set_connected(ConnectionState::Connected);
        }
    }

    /// Reports a jump past the offset expected next on a partition: the
    /// messages between were deleted before they were read. (Compacted
    /// `noise.state` has holes by design and is not checked.)
    fn check_gap(
        &mut self,
        consumer: &SubscriberConsumer,
        topic: &str,
        partition: i32,
        offset: i64,
    ) {
        let Some(topic) = Topic::from_name(topic).filter(|t| *t != Topic::State) else {
            return;
        };
        let expected = self.next_offsets.insert((topic, partition), offset + 1);
        if let Some(from_offset) = expected.filter(|&e| offset > e) {
            let gap = Gap {
                topic,
                partition,
                from_offset,
                resumed_at: offset,
            };
            log::warn!("subscriber: {gap}");
            self.counters
                .gap_messages
                .fetch_add(gap.missing(), Ordering::Relaxed);
            self.counters.gaps.fetch_add(1, Ordering::Relaxed);
            // keep arrival order: what came before goes first
            self.flush_batch(consumer);
            self.send(SubscriberEvent::Gap(gap));
        }
    }

    /// The receive time: read once per [`STAMP_EVERY`] messages of a burst.
    fn now(&mut self) -> (Instant, i64) {
        match &mut self.stamp {
            Some((at, unix_ms, uses)) if *uses < STAMP_EVERY => {
                *uses += 1;
                (*at, *unix_ms)
            }
            _ => {
                let (at, unix_ms) = (Instant::now(), unix_ms_now());
                self.stamp = Some((at, unix_ms, 1));
                (at, unix_ms)
            }
        }
    }

    fn note_offset(&mut self, topic: Topic, partition: i32, offset: i64) {
        match self
            .offsets
            .iter_mut()
            .find(|(t, p, _)| *t == topic && *p == partition)
        {
            Some(entry) => entry.2 = entry.2.max(offset),
            None => self.offsets.push((topic, partition, offset)),
        }
    }

    fn consume_error(&mut self, consumer: &SubscriberConsumer, error: KafkaError) {
        let connection_trouble = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::Resolve
                    | RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::SSL
                    | RDKafkaErrorCode::SaslAuthenticationFailed
            )
        );
        // connection trouble reaches the context too, with better words
        if !connection_trouble {
            self.counters.consume_errors.fetch_add(1, Ordering::Relaxed);
            log::warn!("subscriber: {error}");
            self.flush_batch(consumer);
            self.send(SubscriberEvent::ConsumeError {
                error: super::error_in_words(&error),
            });
        }
    }

    /// Hands the batch over, then stores its offsets for commit.
    fn flush_batch(&mut self, consumer: &SubscriberConsumer) {
        let c = &self.counters;
        c.received
            .fetch_add(std::mem::take(&mut self.batch_received), Ordering::Relaxed);
        c.duplicates.fetch_add(
            std::mem::take(&mut self.batch_duplicates),
            Ordering::Relaxed,
        );
        if !self.batch.is_empty() {
            let mut batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.max_batch));
            let used = self.bytes.len();
            let bytes = Arc::new(std::mem::replace(
                &mut self.bytes,
                Vec::with_capacity(used.next_power_of_two()),
            ));
            for m in &mut batch {
                m.bytes = Arc::clone(&bytes);
            }
            let n = batch.len() as u64;
            if !self.send(SubscriberEvent::Messages(batch)) {
                // stopping: the batch was not handed over, so its offsets are not stored
                self.offsets.clear();
                return;
            }
            self.counters.delivered.fetch_add(n, Ordering::Relaxed);
        }
        if !self.offsets.is_empty() {
            let mut tpl = TopicPartitionList::with_capacity(self.offsets.len());
            for (topic, partition, offset) in self.offsets.drain(..) {
                if let Err(e) =
                    tpl.add_partition_offset(topic.name(), partition, Offset::Offset(offset + 1))
                {
                    log::warn!("subscriber: cannot store offset: {e}");
                }
            }
            if let Err(e) = consumer.store_offsets(&tpl) {
                // e.g. the partition was revoked meanwhile: its new owner re-reads
                log::debug!("subscriber: storing offsets: {e}");
            }
        }
    }

    /// Sends with backpressure, giving up only when asked to stop.
    fn send(&self, event: SubscriberEvent) -> bool {
        let mut event = event;
        loop {
            match self.tx.send_timeout(event, IDLE_POLL) {
                Ok(()) => return true,
                Err(SendTimeoutError::Timeout(back)) => {
                    if self.stop.load(Ordering::Acquire) {
                        return false;
                    }
                    event = back;
                }
                Err(SendTimeoutError::Disconnected(_)) => return false,
            }
        }
    }

    fn handle_notes(&mut self, consumer: &SubscriberConsumer) {
        for note in consumer.context().take_notes() {
            match note {
                Note::Assigned(starts) => {
                    for (topic, partition, offset) in starts {
                        // where reading starts now; unknown: its first message says
                        match offset {
                            Some(o) => self.next_offsets.insert((topic, partition), o),
                            None => self.next_offsets.remove(&(topic, partition)),
                        };
                    }
                    self.set_connected(ConnectionState::Connected)
                }
                Note::BrokerError(error) => {
                    self.last_probe = Instant::now();
                    self.set_connected(ConnectionState::Retrying { error });
                }
            }
        }
    }

    fn probe(&mut self, consumer: &SubscriberConsumer) {
        self.last_probe = Instant::now();
        if consumer.fetch_metadata(None, PROBE_TIMEOUT).is_ok() {
            self.set_connected(ConnectionState::Connected);
        }
    }

    fn set_connected(&mut self, state: ConnectionState) {
        // report changes only: a new error text is a change, a repeat is not
        match &state {
            ConnectionState::Connected => {
                if self.connected == Some(true) {
                    return;
                }
                self.last_error = None;
            }
            ConnectionState::Retrying { error } => {
                if self.connected == Some(false) && self.last_error.as_ref() == Some(error) {
                    return;
                }
                self.last_error = Some(error.clone());
            }
        }
        self.connected = Some(matches!(state, ConnectionState::Connected));
        self.send(SubscriberEvent::Connection(state));
    }
}
