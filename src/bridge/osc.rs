//! OSC out: the bus as OSC messages over UDP, for TouchDesigner, Resolume,
//! VDMX or Max.
//!
//! | bus message | OSC address | arguments |
//! |---|---|---|
//! | `noise.params` `gen.1.cutoff` | `/noise/gen/1/cutoff` | `value` (float), then `value_mapped` (float) when present |
//! | `noise.mod` `bus.3` | `/noise/mod/bus/3` | `value` (float) |
//! | (every mod bus) | `/noise/mod/buses` | the 16 current bus values (floats; 0 until a bus is heard) |
//! | `noise.events` `note_on` | `/noise/event/note_on` | the event's own fields, ordered by field name (`note`, `velocity`) |
//! | `noise.audio` `gen.1` | `/noise/level/gen/1` | `peak`, then `rms` when present (floats) |
//!
//! Dots in paths become slashes; characters OSC forbids in an address
//! (space, `#*,?[]{}`, controls) become `_`. Event fields keep their types:
//! integers as `i` (or `h` beyond 32 bits), floats as `f`, strings as `s`,
//! booleans as `T`/`F`, nil as `N`; nested arrays or maps as their JSON
//! text.
//!
//! Rates are limited per address (60 Hz for parameters, 30 Hz for mod buses,
//! the bus list and levels; events go out at once). A value that arrives
//! while its address is closed is held, a newer one replacing it, and sent
//! when the address opens, so the last value of a gesture always arrives and
//! an address never gets two messages closer than its interval. With
//! [`OscConfig::bundle`], everything due in a 60 Hz tick goes out as OSC
//! bundles (split to stay under [`OscConfig::max_packet_bytes`]).
//!
//! Every target has its own non-blocking UDP socket and counters: a target
//! that refuses (nothing listens: the kernel reports it on a later send), is
//! unreachable or whose socket buffer is full is counted and its packets are
//! dropped, never waited for, so one bad target never delays another.
//!
//! [`OscRouter`] holds every decision and takes the time as an argument, so
//! tests drive it on virtual time; [`OscBridge`] runs one on a thread fed by
//! a subscriber's channel.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use hashbrown::HashMap;
use rosc::{OscBundle, OscMessage, OscPacket, OscTime, OscType};

use super::BridgeError;
use crate::clock::SharedClock;
use crate::engine::{LatencyHistogram, Lateness};
use crate::envelope::{BodyView, EnvelopeView};
use crate::kafka::SubscriberEvent;

/// Number of mod buses in `/noise/mod/buses`.
pub const MOD_BUSES: usize = 16;

/// The bundle tick: 60 Hz.
pub const TICK: Duration = Duration::from_nanos(16_666_667);

/// Default for [`OscConfig::max_packet_bytes`]: stays under a typical
/// Ethernet or Wi-Fi MTU, so no datagram is fragmented.
pub const DEFAULT_MAX_PACKET_BYTES: usize = 1400;

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct OscSend {
    /// Parameter changes (`/noise/<path>`).
    pub params: bool,
    /// Each mod bus (`/noise/mod/bus/N`).
    pub mod_buses: bool,
    /// All 16 buses as one list (`/noise/mod/buses`).
    pub mod_list: bool,
    /// Events (`/noise/event/<type>`).
    pub events: bool,
    /// Level meters (`/noise/level/<source>`).
    pub levels: bool,
}

impl Default for OscSend {
    fn default() -> Self {
        OscSend {
            params: true,
            mod_buses: true,
            mod_list: true,
            events: true,
            levels: true,
        }
    }
}

/// Most messages per second per address; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OscRates {
    /// Parameter addresses (60 Hz).
    pub params_hz: Option<f64>,
    /// Mod bus addresses and the bus list (30 Hz).
    pub mod_hz: Option<f64>,
    /// Level addresses (30 Hz).
    pub levels_hz: Option<f64>,
}

impl Default for OscRates {
    fn default() -> Self {
        OscRates {
            params_hz: Some(60.0),
            mod_hz: Some(30.0),
            levels_hz: Some(30.0),
        }
    }
}

impl OscRates {
    /// No limits (benchmarks).
    pub fn unlimited() -> OscRates {
        OscRates {
            params_hz: None,
            mod_hz: None,
            levels_hz: None,
        }
    }
}

fn interval(hz: Option<f64>) -> Option<Duration> {
    hz.filter(|h| *h > 0.0 && h.is_finite())
        .map(|h| Duration::from_secs_f64(1.0 / h))
}

