//! The raw baselines: what the hardware and kernel do with no engine in the way, measured
//! the same way as TamTam (same sizes, same processes, same histograms).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use super::{Args, Control, say, stopping};
use crate::measure::{self, Latency};

/// Longest wait for one echo before a ping-pong gives up.
const ECHO_WAIT: Duration = Duration::from_secs(10);
/// Bytes per write of the streaming baselines.
const CHUNK: usize = 64 * 1024;
/// Length prefix of the batched baseline.
const PREFIX: usize = 4;

fn err(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Accepts one connection on `listener`, giving up when the parent stops us or after a minute.
fn accept_one(listener: &TcpListener) -> Result<Option<TcpStream>, String> {
    listener
        .set_nonblocking(true)
        .map_err(err("set_nonblocking"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !stopping() {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).map_err(err("blocking"))?;
                stream.set_nodelay(true).map_err(err("nodelay"))?;
                return Ok(Some(stream));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    }
    Ok(None)
}

/// Fills `buffer` from `stream`; Ok(false) on end of stream (or when the parent stops us).
/// With `busy`, the socket is non-blocking and this spins.
fn read_full(stream: &mut impl Read, buffer: &mut [u8], deadline: Instant) -> Result<bool, String> {
    let mut done = 0;
    while done < buffer.len() {
        match stream.read(&mut buffer[done..]) {
            Ok(0) => return Ok(false),
            Ok(n) => done += n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if stopping() || Instant::now() > deadline {
                    return Ok(false);
                }
            }
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(true)
}

fn write_full(stream: &mut impl Write, mut buffer: &[u8]) -> Result<(), String> {
    let deadline = Instant::now() + ECHO_WAIT;
    while !buffer.is_empty() {
        match stream.write(buffer) {
            Ok(0) => return Err("write: connection closed".into()),
            Ok(n) => buffer = &buffer[n..],
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                if Instant::now() > deadline {
                    return Err("write: stalled".into());
                }
            }
            Err(e) => return Err(format!("write: {e}")),
        }
    }
    Ok(())
}

/// `raw-echo --proto tcp|udp --busy 0|1 --size N`: echoes every message back.
pub(super) fn echo(args: &Args, _control: &Control) -> Result<(), String> {
    let busy = args.flag("busy");
    let size: usize = args.num("size", 64)?;
    let mut buffer = vec![0u8; size.max(1)];
    match args.str("proto", "tcp") {
        "tcp" => {
            let listener = TcpListener::bind("127.0.0.1:0").map_err(err("bind"))?;
            say(format!(
                "READY {}",
                listener.local_addr().map_err(err("addr"))?
            ));
            let Some(mut stream) = accept_one(&listener)? else {
                return Ok(());
            };
            if busy {
                stream.set_nonblocking(true).map_err(err("nonblocking"))?;
            } else {
                stream
                    .set_read_timeout(Some(Duration::from_millis(100)))
                    .map_err(err("timeout"))?;
            }
            let far = Instant::now() + super::LIFETIME_MAX;
            while read_full(&mut stream, &mut buffer, far)? {
                write_full(&mut stream, &buffer)?;
            }
            Ok(())
        }
        "udp" => {
            let socket = UdpSocket::bind("127.0.0.1:0").map_err(err("bind"))?;
            say(format!(
                "READY {}",
                socket.local_addr().map_err(err("addr"))?
            ));
            if busy {
                socket.set_nonblocking(true).map_err(err("nonblocking"))?;
            } else {
                socket
                    .set_read_timeout(Some(Duration::from_millis(100)))
                    .map_err(err("timeout"))?;
            }
            while !stopping() {
                match socket.recv_from(&mut buffer) {
                    Ok((n, from)) => {
                        let _ = socket.send_to(&buffer[..n], from);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) => {}
                    Err(e) => return Err(format!("recv: {e}")),
                }
            }
            Ok(())
        }
        other => Err(format!("unknown --proto {other}")),
    }
}

/// `raw-ping --proto tcp|udp --busy 0|1 --peer ADDR --size N --warmup N --samples N`: the
/// ping-pong client; prints `MARK start`, `MARK end` and `LAT …`.
pub(super) fn ping(args: &Args, control: &Control) -> Result<(), String> {
    let busy = args.flag("busy");
    let size: usize = args.num("size", 64)?;
    let warmup: u64 = args.num("warmup", 1000)?;
    let samples: u64 = args.num("samples", 10_000)?;
    let peer: SocketAddr = args
        .required("peer")?
        .parse()
        .map_err(|e| format!("--peer: {e}"))?;
    let mut histogram = measure::histogram();
    let mut out = vec![0x5au8; size.max(1)];
    let mut back = vec![0u8; size.max(1)];
    let mut lost = 0u64;
    // Kept open until the parent is done, so the echo process is still there to be measured.
    let mut keep: Option<TcpStream> = None;
    match args.str("proto", "tcp") {
        "tcp" => {
            let stream = keep.insert(TcpStream::connect(peer).map_err(err("connect"))?);
            stream.set_nodelay(true).map_err(err("nodelay"))?;
            if busy {
                stream.set_nonblocking(true).map_err(err("nonblocking"))?;
            } else {
                stream
                    .set_read_timeout(Some(Duration::from_millis(200)))
                    .map_err(err("timeout"))?;
            }
            for i in 0..warmup + samples {
                if i == warmup {
                    say("MARK start");
                }
                out[0] = i as u8;
                let t = Instant::now();
                write_full(stream, &out)?;
                if !read_full(stream, &mut back, t + ECHO_WAIT)? {
                    return Err("echo server closed or stalled".into());
                }
                if i >= warmup {
                    measure::record(&mut histogram, t.elapsed().as_nanos() as u64);
                }
            }
        }
        "udp" => {
            let socket = UdpSocket::bind("127.0.0.1:0").map_err(err("bind"))?;
            socket.connect(peer).map_err(err("connect"))?;
            if busy {
                socket.set_nonblocking(true).map_err(err("nonblocking"))?;
            } else {
                socket
                    .set_read_timeout(Some(Duration::from_millis(200)))
                    .map_err(err("timeout"))?;
            }
            let mut i = 0u64;
            let attempts_max = (warmup + samples) * 2 + 100;
            let mut attempts = 0u64;
            while i < warmup + samples && attempts < attempts_max {
                attempts += 1;
                if i == warmup {
                    say("MARK start");
                }
                out[..8].copy_from_slice(&i.to_le_bytes());
                let t = Instant::now();
                socket.send(&out).map_err(err("send"))?;
                let deadline = t + Duration::from_millis(200);
                let got = loop {
                    match socket.recv(&mut back) {
                        Ok(n) if n >= 8 && back[..8] == out[..8] => break true,
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::WouldBlock
                                    | ErrorKind::TimedOut
                                    | ErrorKind::Interrupted
                            ) =>
                        {
                            if Instant::now() > deadline {
                                break false;
                            }
                        }
                        Err(e) => return Err(format!("recv: {e}")),
                    }
                };
                if !got {
                    lost += 1;
                    continue;
                }
                if i >= warmup {
                    measure::record(&mut histogram, t.elapsed().as_nanos() as u64);
                }
                i += 1;
            }
        }
        other => return Err(format!("unknown --proto {other}")),
    }
    say("MARK end");
    say(format!("VAL lost {lost}"));
    say(format!("LAT {}", Latency::of(&histogram).to_line()));
    control.serve_until_closed(|_| None);
    drop(keep);
    Ok(())
}

/// Encodes `count` length-prefixed messages of `payload` into `out`.
fn encode_batch(out: &mut Vec<u8>, payload: &[u8], count: usize, first: u64) {
    out.clear();
    let prefix = (payload.len() as u32).to_le_bytes();
    for i in 0..count {
        out.extend_from_slice(&prefix);
        let start = out.len();
        out.extend_from_slice(payload);
        out[start] = (first as usize + i) as u8;
    }
}

/// `raw-sink --mode stream|batched`: accepts one connection and reads (and, batched, splits
/// length-prefixed messages) until it closes; prints `VAL <messages> <bytes>`.
pub(super) fn sink(args: &Args, _control: &Control) -> Result<(), String> {
    let batched = args.str("mode", "stream") == "batched";
    let listener = TcpListener::bind("127.0.0.1:0").map_err(err("bind"))?;
    say(format!(
        "READY {}",
        listener.local_addr().map_err(err("addr"))?
    ));
    let Some(mut stream) = accept_one(&listener)? else {
        return Ok(());
    };
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(err("timeout"))?;
    let mut buffer = vec![0u8; 256 * 1024];
    let (mut messages, mut bytes) = (0u64, 0u64);
    // Batched: bytes still to skip in the current body, or prefix bytes gathered so far.
    let mut body_left = 0usize;
    let mut prefix = [0u8; PREFIX];
    let mut prefix_have = 0usize;
    let mut checksum = 0u8;
    while !stopping() {
        let n = match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => return Err(format!("read: {e}")),
        };
        bytes += n as u64;
        if !batched {
            continue;
        }
        let mut pos = 0;
        while pos < n {
            if body_left > 0 {
                let take = body_left.min(n - pos);
                checksum ^= buffer[pos];
                pos += take;
                body_left -= take;
                continue;
            }
            prefix[prefix_have] = buffer[pos];
            prefix_have += 1;
            pos += 1;
            if prefix_have == PREFIX {
                prefix_have = 0;
                body_left = u32::from_le_bytes(prefix) as usize;
                messages += 1;
            }
        }
    }
    say(format!("VAL {messages} {bytes} {checksum}"));
    Ok(())
}

