//! Windowed aggregates per key on event time: tumbling and sliding windows, a watermark with
//! bounded out-of-orderness, allowed lateness, and idle-key expiry.

use arrow_array::{Array, Float64Array, RecordBatch, StringArray};

use super::event_time::TimeColumn;
use super::key_map::{KeyMap, Probe};
use super::{column, finite_or_zero, resolve_columns, skipped};
use crate::config::{time_field_type, Aggregate, WindowConfig};
use crate::error::{DecodeError, DecodeErrorKind, FeatureError, Result};
use crate::schema::{FieldType, Schema};

/// Aggregates of the events of one key whose time falls in `[start, start + slide)`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pane {
    pub start: i64,
    pub count: u64,
    pub sum: f64,
    /// Welford mean and sum of squared deviations, merged across panes with Chan's formula.
    pub mean: f64,
    pub m2: f64,
    pub min: f64,
    pub max: f64,
    pub last: f64,
    pub last_time: i64,
}

impl Pane {
    fn new(start: i64) -> Pane {
        Pane {
            start,
            count: 0,
            sum: 0.0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            last: 0.0,
            last_time: i64::MIN,
        }
    }

    #[inline]
    fn add(&mut self, x: f64, t: i64) {
        self.count += 1;
        self.sum += x;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        // Ties go to the event processed later.
        if t >= self.last_time {
            (self.last, self.last_time) = (x, t);
        }
    }

    /// Adds `other`'s events. Without `spread` the mean and squared deviations (two divisions
    /// per pane) are left as they are: only `std` and `relative_std` read them.
    #[inline]
    fn merge(&mut self, other: &Pane, spread: bool) {
        let n = self.count + other.count;
        if other.count == 0 {
            return;
        }
        if spread {
            let delta = other.mean - self.mean;
            let (na, nb) = (self.count as f64, other.count as f64);
            self.mean += delta * nb / n as f64;
            self.m2 += other.m2 + delta * delta * na * nb / n as f64;
        }
        self.count = n;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.last_time >= self.last_time {
            (self.last, self.last_time) = (other.last, other.last_time);
        }
    }

    fn is_valid(&self) -> bool {
        let finite = [self.sum, self.mean, self.m2].iter().all(|x| x.is_finite());
        finite && self.m2 >= 0.0 && self.count > 0 && self.min <= self.max
    }
}

/// One key's panes (sorted by start) and the latest event time seen for it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KeyWindow {
    pub last_time: i64,
    pub panes: Vec<Pane>,
}

impl KeyWindow {
    #[inline]
    fn add(&mut self, x: f64, t: i64, slide: i64) {
        let start = t.div_euclid(slide) * slide;
        let i = match self.panes.binary_search_by_key(&start, |p| p.start) {
            Ok(i) => i,
            Err(i) => {
                // Exact growth: a key holds few panes, and there may be a million keys.
                self.panes.reserve_exact(1);
                self.panes.insert(i, Pane::new(start));
                i
            }
        };
        self.panes[i].add(x, t);
        self.last_time = self.last_time.max(t);
    }

    /// The panes of `[start, end)` merged (the mean and `m2` only with `spread`).
    #[inline]
    fn aggregate(&self, start: i64, end: i64, spread: bool) -> Pane {
        let mut total = Pane::new(start);
        for p in self
            .panes
            .iter()
            .filter(|p| p.start >= start && p.start < end)
        {
            total.merge(p, spread);
        }
        total
    }
}

