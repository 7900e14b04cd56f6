//! A seeded generator of synthetic streams with known ground truth, so demos and tests need no
//! data files: a logistic stream, a linear-regression stream, Gaussian blobs and ad impressions
//! with a click (`ctr`, see [`super::ctr`]).
//!
//! Record `i` depends only on the seed and `i` (its RNG is seeded from both), so a resumed
//! generator continues with exactly the records an uninterrupted one would have produced,
//! whatever the batch size.

use std::time::{Duration, Instant};

use eddy_features::{BatchBuilder, FieldType};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::ctr::{ctr_fields, CtrTruth, CTR_FIELD_COUNT, CTR_TARGET};
use super::quotes::{QuoteTape, QUOTES_TARGET, QUOTE_NUMBERS, QUOTE_STRINGS};
use super::{schema_of, BuildContext, Chunk, ChunkParts, DeadLetter, Location, Position, Source};
use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeneratorKind {
    /// `y` ~ Bernoulli(sigmoid(w·x + b + effect[cat])), x ~ N(0, I).
    Logistic,
    /// `y` = w·x + b + effect[cat] + N(0, noise_std²).
    Linear,
    /// x = centre[label] + N(0, I); `label` names the blob.
    Blobs,
    /// Ad impressions: string ids `site_id`, `app_id`, `device_model`, `ad_id`, `user_segment`
    /// (Zipf-like popularity over hundreds to thousands of values), `hour` ("00".."23") and a
    /// 0/1 `click` from hidden per-value effects plus an ad × site interaction.
    Ctr,
    /// Stock quotes of `symbols` tickers with volatility regimes (see [`super::quotes`]):
    /// `symbol`, `time` (epoch ms), `price`, `volume`, `spread_bps`, `regime` and the label `up`.
    Quotes,
}

fn default_features() -> usize {
    10
}
fn default_seed() -> u64 {
    42
}
fn default_clusters() -> usize {
    3
}
fn default_noise() -> f64 {
    0.5
}
fn default_symbols() -> usize {
    50
}
fn default_batch() -> usize {
    4096
}

/// `[source] type = "generator"`. Fields: `x0`..`x{features-1}`, `y` (logistic, linear),
/// `label` (blobs), and `cat` (a string `c0`..) when `categories` > 0. `ctr` has its own fields
/// (see [`GeneratorKind::Ctr`]) and ignores `features`, `categories`, `clusters` and `noise_std`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    pub kind: GeneratorKind,
    #[serde(default = "default_features")]
    pub features: usize,
    /// Stop after this many events; unbounded when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Emit at most this many events per second (wall clock); as fast as possible when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<f64>,
    #[serde(default)]
    pub categories: usize,
    #[serde(default = "default_clusters")]
    pub clusters: usize,
    #[serde(default = "default_noise")]
    pub noise_std: f64,
    /// `quotes`: how many tickers.
    #[serde(default = "default_symbols")]
    pub symbols: usize,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
}

impl GeneratorConfig {
    pub fn new(kind: GeneratorKind) -> Self {
        GeneratorConfig {
            kind,
            features: default_features(),
            events: None,
            seed: default_seed(),
            rate_per_sec: None,
            categories: 0,
            clusters: default_clusters(),
            noise_std: default_noise(),
            symbols: default_symbols(),
            batch_size: default_batch(),
        }
    }

