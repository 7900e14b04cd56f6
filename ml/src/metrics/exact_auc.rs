//! ROC AUC over the whole stream from a fixed histogram of scores at a resolution of 2^-18: O(1)
//! per event, computed on demand in one pass over the bins.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Score resolution: 2^18 steps over [0, 1].
const STEPS: f64 = (1u64 << 18) as f64;
const BINS: usize = (1 << 18) + 1;

#[cfg(test)]
fn quantize(p: f64) -> f64 {
    (p * STEPS).round() / STEPS
}

/// The bin of a probability `p` in [0, 1]: `(p * STEPS).round()`, ties away from zero, without
/// the call into libm that `f64::round` is on baseline x86-64 (the integer part and the
/// remainder of a non-negative number below 2^53 are exact).
#[inline]
fn bin(p: f64) -> usize {
    let x = p * STEPS;
    let whole = x as usize;
    (whole + usize::from(x - whole as f64 >= 0.5)).min(BINS - 1)
}

/// Pairwise ROC AUC with ties counted half, over every event seen.
///
/// Scores are rounded to a multiple of 2^-18 (about 3.8e-6): the AUC is exact for every pair of
/// scores further apart than that, and closer pairs count as ties. Each event increments one
/// counter (why: an order-statistic tree of distinct scores did the same job exactly but cost
/// about 20 dependent cache misses per event, which cut the whole pipeline's throughput in half);
/// [`auc`](Self::auc) sums the bins in one pass, about a third of a millisecond, which the runtime
/// does only when it reports or publishes. Memory is fixed at 4 MiB (allocated on the first event);
/// checkpoints hold only the occupied bins.
///
/// Increments wait in a short list and are applied [`PENDING`] at a time (why: one increment
/// is a cache miss into the 4 MiB table; interleaved with a learner's work each miss stalls
/// alone, while a tight loop of independent increments overlaps them). Everything that reads the
/// counts takes the waiting ones into account, so the results do not depend on when they apply.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExactAuc {
    /// `[negatives, positives]` per score bin.
    counts: Vec<[u64; 2]>,
    /// Increments not applied yet: `bin << 1 | positive`.
    pending: Vec<u32>,
    n_pos: u64,
    n_neg: u64,
}

/// Increments that wait before they are applied together.
const PENDING: usize = 256;

impl PartialEq for ExactAuc {
    fn eq(&self, other: &Self) -> bool {
        self.n_pos == other.n_pos && self.n_neg == other.n_neg && self.sorted() == other.sorted()
    }
}

impl ExactAuc {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn add_many(&mut self, p: f64, positive: bool, count: u64) {
        if self.counts.is_empty() {
            self.counts = vec![[0, 0]; BINS];
        }
        self.counts[bin(p)][usize::from(positive)] += count;
        if positive {
            self.n_pos += count;
        } else {
            self.n_neg += count;
        }
    }

    pub(crate) fn add(&mut self, p: f64, positive: bool) {
        if positive {
            self.n_pos += 1;
        } else {
            self.n_neg += 1;
        }
        // BINS < 2^31, so the bin and the label fit one u32.
        self.pending
            .push(((bin(p) as u32) << 1) | u32::from(positive));
        if self.pending.len() >= PENDING {
            self.apply_pending();
        }
    }

    fn apply_pending(&mut self) {
        if self.counts.is_empty() {
            self.counts = vec![[0, 0]; BINS];
        }
        for &e in &self.pending {
            self.counts[(e >> 1) as usize][(e & 1) as usize] += 1;
        }
        self.pending.clear();
    }

    /// Calls `f` with `(bin, [negatives, positives])` for every occupied bin in score order,
    /// the waiting increments included.
    fn for_each_occupied(&self, mut f: impl FnMut(usize, [u64; 2])) {
        let mut waiting = self.pending.clone();
        waiting.sort_unstable();
        let mut waiting = waiting.into_iter().peekable();
        for b in 0..BINS {
            // Before the first flush the table is empty and every count is still waiting.
            let mut c = self.counts.get(b).copied().unwrap_or([0, 0]);
            while let Some(e) = waiting.next_if(|e| (e >> 1) as usize == b) {
                c[(e & 1) as usize] += 1;
            }
            if c[0] + c[1] > 0 {
                f(b, c);
            }
        }
    }

    /// The AUC; 0.5 while a class is missing.
    pub(crate) fn auc(&self) -> f64 {
        if self.n_pos == 0 || self.n_neg == 0 {
            return 0.5;
        }
        // 2 * (pairs a positive outranks) + tied pairs, bins in ascending score order.
        let (mut good2, mut neg_below) = (0u128, 0u128);
        self.for_each_occupied(|_, [neg, pos]| {
            good2 += u128::from(pos) * (2 * neg_below + u128::from(neg));
            neg_below += u128::from(neg);
        });
        good2 as f64 / (2.0 * self.n_pos as f64 * self.n_neg as f64)
    }

