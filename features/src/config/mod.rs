//! `FeatureConfig`: what the user writes to ask for a feature operator.

mod params;

pub(crate) use self::params::time_field_type;
use self::params::{default_bits, duplicates, time_field};
pub use self::params::{
    Aggregate, ClipConfig, CrossConfig, EmaConfig, FieldsConfig, ImputeConfig, ImputeStrategy,
    LagConfig, LagOutput, OneHotConfig, TextConfig, TimeConfig, TimePart, TimeUnit, WindowConfig,
    MAX_CATEGORIES, MAX_IDF_BITS, MAX_PANES, MAX_SECONDS,
};
use crate::decode::MAX_ABS_NUMBER;
use crate::schema::Field;

/// Smallest and largest accepted `bits` of a hash operator. Why 28: 2^28 buckets is already a
/// 2 GiB weight vector per model, and several hash ranges must still fit a `u32` coordinate.
pub const HASH_BITS: std::ops::RangeInclusive<u8> = 1..=28;

/// One feature operator as written in the config, `type = "standard_scaler"`, `type = "hash"`,
/// `type = "window"`...
///
/// Two config types have two variants each, so that code written before their options existed
/// still builds: `standard_scaler` with `half_life` is [`FeatureConfig::EwStandardScaler`],
/// `hash` with `signed = true` is [`FeatureConfig::SignedHash`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(from = "FeatureConfigDef", into = "FeatureConfigDef")]
pub enum FeatureConfig {
    /// Online standard scaler (Welford): output `(x - mean) / std`, with `std` the square root of
    /// the population variance; 0.0 while fewer than two values were seen or `std == 0`.
    StandardScaler {
        fields: Vec<String>,
    },
    /// Hashed one-hot of string fields into `2^bits` buckets: xxh3 of the value, seeded by a hash
    /// of the field name and `seed`, with value 1.0. A missing value contributes nothing, and
    /// collisions add.
    Hash {
        fields: Vec<String>,
        bits: u8,
        seed: u64,
    },
    /// Exponentially weighted standard scaler: weights halve every `half_life` values.
    EwStandardScaler {
        fields: Vec<String>,
        half_life: f64,
    },
    /// [`FeatureConfig::Hash`] with value +1 or -1 from another bit of the hash, so collisions
    /// cancel out in expectation.
    SignedHash {
        fields: Vec<String>,
        bits: u8,
        seed: u64,
    },
    /// `(x - min) / (max - min)` with the running min and max; 0.0 while `max == min`.
    MinMaxScaler(FieldsConfig),
    /// `x / max |x|` with the running max; 0.0 while it is 0.
    MaxAbsScaler(FieldsConfig),
    Clip(ClipConfig),
    OneHot(OneHotConfig),
    Cross(CrossConfig),
    /// The product of exactly two number fields.
    Interaction(FieldsConfig),
    Text(TextConfig),
    Impute(ImputeConfig),
    Time(TimeConfig),
    Lag(LagConfig),
    Ema(EmaConfig),
    Window(WindowConfig),
}

/// The serde form: one variant per `type`.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum FeatureConfigDef {
    StandardScaler {
        fields: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        half_life: Option<f64>,
    },
    Hash {
        fields: Vec<String>,
        #[serde(default = "default_bits")]
        bits: u8,
        #[serde(default)]
        seed: u64,
        #[serde(default)]
        signed: bool,
    },
    MinMaxScaler(FieldsConfig),
    MaxAbsScaler(FieldsConfig),
    Clip(ClipConfig),
    OneHot(OneHotConfig),
    Cross(CrossConfig),
    Interaction(FieldsConfig),
    Text(TextConfig),
    Impute(ImputeConfig),
    Time(TimeConfig),
    Lag(LagConfig),
    Ema(EmaConfig),
    Window(WindowConfig),
}

impl From<FeatureConfigDef> for FeatureConfig {
    fn from(def: FeatureConfigDef) -> Self {
        use FeatureConfigDef as D;
        match def {
            D::StandardScaler {
                fields,
                half_life: None,
            } => FeatureConfig::StandardScaler { fields },
            D::StandardScaler {
                fields,
                half_life: Some(half_life),
            } => FeatureConfig::EwStandardScaler { fields, half_life },
            D::Hash {
                fields,
                bits,
                seed,
                signed: false,
            } => FeatureConfig::Hash { fields, bits, seed },
            D::Hash {
                fields,
                bits,
                seed,
                signed: true,
            } => FeatureConfig::SignedHash { fields, bits, seed },
            D::MinMaxScaler(c) => FeatureConfig::MinMaxScaler(c),
            D::MaxAbsScaler(c) => FeatureConfig::MaxAbsScaler(c),
            D::Clip(c) => FeatureConfig::Clip(c),
            D::OneHot(c) => FeatureConfig::OneHot(c),
            D::Cross(c) => FeatureConfig::Cross(c),
            D::Interaction(c) => FeatureConfig::Interaction(c),
            D::Text(c) => FeatureConfig::Text(c),
            D::Impute(c) => FeatureConfig::Impute(c),
            D::Time(c) => FeatureConfig::Time(c),
            D::Lag(c) => FeatureConfig::Lag(c),
            D::Ema(c) => FeatureConfig::Ema(c),
            D::Window(c) => FeatureConfig::Window(c),
        }
    }
}

