//! Spool directories: a link made of files, for air-gapped and store-and-forward paths
//! (a directory carried on removable media, synchronised by `rsync`, or shared over NFS).
//!
//! Each direction is a directory. The writer gathers the frames of one cycle into a
//! **batch file**, writes it under `.tmp/` in the outbox, and renames it into the outbox
//! (`<seq, 20 digits>.ttb`): a rename is atomic, so a reader sees a batch whole or not at
//! all. The reader takes batch files in name order, checks the whole file, hands its frames
//! to the bus, and deletes it. A crash of the writer in mid-write leaves only a temp file
//! (never read; removed when a writer opens the outbox again); a crash of the reader before
//! deleting makes it deliver the batch again (the bus drops duplicates of ACK-required
//! messages). A file that fails any check (a torn copy from removable media, garbage) is
//! dropped whole, counted and logged with its path: **no torn frame is ever delivered**.
//!
//! Batch file layout (all little-endian):
//!
//! ```text
//! 0   magic "TTSPOOL1" (8 bytes)
//! 8   frame_count u32 | body_len u32 | body_crc32c u32 | header_crc32c u32 (over bytes 0..20)
//! 24  body: frame_count × ( frame_len u32 | frame v1 (frame_len bytes) )
//! ```
//!
//! One writer and one reader per directory, enforced with `flock` on `.writer.lock` and
//! `.reader.lock`. With `sync` on, the writer `fsync`s each batch and the directory before
//! and after the rename, so a batch survives power loss once it is visible; without it
//! (the default), batches survive any process crash but not a power cut, and the CRC catches
//! a file torn by one. The outbox is bounded (`pending_files_max`): beyond it `send` answers
//! `Ok(false)` and the bus resends later.
//!
//! File I/O on a local disk is done in the shard's thread (small writes and renames, one
//! batch per cycle at most); with `sync` on, each batch costs an `fsync`. The bus's
//! heartbeats and adverts are frames too: on a store-and-forward path that is carried by
//! hand, raise `heartbeat_interval`, `dead_after` and the RTOs to match the trip.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tamtam_engine::core::wire::frame::BASE_HEADER_LEN;

use crate::{DropKind, ExternalLink, LinkCounters, closed};

/// The batch file magic.
pub const MAGIC: [u8; 8] = *b"TTSPOOL1";
/// Bytes of a batch file header.
pub const HEADER_LEN: usize = 24;
/// Bytes of the length prefix of each frame in a batch.
pub const PREFIX_LEN: usize = 4;
/// The extension of complete batch files.
pub const EXTENSION: &str = "ttb";
const TMP_DIR: &str = ".tmp";
const WRITER_LOCK: &str = ".writer.lock";
const READER_LOCK: &str = ".reader.lock";
/// Digits of a batch file's sequence number.
const SEQ_DIGITS: usize = 20;

/// Why a batch file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Shorter than its header.
    #[error("file of {0} bytes is shorter than a batch header")]
    Truncated(usize),
    /// Not a batch file.
    #[error("bad magic")]
    BadMagic,
    /// The header's own checksum failed.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// The body length disagrees with the file length.
    #[error("body of {declared} bytes declared, {actual} present")]
    BodyLength {
        /// Declared by the header.
        declared: usize,
        /// Present in the file.
        actual: usize,
    },
    /// The body's checksum failed.
    #[error("body checksum mismatch")]
    BodyChecksum,
    /// A frame length outside `48..=frame_len_max` or past the body.
    #[error("frame {index}: length {len} invalid (limit {max}, {left} bytes left)")]
    FrameLength {
        /// Which frame.
        index: u32,
        /// Its declared length.
        len: u32,
        /// The limit.
        max: u32,
        /// Body bytes left.
        left: usize,
    },
    /// The frames do not fill the body exactly, or their count is wrong.
    #[error("{count} frames declared, body holds a different layout")]
    Layout {
        /// Declared frame count.
        count: u32,
    },
}