/// How an OSC bridge is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct OscConfig {
    /// `HOST:PORT` of each target.
    pub targets: Vec<String>,
    /// What to send.
    pub send: OscSend,
    /// Per-address rate limits.
    pub rates: OscRates,
    /// One bundle per 60 Hz tick instead of one packet per message.
    pub bundle: bool,
    /// Largest bundle datagram (a single larger message still goes alone).
    pub max_packet_bytes: usize,
    /// Thread name.
    pub thread_name: String,
}

impl Default for OscConfig {
    fn default() -> Self {
        OscConfig {
            targets: Vec::new(),
            send: OscSend::default(),
            rates: OscRates::default(),
            bundle: false,
            max_packet_bytes: DEFAULT_MAX_PACKET_BYTES,
            thread_name: "osc-bridge".to_owned(),
        }
    }
}

/// Turns one path component into OSC address characters.
fn push_part(out: &mut String, part: &str) {
    out.push('/');
    if part.is_empty() {
        out.push('_');
        return;
    }
    for ch in part.chars() {
        let bad = ch.is_control()
            || matches!(
                ch,
                ' ' | '#' | '*' | ',' | '/' | '?' | '[' | ']' | '{' | '}'
            );
        out.push(if bad { '_' } else { ch });
    }
}

/// `/noise/<prefix...>/<dotted path with dots as slashes>`.
pub fn address(prefix: &[&str], dotted: &str) -> String {
    let mut out = String::with_capacity(8 + dotted.len() + prefix.len() * 8);
    out.push_str("/noise");
    for p in prefix {
        push_part(&mut out, p);
    }
    for part in dotted.split('.') {
        push_part(&mut out, part);
    }
    out
}

/// A MessagePack event field as an OSC argument.
fn osc_arg(raw: &[u8]) -> OscType {
    use rmpv::Value as M;
    let Ok(value) = rmpv::decode::read_value(&mut &raw[..]) else {
        return OscType::Nil;
    };
    match &value {
        M::Nil => OscType::Nil,
        M::Boolean(b) => OscType::Bool(*b),
        M::Integer(i) => match i.as_i64() {
            Some(n) => match i32::try_from(n) {
                Ok(small) => OscType::Int(small),
                Err(_) => OscType::Long(n),
            },
            // beyond i64: only as a float
            None => OscType::Float(i.as_f64().unwrap_or(0.0) as f32),
        },
        M::F32(f) => OscType::Float(*f),
        M::F64(f) => OscType::Float(*f as f32),
        M::String(s) => OscType::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        // bin that is UTF-8 is a string (older producers send strings so)
        M::Binary(b) => match std::str::from_utf8(b) {
            Ok(text) => OscType::String(text.to_owned()),
            Err(_) => OscType::Blob(b.clone()),
        },
        // containers and extensions as their JSON text
        M::Array(_) | M::Map(_) | M::Ext(..) => {
            OscType::String(super::json::value_text(raw).unwrap_or_default())
        }
    }
}

/// Which rate class a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Param,
    Mod,
    Level,
    Event,
}

/// An address's rate state.
struct Slot {
    /// When the address accepts its next message.
    next_free: Duration,
    /// The newest held message, with its source's receive time.
    pending: Option<(OscMessage, Option<Instant>)>,
    interval: Duration,
}

/// Counters of an [`OscRouter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Bus messages offered.
    pub offered: u64,
    /// OSC messages emitted.
    pub emitted: u64,
    /// Held values replaced by a newer one before they could go out.
    pub coalesced: u64,
    /// Bus messages of a kind that is switched off (or not bridged, `noise.state`).
    pub skipped: u64,
    /// Values held now, waiting for their address to open.
    pub held: u64,
}

/// Every OSC decision: addresses, arguments, per-address rates and bundles,
/// on explicit times.
pub struct OscRouter {
    send: OscSend,
    params_iv: Option<Duration>,
    mod_iv: Option<Duration>,
    levels_iv: Option<Duration>,
    bundle: bool,
    max_packet_bytes: usize,
    slots: HashMap<String, Slot>,
    /// Slots holding a message.
    held: usize,
    /// Messages to emit at the next poll, with their source's receive time.
    ready: Vec<(OscMessage, Option<Instant>)>,
    buses: [f32; MOD_BUSES],
    buses_dirty: bool,
    buses_received: Option<Instant>,
    buses_next_free: Duration,
    /// Bundle mode: index of the last tick that emitted.
    last_tick: Option<u64>,
    stats: RouterStats,
}

