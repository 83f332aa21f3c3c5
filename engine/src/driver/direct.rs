//! Aligned buffers for direct (`O_DIRECT`) spool writes.
//!
//! A direct write bypasses the page cache: the kernel DMAs straight from the caller's memory,
//! so the memory address, the file offset and the length must all be multiples of the
//! device's block size. A `Vec<u8>` gives no such promise, so each reactor owns a small
//! [`DirectPool`] of page-aligned buffers; a spool write copies its segment into one (a
//! `memcpy`, ~20x cheaper than the disk write it feeds) and the reactor owns the buffer until
//! the write completes. Under io_uring the pool is registered with the ring
//! (`IORING_REGISTER_BUFFERS`) and written with `WRITE_FIXED`, which saves the kernel pinning
//! and unpinning the pages on every write.
//!
//! Registered memory counts against the `RLIMIT_MEMLOCK` of the process owner unless it has
//! `CAP_IPC_LOCK`; a pool whose registration the kernel refuses still works, unregistered
//! (see [`DirectPool::registered`] and `StationBuilder::require_registered_buffers`).

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// Alignment of a direct write's memory, offset and length: 4 KiB, the largest logical block
/// size of common devices (512-byte devices accept it too).
pub const DIRECT_ALIGN: usize = 4096;

/// Bytes of aligned buffers per reactor, at most (the buffer count is this divided by the
/// buffer length, at least 2).
pub const DIRECT_POOL_BYTES: usize = 1 << 20;

/// The default length of one pooled buffer: the default bulk segment (64 KiB).
pub const DIRECT_BUF_LEN_DEFAULT: usize = 64 * 1024;

/// One page-aligned heap buffer of fixed capacity.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    capacity: usize,
}

// SAFETY: the buffer is plain owned heap memory with no thread affinity.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `capacity` bytes (rounded up to [`DIRECT_ALIGN`]), aligned to
    /// [`DIRECT_ALIGN`].
    pub fn new(capacity: usize) -> AlignedBuf {
        let capacity = capacity.max(1).next_multiple_of(DIRECT_ALIGN);
        let layout = AlignedBuf::layout(capacity);
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        AlignedBuf { ptr, capacity }
    }

    fn layout(capacity: usize) -> Layout {
        Layout::from_size_align(capacity, DIRECT_ALIGN).expect("aligned buffer layout")
    }

    /// Capacity in bytes (a multiple of [`DIRECT_ALIGN`]).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The start of the buffer (stable for the buffer's life).
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The whole buffer.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the allocation is `capacity` initialised (zeroed) bytes owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.capacity) }
    }

    /// The whole buffer.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.capacity) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this very layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), AlignedBuf::layout(self.capacity)) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// Whether `offset` and `len` suit a direct write (memory alignment is the pool's business).
pub fn is_direct_aligned(offset: u64, len: usize) -> bool {
    len > 0 && offset % DIRECT_ALIGN as u64 == 0 && len % DIRECT_ALIGN == 0
}

/// A fixed set of aligned buffers, lent one per direct write and handed back on completion.
#[derive(Debug)]
pub struct DirectPool {
    buffers: Vec<AlignedBuf>,
    free: Vec<u16>,
    registered: bool,
}

impl DirectPool {
    /// A pool of buffers of `buffer_len` bytes (rounded up to [`DIRECT_ALIGN`]), as many as
    /// fit in [`DIRECT_POOL_BYTES`], at least 2 and at most 64.
    pub fn new(buffer_len: usize) -> DirectPool {
        let buffer_len = buffer_len.max(DIRECT_ALIGN).next_multiple_of(DIRECT_ALIGN);
        let count = (DIRECT_POOL_BYTES / buffer_len).clamp(2, 64);
        let buffers: Vec<AlignedBuf> = (0..count).map(|_| AlignedBuf::new(buffer_len)).collect();
        DirectPool {
            free: (0..count as u16).rev().collect(),
            buffers,
            registered: false,
        }
    }

    /// A pool with no buffers (every [`DirectPool::lend`] refuses).
    pub fn empty() -> DirectPool {
        DirectPool {
            buffers: Vec::new(),
            free: Vec::new(),
            registered: false,
        }
    }

    /// The length of each buffer.
    pub fn buffer_len(&self) -> usize {
        self.buffers.first().map_or(0, AlignedBuf::capacity)
    }

    /// Buffers in the pool.
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    /// True when the pool has no buffers.
    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }

    /// Buffers not lent.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// `(address, length)` of each buffer in index order, for registering with a ring.
    pub fn regions(&self) -> Vec<(*const u8, usize)> {
        self.buffers
            .iter()
            .map(|b| (b.as_ptr(), b.capacity()))
            .collect()
    }

    /// Marks the pool registered with a ring (its indexes are the ring's buffer indexes).
    pub fn set_registered(&mut self, registered: bool) {
        self.registered = registered;
    }

    /// Whether the pool is registered with a ring.
    pub fn registered(&self) -> bool {
        self.registered
    }

    /// Lends a buffer holding a copy of `bytes`: its index and address. None when `bytes` is
    /// longer than a buffer or every buffer is lent.
    pub fn lend(&mut self, bytes: &[u8]) -> Option<(u16, *const u8)> {
        if bytes.len() > self.buffer_len() {
            return None;
        }
        let index = self.free.pop()?;
        let buffer = &mut self.buffers[index as usize];
        buffer.as_mut_slice()[..bytes.len()].copy_from_slice(bytes);
        Some((index, buffer.as_ptr()))
    }

    /// Takes back a lent buffer.
    pub fn give_back(&mut self, index: u16) {
        debug_assert!(!self.free.contains(&index), "buffer {index} returned twice");
        if (index as usize) < self.buffers.len() {
            self.free.push(index);
        }
    }

    /// The bytes of buffer `index` (for tests and for synchronous writers).
    pub fn bytes(&self, index: u16) -> &[u8] {
        self.buffers[index as usize].as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_and_lent_until_given_back() {
        let mut pool = DirectPool::new(10_000);
        assert_eq!(pool.buffer_len(), 12_288);
        assert_eq!(pool.len(), (DIRECT_POOL_BYTES / 12_288).min(64));
        for (address, len) in pool.regions() {
            assert_eq!(address as usize % DIRECT_ALIGN, 0);
            assert_eq!(len, 12_288);
        }
        let data = vec![7u8; 12_288];
        let mut lent = Vec::new();
        while let Some((index, address)) = pool.lend(&data) {
            assert_eq!(address as usize % DIRECT_ALIGN, 0);
            assert_eq!(&pool.bytes(index)[..12_288], &data[..]);
            lent.push(index);
        }
        assert_eq!(lent.len(), pool.len(), "every buffer lent, then none");
        assert_eq!(pool.available(), 0);
        pool.give_back(lent[3]);
        assert_eq!(pool.lend(&data[..4096]).map(|(i, _)| i), Some(lent[3]));
        pool.give_back(lent[0]);
        assert!(
            pool.lend(&vec![0u8; 12_289]).is_none(),
            "longer than a buffer"
        );
        assert_eq!(pool.available(), 1, "a refusal lends nothing");
    }

    #[test]
    fn too_long_is_refused_and_alignment_checks() {
        let mut pool = DirectPool::new(4096);
        assert!(pool.lend(&[0u8; 4097]).is_none());
        assert_eq!(pool.available(), pool.len(), "a refusal lends nothing");
        assert!(is_direct_aligned(8192, 4096));
        assert!(!is_direct_aligned(8192, 100));
        assert!(!is_direct_aligned(100, 4096));
        assert!(!is_direct_aligned(0, 0));
    }
}
