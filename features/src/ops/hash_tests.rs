//! Tests of the feature hasher: coordinates, signs, collisions, dictionary columns and memos, the
//! row sort, and re-binding.

use std::sync::Arc;

use arrow_array::DictionaryArray;

use super::*;
use crate::schema::Field;

fn schema() -> Schema {
    Schema::new(vec![
        Field::string("site"),
        Field::string("app"),
        Field::string("os"),
    ])
    .unwrap()
}

fn hasher(bits: u8, seed: u64, offset: u32) -> FeatureHasher {
    let mut h = FeatureHasher::new(vec!["site".into(), "app".into(), "os".into()], bits, seed);
    h.bind(&schema(), offset).unwrap();
    h
}

fn batch(rows: &[[Option<&str>; 3]]) -> RecordBatch {
    let columns = (0..3)
        .map(|j| {
            let array: StringArray = rows.iter().map(|r| r[j]).collect();
            Arc::new(array) as arrow_array::ArrayRef
        })
        .collect();
    RecordBatch::try_new(schema().arrow_schema(), columns).unwrap()
}

fn run(h: &FeatureHasher, rows: &[[Option<&str>; 3]]) -> Vec<(Vec<u32>, Vec<f64>)> {
    split(h, &batch(rows), None)
}

/// Each row's entries of `batch` through `transform_with` and `memo`.
fn split(
    h: &FeatureHasher,
    batch: &RecordBatch,
    memo: Option<&mut HashMemo>,
) -> Vec<(Vec<u32>, Vec<f64>)> {
    let (mut indptr, mut indices, mut values) = (vec![0], Vec::new(), Vec::new());
    let mut out = SparseOut {
        indptr: &mut indptr,
        indices: &mut indices,
        values: &mut values,
    };
    h.transform_with(batch, &[], &mut out, memo).unwrap();
    indptr
        .windows(2)
        .map(|w| (indices[w[0]..w[1]].to_vec(), values[w[0]..w[1]].to_vec()))
        .collect()
}

/// `rows` with every column dictionary-encoded over `dictionary` (a value not in it is null).
fn dictionary_batch(rows: &[[Option<&str>; 3]], dictionary: &ArrayRef) -> RecordBatch {
    let values = dictionary.as_any().downcast_ref::<StringArray>().unwrap();
    let columns: Vec<ArrayRef> = (0..3)
        .map(|j| {
            let keys: Int32Array = rows
                .iter()
                .map(|r| {
                    let k = (0..values.len()).find(|&k| Some(values.value(k)) == r[j])?;
                    Some(k as i32)
                })
                .collect();
            Arc::new(DictionaryArray::try_new(keys, Arc::clone(dictionary)).unwrap()) as _
        })
        .collect();
    site_app_os(columns)
}

