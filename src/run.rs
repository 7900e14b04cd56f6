//! `eddy run` and `eddy replay`: their flags, the pipeline they make (a file, quick mode, or a
//! pipeline over recorded inputs, with the offline-order options), and running it with Ctrl-C
//! wired to a clean stop, progress on stderr and the final report.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use eddy_runtime::config::{ModelKind, RegressionLoss};
use eddy_runtime::quick::{quick_config, QuickOptions};
use eddy_runtime::source::FileFormat;
use eddy_runtime::{Progress, RunOptions, ServingFn, StopHandle, Summary, ValidConfig};

use crate::cli::check;
use crate::progress::{ProgressLine, Style};

#[derive(Clone, Copy, ValueEnum)]
enum ModelArg {
    Logistic,
    Linear,
    Softmax,
    Svm,
    Kmeans,
}

#[derive(Clone, Copy, ValueEnum)]
enum OptimizerArg {
    Sgd,
    Adagrad,
    Adam,
    Ftrl,
}

#[derive(Clone, Copy, ValueEnum)]
enum LossArg {
    Squared,
    Huber,
    EpsilonInsensitive,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Jsonl,
    Csv,
}

#[derive(Args)]
pub(crate) struct RunArgs {
    /// The pipeline file (TOML). Omit it to use quick mode with --input.
    pipeline: Option<PathBuf>,
    /// Quick mode: input file, directory or glob (JSON Lines, CSV, optionally gzip; Parquet,
    /// Arrow IPC), or a Kafka topic as kafka://HOST:PORT/TOPIC (JSON messages).
    #[arg(long)]
    input: Option<String>,
    /// Quick mode, Kafka input: the consumer group.
    #[arg(long)]
    group: Option<String>,
    /// Quick mode, Kafka input: end the run after this many seconds without a new message.
    #[arg(long, value_name = "SECONDS")]
    idle_timeout: Option<f64>,
    /// Quick mode: the field to predict.
    #[arg(long)]
    target: Option<String>,
    /// Quick mode: the learner.
    #[arg(long, value_enum, default_value = "logistic")]
    model: ModelArg,
    /// Quick mode: input format when the file name does not tell.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Quick mode: a string field copied into predictions as their key (never a feature).
    #[arg(long)]
    key: Option<String>,
    #[arg(long)]
    learning_rate: Option<f64>,
    #[arg(long)]
    l1: Option<f64>,
    #[arg(long)]
    l2: Option<f64>,
    /// Quick mode: the optimizer of linear, logistic, softmax and SVM models.
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerArg>,
    /// Quick mode: the loss of a linear model.
    #[arg(long, value_enum)]
    loss: Option<LossArg>,
    /// Quick mode, k-means: number of clusters.
    #[arg(long)]
    k: Option<usize>,
    /// Quick mode, k-means: forget old points with this half-life, in events.
    #[arg(long)]
    half_life: Option<f64>,
    /// Quick mode, k-means: warm-start the centres with k-means++ on the first N events.
    #[arg(long)]
    warm_start: Option<usize>,
    /// Quick mode, k-means: a reference label column, scored by the adjusted Rand index and never
    /// used as a feature.
    #[arg(long)]
    label: Option<String>,
    #[arg(long, default_value_t = 4096)]
    batch_size: usize,
    /// Quick mode: serve the live model on this address (loopback by default when given).
    #[arg(long)]
    serve: Option<SocketAddr>,
    /// Quick mode: write predictions here (JSON Lines), or to kafka://HOST:PORT/TOPIC.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Quick mode: write dead letters here (JSON Lines), or to kafka://HOST:PORT/TOPIC.
    #[arg(long)]
    dead_letters: Option<PathBuf>,
    /// Checkpoint into DIR, and resume from it when it holds a checkpoint already.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Stop after N records in this run.
    #[arg(long)]
    max_events: Option<u64>,
    /// Write the run summary as JSON to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Print the equivalent pipeline file and exit.
    #[arg(long)]
    print_config: bool,
    /// No progress on stderr.
    #[arg(long)]
    quiet: bool,
    /// Progress lines even when stderr is not a terminal (for logs); on a terminal a bar is
    /// redrawn in place either way.
    #[arg(long, conflicts_with = "quiet")]
    progress: bool,
    /// Progress interval.
    #[arg(long, default_value_t = 1000)]
    progress_ms: u64,
    /// Continue from another run's checkpoint (a file or a checkpoint directory) when this
    /// pipeline's own checkpoint directory holds none: its model state, not its position.
    #[arg(long)]
    resume_from: Option<PathBuf>,
    /// Write the learning curve (progressive metric against events) as CSV here, and as SVG beside it.
    #[arg(long)]
    curve: Option<PathBuf>,
    /// Events between learning-curve points.
    #[arg(long, default_value_t = 10_000)]
    curve_every: u64,
    /// Offline training over files: read the inputs N times. From the second epoch on, the
    /// progressive metrics are on events already learned (no longer held out).
    #[arg(long, value_name = "N")]
    epochs: Option<u32>,
    /// Offline training over files: learn in a seeded random order (a shuffle buffer), no longer
    /// the stream's order; such a run cannot resume mid-way.
    #[arg(long, value_name = "SEED")]
    shuffle_seed: Option<u64>,
    /// Records the shuffle buffer holds (memory bound; how far a record can move earlier).
    #[arg(long, value_name = "RECORDS", requires = "shuffle_seed")]
    shuffle_buffer: Option<usize>,
    /// Files each sorted by this event-time field are merged by it (a k-way merge) instead of
    /// read one after the other: equal to streaming the events in time order.
    #[arg(long, value_name = "FIELD", conflicts_with_all = ["epochs", "shuffle_seed"])]
    merge_by: Option<String>,
    /// When serving: keep answering HTTP after the source ends (the final model, its latest
    /// predictions per key, the dashboard) until Ctrl-C.
    #[arg(long)]
    linger: bool,
}

