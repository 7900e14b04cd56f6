//! Parameters of the operators added after `standard_scaler` and `hash`, one struct each.

use crate::schema::{Field, FieldType};

/// Largest `max_categories` of a one-hot operator.
pub const MAX_CATEGORIES: u32 = 1 << 20;
/// Largest `bits` of a text operator with `idf = true`: the document frequencies are one `u32`
/// per bucket in every checkpoint.
pub const MAX_IDF_BITS: u8 = 20;
/// Most panes (of `slide_seconds` each) one key of a window operator may hold.
pub const MAX_PANES: u64 = 4096;
/// Longest duration in seconds any time setting takes (about 31 years).
pub const MAX_SECONDS: u64 = 1_000_000_000;

pub(crate) fn default_bits() -> u8 {
    18
}
fn default_max_categories() -> u32 {
    100
}
fn default_ngrams() -> u8 {
    1
}

/// Number fields only, for `min_max_scaler`, `max_abs_scaler` and `interaction`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldsConfig {
    pub fields: Vec<String>,
}

/// `clip`: each number field clamped to `[min, max]`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipConfig {
    pub fields: Vec<String>,
    pub min: f64,
    pub max: f64,
}

/// `one_hot`: the first `max_categories` distinct values of each string field get a coordinate;
/// later new values share the field's "other" coordinate.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneHotConfig {
    pub fields: Vec<String>,
    #[serde(default = "default_max_categories")]
    pub max_categories: u32,
}

/// `cross`: one hashed feature per row for the combination of two or more string fields (all
/// must be present).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossConfig {
    pub fields: Vec<String>,
    #[serde(default = "default_bits")]
    pub bits: u8,
    #[serde(default)]
    pub seed: u64,
}

/// `text`: lower-cased Unicode words, n-grams of 1..=`ngrams` words, hashed term counts,
/// optionally times a running smoothed IDF.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    pub field: String,
    #[serde(default = "default_ngrams")]
    pub ngrams: u8,
    #[serde(default = "default_bits")]
    pub bits: u8,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub idf: bool,
}

/// What `impute` puts in place of a missing number.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ImputeStrategy {
    /// The running mean of the values seen so far (0.0 before any).
    #[default]
    Mean,
    /// A fixed value.
    Constant(f64),
}

/// `impute`: optional number fields, a missing value replaced, plus a 0/1 missing indicator.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImputeConfig {
    pub fields: Vec<String>,
    #[serde(default)]
    pub strategy: ImputeStrategy,
    #[serde(default)]
    pub indicator: bool,
}

/// How an event-time field is written: absent = an RFC 3339 string, else epoch seconds or
/// milliseconds in a number field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    #[serde(rename = "s")]
    Seconds,
    #[serde(rename = "ms")]
    Milliseconds,
}

/// One output of `time`, in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimePart {
    /// 0..=23.
    Hour,
    /// 0 (Monday) ..= 6 (Sunday).
    DayOfWeek,
    /// sin(2 pi h / 24), h the fractional hour of day.
    HourSin,
    HourCos,
    /// sin(2 pi d / 7), d the fractional day of week.
    DowSin,
    DowCos,
}

impl TimePart {
    pub const ALL: [TimePart; 6] = [
        TimePart::Hour,
        TimePart::DayOfWeek,
        TimePart::HourSin,
        TimePart::HourCos,
        TimePart::DowSin,
        TimePart::DowCos,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimePart::Hour => "hour",
            TimePart::DayOfWeek => "day_of_week",
            TimePart::HourSin => "hour_sin",
            TimePart::HourCos => "hour_cos",
            TimePart::DowSin => "dow_sin",
            TimePart::DowCos => "dow_cos",
        }
    }
}

fn all_time_parts() -> Vec<TimePart> {
    TimePart::ALL.to_vec()
}

/// `time`: calendar features of an event-time field.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeConfig {
    pub field: String,
    #[serde(default)]
    pub unit: Option<TimeUnit>,
    #[serde(default = "all_time_parts")]
    pub parts: Vec<TimePart>,
}

/// One output of `lag`, from the key's previous value `p` and the current `x`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LagOutput {
    /// `p`.
    Previous,
    /// `x - p`.
    Difference,
    /// `(x - p) / |p|`.
    Return,
}

impl LagOutput {
    pub fn as_str(self) -> &'static str {
        match self {
            LagOutput::Previous => "previous",
            LagOutput::Difference => "difference",
            LagOutput::Return => "return",
        }
    }
}