    pub(crate) fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.kind == GeneratorKind::Quotes && self.symbols == 0 {
            problems.push("source.symbols: must be >= 1, got 0".to_owned());
        }
        if self.features == 0 && !matches!(self.kind, GeneratorKind::Ctr | GeneratorKind::Quotes) {
            problems.push("source.features: must be >= 1, got 0".to_owned());
        }
        if let Some(rate) = self.rate_per_sec {
            if !(rate.is_finite() && rate > 0.0) {
                problems.push(format!(
                    "source.rate_per_sec: must be finite and > 0, got {rate}"
                ));
            }
        }
        if self.kind == GeneratorKind::Blobs && self.clusters == 0 {
            problems.push("source.clusters: must be >= 1, got 0".to_owned());
        }
        if !(self.noise_std.is_finite() && self.noise_std >= 0.0) {
            problems.push(format!(
                "source.noise_std: must be finite and >= 0, got {}",
                self.noise_std
            ));
        }
        problems
    }

    /// The field this generator emits as its target.
    pub fn target(&self) -> &'static str {
        match self.kind {
            GeneratorKind::Blobs => "label",
            GeneratorKind::Ctr => CTR_TARGET,
            GeneratorKind::Quotes => QUOTES_TARGET,
            GeneratorKind::Logistic | GeneratorKind::Linear => "y",
        }
    }

    /// The names of the fields this generator emits, numbers first.
    pub fn fields(&self) -> (Vec<String>, Vec<String>) {
        if self.kind == GeneratorKind::Ctr {
            return (vec![CTR_TARGET.to_owned()], ctr_fields());
        }
        if self.kind == GeneratorKind::Quotes {
            let owned = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
            return (owned(&QUOTE_NUMBERS), owned(&QUOTE_STRINGS));
        }
        let mut numbers: Vec<String> = (0..self.features).map(|j| format!("x{j}")).collect();
        numbers.push(self.target().to_owned());
        let strings = if self.categories > 0 {
            vec!["cat".to_owned()]
        } else {
            Vec::new()
        };
        (numbers, strings)
    }

    /// The ground truth the stream is drawn from.
    pub fn truth(&self) -> Truth {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let mut normal = || -> f64 { rng.sample(StandardNormal) };
        let weights = (0..self.features).map(|_| normal()).collect();
        let intercept = 0.5 * normal();
        let category_effects = (0..self.categories).map(|_| normal()).collect();
        let centres = (0..self.clusters)
            .map(|_| (0..self.features).map(|_| 8.0 * normal()).collect())
            .collect();
        Truth {
            weights,
            intercept,
            category_effects,
            centres,
        }
    }
}

/// Parameters a generated stream is drawn from.
#[derive(Clone, Debug, PartialEq)]
pub struct Truth {
    pub weights: Vec<f64>,
    pub intercept: f64,
    pub category_effects: Vec<f64>,
    pub centres: Vec<Vec<f64>>,
}

/// Draws records from a config's ground truth; record `i` depends only on the seed and `i`.
struct Draw {
    config: GeneratorConfig,
    truth: Truth,
    x: Vec<f64>,
    /// The `ctr` kind's hidden effects and id strings; `None` for the other kinds.
    ctr: Option<CtrTruth>,
    /// The value index of each `ctr` field in the last record.
    ids: [usize; CTR_FIELD_COUNT],
}

impl Draw {
    fn new(config: &GeneratorConfig) -> Draw {
        let ctr = (config.kind == GeneratorKind::Ctr).then(|| {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed ^ 0xC7_2C7F);
            CtrTruth::new(config.seed, &mut rng)
        });
        let features = if ctr.is_some() { 0 } else { config.features };
        Draw {
            truth: config.truth(),
            x: vec![0.0; features],
            config: config.clone(),
            ctr,
            ids: [0; CTR_FIELD_COUNT],
        }
    }

    /// Draws record `i`: features into `self.x` (or ids into `self.ids`), returns (target,
    /// category).
    fn draw(&mut self, i: u64) -> (f64, Option<usize>) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(
            self.config.seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        if let Some(ctr) = &self.ctr {
            return (ctr.draw(&mut rng, &mut self.ids), None);
        }
        let category =
            (self.config.categories > 0).then(|| rng.gen_range(0..self.config.categories));
        let effect = category.map_or(0.0, |c| self.truth.category_effects[c]);
        match self.config.kind {
            GeneratorKind::Blobs => {
                let label = rng.gen_range(0..self.config.clusters);
                for (x, c) in self.x.iter_mut().zip(&self.truth.centres[label]) {
                    *x = c + rng.sample::<f64, _>(StandardNormal);
                }
                (label as f64, category)
            }
            kind => {
                for x in &mut self.x {
                    *x = rng.sample(StandardNormal);
                }
                let margin: f64 = self.truth.intercept
                    + effect
                    + self
                        .x
                        .iter()
                        .zip(&self.truth.weights)
                        .map(|(x, w)| x * w)
                        .sum::<f64>();
                let y = if kind == GeneratorKind::Logistic {
                    let p = 1.0 / (1.0 + (-margin).exp());
                    f64::from(u8::from(rng.gen::<f64>() < p))
                } else {
                    margin + self.config.noise_std * rng.sample::<f64, _>(StandardNormal)
                };
                (y, category)
            }
        }
    }
}

