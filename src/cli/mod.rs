//! Command implementations. Each returns an [`Outcome`] or an error; `main`
//! turns those into exit codes.

pub mod bridge;
pub mod bus;
pub mod engine;
pub mod export;
#[cfg(feature = "gui")]
pub mod gui;
pub mod session;

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything is fine: exit 0.
    Ok,
    /// The command worked and found a problem (e.g. a corrupt file): exit 1.
    Finding,
}
