//! Goal: the WebSocket transport interoperates with independent clients. Method: a station
//! with a WebSocket listener serves an echo (port 2001, whose replies are ACK-required) and a
//! recorder (port 2000).
//!
//! - **Python** (`websockets` from PyPI): `tests/ws_client.py` connects, sends a heartbeat
//!   and an ACK-required request built here (hex on its command line), checks the station's
//!   ACK and the reply with its own frame decoder (CRC32C included), acknowledges the reply
//!   with an ACK frame it encodes itself, and closes cleanly.
//! - **Chromium** (Debian's `chromium`, headless): a page served here opens a WebSocket,
//!   sends the same kind of request, checks the reply in JavaScript (its own CRC32C),
//!   acknowledges it, and sends a second fast-lane message carrying the reply it got; the
//!   test waits for that message at the recorder.
//!
//! Fast-lane messages cross both ways, with ACKs both ways. Each test skips, saying why, when
//! its tool is missing (`.ci/run` installs both).

mod kit;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kit::{WAIT, heartbeat, temp, wait_until};
use tamtam_engine::core::wire::frame::{Flags, Header, Lane, PacketType, encode_to_vec};
use tamtam_engine::core::{Context, Message};
use tamtam_engine::driver::Station;
use tamtam_transports::websocket::{WsConfig, WsListener};

type Seen = Arc<Mutex<Vec<Vec<u8>>>>;

/// A station with a WebSocket listener, an echo on 2001 and a recorder on 2000.
fn station(name: &str) -> (Station, std::net::SocketAddr, Seen, std::path::PathBuf) {
    let dir = temp(name);
    let seen: Seen = Arc::default();
    let recorded = seen.clone();
    let listener = WsListener::bind("127.0.0.1:0".parse().unwrap(), &WsConfig::default()).unwrap();
    let addr = listener.local_addr();
    let station = Station::builder()
        .id(2)
        .spool_dir(dir.join("spool"))
        .listener(Box::new(listener))
        .serve(2001, |ctx: &mut Context<'_>, m: &Message<'_>| {
            let mut answer = b"echo:".to_vec();
            answer.extend_from_slice(m.payload);
            ctx.reply(m, answer);
        })
        .serve(2000, move |_: &mut Context<'_>, m: &Message<'_>| {
            recorded.lock().unwrap().push(m.payload.to_vec())
        })
        .build()
        .unwrap();
    (station, addr, seen, dir)
}

/// An ACK-required request from station `sender` (epoch 7, channel sequence 0) to 2001.
fn request(sender: u32, payload: &[u8]) -> Vec<u8> {
    let header = Header {
        flags: Flags::ACK_REQUIRED,
        sender_id: sender,
        recipient_id: 2,
        recipient_port: 2001,
        sender_port: 900,
        route_id: 4242,
        request_id: 7 << 32,
        sequence: 0,
        hop_limit: 8,
        ..Header::new(Lane::Fast, PacketType::Data)
    };
    encode_to_vec(&header, payload).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn python_has_websockets() -> Result<(), String> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import websockets, sys; print(websockets.__version__)",
        ])
        .output()
        .map_err(|e| format!("python3 not runnable: {e}"))?;
    if !output.status.success() {
        return Err("python3 has no `websockets` module (pip install websockets)".into());
    }
    eprintln!(
        "python websockets {}",
        String::from_utf8_lossy(&output.stdout).trim()
    );
    Ok(())
}

