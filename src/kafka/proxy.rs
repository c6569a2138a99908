//! A loopback TCP forwarder that gives the embedded broker a chosen port.
//!
//! librdkafka's mock brokers always listen on a kernel-chosen port and have no
//! API to pick one. To serve on a fixed port (19092, where the synth looks for
//! Redpanda) we listen there ourselves, forward every connection to the mock
//! broker's real port, and make the mock advertise our port in its metadata.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

type Registry = Arc<Mutex<HashMap<u64, (TcpStream, TcpStream)>>>;

/// A running forwarder; dropping it closes the listener and every connection.
pub(crate) struct Proxy {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
    connections: Registry,
    copiers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
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
        for (from, to, name) in [
            (client, s2, "broker-proxy-up"),
            (server, c2, "broker-proxy-down"),
        ] {
            let connections = Arc::clone(&connections);
            let spawned = std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || {
                    pump(from, to);
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