/// `raw-source --peer ADDR --mode stream|batched --size N --warmup-ms --window-ms --windows`:
/// writes 64 KiB chunks (stream) or batches of freshly encoded length-prefixed messages as
/// fast as the socket takes them; prints `MARK start`, one `VAL <msgs/s> <bytes/s>` per
/// window, `MARK end`.
pub(super) fn source(args: &Args, control: &Control) -> Result<(), String> {
    let batched = args.str("mode", "stream") == "batched";
    let size: usize = args.num("size", 64)?;
    let warmup = args.millis("warmup-ms", 300)?;
    let window = args.millis("window-ms", 1000)?;
    let windows: usize = args.num("windows", 1)?;
    let peer: SocketAddr = args
        .required("peer")?
        .parse()
        .map_err(|e| format!("--peer: {e}"))?;
    let mut stream = TcpStream::connect(peer).map_err(err("connect"))?;
    stream.set_nodelay(true).map_err(err("nodelay"))?;
    let payload = vec![0x42u8; size.max(1)];
    let per_batch = if batched {
        CHUNK / (PREFIX + payload.len())
    } else {
        0
    };
    let mut out = vec![0u8; CHUNK];
    let (mut messages, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    let mut window_start: Option<(Instant, u64, u64)> = None;
    let mut done = 0usize;
    while done < windows && !stopping() {
        if batched {
            encode_batch(&mut out, &payload, per_batch, messages);
            messages += per_batch as u64;
        }
        write_full(&mut stream, &out)?;
        bytes += out.len() as u64;
        let now = Instant::now();
        match window_start {
            None if now - start >= warmup => {
                say("MARK start");
                window_start = Some((now, messages, bytes));
            }
            Some((t0, m0, b0)) if now - t0 >= window => {
                let secs = (now - t0).as_secs_f64();
                say(format!(
                    "VAL {} {}",
                    (messages - m0) as f64 / secs,
                    (bytes - b0) as f64 / secs
                ));
                done += 1;
                window_start = Some((now, messages, bytes));
            }
            _ => {}
        }
        if now - start > warmup + window * (windows as u32 + 2) + Duration::from_secs(30) {
            return Err("source ran past its time limit".into());
        }
    }
    say("MARK end");
    drop(stream);
    control.serve_until_closed(|_| None);
    Ok(())
}

type Ring = (rtrb::Producer<[u8; 64]>, rtrb::Consumer<[u8; 64]>);

/// `raw-thread-rtt --warmup N --samples N`: two threads in this process pass a 64-byte
/// message back and forth through a pair of SPSC rings, both spinning.
pub(super) fn thread_rtt(args: &Args, control: &Control) -> Result<(), String> {
    let warmup: u64 = args.num("warmup", 1000)?;
    let samples: u64 = args.num("samples", 10_000)?;
    let (mut to_echo, mut echo_in): Ring = rtrb::RingBuffer::new(16);
    let (mut echo_out, mut back): Ring = rtrb::RingBuffer::new(16);
    let stop = Arc::new(AtomicBool::new(false));
    let echo_stop = stop.clone();
    let echo = std::thread::spawn(move || {
        while !echo_stop.load(Ordering::Relaxed) {
            if let Ok(message) = echo_in.pop() {
                while echo_out.push(message).is_err() {
                    std::hint::spin_loop();
                }
            } else {
                std::hint::spin_loop();
            }
        }
    });
    let mut histogram = measure::histogram();
    let mut message = [0u8; 64];
    let mut result = Ok(());
    'outer: for i in 0..warmup + samples {
        if i == warmup {
            say("MARK start");
        }
        message[0] = i as u8;
        let t = Instant::now();
        let _ = to_echo.push(message);
        let mut spins = 0u64;
        loop {
            if back.pop().is_ok() {
                break;
            }
            spins += 1;
            if spins % 65_536 == 0 && t.elapsed() > ECHO_WAIT {
                result = Err("cross-thread echo stalled".to_owned());
                break 'outer;
            }
            std::hint::spin_loop();
        }
        if i >= warmup {
            measure::record(&mut histogram, t.elapsed().as_nanos() as u64);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = echo.join();
    result?;
    say("MARK end");
    say(format!("LAT {}", Latency::of(&histogram).to_line()));
    control.serve_until_closed(|_| None);
    Ok(())
}

/// `raw-thread-tput --warmup-ms --window-ms --windows`: one thread pushes 64-byte messages
/// into an SPSC ring as fast as the other pops them; prints `VAL <msgs/s>` per window.
pub(super) fn thread_tput(args: &Args, control: &Control) -> Result<(), String> {
    let warmup = args.millis("warmup-ms", 300)?;
    let window = args.millis("window-ms", 1000)?;
    let windows: usize = args.num("windows", 1)?;
    let (mut producer, mut consumer): Ring = rtrb::RingBuffer::new(4096);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let (p_stop, c_stop, c_count) = (stop.clone(), stop.clone(), count.clone());
    let push = std::thread::spawn(move || {
        let mut message = [0u8; 64];
        let mut i = 0u64;
        while !p_stop.load(Ordering::Relaxed) {
            message[0] = i as u8;
            if producer.push(message).is_ok() {
                i += 1;
            } else {
                std::hint::spin_loop();
            }
        }
    });
    let pop = std::thread::spawn(move || {
        let mut local = 0u64;
        let mut sum = 0u8;
        while !c_stop.load(Ordering::Relaxed) {
            match consumer.pop() {
                Ok(message) => {
                    sum ^= message[0];
                    local += 1;
                    if local % 1024 == 0 {
                        c_count.store(local, Ordering::Relaxed);
                    }
                }
                Err(_) => std::hint::spin_loop(),
            }
        }
        std::hint::black_box(sum);
    });
    std::thread::sleep(warmup);
    say("MARK start");
    for _ in 0..windows {
        let (c0, t0) = (count.load(Ordering::Relaxed), Instant::now());
        std::thread::sleep(window);
        let (c1, t1) = (count.load(Ordering::Relaxed), Instant::now());
        say(format!(
            "VAL {} {}",
            (c1 - c0) as f64 / (t1 - t0).as_secs_f64(),
            (c1 - c0) as f64 * 64.0 / (t1 - t0).as_secs_f64()
        ));
    }
    say("MARK end");
    stop.store(true, Ordering::Relaxed);
    let _ = push.join();
    let _ = pop.join();
    control.serve_until_closed(|_| None);
    Ok(())
}

/// `raw-file-recv --out PATH`: accepts one connection, writes everything it reads to PATH,
/// `fdatasync`s at the end of the stream and prints `VAL <bytes> <seconds>` (from the first
/// byte to durable).
pub(super) fn file_recv(args: &Args, control: &Control) -> Result<(), String> {
    let path = args.required("out")?;
    let listener = TcpListener::bind("127.0.0.1:0").map_err(err("bind"))?;
    say(format!(
        "READY {}",
        listener.local_addr().map_err(err("addr"))?
    ));
    let Some(mut stream) = accept_one(&listener)? else {
        return Ok(());
    };
    let mut file = std::fs::File::create(path).map_err(err("create"))?;
    let mut buffer = vec![0u8; CHUNK];
    let mut bytes = 0u64;
    let mut first: Option<Instant> = None;
    loop {
        let n = stream.read(&mut buffer).map_err(err("read"))?;
        if n == 0 {
            break;
        }
        first.get_or_insert_with(Instant::now);
        file.write_all(&buffer[..n]).map_err(err("write"))?;
        bytes += n as u64;
    }
    file.sync_data().map_err(err("fdatasync"))?;
    let secs = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    say(format!("VAL {bytes} {secs}"));
    control.serve_until_closed(|_| None);
    Ok(())
}

/// `raw-file-send --peer ADDR --file PATH`: streams PATH to ADDR in 64 KiB reads and writes.
pub(super) fn file_send(args: &Args, control: &Control) -> Result<(), String> {
    let peer: SocketAddr = args
        .required("peer")?
        .parse()
        .map_err(|e| format!("--peer: {e}"))?;
    let mut file = std::fs::File::open(args.required("file")?).map_err(err("open"))?;
    let mut stream = TcpStream::connect(peer).map_err(err("connect"))?;
    let mut buffer = vec![0u8; CHUNK];
    say("MARK start");
    loop {
        let n = file.read(&mut buffer).map_err(err("read"))?;
        if n == 0 {
            break;
        }
        stream.write_all(&buffer[..n]).map_err(err("send"))?;
    }
    drop(stream);
    say("MARK end");
    control.serve_until_closed(|_| None);
    Ok(())
}
