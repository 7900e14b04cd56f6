//! Oracle tests: many epochs of SGD (and the adaptive optimizers) over a small fixed data set
//! converge to smartcore's batch solutions.

use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::linear_regression::{LinearRegression, LinearRegressionParameters};
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};

use super::*;
use crate::testutil::Stream;

const N: usize = 200;
const D: usize = 3;
const W: [f64; D] = [1.5, -2.0, 0.5];
const B: f64 = 0.7;

fn data(logistic: bool) -> (Vec<f64>, Vec<f64>) {
    let mut s = Stream::new(7);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..N {
        if logistic {
            let (x, y, _) = s.logistic(&W, B);
            xs.extend(x);
            ys.push(y);
        } else {
            let (x, y) = s.linear(&W, B, 0.3);
            xs.extend(x);
            ys.push(y);
        }
    }
    (xs, ys)
}

fn epochs(params: SgdValidParams, xs: &[f64], ys: &[f64], n_epochs: usize) -> LinearModel {
    let mut m = params.build(D);
    for _ in 0..n_epochs {
        for (x, &y) in xs.chunks_exact(D).zip(ys) {
            m.learn_one(&FeatureVec::dense(ndarray::ArrayView1::from(x)), y, 1.0)
                .unwrap();
        }
    }
    m
}

fn assert_close(m: &LinearModel, w: &[f64], b: f64, tol: f64, what: &str) {
    for (j, &wj) in w.iter().enumerate() {
        let got = m.weight(j).unwrap();
        assert!(
            (got - wj).abs() < tol,
            "{what}: w[{j}] = {got}, oracle {wj}"
        );
    }
    assert!(
        (m.intercept() - b).abs() < tol,
        "{what}: b = {}, oracle {b}",
        m.intercept()
    );
}

/// Tolerance: 0.01 absolute on every coefficient and the intercept (the coefficients are O(1)).
const TOL: f64 = 1e-2;

#[test]
fn linear_regression_converges_to_smartcore_least_squares() {
    let (xs, ys) = data(false);
    let x = DenseMatrix::new(N, D, xs.clone(), false).unwrap();
    let ols = LinearRegression::fit(&x, &ys, LinearRegressionParameters::default()).unwrap();
    let w: Vec<f64> = (0..D).map(|j| *ols.coefficients().get((j, 0))).collect();
    let b = *ols.intercept();
    let sgd = LinearModel::params(Loss::Squared)
        .learning_rate(0.05)
        .schedule(Schedule::InverseScaling { power_t: 0.5 })
        .check()
        .unwrap();
    assert_close(&epochs(sgd, &xs, &ys, 300), &w, b, TOL, "sgd");
    let ada = LinearModel::params(Loss::Squared)
        .optimizer(Optimizer::adagrad())
        .learning_rate(0.2)
        .schedule(Schedule::Constant)
        .check()
        .unwrap();
    assert_close(&epochs(ada, &xs, &ys, 1000), &w, b, TOL, "adagrad");
}

#[test]
fn logistic_regression_converges_to_smartcore_with_matching_l2() {
    let (xs, ys) = data(true);
    let x = DenseMatrix::new(N, D, xs.clone(), false).unwrap();
    let labels: Vec<i32> = ys.iter().map(|&y| y as i32).collect();
    // smartcore minimises sum(logloss) + alpha / 2 |w|^2; we minimise the mean, so l2 = alpha / n
    let alpha = 2.0;
    let lr = LogisticRegression::fit(
        &x,
        &labels,
        LogisticRegressionParameters::default().with_alpha(alpha),
    )
    .unwrap();
    let w: Vec<f64> = (0..D).map(|j| *lr.coefficients().get((0, j))).collect();
    let b = *lr.intercept().get((0, 0));
    let l2 = alpha / N as f64;
    let sgd = LinearModel::params(Loss::Logistic).l2(l2).check().unwrap();
    assert_close(&epochs(sgd, &xs, &ys, 400), &w, b, TOL, "sgd");
    let adam = LinearModel::params(Loss::Logistic)
        .optimizer(Optimizer::adam())
        .learning_rate(0.05)
        .schedule(Schedule::InverseScaling { power_t: 0.5 })
        .l2(l2)
        .check()
        .unwrap();
    assert_close(&epochs(adam, &xs, &ys, 400), &w, b, TOL, "adam");
}
