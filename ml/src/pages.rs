//! Large weight tables on 2 MiB pages: `zeroed_table` and `into_table`, and the `madvise` call
//! behind them (the crate's second `unsafe` block).
//!
//! A hashed model's table is far larger than what the TLB maps with 4 KiB pages: FTRL at 2^22
//! coordinates is 128 MiB, 32,768 pages, and every event's few random coordinates each cost a
//! page walk on top of the cache miss. Linux backs a region with transparent huge pages only when
//! asked (`/sys/kernel/mm/transparent_hugepage/enabled` is `madvise` on Debian and most
//! distributions), so large tables ask. Measured with criterion
//! (`predict_learn_many/hashed_width_8_active`, 8 active of 2^22, one run): FTRL 6.08 -> 7.66 M
//! events/s, SGD 13.3 -> 16.5, with 2 MiB pages for the whole address space as a stand-in for
//! this call; the 20-wide tables did not move.

/// Tables smaller than this are left on normal pages: they hold at most one whole 2 MiB page, and
/// the many small models of a per-key wrapper should not each round up to one.
const MIN_BYTES: usize = 4 << 20;

/// Transparent huge page size on x86_64 and aarch64 (4 KiB base pages).
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 2 << 20;

/// Whether `values` is large enough to be worth huge pages.
pub(crate) fn wants_huge(values: &[f64]) -> bool {
    large(values.len())
}

/// Whether a table of `len` numbers is large enough to be worth huge pages.
fn large(len: usize) -> bool {
    len * std::mem::size_of::<f64>() >= MIN_BYTES
}

/// `len` zeros, on huge pages where the kernel has them to give. The memory usually comes from
/// the allocator untouched (a fresh zeroed mapping, as `vec![0.0; len]` gets it), so the advice
/// applies from the first write on; a large table is then written once per page ([`touch`]).
/// glibc may instead hand out a block it reuses from a thread's heap, already on normal pages
/// (and zeroed by `calloc`); the table then works the same, without huge pages until the
/// kernel's background thread merges them.
pub(crate) fn zeroed_table(len: usize) -> Vec<f64> {
    let mut v = vec![0.0; len];
    advise_huge(&v);
    touch(&mut v);
    v
}

/// `len` zeros inside a buffer, from its index `start` on, which is `align`-byte aligned (a power
/// of two, at least 8). A large table instead starts on a huge page boundary (the buffer holds
/// the spare numbers in front, never written, so never backed by memory), which puts every whole
/// 2 MiB of it on a huge page, and it is written once per page ([`touch`]). A last part shorter
/// than a huge page stays on normal pages: rounded up to one, a table of 2^18 FTRL coordinates
/// and three dense ones (8 MiB and 96 bytes) took 10 MiB, 2 MiB of it zeroed for 96 bytes (a
/// 1,000-event replay of the CTR file: 7.80 -> 6.65 ms, medians of 40 alternating runs).
pub(crate) fn zeroed_span(len: usize, align: usize) -> (Vec<f64>, usize) {
    let huge = large(len);
    #[cfg(target_os = "linux")]
    let align = if huge { HUGE_PAGE } else { align };
    let mut buf = vec![0.0; len + align / 8 - 1];
    // an 8-byte aligned pointer is at most `align / 8 - 1` numbers from an `align` boundary;
    // anything else (`align_offset` may give up) falls back to the start, correct, only slower
    let start = match buf.as_ptr().align_offset(align) {
        s if s + len <= buf.len() => s,
        _ => 0,
    };
    if huge {
        advise_huge(&buf[start..start + len]);
        touch(&mut buf[start..start + len]);
    }
    (buf, start)
}

/// Writes a zero into every 4 KiB page of a large fresh table (memory the allocator gave zeroed
/// and nothing wrote yet). A table left to fault in as it is used gets its pages on a read first
/// (the learner reads a coordinate before it writes it): the kernel maps its shared zero page
/// there, and the write that follows must copy it and flush the stale mapping from every core's
/// TLB, an interrupt to each core the process runs on. Written first, a page is simply
/// allocated. It also makes the kernel's zeroing of the table happen here, at construction,
/// which the runtime overlaps with the source's first decoding, rather than in the first
/// events. Measured on a 1,000-event replay of the CTR Parquet file: see the commit.
fn touch(values: &mut [f64]) {
    if !wants_huge(values) {
        return;
    }
    // `black_box` hides that the memory is known zero, which would let the compiler drop
    // stores of zero into a fresh allocation
    let values = std::hint::black_box(values);
    for v in values.iter_mut().step_by(4096 / 8) {
        *v = 0.0;
    }
}

/// `v` itself when small; otherwise its numbers copied into a [`zeroed_table`], since memory a
/// decoder already wrote sits on normal pages and the kernel would only merge them into huge ones
/// slowly, in the background.
pub(crate) fn into_table(v: Vec<f64>) -> Vec<f64> {
    if !wants_huge(&v) {
        return v;
    }
    let mut t = zeroed_table(v.len());
    t.copy_from_slice(&v);
    t
}

