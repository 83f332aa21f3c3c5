//! The durable outbox: a journal of ACK-required messages, written before they are sent.
//!
//! File layout: a 16-byte file header `"TTOB" | version u32 (1) | incarnation u32 | check u32`
//! (check = CRC32C of the first 12 bytes), then records:
//!
//! ```text
//! kind u8 | len u32 | body (len bytes) | crc32c u32 (over kind, len and body)
//! kind 1 SEND: request_id u64 | destination u32 | seq u32 | frame (the encoded frame)
//! kind 2 DONE: request_id u64 | destination u32
//! kind 3 MARK: next_request u32 | n u32 | (destination u32 | next_seq u32) × n
//! ```
//!
//! Replay keeps SEND records without a DONE, and the highest sequence per destination and the
//! highest request counter ever journaled, so a restarted station continues its channels
//! where it stopped (same sequence space; restored messages keep their request ids and so their
//! old epoch, new messages get the new incarnation): receivers suppress the resent duplicates,
//! and nothing ACK-required is lost. A torn tail (crash mid-append) is
//! ignored. The journal is compacted (rewritten to a temp file, then renamed) when mostly
//! resolved.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::core::bus::JournalEntry;

const MAGIC: &[u8; 4] = b"TTOB";
const VERSION: u32 = 1;
const FILE_HEADER_LEN: usize = 16;
const COMPACT_AFTER_RECORDS: usize = 65_536;

/// What a journal replay found.
#[derive(Debug, Default)]
pub struct OutboxState {
    /// The incarnation the journal belongs to (0: new journal).
    pub incarnation: u32,
    /// The next request counter.
    pub next_request: u32,
    /// The next channel sequence per destination.
    pub next_seqs: BTreeMap<u32, u32>,
    /// Messages journaled and not resolved, in journal order.
    pub entries: Vec<JournalEntry>,
}

/// An open journal.
#[derive(Debug)]
pub struct Outbox {
    path: PathBuf,
    file: File,
    incarnation: u32,
    live: HashMap<(u64, u32), JournalEntry>,
    order: Vec<(u64, u32)>,
    next_request: u32,
    next_seqs: BTreeMap<u32, u32>,
    records: usize,
    failed: bool,
}

