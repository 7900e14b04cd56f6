//! Record decoding and incremental, checkpointable feature operators for eddy.
//!
//! Records flow through three types:
//!
//! * a [`Schema`] names the typed [`Field`]s a pipeline reads (merged from what the features,
//!   the target and the key ask for, see [`Schema::merge`]);
//! * a [`BatchBuilder`] decodes records (JSON objects, CSV rows through a [`CsvHeader`], or typed
//!   values) against the schema into Arrow `RecordBatch` micro-batches, refusing bad records
//!   whole with a [`DecodeError`];
//! * a [`FeatureSet`], built from [`FeatureConfig`]s, holds the operators and their state and
//!   transforms a batch into a [`FeatureBatch`]: a dense prefix plus CSR sparse coordinates,
//!   which a learner consumes row by row.
//!
//! The operators live in [`ops`], one per file: scaling (standard, exponentially weighted,
//! min-max, max-abs, clipping), categoricals (one-hot with an "other" bucket, signed or
//! unsigned feature hashing, crosses, numeric interactions), text (Unicode words, n-grams,
//! hashed counts, running IDF), imputation with missing indicators, calendar features of an
//! event time, and per-key state (lags, moving averages, event-time windows with watermarks,
//! allowed lateness and idle-key expiry) held in a [`ops::KeyMap`] with a stated size per key.
//!
//! Operators that read an event time refuse rows (unparsable time: `bad_timestamp`; behind a
//! window's watermark minus its allowed lateness: `late`). A refused row changes no state and
//! comes out empty; [`FeatureBatch::rejected`] lists each with its [`DecodeError`], for the
//! dead-letter sink.
//!
//! [`frame`] computes per-frame features of raw RGB24 video (colour histogram, brightness,
//! motion energy) for the video source.
//!
//! Training calls [`FeatureSet::transform`] with `learn = true`: each row updates the state,
//! then is transformed with it, so output and state are the same whatever the micro-batch size.
//! The HTTP server decodes request instances with the same decoder and transforms them with the
//! same operators (`learn = false`, or [`FeatureSet::transform_frozen`] on a shared snapshot),
//! so training and serving cannot drift apart.
//!
//! ```
//! use std::sync::Arc;
//! use eddy_features::{BatchBuilder, FeatureBatch, FeatureConfig, FeatureSet, Schema};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let configs: Vec<FeatureConfig> = serde_json::from_str(
//!     r#"[{"type": "standard_scaler", "fields": ["age"]},
//!         {"type": "hash", "fields": ["site"], "bits": 10}]"#,
//! )?;
//! let schema = Arc::new(Schema::merge(configs.iter().flat_map(FeatureConfig::fields))?);
//! let mut features = FeatureSet::new(&configs, &schema)?;
//!
//! let mut decoder = BatchBuilder::new(schema.clone());
//! decoder.push_json(br#"{"age": 31, "site": "a.com"}"#)?;
//! decoder.push_json(br#"{"age": 45, "site": null, "ignored": [1, 2]}"#)?;
//! assert!(decoder.push_json(br#"{"site": "b.com"}"#).is_err()); // age is required
//! let batch = decoder.finish();
//!
//! let mut out = FeatureBatch::new();
//! features.transform(&batch, true, &mut out)?;
//! assert_eq!((out.len(), features.dim()), (2, 1 + 1024));
//! let (dense, indices, values) = out.row(1);
//! assert_eq!(dense[0], 1.0); // (45 - 38) / 7
//! assert!(indices.is_empty() && values.is_empty()); // no site, no hashed feature
//! # Ok(())
//! # }
//! ```

mod batch;
mod config;
mod decode;
mod error;
pub mod frame;
mod keyed;
pub mod ops;
mod prepare;
mod schema;
mod set;
mod strings;

pub use batch::FeatureBatch;
pub use config::{
    Aggregate, ClipConfig, CrossConfig, EmaConfig, FeatureConfig, FieldsConfig, ImputeConfig,
    ImputeStrategy, LagConfig, LagOutput, OneHotConfig, TextConfig, TimeConfig, TimePart, TimeUnit,
    WindowConfig, HASH_BITS, MAX_CATEGORIES, MAX_IDF_BITS, MAX_PANES, MAX_SECONDS,
};
pub use decode::{BatchBuilder, CsvHeader, Fill, MAX_ABS_NUMBER};
pub use error::{DecodeError, DecodeErrorKind, FeatureError, Result};
pub use keyed::KeyedState;
pub use prepare::{Prepared, Preparer};
pub use schema::{Field, FieldType, Schema};
pub use set::FeatureSet;
pub use strings::{dictionary_strings, string_value};
