//! Quick mode: a default pipeline built from command-line flags and the first record of the
//! input, so a file can be learned from without writing a pipeline file.
//!
//! Numeric (and boolean) fields are standard-scaled, string fields hashed; the target and the key
//! are never features.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use eddy_features::FeatureConfig;
use serde_json::Value;

use crate::config::{
    CheckpointConfig, ModelConfig, ModelKind, OptimizerConfig, PipelineConfig, RegressionLoss,
    ServeConfig,
};
use crate::error::{Result, RuntimeError};
use crate::sink::{SinkConfig, SinksConfig};
use crate::source::{
    columnar_schema, expand_inputs, is_columnar, parse_kafka_url, peek_first_message, FileFormat,
    FileSourceConfig, KafkaSourceConfig, SourceConfig,
};

/// Hash buckets for string fields in quick mode.
pub const QUICK_HASH_BITS: u8 = 18;

/// What quick mode takes from the command line.
#[derive(Clone, Debug)]
pub struct QuickOptions {
    pub input: String,
    /// The field to predict; for k-means the reference label (`--label`), optional there.
    pub target: Option<String>,
    pub model: ModelKind,
    pub format: Option<FileFormat>,
    pub key_field: Option<String>,
    pub checkpoint_dir: Option<PathBuf>,
    pub serve: Option<SocketAddr>,
    pub predictions: Option<PathBuf>,
    pub dead_letters: Option<PathBuf>,
    pub batch_size: usize,
    pub learning_rate: Option<f64>,
    pub l1: Option<f64>,
    pub l2: Option<f64>,
    /// `sgd`, `adagrad`, `adam` or `ftrl`.
    pub optimizer: Option<String>,
    pub loss: Option<RegressionLoss>,
    pub k: Option<usize>,
    pub half_life: Option<f64>,
    pub warm_start: Option<usize>,
    /// Kafka input (`kafka://HOST:PORT/TOPIC`): the consumer group.
    pub group: Option<String>,
    /// Kafka input: end after this many seconds without a message.
    pub idle_timeout: Option<f64>,
}