/// A batch of three columns named `site`, `app` and `os`, of whatever types they have.
fn site_app_os(columns: Vec<ArrayRef>) -> RecordBatch {
    let fields: Vec<arrow_schema::Field> = ["site", "app", "os"]
        .iter()
        .zip(&columns)
        .map(|(n, c)| arrow_schema::Field::new(*n, c.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns).unwrap()
}

#[test]
fn dictionary_columns_hash_like_plain_ones_with_or_without_a_memo() {
    let words = ["a.com", "b.org", "c.net", "ios", "android", "x", "y"];
    let rows: Vec<[Option<&str>; 3]> = (0..40)
        .map(|i| {
            let pick = |k: usize| (i % (k + 3) != 0).then(|| words[(i * k + 1) % words.len()]);
            [pick(1), pick(2), pick(4)]
        })
        .collect();
    let first: ArrayRef = Arc::new(StringArray::from_iter_values(words));
    let mut reversed = words;
    reversed.reverse();
    let second: ArrayRef = Arc::new(StringArray::from_iter_values(reversed));
    for signed in [false, true] {
        let mut h = hasher(3, 7, 100);
        h.set_signed(signed);
        let expected = run(&h, &rows);
        let mut memo = HashMemo::default();
        // batches sharing a dictionary (the memo's entries reused), then another dictionary
        // (recomputed), then the first again
        for (dictionary, part) in [
            (&first, 0..13),
            (&first, 13..25),
            (&second, 25..33),
            (&first, 33..40),
        ] {
            let batch = dictionary_batch(&rows[part.clone()], dictionary);
            assert_eq!(
                split(&h, &batch, None),
                expected[part.clone()],
                "signed {signed}, no memo"
            );
            assert_eq!(
                split(&h, &batch, Some(&mut memo)),
                expected[part],
                "signed {signed}, memo"
            );
        }
    }
}

#[test]
fn remembered_dictionaries_without_null_keys_hash_in_blocks_like_plain_columns() {
    // keys never null (the block path), a null inside the dictionary standing for missing
    // values, 600 rows over three blocks, and 8 buckets so that rows collide
    let dictionary: ArrayRef = Arc::new(StringArray::from(vec![
        Some("a.com"),
        None,
        Some("ios"),
        Some("b.org"),
        Some("android"),
    ]));
    let values = dictionary.as_any().downcast_ref::<StringArray>().unwrap();
    let keys: Vec<[i32; 3]> = (0..600)
        .map(|i: i32| [i % 5, (i * 7 + 1) % 5, (i * 3 + 2) % 4])
        .collect();
    let rows: Vec<[Option<&str>; 3]> = keys
        .iter()
        .map(|k| {
            k.map(|k| {
                values
                    .is_valid(k as usize)
                    .then(|| values.value(k as usize))
            })
        })
        .collect();
    let columns: Vec<ArrayRef> = (0..3)
        .map(|j| {
            let keys = Int32Array::from_iter_values(keys.iter().map(|k| k[j]));
            Arc::new(DictionaryArray::try_new(keys, Arc::clone(&dictionary)).unwrap()) as _
        })
        .collect();
    let batch = site_app_os(columns);
    for signed in [false, true] {
        let mut h = hasher(3, 11, 40);
        h.set_signed(signed);
        let expected = run(&h, &rows);
        assert!(
            expected.iter().any(|(i, _)| i.len() < 3),
            "some collide or miss"
        );
        let mut memo = HashMemo::default();
        for pass in 0..2 {
            let got = split(&h, &batch, Some(&mut memo));
            assert_eq!(got, expected, "signed {signed}, pass {pass}");
        }
    }
}

#[test]
fn binding_again_forgets_the_remembered_dictionary() {
    let words = ["a.com", "b.org", "ios"];
    let rows: Vec<[Option<&str>; 3]> = (0..9)
        .map(|i| [Some(words[i % 3]), Some(words[(i + 1) % 3]), None])
        .collect();
    let dictionary: ArrayRef = Arc::new(StringArray::from_iter_values(words));
    let batch = dictionary_batch(&rows, &dictionary);
    let through_cell = |h: &FeatureHasher| {
        let (mut indptr, mut indices, mut values) = (vec![0], Vec::new(), Vec::new());
        let mut out = SparseOut {
            indptr: &mut indptr,
            indices: &mut indices,
            values: &mut values,
        };
        h.transform(&batch, &[], &mut out).unwrap();
        indices
    };
    let mut h = hasher(6, 1, 0);
    let first = through_cell(&h);
    h.bind(&schema(), 1000).unwrap();
    let again = through_cell(&h);
    assert_eq!(again, first.iter().map(|i| i + 1000).collect::<Vec<_>>());
}

#[test]
fn a_null_dictionary_value_is_a_missing_value() {
    let values: ArrayRef = Arc::new(StringArray::from(vec![Some("a.com"), None]));
    let keys = Int32Array::from(vec![Some(0), Some(1), None]);
    let column: ArrayRef = Arc::new(DictionaryArray::try_new(keys, values).unwrap());
    let plain: ArrayRef = Arc::new(StringArray::from(vec![Some("ios"); 3]));
    let fields: Vec<arrow_schema::Field> = [("site", &column), ("app", &plain), ("os", &plain)]
        .iter()
        .map(|(n, c)| arrow_schema::Field::new(*n, c.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new(
        Arc::new(arrow_schema::Schema::new(fields)),
        vec![column, Arc::clone(&plain), plain],
    )
    .unwrap();
    let h = hasher(18, 0, 0);
    let rows = split(&h, &batch, Some(&mut HashMemo::default()));
    let expected = run(
        &h,
        &[
            [Some("a.com"), Some("ios"), Some("ios")],
            [None, Some("ios"), Some("ios")],
            [None, Some("ios"), Some("ios")],
        ],
    );
    assert_eq!(rows, expected);
    assert_eq!(split(&h, &batch, None), expected);
}

#[test]
fn small_sort_sorts_like_the_library() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for len in 0..24 {
        for _ in 0..200 {
            let mut v: Vec<u64> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state % 16
                })
                .collect();
            let mut expected = v.clone();
            expected.sort_unstable();
            sort_small(&mut v);
            assert_eq!(v, expected);
        }
    }
}

#[test]
fn indices_are_pinned() {
    // Literal values: a change of hash function, seeding or masking moves every model's
    // coordinates and must be noticed.
    let h = hasher(18, 0, 10);
    assert_eq!(h.coordinate(0, "a.com"), Some(159_591));
    assert_eq!(h.coordinate(1, "a.com"), Some(28_403));
    let h = hasher(18, 42, 10);
    assert_eq!(h.coordinate(0, "a.com"), Some(224_577));
    assert_eq!(h.coordinate(3, "a.com"), None, "only three fields");
}

