//! `FeatureConfig`: what the user writes to ask for a feature operator.

use crate::schema::{Field, FieldType};

/// Smallest and largest accepted `bits` of a hash operator. Why 28: 2^28 buckets is already a
/// 2 GiB weight vector per model, and several hash ranges must still fit a `u32` coordinate.
pub const HASH_BITS: std::ops::RangeInclusive<u8> = 1..=28;

fn default_bits() -> u8 {
    18
}

/// One feature operator as written in the config, `type = "standard_scaler"` or `type = "hash"`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FeatureConfig {
    /// Online standard scaler (Welford): output `(x - mean) / std`, with `std` the square root of
    /// the population variance; 0.0 while fewer than two values were seen or `std == 0`.
    StandardScaler { fields: Vec<String> },
    /// Hashed one-hot of string fields into `2^bits` buckets: xxh3 of the value, seeded by a hash
    /// of the field name and `seed`, with value 1.0. A missing value contributes nothing, and
    /// collisions add.
    Hash {
        fields: Vec<String>,
        #[serde(default = "default_bits")]
        bits: u8,
        #[serde(default)]
        seed: u64,
    },
}

impl FeatureConfig {
    /// The operator's name as written in `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            FeatureConfig::StandardScaler { .. } => "standard_scaler",
            FeatureConfig::Hash { .. } => "hash",
        }
    }

    /// The names of the fields this operator reads.
    pub fn field_names(&self) -> &[String] {
        match self {
            FeatureConfig::StandardScaler { fields } | FeatureConfig::Hash { fields, .. } => fields,
        }
    }

    /// The fields this operator reads: the scaler needs required numbers (a learner cannot use
    /// a record without them), hashing takes optional strings (a missing one adds nothing).
    pub fn fields(&self) -> Vec<Field> {
        let (ty, required) = self.field_type();
        self.field_names()
            .iter()
            .map(|name| Field {
                name: name.clone(),
                ty,
                required,
            })
            .collect()
    }

    /// The type and required-ness of every field this operator reads.
    pub(crate) fn field_type(&self) -> (FieldType, bool) {
        match self {
            FeatureConfig::StandardScaler { .. } => (FieldType::Number, true),
            FeatureConfig::Hash { .. } => (FieldType::String, false),
        }
    }

    /// Every problem with this config, each as "features[i].key: problem" for `index` i.
    pub fn validate(&self, index: usize) -> Vec<String> {
        let mut problems = Vec::new();
        let path = |key: &str| format!("features[{index}].{key}");
        let fields = self.field_names();
        if fields.is_empty() {
            problems.push(format!("{}: empty", path("fields")));
        }
        for (i, name) in fields.iter().enumerate() {
            if name.is_empty() {
                problems.push(format!(
                    "{}: empty field name",
                    path(&format!("fields[{i}]"))
                ));
            } else if fields[..i].contains(name) {
                problems.push(format!("{}: duplicate field \"{name}\"", path("fields")));
            }
        }
        if let FeatureConfig::Hash { bits, .. } = self {
            if !HASH_BITS.contains(bits) {
                problems.push(format!(
                    "{}: must be in {}..={}, got {bits}",
                    path("bits"),
                    HASH_BITS.start(),
                    HASH_BITS.end()
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_defaults_and_refuses_unknown_keys() {
        let scaler: FeatureConfig =
            serde_json::from_str(r#"{"type": "standard_scaler", "fields": ["x1", "x2"]}"#).unwrap();
        assert_eq!(
            scaler,
            FeatureConfig::StandardScaler {
                fields: vec!["x1".into(), "x2".into()]
            }
        );
        let hash: FeatureConfig =
            serde_json::from_str(r#"{"type": "hash", "fields": ["site"]}"#).unwrap();
        assert_eq!(
            hash,
            FeatureConfig::Hash {
                fields: vec!["site".into()],
                bits: 18,
                seed: 0
            }
        );
        let err = serde_json::from_str::<FeatureConfig>(
            r#"{"type": "hash", "fields": ["site"], "bitz": 3}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `bitz`"), "{err}");
        assert!(serde_json::from_str::<FeatureConfig>(r#"{"type": "pca", "fields": []}"#).is_err());
    }

    #[test]
    fn example_toml_parses_and_validates() {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Doc {
            features: Vec<FeatureConfig>,
        }
        let doc: Doc = toml::from_str(
            r#"
            [[features]]
            type = "standard_scaler"
            fields = ["x1", "x2", "x3"]

            [[features]]
            type = "hash"
            fields = ["site", "app"]
            bits = 20
            seed = 7
            "#,
        )
        .unwrap();
        assert_eq!(doc.features.len(), 2);
        let problems: Vec<String> = doc
            .features
            .iter()
            .enumerate()
            .flat_map(|(i, f)| f.validate(i))
            .collect();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(doc.features[1].kind(), "hash");
    }

    #[test]
    fn fields_carry_type_and_required() {
        let hash = FeatureConfig::Hash {
            fields: vec!["site".into()],
            bits: 4,
            seed: 1,
        };
        assert_eq!(hash.fields(), vec![Field::string("site")]);
        let scaler = FeatureConfig::StandardScaler {
            fields: vec!["x".into()],
        };
        assert_eq!(scaler.fields(), vec![Field::number("x")]);
    }

    #[test]
    fn validate_reports_every_problem_with_its_path() {
        let ok = FeatureConfig::Hash {
            fields: vec!["a".into()],
            bits: 28,
            seed: 0,
        };
        assert!(ok.validate(0).is_empty());
        let bad = FeatureConfig::Hash {
            fields: vec!["a".into(), "".into(), "a".into()],
            bits: 29,
            seed: 0,
        };
        assert_eq!(
            bad.validate(2),
            vec![
                "features[2].fields[1]: empty field name",
                "features[2].fields: duplicate field \"a\"",
                "features[2].bits: must be in 1..=28, got 29",
            ]
        );
        let empty = FeatureConfig::StandardScaler { fields: vec![] };
        assert_eq!(empty.validate(0), vec!["features[0].fields: empty"]);
        let zero = FeatureConfig::Hash {
            fields: vec!["a".into()],
            bits: 0,
            seed: 0,
        };
        assert_eq!(
            zero.validate(1),
            vec!["features[1].bits: must be in 1..=28, got 0"]
        );
    }
}
