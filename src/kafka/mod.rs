//! The bus side of Integr8tor: Kafka clients built on librdkafka (`rdkafka`).
//!
//! - [`Publisher`]: an idempotent producer that stamps `session_id`,
//!   `producer_id` and `seq`, applies the rate limits of docs/formats.md section 2
//!   and never blocks its caller.
//! - [`Subscriber`]: a named consumer thread that decodes envelopes, drops
//!   duplicates in a bounded window and forwards batches on a channel.
//! - [`admin`]: the five topics of docs/formats.md section 1 and their creation.
//! - [`EmbeddedBroker`]: librdkafka's in-process Kafka-protocol broker, used
//!   whenever no `--brokers` is given.
//! - [`Connection`] / [`Endpoint`]: where the brokers are and the librdkafka
//!   options (`-X key=value`) to reach them.
//!
//! Every error from librdkafka is reported in words (its own description plus
//! what we were doing), never as a bare code.

pub mod admin;
pub mod broker;
pub mod config;
pub mod dedup;
mod proxy;
pub mod publisher;
pub mod ratelimit;
pub mod reach;
pub mod retained;
pub mod subscriber;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{SystemTime, UNIX_EPOCH};

pub use admin::{create_topics, topic_specs, TopicOutcome, TopicSpec};
pub use broker::EmbeddedBroker;
pub use config::{parse_option, Connection, Endpoint};
pub use dedup::DedupWindow;
pub use publisher::{
    Draft, PublishOutcome, Publisher, PublisherConfig, PublisherEvent, PublisherStats,
};
pub use ratelimit::{RateDecision, RateLimiter, RateLimits};
pub use reach::{wait_for_brokers, Outage, DEFAULT_REACH_TIMEOUT};
pub use retained::{read_retained_params, RetainedParams};
pub use subscriber::{
    Assignment, ConnectionState, Gap, Malformed, Received, StartFrom, Subscriber, SubscriberConfig,
    SubscriberEvent, SubscriberStats,
};

/// What went wrong on the bus, in words.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A `-X key=value` option could not be parsed.
    #[error("bad librdkafka option `{option}`: {reason}")]
    BadOption {
        /// The option as given.
        option: String,
        /// What is wrong with it.
        reason: String,
    },
    /// librdkafka refused or failed an operation.
    #[error("{action} (brokers {brokers}): {}{}", error_in_words(.error), detail_suffix(.detail))]
    Client {
        /// What we were doing, e.g. "creating the producer".
        action: &'static str,
        /// The bootstrap servers in use.
        brokers: String,
        /// librdkafka's own error (its Display is a sentence, not a code),
        /// boxed: it is large, and every `Result` of the bus carries this type.
        error: Box<rdkafka::error::KafkaError>,
        /// What librdkafka logged about the cause, e.g. "Connection refused".
        detail: Option<String>,
    },
    /// A topic could not be created or has the wrong shape.
    #[error("topic {topic}: {reason}")]
    Topic {
        /// Topic name.
        topic: String,
        /// What went wrong.
        reason: String,
    },
    /// No broker answered within the time allowed.
    #[error("cannot reach the brokers at {brokers} within {:.0} s: {reason}", .waited.as_secs_f64())]
    Unreachable {
        /// The bootstrap servers tried.
        brokers: String,
        /// How long it waited.
        waited: std::time::Duration,
        /// Why, in words ("Connection refused").
        reason: String,
    },
    /// The embedded broker could not start or stopped answering.
    #[error("embedded broker: {0}")]
    EmbeddedBroker(String),
    /// An operating-system error with context.
    #[error("{context}: {error}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        error: std::io::Error,
    },
}

impl BusError {
    pub(crate) fn client(
        action: &'static str,
        brokers: &str,
        error: rdkafka::error::KafkaError,
    ) -> BusError {
        BusError::Client {
            action,
            brokers: brokers.to_owned(),
            error: Box::new(error),
            detail: None,
        }
    }
}

/// librdkafka's error as a sentence: its description without the Rust enum
/// names `KafkaError`'s Display puts in front ("MetadataFetch",
/// "BrokerTransportFailure (Local: ...)"), e.g. "Broker transport failure",
/// "No such configuration property: \"sasl.mechansim\"".
pub fn error_in_words(error: &rdkafka::error::KafkaError) -> String {
    use rdkafka::error::KafkaError as E;
    match error {
        // the description names the property and the value already
        E::ClientConfig(_, description, _, _) => description.clone(),
        E::ClientCreation(description) => description.clone(),
        E::Canceled => "the client was dropped".to_owned(),
        E::NoMessageReceived => "no message within the poll interval".to_owned(),
        E::Nul(_) => "a string passed to librdkafka contains a NUL byte".to_owned(),
        E::PartitionEOF(partition) => format!("end of partition {partition}"),
        other => match other.rdkafka_error_code() {
            Some(code) => code_in_words(code),
            None => other.to_string(),
        },
    }
}

/// An error code's description ("Broker transport failure",
/// "Broker: Topic already exists") without its enum name.
pub fn code_in_words(code: rdkafka::error::RDKafkaErrorCode) -> String {
    // RDKafkaErrorCode displays as "Name (description)"
    let full = code.to_string();
    let name = format!("{code:?} (");
    let description = full
        .strip_prefix(name.as_str())
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or(&full);
    description
        .strip_prefix("Local: ")
        .unwrap_or(description)
        .to_owned()
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail
        .as_ref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}

/// Where librdkafka's own log lines go: the log at debug level, never the
/// performer's terminal (the clients report what matters in words).
pub(crate) fn quiet_log(_level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
    log::debug!("librdkafka: {facility} {message}");
}

/// Wall-clock milliseconds since the Unix epoch (the envelope's `ts_ms`).
pub fn unix_ms_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Runs a future to completion on the current thread. rdkafka's admin API
/// returns futures driven by its own polling thread, so a parking waker is
/// all that is needed; no async runtime is pulled in for it.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    struct ThreadWaker(Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park(),
        }
    }
}
