//! Goal: every value of every test schema encodes, and its encoding decodes back to it and
//! passes the same property checks as arbitrary input (`tpf_decode`), including for values
//! a byte-level fuzzer rarely builds (deep trees, full lists, NaN payloads, long UTF-8).
//!
//! Method: build a value of a test message type from the fuzzer's bytes with `arbitrary`,
//! respecting the declared maxima; encode it with the derived code; check that it decodes to
//! the same value (compared as dynamic values, so floats compare by bits) and run
//! `tamtam_tpf::testing::properties::check_payload` on the bytes.
//!
//! Run: `cd fuzz && cargo fuzz run --sanitizer none tpf_roundtrip -- -max_total_time=60`.

#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use tamtam_tpf::testing::properties::check_payload;
use tamtam_tpf::testing::*;
use tamtam_tpf::{DEPTH_MAX, TpfMessage};

fn text(u: &mut Unstructured<'_>, max: usize) -> Result<String> {
    let mut text: String = u.arbitrary()?;
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    Ok(text)
}

fn bytes(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<u8>> {
    let len = u.int_in_range(0..=max)?;
    Ok(u.bytes(len)?.to_vec())
}

fn list<T>(
    u: &mut Unstructured<'_>,
    max: usize,
    mut item: impl FnMut(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let len = u.int_in_range(0..=max)?;
    (0..len).map(|_| item(u)).collect()
}

fn side(u: &mut Unstructured<'_>) -> Result<Side> {
    Ok(if u.arbitrary()? {
        Side::Buy
    } else {
        Side::Sell
    })
}

fn point(u: &mut Unstructured<'_>) -> Result<Point> {
    Ok(Point {
        x: u.arbitrary()?,
        y: u.arbitrary()?,
    })
}

fn scalars(u: &mut Unstructured<'_>) -> Result<Scalars> {
    Ok(Scalars {
        byte: u.arbitrary()?,
        short: u.arbitrary()?,
        word: u.arbitrary()?,
        long: u.arbitrary()?,
        sbyte: u.arbitrary()?,
        sshort: u.arbitrary()?,
        sword: u.arbitrary()?,
        slong: u.arbitrary()?,
        single: f32::from_bits(u.arbitrary()?),
        double: f64::from_bits(u.arbitrary()?),
        flag: u.arbitrary()?,
        side: side(u)?,
        level: *u.choose(&[Level::Low, Level::Mid, Level::High])?,
    })
}

fn optional<T>(
    u: &mut Unstructured<'_>,
    item: impl FnOnce(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Option<T>> {
    Ok(if u.arbitrary()? { Some(item(u)?) } else { None })
}

fn optionals(u: &mut Unstructured<'_>) -> Result<Optionals> {
    Ok(Optionals {
        count: u.arbitrary()?,
        flag: u.arbitrary()?,
        side: optional(u, side)?,
        tag: u.arbitrary()?,
        label: optional(u, |u| text(u, 8))?,
        data: optional(u, |u| bytes(u, 4))?,
        point: optional(u, point)?,
    })
}

fn lists(u: &mut Unstructured<'_>) -> Result<Lists> {
    Ok(Lists {
        numbers: list(u, 4, |u| u.arbitrary())?,
        words: list(u, 3, |u| text(u, 8))?,
        points: list(u, 3, point)?,
        maybe: list(u, 3, |u| u.arbitrary())?,
        matrix: list(u, 2, |u| list(u, 2, |u| u.arbitrary()))?,
        sides: list(u, 2, side)?,
    })
}

fn tree(u: &mut Unstructured<'_>, depth: usize) -> Result<Tree> {
    let max = if depth >= DEPTH_MAX { 0 } else { 4 };
    Ok(Tree {
        value: u.arbitrary()?,
        children: list(u, max, |u| tree(u, depth + 1))?,
    })
}

fn order(u: &mut Unstructured<'_>) -> Result<OrderV2> {
    Ok(OrderV2 {
        id: u.arbitrary()?,
        symbol: text(u, 16)?,
        qty: u.arbitrary()?,
        note: optional(u, |u| text(u, 16))?,
    })
}

fn envelope(u: &mut Unstructured<'_>) -> Result<EnvelopeV2> {
    Ok(EnvelopeV2 {
        seq: u.arbitrary()?,
        order: order(u)?,
        history: list(u, 2, order)?,
    })
}

fn blobs(u: &mut Unstructured<'_>) -> Result<Blobs> {
    Ok(Blobs {
        tag: u.arbitrary()?,
        data: bytes(u, 16)?,
        name: text(u, 16)?,
    })
}

fn round_trip<M: TpfMessage>(message: M) {
    let bytes = message
        .encode_to_vec()
        .expect("values within their maxima encode");
    assert_eq!(bytes.len(), message.encoded_len());
    let decoded = M::decode(&bytes).expect("an encoding decodes");
    assert_eq!(decoded.to_value(), message.to_value());
    check_payload(&bytes);
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    match u.int_in_range(0..=6u8)? {
        0 => round_trip(scalars(u)?),
        1 => round_trip(blobs(u)?),
        2 => round_trip(optionals(u)?),
        3 => round_trip(lists(u)?),
        4 => round_trip(tree(u, 1)?),
        5 => round_trip(envelope(u)?),
        _ => round_trip(order(u)?),
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
