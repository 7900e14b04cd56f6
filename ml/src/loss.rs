//! Losses of a linear margin `m = w.x + b`: prediction link, gradient in `m`, and loss value.

use serde::{Deserialize, Serialize};

/// Sigmoid arguments are clipped to `+-SIGMOID_CLIP`: `exp(35)` is far from overflow, and
/// `sigmoid(+-35)` is within 1e-15 of 1 and 0 but never reaches them, so the logistic loss of any
/// prediction stays finite.
const SIGMOID_CLIP: f64 = 35.0;

/// Probabilities are clipped to `[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]` before taking logs
/// (scikit-learn's convention).
pub(crate) const LOG_LOSS_EPS: f64 = 1e-15;

/// The loss a linear model minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// `0.5 * (p - y)^2` with `p = m`: least-squares linear regression.
    Squared,
    /// `-(y ln p + (1 - y) ln(1 - p))` with `p = sigmoid(m)`: logistic regression. Expects `y` in
    /// {0, 1} (soft labels in [0, 1] also work).
    Logistic,
}

impl Loss {
    /// The prediction for margin `m`: `m` itself for squared, `sigmoid(clip(m, +-35))` for
    /// logistic.
    #[inline]
    pub fn predict(self, margin: f64) -> f64 {
        match self {
            Loss::Squared => margin,
            Loss::Logistic => sigmoid(margin),
        }
    }

    /// `d loss / d margin` at margin `m` for target `y`; for both losses this is `predict(m) - y`.
    #[inline]
    pub fn gradient(self, margin: f64, y: f64) -> f64 {
        self.gradient_given(margin, self.predict(margin), y)
    }

    /// [`gradient`](Self::gradient) when `p = predict(margin)` is already known, which saves the
    /// logistic loss a second `exp` on the progressive-validation path. Bit-identical to it.
    #[inline]
    pub(crate) fn gradient_given(self, _margin: f64, p: f64, y: f64) -> f64 {
        match self {
            // canonical links: the derivative in the margin is the residual of the prediction
            Loss::Squared | Loss::Logistic => p - y,
        }
    }

    /// The loss of prediction `p` (as returned by [`predict`](Self::predict)) for target `y`. For
    /// logistic, `p` is clipped to `[1e-15, 1 - 1e-15]` so the value is finite.
    pub fn loss(self, y: f64, p: f64) -> f64 {
        match self {
            Loss::Squared => 0.5 * (p - y) * (p - y),
            Loss::Logistic => log_loss(y, p),
        }
    }

    /// Whether `y` is a valid target for this loss (finite is checked separately).
    pub(crate) fn accepts_label(self, y: f64) -> bool {
        match self {
            Loss::Squared => true,
            Loss::Logistic => (0.0..=1.0).contains(&y),
        }
    }
}

#[inline]
fn sigmoid(m: f64) -> f64 {
    1.0 / (1.0 + (-m.clamp(-SIGMOID_CLIP, SIGMOID_CLIP)).exp())
}

/// Binary cross-entropy with scikit-learn's clipping, shared by the loss and the progressive
/// metrics.
#[inline]
pub(crate) fn log_loss(y: f64, p: f64) -> f64 {
    let p = p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
    // hard labels need one log, not two; the results equal the general formula bit for bit
    if y == 1.0 {
        -p.ln()
    } else if y == 0.0 {
        -(1.0 - p).ln()
    } else {
        -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squared_by_hand() {
        let l = Loss::Squared;
        assert_eq!(l.predict(2.5), 2.5);
        assert_eq!(l.gradient(2.5, 1.0), 1.5);
        assert_eq!(l.gradient(-1.0, 2.0), -3.0);
        assert_eq!(l.loss(1.0, 3.0), 2.0);
    }

    #[test]
    fn logistic_by_hand() {
        let l = Loss::Logistic;
        assert_eq!(l.predict(0.0), 0.5);
        // sigmoid(ln 3) = 3 / 4
        assert!((l.predict(3f64.ln()) - 0.75).abs() < 1e-15);
        assert!((l.gradient(3f64.ln(), 1.0) + 0.25).abs() < 1e-15);
        assert!((l.gradient(3f64.ln(), 0.0) - 0.75).abs() < 1e-15);
        assert!((l.loss(1.0, 0.75) - (-(0.75f64).ln())).abs() < 1e-15);
        assert!((l.loss(0.0, 0.75) - (-(0.25f64).ln())).abs() < 1e-15);
        assert!((l.loss(1.0, 0.5) - 2f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn logistic_never_saturates_or_overflows() {
        let l = Loss::Logistic;
        for m in [1e300, f64::MAX, 36.0, 1e3] {
            let p = l.predict(m);
            assert!(p < 1.0 && p > 0.999_999_999_999_99, "p = {p}");
            let q = l.predict(-m);
            assert!(q > 0.0 && q < 1e-15, "q = {q}");
            assert!(l.loss(1.0, q).is_finite());
            assert!(l.loss(0.0, p).is_finite());
        }
        // clipping at 1e-15 bounds the loss of a confident mistake
        assert!((l.loss(1.0, 0.0) - (-(1e-15f64).ln())).abs() < 1e-12);
        assert!(l.loss(0.0, 1.0).is_finite());
        assert!(l.gradient(f64::MAX, 0.0) <= 1.0);
    }

    #[test]
    fn label_domain() {
        assert!(Loss::Logistic.accepts_label(0.0));
        assert!(Loss::Logistic.accepts_label(1.0));
        assert!(!Loss::Logistic.accepts_label(-1.0));
        assert!(!Loss::Logistic.accepts_label(2.0));
        assert!(Loss::Squared.accepts_label(-1e300));
    }
}
