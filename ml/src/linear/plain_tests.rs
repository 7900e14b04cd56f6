//! Tests of the plain dense SGD path (`LinearCore::plain_dense`): it must give the general path's
//! bits for every input, since it only drops branches and multiplications by 1.

use ndarray::{Array1, Array2};
use proptest::prelude::*;

use super::*;
use crate::testutil::Stream;

/// The same event three ways: contiguous dense (the plain path), as sparse entries and as a
/// strided column (both the general path).
struct Spellings {
    dense: Array1<f64>,
    column: Array2<f64>,
    indices: Vec<u32>,
}

impl Spellings {
    fn new(x: &[f64]) -> Self {
        let mut column = Array2::zeros((x.len(), 2));
        column.column_mut(0).assign(&Array1::from(x.to_vec()));
        Self {
            dense: Array1::from(x.to_vec()),
            column,
            indices: (0..x.len() as u32).collect(),
        }
    }

    fn plain(&self) -> FeatureVec<'_> {
        FeatureVec::dense(self.dense.view())
    }

    fn sparse(&self) -> FeatureVec<'_> {
        FeatureVec::sparse(&self.indices, self.dense.as_slice().expect("contiguous"))
    }

    fn strided(&self) -> FeatureVec<'_> {
        FeatureVec::dense(self.column.column(0))
    }
}

/// Outputs as bits (errors as their message), so NaN and signed zeros compare exactly.
fn bits(r: Result<f64>) -> std::result::Result<u64, String> {
    r.map(f64::to_bits).map_err(|e| e.to_string())
}

fn model_bits(m: &LinearModel) -> (Vec<u64>, u64, u64, u64) {
    let w = m.weights().iter().map(|w| w.to_bits()).collect();
    (
        w,
        m.intercept().to_bits(),
        m.steps(),
        m.coordinate_updates(),
    )
}

/// Outputs of the defaults for the squared loss, recorded before the plain path existed. The
/// squared loss uses no libm call, so these bits hold on every platform; the lengths cover every
/// remainder of the 4-lane dot product.
#[test]
fn plain_dense_path_keeps_the_recorded_outputs() {
    let p = LinearModel::params(Loss::Squared).check().unwrap();
    let recorded: [(usize, u64, u64); 9] = [
        (1, 0xbfda1c515990fb60, 0xbfd3c8890f31ba63),
        (2, 0xbfd2264ec55557fb, 0xbfd04d9b571213cf),
        (3, 0xbfd6fe1a1ec248ce, 0xbfdbb068afeab7fd),
        (4, 0xbfd643ebbf247ebf, 0xbfdbcfe49d5ad7d0),
        (5, 0xbfd0995d32332824, 0xbfdb6068c0861868),
        (6, 0xbfcf45c21123ca71, 0xbfdbbc60a0fadc42),
        (7, 0xbfd060ec4d168303, 0xbfe210b09f1c9a83),
        (9, 0xbfae9760da808ec8, 0xbfe022617a557186),
        (10, 0xbfc419be28c368ce, 0xbfe1deebf12121c8),
    ];
    for (d, last_bits, probe_bits) in recorded {
        let mut m = p.build(d);
        let mut last = 0.0;
        for k in 0..300usize {
            // exactly representable features and targets
            let x: Array1<f64> = (0..d)
                .map(|j| ((k * 31 + j * 17) % 23) as f64 / 8.0 - 1.25)
                .collect();
            let y = ((k * 7) % 11) as f64 - 5.0;
            last = m
                .predict_learn_one(&FeatureVec::dense(x.view()), y, 1.0)
                .unwrap();
        }
        let probe = Array1::from_elem(d, 0.5);
        let got = m.predict_one(&FeatureVec::dense(probe.view()));
        assert_eq!(
            (last.to_bits(), got.to_bits()),
            (last_bits, probe_bits),
            "d = {d}: {last} {got}"
        );
    }
}

#[test]
fn plain_dense_path_matches_the_general_path_bit_for_bit() {
    for loss in [
        Loss::Logistic,
        Loss::Hinge,
        Loss::Squared,
        Loss::Huber { delta: 1.0 },
    ] {
        for d in 1..=13 {
            let p = LinearModel::params(loss).check().unwrap();
            let (mut plain, mut sparse, mut strided) = (p.build(d), p.build(d), p.build(d));
            let mut s = Stream::new(d as u64);
            for i in 0..400 {
                let mut x = s.features(d);
                let mut y = if s.uniform() < 0.5 { 1.0 } else { 0.0 };
                let mut w = if i % 3 == 0 { 1.0 } else { 2.0 * s.uniform() };
                // every check in turn, on the same events for all three
                match i % 50 {
                    7 => y = f64::NAN,
                    17 => w = -1.0,
                    27 => y = 0.5,
                    37 => x[d / 2] = f64::INFINITY,
                    47 => w = f64::INFINITY,
                    _ => {}
                }
                let e = Spellings::new(&x);
                let a = bits(plain.predict_learn_one(&e.plain(), y, w));
                let b = bits(sparse.predict_learn_one(&e.sparse(), y, w));
                let c = bits(strided.predict_learn_one(&e.strided(), y, w));
                assert_eq!(a, b, "{loss:?} d = {d} event {i}");
                assert_eq!(a, c, "{loss:?} d = {d} event {i}");
            }
            assert_eq!(model_bits(&plain), model_bits(&sparse), "{loss:?} d = {d}");
            assert_eq!(model_bits(&plain), model_bits(&strided), "{loss:?} d = {d}");
        }
    }
}

fn extreme() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::MAX),
        Just(-1e300),
        Just(1e150),
        Just(-1e-300),
        Just(0.0),
        Just(-0.0),
        -10.0..10.0f64,
    ]
}

proptest! {
    #[test]
    fn plain_and_general_paths_agree_on_extreme_inputs(
        loss in prop_oneof![Just(Loss::Logistic), Just(Loss::Squared), Just(Loss::Hinge)],
        eta in prop_oneof![Just(1.0), Just(1e-3), Just(1e10)],
        clip in prop_oneof![Just(1e6), Just(0.25), Just(f64::MAX)],
        fit_intercept in any::<bool>(),
        events in prop::collection::vec(
            ([extreme(), extreme(), extreme(), extreme(), extreme()], extreme(),
             prop_oneof![Just(0.0), Just(1.0), Just(1e300), Just(1e-300)]),
            1..40,
        ),
    ) {
        let p = LinearModel::params(loss)
            .schedule(Schedule::Constant)
            .learning_rate(eta)
            .clip_gradient(clip)
            .fit_intercept(fit_intercept)
            .check()
            .unwrap();
        let (mut plain, mut sparse) = (p.build(5), p.build(5));
        for (x, y, w) in events {
            let y = if loss.is_classifier() { f64::from(u8::from(y > 0.0)) } else { y };
            let e = Spellings::new(&x);
            prop_assert_eq!(
                bits(plain.predict_learn_one(&e.plain(), y, w)),
                bits(sparse.predict_learn_one(&e.sparse(), y, w))
            );
            prop_assert_eq!(model_bits(&plain), model_bits(&sparse));
        }
    }
}