impl From<FeatureConfig> for FeatureConfigDef {
    fn from(config: FeatureConfig) -> Self {
        use FeatureConfigDef as D;
        match config {
            FeatureConfig::StandardScaler { fields } => D::StandardScaler {
                fields,
                half_life: None,
            },
            FeatureConfig::EwStandardScaler { fields, half_life } => D::StandardScaler {
                fields,
                half_life: Some(half_life),
            },
            FeatureConfig::Hash { fields, bits, seed } => D::Hash {
                fields,
                bits,
                seed,
                signed: false,
            },
            FeatureConfig::SignedHash { fields, bits, seed } => D::Hash {
                fields,
                bits,
                seed,
                signed: true,
            },
            FeatureConfig::MinMaxScaler(c) => D::MinMaxScaler(c),
            FeatureConfig::MaxAbsScaler(c) => D::MaxAbsScaler(c),
            FeatureConfig::Clip(c) => D::Clip(c),
            FeatureConfig::OneHot(c) => D::OneHot(c),
            FeatureConfig::Cross(c) => D::Cross(c),
            FeatureConfig::Interaction(c) => D::Interaction(c),
            FeatureConfig::Text(c) => D::Text(c),
            FeatureConfig::Impute(c) => D::Impute(c),
            FeatureConfig::Time(c) => D::Time(c),
            FeatureConfig::Lag(c) => D::Lag(c),
            FeatureConfig::Ema(c) => D::Ema(c),
            FeatureConfig::Window(c) => D::Window(c),
        }
    }
}

