//! The `ctr` generator kind: ad impressions with high-cardinality categorical ids and a click.
//!
//! The click probability is `sigmoid(intercept + Σ effect[field][value] + pair(ad, site))`: one
//! hidden effect per value of each field, plus an ad × site interaction, so a model with a
//! hashed ad × site cross can beat one with the fields alone. Ids are drawn with Zipf-like
//! popularity (`P(rank r) ≈ 1 / ((r + 1) ln n)`), as in real click logs where a few sites and
//! ads get most impressions and a long tail is seen a handful of times.

use rand::Rng;
use rand_distr::StandardNormal;
use rand_xoshiro::Xoshiro256PlusPlus;

/// The 0/1 field a `ctr` stream emits as its target.
pub const CTR_TARGET: &str = "click";

/// One categorical field: its name, how many values it has, the spread of their hidden effects
/// on the click logit, and whether popularity is Zipf-like (else uniform).
struct FieldSpec {
    name: &'static str,
    values: usize,
    effect_std: f64,
    zipf: bool,
}

/// The hour of day is uniform with a smooth daily cycle, so it is drawn apart from the ids.
const HOUR: usize = 5;
const SITE: usize = 0;
const AD: usize = 3;
const FIELDS: [FieldSpec; 6] = [
    FieldSpec {
        name: "site_id",
        values: 2_000,
        effect_std: 0.5,
        zipf: true,
    },
    FieldSpec {
        name: "app_id",
        values: 1_000,
        effect_std: 0.4,
        zipf: true,
    },
    FieldSpec {
        name: "device_model",
        values: 3_000,
        effect_std: 0.3,
        zipf: true,
    },
    FieldSpec {
        name: "ad_id",
        values: 5_000,
        effect_std: 0.6,
        zipf: true,
    },
    FieldSpec {
        name: "user_segment",
        values: 500,
        effect_std: 0.5,
        zipf: true,
    },
    FieldSpec {
        name: "hour",
        values: 24,
        effect_std: 0.0,
        zipf: false,
    },
];

/// How many string fields a `ctr` record has.
pub const CTR_FIELD_COUNT: usize = FIELDS.len();

/// Amplitude of the daily cycle on the logit (peak in the evening).
const HOUR_AMPLITUDE: f64 = 0.3;
/// Standard deviation of the ad × site effect; larger than any single field's, so the cross pays.
const PAIR_STD: f64 = 0.8;
/// Puts the base click rate near 13% (seed 42: 13.3%).
const INTERCEPT: f64 = -2.3;

/// The names of a `ctr` record's string fields, in emission order.
pub fn ctr_fields() -> Vec<String> {
    FIELDS.iter().map(|f| f.name.to_owned()).collect()
}

/// SplitMix64's finaliser: a cheap, well-mixed hash of one word.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The hidden parameters of a `ctr` stream and the id strings, built once from the seed.
pub(crate) struct CtrTruth {
    /// `names[field][value]`: 8 hex digits like a hashed log id (two digits for the hour).
    pub names: Vec<Vec<String>>,
    effects: Vec<Vec<f64>>,
    /// `ln(values + 1)` per field, for the Zipf draw.
    log_span: Vec<f64>,
    pair_seed: u64,
}

impl CtrTruth {
    pub fn new(seed: u64, rng: &mut Xoshiro256PlusPlus) -> CtrTruth {
        let mut names = Vec::with_capacity(FIELDS.len());
        let mut effects = Vec::with_capacity(FIELDS.len());
        for (f, spec) in FIELDS.iter().enumerate() {
            if f == HOUR {
                names.push((0..spec.values).map(|h| format!("{h:02}")).collect());
                effects.push(
                    (0..spec.values)
                        .map(|h| {
                            let phase = (h as f64 - 14.0) / 24.0 * std::f64::consts::TAU;
                            HOUR_AMPLITUDE * phase.cos()
                        })
                        .collect(),
                );
                continue;
            }
            let salt = mix(seed ^ mix(f as u64 + 1));
            names.push(
                (0..spec.values)
                    .map(|v| format!("{:08x}", mix(salt ^ v as u64) as u32))
                    .collect(),
            );
            effects.push(
                (0..spec.values)
                    .map(|_| spec.effect_std * rng.sample::<f64, _>(StandardNormal))
                    .collect(),
            );
        }
        CtrTruth {
            names,
            effects,
            log_span: FIELDS
                .iter()
                .map(|f| (f.values as f64 + 1.0).ln())
                .collect(),
            pair_seed: mix(seed ^ 0xC1C7),
        }
    }

    /// Draws one impression into `ids` (a value index per field) and returns its click, 0 or 1.
    pub fn draw(&self, rng: &mut Xoshiro256PlusPlus, ids: &mut [usize; CTR_FIELD_COUNT]) -> f64 {
        let mut margin = INTERCEPT;
        for (f, spec) in FIELDS.iter().enumerate() {
            let u: f64 = rng.gen();
            let v = if spec.zipf {
                // Inverse CDF of a continuous 1/x law on [1, n + 1), shifted to 0-based ranks.
                ((u * self.log_span[f]).exp() as usize).saturating_sub(1)
            } else {
                (u * spec.values as f64) as usize
            }
            .min(spec.values - 1);
            ids[f] = v;
            margin += self.effects[f][v];
        }
        margin += self.pair_effect(ids[AD], ids[SITE]);
        let p = 1.0 / (1.0 + (-margin).exp());
        f64::from(u8::from(rng.gen::<f64>() < p))
    }

    /// A fixed effect per (ad, site) pair from a hash, uniform with standard deviation
    /// [`PAIR_STD`], so no table of 10 million pairs is needed.
    fn pair_effect(&self, ad: usize, site: usize) -> f64 {
        let h = mix(self.pair_seed ^ ((ad as u64) << 32 | site as u64));
        let u = (h >> 11) as f64 / (1u64 << 53) as f64;
        (2.0 * u - 1.0) * 3f64.sqrt() * PAIR_STD
    }
}