/// `window`: row i with value `x`, key `k` and event time `t` adds `x` to `k`'s pane of `t`,
/// then writes the aggregates of `k`'s events (accepted so far, in processing order) in the
/// trailing window of `t`: `[e - size, e)` with `e` the first multiple of `slide` after `t`
/// (the tumbling window of `t` when `slide = size`). Empty aggregates are 0.0.
///
/// The watermark is the largest accepted event time minus `max_out_of_orderness_seconds`; an
/// event older than the watermark minus `allowed_lateness_seconds` is refused as "late" (the
/// [`FeatureSet`](crate::FeatureSet) decides that row by row before any state changes). A key
/// whose newest event is older than the watermark minus `idle_expiry_seconds` is expired: it
/// reads as a new key, and its state is dropped by a sweep every `idle_expiry_seconds` of
/// watermark progress. Serving (`transform`) writes what learning the row would write, without
/// keeping it.
///
/// Memory per key: a slot of a 24-byte key (inline up to 22 bytes, see
/// [`INLINE_KEY_BYTES`](super::INLINE_KEY_BYTES)) and a `KeyWindow` (56 bytes) plus a
/// control byte per bucket, at a load of 7/16 to 7/8 (at most 131 bytes), and at most
/// [`WindowConfig::max_panes`] panes of 72 bytes (a 5-minute window sliding by 1 minute with
/// 5 s out-of-orderness: 7 panes, at most 635 bytes per key in all, for keys up to 22 bytes;
/// a longer key adds its allocation, 32 bytes up to 24 bytes); see [`Window::state_bytes`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    config: WindowConfig,
    /// Largest accepted event time (ms).
    pub(crate) max_time: Option<i64>,
    /// Watermark at which the next expiry sweep runs.
    next_sweep: Option<i64>,
    pub(crate) keys: KeyMap<KeyWindow>,
    #[serde(skip)]
    columns: [usize; 3],
    #[serde(skip)]
    offset: usize,
}

const MS: i64 = 1000;

/// Rows whose key state [`touch`] loads ahead of updating them.
const PREFETCH_ROWS: usize = 16;

