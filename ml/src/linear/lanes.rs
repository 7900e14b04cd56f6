//! FTRL's per-coordinate step two or four coordinates at a time.
//!
//! Each active coordinate costs FTRL a square root and a division, and both run on the one
//! divider unit of a core, which a scalar loop keeps busy for most of an event. SSE2 (part of every
//! x86_64 CPU) takes the roots and the quotients of two coordinates in one instruction each, for
//! about the price of one; AVX, where the CPU has it, takes four. Square root, division,
//! addition, multiplication, min and max are exact IEEE operations lane by lane, so the lanes give
//! the same bits as scalar steps in turn as long as their coordinates differ; a group naming one
//! coordinate twice runs as scalar steps in order.

use super::core::{ftrl_step, GRAD_LIMIT, Z_LIMIT};
use crate::learner::FeatureVec;
use crate::optim::WEIGHT_LIMIT;

/// FTRL's constants for one event: `1 / alpha`, `beta`, `l1`, `l2`.
#[derive(Clone, Copy)]
pub(crate) struct FtrlConsts {
    pub(crate) inv_alpha: f64,
    pub(crate) beta: f64,
    pub(crate) l1: f64,
    pub(crate) l2: f64,
}

impl FtrlConsts {
    /// The scalar step of one coordinate `[w, z, sqrt(n), -]` with raw gradient `gj`.
    #[inline(always)]
    fn one(&self, c: &mut [f64; 4], gj: f64) {
        let gj = gj.clamp(-GRAD_LIMIT, GRAD_LIMIT);
        let [w, st @ ..] = c;
        *w = ftrl_step(self.inv_alpha, self.beta, *w, gj, st, self.l1, self.l2);
    }
}

/// Applies FTRL to every active coordinate of `x` (dense part first, then the sparse entries, in
/// order), the coordinate's raw gradient being `g * x_j`; entries past the table are skipped.
/// Gives the same bits as applying [`ftrl_step`] to each coordinate in that order.
#[inline(always)]
pub(crate) fn ftrl_active(coords: &mut [[f64; 4]], x: &FeatureVec<'_>, g: f64, k: FtrlConsts) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // The workspace denies `unsafe`; a function with `#[target_feature(enable = "avx")]` is
        // unsafe to call from one without it.
        #[allow(unsafe_code)]
        // SAFETY: the CPU has AVX, checked just above.
        unsafe {
            ftrl_quads(coords, x, g, k);
        }
        return;
    }
    ftrl_pairs(coords, x, g, k);
}

/// [`ftrl_active`] two coordinates at a time.
#[inline(always)]
fn ftrl_pairs(coords: &mut [[f64; 4]], x: &FeatureVec<'_>, g: f64, k: FtrlConsts) {
    let mut held: Option<(usize, f64)> = None;
    each_active(coords.len(), x, g, |j, gj| {
        visit(coords, &mut held, j, gj, k)
    });
    if let Some((i, gi)) = held {
        k.one(&mut coords[i], gi);
    }
}

/// Calls `f(j, g * x_j)` for every active coordinate `j` of `x` below `len` (dense part first,
/// then the sparse entries, in order).
#[inline(always)]
fn each_active(len: usize, x: &FeatureVec<'_>, g: f64, mut f: impl FnMut(usize, f64)) {
    let dense = x.dense_part();
    let n = dense.len().min(len);
    match dense.as_slice() {
        Some(xs) => {
            for (j, &xj) in xs[..n].iter().enumerate() {
                f(j, g * xj);
            }
        }
        None => {
            for (j, &xj) in dense.iter().take(n).enumerate() {
                f(j, g * xj);
            }
        }
    }
    for (&i, &xi) in x.indices().iter().zip(x.values()) {
        if (i as usize) < len {
            f(i as usize, g * xi);
        }
    }
}

