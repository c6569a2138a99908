//! The WebSocket feed, the monitor page and inbound control, on one listener.
//!
//! - `GET /` serves the monitor page (plain HTML, CSS and JavaScript built
//!   into the binary; it fetches nothing else).
//! - `GET /ws` upgrades to a WebSocket. The first frame is
//!   `{"hello": {"version": 1, "control": BOOL, "queue": N}}`; then every bus
//!   message is one text frame `{"topic", "key", "partition", "offset",
//!   "envelope"}` (the envelope spelled by [`super::json`]), and a change of
//!   the bus link is `{"link": {"state": "connected"}}` or `{"link":
//!   {"state": "retrying", "error": "..."}}`.
//! - A client may send `{"subscribe": {"topics": ["noise.params"], "paths":
//!   ["gen.1."]}}` to narrow its feed (topics by name; paths are prefixes of
//!   the message's own key: the path, for events the type, for state the
//!   key; an absent or empty list means all), answered by `{"subscribed":
//!   ...}`; `{"snapshot": true}` for `{"snapshot": [feed objects], "link":
//!   ...}` with the newest message of every parameter, bus, level source and
//!   state key seen so far; and, when control is allowed, `{"set": {"path":
//!   "gen.1.cutoff", "value": 0.4}}`, published to `noise.params` with
//!   `actor = "user"` through the rate-limited publisher and answered by
//!   `{"set": {"path", "value", "outcome": "queued" | "held"}}` ("held": over
//!   the path's 60 Hz, sent when it opens). Anything else is answered by
//!   `{"error": "..."}` and the connection stays up.
//!
//! Every client has a bounded queue (`queue_capacity` messages; the JSON
//! text itself is shared by all clients). The feed thread never waits for a
//! client: when a client's queue is full, that client is closed (code 1008,
//! counted as [`CloseReason::Slow`]) and the others go on. The server pings
//! every `ping_interval`; a client that leaves `missed_pings` pings in a row
//! unanswered is closed ([`CloseReason::Heartbeat`]).
//!
//! Access: the listener is on loopback unless another address is asked for,
//! and then a token is required; control always requires one. With a token,
//! every WebSocket must present it (`/ws?token=...`, or an `Authorization:
//! Bearer` header); a wrong or missing one gets HTTP 401 and no connection.
//!
//! The I/O runs on a small tokio runtime (two worker threads); the feed is
//! turned into JSON once per message on its own thread.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::json::feed_json;
use super::BridgeError;
use crate::engine::{LatencyHistogram, Lateness};
use crate::kafka::{ConnectionState, Draft, PublishOutcome, Publisher, Received, SubscriberEvent};
use crate::{Actor, Topic};

/// The monitor page served at `/`.
pub const MONITOR_HTML: &str = include_str!("monitor.html");

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8765";

/// How a WebSocket bridge is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct WsConfig {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// Required from every client when set; required for a non-loopback
    /// address and for control.
    pub token: Option<String>,
    /// Accept `set` requests.
    pub allow_control: bool,
    /// Messages queued per client before it counts as too slow and is closed.
    pub queue_capacity: usize,
    /// Time between the server's pings.
    pub ping_interval: Duration,
    /// Pings in a row a client may leave unanswered.
    pub missed_pings: u32,
    /// The kernel's send buffer per client (`SO_SNDBUF`), so a stalled client
    /// holds a bounded amount of memory there too; `None`: the system's.
    pub send_buffer_bytes: Option<usize>,
    /// Most clients at once; more get HTTP 503.
    pub max_clients: usize,
    /// Name prefix of the bridge's threads.
    pub thread_name: String,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            listen: DEFAULT_LISTEN.parse().expect("a socket address"),
            token: None,
            allow_control: false,
            queue_capacity: 4096,
            ping_interval: Duration::from_secs(5),
            missed_pings: 2,
            send_buffer_bytes: Some(256 << 10),
            max_clients: 256,
            thread_name: "ws-bridge".to_owned(),
        }
    }
}

