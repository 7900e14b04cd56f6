//! The ordered learner stage: takes chunks in stream order, predicts then learns each event,
//! writes sinks, checkpoints at chunk boundaries, publishes snapshots and reports progress.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow_array::{Array, StringArray};
use eddy_features::{FeatureBatch, Prepared};
use eddy_ml::MetricValues;
use eddy_models::server::{LearnReply, LearnRequest};
use eddy_models::{
    row_json, row_object, InstanceError, LatestPrediction, LatestPredictions, ModelHandle,
    ModelSpec, RecentDeadLetters, RowOutcome, TrainedModel,
};
use serde::Serialize;

use crate::checkpoint::{Checkpoint, CheckpointStore, Counters};
use crate::error::Result;
use crate::metrics::{PipelineMetrics, ReasonLabels};
use crate::sink::LineSink;
use crate::source::{Chunk, Coordinates, DeadLetter, Position, TopicPartition};

/// What the progress callback sees at each interval.
#[derive(Clone, Debug)]
pub struct Progress {
    pub counters: Counters,
    pub elapsed: Duration,
    /// Records per second over the last interval.
    pub rate: f64,
    pub metric: (&'static str, f64),
    pub window_metric: (&'static str, f64),
    /// Bytes of a file input read so far, and the input's size when it is finite and known.
    pub input_read: u64,
    pub input_total: Option<u64>,
}

pub type ProgressFn = Box<dyn FnMut(&Progress) + Send>;

/// One point of a learning curve: the progressive metric after `events` events.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CurvePoint {
    pub events: u64,
    pub metric: &'static str,
    pub value: f64,
    pub window_value: f64,
}

/// What reaches the trainer, in order.
pub(crate) enum Message {
    /// The next chunk of the source (or why it could not be read), with its stateless
    /// features when the source thread had time to compute them.
    Chunk(Result<Chunk>, Option<Prepared>),
    /// Labelled events sent over HTTP (`POST /v1/models/{name}/learn`).
    Learn(LearnRequest),
    /// The source gives up partitions: checkpoint and commit, hand their keyed state over,
    /// then acknowledge.
    Revoke {
        partitions: Vec<TopicPartition>,
        done: std::sync::mpsc::SyncSender<()>,
    },
    /// The source gained partitions (`assigned` is the whole assignment now): take their
    /// keyed state over and answer the offsets they must start at.
    Assign {
        partitions: Vec<TopicPartition>,
        assigned: Vec<TopicPartition>,
        starts: std::sync::mpsc::SyncSender<Vec<(TopicPartition, i64)>>,
    },
    /// The source has ended.
    End,
}

#[derive(Serialize)]
struct PredictionLine<'a> {
    position: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    prediction: &'a serde_json::Value,
    model_version: u64,
    /// Topic, partition, offset and timestamp of a Kafka record: consumers deduplicate on them.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    source: Option<&'a Coordinates>,
    /// Milliseconds from the record's timestamp to its prediction (Kafka records).
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<i64>,
}

/// When to export a model version.
pub(crate) struct ExportPolicy {
    pub(crate) registry: eddy_models::Registry,
    pub(crate) model_config: crate::config::ModelConfig,
    pub(crate) every_events: Option<u64>,
    pub(crate) every: Option<Duration>,
    pub(crate) promote: bool,
    pub(crate) last: (Instant, u64),
    /// `[export.topic]`: each version's artifact is also published here.
    pub(crate) versions: Option<LineSink>,
}

/// When to checkpoint.
pub(crate) struct CheckpointPolicy {
    pub(crate) store: CheckpointStore,
    pub(crate) every_events: Option<u64>,
    pub(crate) every: Option<Duration>,
}

