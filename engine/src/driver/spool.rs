//! The disk spool: where inbound bulk objects land, segment by segment, at their offsets.
//!
//! For an object with spool key `K` the spool keeps, in its directory:
//!
//! - `K.part`: the object's bytes, preallocated to its size; each segment is written at its
//!   offset (`pwrite`, through the reactor). Segments whose offset and length are multiples
//!   of 4 KiB (all but a short last one, with the default 64 KiB segments) are written
//!   through a second descriptor opened with `O_DIRECT`, from the reactor's aligned (under
//!   io_uring, registered) buffers: they bypass the page cache, so a large transfer neither
//!   evicts the receiver's cache nor leaves gigabytes of dirty pages for the final
//!   `fdatasync`. Where the file system refuses `O_DIRECT` (at open, or `EINVAL` on a
//!   write), the spool falls back to the buffered descriptor for that object.
//! - `K.log`: an append-only log of stored segments, one 12-byte record each:
//!   `segment u32 | crc32c u32 | check u32` where `check` is the CRC32C of the first 8 bytes.
//!   A record is appended only after its segment's write completed, so after a process crash
//!   (`kill -9`) the log never names a segment whose bytes are missing; a torn or corrupt tail
//!   record is ignored. On reopen the log gives the segment map to resume from.
//!
//! Finishing makes the data durable (`fdatasync`), then verifies the object's CRC32C by
//! combining the per-segment CRCs in order (no re-read), then renames `K.part` to `K` and
//! removes the log. Only then does the bus send the final ACK.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::core::bulk::IoFailure;

const RECORD_LEN: usize = 12;

/// One open inbound object.
#[derive(Debug)]
pub struct SpoolFile {
    /// The data file.
    pub data: File,
    /// The data file opened again with `O_DIRECT`, while direct writes work on it.
    direct: Option<File>,
    log: File,
    log_len: u64,
    /// Object size.
    pub len: u64,
    /// Segment size.
    pub segment_len: u32,
    /// CRC32C of each stored segment (0 until stored).
    crcs: Vec<u32>,
    stored: Vec<bool>,
}

/// The spool directory and its open objects.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    open: HashMap<String, SpoolFile>,
}