pub(crate) async fn run(args: RunArgs, replay: bool) -> anyhow::Result<ExitCode> {
    let mut config = match (&args.pipeline, &args.input) {
        (Some(file), Some(input)) if replay => {
            // Replay: the pipeline's features and model over other (recorded) inputs.
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let mut config = eddy_runtime::config::parse(&text, &file.display().to_string())?;
            config.source = eddy_runtime::source::SourceConfig::File(
                eddy_runtime::source::FileSourceConfig::new(
                    input.clone(),
                    None,
                    config.source.batch_size(),
                ),
            );
            config
        }
        (Some(_), Some(_)) => {
            bail!("give either a pipeline file or --input, not both (eddy replay takes both)")
        }
        (None, None) => bail!("give a pipeline file, or --input with --target for quick mode"),
        (Some(file), None) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            eddy_runtime::config::parse(&text, &file.display().to_string())?
        }
        (None, Some(input)) => {
            let model = match args.model {
                ModelArg::Logistic => ModelKind::Logistic,
                ModelArg::Linear => ModelKind::Linear,
                ModelArg::Softmax => ModelKind::Softmax,
                ModelArg::Svm => ModelKind::Svm,
                ModelArg::Kmeans => ModelKind::Kmeans,
            };
            let target = match (model, &args.target, &args.label) {
                (ModelKind::Kmeans, None, label) => label.as_deref(),
                (ModelKind::Kmeans, Some(_), _) => {
                    bail!("k-means takes --label (optional), not --target")
                }
                (_, Some(target), None) => Some(target.as_str()),
                (_, _, Some(_)) => {
                    bail!("--label is for --model kmeans; other models take --target")
                }
                (_, None, None) => bail!("quick mode needs --target FIELD"),
            };
            let mut options = QuickOptions::new(input, target, model);
            options.format = args.format.map(|f| match f {
                FormatArg::Jsonl => FileFormat::Jsonl,
                FormatArg::Csv => FileFormat::Csv,
            });
            options.key_field = args.key.clone();
            options.checkpoint_dir = args.checkpoint_dir.clone();
            options.serve = args.serve;
            options.predictions = args.predictions.clone();
            options.dead_letters = args.dead_letters.clone();
            options.batch_size = args.batch_size;
            options.learning_rate = args.learning_rate;
            options.l1 = args.l1;
            options.l2 = args.l2;
            options.optimizer = args.optimizer.map(|o| {
                match o {
                    OptimizerArg::Sgd => "sgd",
                    OptimizerArg::Adagrad => "adagrad",
                    OptimizerArg::Adam => "adam",
                    OptimizerArg::Ftrl => "ftrl",
                }
                .to_owned()
            });
            options.loss = args.loss.map(|l| match l {
                LossArg::Squared => RegressionLoss::Squared,
                LossArg::Huber => RegressionLoss::Huber,
                LossArg::EpsilonInsensitive => RegressionLoss::EpsilonInsensitive,
            });
            options.k = args.k;
            options.half_life = args.half_life;
            options.warm_start = args.warm_start;
            options.group = args.group.clone();
            options.idle_timeout = args.idle_timeout;
            quick_config(&options)?
        }
    };
    input_order(&mut config, &args)?;
    if let (Some(dir), Some(checkpoint)) = (&args.checkpoint_dir, config.checkpoint.as_mut()) {
        checkpoint.dir = dir.clone();
    }
    if replay && args.serve.is_none() {
        config.serve.enabled = false;
    }
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let origin = args
        .pipeline
        .as_ref()
        .map_or("quick pipeline".to_owned(), |p| p.display().to_string());
    let valid = check(config, &origin)?;
    let scheme = if valid.config.serve.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let on_serving: ServingFn = Box::new(move |addr, name| {
        eprintln!("eddy: serving model {name:?} on {scheme}://{addr}/v1/models/{name}");
        eprintln!("eddy: dashboard on {scheme}://{addr}/");
    });
    let extra = Extra {
        resume_from: args.resume_from.clone(),
        curve_every: args.curve.as_ref().map(|_| args.curve_every.max(1)),
        linger: args.linger,
    };
    let summary = execute_run(
        valid,
        args.max_events,
        progress_style(args.quiet, args.progress),
        args.progress_ms,
        Some(on_serving),
        extra,
    )
    .await?;
    if let Some(path) = &args.curve {
        crate::curve::write(&summary.curve, path)?;
    }
    finish(&summary, args.summary_json.as_deref())
}

