//! Seeded synthetic streams shared by the unit tests.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Seeded generator of standard-normal features and targets from known coefficients.
pub(crate) struct Stream {
    rng: Xoshiro256PlusPlus,
    spare: Option<f64>,
}

impl Stream {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            spare: None,
        }
    }

    /// Standard normal by Box-Muller (two per pair of uniforms).
    pub(crate) fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1: f64 = 1.0 - self.rng.gen::<f64>(); // (0, 1], so ln is finite
        let u2: f64 = self.rng.gen();
        let r = (-2.0 * u1.ln()).sqrt();
        let th = std::f64::consts::TAU * u2;
        self.spare = Some(r * th.sin());
        r * th.cos()
    }

    pub(crate) fn uniform(&mut self) -> f64 {
        self.rng.gen()
    }

    pub(crate) fn features(&mut self, d: usize) -> Vec<f64> {
        (0..d).map(|_| self.normal()).collect()
    }

    /// A logistic event: x ~ N(0, I), P(y = 1) = sigmoid(w.x + b). Returns (x, y, true
    /// probability).
    pub(crate) fn logistic(&mut self, w: &[f64], b: f64) -> (Vec<f64>, f64, f64) {
        let x = self.features(w.len());
        let p = 1.0 / (1.0 + (-(dot(w, &x) + b)).exp());
        let y = if self.uniform() < p { 1.0 } else { 0.0 };
        (x, y, p)
    }

    /// A regression event: y = w.x + b + noise * N(0, 1).
    pub(crate) fn linear(&mut self, w: &[f64], b: f64, noise: f64) -> (Vec<f64>, f64) {
        let x = self.features(w.len());
        let y = dot(w, &x) + b + noise * self.normal();
        (x, y)
    }
}

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// Coefficients of the logistic test stream: distinct magnitudes, no zero, both signs.
pub(crate) const TRUE_W: [f64; 10] = [1.5, -1.0, 0.5, 2.0, -0.5, 0.75, 1.0, -2.0, 0.6, -0.75];
pub(crate) const TRUE_B: f64 = 0.3;
