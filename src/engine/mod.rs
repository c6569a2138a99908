//! The engines the app and the CLI drive: the [`recorder`] (bus to session
//! file), the [`player`] (session file to bus, with pinning), the [`replay`]
//! service that runs a player with its publisher and live pinning, and the
//! [`demo`] (a simulated synth). Each runs on its own named thread, reports on a
//! channel and stops cleanly when stopped or dropped.

pub mod demo;
pub mod latency;
pub mod player;
pub mod realtime;
pub mod recorder;
pub mod replay;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};

use crate::kafka::{broker::DEFAULT_PORT, BusError, Connection, Endpoint};
use crate::session::WriteError;

pub use demo::{Demo, DemoConfig, DemoStats};
pub use latency::{LatencyHistogram, Lateness};
pub use player::{
    NullSink, PinStatus, PlayState, Player, PlayerCommand, PlayerConfig, PlayerCore, PlayerEvent,
    PlayerStatus, PublisherSink, Realtime, ReplaySink, Replayed,
};
pub use recorder::{
    default_sessions_dir, Recorder, RecorderConfig, RecorderEvent, RecorderStats, RecorderSummary,
};
pub use replay::{new_session_id, ReplayConfig, ReplayService, ReplaySummary};

/// What went wrong in an engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The bus refused something.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The session file could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// An operating-system error with context.
    #[error("{context}: {error}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The engine is no longer running.
    #[error("{0}")]
    Stopped(String),
}

/// How [`connect`] reached the bus, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `--brokers` was given.
    Given,
    /// This process started the embedded broker on 127.0.0.1:19092.
    EmbeddedStarted,
    /// Something (another `integr8tor broker`, a local Redpanda) already
    /// listens on 127.0.0.1:19092, so we use it.
    LocalFound,
}

/// Reaches the bus: `brokers` if given; otherwise the local broker on
/// 127.0.0.1:19092, starting an embedded one there if nothing listens yet.
/// So `integr8tor broker`, `demo`, `record`, `play` and the app started
/// without `--brokers` all meet on the same bus.
pub fn connect(
    brokers: Option<&str>,
    options: Vec<(String, String)>,
) -> Result<(Endpoint, Route), BusError> {
    if let Some(b) = brokers.filter(|b| !b.trim().is_empty()) {
        return Ok((Endpoint::open(Some(b), options, None)?, Route::Given));
    }
    let taken = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, DEFAULT_PORT)).is_err();
    if taken {
        let connection = Connection::new(format!("127.0.0.1:{DEFAULT_PORT}")).with_options(options);
        return Ok((Endpoint::external(connection), Route::LocalFound));
    }
    let endpoint = Endpoint::open(None, options, Some(DEFAULT_PORT))?;
    Ok((endpoint, Route::EmbeddedStarted))
}

impl Route {
    /// One line saying where the bus is.
    pub fn describe(&self, brokers: &str) -> String {
        match self {
            Route::Given => format!("brokers: {brokers}"),
            Route::EmbeddedStarted => {
                format!("no --brokers given: started the embedded broker at {brokers}")
            }
            Route::LocalFound => {
                format!("no --brokers given: using the broker already listening at {brokers}")
            }
        }
    }
}