pub(crate) struct Trainer {
    pub(crate) spec: Arc<ModelSpec>,
    pub(crate) fingerprint: u64,
    pub(crate) model: TrainedModel,
    pub(crate) counters: Counters,
    pub(crate) events_base: u64,
    pub(crate) position: Position,
    /// Learning curve: a point every this many events, and the points so far.
    pub(crate) curve_every: Option<u64>,
    pub(crate) curve: Vec<CurvePoint>,
    pub(crate) predictions: Option<LineSink>,
    pub(crate) dead_letters: Option<LineSink>,
    /// Told each durable checkpoint's position (Kafka: commits the offsets to the group).
    pub(crate) committer: Option<crate::source::Committer>,
    /// Keyed state that moves with its partition, when `checkpoint.shared_dir` is set.
    pub(crate) handover: Option<crate::handover::Handover>,
    /// Model averaging with the other workers, when `[sync]` is set.
    pub(crate) sync: Option<crate::sync::ModelSync>,
    pub(crate) checkpoints: Option<CheckpointPolicy>,
    pub(crate) export: Option<ExportPolicy>,
    pub(crate) metrics: PipelineMetrics,
    pub(crate) handle: Option<ModelHandle>,
    /// The newest dead letters, for the dashboard (when serving).
    pub(crate) recent_dead_letters: Option<RecentDeadLetters>,
    /// The newest prediction per key, for `GET /v1/models/{name}/latest` (when serving).
    pub(crate) latest: Option<LatestPredictions>,
    pub(crate) publish_every: Duration,
    pub(crate) progress: Option<ProgressFn>,
    pub(crate) progress_every: Duration,
    pub(crate) meter: Arc<crate::source::InputMeter>,
    // Running state.
    pub(crate) started: Instant,
    pub(crate) scratch: FeatureBatch,
    pub(crate) line: Vec<u8>,
    /// Rests between slices of learning while predictions are served (`serve.training_slice_us`).
    pub(crate) pacer: Option<eddy_models::Pacer>,
    pub(crate) last_checkpoint: (Instant, u64),
    pub(crate) last_publish: Instant,
    pub(crate) last_progress: (Instant, u64),
    pub(crate) checkpoints_written: u64,
    pub(crate) last_checkpoint_path: Option<std::path::PathBuf>,
    /// Scores the progressive metrics on another thread (binary and regression models).
    pub(crate) scorer: Option<crate::scoring::Scorer>,
    /// The last report's metric values (stream, window) and the model version they are of, so
    /// the summary after the final report does not sum the exact AUC's 2^18 bins again.
    pub(crate) reported: Option<(u64, MetricValues, MetricValues)>,
}

impl Trainer {
    /// Handles one chunk completely: dead letters, progressive validation, sinks, and whatever
    /// checkpoint, publication or progress report is due. Gives the chunk back, and the
    /// prepared rows' container (holding the buffers they replaced), for the caller to free
    /// where it costs the trainer nothing.
    pub(crate) fn process(
        &mut self,
        chunk: Chunk,
        mut prepared: Option<Prepared>,
    ) -> Result<(Chunk, Option<Prepared>)> {
        for dead in &chunk.dead {
            self.dead_letter(dead)?;
        }
        let before = self.counters.learned;
        self.learn(&chunk, prepared.as_mut())?;
        self.metrics_ship()?;
        if let Some(sync) = self.sync.as_mut() {
            sync.after_learning(&mut self.model, self.counters.learned - before)?;
        }
        self.counters.events = self.events_base + chunk.end.records;
        self.record_curve()?;
        self.position = chunk.end.clone();
        self.metrics
            .events_read
            .inc_by((chunk.seqs.len() + chunk.dead.len()) as u64);
        self.metrics
            .model_version
            .set(self.model.events_learned as i64);
        self.maybe_checkpoint()?;
        self.maybe_export()?;
        self.maybe_publish();
        self.maybe_report();
        self.metrics_away()?;
        Ok((chunk, prepared))
    }

    /// Brings the progressive metrics back from the scoring thread, every event learned so far
    /// scored; a no-op when they are here.
    fn metrics_home(&mut self) -> Result<()> {
        match self.scorer.as_mut() {
            Some(scorer) => scorer.home(&mut self.model),
            None => Ok(()),
        }
    }

    /// Sends the events learned since the last call to be scored.
    fn metrics_ship(&mut self) -> Result<()> {
        match self.scorer.as_mut() {
            Some(scorer) => scorer.ship(&mut self.model),
            None => Ok(()),
        }
    }

    /// Hands the progressive metrics to the scoring thread until they are needed again.
    fn metrics_away(&mut self) -> Result<()> {
        match self.scorer.as_mut() {
            Some(scorer) => scorer.away(&mut self.model),
            None => Ok(()),
        }
    }

    /// Stops the scoring thread, the metrics home for good.
    pub(crate) fn stop_scoring(&mut self) -> Result<()> {
        match self.scorer.take() {
            Some(scorer) => scorer.stop(&mut self.model),
            None => Ok(()),
        }
    }

