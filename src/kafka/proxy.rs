//! A loopback TCP forwarder that gives the embedded broker a chosen port.
//!
//! librdkafka's mock brokers always listen on a kernel-chosen port and have no
//! API to pick one. To serve on a fixed port (19092, where the synth looks for
//! Redpanda) we listen there ourselves, forward every connection to the mock
//! broker's real port, and make the mock advertise our port in its metadata.
//!
//! The forwarder also keeps the mock within its limits. The mock keeps about
//! 5 MiB per partition and, appending a larger batch, deletes everything
//! before it, the new batch included at the next append: it would lose
//! messages it had acknowledged. So requests from clients are read frame by
//! frame, and a Produce request carrying a record batch over
//! [`MAX_BATCH_BYTES`] for a partition is changed so that the mock refuses
//! that batch with "Invalid message size" (its record count is set to 0,
//! which the mock checks before anything else), as a real broker refuses a
//! batch over `message.max.bytes`. The mock is told to accept Produce
//! versions 3 to 8 only, whose layout is fixed (see `MockCluster::create`).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

type Registry = Arc<Mutex<HashMap<u64, (TcpStream, TcpStream)>>>;

/// The largest record batch the embedded broker accepts per partition (like
/// Kafka's default `message.max.bytes`); larger ones are refused.
pub const MAX_BATCH_BYTES: usize = 1 << 20;

/// Produce request versions whose layout [`refuse_oversized`] knows.
pub(crate) const PRODUCE_VERSIONS: (i16, i16) = (3, 8);

/// Requests larger than this are taken for garbage and close the connection
/// (Kafka's own `socket.request.max.bytes` is 100 MiB).
const MAX_REQUEST_BYTES: usize = 128 << 20;