impl WsConfig {
    /// Refuses unsafe or contradictory settings, in words.
    pub fn check(&self, has_publisher: bool) -> Result<(), BridgeError> {
        let token = self.token.as_deref().filter(|t| !t.is_empty());
        if !self.listen.ip().is_loopback() && token.is_none() {
            return Err(BridgeError::Config(format!(
                "listening on {} (not loopback) needs a token (--token)",
                self.listen
            )));
        }
        if self.allow_control && token.is_none() {
            return Err(BridgeError::Config(
                "control (--allow-control) needs a token (--token)".to_owned(),
            ));
        }
        if self.allow_control && !has_publisher {
            return Err(BridgeError::Config(
                "control needs a publisher to the bus".to_owned(),
            ));
        }
        if self.queue_capacity == 0 || self.missed_pings == 0 || self.ping_interval.is_zero() {
            return Err(BridgeError::Config(
                "queue capacity, missed pings and ping interval must be above 0".to_owned(),
            ));
        }
        Ok(())
    }
}

/// Why the server closed a client, or how it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CloseReason {
    /// Its queue overflowed: it did not read fast enough.
    Slow = 1,
    /// It left too many pings unanswered.
    Heartbeat = 2,
    /// It closed the connection itself.
    ClientClosed = 3,
    /// A protocol or I/O error.
    Error = 4,
    /// The bridge is stopping.
    Shutdown = 5,
}

impl CloseReason {
    fn from_u8(v: u8) -> Option<CloseReason> {
        Some(match v {
            1 => CloseReason::Slow,
            2 => CloseReason::Heartbeat,
            3 => CloseReason::ClientClosed,
            4 => CloseReason::Error,
            5 => CloseReason::Shutdown,
            _ => return None,
        })
    }
}

/// A WebSocket bridge's counters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WsStats {
    /// Clients connected now.
    pub clients: usize,
    /// WebSocket connections accepted.
    pub accepted: u64,
    /// Monitor pages served.
    pub pages: u64,
    /// Upgrades refused for a missing or wrong token.
    pub refused_token: u64,
    /// Upgrades refused because `max_clients` were connected.
    pub refused_full: u64,
    /// Requests that were not HTTP, not GET, or for an unknown path.
    pub bad_requests: u64,
    /// Clients closed because their queue overflowed.
    pub closed_slow: u64,
    /// Clients closed because they missed pings.
    pub closed_heartbeat: u64,
    /// Clients that closed themselves.
    pub closed_by_client: u64,
    /// Clients lost to protocol or I/O errors.
    pub closed_error: u64,
    /// Bus messages taken in.
    pub messages: u64,
    /// Feed frames written to clients.
    pub frames: u64,
    /// `set` requests published.
    pub control_sets: u64,
    /// `set` requests refused (control off, bad path or value).
    pub control_refused: u64,
    /// From the subscriber's receive stamp to the frame's flush to a client.
    pub latency: Lateness,
    /// The bus subscription has its partitions (`false` before, or while retrying).
    pub bus_connected: bool,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    pages: AtomicU64,
    refused_token: AtomicU64,
    refused_full: AtomicU64,
    bad_requests: AtomicU64,
    closed_slow: AtomicU64,
    closed_heartbeat: AtomicU64,
    closed_by_client: AtomicU64,
    closed_error: AtomicU64,
    messages: AtomicU64,
    frames: AtomicU64,
    control_sets: AtomicU64,
    control_refused: AtomicU64,
}

/// One feed frame for the clients whose filter matches.
#[derive(Clone)]
struct Item {
    text: Utf8Bytes,
    received: Option<Instant>,
}

/// A client's subscription.
#[derive(Debug, Clone, Default, PartialEq)]
struct Filter {
    topics: Vec<Topic>,
    paths: Vec<String>,
}

impl Filter {
    fn matches(&self, topic: Topic, key: &str) -> bool {
        (self.topics.is_empty() || self.topics.contains(&topic))
            && (self.paths.is_empty() || self.paths.iter().any(|p| key.starts_with(p.as_str())))
    }
}

struct Client {
    tx: mpsc::Sender<Item>,
    filter: Mutex<Filter>,
    kick: Notify,
    reason: AtomicU8,
}

impl Client {
    fn kick(&self, reason: CloseReason) {
        if self
            .reason
            .compare_exchange(0, reason as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.kick.notify_one();
        }
    }