const BUSES_ADDRESS: &str = "/noise/mod/buses";

impl OscRouter {
    /// A router for this configuration.
    pub fn new(config: &OscConfig) -> OscRouter {
        OscRouter {
            send: config.send,
            params_iv: interval(config.rates.params_hz),
            mod_iv: interval(config.rates.mod_hz),
            levels_iv: interval(config.rates.levels_hz),
            bundle: config.bundle,
            max_packet_bytes: config.max_packet_bytes.max(64),
            slots: HashMap::new(),
            held: 0,
            ready: Vec::new(),
            buses: [0.0; MOD_BUSES],
            buses_dirty: false,
            buses_received: None,
            buses_next_free: Duration::ZERO,
            last_tick: None,
            stats: RouterStats::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> RouterStats {
        RouterStats {
            held: self.held as u64 + u64::from(self.buses_dirty),
            ..self.stats
        }
    }

    /// Takes in one bus message at clock time `now`; `received` is when the
    /// subscriber got it (for the bridge's latency figures).
    pub fn offer(&mut self, view: &EnvelopeView<'_>, now: Duration, received: Option<Instant>) {
        self.stats.offered += 1;
        match view.body {
            BodyView::Param {
                path,
                value,
                value_mapped,
                ..
            } if self.send.params => {
                let mut args = vec![OscType::Float(value as f32)];
                if let Some(mapped) = value_mapped {
                    args.push(OscType::Float(mapped as f32));
                }
                let addr = address(&[], path);
                self.schedule(addr, args, Class::Param, now, received);
            }
            BodyView::Mod { bus, value, .. } if self.send.mod_buses || self.send.mod_list => {
                if self.send.mod_buses {
                    let addr = address(&["mod", "bus"], &bus.to_string());
                    self.schedule(
                        addr,
                        vec![OscType::Float(value as f32)],
                        Class::Mod,
                        now,
                        received,
                    );
                }
                if self.send.mod_list {
                    if let Some(slot) = usize::try_from(bus).ok().filter(|b| *b < MOD_BUSES) {
                        self.buses[slot] = value as f32;
                        self.buses_dirty = true;
                        self.buses_received = received;
                        if !self.bundle && now >= self.buses_next_free {
                            self.emit_buses(now);
                        }
                    }
                }
            }
            BodyView::Audio {
                path, peak, rms, ..
            } if self.send.levels => {
                let mut args = vec![OscType::Float(peak as f32)];
                if let Some(rms) = rms {
                    args.push(OscType::Float(rms as f32));
                }
                let addr = address(&["level"], path);
                self.schedule(addr, args, Class::Level, now, received);
            }
            BodyView::Event { event_type } if self.send.events => {
                let mut fields: Vec<(&[u8], &[u8])> = view
                    .extras()
                    .filter(|(name, _)| *name != b"type".as_slice())
                    .collect();
                fields.sort_by(|a, b| a.0.cmp(b.0));
                let args = fields.iter().map(|(_, raw)| osc_arg(raw)).collect();
                let addr = address(&["event"], event_type);
                self.schedule(addr, args, Class::Event, now, received);
            }
            _ => self.stats.skipped += 1,
        }
    }

    fn class_interval(&self, class: Class) -> Option<Duration> {
        match class {
            Class::Param => self.params_iv,
            Class::Mod => self.mod_iv,
            Class::Level => self.levels_iv,
            Class::Event => None,
        }
    }

    fn schedule(
        &mut self,
        addr: String,
        args: Vec<OscType>,
        class: Class,
        now: Duration,
        received: Option<Instant>,
    ) {
        let message = OscMessage { addr, args };
        let Some(iv) = self.class_interval(class) else {
            self.ready.push((message, received));
            return;
        };
        let bundle = self.bundle;
        let slot = self.slots.entry_ref(message.addr.as_str()).or_insert(Slot {
            next_free: Duration::ZERO,
            pending: None,
            interval: iv,
        });
        if !bundle && now >= slot.next_free {
            if slot.pending.take().is_some() {
                self.held -= 1;
                self.stats.coalesced += 1;
            }
            slot.next_free = now + iv;
            self.ready.push((message, received));
            return;
        }
        if slot.pending.replace((message, received)).is_some() {
            self.stats.coalesced += 1;
        } else {
            self.held += 1;
        }
    }

    fn buses_message(&self) -> OscMessage {
        OscMessage {
            addr: BUSES_ADDRESS.to_owned(),
            args: self.buses.iter().map(|v| OscType::Float(*v)).collect(),
        }
    }

    fn emit_buses(&mut self, at: Duration) {
        let message = self.buses_message();
        self.ready.push((message, self.buses_received));
        self.buses_dirty = false;
        self.buses_next_free = at + self.mod_iv.unwrap_or(Duration::ZERO);
    }

    /// When [`OscRouter::poll`] next has something to emit (`None`: nothing
    /// is waiting). It may be in the past: poll at once.
    pub fn next_deadline(&self, now: Duration) -> Option<Duration> {
        let waiting = !self.ready.is_empty() || self.held > 0 || self.buses_dirty;
        if !waiting {
            return None;
        }
        if self.bundle {
            let tick = tick_index(now);
            return Some(if self.last_tick == Some(tick) {
                tick_start(tick + 1)
            } else {
                now
            });
        }
        if !self.ready.is_empty() {
            return Some(now);
        }
        let mut next: Option<Duration> = None;
        if self.held > 0 {
            for slot in self.slots.values() {
                if slot.pending.is_some() {
                    next = Some(next.map_or(slot.next_free, |n| n.min(slot.next_free)));
                }
            }
        }
        if self.buses_dirty {
            next = Some(next.map_or(self.buses_next_free, |n| n.min(self.buses_next_free)));
        }
        next
    }

    /// The packets due at `now`, each with the receive time of its oldest
    /// source message.
    pub fn poll(&mut self, now: Duration) -> Vec<(OscPacket, Option<Instant>)> {
        if self.bundle {
            return self.poll_bundle(now);
        }
        self.release_held(now, now, Duration::ZERO);
        if self.buses_dirty && now >= self.buses_next_free {
            self.emit_buses(now);
        }
        self.stats.emitted += self.ready.len() as u64;
        self.ready
            .drain(..)
            .map(|(m, r)| (OscPacket::Message(m), r))
            .collect()
    }

    /// Moves held messages whose address opened by `at` to `ready`; each
    /// address then opens again at `from + interval - slack`.
    fn release_held(&mut self, at: Duration, from: Duration, slack: Duration) {
        if self.held == 0 {
            return;
        }
        for slot in self.slots.values_mut() {
            if slot.pending.is_some() && slot.next_free <= at {
                if let Some(item) = slot.pending.take() {
                    self.ready.push(item);
                    self.held -= 1;
                    slot.next_free = (from + slot.interval).saturating_sub(slack);
                }
            }
        }
    }

    fn poll_bundle(&mut self, now: Duration) -> Vec<(OscPacket, Option<Instant>)> {
        let tick = tick_index(now);
        if self.last_tick == Some(tick) {
            return Vec::new();
        }
        let at = tick_start(tick);
        // ticks are only so precise: an address opens half a tick early, so
        // a 30 Hz address goes out every other tick, not every third
        let slack = TICK / 2;
        self.release_held(at, at, slack);
        if self.buses_dirty && at >= self.buses_next_free {
            self.emit_buses(at);
            self.buses_next_free = self.buses_next_free.saturating_sub(slack);
        }
        if self.ready.is_empty() {
            return Vec::new();
        }
        self.last_tick = Some(tick);
        self.stats.emitted += self.ready.len() as u64;
        let mut packets = Vec::new();
        let mut content = Vec::new();
        let mut size = 16;
        let mut oldest: Option<Instant> = None;
        for (message, received) in self.ready.drain(..) {
            let len = 4 + encoded_len(&message);
            if !content.is_empty() && size + len > self.max_packet_bytes {
                packets.push((bundle(std::mem::take(&mut content)), oldest.take()));
                size = 16;
            }
            size += len;
            oldest = match (oldest, received) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            content.push(OscPacket::Message(message));
        }
        if !content.is_empty() {
            packets.push((bundle(content), oldest));
        }
        packets
    }
}

fn tick_index(now: Duration) -> u64 {
    (now.as_nanos() / TICK.as_nanos()) as u64
}

fn tick_start(tick: u64) -> Duration {
    Duration::from_nanos(tick.saturating_mul(TICK.as_nanos() as u64))
}

fn bundle(content: Vec<OscPacket>) -> OscPacket {
    OscPacket::Bundle(OscBundle {
        // "immediately" (OSC 1.0)
        timetag: OscTime {
            seconds: 0,
            fractional: 1,
        },
        content,
    })
}

fn encoded_len(message: &OscMessage) -> usize {
    rosc::encoder::encode(&OscPacket::Message(message.clone()))
        .map(|b| b.len())
        .unwrap_or(0)
}

/// A target's counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetStats {
    /// The target as given (`HOST:PORT`).
    pub target: String,
    /// The address it resolved to.
    pub addr: String,
    /// Packets handed to the network.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Sends refused: nothing listens at the target (ICMP port unreachable).
    pub refused: u64,
    /// Packets dropped because the socket's buffer was full.
    pub dropped: u64,
    /// Other send errors (unreachable network, ...).
    pub errors: u64,
    /// The last error, in words.
    pub last_error: Option<String>,
}

/// An OSC bridge's counters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OscStats {
    /// The router's counters.
    pub router: RouterStats,
    /// Per target, in the order given.
    pub targets: Vec<TargetStats>,
    /// From the subscriber's receive stamp to the packet's send call.
    pub latency: Lateness,
    /// The bus subscription has its partitions (`false` before, or while retrying).
    pub bus_connected: bool,
}

