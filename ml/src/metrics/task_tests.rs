//! Tests of the multiclass and clustering metrics and `update_prediction`, against hand-computed
//! references.

use super::*;
use crate::any::{Prediction, Target};

fn class(index: usize, probabilities: &[f64]) -> Prediction {
    Prediction::Class {
        index,
        probabilities: probabilities.to_vec(),
    }
}

fn get(v: &MetricValues, name: &str) -> f64 {
    v.iter()
        .find(|e| e.0 == name)
        .map(|e| e.1)
        .expect("metric present")
}

#[test]
fn multiclass_by_hand() {
    let mut m = ProgressiveMetrics::new(Task::Multiclass, 3);
    // classes a = 0, b = 1, c = 2 (first-seen order of the targets)
    let events = [
        ("a", class(0, &[0.7, 0.2, 0.1])),
        ("b", class(0, &[0.6, 0.3, 0.1])),
        ("c", class(2, &[0.1, 0.1, 0.8])),
        ("a", class(0, &[0.5, 0.25, 0.25])),
        ("b", class(1, &[0.2, 0.7, 0.1])),
    ];
    for (y, p) in &events {
        m.update_prediction(&Target::Label(y), p);
    }
    let v = m.values();
    assert_eq!(get(&v, ACCURACY), 4.0 / 5.0);
    let ll = -(0.7f64.ln() + 0.3f64.ln() + 0.8f64.ln() + 0.5f64.ln() + 0.7f64.ln()) / 5.0;
    assert!((get(&v, LOGLOSS) - ll).abs() < 1e-12);
    // a: tp 2, fp 1, fn 0 -> 4/5; b: tp 1, fp 0, fn 1 -> 2/3; c: tp 1 -> 1
    let f1 = (0.8 + 2.0 / 3.0 + 1.0) / 3.0;
    assert!((get(&v, MACRO_F1) - f1).abs() < 1e-12);
    let (labels, cm) = m.confusion_matrix().unwrap();
    assert_eq!(labels, ["a", "b", "c"]);
    assert_eq!(cm, vec![vec![2, 0, 0], vec![1, 1, 0], vec![0, 0, 1]]);
    // window of 3: events c, a, b all right
    let w = m.window_values();
    assert_eq!(get(&w, ACCURACY), 1.0);
    assert_eq!(get(&w, MACRO_F1), 1.0);
    let wll = -(0.8f64.ln() + 0.5f64.ln() + 0.7f64.ln()) / 3.0;
    assert!((get(&w, LOGLOSS) - wll).abs() < 1e-12);
    // a class the model has not seen yet costs the clipped log loss
    m.update_prediction(&Target::Label("d"), &class(0, &[1.0, 0.0, 0.0]));
    assert!(
        (get(&m.window_values(), LOGLOSS) * 3.0 - (0.5f64.ln() + 0.7f64.ln()).abs() - 34.538).abs()
            < 1e-2
    );
}

/// scikit-learn's documented examples of `adjusted_rand_score`.
#[test]
fn ari_matches_hand_computed_references() {
    let score = |truth: &[&str], pred: &[usize]| {
        let mut m = ProgressiveMetrics::new(Task::Clustering, 100);
        for (t, &p) in truth.iter().zip(pred) {
            m.update_prediction(
                &Target::Label(t),
                &Prediction::Cluster {
                    id: p,
                    distance: 1.0,
                },
            );
        }
        get(&m.values(), ARI)
    };
    // relabelling does not matter
    assert_eq!(score(&["0", "0", "1", "1"], &[1, 1, 0, 0]), 1.0);
    // sklearn: adjusted_rand_score([0, 0, 1, 2], [0, 0, 1, 1]) = 0.5714285714285715 (4 / 7)
    assert!((score(&["0", "0", "1", "2"], &[0, 0, 1, 1]) - 4.0 / 7.0).abs() < 1e-12);
    // sklearn: adjusted_rand_score([0, 0, 1, 1], [0, 0, 1, 2]) = 0.5714285714285715
    assert!((score(&["0", "0", "1", "1"], &[0, 0, 1, 2]) - 4.0 / 7.0).abs() < 1e-12);
    // sklearn: adjusted_rand_score([0, 0, 0, 0], [0, 1, 2, 3]) = 0.0
    assert_eq!(score(&["0", "0", "0", "0"], &[0, 1, 2, 3]), 0.0);
    // sklearn: adjusted_rand_score([0, 0, 1, 1], [0, 1, 0, 1]) = -0.5
    assert!((score(&["0", "0", "1", "1"], &[0, 1, 0, 1]) + 0.5).abs() < 1e-12);
}

