//! Benchmarks of the shared memory transport, raw ring and through the station.
//!
//! What each measures (64-byte frames throughout):
//! - `shm/ring_rtt_64b`: one round trip over the raw rings of one link: thread A writes and
//!   publishes a frame, thread B (spinning on `read`) answers with a frame, A spins until it
//!   arrives. The two threads are pinned to different cores. The same loop also fills an
//!   HDR histogram whose p50/p99 are printed (criterion reports means).
//! - `shm/ring_throughput_64b`: thread A writes frames back to back, publishing every 32
//!   (as a station publishes once per cycle), waiting only when the ring is full; thread B
//!   reads in batches, sleeping on the ring's futex when it is empty (spin, then
//!   `wait_readable`); the writer yields when the ring stays full; elements per second. Printed with it: the wall-clock rate over 10 M
//!   messages with each thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`: how long each thread
//!   actually had a core), and the distribution of the rate over 400 windows of 50 000 messages: on a shared machine the rate collapses whenever either thread is descheduled
//!   (the other spins), and the windows in which both kept their cores show what the rings
//!   themselves deliver.
//! - `shm/ring_write_read_one_thread_64b`: write 32 frames, publish, read them back, in one
//!   thread: the CPU cost of the ring protocol per message, without cache traffic.
//! - Printed once, not a criterion benchmark: the same through two stations (request/reply
//!   to an echo service, and fire-and-forget messages counted by a service), to show what
//!   the shard loop adds on top of the ring.
//!
//! Both ends live in one process (two threads, each with its own mapping of the memfd, as
//! two processes would have); the cache traffic between cores is the same as across
//! processes. Run: `cargo bench -p tamtam-bench --bench shm -- --warm-up-time 1
//! --measurement-time 3`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use hdrhistogram::Histogram;
use tamtam_engine::core::wire::frame::{Header, Lane, PacketType, encode_to_vec};
use tamtam_engine::core::{Context, Message, Outgoing};
use tamtam_engine::driver::{ExternalLink, Station};
use tamtam_transports::Redial;
use tamtam_transports::shm::{ShmConfig, ShmLink, ShmListener};

/// Frame size of every benchmark.
const FRAME_LEN: usize = 64;
/// Frames written between publishes in the throughput benchmark.
const PUBLISH_EVERY: usize = 32;

fn frame() -> Vec<u8> {
    let header = Header::new(Lane::Fast, PacketType::Data);
    let frame = encode_to_vec(&header, &[0xAB; FRAME_LEN - 48]).expect("valid frame");
    assert_eq!(frame.len(), FRAME_LEN);
    frame
}

fn config() -> ShmConfig {
    ShmConfig {
        ring_bytes: 1 << 20,
        frame_len_max: 4096,
        ..ShmConfig::default()
    }
}

/// A connected pair of raw links.
fn pair() -> (ShmLink, ShmLink) {
    let name = format!(
        "bench-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut listener = ShmListener::bind(&name, &config()).expect("bind");
    let client = ShmLink::connect(&name, &config()).expect("connect");
    loop {
        if let Some(server) = listener.accept_link().expect("accept") {
            return (client, server);
        }
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid, writable timespec; the clock exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn pin(index: usize) {
    if let Some(cores) = core_affinity::get_core_ids() {
        if let Some(core) = cores.get(index % cores.len()) {
            core_affinity::set_for_current(*core);
        }
    }
}

/// Thread B of the round-trip benchmark: answers every frame, spinning.
struct Echo {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start(mut link: ShmLink) -> Echo {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            pin(1);
            let answer = frame();
            while !stopping.load(Ordering::Relaxed) {
                let n = link.read(64, &mut |f| {
                    black_box(f);
                });
                for _ in 0..n.expect("ring intact") {
                    while !link.send_now(&answer) {
                        std::hint::spin_loop();
                    }
                }
            }
        });
        Echo {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One round trip on the raw rings.
fn round_trip(link: &mut ShmLink, request: &[u8]) {
    assert!(link.send_now(request));
    loop {
        let n = link.read(1, &mut |f| {
            black_box(f);
        });
        if n.expect("ring intact") == 1 {
            return;
        }
        std::hint::spin_loop();
    }
}

fn bench_rtt(c: &mut Criterion) {
    let (mut client, server) = pair();
    let _echo = Echo::start(server);
    pin(0);
    let request = frame();
    // Percentiles, which criterion does not report.
    for _ in 0..10_000 {
        round_trip(&mut client, &request);
    }
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    for _ in 0..200_000 {
        let started = Instant::now();
        round_trip(&mut client, &request);
        let _ = histogram.record(started.elapsed().as_nanos() as u64);
    }
    println!(
        "shm ring RTT 64 B over {} round trips: p50 {} ns, p90 {} ns, p99 {} ns, max {} ns",
        histogram.len(),
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.9),
        histogram.value_at_quantile(0.99),
        histogram.max()
    );
    let mut group = c.benchmark_group("shm");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ring_rtt_64b", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                round_trip(&mut client, &request);
            }
            started.elapsed()
        })
    });
    group.finish();
}