/// [`ftrl_active`] four coordinates at a time, on a CPU with AVX: the active coordinates are
/// gathered into blocks on the stack, and [`quad_steps`] steps each block, so that `quad` has
/// one call site and inlines.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn ftrl_quads(coords: &mut [[f64; 4]], x: &FeatureVec<'_>, g: f64, k: FtrlConsts) {
    let mut block = [(0usize, 0.0f64); BLOCK];
    let mut n = 0;
    each_active(coords.len(), x, g, |j, gj| {
        block[n] = (j, gj);
        n += 1;
        if n == BLOCK {
            quad_steps(coords, &block, k);
            n = 0;
        }
    });
    quad_steps(coords, &block[..n], k);
}

/// Active coordinates gathered before [`quad_steps`]: two quads. The block is zeroed for every
/// event; at 32 entries that took 16 32-byte stores, and in a replay `perf` put ~8% of the
/// trainer thread's samples on the last of them (likely waiting for room among the stores
/// still going to the weight table), against ~0.3% in the trainer stage bench, whose inputs are
/// all cached. At 8 a 1M-event replay took 107.5 instead of 119.5 ms (medians of 15 alternating
/// runs; 4 entries, 111.2 ms); an event with more entries is stepped in several blocks.
const BLOCK: usize = 8;

/// The steps of the `(coordinate, raw gradient)` entries in `active`, four at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn quad_steps(coords: &mut [[f64; 4]], active: &[(usize, f64)], k: FtrlConsts) {
    let mut quads = active.chunks_exact(4);
    for q in &mut quads {
        match coords.get_disjoint_mut([q[0].0, q[1].0, q[2].0, q[3].0]) {
            Ok([a, b, c, d]) => quad(a, b, c, d, [q[0].1, q[1].1, q[2].1, q[3].1], k),
            // a coordinate twice: each step must see the one before
            Err(_) => {
                for &(i, gi) in q {
                    k.one(&mut coords[i], gi);
                }
            }
        }
    }
    // what is left: two as a pair, a third alone
    let mut alone = quads.remainder();
    if let [(i, gi), (j, gj), rest @ ..] = alone {
        if let Ok([a, b]) = coords.get_disjoint_mut([*i, *j]) {
            pair(a, b, *gi, *gj, k);
            alone = rest;
        }
    }
    for &(i, gi) in alone {
        k.one(&mut coords[i], gi);
    }
}