impl Spool {
    /// A spool in `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Spool> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Spool {
            dir,
            open: HashMap::new(),
        })
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a finished object with `key` lives.
    pub fn final_path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// Opens or creates the spool for `key`; returns the stored segment ranges to resume from.
    pub fn open(
        &mut self,
        key: &str,
        len: u64,
        segment_len: u32,
        segment_count: u32,
    ) -> Result<Vec<(u32, u32)>, IoFailure> {
        if self.final_path(key).exists() {
            // Finished before (the final ACK may have been lost): everything is stored. Reopen
            // the finished file so `finish` can verify it again.
            let data = File::open(self.final_path(key)).map_err(|_| IoFailure::Io)?;
            let crcs = segment_crcs_of(&data, len, segment_len).map_err(|_| IoFailure::Io)?;
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(format!("{key}.donelog")))
                .map_err(|_| IoFailure::Io)?;
            self.open.insert(
                key.to_owned(),
                SpoolFile {
                    data,
                    direct: None,
                    log,
                    log_len: 0,
                    len,
                    segment_len,
                    stored: vec![true; segment_count as usize],
                    crcs,
                },
            );
            return Ok(vec![(0, segment_count)]);
        }
        let part = self.dir.join(format!("{key}.part"));
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part)
            .map_err(map_io)?;
        if data.metadata().map_err(map_io)?.len() != len {
            data.set_len(len).map_err(map_io)?;
            preallocate(&data, len)?;
        }
        let log_path = self.dir.join(format!("{key}.log"));
        let mut log = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)
            .map_err(map_io)?;
        let mut records = Vec::new();
        log.read_to_end(&mut records).map_err(map_io)?;
        let mut stored = vec![false; segment_count as usize];
        let mut crcs = vec![0u32; segment_count as usize];
        let mut valid = 0usize;
        for record in records.chunks_exact(RECORD_LEN) {
            let segment = u32::from_le_bytes(record[0..4].try_into().expect("4 bytes"));
            let crc = u32::from_le_bytes(record[4..8].try_into().expect("4 bytes"));
            let check = u32::from_le_bytes(record[8..12].try_into().expect("4 bytes"));
            if crc32c::crc32c(&record[..8]) != check || segment >= segment_count {
                break; // A torn tail: everything after it is ignored.
            }
            stored[segment as usize] = true;
            crcs[segment as usize] = crc;
            valid += RECORD_LEN;
        }
        if valid != records.len() {
            log.set_len(valid as u64).map_err(map_io)?;
        }
        let ranges = ranges_of(&stored);
        let direct = open_direct(&part);
        self.open.insert(
            key.to_owned(),
            SpoolFile {
                data,
                direct,
                log,
                log_len: valid as u64,
                len,
                segment_len,
                crcs,
                stored,
            },
        );
        Ok(ranges)
    }

    /// The open file for `key`.
    pub fn file(&self, key: &str) -> Option<&SpoolFile> {
        self.open.get(key)
    }

    /// Stops direct writes to `key` (the file system refused one): later segments go through
    /// the buffered descriptor.
    pub fn disable_direct(&mut self, key: &str) {
        if let Some(file) = self.open.get_mut(key) {
            file.direct = None;
        }
    }

    /// Records that `segment` (with these bytes' CRC) is written.
    pub fn segment_written(&mut self, key: &str, segment: u32, crc: u32) -> Result<(), IoFailure> {
        let file = self.open.get_mut(key).ok_or(IoFailure::Io)?;
        let index = segment as usize;
        if index >= file.stored.len() {
            return Err(IoFailure::Io);
        }
        if file.stored[index] {
            return Ok(());
        }
        let mut record = [0u8; RECORD_LEN];
        record[0..4].copy_from_slice(&segment.to_le_bytes());
        record[4..8].copy_from_slice(&crc.to_le_bytes());
        let check = crc32c::crc32c(&record[..8]);
        record[8..12].copy_from_slice(&check.to_le_bytes());
        super::poll::pwrite_all(file.log.as_raw_fd(), &record, file.log_len).map_err(map_io)?;
        file.log_len += RECORD_LEN as u64;
        file.stored[index] = true;
        file.crcs[index] = crc;
        Ok(())
    }

    /// Verifies the object's CRC32C from the segment CRCs (after the data was synced), then
    /// renames it into place. Returns the final path.
    pub fn finish(&mut self, key: &str, expected: u32) -> Result<PathBuf, IoFailure> {
        let file = self.open.get(key).ok_or(IoFailure::Io)?;
        if file.stored.iter().any(|s| !s) {
            return Err(IoFailure::Io);
        }
        let mut crc = 0u32;
        let mut first = true;
        for (index, &segment_crc) in file.crcs.iter().enumerate() {
            let offset = index as u64 * u64::from(file.segment_len);
            let len = (file.len - offset).min(u64::from(file.segment_len)) as usize;
            if first {
                crc = segment_crc;
                first = false;
            } else {
                crc = crc32c::crc32c_combine(crc, segment_crc, len);
            }
        }
        if file.len == 0 {
            crc = 0;
        }
        if crc != expected {
            // Nothing of it can be trusted: start over.
            self.discard(key);
            return Err(IoFailure::CrcMismatch);
        }
        let final_path = self.final_path(key);
        let part = self.dir.join(format!("{key}.part"));
        if part.exists() {
            std::fs::rename(&part, &final_path).map_err(map_io)?;
            sync_dir(&self.dir);
        }
        let _ = std::fs::remove_file(self.dir.join(format!("{key}.log")));
        let _ = std::fs::remove_file(self.dir.join(format!("{key}.donelog")));
        self.open.remove(key);
        Ok(final_path)
    }

    /// Forgets an object and deletes its partial files.
    pub fn discard(&mut self, key: &str) {
        self.open.remove(key);
        let _ = std::fs::remove_file(self.dir.join(format!("{key}.part")));
        let _ = std::fs::remove_file(self.dir.join(format!("{key}.log")));
    }

    /// Closes every open object (files stay for a resume).
    pub fn close_all(&mut self) {
        self.open.clear();
    }
}