#[test]
fn inertia_and_silhouette_by_hand() {
    let mut m = ProgressiveMetrics::new(Task::Clustering, 2);
    // two clusters on a line: {0, 1} and {4}
    let pts = [(0.0, 0, 0.5), (1.0, 0, 0.5), (4.0, 1, 0.0)];
    for &(x, id, d) in &pts {
        let xs = ndarray::array![x];
        m.update_point(
            &crate::FeatureVec::dense(xs.view()),
            &Target::Unlabelled,
            &Prediction::Cluster { id, distance: d },
        );
    }
    let v = m.values();
    assert!((get(&v, INERTIA) - 0.5 / 3.0).abs() < 1e-15);
    // x = 0: a = 1, b = 4 -> 3/4; x = 1: a = 1, b = 3 -> 2/3; x = 4 alone -> 0
    let s = (0.75 + 2.0 / 3.0 + 0.0) / 3.0;
    assert!((get(&v, SILHOUETTE) - s).abs() < 1e-12, "{v:?}");
    // window: the last two points (1 and 4) are one per cluster, both alone -> 0
    let w = m.window_values();
    assert_eq!(get(&w, SILHOUETTE), 0.0);
    assert!((get(&w, INERTIA) - 0.125).abs() < 1e-15);
    assert!(
        v.iter().all(|(name, _)| *name != ARI),
        "no labels given, so no ARI: {v:?}"
    );
}

#[test]
fn binary_accepts_labels_and_ignores_mismatched_pairs() {
    let mut m = ProgressiveMetrics::new(Task::Binary, 10);
    m.update_prediction(&Target::Label("true"), &Prediction::Probability(0.8));
    m.update_prediction(&Target::Number(0.0), &Prediction::Probability(0.3));
    m.update_prediction(&Target::Unlabelled, &Prediction::Probability(0.3));
    m.update_prediction(
        &Target::Number(1.0),
        &Prediction::Cluster {
            id: 0,
            distance: 1.0,
        },
    );
    assert_eq!(m.count(), 2);
    assert_eq!(get(&m.values(), F1), 1.0);
}

#[test]
fn every_task_round_trips_bit_identically() {
    for task in [
        Task::Binary,
        Task::Regression,
        Task::Multiclass,
        Task::Clustering,
    ] {
        let mut m = ProgressiveMetrics::new(task, 7);
        for i in 0..30u32 {
            let p = match task {
                Task::Binary => Prediction::Probability(f64::from(i % 10) / 10.0),
                Task::Regression => Prediction::Value(f64::from(i)),
                Task::Multiclass => class((i % 3) as usize, &[0.2, 0.3, 0.5]),
                Task::Clustering => Prediction::Cluster {
                    id: (i % 2) as usize,
                    distance: f64::from(i),
                },
            };
            let label = (i % 3).to_string();
            let y = match task {
                Task::Regression => Target::Number(f64::from(i) + 0.5),
                Task::Binary => Target::Number(f64::from(i % 2)),
                _ => Target::Label(&label),
            };
            let x = ndarray::array![f64::from(i), 1.0];
            m.update_point(&crate::FeatureVec::dense(x.view()), &y, &p);
        }
        let bytes = postcard::to_stdvec(&m).unwrap();
        let back: ProgressiveMetrics = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(postcard::to_stdvec(&back).unwrap(), bytes);
        let bytes = rmp_serde::to_vec_named(&m).unwrap();
        let back: ProgressiveMetrics = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.values(), m.values());
    }
}

#[test]
fn stream_auc_is_exact_where_the_window_histogram_ties() {
    let mut m = ProgressiveMetrics::new(Task::Binary, 10);
    m.update(1.0, 0.50001);
    m.update(0.0, 0.50002);
    // 1e-4 bins put both scores in one bin (a tie) for the window; the stream ranks them exactly
    assert_eq!(get(&m.window_values(), AUC), 0.5);
    assert_eq!(get(&m.values(), AUC), 0.0);
}
