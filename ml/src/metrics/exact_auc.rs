//! Exact ROC AUC over the whole stream: a treap of distinct scores with subtree label counts keeps
//! the number of correctly ranked pairs up to date in O(log distinct scores) per event.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NIL: u32 = u32::MAX;

#[derive(Clone, Debug, PartialEq)]
struct Node {
    key: u64,
    pos: u64,
    neg: u64,
    sub_pos: u64,
    sub_neg: u64,
    left: u32,
    right: u32,
}

/// Pairwise ROC AUC with ties counted half, over every event seen.
///
/// Scores are first rounded to a multiple of 2^-20 (about 1e-6), then keyed by the bits of that
/// value (non-negative floats order like their bits, and `p` is clamped to [0, 1] before it gets
/// here). So the AUC is exact for every pair of scores more than 2^-20 apart, closer pairs count as
/// ties, and there are at most 2^20 + 1 distinct keys: each is one treap node of 48 bytes, so the
/// state never exceeds about 50 MB however long the stream (a coarse model stays far below). Priorities
/// come from a hash of the key, so the structure, and its serialised form (the sorted
/// `(score bits, positives, negatives)` list), are deterministic.
#[derive(Clone, Debug, Default)]
pub(crate) struct ExactAuc {
    nodes: Vec<Node>,
    root: u32,
    /// 2 * correctly ranked pairs + tied pairs.
    good2: u128,
    n_pos: u64,
    n_neg: u64,
}

/// Score resolution: 2^20 steps over [0, 1], which bounds the number of distinct keys.
const STEPS: f64 = (1u64 << 20) as f64;

fn quantize(p: f64) -> f64 {
    (p * STEPS).round() / STEPS
}

