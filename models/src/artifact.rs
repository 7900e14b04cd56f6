//! The model artifact: a self-describing file holding everything needed to serve a model.
//!
//! Layout: `EDDYMODL` magic, format version (u32 LE), metadata length (u32 LE), metadata (JSON:
//! format, name, version, creation time, events learned, source position, metrics, the feature
//! and model configuration, and the length and xxh3 of the state), the state (postcard: every
//! f64 array as little-endian IEEE 754, lengths as varints), and a trailer: xxh3-64 (u64 LE) of
//! all bytes before it. A file that fails any check is refused whole, never half-loaded.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use eddy_features::FeatureConfig;
use eddy_ml::Task;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{ModelError, Result};
use crate::model::TrainedModel;
use crate::spec::ModelSpec;

const MAGIC: &[u8; 8] = b"EDDYMODL";
/// The artifact format this build writes; it reads every format up to this one.
pub const ARTIFACT_FORMAT: u32 = 1;
const STATE_ENCODING: &str = "postcard";

/// What an artifact says about itself, readable without decoding the state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactMeta {
    pub format_version: u32,
    pub name: String,
    /// Registry version; 0 until a registry assigns one.
    pub version: u64,
    pub created_unix_ms: u64,
    pub eddy_version: String,
    pub events_learned: u64,
    pub task: Task,
    pub target: Option<String>,
    pub key_field: Option<String>,
    pub features: Vec<FeatureConfig>,
    /// The pipeline's model section as configured (learner, optimizer, hyper-parameters).
    pub model_config: serde_json::Value,
    /// Where the source was when the state was taken.
    pub source_position: serde_json::Value,
    pub metrics: BTreeMap<String, f64>,
    pub window_metrics: BTreeMap<String, f64>,
    pub state_encoding: String,
    pub state_len: u64,
    pub state_xxh3: u64,
}

/// A model with its metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Artifact {
    pub meta: ArtifactMeta,
    pub model: TrainedModel,
}

/// The parts of an artifact that come from the pipeline rather than the model state.
pub struct ArtifactSource<'a> {
    pub spec: &'a ModelSpec,
    pub model_config: serde_json::Value,
    pub source_position: serde_json::Value,
    pub created_unix_ms: u64,
}

fn bad(message: impl Into<String>) -> ModelError {
    ModelError::Artifact(message.into())
}

