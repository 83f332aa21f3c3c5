//! Small real HTTP/1.1 servers on 127.0.0.1:0 speaking the two APIs the translation servers
//! call, for the tests: a fake LibreTranslate (`POST /translate`) and a fake Ollama
//! (`POST /api/generate`, streamed NDJSON). Each connection is served on its own thread and
//! closed after one response (`Connection: close`), which every HTTP client handles.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Longest a fake waits on a gate before it gives up (so a broken test ends, never hangs).
const GATE_WAIT_MAX: Duration = Duration::from_secs(30);
/// Largest request body a fake reads.
const BODY_MAX: usize = 1 << 20;

/// A counting semaphore the test opens to let a fake server go on.
#[derive(Default)]
pub struct Gate {
    permits: Mutex<usize>,
    changed: Condvar,
}

impl Gate {
    /// Lets `n` more waiters through.
    pub fn release(&self, n: usize) {
        *self.permits.lock().unwrap() += n;
        self.changed.notify_all();
    }

    /// Waits for a permit (at most [`GATE_WAIT_MAX`]); false if none came.
    fn pass(&self) -> bool {
        let deadline = Instant::now() + GATE_WAIT_MAX;
        let mut permits = self.permits.lock().unwrap();
        while *permits == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            permits = self.changed.wait_timeout(permits, left).unwrap().0;
        }
        *permits -= 1;
        true
    }
}

/// A parsed request.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut length = 0usize;
    let mut chunked = false;
    for _ in 0..100 {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().ok()?;
        }
        if name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            if size == 0 || body.len() + size > BODY_MAX {
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        if length > BODY_MAX {
            return None;
        }
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(Request { method, path, body })
}

fn respond(mut stream: &TcpStream, status: u16, body: &Value) {
    let body = body.to_string();
    let reason = if status == 200 { "OK" } else { "Error" };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

fn spawn_server(handle: impl Fn(&TcpStream, Request) + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a fake HTTP server");
    let addr = listener.local_addr().unwrap();
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let handle = handle.clone();
            std::thread::spawn(move || {
                if let Some(request) = read_request(&stream) {
                    handle(&stream, request);
                }
            });
        }
    });
    addr
}

/// What the fake LibreTranslate does with a request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LibreMode {
    /// Translate: `[target] TEXT IN UPPER CASE`.
    Translate,
    /// Answer HTTP 500 with `{"error": "model exploded"}`.
    Fail,
}

/// A fake LibreTranslate server.
pub struct FakeLibre {
    /// Its base URL.
    pub url: String,
    calls: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Value>>>,
    /// When set, every translation waits for a permit before it answers.
    pub gate: Option<Arc<Gate>>,
}

impl FakeLibre {
    /// Starts one.
    pub fn start(mode: LibreMode, gated: bool) -> FakeLibre {
        let calls = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let gate = gated.then(|| Arc::new(Gate::default()));
        let (c, r, g) = (calls.clone(), requests.clone(), gate.clone());
        let addr = spawn_server(move |stream, request| {
            if request.method != "POST" || request.path != "/translate" {
                respond(stream, 404, &json!({"error": "not found"}));
                return;
            }
            c.fetch_add(1, Ordering::SeqCst);
            let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
                respond(stream, 400, &json!({"error": "bad json"}));
                return;
            };
            r.lock().unwrap().push(body.clone());
            if mode == LibreMode::Fail {
                respond(stream, 500, &json!({"error": "model exploded"}));
                return;
            }
            if let Some(gate) = &g {
                if !gate.pass() {
                    return;
                }
            }
            let target = body["target"].as_str().unwrap_or("?");
            let q = body["q"].as_str().unwrap_or("");
            let translated = format!("[{target}] {}", q.to_uppercase());
            respond(stream, 200, &json!({ "translatedText": translated }));
        });
        FakeLibre {
            url: format!("http://{addr}"),
            calls,
            requests,
            gate,
        }
    }

    /// Translation calls received.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The JSON bodies received.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

/// The deterministic answer the fake LibreTranslate gives.
pub fn libre_translation(target: &str, text: &str) -> String {
    format!("[{target}] {}", text.to_uppercase())
}

/// A fake Ollama server that streams fixed chunks as NDJSON, one HTTP chunk per line,
/// flushed, each waiting for a permit of its gate first (the final `done` line too).
pub struct FakeOllama {
    /// Its base URL.
    pub url: String,
    /// Opens the way for the next line.
    pub gate: Arc<Gate>,
    written: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl FakeOllama {
    /// Starts one streaming `chunks`.
    pub fn start(chunks: &[&str]) -> FakeOllama {
        let chunks: Vec<String> = chunks.iter().map(|c| c.to_string()).collect();
        let gate = Arc::new(Gate::default());
        let written = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (g, w, r) = (gate.clone(), written.clone(), requests.clone());
        let addr = spawn_server(move |stream, request| {
            if request.method != "POST" || request.path != "/api/generate" {
                respond(stream, 404, &json!({"error": "not found"}));
                return;
            }
            let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
                respond(stream, 400, &json!({"error": "bad json"}));
                return;
            };
            r.lock().unwrap().push(body);
            let mut out = stream;
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            );
            let _ = out.flush();
            let lines = chunks
                .iter()
                .map(|c| json!({"model": "fake", "response": c, "done": false}))
                .chain(std::iter::once(
                    json!({"model": "fake", "response": "", "done": true}),
                ));
            for line in lines {
                if !g.pass() {
                    return;
                }
                // Counted before it is written, so whoever sees the line sees the count.
                w.fetch_add(1, Ordering::SeqCst);
                let line = format!("{line}\n");
                if write!(out, "{:x}\r\n{line}\r\n", line.len()).is_err() || out.flush().is_err() {
                    return;
                }
            }
            let _ = write!(out, "0\r\n\r\n");
            let _ = out.flush();
        });
        FakeOllama {
            url: format!("http://{addr}"),
            gate,
            written,
            requests,
        }
    }

    /// NDJSON lines let through the gate so far (over all requests); each is counted just
    /// before it is written.
    pub fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    /// The JSON bodies received.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

/// A URL where nothing listens (a port bound and released at once).
pub fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}
