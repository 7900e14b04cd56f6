//! Record decoding and incremental, checkpointable feature operators for eddy.
//!
//! Records flow through three types:
//!
//! * a [`Schema`] names the typed [`Field`]s a pipeline reads (merged from what the features,
//!   the target and the key ask for, see [`Schema::merge`]);
//! * a [`BatchBuilder`] decodes records (JSON objects, CSV rows through a [`CsvHeader`], or typed
//!   values) against the schema into Arrow `RecordBatch` micro-batches, refusing bad records
//!   whole with a [`DecodeError`];
//! * a [`FeatureSet`], built from [`FeatureConfig`]s, holds the operators and their state
//!   (running moments for the standard scaler, hash seeds for feature hashing) and transforms a
//!   batch into a [`FeatureBatch`]: a dense prefix plus CSR sparse coordinates, which a learner
//!   consumes row by row.
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
pub mod ops;
mod schema;
mod set;

pub use batch::FeatureBatch;
pub use config::{FeatureConfig, HASH_BITS};
pub use decode::{BatchBuilder, CsvHeader, MAX_ABS_NUMBER};
pub use error::{DecodeError, DecodeErrorKind, FeatureError, Result};
pub use schema::{Field, FieldType, Schema};
pub use set::FeatureSet;
