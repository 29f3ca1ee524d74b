//! `AlignedBlobBuf` — heap-allocated, 4 KB-aligned 512 KB buffer.
//!
//! All blob I/O in holt flows through this type so that:
//!
//! 1. Buffers can be handed directly to `O_DIRECT` files without a
//!    bounce copy — the kernel rejects unaligned submissions.
//! 2. Buffers can be registered with `io_uring`'s
//!    `register_buffers` for SQE-fast-path submission.
//! 3. `MemoryBlobStore` keeps an identical layout, so swapping
//!    stores never changes the on-the-wire shape of a blob.

use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
#[cfg(any(test, all(target_os = "linux", feature = "io-uring")))]
use std::sync::Arc;

use crate::layout::PAGE_SIZE;

#[cfg(any(test, all(target_os = "linux", feature = "io-uring")))]
use super::buffer_pool::{BlobBufPool, BlobBufPoolInner};

/// Buffer alignment in bytes. Matches the smallest NVMe physical
/// block, satisfies `O_DIRECT`'s alignment requirement on Linux,
/// and is a multiple of the page size on every supported arch.
pub const BUF_ALIGN: usize = 4096;

/// Fixed-buffer index exposed to `io_uring`'s `*_FIXED`
/// opcodes. The kernel ABI stores this index as `u16`, so the
/// allocator refuses larger pools.
pub(crate) type FixedBufferIndex = u16;

/// A heap-allocated, 4 KB-aligned, `PAGE_SIZE`-byte buffer.
///
/// One per logical blob in flight. Cheap to construct (single
/// `alloc`), cheap to clone (single `memcpy`). `Send + Sync` — the
/// raw pointer is the sole owner of its allocation.
pub struct AlignedBlobBuf {
    ptr: NonNull<u8>,
    owner: BlobBufOwner,
}

enum BlobBufOwner {
    Heap,
    /// NoKV patch: a private anonymous mapping of its own (see
    /// [`AlignedBlobBuf::fresh_zeroed`]); unmapped on drop.
    Mapped,
    #[cfg(any(test, all(target_os = "linux", feature = "io-uring")))]
    Pool {
        pool: Arc<BlobBufPoolInner>,
        index: FixedBufferIndex,
    },
}

impl AlignedBlobBuf {
    /// Allocate a zero-filled buffer.
    #[must_use]
    pub fn zeroed() -> Self {
        // NoKV patch: a recycled frame is resident already; zeroing it
        // is a plain memset instead of 128 page faults (see
        // `RecycledFrames`).
        if let Some(ptr) = RECYCLED.take() {
            let mut out = Self {
                ptr,
                owner: BlobBufOwner::Heap,
            };
            out.as_mut_slice().fill(0);
            return out;
        }
        let layout = Self::layout();
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Self {
            ptr,
            owner: BlobBufOwner::Heap,
        }
    }

    /// NoKV patch: a zero-filled frame whose pages are not touched yet.
    ///
    /// For a frame that will mostly stay empty (a fresh spillover child
    /// holds one migrated subtree, often a few percent of the frame):
    /// the frame is a private anonymous mapping, which the kernel
    /// guarantees to read as zeros, so nothing is written here and only
    /// the pages later written cost a page fault and resident memory.
    /// `zeroed` from the allocator instead memsets all 512 KB (128
    /// faults, each clearing a page, and 512 KB resident for good).
    /// Falls back to [`Self::zeroed`] when the mapping fails.
    #[must_use]
    pub fn fresh_zeroed() -> Self {
        #[cfg(unix)]
        {
            // SAFETY: a new private anonymous mapping of PAGE_SIZE bytes;
            // no existing memory is touched. mmap returns page-aligned
            // memory (the OS page size divides BUF_ALIGN on every
            // supported target, and BUF_ALIGN divides PAGE_SIZE).
            let raw = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    PAGE_SIZE as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if raw != libc::MAP_FAILED && (raw as usize) % BUF_ALIGN == 0 {
                if let Some(ptr) = NonNull::new(raw.cast::<u8>()) {
                    return Self {
                        ptr,
                        owner: BlobBufOwner::Mapped,
                    };
                }
            }
            if raw != libc::MAP_FAILED {
                // SAFETY: unmapping the mapping created just above.
                unsafe { libc::munmap(raw, PAGE_SIZE as usize) };
            }
        }
        Self::zeroed()
    }

