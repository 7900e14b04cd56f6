//! `prefetch_line`, the hint behind `Learner::prefetch`, and the one `unsafe` block of the crate.

/// Asks the CPU to start loading the cache line that holds `value`, without waiting for it.
///
/// A plain read of the value cannot stand in for this: a load that misses holds back the
/// retirement of everything after it, so with the reorder buffer full after an event or two the
/// learner stalls on the touched line just as it would on its own miss. Measured over batches of
/// 4096 hashed events (8 active, 2^22 wide): reading ahead left SGD at 4.0 M events/s and took
/// FTRL from 2.2 to 2.8, where this hint gives 10.7 and 5.1.
#[inline(always)]
pub(crate) fn prefetch_line<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // The workspace denies `unsafe`; prefetching needs it only because `_mm_prefetch` carries
    // `#[target_feature(enable = "sse")]`, and SSE is part of every x86_64 target. Stable Rust
    // has no safe prefetch yet (`core::hint::prefetch_read` is unstable).
    #[allow(unsafe_code)]
    // SAFETY: PREFETCHT0 exists on every x86_64 CPU (SSE is baseline) and is only a hint: it
    // cannot fault, whatever the address, and changes no program-visible state. `value` is a live
    // reference anyway.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
