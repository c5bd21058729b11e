//! A local HTTP server for the strict doubles of services that cannot run
//! here: it runs in the test process on 127.0.0.1, one thread per
//! connection, plain HTTP/1.1 with `Connection: close`; records every
//! request and its answer; hands each request to the double's handler, which
//! checks it against the protocol and answers; and injects failures into
//! the requests a double chooses (a status with a body, a `Retry-After`, a
//! redirect, a delay, a dropped connection, a stall).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The largest body read: more is cut there.
pub const MAX_BODY: usize = 64 << 20;

/// A failure to inject into a request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and body.
    Answer(u16, String),
    /// Answer this status (429, 503) with a `Retry-After` of this text.
    RetryAfter(u16, String),
    /// Answer this 3xx status with this `Location`.
    Redirect(u16, String),
    /// Wait this long, then hand the request to the handler (which answers
    /// even if the client is gone).
    Delay(Duration),
    /// Read the request, then close the connection without an answer.
    Drop,
    /// Read the request and hold the connection, silent, until the server
    /// stops.
    Stall,
    /// Answer with this reply (a protocol's own error body and headers).
    Reply(Reply),
}

/// One request received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path and query.
    pub target: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The status answered; `None` while it is being handled (or when no
    /// answer was given).
    pub status: Option<u16>,
    /// The fault injected into it, if any.
    pub fault: Option<Fault>,
    /// When it arrived.
    pub at: Instant,
}

impl Request {
    /// A header's value (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An answer from a handler.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// Extra headers (`Content-Length` and `Connection` are the server's).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A reply of `status` with `body` (`content_type` when not empty).
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        let body = body.into();
        let headers = if body.is_empty() {
            Vec::new()
        } else {
            vec![("Content-Type".to_string(), content_type.to_string())]
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A reply of `status` and no body.
    pub fn empty(status: u16) -> Reply {
        Reply::new(status, "", Vec::new())
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// Which requests a queued fault is for.
type Which = Box<dyn Fn(&Request) -> bool + Send>;

/// What a server has seen, and the double's own state `S`.
pub struct Seen<S> {
    /// Every request, in the order they arrived.
    pub requests: Vec<Request>,
    /// The double's state, which its handler updates.
    pub state: S,
    faults: Vec<(Which, Fault)>,
    always: Option<(Which, Fault)>,
}

impl<S> std::ops::Deref for Seen<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.state
    }
}

impl<S> std::ops::DerefMut for Seen<S> {
    fn deref_mut(&mut self) -> &mut S {
        &mut self.state
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Seen<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seen")
            .field("requests", &self.requests)
            .field("state", &self.state)
            .field("faults", &self.faults.len())
            .field("always", &self.always.as_ref().map(|(_, f)| f))
            .finish()
    }
}

impl<S> Seen<S> {
    /// The `POST` requests, in the order they arrived.
    pub fn posts(&self) -> impl Iterator<Item = &Request> {
        self.requests.iter().filter(|r| r.method == "POST")
    }

