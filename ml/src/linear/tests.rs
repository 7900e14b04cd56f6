//! Tests of `LinearModel`: hand-computed steps, known-model recovery, equivalences, rejection.

use ndarray::{Array1, Array2, ShapeBuilder};
use proptest::prelude::*;

use super::*;
use crate::optim::WEIGHT_LIMIT;
use crate::testutil::{dot, Stream, TRUE_B, TRUE_W};

fn dense(x: &[f64]) -> Array1<f64> {
    Array1::from(x.to_vec())
}

fn constant(loss: Loss, eta: f64) -> SgdParams {
    LinearModel::params(loss)
        .schedule(Schedule::Constant)
        .learning_rate(eta)
        .intercept_learning_rate(1.0)
}

#[test]
fn two_sgd_steps_by_hand() {
    let mut m = constant(Loss::Squared, 0.1)
        .l2(0.5)
        .check()
        .unwrap()
        .build(2);
    // margin 0, y 1: g = -1, step = -0.1; decay 0.95 acts on zero weights
    m.learn_one(&FeatureVec::dense(dense(&[1.0, 2.0]).view()), 1.0, 1.0)
        .unwrap();
    let w = m.weights();
    assert!(
        (w[0] - 0.1).abs() < 1e-16 && (w[1] - 0.2).abs() < 1e-16,
        "{w}"
    );
    assert_eq!(m.intercept(), 0.1);
    // margin 0.1 + 0.1 = 0.2, y 0: step = 0.02; w = 0.95 w - 0.02 x, b = 0.1 - 0.02
    m.learn_one(&FeatureVec::dense(dense(&[1.0, 0.0]).view()), 0.0, 1.0)
        .unwrap();
    let w = m.weights();
    assert!(
        (w[0] - 0.075).abs() < 1e-15 && (w[1] - 0.19).abs() < 1e-15,
        "{w}"
    );
    assert!((m.intercept() - 0.08).abs() < 1e-15);
    assert_eq!(m.steps(), 2);
}

#[test]
fn weight_clip_and_intercept_options_scale_the_step() {
    let x = dense(&[1.0, -1.0]);
    let fv = FeatureVec::dense(x.view());
    // y = 1e9 gives g = -1e9, clipped to -1; event weight 2 doubles the step; intercept moves at
    // half rate
    let mut m = constant(Loss::Squared, 0.1)
        .clip_gradient(1.0)
        .intercept_learning_rate(0.5)
        .check()
        .unwrap()
        .build(2);
    m.learn_one(&fv, 1e9, 2.0).unwrap();
    assert_eq!(m.weights(), dense(&[0.2, -0.2]));
    assert_eq!(m.intercept(), 0.1);
    let mut m = constant(Loss::Logistic, 0.1)
        .fit_intercept(false)
        .check()
        .unwrap()
        .build(2);
    m.learn_one(&fv, 1.0, 1.0).unwrap();
    assert_eq!(m.intercept(), 0.0);
    assert_eq!(m.weights(), dense(&[0.05, -0.05]));
    // weight 0: counted as a step, no movement
    m.learn_one(&fv, 0.0, 0.0).unwrap();
    assert_eq!(m.weights(), dense(&[0.05, -0.05]));
    assert_eq!(m.steps(), 2);
}

#[test]
fn logistic_sgd_reaches_the_bayes_rate_and_recovers_signs() {
    let mut s = Stream::new(42);
    let mut m = LinearModel::params(Loss::Logistic)
        .check()
        .unwrap()
        .build(10);
    for _ in 0..50_000 {
        let (x, y, _) = s.logistic(&TRUE_W, TRUE_B);
        m.learn_one(&FeatureVec::dense(dense(&x).view()), y, 1.0)
            .unwrap();
    }
    // held-out events: the Bayes classifier thresholds the true probability
    let (mut model_right, mut bayes_right, n) = (0usize, 0usize, 20_000);
    for _ in 0..n {
        let (x, y, p_true) = s.logistic(&TRUE_W, TRUE_B);
        let p = m.predict_one(&FeatureVec::dense(dense(&x).view()));
        model_right += usize::from((p >= 0.5) == (y == 1.0));
        bayes_right += usize::from((p_true >= 0.5) == (y == 1.0));
    }
    let (acc, bayes) = (model_right as f64 / n as f64, bayes_right as f64 / n as f64);
    assert!(acc >= bayes - 0.005, "accuracy {acc} vs Bayes {bayes}");
    let w = m.weights();
    for (j, (&got, &want)) in w.iter().zip(&TRUE_W).enumerate() {
        assert_eq!(got.signum(), want.signum(), "w[{j}] = {got}, true {want}");
        assert!(
            (got - want).abs() < 0.2 * want.abs(),
            "w[{j}] = {got}, true {want}"
        );
    }
    assert!(
        (m.intercept() - TRUE_B).abs() < 0.1,
        "b = {}",
        m.intercept()
    );
}

