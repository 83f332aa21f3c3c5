//! The simulated disk of one station: the receiver's spool and the sender's source objects.
//!
//! The spool survives a crash like a disk would: a segment is stored once its write completed
//! successfully (a write still in flight at the crash may or may not have reached the disk). A
//! write that fails stores nothing. `SpoolFinish` succeeds only when every segment is present
//! and the CRC32C of the whole object matches.

use std::collections::BTreeMap;
use std::sync::Arc;

/// One spooled object.
#[derive(Debug, Clone, Default)]
pub struct SpoolObject {
    /// Object size.
    pub len: u64,
    /// Segment size.
    pub segment_len: u32,
    /// Segments in the object.
    pub segment_count: u32,
    /// Stored segments.
    pub segments: BTreeMap<u32, Vec<u8>>,
    /// Made durable and verified by `SpoolFinish`.
    pub finished: bool,
}

impl SpoolObject {
    /// The stored segments as `(first, count)` ranges.
    pub fn ranges(&self) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        for &s in self.segments.keys() {
            match out.last_mut() {
                Some((first, count)) if *first + *count == s => *count += 1,
                _ => out.push((s, 1)),
            }
        }
        out
    }

    /// The object's bytes if every segment is stored.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        if self.segments.len() as u32 != self.segment_count {
            return None;
        }
        let mut out = Vec::with_capacity(self.len as usize);
        for data in self.segments.values() {
            out.extend_from_slice(data);
        }
        Some(out)
    }
}

/// One station's disk.
#[derive(Debug, Default)]
pub struct Disk {
    /// Spooled inbound objects by spool key.
    pub spool: BTreeMap<String, SpoolObject>,
    /// Outbound source objects by transfer id.
    pub sources: BTreeMap<u64, Arc<Vec<u8>>>,
}
