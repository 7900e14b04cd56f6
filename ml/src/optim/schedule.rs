//! SGD step-size schedules, with a serde form for both config files and binary artifacts.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How the SGD step size `eta` evolves with the step count `t` (`t = 1` for the first event, as
/// scikit-learn).
///
/// In human-readable formats (TOML, JSON) a schedule is internally tagged:
/// `{ type = "inverse_scaling", power_t = 0.5 }`. Binary formats such as postcard cannot read
/// internally tagged enums (they need `deserialize_any`), so there it is written as a plain
/// externally tagged enum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// `eta = learning_rate`.
    Constant,
    /// `eta = learning_rate / t^power_t`; `power_t` must be finite and >= 0.
    InverseScaling { power_t: f64 },
    /// Bottou's schedule as in scikit-learn's SGD: `eta = 1 / (l2 * (t0 + t - 1))`, where `t0`
    /// makes the first step `l2^(-1/4)` (scikit-learn's heuristic). Ignores `learning_rate`;
    /// requires `l2 > 0`.
    Optimal,
}

impl Schedule {
    /// Step size of event `t >= 1`. `optimal_t0` is only read by [`Schedule::Optimal`].
    #[inline]
    pub(crate) fn eta(self, learning_rate: f64, l2: f64, optimal_t0: f64, t: u64) -> f64 {
        let t = t as f64;
        match self {
            Schedule::Constant => learning_rate,
            // sqrt is several times cheaper than powf, and 0.5 and 0.25 are the defaults
            Schedule::InverseScaling { power_t: 0.5 } => learning_rate / t.sqrt(),
            Schedule::InverseScaling { power_t: 0.25 } => learning_rate / t.sqrt().sqrt(),
            Schedule::InverseScaling { power_t } => learning_rate / t.powf(power_t),
            Schedule::Optimal => 1.0 / (l2 * (optimal_t0 + t - 1.0)),
        }
    }

    /// scikit-learn's `t0` for the optimal schedule: the first step is `typw = l2^(-1/4)` (their
    /// `initial_eta0 = typw / max(1, dloss(-typw, 1))`, where the max is 1 for both our losses).
    pub(crate) fn optimal_t0(l2: f64) -> f64 {
        let typw = (1.0 / l2.sqrt()).sqrt();
        1.0 / (typw * l2)
    }
}

/// The human-readable (config) representation.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Tagged {
    Constant,
    InverseScaling { power_t: f64 },
    Optimal,
}

/// The binary (artifact) representation.
#[derive(Serialize, Deserialize)]
enum Compact {
    Constant,
    InverseScaling { power_t: f64 },
    Optimal,
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let human = serializer.is_human_readable();
        match (*self, human) {
            (Schedule::Constant, true) => Tagged::Constant.serialize(serializer),
            (Schedule::InverseScaling { power_t }, true) => {
                Tagged::InverseScaling { power_t }.serialize(serializer)
            }
            (Schedule::Optimal, true) => Tagged::Optimal.serialize(serializer),
            (Schedule::Constant, false) => Compact::Constant.serialize(serializer),
            (Schedule::InverseScaling { power_t }, false) => {
                Compact::InverseScaling { power_t }.serialize(serializer)
            }
            (Schedule::Optimal, false) => Compact::Optimal.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            Ok(match Tagged::deserialize(deserializer)? {
                Tagged::Constant => Schedule::Constant,
                Tagged::InverseScaling { power_t } => Schedule::InverseScaling { power_t },
                Tagged::Optimal => Schedule::Optimal,
            })
        } else {
            Ok(match Compact::deserialize(deserializer)? {
                Compact::Constant => Schedule::Constant,
                Compact::InverseScaling { power_t } => Schedule::InverseScaling { power_t },
                Compact::Optimal => Schedule::Optimal,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_sizes_by_hand() {
        assert_eq!(Schedule::Constant.eta(0.1, 0.0, 0.0, 7), 0.1);
        let inv = Schedule::InverseScaling { power_t: 0.5 };
        assert_eq!(inv.eta(0.5, 0.0, 0.0, 1), 0.5);
        assert_eq!(inv.eta(0.5, 0.0, 0.0, 4), 0.25);
        let inv = Schedule::InverseScaling { power_t: 0.25 };
        assert!((inv.eta(0.5, 0.0, 0.0, 16) - 0.25).abs() < 1e-15);
        // optimal: first step is l2^(-1/4) = 10 for l2 = 1e-4, then 1 / (l2 (t0 + t - 1))
        let l2 = 1e-4;
        let t0 = Schedule::optimal_t0(l2);
        assert!((t0 - 1000.0).abs() < 1e-9, "t0 = {t0}");
        assert!((Schedule::Optimal.eta(0.0, l2, t0, 1) - 10.0).abs() < 1e-9);
        assert!((Schedule::Optimal.eta(0.0, l2, t0, 1001) - 5.0).abs() < 1e-9);
    }

    #[test]
    fn binary_round_trip_uses_the_compact_form() {
        for s in [
            Schedule::Constant,
            Schedule::InverseScaling { power_t: 0.25 },
            Schedule::Optimal,
        ] {
            let bytes = postcard::to_stdvec(&s).unwrap();
            let back: Schedule = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(back, s);
        }
        assert_eq!(postcard::to_stdvec(&Schedule::Optimal).unwrap(), vec![2]);
    }

    #[test]
    fn config_form_is_internally_tagged() {
        let s = Schedule::InverseScaling { power_t: 0.5 };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"type":"inverse_scaling","power_t":0.5}"#);
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
        let c: Schedule = serde_json::from_str(r#"{"type":"optimal"}"#).unwrap();
        assert_eq!(c, Schedule::Optimal);
        assert!(serde_json::from_str::<Schedule>(
            r#"{"type":"inverse_scaling","power_t":1,"eta":2}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Schedule>(r#"{"type":"warm"}"#).is_err());
    }

    #[test]
    fn wrong_variant_is_rejected_in_binary() {
        assert!(postcard::from_bytes::<Schedule>(&[9]).is_err());
    }
}