/// The sans-IO batch encoder: frames in → one batch file's bytes out.
#[derive(Debug)]
pub struct BatchWriter {
    bytes: Vec<u8>,
    count: u32,
}

impl Default for BatchWriter {
    fn default() -> Self {
        BatchWriter::new()
    }
}

impl BatchWriter {
    /// An empty batch.
    pub fn new() -> BatchWriter {
        BatchWriter {
            bytes: vec![0; HEADER_LEN],
            count: 0,
        }
    }

    /// Frames in the batch.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes the batch file will have.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no frame was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends one frame.
    pub fn push(&mut self, frame: &[u8]) {
        self.bytes
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(frame);
        self.count += 1;
    }

    /// Completes the header and returns the file's bytes; the writer is empty again after
    /// [`clear`](Self::clear).
    pub fn finish(&mut self) -> &[u8] {
        let body = &self.bytes[HEADER_LEN..];
        let body_crc = crc32c::crc32c(body);
        let body_len = body.len() as u32;
        self.bytes[0..8].copy_from_slice(&MAGIC);
        self.bytes[8..12].copy_from_slice(&self.count.to_le_bytes());
        self.bytes[12..16].copy_from_slice(&body_len.to_le_bytes());
        self.bytes[16..20].copy_from_slice(&body_crc.to_le_bytes());
        let header_crc = crc32c::crc32c(&self.bytes[0..20]);
        self.bytes[20..24].copy_from_slice(&header_crc.to_le_bytes());
        &self.bytes
    }

    /// Empties the batch (keeps the allocation).
    pub fn clear(&mut self) {
        self.bytes.truncate(HEADER_LEN);
        self.count = 0;
    }
}

/// Checks a whole batch file and returns the byte ranges of its frames (nothing is handed
/// out unless everything checks).
pub fn check_batch(
    bytes: &[u8],
    frame_len_max: u32,
) -> Result<Vec<std::ops::Range<usize>>, BatchError> {
    if bytes.len() < HEADER_LEN {
        return Err(BatchError::Truncated(bytes.len()));
    }
    if bytes[0..8] != MAGIC {
        return Err(BatchError::BadMagic);
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[0..20]) != word(20) {
        return Err(BatchError::HeaderChecksum);
    }
    let (count, body_len, body_crc) = (word(8), word(12) as usize, word(16));
    let body = &bytes[HEADER_LEN..];
    if body.len() != body_len {
        return Err(BatchError::BodyLength {
            declared: body_len,
            actual: body.len(),
        });
    }
    if crc32c::crc32c(body) != body_crc {
        return Err(BatchError::BodyChecksum);
    }
    // Each frame needs at least its prefix and a header: bound the count before allocating.
    if count as usize > body.len() / (PREFIX_LEN + BASE_HEADER_LEN) {
        return Err(BatchError::Layout { count });
    }
    let mut ranges = Vec::with_capacity(count as usize);
    let mut at = 0usize;
    for index in 0..count {
        let left = body.len() - at;
        if left < PREFIX_LEN {
            return Err(BatchError::Layout { count });
        }
        let len = u32::from_le_bytes(body[at..at + PREFIX_LEN].try_into().expect("4 bytes"));
        let ok = (BASE_HEADER_LEN as u32..=frame_len_max).contains(&len)
            && len as usize <= left - PREFIX_LEN;
        if !ok {
            return Err(BatchError::FrameLength {
                index,
                len,
                max: frame_len_max,
                left,
            });
        }
        let start = HEADER_LEN + at + PREFIX_LEN;
        ranges.push(start..start + len as usize);
        at += PREFIX_LEN + len as usize;
    }
    if at != body.len() {
        return Err(BatchError::Layout { count });
    }
    Ok(ranges)
}

