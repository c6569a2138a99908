//! The five topics of docs/formats.md section 1 and their creation.
//!
//! [`create_topics`] first asks the cluster which topics exist (so it works
//! on brokers without the CreateTopics API, like the embedded one, and a
//! second run simply reports them), then creates the missing ones with their
//! partitions and configs.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};

use super::config::Connection;
use super::{block_on, BusError};
use crate::envelope::Topic;

/// How one topic must look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    /// Which topic.
    pub topic: Topic,
    /// Partition count.
    pub partitions: i32,
    /// Topic configs (`retention.ms`, `cleanup.policy`, ...).
    pub configs: &'static [(&'static str, &'static str)],
}

/// The five topics with partitions and configs from docs/formats.md section 1.
pub fn topic_specs() -> [TopicSpec; 5] {
    [
        TopicSpec {
            topic: Topic::Params,
            partitions: 4,
            configs: &[("retention.ms", "3600000")],
        },
        TopicSpec {
            topic: Topic::Mod,
            partitions: 1,
            configs: &[("retention.ms", "60000")],
        },
        TopicSpec {
            topic: Topic::Audio,
            partitions: 1,
            configs: &[("retention.ms", "60000")],
        },
        TopicSpec {
            topic: Topic::Events,
            partitions: 1,
            configs: &[("retention.ms", "86400000")],
        },
        TopicSpec {
            topic: Topic::State,
            partitions: 1,
            configs: &[
                ("cleanup.policy", "compact"),
                ("min.cleanable.dirty.ratio", "0.1"),
            ],
        },
    ]
}

/// What [`create_topics`] did for one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicOutcome {
    /// Created now with the spec's partitions and configs.
    Created,
    /// Already there (configs are left as they are).
    Existed {
        /// Its partition count, when the cluster reported it.
        partitions: Option<usize>,
    },
}

/// Remembers librdkafka's last connection error so failures can say why.
#[derive(Default)]
pub(crate) struct LastError(Mutex<Vec<String>>);

impl LastError {
    /// The distinct causes seen, joined; `None` if there were none.
    pub(crate) fn take(&self) -> Option<String> {
        let reasons = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    fn set(&self, reason: &str) {
        let reason = tidy_reason(reason);
        let mut reasons = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if reasons.len() < 2 && !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
}

/// librdkafka's log line without its thread tag and repeat counter, so the
/// same cause reads the same each time.
pub(crate) fn tidy_reason(reason: &str) -> String {
    let mut r = reason.trim();
    if r.starts_with("[thrd:") {
        if let Some(end) = r.find("]: ") {
            r = &r[end + 3..];
        }
    }
    let mut out = r.to_owned();
    const SUPPRESSED: &str = " identical error(s) suppressed";
    if let Some(end) = out.find(SUPPRESSED) {
        if let Some(start) = out[..end].rfind(", ") {
            out.replace_range(start..end + SUPPRESSED.len(), "");
        }
    }
    out
}

impl ClientContext for LastError {
    fn error(&self, error: KafkaError, reason: &str) {
        log::debug!("admin: {error}: {reason}");
        self.set(reason);
    }

    /// Error-level lines carry the cause ("Connection refused", "SASL
    /// authentication failed"); they end up in the returned error instead of
    /// being printed twice.
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        use RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                log::debug!("librdkafka: {facility} {message}");
                self.set(message);
            }
            // a broker that drops the connection (e.g. one that wants SASL)
            // is reported as a FAIL warning: it is the cause too
            L::Warning if facility == "FAIL" => {
                log::debug!("librdkafka: {facility} {message}");
                self.set(message);
            }
            L::Warning => log::warn!("librdkafka: {facility} {message}"),
            L::Notice | L::Info | L::Debug => log::debug!("librdkafka: {facility} {message}"),
        }
    }
}

