//! Tests of `SoftmaxModel`: labels, probabilities, learning, batch forms, extremes, checkpoints.

use ndarray::{Array1, Array2};
use proptest::prelude::*;

use super::*;
use crate::linear::optimizer_tests::extreme;
use crate::testutil::Stream;

fn model(dim: usize) -> SoftmaxModel {
    SoftmaxModel::params().check().unwrap().build(dim)
}

/// Three Gaussian classes around distinct means in 2-D, labelled "a", "b", "7".
fn event(s: &mut Stream) -> (Vec<f64>, &'static str) {
    let k = (s.uniform() * 3.0) as usize;
    let (label, mx, my) = [("a", 2.0, 0.0), ("b", -2.0, 0.0), ("7", 0.0, 2.5)][k.min(2)];
    (vec![mx + s.normal(), my + s.normal()], label)
}

#[test]
fn unseen_labels_are_added_as_they_appear() {
    let mut m = model(2);
    assert!(m.classes().is_empty());
    assert!(m
        .predict_proba(&FeatureVec::dense(Array1::zeros(2).view()))
        .is_empty());
    assert_eq!(m.class_index("cat"), 0);
    assert_eq!(m.class_index("dog"), 1);
    assert_eq!(m.class_index("cat"), 0);
    assert_eq!(m.class_index("3"), 2);
    assert_eq!(m.classes(), ["cat", "dog", "3"]);
    let p = m.predict_proba(&FeatureVec::dense(Array1::from(vec![1.0, 2.0]).view()));
    assert_eq!(p, vec![1.0 / 3.0; 3]);
    assert!(m
        .learn_one(&FeatureVec::dense(Array1::zeros(2).view()), 3, 1.0)
        .is_err());
    assert_eq!(m.steps(), 0);
}

#[test]
fn learns_three_classes_and_probabilities_sum_to_one() {
    let mut m = model(2);
    let mut s = Stream::new(1);
    let (mut correct, mut n) = (0, 0);
    for t in 0..20_000 {
        let (x, label) = event(&mut s);
        let k = m.class_index(label);
        let x = Array1::from(x);
        let p = m
            .predict_learn_one(&FeatureVec::dense(x.view()), k, 1.0)
            .unwrap();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        if t >= 10_000 {
            n += 1;
            correct += usize::from(argmax(&p) == Some(k));
        }
    }
    // the Bayes accuracy of these overlapping blobs is about 0.9
    assert!(correct as f64 / n as f64 > 0.85, "{correct} / {n}");
    let mut classes = m.classes().to_vec();
    classes.sort();
    assert_eq!(classes, ["7", "a", "b"]);
}

#[test]
fn log_sum_exp_handles_huge_margins() {
    let mut p = vec![1e300, 1e300 - 1e285, -1e300];
    softmax_in_place(&mut p);
    assert!(p.iter().all(|v| v.is_finite()));
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    assert_eq!(p[2], 0.0);
}

#[test]
fn learn_many_equals_the_learn_one_loop_bit_for_bit() {
    let mut s = Stream::new(4);
    let rows: Vec<(Vec<f64>, &str)> = (0..300).map(|_| event(&mut s)).collect();
    let mut x = Array2::zeros((rows.len(), 2));
    for (i, (r, _)) in rows.iter().enumerate() {
        x[[i, 0]] = r[0];
        x[[i, 1]] = r[1];
    }
    let labels: Vec<&str> = rows.iter().map(|r| r.1).collect();
    let mut batch = model(2);
    batch.learn_many(x.view(), &labels[..150]).unwrap_err();
    let mut batch = model(2);
    batch
        .learn_many(x.slice(ndarray::s![..150, ..]), &labels[..150])
        .unwrap();
    batch
        .learn_many(x.slice(ndarray::s![150.., ..]), &labels[150..])
        .unwrap();
    let mut one = model(2);
    for (r, l) in &rows {
        let k = one.class_index(l);
        one.learn_one(&FeatureVec::dense(Array1::from(r.clone()).view()), k, 1.0)
            .unwrap();
    }
    assert_eq!(batch, one);
    let probs = batch.predict_proba_many(x.view());
    for (i, (r, _)) in rows.iter().enumerate() {
        let p = one.predict_proba(&FeatureVec::dense(Array1::from(r.clone()).view()));
        assert_eq!(probs.row(i).to_vec(), p);
    }
}

#[test]
fn checkpoints_round_trip_with_every_optimizer() {
    for opt in [
        Optimizer::Sgd,
        Optimizer::adagrad(),
        Optimizer::adam(),
        Optimizer::ftrl(),
    ] {
        let mut m = SoftmaxModel::params()
            .optimizer(opt)
            .l2(1e-4)
            .check()
            .unwrap()
            .build(2);
        let mut s = Stream::new(8);
        for _ in 0..100 {
            let (x, l) = event(&mut s);
            let k = m.class_index(l);
            m.learn_one(&FeatureVec::dense(Array1::from(x).view()), k, 1.0)
                .unwrap();
        }
        let bytes = postcard::to_stdvec(&m).unwrap();
        let back: SoftmaxModel = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(postcard::to_stdvec(&back).unwrap(), bytes);
        let bytes = rmp_serde::to_vec_named(&m).unwrap();
        let back: SoftmaxModel = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(rmp_serde::to_vec_named(&back).unwrap(), bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn extreme_finite_inputs_never_poison_softmax(
        events in prop::collection::vec((prop::collection::vec(extreme(), 3), 0usize..4, extreme()), 1..40)
    ) {
        for opt in [Optimizer::Sgd, Optimizer::adagrad(), Optimizer::adam(), Optimizer::ftrl()] {
            let mut m = SoftmaxModel::params().optimizer(opt).check().unwrap().build(3);
            for (x, k, w) in &events {
                let k = m.class_index(&k.to_string());
                let x = Array1::from(x.clone());
                let _ = m.learn_one(&FeatureVec::dense(x.view()), k, w.abs());
                let p = m.predict_proba(&FeatureVec::dense(x.view()));
                prop_assert!(p.iter().all(|v| v.is_finite()));
            }
            let bytes = postcard::to_stdvec(&m).unwrap();
            prop_assert!(postcard::from_bytes::<SoftmaxModel>(&bytes).is_ok());
        }
    }
}
