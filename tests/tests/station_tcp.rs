//! Goal: the Station API works end to end over real loopback sockets and real files, under
//! every I/O backend this kernel offers. Method: two stations in this process, linked by TCP
//! (and separately by UDP); fast messages with ACK, request/reply, a stream, and a bulk file
//! transfer whose received bytes are compared with the original. Waits are on conditions with
//! generous deadlines, never fixed sleeps.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tamtam_engine::core::{Context, Message, Outgoing, Service};
use tamtam_engine::driver::{Backend, Outcome, Station};

const WAIT: Duration = Duration::from_secs(20);

fn backends() -> Vec<Backend> {
    let mut backends = vec![Backend::Poll];
    if tamtam_engine::driver::reactor::open(Backend::Uring).is_ok() {
        backends.push(Backend::Uring);
    }
    backends
}

/// The reactor name a station on `backend` must report (after `TAMTAM_IO`).
fn expected_name(backend: Backend) -> Option<&'static str> {
    match backend.from_env() {
        Backend::Poll => Some("epoll"),
        Backend::Uring => Some("io_uring"),
        Backend::Auto => None,
    }
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tamtam-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether files in `dir` can be opened with `O_DIRECT`.
fn direct_io_works(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let probe = dir.join("direct-probe");
    let works = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe)
        .is_ok();
    let _ = std::fs::remove_file(&probe);
    works
}

fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

type Seen = Arc<Mutex<Vec<Vec<u8>>>>;

fn echo() -> impl Service {
    |ctx: &mut Context<'_>, m: &Message<'_>| {
        let mut answer = b"echo:".to_vec();
        answer.extend_from_slice(m.payload);
        ctx.reply(m, answer);
    }
}

/// Records every bulk object its port receives.
struct Files(Arc<Mutex<Vec<tamtam_engine::core::BulkReceived>>>);

impl Service for Files {
    fn on_message(&mut self, _: &mut Context<'_>, _: &Message<'_>) {}
    fn on_bulk(&mut self, _: &mut Context<'_>, object: &tamtam_engine::core::BulkReceived) {
        self.0.lock().unwrap().push(object.clone());
    }
}

