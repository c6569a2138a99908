//! `bridge osc` and `bridge ws`: the bus to OSC targets, or to WebSocket
//! clients and the monitor page. Each runs until Ctrl-C / SIGTERM and prints
//! its counters at the end.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use integr8tor::bridge::{OscBridge, OscConfig, OscSend, WsBridge, WsConfig};
use integr8tor::clock::{MonotonicClock, SharedClock};
use integr8tor::kafka::{
    unix_ms_now, Assignment, Publisher, PublisherConfig, Subscriber, SubscriberConfig,
};
use integr8tor::Topic;

use super::bus::ConnectArgs;
use super::engine::{open_bus, stop_flag, Progress};
use super::Outcome;

/// `integr8tor bridge ...`
#[derive(Debug, Args)]
pub struct BridgeArgs {
    #[command(subcommand)]
    command: BridgeCommand,
}

#[derive(Debug, Subcommand)]
enum BridgeCommand {
    /// Send the bus as OSC over UDP (`/noise/gen/1/cutoff 0.75`, `/noise/mod/buses`, ...).
    Osc(OscArgs),
    /// Serve the bus as a WebSocket JSON feed, with the monitor page at `/`.
    Ws(WsArgs),
}

/// `integr8tor bridge osc`
#[derive(Debug, Args)]
pub struct OscArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Where to send, repeatable.
    #[arg(long = "target", value_name = "HOST:PORT", required = true)]
    targets: Vec<String>,
    /// One OSC bundle per 60 Hz tick instead of one packet per message.
    #[arg(long)]
    bundle: bool,
    /// Do not send parameter changes.
    #[arg(long)]
    no_params: bool,
    /// Do not send each mod bus (`/noise/mod/bus/N`).
    #[arg(long)]
    no_mod: bool,
    /// Do not send the list of 16 buses (`/noise/mod/buses`).
    #[arg(long)]
    no_mod_list: bool,
    /// Do not send events.
    #[arg(long)]
    no_events: bool,
    /// Do not send level meters.
    #[arg(long)]
    no_levels: bool,
}

/// `integr8tor bridge ws`
#[derive(Debug, Args)]
pub struct WsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Where to listen. Another address than loopback needs --token.
    #[arg(long, value_name = "ADDR:PORT", default_value = integr8tor::bridge::ws::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// A token every client must present (`ws://HOST:PORT/ws?token=...`,
    /// the page as `http://HOST:PORT/?token=...`).
    #[arg(long, env = "INTEGR8TOR_BRIDGE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Let clients set parameters (`{"set": {"path": ..., "value": ...}}`,
    /// published with actor "user"). Needs --token.
    #[arg(long)]
    allow_control: bool,
    /// Messages queued per client before a slow client is closed.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    queue: usize,
    /// Milliseconds between pings; a client that misses two in a row is closed.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    ping_ms: u64,
}

/// Runs `bridge`.
pub fn bridge(args: BridgeArgs) -> anyhow::Result<Outcome> {
    match args.command {
        BridgeCommand::Osc(a) => osc(a),
        BridgeCommand::Ws(a) => ws(a),
    }
}

fn subscribe(
    endpoint: &integr8tor::kafka::Endpoint,
    name: &str,
    topics: &[Topic],
) -> anyhow::Result<Subscriber> {
    Ok(Subscriber::start(
        endpoint.connection(),
        SubscriberConfig {
            thread_name: format!("{name}-bus"),
            assignment: Assignment::Direct,
            ..SubscriberConfig::new(
                format!("integr8tor-{name}-{}-{}", std::process::id(), unix_ms_now()),
                topics,
            )
        },
    )?)
}

