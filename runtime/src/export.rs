//! Model export: checkpointed or live state packed as an artifact into a registry.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use eddy_models::{Artifact, ArtifactSource, ModelSpec, Registry, TrainedModel};
use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointStore;
use crate::config::{ModelConfig, ValidConfig};
use crate::error::{Result, RuntimeError};
use crate::source::Position;

/// `[export]`: register a new model version every N events and/or seconds, and at the end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    pub registry: std::path::PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_events: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<f64>,
    /// Make each export the current version.
    #[serde(default)]
    pub promote: bool,
    /// Also publish each version to a Kafka topic (keyed by model name; give the topic
    /// `cleanup.policy=compact` to keep the newest version of each model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<ExportTopic>,
}

/// `[export.topic]`: where versions are published, as artifact bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportTopic {
    pub brokers: String,
    pub topic: String,
    /// Passed to librdkafka (security settings; `message.max.bytes` is 100 MiB unless set here).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub properties: std::collections::BTreeMap<String, String>,
}

impl ExportTopic {
    /// An idempotent producer for the versions topic; artifacts can be large.
    pub(crate) fn open(&self) -> Result<crate::sink::LineSink> {
        let mut properties = self.properties.clone();
        properties
            .entry("message.max.bytes".to_owned())
            .or_insert_with(|| (100 << 20).to_string());
        crate::sink::SinkConfig::Kafka {
            brokers: self.brokers.clone(),
            topic: self.topic.clone(),
            properties,
        }
        .open(None)
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The artifact for `model` as trained by this pipeline, at `position`.
pub fn artifact(
    spec: &ModelSpec,
    config: &ModelConfig,
    model: &TrainedModel,
    position: &Position,
) -> Artifact {
    Artifact::new(
        model,
        ArtifactSource {
            spec,
            model_config: serde_json::to_value(config).unwrap_or_default(),
            source_position: serde_json::to_value(position).unwrap_or_default(),
            created_unix_ms: now_ms(),
        },
    )
}

/// Registers `artifact`; promotes it when asked. Returns its version.
pub fn register(registry: &Registry, artifact: &mut Artifact, promote: bool) -> Result<u64> {
    let version = registry.register(artifact)?;
    if promote {
        registry.promote(&artifact.meta.name, version)?;
    }
    Ok(version)
}

/// Exports the newest checkpoint of a pipeline into `registry_dir`.
pub fn export_checkpoint(
    valid: &ValidConfig,
    registry_dir: &Path,
    promote: bool,
) -> Result<(String, u64)> {
    let Some(checkpoint) = &valid.config.checkpoint else {
        return Err(RuntimeError::Config {
            path: "pipeline".into(),
            problems: vec![
                "checkpoint: export reads the pipeline's checkpoints, and it has none".into(),
            ],
        });
    };
    let store = CheckpointStore::open(&checkpoint.dir, checkpoint.keep)?;
    let Some((path, state)) = store.load_latest()? else {
        return Err(RuntimeError::Checkpoint {
            path: checkpoint.dir.clone(),
            message: "no checkpoint to export yet".into(),
        });
    };
    if state.fingerprint != valid.fingerprint {
        return Err(RuntimeError::Checkpoint {
            path,
            message: "written by a different pipeline".into(),
        });
    }
    let registry = Registry::open(registry_dir)?;
    let mut artifact = artifact(
        &valid.spec,
        &valid.config.model,
        &state.model,
        &state.position,
    );
    let version = register(&registry, &mut artifact, promote)?;
    Ok((valid.spec.name.clone(), version))
}