    fn kicked(&self) -> Option<CloseReason> {
        CloseReason::from_u8(self.reason.load(Ordering::Acquire))
    }
}

/// The newest message per key, for snapshots, and the link state.
#[derive(Default)]
struct Latest {
    by_key: HashMap<(Topic, String), Utf8Bytes>,
    link: Value,
}

struct Shared {
    config: WsConfig,
    clients: Mutex<Vec<Arc<Client>>>,
    latest: Mutex<Latest>,
    counters: Counters,
    latency: Mutex<LatencyHistogram>,
    publisher: Option<Arc<Publisher>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running WebSocket bridge. Dropping it closes every client and stops
/// its threads.
pub struct WsBridge {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    shutdown: watch::Sender<bool>,
    fanout: Option<JoinHandle<()>>,
    server: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for WsBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsBridge")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl WsBridge {
    /// Listens and starts the threads. `publisher` carries control requests
    /// (needed only with `allow_control`).
    pub fn start(
        events: Receiver<SubscriberEvent>,
        config: WsConfig,
        publisher: Option<Arc<Publisher>>,
    ) -> Result<WsBridge, BridgeError> {
        config.check(publisher.is_some())?;
        let listener = StdTcpListener::bind(config.listen).map_err(|error| BridgeError::Io {
            context: format!("cannot listen on {}", config.listen),
            error,
        })?;
        let local_addr = listener.local_addr().map_err(|error| BridgeError::Io {
            context: "reading the listen address".to_owned(),
            error,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|error| BridgeError::Io {
                context: "making the listener non-blocking".to_owned(),
                error,
            })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("{}-io", config.thread_name))
            .enable_io()
            .enable_time()
            .build()
            .map_err(|error| BridgeError::Io {
                context: "starting the WebSocket runtime".to_owned(),
                error,
            })?;
        let shared = Arc::new(Shared {
            clients: Mutex::new(Vec::new()),
            latest: Mutex::new(Latest {
                by_key: HashMap::new(),
                link: json!({"state": "unknown"}),
            }),
            counters: Counters::default(),
            latency: Mutex::new(LatencyHistogram::default()),
            publisher,
            config,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let stop = Arc::new(AtomicBool::new(false));
        let name = shared.config.thread_name.clone();
        let server = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    runtime.block_on(serve(listener, Arc::clone(&shared), shutdown_rx));
                    runtime.shutdown_timeout(Duration::from_secs(1));
                })
                .map_err(|error| BridgeError::Io {
                    context: "starting the WebSocket server thread".to_owned(),
                    error,
                })?
        };
        let fanout = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("{name}-feed"))
                .spawn(move || fan_out(events, &shared, &stop))
                .map_err(|error| BridgeError::Io {
                    context: "starting the WebSocket feed thread".to_owned(),
                    error,
                })?
        };
        Ok(WsBridge {
            shared,
            local_addr,
            stop,
            shutdown,
            fanout: Some(fanout),
            server: Some(server),
        })
    }

    /// The address it listens on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters now.
    pub fn stats(&self) -> WsStats {
        let c = &self.shared.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WsStats {
            clients: lock(&self.shared.clients).len(),
            accepted: n(&c.accepted),
            pages: n(&c.pages),
            refused_token: n(&c.refused_token),
            refused_full: n(&c.refused_full),
            bad_requests: n(&c.bad_requests),
            closed_slow: n(&c.closed_slow),
            closed_heartbeat: n(&c.closed_heartbeat),
            closed_by_client: n(&c.closed_by_client),
            closed_error: n(&c.closed_error),
            messages: n(&c.messages),
            frames: n(&c.frames),
            control_sets: n(&c.control_sets),
            control_refused: n(&c.control_refused),
            latency: lock(&self.shared.latency).summary(),
            bus_connected: lock(&self.shared.latest).link["state"] == "connected",
        }
    }

    /// Closes every client, stops the threads and returns the final counters.
    pub fn stop(mut self) -> WsStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.shutdown.send(true);
        for t in [self.fanout.take(), self.server.take()]
            .into_iter()
            .flatten()
        {
            if t.join().is_err() {
                log::error!("a WebSocket bridge thread panicked");
            }
        }
    }
}

