//! Online standard scaler: Welford running mean and variance per field.

use arrow_array::{Array, Float64Array, RecordBatch};

use super::{column, resolve_columns, skipped, Operator};
use crate::error::{FeatureError, Result};
use crate::schema::{FieldType, Schema};

/// Running count, mean and sum of squared deviations (Welford), for one field.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moments {
    count: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    /// Model averaging: the moments of the mixture `a * self + b * other` (`a + b = 1`); the
    /// count stays this side's, so later updates keep their step size.
    pub fn blend(&mut self, other: &Moments, a: f64, b: f64) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let (va, vb) = (self.variance(), other.variance());
        let mean = a * self.mean + b * other.mean;
        let var = a * (va + (self.mean - mean).powi(2)) + b * (vb + (other.mean - mean).powi(2));
        self.mean = mean;
        self.m2 = var * self.count as f64;
    }

    /// Number of values seen.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Mean of the values seen (0.0 before any).
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Population variance of the values seen (0.0 before any).
    pub fn variance(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.m2 / self.count as f64
        }
    }

    /// Square root of the population variance.
    pub fn std(&self) -> f64 {
        self.variance().sqrt()
    }

    /// `(x - mean) / std`, or 0.0 while `std` is 0 (fewer than two distinct values seen).
    #[inline]
    pub fn scale(&self, x: f64) -> f64 {
        let std = self.std();
        let z = (x - self.mean) / std;
        // Decoded values are bounded (|x| <= 1e100), but an outlier served against a nearly
        // constant training column could still overflow; no NaN/inf may reach a learner.
        if std > 0.0 && z.is_finite() {
            z
        } else {
            0.0
        }
    }

    /// Checks state read from an artifact.
    fn check(&self, field: &str) -> Result<()> {
        if self.mean.is_finite() && self.m2.is_finite() && self.m2 >= 0.0 {
            Ok(())
        } else {
            Err(FeatureError::InvalidState(format!(
                "standard_scaler moments of \"{field}\" are not finite: mean {}, m2 {}",
                self.mean, self.m2
            )))
        }
    }
}

impl Operator for Moments {
    type Value = f64;
    /// (mean, std)
    type Output = (f64, f64);

    #[inline]
    fn update(&mut self, x: f64) {
        self.count += 1;
        // Multiplying by the reciprocal keeps the division off the mean's loop-carried
        // dependency chain (the scaler runs a column at a time), roughly halving its latency.
        let inv_count = 1.0 / self.count as f64;
        let delta = x - self.mean;
        self.mean += delta * inv_count;
        // delta and (x - new mean) share a sign, so m2 never decreases and stays >= 0.
        self.m2 += delta * (x - self.mean);
    }

    fn get(&self) -> (f64, f64) {
        (self.mean, self.std())
    }
}

/// Scales number fields to zero mean and unit variance, one dense coordinate per field.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardScaler {
    fields: Vec<String>,
    moments: Vec<Moments>,
    /// Column of each field in the batch, resolved by `bind`.
    #[serde(skip)]
    columns: Vec<usize>,
    /// First dense coordinate, set by `bind`.
    #[serde(skip)]
    offset: usize,
}

impl StandardScaler {
    /// Blends the running moments with another worker's copy of the same scaler.
    pub(crate) fn blend(&mut self, other: &StandardScaler, a: f64, b: f64) {
        if self.fields == other.fields {
            for (m, o) in self.moments.iter_mut().zip(&other.moments) {
                m.blend(o, a, b);
            }
        }
    }

    /// A scaler that has seen nothing yet. Call `bind` before use.
    pub(crate) fn new(fields: Vec<String>) -> Self {
        StandardScaler {
            moments: vec![Moments::default(); fields.len()],
            fields,
            columns: Vec::new(),
            offset: 0,
        }
    }

    /// The fields scaled, in coordinate order.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// The running moments of each field.
    pub fn moments(&self) -> &[Moments] {
        &self.moments
    }

