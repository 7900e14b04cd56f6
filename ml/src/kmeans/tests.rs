//! Tests of `StreamingKMeans`: Spark's forgetting rule by hand, the linfa oracle on blobs,
//! re-seeding, batch forms, extremes and checkpoints.

use linfa::traits::Fit;
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use ndarray::{array, Array1, Array2};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;

use super::*;
use crate::linear::optimizer_tests::extreme;
use crate::metrics::{ProgressiveMetrics, Task, ARI};
use crate::testutil::Stream;
use crate::{Prediction, Target};

fn learn(m: &mut StreamingKMeans, x: &[f64]) -> (usize, f64) {
    m.learn_one(&FeatureVec::dense(ArrayView1::from(x)))
        .unwrap()
}

/// Spark's `StreamingKMeansModel.update` for one batch: assign against the old centres, discount
/// old weights by `discount`, then `c' = (c w discount + sum x) / (w discount + m)`.
fn spark_update(centres: &mut [Vec<f64>], weights: &mut [f64], batch: &[Vec<f64>], discount: f64) {
    let nearest = |x: &[f64], cs: &[Vec<f64>]| {
        (0..cs.len())
            .min_by(|&a, &b| {
                let d = |c: &[f64]| c.iter().zip(x).map(|(c, x)| (c - x) * (c - x)).sum::<f64>();
                d(&cs[a]).total_cmp(&d(&cs[b]))
            })
            .unwrap()
    };
    let old = centres.to_vec();
    let mut sums = vec![vec![0.0; centres[0].len()]; centres.len()];
    let mut counts = vec![0.0; centres.len()];
    for x in batch {
        let i = nearest(x, &old);
        counts[i] += 1.0;
        sums[i].iter_mut().zip(x).for_each(|(s, x)| *s += x);
    }
    for i in 0..centres.len() {
        let w_old = weights[i] * discount;
        let w_new = w_old + counts[i];
        if counts[i] > 0.0 {
            for (j, c) in centres[i].iter_mut().enumerate() {
                *c = (*c * w_old + sums[i][j]) / w_new;
            }
        }
        weights[i] = w_new;
    }
}

fn state(m: &StreamingKMeans) -> (Vec<Vec<f64>>, Vec<f64>) {
    let c = m.centres();
    (
        c.rows().into_iter().map(|r| r.to_vec()).collect(),
        m.cluster_weights().to_vec(),
    )
}

fn assert_state_close(m: &StreamingKMeans, centres: &[Vec<f64>], weights: &[f64]) {
    let (c, w) = state(m);
    for (a, b) in c.iter().flatten().zip(centres.iter().flatten()) {
        assert!((a - b).abs() < 1e-12, "{c:?} vs {centres:?}");
    }
    for (a, b) in w.iter().zip(weights) {
        assert!((a - b).abs() < 1e-12, "{w:?} vs {weights:?}");
    }
}

#[test]
fn half_life_in_events_follows_sparks_formula() {
    let h = 2.0;
    let mut m = StreamingKMeans::params(2)
        .half_life(h, HalfLifeUnit::Events)
        .check()
        .unwrap()
        .build(2);
    // Spark: decayFactor = exp(ln(0.5) / halfLife)
    let a = (0.5f64.ln() / h).exp();
    assert!((m.hyperparams().decay_factor() - 0.5f64.sqrt()).abs() < 1e-15);
    assert_eq!(learn(&mut m, &[0.0, 0.0]), (0, 0.0));
    assert_eq!(learn(&mut m, &[10.0, 0.0]), (1, 0.0));
    let (mut centres, mut weights) = state(&m);
    assert_eq!(
        weights,
        vec![a, 1.0],
        "seeding the second centre discounted the first"
    );
    for x in [[1.0, 0.0], [2.0, 1.0], [9.0, -1.0], [0.5, 0.5]] {
        // unit "points": a batch of one point is discounted by a^1
        spark_update(&mut centres, &mut weights, &[x.to_vec()], a);
        learn(&mut m, &x);
        assert_state_close(&m, &centres, &weights);
    }
}

