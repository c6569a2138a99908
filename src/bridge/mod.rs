//! Bridges from the bus to the performer's other tools.
//!
//! - [`osc`]: OSC over UDP to one or more targets (TouchDesigner, Resolume,
//!   Max): parameter changes, mod buses, events and levels, rate-limited per
//!   address, optionally one bundle per tick.
//! - [`ws`]: a WebSocket feed of every message as JSON, with per-client
//!   subscriptions, heartbeats and bounded queues, the live monitor page at
//!   `/` on the same listener, and optional inbound control.
//! - [`json`]: the JSON spelling of envelopes both use.
//!
//! Each bridge is fed by a [`Subscriber`](crate::kafka::Subscriber)'s event
//! channel, so it forwards whatever is on the bus: live values and, during a
//! replay, the player's `actor = "replay"` values too.

pub mod json;
pub mod osc;
pub mod ws;

pub use osc::{OscBridge, OscConfig, OscRates, OscRouter, OscSend, OscStats, TargetStats};
pub use ws::{CloseReason, WsBridge, WsConfig, WsStats};

/// What went wrong when starting a bridge, in words.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// An OSC target could not be parsed or resolved.
    #[error("OSC target `{target}`: {reason}")]
    Target {
        /// The target as given.
        target: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The bridge's settings contradict each other or are unsafe.
    #[error("{0}")]
    Config(String),
    /// An operating-system error with context.
    #[error("{context}: {error}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        error: std::io::Error,
    },
}
