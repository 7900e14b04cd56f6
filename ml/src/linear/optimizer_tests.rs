//! Tests of the shared update rule under AdaGrad, Adam and FTRL, the robust losses and hinge,
//! sparse cost, extreme inputs and checkpoints.

use ndarray::Array1;
use proptest::prelude::*;

use super::*;
use crate::testutil::{Stream, TRUE_B, TRUE_W};

fn ftrl(alpha: f64, beta: f64, l1: f64, l2: f64) -> SgdValidParams {
    LinearModel::params(Loss::Logistic)
        .optimizer(Optimizer::Ftrl { alpha, beta })
        .l1(l1)
        .l2(l2)
        .fit_intercept(false)
        .check()
        .unwrap()
}

fn sigmoid(m: f64) -> f64 {
    1.0 / (1.0 + (-m).exp())
}

/// McMahan et al. (2013), algorithm 1, worked by hand for alpha = 0.1, beta = 1, l1 = 0.01,
/// l2 = 0.5 on two events.
#[test]
fn ftrl_matches_the_papers_update_by_hand() {
    let mut m = ftrl(0.1, 1.0, 0.01, 0.5).build(4);
    // event 1: x = {0: 1, 2: 2}, y = 1, w = 0 so p = 0.5 and g = (p - y) x = (-0.5, -1)
    // coordinate 0: sigma = (sqrt(0.25) - 0) / 0.1 = 5, z = -0.5, n = 0.25
    //   w = -(z - sgn(z) l1) / ((beta + sqrt n) / alpha + l2) = 0.49 / (15 + 0.5)
    // coordinate 2: sigma = 10, z = -1, n = 1, w = 0.99 / (20 + 0.5)
    m.learn_one(&FeatureVec::sparse(&[0, 2], &[1.0, 2.0]), 1.0, 1.0)
        .unwrap();
    let (w0, w2) = (0.49 / 15.5, 0.99 / 20.5);
    assert!((m.weight(0).unwrap() - w0).abs() < 1e-15);
    assert!((m.weight(2).unwrap() - w2).abs() < 1e-15);
    assert_eq!(m.weight(1), Some(0.0));
    // event 2: x = {0: 1}, y = 0: p = sigmoid(w0), g = p
    m.learn_one(&FeatureVec::sparse(&[0], &[1.0]), 0.0, 1.0)
        .unwrap();
    let g = sigmoid(w0);
    let n = 0.25 + g * g;
    let sigma = (n.sqrt() - 0.5) / 0.1;
    let z = -0.5 + g - sigma * w0;
    let want = if z.abs() <= 0.01 {
        0.0
    } else {
        -(z - 0.01 * z.signum()) / ((1.0 + n.sqrt()) / 0.1 + 0.5)
    };
    assert!(
        (m.weight(0).unwrap() - want).abs() < 1e-12,
        "{} vs {want}",
        m.weight(0).unwrap()
    );
    // coordinate 2 was not active: unchanged
    assert!((m.weight(2).unwrap() - w2).abs() < 1e-15);
}

#[test]
fn ftrl_l1_produces_exact_zeros() {
    // |z| after one event is |g x| <= 1, so l1 = 1 keeps every weight at exactly zero, while a
    // small l1 lets informative coordinates through and zeroes a pure-noise one
    let mut strong = ftrl(0.1, 1.0, 1.0, 0.0).build(3);
    strong
        .learn_one(&FeatureVec::sparse(&[0, 1], &[1.0, 0.5]), 1.0, 1.0)
        .unwrap();
    assert_eq!(strong.weights(), Array1::<f64>::zeros(3));
    let mut s = Stream::new(3);
    let mut m = ftrl(0.1, 1.0, 2.0, 0.0).build(11);
    for _ in 0..20_000 {
        let (mut x, y, _) = s.logistic(&TRUE_W[..2], 0.0);
        x.push(0.01 * s.normal()); // coordinate 2 carries almost no signal
        m.learn_one(&FeatureVec::dense(Array1::from(x).view()), y, 1.0)
            .unwrap();
    }
    assert!(m.weight(0).unwrap() > 0.5, "{}", m.weights());
    assert!(m.weight(1).unwrap() < -0.3, "{}", m.weights());
    assert_eq!(m.weight(2), Some(0.0), "l1 zeroes the noise coordinate");
    assert_eq!(m.weight(5), Some(0.0), "never-active coordinates stay zero");
}