impl Drop for WsBridge {
    fn drop(&mut self) {
        self.shutdown();
    }
}

// ---------------------------------------------------------------- the feed

fn link_json(state: &ConnectionState) -> Value {
    match state {
        ConnectionState::Connected => json!({"state": "connected"}),
        ConnectionState::Retrying { error } => json!({"state": "retrying", "error": error}),
    }
}

/// Messages spelled and handed to the clients at a time.
const FAN_OUT_CHUNK: usize = 32;

/// Turns bus messages into frames and hands them to every matching client
/// without ever waiting for one.
fn fan_out(events: Receiver<SubscriberEvent>, shared: &Shared, stop: &AtomicBool) {
    let mut items: Vec<(Topic, String, Item)> = Vec::new();
    while !stop.load(Ordering::Acquire) {
        let event = match events.recv_timeout(Duration::from_millis(100)) {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match event {
            SubscriberEvent::Messages(batch) => {
                let clients: Vec<Arc<Client>> = lock(&shared.clients).clone();
                // a few frames at a time, so the first of a large batch is on
                // its way before the last is spelled
                for chunk in batch.chunks(FAN_OUT_CHUNK) {
                    items.clear();
                    items.extend(chunk.iter().map(frame));
                    shared
                        .counters
                        .messages
                        .fetch_add(items.len() as u64, Ordering::Relaxed);
                    {
                        let mut latest = lock(&shared.latest);
                        for (topic, key, item) in &items {
                            if *topic != Topic::Events {
                                latest
                                    .by_key
                                    .insert((*topic, key.clone()), item.text.clone());
                            }
                        }
                    }
                    for client in &clients {
                        deliver(client, &items, shared.config.queue_capacity);
                    }
                }
            }
            SubscriberEvent::Connection(state) => {
                let link = link_json(&state);
                lock(&shared.latest).link = link.clone();
                let text = Utf8Bytes::from(json!({ "link": link }).to_string());
                let clients: Vec<Arc<Client>> = lock(&shared.clients).clone();
                for client in &clients {
                    let item = Item {
                        text: text.clone(),
                        received: None,
                    };
                    if let Err(mpsc::error::TrySendError::Full(_)) = client.tx.try_send(item) {
                        client.kick(CloseReason::Slow);
                    }
                }
            }
            // the subscriber logs and counts these; nothing to send for them
            SubscriberEvent::Malformed(_)
            | SubscriberEvent::ConsumeError { .. }
            | SubscriberEvent::Gap(_) => {}
        }
    }
}

fn frame(m: &Received) -> (Topic, String, Item) {
    let key = m.view().kafka_key().to_owned();
    let text = Utf8Bytes::from(feed_json(m));
    (
        m.topic,
        key,
        Item {
            text,
            received: Some(m.received_at),
        },
    )
}

fn deliver(client: &Client, items: &[(Topic, String, Item)], capacity: usize) {
    if client.kicked().is_some() {
        return;
    }
    let filter = lock(&client.filter).clone();
    for (topic, key, item) in items {
        if !filter.matches(*topic, key) {
            continue;
        }
        match client.tx.try_send(item.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                log::info!(
                    "WebSocket client too slow: its queue of {capacity} is full; closing it"
                );
                client.kick(CloseReason::Slow);
                return;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

// ---------------------------------------------------------------- the server

async fn serve(listener: StdTcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            log::error!("WebSocket bridge: cannot use the listener: {e}");
            return;
        }
    };
    if shared.publisher.is_some() && shared.config.allow_control {
        let publisher = shared.publisher.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(8));
            loop {
                tokio::select! {
                    _ = every.tick() => {
                        if let Some(p) = &publisher {
                            p.flush_rate_limited();
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
        });
    }
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    if let Some(bytes) = shared.config.send_buffer_bytes {
                        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(bytes);
                    }
                    let shared = Arc::clone(&shared);
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move { connection(stream, peer, shared, shutdown).await });
                }
                Err(e) => {
                    // out of file descriptors and the like: keep serving the others
                    log::warn!("WebSocket bridge: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    // give connections a moment to send their close frames
    let deadline = Instant::now() + Duration::from_secs(1);
    while !lock(&shared.clients).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The parts of an HTTP request the server looks at.
struct Request {
    method: String,
    path: String,
    query: String,
    upgrade: bool,
    ws_key: Option<String>,
    ws_version: Option<String>,
    bearer: Option<String>,
}

const MAX_REQUEST: usize = 16 << 10;

async fn read_request(stream: &mut TcpStream) -> Result<(Request, Vec<u8>), String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the request: {e}"))?;
        if n == 0 {
            return Err("connection closed before the request ended".to_owned());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 48];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
                };
                let target = req.path.unwrap_or("/");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let has = |name: &str, word: &str| {
                    header(name).is_some_and(|v| {
                        v.split(',')
                            .any(|part| part.trim().eq_ignore_ascii_case(word))
                    })
                };
                let request = Request {
                    method: req.method.unwrap_or("").to_owned(),
                    path: path.to_owned(),
                    query: query.to_owned(),
                    upgrade: has("upgrade", "websocket") && has("connection", "upgrade"),
                    ws_key: header("sec-websocket-key"),
                    ws_version: header("sec-websocket-version"),
                    bearer: header("authorization")
                        .and_then(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_owned())),
                };
                return Ok((request, buf[len..].to_vec()));
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() > MAX_REQUEST {
                    return Err("request headers over 16 KiB".to_owned());
                }
            }
            Err(e) => return Err(format!("not an HTTP request: {e}")),
        }
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Compares without stopping at the first difference.
fn same_token(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
         Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; \
         script-src 'unsafe-inline'; connect-src 'self' ws: wss:; img-src data:\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let c = &shared.counters;
    let read = tokio::time::timeout(Duration::from_secs(10), read_request(&mut stream)).await;
    let (request, rest) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(why)) => {
            c.bad_requests.fetch_add(1, Ordering::Relaxed);
            log::info!("WebSocket bridge: {peer}: {why}");
            respond(
                &mut stream,
                "400 Bad Request",
                "text/plain",
                &format!("{why}\n"),
            )
            .await;
            return;
        }
        Err(_) => {
            c.bad_requests.fetch_add(1, Ordering::Relaxed);
            log::info!("WebSocket bridge: {peer}: no complete request within 10 s");
            return;
        }
    };
    if request.method != "GET" {
        c.bad_requests.fetch_add(1, Ordering::Relaxed);
        respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n",
        )
        .await;
        return;
    }
    if !request.upgrade {
        match request.path.as_str() {
            "/" | "/index.html" => {
                c.pages.fetch_add(1, Ordering::Relaxed);
                respond(
                    &mut stream,
                    "200 OK",
                    "text/html; charset=utf-8",
                    MONITOR_HTML,
                )
                .await;
            }
            "/favicon.ico" => respond(&mut stream, "204 No Content", "text/plain", "").await,
            _ => {
                c.bad_requests.fetch_add(1, Ordering::Relaxed);
                respond(
                    &mut stream,
                    "404 Not Found",
                    "text/plain",
                    "the monitor page is at /, the WebSocket feed at /ws\n",
                )
                .await;
            }
        }
        return;
    }
    if request.path != "/ws" && request.path != "/" {
        c.bad_requests.fetch_add(1, Ordering::Relaxed);
        respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            "the WebSocket feed is at /ws\n",
        )
        .await;
        return;
    }
    if let Some(expected) = shared.config.token.as_deref().filter(|t| !t.is_empty()) {
        let given = query_param(&request.query, "token").or(request.bearer.clone());
        if !given.is_some_and(|g| same_token(&g, expected)) {
            c.refused_token.fetch_add(1, Ordering::Relaxed);
            log::info!("WebSocket bridge: {peer}: refused, missing or wrong token");
            respond(
                &mut stream,
                "401 Unauthorized",
                "text/plain",
                "a token is required: /ws?token=...\n",
            )
            .await;
            return;
        }
    }
    let (Some(key), Some("13")) = (request.ws_key.as_deref(), request.ws_version.as_deref()) else {
        c.bad_requests.fetch_add(1, Ordering::Relaxed);
        respond(
            &mut stream,
            "400 Bad Request",
            "text/plain",
            "a WebSocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13\n",
        )
        .await;
        return;
    };
    if lock(&shared.clients).len() >= shared.config.max_clients {
        c.refused_full.fetch_add(1, Ordering::Relaxed);
        respond(
            &mut stream,
            "503 Service Unavailable",
            "text/plain",
            "too many clients\n",
        )
        .await;
        return;
    }
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if stream.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 << 10))
        .max_frame_size(Some(64 << 10))
        .write_buffer_size(32 << 10)
        .max_write_buffer_size(256 << 10);
    let ws = WebSocketStream::from_partially_read(stream, rest, Role::Server, Some(config)).await;
    c.accepted.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(shared.config.queue_capacity);
    let client = Arc::new(Client {
        tx,
        filter: Mutex::new(Filter::default()),
        kick: Notify::new(),
        reason: AtomicU8::new(0),
    });
    lock(&shared.clients).push(Arc::clone(&client));
    let reason = session(ws, &client, rx, &shared, shutdown).await;
    lock(&shared.clients).retain(|x| !Arc::ptr_eq(x, &client));
    let counter = match reason {
        CloseReason::Slow => &c.closed_slow,
        CloseReason::Heartbeat => &c.closed_heartbeat,
        CloseReason::ClientClosed => &c.closed_by_client,
        CloseReason::Error => &c.closed_error,
        CloseReason::Shutdown => return,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    log::info!("WebSocket bridge: {peer} closed: {reason:?}");
}

