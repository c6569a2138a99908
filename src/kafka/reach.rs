//! Reaching the brokers, and the words for losing and regaining them.
//!
//! [`wait_for_brokers`] is what a command does before it starts: it asks the
//! cluster for its metadata for a bounded time and, when no broker answers,
//! gives up with one error that says where it looked, how long it waited and
//! why librdkafka could not connect ("Connection refused"). [`Outage`] turns
//! the subscriber's connection states into the two lines a performer needs:
//! "lost the broker at 127.0.0.1:19092: Connection refused" when an outage
//! starts and "reconnected after 5.2 s" when it ends.

use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, Producer};

use super::admin::LastError;
use super::config::Connection;
use super::subscriber::ConnectionState;
use super::BusError;

/// How long [`wait_for_brokers`] waits unless told otherwise.
pub const DEFAULT_REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until a broker of `connection` answers a metadata request, for at
/// most `timeout`. The error is [`BusError::Unreachable`], one line.
pub fn wait_for_brokers(connection: &Connection, timeout: Duration) -> Result<(), BusError> {
    let brokers = connection.brokers();
    let probe: BaseProducer<LastError> = connection
        .client_config(&[])
        .create_with_context(LastError::default())
        .map_err(|e| BusError::client("creating a client", brokers, e))?;
    let started = Instant::now();
    let error = loop {
        let left = timeout.saturating_sub(started.elapsed());
        match probe
            .client()
            .fetch_metadata(None, left.max(Duration::from_millis(1)))
        {
            Ok(_) => return Ok(()),
            // some failures come back at once (a name that does not
            // resolve): keep asking until the time is up
            Err(e) if started.elapsed() + Duration::from_millis(100) < timeout => {
                log::debug!("reaching {brokers}: {e}");
                probe.poll(Duration::from_millis(100));
            }
            Err(e) => break e,
        }
    };
    // serve the error events that say why
    for _ in 0..50 {
        probe.poll(Duration::ZERO);
    }
    let mut detail = probe.context().take();
    for _ in 0..20 {
        if detail.is_some() {
            break;
        }
        probe.poll(Duration::from_millis(10));
        detail = probe.context().take();
    }
    Err(BusError::Unreachable {
        brokers: brokers.to_owned(),
        waited: timeout,
        reason: detail
            .map(|d| cause_in_words(&d))
            .unwrap_or_else(|| super::error_in_words(&error)),
    })
}

/// The cause in a librdkafka connection error, e.g. "Connection refused" out
/// of "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection
/// refused (after 0ms in state CONNECT)".
pub fn cause_in_words(reason: &str) -> String {
    let mut r = super::admin::tidy_reason(reason);
    if let Some(i) = r.rfind(" failed: ") {
        r = r[i + " failed: ".len()..].to_owned();
    }
    if let Some(i) = r.find(" (after ") {
        r.truncate(i);
    }
    r.trim().to_owned()
}

/// Follows a link's [`ConnectionState`]s and says, once each, when the
/// broker was lost and when it came back. Time is passed in, so it runs
/// on any clock.
#[derive(Debug, Clone)]
pub struct Outage {
    brokers: String,
    /// `None` until connected once; an outage is only one after that.
    connected_once: bool,
    lost_at: Option<Instant>,
}

impl Outage {
    /// For the link to `brokers` (as shown in the lines).
    pub fn new(brokers: impl Into<String>) -> Outage {
        Outage {
            brokers: brokers.into(),
            connected_once: false,
            lost_at: None,
        }
    }

    /// Whether the link is in an outage now.
    pub fn is_down(&self) -> bool {
        self.lost_at.is_some()
    }

    /// The line to show for a new state at `now`, if it starts or ends an outage.
    pub fn on_state(&mut self, state: &ConnectionState, now: Instant) -> Option<String> {
        match state {
            ConnectionState::Connected => {
                self.connected_once = true;
                let lost_at = self.lost_at.take()?;
                Some(format!(
                    "reconnected after {:.1} s",
                    now.saturating_duration_since(lost_at).as_secs_f64()
                ))
            }
            ConnectionState::Retrying { error } => {
                if !self.connected_once || self.lost_at.is_some() {
                    return None;
                }
                self.lost_at = Some(now);
                Some(format!(
                    "lost the broker at {}: {}",
                    self.brokers,
                    cause_in_words(error)
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_found_in_librdkafka_lines() {
        assert_eq!(
            cause_in_words("127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)"),
            "Connection refused"
        );
        assert_eq!(
            cause_in_words("[thrd:127.0.0.1:19092/1]: 127.0.0.1:19092/1: Disconnected (after 1530ms in state UP, 3 identical error(s) suppressed)"),
            "127.0.0.1:19092/1: Disconnected"
        );
        assert_eq!(
            cause_in_words("1/1 brokers are down"),
            "1/1 brokers are down"
        );
    }

    #[test]
    fn an_outage_is_told_once_when_it_starts_and_once_when_it_ends() {
        let t0 = Instant::now();
        let mut o = Outage::new("127.0.0.1:19092");
        let refused = ConnectionState::Retrying {
            error: "127.0.0.1:19092/1: Connect to ipv4#127.0.0.1:19092 failed: Connection refused (after 0ms in state CONNECT)".into(),
        };
        // trouble before the first connection is not an outage (wait_for_brokers reports it)
        assert_eq!(o.on_state(&refused, t0), None);
        assert_eq!(o.on_state(&ConnectionState::Connected, t0), None);
        assert_eq!(
            o.on_state(&refused, t0 + Duration::from_secs(1)).as_deref(),
            Some("lost the broker at 127.0.0.1:19092: Connection refused")
        );
        assert!(o.is_down());
        let other = ConnectionState::Retrying {
            error: "1/1 brokers are down".into(),
        };
        assert_eq!(o.on_state(&other, t0 + Duration::from_secs(2)), None);
        assert_eq!(
            o.on_state(
                &ConnectionState::Connected,
                t0 + Duration::from_millis(6200)
            )
            .as_deref(),
            Some("reconnected after 5.2 s")
        );
        assert_eq!(o.on_state(&ConnectionState::Connected, t0), None);
    }
}