fn priority(key: u64) -> u64 {
    // SplitMix64 finaliser: a fixed pseudo-random priority per key
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl ExactAuc {
    pub(crate) fn new() -> Self {
        Self {
            root: NIL,
            ..Self::default()
        }
    }

    fn sub(&self, t: u32) -> (u64, u64) {
        self.nodes
            .get(t as usize)
            .map_or((0, 0), |n| (n.sub_pos, n.sub_neg))
    }

    fn pull(&mut self, t: u32) {
        let n = &self.nodes[t as usize];
        let (l, r) = (self.sub(n.left), self.sub(n.right));
        let n = &mut self.nodes[t as usize];
        n.sub_pos = n.pos + l.0 + r.0;
        n.sub_neg = n.neg + l.1 + r.1;
    }

    /// (positives below, negatives below, positives equal, negatives equal) for `key`, counted
    /// before this event, and whether `key` is present. On the way down it adds `count` to the
    /// subtree totals of the path; if `key` is present that completes the update in this one walk,
    /// otherwise the insertion that follows recomputes every node of the same path.
    fn rank_and_bump(
        &mut self,
        key: u64,
        positive: bool,
        count: u64,
    ) -> ((u64, u64, u64, u64), bool) {
        let (mut pb, mut nb) = (0, 0);
        let mut t = self.root;
        while (t as usize) < self.nodes.len() {
            let (left, node_key) = {
                let n = &self.nodes[t as usize];
                (n.left, n.key)
            };
            let l = if key >= node_key {
                self.sub(left)
            } else {
                (0, 0)
            };
            let n = &mut self.nodes[t as usize];
            if positive {
                n.sub_pos += count;
            } else {
                n.sub_neg += count;
            }
            if key < node_key {
                t = n.left;
            } else if key == node_key {
                let eq = (n.pos, n.neg);
                if positive {
                    n.pos += count;
                } else {
                    n.neg += count;
                }
                return ((pb + l.0, nb + l.1, eq.0, eq.1), true);
            } else {
                pb += l.0 + n.pos;
                nb += l.1 + n.neg;
                t = n.right;
            }
        }
        ((pb, nb, 0, 0), false)
    }

    fn insert_at(&mut self, t: u32, key: u64, positive: bool, count: u64) -> u32 {
        let Some(n) = self.nodes.get_mut(t as usize) else {
            let (pos, neg) = if positive { (count, 0) } else { (0, count) };
            self.nodes.push(Node {
                key,
                pos,
                neg,
                sub_pos: pos,
                sub_neg: neg,
                left: NIL,
                right: NIL,
            });
            return (self.nodes.len() - 1) as u32;
        };
        if key == n.key {
            if positive {
                n.pos += count;
                n.sub_pos += count;
            } else {
                n.neg += count;
                n.sub_neg += count;
            }
            return t;
        }
        let node_key = n.key;
        if key < node_key {
            let l = self.nodes[t as usize].left;
            let l = self.insert_at(l, key, positive, count);
            self.nodes[t as usize].left = l;
            if priority(self.nodes[l as usize].key) > priority(node_key) {
                // rotate right
                self.nodes[t as usize].left = self.nodes[l as usize].right;
                self.nodes[l as usize].right = t;
                self.pull(t);
                self.pull(l);
                return l;
            }
        } else {
            let r = self.nodes[t as usize].right;
            let r = self.insert_at(r, key, positive, count);
            self.nodes[t as usize].right = r;
            if priority(self.nodes[r as usize].key) > priority(node_key) {
                // rotate left
                self.nodes[t as usize].right = self.nodes[r as usize].left;
                self.nodes[r as usize].left = t;
                self.pull(t);
                self.pull(r);
                return r;
            }
        }
        self.pull(t);
        t
    }

    /// Adds `count` events of one label at score `p` (in [0, 1]).
    fn add_many(&mut self, p: f64, positive: bool, count: u64) {
        let p = quantize(p);
        let key = p.to_bits();
        let ((pb, nb, pe, ne), found) = self.rank_and_bump(key, positive, count);
        let c = u128::from(count);
        if positive {
            self.good2 += c * (2 * u128::from(nb) + u128::from(ne));
            self.n_pos += count;
        } else {
            let above = self.n_pos - pb - pe;
            self.good2 += c * (2 * u128::from(above) + u128::from(pe));
            self.n_neg += count;
        }
        if !found {
            let root = self.root;
            self.root = self.insert_at(root, key, positive, count);
        }
    }

    pub(crate) fn add(&mut self, p: f64, positive: bool) {
        self.add_many(p, positive, 1);
    }

    /// The AUC; 0.5 while a class is missing.
    pub(crate) fn auc(&self) -> f64 {
        if self.n_pos == 0 || self.n_neg == 0 {
            return 0.5;
        }
        self.good2 as f64 / (2.0 * self.n_pos as f64 * self.n_neg as f64)
    }

    /// `(score bits, positives, negatives)` in score order.
    fn sorted(&self) -> Vec<(u64, u64, u64)> {
        let mut out = Vec::with_capacity(self.nodes.len());
        let mut stack = Vec::new();
        let mut t = self.root;
        loop {
            while let Some(n) = self.nodes.get(t as usize) {
                stack.push(t);
                t = n.left;
            }
            let Some(top) = stack.pop() else { break };
            let n = &self.nodes[top as usize];
            out.push((n.key, n.pos, n.neg));
            t = n.right;
        }
        out
    }
}

/// Equal when they hold the same scores and counts (the arena layout may differ after a restore).
impl PartialEq for ExactAuc {
    fn eq(&self, other: &Self) -> bool {
        self.good2 == other.good2
            && self.n_pos == other.n_pos
            && self.n_neg == other.n_neg
            && self.sorted() == other.sorted()
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
            if !(0.0..=1.0).contains(&p) || last.is_some_and(|l| l >= key) {
                return Err(serde::de::Error::custom(
                    "auc scores must be sorted, distinct and in [0, 1]",
                ));
            }
            last = Some(key);
            // replaying sorted counts rebuilds the same pair count as the original stream
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
        // scores 1e-4 apart share a bin of the windowed histogram but not here
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
        for _ in 0..1_500_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let p = (s >> 11) as f64 / (1u64 << 53) as f64;
            auc.add(p, s & 1 == 1);
        }
        assert!(
            auc.nodes.len() <= (1 << 20) + 1,
            "{} distinct keys",
            auc.nodes.len()
        );
        // Random labels: an AUC of one half.
        assert!((auc.auc() - 0.5).abs() < 0.01, "{}", auc.auc());
    }
}
