//! The pipeline's Prometheus metrics. Updated once per micro-batch, never per record.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub const EVENTS_READ: &str = "eddy_events_read";
pub const EVENTS_LEARNED: &str = "eddy_events_learned";
pub const EVENTS_DEAD_LETTERED: &str = "eddy_events_dead_lettered";
pub const CHECKPOINTS_WRITTEN: &str = "eddy_checkpoints_written";
pub const THROUGHPUT: &str = "eddy_throughput_events_per_second";
pub const MODEL_METRIC: &str = "eddy_model_metric";
pub const MODEL_VERSION: &str = "eddy_model_version";
pub const TRAINING_PAUSED: &str = "eddy_training_paused_seconds";
pub const KAFKA_CONSUMER_LAG: &str = "eddy_kafka_consumer_lag";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MetricLabels {
    pub metric: String,
    /// `stream` (since the start) or `window` (the recent window).
    pub scope: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Handles to the pipeline's metrics; cheap to clone, shared with the registry.
#[derive(Clone, Default)]
pub struct PipelineMetrics {
    pub events_read: Counter,
    pub events_learned: Counter,
    pub dead_lettered: Family<ReasonLabels, Counter>,
    pub checkpoints: Counter,
    pub throughput: FloatGauge,
    pub model_metric: Family<MetricLabels, FloatGauge>,
    pub model_version: Gauge,
    /// Time training waited for prediction requests (`serve.pause_training_ms`) or rested while
    /// they were being served (`serve.training_slice_us`).
    pub training_paused: Counter<f64, AtomicU64>,
    /// Messages behind the partition's high watermark (Kafka sources).
    pub kafka_lag: Family<PartitionLabels, Gauge>,
}

impl PipelineMetrics {
    pub fn register(registry: &mut Registry) -> PipelineMetrics {
        let m = PipelineMetrics::default();
        registry.register(
            EVENTS_READ,
            "Records read from the source, dead letters included",
            m.events_read.clone(),
        );
        registry.register(
            EVENTS_LEARNED,
            "Events predicted and then learned",
            m.events_learned.clone(),
        );
        registry.register(
            EVENTS_DEAD_LETTERED,
            "Records refused, by reason",
            m.dead_lettered.clone(),
        );
        registry.register(
            CHECKPOINTS_WRITTEN,
            "Checkpoints written by this process",
            m.checkpoints.clone(),
        );
        registry.register(
            THROUGHPUT,
            "Records per second over the last progress interval",
            m.throughput.clone(),
        );
        registry.register(
            MODEL_METRIC,
            "Progressive validation metrics",
            m.model_metric.clone(),
        );
        registry.register(
            MODEL_VERSION,
            "Events learned by the live model",
            m.model_version.clone(),
        );
        registry.register(
            TRAINING_PAUSED,
            "Time training waited for a quiet moment between prediction requests or rested while serving",
            m.training_paused.clone(),
        );
        registry.register(
            KAFKA_CONSUMER_LAG,
            "Messages between the next offset to read and the partition's high watermark",
            m.kafka_lag.clone(),
        );
        m
    }

    pub fn set_model_metrics(&self, scope: &str, values: &[(&'static str, f64)]) {
        for (name, value) in values {
            self.model_metric
                .get_or_create(&MetricLabels {
                    metric: (*name).to_owned(),
                    scope: scope.to_owned(),
                })
                .set(*value);
        }
    }
}