    /// Allocate an uninitialized buffer.
    ///
    /// # Safety
    ///
    /// The returned buffer's bytes are uninitialized. The caller
    /// must initialize all `PAGE_SIZE` bytes before any operation
    /// reads the buffer contents, including [`Self::as_slice`],
    /// [`Clone::clone`], or `BlobStore::write_blob`.
    #[must_use]
    pub(crate) unsafe fn uninit() -> Self {
        // NoKV patch: reuse a recycled frame (its bytes are a previous
        // frame's, initialized memory; the caller overwrites them all).
        if let Some(ptr) = RECYCLED.take() {
            return Self {
                ptr,
                owner: BlobBufOwner::Heap,
            };
        }
        let layout = Self::layout();
        let raw = unsafe { alloc(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Self {
            ptr,
            owner: BlobBufOwner::Heap,
        }
    }

    /// Allocate an uninitialized frame from `pool`.
    ///
    /// Returns `None` when every fixed slot is currently leased;
    /// callers should fall back to [`Self::uninit`] in that case.
    ///
    /// # Safety
    ///
    /// Same contract as [`Self::uninit`]: initialize every byte
    /// before any operation reads the buffer contents.
    #[cfg(any(test, all(target_os = "linux", feature = "io-uring")))]
    #[must_use]
    pub(crate) unsafe fn pooled_uninit(pool: &BlobBufPool) -> Option<Self> {
        let index = pool.inner.alloc_slot()?;
        let ptr = pool.inner.ptr_for_index(index);
        Some(Self {
            ptr,
            owner: BlobBufOwner::Pool {
                pool: Arc::clone(&pool.inner),
                index,
            },
        })
    }

    /// Allocate a zero-filled frame from `pool`, falling back to
    /// `None` when the pool is exhausted.
    #[cfg(any(test, all(target_os = "linux", feature = "io-uring")))]
    #[must_use]
    pub(crate) fn pooled_zeroed(pool: &BlobBufPool) -> Option<Self> {
        // SAFETY: `fill(0)` initializes the full PAGE_SIZE buffer
        // before the value escapes this function.
        let mut out = unsafe { Self::pooled_uninit(pool)? };
        out.as_mut_slice().fill(0);
        Some(out)
    }

    /// `io_uring` fixed-buffer slot index when this buffer comes
    /// from a registered pool.
    #[must_use]
    pub(crate) fn fixed_buffer_index(&self) -> Option<FixedBufferIndex> {
        match &self.owner {
            BlobBufOwner::Heap | BlobBufOwner::Mapped => None,
            #[cfg(any(test, all(target_os = "linux", feature = "io-uring")))]
            BlobBufOwner::Pool { index, .. } => Some(*index),
        }
    }

    /// Raw pointer for FFI / io_uring `iovec`. Always non-null,
    /// always 4 KB-aligned, always `PAGE_SIZE` bytes valid.
    #[must_use]
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Mutable raw pointer. Same invariants as [`Self::as_ptr`].
    #[must_use]
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Read-only view as a slice of `PAGE_SIZE` bytes.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), PAGE_SIZE as usize) }
    }

    /// Mutable view as a slice of `PAGE_SIZE` bytes.
    #[must_use]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), PAGE_SIZE as usize) }
    }

    /// Length in bytes — always `PAGE_SIZE` (512 KB).
    #[must_use]
    pub const fn len(&self) -> usize {
        PAGE_SIZE as usize
    }

    /// `true` if `len() == 0` — always false; here for clippy.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        false
    }

    fn layout() -> Layout {
        Layout::from_size_align(PAGE_SIZE as usize, BUF_ALIGN)
            .expect("PAGE_SIZE/BUF_ALIGN both > 0 and BUF_ALIGN is a power of two")
    }
}

