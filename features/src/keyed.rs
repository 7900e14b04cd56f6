//! `KeyedState`: the per-key state of some keys of a [`FeatureSet`], taken out of one set and
//! put into another. A Kafka worker that gives up a partition hands the state of that
//! partition's keys to the worker that gains it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{FeatureError, Result};
use crate::ops::{FeatureOp, IdleExpiry, KeyMap, KeyWindow};
use crate::set::FeatureSet;

/// The per-key state of some keys, one slot per operator of the set it came from (empty for
/// operators without per-key state, and for keyed operators none of whose keys were chosen).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyedState {
    operators: Vec<Option<OperatorKeys>>,
}

/// One keyed operator's share.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum OperatorKeys {
    /// `lag` (previous values) or `ema` (averages), with the keys' idle-expiry times.
    Values {
        values: KeyMap<f64>,
        expiry: Option<ExpiryKeys>,
    },
    /// `window`: the keys' panes, and the largest event time the operator had accepted.
    Window {
        max_time: Option<i64>,
        keys: KeyMap<KeyWindow>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ExpiryKeys {
    max_time: Option<i64>,
    last_times: KeyMap<i64>,
}

impl KeyedState {
    /// Number of keyed entries held (a key counts once per operator).
    pub fn len(&self) -> usize {
        self.operators
            .iter()
            .flatten()
            .map(|o| match o {
                OperatorKeys::Values { values, .. } => values.len(),
                OperatorKeys::Window { keys, .. } => keys.len(),
            })
            .sum()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Copies each key of `map` for which `part_of` names a part into that part's map.
fn split_map<S: Clone>(
    map: &KeyMap<S>,
    part_of: &mut impl FnMut(&str) -> Option<u32>,
) -> BTreeMap<u32, KeyMap<S>> {
    let mut parts: BTreeMap<u32, KeyMap<S>> = BTreeMap::new();
    for (key, state) in map.iter() {
        if let Some(part) = part_of(key) {
            parts.entry(part).or_default().insert(key, state.clone());
        }
    }
    parts
}

/// The expiry times of the keys in `chosen`.
fn expiry_share<S>(expiry: &Option<IdleExpiry>, chosen: &KeyMap<S>) -> Option<ExpiryKeys> {
    expiry.as_ref().map(|e| {
        let mut last_times = KeyMap::default();
        for (key, _) in chosen.iter() {
            if let Some(&t) = e.last_times.get(key) {
                last_times.insert(key, t);
            }
        }
        ExpiryKeys {
            max_time: e.max_time,
            last_times,
        }
    })
}

fn later(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    a.max(b)
}

fn put_expiry(expiry: &mut Option<IdleExpiry>, share: Option<ExpiryKeys>) -> Result<()> {
    match (expiry, share) {
        (Some(e), Some(share)) => {
            // Every key's time stays at or before the largest time seen.
            e.max_time = later(e.max_time, share.max_time);
            for (key, &t) in share.last_times.iter() {
                e.last_times.insert(key, t);
            }
            Ok(())
        }
        (None, None) => Ok(()),
        _ => Err(mismatch("idle expiry is configured on one side only")),
    }
}

fn mismatch(what: &str) -> FeatureError {
    FeatureError::InvalidState(format!(
        "handed-over per-key state does not fit this pipeline: {what}"
    ))
}

impl FeatureSet {
    /// The fields that key per-key state (`lag`, `ema`, `window`), each once, sorted.
    pub fn key_fields(&self) -> Vec<&str> {
        let mut fields: Vec<&str> = self
            .operators()
            .iter()
            .filter_map(|op| match op {
                FeatureOp::Lag(o) => Some(o.key.as_str()),
                FeatureOp::Ema(o) => Some(o.key.as_str()),
                FeatureOp::Window(o) => Some(o.config().key.as_str()),
                _ => None,
            })
            .collect();
        fields.sort_unstable();
        fields.dedup();
        fields
    }

    /// Copies the per-key state into parts: `part_of(key_field, key)` names the part of each
    /// key, or `None` to leave it out. Parts with no key are absent.
    pub fn keyed_parts(
        &self,
        mut part_of: impl FnMut(&str, &str) -> Option<u32>,
    ) -> BTreeMap<u32, KeyedState> {
        let n = self.operators().len();
        let mut parts: BTreeMap<u32, KeyedState> = BTreeMap::new();
        let mut slot = |part: u32, i: usize, keys: OperatorKeys| {
            let state = parts.entry(part).or_insert_with(|| KeyedState {
                operators: vec![None; n],
            });
            state.operators[i] = Some(keys);
        };
        for (i, op) in self.operators().iter().enumerate() {
            match op {
                FeatureOp::Lag(o) => {
                    for (part, values) in split_map(&o.previous, &mut |k| part_of(&o.key, k)) {
                        let expiry = expiry_share(&o.expiry, &values);
                        slot(part, i, OperatorKeys::Values { values, expiry });
                    }
                }
                FeatureOp::Ema(o) => {
                    for (part, values) in split_map(&o.averages, &mut |k| part_of(&o.key, k)) {
                        let expiry = expiry_share(&o.expiry, &values);
                        slot(part, i, OperatorKeys::Values { values, expiry });
                    }
                }
                FeatureOp::Window(o) => {
                    let key = &o.config().key;
                    for (part, keys) in split_map(&o.keys, &mut |k| part_of(key, k)) {
                        let max_time = o.max_time;
                        slot(part, i, OperatorKeys::Window { max_time, keys });
                    }
                }
                _ => {}
            }
        }
        parts
    }

    /// Drops the per-key state of every key for which `remove(key_field, key)` is true.
    pub fn remove_keys(&mut self, mut remove: impl FnMut(&str, &str) -> bool) {
        for op in self.operators_mut() {
            match op {
                FeatureOp::Lag(o) => {
                    let field = &o.key;
                    o.previous.retain(|k, _| !remove(field, k));
                    if let Some(e) = &mut o.expiry {
                        e.last_times.retain(|k, _| !remove(field, k));
                    }
                }
                FeatureOp::Ema(o) => {
                    let field = &o.key;
                    o.averages.retain(|k, _| !remove(field, k));
                    if let Some(e) = &mut o.expiry {
                        e.last_times.retain(|k, _| !remove(field, k));
                    }
                }
                FeatureOp::Window(o) => {
                    let field = o.config().key.clone();
                    o.keys.retain(|k, _| !remove(&field, k));
                }
                _ => {}
            }
        }
    }

    /// Puts handed-over per-key state in, replacing the state of the same keys. Time moves to
    /// the later of the two sides' largest event times (windows and idle expiry), as if this set
    /// had seen the other's events too. Fails, changing nothing, when `state` came from a set
    /// with other operators.
    pub fn put_keys(&mut self, state: KeyedState) -> Result<()> {
        if state.operators.len() != self.operators().len() {
            return Err(mismatch("another number of operators"));
        }
        for (op, share) in self.operators().iter().zip(&state.operators) {
            let fits = match (op, share) {
                (_, None) => true,
                (FeatureOp::Lag(o), Some(OperatorKeys::Values { expiry, .. })) => {
                    o.expiry.is_some() == expiry.is_some()
                }
                (FeatureOp::Ema(o), Some(OperatorKeys::Values { expiry, .. })) => {
                    o.expiry.is_some() == expiry.is_some()
                }
                (FeatureOp::Window(_), Some(OperatorKeys::Window { .. })) => true,
                _ => false,
            };
            if !fits {
                return Err(mismatch("an operator of another kind"));
            }
        }
        for (op, share) in self.operators_mut().iter_mut().zip(state.operators) {
            match (op, share) {
                (FeatureOp::Lag(o), Some(OperatorKeys::Values { values, expiry })) => {
                    put_expiry(&mut o.expiry, expiry)?;
                    for (k, &v) in values.iter() {
                        o.previous.insert(k, v);
                    }
                }
                (FeatureOp::Ema(o), Some(OperatorKeys::Values { values, expiry })) => {
                    put_expiry(&mut o.expiry, expiry)?;
                    for (k, &v) in values.iter() {
                        o.averages.insert(k, v);
                    }
                }
                (FeatureOp::Window(o), Some(OperatorKeys::Window { max_time, keys })) => {
                    o.max_time = later(o.max_time, max_time);
                    for (k, w) in keys.iter() {
                        o.keys.insert(k, w.clone());
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::run::{configs, learn, Row};
    use crate::{BatchBuilder, FeatureBatch};
    use std::sync::Arc;

    const CONFIGS: &str = r#"[
        {"type": "lag", "field": "x", "key": "k", "time_field": "ts", "unit": "s",
         "idle_expiry_seconds": 500},
        {"type": "ema", "field": "x", "key": "k", "half_life": 3},
        {"type": "window", "field": "x", "key": "k", "time_field": "ts", "unit": "s",
         "size_seconds": 60, "slide_seconds": 20, "aggregates": ["count", "mean", "last"]},
        {"type": "standard_scaler", "fields": ["x"]}
    ]"#;

    /// Event `i`: key `k{i % 6}`, one second apart.
    fn records(range: std::ops::Range<usize>) -> Vec<String> {
        range
            .map(|i| {
                let x = ((i * 37) % 101) as f64 / 7.0;
                format!(r#"{{"k": "k{}", "x": {x}, "ts": {}}}"#, i % 6, 1_000 + i)
            })
            .collect()
    }

    fn part_of(key: &str) -> u32 {
        u32::from(key.ends_with(['1', '3', '5']))
    }

    fn learn_on(set: &mut FeatureSet, records: &[String]) -> Vec<Row> {
        let mut decoder = BatchBuilder::new(Arc::new(set.schema().clone()));
        for r in records {
            decoder.push_json(r.as_bytes()).expect("decodes");
        }
        let mut out = FeatureBatch::new();
        set.transform(&decoder.finish(), true, &mut out)
            .expect("fits");
        assert!(out.rejected().is_empty());
        out.rows()
            .map(|(d, i, v)| (d.to_vec(), i.to_vec(), v.to_vec()))
            .collect()
    }

    /// The per-key columns of a row (the scaler's is global state, not handed over).
    fn keyed_columns(row: &Row) -> Vec<u64> {
        row.0[..row.0.len() - 1]
            .iter()
            .map(|x| x.to_bits())
            .collect()
    }

    #[test]
    fn keys_handed_to_another_set_continue_as_if_they_never_moved() {
        let configs = configs(CONFIGS);
        let all = records(0..300);
        let reference = learn(&configs, &all, 64);
        let mut a = learn(&configs, &all[..180], 64).set;
        assert_eq!(a.key_fields(), ["k"]);

        // Hand part 1 (keys k1, k3, k5) from A to a fresh set B.
        let mut parts = a.keyed_parts(|field, key| {
            assert_eq!(field, "k");
            Some(part_of(key))
        });
        let moved = parts.remove(&1).expect("part 1 has keys");
        assert_eq!(moved.len(), 3 * 3, "keys k1, k3, k5 in lag, ema and window");
        let mut b = FeatureSet::new(&configs, &run_schema(&configs)).expect("fresh set");
        b.put_keys(moved).expect("same operators");
        a.remove_keys(|_, key| part_of(key) == 1);

        for (i, record) in all.iter().enumerate().skip(180) {
            let key = format!("k{}", i % 6);
            let owner = if part_of(&key) == 1 { &mut b } else { &mut a };
            let row = learn_on(owner, std::slice::from_ref(record));
            assert_eq!(
                keyed_columns(&row[0]),
                keyed_columns(&reference.rows[i]),
                "event {i} of {key}"
            );
        }
        // Between them, A and B hold exactly the reference's per-key state.
        let whole = |set: &FeatureSet| set.keyed_parts(|_, _| Some(0)).remove(&0);
        let (mut joined, whole_b) = (a.clone(), whole(&b).expect("B has keys"));
        joined.put_keys(whole_b).expect("same operators");
        assert_eq!(whole(&joined), whole(&reference.set));
        assert!(!a.keyed_parts(|_, k| Some(part_of(k))).contains_key(&1));
    }

    #[test]
    fn state_from_other_operators_is_refused_without_change() {
        let configs_a = configs(CONFIGS);
        let a = learn(&configs_a, &records(0..50), 16).set;
        let state = a.keyed_parts(|_, _| Some(0)).remove(&0).expect("keys");
        let other = configs(r#"[{"type": "ema", "field": "x", "key": "k", "half_life": 3}]"#);
        let mut b = learn(&other, &records(0..10), 16).set;
        let before = b.clone();
        let err = b.put_keys(state).expect_err("another pipeline");
        assert!(err.to_string().contains("does not fit"), "{err}");
        assert_eq!(b, before);
    }

    fn run_schema(configs: &[crate::FeatureConfig]) -> crate::Schema {
        (*crate::ops::testing::run::schema(configs)).clone()
    }
}