#[test]
fn wide_adaptive_models_touch_only_active_coordinates() {
    let dim = 1usize << 22;
    for opt in [Optimizer::ftrl(), Optimizer::adagrad(), Optimizer::adam()] {
        let mut m = LinearModel::params(Loss::Logistic)
            .optimizer(opt)
            .l1(1e-6)
            .l2(1e-6)
            .check()
            .unwrap()
            .build(dim);
        let mut s = Stream::new(11);
        let mut touched = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let idx: Vec<u32> = (0..8)
                .map(|_| (s.uniform() * 1000.0) as u32 * 4000)
                .collect();
            let val: Vec<f64> = (0..8).map(|_| s.normal()).collect();
            touched.extend(idx.iter().copied());
            let y = f64::from(u8::from(s.uniform() < 0.5));
            m.learn_one(&FeatureVec::sparse(&idx, &val), y, 1.0)
                .unwrap();
        }
        assert_eq!(m.coordinate_updates(), 200 * 8, "{opt:?}");
        let w = m.weights();
        let nonzero_outside = w
            .iter()
            .enumerate()
            .filter(|&(j, &v)| v != 0.0 && !touched.contains(&(j as u32)))
            .count();
        assert_eq!(nonzero_outside, 0, "{opt:?}");
        assert!(touched.iter().any(|&j| w[j as usize] != 0.0), "{opt:?}");
    }
}

#[test]
fn adaptive_optimizers_and_hinge_learn_the_logistic_stream() {
    let cases = [
        (
            Loss::Logistic,
            Optimizer::adagrad(),
            0.1,
            Schedule::Constant,
        ),
        (Loss::Logistic, Optimizer::adam(), 0.01, Schedule::Constant),
        (Loss::Logistic, Optimizer::ftrl(), 1.0, Schedule::Constant),
        (
            Loss::Hinge,
            Optimizer::Sgd,
            0.5,
            Schedule::InverseScaling { power_t: 0.5 },
        ),
    ];
    for (loss, opt, eta, schedule) in cases {
        let mut m = LinearModel::params(loss)
            .optimizer(opt)
            .learning_rate(eta)
            .schedule(schedule)
            .check()
            .unwrap()
            .build(TRUE_W.len());
        let mut s = Stream::new(5);
        let (mut correct, mut n) = (0, 0);
        for t in 0..30_000 {
            let (x, y, _) = s.logistic(&TRUE_W, TRUE_B);
            let x = FeatureVec::dense(ndarray::ArrayView1::from(&x[..]));
            let score = m.predict_learn_one(&x, y, 1.0).unwrap();
            let class1 = if loss == Loss::Hinge {
                score >= 0.0
            } else {
                score >= 0.5
            };
            if t >= 20_000 {
                n += 1;
                correct += usize::from(class1 == (y == 1.0));
            }
        }
        let acc = correct as f64 / n as f64;
        // the Bayes rate of this stream is about 0.87
        assert!(acc > 0.84, "{loss:?} {opt:?}: accuracy {acc}");
    }
}