#[test]
fn python_websockets_client_exchanges_fast_messages_both_ways() {
    if let Err(why) = python_has_websockets() {
        eprintln!("SKIPPED python_websockets_client: {why}");
        return;
    }
    let (station, addr, _seen, dir) = station("py");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/ws_client.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(format!("ws://{addr}/"))
        .arg("2")
        .arg(hex(&heartbeat(77)))
        .arg(hex(&request(77, b"hello-from-python")))
        .arg(hex(b"echo:hello-from-python"))
        .stdin(Stdio::null())
        .output()
        .expect("run ws_client.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ws_client.py failed: {}\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    assert_eq!(
        stdout.trim(),
        format!("OK {}", hex(b"echo:hello-from-python"))
    );
    // The reply (station → Python) was acknowledged by Python's own ACK frame.
    wait_until("the reply's ACK from python", || {
        station.stats().unwrap().acked >= 1
    });
    let stats = station.stats().unwrap();
    assert!(stats.acks_sent >= 1, "the station acknowledged the request");
    assert_eq!(stats.frames_malformed, 0);
    station.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The page: a TamTam frame codec in JavaScript, written from `spec/wire/Frame-v1.md`.
const PAGE: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>tamtam</title></head>
<body><pre id="log">starting</pre><script>
const log = (s) => { document.getElementById('log').textContent += '\n' + s; };
const table = new Uint32Array(256);
for (let n = 0; n < 256; n++) { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82F63B78 : c >>> 1; table[n] = c >>> 0; }
function crc32c(bytes, crc) { crc = (crc ^ 0xFFFFFFFF) >>> 0; for (const b of bytes) crc = (table[(crc ^ b) & 0xFF] ^ (crc >>> 8)) >>> 0; return (crc ^ 0xFFFFFFFF) >>> 0; }
function frameCrc(f) { return crc32c(f.subarray(48), crc32c(f.subarray(0, 44), 0)); }
function hexBytes(h) { const out = new Uint8Array(h.length / 2); for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(2 * i, 2), 16); return out; }
function encode(type, flags, sender, recipient, port, requestHi, requestLo, sequence, payload) {
  const f = new Uint8Array(48 + payload.length); const v = new DataView(f.buffer);
  v.setUint16(0, 0x5454, true); f[2] = 1; f[3] = 0; f[4] = type; f[5] = 0; v.setUint16(6, flags, true);
  v.setUint32(8, sender, true); v.setUint32(12, recipient, true); v.setUint16(16, port, true); v.setUint16(18, 901, true);
  v.setUint32(20, 0, true); v.setUint32(24, requestLo, true); v.setUint32(28, requestHi, true);
  v.setUint32(32, sequence, true); f[37] = 8; v.setUint32(40, payload.length, true); f.set(payload, 48);
  v.setUint32(44, frameCrc(f), true); return f;
}
function decode(f) {
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  if (f.length < 48 || v.getUint16(0, true) !== 0x5454 || f[2] !== 1) throw new Error('not a v1 frame');
  if (frameCrc(f) !== v.getUint32(44, true)) throw new Error('CRC32C mismatch');
  const flags = v.getUint16(6, true); const hl = flags & 4 ? 64 : 48;
  return { type: f[4], flags, recipient: v.getUint32(12, true), route: v.getUint32(20, true),
           requestLo: v.getUint32(24, true), requestHi: v.getUint32(28, true), sequence: v.getUint32(32, true),
           payload: f.subarray(hl, hl + v.getUint32(40, true)) };
}
const ws = new WebSocket('ws://__WS__/');
ws.binaryType = 'arraybuffer';
ws.onopen = () => { ws.send(hexBytes('__HEARTBEAT__')); ws.send(hexBytes('__REQUEST__')); log('sent'); };
ws.onerror = () => log('error');
ws.onmessage = (ev) => {
  let f; try { f = decode(new Uint8Array(ev.data)); } catch (e) { log('bad frame: ' + e.message); return; }
  if (f.type !== 0 || !(f.flags & 32) || f.route !== 4242 || f.recipient !== 78) return;
  const text = new TextDecoder().decode(f.payload); log('reply: ' + text);
  if (f.flags & 1) {
    const ack = new Uint8Array(6); const av = new DataView(ack.buffer); av.setUint16(0, 1, true); av.setUint32(2, f.sequence, true);
    ws.send(encode(1, 0, 78, 2, 0, 0, 0, f.requestHi, ack));
  }
  ws.send(encode(0, 1, 78, 2, 2000, 7, 1, 1, new TextEncoder().encode('browser-got:' + text)));
  log('done');
};
</script></body></html>"#;

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

#[test]
fn headless_chromium_exchanges_fast_messages_both_ways() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED headless_chromium: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let (station, addr, seen, dir) = station("chromium");
    let page = PAGE
        .replace("__WS__", &addr.to_string())
        .replace("__HEARTBEAT__", &hex(&heartbeat(78)))
        .replace("__REQUEST__", &hex(&request(78, b"hello-from-chromium")));
    // A one-page HTTP server on loopback.
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let http_addr = http.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in http.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut request = [0u8; 4096];
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let n = stream.read(&mut request).unwrap_or(0);
            let wanted_page = request[..n].starts_with(b"GET / ");
            let (status, body) = if wanted_page {
                ("200 OK", page.as_str())
            } else {
                ("404 Not Found", "")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let profile = dir.join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("http://{http_addr}/"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let expected = b"browser-got:echo:hello-from-chromium".to_vec();
    let deadline = std::time::Instant::now() + WAIT * 2;
    let arrived = loop {
        if seen.lock().unwrap().contains(&expected) {
            break true;
        }
        if std::time::Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = child.kill();
    let output = child.wait_with_output().expect("chromium output");
    assert!(
        arrived,
        "the page's second message never arrived; chromium said:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    wait_until("the reply's ACK from the page", || {
        station.stats().unwrap().acked >= 1
    });
    assert_eq!(station.stats().unwrap().frames_malformed, 0);
    station.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
