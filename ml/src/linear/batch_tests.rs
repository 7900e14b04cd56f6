//! Tests of the batch form `predict_learn_each`: the same bits as the `predict_learn_one` loop.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::*;

/// Every optimizer, each with the penalties that take its extra branches.
fn all_params() -> Vec<SgdValidParams> {
    let base = || LinearModel::params(Loss::Logistic);
    vec![
        base().l2(1e-3).check().unwrap(),
        base().l1(1e-4).l2(1e-4).check().unwrap(),
        base()
            .optimizer(Optimizer::adagrad())
            .l1(1e-4)
            .check()
            .unwrap(),
        base()
            .optimizer(Optimizer::adam())
            .l2(1e-4)
            .check()
            .unwrap(),
        base()
            .optimizer(Optimizer::ftrl())
            .l1(1e-4)
            .l2(1e-4)
            .check()
            .unwrap(),
    ]
}

/// One event: a dense prefix, sparse entries and a target.
type Event = (Vec<f64>, Vec<u32>, Vec<f64>, f64);

/// Hashed events over a few hundred coordinates spread across a `dim`-wide model, so coordinates
/// recur within the prefetch distance, plus events the model must reject (an index out of range,
/// a non-finite value, a label outside the loss's domain) at seeded places.
fn hashed_events(dim: usize, n: usize, seed: u64) -> Vec<Event> {
    let mut r = Xoshiro256PlusPlus::seed_from_u64(seed);
    let spread = (dim / 512).max(1) as u32;
    (0..n)
        .map(|_| {
            let k = r.gen_range(1..12);
            let mut idx: Vec<u32> = (0..k)
                .map(|_| 2 + r.gen_range(0..512u32.min(dim as u32 - 2)) * spread)
                .map(|i| i.min(dim as u32 - 1))
                .collect();
            let mut val: Vec<f64> = (0..k).map(|_| r.gen_range(-2.0..2.0)).collect();
            let mut y = f64::from(u8::from(r.gen::<bool>()));
            match r.gen_range(0..100) {
                0 => idx[0] = dim as u32,
                1 => val[0] = f64::NAN,
                2 => y = 2.0,
                _ => {}
            }
            let dense = vec![r.gen_range(-1.0..1.0), r.gen_range(-1.0..1.0)];
            (dense, idx, val, y)
        })
        .collect()
}

fn views(events: &[Event]) -> Vec<FeatureVec<'_>> {
    events
        .iter()
        .map(|(d, i, v, _)| FeatureVec::new(ndarray::ArrayView1::from(d), i, v))
        .collect()
}

/// A prediction's bits, or the message of a rejected event (a NaN inside an error would make
/// the errors themselves unequal).
fn outcome(r: Result<f64>) -> std::result::Result<u64, String> {
    r.map(f64::to_bits).map_err(|e| e.to_string())
}

/// Runs `events` through the `predict_learn_one` loop and through `predict_learn_each` in
/// batches of `batch`, and asserts both give the same outcomes and the same model, bit for bit
/// (compared through the serialised bytes as well).
fn assert_batches_match_the_loop(
    params: &SgdValidParams,
    dim: usize,
    events: &[Event],
    batch: usize,
) {
    let xs = views(events);
    let ys: Vec<f64> = events.iter().map(|e| e.3).collect();
    let mut one = params.build(dim);
    let expected: Vec<_> = xs
        .iter()
        .zip(&ys)
        .map(|(x, &y)| outcome(one.predict_learn_one(x, y, 0.75)))
        .collect();
    let mut many = params.build(dim);
    let mut got = Vec::with_capacity(xs.len());
    for (xb, yb) in xs.chunks(batch).zip(ys.chunks(batch)) {
        many.predict_learn_each(xb, yb, 0.75, |i, r| got.push((i, outcome(r))))
            .unwrap();
    }
    let positions: Vec<usize> = (0..xs.len()).map(|i| i % batch).collect();
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), positions);
    assert_eq!(got.into_iter().map(|g| g.1).collect::<Vec<_>>(), expected);
    assert!(many == one, "the models differ");
    assert_eq!(digest(&many), digest(&one), "the models differ in some bit");
}

/// A hash of the model's serialised bytes, which tells apart what `==` on floats does not (0.0
/// and -0.0) without holding a 2^22-wide model's bytes in memory.
fn digest(model: &LinearModel) -> u64 {
    struct Hashing(std::collections::hash_map::DefaultHasher);
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            std::hash::Hasher::write(&mut self.0, buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let h = postcard::to_io(model, Hashing(Default::default())).unwrap();
    std::hash::Hasher::finish(&h.0)
}

#[test]
fn batches_on_a_hashed_model_match_the_loop_bit_for_bit() {
    let dim = 1 << 22;
    let events = hashed_events(dim, 3000, 7);
    let rejected = events
        .iter()
        .filter(|(_, i, v, y)| i[0] as usize >= dim || v[0].is_nan() || *y > 1.0)
        .count();
    assert!(rejected > 30, "the stream must exercise rejections");
    for params in all_params() {
        assert_batches_match_the_loop(&params, dim, &events, 1024);
    }
}

#[test]
fn a_batch_with_fewer_targets_than_rows_learns_nothing() {
    let events = hashed_events(64, 3, 1);
    let xs = views(&events);
    let mut m = all_params()[0].build(64);
    let before = m.clone();
    let e = m
        .predict_learn_each(&xs, &[1.0, 0.0], 1.0, |_, _| panic!("no event may run"))
        .unwrap_err();
    assert_eq!(e, MlError::ShapeMismatch { rows: 3, len: 2 });
    assert_eq!(m, before);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Any batch size gives the loop's predictions and model, for every optimizer.
    #[test]
    fn any_batch_size_matches_the_loop(
        seed in any::<u64>(),
        n in 0usize..300,
        batch in 1usize..40,
        wide in any::<bool>(),
    ) {
        let dim = if wide { 1 << 16 } else { 40 };
        let events = hashed_events(dim, n, seed);
        for params in all_params() {
            assert_batches_match_the_loop(&params, dim, &events, batch);
        }
    }
}
