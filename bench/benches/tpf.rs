//! Goal: measure the cost of TPF on the hot path: encoding into a caller buffer, validated
//! decoding into the owned struct, and validated zero-copy views.
//!
//! Method: criterion over two messages of `tamtam_tpf::testing`: `Tick`, a handful of
//! scalars and a short string (45 bytes encoded), and `Batch`, strings, eight nested `Tick`s
//! and a 600-byte blob (about 1 KiB encoded). The target for the small message is
//! encode + decode <= 100 ns on the project's 2-core machine.
//!
//! Run: `cargo bench -p tamtam-bench --bench tpf -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tamtam_tpf::TpfMessage;
use tamtam_tpf::testing::{Batch, Tick};

fn bench_message<M: TpfMessage>(
    c: &mut Criterion,
    name: &str,
    message: &M,
    read: impl Fn(&M::View<'_>) -> u64,
) {
    let bytes = message.encode_to_vec().expect("sample encodes");
    let mut buf = vec![0u8; bytes.len()];
    let mut group = c.benchmark_group(format!("tpf/{name}"));
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("encode", |b| {
        b.iter(|| black_box(message).encode(black_box(&mut buf)).unwrap())
    });
    group.bench_function("encoded_len", |b| {
        b.iter(|| black_box(message).encoded_len())
    });
    group.bench_function("decode", |b| {
        b.iter(|| M::decode(black_box(&bytes)).unwrap())
    });
    group.bench_function("view", |b| {
        b.iter(|| read(&M::view(black_box(&bytes)).unwrap()))
    });
    group.bench_function("encode+decode", |b| {
        b.iter(|| {
            let n = black_box(message).encode(&mut buf).unwrap();
            M::decode(black_box(&buf[..n])).unwrap()
        })
    });
    group.finish();
}

fn tpf(c: &mut Criterion) {
    let tick = Tick::sample(1);
    bench_message(c, "small", &tick, |view| {
        view.id() + view.symbol().len() as u64
    });
    let batch = Batch::sample();
    assert!(
        (900..=1100).contains(&batch.encoded_len()),
        "the large sample is about 1 KiB"
    );
    bench_message(c, "1kib", &batch, |view| {
        view.id() + view.ticks().len() as u64 + view.blob().len() as u64
    });
}

criterion_group!(benches, tpf);
criterion_main!(benches);
