//! The raw shared-memory baselines: the transport's rings with no station in the way, two
//! processes, both spinning (the best the rings can do).

use std::time::{Duration, Instant};

use tamtam_transports::shm::{ShmConfig, ShmLink, ShmListener};

use super::{Args, Control, say, stopping};
use crate::measure::{self, Latency};

/// Longest wait for one echo, or for the peer to attach.
const WAIT: Duration = Duration::from_secs(10);
/// Frames written between publishes in the throughput baseline (a station publishes once
/// per cycle).
const PUBLISH_EVERY: usize = 32;

fn config(args: &Args) -> Result<ShmConfig, String> {
    Ok(ShmConfig {
        ring_bytes: args.num("ring-bytes", 1u32 << 20)?,
        frame_len_max: 4096,
        ..ShmConfig::default()
    })
}

/// Accepts one link, giving up when the parent stops us or after [`WAIT`].
fn accept(listener: &mut ShmListener) -> Result<Option<ShmLink>, String> {
    let deadline = Instant::now() + WAIT * 6;
    while Instant::now() < deadline && !stopping() {
        match listener.accept_link() {
            Ok(Some(link)) => return Ok(Some(link)),
            Ok(None) => std::thread::sleep(Duration::from_micros(200)),
            Err(e) => return Err(format!("accept: {e}")),
        }
    }
    Ok(None)
}

/// A frame of `size` bytes (at least a frame header's 48: the ring checks lengths only).
fn frame(size: usize) -> Vec<u8> {
    vec![0x5a; size.max(48)]
}

/// `raw-shm-echo --name NAME --size N`: listens as NAME, answers every frame, spinning.
pub(super) fn echo(args: &Args, _control: &Control) -> Result<(), String> {
    let name = args.required("name")?;
    let mut listener = ShmListener::bind(name, &config(args)?).map_err(|e| format!("bind: {e}"))?;
    say(format!("READY {name}"));
    let Some(mut link) = accept(&mut listener)? else {
        return Ok(());
    };
    let answer = frame(args.num("size", 64)?);
    let mut spins = 0u32;
    while !stopping() {
        let n = link
            .read(64, &mut |f| {
                std::hint::black_box(f);
            })
            .map_err(|e| format!("read: {e}"))?;
        for _ in 0..n {
            let deadline = Instant::now() + WAIT;
            while !link.send_now(&answer) {
                if Instant::now() > deadline {
                    return Err("echo: ring stayed full".into());
                }
                std::hint::spin_loop();
            }
        }
        // Look at the stop flag only now and then: it is a shared atomic too.
        spins = spins.wrapping_add(1);
        if n == 0 && spins % 1024 == 0 && stopping() {
            break;
        }
    }
    Ok(())
}

/// `raw-shm-ping --peer NAME --size N --warmup N --samples N`: round trips through the echo,
/// spinning; prints `MARK start`, `MARK end`, `LAT …`.
pub(super) fn ping(args: &Args, control: &Control) -> Result<(), String> {
    let name = args.required("peer")?;
    let warmup: u64 = args.num("warmup", 1000)?;
    let samples: u64 = args.num("samples", 10_000)?;
    let mut link = ShmLink::connect(name, &config(args)?).map_err(|e| format!("connect: {e}"))?;
    let request = frame(args.num("size", 64)?);
    let mut histogram = measure::histogram();
    for i in 0..warmup + samples {
        if i == warmup {
            say("MARK start");
        }
        let t = Instant::now();
        if !link.send_now(&request) {
            return Err("ping: ring full".into());
        }
        let deadline = t + WAIT;
        loop {
            let n = link
                .read(1, &mut |f| {
                    std::hint::black_box(f);
                })
                .map_err(|e| format!("read: {e}"))?;
            if n == 1 {
                break;
            }
            if Instant::now() > deadline {
                return Err("ping: no echo".into());
            }
            std::hint::spin_loop();
        }
        if i >= warmup {
            measure::record(&mut histogram, t.elapsed().as_nanos() as u64);
        }
    }
    say("MARK end");
    say(format!("LAT {}", Latency::of(&histogram).to_line()));
    // The link stays open until the parent is done, so the echo is still there to measure.
    control.serve_until_closed(|_| None);
    Ok(())
}

/// `raw-shm-sink --name NAME`: listens as NAME and reads everything, spinning.
pub(super) fn sink(args: &Args, _control: &Control) -> Result<(), String> {
    let name = args.required("name")?;
    let mut listener = ShmListener::bind(name, &config(args)?).map_err(|e| format!("bind: {e}"))?;
    say(format!("READY {name}"));
    let Some(mut link) = accept(&mut listener)? else {
        return Ok(());
    };
    let mut idle = 0u32;
    while !stopping() {
        let n = link
            .read(1024, &mut |f| {
                std::hint::black_box(f);
            })
            .map_err(|e| format!("read: {e}"))?;
        idle = if n == 0 { idle.wrapping_add(1) } else { 0 };
        if idle > 0 && idle % 1024 == 0 && stopping() {
            break;
        }
    }
    Ok(())
}

/// `raw-shm-source --peer NAME --size N --warmup-ms --window-ms --windows`: writes frames back
/// to back, publishing every [`PUBLISH_EVERY`], spinning when the ring is full; prints
/// `MARK start`, one `VAL <msgs/s>` per window, `MARK end`.
pub(super) fn source(args: &Args, control: &Control) -> Result<(), String> {
    let name = args.required("peer")?;
    let warmup = args.millis("warmup-ms", 300)?;
    let window = args.millis("window-ms", 1000)?;
    let windows: usize = args.num("windows", 1)?;
    let mut link = ShmLink::connect(name, &config(args)?).map_err(|e| format!("connect: {e}"))?;
    let payload = frame(args.num("size", 64)?);
    let start = Instant::now();
    let limit = warmup + window * (windows as u32 + 2) + Duration::from_secs(30);
    let mut sent = 0u64;
    let mut window_start: Option<(Instant, u64)> = None;
    let mut done = 0usize;
    while done < windows && !stopping() {
        for _ in 0..PUBLISH_EVERY {
            if link.write(&payload) {
                sent += 1;
            } else {
                break;
            }
        }
        link.publish();
        let now = Instant::now();
        match window_start {
            None if now - start >= warmup => {
                say("MARK start");
                window_start = Some((now, sent));
            }
            Some((t0, s0)) if now - t0 >= window => {
                say(format!(
                    "VAL {}",
                    (sent - s0) as f64 / (now - t0).as_secs_f64()
                ));
                done += 1;
                window_start = Some((now, sent));
            }
            _ => {}
        }
        if now - start > limit {
            return Err("source ran past its time limit".into());
        }
    }
    say("MARK end");
    control.serve_until_closed(|_| None);
    Ok(())
}
