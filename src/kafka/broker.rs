//! The embedded broker: librdkafka's in-process mock cluster, a real
//! Kafka-protocol broker on 127.0.0.1, used whenever no `--brokers` is given.
//!
//! What it is and is not:
//! - one broker, the five topics created with their partition counts; topic
//!   configs (retention, compaction) are not applied: the mock keeps about
//!   5 MiB or 100,000 batches per partition and drops the oldest beyond that;
//! - no CreateTopics API and no timestamp lookups (ListOffsets by time);
//! - idempotent producers, consumer groups and offset commits work;
//! - it holds an empty fetch for the whole `fetch.wait.max.ms` even if data
//!   arrives meanwhile, so low-latency consumers must set that low (our
//!   [`Subscriber`](super::Subscriber) does; see `EMBEDDED_FETCH_WAIT_MS`);
//! - a fetch returns one producer batch per partition, found by walking the
//!   partition's log from its oldest batch, so fetches get slower as a
//!   partition fills with small batches (see docs/kafka.md, Performance).
//!
//! The mock always listens on a kernel-chosen port. When a port is requested
//! we listen on it ourselves and forward to the mock (see the private `proxy`
//! module), and make the mock advertise the requested port, so clients in
//! other processes only ever see `127.0.0.1:PORT`.
//!
//! The librdkafka handle is `!Send`, so it lives on one thread, created and
//! destroyed there; [`EmbeddedBroker`] talks to it through a command channel.

use crate::thread::NamedThread;
use std::ffi::{CStr, CString};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rdkafka::bindings as sys;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::ClientConfig;

use super::admin::topic_specs;
use super::proxy::Proxy;
use super::BusError;

/// Port `integr8tor broker` uses unless told otherwise (Redpanda's external
/// listener in docker/docker-compose.yml, so clients need no change).
pub const DEFAULT_PORT: u16 = 19092;

type Reply = Sender<Result<(), String>>;

enum Command {
    Down(Reply),
    Up(Reply),
    CreateTopic {
        name: String,
        partitions: i32,
        reply: Reply,
    },
}

/// A running embedded broker. Dropping it stops the broker and joins its thread.
pub struct EmbeddedBroker {
    bootstrap: String,
    port: u16,
    commands: Option<Sender<Command>>,
    thread: NamedThread<()>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

impl EmbeddedBroker {
    /// Starts a broker on 127.0.0.1: on `port` if given and non-zero (failing
    /// if it is taken), else on any free port; creates the five topics.
    pub fn start(port: Option<u16>) -> Result<EmbeddedBroker, BusError> {
        let (command_tx, command_rx) = crossbeam_channel::unbounded();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let requested = port.filter(|p| *p != 0);
        let mut thread = NamedThread::spawn("embedded-broker", move || {
            serve(requested, command_rx, ready_tx)
        })
        .map_err(|error| BusError::Io {
            context: "starting the embedded broker thread".to_owned(),
            error,
        })?;
        match ready_rx.recv() {
            Ok(Ok((bootstrap, port))) => Ok(EmbeddedBroker {
                bootstrap,
                port,
                commands: Some(command_tx),
                thread,
            }),
            Ok(Err(message)) => {
                thread.join_quietly();
                Err(BusError::EmbeddedBroker(message))
            }
            Err(_) => {
                thread.join_quietly();
                Err(BusError::EmbeddedBroker(
                    "the broker thread ended before it was ready".to_owned(),
                ))
            }
        }
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Takes the broker down: connections are closed and new ones refused
    /// (the port stays reserved). For outage tests.
    pub fn set_down(&self) -> Result<(), BusError> {
        self.command(Command::Down)
    }

    /// Brings the broker back after [`EmbeddedBroker::set_down`].
    pub fn set_up(&self) -> Result<(), BusError> {
        self.command(Command::Up)
    }

    /// Creates another topic (the mock has no CreateTopics API).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), BusError> {
        let name = name.to_owned();
        self.command(|reply| Command::CreateTopic {
            name,
            partitions,
            reply,
        })
    }

    fn command(&self, make: impl FnOnce(Reply) -> Command) -> Result<(), BusError> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        let sent = self
            .commands
            .as_ref()
            .map(|c| c.send(make(reply_tx)).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err(BusError::EmbeddedBroker(
                "the broker has stopped".to_owned(),
            ));
        }
        match reply_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(BusError::EmbeddedBroker(message)),
            Err(_) => Err(BusError::EmbeddedBroker(
                "the broker did not answer".to_owned(),
            )),
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        // closing the channel is the stop signal
        self.commands.take();
        self.thread.join_quietly();
    }
}