#[test]
fn half_life_in_batches_follows_sparks_formula() {
    let h = 3.0;
    let mut m = StreamingKMeans::params(2)
        .half_life(h, HalfLifeUnit::Batches)
        .check()
        .unwrap()
        .build(1);
    let a = (0.5f64.ln() / h).exp();
    learn(&mut m, &[0.0]);
    learn(&mut m, &[10.0]);
    m.end_batch();
    let (mut centres, mut weights) = state(&m);
    // each batch's points all go to one cluster, so sequential and batch assignment agree
    let batches = [
        vec![vec![1.0], vec![2.0], vec![11.0]],
        vec![vec![0.5]],
        vec![vec![9.0], vec![8.0]],
    ];
    for b in &batches {
        spark_update(&mut centres, &mut weights, b, a);
        for x in b {
            learn(&mut m, x);
        }
        m.end_batch();
        assert_state_close(&m, &centres, &weights);
    }
}

/// Four well-separated Gaussian blobs (sd 0.5, centres 10 apart) in 3-D, shuffled.
fn blobs(n: usize) -> (Vec<f64>, Vec<usize>) {
    let mut s = Stream::new(99);
    let means = [
        [0.0, 0.0, 0.0],
        [10.0, 0.0, 0.0],
        [0.0, 10.0, 5.0],
        [10.0, 10.0, -5.0],
    ];
    let (mut xs, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let k = ((s.uniform() * 4.0) as usize).min(3);
        xs.extend(means[k].iter().map(|m| m + 0.5 * s.normal()));
        labels.push(k);
    }
    (xs, labels)
}

#[test]
fn streaming_centres_match_linfa_on_blobs_with_ari_above_0_99() {
    let (xs, labels) = blobs(4_000);
    let mut m = StreamingKMeans::params(4)
        .warm_start(200)
        .seed(3)
        .check()
        .unwrap()
        .build(3);
    for x in xs.chunks_exact(3) {
        learn(&mut m, x);
    }
    let records = Array2::from_shape_vec((labels.len(), 3), xs.clone()).unwrap();
    let oracle = KMeans::params_with_rng(4, Xoshiro256Plus::seed_from_u64(1))
        .fit(&DatasetBase::from(records))
        .unwrap();
    let ours = m.centres();
    // match by nearest pairs; tolerance 0.05 per coordinate (the blob means are estimated from
    // ~1000 points of sd 0.5, and both estimates average the same points)
    for c in oracle.centroids().rows() {
        let best = ours
            .rows()
            .into_iter()
            .map(|o| {
                o.iter()
                    .zip(c.iter())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max)
            })
            .fold(f64::INFINITY, f64::min);
        assert!(best < 0.05, "oracle centre {c} is {best} from ours: {ours}");
    }
    let mut metrics = ProgressiveMetrics::new(Task::Clustering, 100);
    for (x, l) in xs.chunks_exact(3).zip(&labels) {
        let (id, distance) = m.predict_one(&FeatureVec::dense(ArrayView1::from(x)));
        let label = l.to_string();
        metrics.update_prediction(
            &Target::Label(&label),
            &Prediction::Cluster { id, distance },
        );
    }
    let ari = metrics.values().iter().find(|v| v.0 == ARI).unwrap().1;
    assert!(ari >= 0.99, "ari {ari}");
}

#[test]
fn warm_start_is_seeded_and_deterministic() {
    let (xs, _) = blobs(500);
    let run = |seed| {
        let mut m = StreamingKMeans::params(4)
            .warm_start(100)
            .seed(seed)
            .check()
            .unwrap()
            .build(3);
        for x in xs.chunks_exact(3) {
            learn(&mut m, x);
        }
        m
    };
    assert_eq!(run(5), run(5));
    let m = run(5);
    assert_eq!(m.centres().nrows(), 4);
    assert!((m.cluster_weights().iter().sum::<f64>() - 500.0).abs() < 1e-9);
}

#[test]
fn an_idle_cluster_is_reseeded_by_splitting_the_largest() {
    let mut m = StreamingKMeans::params(2)
        .reseed_after(50)
        .check()
        .unwrap()
        .build(1);
    learn(&mut m, &[0.0]);
    learn(&mut m, &[100.0]);
    for i in 0..60 {
        learn(&mut m, &[f64::from(i % 3)]);
    }
    assert_eq!(m.reseeds(), 1);
    let c = m.centres();
    // both centres now sit in the live region around 1, and share its weight
    assert!(c.iter().all(|v| (v - 1.0).abs() < 1.0), "{c}");
    let w = m.cluster_weights();
    assert!(w[0] > 1.0 && w[1] > 1.0, "{w:?}");
}