struct Target {
    socket: UdpSocket,
    stats: Mutex<TargetStats>,
}

/// Parses and resolves `HOST:PORT` (the first address it resolves to, IPv4 first).
pub fn resolve_target(target: &str) -> Result<SocketAddr, BridgeError> {
    let fail = |reason: String| BridgeError::Target {
        target: target.to_owned(),
        reason,
    };
    if !target.contains(':') {
        return Err(fail("expected HOST:PORT, e.g. 127.0.0.1:9000".to_owned()));
    }
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .collect();
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| fail("resolves to no address".to_owned()))?;
    if addr.port() == 0 {
        return Err(fail("port 0 is not a target".to_owned()));
    }
    Ok(addr)
}

impl Target {
    fn open(target: &str) -> Result<Target, BridgeError> {
        let addr = resolve_target(target)?;
        let io = |context: &str, error| BridgeError::Io {
            context: format!("OSC target {target}: {context}"),
            error,
        };
        let local: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().expect("a socket address")
        } else {
            "[::]:0".parse().expect("a socket address")
        };
        let socket = UdpSocket::bind(local).map_err(|e| io("opening a UDP socket", e))?;
        socket
            .connect(addr)
            .map_err(|e| io("setting the destination", e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| io("making the socket non-blocking", e))?;
        Ok(Target {
            socket,
            stats: Mutex::new(TargetStats {
                target: target.to_owned(),
                addr: addr.to_string(),
                ..TargetStats::default()
            }),
        })
    }