impl SpoolFile {
    /// The `O_DIRECT` descriptor of the data file, if direct writes are on for it.
    pub fn direct_fd(&self) -> Option<std::os::fd::RawFd> {
        self.direct.as_ref().map(AsRawFd::as_raw_fd)
    }
}

/// Opens `path` for direct writes; None where the file system does not support `O_DIRECT`
/// (tmpfs before Linux 6.6, some FUSE and network file systems).
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

fn segment_crcs_of(file: &File, len: u64, segment_len: u32) -> io::Result<Vec<u32>> {
    let count = len.div_ceil(u64::from(segment_len)).max(1) as usize;
    let mut crcs = Vec::with_capacity(count);
    let mut buffer = vec![0u8; segment_len as usize];
    for index in 0..count {
        let offset = index as u64 * u64::from(segment_len);
        let n = (len - offset.min(len)).min(u64::from(segment_len)) as usize;
        let read = super::poll::pread_all(file.as_raw_fd(), &mut buffer[..n], offset)?;
        crcs.push(crc32c::crc32c(&buffer[..read]));
    }
    Ok(crcs)
}

fn ranges_of(stored: &[bool]) -> Vec<(u32, u32)> {
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < stored.len() {
        if stored[i] {
            let start = i;
            while i < stored.len() && stored[i] {
                i += 1;
            }
            ranges.push((start as u32, (i - start) as u32));
        } else {
            i += 1;
        }
    }
    ranges
}

fn preallocate(file: &File, len: u64) -> Result<(), IoFailure> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: plain syscall on an fd we own. EOPNOTSUPP (tmpfs on old kernels) is not fatal:
    // set_len already sized the file; the space is then claimed on write.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSPC) {
            return Err(IoFailure::NoSpace);
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Maps an I/O error to the bus's failure kinds.
pub fn map_io(e: io::Error) -> IoFailure {
    if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) {
        IoFailure::NoSpace
    } else {
        IoFailure::Io
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tamtam-spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn resume_from_log_after_reopen_and_verify() {
        let dir = tempdir("resume");
        let object: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let seg = 1000u32;
        let count = 10;
        let mut spool = Spool::new(&dir).unwrap();
        assert_eq!(
            spool.open("k", object.len() as u64, seg, count).unwrap(),
            vec![]
        );
        for s in [0u32, 1, 2, 5] {
            let bytes = &object[(s * seg) as usize..((s + 1) * seg) as usize];
            let fd = spool.file("k").unwrap().data.as_raw_fd();
            super::super::poll::pwrite_all(fd, bytes, u64::from(s * seg)).unwrap();
            spool
                .segment_written("k", s, crc32c::crc32c(bytes))
                .unwrap();
        }
        drop(spool);
        let mut spool = Spool::new(&dir).unwrap();
        let ranges = spool.open("k", object.len() as u64, seg, count).unwrap();
        assert_eq!(ranges, vec![(0, 3), (5, 1)]);
        for s in [3u32, 4, 6, 7, 8, 9] {
            let bytes = &object[(s * seg) as usize..((s + 1) * seg) as usize];
            let fd = spool.file("k").unwrap().data.as_raw_fd();
            super::super::poll::pwrite_all(fd, bytes, u64::from(s * seg)).unwrap();
            spool
                .segment_written("k", s, crc32c::crc32c(bytes))
                .unwrap();
        }
        let path = spool.finish("k", crc32c::crc32c(&object)).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), object);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn crc_mismatch_discards() {
        let dir = tempdir("mismatch");
        let mut spool = Spool::new(&dir).unwrap();
        spool.open("k", 4, 4, 1).unwrap();
        spool.segment_written("k", 0, 123).unwrap();
        assert_eq!(spool.finish("k", 999), Err(IoFailure::CrcMismatch));
        assert!(!dir.join("k.part").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