/// Settings of file links.
#[derive(Debug, Clone)]
pub struct FileConfig {
    /// Largest frame carried.
    pub frame_len_max: u32,
    /// A batch file is closed once it holds this many bytes (it may exceed it by one frame).
    pub batch_bytes_max: usize,
    /// Complete batch files waiting in the outbox at most; beyond, `send` refuses.
    pub pending_files_max: usize,
    /// Largest batch file the reader accepts.
    pub file_bytes_max: usize,
    /// How often the reader lists its inbox when it found nothing.
    pub scan_interval: Duration,
    /// `fsync` each batch and the directory (durable across power loss).
    pub sync: bool,
}

impl Default for FileConfig {
    fn default() -> Self {
        let frame_len_max =
            crate::frame_len_max_for(tamtam_engine::core::wire::frame::PAYLOAD_LEN_MAX_DEFAULT);
        FileConfig {
            frame_len_max,
            batch_bytes_max: 4 << 20,
            pending_files_max: 4096,
            file_bytes_max: (4 << 20) + 2 * (PREFIX_LEN + frame_len_max as usize) + HEADER_LEN,
            scan_interval: Duration::from_millis(5),
            sync: false,
        }
    }
}

/// Takes an exclusive `flock` on `path` (created if missing), or fails at once.
fn lock(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    // SAFETY: flock on an fd we own; LOCK_NB never blocks.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("{} is held by another process: {e}", path.display()),
        ));
    }
    Ok(file)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The sequence number of a batch file name, if it is one.