impl FeatureConfig {
    /// The operator's name as written in `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            FeatureConfig::StandardScaler { .. } | FeatureConfig::EwStandardScaler { .. } => {
                "standard_scaler"
            }
            FeatureConfig::Hash { .. } | FeatureConfig::SignedHash { .. } => "hash",
            FeatureConfig::MinMaxScaler(_) => "min_max_scaler",
            FeatureConfig::MaxAbsScaler(_) => "max_abs_scaler",
            FeatureConfig::Clip(_) => "clip",
            FeatureConfig::OneHot(_) => "one_hot",
            FeatureConfig::Cross(_) => "cross",
            FeatureConfig::Interaction(_) => "interaction",
            FeatureConfig::Text(_) => "text",
            FeatureConfig::Impute(_) => "impute",
            FeatureConfig::Time(_) => "time",
            FeatureConfig::Lag(_) => "lag",
            FeatureConfig::Ema(_) => "ema",
            FeatureConfig::Window(_) => "window",
        }
    }

    /// The names of the fields this operator reads (value fields, then key, then event time).
    pub fn field_names(&self) -> Vec<String> {
        self.fields().into_iter().map(|f| f.name).collect()
    }

    /// The fields this operator reads: scalers need required numbers (a learner cannot use a
    /// record without them), `impute` optional ones; string operators take optional strings (a
    /// missing one adds nothing); keys are required strings; an event time is a required string
    /// (RFC 3339) or, with `unit`, a required number.
    pub fn fields(&self) -> Vec<Field> {
        let numbers = |names: &[String], required: bool| -> Vec<Field> {
            names
                .iter()
                .map(|n| Field::number(n.clone()).required(required))
                .collect()
        };
        let strings = |names: &[String]| -> Vec<Field> {
            names.iter().map(|n| Field::string(n.clone())).collect()
        };
        let key = |name: &str| Field::string(name).required(true);
        match self {
            FeatureConfig::StandardScaler { fields }
            | FeatureConfig::EwStandardScaler { fields, .. }
            | FeatureConfig::MinMaxScaler(FieldsConfig { fields })
            | FeatureConfig::MaxAbsScaler(FieldsConfig { fields })
            | FeatureConfig::Interaction(FieldsConfig { fields })
            | FeatureConfig::Clip(ClipConfig { fields, .. }) => numbers(fields, true),
            FeatureConfig::Impute(c) => numbers(&c.fields, false),
            FeatureConfig::Hash { fields, .. }
            | FeatureConfig::SignedHash { fields, .. }
            | FeatureConfig::OneHot(OneHotConfig { fields, .. })
            | FeatureConfig::Cross(CrossConfig { fields, .. }) => strings(fields),
            FeatureConfig::Text(c) => vec![Field::string(c.field.clone())],
            FeatureConfig::Time(c) => vec![time_field(&c.field, c.unit)],
            FeatureConfig::Lag(LagConfig {
                field,
                key: k,
                time_field: t,
                unit,
                ..
            })
            | FeatureConfig::Ema(EmaConfig {
                field,
                key: k,
                time_field: t,
                unit,
                ..
            }) => {
                let mut fields = vec![Field::number(field.clone()), key(k)];
                fields.extend(t.iter().map(|t| time_field(t, *unit)));
                fields
            }
            FeatureConfig::Window(c) => vec![
                Field::number(c.field.clone()),
                key(&c.key),
                time_field(&c.time_field, c.unit),
            ],
        }
    }

    /// Every problem with this config, each as "features[i].key: problem" for `index` i.
    pub fn validate(&self, index: usize) -> Vec<String> {
        let mut problems = Vec::new();
        let path = |key: &str| format!("features[{index}].{key}");
        let check_names = |key: &str, names: &[String], problems: &mut Vec<String>| {
            if names.is_empty() {
                problems.push(format!("{}: empty", path(key)));
            }
            for (i, name) in names.iter().enumerate() {
                if name.is_empty() {
                    let at = if names.len() == 1 && key != "fields" {
                        key.to_owned()
                    } else {
                        format!("{key}[{i}]")
                    };
                    problems.push(format!("{}: empty field name", path(&at)));
                } else if names[..i].contains(name) {
                    problems.push(format!("{}: duplicate field \"{name}\"", path(key)));
                }
            }
        };
        let bits_in =
            |bits: u8, range: std::ops::RangeInclusive<u8>, problems: &mut Vec<String>| {
                if !range.contains(&bits) {
                    problems.push(format!(
                        "{}: must be in {}..={}, got {bits}",
                        path("bits"),
                        range.start(),
                        range.end()
                    ));
                }
            };
        let positive = |key: &str, x: f64, problems: &mut Vec<String>| {
            if !(x.is_finite() && x > 0.0) {
                problems.push(format!("{}: must be finite and > 0, got {x}", path(key)));
            }
        };
        let seconds = |key: &str, s: u64, min: u64, problems: &mut Vec<String>| {
            if !(min..=MAX_SECONDS).contains(&s) {
                problems.push(format!(
                    "{}: must be in {min}..={MAX_SECONDS}, got {s}",
                    path(key)
                ));
            }
        };
        match self {
            FeatureConfig::StandardScaler { fields }
            | FeatureConfig::MinMaxScaler(FieldsConfig { fields })
            | FeatureConfig::MaxAbsScaler(FieldsConfig { fields }) => {
                check_names("fields", fields, &mut problems)
            }
            FeatureConfig::EwStandardScaler { fields, half_life } => {
                check_names("fields", fields, &mut problems);
                positive("half_life", *half_life, &mut problems);
            }
            FeatureConfig::Hash { fields, bits, .. }
            | FeatureConfig::SignedHash { fields, bits, .. } => {
                check_names("fields", fields, &mut problems);
                bits_in(*bits, HASH_BITS, &mut problems);
            }
            FeatureConfig::Clip(c) => {
                check_names("fields", &c.fields, &mut problems);
                let finite = |x: f64| x.is_finite() && x.abs() <= MAX_ABS_NUMBER;
                if !(finite(c.min) && finite(c.max) && c.min <= c.max) {
                    problems.push(format!(
                        "{}: must be finite with min <= max, got [{}, {}]",
                        path("min"),
                        c.min,
                        c.max
                    ));
                }
            }
            FeatureConfig::OneHot(c) => {
                check_names("fields", &c.fields, &mut problems);
                if !(1..=MAX_CATEGORIES).contains(&c.max_categories) {
                    problems.push(format!(
                        "{}: must be in 1..={MAX_CATEGORIES}, got {}",
                        path("max_categories"),
                        c.max_categories
                    ));
                }
            }
            FeatureConfig::Cross(c) => {
                check_names("fields", &c.fields, &mut problems);
                if c.fields.len() < 2 {
                    problems.push(format!(
                        "{}: a cross needs at least 2 fields, got {}",
                        path("fields"),
                        c.fields.len()
                    ));
                }
                bits_in(c.bits, HASH_BITS, &mut problems);
            }
            FeatureConfig::Interaction(c) => {
                check_names("fields", &c.fields, &mut problems);
                if c.fields.len() != 2 {
                    problems.push(format!(
                        "{}: an interaction needs exactly 2 fields, got {}",
                        path("fields"),
                        c.fields.len()
                    ));
                }
            }
            FeatureConfig::Text(c) => {
                check_names("field", std::slice::from_ref(&c.field), &mut problems);
                if !(1..=5).contains(&c.ngrams) {
                    problems.push(format!(
                        "{}: must be in 1..=5, got {}",
                        path("ngrams"),
                        c.ngrams
                    ));
                }
                let max = if c.idf {
                    MAX_IDF_BITS
                } else {
                    *HASH_BITS.end()
                };
                bits_in(c.bits, 1..=max, &mut problems);
            }
            FeatureConfig::Impute(c) => {
                check_names("fields", &c.fields, &mut problems);
                if let ImputeStrategy::Constant(x) = c.strategy {
                    if !(x.is_finite() && x.abs() <= MAX_ABS_NUMBER) {
                        problems.push(format!(
                            "{}: constant must be finite and |x| <= {MAX_ABS_NUMBER}, got {x}",
                            path("strategy")
                        ));
                    }
                }
            }
            FeatureConfig::Time(c) => {
                check_names("field", std::slice::from_ref(&c.field), &mut problems);
                duplicates(&c.parts, TimePart::as_str, &path("parts"), &mut problems);
            }
            FeatureConfig::Lag(c) => {
                check_names("field", &[c.field.clone(), c.key.clone()], &mut problems);
                let expiry = (&c.time_field, c.unit, c.idle_expiry_seconds);
                check_idle_expiry(expiry, &path, &mut problems);
                duplicates(
                    &c.outputs,
                    LagOutput::as_str,
                    &path("outputs"),
                    &mut problems,
                );
            }
            FeatureConfig::Ema(c) => {
                check_names("field", &[c.field.clone(), c.key.clone()], &mut problems);
                let expiry = (&c.time_field, c.unit, c.idle_expiry_seconds);
                check_idle_expiry(expiry, &path, &mut problems);
                positive("half_life", c.half_life, &mut problems);
            }
            FeatureConfig::Window(c) => {
                let names = [c.field.clone(), c.key.clone(), c.time_field.clone()];
                check_names("field", &names, &mut problems);
                seconds("size_seconds", c.size_seconds, 1, &mut problems);
                if let Some(slide) = c.slide_seconds {
                    seconds("slide_seconds", slide, 1, &mut problems);
                    if slide == 0 || slide > c.size_seconds || c.size_seconds % slide != 0 {
                        problems.push(format!(
                            "{}: must divide size_seconds ({}), got {slide}",
                            path("slide_seconds"),
                            c.size_seconds
                        ));
                    }
                }
                let ooo = c.max_out_of_orderness_seconds;
                seconds("max_out_of_orderness_seconds", ooo, 0, &mut problems);
                let lateness = c.allowed_lateness_seconds;
                seconds("allowed_lateness_seconds", lateness, 0, &mut problems);
                if let Some(expiry) = c.idle_expiry_seconds {
                    seconds("idle_expiry_seconds", expiry, 1, &mut problems);
                }
                if c.slide() > 0 && c.max_panes() > MAX_PANES {
                    problems.push(format!(
                        "{}: (size + out-of-orderness + lateness) / slide + 2 must be <= {MAX_PANES} panes per key, got {}",
                        path("slide_seconds"),
                        c.max_panes()
                    ));
                }
                duplicates(
                    &c.aggregates,
                    Aggregate::as_str,
                    &path("aggregates"),
                    &mut problems,
                );
            }
        }
        problems
    }
}

