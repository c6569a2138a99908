//! Bus commands: `topics create` and `broker`, plus the connection options
//! every bus command shares.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use integr8tor::kafka::broker::DEFAULT_PORT;
use integr8tor::kafka::{self, EmbeddedBroker, Endpoint, TopicOutcome};

use super::Outcome;

/// Where the brokers are: `--brokers` plus librdkafka pass-through options.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Bootstrap servers, `host:port[,host:port...]`. Without it an embedded
    /// broker is started on a free port for the duration of the command.
    #[arg(long, value_name = "HOST:PORT")]
    pub brokers: Option<String>,
    /// A librdkafka option, repeatable: `-X security.protocol=SASL_SSL
    /// -X sasl.mechanism=PLAIN -X sasl.username=... -X ssl.ca.location=...`.
    /// Overrides this program's defaults.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_option)]
    pub options: Vec<(String, String)>,
}

fn parse_option(s: &str) -> Result<(String, String), String> {
    kafka::parse_option(s).map_err(|e| e.to_string())
}

impl ConnectArgs {
    /// Connects to `--brokers`, or starts the embedded broker and says so on stderr.
    pub fn open(&self) -> anyhow::Result<Endpoint> {
        let endpoint = Endpoint::open(self.brokers.as_deref(), self.options.clone(), None)?;
        if let Some(broker) = endpoint.embedded() {
            eprintln!(
                "no --brokers given: using the embedded broker at {}",
                broker.bootstrap()
            );
        }
        Ok(endpoint)
    }
}

/// `integr8tor topics ...`
#[derive(Debug, Args)]
pub struct TopicsArgs {
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create the five noise.* topics with the partitions and configs of
    /// docs/formats.md section 1; topics that exist are left alone and reported.
    Create(CreateTopicsArgs),
}

#[derive(Debug, Args)]
struct CreateTopicsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Replicas per partition (3 on a production cluster).
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    /// How long to wait for the cluster, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

/// Runs `topics ...`.
pub fn topics(args: TopicsArgs) -> anyhow::Result<Outcome> {
    match args.command {
        TopicsCommand::Create(a) => create_topics(a),
    }
}

fn create_topics(args: CreateTopicsArgs) -> anyhow::Result<Outcome> {
    let endpoint = args.connect.open()?;
    let outcomes = kafka::create_topics(
        endpoint.connection(),
        args.replication_factor,
        Duration::from_secs(args.timeout),
    )?;
    let specs = kafka::topic_specs();
    let mut out = std::io::stdout().lock();
    for (topic, outcome) in outcomes {
        let wanted = specs
            .iter()
            .find(|s| s.topic == topic)
            .map_or(0, |s| s.partitions);
        match outcome {
            TopicOutcome::Created => {
                let noun = if wanted == 1 {
                    "partition"
                } else {
                    "partitions"
                };
                writeln!(out, "{topic}: created ({wanted} {noun})")?;
            }
            TopicOutcome::Existed {
                partitions: Some(n),
            } if n != wanted as usize => {
                writeln!(
                    out,
                    "{topic}: exists, with {n} partitions (docs/formats.md asks for {wanted}; left as is)"
                )?;
            }
            TopicOutcome::Existed { .. } => writeln!(out, "{topic}: exists")?,
        }
    }
    Ok(Outcome::Ok)
}

/// `integr8tor broker`
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
}

/// Runs the embedded broker until SIGINT or SIGTERM.
pub fn broker(args: BrokerArgs) -> anyhow::Result<Outcome> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    // register before starting so an early signal is not lost
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("installing the signal handlers")?;
    let broker = EmbeddedBroker::start(Some(args.port))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "bootstrap: {}", broker.bootstrap())?;
        out.flush()?;
    }
    eprintln!(
        "serving the five noise.* topics; clients should set fetch.wait.max.ms low \
         (e.g. 5) for low latency. Ctrl-C to stop."
    );
    let signal = signals.forever().next();
    log::info!("embedded broker: stopping on signal {signal:?}");
    drop(broker);
    Ok(Outcome::Ok)
}
