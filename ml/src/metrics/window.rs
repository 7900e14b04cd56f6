//! The recent window: a ring buffer of the last `capacity` events and the sums over them.

use serde::{Deserialize, Serialize};

use super::{Accumulator, MetricValues};
use crate::error::MlError;

/// Sums over the last `capacity` normalised `(y, p)` events. Evicted events are subtracted, and the
/// floating-point sums are recomputed from the ring every `capacity` pushes so add/remove rounding
/// cannot drift.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    try_from = "RawWindow<A>",
    bound(deserialize = "A: Accumulator + Deserialize<'de>")
)]
pub(crate) struct Window<A> {
    capacity: usize,
    /// Insertion order until full; then `next` is the oldest event and the slot the next push
    /// overwrites.
    ring: Vec<(f64, f64)>,
    next: usize,
    since_rebuild: usize,
    acc: A,
}

impl<A: Accumulator> Window<A> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            ring: Vec::new(),
            next: 0,
            since_rebuild: 0,
            acc: A::default(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds a normalised event whose term is `term` (= `A::term(y, p)`), evicting the oldest when
    /// full.
    #[inline]
    pub(crate) fn push(&mut self, y: f64, p: f64, term: &A::Term) {
        if self.ring.len() < self.capacity {
            self.ring.push((y, p));
        } else if let Some(slot) = self.ring.get_mut(self.next) {
            let (old_y, old_p) = std::mem::replace(slot, (y, p));
            self.acc.remove(&A::term(old_y, old_p));
            self.next = (self.next + 1) % self.capacity;
        }
        self.acc.add(term);
        self.since_rebuild += 1;
        if self.since_rebuild >= self.capacity {
            self.since_rebuild = 0;
            let (newer, older) = self.ring.split_at(self.next.min(self.ring.len()));
            self.acc.rebuild(older.iter().chain(newer).copied());
        }
    }

    pub(crate) fn values(&self) -> MetricValues {
        self.acc.values()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow<A> {
    capacity: usize,
    ring: Vec<(f64, f64)>,
    next: usize,
    since_rebuild: usize,
    acc: A,
}

impl<A: Accumulator> TryFrom<RawWindow<A>> for Window<A> {
    type Error = MlError;

    fn try_from(r: RawWindow<A>) -> Result<Self, MlError> {
        let bad = |what, value: usize| {
            Err(MlError::InvalidState {
                what,
                value: value as f64,
            })
        };
        if r.capacity == 0 {
            return bad("window capacity must be >= 1", r.capacity);
        }
        if r.ring.len() > r.capacity {
            return bad("window holds more events than its capacity", r.ring.len());
        }
        if r.next >= r.capacity || (r.ring.len() < r.capacity && r.next != 0) {
            return bad("window position out of range", r.next);
        }
        if r.acc.count() != r.ring.len() as u64 {
            return bad("window sums disagree with its events", r.ring.len());
        }
        if r.ring
            .iter()
            .any(|(y, p)| !(y.is_finite() && p.is_finite()))
        {
            return bad("window events must be finite", r.ring.len());
        }
        Ok(Self {
            capacity: r.capacity,
            ring: r.ring,
            next: r.next,
            since_rebuild: r.since_rebuild,
            acc: r.acc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::binary::BinaryAcc;
    use super::super::regression::RegressionAcc;
    use super::*;

    fn push<A: Accumulator>(w: &mut Window<A>, y: f64, p: f64) {
        let (y, p) = A::normalize(y, p).unwrap();
        w.push(y, p, &A::term(y, p));
    }

    fn direct<A: Accumulator>(events: &[(f64, f64)]) -> MetricValues {
        let mut acc = A::default();
        for &(y, p) in events {
            acc.add(&A::term(y, p));
        }
        acc.values()
    }

    #[test]
    fn keeps_exactly_the_last_capacity_events_in_order() {
        let mut w: Window<RegressionAcc> = Window::new(3);
        for i in 0..7 {
            push(&mut w, f64::from(i), 0.0);
        }
        let (newer, older) = w.ring.split_at(w.next);
        let order: Vec<f64> = older.iter().chain(newer).map(|e| e.0).collect();
        assert_eq!(order, vec![4.0, 5.0, 6.0]);
        assert_eq!(w.acc.count(), 3);
    }

    #[test]
    fn zero_capacity_means_one() {
        let mut w: Window<BinaryAcc> = Window::new(0);
        push(&mut w, 1.0, 0.9);
        push(&mut w, 0.0, 0.9);
        assert_eq!(w.capacity(), 1);
        assert_eq!(w.values(), direct::<BinaryAcc>(&[(0.0, 0.9)]));
    }

    #[test]
    fn corrupted_state_is_rejected_on_load() {
        let mut w: Window<RegressionAcc> = Window::new(2);
        push(&mut w, 1.0, 2.0);
        let bytes = postcard::to_stdvec(&w).unwrap();
        assert_eq!(
            postcard::from_bytes::<Window<RegressionAcc>>(&bytes).unwrap(),
            w
        );
        let mut bad = w.clone();
        bad.next = 5;
        let bytes = postcard::to_stdvec(&bad).unwrap();
        assert!(postcard::from_bytes::<Window<RegressionAcc>>(&bytes).is_err());
        let mut bad = w.clone();
        bad.capacity = 0;
        let bytes = postcard::to_stdvec(&bad).unwrap();
        assert!(postcard::from_bytes::<Window<RegressionAcc>>(&bytes).is_err());
    }
}