/// The steps of four distinct coordinates with raw gradients `g`: [`pair`]'s operations on four
/// lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
fn quad(
    a: &mut [f64; 4],
    b: &mut [f64; 4],
    c: &mut [f64; 4],
    d: &mut [f64; 4],
    g: [f64; 4],
    k: FtrlConsts,
) {
    use core::arch::x86_64::*;
    let splat = _mm256_set1_pd;
    let clamp = |v, lim: f64| _mm256_min_pd(_mm256_max_pd(v, splat(-lim)), splat(lim));
    let g = clamp(_mm256_set_pd(g[3], g[2], g[1], g[0]), GRAD_LIMIT);
    // Each coordinate is read and written whole, as one 32-byte row, and transposed in
    // registers. Built lane by lane instead, the compiler mixed 8- and 16-byte loads and stores
    // of the rows, and with the entries found by a chained iterator left out of line the stage
    // ran at 8.3M rather than 12.3M events/s; the two causes were not measured apart (a
    // microbenchmark of two 8-byte stores read back by one 16-byte load forwarded in 12 cycles
    // on this machine, as fast as matching sizes).
    let [ra, rb, rc, rd] = [load(a), load(b), load(c), load(d)];
    // [wa wb sa sb], [za zb xa xb], [wc wd sc sd], [zc zd xc xd]
    let (ab_ws, ab_zx) = (_mm256_unpacklo_pd(ra, rb), _mm256_unpackhi_pd(ra, rb));
    let (cd_ws, cd_zx) = (_mm256_unpacklo_pd(rc, rd), _mm256_unpackhi_pd(rc, rd));
    let w = _mm256_permute2f128_pd::<0x20>(ab_ws, cd_ws);
    let s = _mm256_permute2f128_pd::<0x31>(ab_ws, cd_ws);
    let z = _mm256_permute2f128_pd::<0x20>(ab_zx, cd_zx);
    let pad = _mm256_permute2f128_pd::<0x31>(ab_zx, cd_zx);
    let inv_alpha = splat(k.inv_alpha);
    let max = splat(f64::MAX);
    let n_new = _mm256_min_pd(_mm256_add_pd(_mm256_mul_pd(s, s), _mm256_mul_pd(g, g)), max);
    let s_new = _mm256_sqrt_pd(n_new);
    let sigma = _mm256_min_pd(_mm256_mul_pd(_mm256_sub_pd(s_new, s), inv_alpha), max);
    let z = clamp(
        _mm256_sub_pd(_mm256_add_pd(z, g), _mm256_mul_pd(sigma, w)),
        Z_LIMIT,
    );
    let sign = splat(-0.0);
    let abs_z = _mm256_andnot_pd(sign, z);
    let l1 = splat(k.l1);
    let l1_signed = _mm256_or_pd(_mm256_and_pd(z, sign), _mm256_andnot_pd(sign, l1));
    let num = _mm256_xor_pd(_mm256_sub_pd(z, l1_signed), sign);
    let den = _mm256_add_pd(
        _mm256_mul_pd(_mm256_add_pd(splat(k.beta), s_new), inv_alpha),
        splat(k.l2),
    );
    let w = _mm256_div_pd(num, den);
    let w = _mm256_max_pd(_mm256_min_pd(w, splat(WEIGHT_LIMIT)), splat(-WEIGHT_LIMIT));
    // a zeroed lane's quotient may be NaN (0 / 0); the mask drops it whatever it is
    let w = _mm256_andnot_pd(_mm256_cmp_pd::<_CMP_LE_OS>(abs_z, l1), w);
    // back to rows: the inverse of the transposition above, the padding kept
    let (ab_ws, cd_ws) = (
        _mm256_permute2f128_pd::<0x20>(w, s_new),
        _mm256_permute2f128_pd::<0x31>(w, s_new),
    );
    let (ab_zx, cd_zx) = (
        _mm256_permute2f128_pd::<0x20>(z, pad),
        _mm256_permute2f128_pd::<0x31>(z, pad),
    );
    store(a, _mm256_unpacklo_pd(ab_ws, ab_zx));
    store(b, _mm256_unpackhi_pd(ab_ws, ab_zx));
    store(c, _mm256_unpacklo_pd(cd_ws, cd_zx));
    store(d, _mm256_unpackhi_pd(cd_ws, cd_zx));
}

/// A coordinate's four numbers as one 32-byte load.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
fn load(c: &[f64; 4]) -> std::arch::x86_64::__m256d {
    // The workspace denies `unsafe`; the intrinsic takes a raw pointer.
    #[allow(unsafe_code)]
    // SAFETY: `c` is four readable `f64`s, the 32 bytes the load reads; it needs no alignment.
    unsafe {
        std::arch::x86_64::_mm256_loadu_pd(c.as_ptr())
    }
}

/// Writes `v` over a coordinate's four numbers as one 32-byte store.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
fn store(c: &mut [f64; 4], v: std::arch::x86_64::__m256d) {
    // The workspace denies `unsafe`; the intrinsic takes a raw pointer.
    #[allow(unsafe_code)]
    // SAFETY: `c` is four writable `f64`s, the 32 bytes the store writes; it needs no alignment.
    unsafe {
        std::arch::x86_64::_mm256_storeu_pd(c.as_mut_ptr(), v)
    }
}