impl GeneratorConfig {
    /// Writes records `0..events` of this stream as JSON Lines (for benchmarks and tests that need a file).
    pub fn write_jsonl(&self, events: u64, out: &mut impl std::io::Write) -> std::io::Result<()> {
        if self.kind == GeneratorKind::Quotes {
            return QuoteTape::new(self.seed, self.symbols).write_jsonl(events, out);
        }
        let mut draw = Draw::new(self);
        let target = self.target();
        let (_, strings) = self.fields();
        let mut line = String::with_capacity(256);
        for i in 0..events {
            let (y, category) = draw.draw(i);
            line.clear();
            line.push('{');
            if let Some(ctr) = &draw.ctr {
                for (f, name) in strings.iter().enumerate() {
                    line.push_str(&format!("\"{name}\":\"{}\",", ctr.names[f][draw.ids[f]]));
                }
            }
            for (j, x) in draw.x.iter().enumerate() {
                line.push_str(&format!("\"x{j}\":{x},"));
            }
            if let Some(c) = category {
                line.push_str(&format!("\"cat\":\"c{c}\","));
            }
            line.push_str(&format!("\"{target}\":{y}}}\n"));
            out.write_all(line.as_bytes())?;
        }
        Ok(())
    }
}

/// Which generated value fills a schema column.
#[derive(Clone, Copy)]
enum Column {
    X(usize),
    Target,
    Missing,
}

/// Which generated string fills a schema column.
#[derive(Clone, Copy)]
enum StringColumn {
    Category,
    Ctr(usize),
    Missing,
}

pub struct GeneratorSource {
    config: GeneratorConfig,
    draw: Draw,
    builder: BatchBuilder,
    numbers: Vec<Column>,
    strings: Vec<StringColumn>,
    next: u64,
    pace: Pace,
    category_names: Vec<String>,
    /// The `ctr` id strings by field and value (a copy, so a batch can borrow them while the
    /// draw moves on).
    ctr_names: Vec<Vec<String>>,
    num_values: Vec<Option<f64>>,
}

impl GeneratorSource {
    pub fn new(config: &GeneratorConfig, cx: BuildContext) -> GeneratorSource {
        let schema = schema_of(&cx.builder);
        let target = config.target();
        let (_, ctr_names) = config.fields();
        let is_ctr = config.kind == GeneratorKind::Ctr;
        let mut numbers = Vec::new();
        let mut strings = Vec::new();
        for field in schema.fields() {
            match field.ty {
                FieldType::Number => numbers.push(if field.name == target {
                    Column::Target
                } else {
                    field
                        .name
                        .strip_prefix('x')
                        .and_then(|j| j.parse::<usize>().ok())
                        .filter(|j| *j < config.features)
                        .map_or(Column::Missing, Column::X)
                }),
                FieldType::String => strings.push(if is_ctr {
                    ctr_names
                        .iter()
                        .position(|n| *n == field.name)
                        .map_or(StringColumn::Missing, StringColumn::Ctr)
                } else if field.name == "cat" && config.categories > 0 {
                    StringColumn::Category
                } else {
                    StringColumn::Missing
                }),
            }
        }
        let next = cx.resume.map_or(0, |p| p.records);
        let draw = Draw::new(config);
        GeneratorSource {
            ctr_names: draw
                .ctr
                .as_ref()
                .map_or_else(Vec::new, |ctr| ctr.names.clone()),
            draw,
            category_names: (0..config.categories).map(|c| format!("c{c}")).collect(),
            num_values: vec![None; numbers.len()],
            config: config.clone(),
            builder: cx.builder,
            numbers,
            strings,
            next,
            pace: Pace::new(config.rate_per_sec, next),
        }
    }
}

impl Source for GeneratorSource {
    fn next_chunk(&mut self, max: usize) -> Result<Option<Chunk>> {
        let mut n = max as u64;
        if let Some(total) = self.config.events {
            n = n.min(total.saturating_sub(self.next));
        }
        n = self.pace.cap(n);
        if n == 0 {
            return Ok(None);
        }
        let mut parts = ChunkParts::new();
        let mut strings: Vec<Option<&str>> = Vec::with_capacity(self.strings.len());
        for i in self.next..self.next + n {
            let (target, category) = self.draw.draw(i);
            for (slot, column) in self.num_values.iter_mut().zip(&self.numbers) {
                *slot = match column {
                    Column::X(j) => Some(self.draw.x[*j]),
                    Column::Target => Some(target),
                    Column::Missing => None,
                };
            }
            strings.clear();
            let ids = self.draw.ids;
            let (names, ctr_names) = (&self.category_names, &self.ctr_names);
            strings.extend(self.strings.iter().map(|column| match column {
                StringColumn::Category => category.map(|c| names[c].as_str()),
                StringColumn::Ctr(f) => ctr_names.get(*f).map(|n| n[ids[*f]].as_str()),
                StringColumn::Missing => None,
            }));
            push_generated(&mut self.builder, &mut parts, i, &self.num_values, &strings);
        }
        self.next += n;
        self.pace.wait(self.next);
        let end = self.position();
        Ok(Some(parts.finish(&mut self.builder, end)))
    }

