//! A real HTTP/1.1 server on 127.0.0.1 for fetch tests and benches: one thread per connection,
//! `Connection: close` after each response. It serves in-memory bodies (with `Range: bytes=n-`
//! support), logs every request (path, Range header, status), and can be told to misbehave.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How a route misbehaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Serve correctly.
    None,
    /// For the first `times` requests: announce the full length, send the body up to absolute
    /// byte `at`, then close the connection.
    DropAt { at: u64, times: u32 },
    /// Answer the first `times` requests with `500 Internal Server Error`.
    ServerError { times: u32 },
    /// Always answer `200` with the whole body, whatever `Range` says.
    IgnoreRange,
    /// Serve different bytes of the same size (every byte XOR 0xFF).
    WrongBytes,
    /// For the first `times` requests: send up to absolute byte `at`, then go silent for `pause`
    /// before closing.
    Stall {
        at: u64,
        pause: Duration,
        times: u32,
    },
    /// Serve correctly but slowly: `chunk` bytes, then sleep `delay`, repeated.
    Throttle { chunk: usize, delay: Duration },
    /// `200` with no `Content-Length`, then zeros until the client hangs up (the body is unused).
    Endless,
    /// `200` with the whole body but no `Content-Length` (ended by closing the connection).
    NoLength,
    /// Send `head` verbatim (status line, headers, blank line) and then the route's body, then
    /// close: for answers a correct server never gives (a lying `Content-Length`, say).
    Raw { head: String },
    /// `302 Found` to `location`.
    Redirect { location: String },
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLog {
    /// Request path (`/file.bin`).
    pub path: String,
    /// Raw `Range` header value, if any.
    pub range: Option<String>,
    /// Status answered.
    pub status: u16,
}

struct Route {
    body: Arc<Vec<u8>>,
    fault: Fault,
    hits: u32,
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Route>>,
    log: Mutex<Vec<RequestLog>>,
}

/// Handle to the running server (it lives until the process exits).
pub struct TestServer {
    port: u16,
    state: Arc<State>,
}

impl TestServer {
    /// Binds 127.0.0.1 on a free port and starts accepting.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(State::default());
        let accept_state = Arc::clone(&state);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = Arc::clone(&accept_state);
                thread::spawn(move || handle(stream, &state));
            }
        });
        Self { port, state }
    }

    /// Serves `body` at `path` correctly.
    pub fn serve(&self, path: &str, body: Vec<u8>) {
        self.serve_with(path, body, Fault::None);
    }

    /// Serves `body` at `path` with a fault.
    pub fn serve_with(&self, path: &str, body: Vec<u8>, fault: Fault) {
        self.state.routes.lock().unwrap().insert(
            path.to_string(),
            Route {
                body: Arc::new(body),
                fault,
                hits: 0,
            },
        );
    }

    /// Changes the fault of an existing route (and resets its hit counter).
    pub fn set_fault(&self, path: &str, fault: Fault) {
        let mut routes = self.state.routes.lock().unwrap();
        let route = routes.get_mut(path).expect("route exists");
        route.fault = fault;
        route.hits = 0;
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestLog> {
        self.state.log.lock().unwrap().clone()
    }

    /// Number of requests so far.
    pub fn request_count(&self) -> usize {
        self.state.log.lock().unwrap().len()
    }

    /// Requests for `path` without a `Range` header (full downloads).
    pub fn full_gets(&self, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path == path && r.range.is_none())
            .count()
    }
}

fn handle(mut stream: TcpStream, state: &State) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_string());
            }
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();

    let route = {
        let mut routes = state.routes.lock().unwrap();
        routes.get_mut(&path).map(|r| {
            r.hits += 1;
            (Arc::clone(&r.body), r.fault.clone(), r.hits)
        })
    };
    let log = |status: u16| {
        state.log.lock().unwrap().push(RequestLog {
            path: path.clone(),
            range: range.clone(),
            status,
        })
    };
    let Some((body, fault, hit)) = route else {
        log(404);
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    match &fault {
        Fault::Endless => {
            log(200);
            if stream
                .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                .is_err()
            {
                return;
            }
            let zeros = vec![0u8; 64 << 10];
            while stream.write_all(&zeros).is_ok() {}
            return;
        }
        Fault::NoLength => {
            log(200);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(&body);
            let _ = stream.shutdown(Shutdown::Write);
            return;
        }
        Fault::Raw { head } => {
            log(head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0));
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
            let _ = stream.flush();
            let _ = stream.shutdown(Shutdown::Write);
            return;
        }
        Fault::Redirect { location } => {
            log(302);
            let _ = write!(
                stream,
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return;
        }
        _ => {}
    }
    if let Fault::ServerError { times } = fault {
        if hit <= times {
            log(500);
            let _ = stream.write_all(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops",
            );
            return;
        }
    }
    let len = body.len() as u64;
    let start = match (&fault, range.as_deref().and_then(parse_range_start)) {
        (Fault::IgnoreRange, _) | (_, None) => None,
        (_, Some(start)) => Some(start),
    };
    if let Some(start) = start {
        if start >= len {
            log(416);
            let _ = write!(
                stream,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return;
        }
    }
    let from = start.unwrap_or(0);
    let head = match start {
        Some(s) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\nContent-Length: {}\r\n",
            len - 1,
            len - s
        ),
        None => format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n"),
    };
    log(if start.is_some() { 206 } else { 200 });
    let head = format!(
        "{head}Accept-Ranges: bytes\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut end = len;
    let mut pause = None;
    match fault {
        Fault::DropAt { at, times } if hit <= times => end = at.clamp(from, len),
        Fault::Stall {
            at,
            pause: p,
            times,
        } if hit <= times => {
            end = at.clamp(from, len);
            pause = Some(p);
        }
        _ => {}
    }
    let (chunk, delay) = match fault {
        Fault::Throttle { chunk, delay } => (chunk.max(1), Some(delay)),
        _ => (1 << 20, None),
    };
    let wrong = fault == Fault::WrongBytes;
    let mut pos = from as usize;
    let end = end as usize;
    let mut scratch = Vec::new();
    while pos < end {
        let next = (pos + chunk).min(end);
        let slice = &body[pos..next];
        let result = if wrong {
            scratch.clear();
            scratch.extend(slice.iter().map(|b| b ^ 0xFF));
            stream.write_all(&scratch)
        } else {
            stream.write_all(slice)
        };
        if result.is_err() {
            return;
        }
        pos = next;
        if let Some(d) = delay {
            thread::sleep(d);
        }
    }
    let _ = stream.flush();
    if let Some(p) = pause {
        thread::sleep(p);
    }
    let _ = stream.shutdown(Shutdown::Write);
}

fn parse_range_start(value: &str) -> Option<u64> {
    let spec = value.strip_prefix("bytes=")?;
    let (start, _) = spec.split_once('-')?;
    start.trim().parse().ok()
}