fn batch_seq(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    if stem.len() != SEQ_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// A batch read and checked, handed out frame by frame.
struct Loaded {
    path: PathBuf,
    bytes: Vec<u8>,
    ranges: Vec<std::ops::Range<usize>>,
    next: usize,
}

/// A link through two spool directories: frames written to `outbox`, read from `inbox`.
pub struct FileLink {
    name: String,
    outbox: PathBuf,
    inbox: PathBuf,
    _writer_lock: File,
    _reader_lock: File,
    config: FileConfig,
    batch: BatchWriter,
    next_seq: u64,
    pending_files: usize,
    last_count: Instant,
    queue: VecDeque<PathBuf>,
    loaded: Option<Loaded>,
    last_scan: Option<Instant>,
    counters: Arc<LinkCounters>,
}

impl FileLink {
    /// Opens the link: writes to `outbox`, reads `inbox` (both created if missing). Fails if
    /// another process writes `outbox` or reads `inbox`.
    pub fn open(
        outbox: impl AsRef<Path>,
        inbox: impl AsRef<Path>,
        config: &FileConfig,
    ) -> io::Result<FileLink> {
        let (outbox, inbox) = (outbox.as_ref().to_path_buf(), inbox.as_ref().to_path_buf());
        let name = format!("file {} -> {}", inbox.display(), outbox.display());
        let setup = |e: io::Error| closed(e.kind(), &name, e);
        fs::create_dir_all(outbox.join(TMP_DIR)).map_err(setup)?;
        fs::create_dir_all(&inbox).map_err(setup)?;
        let writer_lock = lock(&outbox.join(WRITER_LOCK)).map_err(setup)?;
        let reader_lock = lock(&inbox.join(READER_LOCK)).map_err(setup)?;
        // A crash in mid-write left temp files: they were never visible; remove them.
        for entry in fs::read_dir(outbox.join(TMP_DIR)).map_err(setup)? {
            let _ = fs::remove_file(entry.map_err(setup)?.path());
        }
        // Continue after the newest batch still waiting, and after the clock (so the order
        // survives a restart with an empty outbox).
        let mut pending_files = 0;
        let mut next_seq = 0u64;
        for entry in fs::read_dir(&outbox).map_err(setup)? {
            let entry = entry.map_err(setup)?;
            if let Some(seq) = entry.file_name().to_str().and_then(batch_seq) {
                pending_files += 1;
                next_seq = next_seq.max(seq + 1);
            }
        }
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Ok(FileLink {
            name,
            outbox,
            inbox,
            _writer_lock: writer_lock,
            _reader_lock: reader_lock,
            config: config.clone(),
            batch: BatchWriter::new(),
            next_seq: next_seq.max(micros),
            pending_files,
            last_count: Instant::now(),
            queue: VecDeque::new(),
            loaded: None,
            last_scan: None,
            counters: LinkCounters::shared(),
        })
    }

    /// This link's counters.
    pub fn counters(&self) -> Arc<LinkCounters> {
        self.counters.clone()
    }

    /// Writes the current batch as one file (temp file, then atomic rename).
    fn write_batch(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let file_name = format!("{seq:0width$}.{EXTENSION}", width = SEQ_DIGITS);
        let temp = self.outbox.join(TMP_DIR).join(format!("{file_name}.tmp"));
        let bytes = self.batch.finish();
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            file.write_all(bytes)?;
            if self.config.sync {
                file.sync_all()?;
            }
            drop(file);
            fs::rename(&temp, self.outbox.join(&file_name))?;
            if self.config.sync {
                sync_dir(&self.outbox)?;
            }
            Ok::<(), io::Error>(())
        })();
        let len = bytes.len();
        self.batch.clear();
        match result {
            Ok(()) => {
                LinkCounters::add(&self.counters.wire_bytes_sent, len as u64);
                self.pending_files += 1;
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(&temp);
                Err(closed(
                    e.kind(),
                    &self.name,
                    format_args!("writing {}: {e}", temp.display()),
                ))
            }
        }
    }

    /// Recounts the files waiting in the outbox (the reader deletes them).
    fn recount(&mut self) -> io::Result<()> {
        let mut n = 0;
        for entry in fs::read_dir(&self.outbox)? {
            if entry?.file_name().to_str().and_then(batch_seq).is_some() {
                n += 1;
            }
        }
        self.pending_files = n;
        self.last_count = Instant::now();
        Ok(())
    }

    /// Lists the inbox and queues its batch files in order.
    fn scan(&mut self) -> io::Result<()> {
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&self.inbox)? {
            let entry = entry?;
            if let Some(seq) = entry.file_name().to_str().and_then(batch_seq) {
                found.push((seq, entry.path()));
            }
        }
        found.sort_unstable();
        self.queue.extend(found.into_iter().map(|(_, path)| path));
        Ok(())
    }

    /// Reads and checks the next queued file; rejected files are deleted and counted.
    fn load_next(&mut self) -> io::Result<()> {
        while self.loaded.is_none() {
            let Some(path) = self.queue.pop_front() else {
                return Ok(());
            };
            let len = match fs::metadata(&path) {
                Ok(m) => m.len() as usize,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(closed(e.kind(), &self.name, e)),
            };
            let verdict = if len > self.config.file_bytes_max {
                Err(format!("{len} bytes, limit {}", self.config.file_bytes_max))
            } else {
                match fs::read(&path) {
                    Ok(bytes) => match check_batch(&bytes, self.config.frame_len_max) {
                        Ok(ranges) => {
                            LinkCounters::add(
                                &self.counters.wire_bytes_received,
                                bytes.len() as u64,
                            );
                            self.loaded = Some(Loaded {
                                path: path.clone(),
                                bytes,
                                ranges,
                                next: 0,
                            });
                            Ok(())
                        }
                        Err(e) => Err(e.to_string()),
                    },
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(closed(e.kind(), &self.name, e)),
                }
            };
            if let Err(why) = verdict {
                let kind = if len > self.config.file_bytes_max {
                    DropKind::Oversize
                } else {
                    DropKind::Malformed
                };
                self.counters.drop_frame(
                    kind,
                    &self.name,
                    format_args!("batch {} rejected: {why}", path.display()),
                );
                fs::remove_file(&path).map_err(|e| closed(e.kind(), &self.name, e))?;
            }
        }
        Ok(())
    }
}

