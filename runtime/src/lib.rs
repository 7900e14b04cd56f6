//! eddy-runtime: runs a pipeline from its source to a served, checkpointed model.
//!
//! - [`config`]: the pipeline file ([`PipelineConfig`]) and its checked form ([`ValidConfig`]).
//! - [`source`]: [`Source`]s (files, stdin, a seeded generator) that decode records into Arrow
//!   micro-batches ([`Chunk`]) and know their [`Position`].
//! - [`sink`]: JSON Lines sinks for predictions and dead letters.
//! - [`checkpoint`]: atomic, checksummed snapshots of the whole pipeline state.
//! - [`pipeline::run`]: wires source thread, ordered trainer, HTTP server and checkpoints, and
//!   returns a [`Summary`].
//! - [`quick`]: the default pipeline that `eddy run --input` builds from flags.
//!
//! Learning and feature code live in `eddy-ml` and `eddy-features`; serving in `eddy-models`.

pub mod checkpoint;
pub mod config;
mod error;
pub mod export;
mod handover;
pub mod metrics;
mod model_config;
pub mod pipeline;
mod placement;
pub mod presets;
mod priority;
pub mod quick;
mod scoring;
pub mod serve;
pub mod sink;
pub mod source;
pub mod sync;
mod trainer;

pub use config::{load, PipelineConfig, ValidConfig};
pub use error::{Fault, Result, RuntimeError};
pub use pipeline::{run, LingerFn, RunOptions, ServingFn, StopHandle, Summary};
pub use source::{Chunk, Position, Source};
pub use trainer::{CurvePoint, Progress};