    /// Resolves columns against `schema` and places the coordinates at `offset`.
    pub(crate) fn bind(&mut self, schema: &Schema, offset: usize) -> Result<()> {
        if self.moments.len() != self.fields.len() {
            return Err(FeatureError::InvalidState(format!(
                "standard_scaler has {} fields but {} moments",
                self.fields.len(),
                self.moments.len()
            )));
        }
        for (m, field) in self.moments.iter().zip(&self.fields) {
            m.check(field)?;
        }
        self.columns = resolve_columns(schema, "standard_scaler", &self.fields, FieldType::Number)?;
        self.offset = offset;
        Ok(())
    }

    /// Updates with each row, then writes the row's scaled values (row `i` sees rows `0..=i`).
    #[cfg(test)]
    pub(crate) fn learn_transform(
        &mut self,
        batch: &RecordBatch,
        dense: &mut [f64],
        width: usize,
    ) -> Result<()> {
        self.learn_transform_skipping(batch, &[], dense, width)
    }

    /// Writes scaled values with the current state, leaving it unchanged.
    #[cfg(test)]
    pub(crate) fn transform(
        &self,
        batch: &RecordBatch,
        dense: &mut [f64],
        width: usize,
    ) -> Result<()> {
        self.transform_skipping(batch, &[], dense, width)
    }

    /// `learn_transform` where rows flagged in `skip` (refused by another operator) are
    /// treated like nulls: 0.0, no update.
    pub(crate) fn learn_transform_skipping(
        &mut self,
        batch: &RecordBatch,
        skip: &[bool],
        dense: &mut [f64],
        width: usize,
    ) -> Result<()> {
        let mut j = 0;
        while j < self.fields.len() {
            let values = column::<Float64Array>(batch, self.columns[j])?;
            #[cfg(target_arch = "x86_64")]
            if j + 3 <= self.fields.len()
                && skip.is_empty()
                && batch.num_rows() >= QUAD_ROWS
                && std::arch::is_x86_feature_detected!("avx")
            {
                // four columns, or the last three with a fourth lane computed and dropped
                let n = (self.fields.len() - j).min(4);
                let picked: Vec<_> = (0..n)
                    .map(|k| column::<Float64Array>(batch, self.columns[j + k]))
                    .collect();
                let arrays: Option<Vec<&Float64Array>> =
                    picked.iter().map(|c| c.as_ref().ok().copied()).collect();
                if let Some(arrays) = arrays.filter(|a| a.iter().all(|v| v.null_count() == 0)) {
                    let last = &arrays[n - 1].values()[..];
                    let columns =
                        [0, 1, 2, 3].map(|k| arrays.get(k).map_or(last, |v| &v.values()[..]));
                    #[allow(unsafe_code)]
                    // SAFETY: the CPU has AVX (checked just above).
                    unsafe {
                        run_quad(
                            &mut self.moments[j..j + n],
                            columns,
                            dense,
                            self.offset + j,
                            width,
                        )
                    };
                    j += n;
                    continue;
                }
            }
            #[cfg(target_arch = "x86_64")]
            if j + 1 < self.fields.len() && skip.is_empty() && values.null_count() == 0 {
                let next = column::<Float64Array>(batch, self.columns[j + 1])?;
                if next.null_count() == 0 {
                    let pair = &mut self.moments[j..j + 2];
                    let columns = [&values.values()[..], &next.values()[..]];
                    // The workspace denies `unsafe`; calling a function compiled with a target
                    // feature needs it even when the target always has the feature.
                    #[allow(unsafe_code)]
                    // SAFETY: SSE2 is part of every x86_64 target, so the CPU has it.
                    unsafe {
                        run_pair(pair, columns, dense, self.offset + j, width)
                    };
                    j += 2;
                    continue;
                }
            }
            run::<true>(
                &mut self.moments[j],
                values,
                skip,
                dense,
                self.offset + j,
                width,
            );
            j += 1;
        }
        Ok(())
    }

