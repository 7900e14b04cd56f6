//! Tests of `ProgressiveMetrics`: stream and window values against recomputation, serde.

use super::*;
use crate::testutil::Stream;

/// Recomputes the metrics of `events` from scratch with textbook formulas (no shared code with the
/// accumulators beyond the metric names), AUC by pairwise comparison of the histogram bins (or of
/// the exact scores).
fn recompute(task: Task, events: &[(f64, f64)]) -> MetricValues {
    recompute_auc(task, events, false)
}

/// [`recompute`], with the AUC over exact scores (`exact`) or over histogram bins.
fn recompute_auc(task: Task, events: &[(f64, f64)], exact: bool) -> MetricValues {
    let n = events.len() as f64;
    match task {
        Task::Binary => {
            let acc = events
                .iter()
                .filter(|(y, p)| (*p >= 0.5) == (*y == 1.0))
                .count() as f64
                / n;
            let ll = events
                .iter()
                .map(|&(y, p)| {
                    let p = p.clamp(1e-15, 1.0 - 1e-15);
                    -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
                })
                .sum::<f64>()
                / n;
            let b = |p: f64| {
                if exact {
                    // the whole-stream AUC ranks scores on a 2^-18 grid
                    (p * (1u64 << 18) as f64).round() as usize
                } else {
                    ((p * 10_000.0) as usize).min(9_999)
                }
            };
            let (mut good, mut pairs) = (0.0, 0.0);
            for &(_, sp) in events.iter().filter(|e| e.0 == 1.0) {
                for &(_, sn) in events.iter().filter(|e| e.0 == 0.0) {
                    pairs += 1.0;
                    good += match b(sp).cmp(&b(sn)) {
                        std::cmp::Ordering::Greater => 1.0,
                        std::cmp::Ordering::Equal => 0.5,
                        std::cmp::Ordering::Less => 0.0,
                    };
                }
            }
            let auc = if pairs > 0.0 { good / pairs } else { 0.5 };
            let count = |f: &dyn Fn(bool, bool) -> bool| {
                events
                    .iter()
                    .filter(|(y, p)| f(*y == 1.0, *p >= 0.5))
                    .count() as f64
            };
            let tp = count(&|y, p| y && p);
            let fp = count(&|y, p| !y && p);
            let fneg = count(&|y, p| y && !p);
            let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
            vec![
                (ACCURACY, acc),
                (LOGLOSS, ll),
                (AUC, auc),
                (PRECISION, ratio(tp, tp + fp)),
                (RECALL, ratio(tp, tp + fneg)),
                (F1, ratio(2.0 * tp, 2.0 * tp + fp + fneg)),
            ]
        }
        Task::Regression => {
            let mae = events.iter().map(|(y, p)| (y - p).abs()).sum::<f64>() / n;
            let sse = events.iter().map(|(y, p)| (y - p) * (y - p)).sum::<f64>();
            let ybar = events.iter().map(|e| e.0).sum::<f64>() / n;
            let sst = events
                .iter()
                .map(|(y, _)| (y - ybar) * (y - ybar))
                .sum::<f64>();
            vec![(MAE, mae), (RMSE, (sse / n).sqrt()), (R2, 1.0 - sse / sst)]
        }
        Task::Multiclass | Task::Clustering => unreachable!("scored by update_prediction"),
    }
}

fn assert_close(got: &MetricValues, want: &MetricValues, tol: f64) {
    assert_eq!(got.len(), want.len());
    for (&(gn, gv), &(wn, wv)) in got.iter().zip(want) {
        assert_eq!(gn, wn);
        assert!(
            (gv - wv).abs() <= tol * wv.abs().max(1.0),
            "{gn}: got {gv}, want {wv}"
        );
    }
}

fn binary_events(n: usize, seed: u64) -> Vec<(f64, f64)> {
    let mut s = Stream::new(seed);
    (0..n)
        .map(|_| {
            let p = s.uniform();
            // labels correlated with p, so AUC is well away from 0.5
            let y = if s.uniform() < 0.2 + 0.6 * p {
                1.0
            } else {
                0.0
            };
            (y, p)
        })
        .collect()
}

fn regression_events(n: usize, seed: u64) -> Vec<(f64, f64)> {
    let mut s = Stream::new(seed);
    (0..n)
        .map(|_| {
            let y = 100.0 + 5.0 * s.normal();
            (y, y + s.normal())
        })
        .collect()
}

#[test]
fn stream_values_equal_recomputation() {
    for (task, events) in [
        (Task::Binary, binary_events(2_000, 1)),
        (Task::Regression, regression_events(2_000, 2)),
    ] {
        let mut m = ProgressiveMetrics::new(task, 50);
        for &(y, p) in &events {
            m.update(y, p);
        }
        assert_eq!(m.count(), 2_000);
        assert_eq!(m.task(), task);
        assert_close(&m.values(), &recompute_auc(task, &events, true), 1e-12);
    }
}