impl ExternalLink for FileLink {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn poll_recv(
        &mut self,
        frames_max: usize,
        on_frame: &mut dyn FnMut(&[u8]),
    ) -> io::Result<bool> {
        let mut frames = 0;
        while frames < frames_max {
            if self.loaded.is_none() && self.queue.is_empty() {
                let now = Instant::now();
                let due = self
                    .last_scan
                    .is_none_or(|t| now.saturating_duration_since(t) >= self.config.scan_interval);
                if !due {
                    break;
                }
                self.last_scan = Some(now);
                self.scan().map_err(|e| closed(e.kind(), &self.name, e))?;
                if self.queue.is_empty() {
                    break;
                }
            }
            self.load_next()?;
            let Some(loaded) = &mut self.loaded else {
                continue;
            };
            while loaded.next < loaded.ranges.len() && frames < frames_max {
                let range = loaded.ranges[loaded.next].clone();
                loaded.next += 1;
                self.counters.received(range.len());
                on_frame(&loaded.bytes[range]);
                frames += 1;
            }
            if loaded.next == loaded.ranges.len() {
                let path = loaded.path.clone();
                self.loaded = None;
                // Delivered: the batch is done. A crash before this line delivers it again.
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(closed(e.kind(), &self.name, e)),
                }
                // Found something: look again at once next time.
                self.last_scan = None;
            }
        }
        Ok(frames > 0)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<bool> {
        if frame.len() > self.config.frame_len_max as usize {
            self.counters.drop_frame(
                DropKind::Oversize,
                &self.name,
                format_args!(
                    "frame of {} bytes exceeds the link limit of {}",
                    frame.len(),
                    self.config.frame_len_max
                ),
            );
            return Ok(false);
        }
        if self.pending_files >= self.config.pending_files_max {
            if self.last_count.elapsed() >= self.config.scan_interval {
                self.recount()
                    .map_err(|e| closed(e.kind(), &self.name, e))?;
            }
            if self.pending_files >= self.config.pending_files_max {
                self.counters.drop_frame(
                    DropKind::SendFull,
                    &self.name,
                    format_args!("outbox full"),
                );
                return Ok(false);
            }
        }
        self.batch.push(frame);
        self.counters.sent(frame.len());
        if self.batch.len() >= self.config.batch_bytes_max {
            self.write_batch()?;
        }
        Ok(true)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_batch()
    }

    fn dropped(&self) -> u64 {
        self.counters.dropped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static DIRS: AtomicUsize = AtomicUsize::new(0);

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tamtam-file-unit-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn frame(len: usize, fill: u8) -> Vec<u8> {
        vec![fill; len]
    }

    fn config() -> FileConfig {
        FileConfig {
            frame_len_max: 1000,
            scan_interval: Duration::ZERO,
            ..FileConfig::default()
        }
    }

    fn recv(link: &mut FileLink) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        link.poll_recv(usize::MAX, &mut |f| got.push(f.to_vec()))
            .unwrap();
        got
    }

    #[test]
    fn batch_round_trip_and_every_truncation_is_rejected() {
        let mut writer = BatchWriter::new();
        for i in 0..5 {
            writer.push(&frame(48 + i * 10, i as u8));
        }
        let bytes = writer.finish().to_vec();
        let ranges = check_batch(&bytes, 1000).unwrap();
        assert_eq!(ranges.len(), 5);
        assert_eq!(&bytes[ranges[2].clone()], &frame(68, 2)[..]);
        for len in 0..bytes.len() {
            assert!(
                check_batch(&bytes[..len], 1000).is_err(),
                "truncated to {len}"
            );
        }
        for bit in 0..bytes.len() * 8 {
            let mut noisy = bytes.clone();
            noisy[bit / 8] ^= 1 << (bit % 8);
            assert!(check_batch(&noisy, 1000).is_err(), "bit {bit}");
        }
        assert!(matches!(
            check_batch(&bytes, 80),
            Err(BatchError::FrameLength { .. })
        ));
    }

