//! `bulk`: one file over loopback TCP from disk to disk, durable and checksummed.
//!
//! The source file is written, synced and dropped from the page cache first
//! (`POSIX_FADV_DONTNEED`), so the sender reads it from disk; the transfer ends when the
//! receiver holds it durably (the sender's [`BulkHandle::wait`] returns). The harness then
//! checks the received file's length and CRC32C against the source.
//!
//! [`BulkHandle::wait`]: tamtam_engine::driver::BulkHandle::wait

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Run, START_WAIT, args, finish, spawn_ready};
use crate::proc::{Child, CpuWindow};
use crate::report::{Target, Unit};

/// Removes the bulk work directory when dropped.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `len` pseudo-random bytes to `path`, syncs it, evicts it from the page cache, and
/// returns its CRC32C.
fn make_source(path: &Path, len: u64) -> Result<u32, String> {
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = File::create(path).map_err(io)?;
    let mut chunk = vec![0u8; 1 << 20];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut crc = 0u32;
    let mut written = 0u64;
    while written < len {
        for word in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = (len - written).min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).map_err(io)?;
        crc = crc32c::crc32c_append(crc, &chunk[..n]);
        written += n as u64;
    }
    file.sync_all().map_err(io)?;
    // SAFETY: plain syscall on a valid open fd; advice only.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
    Ok(crc)
}

/// Drops `path` from the page cache, so the next read comes from the disk.
fn evict(path: &Path) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: plain syscall on a valid open fd; advice only.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
    Ok(())
}

/// The raw disk-to-disk baseline: `source` read and streamed over loopback TCP in 64 KiB
/// pieces, written to a file and `fdatasync`ed; returns bytes/s.
fn raw_disk(run: &mut Run<'_>, source: &Path, work: &Path, key: &str) -> Result<f64, String> {
    evict(source)?;
    let out = work.join("raw-copy.bin");
    let (mut receiver, addr) = spawn_ready(
        run,
        "receiver",
        "raw-file-recv",
        &[("out", out.display().to_string())],
    )?;
    let sender = Child::spawn(
        "sender",
        "raw-file-send",
        &args(&[("peer", addr), ("file", source.display().to_string())]),
    )?;
    let limit = START_WAIT + Duration::from_secs(600);
    let result = receiver.expect("VAL", limit)?;
    finish(vec![receiver, sender]);
    let _ = std::fs::remove_file(&out);
    let v: Vec<f64> = result
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    match v.as_slice() {
        [bytes, secs] if *secs > 0.0 => {
            eprintln!("  {key}: {:.3} GB/s", bytes / secs / 1e9);
            Ok(bytes / secs)
        }
        _ => Err(format!("{key}: bad result {result:?}")),
    }
}

/// CRC32C and length of the file at `path`.
fn crc_of(path: &Path) -> Result<(u32, u64), String> {
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = File::open(path).map_err(io)?;
    let mut chunk = vec![0u8; 1 << 20];
    let (mut crc, mut len) = (0u32, 0u64);
    loop {
        let n = file.read(&mut chunk).map_err(io)?;
        if n == 0 {
            return Ok((crc, len));
        }
        crc = crc32c::crc32c_append(crc, &chunk[..n]);
        len += n as u64;
    }
}

pub(super) fn run(run: &mut Run<'_>) -> Result<(), String> {
    super::raw_stream(run, false)?;
    let bytes = run.sizes.bulk_bytes;
    let label = if bytes >= 1 << 30 {
        format!("{}GiB", bytes >> 30)
    } else {
        format!("{}MiB", bytes >> 20)
    };
    let key = format!("bulk_{label}");
    let work =
        WorkDir(std::env::temp_dir().join(format!("tamtam-bench-bulk-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&work.0);
    std::fs::create_dir_all(&work.0).map_err(|e| format!("{}: {e}", work.0.display()))?;
    let source = work.0.join("source.bin");
    eprintln!("  writing a {label} source file");
    let source_crc = make_source(&source, bytes)?;
    let raw_key = format!("raw_tcp_disk_{label}_bw");
    let raw = raw_disk(run, &source, &work.0, &raw_key)?;
    run.report.add(
        &raw_key,
        raw / 1e9,
        Unit::GBps,
        &format!(
            "raw: the {label} file read from disk, sent over loopback TCP, written and fdatasync'ed"
        ),
    );
    evict(&source)?;
    let spool = work.0.join("spool");
    let (receiver, addr) = spawn_ready(
        run,
        "receiver",
        "tt-bulk-recv",
        &[("listen", "1".into()), ("dir", spool.display().to_string())],
    )?;
    let sender = Child::spawn(
        "sender",
        "tt-bulk-send",
        &args(&[("peer", addr), ("file", source.display().to_string())]),
    )?;
    let mut children = vec![receiver, sender];
    let limit = START_WAIT + Duration::from_secs(600);
    children[1].expect("MARK start", limit)?;
    let window = CpuWindow::start(&children.iter().collect::<Vec<_>>());
    children[1].expect("MARK end", limit)?;
    let (procs, elapsed) = window.end(&children.iter().collect::<Vec<_>>());
    let secs: f64 = children[1]
        .expect("VAL", START_WAIT)?
        .parse()
        .map_err(|e| format!("bulk seconds: {e}"))?;
    let mut checksum_secs = 0.0;
    if let Ok(stats) = children[1].expect("VAL stats", START_WAIT) {
        eprintln!("  {key}: sender {stats}");
        checksum_secs = stats
            .split_whitespace()
            .find_map(|f| f.strip_prefix("checksum_pass_secs="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
    }
    let done = children[0].expect("BULK", START_WAIT)?;
    let path = done
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let (crc, len) = crc_of(Path::new(&path))?;
    let verified = crc == source_crc && len == bytes;
    if !verified {
        run.report.note(format!(
            "{key}: received {len} bytes with CRC32C {crc:08x}, sent {bytes} with {source_crc:08x}"
        ));
    }
    run.report.add_processes(&key, &procs, elapsed);
    let receiver_rss = procs.first().map_or(0.0, |p| p.peak_rss_mib);
    finish(children);
    let gbps = bytes as f64 / secs / 1e9;
    eprintln!("  {key}: {gbps:.3} GB/s, receiver peak RSS {receiver_rss:.1} MiB");
    run.report
        .add(
            &format!("{key}_bw"),
            gbps,
            Unit::GBps,
            &format!("{label} file, disk to disk over loopback TCP, until durable at the receiver"),
        )
        .with_baseline("raw_tcp_stream_bw")
        .target(Target::RatioAtLeast(0.7));
    run.report
        .add(
            &format!("{key}_bw_vs_disk"),
            gbps,
            Unit::GBps,
            "the same, compared with the raw disk-to-disk copy",
        )
        .with_baseline(&raw_key);
    run.report.add(
        &format!("{key}_checksum_pass"),
        checksum_secs,
        Unit::Seconds,
        "of the transfer time: send_file reading the whole file for its CRC32C before the offer",
    );
    run.report
        .add(
            &format!("{key}_receiver_rss"),
            receiver_rss,
            Unit::MiB,
            "receiver's peak RSS (VmHWM)",
        )
        .target(Target::AtMost(64.0));
    run.report
        .add(
            &format!("{key}_verified"),
            if verified { 1.0 } else { 0.0 },
            Unit::Ok,
            "received file's length and CRC32C equal the source's",
        )
        .target(Target::AtLeast(1.0));
    Ok(())
}