#[test]
fn linear_regression_recovers_known_coefficients() {
    let mut s = Stream::new(7);
    let mut m = LinearModel::params(Loss::Squared)
        .check()
        .unwrap()
        .build(10);
    for _ in 0..20_000 {
        let (x, y) = s.linear(&TRUE_W, TRUE_B, 0.1);
        m.learn_one(&FeatureVec::dense(dense(&x).view()), y, 1.0)
            .unwrap();
    }
    // the default step (0.01 / t^0.25) has decayed to ~8e-4, so noise sd 0.1 leaves a jitter of
    // ~0.002
    for (j, (&got, &want)) in m.weights().iter().zip(&TRUE_W).enumerate() {
        assert!((got - want).abs() < 0.015, "w[{j}] = {got}, true {want}");
    }
    assert!(
        (m.intercept() - TRUE_B).abs() < 0.015,
        "b = {}",
        m.intercept()
    );
}

/// Mixed dense + sparse events for a 4 + 60 wide model.
fn mixed_event(s: &mut Stream) -> (Vec<f64>, Vec<u32>, Vec<f64>, f64) {
    let d = s.features(4);
    let idx: Vec<u32> = (0..5).map(|_| 4 + (s.uniform() * 60.0) as u32).collect();
    let val = s.features(5);
    let y = if s.uniform() < 0.5 { 1.0 } else { 0.0 };
    (d, idx, val, y)
}

#[test]
fn predict_learn_one_is_bit_identical_to_predict_then_learn() {
    for params in [
        LinearModel::params(Loss::Logistic).l2(1e-3),
        constant(Loss::Squared, 0.02),
        LinearModel::params(Loss::Logistic)
            .schedule(Schedule::Optimal)
            .l2(1e-2),
    ] {
        let p = params.check().unwrap();
        let (mut a, mut b) = (p.build(64), p.build(64));
        let mut s = Stream::new(3);
        for i in 0..3_000 {
            let (d, idx, val, y) = mixed_event(&mut s);
            let y = if i == 1_000 { f64::NAN } else { y };
            let d = dense(&d);
            let x = FeatureVec::new(d.view(), &idx, &val);
            let fused = a.predict_learn_one(&x, y, 1.0);
            let p = b.predict_one(&x);
            let split = b.learn_one(&x, y, 1.0).map(|()| p);
            match (fused, split) {
                (Ok(f), Ok(s)) => assert_eq!(f.to_bits(), s.to_bits()),
                (Err(f), Err(s)) => assert_eq!(f.to_string(), s.to_string()),
                other => panic!("diverged at {i}: {other:?}"),
            }
        }
        assert_eq!(a, b);
    }
}

#[test]
fn dense_and_sparse_spellings_give_bit_identical_models() {
    let p = LinearModel::params(Loss::Logistic)
        .l2(1e-3)
        .check()
        .unwrap();
    let (mut dm, mut sm, mut hm) = (p.build(8), p.build(8), p.build(8));
    let all: Vec<u32> = (0..8).collect();
    let tail: Vec<u32> = (3..8).collect();
    let mut s = Stream::new(11);
    for _ in 0..5_000 {
        let (x, y, _) = s.logistic(&TRUE_W[..8], 0.1);
        let xd = dense(&x);
        dm.learn_one(&FeatureVec::dense(xd.view()), y, 1.0).unwrap();
        sm.learn_one(&FeatureVec::sparse(&all, &x), y, 1.0).unwrap();
        // a dense prefix of 3 and the rest as sparse entries
        let head = dense(&x[..3]);
        hm.learn_one(&FeatureVec::new(head.view(), &tail, &x[3..]), y, 1.0)
            .unwrap();
    }
    assert_eq!(dm, sm);
    assert_eq!(dm, hm);
}