#[test]
fn learn_many_equals_the_learn_one_loop() {
    let (xs, labels) = blobs(300);
    let x = Array2::from_shape_vec((labels.len(), 3), xs.clone()).unwrap();
    let mut a = StreamingKMeans::params(4)
        .half_life(50.0, HalfLifeUnit::Events)
        .check()
        .unwrap()
        .build(3);
    let mut b = a.clone();
    let got = a.learn_many(x.view()).unwrap();
    let want: Vec<(usize, f64)> = xs.chunks_exact(3).map(|r| learn(&mut b, r)).collect();
    assert_eq!(got, want);
    assert_eq!(a, b);
    let (ids, ds) = a.predict_many(x.view());
    for (i, r) in xs.chunks_exact(3).enumerate() {
        assert_eq!(
            (ids[i], ds[i]),
            a.predict_one(&FeatureVec::dense(ArrayView1::from(r)))
        );
    }
}

#[test]
fn learn_returns_the_assignment_before_moving_and_rejects_bad_input() {
    let mut m = StreamingKMeans::params(1).check().unwrap().build(2);
    learn(&mut m, &[0.0, 0.0]);
    assert_eq!(learn(&mut m, &[3.0, 4.0]), (0, 5.0));
    assert_eq!(m.centres(), array![[1.5, 2.0]]);
    let before = m.clone();
    assert!(m.learn_one(&FeatureVec::dense(array![1.0].view())).is_err());
    assert!(m
        .learn_one(&FeatureVec::dense(array![f64::NAN, 0.0].view()))
        .is_err());
    assert!(m
        .learn_one(&FeatureVec::dense(array![1e101, 0.0].view()))
        .is_err());
    assert!(m
        .learn_one(&FeatureVec::new(array![1.0, 0.0].view(), &[5], &[1.0]))
        .is_err());
    assert_eq!(m, before);
    assert!(StreamingKMeans::params(0).check().is_err());
    assert!(StreamingKMeans::params(4).warm_start(2).check().is_err());
    assert!(StreamingKMeans::params(2)
        .decay_factor(1.5)
        .check()
        .is_err());
}

#[test]
fn config_form_and_checkpoints() {
    let p: KMeansValidParams =
        serde_json::from_str(r#"{"k":3,"half_life":10,"time_unit":"batches","warm_start":50}"#)
            .unwrap();
    assert_eq!(p.k(), 3);
    assert_eq!(p.time_unit(), HalfLifeUnit::Batches);
    assert!((p.decay_factor() - 0.5f64.powf(0.1)).abs() < 1e-15);
    assert_eq!(p.seed(), 42);
    assert!(serde_json::from_str::<KMeansValidParams>(
        r#"{"k":3,"half_life":1,"decay_factor":0.5}"#
    )
    .is_err());
    let (xs, _) = blobs(300);
    let mut m = StreamingKMeans::params(4)
        .warm_start(100)
        .half_life(20.0, HalfLifeUnit::Events)
        .check()
        .unwrap()
        .build(3);
    for (i, x) in xs.chunks_exact(3).enumerate() {
        learn(&mut m, x);
        if i == 50 || i == 299 {
            let bytes = postcard::to_stdvec(&m).unwrap();
            let back: StreamingKMeans = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(back, m);
            assert_eq!(postcard::to_stdvec(&back).unwrap(), bytes);
            let bytes = rmp_serde::to_vec_named(&m).unwrap();
            let back: StreamingKMeans = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(back, m);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn extreme_finite_inputs_never_poison_kmeans(
        events in prop::collection::vec(prop::collection::vec(extreme(), 2), 1..60),
        warm in prop_oneof![Just(0usize), Just(3usize)],
    ) {
        let mut m = StreamingKMeans::params(3).warm_start(warm).reseed_after(5)
            .half_life(3.0, HalfLifeUnit::Events).check().unwrap().build(2);
        for x in &events {
            let x = Array1::from(x.clone());
            let _ = m.learn_one(&FeatureVec::dense(x.view()));
            let (_, d) = m.predict_one(&FeatureVec::dense(x.view()));
            prop_assert!(!d.is_nan());
            prop_assert!(m.centres().iter().all(|v| v.is_finite()));
        }
        let bytes = postcard::to_stdvec(&m).unwrap();
        prop_assert!(postcard::from_bytes::<StreamingKMeans>(&bytes).is_ok());
    }
}