    fn record_curve(&mut self) -> Result<()> {
        let Some(every) = self.curve_every else {
            return Ok(());
        };
        let due = self.curve.last().map_or(every, |p| p.events + every);
        if self.counters.events >= due {
            self.metrics_home()?;
            let (metric, value) = self.model.metrics.primary();
            let window_value = self
                .model
                .metrics
                .window_values()
                .iter()
                .find(|(n, _)| *n == metric)
                .map_or(value, |(_, v)| *v);
            self.curve.push(CurvePoint {
                events: self.counters.events,
                metric,
                value,
                window_value,
            });
        }
        Ok(())
    }

    fn maybe_export(&mut self) -> Result<()> {
        let Some(policy) = &self.export else {
            return Ok(());
        };
        let (at, events) = policy.last;
        let by_events = policy
            .every_events
            .is_some_and(|n| self.counters.events - events >= n);
        let by_time = policy.every.is_some_and(|d| at.elapsed() >= d);
        if by_events || by_time {
            self.export()?;
        }
        Ok(())
    }

    /// Registers the current model as a new version.
    pub(crate) fn export(&mut self) -> Result<()> {
        self.metrics_home()?;
        let Some(policy) = self.export.as_mut() else {
            return Ok(());
        };
        let mut artifact = crate::export::artifact(
            &self.spec,
            &policy.model_config,
            &self.model,
            &self.position,
        );
        let version = crate::export::register(&policy.registry, &mut artifact, policy.promote)?;
        if let Some(topic) = policy.versions.as_mut() {
            // Exports are rare: wait for the broker, so a version that did not arrive is an error.
            topic.write_keyed(Some(&self.spec.name), &artifact.to_bytes()?)?;
            topic.commit()?;
        }
        tracing::info!(model = %self.spec.name, version, events = self.counters.events, "exported a model version");
        policy.last = (Instant::now(), self.counters.events);
        Ok(())
    }

    fn learn(&mut self, chunk: &Chunk, prepared: Option<&mut Prepared>) -> Result<()> {
        if let Some(handover) = self.handover.as_mut() {
            handover.note(&chunk.batch, &chunk.origins);
        }
        let keys = self.spec.key_index().and_then(|i| {
            chunk
                .batch
                .column(i)
                .as_any()
                .downcast_ref::<StringArray>()
                .cloned()
        });
        let mut refused: Vec<DeadLetter> = Vec::new();
        let mut learned = 0u64;
        let mut sink_error = None;
        let predictions = &mut self.predictions;
        let line = &mut self.line;
        let pacer = &mut self.pacer;
        if let Some(pacer) = pacer.as_mut() {
            pacer.begin_chunk();
        }
        // When the latest are kept: each key's last learned row, its prediction and version.
        let mut newest: HashMap<Option<&str>, (usize, serde_json::Value, u64)> = HashMap::new();
        let keep_latest = self.latest.is_some();
        self.model.learn_batch_prepared(
            &self.spec,
            &chunk.batch,
            prepared,
            &mut self.scratch,
            predictions.is_some() || keep_latest,
            |row, outcome| {
                if let Some(pacer) = pacer.as_mut() {
                    pacer.row();
                }
                let seq = chunk.seqs[row];
                match outcome {
                    RowOutcome::Learned {
                        json,
                        version: model_version,
                        ..
                    } => {
                        learned += 1;
                        // without a sink or the latest, the row needs nothing more (a replay)
                        let Some(prediction) = json else {
                            return;
                        };
                        let key = keys
                            .as_ref()
                            .filter(|k| k.is_valid(row))
                            .map(|k| k.value(row));
                        if let Some(sink) = predictions.as_mut() {
                            let source = chunk.origins.get(row);
                            let record = PredictionLine {
                                position: seq,
                                key,
                                prediction: &prediction,
                                model_version,
                                source,
                                latency_ms: source.map(|s| now_ms() - s.timestamp_ms),
                            };
                            if let Err(e) = sink.write_json_keyed(key, &record, line) {
                                sink_error.get_or_insert(e);
                            }
                        }
                        if keep_latest {
                            newest.insert(key, (row, prediction, model_version));
                        }
                    }
                    RowOutcome::Refused(error) => refused.push(DeadLetter {
                        coordinates: chunk.origins.get(row).cloned(),
                        seq,
                        kind: error.kind.as_str(),
                        field: error.field.clone(),
                        reason: error.to_string(),
                        origin: format!("event {seq}"),
                        raw: row_json(&chunk.batch, row),
                    }),
                }
            },
        )?;
        if let Some(e) = sink_error {
            return Err(e);
        }
        self.counters.learned += learned;
        self.metrics.events_learned.inc_by(learned);
        if let Some(pacer) = self.pacer.as_mut() {
            let rested = pacer.end_chunk();
            if !rested.is_zero() {
                self.metrics.training_paused.inc_by(rested.as_secs_f64());
            }
        }
        if let Some(latest) = &self.latest {
            record_latest(latest, &self.spec, chunk, newest);
        }
        for dead in &refused {
            self.dead_letter(dead)?;
        }
        Ok(())
    }

