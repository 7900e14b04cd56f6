//! Wiring of one pipeline run: restore, source thread, ordered trainer thread, HTTP server,
//! final checkpoint and summary.
//!
//! The source decodes on its own thread ahead of the trainer (bounded channel, so a slow trainer
//! slows the reader and memory stays bounded); the trainer is the single ordered consumer, which
//! is what makes the result independent of micro-batch size and of timing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_features::{FeatureBatch, Prepared};
use eddy_models::server::{BoundServer, LearnRequest, Served};
use eddy_models::{Demand, LatestPredictions, ModelHandle, Pacer, RecentDeadLetters, TrainedModel};
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::{mpsc, Notify};

use crate::checkpoint::{CheckpointStore, Counters};
use crate::config::{CheckpointConfig, ValidConfig};
use crate::error::{Result, RuntimeError};
use crate::metrics::PipelineMetrics;
use crate::priority::Yield;
use crate::sink::SinkConfig;
use crate::source::{BuildContext, Chunk, SourceConfig, TopicPartition};
use crate::trainer::{CheckpointPolicy, Message, ProgressFn, Trainer};

/// Chunks in flight between the source and the trainer.
const CHANNEL_CHUNKS: usize = 4;
const DEFAULT_CHECKPOINT_SECONDS: f64 = 10.0;

/// Asks a running pipeline to stop; it finishes the chunk at hand, checkpoints, and returns.
#[derive(Clone, Default)]
pub struct StopHandle {
    flag: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl StopHandle {
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub(crate) async fn stopped(&self) {
        let notified = self.notify.notified();
        if !self.is_stopped() {
            notified.await;
        }
    }
}

/// Told the server's address and the model's name once the server listens.
pub type ServingFn = Box<dyn FnOnce(SocketAddr, &str) + Send>;

/// Called when a run that lingers has ended its stream and goes on serving.
pub type LingerFn = Box<dyn FnOnce() + Send>;

/// How to run, beyond what the pipeline file says.
pub struct RunOptions {
    /// Stop after this many records in this run.
    pub max_events: Option<u64>,
    pub progress_every: Duration,
    pub on_progress: Option<ProgressFn>,
    /// Called once the server listens, with its address and the model's name.
    pub on_serving: Option<ServingFn>,
    pub stop: StopHandle,
    /// Continue from another run's checkpoint (file or directory) when the pipeline's own
    /// checkpoint directory holds none: its model state and counters, not its position.
    pub resume_from: Option<PathBuf>,
    /// Record a learning-curve point every this many events.
    pub curve_every: Option<u64>,
    /// When serving: after the source ends and the final checkpoint is written, keep answering
    /// HTTP (the final model, its latest predictions, the dashboard) until `stop`; the function
    /// is called when that begins.
    pub linger: Option<LingerFn>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            max_events: None,
            progress_every: Duration::from_secs(1),
            on_progress: None,
            on_serving: None,
            stop: StopHandle::default(),
            resume_from: None,
            curve_every: None,
            linger: None,
        }
    }
}

/// What a run did; `--summary-json` writes this.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Records read since the start of the stream, dead letters included.
    pub events: u64,
    pub learned: u64,
    pub dead_lettered: u64,
    /// Wall-clock seconds of this run.
    pub seconds: f64,
    /// Records handled per second in this run.
    pub events_per_sec: f64,
    pub metrics: BTreeMap<String, f64>,
    pub window_metrics: BTreeMap<String, f64>,
    pub model_version: u64,
    /// Records already handled by the checkpoint this run resumed from.
    pub resumed_from: Option<u64>,
    pub checkpoints_written: u64,
    pub checkpoint: Option<PathBuf>,
    /// Peer models averaged in (`[sync]`).
    pub sync_merges: u64,
    pub stopped_early: bool,
    /// The learning curve, when asked for (`RunOptions::curve_every`).
    #[serde(skip)]
    pub curve: Vec<crate::trainer::CurvePoint>,
}

