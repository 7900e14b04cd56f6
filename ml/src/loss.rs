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
///
/// Serde: the unit variants are plain strings (`"squared"`, `"logistic"`, `"hinge"`), the others
/// carry their parameter (`{ huber = { delta = 1.0 } }` in TOML, `{"huber":{"delta":1.0}}` in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// `0.5 * (p - y)^2` with `p = m`: least-squares linear regression.
    Squared,
    /// `-(y ln p + (1 - y) ln(1 - p))` with `p = sigmoid(m)`: logistic regression. Expects `y` in
    /// {0, 1} (soft labels in [0, 1] also work).
    Logistic,
    /// Huber's robust regression loss with `p = m`, `r = p - y`: `0.5 r^2` for `|r| <= delta`,
    /// `delta (|r| - delta / 2)` beyond. `delta` must be finite and > 0.
    Huber { delta: f64 },
    /// `max(0, |p - y| - epsilon)` with `p = m` (linear support-vector regression). `epsilon` must
    /// be finite and >= 0.
    EpsilonInsensitive { epsilon: f64 },
    /// `max(0, 1 - s m)` with `s = 2y - 1` for `y` in {0, 1}: a linear SVM. The prediction is the
    /// margin itself (a decision value, not a probability); class 1 iff `m >= 0`.
    Hinge,
}

/// Parameters are checked finite by `SgdParams::check`, so equality is reflexive for every loss a
/// model can hold; kept so `Loss` stays usable where `Eq` was required.
impl Eq for Loss {}

impl Loss {
    /// The prediction for margin `m`: `sigmoid(clip(m, +-35))` for logistic, `m` itself for every
    /// other loss.
    #[inline]
    pub fn predict(self, margin: f64) -> f64 {
        match self {
            Loss::Logistic => sigmoid(margin),
            _ => margin,
        }
    }

    /// `d loss / d margin` at margin `m` for target `y`.
    #[inline]
    pub fn gradient(self, margin: f64, y: f64) -> f64 {
        self.gradient_given(margin, self.predict(margin), y)
    }

    /// [`gradient`](Self::gradient) when `p = predict(margin)` is already known, which saves the
    /// logistic loss a second `exp` on the progressive-validation path. Bit-identical to it.
    #[inline]
    pub(crate) fn gradient_given(self, margin: f64, p: f64, y: f64) -> f64 {
        match self {
            // canonical links: the derivative in the margin is the residual of the prediction
            Loss::Squared | Loss::Logistic => p - y,
            Loss::Huber { delta } => (p - y).clamp(-delta, delta),
            Loss::EpsilonInsensitive { epsilon } => {
                let r = p - y;
                if r > epsilon {
                    1.0
                } else if r < -epsilon {
                    -1.0
                } else {
                    0.0
                }
            }
            Loss::Hinge => {
                let s = if y >= 0.5 { 1.0 } else { -1.0 };
                if s * margin < 1.0 {
                    -s
                } else {
                    0.0
                }
            }
        }
    }

    /// The loss of prediction `p` (as returned by [`predict`](Self::predict)) for target `y`. For
    /// logistic, `p` is clipped to `[1e-15, 1 - 1e-15]` so the value is finite.
    pub fn loss(self, y: f64, p: f64) -> f64 {
        match self {
            Loss::Squared => 0.5 * (p - y) * (p - y),
            Loss::Logistic => log_loss(y, p),
            Loss::Huber { delta } => {
                let r = (p - y).abs();
                if r <= delta {
                    0.5 * r * r
                } else {
                    delta * (r - 0.5 * delta)
                }
            }
            Loss::EpsilonInsensitive { epsilon } => ((p - y).abs() - epsilon).max(0.0),
            Loss::Hinge => {
                let s = if y >= 0.5 { 1.0 } else { -1.0 };
                (1.0 - s * p).max(0.0)
            }
        }
    }

    /// Whether `y` is a valid target for this loss (finite is checked separately).
    pub(crate) fn accepts_label(self, y: f64) -> bool {
        match self {
            Loss::Logistic => (0.0..=1.0).contains(&y),
            Loss::Hinge => y == 0.0 || y == 1.0,
            _ => true,
        }
    }

    /// Whether the model classifies (binary target in {0, 1}) rather than regresses.
    pub fn is_classifier(self) -> bool {
        matches!(self, Loss::Logistic | Loss::Hinge)
    }

    /// Rejects a non-finite or out-of-domain loss parameter.
    pub(crate) fn check(self) -> crate::error::Result<()> {
        let bad = |name, expected, value| {
            Err(crate::error::MlError::InvalidParam {
                name,
                expected,
                value,
            })
        };
        match self {
            Loss::Huber { delta } if !(delta.is_finite() && delta > 0.0) => {
                bad("delta", "finite and > 0", delta)
            }
            Loss::EpsilonInsensitive { epsilon } if !(epsilon.is_finite() && epsilon >= 0.0) => {
                bad("epsilon", "finite and >= 0", epsilon)
            }
            _ => Ok(()),
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
        assert!(Loss::Hinge.accepts_label(0.0) && !Loss::Hinge.accepts_label(0.5));
    }

    #[test]
    fn robust_losses_by_hand() {
        let h = Loss::Huber { delta: 1.0 };
        assert_eq!(h.gradient(0.5, 0.0), 0.5);
        assert_eq!(h.gradient(5.0, 0.0), 1.0);
        assert_eq!(h.gradient(-5.0, 0.0), -1.0);
        assert_eq!(h.loss(0.0, 0.5), 0.125);
        assert_eq!(h.loss(0.0, 3.0), 2.5);
        let e = Loss::EpsilonInsensitive { epsilon: 0.5 };
        assert_eq!(e.gradient(0.4, 0.0), 0.0);
        assert_eq!(e.gradient(2.0, 0.0), 1.0);
        assert_eq!(e.gradient(-2.0, 0.0), -1.0);
        assert_eq!(e.loss(0.0, 2.0), 1.5);
        let s = Loss::Hinge;
        assert_eq!(s.predict(0.3), 0.3);
        assert_eq!(s.gradient(0.3, 1.0), -1.0);
        assert_eq!(s.gradient(1.5, 1.0), 0.0);
        assert_eq!(s.gradient(-0.3, 0.0), 1.0);
        assert_eq!(s.loss(1.0, 0.25), 0.75);
        assert_eq!(s.loss(0.0, 0.25), 1.25);
        assert!(Loss::Huber { delta: 0.0 }.check().is_err());
        assert!(Loss::EpsilonInsensitive { epsilon: f64::NAN }
            .check()
            .is_err());
    }

    #[test]
    fn serde_keeps_the_plain_names() {
        assert_eq!(
            serde_json::to_string(&Loss::Squared).unwrap(),
            r#""squared""#
        );
        assert_eq!(
            serde_json::to_string(&Loss::Logistic).unwrap(),
            r#""logistic""#
        );
        let h: Loss = serde_json::from_str(r#"{"huber":{"delta":2.0}}"#).unwrap();
        assert_eq!(h, Loss::Huber { delta: 2.0 });
        for l in [
            Loss::Squared,
            Loss::Hinge,
            Loss::EpsilonInsensitive { epsilon: 0.1 },
        ] {
            let b = postcard::to_stdvec(&l).unwrap();
            assert_eq!(postcard::from_bytes::<Loss>(&b).unwrap(), l);
        }
    }
}