impl QuickOptions {
    /// Options for `input` with every optional setting unset.
    pub fn new(input: &str, target: Option<&str>, model: ModelKind) -> QuickOptions {
        QuickOptions {
            input: input.to_owned(),
            target: target.map(str::to_owned),
            model,
            format: None,
            key_field: None,
            checkpoint_dir: None,
            serve: None,
            predictions: None,
            dead_letters: None,
            batch_size: 4096,
            learning_rate: None,
            l1: None,
            l2: None,
            optimizer: None,
            loss: None,
            k: None,
            half_life: None,
            warm_start: None,
            group: None,
            idle_timeout: None,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Number,
    Text,
}

/// Builds the pipeline quick mode runs.
pub fn quick_config(options: &QuickOptions) -> Result<PipelineConfig> {
    if options.input == "-" {
        return Err(RuntimeError::Input {
            path: "-".into(),
            message: "quick mode reads the first record of a file to find its fields; for stdin, \
                      write a pipeline file with [source] type = \"stdin\""
                .into(),
        });
    }
    let kafka = parse_kafka_url(&options.input);
    if options.input.starts_with("kafka://") && kafka.is_none() {
        return Err(RuntimeError::Input {
            path: options.input.clone().into(),
            message: "a Kafka input is kafka://HOST:PORT/TOPIC".into(),
        });
    }
    let first = match &kafka {
        Some(_) => PathBuf::from(&options.input),
        None => expand_inputs(&options.input)?.remove(0),
    };
    let fields = if let Some((brokers, topic)) = &kafka {
        let first_topic = topic.split(',').next().unwrap_or(topic);
        let message = peek_first_message(brokers, first_topic, Duration::from_secs(30))?;
        json_fields(&message).map_err(|message| RuntimeError::Input {
            path: first.clone(),
            message: format!("the first message: {message}"),
        })?
    } else if is_columnar(&first) {
        columnar_schema(&first)?
            .fields()
            .iter()
            .filter_map(|f| match f.data_type() {
                t if t.is_numeric() || *t == arrow_schema::DataType::Boolean => {
                    Some((f.name().clone(), Kind::Number))
                }
                arrow_schema::DataType::Utf8 | arrow_schema::DataType::LargeUtf8 => {
                    Some((f.name().clone(), Kind::Text))
                }
                _ => None,
            })
            .collect()
    } else {
        let format = options
            .format
            .or_else(|| FileFormat::from_path(&first))
            .ok_or_else(|| RuntimeError::Input {
                path: first.clone(),
                message:
                    "unknown format: name it .jsonl, .csv (optionally .gz), .parquet or .arrow, \
                          or pass --format"
                        .into(),
            })?;
        first_record_fields(&first, format)?
    };
    let target = options.target.as_deref();
    if let Some(target) = target {
        if !fields.iter().any(|(name, _)| name == target) {
            let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
            return Err(RuntimeError::Input {
                path: first,
                message: format!(
                    "target field {target:?} is not in the first record; its fields are {names:?}"
                ),
            });
        }
    }
    let is_feature =
        |name: &str| Some(name) != target && Some(name) != options.key_field.as_deref();
    let numbers: Vec<String> = fields
        .iter()
        .filter(|(n, k)| *k == Kind::Number && is_feature(n))
        .map(|(n, _)| n.clone())
        .collect();
    let strings: Vec<String> = fields
        .iter()
        .filter(|(n, k)| *k == Kind::Text && is_feature(n))
        .map(|(n, _)| n.clone())
        .collect();
    let mut features = Vec::new();
    if !numbers.is_empty() {
        features.push(FeatureConfig::StandardScaler { fields: numbers });
    }
    if !strings.is_empty() {
        features.push(FeatureConfig::Hash {
            fields: strings,
            bits: QUICK_HASH_BITS,
            seed: 0,
        });
    }
    if options.model == ModelKind::Kmeans
        && features
            .iter()
            .any(|f| matches!(f, FeatureConfig::Hash { .. }))
    {
        // k-means reads the dense part only: string fields cannot be clustered on.
        features.retain(|f| !matches!(f, FeatureConfig::Hash { .. }));
    }
    let mut model = ModelConfig::new(options.model, target);
    model.key_field = options.key_field.clone();
    model.l1 = options.l1;
    model.l2 = options.l2;
    model.loss = options.loss;
    model.k = options.k;
    model.half_life = options.half_life;
    model.warm_start = options.warm_start;
    let optimizer = options.optimizer.as_deref().unwrap_or("sgd");
    model.optimizer =
        OptimizerConfig::named(optimizer, options.learning_rate).ok_or_else(|| {
            RuntimeError::Input {
                path: "--optimizer".into(),
                message: format!("unknown optimizer {optimizer:?}: use sgd, adagrad, adam or ftrl"),
            }
        })?;
    let source = match kafka {
        Some((brokers, topic)) => {
            let Some(group) = &options.group else {
                return Err(RuntimeError::Input {
                    path: first,
                    message: "a Kafka input needs --group GROUP".into(),
                });
            };
            // `kafka://HOST:PORT/A,B` reads several topics as one stream.
            let mut c = KafkaSourceConfig::new(&brokers, &topic, group);
            if topic.contains(',') {
                c.topic.clear();
                c.topics = topic.split(',').map(str::to_owned).collect();
            }
            c.batch_size = options.batch_size;
            c.idle_timeout_seconds = options.idle_timeout;
            SourceConfig::Kafka(c)
        }
        None => SourceConfig::File(FileSourceConfig::new(
            options.input.clone(),
            options.format,
            options.batch_size,
        )),
    };
    Ok(PipelineConfig {
        source,
        features,
        model,
        checkpoint: options.checkpoint_dir.as_ref().map(|dir| CheckpointConfig {
            dir: dir.clone(),
            interval_events: None,
            interval_seconds: None,
            keep: 3,
            shared_dir: None,
        }),
        serve: match options.serve {
            Some(address) => ServeConfig {
                address,
                ..ServeConfig::default()
            },
            None => ServeConfig {
                enabled: false,
                ..ServeConfig::default()
            },
        },
        export: None,
        sync: None,
        sinks: SinksConfig {
            predictions: options.predictions.as_deref().map(sink_for),
            dead_letters: options.dead_letters.as_deref().map(sink_for),
        },
    })
}

/// A file sink, or a Kafka sink for `kafka://HOST:PORT/TOPIC`.
fn sink_for(path: &Path) -> SinkConfig {
    match path.to_str().and_then(parse_kafka_url) {
        Some((brokers, topic)) => SinkConfig::Kafka {
            brokers,
            topic,
            properties: Default::default(),
        },
        None => SinkConfig::File {
            path: path.to_path_buf(),
        },
    }
}

/// Field names and kinds of one JSON object.
fn json_fields(record: &[u8]) -> std::result::Result<Vec<(String, Kind)>, String> {
    let record: serde_json::Map<String, Value> =
        serde_json::from_slice(record).map_err(|e| format!("not a JSON object: {e}"))?;
    Ok(record
        .into_iter()
        .filter_map(|(name, value)| match value {
            Value::Number(_) | Value::Bool(_) => Some((name, Kind::Number)),
            Value::String(_) => Some((name, Kind::Text)),
            _ => None,
        })
        .collect())
}

fn open(path: &Path) -> Result<Box<dyn Read>> {
    let file = File::open(path).map_err(|e| RuntimeError::io("opening", path, e))?;
    Ok(
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
        {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        },
    )
}

/// Field names and kinds of the first record, in the record's (JSON: sorted) order.
fn first_record_fields(path: &Path, format: FileFormat) -> Result<Vec<(String, Kind)>> {
    let bad = |message: String| RuntimeError::Input {
        path: path.to_path_buf(),
        message,
    };
    match format {
        FileFormat::Jsonl => {
            let reader = BufReader::new(open(path)?);
            for line in reader.lines() {
                let line = line.map_err(|e| RuntimeError::io("reading", path, e))?;
                if line.trim().is_empty() {
                    continue;
                }
                return json_fields(line.as_bytes())
                    .map_err(|e| bad(format!("the first record is {e}")));
            }
            Err(bad("no records".into()))
        }
        FileFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .from_reader(open(path)?);
            let header = reader
                .headers()
                .map_err(|e| bad(format!("reading the header: {e}")))?
                .clone();
            let mut row = csv::StringRecord::new();
            if !reader
                .read_record(&mut row)
                .map_err(|e| bad(format!("reading the first row: {e}")))?
            {
                return Err(bad("no rows after the header".into()));
            }
            Ok(header
                .iter()
                .zip(row.iter())
                .map(|(name, cell)| {
                    let kind = if cell.trim().parse::<f64>().is_ok() {
                        Kind::Number
                    } else {
                        Kind::Text
                    };
                    (name.to_owned(), kind)
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(input: &Path) -> QuickOptions {
        let mut options =
            QuickOptions::new(&input.display().to_string(), Some("y"), ModelKind::Logistic);
        options.key_field = Some("user".into());
        options
    }

    #[test]
    fn numbers_are_scaled_strings_hashed_target_and_key_left_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.jsonl");
        std::fs::write(
            &path,
            "\n{\"b\": 1.5, \"a\": 2, \"site\": \"x\", \"user\": \"u\", \"y\": 1, \"o\": {}}\n",
        )
        .expect("write");
        let config = quick_config(&options(&path)).expect("config");
        assert_eq!(
            config.features,
            vec![
                FeatureConfig::StandardScaler {
                    fields: vec!["a".into(), "b".into()]
                },
                FeatureConfig::Hash {
                    fields: vec!["site".into()],
                    bits: QUICK_HASH_BITS,
                    seed: 0
                },
            ]
        );
        assert!(!config.serve.enabled);
        config.check().expect("the quick pipeline is valid");
    }

    #[test]
    fn csv_columns_are_typed_by_their_first_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.csv");
        std::fs::write(&path, "x,city,y\n0.5,Oslo,0\n").expect("write");
        let config = quick_config(&options(&path)).expect("config");
        assert_eq!(config.features.len(), 2);
    }

    #[test]
    fn a_missing_target_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.jsonl");
        std::fs::write(&path, "{\"x\": 1}\n").expect("write");
        let err = quick_config(&options(&path))
            .expect_err("no target")
            .to_string();
        assert!(err.contains("\"y\""), "{err}");
    }
}
