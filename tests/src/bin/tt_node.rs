//! `tt_node`: one station in its own process, for the multi-process tests (kill -9, restart,
//! two-process loopback). It prints one line per observable fact on stdout, flushed at once,
//! so the test can follow it:
//!
//! - `READY <station id> <first local address or ->`
//! - `GOT <port> <sender> <request id> <payload as text>` for each fast message handled
//! - `BULK <spool path> <len>` for each received bulk object
//! - `JOURNALED <i>` after message `i` was accepted (journaled, with `--outbox`)
//! - `DELIVERED <i>` / `DEAD <i>` as acknowledgements come back
//! - `PROGRESS <bytes done> <total>` and `SENT` for a bulk transfer
//!
//! Usage: `tt_node --id N [--listen ADDR] [--connect ADDR] [--udp-bind ADDR] [--udp-peer ADDR]
//! [--spool DIR] [--outbox FILE] [--serve PORT] [--sink PORT] [--send-file DEST PORT PATH]
//! [--send-messages DEST PORT COUNT] [--segment-len BYTES]
//! [--ws-listen ADDR] [--ws-connect ADDR] [--shm-listen NAME] [--shm-connect NAME]
//! [--serial TTY] [--baud N] [--file-out DIR --file-in DIR] [--tag TEXT]`
//!
//! `--send-messages` payloads are `<tag>-<i>` (tag `msg` unless `--tag` says otherwise).
//!
//! The transport flags add links of `tamtam-transports`; dialing ones (`--ws-connect`,
//! `--shm-connect`, `--serial`, `--file-*`) redial whenever their link closes. With
//! `--ws-listen`, `READY` names the WebSocket address when there is no TCP listener.

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use tamtam_engine::core::{BulkReceived, Context, Message, Outgoing, Service};
use tamtam_engine::driver::{ExternalLink, Outcome, Station};
use tamtam_transports::Redial;
use tamtam_transports::file::{FileConfig, FileLink};
use tamtam_transports::serial::{SerialConfig, SerialLink};
use tamtam_transports::shm::{ShmConfig, ShmLink, ShmListener};
use tamtam_transports::websocket::{WsConfig, WsLink, WsListener};

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

struct Printer;

impl Service for Printer {
    fn on_message(&mut self, _: &mut Context<'_>, m: &Message<'_>) {
        say(format!(
            "GOT {} {} {} {}",
            m.port(),
            m.sender(),
            m.request_id(),
            String::from_utf8_lossy(m.payload)
        ));
    }

