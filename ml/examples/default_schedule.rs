//! Measures progressive quality of candidate default step sizes on seeded synthetic streams.
//!
//! The defaults in `ml/src/linear/params.rs` cite its output. Run with
//! `cargo run --release -p eddy-ml --example default_schedule`.

use eddy_ml::{FeatureVec, Learner, LinearModel, Loss, ProgressiveMetrics, Schedule, Task};
use ndarray::Array1;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

const EVENTS: usize = 100_000;
const SEEDS: [u64; 3] = [1, 2, 3];
/// Known coefficients (|w| = 3.8) and a weaker-signal version of them (|w| = 0.96).
const W: [f64; 10] = [1.5, -1.0, 0.5, 2.0, -0.5, 0.75, 1.0, -2.0, 0.6, -0.75];

fn normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    // Box-Muller; one of the pair is enough here
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Progressive primary metric (log loss or RMSE) of `params` on one seeded stream.
fn progressive(loss: Loss, eta0: f64, schedule: Schedule, scale: f64, seed: u64) -> f64 {
    let Ok(params) = LinearModel::params(loss)
        .learning_rate(eta0)
        .schedule(schedule)
        .check()
    else {
        return f64::NAN;
    };
    let mut model = params.build(W.len());
    let task = if loss == Loss::Logistic {
        Task::Binary
    } else {
        Task::Regression
    };
    let mut metrics = ProgressiveMetrics::new(task, 1_000);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut x = Array1::zeros(W.len());
    for _ in 0..EVENTS {
        x.mapv_inplace(|_| normal(&mut rng));
        let margin: f64 = x.iter().zip(&W).map(|(x, w)| x * w * scale).sum::<f64>() + 0.3;
        let y = match loss {
            Loss::Logistic => f64::from(u8::from(rng.gen::<f64>() < 1.0 / (1.0 + (-margin).exp()))),
            _ => margin + 0.5 * normal(&mut rng),
        };
        match model.predict_learn_one(&FeatureVec::dense(x.view()), y, 1.0) {
            Ok(p) => metrics.update(y, p),
            Err(e) => {
                eprintln!("rejected: {e}");
                return f64::NAN;
            }
        }
    }
    metrics.primary().1
}

fn main() {
    let inv = |p| Schedule::InverseScaling { power_t: p };
    let candidates = [
        ("constant 0.01", 0.01, Schedule::Constant),
        ("constant 0.03", 0.03, Schedule::Constant),
        ("constant 0.1", 0.1, Schedule::Constant),
        ("inverse_scaling 0.5 from 0.5", 0.5, inv(0.5)),
        ("inverse_scaling 0.5 from 0.1", 0.1, inv(0.5)),
        ("inverse_scaling 0.25 from 0.01", 0.01, inv(0.25)),
    ];
    for (loss, metric) in [(Loss::Logistic, "log loss"), (Loss::Squared, "rmse")] {
        for scale in [1.0, 0.25] {
            println!("{loss:?}, |w| x {scale}: progressive {metric} over {EVENTS} events, seeds {SEEDS:?}");
            for (name, eta0, schedule) in candidates {
                let runs: Vec<f64> = SEEDS
                    .iter()
                    .map(|&s| progressive(loss, eta0, schedule, scale, s))
                    .collect();
                let mean = runs.iter().sum::<f64>() / runs.len() as f64;
                println!("  {name:<32} {mean:.5}  {runs:.5?}");
            }
        }
    }
}