/// NoKV patch: heap frames freed and not yet returned to the allocator.
///
/// Fresh 512 KB frames are allocated all the time on the write path: a
/// new child blob on every spillover, a copy of every dirty frame in
/// every checkpoint round, a read-index image per written blob. glibc
/// serves that size with mmap/munmap or trims it back to the kernel, so
/// each allocation paid ~128 page faults (each clearing a 4 KB page) and
/// each free a munmap: a third of the CPU of an append-heavy insert
/// workload. Freed heap frames now go to this bounded global list and
/// the next allocation takes one from it.
///
/// Invariants: a frame in the list is a live allocation of
/// `AlignedBlobBuf::layout()` owned by nobody else; its bytes are
/// initialized (a previous frame's contents), so `uninit` may hand it
/// out under its usual contract and `zeroed` zeroes it. At most
/// `RECYCLED_FRAMES_MAX` frames (16 MiB) are kept; beyond that frames
/// are freed as before. Pool-owned (io_uring) frames never enter it.
struct RecycledFrames(std::sync::Mutex<Vec<RecycledPtr>>);

/// A recycled frame's address (owned by the list, see `RecycledFrames`).
struct RecycledPtr(NonNull<u8>);

// SAFETY: the pointer is an exclusively owned heap allocation; moving
// it between threads is what the allocator allows anyway.
unsafe impl Send for RecycledPtr {}

/// Recycled frames kept at most (16 MiB of 512 KB frames).
const RECYCLED_FRAMES_MAX: usize = 32;

static RECYCLED: RecycledFrames = RecycledFrames(std::sync::Mutex::new(Vec::new()));

impl RecycledFrames {
    fn take(&self) -> Option<NonNull<u8>> {
        let mut frames = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        frames.pop().map(|p| p.0)
    }

    /// Keeps `ptr` for reuse; false when the list is full (the caller
    /// frees it).
    fn put(&self, ptr: NonNull<u8>) -> bool {
        let mut frames = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if frames.len() >= RECYCLED_FRAMES_MAX {
            return false;
        }
        frames.push(RecycledPtr(ptr));
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

/// Scratch frames kept per thread (NoKV patch, see [`with_scratch_frame`]).
const SCRATCH_FRAMES_PER_THREAD: usize = 2;

std::thread_local! {
    static SCRATCH_FRAMES: std::cell::RefCell<Vec<AlignedBlobBuf>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// NoKV patch: runs `f` with a temporary heap frame taken from a small
/// per-thread cache, returned to it afterwards.
///
/// For images that are rebuilt from scratch and then copied elsewhere
/// (compaction's rebuild image, spillover's prepared parent). They used
/// to allocate a fresh zero-filled 512 KB frame each time and free it at
/// once: an allocation, a memset and (with glibc handing such sizes to
/// mmap/trim) ~128 page faults per compaction, which happens every few
/// dozen small inserts in an append-heavy workload.
///
/// The frame's contents on entry are unspecified but initialized (a
/// previous user's bytes, or zeros): callers must overwrite what they
/// read (`BlobFrame::init` zeroes the whole frame; a full copy overwrites
/// it). Nested calls get distinct frames. At most
/// `SCRATCH_FRAMES_PER_THREAD` frames stay cached per thread.
pub(crate) fn with_scratch_frame<R>(f: impl FnOnce(&mut AlignedBlobBuf) -> R) -> R {
    let cached = SCRATCH_FRAMES
        .try_with(|frames| frames.borrow_mut().pop())
        .ok()
        .flatten();
    let mut buf = cached.unwrap_or_else(AlignedBlobBuf::zeroed);
    let out = f(&mut buf);
    // A thread being torn down just drops the frame.
    let _ = SCRATCH_FRAMES.try_with(|frames| {
        let mut frames = frames.borrow_mut();
        if frames.len() < SCRATCH_FRAMES_PER_THREAD {
            frames.push(buf);
        }
    });
    out
}

impl Drop for AlignedBlobBuf {
    fn drop(&mut self) {
        match &self.owner {
            BlobBufOwner::Heap => {
                if !RECYCLED.put(self.ptr) {
                    unsafe { dealloc(self.ptr.as_ptr(), Self::layout()) }
                }
            }
            // SAFETY: `fresh_zeroed` mapped exactly PAGE_SIZE bytes here
            // and this buffer is their only owner.
            #[cfg(unix)]
            BlobBufOwner::Mapped => unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), PAGE_SIZE as usize);
            },
            #[cfg(not(unix))]
            BlobBufOwner::Mapped => {}
            #[cfg(any(test, all(target_os = "linux", feature = "io-uring")))]
            BlobBufOwner::Pool { pool, index } => pool.free_slot(*index),
        }
    }
}