fn all_lag_outputs() -> Vec<LagOutput> {
    vec![
        LagOutput::Previous,
        LagOutput::Difference,
        LagOutput::Return,
    ]
}

/// `lag`: per-key previous value, difference and relative change. With `time_field` and
/// `idle_expiry_seconds`, a key whose newest event is more than `idle_expiry_seconds` before
/// the largest event time seen reads as a new key (event time from records, never the clock).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LagConfig {
    pub field: String,
    pub key: String,
    #[serde(default = "all_lag_outputs")]
    pub outputs: Vec<LagOutput>,
    /// Event-time field for idle-key expiry, with `idle_expiry_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_field: Option<String>,
    /// As in `window`; absent: `time_field` holds RFC 3339 strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<TimeUnit>,
    /// Absent: keys never expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_expiry_seconds: Option<u64>,
}

/// `ema`: per-key exponential moving average; `half_life` counts the key's events. Idle-key
/// expiry as in [`LagConfig`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmaConfig {
    pub field: String,
    pub key: String,
    pub half_life: f64,
    /// Event-time field for idle-key expiry, with `idle_expiry_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_field: Option<String>,
    /// As in `window`; absent: `time_field` holds RFC 3339 strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<TimeUnit>,
    /// Absent: keys never expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_expiry_seconds: Option<u64>,
}

/// One output of `window`, over the key's events in the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    /// Population standard deviation.
    Std,
    /// The value with the latest event time.
    Last,
    /// `std / |mean|`: spread relative to the level (a price's rolling volatility as a
    /// fraction of its price, comparable across symbols); 0 when the mean is 0.
    RelativeStd,
    /// `(last - mean) / |mean|`: how far the newest value is above the window's mean (a price
    /// against its moving average); 0 when the mean is 0.
    Deviation,
}

impl Aggregate {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Sum => "sum",
            Aggregate::Mean => "mean",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Std => "std",
            Aggregate::Last => "last",
            Aggregate::RelativeStd => "relative_std",
            Aggregate::Deviation => "deviation",
        }
    }
}

/// `window`: per-key aggregates over tumbling or sliding event-time windows.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    pub field: String,
    pub key: String,
    pub time_field: String,
    #[serde(default)]
    pub unit: Option<TimeUnit>,
    pub size_seconds: u64,
    /// Absent: tumbling (`slide_seconds = size_seconds`).
    #[serde(default)]
    pub slide_seconds: Option<u64>,
    pub aggregates: Vec<Aggregate>,
    #[serde(default)]
    pub max_out_of_orderness_seconds: u64,
    #[serde(default)]
    pub allowed_lateness_seconds: u64,
    /// Absent: keys never expire.
    #[serde(default)]
    pub idle_expiry_seconds: Option<u64>,
}

impl WindowConfig {
    /// The slide, `size_seconds` for a tumbling window.
    pub fn slide(&self) -> u64 {
        self.slide_seconds.unwrap_or(self.size_seconds)
    }

    /// Most panes one key can hold: its panes span at most size + out-of-orderness + lateness
    /// back from the newest event, plus the pane being filled and one partial.
    pub fn max_panes(&self) -> u64 {
        let slide = self.slide().max(1);
        (self.size_seconds + self.max_out_of_orderness_seconds + self.allowed_lateness_seconds)
            / slide
            + 2
    }
}

/// The type of an event-time field: a number with a unit, an RFC 3339 string without.
pub(crate) fn time_field_type(unit: Option<TimeUnit>) -> FieldType {
    if unit.is_some() {
        FieldType::Number
    } else {
        FieldType::String
    }
}

/// The field an event time is read from.
pub(crate) fn time_field(name: &str, unit: Option<TimeUnit>) -> Field {
    Field {
        name: name.to_owned(),
        ty: time_field_type(unit),
        required: true,
    }
}

/// Duplicates in a list of enum values, as "path: duplicate x".
pub(crate) fn duplicates<T: PartialEq + Copy>(
    items: &[T],
    name: impl Fn(T) -> &'static str,
    path: &str,
    problems: &mut Vec<String>,
) {
    if items.is_empty() {
        problems.push(format!("{path}: empty"));
    }
    for (i, item) in items.iter().enumerate() {
        if items[..i].contains(item) {
            problems.push(format!("{path}: duplicate \"{}\"", name(*item)));
        }
    }
}