    fn on_bulk(&mut self, _: &mut Context<'_>, object: &BulkReceived) {
        say(format!("BULK {} {}", object.spool_key, object.len));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut builder = Station::builder();
    let mut i = 0;
    let mut id = 1;
    let mut send_file = None;
    let mut send_messages = None;
    let mut ws_address = None;
    let mut serial = None;
    let mut baud = 115_200u32;
    let mut file_out = None;
    let mut file_in = None;
    let mut tag = String::from("msg");
    let next = |i: &mut usize| {
        *i += 1;
        args.get(*i).cloned().unwrap_or_else(|| {
            eprintln!("tt_node: missing value after {}", args[*i - 1]);
            std::process::exit(2)
        })
    };
    while i < args.len() {
        match args[i].as_str() {
            "--id" => {
                id = next(&mut i).parse().expect("id");
                builder = builder.id(id);
            }
            "--listen" => builder = builder.listen_tcp(next(&mut i).parse().expect("address")),
            "--connect" => builder = builder.connect_tcp(next(&mut i).parse().expect("address")),
            "--udp-bind" => builder = builder.bind_udp(next(&mut i).parse().expect("address")),
            "--udp-peer" => builder = builder.udp_peer(next(&mut i).parse().expect("address")),
            "--spool" => builder = builder.spool_dir(next(&mut i)),
            "--outbox" => builder = builder.durable_outbox(next(&mut i)),
            "--serve" => builder = builder.serve(next(&mut i).parse().expect("port"), Printer),
            "--segment-len" => {
                let len: u32 = next(&mut i).parse().expect("bytes");
                builder = builder.configure(move |c| c.segment_len = len);
            }
            "--send-file" => {
                let dest: u32 = next(&mut i).parse().expect("dest");
                let port: u16 = next(&mut i).parse().expect("port");
                send_file = Some((dest, port, next(&mut i)));
            }
            "--send-messages" => {
                let dest: u32 = next(&mut i).parse().expect("dest");
                let port: u16 = next(&mut i).parse().expect("port");
                let count: u32 = next(&mut i).parse().expect("count");
                send_messages = Some((dest, port, count));
            }
            "--ws-listen" => {
                let addr = next(&mut i).parse().expect("address");
                let listener = WsListener::bind(addr, &WsConfig::default()).unwrap_or_else(|e| {
                    eprintln!("tt_node: {e}");
                    std::process::exit(1)
                });
                ws_address = Some(listener.local_addr().to_string());
                builder = builder.listener(Box::new(listener));
            }
            "--ws-connect" => {
                let addr: std::net::SocketAddr = next(&mut i).parse().expect("address");
                builder =
                    builder.listener(Box::new(Redial::new(format!("ws {addr}"), move || {
                        Ok(Box::new(WsLink::connect(addr, &WsConfig::default())?)
                            as Box<dyn ExternalLink>)
                    })));
            }
            "--shm-listen" => {
                let name = next(&mut i);
                let listener =
                    ShmListener::bind(&name, &ShmConfig::default()).unwrap_or_else(|e| {
                        eprintln!("tt_node: {e}");
                        std::process::exit(1)
                    });
                builder = builder.listener(Box::new(listener));
            }
            "--shm-connect" => {
                let name = next(&mut i);
                builder =
                    builder.listener(Box::new(Redial::new(format!("shm {name}"), move || {
                        Ok(Box::new(ShmLink::connect(&name, &ShmConfig::default())?)
                            as Box<dyn ExternalLink>)
                    })));
            }
            "--serial" => serial = Some(next(&mut i)),
            "--baud" => baud = next(&mut i).parse().expect("baud"),
            "--file-out" => file_out = Some(next(&mut i)),
            "--file-in" => file_in = Some(next(&mut i)),
            "--tag" => tag = next(&mut i),
            other => {
                eprintln!("tt_node: unknown argument {other}");
                std::process::exit(2);
            }
        }
        i += 1;
    }
    if let Some(path) = serial {
        let config = SerialConfig {
            baud_rate: baud,
            ..SerialConfig::default()
        };
        builder = builder.listener(Box::new(Redial::new(format!("serial {path}"), move || {
            Ok(Box::new(SerialLink::open(&path, &config)?) as Box<dyn ExternalLink>)
        })));
    }
    match (file_out, file_in) {
        (Some(out), Some(inbox)) => {
            builder = builder.listener(Box::new(Redial::new(format!("file {out}"), move || {
                Ok(
                    Box::new(FileLink::open(&out, &inbox, &FileConfig::default())?)
                        as Box<dyn ExternalLink>,
                )
            })));
        }
        (None, None) => {}
        _ => {
            eprintln!("tt_node: --file-out and --file-in go together");
            std::process::exit(2);
        }
    }
    // Tolerate a peer that is down for a while (restart tests): long stalls before giving up.
    builder = builder.configure(|c| {
        c.attempts_max = 40;
        c.rto_max = tamtam_engine::core::Duration::from_millis(500);
    });
    let station = builder.build().unwrap_or_else(|e| {
        eprintln!("tt_node: {e}");
        std::process::exit(1)
    });
    let address = station
        .local_addrs()
        .first()
        .map(|a| a.to_string())
        .or(ws_address)
        .unwrap_or_else(|| "-".into());
    say(format!("READY {id} {address}"));

    if let Some((dest, port, path)) = send_file {
        let handle = station.send_file(dest, port, &path).unwrap_or_else(|e| {
            eprintln!("tt_node: {e}");
            std::process::exit(1)
        });
        loop {
            if let Some(p) = handle.progress() {
                say(format!("PROGRESS {} {}", p.bytes_done, p.bytes_total));
            }
            match handle.try_wait() {
                Some(Ok(_)) => {
                    let stats = station.stats().expect("stats");
                    say(format!(
                        "SENT segments_sent={} resent={}",
                        stats.bulk_segments_sent, stats.bulk_segments_resent
                    ));
                    break;
                }
                Some(Err(e)) => {
                    say(format!("FAILED {e}"));
                    std::process::exit(1);
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    if let Some((dest, port, count)) = send_messages {
        let (tx, rx) = mpsc::channel();
        for n in 0..count {
            let message = Outgoing::to_station(dest, port, format!("{tag}-{n}"));
            match station.send(message) {
                Ok(request_id) => {
                    say(format!("JOURNALED {n} {request_id}"));
                    tx.send((n, request_id)).expect("channel");
                }
                Err(e) => say(format!("REFUSED {n} {e}")),
            }
        }
        drop(tx);
        let _ = rx;
    }
    // Run until killed (or stdin closes when the parent goes away).
    let mut line = String::new();
    loop {
        line.clear();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if line.trim() == "stats" {
                    let stats = station.stats().expect("stats");
                    say(format!(
                        "STATS delivered={} duplicates={} peers_dead={} malformed={}",
                        stats.delivered, stats.duplicates, stats.peers_dead, stats.frames_malformed
                    ));
                }
            }
        }
    }
    let _ = Outcome::Delivered;
    station.shutdown();
}