impl Outbox {
    /// Opens (or creates) the journal at `path` and replays it.
    pub fn open(path: &Path) -> io::Result<(Outbox, OutboxState)> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let mut bytes = Vec::new();
        if path.exists() {
            File::open(path)?.read_to_end(&mut bytes)?;
        }
        let mut state = OutboxState::default();
        let mut live: HashMap<(u64, u32), JournalEntry> = HashMap::new();
        let mut order = Vec::new();
        let mut records = 0;
        let mut valid = 0;
        if bytes.len() >= FILE_HEADER_LEN && &bytes[0..4] == MAGIC {
            let check = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
            let version = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
            if crc32c::crc32c(&bytes[..12]) == check && version == VERSION {
                state.incarnation = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
                valid = FILE_HEADER_LEN;
                let mut at = FILE_HEADER_LEN;
                while let Some((kind, body, next)) = read_record(&bytes, at) {
                    records += 1;
                    apply(kind, body, &mut state, &mut live, &mut order);
                    at = next;
                    valid = next;
                }
            }
        }
        let file = if valid == 0 {
            // New (or unreadable) journal: a fresh incarnation is chosen by the station and
            // written on the first append through `set_incarnation`.
            let mut file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .read(true)
                .open(path)?;
            file.flush()?;
            file
        } else {
            let file = OpenOptions::new().read(true).write(true).open(path)?;
            file.set_len(valid as u64)?;
            file
        };
        order.retain(|id| live.contains_key(id));
        state.entries = order
            .iter()
            .filter_map(|id| live.get(id).cloned())
            .collect();
        let outbox = Outbox {
            path: path.to_path_buf(),
            file,
            incarnation: state.incarnation,
            live,
            order,
            next_request: state.next_request,
            next_seqs: state.next_seqs.clone(),
            records,
            failed: false,
        };
        Ok((outbox, state))
    }

    /// The incarnation recorded in the journal (0 if new).
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }

    /// Writes the file header for a new journal.
    pub fn set_incarnation(&mut self, incarnation: u32) -> io::Result<()> {
        self.incarnation = incarnation;
        let mut header = Vec::with_capacity(FILE_HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&incarnation.to_le_bytes());
        let check = crc32c::crc32c(&header);
        header.extend_from_slice(&check.to_le_bytes());
        self.file.set_len(0)?;
        super::poll::pwrite_all(self.file.as_raw_fd(), &header, 0)?;
        self.file.sync_data()?;
        Ok(())
    }

    /// Journals a message before it is sent. Returns false (and the message must not be sent)
    /// when the write failed, for example on a full disk.
    pub fn journal(&mut self, entry: &JournalEntry) -> bool {
        let mut body = Vec::with_capacity(16 + entry.frame.len());
        body.extend_from_slice(&entry.request_id.to_le_bytes());
        body.extend_from_slice(&entry.destination.to_le_bytes());
        body.extend_from_slice(&entry.seq.to_le_bytes());
        body.extend_from_slice(&entry.frame);
        if self.append(1, &body).is_err() {
            self.failed = true;
            return false;
        }
        let counter = entry.request_id as u32;
        self.next_request = self.next_request.max(counter.wrapping_add(1));
        let next = self.next_seqs.entry(entry.destination).or_default();
        *next = (*next).max(entry.seq.wrapping_add(1));
        let key = (entry.request_id, entry.destination);
        self.live.insert(key, entry.clone());
        self.order.push(key);
        true
    }

    /// Records that the copy of a message for `destination` was acknowledged or dead-lettered.
    pub fn resolved(&mut self, request_id: u64, destination: u32) {
        if self.live.remove(&(request_id, destination)).is_none() {
            return;
        }
        let mut body = [0u8; 12];
        body[..8].copy_from_slice(&request_id.to_le_bytes());
        body[8..].copy_from_slice(&destination.to_le_bytes());
        let _ = self.append(2, &body);
        if self.records >= COMPACT_AFTER_RECORDS && self.live.len() * 4 < self.records {
            let _ = self.compact();
        }
    }

    /// Messages journaled and unresolved.
    pub fn pending(&self) -> usize {
        self.live.len()
    }

    fn append(&mut self, kind: u8, body: &[u8]) -> io::Result<()> {
        let mut record = Vec::with_capacity(9 + body.len());
        record.push(kind);
        record.extend_from_slice(&(body.len() as u32).to_le_bytes());
        record.extend_from_slice(body);
        let crc = crc32c::crc32c(&record);
        record.extend_from_slice(&crc.to_le_bytes());
        self.file.write_all_at_end(&record)?;
        self.records += 1;
        Ok(())
    }

    /// Rewrites the journal with only the live records and the high-water marks.
    fn compact(&mut self) -> io::Result<()> {
        let temp = self.path.with_extension("compact");
        let (mut next, _) = {
            let _ = std::fs::remove_file(&temp);
            Outbox::open(&temp)?
        };
        next.set_incarnation(self.incarnation)?;
        let mut mark = Vec::new();
        mark.extend_from_slice(&self.next_request.to_le_bytes());
        mark.extend_from_slice(&(self.next_seqs.len() as u32).to_le_bytes());
        for (&destination, &seq) in &self.next_seqs {
            mark.extend_from_slice(&destination.to_le_bytes());
            mark.extend_from_slice(&seq.to_le_bytes());
        }
        next.append(3, &mark)?;
        for id in self.order.clone() {
            if let Some(entry) = self.live.get(&id).cloned() {
                next.journal(&entry);
            }
        }
        next.file.sync_data()?;
        std::fs::rename(&temp, &self.path)?;
        self.file = next.file;
        self.records = next.records;
        self.order.retain(|id| self.live.contains_key(id));
        Ok(())
    }
}

trait AppendAtEnd {
    fn write_all_at_end(&mut self, bytes: &[u8]) -> io::Result<()>;
}