    /// `(score bits, positives, negatives)` of the occupied bins, in score order.
    fn sorted(&self) -> Vec<(u64, u64, u64)> {
        let mut out = Vec::new();
        self.for_each_occupied(|b, c| out.push(((b as f64 / STEPS).to_bits(), c[1], c[0])));
        out
    }
}

impl Serialize for ExactAuc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.sorted().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ExactAuc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries = Vec::<(u64, u64, u64)>::deserialize(d)?;
        let mut auc = ExactAuc::new();
        let mut last = None;
        for (key, pos, neg) in entries {
            let p = f64::from_bits(key);
            // Scores off the 2^-18 grid come from older checkpoints and artifacts, which kept
            // every distinct score: they fall into their bins, as new events would.
            if !(0.0..=1.0).contains(&p) || last.is_some_and(|l| l >= key) {
                return Err(serde::de::Error::custom(
                    "auc scores must be sorted, distinct and in [0, 1]",
                ));
            }
            last = Some(key);
            if neg > 0 {
                auc.add_many(p, false, neg);
            }
            if pos > 0 {
                auc.add_many(p, true, pos);
            }
        }
        Ok(auc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Stream;

    #[test]
    fn bins_round_half_away_from_zero() {
        let half_below = 0.5f64.next_down();
        let mut ps = vec![
            0.0,
            1.0,
            half_below / STEPS,
            0.5 / STEPS,
            1.5 / STEPS,
            2.5 / STEPS,
        ];
        ps.extend((0..10_000).map(|i| (i as f64 * 0.618_034).fract()));
        ps.extend((1..2_000).map(|k| (k as f64 + 0.5) / STEPS));
        ps.extend((1..2_000).map(|k| ((k as f64 + 0.5) / STEPS).next_down()));
        for p in ps {
            let rounded = ((p * STEPS).round() as usize).min(BINS - 1);
            assert_eq!(bin(p), rounded, "p = {p:e}");
        }
    }

    fn pairwise(events: &[(bool, f64)]) -> f64 {
        let (mut good, mut pairs) = (0.0, 0.0);
        for &(_, sp) in events.iter().filter(|e| e.0) {
            for &(_, sn) in events.iter().filter(|e| !e.0) {
                pairs += 1.0;
                good += if sp > sn {
                    1.0
                } else if sp == sn {
                    0.5
                } else {
                    0.0
                };
            }
        }
        if pairs == 0.0 {
            0.5
        } else {
            good / pairs
        }
    }

    #[test]
    fn equals_pairwise_auc_at_every_step_with_ties() {
        let mut s = Stream::new(12);
        let mut auc = ExactAuc::new();
        let mut events = Vec::new();
        for i in 0..600 {
            // coarse scores produce many ties; fine ones many distinct keys
            let p = if i % 2 == 0 {
                (s.uniform() * 10.0).floor() / 10.0
            } else {
                s.uniform()
            };
            let y = s.uniform() < p;
            auc.add(p, y);
            events.push((y, quantize(p)));
            if i % 37 == 0 || i == 599 {
                assert!((auc.auc() - pairwise(&events)).abs() < 1e-12, "at {i}");
            }
        }
        // scores 1e-5 apart share a bin of the windowed histogram but not here
        let mut fine = ExactAuc::new();
        fine.add(0.50001, true);
        fine.add(0.50002, false);
        assert_eq!(fine.auc(), 0.0);
        let bytes = postcard::to_stdvec(&auc).unwrap();
        let back: ExactAuc = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.auc(), auc.auc());
        assert_eq!(back.sorted(), auc.sorted());
        assert_eq!(postcard::to_stdvec(&back).unwrap(), bytes);
        let bad = postcard::to_stdvec(&vec![(2.0f64.to_bits(), 1u64, 0u64)]).unwrap();
        assert!(postcard::from_bytes::<ExactAuc>(&bad).is_err());
    }

    #[test]
    fn memory_is_bounded_by_the_score_resolution() {
        let mut auc = ExactAuc::new();
        let mut s = 0x1234_5678_9abc_def0u64;
        for _ in 0..400_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let p = (s >> 11) as f64 / (1u64 << 53) as f64;
            auc.add(p, s & 1 == 1);
        }
        assert_eq!(auc.counts.len(), BINS, "the state is one fixed histogram");
        assert!(auc.sorted().len() <= BINS);
        // Random labels: an AUC of one half.
        assert!((auc.auc() - 0.5).abs() < 0.01, "{}", auc.auc());
    }
}
