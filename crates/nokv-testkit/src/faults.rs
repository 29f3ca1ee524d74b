//! Fault-injecting proxies on 127.0.0.1 for fault tests.
//!
//! [`S3FaultProxy`] sits between NoKV's S3 client and Garage and speaks
//! just enough HTTP/1.1 to act per request: it may delay a request,
//! answer it with a 500 or 503 itself, drop the connection before or
//! after forwarding it, cut the response body short, or flip a byte of
//! a response body. What it does is chosen at random with the rates of
//! the current [`FaultPlan`], which a test may change at any time; every
//! fault injected is counted ([`FaultCounts`]).
//!
//! [`TcpFaultProxy`] forwards raw TCP (e.g. gRPC to a metadata server)
//! and can be told to swallow the next reply and cut the connection:
//! the request reaches the server, its answer never reaches the client.
//!
//! Both run on a runtime of their own, so sync and async tests can use
//! them alike, and stop when dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Rates (0.0..=1.0) of each fault per request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultPlan {
    /// Delay the request by `delay` before anything else.
    pub delay_rate: f64,
    pub delay: Duration,
    /// Answer 500 or 503 without forwarding.
    pub error_rate: f64,
    /// Close the connection without forwarding or answering.
    pub drop_rate: f64,
    /// Forward the request, then close the connection without answering
    /// (the request took effect, the client never hears of it).
    pub drop_after_rate: f64,
    /// Send the response head and only half of its body, then close.
    pub truncate_rate: f64,
    /// Flip one byte of a non-empty 200 GET response body.
    pub corrupt_rate: f64,
}

impl FaultPlan {
    /// No faults: a transparent proxy.
    pub fn none() -> FaultPlan {
        FaultPlan::default()
    }

    /// Every request fails with 500/503.
    pub fn always_error() -> FaultPlan {
        FaultPlan {
            error_rate: 1.0,
            ..FaultPlan::default()
        }
    }

    /// A bit of everything except corruption, each at `rate`.
    pub fn mixed(rate: f64) -> FaultPlan {
        FaultPlan {
            delay_rate: rate,
            delay: Duration::from_millis(30),
            error_rate: rate,
            drop_rate: rate,
            drop_after_rate: rate,
            truncate_rate: rate,
            corrupt_rate: 0.0,
        }
    }
}

/// How many requests passed and how many faults were injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub requests: u64,
    pub delayed: u64,
    pub errors: u64,
    pub dropped: u64,
    pub dropped_after: u64,
    pub truncated: u64,
    pub corrupted: u64,
}

impl FaultCounts {
    /// Faults of every kind except delays.
    pub fn failures(&self) -> u64 {
        self.errors + self.dropped + self.dropped_after + self.truncated + self.corrupted
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    delayed: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
    dropped_after: AtomicU64,
    truncated: AtomicU64,
    corrupted: AtomicU64,
}

struct State {
    upstream: SocketAddr,
    plan: Mutex<FaultPlan>,
    rng: Mutex<u64>,
    counts: Counters,
}

impl State {
    fn plan(&self) -> FaultPlan {
        *self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A uniform draw in [0, 1) (xorshift64*: deterministic per seed).
    fn draw(&self) -> f64 {
        let mut s = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        let v = s.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (v >> 11) as f64 / (1u64 << 53) as f64
    }

    fn hit(&self, rate: f64) -> bool {
        rate > 0.0 && self.draw() < rate
    }
}

fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("building the proxy runtime")
}

fn bind_loopback() -> std::net::TcpListener {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a proxy port");
    l.set_nonblocking(true).expect("nonblocking listener");
    l
}

/// Host and port of an `http://host:port[/]` URL.
fn socket_of(url: &str) -> SocketAddr {
    let hostport = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    use std::net::ToSocketAddrs;
    hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("cannot resolve {url:?}"))
}

/// An HTTP/1.1 fault proxy in front of one S3 endpoint.
pub struct S3FaultProxy {
    state: Arc<State>,
    addr: SocketAddr,
    rt: Option<tokio::runtime::Runtime>,
}