    /// The requests seen, one line each, for failure messages.
    pub fn summary(&self) -> String {
        self.requests
            .iter()
            .map(|r| {
                let text = r.text();
                let mut body: String = text.chars().take(300).collect();
                if text.len() > 300 {
                    body.push('…');
                }
                format!("{} {} -> {:?}: {body:?}", r.method, r.target, r.status)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

type Handler<S> = dyn Fn(&Request, &mut S) -> Reply + Send + Sync;

struct Shared<S> {
    seen: Mutex<Seen<S>>,
    changed: Condvar,
    handler: Box<Handler<S>>,
    stop: AtomicBool,
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, Seen<S>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running server; stopped on drop.
pub struct Server<S: Send + 'static> {
    addr: SocketAddr,
    shared: Arc<Shared<S>>,
    thread: Option<JoinHandle<()>>,
}

impl<S: Send + 'static> Server<S> {
    /// Starts a server on 127.0.0.1:`port` (any free port for 0) whose
    /// `handler` answers what no fault is injected into, with `state` for it
    /// to keep what it took.
    pub fn start(
        port: u16,
        state: S,
        handler: impl Fn(&Request, &mut S) -> Reply + Send + Sync + 'static,
    ) -> Server<S> {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the double");
        let addr = listener.local_addr().expect("the double's address");
        let shared = Arc::new(Shared {
            seen: Mutex::new(Seen {
                requests: Vec::new(),
                state,
                faults: Vec::new(),
                always: None,
            }),
            changed: Condvar::new(),
            handler: Box::new(handler),
            stop: AtomicBool::new(false),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = Arc::clone(&shared);
                    std::thread::spawn(move || serve(stream, &shared));
                }
            })
        };
        Server {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its address as `host:port`, for [`crate::http::request`].
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Injects `fault` into the next request for which `which` holds and
    /// that has none yet; faults wait in the order they were given.
    pub fn push_fault_if(&self, which: impl Fn(&Request) -> bool + Send + 'static, fault: Fault) {
        self.shared.lock().faults.push((Box::new(which), fault));
    }

    /// Injects `fault` into every request the queued faults leave alone, or
    /// (`None`) stops.
    pub fn always(&self, fault: Option<Fault>) {
        self.always_if(|_| true, fault);
    }

    /// Injects `fault` into every request for which `which` holds that the
    /// queued faults leave alone, or (`None`) stops.
    pub fn always_if(
        &self,
        which: impl Fn(&Request) -> bool + Send + 'static,
        fault: Option<Fault>,
    ) {
        self.shared.lock().always = fault.map(|f| (Box::new(which) as Which, f));
        self.shared.changed.notify_all();
    }

    /// Looks at what it has seen.
    pub fn seen(&self) -> MutexGuard<'_, Seen<S>> {
        self.shared.lock()
    }

    /// Waits until `done` holds for what it has seen; panics after
    /// [`crate::DEADLINE`].
    pub fn wait(&self, what: &str, done: impl Fn(&Seen<S>) -> bool) {
        let end = Instant::now() + crate::DEADLINE;
        let mut seen = self.shared.lock();
        while !done(&seen) {
            let now = Instant::now();
            assert!(
                now < end,
                "timed out waiting for {what}; the double saw:\n{}",
                seen.summary()
            );
            let step = (end - now).min(Duration::from_millis(100));
            seen = self
                .shared
                .changed
                .wait_timeout(seen, step)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl<S: Send + 'static> Drop for Server<S> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve<S>(stream: TcpStream, shared: &Shared<S>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    let Some(mut request) = read_request(&mut reader) else {
        return;
    };
    let (index, fault) = {
        let mut seen = shared.lock();
        let due = seen.faults.iter().position(|(which, _)| which(&request));
        let fault = match due {
            Some(i) => Some(seen.faults.remove(i).1),
            None => seen
                .always
                .as_ref()
                .filter(|(which, _)| which(&request))
                .map(|(_, f)| f.clone()),
        };
        request.fault = fault.clone();
        seen.requests.push(request.clone());
        (seen.requests.len() - 1, fault)
    };
    shared.changed.notify_all();
    let reply = match fault {
        Some(Fault::Answer(status, body)) => Some(Reply::new(status, "text/plain", body)),
        Some(Fault::RetryAfter(status, after)) => {
            Some(Reply::new(status, "text/plain", "slow down").with_header("Retry-After", &after))
        }
        Some(Fault::Redirect(status, location)) => {
            Some(Reply::empty(status).with_header("Location", &location))
        }
        Some(Fault::Reply(reply)) => Some(reply),
        Some(Fault::Drop) => None,
        Some(Fault::Stall) => {
            let mut seen = shared.lock();
            while !shared.stop.load(Ordering::SeqCst) {
                seen = shared
                    .changed
                    .wait_timeout(seen, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            None
        }
        Some(Fault::Delay(delay)) => {
            std::thread::sleep(delay);
            Some(answer(&request, shared))
        }
        None => Some(answer(&request, shared)),
    };
    // The status is on record before the answer leaves, so that a client
    // that has its answer finds it there.
    shared.lock().requests[index].status = reply.as_ref().map(|r| r.status);
    shared.changed.notify_all();
    if let Some(reply) = reply {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            reply.status,
            reason(reply.status),
            reply.body.len()
        );
        for (name, value) in &reply.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(&reply.body);
        let _ = writer.flush();
    }
    let _ = writer.shutdown(Shutdown::Both);
}

fn answer<S>(request: &Request, shared: &Shared<S>) -> Reply {
    let mut seen = shared.lock();
    let reply = (shared.handler)(request, &mut seen.state);
    drop(seen);
    shared.changed.notify_all();
    reply
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length.min(MAX_BODY)];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
        body,
        status: None,
        fault: None,
        at: Instant::now(),
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http;

    fn counting() -> Server<u32> {
        Server::start(0, 0u32, |request, taken| {
            if request.path() != "/ok" {
                return Reply::new(404, "text/plain", "not here");
            }
            *taken += 1;
            Reply::new(200, "text/plain", format!("taken {taken}"))
        })
    }

    #[test]
    fn the_handler_answers_and_keeps_its_state() {
        let server = counting();
        let a = http::request(&server.address(), "POST", "/ok", &[("X-A", "1")], b"abc").unwrap();
        assert_eq!((a.status, a.text().as_str()), (200, "taken 1"));
        let b = http::get(&server.address(), "/nope").unwrap();
        assert_eq!(b.status, 404);
        let seen = server.seen();
        assert_eq!(seen.state, 1);
        assert_eq!(seen.requests.len(), 2);
        assert_eq!(seen.requests[0].body, b"abc");
        assert_eq!(seen.requests[0].header("x-a"), Some("1"));
        assert_eq!(seen.requests[0].status, Some(200));
        assert_eq!(seen.requests[1].status, Some(404));
    }

    #[test]
    fn faults_go_to_the_requests_chosen_in_order_then_always() {
        let server = counting();
        server.push_fault_if(|r| r.text() == "b", Fault::Answer(400, "bad b".into()));
        server.push_fault_if(|_| true, Fault::RetryAfter(429, "7".into()));
        let a = http::request(&server.address(), "POST", "/ok", &[], b"a").unwrap();
        assert_eq!((a.status, a.header("retry-after")), (429, Some("7")));
        let b = http::request(&server.address(), "POST", "/ok", &[], b"b").unwrap();
        assert_eq!((b.status, b.text().as_str()), (400, "bad b"));
        assert_eq!(
            http::request(&server.address(), "POST", "/ok", &[], b"c")
                .unwrap()
                .status,
            200
        );
        server.always(Some(Fault::Drop));
        assert!(http::request(&server.address(), "POST", "/ok", &[], b"d").is_err());
        server.always(None);
        assert_eq!(
            http::request(&server.address(), "POST", "/ok", &[], b"e")
                .unwrap()
                .status,
            200
        );
        server.wait("every answer recorded", |s| {
            s.requests.len() == 5 && s.requests[3].fault.is_some()
        });
        assert_eq!(server.seen().state, 2);
    }

    #[test]
    fn a_stalled_request_is_released_when_the_server_stops() {
        let server = counting();
        server.always(Some(Fault::Stall));
        let addr = server.address();
        let client = std::thread::spawn(move || http::get(&addr, "/ok"));
        server.wait("the stalled request", |s| s.requests.len() == 1);
        drop(server);
        assert!(client.join().unwrap().is_err());
    }
}
