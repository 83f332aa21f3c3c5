//! `tamtam station`: one long-running station from a TOML file and/or flags, serving echo,
//! sink, group and stream ports, until Ctrl-C or SIGTERM.

use std::time::Duration;

use tamtam_engine::core::{Context, Message};
use tamtam_engine::driver::Station;

use crate::config::Settings;
use crate::show::{Printed, out};
use crate::signal;

/// How often the main loop looks at the stop flag while nothing arrives.
const POLL: Duration = Duration::from_millis(50);

/// The line printed once the station runs: `station 2 ready: tcp 127.0.0.1:7000`.
fn ready_line(settings: &Settings, station: &Station) -> String {
    let addrs = station.local_addrs();
    let tcp = settings.listen_tcp.len().min(addrs.len());
    let mut parts: Vec<String> = addrs[..tcp].iter().map(|a| format!("tcp {a}")).collect();
    if settings.bind_udp.is_some() {
        parts.extend(addrs[tcp..].iter().map(|a| format!("udp {a}")));
    }
    if parts.is_empty() {
        parts.push("no listener".into());
    }
    let mut ports = Vec::new();
    let lists = [
        ("echo", &settings.echo),
        ("sink", &settings.sink),
        ("group", &settings.join_group),
        ("stream", &settings.subscribe),
    ];
    for (what, list) in lists {
        ports.extend(list.iter().map(|p| format!("{what} {p}")));
    }
    format!(
        "station {} ready: {} ({}, {} core{}{}{})",
        settings.id,
        parts.join(", "),
        station.backend(),
        station.cores(),
        if station.cores() == 1 { "" } else { "s" },
        if ports.is_empty() { "" } else { "; " },
        ports.join(", ")
    )
}

/// Runs the station until Ctrl-C or SIGTERM.
pub fn run(settings: &Settings, json: bool) -> Result<(), String> {
    signal::install()?;
    let id = settings.id;
    let spool_dir = settings
        .spool_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("tamtam-spool-{id}")));
    let printed = Printed::new();
    let mut builder = Station::builder()
        .id(id)
        .cores(settings.cores)
        .spool_dir(spool_dir.clone());
    if !settings.name.is_empty() {
        builder = builder.name(settings.name.clone());
    }
    for &addr in &settings.listen_tcp {
        builder = builder.listen_tcp(addr);
    }
    for &addr in &settings.connect_tcp {
        builder = builder.connect_tcp(addr);
    }
    if let Some(addr) = settings.bind_udp {
        builder = builder.bind_udp(addr);
    }
    for &addr in &settings.udp_peers {
        builder = builder.udp_peer(addr);
    }
    if let Some(path) = &settings.durable_outbox {
        builder = builder.durable_outbox(path.clone());
    }
    for &port in &settings.echo {
        builder = builder.serve(port, |ctx: &mut Context<'_>, m: &Message<'_>| {
            ctx.reply(m, m.payload.to_vec());
        });
    }
    for &port in &settings.sink {
        builder = builder.serve(port, printed.printer(false, spool_dir.clone()));
    }
    for &port in &settings.join_group {
        builder = builder.join_group(port, printed.printer(true, spool_dir.clone()));
    }
    for &port in &settings.subscribe {
        builder = builder.subscribe(port, printed.printer(false, spool_dir.clone()));
    }
    if settings.collect_traces {
        builder = builder.collect_traces();
    }
    let station = builder
        .build()
        .map_err(|e| format!("station {id} did not start: {e}"))?;
    if !out(&ready_line(settings, &station)) {
        station.shutdown();
        return Ok(());
    }
    let mut dropped_shown = 0;
    while !signal::stopping() {
        match printed.arrivals.recv_timeout(POLL) {
            Ok(arrival) => {
                if !out(&arrival.render(json)) {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // Relaxed: a statistic; see `Printer::push`.
        let dropped = printed.dropped.load(std::sync::atomic::Ordering::Relaxed);
        if dropped > dropped_shown {
            eprintln!(
                "tamtam: {} arrivals not shown (output too slow)",
                dropped - dropped_shown
            );
            dropped_shown = dropped;
        }
    }
    station.shutdown();
    eprintln!("station {id} stopped");
    Ok(())
}