    /// `transform` with `skip` as in `learn_transform_skipping`.
    pub(crate) fn transform_skipping(
        &self,
        batch: &RecordBatch,
        skip: &[bool],
        dense: &mut [f64],
        width: usize,
    ) -> Result<()> {
        for j in 0..self.fields.len() {
            let values = column::<Float64Array>(batch, self.columns[j])?;
            let mut frozen = self.moments[j];
            run::<false>(&mut frozen, values, skip, dense, self.offset + j, width);
        }
        Ok(())
    }
}

/// Scales one column into coordinate `at` of each row of `dense` (row-major, `width` wide).
/// Working column by column is the same as row by row because fields have separate state;
/// it keeps the moments in registers. A null is skipped by the update and scales to 0.0
/// (the mean), which is how serving treats a number it was not given.
#[inline]
fn run<const LEARN: bool>(
    moments: &mut Moments,
    values: &Float64Array,
    skip: &[bool],
    dense: &mut [f64],
    at: usize,
    width: usize,
) {
    let Some(out) = dense.get_mut(at..) else {
        return;
    };
    let mut m = *moments;
    let out = out.iter_mut().step_by(width.max(1));
    match values.nulls().filter(|n| n.null_count() > 0) {
        None if skip.is_empty() => {
            for (o, &x) in out.zip(values.values().iter()) {
                if LEARN {
                    m.update(x);
                }
                *o = m.scale(x);
            }
        }
        nulls => {
            for (i, (o, &x)) in out.zip(values.values().iter()).enumerate() {
                if nulls.is_some_and(|n| n.is_null(i)) || skipped(skip, i) {
                    *o = 0.0;
                    continue;
                }
                if LEARN {
                    m.update(x);
                }
                *o = m.scale(x);
            }
        }
    }
    *moments = m;
}

/// [`run`] learning two adjacent columns without nulls or refused rows at once, one SSE2 lane
/// each. Every lane does exactly the operations of [`Moments::update`] and [`Moments::scale`]
/// in the same order (IEEE division and square root are correctly rounded, nothing is fused),
/// so the results are the same bits, with one packed division or square root doing the work of
/// two on the divider that bounds this loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn run_pair(
    pair: &mut [Moments],
    columns: [&[f64]; 2],
    dense: &mut [f64],
    at: usize,
    width: usize,
) {
    use std::arch::x86_64::*;
    let width = width.max(1);
    let rows = columns[0].len().min(columns[1].len());
    // Lane 0 is the first column (`_mm_set_pd` takes the high lane first). `count` as f64
    // counts exactly (below 2^53), as `count as f64` does in `update`.
    let mut count = _mm_set_pd(pair[1].count as f64, pair[0].count as f64);
    let mut mean = _mm_set_pd(pair[1].mean, pair[0].mean);
    let mut m2 = _mm_set_pd(pair[1].m2, pair[0].m2);
    let one = _mm_set1_pd(1.0);
    let zero = _mm_setzero_pd();
    let infinity = _mm_set1_pd(f64::INFINITY);
    let magnitude = _mm_set1_pd(f64::from_bits(!(1u64 << 63)));
    let mut done = 0u64;
    for (i, row) in dense.chunks_mut(width).take(rows).enumerate() {
        let Some(out) = row.get_mut(at..at + 2) else {
            break;
        };
        let x = _mm_set_pd(columns[1][i], columns[0][i]);
        count = _mm_add_pd(count, one);
        let inv_count = _mm_div_pd(one, count);
        let delta = _mm_sub_pd(x, mean);
        mean = _mm_add_pd(mean, _mm_mul_pd(delta, inv_count));
        m2 = _mm_add_pd(m2, _mm_mul_pd(delta, _mm_sub_pd(x, mean)));
        let std = _mm_sqrt_pd(_mm_div_pd(m2, count));
        let scaled = _mm_div_pd(_mm_sub_pd(x, mean), std);
        // Kept where std > 0 and |scaled| < infinity (finite), else 0.0: `scale`'s rule.
        let keep = _mm_and_pd(
            _mm_cmpgt_pd(std, zero),
            _mm_cmplt_pd(_mm_and_pd(scaled, magnitude), infinity),
        );
        let z = _mm_and_pd(scaled, keep);
        out[0] = _mm_cvtsd_f64(z);
        out[1] = _mm_cvtsd_f64(_mm_unpackhi_pd(z, z));
        done += 1;
    }
    let mean = [
        _mm_cvtsd_f64(mean),
        _mm_cvtsd_f64(_mm_unpackhi_pd(mean, mean)),
    ];
    let m2 = [_mm_cvtsd_f64(m2), _mm_cvtsd_f64(_mm_unpackhi_pd(m2, m2))];
    for (l, m) in pair.iter_mut().enumerate() {
        m.count += done;
        m.mean = mean[l];
        m.m2 = m2[l];
    }
}