    /// Learns events sent over HTTP: all of them or, if one does not decode, none. They change
    /// the model (and so the next checkpoint) but not the source position.
    pub(crate) fn learn_request(&mut self, request: LearnRequest) -> Result<()> {
        let mut builder = self.spec.batch_builder();
        for (index, record) in request.records.iter().enumerate() {
            if let Err(error) = builder.push_json(record) {
                let _ = request.reply.send(Err(InstanceError { index, error }));
                return Ok(());
            }
        }
        let batch = builder.finish();
        let mut predictions = Vec::with_capacity(batch.num_rows());
        let mut refused = None;
        self.model.learn_batch(
            &self.spec,
            &batch,
            &mut self.scratch,
            |row, outcome| match outcome {
                RowOutcome::Learned { json, .. } => predictions.push(json.unwrap_or_default()),
                RowOutcome::Refused(error) => {
                    refused.get_or_insert(InstanceError { index: row, error });
                }
            },
        )?;
        if let Some(e) = &refused {
            tracing::warn!(error = %e, "an event sent over HTTP was refused");
        }
        self.metrics_ship()?;
        self.counters.learned += predictions.len() as u64;
        self.metrics.events_learned.inc_by(predictions.len() as u64);
        let reply = LearnReply {
            predictions,
            model_version: self.model.events_learned,
        };
        let _ = request.reply.send(Ok(reply));
        self.maybe_publish();
        self.metrics_away()
    }

    fn dead_letter(&mut self, dead: &DeadLetter) -> Result<()> {
        self.counters.dead_lettered += 1;
        self.metrics
            .dead_lettered
            .get_or_create(&ReasonLabels {
                reason: dead.kind.to_owned(),
            })
            .inc();
        if let Some(sink) = self.dead_letters.as_mut() {
            sink.write_json(dead, &mut self.line)?;
        }
        if let Some(recent) = &self.recent_dead_letters {
            recent.push(dead.kind, dead.field.as_deref(), &dead.reason, &dead.origin);
        }
        Ok(())
    }