fn osc(args: OscArgs) -> anyhow::Result<Outcome> {
    let stop = stop_flag()?;
    let config = OscConfig {
        targets: args.targets,
        bundle: args.bundle,
        send: OscSend {
            params: !args.no_params,
            mod_buses: !args.no_mod,
            mod_list: !args.no_mod_list,
            events: !args.no_events,
            levels: !args.no_levels,
        },
        ..OscConfig::default()
    };
    // a bad target is reported before anything connects
    for t in &config.targets {
        integr8tor::bridge::osc::resolve_target(t)?;
    }
    let endpoint = open_bus(&args.connect)?;
    let subscriber = subscribe(
        &endpoint,
        "osc-bridge",
        &[Topic::Params, Topic::Mod, Topic::Audio, Topic::Events],
    )?;
    let clock: SharedClock = Arc::new(MonotonicClock::new());
    let bridge = OscBridge::start(subscriber.events().clone(), config, clock)?;
    {
        let mut out = std::io::stdout().lock();
        for t in bridge.stats().targets {
            writeln!(out, "osc: sending to {} ({})", t.target, t.addr)?;
        }
        out.flush()?;
    }
    eprintln!("bridging the bus to OSC (Ctrl-C stops)");
    let mut progress = Progress::new();
    while !stop.load(Ordering::Relaxed) && !bridge.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        if progress.due() {
            let s = bridge.stats();
            let per_target: Vec<String> = s
                .targets
                .iter()
                .map(|t| {
                    let trouble = t.refused + t.dropped + t.errors;
                    if trouble > 0 {
                        format!("{}: {} packets, {trouble} failed", t.target, t.packets)
                    } else {
                        format!("{}: {} packets", t.target, t.packets)
                    }
                })
                .collect();
            progress.show(&format!(
                "in {}  out {}  {}",
                s.router.offered,
                s.router.emitted,
                per_target.join("  ")
            ));
        }
    }
    progress.done();
    drop(subscriber);
    let s = bridge.stop();
    println!("messages in: {}", s.router.offered);
    println!("osc messages out: {}", s.router.emitted);
    println!("held and replaced (rate limits): {}", s.router.coalesced);
    for t in &s.targets {
        println!(
            "target {}: {} packets, {} bytes, refused {}, dropped {}, errors {}{}",
            t.target,
            t.packets,
            t.bytes,
            t.refused,
            t.dropped,
            t.errors,
            t.last_error
                .as_ref()
                .map(|e| format!(" (last: {e})"))
                .unwrap_or_default()
        );
    }
    Ok(Outcome::Ok)
}

fn ws(args: WsArgs) -> anyhow::Result<Outcome> {
    let stop = stop_flag()?;
    let config = WsConfig {
        listen: args.listen,
        token: args.token.filter(|t| !t.is_empty()),
        allow_control: args.allow_control,
        queue_capacity: args.queue,
        ping_interval: Duration::from_millis(args.ping_ms),
        ..WsConfig::default()
    };
    // refuse unsafe settings before touching the bus
    config.check(true)?;
    let endpoint = open_bus(&args.connect)?;
    let subscriber = subscribe(&endpoint, "ws-bridge", &Topic::ALL)?;
    let publisher = if config.allow_control {
        let clock: SharedClock = Arc::new(MonotonicClock::new());
        Some(Arc::new(Publisher::new(
            endpoint.connection(),
            PublisherConfig::new(
                "integr8tor.ws-bridge",
                format!("ws-bridge-{}", unix_ms_now()),
            ),
            clock,
        )?))
    } else {
        None
    };
    let bridge = WsBridge::start(subscriber.events().clone(), config, publisher)?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening: http://{}/", bridge.local_addr())?;
        out.flush()?;
    }
    eprintln!(
        "monitor page at http://{0}/, feed at ws://{0}/ws{1} (Ctrl-C stops)",
        bridge.local_addr(),
        if args.allow_control {
            ", control on"
        } else {
            ""
        }
    );
    let mut progress = Progress::new();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if progress.due() {
            let s = bridge.stats();
            progress.show(&format!(
                "clients {}  messages {}  frames {}  closed slow {}  heartbeat {}",
                s.clients, s.messages, s.frames, s.closed_slow, s.closed_heartbeat
            ));
        }
    }
    progress.done();
    drop(subscriber);
    let s = bridge.stop();
    println!("messages in: {}", s.messages);
    println!("frames out: {}", s.frames);
    println!("connections: {}", s.accepted);
    println!("pages served: {}", s.pages);
    println!(
        "closed: {} too slow, {} missed pings, {} by the client, {} errors",
        s.closed_slow, s.closed_heartbeat, s.closed_by_client, s.closed_error
    );
    println!(
        "refused: {} wrong or missing token, {} over the client limit, {} bad requests",
        s.refused_token, s.refused_full, s.bad_requests
    );
    println!(
        "control: {} set, {} refused",
        s.control_sets, s.control_refused
    );
    Ok(Outcome::Ok)
}