#[test]
fn scale_trick_matches_naive_dense_l2() {
    let p = constant(Loss::Logistic, 0.2)
        .l2(0.05)
        .intercept_learning_rate(0.5)
        .check()
        .unwrap();
    let dim = 64;
    let mut m = p.build(dim);
    let (mut w, mut b) = (vec![0.0; dim], 0.0);
    let mut s = Stream::new(5);
    let mut renormalised = false;
    for t in 1..=6_000u64 {
        let (d, idx, val, y) = mixed_event(&mut s);
        let mut x = vec![0.0; dim];
        x[..4].copy_from_slice(&d);
        for (&i, &v) in idx.iter().zip(&val) {
            x[i as usize] += v;
        }
        let margin = dot(&w, &x) + b;
        let step = 1.0 * Loss::Logistic.gradient(margin, y) * p.eta(t);
        for (wj, xj) in w.iter_mut().zip(&x) {
            *wj = *wj * (1.0 - p.eta(t) * p.l2()) - step * xj;
        }
        b -= step * p.intercept_learning_rate();
        m.learn_one(&FeatureVec::new(dense(&d).view(), &idx, &val), y, 1.0)
            .unwrap();
        renormalised |= m.core.weights.scale() == 1.0 && t > 1;
    }
    assert!(renormalised, "the test must cross a renormalisation");
    let got = m.weights();
    let norm = w.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let err = got
        .iter()
        .zip(&w)
        .fold(0.0f64, |a, (g, n)| a.max((g - n).abs()));
    assert!(err <= 1e-12 * norm, "max error {err} vs max weight {norm}");
    assert!((m.intercept() - b).abs() <= 1e-12 * b.abs().max(1.0));
}

#[test]
fn learn_many_equals_a_learn_one_loop_in_any_layout() {
    let mut s = Stream::new(9);
    let n = 400;
    let rows: Vec<(Vec<f64>, f64)> = (0..n).map(|_| s.linear(&TRUE_W, TRUE_B, 0.5)).collect();
    let flat: Vec<f64> = rows.iter().flat_map(|(x, _)| x.clone()).collect();
    let x = Array2::from_shape_vec((n, 10), flat).unwrap();
    let y: Array1<f64> = rows.iter().map(|r| r.1).collect();
    let p = LinearModel::params(Loss::Squared).l2(1e-3).check().unwrap();

    let mut looped = p.build(10);
    for (x, y) in &rows {
        looped
            .learn_one(&FeatureVec::dense(dense(x).view()), *y, 1.0)
            .unwrap();
    }
    let mut batch = p.build(10);
    batch.learn_many(x.view(), y.view()).unwrap();
    assert_eq!(batch, looped);
    // column-major storage: rows are strided views, taking the non-slice path
    let mut fortran = Array2::zeros((n, 10).f());
    fortran.assign(&x);
    let mut strided = p.build(10);
    strided.learn_many(fortran.view(), y.view()).unwrap();
    assert_eq!(strided, looped);
    let preds = batch.predict_many(fortran.view());
    assert_eq!(preds, batch.predict_many(x.view()));
    assert_eq!(preds[3], batch.predict_one(&FeatureVec::dense(x.row(3))));
    assert_eq!(
        batch.learn_many(x.view(), y.slice(ndarray::s![..3])),
        Err(MlError::ShapeMismatch { rows: n, len: 3 })
    );
}

#[test]
fn rejected_events_leave_the_model_unchanged() {
    let mut m = LinearModel::params(Loss::Logistic)
        .l2(1e-3)
        .check()
        .unwrap()
        .build(4);
    let ok = dense(&[1.0, 2.0, 0.0, -1.0]);
    for _ in 0..3 {
        m.learn_one(&FeatureVec::dense(ok.view()), 1.0, 1.0)
            .unwrap();
    }
    let before = m.clone();
    let nan_x = dense(&[1.0, f64::NAN, 0.0, 0.0]);
    let inf_x = dense(&[0.0, 0.0, f64::INFINITY, 0.0]); // hits a zero weight: 0 * inf = NaN
    let long = dense(&[1.0; 5]);
    let okv = FeatureVec::dense(ok.view());
    type Case<'a> = (FeatureVec<'a>, f64, f64, fn(&MlError) -> bool);
    let cases: Vec<Case<'_>> = vec![
        (okv, f64::NAN, 1.0, |e| {
            matches!(e, MlError::NonFinite { what: "y", .. })
        }),
        (okv, f64::INFINITY, 1.0, |e| {
            matches!(e, MlError::NonFinite { what: "y", .. })
        }),
        (okv, 1.0, f64::NAN, |e| {
            matches!(e, MlError::NonFinite { what: "weight", .. })
        }),
        (okv, 1.0, f64::INFINITY, |e| {
            matches!(e, MlError::NonFinite { what: "weight", .. })
        }),
        (okv, 1.0, -1.0, |e| {
            matches!(e, MlError::InvalidWeight { .. })
        }),
        (okv, 2.0, 1.0, |e| matches!(e, MlError::InvalidLabel { .. })),
        (FeatureVec::dense(nan_x.view()), 1.0, 1.0, |e| {
            matches!(e, MlError::NonFinite { what: "margin", .. })
        }),
        (FeatureVec::dense(inf_x.view()), 1.0, 1.0, |e| {
            matches!(e, MlError::NonFinite { what: "margin", .. })
        }),
        (
            FeatureVec::sparse(&[1], &[f64::NEG_INFINITY]),
            0.0,
            1.0,
            |e| matches!(e, MlError::NonFinite { .. }),
        ),
        (FeatureVec::sparse(&[2, 4], &[1.0, 1.0]), 1.0, 1.0, |e| {
            *e == MlError::IndexOutOfRange { index: 4, dim: 4 }
        }),
        (FeatureVec::dense(long.view()), 1.0, 1.0, |e| {
            *e == MlError::DimensionMismatch { len: 5, dim: 4 }
        }),
        (
            FeatureVec::unchecked(ok.view(), &[1, 2], &[1.0]),
            1.0,
            1.0,
            |e| matches!(e, MlError::SparseLengthMismatch { .. }),
        ),
    ];
    for (i, (x, y, w, is_expected)) in cases.into_iter().enumerate() {
        let e = m.learn_one(&x, y, w).unwrap_err();
        assert!(is_expected(&e), "case {i}: {e}");
        assert_eq!(m, before, "case {i} changed the model");
        let e2 = m.predict_learn_one(&x, y, w).unwrap_err();
        assert_eq!(e.to_string(), e2.to_string());
        assert_eq!(m, before, "case {i} changed the model");
    }
    // out-of-range coordinates are ignored by predict_one, which has no way to fail
    let p = m.predict_one(&FeatureVec::sparse(&[0, 99], &[1.0, 5.0]));
    assert_eq!(p, m.predict_one(&FeatureVec::sparse(&[0], &[1.0])));
}

