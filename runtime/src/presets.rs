//! Ready-made pipelines: the demo that runs with nothing installed, and the benchmark pipeline.

use std::net::SocketAddr;
use std::path::Path;

use eddy_features::FeatureConfig;

use crate::config::{CheckpointConfig, ModelConfig, ModelKind, PipelineConfig, ServeConfig};
use crate::sink::{SinkConfig, SinksConfig};
use crate::source::{FileFormat, FileSourceConfig, GeneratorConfig, GeneratorKind, SourceConfig};

/// Features of the demo and benchmark streams.
pub const FEATURES: usize = 10;

fn scaled_fields() -> Vec<String> {
    (0..FEATURES).map(|j| format!("x{j}")).collect()
}

/// The demo: a paced logistic generator (10 numeric fields and a categorical one) into scaler +
/// hashing + logistic regression, checkpoints under `dir`, the live model on `address`.
pub fn demo(
    dir: &Path,
    address: SocketAddr,
    rate_per_sec: f64,
    events: Option<u64>,
) -> PipelineConfig {
    let mut source = GeneratorConfig::new(GeneratorKind::Logistic);
    source.features = FEATURES;
    source.categories = 8;
    source.rate_per_sec = Some(rate_per_sec);
    source.events = events;
    PipelineConfig {
        source: SourceConfig::Generator(source),
        features: vec![
            FeatureConfig::StandardScaler {
                fields: scaled_fields(),
            },
            FeatureConfig::Hash {
                fields: vec!["cat".into()],
                bits: 10,
                seed: 0,
            },
        ],
        model: ModelConfig::new(ModelKind::Logistic, Some("y")),
        checkpoint: Some(CheckpointConfig {
            dir: dir.join("checkpoints"),
            interval_events: None,
            interval_seconds: Some(5.0),
            keep: 3,
            shared_dir: None,
        }),
        serve: ServeConfig {
            address,
            ..ServeConfig::default()
        },
        export: None,
        sync: None,
        sinks: SinksConfig {
            predictions: None,
            dead_letters: Some(SinkConfig::File {
                path: dir.join("dead-letters.jsonl"),
            }),
        },
    }
}

/// The benchmark pipeline of the Foundation issue: JSON Lines with 10 numeric features and a
/// 0/1 target, scaler → logistic regression → progressive metrics, checkpoints on.
pub fn bench(input: &Path, checkpoint_dir: &Path, batch_size: usize) -> PipelineConfig {
    PipelineConfig {
        source: SourceConfig::File(FileSourceConfig::new(
            input.display().to_string(),
            Some(FileFormat::Jsonl),
            batch_size,
        )),
        features: vec![FeatureConfig::StandardScaler {
            fields: scaled_fields(),
        }],
        model: ModelConfig::new(ModelKind::Logistic, Some("y")),
        checkpoint: Some(CheckpointConfig {
            dir: checkpoint_dir.to_path_buf(),
            interval_events: Some(1_000_000),
            interval_seconds: None,
            keep: 2,
            shared_dir: None,
        }),
        serve: ServeConfig {
            enabled: false,
            ..ServeConfig::default()
        },
        sinks: SinksConfig::default(),
        export: None,
        sync: None,
    }
}

/// The seeded logistic stream the benchmark reads, with `FEATURES` numeric fields.
pub fn bench_stream() -> GeneratorConfig {
    let mut g = GeneratorConfig::new(GeneratorKind::Logistic);
    g.features = FEATURES;
    g.seed = 7;
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_pipelines() {
        let dir = Path::new("/tmp/eddy-preset-test");
        demo(dir, SocketAddr::from(([127, 0, 0, 1], 0)), 1000.0, None)
            .check()
            .expect("demo is valid");
        bench(&dir.join("in.jsonl"), dir, 4096)
            .check()
            .expect("bench is valid");
    }
}
