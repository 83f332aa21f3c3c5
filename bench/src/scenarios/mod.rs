//! The parent side of every scenario: which children to start, what to wait for, what to
//! record. Each TamTam figure is compared with the raw baseline of the same run.

use std::time::Duration;

use crate::measure::{Latency, median};
use crate::proc::{Child, CpuWindow};
use crate::report::{Report, Target, Unit};
use crate::{Options, Sizes};

mod bulk;

/// Longest wait for a child's `READY` (or any setup step).
const START_WAIT: Duration = Duration::from_secs(60);
/// How long a child may take to exit after its stdin closed.
const EXIT_WAIT: Duration = Duration::from_secs(10);
/// Payload of the small-message figures.
const SMALL: usize = 64;
/// Payload of the 1 KiB figures.
const KIB: usize = 1024;

/// State shared by the scenarios of one run.
pub(crate) struct Run<'a> {
    sizes: Sizes,
    report: &'a mut Report,
}

/// Runs the scenarios `options` selects, adding their figures to `report`.
pub(crate) fn run(options: &Options, report: &mut Report) -> Result<(), String> {
    let mut run = Run {
        sizes: options.profile.sizes(),
        report,
    };
    let only = options.scenario.as_deref();
    for scenario in crate::SCENARIOS {
        if only.is_some_and(|o| o != scenario) {
            continue;
        }
        eprintln!("[{scenario}]");
        match scenario {
            "raw" => raw_all(&mut run)?,
            "fast-rtt" => fast_rtt(&mut run)?,
            "fast-tput" => fast_tput(&mut run)?,
            "shm" => shm(&mut run)?,
            "fanout" => fanout(&mut run)?,
            "bulk" => bulk::run(&mut run)?,
            "stream" => stream(&mut run)?,
            "scale" => scale(&mut run)?,
            _ => unreachable!("checked against SCENARIOS"),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn args(pairs: &[(&str, String)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| [format!("--{k}"), v.clone()])
        .collect()
}

/// Starts a child and waits for its `READY <addr> [backend]`; returns it and the address.
fn spawn_ready(
    run: &mut Run<'_>,
    name: &str,
    role: &str,
    child_args: &[(&str, String)],
) -> Result<(Child, String), String> {
    let mut child = Child::spawn(name, role, &args(child_args))?;
    let ready = child.expect("READY", START_WAIT)?;
    let mut fields = ready.split_whitespace();
    let addr = fields.next().unwrap_or("-").to_owned();
    if let Some(backend) = fields.next() {
        if run.report.backend == "?" {
            run.report.backend = backend.to_owned();
        } else if run.report.backend != backend {
            run.report.note(format!(
                "child {name} used backend {backend}, others {}",
                run.report.backend
            ));
        }
    }
    Ok((child, addr))
}

fn finish(children: Vec<Child>) {
    for child in children {
        child.finish(EXIT_WAIT);
    }
}

/// A timeout generous enough for `samples` round trips (bounded: 20 ms each on average).
fn latency_timeout(sizes: &Sizes, samples: u64) -> Duration {
    START_WAIT + Duration::from_millis(20) * (samples + sizes.warmup) as u32
}

fn window_timeout(sizes: &Sizes) -> Duration {
    START_WAIT + sizes.tput_warmup + sizes.window * (sizes.windows as u32 + 1)
}

/// Waits for `MARK start` … `MARK end` and `LAT` from `children[measurer]`, records the CPU
/// of every child inside the window under `run_key`.
fn measure_latency(
    run: &mut Run<'_>,
    run_key: &str,
    children: &mut [Child],
    measurer: usize,
    samples: u64,
) -> Result<Latency, String> {
    let timeout = latency_timeout(&run.sizes, samples);
    children[measurer].expect("MARK start", timeout)?;
    let window = CpuWindow::start(&children.iter().collect::<Vec<_>>());
    children[measurer].expect("MARK end", timeout)?;
    let (procs, elapsed) = window.end(&children.iter().collect::<Vec<_>>());
    let lat = Latency::parse(&children[measurer].expect("LAT", timeout)?)?;
    run.report.add_processes(run_key, &procs, elapsed);
    eprintln!(
        "  {run_key}: p50 {:.1} us, p99 {:.1} us, p999 {:.1} us ({} samples)",
        lat.p50_us, lat.p99_us, lat.p999_us, lat.count
    );
    Ok(lat)
}

/// What a throughput window run measured.
struct Windows {
    /// First number of each `VAL` line (per window).
    first: Vec<f64>,
    /// Second number of each `VAL` line, if any.
    second: Vec<f64>,
    /// Other `VAL` lines (`VAL stats …`, `VAL refused …`).
    extra: Vec<String>,
    /// CPU seconds of each child inside the window.
    procs: Vec<crate::proc::ProcSample>,
    /// The window's length.
    elapsed: Duration,
}

/// Waits for `MARK start`, the per-window `VAL` lines and `MARK end` from
/// `children[measurer]`, recording the CPU of every child under `run_key`.
fn measure_windows(
    run: &mut Run<'_>,
    run_key: &str,
    children: &mut [Child],
    measurer: usize,
) -> Result<Windows, String> {
    let timeout = window_timeout(&run.sizes);
    children[measurer].expect("MARK start", timeout)?;
    let window = CpuWindow::start(&children.iter().collect::<Vec<_>>());
    let lines = children[measurer].lines_until("MARK end", timeout)?;
    let (procs, elapsed) = window.end(&children.iter().collect::<Vec<_>>());
    let mut extra = Vec::new();
    // Lines printed right after MARK end (stats, refused counts).
    while let Ok(line) = children[measurer].expect("VAL", Duration::from_millis(300)) {
        extra.push(line);
    }
    let mut first = Vec::new();
    let mut second = Vec::new();
    for line in &lines {
        let Some(rest) = line.strip_prefix("VAL ") else {
            continue;
        };
        let numbers: Vec<f64> = rest
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        match numbers.as_slice() {
            [a] => first.push(*a),
            [a, b, ..] => {
                first.push(*a);
                second.push(*b);
            }
            _ => extra.push(rest.to_owned()),
        }
    }
    run.report.add_processes(run_key, &procs, elapsed);
    if first.is_empty() {
        return Err(format!("{run_key}: no window values"));
    }
    Ok(Windows {
        first,
        second,
        extra,
        procs,
        elapsed,
    })
}

/// Adds `<key>_p50`, `_p99`, `_p999` (µs), compared with `<baseline>_p…` when given.
fn add_latency(
    run: &mut Run<'_>,
    key: &str,
    what: &str,
    lat: &Latency,
    baseline: Option<&str>,
    p50: &[Target],
    p99: &[Target],
) {
    for (suffix, value, targets) in [
        ("p50", lat.p50_us, p50),
        ("p99", lat.p99_us, p99),
        ("p999", lat.p999_us, &[][..]),
    ] {
        let figure = run.report.add(
            &format!("{key}_{suffix}"),
            value,
            Unit::Us,
            &format!("{what}, {suffix}"),
        );
        if let Some(base) = baseline {
            figure.with_baseline(&format!("{base}_{suffix}"));
        }
        for t in targets {
            figure.target(*t);
        }
    }
}

fn has(run: &Run<'_>, key: &str) -> bool {
    run.report.get(key).is_some()
}

// ---------------------------------------------------------------------------------------------
// raw
// ---------------------------------------------------------------------------------------------

fn raw_all(run: &mut Run<'_>) -> Result<(), String> {
    raw_rtt(run, "tcp", false)?;
    raw_rtt(run, "tcp", true)?;
    raw_rtt(run, "udp", false)?;
    raw_thread_rtt(run)?;
    raw_stream(run, false)?;
    raw_stream(run, true)?;
    raw_thread_tput(run)?;
    raw_shm_rtt(run)?;
    raw_shm_tput(run)
}

fn raw_rtt_key(proto: &str, busy: bool) -> String {
    format!("raw_{proto}{}_64B_rtt", if busy { "_busy" } else { "" })
}

/// Blocking (or busy-polling) ping-pong of 64 B between two processes.
fn raw_rtt(run: &mut Run<'_>, proto: &str, busy: bool) -> Result<(), String> {
    let key = raw_rtt_key(proto, busy);
    if has(run, &format!("{key}_p50")) {
        return Ok(());
    }
    let busy_arg = if busy { "1" } else { "0" }.to_owned();
    let (server, addr) = spawn_ready(
        run,
        "echo",
        "raw-echo",
        &[
            ("proto", proto.to_owned()),
            ("busy", busy_arg.clone()),
            ("size", SMALL.to_string()),
        ],
    )?;
    let client = Child::spawn(
        "ping",
        "raw-ping",
        &args(&[
            ("proto", proto.to_owned()),
            ("busy", busy_arg),
            ("peer", addr),
            ("size", SMALL.to_string()),
            ("warmup", run.sizes.warmup.to_string()),
            ("samples", run.sizes.samples.to_string()),
        ]),
    )?;
    let mut children = vec![server, client];
    let lat = measure_latency(run, &key, &mut children, 1, run.sizes.samples)?;
    if let Ok(lost) = children[1].expect("VAL lost", Duration::from_millis(200)) {
        if lost != "0" {
            run.report
                .note(format!("{key}: {lost} datagrams lost and resent"));
        }
    }
    finish(children);
    let what = format!(
        "raw {} ping-pong, 64 B, two processes{}",
        proto.to_uppercase(),
        if busy { ", busy-polling" } else { ", blocking" }
    );
    add_latency(run, &key, &what, &lat, None, &[], &[]);
    Ok(())
}

/// 64 B ping-pong between two spinning threads of one process through SPSC rings.
fn raw_thread_rtt(run: &mut Run<'_>) -> Result<(), String> {
    let key = "raw_thread_64B_rtt";
    if has(run, &format!("{key}_p50")) {
        return Ok(());
    }
    let child = Child::spawn(
        "process",
        "raw-thread-rtt",
        &args(&[
            ("warmup", run.sizes.warmup.to_string()),
            ("samples", run.sizes.samples.to_string()),
        ]),
    )?;
    let mut children = vec![child];
    let lat = measure_latency(run, key, &mut children, 0, run.sizes.samples)?;
    finish(children);
    add_latency(
        run,
        key,
        "raw cross-thread ping-pong, 64 B, SPSC rings, spinning",
        &lat,
        None,
        &[],
        &[],
    );
    Ok(())
}

/// Raw TCP streaming with 64 KiB writes, or batches of length-prefixed 64 B messages.
fn raw_stream(run: &mut Run<'_>, batched: bool) -> Result<(), String> {
    let key = if batched {
        "raw_tcp_batched_64B_tput"
    } else {
        "raw_tcp_stream_bw"
    };
    if has(run, key) {
        return Ok(());
    }
    let mode = if batched { "batched" } else { "stream" }.to_owned();
    let (sink, addr) = spawn_ready(run, "reader", "raw-sink", &[("mode", mode.clone())])?;
    let source = Child::spawn(
        "writer",
        "raw-source",
        &args(&[
            ("peer", addr),
            ("mode", mode),
            ("size", SMALL.to_string()),
            ("warmup-ms", run.sizes.tput_warmup.as_millis().to_string()),
            ("window-ms", run.sizes.window.as_millis().to_string()),
            ("windows", run.sizes.windows.to_string()),
        ]),
    )?;
    let mut children = vec![sink, source];
    let w = measure_windows(run, key, &mut children, 1)?;
    finish(children);
    if batched {
        let rate = median(&w.first);
        eprintln!("  {key}: {:.2} M msgs/s", rate / 1e6);
        run.report.add(
            key,
            rate,
            Unit::MsgPerSec,
            "raw TCP, 64 B length-prefixed messages written in 64 KiB batches, split by the reader",
        );
    } else {
        let bw = median(&w.second) / 1e6;
        eprintln!("  {key}: {:.0} MB/s", bw);
        run.report.add(
            key,
            bw,
            Unit::MBps,
            "raw TCP streaming, 64 KiB writes, two processes",
        );
    }
    Ok(())
}

/// 64 B messages from one thread to another through an SPSC ring.
fn raw_thread_tput(run: &mut Run<'_>) -> Result<(), String> {
    let key = "raw_thread_64B_tput";
    if has(run, key) {
        return Ok(());
    }
    let child = Child::spawn(
        "process",
        "raw-thread-tput",
        &args(&[
            ("warmup-ms", run.sizes.tput_warmup.as_millis().to_string()),
            ("window-ms", run.sizes.window.as_millis().to_string()),
            ("windows", run.sizes.windows.to_string()),
        ]),
    )?;
    let mut children = vec![child];
    let w = measure_windows(run, key, &mut children, 0)?;
    finish(children);
    let rate = median(&w.first);
    eprintln!("  {key}: {:.2} M msgs/s", rate / 1e6);
    run.report.add(
        key,
        rate,
        Unit::MsgPerSec,
        "raw cross-thread SPSC ring, 64 B messages",
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// fast-rtt
// ---------------------------------------------------------------------------------------------

/// Request → reply between a `tt-server` and a `tt-client` process.
fn tt_rtt(
    run: &mut Run<'_>,
    key: &str,
    transport: &str,
    spin: bool,
    phase: &str,
) -> Result<Latency, String> {
    tt_rtt_with(
        run,
        key,
        spin,
        phase,
        &[("transport", transport.to_owned())],
    )
}

/// [`tt_rtt`] with `link_args` (`--transport`, and what it needs) given to both processes.
fn tt_rtt_with(
    run: &mut Run<'_>,
    key: &str,
    spin: bool,
    phase: &str,
    link_args: &[(&str, String)],
) -> Result<Latency, String> {
    let spin = if spin { "1" } else { "0" }.to_owned();
    let mut server_args = vec![("listen", "1".to_owned()), ("spin", spin.clone())];
    server_args.extend(link_args.iter().cloned());
    let (server, addr) = spawn_ready(run, "server", "tt-server", &server_args)?;
    let mut client_args = vec![
        ("peer", addr),
        ("spin", spin),
        ("phases", phase.to_owned()),
        ("size", SMALL.to_string()),
        ("warmup", run.sizes.warmup.to_string()),
        ("samples", run.sizes.samples.to_string()),
    ];
    client_args.extend(link_args.iter().filter(|(k, _)| *k != "shm-name").cloned());
    let client = Child::spawn("client", "tt-client", &args(&client_args))?;
    let mut children = vec![server, client];
    let lat = measure_latency(run, key, &mut children, 1, run.sizes.samples)?;
    finish(children);
    Ok(lat)
}

fn fast_rtt(run: &mut Run<'_>) -> Result<(), String> {
    raw_rtt(run, "tcp", false)?;
    raw_rtt(run, "tcp", true)?;
    raw_rtt(run, "udp", false)?;
    raw_thread_rtt(run)?;
    let raw_tcp = raw_rtt_key("tcp", false);
    let p50 = [Target::RatioAtMost(1.2)];
    let p99 = [Target::RatioAtMost(1.5)];

    let key = "fast_tcp_64B_rtt";
    let lat = tt_rtt(run, key, "tcp", false, "rtt")?;
    let what = "fast-lane request→reply, 64 B, TCP, two processes, driven from a handler";
    add_latency(run, key, what, &lat, Some(&raw_tcp), &p50, &p99);

    let key = "fast_tcp_64B_rtt_api";
    let lat = tt_rtt(run, key, "tcp", false, "api-rtt")?;
    let what = "the same through Station::request from an application thread";
    add_latency(run, key, what, &lat, Some(&raw_tcp), &p50, &p99);

    let key = "fast_tcp_spin_64B_rtt";
    let lat = tt_rtt(run, key, "tcp", true, "rtt")?;
    let what = "fast-lane request→reply, 64 B, TCP, busy-polling stations";
    add_latency(
        run,
        key,
        what,
        &lat,
        Some(&raw_rtt_key("tcp", true)),
        &[Target::RatioAtMost(1.3)],
        &[],
    );

    let key = "fast_udp_64B_rtt";
    let lat = tt_rtt(run, key, "udp", false, "rtt")?;
    let what = "fast-lane request→reply, 64 B, UDP, two processes, driven from a handler";
    add_latency(
        run,
        key,
        what,
        &lat,
        Some(&raw_rtt_key("udp", false)),
        &[],
        &[],
    );

    let key = "fast_inproc_64B_rtt";
    let child = Child::spawn(
        "process",
        "tt-inproc",
        &args(&[
            ("phases", "rtt".into()),
            ("size", SMALL.to_string()),
            ("warmup", run.sizes.warmup.to_string()),
            ("samples", run.sizes.samples.to_string()),
        ]),
    )?;
    let mut children = vec![child];
    children[0].expect("READY", START_WAIT)?;
    let lat = measure_latency(run, key, &mut children, 0, run.sizes.samples)?;
    finish(children);
    let what = "fast-lane request→reply, 64 B, two stations on two threads of one process";
    add_latency(
        run,
        key,
        what,
        &lat,
        Some("raw_thread_64B_rtt"),
        &[Target::AtMost(2.0)],
        &[],
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// fast-tput
// ---------------------------------------------------------------------------------------------

fn window_args(sizes: &Sizes) -> Vec<(&'static str, String)> {
    vec![
        ("warmup-ms", sizes.tput_warmup.as_millis().to_string()),
        ("window-ms", sizes.window.as_millis().to_string()),
        ("windows", sizes.windows.to_string()),
    ]
}

/// Notes retransmissions, drops and refusals a sender reported.
fn note_extra(run: &mut Run<'_>, key: &str, extra: &[String]) {
    for line in extra {
        let suspicious = line.split_whitespace().any(|f| {
            ["retransmits=", "dead_lettered=", "link_queue_drops="]
                .iter()
                .any(|p| f.strip_prefix(p).is_some_and(|v| v != "0"))
        });
        if suspicious || (line.starts_with("refused") && line != "refused 0") {
            run.report.note(format!("{key}: {line}"));
        } else {
            eprintln!("  {key}: {line}");
        }
    }
}

/// One-way ACK'd messages between a `tt-client` (sender) and a `tt-server`; returns msgs/s.
fn tt_tput(run: &mut Run<'_>, key: &str, size: usize, phase: &str) -> Result<f64, String> {
    tt_tput_with(run, key, size, phase, &[])
}

/// [`tt_tput`] with `link_args` (`--transport`, and what it needs) given to both processes.
fn tt_tput_with(
    run: &mut Run<'_>,
    key: &str,
    size: usize,
    phase: &str,
    link_args: &[(&str, String)],
) -> Result<f64, String> {
    let mut server_args = vec![("listen", "1".to_owned())];
    server_args.extend(link_args.iter().cloned());
    let (server, addr) = spawn_ready(run, "receiver", "tt-server", &server_args)?;
    let mut client_args = vec![
        ("peer", addr),
        ("phases", phase.to_owned()),
        ("size", size.to_string()),
    ];
    client_args.extend(window_args(&run.sizes));
    client_args.extend(link_args.iter().filter(|(k, _)| *k != "shm-name").cloned());
    let client = Child::spawn("sender", "tt-client", &args(&client_args))?;
    let mut children = vec![server, client];
    let w = measure_windows(run, key, &mut children, 1)?;
    finish(children);
    note_extra(run, key, &w.extra);
    let rate = median(&w.first);
    eprintln!("  {key}: {:.3} M msgs/s", rate / 1e6);
    Ok(rate)
}

fn fast_tput(run: &mut Run<'_>) -> Result<(), String> {
    raw_stream(run, false)?;
    raw_stream(run, true)?;
    raw_thread_tput(run)?;

    let rate = tt_tput(run, "fast_tcp_64B_tput", SMALL, "pump")?;
    run.report
        .add(
            "fast_tcp_64B_tput",
            rate,
            Unit::MsgPerSec,
            "one-way fast-lane 64 B with ACK, pipelined from a handler, TCP, two processes",
        )
        .with_baseline("raw_tcp_batched_64B_tput")
        .target(Target::AtLeast(10e6))
        .target(Target::RatioAtLeast(0.35));
    run.report
        .add(
            "fast_tcp_64B_tput_mbps",
            rate * SMALL as f64 / 1e6,
            Unit::MBps,
            "the same in payload MB/s",
        )
        .with_baseline("raw_tcp_stream_bw");

    let rate = tt_tput(run, "fast_tcp_64B_tput_api", SMALL, "api-pump")?;
    run.report
        .add(
            "fast_tcp_64B_tput_api",
            rate,
            Unit::MsgPerSec,
            "the same sent with Station::send from an application thread",
        )
        .with_baseline("raw_tcp_batched_64B_tput");

    let rate = tt_tput(run, "fast_tcp_1KiB_tput", KIB, "pump")?;
    run.report.add(
        "fast_tcp_1KiB_tput",
        rate,
        Unit::MsgPerSec,
        "one-way fast-lane 1 KiB with ACK, pipelined, TCP, two processes",
    );
    run.report
        .add(
            "fast_tcp_1KiB_tput_mbps",
            rate * KIB as f64 / 1e6,
            Unit::MBps,
            "the same in payload MB/s",
        )
        .with_baseline("raw_tcp_stream_bw")
        .target(Target::RatioAtLeast(0.8));

    let key = "fast_inproc_64B_tput";
    let mut child_args = vec![("phases", "pump".to_owned()), ("size", SMALL.to_string())];
    child_args.extend(window_args(&run.sizes));
    let child = Child::spawn("process", "tt-inproc", &args(&child_args))?;
    let mut children = vec![child];
    children[0].expect("READY", START_WAIT)?;
    let w = measure_windows(run, key, &mut children, 0)?;
    finish(children);
    note_extra(run, key, &w.extra);
    let rate = median(&w.first);
    eprintln!("  {key}: {:.3} M msgs/s", rate / 1e6);
    run.report
        .add(
            key,
            rate,
            Unit::MsgPerSec,
            "one-way fast-lane 64 B with ACK, two stations on two threads of one process",
        )
        .with_baseline("raw_thread_64B_tput")
        .target(Target::AtLeast(5e6));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// shm
// ---------------------------------------------------------------------------------------------

/// A shared-memory rendezvous name unique to this run.
fn shm_name() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("tamtam-bench-{}-{n}", std::process::id())
}

/// 64 B ping-pong over the raw rings of one shared-memory link, two spinning processes.
fn raw_shm_rtt(run: &mut Run<'_>) -> Result<(), String> {
    let key = "raw_shm_64B_rtt";
    if has(run, &format!("{key}_p50")) {
        return Ok(());
    }
    let (echo, name) = spawn_ready(
        run,
        "echo",
        "raw-shm-echo",
        &[("name", shm_name()), ("size", SMALL.to_string())],
    )?;
    let ping = Child::spawn(
        "ping",
        "raw-shm-ping",
        &args(&[
            ("peer", name),
            ("size", SMALL.to_string()),
            ("warmup", run.sizes.warmup.to_string()),
            ("samples", run.sizes.samples.to_string()),
        ]),
    )?;
    let mut children = vec![echo, ping];
    let lat = measure_latency(run, key, &mut children, 1, run.sizes.samples)?;
    finish(children);
    let what = "raw shared-memory ring ping-pong, 64 B, two processes, spinning";
    add_latency(run, key, what, &lat, None, &[], &[]);
    Ok(())
}

/// 64 B frames one way over the raw rings, published every 32, two spinning processes.
fn raw_shm_tput(run: &mut Run<'_>) -> Result<(), String> {
    let key = "raw_shm_64B_tput";
    if has(run, key) {
        return Ok(());
    }
    let (sink, name) = spawn_ready(run, "reader", "raw-shm-sink", &[("name", shm_name())])?;
    let mut source_args = vec![("peer", name), ("size", SMALL.to_string())];
    source_args.extend(window_args(&run.sizes));
    let source = Child::spawn("writer", "raw-shm-source", &args(&source_args))?;
    let mut children = vec![sink, source];
    let w = measure_windows(run, key, &mut children, 1)?;
    finish(children);
    let rate = median(&w.first);
    eprintln!("  {key}: {:.2} M msgs/s", rate / 1e6);
    run.report.add(
        key,
        rate,
        Unit::MsgPerSec,
        "raw shared-memory ring, 64 B frames one way, published every 32, two processes",
    );
    Ok(())
}

fn shm(run: &mut Run<'_>) -> Result<(), String> {
    raw_shm_rtt(run)?;
    raw_shm_tput(run)?;
    let raw = "raw_shm_64B_rtt";
    let shm_args = |doorbells: bool| {
        vec![
            ("transport", "shm".to_owned()),
            ("shm-name", shm_name()),
            (
                "shm-doorbells",
                if doorbells { "1" } else { "0" }.to_owned(),
            ),
        ]
    };

    let key = "shm_64B_rtt";
    let lat = tt_rtt_with(run, key, false, "rtt", &shm_args(true))?;
    let what = "fast-lane request→reply, 64 B, shared memory, two processes, driven from a handler";
    add_latency(run, key, what, &lat, Some(raw), &[], &[]);

    let key = "shm_64B_rtt_polled";
    let lat = tt_rtt_with(run, key, false, "rtt", &shm_args(false))?;
    let what = "the same with the doorbells off: idle shards poll the link every millisecond                 (the behaviour before doorbells; not a default figure)";
    add_latency(run, key, what, &lat, Some("shm_64B_rtt"), &[], &[]);

    let key = "shm_64B_rtt_api";
    let lat = tt_rtt_with(run, key, false, "api-rtt", &shm_args(true))?;
    let what = "the same as shm_64B_rtt through Station::request from an application thread";
    add_latency(run, key, what, &lat, Some(raw), &[], &[]);

    let key = "shm_64B_rtt_api_polled";
    let lat = tt_rtt_with(run, key, false, "api-rtt", &shm_args(false))?;
    let what = "shm_64B_rtt_api with the doorbells off (before doorbells; not a default figure)";
    add_latency(run, key, what, &lat, Some("shm_64B_rtt_api"), &[], &[]);

    let key = "shm_spin_64B_rtt";
    let lat = tt_rtt_with(run, key, true, "rtt", &shm_args(true))?;
    let what = "fast-lane request→reply, 64 B, shared memory, busy-polling stations";
    add_latency(run, key, what, &lat, Some(raw), &[], &[]);

    let key = "shm_64B_tput";
    let rate = tt_tput_with(run, key, SMALL, "pump", &shm_args(true))?;
    run.report
        .add(
            key,
            rate,
            Unit::MsgPerSec,
            "one-way fast-lane 64 B with ACK, pipelined from a handler, shared memory, two processes",
        )
        .with_baseline("raw_shm_64B_tput");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// fanout
// ---------------------------------------------------------------------------------------------

fn fanout(run: &mut Run<'_>) -> Result<(), String> {
    let key = "fanout_8x_64B_deliveries";
    let members = 8usize;
    let mut publisher_args = vec![
        ("listen", "1".to_owned()),
        ("to", "group".into()),
        ("sinks", members.to_string()),
        ("phases", "pump".into()),
        ("size", SMALL.to_string()),
    ];
    publisher_args.extend(window_args(&run.sizes));
    let (publisher, addr) = spawn_ready(run, "publisher", "tt-client", &publisher_args)?;
    let (subscribers, _) = spawn_ready(
        run,
        "subscribers",
        "tt-subs",
        &[
            ("peer", addr),
            ("count", members.to_string()),
            ("mode", "group".into()),
        ],
    )?;
    let mut children = vec![publisher, subscribers];
    let w = measure_windows(run, key, &mut children, 0)?;
    finish(children);
    note_extra(run, key, &w.extra);
    let rate = median(&w.first);
    eprintln!("  {key}: {:.3} M deliveries/s", rate / 1e6);
    run.report.add(
        key,
        rate,
        Unit::MsgPerSec,
        "one publisher, group port with 8 subscriber stations (one process), 64 B with ACK: deliveries/s",
    );
    if has(run, "fast_tcp_64B_tput") {
        run.report
            .figures
            .last_mut()
            .expect("just added")
            .with_baseline("fast_tcp_64B_tput");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// stream
// ---------------------------------------------------------------------------------------------

/// Asks the subscribers (`children[1]`) and the publisher (`children[0]`) for their counts:
/// `[ns, frames of each subscriber…]` and `[ns, frames published, copies sent]`.
fn stream_sample(
    children: &mut [Child],
    subscribers: usize,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let numbers = |line: String| -> Vec<f64> {
        line.split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect()
    };
    children[1].send("count")?;
    let counts = numbers(children[1].expect("COUNT", START_WAIT)?);
    children[0].send("count")?;
    let sent = numbers(children[0].expect("SENT", START_WAIT)?);
    if counts.len() != subscribers + 1 || sent.len() != 3 {
        return Err(format!("bad COUNT {counts:?} or SENT {sent:?} line"));
    }
    Ok((counts, sent))
}

/// Per-subscriber delivered frames/s (median over windows) and the publisher's frames/s.
fn stream_run(
    run: &mut Run<'_>,
    key: &str,
    size: usize,
    subscribers: usize,
    slow_ns: u64,
    stream_queue: Option<usize>,
) -> Result<(Vec<f64>, f64), String> {
    let mut publisher_args = vec![
        ("listen", "1".to_owned()),
        ("size", size.to_string()),
        ("subscribers", subscribers.to_string()),
    ];
    let mut subscriber_args = vec![
        ("count", subscribers.to_string()),
        ("mode", "stream".into()),
        ("slow-ns", slow_ns.to_string()),
    ];
    if let Some(queue) = stream_queue {
        publisher_args.push(("stream-queue", queue.to_string()));
        subscriber_args.push(("stream-queue", queue.to_string()));
    }
    let (mut streamer, addr) = spawn_ready(run, "publisher", "tt-streamer", &publisher_args)?;
    subscriber_args.push(("peer", addr));
    let (subs, _) = spawn_ready(run, "subscribers", "tt-subs", &subscriber_args)?;
    streamer.expect("SUBSCRIBED", START_WAIT)?;
    streamer.send("go")?;
    let mut children = vec![streamer, subs];
    std::thread::sleep(run.sizes.tput_warmup);
    let window = CpuWindow::start(&children.iter().collect::<Vec<_>>());
    let mut per_sub: Vec<Vec<f64>> = vec![Vec::new(); subscribers];
    let mut published = Vec::new();
    for _ in 0..run.sizes.windows {
        let (c0, p0) = stream_sample(&mut children, subscribers)?;
        std::thread::sleep(run.sizes.window);
        let (c1, p1) = stream_sample(&mut children, subscribers)?;
        let secs = ((c1[0] - c0[0]) / 1e9).max(1e-9);
        for (i, rates) in per_sub.iter_mut().enumerate() {
            rates.push((c1[i + 1] - c0[i + 1]) / secs);
        }
        let pub_secs = ((p1[0] - p0[0]) / 1e9).max(1e-9);
        published.push((p1[1] - p0[1]) / pub_secs);
    }
    let (procs, elapsed) = window.end(&children.iter().collect::<Vec<_>>());
    run.report.add_processes(key, &procs, elapsed);
    for (i, who) in [(0, "publisher"), (1, "subscribers")] {
        children[i].send("stats")?;
        let stats = children[i].expect("STATS", START_WAIT)?;
        eprintln!("  {key}: {who} {stats}");
    }
    let _ = children[0].send("stop");
    finish(children);
    let rates: Vec<f64> = per_sub.iter().map(|r| median(r)).collect();
    Ok((rates, median(&published)))
}

fn stream(run: &mut Run<'_>) -> Result<(), String> {
    raw_stream(run, false)?;
    raw_stream(run, true)?;
    for (size, label) in [(SMALL, "64B"), (KIB, "1KiB")] {
        let key = format!("stream_{label}_fps");
        let (rates, published) = stream_run(run, &key, size, 1, 0, None)?;
        let rate = rates[0];
        eprintln!(
            "  {key}: {:.3} M frames/s delivered of {:.3} M/s published",
            rate / 1e6,
            published / 1e6
        );
        let figure = run.report.add(
            &key,
            rate,
            Unit::MsgPerSec,
            &format!("stream frames of {size} B delivered to one subscriber process"),
        );
        if size == SMALL {
            figure
                .with_baseline("raw_tcp_batched_64B_tput")
                .target(Target::AtLeast(10e6));
        }
        run.report.add(
            &format!("stream_{label}_published"),
            published,
            Unit::MsgPerSec,
            "frames the publisher's application thread handed to Station::stream",
        );
        if size == KIB {
            run.report
                .add(
                    &format!("stream_{label}_mbps"),
                    rate * size as f64 / 1e6,
                    Unit::MBps,
                    "delivered payload MB/s",
                )
                .with_baseline("raw_tcp_stream_bw");
        }
    }
    // The stream queue bounded at 64 frames per port (the default before byte bounds) holds a
    // fraction of what one TCP read brings in; show what the byte-bounded default gains.
    let key = "stream_64B_fps_queue64";
    let (rates, _) = stream_run(run, key, SMALL, 1, 0, Some(64))?;
    eprintln!("  {key}: {:.3} M frames/s delivered", rates[0] / 1e6);
    run.report
        .add(
            key,
            rates[0],
            Unit::MsgPerSec,
            "the same with stream_queue_capacity = 64 (the former default): not a default figure",
        )
        .with_baseline("stream_64B_fps");
    // Eight subscribers, all equal; then subscriber 0 is 10× slower than the others' rate.
    let key = "stream_8sub_64B_fps";
    let (rates, _) = stream_run(run, key, SMALL, 8, 0, None)?;
    let equal = median(&rates[1..]);
    eprintln!("  {key}: {:.3} M frames/s per subscriber", equal / 1e6);
    run.report.add(
        key,
        equal,
        Unit::MsgPerSec,
        "64 B frames to 8 subscribers: median rate of subscribers 2–8",
    );
    let slow_ns = if equal > 0.0 {
        (10.0 * 1e9 / equal) as u64
    } else {
        100_000
    };
    let key = "stream_8sub_slow_64B_fps";
    let (rates, _) = stream_run(run, key, SMALL, 8, slow_ns, None)?;
    let others = median(&rates[1..]);
    eprintln!(
        "  {key}: {:.3} M frames/s per fast subscriber, slow one {:.3} M/s",
        others / 1e6,
        rates[0] / 1e6
    );
    run.report
        .add(
            key,
            others,
            Unit::MsgPerSec,
            "the same with subscriber 1 ten times slower: median rate of the other seven",
        )
        .with_baseline("stream_8sub_64B_fps")
        .target(Target::RatioAtLeast(0.9));
    run.report.add(
        "stream_8sub_slow_one_fps",
        rates[0],
        Unit::MsgPerSec,
        "the slow subscriber's own rate",
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// scale
// ---------------------------------------------------------------------------------------------

/// Latency and cost per message with `ports` served ports and `connections` TCP links on the
/// server: the measuring client's, plus `connections - 1` from a crowd of quiet peers (each a
/// distinct station id, heartbeating, never advertising).
fn scale_run(
    run: &mut Run<'_>,
    key: &str,
    ports: u16,
    connections: usize,
) -> Result<(Latency, f64, f64), String> {
    let (mut server, addr) = spawn_ready(
        run,
        "server",
        "tt-server",
        &[("listen", "1".into()), ("ports", ports.to_string())],
    )?;
    let crowd = if connections > 1 {
        let (crowd, _) = spawn_ready(
            run,
            "crowd",
            "tt-crowd",
            &[
                ("peer", addr.clone()),
                ("count", (connections - 1).to_string()),
            ],
        )?;
        Some(crowd)
    } else {
        None
    };
    let mut client_args = vec![
        ("peer", addr),
        ("ports", ports.to_string()),
        ("phases", "rtt,pump".into()),
        ("wait-go", "1".into()),
        ("size", SMALL.to_string()),
        ("warmup", run.sizes.warmup.to_string()),
        ("samples", run.sizes.scale_samples.to_string()),
    ];
    client_args.extend(window_args(&run.sizes));
    let mut client = Child::spawn("client", "tt-client", &args(&client_args))?;
    client.expect("CONNECTED", START_WAIT)?;
    // Wait until the server holds every connection (plus its listener).
    let deadline = std::time::Instant::now() + START_WAIT;
    loop {
        server.send("sockets")?;
        let n: usize = server
            .expect("SOCKETS", START_WAIT)?
            .parse()
            .map_err(|e| format!("SOCKETS: {e}"))?;
        if n > connections {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("{key}: only {n} of {connections} connections up"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    client.send("go")?;
    let mut children = vec![server, client];
    children.extend(crowd);
    let lat = measure_latency(
        run,
        &format!("{key}_rtt"),
        &mut children,
        1,
        run.sizes.scale_samples,
    )?;
    let w = measure_windows(run, &format!("{key}_pump"), &mut children, 1)?;
    finish(children);
    note_extra(run, key, &w.extra);
    let rate = median(&w.first);
    let mean_rate = w.first.iter().sum::<f64>() / w.first.len() as f64;
    let messages = mean_rate * w.elapsed.as_secs_f64();
    // The TamTam processes only (not the crowd of quiet peers).
    let cpu: f64 = w
        .procs
        .iter()
        .filter(|p| p.name == "server" || p.name == "client")
        .map(|p| p.cpu_seconds)
        .sum();
    let cost_ns = if messages > 0.0 {
        cpu / messages * 1e9
    } else {
        f64::NAN
    };
    eprintln!(
        "  {key}: {:.3} M msgs/s, {cost_ns:.0} ns CPU per message",
        rate / 1e6
    );
    Ok((lat, cost_ns, rate))
}

/// Whether a client can reach a station serving `ports` ports within a few seconds.
fn scale_probe(run: &mut Run<'_>, ports: u16) -> Result<bool, String> {
    let (server, addr) = spawn_ready(
        run,
        "server",
        "tt-server",
        &[("listen", "1".into()), ("ports", ports.to_string())],
    )?;
    let mut client = Child::spawn(
        "client",
        "tt-client",
        &args(&[
            ("peer", addr),
            ("ports", ports.to_string()),
            ("phases", "none".into()),
            ("setup-ms", "5000".into()),
        ]),
    )?;
    let reached = client.expect("DONE", START_WAIT).is_ok();
    finish(vec![server, client]);
    Ok(reached)
}

fn scale(run: &mut Run<'_>) -> Result<(), String> {
    // The configuration is 10,000 ports. A station's advert lists every port it
    // serves, and receivers refuse adverts of more than ADVERT_LIST_MAX entries, so first
    // check whether such a station can be reached at all.
    let wanted = run.sizes.scale_ports;
    let limit = tamtam_engine::core::control::ADVERT_LIST_MAX as u16;
    let mut ports = wanted;
    if wanted > limit - 2 {
        let reached = scale_probe(run, wanted)?;
        run.report
            .add(
                &format!("scale_{wanted}p_reachable"),
                if reached { 1.0 } else { 0.0 },
                Unit::Ok,
                &format!("a station serving {wanted} ports is discoverable by its peer"),
            )
            .target(Target::AtLeast(1.0));
        if !reached {
            // Measure with as many ports as an advert can carry (the server also serves the
            // echo and sink ports).
            ports = limit - 2;
            run.report.note(format!(
                "scale: a station serving {wanted} ports is unreachable: its advert lists more than \
                 ADVERT_LIST_MAX = {limit} ports and every peer refuses it \
                 (core/control.rs Advert::decode); measured with {ports} ports instead"
            ));
        }
    }
    let small = "scale_1p_1c";
    let (lat, cost, rate) = scale_run(run, small, 1, 1)?;
    add_latency(
        run,
        &format!("{small}_64B_rtt"),
        "fast-lane request→reply, 1 port, 1 connection",
        &lat,
        None,
        &[],
        &[],
    );
    run.report.add(
        &format!("{small}_cost"),
        cost,
        Unit::Ns,
        "CPU of both processes per ACK'd 64 B message, pipelined, 1 port, 1 connection",
    );
    run.report.add(
        &format!("{small}_tput"),
        rate,
        Unit::MsgPerSec,
        "ACK'd 64 B messages/s, 1 port, 1 connection",
    );
    let connections = run.sizes.scale_connections;
    let big = format!("scale_{ports}p_{connections}c");
    let (lat, cost, rate) = scale_run(run, &big, ports, connections)?;
    add_latency(
        run,
        &format!("{big}_64B_rtt"),
        &format!(
            "fast-lane request→reply to a random one of {ports} ports, {connections} connections"
        ),
        &lat,
        Some(&format!("{small}_64B_rtt")),
        &[],
        &[Target::RatioAtMost(2.0)],
    );
    run.report
        .add(
            &format!("{big}_cost"),
            cost,
            Unit::Ns,
            "CPU of both processes per ACK'd 64 B message, random ports, many connections",
        )
        .with_baseline(&format!("{small}_cost"))
        .target(Target::RatioWithin(0.8, 1.2));
    run.report
        .add(
            &format!("{big}_tput"),
            rate,
            Unit::MsgPerSec,
            "ACK'd 64 B messages/s, random ports, many connections",
        )
        .with_baseline(&format!("{small}_tput"));
    Ok(())
}