impl ProducerContext for LastError {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// Creates the missing topics of [`topic_specs`] with `replication` replicas
/// each and reports every topic's outcome in spec order.
pub fn create_topics(
    connection: &Connection,
    replication: i32,
    timeout: Duration,
) -> Result<Vec<(Topic, TopicOutcome)>, BusError> {
    let brokers = connection.brokers();
    // metadata through a plain client whose error events we can serve, so a
    // failure says why (e.g. "Connection refused"), not only that it failed
    let probe: BaseProducer<LastError> = connection
        .client_config(&[])
        .create_with_context(LastError::default())
        .map_err(|e| BusError::client("creating the admin client", brokers, e))?;
    let with_reason = |action: &'static str, e: KafkaError| {
        for _ in 0..100 {
            probe.poll(Duration::ZERO);
        }
        let mut detail = probe.context().take();
        if detail.is_none() {
            // nothing said yet: give librdkafka a moment to report why
            for _ in 0..20 {
                probe.poll(Duration::from_millis(10));
                detail = probe.context().take();
                if detail.is_some() {
                    break;
                }
            }
        }
        BusError::Client {
            action,
            brokers: brokers.to_owned(),
            error: Box::new(e),
            detail: Some(detail.unwrap_or_else(|| {
                format!("no answer within {timeout:?} and no reason given by librdkafka")
            })),
        }
    };
    let metadata = probe
        .client()
        .fetch_metadata(None, timeout)
        .map_err(|e| with_reason("reading the cluster's topics", e))?;

    let mut outcomes = Vec::new();
    let mut missing = Vec::new();
    for spec in topic_specs() {
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == spec.topic.name() && t.error().is_none());
        match found {
            Some(t) => outcomes.push((
                spec.topic,
                TopicOutcome::Existed {
                    partitions: Some(t.partitions().len()),
                },
            )),
            None => {
                outcomes.push((spec.topic, TopicOutcome::Created));
                missing.push(spec);
            }
        }
    }
    if missing.is_empty() {
        return Ok(outcomes);
    }

    let new_topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|spec| {
            spec.configs.iter().fold(
                NewTopic::new(
                    spec.topic.name(),
                    spec.partitions,
                    TopicReplication::Fixed(replication),
                ),
                |t, (k, v)| t.set(k, v),
            )
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let admin: AdminClient<LastError> = connection
        .client_config(&[])
        .create_with_context(LastError::default())
        .map_err(|e| BusError::client("creating the admin client", brokers, e))?;
    let results = block_on(admin.create_topics(&new_topics, &options))
        .map_err(|e| with_reason("creating topics", e))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                // created meanwhile by someone else
                if let Some(entry) = outcomes.iter_mut().find(|(t, _)| t.name() == name) {
                    entry.1 = TopicOutcome::Existed { partitions: None };
                }
            }
            Err((name, code)) => {
                return Err(BusError::Topic {
                    topic: name,
                    reason: format!(
                        "the broker refused to create it: {}",
                        super::code_in_words(code)
                    ),
                })
            }
        }
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_tidied_into_one_cause() {
        assert_eq!(
            tidy_reason(
                "[thrd:h:1/bootstrap]: h:1/bootstrap: Connect to ipv4#h:1 failed: \
                 Connection refused (after 0ms in state CONNECT, 1 identical error(s) suppressed)"
            ),
            "h:1/bootstrap: Connect to ipv4#h:1 failed: Connection refused (after 0ms in state CONNECT)"
        );
        assert_eq!(
            tidy_reason(" 1/1 brokers are down "),
            "1/1 brokers are down"
        );
    }

    #[test]
    fn specs_follow_formats_section_1() {
        let specs = topic_specs();
        let names: Vec<_> = specs.iter().map(|s| s.topic.name()).collect();
        assert_eq!(
            names,
            [
                "noise.params",
                "noise.mod",
                "noise.audio",
                "noise.events",
                "noise.state"
            ]
        );
        assert_eq!(specs[0].partitions, 4);
        assert!(specs[1..].iter().all(|s| s.partitions == 1));
        assert_eq!(specs[0].configs, &[("retention.ms", "3600000")]);
        assert_eq!(specs[3].configs, &[("retention.ms", "86400000")]);
        assert!(specs[4].configs.contains(&("cleanup.policy", "compact")));
        assert!(specs[4]
            .configs
            .contains(&("min.cleanable.dirty.ratio", "0.1")));
    }
}
