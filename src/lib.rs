//! Integr8tor's core: the Noise Engine's wire envelopes, session files,
//! loaded sessions with exact state at any instant, and the Kafka layer.
//!
//! Nothing here depends on a GUI; the `integr8tor` binary and the desktop
//! app are thin shells over this library.

#![warn(missing_docs)]

#[cfg(feature = "gui")]
pub mod app;
#[cfg(feature = "engines")]
pub mod bridge;
pub mod clock;
#[cfg(feature = "engines")]
pub mod engine;
pub mod envelope;
#[cfg(feature = "engines")]
pub mod export;
pub mod human;
#[cfg(feature = "engines")]
pub mod kafka;
pub mod msgpack;
pub mod session;
pub mod thread;

pub use envelope::{
    Actor, ActorKind, Body, BodyView, Envelope, EnvelopeError, EnvelopeView, RawValue, Topic,
};
