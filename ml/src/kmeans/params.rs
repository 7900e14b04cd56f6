//! Hyperparameters of `StreamingKMeans`: the `KMeansParams` builder and checked
//! `KMeansValidParams`.

use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::kmeans::StreamingKMeans;

/// What a half-life (and a decay factor) counts: events, or batches closed by
/// [`StreamingKMeans::end_batch`] (Spark's `timeUnit` "points" and "batches").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HalfLifeUnit {
    Events,
    Batches,
}

/// Checked hyperparameters of [`StreamingKMeans`]. Deserialising re-runs the checks.
///
/// Config form: `{ k = 8, half_life = 1000, time_unit = "events", warm_start = 256, seed = 42,
/// reseed_after = 10000 }`; `decay_factor` may be given instead of `half_life` (not both). Every
/// field but `k` has a default: `decay_factor = 1` (no forgetting), `time_unit = "events"`,
/// `warm_start = 0`, `seed = 42`, `reseed_after = 0` (never).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawKMeansParams", into = "RawKMeansParams")]
pub struct KMeansValidParams {
    k: usize,
    decay_factor: f64,
    time_unit: HalfLifeUnit,
    warm_start: usize,
    seed: u64,
    reseed_after: u64,
}

impl KMeansValidParams {
    pub fn k(&self) -> usize {
        self.k
    }
    /// Weight multiplier per time unit, in [0, 1].
    pub fn decay_factor(&self) -> f64 {
        self.decay_factor
    }
    pub fn time_unit(&self) -> HalfLifeUnit {
        self.time_unit
    }
    pub fn warm_start(&self) -> usize {
        self.warm_start
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }
    pub fn reseed_after(&self) -> u64 {
        self.reseed_after
    }

    /// A model over `dim` dense coordinates with no centre yet.
    pub fn build(&self, dim: usize) -> StreamingKMeans {
        StreamingKMeans::from_params(self.clone(), dim)
    }
}

/// Consuming builder for [`KMeansValidParams`], from `StreamingKMeans::params(k)`.
#[derive(Clone, Debug, PartialEq)]
pub struct KMeansParams {
    p: KMeansValidParams,
    half_life: Option<f64>,
}

pub(crate) const DEFAULT_SEED: u64 = 42;

impl KMeansParams {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            p: KMeansValidParams {
                k,
                decay_factor: 1.0,
                time_unit: HalfLifeUnit::Events,
                warm_start: 0,
                seed: DEFAULT_SEED,
                reseed_after: 0,
            },
            half_life: None,
        }
    }

    /// Weight kept per time unit, in [0, 1]: 1 never forgets, 0 keeps only the current unit
    /// (Spark's `decayFactor`). Replaces any half-life.
    pub fn decay_factor(mut self, a: f64) -> Self {
        self.p.decay_factor = a;
        self.half_life = None;
        self
    }

    /// Data weight halves after `half_life` units (finite and > 0): the decay factor becomes
    /// `exp(ln(0.5) / half_life)`, as Spark's `setHalfLife`.
    pub fn half_life(mut self, half_life: f64, unit: HalfLifeUnit) -> Self {
        self.half_life = Some(half_life);
        self.p.time_unit = unit;
        self
    }

    /// Whether the decay factor applies per event or per closed batch.
    pub fn time_unit(mut self, unit: HalfLifeUnit) -> Self {
        self.p.time_unit = unit;
        self
    }

    /// Buffer the first `n` events and start the centres from linfa's k-means (k-means++
    /// initialisation) on them; 0 seeds the centres with the first `k` distinct points. `n` must be
    /// 0 or >= k.
    pub fn warm_start(mut self, n: usize) -> Self {
        self.p.warm_start = n;
        self
    }

    /// Seed of the warm start's random initialisation (default 42).
    pub fn seed(mut self, seed: u64) -> Self {
        self.p.seed = seed;
        self
    }

    /// A cluster that received no point for this many events is re-seeded by splitting the
    /// heaviest cluster; 0 never re-seeds.
    pub fn reseed_after(mut self, events: u64) -> Self {
        self.p.reseed_after = events;
        self
    }

    pub fn check(self) -> Result<KMeansValidParams> {
        let mut p = self.p;
        let bad = |name, expected, value| {
            Err(MlError::InvalidParam {
                name,
                expected,
                value,
            })
        };
        if p.k == 0 {
            return bad("k", ">= 1", 0.0);
        }
        if let Some(h) = self.half_life {
            if !(h.is_finite() && h > 0.0) {
                return bad("half_life", "finite and > 0", h);
            }
            p.decay_factor = (0.5f64.ln() / h).exp();
        }
        if !(p.decay_factor.is_finite() && (0.0..=1.0).contains(&p.decay_factor)) {
            return bad("decay_factor", "in [0, 1]", p.decay_factor);
        }
        if p.warm_start != 0 && p.warm_start < p.k {
            return bad("warm_start", "0 or >= k", p.warm_start as f64);
        }
        Ok(p)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKMeansParams {
    k: usize,
    #[serde(default)]
    decay_factor: Option<f64>,
    #[serde(default)]
    half_life: Option<f64>,
    #[serde(default = "events")]
    time_unit: HalfLifeUnit,
    #[serde(default)]
    warm_start: usize,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default)]
    reseed_after: u64,
}

fn events() -> HalfLifeUnit {
    HalfLifeUnit::Events
}

fn default_seed() -> u64 {
    DEFAULT_SEED
}

impl TryFrom<RawKMeansParams> for KMeansValidParams {
    type Error = MlError;

    fn try_from(r: RawKMeansParams) -> Result<Self> {
        let mut b = KMeansParams::new(r.k)
            .time_unit(r.time_unit)
            .warm_start(r.warm_start)
            .seed(r.seed)
            .reseed_after(r.reseed_after);
        match (r.decay_factor, r.half_life) {
            (Some(_), Some(h)) => {
                return Err(MlError::InvalidParam {
                    name: "half_life",
                    expected: "absent when decay_factor is given",
                    value: h,
                })
            }
            (Some(a), None) => b = b.decay_factor(a),
            (None, Some(h)) => b = b.half_life(h, r.time_unit),
            (None, None) => {}
        }
        b.check()
    }
}

impl From<KMeansValidParams> for RawKMeansParams {
    fn from(p: KMeansValidParams) -> Self {
        Self {
            k: p.k,
            decay_factor: Some(p.decay_factor),
            half_life: None,
            time_unit: p.time_unit,
            warm_start: p.warm_start,
            seed: p.seed,
            reseed_after: p.reseed_after,
        }
    }
}
