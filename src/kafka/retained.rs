//! What `noise.params` still holds from before a recording starts.
//!
//! A recorder that starts mid-performance begins with the last value of
//! every path the brokers retain (docs/formats.md section 3, rule 4).
//! [`read_retained_params`] notes where each partition ends now (the
//! recording's start offsets), reads every partition from its oldest
//! retained message up to that end, and keeps the last value per path; the
//! recorder then consumes `noise.params` from exactly those offsets, so
//! every message is either in the initial state or recorded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::config::Connection;
use super::subscriber::{DEFAULT_FETCH_WAIT_MS, EMBEDDED_FETCH_WAIT_MS};
use super::BusError;
use crate::envelope::{EnvelopeView, Topic};

/// How long one metadata request may wait before `cancel` is looked at again.
const METADATA_ROUND: Duration = Duration::from_millis(250);

/// The retained history of `noise.params`, reduced to the last value per path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetainedParams {
    /// Path and last value, in the order paths were first met.
    pub values: Vec<(String, f64)>,
    /// Per partition, the offset the history was read up to (exclusive):
    /// where a recording continues.
    pub ends: Vec<(i32, i64)>,
    /// Messages read.
    pub messages: u64,
    /// Messages that were not valid `noise.params` envelopes (skipped).
    pub malformed: u64,
    /// False when `timeout` ran out before every partition was read to its end.
    pub complete: bool,
}

/// Reads `noise.params` from its oldest retained message to its current end,
/// for at most `timeout`. Messages the recorder would not store (`replay`,
/// `telemetry`) do not count; among the rest the one with the highest
/// `ts_ms` gives a path's value (the later one on ties).
///
/// `cancel` ends the read early (as incomplete): a recording stopped while
/// the brokers are still out of reach does not wait for the whole timeout.
pub fn read_retained_params(
    connection: &Connection,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<RetainedParams, BusError> {
    let started = Instant::now();
    let cancelled = || cancel.load(Ordering::Acquire);
    let brokers = connection.brokers();
    let fetch_wait = if connection.is_embedded() {
        EMBEDDED_FETCH_WAIT_MS
    } else {
        DEFAULT_FETCH_WAIT_MS
    };
    let consumer: BaseConsumer = connection
        .client_config(&[
            ("group.id", "integr8tor-retained-params".to_owned()),
            ("enable.auto.commit", "false".to_owned()),
            ("enable.auto.offset.store", "false".to_owned()),
            ("enable.partition.eof", "false".to_owned()),
            ("auto.offset.reset", "earliest".to_owned()),
            ("fetch.wait.max.ms", fetch_wait.to_string()),
            ("enable.metrics.push", "false".to_owned()),
        ])
        .create()
        .map_err(|e| BusError::client("creating the history reader", brokers, e))?;
    let topic = Topic::Params.name();
    // asked in short rounds so that `cancel` is seen while no broker answers
    let metadata = loop {
        let left = timeout.saturating_sub(started.elapsed());
        let round = Instant::now();
        match consumer.fetch_metadata(Some(topic), left.min(METADATA_ROUND)) {
            Ok(m) => break m,
            Err(_) if left > METADATA_ROUND && !cancelled() => {
                // an error that came back at once is not retried in a spin
                if let Some(rest) = METADATA_ROUND.checked_sub(round.elapsed()) {
                    std::thread::sleep(rest.min(left - METADATA_ROUND));
                }
            }
            Err(e) => {
                return Err(BusError::client(
                    "reading noise.params partitions",
                    brokers,
                    e,
                ))
            }
        }
    };
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut out = RetainedParams {
        complete: true,
        ..RetainedParams::default()
    };
    let mut tpl = TopicPartitionList::new();
    // partition -> (end, next offset to read)
    let mut todo: HashMap<i32, i64> = HashMap::new();
    for p in partitions {
        let left = timeout.saturating_sub(started.elapsed());
        let (low, high) = consumer
            .fetch_watermarks(topic, p, left.max(Duration::from_millis(1)))
            .map_err(|e| BusError::client("reading noise.params offsets", brokers, e))?;
        out.ends.push((p, high));
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Offset(low))
                .map_err(|e| BusError::client("reading noise.params", brokers, e))?;
            todo.insert(p, high);
        }
    }
    out.ends.sort_unstable();
    if todo.is_empty() {
        return Ok(out);
    }
    consumer
        .assign(&tpl)
        .map_err(|e| BusError::client("reading noise.params", brokers, e))?;
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut latest: Vec<i64> = Vec::new();
    while !todo.is_empty() {
        if started.elapsed() >= timeout || cancelled() {
            out.complete = false;
            break;
        }
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let Ok(m) = polled else { continue };
        let (p, offset) = (m.partition(), m.offset());
        let Some(&end) = todo.get(&p) else { continue };
        if offset >= end {
            todo.remove(&p);
            continue;
        }
        if offset + 1 >= end {
            todo.remove(&p);
        }
        out.messages += 1;
        let view = match m.payload().map(|b| EnvelopeView::decode(Topic::Params, b)) {
            Some(Ok(v)) => v,
            _ => {
                out.malformed += 1;
                continue;
            }
        };
        let Some((path, value)) = view.param() else {
            continue;
        };
        if !view.actor_kind().is_recorded() {
            continue;
        }
        match index.get(path) {
            Some(&i) => {
                if view.ts_ms >= latest[i] {
                    out.values[i].1 = value;
                    latest[i] = view.ts_ms;
                }
            }
            None => {
                index.insert(path.to_owned(), out.values.len());
                out.values.push((path.to_owned(), value));
                latest.push(view.ts_ms);
            }
        }
    }
    Ok(out)
}
