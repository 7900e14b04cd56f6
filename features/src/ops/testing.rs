//! Helpers for the operators' tests: run configs over JSON records through a real set.

/// Runs configs over JSON records through a real [`FeatureSet`], for the operators' tests.
pub(crate) mod run {
    use std::sync::Arc;

    use crate::error::DecodeErrorKind;
    use crate::{BatchBuilder, FeatureBatch, FeatureConfig, FeatureSet, Schema};

    /// One output row: dense values, sparse coordinates, sparse values.
    pub type Row = (Vec<f64>, Vec<u32>, Vec<f64>);

    /// What learning a stream gave: the set after it, every row, and the refused rows.
    pub struct Run {
        pub set: FeatureSet,
        pub rows: Vec<Row>,
        pub rejected: Vec<(usize, DecodeErrorKind)>,
    }

    pub fn configs(json: &str) -> Vec<FeatureConfig> {
        serde_json::from_str(json).expect("test configs are valid")
    }

    pub fn schema(configs: &[FeatureConfig]) -> Arc<Schema> {
        Arc::new(
            Schema::merge(configs.iter().flat_map(FeatureConfig::fields)).expect("no conflict"),
        )
    }

    /// Learns `records` in batches of `size`.
    pub fn learn(configs: &[FeatureConfig], records: &[String], size: usize) -> Run {
        let schema = schema(configs);
        let mut set = FeatureSet::new(configs, &schema).expect("configs fit the schema");
        let mut decoder = BatchBuilder::new(schema);
        let mut out = FeatureBatch::new();
        let (mut rows, mut rejected) = (Vec::new(), Vec::new());
        for chunk in records.chunks(size.max(1)) {
            for r in chunk {
                decoder
                    .push_json(r.as_bytes())
                    .expect("test records decode");
            }
            let before = rows.len();
            set.transform(&decoder.finish(), true, &mut out)
                .expect("batch fits");
            rejected.extend(out.rejected().iter().map(|(i, e)| (before + i, e.kind)));
            rows.extend(
                out.rows()
                    .map(|(d, i, v)| (d.to_vec(), i.to_vec(), v.to_vec())),
            );
        }
        Run {
            set,
            rows,
            rejected,
        }
    }

    /// Transforms `records` frozen, in one batch.
    pub fn serve(set: &FeatureSet, records: &[String]) -> Vec<Row> {
        let mut decoder = BatchBuilder::new(Arc::new(set.schema().with_all_optional()));
        for r in records {
            decoder
                .push_json(r.as_bytes())
                .expect("test records decode");
        }
        let mut out = FeatureBatch::new();
        set.transform_frozen(&decoder.finish(), &mut out)
            .expect("batch fits");
        out.rows()
            .map(|(d, i, v)| (d.to_vec(), i.to_vec(), v.to_vec()))
            .collect()
    }

    fn bits(rows: &[Row]) -> Vec<(Vec<u64>, Vec<u32>, Vec<u64>)> {
        rows.iter()
            .map(|(d, i, v)| {
                (
                    d.iter().map(|x| x.to_bits()).collect(),
                    i.clone(),
                    v.iter().map(|x| x.to_bits()).collect(),
                )
            })
            .collect()
    }

    pub fn postcard_bytes(set: &FeatureSet) -> Vec<u8> {
        postcard::to_allocvec(set).expect("sets serialize")
    }

    /// Checks that state survives postcard, MessagePack (named) and JSON bit for bit.
    pub fn assert_round_trips(set: &FeatureSet) {
        let bytes = postcard_bytes(set);
        let back: FeatureSet = postcard::from_bytes(&bytes).expect("postcard reads back");
        assert_eq!(&back, set);
        assert_eq!(postcard_bytes(&back), bytes);
        let named = rmp_serde::to_vec_named(set).expect("msgpack");
        let back: FeatureSet = rmp_serde::from_slice(&named).expect("msgpack reads back");
        assert_eq!(postcard_bytes(&back), bytes);
        assert_eq!(rmp_serde::to_vec_named(&back).expect("msgpack"), named);
        let json = serde_json::to_string(set).expect("json");
        let back: FeatureSet = serde_json::from_str(&json).expect("json reads back");
        assert_eq!(postcard_bytes(&back), bytes);
    }

    /// Learns `records` in batches of 1, 3 and all, checks the three runs agree bit for bit in
    /// output, refusals and state, checks the round trips, and returns the run.
    pub fn learn_checked(config_json: &str, records: &[String]) -> Run {
        let configs = configs(config_json);
        let whole = learn(&configs, records, records.len());
        for size in [1, 3] {
            let other = learn(&configs, records, size);
            assert!(
                bits(&whole.rows) == bits(&other.rows),
                "rows differ with batches of {size}"
            );
            assert_eq!(whole.rejected, other.rejected);
            assert_eq!(postcard_bytes(&whole.set), postcard_bytes(&other.set));
        }
        assert_round_trips(&whole.set);
        for (d, _, v) in &whole.rows {
            assert!(d.iter().chain(v).all(|x| x.is_finite()), "{d:?} {v:?}");
        }
        whole
    }

    /// `|a - b|` within 1e-9 relative.
    pub fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }
}

pub(crate) mod testgen {
    /// `n` seeded values in about [-100, 100] with repeats.
    pub fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 33) % 1601) as f64 / 8.0 - 100.0
            })
            .collect()
    }
}

pub(crate) mod testing_continue {
    use std::sync::Arc;

    use super::run::Row;
    use crate::{BatchBuilder, FeatureBatch, FeatureSet};

    /// Learns one more record on `set`, returning its row.
    pub fn learn_continue(set: &mut FeatureSet, record: &str) -> Row {
        let mut decoder = BatchBuilder::new(Arc::new(set.schema().clone()));
        decoder
            .push_json(record.as_bytes())
            .expect("test record decodes");
        let mut out = FeatureBatch::new();
        set.transform(&decoder.finish(), true, &mut out)
            .expect("batch fits");
        let (d, i, v) = out.row(0);
        (d.to_vec(), i.to_vec(), v.to_vec())
    }
}