fn to_map(values: &[(&'static str, f64)]) -> BTreeMap<String, f64> {
    values.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// Runs a checked pipeline to the end of its source (or until stopped).
pub async fn run(valid: ValidConfig, options: RunOptions) -> Result<Summary> {
    let config = &valid.config;
    let spec = Arc::clone(&valid.spec);

    let store = config
        .checkpoint
        .as_ref()
        .map(|c| CheckpointStore::open(&c.dir, c.keep))
        .transpose()?;
    let restored = match &store {
        Some(store) => store.load_latest()?,
        None => None,
    };
    if let Some((path, checkpoint)) = &restored {
        if checkpoint.fingerprint != valid.fingerprint {
            return Err(RuntimeError::Checkpoint {
                path: path.clone(),
                message: "written by a pipeline with other features or model settings; \
                          point checkpoint.dir elsewhere or remove it to start afresh"
                    .into(),
            });
        }
        tracing::info!(path = %path.display(), events = checkpoint.counters.events, "resuming from checkpoint");
    }
    // A checkpoint of this pipeline's own wins; else `--resume-from` gives the model state (not
    // the position: the source is a new one) of another run of the same pipeline.
    let continued = match (&restored, &options.resume_from) {
        (None, Some(path)) => {
            let checkpoint = crate::checkpoint::load_from(path)?;
            if checkpoint.fingerprint != valid.fingerprint {
                return Err(RuntimeError::Checkpoint {
                    path: path.clone(),
                    message: "written by a pipeline with other features or model settings".into(),
                });
            }
            tracing::info!(path = %path.display(), events = checkpoint.counters.events, "continuing from another run's state");
            Some(checkpoint)
        }
        _ => None,
    };
    let restored_handover = restored.as_ref().and_then(|(_, c)| c.handover.clone());
    let resumed_from = restored
        .as_ref()
        .map(|(_, c)| c.counters.events)
        .or(continued.as_ref().map(|c| c.counters.events));
    let (model, counters, events_base, position, predictions_len, dead_letters_len) =
        match (restored, continued) {
            (Some((_, c)), _) => (
                Some(c.model),
                c.counters,
                c.events_base,
                Some(c.position),
                c.predictions_len,
                c.dead_letters_len,
            ),
            (None, Some(c)) => (
                Some(c.model),
                c.counters,
                c.counters.events,
                None,
                None,
                None,
            ),
            // a fresh model is built once the source is open (below)
            (None, None) => (None, Counters::default(), 0, None, None, None),
        };

    let mut registry = Registry::default();
    let metrics = PipelineMetrics::register(&mut registry);
    metrics.events_read.inc_by(counters.events);
    metrics.events_learned.inc_by(counters.learned);

    let (tx, mut rx) = mpsc::channel::<Message>(CHANNEL_CHUNKS);
    let rebalance = Arc::new(TrainerRebalance { tx: tx.clone() });
    let meter = Arc::new(crate::source::InputMeter::default());
    let fresh_features;
    let features = match &model {
        Some(model) => &model.features,
        None => {
            fresh_features = eddy_features::FeatureSet::new(&spec.feature_configs, &spec.schema)?;
            &fresh_features
        }
    };
    let dictionary_fields = features
        .hash_only_fields()
        .into_iter()
        .filter(|f| Some(*f) != spec.key_field.as_deref() && Some(*f) != spec.target.as_deref())
        .map(str::to_owned)
        .collect();
    let mut source = config.source.build(BuildContext {
        builder: spec.batch_builder(),
        resume: position.clone(),
        kafka_lag: Some(metrics.kafka_lag.clone()),
        rebalance: Some(rebalance),
        meter: Arc::clone(&meter),
        dictionary_fields,
    })?;
    // Built after the source: a columnar source decodes its first batch meanwhile, and a large
    // hashed model spends about as long zeroing its table.
    let model = match model {
        Some(model) => model,
        None => TrainedModel::new(
            &spec,
            &valid.learner,
            config.model.per_key.then_some(config.model.max_models),
            config.model.metrics_window,
        )?,
    };
    let committer = source.committer();
    let predictions = config
        .sinks
        .predictions
        .as_ref()
        .map(|s| s.open(predictions_len))
        .transpose()?;
    // Dead letters are kept beside the checkpoints when no sink is named, so none is lost.
    let dead_config = config.sinks.dead_letters.clone().or_else(|| {
        store.as_ref().map(|s| SinkConfig::File {
            path: s.dir().join("dead-letters.jsonl"),
        })
    });
    let dead_letters = dead_config
        .as_ref()
        .map(|s| s.open(dead_letters_len))
        .transpose()?;

    let mut options = options;
    let handle = config
        .serve
        .enabled
        .then(|| ModelHandle::new(model.snapshot(Arc::clone(&spec))));
    let recent_dead_letters = handle.as_ref().map(|_| RecentDeadLetters::default());
    let latest = (handle.is_some() && config.serve.latest_keys > 0)
        .then(|| LatestPredictions::with_capacity(config.serve.latest_keys));
    // Serving first: the server counts prediction requests; the trainer waits for a gap between
    // them (pause_training_ms) or rests between slices of learning while they come
    // (training_slice_us).
    let serve = &config.serve;
    let (slice, rest) = (serve.training_slice_us, serve.training_rest_us);
    let demand =
        (handle.is_some() && (serve.pause_training_ms > 0 || slice > 0)).then(Demand::default);
    let pacer = demand
        .clone()
        .filter(|_| slice > 0)
        .map(|d| Pacer::new(d, Duration::from_micros(slice), Duration::from_micros(rest)));
    let waits = demand.clone().filter(|_| serve.pause_training_ms > 0);
    let quiet = Duration::from_millis(serve.pause_training_ms);
    let max_pause = Duration::from_millis(serve.max_training_pause_ms);
    let server_stop = StopHandle::default();
    let server_task = match &handle {
        Some(handle) => {
            // HTTP-fed events join the ordered stream through the trainer's own channel.
            let (learn_tx, mut learn_rx) = mpsc::channel::<LearnRequest>(64);
            let forward = tx.clone();
            tokio::spawn(async move {
                while let Some(request) = learn_rx.recv().await {
                    if forward.send(Message::Learn(request)).await.is_err() {
                        break;
                    }
                }
            });
            let served = Served {
                models: vec![handle.clone()],
                learn: [(spec.name.clone(), learn_tx)].into_iter().collect(),
                registry: None,
                dead_letters: recent_dead_letters.clone(),
                latest: latest
                    .iter()
                    .map(|l| (spec.name.clone(), l.clone()))
                    .collect(),
                demand: demand.clone(),
            };
            let server =
                BoundServer::bind(&config.serve.server_options(), served, registry).await?;
            let addr = server.local_addr()?;
            tracing::info!(%addr, model = %spec.name, "serving the live model");
            if let Some(on_serving) = options.on_serving.take() {
                on_serving(addr, &spec.name);
            }
            let stop = server_stop.clone();
            Some(tokio::spawn(
                server.serve(async move { stop.stopped().await }),
            ))
        }
        None => None,
    };

    let now = Instant::now();
    let checkpoints = match (store, &config.checkpoint) {
        (Some(store), Some(c)) => {
            let seconds = match (c.interval_events, c.interval_seconds) {
                (None, None) => Some(DEFAULT_CHECKPOINT_SECONDS),
                (_, s) => s,
            };
            Some(CheckpointPolicy {
                store,
                every_events: c.interval_events,
                every: seconds.map(Duration::from_secs_f64),
            })
        }
        _ => None,
    };
    let export = match &config.export {
        Some(e) => Some(crate::trainer::ExportPolicy {
            registry: eddy_models::Registry::open(&e.registry)?,
            model_config: config.model.clone(),
            every_events: e.interval_events,
            every: e.interval_seconds.map(Duration::from_secs_f64),
            promote: e.promote,
            last: (now, counters.events),
            versions: e.topic.as_ref().map(|t| t.open()).transpose()?,
        }),
        None => None,
    };
    let sync = config
        .sync
        .as_ref()
        .map(|c| crate::sync::ModelSync::open(c, &model))
        .transpose()?;
    let handover = match (&config.checkpoint, &config.source) {
        (
            Some(CheckpointConfig {
                shared_dir: Some(dir),
                ..
            }),
            SourceConfig::Kafka(k),
        ) => Some(crate::handover::Handover::open(
            dir,
            &k.group,
            &spec,
            &model,
            restored_handover,
        )?),
        _ => None,
    };
    let mut trainer = Trainer {
        spec: Arc::clone(&spec),
        fingerprint: valid.fingerprint,
        model,
        counters,
        events_base,
        position: position.unwrap_or_default(),
        curve_every: options.curve_every,
        curve: Vec::new(),
        predictions,
        dead_letters,
        committer,
        handover,
        sync,
        checkpoints,
        export,
        metrics,
        handle,
        recent_dead_letters,
        latest,
        publish_every: Duration::from_millis(config.serve.publish_interval_ms),
        progress: options.on_progress.take(),
        progress_every: options.progress_every,
        meter,
        started: now,
        scratch: FeatureBatch::new(),
        line: Vec::with_capacity(256),
        pacer,
        last_checkpoint: (now, counters.events),
        last_publish: now,
        last_progress: (now, counters.events),
        checkpoints_written: 0,
        last_checkpoint_path: None,
        scorer: None,
        reported: None,
    };
    // Serving goes first: the source and the trainer yield the CPU to the HTTP threads.
    let step_back = match (config.serve.enabled, config.serve.trainer_idle) {
        (false, _) => Yield::Nice(0),
        (true, true) => Yield::Idle,
        (true, false) => Yield::Nice(config.serve.trainer_nice),
    };
    trainer.scorer = crate::scoring::Scorer::start(&mut trainer.model, step_back)?;
    tracing::debug!(
        cpu = ?crate::placement::trainer_cpu(),
        "the source and scoring threads keep off this CPU"
    );

    let batch_size = config.source.batch_size();
    let stop = options.stop.clone();
    let max_events = options.max_events;
    let (finished_tx, finished) = std::sync::mpsc::channel::<()>();
    let preparer = trainer.model.preparer();
    // Chunks the trainer is done with go back to the source thread to be freed while the trainer
    // is behind (chunks queued for it): their buffers come from the decoding threads, and
    // freeing them on the trainer (glibc's free and consolidation, some unmapping) cost ~8% of
    // a Parquet replay's wall time. With nothing queued the trainer has time to spare and frees
    // the chunk itself,
    // which keeps a source-bound replay (JSON Lines) as fast as before. At most the chunks in
    // flight wait here.
    let (spent_tx, spent) = std::sync::mpsc::channel::<(Chunk, Option<Prepared>)>();
    let reader = tokio::task::spawn_blocking(move || {
        let _placed = crate::placement::off_trainer_cpu();
        let _lowered = crate::priority::lower_this_thread(step_back);
        let mut read = 0u64;
        loop {
            let want = max_events.map_or(batch_size as u64, |m| (batch_size as u64).min(m - read));
            if stop.is_stopped() || want == 0 {
                break;
            }
            spent.try_iter().for_each(drop);
            let chunk = match source.next_chunk(want as usize) {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.blocking_send(Message::Chunk(Err(e), None));
                    break;
                }
            };
            read += (chunk.seqs.len() + chunk.dead.len()) as u64;
            // A full queue means the trainer is behind and this thread has time to spare: it
            // computes the chunk's stateless features (hashing) so the trainer need not. The
            // features are the same either way; only who computes them depends on timing.
            let message = match tx.try_send(Message::Chunk(Ok(chunk), None)) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(message)) => match (message, &preparer) {
                    (Message::Chunk(Ok(chunk), None), Some(preparer)) => {
                        // A batch the operators cannot read is left to the trainer to refuse.
                        let prepared = preparer.prepare(&chunk.batch).ok();
                        Message::Chunk(Ok(chunk), prepared)
                    }
                    (message, _) => message,
                },
            };
            if tx.blocking_send(message).is_err() {
                return;
            }
        }
        // The server holds a sender too, so the end of the source is a message, not a close.
        let _ = tx.blocking_send(Message::End);
        // Keep the source (a Kafka consumer) open until the trainer's final checkpoint has
        // committed its offsets; it closes here, on this thread.
        let _ = finished.recv();
        drop(source);
    });

    let stop = options.stop.clone();
    let trainer_stop = options.stop.clone();
    let trained = tokio::task::spawn_blocking(move || {
        let _lowered = crate::priority::lower_this_thread(step_back);
        let mut failure = None;
        while let Some(message) = rx.blocking_recv() {
            let outcome = match message {
                Message::Chunk(chunk, prepared) => {
                    if let Some(demand) = &waits {
                        let stopped = || trainer_stop.is_stopped();
                        let waited = demand.wait_for_quiet(quiet, max_pause, stopped);
                        if !waited.is_zero() {
                            trainer.metrics.training_paused.inc_by(waited.as_secs_f64());
                        }
                    }
                    chunk
                        .and_then(|chunk| trainer.process(chunk, prepared))
                        .map(|spent| {
                            if !rx.is_empty() {
                                // the source thread gone, the chunk comes back and is freed here
                                drop(spent_tx.send(spent));
                            }
                        })
                }
                Message::Learn(request) => trainer.learn_request(request),
                Message::Revoke { partitions, done } => {
                    let outcome = trainer.revoke(&partitions);
                    let _ = done.send(());
                    outcome
                }
                Message::Assign {
                    partitions,
                    assigned,
                    starts,
                } => trainer
                    .assign(&partitions, &assigned)
                    .map(|s| drop(starts.send(s))),
                Message::End => break,
            };
            if let Err(e) = outcome {
                failure = Some(e);
                break;
            }
        }
        drop(rx);
        // What was processed is consistent whatever stopped us: checkpoint it.
        let finished = trainer.checkpoint().and_then(|()| trainer.export());
        if let Some(sync) = &trainer.sync {
            sync.flush();
        }
        drop(finished_tx);
        trainer.publish();
        trainer.report();
        let finished = finished.and_then(|()| trainer.stop_scoring());
        match (failure, finished) {
            (Some(e), _) | (None, Err(e)) => Err(e),
            (None, Ok(())) => Ok(trainer),
        }
    })
    .await
    .map_err(|e| RuntimeError::Internal(format!("the trainer thread failed: {e}")))?;
    reader
        .await
        .map_err(|e| RuntimeError::Internal(format!("the source thread failed: {e}")))?;

    if let Some(on_linger) = options.linger.take() {
        if server_task.is_some() && trained.is_ok() {
            on_linger();
            options.stop.stopped().await;
        }
    }
    server_stop.stop();
    if let Some(task) = server_task {
        task.await
            .map_err(|e| RuntimeError::Internal(format!("the server task failed: {e}")))??;
    }
    let trainer = trained?;
    let seconds = trainer.started.elapsed().as_secs_f64();
    let handled = trainer
        .counters
        .events
        .saturating_sub(resumed_from.unwrap_or(0));
    let (values, window) = trainer.metric_values();
    Ok(Summary {
        events: trainer.counters.events,
        learned: trainer.counters.learned,
        dead_lettered: trainer.counters.dead_lettered,
        seconds,
        events_per_sec: if seconds > 0.0 {
            handled as f64 / seconds
        } else {
            0.0
        },
        metrics: to_map(&values),
        window_metrics: to_map(&window),
        model_version: trainer.model.events_learned,
        resumed_from,
        checkpoints_written: trainer.checkpoints_written,
        sync_merges: trainer.sync.as_ref().map_or(0, |s| s.merges),
        checkpoint: trainer.last_checkpoint_path.clone(),
        stopped_early: stop.is_stopped(),
        curve: trainer.curve.clone(),
    })
}

/// The trainer's side of a Kafka rebalance: each call goes through the trainer's channel, after
/// every chunk sent before it, and waits for the answer.
struct TrainerRebalance {
    tx: mpsc::Sender<Message>,
}

impl crate::source::Rebalance for TrainerRebalance {
    fn revoke(&self, partitions: &[TopicPartition]) {
        let (done, finished) = std::sync::mpsc::sync_channel(1);
        let partitions = partitions.to_vec();
        // Fails only when the trainer has stopped, and then there is nothing to wait for.
        if self
            .tx
            .blocking_send(Message::Revoke { partitions, done })
            .is_ok()
        {
            let _ = finished.recv();
        }
    }

    fn assign(
        &self,
        partitions: &[TopicPartition],
        assigned: &[TopicPartition],
    ) -> Vec<(TopicPartition, i64)> {
        let (starts, answer) = std::sync::mpsc::sync_channel(1);
        let message = Message::Assign {
            partitions: partitions.to_vec(),
            assigned: assigned.to_vec(),
            starts,
        };
        if self.tx.blocking_send(message).is_err() {
            return Vec::new();
        }
        // No answer: the trainer failed (it reports why) and the run is ending.
        answer.recv().unwrap_or_default()
    }
}