    #[test]
    fn frames_cross_in_order_through_files() {
        let dir = temp();
        let mut a = FileLink::open(dir.join("ab"), dir.join("ba"), &config()).unwrap();
        let mut b = FileLink::open(dir.join("ba"), dir.join("ab"), &config()).unwrap();
        let mut expected = Vec::new();
        for round in 0..5u8 {
            for i in 0..3u8 {
                let f = frame(50 + i as usize, round * 3 + i);
                assert!(a.send(&f).unwrap());
                expected.push(f);
            }
            a.flush().unwrap();
        }
        assert_eq!(recv(&mut b), expected);
        assert!(recv(&mut b).is_empty());
        assert_eq!(
            fs::read_dir(dir.join("ab"))
                .unwrap()
                .filter(|e| e
                    .as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == EXTENSION))
                .count(),
            0,
            "delivered batches are deleted"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn torn_and_garbage_files_are_never_delivered() {
        let dir = temp();
        let mut b = FileLink::open(dir.join("ba"), dir.join("ab"), &config()).unwrap();
        let mut writer = BatchWriter::new();
        writer.push(&frame(60, 1));
        let good = writer.finish().to_vec();
        // A torn copy (as from a crash during a copy onto media), garbage, and a temp file.
        fs::write(dir.join("ab").join("00000000000000000001.ttb"), &good[..40]).unwrap();
        fs::write(dir.join("ab").join("00000000000000000002.ttb"), b"garbage").unwrap();
        fs::write(dir.join("ab").join(".tmp-whatever"), &good).unwrap();
        fs::write(dir.join("ab").join("00000000000000000003.ttb"), &good).unwrap();
        assert_eq!(recv(&mut b), vec![frame(60, 1)]);
        assert_eq!(b.counters().snapshot().malformed, 2);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_writer_per_outbox_and_stale_temp_files_are_cleaned() {
        let dir = temp();
        let a = FileLink::open(dir.join("ab"), dir.join("ba"), &config()).unwrap();
        assert!(FileLink::open(dir.join("ab"), dir.join("xx"), &config()).is_err());
        drop(a);
        fs::write(dir.join("ab").join(TMP_DIR).join("1.ttb.tmp"), b"half").unwrap();
        let _a = FileLink::open(dir.join("ab"), dir.join("ba"), &config()).unwrap();
        assert_eq!(
            fs::read_dir(dir.join("ab").join(TMP_DIR)).unwrap().count(),
            0
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn outbox_is_bounded() {
        let dir = temp();
        let config = FileConfig {
            pending_files_max: 3,
            ..config()
        };
        let mut a = FileLink::open(dir.join("ab"), dir.join("ba"), &config).unwrap();
        for _ in 0..3 {
            assert!(a.send(&frame(60, 1)).unwrap());
            a.flush().unwrap();
        }
        assert!(!a.send(&frame(60, 1)).unwrap());
        let mut b = FileLink::open(dir.join("ba"), dir.join("ab"), &config).unwrap();
        assert_eq!(recv(&mut b).len(), 3);
        assert!(
            a.send(&frame(60, 1)).unwrap(),
            "room after the reader took them"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_reader_restarted_before_deleting_delivers_again() {
        let dir = temp();
        let mut a = FileLink::open(dir.join("ab"), dir.join("ba"), &config()).unwrap();
        assert!(a.send(&frame(60, 1)).unwrap());
        assert!(a.send(&frame(60, 2)).unwrap());
        a.flush().unwrap();
        let mut b = FileLink::open(dir.join("ba"), dir.join("ab"), &config()).unwrap();
        let mut got = Vec::new();
        b.poll_recv(1, &mut |f| got.push(f.to_vec())).unwrap();
        assert_eq!(got.len(), 1);
        drop(b); // "crash" in the middle of the batch
        let mut b = FileLink::open(dir.join("ba"), dir.join("ab"), &config()).unwrap();
        assert_eq!(recv(&mut b), vec![frame(60, 1), frame(60, 2)]);
        let _ = fs::remove_dir_all(&dir);
    }
}