#[test]
fn hashed_wide_model_touches_only_active_coordinates() {
    let dim = 1 << 22;
    let mut m = LinearModel::params(Loss::Logistic)
        .l2(1e-4)
        .check()
        .unwrap()
        .build(dim);
    let idx = [17u32, 1_000_003, 4_194_303];
    for _ in 0..100 {
        m.learn_one(&FeatureVec::sparse(&idx, &[1.0, 0.5, -1.0]), 1.0, 1.0)
            .unwrap();
    }
    assert!(m.weight(17).unwrap() > 0.0);
    assert!(m.weight(4_194_303).unwrap() < 0.0);
    assert_eq!(m.weight(18), Some(0.0));
    assert_eq!(m.weight(dim), None);
    assert_eq!(m.dim(), dim);
}

#[test]
fn postcard_round_trip_is_bit_identical() {
    let p = LinearModel::params(Loss::Logistic)
        .l2(1e-3)
        .check()
        .unwrap();
    let mut m = p.build(64);
    let mut s = Stream::new(21);
    for _ in 0..500 {
        let (d, idx, val, y) = mixed_event(&mut s);
        m.learn_one(&FeatureVec::new(dense(&d).view(), &idx, &val), y, 1.0)
            .unwrap();
    }
    let bytes = postcard::to_stdvec(&m).unwrap();
    let mut back: LinearModel = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, m);
    assert_eq!(postcard::to_stdvec(&back).unwrap(), bytes);
    for _ in 0..200 {
        let (d, idx, val, y) = mixed_event(&mut s);
        let d = dense(&d);
        let x = FeatureVec::new(d.view(), &idx, &val);
        let (a, b) = (
            m.predict_learn_one(&x, y, 1.0),
            back.predict_learn_one(&x, y, 1.0),
        );
        assert_eq!(a.unwrap().to_bits(), b.unwrap().to_bits());
    }
    assert_eq!(back, m);

    let mut bad = m.clone();
    bad.core.intercept = f64::NAN;
    let bytes = postcard::to_stdvec(&bad).unwrap();
    assert!(postcard::from_bytes::<LinearModel>(&bytes).is_err());
}

fn extreme() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::MAX),
        Just(-f64::MAX),
        Just(1e300),
        Just(-1e300),
        Just(1e150),
        Just(-1e160),
        Just(1e-300),
        Just(0.0),
        -10.0..10.0f64,
    ]
}

