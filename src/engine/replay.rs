//! The replay service: one orchestration of the player, its publisher and
//! the live-pinning subscriber, used by both `integr8tor play` and the app,
//! so the rules of replay are written once.
//!
//! - The [`Player`] thread republishes the session (see [`super::player`]).
//! - Its [`Publisher`] stamps the player's own identity: producer id
//!   `integr8tor.player`, a fresh version-4 UUID as `session_id`, its own
//!   `seq` and `ts_ms`. Replay is never rate limited.
//! - A subscriber on `noise.params` follows the bus while the session plays;
//!   every `actor = "user"` message from another producer (a performer's
//!   hand on the synth) pins its path, so replay yields to it. Messages of
//!   the producers named in [`ReplayConfig::own_producers`] do not pin: the
//!   app pins its own touches itself, for as long as the pointer holds them.
//!
//! Without a bus the service still plays, into nothing, so a session can be
//! played and scrubbed on screen.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::player::{
    NullSink, Player, PlayerCommand, PlayerConfig, PlayerEvent, PlayerStatus, PublisherSink,
    ReplaySink, SPEED_RANGE,
};
use super::EngineError;
use crate::clock::SharedClock;
use crate::envelope::Topic;
use crate::kafka::{
    unix_ms_now, Assignment, Connection, Publisher, PublisherConfig, PublisherStats, Subscriber,
    SubscriberConfig, SubscriberEvent,
};
use crate::session::Session;
use crate::thread::NamedThread;

/// How a replay starts.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// The player's settings (its `producer_id` is the publisher's too).
    pub player: PlayerConfig,
    /// Producers whose live `user` messages are this program's own and do not pin.
    pub own_producers: Vec<String>,
    /// Prefix of the live-pinning subscriber's consumer group.
    pub group_prefix: String,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            player: PlayerConfig {
                realtime: true,
                ..PlayerConfig::default()
            },
            own_producers: Vec::new(),
            group_prefix: "integr8tor".to_owned(),
        }
    }
}

/// Whether a playback speed is one the player takes.
pub fn speed_in_range(speed: f64) -> bool {
    (SPEED_RANGE.0..=SPEED_RANGE.1).contains(&speed)
}

/// A new version-4 UUID, as every producer of this project stamps its `session_id`.
pub fn new_session_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A playing (or ready) session. Dropping it stops the player, the
/// subscriber and the publisher (which waits briefly for queued messages).
pub struct ReplayService {
    /// Declared (so dropped) before the player: it holds a sender of the
    /// player's commands, and the player thread ends only when every sender
    /// is gone (dropping the player first waited for ever).
    follower: Option<LiveFollower>,
    player: Player,
    publisher: Option<Arc<Publisher>>,
    session_id: String,
}

impl std::fmt::Debug for ReplayService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayService")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

/// What a replay did, once stopped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplaySummary {
    /// The publisher's counters after the final flush (`None` without a bus).
    pub publisher: Option<PublisherStats>,
    /// Where playback was when the player stopped (`None` if its thread
    /// had failed): a new player for the same session can go on from here.
    pub status: Option<PlayerStatus>,
}

impl ReplaySummary {
    /// Messages the broker confirmed.
    pub fn delivered(&self) -> u64 {
        self.publisher.as_ref().map_or(0, |s| s.delivered)
    }

    /// Messages that did not reach the broker (failed, queue full, rejected).
    pub fn not_delivered(&self) -> u64 {
        self.publisher
            .as_ref()
            .map_or(0, |s| s.delivery_failed + s.queue_full + s.rejected)
    }
}