#[test]
fn same_value_in_two_fields_differs_and_seed_matters() {
    let h = hasher(18, 0, 0);
    for value in ["a", "US", "android", ""] {
        assert_ne!(h.coordinate(0, value), h.coordinate(1, value), "{value}");
    }
    assert_ne!(
        hasher(18, 0, 0).coordinate(0, "a"),
        hasher(18, 1, 0).coordinate(0, "a")
    );
}

#[test]
fn indices_stay_in_range_sorted_and_collisions_add() {
    for bits in [1, 2, 5, 18] {
        let h = hasher(bits, 7, 100);
        let values: Vec<String> = (0..200).map(|i| format!("v{i}")).collect();
        let rows: Vec<[Option<&str>; 3]> = values
            .chunks(3)
            .map(|c| [Some(c[0].as_str()), c.get(1).map(|s| s.as_str()), None])
            .collect();
        for (indices, vals) in run(&h, &rows) {
            assert!(indices
                .iter()
                .all(|&i| (100..100 + (1 << bits)).contains(&i)));
            assert!(
                indices.windows(2).all(|w| w[0] < w[1]),
                "sorted and distinct"
            );
            assert_eq!(vals.iter().sum::<f64>(), 2.0, "two present values per row");
        }
    }
    // One bucket: every present value collides.
    let h = hasher(1, 0, 0);
    let out = run(&h, &[[Some("x"), Some("x"), Some("x")]]);
    let total: f64 = out[0].1.iter().sum();
    assert_eq!(total, 3.0);
    assert!(out[0].0.len() <= 2);
}

#[test]
fn missing_values_contribute_nothing() {
    let h = hasher(10, 0, 0);
    let out = run(&h, &[[None, None, None], [None, Some("b"), None]]);
    assert!(out[0].0.is_empty() && out[0].1.is_empty());
    assert_eq!(out[1], (vec![h.coordinate(1, "b").unwrap()], vec![1.0]));
}

#[test]
fn bind_refuses_bad_bits_and_overflowing_ranges() {
    let mut h = FeatureHasher::new(vec!["site".into()], 29, 0);
    assert!(matches!(
        h.bind(&schema(), 0),
        Err(FeatureError::InvalidState(_))
    ));
    let mut h = FeatureHasher::new(vec!["site".into()], 28, 0);
    assert!(h.bind(&schema(), u32::MAX - (1 << 28) + 1).is_ok());
    let err = h.bind(&schema(), u32::MAX - (1 << 28) + 2).unwrap_err();
    assert!(
        matches!(err, FeatureError::TooManyCoordinates { .. }),
        "{err}"
    );
    let mut h = FeatureHasher::new(vec!["nope".into()], 4, 0);
    assert_eq!(
        h.bind(&schema(), 0).unwrap_err().to_string(),
        "unknown field \"nope\": not in the schema"
    );
}

#[test]
fn signed_hash_writes_the_sign_of_each_value() {
    use crate::ops::testing::run::learn_checked;
    use crate::ops::FeatureOp;
    let records: Vec<String> = (0..200)
        .map(|i| format!(r#"{{"site": "s{i}", "app": "a{}"}}"#, i % 7))
        .collect();
    let run = learn_checked(
        r#"[{"type": "hash", "fields": ["site", "app"], "bits": 3, "signed": true}]"#,
        &records,
    );
    let FeatureOp::SignedHash(h) = &run.set.operators()[0] else {
        unreachable!()
    };
    assert!(h.is_signed());
    let mut signs = [0usize; 2];
    for (i, (_, indices, values)) in run.rows.iter().enumerate() {
        let site = format!("s{i}");
        let app = format!("a{}", i % 7);
        let mut expected = vec![
            (h.coordinate(0, &site).unwrap(), h.sign(0, &site).unwrap()),
            (h.coordinate(1, &app).unwrap(), h.sign(1, &app).unwrap()),
        ];
        expected.sort_by_key(|e| e.0);
        if expected[0].0 == expected[1].0 {
            expected = vec![(expected[0].0, expected[0].1 + expected[1].1)];
        }
        let got: Vec<(u32, f64)> = indices
            .iter()
            .copied()
            .zip(values.iter().copied())
            .collect();
        assert_eq!(got, expected, "row {i}");
        signs[usize::from(h.sign(0, &site).unwrap() > 0.0)] += 1;
    }
    assert!(signs[0] > 50 && signs[1] > 50, "{signs:?}");
}