fn bench_throughput(c: &mut Criterion) {
    let (mut writer, mut reader) = pair();
    let total = Arc::new(AtomicU64::new(0));
    let reader_cpu = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (counted, stopping, cpu) = (total.clone(), stop.clone(), reader_cpu.clone());
    let thread = std::thread::spawn(move || {
        pin(1);
        let mut n = 0u64;
        while !stopping.load(Ordering::Relaxed) {
            let got = reader
                .read(1024, &mut |f| {
                    black_box(f);
                })
                .expect("ring intact");
            if got > 0 {
                n += got as u64;
                cpu.store(thread_cpu_ns(), Ordering::Relaxed);
                counted.store(n, Ordering::Release);
            } else {
                // Spin, then sleep on the ring's futex: no CPU burnt while the writer is
                // descheduled.
                reader.wait_readable(Duration::from_millis(1));
            }
        }
    });
    pin(0);
    let payload = frame();
    let mut sent = 0u64;
    let mut run = |messages: u64, writer: &mut ShmLink| -> Duration {
        let started = Instant::now();
        let target = sent + messages;
        let mut since_publish = 0;
        let mut full_spins = 0u32;
        while sent < target {
            if writer.write(&payload) {
                sent += 1;
                since_publish += 1;
                if since_publish == PUBLISH_EVERY {
                    writer.publish();
                    since_publish = 0;
                }
            } else {
                // Full: the reader is behind (or descheduled). Spin a little, then yield.
                writer.publish();
                since_publish = 0;
                full_spins += 1;
                if full_spins % 256 == 0 {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
        writer.publish();
        let mut spins = 0u32;
        while total.load(Ordering::Acquire) < target {
            spins += 1;
            if spins % 256 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        started.elapsed()
    };
    let messages = 10_000_000u64;
    let (writer_cpu_start, reader_cpu_start) =
        (thread_cpu_ns(), reader_cpu.load(Ordering::Relaxed));
    let elapsed = run(messages, &mut writer);
    let writer_cpu = thread_cpu_ns() - writer_cpu_start;
    let reader_cpu = reader_cpu.load(Ordering::Relaxed) - reader_cpu_start;
    let busier = writer_cpu.max(reader_cpu) as f64 / 1e9;
    println!(
        "shm ring throughput 64 B: {messages} messages in {:.3} s wall = {:.2} M msgs/s \
         (CPU: writer {:.3} s, reader {:.3} s of the {:.3} s; {:.2} M msgs per CPU-second of \
         the busier thread)",
        elapsed.as_secs_f64(),
        messages as f64 / elapsed.as_secs_f64() / 1e6,
        writer_cpu as f64 / 1e9,
        reader_cpu as f64 / 1e9,
        elapsed.as_secs_f64(),
        messages as f64 / busier / 1e6,
    );
    // The same in short windows: on a shared machine, a window in which both threads kept
    // their cores shows what the rings deliver; the median says how often that happens.
    let window = 50_000u64;
    let mut rates: Vec<f64> = (0..400)
        .map(|_| window as f64 / run(window, &mut writer).as_secs_f64() / 1e6)
        .collect();
    rates.sort_by(f64::total_cmp);
    println!(
        "shm ring throughput 64 B in 400 windows of {window} messages: \
         median {:.2} M msgs/s, p90 {:.2}, best {:.2}, worst {:.2}",
        rates[200], rates[360], rates[399], rates[0]
    );
    let mut group = c.benchmark_group("shm");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ring_throughput_64b", |b| {
        b.iter_custom(|iters| run(iters, &mut writer))
    });
    group.finish();
    stop.store(true, Ordering::Relaxed);
    let _ = thread.join();
}

fn bench_one_thread(c: &mut Criterion) {
    let (mut writer, mut reader) = pair();
    let payload = frame();
    let mut group = c.benchmark_group("shm");
    group.throughput(Throughput::Elements(PUBLISH_EVERY as u64));
    group.bench_function("ring_write_read_one_thread_64b", |b| {
        b.iter(|| {
            for _ in 0..PUBLISH_EVERY {
                assert!(writer.write(&payload));
            }
            writer.publish();
            let n = reader
                .read(PUBLISH_EVERY, &mut |f| {
                    black_box(f);
                })
                .expect("ring intact");
            assert_eq!(n, PUBLISH_EVERY);
        })
    });
    group.finish();
}

/// Request/reply and one-way messages through two stations joined by shared memory.
fn station_numbers() {
    let name = format!("bench-station-{}", std::process::id());
    let counted = Arc::new(AtomicU64::new(0));
    let counter = counted.clone();
    let dir = std::env::temp_dir().join(format!("tamtam-bench-shm-{}", std::process::id()));
    let b = Station::builder()
        .id(2)
        .spool_dir(dir.join("b"))
        .listener(Box::new(ShmListener::bind(&name, &config()).expect("bind")))
        .serve(2001, |ctx: &mut Context<'_>, m: &Message<'_>| {
            ctx.reply(m, m.payload.to_vec());
        })
        .serve(2002, move |_: &mut Context<'_>, _: &Message<'_>| {
            counter.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .expect("station b");
    let n = name.clone();
    let a = Station::builder()
        .id(1)
        .spool_dir(dir.join("a"))
        .listener(Box::new(Redial::new("shm", move || {
            Ok(Box::new(ShmLink::connect(&n, &config())?) as Box<dyn ExternalLink>)
        })))
        .build()
        .expect("station a");
    a.wait_for_port(2002, Duration::from_secs(10))
        .expect("discovery");
    let payload = vec![0x5A; 16]; // + 48-byte header = 64-byte frames
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    for i in 0..3000 {
        let started = Instant::now();
        let reply = a
            .request(
                Outgoing::to_station(2, 2001, payload.clone()),
                Duration::from_secs(5),
            )
            .expect("reply");
        if i >= 500 {
            let _ = histogram.record(started.elapsed().as_nanos() as u64);
        }
        black_box(reply);
    }
    println!(
        "station request/reply over shm, 64 B frames, {} requests: p50 {} us, p99 {} us",
        histogram.len(),
        histogram.value_at_quantile(0.5) / 1000,
        histogram.value_at_quantile(0.99) / 1000
    );
    let messages = 200_000u64;
    let started = Instant::now();
    for _ in 0..messages {
        let mut message = Outgoing::to_station(2, 2002, payload.clone());
        message.ack = false;
        a.send(message).expect("send");
    }
    while counted.load(Ordering::Relaxed) < messages {
        if started.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "station one-way over shm, 64 B frames: {} of {messages} delivered in {elapsed:.3} s = {:.2} M msgs/s",
        counted.load(Ordering::Relaxed),
        counted.load(Ordering::Relaxed) as f64 / elapsed / 1e6
    );
    a.shutdown();
    b.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench_rtt(&mut criterion);
    bench_throughput(&mut criterion);
    bench_one_thread(&mut criterion);
    station_numbers();
    criterion.final_summary();
}
