//! Goal: what the station's shard does with its links beyond moving frames: shared-memory
//! links wake an idle shard through their doorbells (request/reply between two stations over
//! shm, in both directions, under every I/O backend), and what links drop or cannot frame is
//! counted in the station's statistics (`link_frames_dropped`, `link_framing_closes`), so the
//! Reporter shows it. Method: real stations, a real shm rendezvous and memfd, real loopback
//! TCP; waits are on conditions with generous deadlines, never fixed sleeps.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use tamtam_engine::core::{Context, Message, Outgoing, Service};
use tamtam_engine::driver::{Backend, ExternalLink, Station};
use tamtam_transports::shm::{ShmConfig, ShmLink, ShmListener};

const WAIT: Duration = Duration::from_secs(20);

fn backends() -> Vec<Backend> {
    let mut backends = vec![Backend::Poll];
    if tamtam_engine::driver::reactor::open(Backend::Uring).is_ok() {
        backends.push(Backend::Uring);
    }
    backends
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tamtam-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

fn echo() -> impl Service {
    |ctx: &mut Context<'_>, m: &Message<'_>| {
        let mut answer = b"echo:".to_vec();
        answer.extend_from_slice(m.payload);
        ctx.reply(m, answer);
    }
}

fn unique(tag: &str) -> String {
    format!("test-{tag}-{}", std::process::id())
}

/// Request/reply both ways between two stations linked only by shared memory, with
/// doorbells (the default) and with the doorbells off (the polled path must still work).
#[test]
fn shm_stations_answer_each_other_with_and_without_doorbells() {
    for backend in backends() {
        for doorbells in [true, false] {
            let tag = format!("shm-{backend:?}-{doorbells}");
            let dir = temp(&tag);
            let config = ShmConfig {
                doorbells,
                ..ShmConfig::default()
            };
            let name = unique(&tag);
            let server = Station::builder()
                .id(2)
                .backend(backend)
                .listener(Box::new(ShmListener::bind(&name, &config).unwrap()))
                .spool_dir(dir.join("b"))
                .serve(2001, echo())
                .build()
                .unwrap();
            let client = Station::builder()
                .id(1)
                .backend(backend)
                .link(Box::new(ShmLink::connect(&name, &config).unwrap()))
                .spool_dir(dir.join("a"))
                .serve(2002, echo())
                .build()
                .unwrap();
            client.wait_for_port(2001, WAIT).unwrap();
            server.wait_for_port(2002, WAIT).unwrap();
            // Sequential round trips: each one finds the other shard idle (parked).
            for i in 0..50u32 {
                let payload = i.to_le_bytes().to_vec();
                let answer = client
                    .request(Outgoing::to_service(2001, payload.clone()), WAIT)
                    .unwrap();
                assert_eq!(answer, [b"echo:".as_slice(), &payload].concat(), "{tag}");
                let answer = server
                    .request(Outgoing::to_service(2002, payload.clone()), WAIT)
                    .unwrap();
                assert_eq!(answer, [b"echo:".as_slice(), &payload].concat(), "{tag}");
            }
            client.shutdown();
            server.shutdown();
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// A TCP peer that sends a length prefix beyond the frame limit gets its link closed, and
/// the station counts it in `link_framing_closes`.
#[test]
fn a_bad_tcp_length_prefix_closes_the_link_and_is_counted() {
    for backend in backends() {
        let dir = temp(&format!("framing-{backend:?}"));
        let station = Station::builder()
            .id(2)
            .backend(backend)
            .listen_tcp("127.0.0.1:0".parse().unwrap())
            .spool_dir(dir.join("s"))
            .build()
            .unwrap();
        assert_eq!(station.stats().unwrap().link_framing_closes, 0);
        let mut peer = std::net::TcpStream::connect(station.local_addrs()[0]).unwrap();
        peer.write_all(&u32::MAX.to_le_bytes()).unwrap();
        peer.write_all(&[0u8; 60]).unwrap();
        assert!(
            wait_until(|| station.stats().unwrap().link_framing_closes == 1),
            "{backend:?}: framing close not counted"
        );
        // The station closed the connection: the peer reads end of stream (or a reset).
        peer.set_read_timeout(Some(WAIT)).unwrap();
        let mut buffer = [0u8; 256];
        let closed = loop {
            match peer.read(&mut buffer) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        assert!(closed, "{backend:?}: link not closed");
        // A well-behaved peer is not counted.
        let _ok = std::net::TcpStream::connect(station.local_addrs()[0]).unwrap();
        assert_eq!(station.stats().unwrap().link_framing_closes, 1);
        station.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A frame an external link's transport drops (here a corrupt shared-memory record, which
/// also closes that link) is counted in the station's `link_frames_dropped`.
#[test]
fn frames_a_transport_drops_are_counted_by_the_station() {
    for backend in backends() {
        let tag = format!("dropped-{backend:?}");
        let dir = temp(&tag);
        let name = unique(&tag);
        let config = ShmConfig::default();
        let station = Station::builder()
            .id(2)
            .backend(backend)
            .listener(Box::new(ShmListener::bind(&name, &config).unwrap()))
            .spool_dir(dir.join("s"))
            .build()
            .unwrap();
        let mut peer = ShmLink::connect(&name, &config).unwrap();
        // Wait until the station attached (its heartbeat is stamped), by reading its hello.
        assert!(
            wait_until(|| {
                let mut got = 0;
                let _ = peer.poll_recv(16, &mut |_| got += 1);
                got > 0
            }),
            "{backend:?}: the station never attached"
        );
        assert_eq!(station.stats().unwrap().link_frames_dropped, 0);
        // A record whose length is below a frame header's: corrupt.
        let mut record = 8u32.to_le_bytes().to_vec();
        record.extend_from_slice(&0u32.to_le_bytes());
        record.extend_from_slice(&[0u8; 8]);
        assert!(peer.inject_raw(&record));
        assert!(
            wait_until(|| station.stats().unwrap().link_frames_dropped == 1),
            "{backend:?}: drop not counted"
        );
        station.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