type Sink = futures_util::stream::SplitSink<WebSocketStream<TcpStream>, Message>;

/// Sends unless the client is kicked meanwhile (a stalled socket never
/// holds the task: the kick interrupts it).
async fn send(sink: &mut Sink, client: &Client, message: Message) -> Result<(), CloseReason> {
    tokio::select! {
        biased;
        _ = client.kick.notified() => Err(client.kicked().unwrap_or(CloseReason::Slow)),
        r = sink.feed(message) => r.map_err(|_| CloseReason::Error),
    }
}

async fn flush(sink: &mut Sink, client: &Client) -> Result<(), CloseReason> {
    tokio::select! {
        biased;
        _ = client.kick.notified() => Err(client.kicked().unwrap_or(CloseReason::Slow)),
        r = sink.flush() => r.map_err(|_| CloseReason::Error),
    }
}

/// Most frames written before one flush.
const WRITE_BATCH: usize = 256;

async fn session(
    ws: WebSocketStream<TcpStream>,
    client: &Client,
    mut rx: mpsc::Receiver<Item>,
    shared: &Shared,
    mut shutdown: watch::Receiver<bool>,
) -> CloseReason {
    let (mut sink, mut stream) = ws.split();
    let (reply_tx, mut reply_rx) = mpsc::channel::<Utf8Bytes>(64);
    let unanswered = AtomicU32::new(0);
    let config = &shared.config;
    let hello = json!({"hello": {
        "version": 1,
        "control": config.allow_control,
        "queue": config.queue_capacity,
    }});
    let _ = reply_tx.try_send(Utf8Bytes::from(hello.to_string()));

    let reason = {
        let writer = async {
            macro_rules! or_return {
                ($e:expr) => {
                    if let Err(reason) = $e {
                        return reason;
                    }
                };
            }
            let start = tokio::time::Instant::now() + config.ping_interval;
            let mut ping = tokio::time::interval_at(start, config.ping_interval);
            ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut waits: Vec<Instant> = Vec::with_capacity(WRITE_BATCH);
            loop {
                tokio::select! {
                    biased;
                    _ = client.kick.notified() => {
                        return client.kicked().unwrap_or(CloseReason::Slow);
                    }
                    Some(text) = reply_rx.recv() => {
                        or_return!(send(&mut sink, client, Message::Text(text)).await);
                        or_return!(flush(&mut sink, client).await);
                    }
                    _ = ping.tick() => {
                        if unanswered.load(Ordering::Acquire) >= config.missed_pings {
                            return CloseReason::Heartbeat;
                        }
                        unanswered.fetch_add(1, Ordering::AcqRel);
                        or_return!(send(&mut sink, client, Message::Ping(Default::default())).await);
                        or_return!(flush(&mut sink, client).await);
                    }
                    item = rx.recv() => {
                        let Some(item) = item else { return CloseReason::Shutdown };
                        waits.clear();
                        let mut n = 0u64;
                        let mut next = Some(item);
                        while let Some(item) = next.take() {
                            if let Some(r) = item.received {
                                waits.push(r);
                            }
                            or_return!(send(&mut sink, client, Message::Text(item.text)).await);
                            n += 1;
                            if (n as usize) < WRITE_BATCH {
                                next = rx.try_recv().ok();
                            }
                        }
                        or_return!(flush(&mut sink, client).await);
                        shared.counters.frames.fetch_add(n, Ordering::Relaxed);
                        let mut h = lock(&shared.latency);
                        for r in &waits {
                            h.record_us(r.elapsed().as_secs_f64() * 1e6);
                        }
                    }
                }
            }
        };
        let reader = async {
            while let Some(message) = stream.next().await {
                match message {
                    Ok(Message::Text(text)) => {
                        let reply = handle_request(&text, client, shared);
                        if reply_tx
                            .send(Utf8Bytes::from(reply.to_string()))
                            .await
                            .is_err()
                        {
                            return CloseReason::Error;
                        }
                    }
                    Ok(Message::Pong(_)) => unanswered.store(0, Ordering::Release),
                    Ok(Message::Close(_)) => return CloseReason::ClientClosed,
                    Ok(Message::Binary(_)) => {
                        let reply =
                            json!({"error": "binary frames are not understood; send JSON text"});
                        let _ = reply_tx.send(Utf8Bytes::from(reply.to_string())).await;
                    }
                    Ok(_) => {}
                    Err(_) => return CloseReason::Error,
                }
            }
            CloseReason::ClientClosed
        };
        tokio::pin!(writer);
        tokio::pin!(reader);
        tokio::select! {
            r = &mut writer => r,
            r = &mut reader => r,
            _ = shutdown.changed() => CloseReason::Shutdown,
        }
    };
    let frame = match reason {
        CloseReason::Slow => Some((
            CloseCode::Policy,
            format!(
                "too slow: more than {} messages queued",
                config.queue_capacity
            ),
        )),
        CloseReason::Heartbeat => Some((
            CloseCode::Policy,
            format!("missed {} pings", config.missed_pings),
        )),
        CloseReason::Shutdown => Some((CloseCode::Away, "the bridge is stopping".to_owned())),
        CloseReason::ClientClosed | CloseReason::Error => None,
    };
    if let Some((code, text)) = frame {
        let close = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(text),
        }));
        let _ = tokio::time::timeout(Duration::from_millis(500), sink.send(close)).await;
    }
    reason
}