proptest! {
    #[test]
    fn extreme_finite_inputs_never_make_parameters_non_finite(
        logistic in any::<bool>(),
        schedule in 0..3usize,
        l2 in prop_oneof![Just(0.0), Just(1e-3), Just(0.9)],
        events in prop::collection::vec(
            ([extreme(), extreme(), extreme()], 0..8u32, extreme(), extreme(),
             prop_oneof![Just(0.0), Just(1.0), Just(1e300), Just(f64::MAX), Just(1e-300)]),
            1..40,
        ),
    ) {
        let loss = if logistic { Loss::Logistic } else { Loss::Squared };
        let params = match schedule {
            0 => constant(loss, 1.0).l2(l2),
            1 => LinearModel::params(loss).schedule(Schedule::InverseScaling { power_t: 0.5 }).l2(l2),
            _ => LinearModel::params(loss).schedule(Schedule::Optimal).l2(l2.max(1e-3)),
        };
        let mut m = params.check().unwrap().build(8);
        for (d, i, v, y, w) in events {
            let y = if logistic { f64::from(u8::from(y > 0.0)) } else { y };
            let d = dense(&d);
            let before = m.clone();
            let r = m.learn_one(&FeatureVec::new(d.view(), &[3 + i % 5], &[v]), y, w);
            if r.is_err() {
                prop_assert_eq!(&m, &before);
            }
            let limit = WEIGHT_LIMIT * (1.0 + 1e-12);
            prop_assert!(m.weights().iter().all(|w| w.is_finite() && w.abs() <= limit), "{}", m.weights());
            prop_assert!(m.intercept().is_finite() && m.intercept().abs() <= limit);
        }
    }
}

#[test]
fn merging_averages_weights_intercept_and_optimizer_state() {
    let train = |xs: &[[f64; 2]], ys: &[f64], optimizer: Optimizer| {
        let mut m = constant(Loss::Squared, 0.1)
            .l2(0.1)
            .optimizer(optimizer)
            .check()
            .unwrap()
            .build(2);
        for (x, &y) in xs.iter().zip(ys) {
            m.learn_one(&FeatureVec::dense(dense(x).view()), y, 1.0)
                .unwrap();
        }
        m
    };
    for optimizer in [
        Optimizer::Sgd,
        Optimizer::AdaGrad { eps: 1e-8 },
        Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        Optimizer::Ftrl {
            alpha: 0.1,
            beta: 1.0,
        },
    ] {
        let a = train(&[[1.0, 2.0], [0.5, -1.0]], &[1.0, 0.0], optimizer);
        let b = train(
            &[[-1.0, 0.5], [2.0, 1.0], [0.0, 1.0]],
            &[0.5, 2.0, -1.0],
            optimizer,
        );
        // With itself: unchanged (up to the rounding of w/2 + w/2).
        let mut same = a.clone();
        same.merge_weighted(&a, 1.0, 1.0).unwrap();
        assert_eq!(same.weights(), a.weights(), "{optimizer:?}");
        assert_eq!(same.intercept(), a.intercept());
        // Weighted 1:3 -> a quarter of a and three quarters of b, coordinate by coordinate.
        let mut m = a.clone();
        m.merge_weighted(&b, 1.0, 3.0).unwrap();
        for j in 0..2 {
            let want = 0.25 * a.weights()[j] + 0.75 * b.weights()[j];
            assert!((m.weights()[j] - want).abs() < 1e-12, "{optimizer:?}");
        }
        let want = 0.25 * a.intercept() + 0.75 * b.intercept();
        assert!((m.intercept() - want).abs() < 1e-12);
        assert_eq!(m.steps(), a.steps());
        // A zero weight on the other side leaves the model as it was.
        let mut m = a.clone();
        m.merge_weighted(&b, 2.0, 0.0).unwrap();
        assert_eq!(m.weights(), a.weights());
    }
    // A change taken out and put back: the model it came from.
    let a = train(&[[1.0, 2.0], [0.5, -1.0]], &[1.0, 0.0], Optimizer::Sgd);
    let b = train(&[[-1.0, 0.5]], &[0.5], Optimizer::Sgd);
    let mut delta = a.clone();
    delta.combine(&b, 1.0, -1.0).unwrap();
    let mut back = b.clone();
    back.combine(&delta, 1.0, 1.0).unwrap();
    for j in 0..2 {
        assert!((back.weights()[j] - a.weights()[j]).abs() < 1e-15);
    }
    assert!(a.clone().combine(&b, f64::NAN, 1.0).is_err());
    let a = train(&[[1.0, 2.0]], &[1.0], Optimizer::Sgd);
    let wider = constant(Loss::Squared, 0.1).check().unwrap().build(3);
    assert!(a.clone().merge_weighted(&wider, 1.0, 1.0).is_err());
    assert!(a.clone().merge_weighted(&a, -1.0, 1.0).is_err());
    let adam = train(
        &[[1.0, 2.0]],
        &[1.0],
        Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
    );
    assert!(a.clone().merge_weighted(&adam, 1.0, 1.0).is_err());
}