    fn send(&self, bytes: &[u8]) {
        let result = self.socket.send(bytes);
        let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(_) => {
                s.packets += 1;
                s.bytes += bytes.len() as u64;
            }
            Err(e) => {
                match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => s.refused += 1,
                    std::io::ErrorKind::WouldBlock => s.dropped += 1,
                    _ => s.errors += 1,
                }
                s.last_error = Some(e.to_string());
            }
        }
    }
}

struct Shared {
    targets: Vec<Target>,
    bus_connected: AtomicBool,
    router: Mutex<RouterStats>,
    latency: Mutex<LatencyHistogram>,
}

/// A running OSC bridge: a named thread fed by a subscriber's channel.
/// Dropping it stops the thread.
pub struct OscBridge {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for OscBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OscBridge").finish_non_exhaustive()
    }
}

/// Longest wait between checks for a stop request.
const IDLE: Duration = Duration::from_millis(100);

impl OscBridge {
    /// Opens a socket per target and starts the thread. Fails, naming the
    /// target, when one cannot be parsed or resolved.
    pub fn start(
        events: Receiver<SubscriberEvent>,
        config: OscConfig,
        clock: SharedClock,
    ) -> Result<OscBridge, BridgeError> {
        if config.targets.is_empty() {
            return Err(BridgeError::Config(
                "no OSC target: give at least one HOST:PORT".to_owned(),
            ));
        }
        let targets = config
            .targets
            .iter()
            .map(|t| Target::open(t))
            .collect::<Result<Vec<_>, _>>()?;
        let shared = Arc::new(Shared {
            targets,
            bus_connected: AtomicBool::new(false),
            router: Mutex::new(RouterStats::default()),
            latency: Mutex::new(LatencyHistogram::default()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            let router = OscRouter::new(&config);
            std::thread::Builder::new()
                .name(config.thread_name.clone())
                .spawn(move || run(router, events, &shared, &*clock, &stop))
                .map_err(|error| BridgeError::Io {
                    context: "starting the OSC bridge thread".to_owned(),
                    error,
                })?
        };
        Ok(OscBridge {
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// The counters now.
    pub fn stats(&self) -> OscStats {
        OscStats {
            router: *self.shared.router.lock().unwrap_or_else(|p| p.into_inner()),
            targets: self
                .shared
                .targets
                .iter()
                .map(|t| t.stats.lock().unwrap_or_else(|p| p.into_inner()).clone())
                .collect(),
            latency: self
                .shared
                .latency
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .summary(),
            bus_connected: self.shared.bus_connected.load(Ordering::Acquire),
        }
    }

    /// Whether the thread ended (its channel closed).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the thread and returns the final counters.
    pub fn stop(mut self) -> OscStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("OSC bridge thread panicked");
            }
        }
    }
}

impl Drop for OscBridge {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(
    mut router: OscRouter,
    events: Receiver<SubscriberEvent>,
    shared: &Shared,
    clock: &dyn crate::clock::Clock,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Acquire) {
        let now = clock.now();
        let wait = router
            .next_deadline(now)
            .map_or(IDLE, |d| d.saturating_sub(now).min(IDLE));
        let first = if wait.is_zero() {
            events.try_recv().map_err(|e| match e {
                crossbeam_channel::TryRecvError::Empty => RecvTimeoutError::Timeout,
                crossbeam_channel::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        } else {
            events.recv_timeout(wait)
        };
        match first {
            Ok(event) => {
                offer(&mut router, event, shared, clock);
                // take what else is waiting, without waiting; each batch goes
                // out before the next is routed, so none waits for the later ones
                for event in events.try_iter().take(64) {
                    flush(&mut router, shared, clock);
                    offer(&mut router, event, shared, clock);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                flush(&mut router, shared, clock);
                break;
            }
        }
        flush(&mut router, shared, clock);
    }
}

fn offer(
    router: &mut OscRouter,
    event: SubscriberEvent,
    shared: &Shared,
    clock: &dyn crate::clock::Clock,
) {
    match event {
        SubscriberEvent::Messages(batch) => {
            let now = clock.now();
            for m in &batch {
                router.offer(&m.view(), now, Some(m.received_at));
            }
        }
        SubscriberEvent::Connection(state) => shared.bus_connected.store(
            matches!(state, crate::kafka::ConnectionState::Connected),
            Ordering::Release,
        ),
        // the subscriber logs and counts these; nothing to send for them
        SubscriberEvent::Malformed(_)
        | SubscriberEvent::ConsumeError { .. }
        | SubscriberEvent::Gap(_) => {}
    }
}

fn flush(router: &mut OscRouter, shared: &Shared, clock: &dyn crate::clock::Clock) {
    let packets = router.poll(clock.now());
    if packets.is_empty() {
        *shared.router.lock().unwrap_or_else(|p| p.into_inner()) = router.stats();
        return;
    }
    let mut buf = Vec::with_capacity(256);
    let mut waits = Vec::with_capacity(packets.len());
    for (packet, received) in &packets {
        buf.clear();
        if let Err(e) = rosc::encoder::encode_into(packet, &mut buf) {
            log::warn!("OSC bridge: cannot encode a packet: {e}");
            continue;
        }
        for t in &shared.targets {
            t.send(&buf);
        }
        if let Some(r) = received {
            waits.push(r.elapsed());
        }
    }
    *shared.router.lock().unwrap_or_else(|p| p.into_inner()) = router.stats();
    let mut h = shared.latency.lock().unwrap_or_else(|p| p.into_inner());
    for w in waits {
        h.record_us(w.as_secs_f64() * 1e6);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Envelope;
    use crate::kafka::Draft;
    use crate::{Actor, RawValue, Topic};

    fn payload(draft: Draft) -> (Topic, Vec<u8>) {
        let env = Envelope {
            v: 1,
            session_id: "s".into(),
            producer_id: "p".into(),
            seq: 1,
            ts_ms: 0,
            actor: Some(draft.actor.clone()),
            source: None,
            body: draft.body.clone(),
            extra: draft.extra.clone(),
        };
        (env.topic(), env.encode())
    }

    fn offer(router: &mut OscRouter, draft: Draft, now: Duration) {
        let (topic, bytes) = payload(draft);
        let view = EnvelopeView::decode(topic, &bytes).unwrap();
        router.offer(&view, now, None);
    }

    fn messages(packets: Vec<(OscPacket, Option<Instant>)>) -> Vec<OscMessage> {
        let mut out = Vec::new();
        for (p, _) in packets {
            match p {
                OscPacket::Message(m) => out.push(m),
                OscPacket::Bundle(b) => {
                    for p in b.content {
                        if let OscPacket::Message(m) = p {
                            out.push(m);
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn addresses_follow_the_scheme() {
        assert_eq!(address(&[], "gen.1.cutoff"), "/noise/gen/1/cutoff");
        assert_eq!(address(&["mod", "bus"], "3"), "/noise/mod/bus/3");
        assert_eq!(address(&["level"], "master"), "/noise/level/master");
        assert_eq!(address(&["event"], "note on#1"), "/noise/event/note_on_1");
        assert_eq!(address(&[], "a..b/c"), "/noise/a/_/b_c");
    }

    #[test]
    fn each_kind_has_its_address_and_arguments() {
        let mut r = OscRouter::new(&OscConfig::default());
        let t = Duration::from_secs(1);
        let mut p = Draft::param(Actor::User, "gen.1.cutoff", 0.75);
        if let crate::Body::Param {
            value_mapped,
            has_value_mapped,
            ..
        } = &mut p.body
        {
            *value_mapped = Some(1200.0);
            *has_value_mapped = true;
        }
        offer(&mut r, p, t);
        offer(&mut r, Draft::mod_value(3, 0.25, Some("lfo".into())), t);
        offer(&mut r, Draft::audio("gen.2", 0.5, Some(0.3)), t);
        offer(
            &mut r,
            Draft::event(
                Actor::Midi,
                "note_on",
                vec![
                    ("velocity".into(), RawValue::from_value(&100.into())),
                    ("note".into(), RawValue::from_value(&60.into())),
                ],
            ),
            t,
        );
        let got = messages(r.poll(t));
        let find = |a: &str| {
            got.iter()
                .find(|m| m.addr == a)
                .unwrap_or_else(|| panic!("{a} in {got:?}"))
        };
        assert_eq!(
            find("/noise/gen/1/cutoff").args,
            vec![OscType::Float(0.75), OscType::Float(1200.0)]
        );
        assert_eq!(find("/noise/mod/bus/3").args, vec![OscType::Float(0.25)]);
        let list = &find("/noise/mod/buses").args;
        assert_eq!(list.len(), MOD_BUSES);
        assert_eq!(list[3], OscType::Float(0.25));
        assert_eq!(
            find("/noise/level/gen/2").args,
            vec![OscType::Float(0.5), OscType::Float(0.3)]
        );
        assert_eq!(
            find("/noise/event/note_on").args,
            vec![OscType::Int(60), OscType::Int(100)]
        );
    }

    /// Offers `gen.1.cutoff` every `step` for `total` and returns the
    /// emission times and values on `/noise/gen/1/cutoff`.
    fn drive(bundle: bool, step: Duration, total: Duration) -> Vec<(Duration, f32)> {
        let mut r = OscRouter::new(&OscConfig {
            bundle,
            ..OscConfig::default()
        });
        let mut now = Duration::from_millis(3);
        let end = now + total;
        let mut out = Vec::new();
        let mut i = 0u32;
        let mut collect = |r: &mut OscRouter, now: Duration| {
            for m in messages(r.poll(now)) {
                if m.addr == "/noise/gen/1/cutoff" {
                    if let OscType::Float(v) = m.args[0] {
                        out.push((now, v));
                    }
                }
            }
        };
        while now < end {
            i += 1;
            offer(
                &mut r,
                Draft::param(Actor::User, "gen.1.cutoff", f64::from(i) / 1e5),
                now,
            );
            collect(&mut r, now);
            let next = now + step;
            // wake at every deadline before the next message, as the thread does
            while let Some(d) = r.next_deadline(now).filter(|d| *d < next) {
                now = d.max(now);
                collect(&mut r, now);
                if r.next_deadline(now) == Some(now) {
                    break;
                }
            }
            now = next;
        }
        // let everything held go out
        for _ in 0..10 {
            now += TICK;
            collect(&mut r, now);
        }
        assert_eq!(
            out.last().map(|x| x.1),
            Some(i as f32 / 1e5),
            "the last value arrives"
        );
        out
    }

    #[test]
    fn a_param_address_is_held_to_60_hz_and_keeps_its_last_value() {
        for bundle in [false, true] {
            let out = drive(bundle, Duration::from_millis(1), Duration::from_secs(10));
            // 10 s at 60 Hz, plus the one held value sent at the end
            assert!(
                (590..=602).contains(&out.len()),
                "bundle {bundle}: {}",
                out.len()
            );
            // no two closer than a tick minus the bundle slack, in every window
            for w in out.windows(2) {
                let gap = w[1].0 - w[0].0;
                assert!(gap >= TICK / 2, "bundle {bundle}: gap {gap:?}");
            }
            for second in 0..10u64 {
                let start = Duration::from_secs(second);
                let n = out
                    .iter()
                    .filter(|(t, _)| *t >= start && *t < start + Duration::from_secs(1))
                    .count();
                assert!(n <= 61, "bundle {bundle}: {n} in second {second}");
            }
        }
    }

    #[test]
    fn a_slow_source_is_not_delayed() {
        let out = drive(false, Duration::from_millis(50), Duration::from_secs(2));
        assert_eq!(out.len(), 40);
        // each value went out at the moment it was offered
        for (k, (t, _)) in out.iter().enumerate() {
            assert_eq!(*t, Duration::from_millis(3 + 50 * k as u64));
        }
    }

    #[test]
    fn mod_and_levels_run_at_30_hz_and_events_are_never_held() {
        let mut r = OscRouter::new(&OscConfig::default());
        let mut now = Duration::ZERO;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for i in 0..5000u32 {
            offer(
                &mut r,
                Draft::mod_value(1, f64::from(i) / 5000.0, None),
                now,
            );
            offer(&mut r, Draft::audio("master", 0.5, None), now);
            if i % 10 == 0 {
                offer(&mut r, Draft::event(Actor::Midi, "note_on", vec![]), now);
            }
            for m in messages(r.poll(now)) {
                *counts.entry(m.addr).or_default() += 1;
            }
            now += Duration::from_millis(1);
        }
        // 5 s at 30 Hz: 150 slots (+1)
        // (polled once a millisecond here, so a slot opens up to 1 ms late)
        for addr in [
            "/noise/mod/bus/1",
            "/noise/mod/buses",
            "/noise/level/master",
        ] {
            let n = counts[addr];
            assert!((140..=151).contains(&n), "{addr}: {n}");
        }
        assert_eq!(counts["/noise/event/note_on"], 500);
    }

    #[test]
    fn bundles_are_split_under_the_packet_limit() {
        let mut r = OscRouter::new(&OscConfig {
            bundle: true,
            max_packet_bytes: 200,
            ..OscConfig::default()
        });
        let now = Duration::from_secs(1);
        for g in 0..20 {
            offer(
                &mut r,
                Draft::param(Actor::User, format!("gen.{g}.cutoff"), 0.5),
                now,
            );
        }
        let packets = r.poll(now);
        assert!(packets.len() > 1);
        let mut n = 0;
        for (p, _) in &packets {
            let bytes = rosc::encoder::encode(p).unwrap();
            assert!(bytes.len() <= 200, "{}", bytes.len());
            n += messages(vec![(p.clone(), None)]).len();
        }
        assert_eq!(n, 20);
        // nothing more in the same tick
        assert!(r.poll(now + Duration::from_millis(1)).is_empty());
    }

    #[test]
    fn switched_off_kinds_are_skipped() {
        let mut r = OscRouter::new(&OscConfig {
            send: OscSend {
                params: false,
                levels: false,
                ..OscSend::default()
            },
            ..OscConfig::default()
        });
        offer(&mut r, Draft::param(Actor::User, "a", 0.5), Duration::ZERO);
        offer(&mut r, Draft::audio("master", 0.5, None), Duration::ZERO);
        assert!(r.poll(Duration::ZERO).is_empty());
        assert_eq!(r.stats().skipped, 2);
    }

    #[test]
    fn bad_targets_are_named() {
        let e = resolve_target("nonsense").unwrap_err().to_string();
        assert!(e.contains("`nonsense`") && e.contains("HOST:PORT"), "{e}");
        let e = resolve_target("127.0.0.1:99999").unwrap_err().to_string();
        assert!(e.contains("127.0.0.1:99999"), "{e}");
        assert!(resolve_target("127.0.0.1:9000").is_ok());
    }
}