fn metric_map(values: &[(&'static str, f64)]) -> BTreeMap<String, f64> {
    values.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

impl Artifact {
    /// Packs `model` with its pipeline context.
    pub fn new(model: &TrainedModel, from: ArtifactSource<'_>) -> Artifact {
        Artifact {
            meta: ArtifactMeta {
                format_version: ARTIFACT_FORMAT,
                name: from.spec.name.clone(),
                version: 0,
                created_unix_ms: from.created_unix_ms,
                eddy_version: env!("CARGO_PKG_VERSION").to_owned(),
                events_learned: model.events_learned,
                task: from.spec.task,
                target: from.spec.target.clone(),
                key_field: from.spec.key_field.clone(),
                features: from.spec.feature_configs.clone(),
                model_config: from.model_config,
                source_position: from.source_position,
                metrics: metric_map(&model.metrics.values()),
                window_metrics: metric_map(&model.metrics.window_values()),
                state_encoding: STATE_ENCODING.to_owned(),
                state_len: 0,
                state_xxh3: 0,
            },
            model: model.clone(),
        }
    }

    /// The spec the model was trained under, rebuilt from the metadata.
    pub fn spec(&self) -> Result<ModelSpec> {
        ModelSpec::new(
            &self.meta.name,
            &self.meta.features,
            self.meta.target.as_deref(),
            self.meta.task,
            self.meta.key_field.as_deref(),
        )
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let state = postcard::to_stdvec(&self.model)
            .map_err(|e| bad(format!("encoding the state: {e}")))?;
        let mut meta = self.meta.clone();
        meta.state_len = state.len() as u64;
        meta.state_xxh3 = xxh3_64(&state);
        let meta =
            serde_json::to_vec(&meta).map_err(|e| bad(format!("encoding the metadata: {e}")))?;
        let meta_len = u32::try_from(meta.len()).map_err(|_| bad("metadata over 4 GiB"))?;
        let mut bytes = Vec::with_capacity(8 + 4 + 4 + meta.len() + state.len() + 8);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&ARTIFACT_FORMAT.to_le_bytes());
        bytes.extend_from_slice(&meta_len.to_le_bytes());
        bytes.extend_from_slice(&meta);
        bytes.extend_from_slice(&state);
        let sum = xxh3_64(&bytes);
        bytes.extend_from_slice(&sum.to_le_bytes());
        Ok(bytes)
    }

    /// Only the metadata, checked against the whole file's checksum.
    pub fn meta_from_bytes(bytes: &[u8]) -> Result<(ArtifactMeta, &[u8])> {
        if bytes.len() < 8 + 4 + 4 + 8 || &bytes[..8] != MAGIC {
            return Err(bad("not an eddy model artifact (bad magic or too short)"));
        }
        let (body, trailer) = bytes.split_at(bytes.len() - 8);
        let mut sum = [0u8; 8];
        sum.copy_from_slice(trailer);
        if xxh3_64(body) != u64::from_le_bytes(sum) {
            return Err(bad(
                "checksum mismatch: the artifact is corrupt or truncated",
            ));
        }
        let mut word = [0u8; 4];
        word.copy_from_slice(&body[8..12]);
        let format = u32::from_le_bytes(word);
        if format == 0 || format > ARTIFACT_FORMAT {
            return Err(bad(format!(
                "artifact format {format}; this eddy reads 1..={ARTIFACT_FORMAT}"
            )));
        }
        word.copy_from_slice(&body[12..16]);
        let meta_len = u32::from_le_bytes(word) as usize;
        let rest = &body[16..];
        if rest.len() < meta_len {
            return Err(bad("truncated metadata"));
        }
        let (meta, state) = rest.split_at(meta_len);
        let meta: ArtifactMeta =
            serde_json::from_slice(meta).map_err(|e| bad(format!("decoding the metadata: {e}")))?;
        if meta.state_encoding != STATE_ENCODING {
            return Err(bad(format!(
                "unknown state encoding {:?}",
                meta.state_encoding
            )));
        }
        if state.len() as u64 != meta.state_len || xxh3_64(state) != meta.state_xxh3 {
            return Err(bad(
                "the state section does not match its length or checksum",
            ));
        }
        Ok((meta, state))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Artifact> {
        let (meta, state) = Artifact::meta_from_bytes(bytes)?;
        let model: TrainedModel =
            postcard::from_bytes(state).map_err(|e| bad(format!("decoding the state: {e}")))?;
        if model.events_learned != meta.events_learned {
            return Err(bad("metadata and state disagree on events learned"));
        }
        let artifact = Artifact { meta, model };
        // The configuration must still build a spec, or serving would fail later.
        artifact.spec()?;
        Ok(artifact)
    }

    pub fn read(path: &Path) -> Result<Artifact> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Artifact::from_bytes(&bytes).map_err(|e| match e {
            ModelError::Artifact(m) => ModelError::Artifact(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Writes to a temporary file, fsyncs, renames: readers see the old file or the new one.
    pub fn write_atomic(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        let io = |e| ModelError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let tmp = path.with_extension("tmp");
        let mut file = File::create(&tmp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use eddy_ml::{LinearModel, Loss};

    pub(crate) fn sample() -> Artifact {
        let features = vec![
            FeatureConfig::StandardScaler {
                fields: vec!["a".into()],
            },
            FeatureConfig::Hash {
                fields: vec!["c".into()],
                bits: 4,
                seed: 0,
            },
        ];
        let spec =
            ModelSpec::new("clicks", &features, Some("y"), Task::Binary, None).expect("spec");
        let params = crate::LearnerParams::Linear(
            LinearModel::params(Loss::Logistic).check().expect("params"),
        );
        let mut model = TrainedModel::new(&spec, &params, None, 10).expect("model");
        let mut builder = spec.batch_builder();
        for i in 0..40 {
            let line = format!(r#"{{"a": {i}, "c": "v{}", "y": {}}}"#, i % 3, i % 2);
            builder.push_json(line.as_bytes()).expect("valid");
        }
        let mut scratch = eddy_features::FeatureBatch::new();
        model
            .learn_batch(&spec, &builder.finish(), &mut scratch, |_, _| {})
            .expect("learns");
        Artifact::new(
            &model,
            ArtifactSource {
                spec: &spec,
                model_config: serde_json::json!({"type": "logistic"}),
                source_position: serde_json::json!({"records": 40}),
                created_unix_ms: 1,
            },
        )
    }

    #[test]
    fn round_trip_is_exact() {
        let artifact = sample();
        let back = Artifact::from_bytes(&artifact.to_bytes().expect("encode")).expect("decode");
        assert_eq!(back.model, artifact.model);
        assert_eq!(back.meta.events_learned, 40);
        assert_eq!(back.meta.name, "clicks");
        assert!(back.meta.metrics.contains_key("logloss"));
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let bytes = sample().to_bytes().expect("encode");
        for cut in [0, 7, 16, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                Artifact::from_bytes(&bytes[..cut]).is_err(),
                "cut at {cut} was accepted"
            );
        }
        for at in (0..bytes.len()).step_by(97) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x20;
            assert!(
                Artifact::from_bytes(&bad).is_err(),
                "flipped byte {at} was accepted"
            );
        }
    }

    #[test]
    fn a_newer_format_is_refused_by_name() {
        let mut bytes = sample().to_bytes().expect("encode");
        bytes[8..12].copy_from_slice(&(ARTIFACT_FORMAT + 1).to_le_bytes());
        let body = bytes.len() - 8;
        let sum = xxh3_64(&bytes[..body]).to_le_bytes();
        bytes[body..].copy_from_slice(&sum);
        let err = Artifact::from_bytes(&bytes)
            .expect_err("newer format")
            .to_string();
        assert!(err.contains("format"), "{err}");
    }
}
