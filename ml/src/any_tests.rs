//! Tests of `AnyModel`: dispatch, target conversion, progressive semantics, checkpoints.

use ndarray::array;

use super::*;
use crate::metrics::{ProgressiveMetrics, ACCURACY, MACRO_F1};
use crate::{Loss, Optimizer};

fn x2(a: f64, b: f64) -> ndarray::Array1<f64> {
    array![a, b]
}

#[test]
fn tasks_and_prediction_kinds() {
    let lin = AnyModel::from(LinearModel::params(Loss::Squared).check().unwrap().build(2));
    let log = AnyModel::from(
        LinearModel::params(Loss::Logistic)
            .check()
            .unwrap()
            .build(2),
    );
    let svm = AnyModel::from(LinearModel::params(Loss::Hinge).check().unwrap().build(2));
    let soft = AnyModel::from(SoftmaxModel::params().check().unwrap().build(2));
    let km = AnyModel::from(StreamingKMeans::params(2).check().unwrap().build(2));
    assert_eq!(lin.task(), Task::Regression);
    assert_eq!(log.task(), Task::Binary);
    assert_eq!(svm.task(), Task::Binary);
    assert_eq!(soft.task(), Task::Multiclass);
    assert_eq!(km.task(), Task::Clustering);
    assert_eq!(km.dim(), 2);
    let x = x2(1.0, 2.0);
    let fx = FeatureVec::dense(x.view());
    assert_eq!(lin.predict_one(&fx), Prediction::Value(0.0));
    assert_eq!(log.predict_one(&fx), Prediction::Probability(0.5));
    assert_eq!(svm.predict_one(&fx), Prediction::Probability(0.5));
    assert_eq!(
        soft.predict_one(&fx),
        Prediction::Class {
            index: 0,
            probabilities: vec![]
        }
    );
    assert_eq!(
        km.predict_one(&fx),
        Prediction::Cluster {
            id: 0,
            distance: 0.0
        }
    );
}

#[test]
fn predict_learn_one_predicts_before_learning() {
    let mut m = AnyModel::from(
        LinearModel::params(Loss::Logistic)
            .check()
            .unwrap()
            .build(2),
    );
    let x = x2(1.0, -1.0);
    let fx = FeatureVec::dense(x.view());
    assert_eq!(
        m.predict_learn_one(&fx, Target::Label("true"), 1.0)
            .unwrap(),
        Prediction::Probability(0.5)
    );
    let Prediction::Probability(p) = m.predict_one(&fx) else {
        panic!("binary model predicts probabilities")
    };
    assert!(p > 0.5);
    // unlabelled: predicts, learns nothing
    let before = m.clone();
    m.predict_learn_one(&fx, Target::Unlabelled, 1.0).unwrap();
    assert_eq!(m, before);
    assert!(m
        .predict_learn_one(&fx, Target::Label("maybe"), 1.0)
        .is_err());
    assert_eq!(m, before);
}

#[test]
fn softmax_adds_integer_and_string_labels_and_scores_them() {
    let mut m = AnyModel::from(
        SoftmaxModel::params()
            .optimizer(Optimizer::adagrad())
            .learning_rate(0.5)
            .check()
            .unwrap()
            .build(2),
    );
    let mut metrics = ProgressiveMetrics::new(Task::Multiclass, 50);
    let data = [
        (x2(1.0, 0.0), Target::Number(3.0)),
        (x2(0.0, 1.0), Target::Label("b")),
    ];
    for _ in 0..200 {
        for (x, y) in &data {
            let p = m
                .predict_learn_one(&FeatureVec::dense(x.view()), *y, 1.0)
                .unwrap();
            metrics.update_prediction(y, &p);
        }
    }
    let AnyModel::Softmax(s) = &m else {
        unreachable!()
    };
    assert_eq!(s.classes(), ["3", "b"]);
    assert!(m
        .predict_learn_one(
            &FeatureVec::dense(x2(0.0, 0.0).view()),
            Target::Number(1.5),
            1.0
        )
        .is_err());
    let w = metrics.window_values();
    assert_eq!(w[0], (ACCURACY, 1.0));
    assert_eq!(w[2], (MACRO_F1, 1.0));
    let (labels, cm) = metrics.confusion_matrix().unwrap();
    assert_eq!(labels, ["3", "b"]);
    // the very first event of each class was scored before the model knew it
    assert_eq!(cm[0][0] + cm[1][1], 398);
}