impl Default for AlignedBlobBuf {
    fn default() -> Self {
        Self::zeroed()
    }
}

impl Clone for AlignedBlobBuf {
    fn clone(&self) -> Self {
        let mut out = match &self.owner {
            // SAFETY: copy_from_slice below initializes the full
            // PAGE_SIZE buffer before `out` is returned.
            BlobBufOwner::Heap | BlobBufOwner::Mapped => unsafe { Self::uninit() },
            #[cfg(any(test, all(target_os = "linux", feature = "io-uring")))]
            BlobBufOwner::Pool { pool, .. } => {
                let wrapper = BlobBufPool {
                    inner: Arc::clone(pool),
                };
                // SAFETY: copy_from_slice below initializes the full
                // PAGE_SIZE buffer before `out` is returned.
                if let Some(buf) = unsafe { Self::pooled_uninit(&wrapper) } {
                    buf
                } else {
                    // SAFETY: copy_from_slice below initializes the
                    // full PAGE_SIZE buffer before `out` is returned.
                    unsafe { Self::uninit() }
                }
            }
        };
        out.as_mut_slice().copy_from_slice(self.as_slice());
        out
    }
}

impl std::fmt::Debug for AlignedBlobBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AlignedBlobBuf({:p}, {} B, fixed={:?})",
            self.ptr.as_ptr(),
            PAGE_SIZE,
            self.fixed_buffer_index(),
        )
    }
}

// SAFETY: AlignedBlobBuf owns its allocation exclusively (no
// aliasing) and exposes Rust's normal &/&mut borrow rules through
// as_slice / as_mut_slice. Sending the owning struct across threads
// is therefore sound.
unsafe impl Send for AlignedBlobBuf {}
unsafe impl Sync for AlignedBlobBuf {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_is_zeroed() {
        let b = AlignedBlobBuf::zeroed();
        assert_eq!(b.len(), PAGE_SIZE as usize);
        assert!(b.as_slice().iter().all(|&x| x == 0));
    }

    #[test]
    fn pointer_is_4k_aligned() {
        for _ in 0..16 {
            let b = AlignedBlobBuf::zeroed();
            assert_eq!(b.as_ptr() as usize % BUF_ALIGN, 0);
        }
    }

    #[test]
    fn clone_is_independent_memcpy() {
        let mut a = AlignedBlobBuf::zeroed();
        a.as_mut_slice()[100] = 0xAB;
        let mut b = a.clone();
        assert_eq!(b.as_slice()[100], 0xAB);
        b.as_mut_slice()[100] = 0xCD;
        assert_eq!(a.as_slice()[100], 0xAB, "clone must not alias source");
        assert_eq!(b.as_slice()[100], 0xCD);
    }

    #[test]
    fn pooled_buffer_returns_fixed_index() {
        let pool = BlobBufPool::new(2).unwrap();
        let a = AlignedBlobBuf::pooled_zeroed(&pool).unwrap();
        let b = AlignedBlobBuf::pooled_zeroed(&pool).unwrap();
        assert_eq!(a.len(), PAGE_SIZE as usize);
        assert!(a.fixed_buffer_index().is_some());
        assert!(b.fixed_buffer_index().is_some());
        assert_ne!(a.fixed_buffer_index(), b.fixed_buffer_index());
        // SAFETY: no buffer is returned in this exhausted-pool case.
        assert!(unsafe { AlignedBlobBuf::pooled_uninit(&pool) }.is_none());
        drop(a);
        // SAFETY: the test does not read from the returned buffer.
        assert!(unsafe { AlignedBlobBuf::pooled_uninit(&pool) }.is_some());
    }