/// Asks the kernel to back the whole 2 MiB pages inside `values` with huge pages. Advice only:
/// refused or ignored (no THP, another OS), the table works the same on normal pages.
fn advise_huge(values: &[f64]) {
    if !wants_huge(values) {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let start = values.as_ptr() as usize;
        let end = start + std::mem::size_of_val(values);
        let first = start.next_multiple_of(HUGE_PAGE);
        let last = end / HUGE_PAGE * HUGE_PAGE;
        if first < last {
            // The workspace denies `unsafe`; `madvise` is a foreign function, so calling it needs
            // it.
            #[allow(unsafe_code)]
            // SAFETY: [first, last) lies inside `values`, a live allocation this process owns, and
            // is page aligned as madvise requires. MADV_HUGEPAGE changes neither the contents nor
            // the validity of the mapping, only how the kernel may back it; a failure (EINVAL
            // without THP support) leaves everything as it was, so its result is ignored.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_keep_their_numbers() {
        let small = vec![1.5, -2.0];
        let p = small.as_ptr();
        let kept = into_table(small);
        assert_eq!(kept.as_ptr(), p, "a small table is not copied");
        assert_eq!(kept, [1.5, -2.0]);

        let len = (MIN_BYTES / 8) * 3 + 7;
        let big: Vec<f64> = (0..len).map(|i| i as f64 * 0.5).collect();
        let copy = into_table(big.clone());
        assert_eq!(copy, big);
        let zeros = zeroed_table(len);
        assert!(zeros.len() == len && zeros.iter().all(|&z| z.to_bits() == 0));
    }

    /// Whether the kernel gives transparent huge pages to memory that asks for them.
    #[cfg(target_os = "linux")]
    fn kernel_offers_huge_pages() -> bool {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
        mode.is_ok_and(|m| m.contains("[madvise]") || m.contains("[always]"))
    }

    /// The kilobytes of smaps field `field` (e.g. `"Rss:"`) of the mapping holding `addr`.
    #[cfg(target_os = "linux")]
    fn smaps_kb_at(addr: usize, field: &str) -> Option<usize> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        inside = (lo..hi).contains(&addr);
                        continue;
                    }
                }
            }
            if let Some(kb) = line.strip_prefix(field).filter(|_| inside) {
                return kb.trim().trim_end_matches(" kB").parse::<usize>().ok();
            }
        }
        None
    }

    /// Where the kernel offers transparent huge pages on request, a written table sits on them:
    /// the smaps entry of its mapping counts anonymous huge pages.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_large_table_lands_on_huge_pages_when_the_kernel_offers_them() {
        if !kernel_offers_huge_pages() {
            return; // nothing to ask for on this kernel
        }
        let mut t = zeroed_table(4 << 20); // 32 MiB
        for (i, v) in t.iter_mut().enumerate().step_by(512) {
            *v = i as f64;
        }
        // the advice splits the mapping: the advised part starts at the first 2 MiB boundary
        let addr = (t.as_ptr() as usize).next_multiple_of(HUGE_PAGE);
        let huge_kb = smaps_kb_at(addr, "AnonHugePages:");
        assert!(huge_kb.unwrap_or(0) >= 2048, "{huge_kb:?} kB on huge pages");
        assert_eq!(t[512], 512.0);
    }

    /// A large span starts on a huge page boundary and is resident from end to end before
    /// anything but its construction wrote to it: the construction wrote each page (so the
    /// learner's first reads find allocated memory, not the shared zero page). Whether it sits on
    /// huge pages is not asserted: in a test binary running many threads, glibc may hand out a
    /// block reused from a thread's heap, already on normal pages (this test once saw 0 kB on
    /// huge pages while /proc/vmstat's `thp_fault_fallback` stayed 0, so the kernel had not
    /// refused any).
    #[test]
    fn a_large_span_is_aligned_and_written_on_construction() {
        let len = (5 << 20) / 8 + 5; // 5 MiB and 5 numbers
        let (buf, start) = zeroed_span(len, 32);
        assert!(buf.len() >= start + len);
        #[cfg(target_os = "linux")]
        {
            let addr = buf[start..].as_ptr() as usize;
            assert_eq!(addr % HUGE_PAGE, 0);
            // read before the contents are: reading maps pages too. The whole huge pages form
            // one mapping (the advice split it off), the rest of the table another.
            let rss = smaps_kb_at(addr, "Rss:").unwrap_or(0);
            assert!(
                rss >= len * 8 / HUGE_PAGE * HUGE_PAGE / 1024,
                "{rss} kB resident"
            );
            let tail = buf[start + len - 1..].as_ptr() as usize;
            let rss = smaps_kb_at(tail, "Rss:").unwrap_or(0);
            assert!(rss >= 4, "{rss} kB of the tail resident");
        }
        assert!(buf[start..start + len].iter().all(|&z| z.to_bits() == 0));
        let small = zeroed_span(5, 32);
        assert_eq!(small.0[small.1..].as_ptr().align_offset(32), 0);
    }
}