/// Batches shorter than this are scaled in pairs: four columns at once cost more per call
/// (criterion `standard_scaler_10/1`: 38.5 against 70.1 M values/s) and win only on longer
/// batches (`/64`: 530 against 377; `/4096`: 654 against 402).
#[cfg(target_arch = "x86_64")]
const QUAD_ROWS: usize = 16;

/// [`run_pair`] for four adjacent columns (or three, the last of a scaler's), one AVX lane each:
/// the same operations in the same order, so the same bits, with one 256-bit division doing the
/// work of four where the divider has the width (it bounds this loop: three divisions and a
/// square root per value).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn run_quad(
    quad: &mut [Moments],
    columns: [&[f64]; 4],
    dense: &mut [f64],
    at: usize,
    width: usize,
) {
    use std::arch::x86_64::*;
    let width = width.max(1);
    let rows = columns.iter().map(|c| c.len()).min().unwrap_or(0);
    // Three columns run with the third's data and state in a fourth lane, whose results are
    // dropped (lanes are independent, so the three kept are the same bits).
    let n = quad.len().min(4);
    let lane = |k: usize| &quad[k.min(n - 1)];
    let lanes =
        |f: fn(&Moments) -> f64| _mm256_set_pd(f(lane(3)), f(lane(2)), f(lane(1)), f(lane(0)));
    // Lane k is column k (`_mm256_set_pd` takes the highest lane first).
    let mut count = lanes(|m| m.count as f64);
    let mut mean = lanes(|m| m.mean);
    let mut m2 = lanes(|m| m.m2);
    let one = _mm256_set1_pd(1.0);
    let zero = _mm256_setzero_pd();
    let infinity = _mm256_set1_pd(f64::INFINITY);
    let magnitude = _mm256_set1_pd(f64::from_bits(!(1u64 << 63)));
    let mut done = 0u64;
    for (i, row) in dense.chunks_mut(width).take(rows).enumerate() {
        let Some(out) = row.get_mut(at..at + n) else {
            break;
        };
        let x = _mm256_set_pd(columns[3][i], columns[2][i], columns[1][i], columns[0][i]);
        count = _mm256_add_pd(count, one);
        let inv_count = _mm256_div_pd(one, count);
        let delta = _mm256_sub_pd(x, mean);
        mean = _mm256_add_pd(mean, _mm256_mul_pd(delta, inv_count));
        m2 = _mm256_add_pd(m2, _mm256_mul_pd(delta, _mm256_sub_pd(x, mean)));
        let std = _mm256_sqrt_pd(_mm256_div_pd(m2, count));
        let scaled = _mm256_div_pd(_mm256_sub_pd(x, mean), std);
        // Kept where std > 0 and |scaled| < infinity (finite), else 0.0: `scale`'s rule.
        let keep = _mm256_and_pd(
            _mm256_cmp_pd::<_CMP_GT_OQ>(std, zero),
            _mm256_cmp_pd::<_CMP_LT_OQ>(_mm256_and_pd(scaled, magnitude), infinity),
        );
        let [low, high] = halves(_mm256_and_pd(scaled, keep));
        let v = [low[0], low[1], high[0], high[1]];
        // fixed lengths: `copy_from_slice` of `n` values was a call to memcpy per row
        match out {
            [a, b, c, d] => [*a, *b, *c, *d] = v,
            [a, b, c] => [*a, *b, *c] = [v[0], v[1], v[2]],
            rest => rest.copy_from_slice(&v[..rest.len()]),
        }
        done += 1;
    }
    let (mean, m2) = (halves(mean), halves(m2));
    for (l, m) in quad.iter_mut().enumerate() {
        m.count += done;
        m.mean = mean[l / 2][l % 2];
        m.m2 = m2[l / 2][l % 2];
    }
}