/// Holds coordinate `j` with raw gradient `gj` until a second one comes, then steps the two.
/// A function that is always inlined (as a closure, it was compiled out of line: one call per
/// coordinate).
#[inline(always)]
fn visit(
    coords: &mut [[f64; 4]],
    held: &mut Option<(usize, f64)>,
    j: usize,
    gj: f64,
    k: FtrlConsts,
) {
    match held.take() {
        None => *held = Some((j, gj)),
        Some((i, gi)) => match coords.get_disjoint_mut([i, j]) {
            Ok([a, b]) => pair_of(a, b, gi, gj, k),
            // the same coordinate twice: the second step must see the first
            Err(_) => {
                k.one(&mut coords[i], gi);
                k.one(&mut coords[j], gj);
            }
        },
    }
}

/// The steps of two distinct coordinates `a` and `b` with raw gradients `ga` and `gb`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn pair_of(a: &mut [f64; 4], b: &mut [f64; 4], ga: f64, gb: f64, k: FtrlConsts) {
    // The workspace denies `unsafe`; the SSE2 intrinsics carry `#[target_feature(enable =
    // "sse2")]`, so a function using them is unsafe to call from one without the attribute.
    #[allow(unsafe_code)]
    // SAFETY: SSE2 is part of every x86_64 target, so the CPU has the feature `pair` enables.
    unsafe {
        pair(a, b, ga, gb, k)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn pair(a: &mut [f64; 4], b: &mut [f64; 4], ga: f64, gb: f64, k: FtrlConsts) {
    use core::arch::x86_64::*;
    // every operation below is the scalar step's, in its order, on both lanes (low: a, high: b)
    let splat = _mm_set1_pd;
    let clamp = |v, lim: f64| _mm_min_pd(_mm_max_pd(v, splat(-lim)), splat(lim));
    let g = clamp(_mm_set_pd(gb, ga), GRAD_LIMIT);
    let w = _mm_set_pd(b[0], a[0]);
    let z = _mm_set_pd(b[1], a[1]);
    let s = _mm_set_pd(b[2], a[2]);
    let inv_alpha = splat(k.inv_alpha);
    let max = splat(f64::MAX);
    let n_new = _mm_min_pd(_mm_add_pd(_mm_mul_pd(s, s), _mm_mul_pd(g, g)), max);
    let s_new = _mm_sqrt_pd(n_new);
    let sigma = _mm_min_pd(_mm_mul_pd(_mm_sub_pd(s_new, s), inv_alpha), max);
    let z = clamp(_mm_sub_pd(_mm_add_pd(z, g), _mm_mul_pd(sigma, w)), Z_LIMIT);
    // the closed form: 0 where |z| <= l1, else -(z - sign(z) l1) / ((beta + sqrt n) / alpha + l2)
    let sign = splat(-0.0);
    let abs_z = _mm_andnot_pd(sign, z);
    let l1 = splat(k.l1);
    let l1_signed = _mm_or_pd(_mm_and_pd(z, sign), _mm_andnot_pd(sign, l1));
    let num = _mm_xor_pd(_mm_sub_pd(z, l1_signed), sign);
    let den = _mm_add_pd(
        _mm_mul_pd(_mm_add_pd(splat(k.beta), s_new), inv_alpha),
        splat(k.l2),
    );
    let w = _mm_div_pd(num, den);
    let w = _mm_max_pd(_mm_min_pd(w, splat(WEIGHT_LIMIT)), splat(-WEIGHT_LIMIT));
    // a zeroed lane's quotient may be NaN (0 / 0); the mask drops it whatever it is
    let w = _mm_andnot_pd(_mm_cmple_pd(abs_z, l1), w);
    let hi = |v| _mm_cvtsd_f64(_mm_unpackhi_pd(v, v));
    [a[0], a[1], a[2]] = [_mm_cvtsd_f64(w), _mm_cvtsd_f64(z), _mm_cvtsd_f64(s_new)];
    [b[0], b[1], b[2]] = [hi(w), hi(z), hi(s_new)];
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn pair_of(a: &mut [f64; 4], b: &mut [f64; 4], ga: f64, gb: f64, k: FtrlConsts) {
    k.one(a, ga);
    k.one(b, gb);
}

#[cfg(test)]
mod tests {
    use ndarray::ArrayView1;

    use super::*;
    use crate::testutil::Stream;

    /// The reference: [`ftrl_step`] on each active coordinate in turn, as before the pairs.
    fn one_by_one(coords: &mut [[f64; 4]], x: &FeatureVec<'_>, g: f64, k: FtrlConsts) {
        let dense = x.dense_part();
        let active = dense.iter().enumerate().map(|(j, &v)| (j, v));
        let sparse = x.indices().iter().zip(x.values());
        for (j, xj) in active.chain(sparse.map(|(&i, &v)| (i as usize, v))) {
            if let Some(c) = coords.get_mut(j) {
                k.one(c, g * xj);
            }
        }
    }

    fn bits(coords: &[[f64; 4]]) -> Vec<u64> {
        coords.iter().flatten().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn pairs_and_quads_give_the_bits_of_one_coordinate_at_a_time() {
        let mut s = Stream::new(17);
        // beta = l2 = 0 leaves an untouched coordinate's denominator 0 (0 / 0 in a zeroed lane);
        // l1 = 0.05 and 1 put many |z| on either side of the threshold
        let settings = [
            (0.1, 1.0, 0.05, 0.01),
            (0.5, 0.0, 0.0, 0.0),
            (2.0, 0.5, 1.0, 0.0),
        ];
        for (round, (alpha, beta, l1, l2)) in settings.into_iter().enumerate() {
            let k = FtrlConsts {
                inv_alpha: 1.0 / alpha,
                beta,
                l1,
                l2,
            };
            let len = 12;
            let mut paired = vec![[0.0; 4]; len];
            let mut single = paired.clone();
            let mut quads = paired.clone();
            let mut zeroed = 0;
            for event in 0..400 {
                let mut dense: Vec<f64> = (0..event % 4).map(|_| s.normal() * 3.0).collect();
                if let (Some(v), 1) = (dense.first_mut(), event % 9) {
                    *v = 0.0; // a zero gradient on a coordinate
                }
                // sparse entries unsorted, repeating each other and the dense part, some past
                // the table (skipped)
                // now and then more entries than a block of `ftrl_quads` holds
                let n = if event % 37 == 5 { 75 } else { event % 11 };
                let indices: Vec<u32> = (0..n).map(|_| (s.uniform() * 14.0) as u32).collect();
                let mut values: Vec<f64> = (0..n).map(|_| s.normal()).collect();
                if event % 50 == 7 {
                    values.iter_mut().for_each(|v| *v *= 1e120); // clipped gradients
                }
                let g = s.normal() * 0.5;
                let x = FeatureVec::new(ArrayView1::from(&dense[..]), &indices, &values);
                ftrl_pairs(&mut paired, &x, g, k);
                one_by_one(&mut single, &x, g, k);
                assert_eq!(
                    bits(&paired),
                    bits(&single),
                    "settings {round}, event {event}"
                );
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx") {
                    #[allow(unsafe_code)]
                    // SAFETY: the CPU has AVX, checked just above.
                    unsafe {
                        ftrl_quads(&mut quads, &x, g, k);
                    }
                    assert_eq!(
                        bits(&quads),
                        bits(&single),
                        "settings {round}, event {event}"
                    );
                }
                zeroed += paired.iter().filter(|c| c[0] == 0.0 && c[1] != 0.0).count();
            }
            // the threshold was crossed (weights held at 0 with a z of their own)
            assert!(zeroed > 0 || l1 == 0.0, "settings {round}");
            assert!(paired.iter().all(|c| c.iter().all(|v| v.is_finite())));
        }
    }
}