impl AppendAtEnd for File {
    fn write_all_at_end(&mut self, bytes: &[u8]) -> io::Result<()> {
        let end = self.metadata()?.len();
        super::poll::pwrite_all(self.as_raw_fd(), bytes, end).map(|_| ())
    }
}

fn read_record(bytes: &[u8], at: usize) -> Option<(u8, &[u8], usize)> {
    let kind = *bytes.get(at)?;
    let len = u32::from_le_bytes(bytes.get(at + 1..at + 5)?.try_into().ok()?) as usize;
    let body_end = at.checked_add(5)?.checked_add(len)?;
    let crc_end = body_end.checked_add(4)?;
    let record = bytes.get(at..body_end)?;
    let crc = u32::from_le_bytes(bytes.get(body_end..crc_end)?.try_into().ok()?);
    if crc32c::crc32c(record) != crc {
        return None;
    }
    Some((kind, &bytes[at + 5..body_end], crc_end))
}

fn apply(
    kind: u8,
    body: &[u8],
    state: &mut OutboxState,
    live: &mut HashMap<(u64, u32), JournalEntry>,
    order: &mut Vec<(u64, u32)>,
) {
    let u32_at = |i: usize| {
        body.get(i..i + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
    };
    let u64_at = |i: usize| {
        body.get(i..i + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8")))
    };
    match kind {
        1 => {
            let (Some(request_id), Some(destination), Some(seq)) =
                (u64_at(0), u32_at(8), u32_at(12))
            else {
                return;
            };
            let entry = JournalEntry {
                request_id,
                destination,
                seq,
                frame: body[16..].to_vec(),
            };
            state.next_request = state.next_request.max((request_id as u32).wrapping_add(1));
            let next = state.next_seqs.entry(destination).or_default();
            *next = (*next).max(seq.wrapping_add(1));
            live.insert((request_id, destination), entry);
            order.push((request_id, destination));
        }
        2 => {
            if let (Some(request_id), Some(destination)) = (u64_at(0), u32_at(8)) {
                live.remove(&(request_id, destination));
            }
        }
        3 => {
            let (Some(next_request), Some(n)) = (u32_at(0), u32_at(4)) else {
                return;
            };
            state.next_request = state.next_request.max(next_request);
            for i in 0..n as usize {
                let (Some(destination), Some(seq)) = (u32_at(8 + i * 8), u32_at(12 + i * 8)) else {
                    return;
                };
                let next = state.next_seqs.entry(destination).or_default();
                *next = (*next).max(seq);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(request_id: u64, destination: u32, seq: u32) -> JournalEntry {
        JournalEntry {
            request_id,
            destination,
            seq,
            frame: vec![request_id as u8; 10],
        }
    }

    #[test]
    fn replay_keeps_unresolved_and_high_water_marks() {
        let path = std::env::temp_dir().join(format!("tamtam-outbox-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        {
            let (mut outbox, state) = Outbox::open(&path).unwrap();
            assert_eq!(state.incarnation, 0);
            outbox.set_incarnation(42).unwrap();
            assert!(outbox.journal(&entry((42 << 32) | 1, 7, 0)));
            assert!(outbox.journal(&entry((42 << 32) | 2, 7, 1)));
            assert!(outbox.journal(&entry((42 << 32) | 3, 9, 0)));
            outbox.resolved((42 << 32) | 2, 7);
            outbox.resolved((42 << 32) | 3, 9);
        }
        // A torn tail record is ignored.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[1, 200, 0, 0, 0, 1, 2]);
        std::fs::write(&path, bytes).unwrap();
        let (outbox, state) = Outbox::open(&path).unwrap();
        assert_eq!(state.incarnation, 42);
        assert_eq!(state.next_request, 4);
        assert_eq!(state.next_seqs.get(&7), Some(&2));
        assert_eq!(state.next_seqs.get(&9), Some(&1));
        assert_eq!(state.entries.len(), 1);
        assert_eq!(state.entries[0].request_id, (42 << 32) | 1);
        assert_eq!(outbox.pending(), 1);
        let _ = std::fs::remove_file(&path);
    }
}