#[test]
fn window_values_equal_recomputation_over_the_last_n_events() {
    for (task, events) in [
        (Task::Binary, binary_events(3_000, 3)),
        (Task::Regression, regression_events(3_000, 4)),
    ] {
        for window in [1, 7, 100, 5_000] {
            let mut m = ProgressiveMetrics::new(task, window);
            for (i, &(y, p)) in events.iter().enumerate() {
                m.update(y, p);
                if i % 97 == 0 || i + 1 == events.len() {
                    let last = &events[(i + 1).saturating_sub(window)..=i];
                    let want = recompute(task, last);
                    let got = m.window_values();
                    if task == Task::Regression && last.len() == 1 {
                        // a single target has zero variance: r2 is defined as 0.0 here
                        assert_eq!(got[2], (R2, 0.0));
                        assert_close(&got[..2].to_vec(), &want[..2].to_vec(), 1e-9);
                    } else {
                        assert_close(&got, &want, 1e-9);
                    }
                }
            }
        }
    }
}

#[test]
fn window_auc_is_exact_after_evictions() {
    // a window of 4 over a fixed sequence; the final window is the last 4 events
    let events = [
        (1.0, 0.1),
        (0.0, 0.9),
        (1.0, 0.8),
        (0.0, 0.3),
        (1.0, 0.6),
        (0.0, 0.7),
    ];
    let mut m = ProgressiveMetrics::new(Task::Binary, 4);
    for &(y, p) in &events {
        m.update(y, p);
    }
    // last 4: (1, .8), (0, .3), (1, .6), (0, .7): positives .8 beats both, .6 beats .3 -> 3/4
    assert_eq!(m.window_values()[2], (AUC, 0.75));
    // whole stream: positives .1 .8 .6 vs negatives .9 .3 .7 -> 0 + 2 + 1 of 9
    assert_eq!(m.values()[2], (AUC, 3.0 / 9.0));
    assert_eq!(m.window_values()[0], (ACCURACY, 0.75));
}

#[test]
fn primary_metric_per_task() {
    let mut b = ProgressiveMetrics::new(Task::Binary, 10);
    b.update(1.0, 0.5);
    assert_eq!(b.primary().0, LOGLOSS);
    assert!((b.primary().1 - 2f64.ln()).abs() < 1e-15);
    let mut r = ProgressiveMetrics::new(Task::Regression, 10);
    r.update(1.0, 4.0);
    r.update(1.0, -2.0);
    assert_eq!(r.primary(), (RMSE, 3.0));
}

#[test]
fn empty_and_non_finite_inputs_are_nan_free() {
    for task in [Task::Binary, Task::Regression] {
        let mut m = ProgressiveMetrics::new(task, 5);
        m.update(f64::NAN, 0.5);
        m.update(1.0, f64::INFINITY);
        assert_eq!(m.count(), 0);
        for (name, v) in m.values().into_iter().chain(m.window_values()) {
            assert!(!v.is_nan(), "{task:?} {name}");
        }
        m.update(1.0, 1.0);
        m.update(f64::MAX, -f64::MAX);
        for (name, v) in m.values().into_iter().chain(m.window_values()) {
            assert!(v.is_finite(), "{task:?} {name} = {v}");
        }
        assert_eq!(m.count(), 2);
    }
}

#[test]
fn postcard_round_trip_is_bit_identical() {
    for (task, events) in [
        (Task::Binary, binary_events(500, 5)),
        (Task::Regression, regression_events(500, 6)),
    ] {
        let mut m = ProgressiveMetrics::new(task, 64);
        for &(y, p) in &events[..300] {
            m.update(y, p);
        }
        let bytes = postcard::to_stdvec(&m).unwrap();
        let mut back: ProgressiveMetrics = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(postcard::to_stdvec(&back).unwrap(), bytes);
        // and the restored copy keeps producing the same bits
        for &(y, p) in &events[300..] {
            m.update(y, p);
            back.update(y, p);
        }
        let bits = |v: MetricValues| v.iter().map(|(_, x)| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(back.values()), bits(m.values()));
        assert_eq!(bits(back.window_values()), bits(m.window_values()));
        assert_eq!(back.window(), 64);
    }
}

/// State saved before the stream's AUC histogram was dropped (the stream's `BinaryAcc` then
/// counted every event into one) loads into exactly the state of today's metrics over the same
/// events, and goes on the same.
#[test]
fn a_stream_auc_histogram_saved_by_an_earlier_version_is_dropped_on_load() {
    let events: Vec<(f64, f64)> = (0..300)
        .map(|i| (f64::from(i % 3 == 0), (f64::from(i) * 0.61).sin().abs()))
        .collect();
    let mut today = ProgressiveMetrics::new(Task::Binary, 50);
    let mut earlier_total = BinaryAcc::default();
    for &(y, p) in &events {
        today.update(y, p);
        earlier_total.add(&BinaryAcc::term(y, p));
    }
    let mut earlier = today.clone();
    if let Tracker::Binary(t, _) = &mut earlier.tracker {
        t.total = earlier_total;
    }
    assert_ne!(earlier, today, "the earlier state holds the histogram");
    let bytes = postcard::to_stdvec(&earlier).expect("serialises");
    let mut loaded: ProgressiveMetrics = postcard::from_bytes(&bytes).expect("loads");
    assert_eq!(loaded, today);
    loaded.update(1.0, 0.3);
    today.update(1.0, 0.3);
    assert_eq!(loaded, today);
    assert_eq!(loaded.values(), today.values());
}