#[test]
fn every_variant_round_trips_bit_identically() {
    let mut models = vec![
        AnyModel::from(
            LinearModel::params(Loss::Logistic)
                .optimizer(Optimizer::ftrl())
                .check()
                .unwrap()
                .build(3),
        ),
        AnyModel::from(SoftmaxModel::params().check().unwrap().build(3)),
        AnyModel::from(StreamingKMeans::params(2).check().unwrap().build(3)),
    ];
    for m in &mut models {
        for i in 0..20 {
            let x = array![f64::from(i % 3), 1.0, -f64::from(i % 2)];
            let y = if i % 2 == 0 {
                Target::Label("1")
            } else {
                Target::Label("0")
            };
            m.predict_learn_one(&FeatureVec::dense(x.view()), y, 1.0)
                .unwrap();
        }
        let bytes = postcard::to_stdvec(&*m).unwrap();
        let back: AnyModel = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(&back, m);
        assert_eq!(postcard::to_stdvec(&back).unwrap(), bytes);
        let bytes = rmp_serde::to_vec_named(&*m).unwrap();
        let back: AnyModel = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(&back, m);
        assert_eq!(rmp_serde::to_vec_named(&back).unwrap(), bytes);
    }
}

#[test]
fn number_labels_are_decimal_strings() {
    assert_eq!(number_label(3.0).unwrap(), "3");
    assert_eq!(number_label(-2.0).unwrap(), "-2");
    assert!(number_label(0.5).is_err());
    assert!(number_label(f64::NAN).is_err());
    assert_eq!(parse_binary("true").unwrap(), 1.0);
    assert_eq!(parse_binary("0").unwrap(), 0.0);
}

#[test]
fn batch_forms_equal_the_one_at_a_time_loop() {
    let x = ndarray::Array2::from_shape_fn((40, 2), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
    let labels: Vec<String> = (0..40).map(|i| (i % 3).to_string()).collect();
    let ys: Vec<Target<'_>> = labels.iter().map(|l| Target::Label(l)).collect();
    for template in [
        AnyModel::from(SoftmaxModel::params().check().unwrap().build(2)),
        AnyModel::from(StreamingKMeans::params(3).check().unwrap().build(2)),
        AnyModel::from(
            LinearModel::params(Loss::Logistic)
                .check()
                .unwrap()
                .build(2),
        ),
    ] {
        let ys: Vec<Target<'_>> = if template.task() == Task::Binary {
            (0..40).map(|i| Target::Number(f64::from(i % 2))).collect()
        } else {
            ys.clone()
        };
        let mut batch = template.clone();
        let got = batch.predict_learn_many(x.view(), &ys).unwrap();
        let mut one = template.clone();
        let want: Vec<Prediction> = x
            .rows()
            .into_iter()
            .zip(&ys)
            .map(|(r, y)| {
                one.predict_learn_one(&FeatureVec::dense(r), *y, 1.0)
                    .unwrap()
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(batch, one);
        assert_eq!(
            batch.predict_many(x.view()),
            x.rows()
                .into_iter()
                .map(|r| one.predict_one(&FeatureVec::dense(r)))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn predictions_serialise_in_json_and_binary() {
    let ps = [
        Prediction::Value(1.5),
        Prediction::Probability(0.25),
        Prediction::Class {
            index: 1,
            probabilities: vec![0.25, 0.75],
        },
        Prediction::Cluster {
            id: 2,
            distance: 0.5,
        },
    ];
    assert_eq!(
        serde_json::to_string(&ps[1]).unwrap(),
        r#"{"probability":0.25}"#
    );
    assert_eq!(
        serde_json::to_string(&ps[3]).unwrap(),
        r#"{"cluster":{"id":2,"distance":0.5}}"#
    );
    for p in &ps {
        let json = serde_json::to_string(p).unwrap();
        assert_eq!(&serde_json::from_str::<Prediction>(&json).unwrap(), p);
        let bytes = postcard::to_stdvec(p).unwrap();
        assert_eq!(&postcard::from_bytes::<Prediction>(&bytes).unwrap(), p);
        let bytes = rmp_serde::to_vec_named(p).unwrap();
        assert_eq!(&rmp_serde::from_slice::<Prediction>(&bytes).unwrap(), p);
    }
}

#[test]
fn a_rejected_event_does_not_add_its_label() {
    let mut m = AnyModel::from(SoftmaxModel::params().check().unwrap().build(2));
    let bad = x2(f64::INFINITY, 0.0);
    assert!(m
        .predict_learn_one(&FeatureVec::dense(bad.view()), Target::Label("a"), 1.0)
        .is_err());
    assert!(m
        .predict_learn_one(
            &FeatureVec::dense(x2(1.0, 0.0).view()),
            Target::Label("a"),
            -1.0
        )
        .is_err());
    let AnyModel::Softmax(s) = &m else {
        unreachable!()
    };
    assert!(s.classes().is_empty());
}