/// A running forwarder; dropping it closes the listener and every connection.
pub(crate) struct Proxy {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
    connections: Registry,
    copiers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    /// Where it listens.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Listens on `listen` and forwards to `upstream`.
    pub(crate) fn start(listen: SocketAddr, upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind(listen)?;
        let local = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let connections: Registry = Arc::default();
        let copiers: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept_thread = {
            let stop = Arc::clone(&stop);
            let connections = Arc::clone(&connections);
            let copiers = Arc::clone(&copiers);
            std::thread::Builder::new()
                .name("broker-proxy-accept".to_owned())
                .spawn(move || accept_loop(listener, upstream, stop, connections, copiers))?
        };
        Ok(Proxy {
            local,
            stop,
            accept_thread: Some(accept_thread),
            connections,
            copiers,
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    stop: Arc<AtomicBool>,
    connections: Registry,
    copiers: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    let mut next_id = 0u64;
    for client in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                log::warn!("broker proxy: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        // a broker that is down refuses: the client sees its connection closed
        let server = match TcpStream::connect_timeout(&upstream, Duration::from_secs(1)) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("broker proxy: upstream {upstream} refused: {e}");
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let id = next_id;
        next_id += 1;
        let pair = (client.try_clone(), server.try_clone());
        let (Ok(c2), Ok(s2)) = pair else {
            continue;
        };
        let (Ok(c3), Ok(s3)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        lock(&connections).insert(id, (c3, s3));
        let mut handles = lock(&copiers);
        handles.retain(|h| !h.is_finished());
        for (from, to, name, up) in [
            (client, s2, "broker-proxy-up", true),
            (server, c2, "broker-proxy-down", false),
        ] {
            let connections = Arc::clone(&connections);
            let spawned = std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || {
                    if up {
                        pump_requests(from, to);
                    } else {
                        pump(from, to);
                    }
                    if let Some((a, b)) = lock(&connections).remove(&id) {
                        let _ = a.shutdown(Shutdown::Both);
                        let _ = b.shutdown(Shutdown::Both);
                    }
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => log::warn!("broker proxy: cannot start a forwarding thread: {e}"),
            }
        }
    }
}

/// Copies until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Copies Kafka requests frame by frame, refusing oversized batches (see
/// [`refuse_oversized`]), until either side closes.
fn pump_requests(from: TcpStream, mut to: TcpStream) {
    let mut reader = io::BufReader::with_capacity(64 * 1024, &from);
    let mut frame = Vec::new();
    loop {
        let mut len = [0u8; 4];
        if reader.read_exact(&mut len).is_err() {
            break;
        }
        let n = i32::from_be_bytes(len);
        if n < 0 || n as usize > MAX_REQUEST_BYTES {
            log::debug!("broker proxy: a request of {n} bytes: closing the connection");
            break;
        }
        frame.clear();
        frame.extend_from_slice(&len);
        frame.resize(4 + n as usize, 0);
        if reader.read_exact(&mut frame[4..]).is_err() {
            break;
        }
        let refused = refuse_oversized(&mut frame[4..], MAX_BATCH_BYTES);
        if refused > 0 {
            log::info!(
                "embedded broker: refused {refused} record batch(es) over {} bytes",
                MAX_BATCH_BYTES
            );
        }
        if to.write_all(&frame).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Offset of `RecordCount` in a v2 record batch.
const RECORD_COUNT_AT: usize = 57;

/// In a Produce request (versions [`PRODUCE_VERSIONS`]), sets the record
/// count of every partition's records larger than `max` bytes to 0, so the
/// broker refuses them with "Invalid message size"; returns how many. Any
/// other request, or one that does not parse, is left as it is.
pub(crate) fn refuse_oversized(request: &mut [u8], max: usize) -> usize {
    struct R<'a> {
        b: &'a mut [u8],
        pos: usize,
    }
    impl R<'_> {
        fn take(&mut self, n: usize) -> Option<usize> {
            let at = self.pos;
            let end = at.checked_add(n)?;
            (end <= self.b.len()).then(|| {
                self.pos = end;
                at
            })
        }
        fn i16(&mut self) -> Option<i16> {
            let at = self.take(2)?;
            Some(i16::from_be_bytes([self.b[at], self.b[at + 1]]))
        }
        fn i32(&mut self) -> Option<i32> {
            let at = self.take(4)?;
            Some(i32::from_be_bytes([
                self.b[at],
                self.b[at + 1],
                self.b[at + 2],
                self.b[at + 3],
            ]))
        }
        /// A nullable string or bytes with an `i16` length.
        fn str16(&mut self) -> Option<()> {
            let n = self.i16()?;
            if n > 0 {
                self.take(n as usize)?;
            }
            Some(())
        }
    }
    let mut r = R { b: request, pos: 0 };
    let walk = |r: &mut R<'_>| -> Option<usize> {
        let (api_key, version) = (r.i16()?, r.i16()?);
        if api_key != 0 || !(PRODUCE_VERSIONS.0..=PRODUCE_VERSIONS.1).contains(&version) {
            return Some(0);
        }
        r.i32()?; // correlation id
        r.str16()?; // client id
        r.str16()?; // transactional id
        r.i16()?; // acks
        r.i32()?; // timeout
        let mut refused = 0;
        for _ in 0..r.i32()?.max(0) {
            r.str16()?; // topic
            for _ in 0..r.i32()?.max(0) {
                r.i32()?; // partition
                let len = r.i32()?;
                if len <= 0 {
                    continue;
                }
                let at = r.take(len as usize)?;
                if len as usize > max && len as usize >= RECORD_COUNT_AT + 4 {
                    r.b[at + RECORD_COUNT_AT..at + RECORD_COUNT_AT + 4].fill(0);
                    refused += 1;
                }
            }
        }
        Some(refused)
    };
    walk(&mut r).unwrap_or(0)
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // wake the blocking accept
        let _ = TcpStream::connect_timeout(&self.local, Duration::from_millis(200));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        for (_, (a, b)) in lock(&self.connections).drain() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
        let handles: Vec<_> = lock(&self.copiers).drain(..).collect();
        for h in handles {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Produce request (v7, header v1) with one topic and the given
    /// partitions' records.
    fn produce(version: i16, partitions: &[Vec<u8>]) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&0i16.to_be_bytes()); // Produce
        r.extend_from_slice(&version.to_be_bytes());
        r.extend_from_slice(&42i32.to_be_bytes()); // correlation id
        r.extend_from_slice(&4i16.to_be_bytes());
        r.extend_from_slice(b"test"); // client id
        r.extend_from_slice(&(-1i16).to_be_bytes()); // no transactional id
        r.extend_from_slice(&(-1i16).to_be_bytes()); // acks=all
        r.extend_from_slice(&30_000i32.to_be_bytes());
        r.extend_from_slice(&1i32.to_be_bytes()); // one topic
        r.extend_from_slice(&12i16.to_be_bytes());
        r.extend_from_slice(b"noise.events");
        r.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
        for (i, records) in partitions.iter().enumerate() {
            r.extend_from_slice(&(i as i32).to_be_bytes());
            r.extend_from_slice(&(records.len() as i32).to_be_bytes());
            r.extend_from_slice(records);
        }
        r
    }

    /// A stand-in record batch of `len` bytes claiming 3 records.
    fn batch(len: usize) -> Vec<u8> {
        let mut b = vec![0xabu8; len];
        b[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&3i32.to_be_bytes());
        b
    }

    fn record_count(request: &[u8], batch_at: usize) -> i32 {
        let at = batch_at + RECORD_COUNT_AT;
        i32::from_be_bytes(request[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn only_oversized_batches_are_refused() {
        let small = batch(1000);
        let big = batch(2000);
        let mut req = produce(7, &[small.clone(), big.clone(), small.clone()]);
        let original = req.clone();
        assert_eq!(refuse_oversized(&mut req, 1500), 1);
        // where each partition's records start
        let header = 2 + 2 + 4 + 2 + 4 + 2 + 2 + 4 + 4 + 2 + 12 + 4;
        let first = header + 4 + 4;
        let second = first + small.len() + 4 + 4;
        let third = second + big.len() + 4 + 4;
        assert_eq!(record_count(&req, first), 3);
        assert_eq!(record_count(&req, second), 0);
        assert_eq!(record_count(&req, third), 3);
        // nothing else changed
        let changed: Vec<usize> = (0..req.len()).filter(|&i| req[i] != original[i]).collect();
        assert!(changed
            .iter()
            .all(|&i| (second + RECORD_COUNT_AT..second + RECORD_COUNT_AT + 4).contains(&i)));
    }

    #[test]
    fn other_requests_and_garbage_pass_unchanged() {
        let big = batch(5000);
        for version in [2, 9] {
            let mut req = produce(version, std::slice::from_ref(&big));
            let before = req.clone();
            assert_eq!(refuse_oversized(&mut req, 100), 0, "v{version}");
            assert_eq!(req, before);
        }
        let mut fetch = produce(7, std::slice::from_ref(&big));
        fetch[1] = 1; // api key 1: Fetch
        let before = fetch.clone();
        assert_eq!(refuse_oversized(&mut fetch, 100), 0);
        assert_eq!(fetch, before);
        // cut short, or lengths that lie: left alone, no panic
        let whole = produce(7, &[big]);
        for cut in [0, 3, 17, 40, whole.len() - 1] {
            let mut part = whole[..cut].to_vec();
            let _ = refuse_oversized(&mut part, 100);
        }
        let mut lying = whole.clone();
        let n = lying.len();
        lying[n - 5004..n - 5000].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(refuse_oversized(&mut lying, 100), 0);
    }
}
