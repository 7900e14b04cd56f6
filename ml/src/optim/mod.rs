//! Optimizer building blocks: step-size schedules and the SGD weight store with lazy L2 decay.

mod scaled;
mod schedule;

pub(crate) use scaled::{ScaledWeights, WEIGHT_LIMIT};
pub use schedule::Schedule;