    fn maybe_checkpoint(&mut self) -> Result<()> {
        let Some(policy) = &self.checkpoints else {
            return Ok(());
        };
        let (at, events) = self.last_checkpoint;
        let by_events = policy
            .every_events
            .is_some_and(|n| self.counters.events - events >= n);
        let by_time = policy.every.is_some_and(|d| at.elapsed() >= d);
        if by_events || by_time {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Everything handled so far made durable and committed, and the keyed state of
    /// `partitions` handed over (a rebalance is about to move them away).
    pub(crate) fn revoke(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        if self.checkpoints.is_some() {
            self.checkpoint()?;
            if let Some(handover) = self.handover.as_mut() {
                handover.release(&self.spec, &mut self.model, partitions);
            }
            Ok(())
        } else {
            if let Some(sink) = self.predictions.as_mut() {
                sink.commit()?;
            }
            if let Some(commit) = self.committer.as_mut() {
                commit(&self.position);
            }
            Ok(())
        }
    }

    /// Takes the keyed state of newly assigned partitions over; the offsets they start at.
    pub(crate) fn assign(
        &mut self,
        partitions: &[TopicPartition],
        assigned: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, i64)>> {
        match self.handover.as_mut() {
            Some(handover) => handover.adopt(&self.spec, &mut self.model, partitions, assigned),
            None => Ok(Vec::new()),
        }
    }

    /// Makes the sinks durable, then writes a checkpoint that points at their lengths (and,
    /// with a shared directory, the files of the partitions held).
    pub(crate) fn checkpoint(&mut self) -> Result<()> {
        self.metrics_home()?;
        let Some(policy) = &self.checkpoints else {
            return Ok(());
        };
        let predictions_len = self
            .predictions
            .as_mut()
            .map(LineSink::commit)
            .transpose()?;
        let dead_letters_len = self
            .dead_letters
            .as_mut()
            .map(LineSink::commit)
            .transpose()?;
        let checkpoint = Checkpoint {
            fingerprint: self.fingerprint,
            created_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            position: self.position.clone(),
            predictions_len,
            dead_letters_len,
            counters: self.counters,
            events_base: self.events_base,
            model: self.model.clone(),
            handover: self.handover.as_ref().map(|h| h.state()),
        };
        let path = policy.store.write(&checkpoint)?;
        if let Some(handover) = self.handover.as_mut() {
            handover.publish(&self.spec, &self.model, &self.position)?;
        }
        if let Some(commit) = self.committer.as_mut() {
            commit(&self.position);
        }
        tracing::debug!(path = %path.display(), events = self.counters.events, "checkpoint written");
        self.last_checkpoint = (Instant::now(), self.counters.events);
        self.checkpoints_written += 1;
        self.last_checkpoint_path = Some(path);
        self.metrics.checkpoints.inc();
        Ok(())
    }

    fn maybe_publish(&mut self) {
        if self.handle.is_some() && self.last_publish.elapsed() >= self.publish_every {
            self.publish();
        }
    }

    pub(crate) fn publish(&mut self) {
        if self.home_or_log() {
            return;
        }
        if let Some(handle) = &self.handle {
            let snapshot = self.model.snapshot(Arc::clone(&self.spec));
            self.metrics.set_model_metrics("stream", &snapshot.metrics);
            self.metrics
                .set_model_metrics("window", &snapshot.window_metrics);
            handle.publish(snapshot);
            self.last_publish = Instant::now();
        }
    }

    fn maybe_report(&mut self) {
        if self.last_progress.0.elapsed() >= self.progress_every {
            self.report();
        }
    }

    pub(crate) fn report(&mut self) {
        if self.home_or_log() {
            return;
        }
        let (at, events) = self.last_progress;
        let secs = at.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            (self.counters.events - events) as f64 / secs
        } else {
            0.0
        };
        self.metrics.throughput.set(rate);
        let values = self.model.metrics.values();
        let window = self.model.metrics.window_values();
        self.metrics.set_model_metrics("stream", &values);
        self.metrics.set_model_metrics("window", &window);
        self.reported = Some((self.model.events_learned, values.clone(), window.clone()));
        if let Some(progress) = self.progress.as_mut() {
            let primary = self.model.metrics.primary();
            let window_primary = window
                .iter()
                .find(|(n, _)| *n == primary.0)
                .copied()
                .unwrap_or(primary);
            progress(&Progress {
                counters: self.counters,
                elapsed: self.started.elapsed(),
                rate,
                metric: primary,
                window_metric: window_primary,
                input_read: self.meter.read(),
                input_total: self.meter.total(),
            });
        }
        self.last_progress = (Instant::now(), self.counters.events);
    }

    /// [`metrics_home`](Self::metrics_home) for what cannot fail the run (a snapshot, a
    /// report): true, after logging why, when the metrics could not come home, and the caller
    /// skips its work rather than show a stand-in's values.
    fn home_or_log(&mut self) -> bool {
        match self.metrics_home() {
            Ok(()) => false,
            Err(e) => {
                tracing::error!(error = %e, "the progressive metrics are unavailable");
                true
            }
        }
    }

    /// The progressive metrics (stream, window), with the metrics home.
    pub(crate) fn metric_values(&self) -> (MetricValues, MetricValues) {
        match &self.reported {
            // metrics change only as events are learned
            Some((version, values, window)) if *version == self.model.events_learned => {
                (values.clone(), window.clone())
            }
            _ => (
                self.model.metrics.values(),
                self.model.metrics.window_values(),
            ),
        }
    }
}

/// Hands the newest learned row of each key in `chunk` to `latest`, in stream order (one lock
/// per chunk; only those rows are turned into JSON).
fn record_latest(
    latest: &LatestPredictions,
    spec: &ModelSpec,
    chunk: &Chunk,
    newest: HashMap<Option<&str>, (usize, serde_json::Value, u64)>,
) {
    let target = spec.target_index();
    let at_unix_ms = now_ms().max(0) as u64;
    let mut rows: Vec<_> = newest.into_iter().collect();
    rows.sort_unstable_by_key(|(_, (row, ..))| *row);
    // Built before the lock is taken, so readers never wait on JSON.
    let events: Vec<LatestPrediction> = rows
        .into_iter()
        .map(|(key, (row, prediction, model_version))| LatestPrediction {
            key: key.map(str::to_owned),
            prediction,
            model_version,
            position: chunk.seqs[row],
            record: row_object(&chunk.batch, row, target),
            at_unix_ms,
        })
        .collect();
    latest.record(events);
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