// ---------------------------------------------------------------- requests

fn handle_request(text: &str, client: &Client, shared: &Shared) -> Value {
    let request: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return json!({"error": format!("not JSON: {e}")}),
    };
    if let Some(sub) = request.get("subscribe") {
        return subscribe(sub, client);
    }
    if request
        .get("snapshot")
        .is_some_and(|v| v == &Value::Bool(true))
    {
        return snapshot(client, shared);
    }
    if let Some(set) = request.get("set") {
        return control(set, shared);
    }
    json!({"error": "unknown request: expected subscribe, snapshot or set"})
}

fn string_list(v: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("subscribe.{what} must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(format!("subscribe.{what} must be a list of strings")),
    }
}

fn subscribe(sub: &Value, client: &Client) -> Value {
    let parsed = (|| {
        let topics = string_list(sub.get("topics"), "topics")?
            .into_iter()
            .map(|name| {
                Topic::from_name(&name).ok_or_else(|| {
                    format!("unknown topic {name:?}: the topics are noise.params, noise.mod, noise.audio, noise.events, noise.state")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let paths = string_list(sub.get("paths"), "paths")?;
        Ok::<_, String>(Filter { topics, paths })
    })();
    match parsed {
        Ok(filter) => {
            let reply = json!({"subscribed": {
                "topics": filter.topics.iter().map(|t| t.name()).collect::<Vec<_>>(),
                "paths": filter.paths,
            }});
            *lock(&client.filter) = filter;
            reply
        }
        Err(e) => json!({ "error": e }),
    }
}

fn snapshot(client: &Client, shared: &Shared) -> Value {
    let filter = lock(&client.filter).clone();
    let latest = lock(&shared.latest);
    let mut keys: Vec<&(Topic, String)> = latest
        .by_key
        .keys()
        .filter(|(t, k)| filter.matches(*t, k))
        .collect();
    keys.sort();
    let items: Vec<Value> = keys
        .into_iter()
        .filter_map(|k| serde_json::from_str(latest.by_key[k].as_str()).ok())
        .collect();
    json!({"snapshot": items, "link": latest.link})
}

/// A canonical path: dot-separated words of letters, digits, `_` and `-`.
fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 200
        && path.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

fn control(set: &Value, shared: &Shared) -> Value {
    let c = &shared.counters;
    let refuse = |why: String| {
        c.control_refused.fetch_add(1, Ordering::Relaxed);
        json!({ "error": why })
    };
    let publisher = match (&shared.publisher, shared.config.allow_control) {
        (Some(p), true) => p,
        _ => {
            return refuse(
                "control is off: start the bridge with --allow-control and a --token".to_owned(),
            )
        }
    };
    let Some(path) = set.get("path").and_then(Value::as_str) else {
        return refuse("set.path must be a string such as \"gen.1.cutoff\"".to_owned());
    };
    if !valid_path(path) {
        return refuse(format!("set.path {path:?} is not a parameter path"));
    }
    let Some(value) = set.get("value").and_then(Value::as_f64) else {
        return refuse("set.value must be a number".to_owned());
    };
    if !(0.0..=1.0).contains(&value) {
        return refuse(format!(
            "set.value {value} is outside 0..1 (values are normalized)"
        ));
    }
    let outcome = match publisher.publish(Draft::param(Actor::User, path, value)) {
        PublishOutcome::Queued { .. } => "queued",
        PublishOutcome::RateLimited { .. } => "held",
        PublishOutcome::QueueFull => {
            return refuse("the bus is not taking messages (queue full)".to_owned())
        }
        PublishOutcome::Rejected { error } => {
            return refuse(format!("the bus refused it: {error}"))
        }
    };
    c.control_sets.fetch_add(1, Ordering::Relaxed);
    json!({"set": {"path": path, "value": value, "outcome": outcome}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_settings_are_refused_in_words() {
        let open = WsConfig {
            listen: "0.0.0.0:8765".parse().unwrap(),
            ..WsConfig::default()
        };
        let e = open.check(false).unwrap_err().to_string();
        assert!(e.contains("0.0.0.0:8765") && e.contains("--token"), "{e}");
        assert!(WsConfig {
            token: Some("t".into()),
            ..open.clone()
        }
        .check(false)
        .is_ok());
        let control = WsConfig {
            allow_control: true,
            ..WsConfig::default()
        };
        assert!(control
            .check(true)
            .unwrap_err()
            .to_string()
            .contains("--token"));
        assert!(WsConfig::default().check(false).is_ok());
    }

    #[test]
    fn filters_match_topics_and_key_prefixes() {
        let all = Filter::default();
        assert!(all.matches(Topic::Events, "note_on"));
        let f = Filter {
            topics: vec![Topic::Params],
            paths: vec!["gen.1.".into()],
        };
        assert!(f.matches(Topic::Params, "gen.1.cutoff"));
        assert!(!f.matches(Topic::Params, "gen.2.cutoff"));
        assert!(!f.matches(Topic::Mod, "gen.1.x"));
    }

    #[test]
    fn tokens_and_queries() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abd", "abc"));
        assert!(!same_token("ab", "abc"));
        assert_eq!(
            query_param("a=1&token=x%20y", "token").as_deref(),
            Some("x y")
        );
        assert_eq!(
            query_param("token=%zz%4", "token").as_deref(),
            Some("%zz%4")
        );
        assert_eq!(query_param("a=1", "token"), None);
        assert!(valid_path("gen.1.cutoff"));
        assert!(!valid_path("gen..cutoff") && !valid_path("") && !valid_path("a b"));
    }
}