impl S3FaultProxy {
    /// A proxy for `upstream` (`http://127.0.0.1:PORT`), transparent
    /// until [`S3FaultProxy::set`] gives it a plan.
    pub fn start(upstream: &str, seed: u64) -> S3FaultProxy {
        let state = Arc::new(State {
            upstream: socket_of(upstream),
            plan: Mutex::new(FaultPlan::none()),
            rng: Mutex::new(seed | 1),
            counts: Counters::default(),
        });
        let std_listener = bind_loopback();
        let addr = std_listener.local_addr().expect("proxy address");
        let rt = runtime("s3-fault-proxy");
        let st = state.clone();
        rt.spawn(async move {
            let listener = TcpListener::from_std(std_listener).expect("tokio listener");
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let _ = conn.set_nodelay(true);
                tokio::spawn(serve_connection(conn, st.clone()));
            }
        });
        S3FaultProxy {
            state,
            addr,
            rt: Some(rt),
        }
    }

    /// The endpoint URL clients use instead of the upstream's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the plan for the requests that follow.
    pub fn set(&self, plan: FaultPlan) {
        *self.state.plan.lock().unwrap_or_else(|e| e.into_inner()) = plan;
    }

    pub fn counts(&self) -> FaultCounts {
        let c = &self.state.counts;
        let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
        FaultCounts {
            requests: l(&c.requests),
            delayed: l(&c.delayed),
            errors: l(&c.errors),
            dropped: l(&c.dropped),
            dropped_after: l(&c.dropped_after),
            truncated: l(&c.truncated),
            corrupted: l(&c.corrupted),
        }
    }
}

impl Drop for S3FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// One HTTP message as read off the wire: its head (verbatim) and body
/// (verbatim: chunked framing kept).
struct Message {
    head: Vec<u8>,
    body: Vec<u8>,
    /// First line, e.g. `GET /b/k HTTP/1.1` or `HTTP/1.1 200 OK`.
    start: String,
    close: bool,
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

type Reader<S> = BufReader<S>;

/// Reads one message head; `None` on a clean EOF before any byte.
async fn read_head<S: tokio::io::AsyncRead + Unpin>(
    r: &mut Reader<S>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line).await?;
        if n == 0 {
            if head.is_empty() {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let blank = line == b"\r\n" || line == b"\n";
        head.extend_from_slice(&line);
        if blank && head.len() > n {
            return Ok(Some(head));
        }
        if blank {
            // stray CRLF before a message: skip it
            head.clear();
        }
        if head.len() > 64 * 1024 {
            return Err(std::io::Error::other("message head over 64 KiB"));
        }
    }
}

/// Reads a chunked body, keeping its framing.
async fn read_chunked<S: tokio::io::AsyncRead + Unpin>(
    r: &mut Reader<S>,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        out.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line);
        let size_text = text.trim().split(';').next().unwrap_or("").to_string();
        let size = usize::from_str_radix(&size_text, 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            // trailers up to the blank line
            loop {
                let mut t = Vec::new();
                if r.read_until(b'\n', &mut t).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                out.extend_from_slice(&t);
                if t == b"\r\n" || t == b"\n" {
                    return Ok(());
                }
            }
        }
        let start = out.len();
        out.resize(start + size + 2, 0);
        r.read_exact(&mut out[start..]).await?;
    }
}

