//! Optimizer building blocks: step-size schedules, the SGD weight store with lazy L2 decay, and
//! the per-coordinate optimizers.

mod optimizer;
mod scaled;
mod schedule;

pub use optimizer::Optimizer;
pub(crate) use scaled::{saturate, soft_threshold, ScaledWeights, WEIGHT_LIMIT};
pub use schedule::Schedule;
