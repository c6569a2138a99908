//! The `integr8tor` command: the desktop app, and a headless CLI over the same core.
//!
//! Exit codes are decided here and only here: 0 success, 1 a finding
//! (a corrupt file for `check`), 2 an error (bad input, I/O, broker).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// Record, replay and scrub the Noise Engine's parameter stream.
#[derive(Debug, Parser)]
#[command(name = "integr8tor", version, about)]
#[cfg_attr(feature = "gui", command(args_conflicts_with_subcommands = true))]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand: the desktop app's bus options.
    #[cfg(feature = "gui")]
    #[command(flatten)]
    gui: cli::gui::GuiArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open the desktop app (also what `integr8tor` alone does).
    #[cfg(feature = "gui")]
    Gui(cli::gui::GuiArgs),
    /// Summarize a session file.
    Info(cli::session::InfoArgs),
    /// Print the exact parameter state of a session at an instant.
    State(cli::session::StateArgs),
    /// Verify a session file; optionally salvage what is readable.
    Check(cli::session::CheckArgs),
    // -- engine commands (src/cli/engine.rs) --
    /// Record the bus to a session file until Ctrl-C or --duration.
    Record(cli::engine::RecordArgs),
    /// Play a session file back into the synth (actor "replay").
    Play(cli::engine::PlayArgs),
    /// Run a simulated Noise Engine on the bus.
    Demo(cli::engine::DemoArgs),
    // -- export commands (src/cli/export.rs) --
    /// Export a session to CSV, SQLite, MCAP (Foxglove) or JSON Lines.
    Export(cli::export::ExportArgs),
    /// Import an SQLite recording into a session file.
    Import(cli::export::ImportArgs),
    // -- bus commands (src/cli/bus.rs) --
    /// Manage the noise.* Kafka topics.
    Topics(cli::bus::TopicsArgs),
    /// Run the embedded Kafka-protocol broker until Ctrl-C.
    Broker(cli::bus::BrokerArgs),
    // -- bridges (src/cli/bridge.rs) --
    /// Bridge the bus to OSC targets or WebSocket clients (and the monitor page).
    Bridge(cli::bridge::BridgeArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Info(a)) => cli::session::info(a),
        Some(Command::State(a)) => cli::session::state(a),
        Some(Command::Check(a)) => cli::session::check(a),
        Some(Command::Record(a)) => cli::engine::record(a),
        Some(Command::Play(a)) => cli::engine::play(a),
        Some(Command::Demo(a)) => cli::engine::demo(a),
        Some(Command::Export(a)) => cli::export::export(a),
        Some(Command::Import(a)) => cli::export::import(a),
        // -- bus commands dispatch --
        Some(Command::Topics(a)) => cli::bus::topics(a),
        Some(Command::Broker(a)) => cli::bus::broker(a),
        Some(Command::Bridge(a)) => cli::bridge::bridge(a),
        #[cfg(feature = "gui")]
        Some(Command::Gui(a)) => cli::gui::gui(a),
        #[cfg(feature = "gui")]
        None => cli::gui::gui(cli.gui),
        #[cfg(not(feature = "gui"))]
        None => {
            use clap::CommandFactory;
            Cli::command().print_help().ok();
            Ok(cli::Outcome::Ok)
        }
    };
    match result {
        Ok(cli::Outcome::Ok) => ExitCode::SUCCESS,
        Ok(cli::Outcome::Finding) => ExitCode::from(1),
        Err(e) => {
            // escaped: an error can quote data (a path, a producer's text)
            eprintln!("integr8tor: {}", integr8tor::human::escape(&one_line(&e)));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, each cause once (library errors
/// often already include their source in their own message).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}
