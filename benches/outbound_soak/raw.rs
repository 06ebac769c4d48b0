//! A small HTTP/1.1 server of the soak's own, for the upstream, the foreign origin and the
//! MKA1 front. A handler decides each request's answer, and may also hang, reset the
//! connection or trickle the body, which hyper's server cannot do; the server counts the
//! connections it accepted and closed, and can close its listening socket (connections are
//! then refused) and open it again on the same port.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// A request as the server read it: GET or POST with a `Content-Length` body.
pub struct Received {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    /// Every value of the header `name`, matched as the crate matches names: case ignored
    /// and `_` counted as `-`.
    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        let name = name.to_owned();
        self.headers
            .iter()
            .filter(move |(n, _)| same_name(n, &name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| {
            let norm = |c: u8| {
                if c == b'_' {
                    b'-'
                } else {
                    c.to_ascii_lowercase()
                }
            };
            norm(x) == norm(y)
        })
}

/// How to answer one request.
pub enum Action {
    Respond {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// Answer nothing until the client closes the connection.
    Hang,
    /// Close the connection with a reset (`SO_LINGER` 0), answering nothing.
    Reset,
    /// Send a status line, then a header's value one byte every `every`, never ending the
    /// head while the client stays (up to an hour's worth of bytes).
    TrickleHead { every: Duration },
    /// Send the head (with a `Content-Length` of `first.len() + rest`) and `first`, then one
    /// byte every `every` until `rest` bytes are sent or the client leaves.
    Trickle {
        status: u16,
        first: Vec<u8>,
        rest: usize,
        every: Duration,
    },
}

pub type Handler =
    Arc<dyn Fn(Received) -> Pin<Box<dyn Future<Output = Action> + Send>> + Send + Sync>;

/// What a server counts.
#[derive(Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub closed: AtomicU64,
    pub requests: AtomicU64,
    /// Requests being held (hanging or trickling) right now.
    pub holding: AtomicU64,
    /// Requests read and not yet answered (or given up) right now.
    pub in_flight: AtomicU64,
}

impl Counters {
    /// Connections accepted and not yet closed.
    pub fn open(&self) -> u64 {
        let closed = self.closed.load(Ordering::SeqCst);
        self.accepted.load(Ordering::SeqCst).saturating_sub(closed)
    }
}

pub struct RawServer {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    handler: Handler,
    runtime: Handle,
    accepting: Mutex<Option<JoinHandle<()>>>,
}

impl RawServer {
    /// Listen on `127.0.0.1:0` on `runtime`.
    pub fn start(runtime: &Handle, handler: Handler) -> RawServer {
        let listener = runtime.block_on(async {
            TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a soak server")
        });
        let addr = listener.local_addr().expect("address");
        let server = RawServer {
            addr,
            counters: Arc::default(),
            handler,
            runtime: runtime.clone(),
            accepting: Mutex::new(None),
        };
        server.accept_on(listener);
        server
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn accept_on(&self, listener: TcpListener) {
        let (handler, counters) = (self.handler.clone(), self.counters.clone());
        let task = self.runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                counters.accepted.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, handler.clone(), counters.clone()));
            }
        });
        *self.accepting.lock().unwrap() = Some(task);
    }

    /// Close the listening socket: new connections are refused. Open ones stay.
    pub fn stop_listening(&self) {
        if let Some(task) = self.accepting.lock().unwrap().take() {
            task.abort();
            // The listener is dropped with the task.
            let _ = self.runtime.block_on(task);
        }
    }

    /// Listen again on the same port.
    pub fn listen_again(&self) {
        let listener = self.runtime.block_on(async {
            let mut tries = 0;
            loop {
                match TcpListener::bind(self.addr).await {
                    Ok(listener) => break listener,
                    Err(e) if tries < 50 => {
                        tries += 1;
                        eprintln!("  rebinding {}: {e}; retrying", self.addr);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
                }
            }
        });
        self.accept_on(listener);
    }
}

struct ClosedOnDrop(Arc<Counters>);

impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        self.0.closed.fetch_add(1, Ordering::SeqCst);
    }
}

struct Holding(Arc<Counters>);

impl Holding {
    fn new(counters: &Arc<Counters>) -> Holding {
        counters.holding.fetch_add(1, Ordering::SeqCst);
        Holding(counters.clone())
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.holding.fetch_sub(1, Ordering::SeqCst);
    }
}

struct InFlight(Arc<Counters>);

impl InFlight {
    fn new(counters: &Arc<Counters>) -> InFlight {
        counters.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(counters.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

const MAX_HEAD: usize = 64 * 1024;

async fn connection(mut stream: TcpStream, handler: Handler, counters: Arc<Counters>) {
    let _closed = ClosedOnDrop(counters.clone());
    let mut buf = Vec::with_capacity(4096);
    while let Some(request) = read_request(&mut stream, &mut buf).await {
        counters.requests.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlight::new(&counters);
        match handler(request).await {
            Action::Respond {
                status,
                headers,
                body,
            } => {
                let mut out = head(status, &headers, body.len());
                out.extend_from_slice(&body);
                if stream.write_all(&out).await.is_err() {
                    return;
                }
            }
            Action::Hang => {
                let _holding = Holding::new(&counters);
                wait_closed(&mut stream).await;
                return;
            }
            Action::Reset => {
                let _ = stream.set_zero_linger();
                return;
            }
            Action::TrickleHead { every } => {
                let _holding = Holding::new(&counters);
                if stream
                    .write_all(b"HTTP/1.1 200 OK\r\nx-slow: ")
                    .await
                    .is_err()
                {
                    return;
                }
                let bytes = (3600.0 / every.as_secs_f64()) as u64;
                for _ in 0..bytes {
                    let mut scratch = [0u8; 512];
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stream.read(&mut scratch) => return,
                    }
                    if stream.write_all(b"a").await.is_err() {
                        return;
                    }
                }
                return;
            }
            Action::Trickle {
                status,
                first,
                rest,
                every,
            } => {
                let _holding = Holding::new(&counters);
                let mut out = head(status, &[], first.len() + rest);
                out.extend_from_slice(&first);
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                for _ in 0..rest {
                    // A client that leaves is seen as the end of the stream (or an error).
                    let mut scratch = [0u8; 512];
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stream.read(&mut scratch) => return,
                    }
                    if stream.write_all(b".").await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn head(status: u16, headers: &[(&'static str, String)], length: usize) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {length}\r\ncontent-type: text/plain\r\n\r\n"
    ));
    out.into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        307 => "Temporary Redirect",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        405 => "Method Not Allowed",
        _ => "Other",
    }
}

/// Read until the peer closes (or fails).
async fn wait_closed(stream: &mut TcpStream) {
    let mut scratch = [0u8; 1024];
    loop {
        match stream.read(&mut scratch).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The next request on the connection; `None` when it closed or sent something unreadable.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Received> {
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = std::str::from_utf8(&buf[..end]).ok()?.to_owned();
    buf.drain(..end + 4);
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
    {
        // Not sent by the clients under test (bodies are empty or of known length).
        return None;
    }
    while buf.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf.drain(..length).collect();
    Some(Received {
        method,
        target,
        headers,
        body,
    })
}