/// A stream handler that blocks its shard on the first frame (a reader that stopped), until
/// the returned sender sends or the wait ends; the receiver says when it blocked.
fn stalling_reader() -> (
    impl Service + use<>,
    std::sync::mpsc::Receiver<()>,
    std::sync::mpsc::Sender<()>,
) {
    let (blocked_tx, blocked_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let stalled = std::sync::atomic::AtomicBool::new(false);
    let handler = move |_: &mut Context<'_>, _: &Message<'_>| {
        if !stalled.swap(true, std::sync::atomic::Ordering::Relaxed) {
            let _ = blocked_tx.try_send(());
            let _ = release_rx.lock().unwrap().recv_timeout(WAIT);
        }
    };
    (handler, blocked_rx, release_tx)
}

fn recorder(seen: &Seen) -> impl Service + use<> {
    let seen = seen.clone();
    move |_: &mut Context<'_>, m: &Message<'_>| seen.lock().unwrap().push(m.payload.to_vec())
}

#[test]
fn tcp_fast_request_stream_and_bulk() {
    for backend in backends() {
        let dir = temp(&format!("tcp-{backend:?}"));
        let seen: Seen = Arc::default();
        let frames: Seen = Arc::default();
        let files = Arc::new(Mutex::new(Vec::new()));
        let b = Station::builder()
            .id(2)
            .backend(backend)
            .listen_tcp("127.0.0.1:0".parse().unwrap())
            .spool_dir(dir.join("spool-b"))
            .serve(2000, recorder(&seen))
            .serve(2001, echo())
            .serve(5000, Files(files.clone()))
            .subscribe(3000, recorder(&frames))
            .build()
            .unwrap();
        let a = Station::builder()
            .id(1)
            .backend(backend)
            .connect_tcp(b.local_addrs()[0])
            .spool_dir(dir.join("spool-a"))
            .build()
            .unwrap();
        if let Some(name) = expected_name(backend) {
            assert_eq!(a.backend(), name);
            assert_eq!(b.backend(), name);
        }
        eprintln!("station backend: {}", a.backend());
        a.wait_for_port(2001, WAIT).unwrap();

        let outcome = a
            .send_and_wait(Outgoing::to_station(2, 2000, b"hello".to_vec()), WAIT)
            .unwrap();
        assert_eq!(outcome, Outcome::Delivered);
        assert_eq!(seen.lock().unwrap().as_slice(), &[b"hello".to_vec()]);

        let reply = a
            .request(Outgoing::to_service(2001, b"ping".to_vec()), WAIT)
            .unwrap();
        assert_eq!(reply, b"echo:ping");

        // Streams are best effort: send until frames arrive (bounded).
        assert!(wait_until(|| {
            a.stream(3000, 1, b"frame".to_vec()).unwrap();
            !frames.lock().unwrap().is_empty()
        }));

        let object: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let source = dir.join("object.bin");
        std::fs::write(&source, &object).unwrap();
        let handle = a.send_file(2, 5000, &source).unwrap();
        handle.wait(WAIT).unwrap();
        assert!(wait_until(|| !files.lock().unwrap().is_empty()));
        let received = files.lock().unwrap()[0].clone();
        let stored = std::fs::read(b.spool_dir().join(&received.spool_key)).unwrap();
        assert!(stored == object, "bulk object differs ({backend:?})");

        let stats = b.stats().unwrap();
        assert!(stats.delivered >= 2);
        assert_eq!(stats.frames_malformed, 0);
        // 45 whole 64 KiB segments and a 50,880-byte tail: whole segments bypass the page
        // cache where the file system allows O_DIRECT (waiting for an aligned buffer when
        // all are in flight); the unaligned tail goes through it.
        let written = stats.spool_writes_direct + stats.spool_writes_buffered;
        eprintln!(
            "spool writes ({backend:?}): {} direct, {} buffered",
            stats.spool_writes_direct, stats.spool_writes_buffered
        );
        assert!(written >= 46, "{written} spool writes ({backend:?})");
        assert!(stats.spool_writes_buffered >= 1, "the tail ({backend:?})");
        if direct_io_works(b.spool_dir()) {
            assert!(
                stats.spool_writes_direct >= 45,
                "every whole segment direct ({backend:?})"
            );
        }
        a.shutdown();
        b.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn udp_fast_message_with_ack() {
    for backend in backends() {
        let dir = temp(&format!("udp-{backend:?}"));
        let seen: Seen = Arc::default();
        let b = Station::builder()
            .id(2)
            .backend(backend)
            .bind_udp("127.0.0.1:0".parse().unwrap())
            .spool_dir(dir.join("b"))
            .serve(2000, recorder(&seen))
            .build()
            .unwrap();
        let a = Station::builder()
            .id(1)
            .backend(backend)
            .udp_peer(b.local_addrs()[0])
            .spool_dir(dir.join("a"))
            .build()
            .unwrap();
        if let Some(name) = expected_name(backend) {
            assert_eq!(a.backend(), name);
            assert_eq!(b.backend(), name);
        }
        eprintln!("station backend: {}", a.backend());
        a.wait_for_port(2000, WAIT).unwrap();
        for i in 0..50u8 {
            let outcome = a
                .send_and_wait(Outgoing::to_station(2, 2000, vec![i; 100]), WAIT)
                .unwrap();
            assert_eq!(outcome, Outcome::Delivered);
        }
        assert_eq!(seen.lock().unwrap().len(), 50);

        // Bulk over UDP: one frame per datagram, so the 64 KiB default segments are cut to
        // what the path takes (loopback: 65,507-byte datagrams); the object arrives intact.
        let object: Vec<u8> = (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let source = dir.join("object.bin");
        std::fs::write(&source, &object).unwrap();
        a.send_file(2, 2000, &source).unwrap().wait(WAIT).unwrap();
        let stats = b.stats().unwrap();
        assert_eq!(stats.bulk_received, 1, "{backend:?}");
        let stored: Vec<_> = std::fs::read_dir(b.spool_dir())
            .unwrap()
            .filter_map(|e| std::fs::read(e.unwrap().path()).ok())
            .filter(|bytes| bytes == &object)
            .collect();
        assert_eq!(
            stored.len(),
            1,
            "bulk object over UDP differs ({backend:?})"
        );
        assert_eq!(a.stats().unwrap().frames_oversized, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn two_core_station_shards_ports_and_answers_as_one_station() {
    // Goal: a station on two cores behaves as one station. Ports 2000 (even) live on shard 0,
    // 2001 and 5001 (odd) on shard 1; a remote sender addresses the station's public id, and a
    // sender inside the station crosses from shard 0 to shard 1 through the SPSC ring.
    let dir = temp("two-core");
    let seen: Seen = Arc::default();
    let files = Arc::new(Mutex::new(Vec::new()));
    let b = Station::builder()
        .id(2)
        .cores(2)
        .listen_tcp("127.0.0.1:0".parse().unwrap())
        .spool_dir(dir.join("spool-b"))
        .serve(2000, recorder(&seen))
        .serve(2001, echo())
        .serve(5001, Files(files.clone()))
        .build()
        .unwrap();
    assert_eq!(b.cores(), 2);
    let a = Station::builder()
        .id(1)
        .connect_tcp(b.local_addrs()[0])
        .spool_dir(dir.join("spool-a"))
        .build()
        .unwrap();
    a.wait_for_port(2001, WAIT).unwrap();
    // Station-addressed to a port on shard 1: redirected, and acknowledged as station 2.
    let reply = a
        .request(Outgoing::to_station(2, 2001, b"hi".to_vec()), WAIT)
        .unwrap();
    assert_eq!(reply, b"echo:hi");
    let outcome = a
        .send_and_wait(Outgoing::to_station(2, 2000, b"zero".to_vec()), WAIT)
        .unwrap();
    assert_eq!(outcome, Outcome::Delivered);
    // Service-addressed: discovery names shard 1 as the server.
    let reply = a
        .request(Outgoing::to_service(2001, b"svc".to_vec()), WAIT)
        .unwrap();
    assert_eq!(reply, b"echo:svc");
    // Bulk to a port on shard 1.
    let object: Vec<u8> = (0..1_000_000u32).map(|i| (i % 241) as u8).collect();
    let source = dir.join("object.bin");
    std::fs::write(&source, &object).unwrap();
    a.send_file(2, 5001, &source).unwrap().wait(WAIT).unwrap();
    assert!(wait_until(|| !files.lock().unwrap().is_empty()));
    let key = files.lock().unwrap()[0].spool_key.clone();
    assert!(std::fs::read(b.spool_dir().join(key)).unwrap() == object);
    // Inside the station: the API (shard 0) to its own port on shard 1.
    let reply = b
        .request(Outgoing::to_station(2, 2001, b"self".to_vec()), WAIT)
        .unwrap();
    assert_eq!(reply, b"echo:self");
    assert_eq!(seen.lock().unwrap().as_slice(), &[b"zero".to_vec()]);
    let _ = std::fs::remove_dir_all(&dir);
}

mod typed {
    //! `send_message::<T>()`: a `#[derive(Tpf)]` type over a real TCP link, decoded by the
    //! receiving handler with `Message::decode`.
    use super::*;
    use tamtam_engine::core::Recipient;
    use tamtam_tpf::{Tpf, TpfEnum};

    #[derive(TpfEnum, Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u8)]
    enum Side {
        Buy = 1,
        Sell = 2,
    }

    #[derive(Tpf, Clone, Debug, PartialEq)]
    #[tpf(schema = 40, template = 1, version = 1)]
    struct Order {
        id: u64,
        side: Side,
        #[tpf(max = 16)]
        symbol: String,
        qty: Option<u32>,
    }

    #[test]
    fn send_message_carries_a_typed_tpf_payload() {
        let dir = temp("typed");
        let got: Arc<Mutex<Vec<Order>>> = Arc::default();
        let sink = got.clone();
        let b = Station::builder()
            .id(2)
            .listen_tcp("127.0.0.1:0".parse().unwrap())
            .spool_dir(dir.join("b"))
            .serve(6000, move |_: &mut Context<'_>, m: &Message<'_>| {
                assert!(m.is_tpf());
                sink.lock()
                    .unwrap()
                    .push(m.decode::<Order>().expect("a valid Order"));
            })
            .build()
            .unwrap();
        let a = Station::builder()
            .id(1)
            .connect_tcp(b.local_addrs()[0])
            .spool_dir(dir.join("a"))
            .build()
            .unwrap();
        a.wait_for_port(6000, WAIT).unwrap();
        let order = Order {
            id: 42,
            side: Side::Sell,
            symbol: "ACME".into(),
            qty: Some(100),
        };
        a.send_message(Recipient::Station(2), 6000, &order).unwrap();
        assert!(wait_until(|| !got.lock().unwrap().is_empty()));
        assert_eq!(got.lock().unwrap()[0], order);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn requests_that_timed_out_are_forgotten() {
    // Regression (img_swap review): a request whose reply never came stayed in the shard's
    // waiter table for good; a client polling a dead peer grew it without bound.
    let dir = temp("request-timeouts");
    let b = Station::builder()
        .id(2)
        .listen_tcp("127.0.0.1:0".parse().unwrap())
        .spool_dir(dir.join("b"))
        .serve(2005, |_: &mut Context<'_>, _: &Message<'_>| {}) // never answers
        .build()
        .unwrap();
    let a = Station::builder()
        .id(1)
        .connect_tcp(b.local_addrs()[0])
        .spool_dir(dir.join("a"))
        .build()
        .unwrap();
    a.wait_for_port(2005, WAIT).unwrap();
    for _ in 0..20 {
        let result = a.request(
            Outgoing::to_station(2, 2005, b"anyone?".to_vec()),
            Duration::from_millis(20),
        );
        assert!(result.is_err());
    }
    assert!(a.requests_waiting().unwrap() > 0);
    assert!(wait_until(|| a.requests_waiting().unwrap() == 0));
    a.shutdown();
    b.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn posted_messages_all_arrive_with_a_small_outbox_and_back_pressure_is_bounded() {
    // Goal: `Station::post` returns without waiting for the shard, and an ACK-required post
    // is never dropped when the bus's outbox is full: it waits for room, in order.
    let dir = temp("post");
    let seen: Seen = Arc::default();
    let b = Station::builder()
        .id(2)
        .listen_tcp("127.0.0.1:0".parse().unwrap())
        .spool_dir(dir.join("b"))
        .serve(2000, recorder(&seen))
        .build()
        .unwrap();
    let a = Station::builder()
        .id(1)
        .configure(|c| c.outbox_capacity = 64)
        .connect_tcp(b.local_addrs()[0])
        .spool_dir(dir.join("a"))
        .build()
        .unwrap();
    a.wait_for_port(2000, WAIT).unwrap();
    const N: u32 = 20_000;
    let mut busy = 0u32;
    let mut i = 0u32;
    let deadline = std::time::Instant::now() + WAIT;
    while i < N && std::time::Instant::now() < deadline {
        match a.post(Outgoing::to_station(2, 2000, i.to_le_bytes().to_vec())) {
            Ok(()) => i += 1,
            Err(tamtam_engine::driver::StationError::Busy(_)) => {
                busy += 1;
                std::thread::yield_now();
            }
            Err(e) => panic!("post: {e}"),
        }
    }
    assert_eq!(i, N, "posted all before the deadline");
    assert!(wait_until(|| seen.lock().unwrap().len() == N as usize));
    let got: Vec<u32> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|p| u32::from_le_bytes(p[..4].try_into().unwrap()))
        .collect();
    let mut sorted = got.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), N as usize, "each exactly once");
    // The last ACKs may still be on their way when the last message was seen.
    assert!(wait_until(|| a.stats().unwrap().acked == u64::from(N)));
    let stats = a.stats().unwrap();
    assert_eq!(stats.emit_drops, 0);
    assert_eq!(stats.acked, u64::from(N));
    eprintln!("posts answered Busy: {busy}");
    // Too large is refused at once.
    let big = vec![0; 2 << 20];
    assert!(a.post(Outgoing::to_station(2, 2000, big)).is_err());
    a.shutdown();
    b.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stalled_stream_reader_costs_the_sender_bounded_memory() {
    // Regression: a TCP peer that stops reading made the sender's reactor queue frames without
    // bound (stream frames have no window). Now the shard drops beyond a few MiB queued for the
    // link and counts `link_queue_drops`. Method: the subscriber's handler blocks its shard on
    // the first frame (a stalled reader) until the test releases it.
    let dir = temp("stalled-reader");
    let (stalling, blocked_rx, release_tx) = stalling_reader();
    let b = Station::builder()
        .id(2)
        .listen_tcp("127.0.0.1:0".parse().unwrap())
        .spool_dir(dir.join("b"))
        .subscribe(3000, stalling)
        .build()
        .unwrap();
    let a = Station::builder()
        .id(1)
        .connect_tcp(b.local_addrs()[0])
        .spool_dir(dir.join("a"))
        .build()
        .unwrap();
    assert!(wait_until(|| {
        a.stream(3000, 1, vec![1; 16]).unwrap();
        blocked_rx.try_recv().is_ok()
    }));
    let frame = vec![7u8; 1024];
    let mut sent = 0u32;
    let mut dropped = false;
    let deadline = std::time::Instant::now() + WAIT;
    while sent < 200_000 && !dropped && std::time::Instant::now() < deadline {
        match a.stream(3000, 1, frame.clone()) {
            Err(tamtam_engine::driver::StationError::Busy(_)) => {
                std::thread::yield_now();
                continue;
            }
            other => other.unwrap(),
        }
        sent += 1;
        if sent % 2000 == 0 {
            dropped = a.stats().unwrap().link_queue_drops > 0;
        }
    }
    let _ = release_tx.send(());
    assert!(
        dropped,
        "no drop after {sent} frames of 1 KiB to a stalled reader"
    );
    eprintln!("first drops after {sent} frames of 1 KiB");
    a.shutdown();
    b.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Goal: a station that requires registered spool buffers says what is wrong and what to do
/// when it cannot have them, and starts where it can. Method: the epoll backend (which has no
/// registered buffers) must refuse with the locked-memory advice; io_uring, where it runs
/// here and the kernel registered the buffers, must start.
#[test]
fn require_registered_buffers_fails_clearly_without_them() {
    let dir = temp("registered");
    let error = Station::builder()
        .id(9)
        .backend(Backend::Poll)
        .spool_dir(dir.join("spool"))
        .require_registered_buffers(true)
        .build()
        .err()
        .expect("epoll has no registered buffers");
    let text = error.to_string();
    assert!(text.contains("epoll"), "{text}");
    assert!(text.contains("ulimit -l"), "{text}");
    if std::env::var_os("TAMTAM_IO").is_none()
        && tamtam_engine::driver::reactor::open(Backend::Uring)
            .is_ok_and(|r| r.direct_buffers().registered)
    {
        let station = Station::builder()
            .id(9)
            .backend(Backend::Uring)
            .spool_dir(dir.join("spool"))
            .require_registered_buffers(true)
            .build()
            .expect("io_uring registers its spool buffers here");
        station.shutdown();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Goal: a bulk transfer from a reader (not a file) arrives whole, leaves no file behind on
/// the sender, and a reader that fails ends the call with an error naming it, offering
/// nothing. Method: a generated reader yielding odd-sized chunks (1.3 MB, not a multiple of
/// the segment), then one failing midway, over loopback TCP, under each backend.
#[test]
fn send_reader_spools_first_and_reports_a_failing_reader() {
    struct Generated {
        left: usize,
        step: usize,
        fail_at: Option<usize>,
    }
    impl std::io::Read for Generated {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            if self.fail_at.is_some_and(|at| self.left <= at) {
                return Err(std::io::Error::other("the source went away"));
            }
            self.step = self.step % 7919 + 1;
            let n = self.left.min(buffer.len()).min(self.step * 13);
            for byte in &mut buffer[..n] {
                *byte = (self.left % 251) as u8;
                self.left -= 1;
            }
            Ok(n)
        }
    }
    let expected: Vec<u8> = (1..=1_300_000usize)
        .rev()
        .map(|left| (left % 251) as u8)
        .collect();
    for backend in backends() {
        let dir = temp(&format!("reader-{backend:?}"));
        let files = Arc::new(Mutex::new(Vec::new()));
        let b = Station::builder()
            .id(2)
            .backend(backend)
            .listen_tcp("127.0.0.1:0".parse().unwrap())
            .spool_dir(dir.join("spool-b"))
            .serve(5000, Files(files.clone()))
            .build()
            .unwrap();
        let a = Station::builder()
            .id(1)
            .backend(backend)
            .connect_tcp(b.local_addrs()[0])
            .spool_dir(dir.join("spool-a"))
            .build()
            .unwrap();
        a.wait_for_port(5000, WAIT).unwrap();
        let failing = Generated {
            left: 1_300_000,
            step: 0,
            fail_at: Some(700_000),
        };
        let error = a
            .send_reader(2, 5000, "broken.bin", failing)
            .err()
            .expect("a failing reader fails the call");
        assert!(error.to_string().contains("broken.bin"), "{error}");
        assert!(error.to_string().contains("went away"), "{error}");
        let reader = Generated {
            left: 1_300_000,
            step: 0,
            fail_at: None,
        };
        let handle = a.send_reader(2, 5000, "generated.bin", reader).unwrap();
        handle.wait(WAIT).unwrap();
        assert!(wait_until(|| !files.lock().unwrap().is_empty()));
        let received = files.lock().unwrap()[0].clone();
        assert_eq!(received.name, "generated.bin");
        let stored = std::fs::read(b.spool_dir().join(&received.spool_key)).unwrap();
        assert!(
            stored == expected,
            "bulk object from a reader differs ({backend:?})"
        );
        assert_eq!(
            files.lock().unwrap().len(),
            1,
            "the failed reader offered nothing"
        );
        a.shutdown();
        let left: Vec<_> = std::fs::read_dir(dir.join("spool-a"))
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().starts_with(".outgoing"))
            .collect();
        assert!(left.is_empty(), "sender left {left:?}");
        b.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_stalled_stream_subscriber_does_not_hold_up_another() {
    // Goal: one subscriber that stops reading costs the others nothing: the publisher drops
    // what the stalled link cannot take (counted), and keeps feeding the other link. Method:
    // subscriber 2's handler blocks its shard on the first frame; the publisher streams until
    // the stalled link drops; then each of 100 frames, sent one at a time, must reach
    // subscriber 3.
    let dir = temp("stalled-and-live");
    let (stalling, blocked_rx, release_tx) = stalling_reader();
    let slow = Station::builder()
        .id(2)
        .listen_tcp("127.0.0.1:0".parse().unwrap())
        .spool_dir(dir.join("slow"))
        .subscribe(3000, stalling)
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::<u32>::new()));
    let log = seen.clone();
    let live = Station::builder()
        .id(3)
        .listen_tcp("127.0.0.1:0".parse().unwrap())
        .spool_dir(dir.join("live"))
        .subscribe(3000, move |_: &mut Context<'_>, m: &Message<'_>| {
            if let Ok(k) = <[u8; 4]>::try_from(&m.payload[..4]) {
                log.lock().unwrap().push(u32::from_le_bytes(k));
            }
        })
        .build()
        .unwrap();
    let a = Station::builder()
        .id(1)
        .connect_tcp(slow.local_addrs()[0])
        .connect_tcp(live.local_addrs()[0])
        .spool_dir(dir.join("a"))
        .build()
        .unwrap();
    let frame = |k: u32| {
        let mut payload = vec![0u8; 1024];
        payload[..4].copy_from_slice(&k.to_le_bytes());
        payload
    };
    // Both subscribers known, subscriber 2 stalled.
    let mut blocked = false;
    assert!(wait_until(|| {
        let _ = a.stream(3000, 1, frame(0));
        blocked |= blocked_rx.try_recv().is_ok();
        blocked && !seen.lock().unwrap().is_empty()
    }));
    let mut sent = 0u32;
    let mut dropped = false;
    let deadline = std::time::Instant::now() + WAIT;
    while sent < 200_000 && !dropped && std::time::Instant::now() < deadline {
        match a.stream(3000, 1, frame(1)) {
            Err(tamtam_engine::driver::StationError::Busy(_)) => {
                std::thread::yield_now();
                continue;
            }
            other => other.unwrap(),
        };
        sent += 1;
        if sent % 2000 == 0 {
            dropped = a.stats().unwrap().link_queue_drops > 0;
        }
    }
    assert!(dropped, "no drop after {sent} frames to a stalled reader");
    for k in 1000..1100u32 {
        a.stream(3000, 1, frame(k)).unwrap();
        assert!(
            wait_until(|| seen.lock().unwrap().last() == Some(&k)),
            "frame {k} did not reach the live subscriber"
        );
    }
    let _ = release_tx.send(());
    a.shutdown();
    slow.shutdown();
    live.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