/// Looks up the keys of `probes` (hashed ahead), then reads their newest pane, so the cache
/// misses of the next rows overlap instead of each row waiting for its own in turn: the
/// lookups are independent, the pane reads too, and the update loop that follows finds the
/// lines in cache. A 72-byte pane always spans two cache lines, so both its first and its last
/// field are read. Reads only, so it changes no output.
#[inline]
fn touch(keys_map: &KeyMap<KeyWindow>, probes: &[Option<Probe<'_>>]) {
    let mut found: [Option<&KeyWindow>; PREFETCH_ROWS] = [None; PREFETCH_ROWS];
    for (f, p) in found.iter_mut().zip(probes) {
        *f = p.as_ref().and_then(|p| keys_map.probe(p));
    }
    let sum = found
        .iter()
        .flatten()
        .filter_map(|k| k.panes.last())
        .fold(0i64, |s, p| s.wrapping_add(p.start ^ p.last_time));
    std::hint::black_box(sum);
}

impl Window {
    pub(crate) fn new(config: WindowConfig) -> Self {
        Window {
            config,
            max_time: None,
            next_sweep: None,
            keys: KeyMap::default(),
            columns: [0; 3],
            offset: 0,
        }
    }

    /// The config this window was built from.
    pub fn config(&self) -> &WindowConfig {
        &self.config
    }

    /// Value, key and event-time fields.
    pub fn fields(&self) -> [&str; 3] {
        [
            &self.config.field,
            &self.config.key,
            &self.config.time_field,
        ]
    }

    /// One dense coordinate per aggregate.
    pub fn width(&self) -> usize {
        self.config.aggregates.len()
    }

    /// "window_mean_300s(price by symbol)"...
    pub fn describe(&self) -> Vec<String> {
        let c = &self.config;
        c.aggregates
            .iter()
            .map(|a| {
                format!(
                    "window_{}_{}s({} by {})",
                    a.as_str(),
                    c.size_seconds,
                    c.field,
                    c.key
                )
            })
            .collect()
    }

    /// The state of each key.
    pub fn state(&self) -> &KeyMap<KeyWindow> {
        &self.keys
    }

    /// Heap bytes held by the per-key state (table, keys and panes).
    pub fn state_bytes(&self) -> usize {
        let panes: usize = self
            .keys
            .iter()
            .map(|(_, k)| k.panes.capacity() * std::mem::size_of::<Pane>())
            .sum();
        self.keys.table_bytes() + panes
    }

    fn slide_ms(&self) -> i64 {
        self.config.slide() as i64 * MS
    }

    /// The watermark after events up to `max_time`.
    pub(crate) fn watermark(&self, max_time: Option<i64>) -> Option<i64> {
        max_time.map(|m| m - self.config.max_out_of_orderness_seconds as i64 * MS)
    }

    /// The largest accepted event time.
    pub fn max_time(&self) -> Option<i64> {
        self.max_time
    }

    pub(crate) fn set_max_time(&mut self, max_time: Option<i64>) {
        self.max_time = max_time;
    }

    /// The event-time column of `batch`.
    pub(crate) fn times<'b>(&self, batch: &'b RecordBatch) -> Result<TimeColumn<'b>> {
        TimeColumn::new(batch, self.columns[2], self.config.unit)
    }

    /// Why an event at `t` is refused under watermark `watermark`, if it is.
    pub(crate) fn late(&self, t: i64, watermark: Option<i64>) -> Option<DecodeError> {
        let lateness = self.config.allowed_lateness_seconds as i64 * MS;
        let limit = watermark? - lateness;
        (t < limit).then(|| {
            DecodeError::field(
                DecodeErrorKind::Late,
                &self.config.time_field,
                format!(
                    "event time {t} ms is before the watermark minus allowed lateness, {limit} ms"
                ),
            )
        })
    }

    pub(crate) fn bind(&mut self, schema: &Schema, offset: usize) -> Result<()> {
        let problems = crate::FeatureConfig::Window(self.config.clone()).validate(0);
        let panes_ok = self.keys.iter().all(|(_, k)| {
            k.panes.iter().all(Pane::is_valid)
                && k.panes.windows(2).all(|w| w[0].start < w[1].start)
        });
        if !problems.is_empty() || !panes_ok {
            return Err(FeatureError::InvalidState(format!(
                "window state of \"{}\" is inconsistent: {}",
                self.config.field,
                problems.join("; ")
            )));
        }
        let c = &self.config;
        let one = |name: &str, ty| -> Result<usize> {
            Ok(resolve_columns(schema, "window", &[name.to_owned()], ty)?[0])
        };
        self.columns = [
            one(&c.field, FieldType::Number)?,
            one(&c.key, FieldType::String)?,
            one(&c.time_field, time_field_type(c.unit))?,
        ];
        self.offset = offset;
        Ok(())
    }

    /// Writes the aggregates of `[end - size, end)`, `end` the first pane boundary after `t`.
    #[inline]
    fn write(&self, key: &KeyWindow, t: i64, row: &mut [f64]) {
        let slide = self.slide_ms();
        let end = t.div_euclid(slide) * slide + slide;
        let aggregates = &self.config.aggregates;
        let spread = aggregates
            .iter()
            .any(|a| matches!(a, Aggregate::Std | Aggregate::RelativeStd));
        let total = key.aggregate(end - self.config.size_seconds as i64 * MS, end, spread);
        if total.count == 0 {
            return;
        }
        let n = total.count as f64;
        let mean = total.sum / n;
        // Only when asked for: a division and a square root are most of an output's cost.
        let std = || (total.m2 / n).sqrt();
        let relative = |x: f64| if mean == 0.0 { 0.0 } else { x / mean.abs() };
        for (o, a) in row.iter_mut().zip(aggregates) {
            *o = finite_or_zero(match a {
                Aggregate::Count => n,
                Aggregate::Sum => total.sum,
                Aggregate::Mean => mean,
                Aggregate::Min => total.min,
                Aggregate::Max => total.max,
                Aggregate::Std => std(),
                Aggregate::Last => total.last,
                Aggregate::RelativeStd => relative(std()),
                Aggregate::Deviation => relative(total.last - mean),
            });
        }
    }

    /// Event times before this mark expire a key under watermark `w`.
    fn expired_before(&self, w: Option<i64>) -> Option<i64> {
        Some(w? - self.config.idle_expiry_seconds? as i64 * MS)
    }

    /// Learns rows not in `skip`, with event times `times` and the watermark after each row
    /// `watermarks` (both from the set's first pass), and writes their aggregates.
    pub(crate) fn learn_transform(
        &mut self,
        batch: &RecordBatch,
        skip: &[bool],
        times: &[i64],
        watermarks: &[Option<i64>],
        dense: &mut [f64],
        width: usize,
    ) -> Result<()> {
        let values = column::<Float64Array>(batch, self.columns[0])?;
        let keys = column::<StringArray>(batch, self.columns[1])?;
        let slide = self.slide_ms();
        let lateness = self.config.allowed_lateness_seconds as i64 * MS;
        let size = self.config.size_seconds as i64 * MS;
        let w_out = self.width();
        let mut keys_map = std::mem::take(&mut self.keys);
        let rows = batch.num_rows();
        // Each key is hashed once, for both its lookup ahead and its update.
        let mut probes: [Option<Probe<'_>>; PREFETCH_ROWS] = std::array::from_fn(|_| None);
        for block in (0..rows).step_by(PREFETCH_ROWS) {
            let block = block..rows.min(block + PREFETCH_ROWS);
            for (p, i) in probes.iter_mut().zip(block.clone()) {
                let learned = !(skipped(skip, i) || values.is_null(i) || keys.is_null(i));
                *p = learned.then(|| Probe::new(keys.value(i)));
            }
            let probes = &probes[..block.len()];
            touch(&keys_map, probes);
            for (probe, i) in probes.iter().zip(block) {
                let Some(probe) = probe else {
                    continue;
                };
                let (t, w) = (times[i], watermarks[i]);
                let expired_before = self.expired_before(w);
                let key = keys_map.probe_or_insert_with(probe, || KeyWindow {
                    last_time: t,
                    panes: Vec::new(),
                });
                if expired_before.is_some_and(|e| key.last_time < e) {
                    key.panes.clear();
                    key.last_time = t;
                }
                if let Some(w) = w {
                    // Panes no future accepted event's window can reach (the watermark only
                    // grows).
                    let keep_from = (w - lateness).div_euclid(slide) * slide + slide - size;
                    let evict = key.panes.partition_point(|p| p.start < keep_from);
                    key.panes.drain(..evict);
                }
                key.add(values.value(i), t, slide);
                let at = i * width + self.offset;
                self.write(key, t, &mut dense[at..at + w_out]);
                if let (Some(e), Some(w)) = (expired_before, w) {
                    if self.next_sweep.is_none_or(|n| w >= n) {
                        keys_map.retain(|_, k| k.last_time >= e);
                        self.next_sweep = Some(w + (w - e));
                    }
                }
            }
        }
        self.keys = keys_map;
        Ok(())
    }

    /// Writes what learning each row would write, under the current watermark, keeping nothing.
    pub(crate) fn transform(
        &self,
        batch: &RecordBatch,
        skip: &[bool],
        times: &[i64],
        dense: &mut [f64],
        width: usize,
    ) -> Result<()> {
        let values = column::<Float64Array>(batch, self.columns[0])?;
        let keys = column::<StringArray>(batch, self.columns[1])?;
        let expired_before = self.expired_before(self.watermark(self.max_time));
        let w_out = self.width();
        for (i, &t) in times.iter().enumerate().take(batch.num_rows()) {
            if skipped(skip, i) || values.is_null(i) || keys.is_null(i) {
                continue;
            }
            let mut key = match self.keys.get(keys.value(i)) {
                Some(k) if expired_before.is_none_or(|e| k.last_time >= e) => k.clone(),
                _ => KeyWindow {
                    last_time: t,
                    panes: Vec::new(),
                },
            };
            key.add(values.value(i), t, self.slide_ms());
            let at = i * width + self.offset;
            self.write(&key, t, &mut dense[at..at + w_out]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::error::DecodeErrorKind;
    use crate::ops::testing::run::{close, configs, learn, learn_checked, postcard_bytes, serve};
    use crate::ops::testing::testgen::values;
    use crate::ops::FeatureOp;

    const CONFIG: &str = r#"[{"type": "window", "field": "x", "key": "k", "time_field": "ts",
        "unit": "s", "size_seconds": 60, "slide_seconds": 20,
        "aggregates": ["count", "sum", "mean", "min", "max", "std", "last", "relative_std",
            "deviation"],
        "max_out_of_orderness_seconds": 10, "allowed_lateness_seconds": 5,
        "idle_expiry_seconds": 100}]"#;

    /// Out-of-order events of 5 keys (one rare, so it expires), some late, one bad timestamp.
    fn events() -> Vec<(String, i64, f64)> {
        let xs = values(600, 7);
        let jitter = values(600, 8);
        xs.iter()
            .zip(&jitter)
            .enumerate()
            .map(|(i, (&x, &j))| {
                let key = if i % 50 == 7 {
                    "rare".to_owned()
                } else {
                    format!("k{}", i % 4)
                };
                let t = 1_700_000_000 + i as i64 * 2 - (j.abs() / 5.0) as i64;
                let t = if i == 300 { 1_000_000_000_000_000 } else { t };
                (key, t, x)
            })
            .collect()
    }

    fn records(events: &[(String, i64, f64)]) -> Vec<String> {
        events
            .iter()
            .map(|(k, t, x)| format!(r#"{{"x": {x}, "k": "{k}", "ts": {t}}}"#))
            .collect()
    }

    /// Windows computed directly: late by replaying the max, expiry by resetting a key whose
    /// newest event is too old, aggregates by filtering the key's events.
    fn direct(events: &[(String, i64, f64)]) -> (Vec<Option<Vec<f64>>>, Vec<usize>) {
        let (size, slide, ooo, late, expiry) = (60, 20, 10, 5, 100);
        let mut max_t: Option<i64> = None;
        type Events = (i64, Vec<(i64, f64)>);
        let mut per_key: HashMap<&str, Events> = HashMap::new();
        let (mut out, mut rejected) = (Vec::new(), Vec::new());
        for (i, (k, t, x)) in events.iter().enumerate() {
            let (t, x) = (*t, *x);
            if t > 253_402_300_799 || max_t.is_some_and(|m| t < m - ooo - late) {
                rejected.push(i);
                out.push(None);
                continue;
            }
            max_t = Some(max_t.map_or(t, |m| m.max(t)));
            let w = max_t.unwrap() - ooo;
            let entry = per_key.entry(k).or_insert((t, Vec::new()));
            if entry.0 < w - expiry {
                *entry = (t, Vec::new());
            }
            entry.0 = entry.0.max(t);
            entry.1.push((t, x));
            let end = t.div_euclid(slide) * slide + slide;
            let xs: Vec<(i64, f64)> = entry
                .1
                .iter()
                .copied()
                .filter(|(s, _)| (end - size..end).contains(s))
                .collect();
            let n = xs.len() as f64;
            let sum: f64 = xs.iter().map(|e| e.1).sum();
            let mean = sum / n;
            let var = xs.iter().map(|e| (e.1 - mean).powi(2)).sum::<f64>() / n;
            let mut last = (i64::MIN, 0.0);
            for &(s, v) in &xs {
                if s >= last.0 {
                    last = (s, v);
                }
            }
            let min = xs.iter().map(|e| e.1).fold(f64::INFINITY, f64::min);
            let max = xs.iter().map(|e| e.1).fold(f64::NEG_INFINITY, f64::max);
            let (cv, deviation) = if mean == 0.0 {
                (0.0, 0.0)
            } else {
                (var.sqrt() / mean.abs(), (last.1 - mean) / mean.abs())
            };
            out.push(Some(vec![
                n,
                sum,
                mean,
                min,
                max,
                var.sqrt(),
                last.1,
                cv,
                deviation,
            ]));
        }
        (out, rejected)
    }

    #[test]
    fn matches_windows_computed_directly_with_disorder_lateness_and_expiry() {
        let events = events();
        let run = learn_checked(CONFIG, &records(&events));
        let (expected, rejected) = direct(&events);
        let got: Vec<usize> = run.rejected.iter().map(|r| r.0).collect();
        assert_eq!(got, rejected);
        assert!(
            rejected.len() > 5,
            "the stream has late events: {rejected:?}"
        );
        assert!(run.rejected.contains(&(300, DecodeErrorKind::BadTimestamp)));
        assert!(
            run.rejected
                .iter()
                .filter(|r| r.1 == DecodeErrorKind::Late)
                .count()
                > 5
        );
        for (i, (row, e)) in run.rows.iter().zip(&expected).enumerate() {
            match e {
                None => assert!(row.0.iter().all(|&x| x == 0.0), "refused row {i} is empty"),
                Some(e) => {
                    for (a, b) in row.0.iter().zip(e) {
                        assert!(close(*a, *b), "row {i}: {:?} vs {e:?}", row.0);
                    }
                }
            }
        }
        // The rare key expired and restarted at least once: its count is 1 each time.
        let rare: Vec<f64> = events
            .iter()
            .zip(&run.rows)
            .filter(|(e, _)| e.0 == "rare")
            .map(|(_, r)| r.0[0])
            .collect();
        assert!(rare.iter().all(|&c| c == 1.0), "{rare:?}");
    }

    #[test]
    fn refused_rows_change_no_state() {
        let events = events();
        let all = learn_checked(CONFIG, &records(&events));
        let refused: Vec<usize> = all.rejected.iter().map(|r| r.0).collect();
        let kept: Vec<(String, i64, f64)> = events
            .iter()
            .enumerate()
            .filter(|(i, _)| !refused.contains(i))
            .map(|(_, e)| e.clone())
            .collect();
        let clean = learn(&configs(CONFIG), &records(&kept), 64);
        assert!(clean.rejected.is_empty());
        assert_eq!(postcard_bytes(&all.set), postcard_bytes(&clean.set));
        let accepted: Vec<_> = all
            .rows
            .iter()
            .enumerate()
            .filter(|(i, _)| !refused.contains(i))
            .map(|(_, r)| r.clone())
            .collect();
        assert_eq!(accepted, clean.rows);
    }

    #[test]
    fn serving_reads_the_key_state_without_changing_it() {
        let events = events();
        let run = learn_checked(CONFIG, &records(&events[..200]));
        let before = postcard_bytes(&run.set);
        let next = records(&events[200..203]);
        let served = serve(&run.set, &next);
        assert_eq!(postcard_bytes(&run.set), before);
        // Each served row equals what learning that one row would write.
        for (i, record) in next.iter().enumerate() {
            let mut set = run.set.clone();
            let learned = crate::ops::testing::testing_continue::learn_continue(&mut set, record);
            assert_eq!(served[i], learned, "row {i}");
        }
        let unknown = serve(
            &run.set,
            &[r#"{"x": 4, "k": "new", "ts": 1700000400}"#.into()],
        );
        assert_eq!(unknown[0].0[..3], [1.0, 4.0, 4.0]);
    }

    #[test]
    fn batches_across_the_lookahead_blocks_change_nothing() {
        // Sizes that are not multiples of the 16 rows looked up ahead, so blocks straddle
        // batches, with expiry sweeps inside blocks.
        let events = events();
        let whole = learn_checked(CONFIG, &records(&events));
        for size in [15, 17, 64] {
            let run = learn(&configs(CONFIG), &records(&events), size);
            assert_eq!(run.rows, whole.rows, "batches of {size}");
            assert_eq!(run.rejected, whole.rejected, "batches of {size}");
            assert_eq!(postcard_bytes(&run.set), postcard_bytes(&whole.set));
        }
    }

    #[test]
    fn aggregates_without_std_write_the_same_bits_as_with_it() {
        // Without std or relative_std the window skips the mean and m2 of its merged panes.
        let subset = CONFIG.replace(
            r#""aggregates": ["count", "sum", "mean", "min", "max", "std", "last", "relative_std",
            "deviation"]"#,
            r#""aggregates": ["deviation", "mean", "count", "last"]"#,
        );
        assert_ne!(subset, CONFIG);
        let events = events();
        let full = learn_checked(CONFIG, &records(&events));
        let part = learn_checked(&subset, &records(&events));
        for (i, (f, p)) in full.rows.iter().zip(&part.rows).enumerate() {
            let expected: Vec<u64> = [8, 2, 0, 6].iter().map(|&k| f.0[k].to_bits()).collect();
            let got: Vec<u64> = p.0.iter().map(|x| x.to_bits()).collect();
            assert_eq!(got, expected, "row {i}");
        }
    }

    #[test]
    fn a_million_keys_fit_the_stated_bound() {
        let config = configs(
            r#"[{"type": "window", "field": "x", "key": "k", "time_field": "ts", "unit": "s",
                "size_seconds": 60, "aggregates": ["mean"]}]"#,
        );
        let records: Vec<String> = (0..1_000_000)
            .map(|i| {
                format!(
                    r#"{{"x": 1, "k": "key{i:07}", "ts": {}}}"#,
                    1_700_000_000 + i / 1000
                )
            })
            .collect();
        let run = learn(&config, &records, 65_536);
        let FeatureOp::Window(w) = &run.set.operators()[0] else {
            unreachable!()
        };
        assert_eq!(w.state().len(), 1_000_000);
        let per_key = run.set.state_bytes() as f64 / 1e6;
        // Bounds of the former layout (a 48-byte slot, a 32-byte key allocation, one 72-byte
        // pane); the 10-byte keys now live in a 56-byte slot: at this load (1e6 keys in 2^21
        // buckets) 2.1 * 57 + 72 = 192 bytes, inside them.
        let (least, most) = (49.0 * 8.0 / 7.0, 49.0 * 16.0 / 7.0);
        assert!(per_key <= most + 32.0 + 72.0, "{per_key} bytes per key");
        assert!(per_key >= least + 32.0 + 72.0, "{per_key} bytes per key");
    }
}