/// The four lanes of `v`, as two pairs (lanes 0-1, lanes 2-3).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn halves(v: std::arch::x86_64::__m256d) -> [[f64; 2]; 2] {
    use std::arch::x86_64::*;
    let pair = |h: __m128d| [_mm_cvtsd_f64(h), _mm_cvtsd_f64(_mm_unpackhi_pd(h, h))];
    [
        pair(_mm256_castpd256_pd128(v)),
        pair(_mm256_extractf128_pd::<1>(v)),
    ]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::schema::Field;

    /// Two-pass mean and population variance.
    fn two_pass(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        (mean, var)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
    }

    fn scaler(schema: &Schema, fields: &[&str]) -> StandardScaler {
        let mut s = StandardScaler::new(fields.iter().map(|f| f.to_string()).collect());
        s.bind(schema, 0).unwrap();
        s
    }

    fn batch(xs: &[Option<f64>]) -> RecordBatch {
        let schema = Schema::new(vec![Field::number("x").required(false)]).unwrap();
        let array = Float64Array::from(xs.to_vec());
        RecordBatch::try_new(schema.arrow_schema(), vec![Arc::new(array)]).unwrap()
    }

    /// 2 columns: one pair; 3: a pair and one; 5: four and one; 7: four, a pair and one (four
    /// at a time where the CPU has AVX, pairs otherwise).
    #[test]
    fn columns_learned_in_fours_and_pairs_give_the_bits_of_one_at_a_time() {
        // 3 and 7 end with three columns in four lanes, 5 with a single column
        for n in [2, 3, 5, 7] {
            learned_together_as_one_at_a_time(&["a", "b", "c", "d", "e", "f", "g"][..n]);
        }
    }

    fn learned_together_as_one_at_a_time(names: &[&str]) {
        let schema = Schema::new(names.iter().map(|&n| Field::number(n)).collect()).unwrap();
        // Values of very different scales, a constant column (std 0: scaled to 0.0).
        let column = |j: usize| -> Float64Array {
            (0..3000u64)
                .map(|i| match j {
                    2 => 7.0,
                    _ => {
                        let h = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (11 + j)) as f64;
                        (h / 1e9 - 1000.0) * 10f64.powi(j as i32 * 3 - 4)
                    }
                })
                .collect()
        };
        let columns: Vec<Arc<dyn Array>> = (0..names.len())
            .map(|j| Arc::new(column(j)) as Arc<dyn Array>)
            .collect();
        let batch = RecordBatch::try_new(schema.arrow_schema(), columns).unwrap();
        let width = names.len() + 3;
        let chunks = [0..1000, 1000..3000];
        let mut paired = scaler(&schema, names);
        let mut dense = vec![0.0; 3000 * width];
        for chunk in chunks.clone() {
            let part = batch.slice(chunk.start, chunk.len());
            let out = &mut dense[chunk.start * width..chunk.end * width];
            paired
                .learn_transform_skipping(&part, &[], out, width)
                .unwrap();
        }
        // One column at a time, through the general loop.
        let mut single = scaler(&schema, names);
        let mut expected = vec![0.0; 3000 * width];
        for chunk in chunks {
            let part = batch.slice(chunk.start, chunk.len());
            let out = &mut expected[chunk.start * width..chunk.end * width];
            for j in 0..names.len() {
                let values = part.column(j).as_any().downcast_ref().unwrap();
                run::<true>(&mut single.moments[j], values, &[], out, j, width);
            }
        }
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&dense), bits(&expected));
        assert_eq!(paired.moments, single.moments);
    }

    #[test]
    fn matches_two_pass_at_every_prefix() {
        let schema = Schema::new(vec![Field::number("x")]).unwrap();
        let mut s = scaler(&schema, &["x"]);
        // An offset large against the spread: the textbook sum-of-squares formula loses about
        // half its digits here, Welford must stay within 1e-9 of the two-pass values.
        let xs: Vec<f64> = (0..500)
            .map(|i| 1e6 + ((i * 7919) % 1000) as f64 * 0.37 - 100.0)
            .collect();
        let b = batch(&xs.iter().copied().map(Some).collect::<Vec<_>>());
        let mut dense = vec![f64::NAN; xs.len()];
        s.learn_transform(&b, &mut dense, 1).unwrap();
        for i in 0..xs.len() {
            let (mean, var) = two_pass(&xs[..=i]);
            let expected = if i == 0 {
                0.0
            } else {
                (xs[i] - mean) / var.sqrt()
            };
            assert!(
                close(dense[i], expected),
                "row {i}: {} vs {expected}",
                dense[i]
            );
        }
        let (mean, var) = two_pass(&xs);
        let m = s.moments()[0];
        assert_eq!(m.count(), 500);
        assert!(
            close(m.mean(), mean) && close(m.variance(), var),
            "{m:?} vs {mean} {var}"
        );
        assert_eq!(m.get(), (m.mean(), m.std()));
    }

    #[test]
    fn zero_until_two_distinct_values() {
        let schema = Schema::new(vec![Field::number("x")]).unwrap();
        let mut s = scaler(&schema, &["x"]);
        let mut dense = vec![f64::NAN; 4];
        s.learn_transform(
            &batch(&[Some(3.0), Some(3.0), Some(3.0), Some(5.0)]),
            &mut dense,
            1,
        )
        .unwrap();
        // After 3,3,3,5: mean 3.5, population std sqrt(0.75).
        assert_eq!(&dense[..3], &[0.0, 0.0, 0.0]);
        assert!(close(dense[3], 1.5 / 0.75f64.sqrt()));
    }

    #[test]
    fn nulls_scale_to_zero_and_do_not_update() {
        let schema = Schema::new(vec![Field::number("x")]).unwrap();
        let mut s = scaler(&schema, &["x"]);
        let mut dense = vec![f64::NAN; 4];
        s.learn_transform(&batch(&[Some(1.0), None, Some(3.0), None]), &mut dense, 1)
            .unwrap();
        assert_eq!(dense, vec![0.0, 0.0, 1.0, 0.0]);
        assert_eq!(s.moments()[0].count(), 2);
        let before = s.clone();
        s.transform(&batch(&[Some(4.0)]), &mut dense, 1).unwrap();
        assert_eq!(dense[0], 2.0);
        assert_eq!(s, before);
    }

    #[test]
    fn extreme_values_stay_finite() {
        let schema = Schema::new(vec![Field::number("x")]).unwrap();
        let mut s = scaler(&schema, &["x"]);
        let xs = [1e100, -1e100, 1e-300, 5e-324, 1e100, -1e100, 0.0];
        let mut dense = vec![f64::NAN; xs.len()];
        s.learn_transform(&batch(&xs.map(Some)), &mut dense, 1)
            .unwrap();
        assert!(dense.iter().all(|z| z.is_finite()), "{dense:?}");
        // Nearly constant training data, then a huge served value: must not be inf.
        let mut s = scaler(&schema, &["x"]);
        s.learn_transform(&batch(&[Some(0.0), Some(5e-324)]), &mut dense[..2], 1)
            .unwrap();
        s.transform(&batch(&[Some(1e100)]), &mut dense[..1], 1)
            .unwrap();
        assert!(dense[0].is_finite());
    }

    #[test]
    fn corrupt_state_is_refused() {
        let schema = Schema::new(vec![Field::number("x")]).unwrap();
        let mut s = scaler(&schema, &["x"]);
        s.moments[0].m2 = f64::NAN;
        assert!(matches!(
            s.bind(&schema, 0),
            Err(FeatureError::InvalidState(_))
        ));
        s.moments.clear();
        let err = s.bind(&schema, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid feature state: standard_scaler has 1 fields but 0 moments"
        );
    }
}