impl ReplayService {
    /// Starts a stopped replay of `session`; send [`PlayerCommand::Play`] to begin.
    /// With `bus`, it publishes there and follows the bus for the performer's
    /// touches; without, it plays into nothing.
    pub fn start(
        bus: Option<&Connection>,
        session: Arc<Session>,
        config: ReplayConfig,
        clock: SharedClock,
    ) -> Result<ReplayService, EngineError> {
        let session_id = new_session_id();
        let producer_id = config.player.producer_id.clone();
        let publisher = match bus {
            Some(connection) => Some(Arc::new(Publisher::new(
                connection,
                PublisherConfig::new(producer_id.clone(), session_id.clone()),
                Arc::clone(&clock),
            )?)),
            None => None,
        };
        let sink: Box<dyn ReplaySink> = match &publisher {
            Some(p) => Box::new(PublisherSink::new(Arc::clone(p))),
            None => Box::new(NullSink),
        };
        let player = Player::start(session, sink, clock, config.player).map_err(|error| {
            EngineError::Io {
                context: "starting the player thread".to_owned(),
                error,
            }
        })?;
        let follower = match bus {
            Some(connection) => {
                let mut own = config.own_producers;
                own.push(producer_id);
                Some(LiveFollower::start(
                    connection,
                    &config.group_prefix,
                    own,
                    player.commands(),
                )?)
            }
            None => None,
        };
        Ok(ReplayService {
            follower,
            player,
            publisher,
            session_id,
        })
    }

    /// Sends a command to the player.
    pub fn send(&self, command: PlayerCommand) {
        self.player.send(command);
    }

    /// The player's status reports and the end of playback.
    pub fn events(&self) -> &Receiver<PlayerEvent> {
        self.player.events()
    }

    /// The `session_id` replayed messages carry.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The publisher's counters so far (`None` without a bus).
    pub fn publisher_stats(&self) -> Option<PublisherStats> {
        self.publisher.as_ref().map(|p| p.stats())
    }

    /// Stops the player and the subscriber, waits up to `flush` for queued
    /// messages to be delivered, and says what reached the broker.
    pub fn stop(self, flush: Duration) -> ReplaySummary {
        let ReplayService {
            player,
            follower,
            publisher,
            ..
        } = self;
        drop(follower);
        let status = player.stop();
        let publisher = publisher.map(|p| {
            if let Err(e) = p.flush(flush) {
                log::warn!("replay: {e}");
            }
            p.stats()
        });
        ReplaySummary { publisher, status }
    }
}

/// Follows `noise.params` and forwards the performer's live touches to the player.
struct LiveFollower {
    stop: Option<Sender<()>>,
    thread: NamedThread<()>,
}

impl LiveFollower {
    fn start(
        connection: &Connection,
        group_prefix: &str,
        own: Vec<String>,
        player: Sender<PlayerCommand>,
    ) -> Result<LiveFollower, EngineError> {
        let group = format!(
            "{group_prefix}-replay-{}-{}",
            std::process::id(),
            unix_ms_now()
        );
        let subscriber = Subscriber::start(
            connection,
            SubscriberConfig {
                thread_name: "replay-live".to_owned(),
                assignment: Assignment::Direct,
                ..SubscriberConfig::new(group, &[Topic::Params])
            },
        )?;
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = NamedThread::spawn("replay-pins", move || {
            follow(subscriber, own, player, stopped)
        })
        .map_err(|error| EngineError::Io {
            context: "starting the live-pinning thread".to_owned(),
            error,
        })?;
        Ok(LiveFollower {
            stop: Some(stop),
            thread,
        })
    }
}

impl Drop for LiveFollower {
    fn drop(&mut self) {
        self.stop.take();
        self.thread.join_quietly();
    }
}

fn follow(
    subscriber: Subscriber,
    own: Vec<String>,
    player: Sender<PlayerCommand>,
    stopped: Receiver<()>,
) {
    loop {
        crossbeam_channel::select! {
            recv(stopped) -> _ => break,
            recv(subscriber.events()) -> ev => match ev {
                Ok(SubscriberEvent::Messages(batch)) => {
                    for m in &batch {
                        let view = m.view();
                        // only a performer's hand pins: not midi, preset or replay
                        if !view.actor_kind().pins_replay()
                            || own.iter().any(|p| p.as_str() == view.producer_id)
                        {
                            continue;
                        }
                        if let Some((path, value)) = view.param() {
                            let _ = player.send(PlayerCommand::LiveUser {
                                path: path.to_owned(),
                                producer_id: view.producer_id.to_owned(),
                                value,
                            });
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            },
        }
    }
    subscriber.stop();
}
