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
pub(crate) struct Window<A: Accumulator> {
    capacity: usize,
    /// Insertion order until full; then `next` is the oldest event and the slot the next push
    /// overwrites.
    ring: Vec<(f64, f64)>,
    /// Each ring event's term, kept so an evicted event and a rebuild need no second `ln`; not
    /// saved (it follows from `ring`) and recomputed on load.
    #[serde(skip_serializing)]
    terms: Vec<A::Term>,
    next: usize,
    since_rebuild: usize,
    acc: A,
}

impl<A: Accumulator> Window<A> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            ring: Vec::new(),
            terms: Vec::new(),
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
            self.terms.push(term.clone());
        } else if let (Some(slot), Some(kept)) =
            (self.ring.get_mut(self.next), self.terms.get_mut(self.next))
        {
            *slot = (y, p);
            let old = std::mem::replace(kept, term.clone());
            self.acc.remove(&old);
            // a compare, not `% capacity` (an integer division per event; the profile put many
            // samples on it, though the benchmarks could not tell the two apart)
            self.next += 1;
            if self.next >= self.capacity {
                self.next = 0;
            }
        }
        self.acc.add(term);
        self.since_rebuild += 1;
        if self.since_rebuild >= self.capacity {
            self.since_rebuild = 0;
            let (newer, older) = self.terms.split_at(self.next.min(self.terms.len()));
            self.acc.rebuild(older.iter().chain(newer));
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
        let terms = r.ring.iter().map(|&(y, p)| A::term(y, p)).collect();
        Ok(Self {
            capacity: r.capacity,
            terms,
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

    /// A window saved and loaded mid-stream (its terms recomputed from the ring) goes on exactly
    /// as one that never was: same terms, same sums through evictions and rebuilds.
    #[test]
    fn a_loaded_window_continues_bit_for_bit() {
        let events: Vec<(f64, f64)> = (0..50)
            .map(|i| (f64::from(i % 3 == 0), (f64::from(i) * 0.37).sin().abs()))
            .collect();
        let mut kept: Window<BinaryAcc> = Window::new(7);
        let mut loaded = kept.clone();
        for (i, &(y, p)) in events.iter().enumerate() {
            push(&mut kept, y, p);
            push(&mut loaded, y, p);
            if i % 5 == 2 {
                let bytes = postcard::to_stdvec(&loaded).unwrap();
                loaded = postcard::from_bytes(&bytes).unwrap();
            }
            assert_eq!(loaded, kept, "after event {i}");
        }
        // Against a direct sum over the last 7, up to the add/remove rounding a rebuild clears.
        for ((name, got), (_, want)) in kept.values().iter().zip(direct::<BinaryAcc>(&events[43..]))
        {
            assert!((got - want).abs() < 1e-12, "{name}: {got} vs {want}");
        }
    }
}