/// `--merge-by` (event-time order across files), and `--epochs`, `--shuffle-seed`,
/// `--shuffle-buffer`: offline training over a file source, said plainly on stderr because the
/// result is no longer what streaming the events would give.
fn input_order(
    config: &mut eddy_runtime::config::PipelineConfig,
    args: &RunArgs,
) -> anyhow::Result<()> {
    if args.epochs.is_none() && args.shuffle_seed.is_none() && args.merge_by.is_none() {
        return Ok(());
    }
    let eddy_runtime::source::SourceConfig::File(source) = &mut config.source else {
        bail!("--merge-by, --epochs and --shuffle-seed need a file source (eddy replay, or a pipeline reading files)");
    };
    if let Some(field) = &args.merge_by {
        source.merge_by = Some(field.clone());
    }
    if let Some(epochs) = args.epochs {
        source.epochs = epochs;
    }
    source.shuffle_seed = args.shuffle_seed.or(source.shuffle_seed);
    if let Some(buffer) = args.shuffle_buffer {
        source.shuffle_buffer = buffer;
    }
    if source.epochs > 1 {
        eprintln!(
            "eddy: {} epochs: every event is learned {} times; progressive metrics after the first epoch are on events already learned",
            source.epochs, source.epochs
        );
    }
    if let Some(seed) = source.shuffle_seed {
        eprintln!(
            "eddy: shuffled (seed {seed}, buffer {} records): not the stream's order, and not resumable mid-way",
            source.shuffle_buffer
        );
    }
    Ok(())
}

/// Run options that only some commands set.
#[derive(Default)]
pub(crate) struct Extra {
    pub(crate) resume_from: Option<PathBuf>,
    pub(crate) curve_every: Option<u64>,
    pub(crate) linger: bool,
}

/// How progress is shown: nothing with `--quiet`, a bar on a terminal, lines for logs only
/// when asked for (`--progress`).
pub(crate) fn progress_style(quiet: bool, lines: bool) -> Option<Style> {
    if quiet {
        None
    } else if std::io::stderr().is_terminal() {
        Some(Style::Bar)
    } else {
        lines.then_some(Style::Lines)
    }
}

/// Runs with Ctrl-C/SIGTERM wired to a clean stop, progress on stderr.
pub(crate) async fn execute_run(
    valid: ValidConfig,
    max_events: Option<u64>,
    progress: Option<Style>,
    progress_ms: u64,
    on_serving: Option<ServingFn>,
    extra: Extra,
) -> anyhow::Result<Summary> {
    let stop = StopHandle::default();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        eprintln!("eddy: stopping after a final checkpoint (Ctrl-C again to abort)");
        on_signal.stop();
        wait_for_signal().await;
        std::process::exit(130);
    });
    let drawn = Arc::new(AtomicBool::new(false));
    let options = RunOptions {
        max_events,
        progress_every: Duration::from_millis(progress_ms.max(1)),
        on_progress: progress.map(|style| {
            let mut line = ProgressLine::new(style, Arc::clone(&drawn));
            Box::new(move |p: &Progress| line.show(p)) as Box<dyn FnMut(&Progress) + Send>
        }),
        on_serving: Some(on_serving.unwrap_or_else(|| {
            Box::new(|addr, name| {
                eprintln!("eddy: serving model {name:?} on http://{addr}/v1/models/{name}")
            })
        })),
        stop,
        resume_from: extra.resume_from,
        curve_every: extra.curve_every,
        linger: extra.linger.then(|| {
            Box::new(|| eprintln!("eddy: the stream has ended; still serving until Ctrl-C"))
                as eddy_runtime::LingerFn
        }),
    };
    let summary = eddy_runtime::run(valid, options).await;
    if drawn.load(Ordering::Relaxed) {
        // The bar stays as drawn last; what follows starts on a line of its own.
        eprintln!();
    }
    Ok(summary?)
}

pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(crate) fn finish(summary: &Summary, summary_json: Option<&Path>) -> anyhow::Result<ExitCode> {
    let metrics: Vec<String> = summary
        .metrics
        .iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect();
    eprintln!(
        "eddy: done. {} events read, {} learned, {} dead-lettered in {:.2}s ({} events/s); {}",
        summary.events,
        summary.learned,
        summary.dead_lettered,
        summary.seconds,
        crate::progress::human(summary.events_per_sec),
        metrics.join(", ")
    );
    if let Some(path) = summary_json {
        let json = serde_json::to_string_pretty(summary)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
