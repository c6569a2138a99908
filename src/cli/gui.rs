//! `integr8tor` (no subcommand) and `integr8tor gui`: open the desktop app.

use clap::Args;

use super::bus::ConnectArgs;
use super::Outcome;

/// Options of the desktop app.
#[derive(Debug, Clone, Args)]
pub struct GuiArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// A session file to load at start.
    #[arg(long, value_name = "FILE")]
    open: Option<std::path::PathBuf>,
    /// Memory for the live history in MB (sets the Settings value).
    #[arg(long, value_name = "MB")]
    history_mb: Option<u32>,
}

/// Opens the window and returns when it is closed. Without a display this is
/// one line of error pointing to the command line, not a backtrace.
pub fn gui(args: GuiArgs) -> anyhow::Result<Outcome> {
    integr8tor::app::run(integr8tor::app::Launch {
        brokers: args.connect.brokers,
        options: args.connect.options,
        open: args.open,
        history_mb: args.history_mb,
    })?;
    Ok(Outcome::Ok)
}