#[test]
fn robust_regression_losses_recover_coefficients_despite_outliers() {
    for loss in [
        Loss::Huber { delta: 1.0 },
        Loss::EpsilonInsensitive { epsilon: 0.1 },
    ] {
        let mut m = LinearModel::params(loss)
            .learning_rate(0.05)
            .schedule(Schedule::InverseScaling { power_t: 0.5 })
            .check()
            .unwrap()
            .build(TRUE_W.len());
        let mut s = Stream::new(9);
        for t in 0..100_000 {
            let (x, mut y) = s.linear(&TRUE_W, TRUE_B, 0.1);
            if t % 20 == 0 {
                y += 1e4; // gross outliers: the squared loss would be dragged far off
            }
            m.learn_one(&FeatureVec::dense(Array1::from(x).view()), y, 1.0)
                .unwrap();
        }
        for (j, &w) in TRUE_W.iter().enumerate() {
            let got = m.weight(j).unwrap();
            assert!((got - w).abs() < 0.1, "{loss:?}: w[{j}] = {got}, true {w}");
        }
    }
}

fn all_params() -> Vec<SgdValidParams> {
    let mut out = Vec::new();
    for loss in [
        Loss::Squared,
        Loss::Logistic,
        Loss::Huber { delta: 1.0 },
        Loss::EpsilonInsensitive { epsilon: 0.1 },
        Loss::Hinge,
    ] {
        for opt in [
            Optimizer::Sgd,
            Optimizer::adagrad(),
            Optimizer::adam(),
            Optimizer::ftrl(),
        ] {
            out.push(
                LinearModel::params(loss)
                    .optimizer(opt)
                    .l1(1e-3)
                    .l2(1e-3)
                    .check()
                    .unwrap(),
            );
        }
    }
    out
}

#[test]
fn every_loss_and_optimizer_round_trips_bit_identically() {
    for p in all_params() {
        let mut m = p.build(6);
        let mut s = Stream::new(2);
        for _ in 0..50 {
            let (x, y, _) = s.logistic(&TRUE_W[..4], 0.1);
            m.learn_one(
                &FeatureVec::new(Array1::from(x).view(), &[5], &[0.5]),
                y,
                1.0,
            )
            .unwrap();
        }
        let bytes = postcard::to_stdvec(&m).unwrap();
        let back: LinearModel = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(postcard::to_stdvec(&back).unwrap(), bytes);
        let bytes = rmp_serde::to_vec_named(&m).unwrap();
        let back: LinearModel = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(rmp_serde::to_vec_named(&back).unwrap(), bytes);
        // an artifact whose state does not fit its optimizer is refused
        let mut wrong = m.clone();
        wrong.params = LinearModel::params(p.loss()).check().unwrap();
        if p.optimizer() != Optimizer::Sgd {
            let bytes = postcard::to_stdvec(&wrong).unwrap();
            assert!(postcard::from_bytes::<LinearModel>(&bytes).is_err());
        }
    }
}

#[test]
fn config_form_of_params_accepts_optimizer_and_l1() {
    let json = r#"{"loss":{"huber":{"delta":2.0}},"learning_rate":0.1,
        "schedule":{"type":"constant"},"l2":0.0,"fit_intercept":true,
        "intercept_learning_rate":1.0,"clip_gradient":1.0,
        "optimizer":{"type":"ftrl","alpha":0.2},"l1":0.5}"#;
    let p: SgdValidParams = serde_json::from_str(json).unwrap();
    assert_eq!(p.loss(), Loss::Huber { delta: 2.0 });
    assert_eq!(
        p.optimizer(),
        Optimizer::Ftrl {
            alpha: 0.2,
            beta: 1.0
        }
    );
    assert_eq!(p.l1(), 0.5);
    let bad = json.replace("\"l1\":0.5", "\"l1\":-0.5");
    assert!(serde_json::from_str::<SgdValidParams>(&bad).is_err());
}