/// Reads one message. `no_body`: a response to HEAD, or a status that
/// has none.
async fn read_message<S: tokio::io::AsyncRead + Unpin>(
    r: &mut Reader<S>,
    is_response: bool,
    request_was_head: bool,
) -> std::io::Result<Option<Message>> {
    let Some(head) = read_head(r).await? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&head).into_owned();
    let start = text.lines().next().unwrap_or_default().to_string();
    let close = header(&text, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let status: u16 = if is_response {
        start
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    } else {
        0
    };
    let mut body = Vec::new();
    let bodiless =
        is_response && (request_was_head || status / 100 == 1 || status == 204 || status == 304);
    let chunked = header(&text, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut close = close;
    if !bodiless {
        if chunked {
            read_chunked(r, &mut body).await?;
        } else if let Some(len) = header(&text, "content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| std::io::Error::other("bad content-length"))?;
            body.resize(len, 0);
            r.read_exact(&mut body).await?;
        } else if is_response {
            r.read_to_end(&mut body).await?;
            close = true;
        }
    }
    Ok(Some(Message {
        head,
        body,
        start,
        close,
    }))
}

fn injected_error(status: u16) -> Vec<u8> {
    let (reason, code) = if status == 503 {
        ("Service Unavailable", "SlowDown")
    } else {
        ("Internal Server Error", "InternalError")
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <Error><Code>{code}</Code><Message>injected by the fault proxy</Message></Error>"
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn serve_connection(client: TcpStream, st: Arc<State>) {
    let (cr, mut cw) = client.into_split();
    let mut cr = BufReader::new(cr);
    let mut upstream: Option<(
        Reader<tokio::net::tcp::OwnedReadHalf>,
        tokio::net::tcp::OwnedWriteHalf,
    )> = None;
    let c = &st.counts;
    loop {
        let req = match read_message(&mut cr, false, false).await {
            Ok(Some(m)) => m,
            _ => return,
        };
        c.requests.fetch_add(1, Ordering::SeqCst);
        let plan = st.plan();
        if st.hit(plan.delay_rate) {
            c.delayed.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(plan.delay).await;
        }
        if st.hit(plan.error_rate) {
            let status = if st.draw() < 0.5 { 500 } else { 503 };
            c.errors.fetch_add(1, Ordering::SeqCst);
            let _ = cw.write_all(&injected_error(status)).await;
            let _ = cw.shutdown().await;
            return;
        }
        if st.hit(plan.drop_rate) {
            c.dropped.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if upstream.is_none() {
            let Ok(s) = TcpStream::connect(st.upstream).await else {
                return; // upstream down: the client sees a dropped connection
            };
            let _ = s.set_nodelay(true);
            let (r, w) = s.into_split();
            upstream = Some((BufReader::new(r), w));
        }
        let Some((ur, uw)) = upstream.as_mut() else {
            return;
        };
        if uw.write_all(&req.head).await.is_err() || uw.write_all(&req.body).await.is_err() {
            return;
        }
        let is_head = req.start.starts_with("HEAD ");
        let mut resp = match read_message(ur, true, is_head).await {
            Ok(Some(m)) => m,
            _ => return,
        };
        if st.hit(plan.drop_after_rate) {
            c.dropped_after.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if resp.body.len() > 1 && st.hit(plan.truncate_rate) {
            c.truncated.fetch_add(1, Ordering::SeqCst);
            let _ = cw.write_all(&resp.head).await;
            let _ = cw.write_all(&resp.body[..resp.body.len() / 2]).await;
            let _ = cw.shutdown().await;
            return;
        }
        let ok_get = req.start.starts_with("GET ") && resp.start.contains(" 200 ");
        let chunked = header(&String::from_utf8_lossy(&resp.head), "transfer-encoding").is_some();
        if ok_get && !chunked && !resp.body.is_empty() && st.hit(plan.corrupt_rate) {
            c.corrupted.fetch_add(1, Ordering::SeqCst);
            let i = (st.draw() * resp.body.len() as f64) as usize % resp.body.len();
            resp.body[i] ^= 0x5a;
        }
        if cw.write_all(&resp.head).await.is_err() || cw.write_all(&resp.body).await.is_err() {
            return;
        }
        if resp.close || req.close {
            let _ = cw.shutdown().await;
            return;
        }
    }
}

/// A raw TCP forwarder that can swallow a reply and cut connections.
pub struct TcpFaultProxy {
    addr: SocketAddr,
    swallow: Arc<AtomicBool>,
    swallowed: Arc<AtomicU64>,
    rt: Option<tokio::runtime::Runtime>,
}

impl TcpFaultProxy {
    /// Forwards every connection to `upstream` (`host:port` or an
    /// `http://` URL).
    pub fn start(upstream: &str) -> TcpFaultProxy {
        let upstream = socket_of(upstream);
        let std_listener = bind_loopback();
        let addr = std_listener.local_addr().expect("proxy address");
        let swallow = Arc::new(AtomicBool::new(false));
        let swallowed = Arc::new(AtomicU64::new(0));
        let rt = runtime("tcp-fault-proxy");
        let (sw, sd) = (swallow.clone(), swallowed.clone());
        rt.spawn(async move {
            let listener = TcpListener::from_std(std_listener).expect("tokio listener");
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let (sw, sd) = (sw.clone(), sd.clone());
                tokio::spawn(async move {
                    let Ok(up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = (conn.set_nodelay(true), up.set_nodelay(true));
                    let (mut cr, mut cw) = conn.into_split();
                    let (mut ur, mut uw) = up.into_split();
                    let to_server = async {
                        let _ = tokio::io::copy(&mut cr, &mut uw).await;
                    };
                    let to_client = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match ur.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if sw.load(Ordering::SeqCst) {
                                // The server answered; the client never
                                // hears it: drop the connection.
                                sd.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            if cw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    // Whichever direction ends first ends the connection.
                    tokio::select! {
                        _ = to_server => {}
                        _ = to_client => {}
                    }
                });
            }
        });
        TcpFaultProxy {
            addr,
            swallow,
            swallowed,
            rt: Some(rt),
        }
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on every reply from the server is swallowed and its
    /// connection cut (`false`: forward normally again).
    pub fn swallow_replies(&self, on: bool) {
        self.swallow.store(on, Ordering::SeqCst);
    }

    /// Replies swallowed so far.
    pub fn swallowed(&self) -> u64 {
        self.swallowed.load(Ordering::SeqCst)
    }
}

impl Drop for TcpFaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