    #[test]
    fn pooled_buffer_free_list_survives_concurrent_churn() {
        let pool = BlobBufPool::new(8).unwrap();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                let pool = pool.clone();
                scope.spawn(move || {
                    for _ in 0..1000 {
                        let mut b = loop {
                            // SAFETY: the loop writes before dropping,
                            // and never reads the buffer contents.
                            if let Some(b) = unsafe { AlignedBlobBuf::pooled_uninit(&pool) } {
                                break b;
                            }
                            std::hint::spin_loop();
                        };
                        b.as_mut_slice()[0] = 0x7B;
                    }
                });
            }
        });
        let leased: Vec<_> = (0..8)
            .map(|_| {
                // SAFETY: leased buffers are used only to exhaust
                // the pool and are never read.
                unsafe { AlignedBlobBuf::pooled_uninit(&pool) }.unwrap()
            })
            .collect();
        // SAFETY: no buffer is returned in this exhausted-pool case.
        assert!(unsafe { AlignedBlobBuf::pooled_uninit(&pool) }.is_none());
        drop(leased);
        // SAFETY: the test does not read from the returned buffer.
        assert!(unsafe { AlignedBlobBuf::pooled_uninit(&pool) }.is_some());
    }

    #[test]
    fn uninit_is_writable() {
        // SAFETY: the test initializes every byte with fill() before
        // reading through as_slice().
        let mut b = unsafe { AlignedBlobBuf::uninit() };
        b.as_mut_slice().fill(0x42);
        assert!(b.as_slice().iter().all(|&x| x == 0x42));
    }

    #[test]
    fn scratch_frames_are_reused_and_distinct_when_nested() {
        let first = with_scratch_frame(|a| {
            a.as_mut_slice()[7] = 0x5A;
            let inner = with_scratch_frame(|b| {
                assert_ne!(a.as_ptr(), b.as_ptr(), "nested scratch must not alias");
                b.as_ptr() as usize
            });
            (a.as_ptr() as usize, inner)
        });
        // Both went back to the cache; the next use reuses one of them.
        let again = with_scratch_frame(|c| c.as_ptr() as usize);
        assert!(again == first.0 || again == first.1);
    }

    #[test]
    fn freed_heap_frames_are_recycled_and_zeroed_is_still_zeroed() {
        // Other tests allocate concurrently, so only check what holds
        // whatever they do: a recycled frame comes back zeroed from
        // `zeroed`, and the list never exceeds its bound.
        let frames: Vec<AlignedBlobBuf> = (0..RECYCLED_FRAMES_MAX + 4)
            .map(|i| {
                let mut b = AlignedBlobBuf::zeroed();
                b.as_mut_slice().fill(0xC3 ^ i as u8);
                b
            })
            .collect();
        drop(frames);
        assert!(RECYCLED.len() <= RECYCLED_FRAMES_MAX);
        for _ in 0..RECYCLED_FRAMES_MAX + 4 {
            let b = AlignedBlobBuf::zeroed();
            assert!(b.as_slice().iter().all(|&x| x == 0));
            assert_eq!(b.as_ptr() as usize % BUF_ALIGN, 0);
        }
        // A recycled frame handed out by `uninit` is a distinct, writable
        // frame.
        let a = AlignedBlobBuf::zeroed();
        let a_ptr = a.as_ptr();
        drop(a);
        // SAFETY: filled before it is read.
        let mut b = unsafe { AlignedBlobBuf::uninit() };
        b.as_mut_slice().fill(0x42);
        let c = AlignedBlobBuf::zeroed();
        assert_ne!(b.as_ptr(), c.as_ptr());
        assert!(b.as_slice().iter().all(|&x| x == 0x42));
        assert!(c.as_slice().iter().all(|&x| x == 0));
        let _ = a_ptr;
    }

    #[test]
    fn fresh_zeroed_frames_read_as_zero_and_are_independent() {
        let mut a = AlignedBlobBuf::fresh_zeroed();
        let b = AlignedBlobBuf::fresh_zeroed();
        assert_eq!(a.as_ptr() as usize % BUF_ALIGN, 0);
        assert!(a.as_slice().iter().all(|&x| x == 0));
        a.as_mut_slice()[PAGE_SIZE as usize - 1] = 9;
        a.as_mut_slice()[0] = 7;
        assert!(b.as_slice().iter().all(|&x| x == 0));
        let c = a.clone();
        assert_eq!(c.as_slice(), a.as_slice());
        assert_eq!(a.fixed_buffer_index(), None);
    }

    #[test]
    fn default_equals_zeroed() {
        let b = AlignedBlobBuf::default();
        assert!(b.as_slice().iter().all(|&x| x == 0));
    }
}