/// The broker thread: create, report ready, serve commands until the handle goes.
fn serve(
    port: Option<u16>,
    commands: Receiver<Command>,
    ready: Sender<Result<(String, u16), String>>,
) {
    let cluster = match MockCluster::create(port) {
        Ok(c) => c,
        Err(message) => {
            let _ = ready.send(Err(message));
            return;
        }
    };
    if ready
        .send(Ok((cluster.bootstrap.clone(), cluster.port)))
        .is_err()
    {
        return;
    }
    loop {
        match commands.recv_timeout(Duration::from_millis(200)) {
            Ok(Command::Down(reply)) => {
                let _ = reply.send(cluster.set_up_down(false));
            }
            Ok(Command::Up(reply)) => {
                let _ = reply.send(cluster.set_up_down(true));
            }
            Ok(Command::CreateTopic {
                name,
                partitions,
                reply,
            }) => {
                let _ = reply.send(cluster.create_topic(&name, partitions));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // serve the handle's log and error events so they do not pile up
        cluster.handle.poll(Duration::ZERO);
    }
}

/// Owns a librdkafka mock cluster and the client handle it is attached to.
struct MockCluster {
    raw: *mut sys::rd_kafka_mock_cluster_t,
    proxy: Option<Proxy>,
    bootstrap: String,
    port: u16,
    /// Must outlive `raw` (librdkafka requires the handle for the cluster's lifetime).
    handle: BaseProducer,
}

impl MockCluster {
    fn create(port: Option<u16>) -> Result<MockCluster, String> {
        let handle: BaseProducer = ClientConfig::new()
            .create()
            .map_err(|e| format!("cannot create the librdkafka handle: {e}"))?;
        // SAFETY: the handle is a valid client and outlives the cluster (see Drop).
        let raw = unsafe { sys::rd_kafka_mock_cluster_new(handle.client().native_ptr(), 1) };
        if raw.is_null() {
            return Err(
                "librdkafka could not start its mock cluster (see the log for why)".to_owned(),
            );
        }
        let mut cluster = MockCluster {
            raw,
            proxy: None,
            bootstrap: String::new(),
            port: 0,
            handle,
        };
        // SAFETY: raw is a live cluster; the call only sets a default.
        unsafe { sys::rd_kafka_mock_group_initial_rebalance_delay_ms(raw, 0) };
        for spec in topic_specs() {
            cluster.create_topic(spec.topic.name(), spec.partitions)?;
        }
        // SAFETY: raw is live; the returned string is owned by the cluster and copied here.
        let mock_address = unsafe {
            CStr::from_ptr(sys::rd_kafka_mock_cluster_bootstraps(raw))
                .to_string_lossy()
                .into_owned()
        };
        let upstream: SocketAddr = mock_address
            .parse()
            .map_err(|e| format!("unexpected mock broker address {mock_address:?}: {e}"))?;
        match port {
            None => {
                cluster.port = upstream.port();
                cluster.bootstrap = format!("127.0.0.1:{}", upstream.port());
            }
            Some(port) => {
                let listen = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
                let proxy = Proxy::start(listen, upstream)
                    .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
                let host = CString::new("127.0.0.1").map_err(|e| e.to_string())?;
                // SAFETY: raw is live; librdkafka copies the host string under its lock.
                unsafe {
                    sys::rd_kafka_mock_broker_set_host_port(raw, 1, host.as_ptr(), i32::from(port))
                };
                cluster.proxy = Some(proxy);
                cluster.port = port;
                cluster.bootstrap = format!("127.0.0.1:{port}");
            }
        }
        Ok(cluster)
    }

    fn create_topic(&self, name: &str, partitions: i32) -> Result<(), String> {
        let c_name = CString::new(name).map_err(|_| format!("topic name {name:?} contains NUL"))?;
        // SAFETY: raw is live and the name outlives the call.
        let err =
            unsafe { sys::rd_kafka_mock_topic_create(self.raw, c_name.as_ptr(), partitions, 1) };
        check(err, &format!("creating topic {name}"))
    }

    fn set_up_down(&self, up: bool) -> Result<(), String> {
        // SAFETY: raw is live; -1 addresses every broker.
        let err = unsafe {
            if up {
                sys::rd_kafka_mock_broker_set_up(self.raw, -1)
            } else {
                sys::rd_kafka_mock_broker_set_down(self.raw, -1)
            }
        };
        check(
            err,
            if up {
                "bringing the broker up"
            } else {
                "taking the broker down"
            },
        )
    }
}

fn check(err: sys::rd_kafka_resp_err_t, action: &str) -> Result<(), String> {
    if err == sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        let code: rdkafka::error::RDKafkaErrorCode = err.into();
        Err(format!("{action}: {}", super::code_in_words(code)))
    }
}

impl Drop for MockCluster {
    fn drop(&mut self) {
        // stop forwarding first so no client talks to a half-destroyed broker
        self.proxy.take();
        // SAFETY: raw came from rd_kafka_mock_cluster_new and is destroyed once,
        // before `handle` (dropped after this body) goes away.
        unsafe { sys::rd_kafka_mock_cluster_destroy(self.raw) };
    }
}
