//! Progressive metrics scored on a thread of their own, beside the trainer.
//!
//! Scoring an event (log loss, accuracy, the exact AUC's table, the recent window) is about a
//! sixth of the trainer thread's work on a hashed binary stream, and the trainer thread is what
//! limits a replay. With [`TrainedModel::defer_scoring`] the learner leaves each event's
//! `(label, prediction)` pair in a list; the trainer ships the list once it holds [`SHIP_PAIRS`]
//! pairs (checked after every chunk) and this thread applies the pairs, in order, to the
//! metrics, which it holds meanwhile. Whenever the
//! trainer needs the metrics (a checkpoint, an export, a snapshot for the server, a report, a
//! learning-curve point) it calls them home: the thread first scores everything shipped, then
//! hands them back, so the metrics are exactly those of scoring each event as it was learned,
//! whatever the timing. Memory: at most [`SHIPPED`] lists in flight, each of fewer than
//! [`SHIP_PAIRS`] pairs plus one chunk's (16 bytes a pair).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use eddy_ml::ProgressiveMetrics;
use eddy_models::TrainedModel;

use crate::error::{Result, RuntimeError};
use crate::priority::{lower_this_thread, Yield};

/// Lists of pairs shipped and not yet scored, before the trainer waits.
const SHIPPED: usize = 4;

/// Pairs the trainer collects before it ships them: a wake-up of this thread every 32,768
/// events rather than every chunk, as each one costs both threads kernel time (on a 2-vCPU VM,
/// the trainer's share was ~1.5% of its time at one wake-up per 8,192-row chunk).
const SHIP_PAIRS: usize = 1 << 15;

/// The scoring thread's nice value at least.
const NICE: i32 = 10;

enum Job {
    Score(Vec<(f64, f64)>),
    /// Take these metrics and score the pairs that follow into them.
    Keep(Box<ProgressiveMetrics>),
    /// Hand the metrics back (after every pair shipped before).
    Return,
}

/// The trainer's end of the scoring thread.
pub(crate) struct Scorer {
    jobs: Option<SyncSender<Job>>,
    home: Receiver<Box<ProgressiveMetrics>>,
    /// Emptied lists coming back for reuse.
    spare: Receiver<Vec<(f64, f64)>>,
    /// True while the thread holds the metrics (the model has a stand-in).
    away: bool,
    /// Pairs collected before [`ship`](Self::ship) sends them ([`SHIP_PAIRS`]; tests lower it).
    ship_at: usize,
    thread: Option<JoinHandle<()>>,
}