/// Finite values from tame to the edges of f64.
pub(crate) fn extreme() -> impl Strategy<Value = f64> {
    prop_oneof![
        -10.0..10.0f64,
        Just(f64::MAX),
        Just(-f64::MAX),
        Just(1e300),
        Just(-1e300),
        Just(1e-300),
        Just(0.0),
        Just(f64::MIN_POSITIVE),
        -1e200..1e200f64,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Parameters and optimizer state stay finite for every loss and optimizer whatever finite
    /// values arrive (loading re-checks finiteness of every stored number).
    #[test]
    fn extreme_finite_inputs_never_poison_any_linear_model(
        events in prop::collection::vec(
            (prop::collection::vec(extreme(), 3), extreme(), extreme(), 0u32..6),
            1..40,
        )
    ) {
        for p in all_params() {
            let mut m = p.build(6);
            for (x, y, w, j) in &events {
                let y = if p.loss().is_classifier() { f64::from(u8::from(*y > 0.0)) } else { *y };
                let x = Array1::from(x.clone());
                let _ = m.learn_one(&FeatureVec::new(x.view(), &[3 + j % 3], &[*w]), y, w.abs());
                prop_assert!(m.weights().iter().all(|v| v.is_finite()));
                prop_assert!(m.intercept().is_finite());
            }
            let bytes = postcard::to_stdvec(&m).unwrap();
            prop_assert!(postcard::from_bytes::<LinearModel>(&bytes).is_ok(), "{:?}", p);
        }
    }
}

/// Measures FTRL hyperparameters on a seeded hashed stream (not a check: run with
/// `cargo test -p eddy-ml --lib ftrl_defaults_on_a_hashed_stream -- --ignored --nocapture`).
/// 200k events, 8 active tokens per event from a skewed 50k vocabulary, 20% of tokens carry a
/// N(0, 0.8^2) weight, hashed into 2^22 coordinates; progressive log loss, mean of three seeds.
#[test]
#[ignore = "measurement, prints a table"]
fn ftrl_defaults_on_a_hashed_stream() {
    const V: usize = 50_000;
    let dim = 1usize << 22;
    let configs = [
        (0.05, 1.0, 0.0, 0.0),
        (0.1, 1.0, 0.0, 0.0),
        (0.1, 1.0, 1e-4, 1e-4),
        (0.1, 1.0, 1e-2, 1e-2),
        (0.1, 1.0, 1.0, 1.0),
        (0.5, 1.0, 1e-4, 1e-4),
        (1.0, 1.0, 1e-4, 1e-4),
    ];
    for (alpha, beta, l1, l2) in configs {
        let mut total = 0.0;
        let mut nonzero = 0;
        for seed in 0..3u64 {
            let mut s = Stream::new(100 + seed);
            let truth: Vec<f64> = (0..V)
                .map(|_| {
                    if s.uniform() < 0.2 {
                        0.8 * s.normal()
                    } else {
                        0.0
                    }
                })
                .collect();
            let mut m = ftrl(alpha, beta, l1, l2).build(dim);
            let mut ll = 0.0;
            let n = 200_000;
            for _ in 0..n {
                let tokens: Vec<usize> = (0..8)
                    .map(|_| ((s.uniform().powi(2)) * V as f64) as usize % V)
                    .collect();
                let margin: f64 = tokens.iter().map(|&t| truth[t]).sum::<f64>() - 0.5;
                let y = f64::from(u8::from(s.uniform() < sigmoid(margin)));
                let idx: Vec<u32> = tokens
                    .iter()
                    .map(|&t| ((t as u64).wrapping_mul(2_654_435_761) % dim as u64) as u32)
                    .collect();
                let p = m
                    .predict_learn_one(&FeatureVec::sparse(&idx, &[1.0; 8]), y, 1.0)
                    .unwrap();
                ll += Loss::Logistic.loss(y, p);
            }
            total += ll / n as f64;
            nonzero += m.weights().iter().filter(|w| **w != 0.0).count();
        }
        println!(
            "alpha {alpha} beta {beta} l1 {l1} l2 {l2}: progressive logloss {:.4}, non-zero weights {}",
            total / 3.0,
            nonzero / 3
        );
    }
}