    fn position(&self) -> Position {
        Position {
            records: self.next,
            location: Location::Generator,
        }
    }
}

/// Holds a generator to `rate_per_sec` (wall clock), when it has one.
pub(super) struct Pace {
    rate: Option<f64>,
    started: Instant,
    started_at: u64,
}

impl Pace {
    pub(super) fn new(rate: Option<f64>, at: u64) -> Pace {
        Pace {
            rate,
            started: Instant::now(),
            started_at: at,
        }
    }

    /// Records for the next chunk, at most `n`: small chunks when paced, so a slow stream still
    /// flows about 20 times a second.
    pub(super) fn cap(&self, n: u64) -> u64 {
        self.rate
            .map_or(n, |rate| n.min(((rate / 20.0).ceil() as u64).max(1)))
    }

    /// Sleeps until record `upto` is due.
    pub(super) fn wait(&self, upto: u64) {
        if let Some(rate) = self.rate {
            let due = Duration::from_secs_f64((upto - self.started_at) as f64 / rate);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
}

/// Adds generated record `i` to the chunk, or its refusal as a dead letter.
pub(super) fn push_generated(
    builder: &mut BatchBuilder,
    parts: &mut ChunkParts,
    i: u64,
    numbers: &[Option<f64>],
    strings: &[Option<&str>],
) {
    match builder.push_values(numbers, strings) {
        Ok(()) => parts.seqs.push(i),
        Err(err) => parts.dead.push(DeadLetter {
            seq: i,
            kind: err.kind.as_str(),
            field: err.field.clone(),
            reason: err.to_string(),
            origin: format!("generator:{i}"),
            raw: String::new(),
            coordinates: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctr(seed: u64) -> GeneratorConfig {
        let mut config = GeneratorConfig::new(GeneratorKind::Ctr);
        config.seed = seed;
        config
    }

    fn records(config: &GeneratorConfig, events: u64) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        config.write_jsonl(events, &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn ctr_is_deterministic_per_seed_and_index() {
        let a = records(&ctr(7), 2_000);
        assert_eq!(a, records(&ctr(7), 2_000));
        assert_ne!(a, records(&ctr(8), 2_000));
        // Record i does not depend on how many came before it in this call.
        let mut draw = Draw::new(&ctr(7));
        let (click, _) = draw.draw(1_234);
        assert_eq!(a[1_234]["click"].as_f64(), Some(click));
        let names = &draw.ctr.as_ref().unwrap().names;
        assert_eq!(a[1_234]["ad_id"], names[3][draw.ids[3]].as_str());
    }

    #[test]
    fn ctr_has_a_plausible_click_rate_and_a_long_tail() {
        let rows = records(&ctr(42), 50_000);
        let clicks: f64 = rows.iter().map(|r| r["click"].as_f64().unwrap()).sum();
        let rate = clicks / rows.len() as f64;
        assert!((0.08..=0.25).contains(&rate), "click rate {rate}");
        for field in ctr_fields() {
            assert!(rows.iter().all(|r| r[&field].is_string()), "{field}");
        }
        let mut ads = std::collections::BTreeMap::<&str, u64>::new();
        for r in &rows {
            *ads.entry(r["ad_id"].as_str().unwrap()).or_default() += 1;
        }
        // Zipf-like: many distinct ads, yet the most popular one takes several percent.
        let top = ads.values().max().copied().unwrap_or(0);
        assert!(ads.len() > 2_000, "{} distinct ads", ads.len());
        assert!(top > 2_500, "top ad seen {top} times");
        let hours: std::collections::BTreeSet<&str> =
            rows.iter().map(|r| r["hour"].as_str().unwrap()).collect();
        assert_eq!(hours.len(), 24);
    }
}