/// Problems with the optional idle-key expiry of `lag` and `ema`: `time_field` and
/// `idle_expiry_seconds` go together, `unit` needs `time_field`.
fn check_idle_expiry(
    (time_field, unit, seconds): (&Option<String>, Option<TimeUnit>, Option<u64>),
    path: &dyn Fn(&str) -> String,
    problems: &mut Vec<String>,
) {
    match (time_field, seconds) {
        (Some(t), _) if t.is_empty() => {
            problems.push(format!("{}: empty field name", path("time_field")))
        }
        (Some(_), None) => problems.push(format!(
            "{}: time_field needs idle_expiry_seconds",
            path("idle_expiry_seconds")
        )),
        (None, Some(s)) => problems.push(format!(
            "{}: idle_expiry_seconds ({s}) needs time_field",
            path("time_field")
        )),
        _ => {}
    }
    if let Some(s) = seconds {
        if !(1..=MAX_SECONDS).contains(&s) {
            problems.push(format!(
                "{}: must be in 1..={MAX_SECONDS}, got {s}",
                path("idle_expiry_seconds")
            ));
        }
    }
    if time_field.is_none() && unit.is_some() {
        problems.push(format!("{}: unit needs time_field", path("unit")));
    }
}

#[cfg(test)]
mod tests;