impl Scorer {
    /// Starts scoring for `model` if its task allows it (binary and regression); `None` leaves
    /// the model scoring its events itself. The thread runs at a lower priority than the
    /// trainer and the source threads (`step_back`, the trainer's, or nice [`NICE`] if that is
    /// higher): it has time to spare, and on a CPU it shares with the source threads they, which
    /// the trainer waits for, go first.
    pub(crate) fn start(model: &mut TrainedModel, step_back: Yield) -> Result<Option<Scorer>> {
        if !model.defer_scoring() {
            return Ok(None);
        }
        let (jobs, inbox) = sync_channel::<Job>(SHIPPED);
        let (home_tx, home) = sync_channel(1);
        let (spare_tx, spare) = sync_channel(SHIPPED);
        let thread = std::thread::Builder::new()
            .name("eddy-score".into())
            .spawn(move || {
                let _placed = crate::placement::off_trainer_cpu();
                let _lowered = lower_this_thread(match step_back {
                    Yield::Nice(nice) => Yield::Nice(nice.max(NICE)),
                    Yield::Idle => Yield::Idle,
                });
                let mut metrics: Option<Box<ProgressiveMetrics>> = None;
                for job in inbox {
                    match job {
                        Job::Keep(m) => metrics = Some(m),
                        Job::Score(mut pairs) => {
                            // pairs come only while this thread holds the metrics
                            if let Some(m) = metrics.as_mut() {
                                score(m, &pairs);
                            }
                            pairs.clear();
                            let _ = spare_tx.try_send(pairs);
                        }
                        Job::Return => {
                            if let Some(m) = metrics.take() {
                                if home_tx.send(m).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            })
            .map_err(|e| RuntimeError::Internal(format!("starting the scoring thread: {e}")))?;
        let mut scorer = Scorer {
            jobs: Some(jobs),
            home,
            spare,
            away: false,
            ship_at: SHIP_PAIRS,
            thread: Some(thread),
        };
        scorer.away(model)?;
        Ok(Some(scorer))
    }

    fn send(&self, job: Job) -> Result<()> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| RuntimeError::Internal("the scoring thread stopped".into()))
    }

    /// Scores the pairs `model` has collected: on the thread when it holds the metrics (once
    /// there are [`SHIP_PAIRS`] of them; [`home`](Self::home) takes the rest), here otherwise.
    pub(crate) fn ship(&mut self, model: &mut TrainedModel) -> Result<()> {
        let few = model
            .scored
            .as_ref()
            .is_some_and(|s| s.len() < self.ship_at);
        if self.away && few {
            return Ok(());
        }
        self.flush(model)
    }

    /// [`ship`](Self::ship) whatever the number of pairs.
    fn flush(&mut self, model: &mut TrainedModel) -> Result<()> {
        let Some(scored) = model.scored.as_mut() else {
            return Ok(());
        };
        if scored.is_empty() {
            return Ok(());
        }
        if !self.away {
            score(&mut model.metrics, scored);
            scored.clear();
            return Ok(());
        }
        let fresh = self.spare.try_recv().unwrap_or_default();
        let pairs = std::mem::replace(scored, fresh);
        self.send(Job::Score(pairs))
    }

    /// Puts the metrics, with every shipped pair scored, back into `model`.
    pub(crate) fn home(&mut self, model: &mut TrainedModel) -> Result<()> {
        self.flush(model)?;
        if !self.away {
            return Ok(());
        }
        self.send(Job::Return)?;
        let metrics = self
            .home
            .recv()
            .map_err(|_| RuntimeError::Internal("the scoring thread stopped".into()))?;
        model.metrics = *metrics;
        self.away = false;
        Ok(())
    }

    /// Hands `model`'s metrics to the thread (the model keeps an empty stand-in).
    pub(crate) fn away(&mut self, model: &mut TrainedModel) -> Result<()> {
        // pairs gathered while the metrics were here are scored here; while they are away,
        // pairs keep gathering up to the shipping size
        self.ship(model)?;
        if self.away {
            return Ok(());
        }
        let stand_in = ProgressiveMetrics::new(model.metrics.task(), 1);
        let metrics = std::mem::replace(&mut model.metrics, stand_in);
        self.send(Job::Keep(Box::new(metrics)))?;
        self.away = true;
        Ok(())
    }

    /// Calls the metrics home and stops the thread; the model scores its own events again.
    pub(crate) fn stop(mut self, model: &mut TrainedModel) -> Result<()> {
        let home = self.home(model);
        model.scored = None;
        home
    }
}

/// Scores `pairs` into `metrics`, in order.
fn score(metrics: &mut ProgressiveMetrics, pairs: &[(f64, f64)]) {
    for &(y, p) in pairs {
        metrics.update(y, p);
    }
}

impl Drop for Scorer {
    fn drop(&mut self) {
        // closing the channel ends the thread's loop
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use eddy_features::{FeatureBatch, FeatureConfig};
    use eddy_ml::{LinearModel, Loss, Task};
    use eddy_models::{LearnerParams, ModelSpec};

    use super::*;

    fn model(task: Task) -> (Arc<ModelSpec>, TrainedModel) {
        let features = vec![
            FeatureConfig::StandardScaler {
                fields: vec!["x".into()],
            },
            FeatureConfig::Hash {
                fields: vec!["c".into()],
                bits: 6,
                seed: 0,
            },
        ];
        let spec = Arc::new(ModelSpec::new("t", &features, Some("y"), task, None).unwrap());
        let loss = if task == Task::Binary {
            Loss::Logistic
        } else {
            Loss::Squared
        };
        let params = LearnerParams::Linear(LinearModel::params(loss).check().unwrap());
        let model = TrainedModel::new(&spec, &params, None, 50).unwrap();
        (spec, model)
    }

    /// Batch `k` of a seeded stream (a label that is sometimes unparsable or missing, so that
    /// some pairs are ignored).
    fn batch(spec: &ModelSpec, k: usize, task: Task) -> arrow_array::RecordBatch {
        let mut builder = spec.batch_builder();
        for i in 0..37 {
            let n = k * 37 + i;
            let x = ((n * 7919) % 101) as f64 / 10.0;
            let y = if task == Task::Binary {
                format!("{}", u8::from(x > 4.0 + (n % 3) as f64))
            } else {
                format!("{}", x * 2.0 + (n % 5) as f64)
            };
            let line = format!(r#"{{"x": {x}, "c": "v{}", "y": {y}}}"#, n % 13);
            builder.push_json(line.as_bytes()).unwrap();
        }
        builder.finish()
    }

    #[test]
    fn metrics_scored_on_the_thread_equal_metrics_scored_inline() {
        // shipping every chunk, every few chunks, and (the default) only when called home
        for (task, ship_at) in [Task::Binary, Task::Regression]
            .into_iter()
            .flat_map(|t| [(t, 1), (t, 100), (t, SHIP_PAIRS)])
        {
            let (spec, mut inline) = model(task);
            let (_, mut deferred) = model(task);
            let mut scorer = Scorer::start(&mut deferred, Yield::Nice(0))
                .unwrap()
                .expect("deferrable");
            scorer.ship_at = ship_at;
            let (mut a, mut b) = (FeatureBatch::new(), FeatureBatch::new());
            for k in 0..40 {
                let batch = batch(&spec, k, task);
                inline
                    .learn_batch(&spec, &batch, &mut a, |_, _| {})
                    .unwrap();
                deferred
                    .learn_batch(&spec, &batch, &mut b, |_, _| {})
                    .unwrap();
                scorer.ship(&mut deferred).unwrap();
                let waiting = deferred.scored.as_ref().map_or(0, Vec::len);
                assert!(waiting < ship_at || !scorer.away, "{waiting} pairs left");
                // the metrics come home and leave again at irregular points, and some chunks are
                // learned while they are home
                if k % 7 == 3 {
                    scorer.home(&mut deferred).unwrap();
                    assert_eq!(deferred.metrics, inline.metrics, "{task:?} after batch {k}");
                }
                if k % 5 != 4 {
                    scorer.away(&mut deferred).unwrap();
                }
            }
            scorer.stop(&mut deferred).unwrap();
            assert!(deferred.scored.is_none());
            assert_eq!(deferred.metrics, inline.metrics, "{task:?}");
            assert_eq!(deferred.metrics.count(), inline.metrics.count());
            assert!(inline.metrics.count() > 1_000);
        }
    }

    #[test]
    fn pairs_gather_to_the_shipping_size_while_the_metrics_are_away() {
        let (spec, mut model) = model(Task::Binary);
        let mut scorer = Scorer::start(&mut model, Yield::Nice(0))
            .unwrap()
            .expect("deferrable");
        scorer.ship_at = 100;
        let mut scratch = FeatureBatch::new();
        let mut shipped = Vec::new();
        for k in 0..12 {
            let batch = batch(&spec, k, Task::Binary);
            model
                .learn_batch(&spec, &batch, &mut scratch, |_, _| {})
                .unwrap();
            let before = model.scored.as_ref().map_or(0, Vec::len);
            // what the trainer does after every chunk
            scorer.ship(&mut model).unwrap();
            scorer.away(&mut model).unwrap();
            match model.scored.as_ref().map_or(0, Vec::len) {
                0 => shipped.push(before),
                after => assert_eq!(after, before, "batch {k}"),
            }
        }
        // batches of 37 rows (a few labels unscored): a list leaves once 100 pairs gathered
        assert!(shipped.len() >= 3, "{shipped:?}");
        assert!(
            shipped.iter().all(|&n| (100..140).contains(&n)),
            "{shipped:?}"
        );
        scorer.stop(&mut model).unwrap();
    }

    #[test]
    fn only_binary_and_regression_models_defer_scoring() {
        let (_, mut binary) = model(Task::Binary);
        assert!(Scorer::start(&mut binary, Yield::Nice(0))
            .unwrap()
            .is_some());
        let (_, mut multiclass) = model(Task::Multiclass);
        assert!(Scorer::start(&mut multiclass, Yield::Nice(0))
            .unwrap()
            .is_none());
        assert!(multiclass.scored.is_none());
    }

    /// `(nice, scheduling policy, CPUs allowed)` of every live scoring thread of this process.
    #[cfg(target_os = "linux")]
    fn scoring_threads() -> Vec<(i32, i32, String)> {
        let mut found = Vec::new();
        for task in crate::priority::threads_named("eddy-score") {
            let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
            let cpus = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .unwrap_or("")
                .trim()
                .to_owned();
            let field = |n| crate::priority::stat_field(&task, n);
            if let (Some(nice), Some(policy)) = (field(19), field(41)) {
                found.push((nice, policy, cpus));
            }
        }
        found
    }

    /// The scoring thread steps back: behind the source threads (nice 10 at least, or the
    /// trainer's idle class) and off the trainer's CPU.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_scoring_thread_runs_behind_and_beside_the_trainer() {
        let (_, mut model) = model(Task::Binary);
        let scorer = Scorer::start(&mut model, Yield::Nice(3))
            .unwrap()
            .expect("deferrable");
        let mut seen = scoring_threads();
        for _ in 0..200 {
            if !seen.is_empty() && seen.iter().all(|(nice, _, _)| *nice != 0) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            seen = scoring_threads();
        }
        assert!(!seen.is_empty());
        for (nice, policy, cpus) in &seen {
            assert!(*nice >= NICE || *policy == libc::SCHED_IDLE, "{seen:?}");
            if let Some(cpu) = crate::placement::trainer_cpu() {
                let allowed = cpu_list(cpus);
                assert!(!allowed.contains(&cpu), "{seen:?}");
            }
        }
        drop(scorer);
    }

    /// The CPUs of a list such as `0-2,5`.
    #[cfg(target_os = "linux")]
    fn cpu_list(list: &str) -> Vec<usize> {
        let mut cpus = Vec::new();
        for part in list.split(',').filter(|p| !p.is_empty()) {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            cpus.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap());
        }
        cpus
    }
}
