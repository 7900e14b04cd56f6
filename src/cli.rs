//! Command-line interface: the commands and their flags, and how each maps onto the runtime.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use eddy_runtime::config::{ModelKind, RegressionLoss};
use eddy_runtime::quick::{quick_config, QuickOptions};
use eddy_runtime::source::FileFormat;
use eddy_runtime::{presets, Progress, RunOptions, ServingFn, StopHandle, Summary, ValidConfig};

#[derive(Parser)]
#[command(
    name = "eddy",
    version,
    about = "Online machine learning on streams: source to served model in one binary"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline file, or a quick pipeline built from --input/--target/--model.
    Run(Box<RunArgs>),
    /// Replay recorded files through the same pipeline as `run` (same flags; serving off unless
    /// --serve): history first, then `eddy run --resume-from` continues on the live stream.
    Replay(Box<RunArgs>),
    /// Check a pipeline file without running it.
    Validate { file: PathBuf },
    /// Run the built-in demo: a generated stream, a live logistic model served over HTTP.
    Demo(DemoArgs),
    /// Measure end-to-end throughput: JSON Lines, 10 numeric features, scaler → logistic, checkpoints on.
    Bench(BenchArgs),
    /// Serve the current version of every model in a registry, without training.
    Serve(ServeArgs),
    /// Model artifacts and the registry: export, list, inspect, promote, rollback.
    #[command(subcommand)]
    Model(ModelCommand),
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long)]
    registry: PathBuf,
    #[arg(long, default_value = "127.0.0.1:8080")]
    address: SocketAddr,
    /// Bearer token for promote/rollback (else EDDY_ADMIN_TOKEN; with neither they are closed).
    #[arg(long)]
    admin_token: Option<String>,
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// HTTPS: PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// HTTPS: PEM private key (with --tls-cert).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Pack a pipeline's newest checkpoint as a new version in the registry.
    Export {
        pipeline: PathBuf,
        #[arg(long)]
        registry: PathBuf,
        /// Make it the current version.
        #[arg(long)]
        promote: bool,
    },
    /// The models in a registry, their versions and the current one.
    List {
        #[arg(long)]
        registry: PathBuf,
    },
    /// An artifact's metadata (a file, or a registry version; the current one by default).
    Inspect {
        file: Option<PathBuf>,
        #[arg(long)]
        registry: Option<PathBuf>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        version: Option<u64>,
    },
    /// Make a version current.
    Promote {
        #[arg(long)]
        registry: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: u64,
    },
    /// Make the previously current version current again.
    Rollback {
        #[arg(long)]
        registry: PathBuf,
        #[arg(long)]
        name: String,
    },
}

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
struct RunArgs {
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
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
    /// Progress line interval.
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
    /// When serving: keep answering HTTP after the source ends (the final model, its latest
    /// predictions per key, the dashboard) until Ctrl-C.
    #[arg(long)]
    linger: bool,
}

#[derive(Args)]
struct DemoArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    address: SocketAddr,
    /// Where checkpoints and dead letters go.
    #[arg(long, default_value = "eddy-data/demo")]
    dir: PathBuf,
    /// Generated events per second.
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
    /// Stop after this many events (runs until Ctrl-C when absent).
    #[arg(long)]
    events: Option<u64>,
}

#[derive(Args)]
struct BenchArgs {
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    /// Where the generated input and checkpoints go.
    #[arg(long, default_value = "target/eddy-bench")]
    dir: PathBuf,
    #[arg(long, default_value_t = 4096)]
    batch_size: usize,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Benchmark against a Kafka broker (HOST:PORT) instead of a file: fill a topic, consume,
    /// learn, write predictions to a topic; then the latency at a steady rate.
    #[arg(long, value_name = "BROKERS")]
    kafka: Option<String>,
    /// Kafka: partitions of the benchmark topics.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Kafka: events per second of the latency phase.
    #[arg(long, default_value_t = 20_000.0)]
    latency_rate: f64,
    /// Kafka: seconds of the latency phase.
    #[arg(long, default_value_t = 10.0)]
    latency_seconds: f64,
    /// Kafka: take messages in arrival order instead of the deterministic timestamp merge.
    #[arg(long)]
    arrival_order: bool,
}

pub async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { file } => {
            let valid = eddy_runtime::load(&file)?;
            println!(
                "{}: ok ({} feature operator(s), {} model, target {:?})",
                file.display(),
                valid.config.features.len(),
                valid.spec.name,
                valid.spec.target
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => run(*args, false).await,
        Command::Replay(args) => run(*args, true).await,
        Command::Demo(args) => demo(args).await,
        Command::Bench(args) => bench(args).await,
        Command::Serve(args) => serve(args).await,
        Command::Model(command) => model(command),
    }
}

fn check(config: eddy_runtime::PipelineConfig, origin: &str) -> anyhow::Result<ValidConfig> {
    config
        .check()
        .map_err(|problems| anyhow::anyhow!("{origin}: {}", problems.join("\n  ")))
}

async fn run(args: RunArgs, replay: bool) -> anyhow::Result<ExitCode> {
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
    offline_order(&mut config, &args)?;
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
        !args.quiet,
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

/// `--epochs`, `--shuffle-seed`, `--shuffle-buffer`: offline training over a file source, said
/// plainly on stderr because the result is no longer what streaming the events would give.
fn offline_order(
    config: &mut eddy_runtime::config::PipelineConfig,
    args: &RunArgs,
) -> anyhow::Result<()> {
    if args.epochs.is_none() && args.shuffle_seed.is_none() {
        return Ok(());
    }
    let eddy_runtime::source::SourceConfig::File(source) = &mut config.source else {
        bail!("--epochs and --shuffle-seed need a file source (eddy replay, or a pipeline reading files)");
    };
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
struct Extra {
    resume_from: Option<PathBuf>,
    curve_every: Option<u64>,
    linger: bool,
}

/// Runs with Ctrl-C/SIGTERM wired to a clean stop, progress on stderr.
async fn execute_run(
    valid: ValidConfig,
    max_events: Option<u64>,
    progress: bool,
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
    let options = RunOptions {
        max_events,
        progress_every: Duration::from_millis(progress_ms.max(1)),
        on_progress: progress.then(|| Box::new(print_progress) as Box<dyn FnMut(&Progress) + Send>),
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
    Ok(eddy_runtime::run(valid, options).await?)
}

async fn wait_for_signal() {
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

fn human(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

fn print_progress(p: &Progress) {
    eprintln!(
        "eddy: {} events ({}/s) learned {} dead-lettered {} | {} {:.4} (recent {:.4}) | {:.0}s",
        p.counters.events,
        human(p.rate),
        p.counters.learned,
        p.counters.dead_lettered,
        p.metric.0,
        p.metric.1,
        p.window_metric.1,
        p.elapsed.as_secs_f64()
    );
}

fn finish(summary: &Summary, summary_json: Option<&Path>) -> anyhow::Result<ExitCode> {
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
        human(summary.events_per_sec),
        metrics.join(", ")
    );
    if let Some(path) = summary_json {
        let json = serde_json::to_string_pretty(summary)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let config = presets::demo(&args.dir, args.address, args.rate, args.events);
    let valid = check(config, "demo pipeline")?;
    let on_serving = Box::new(|addr: SocketAddr, name: &str| {
        let instance = (0..presets::FEATURES)
            .map(|j| format!("\"x{j}\":{:.1}", (j as f64 - 4.5) / 3.0))
            .chain(std::iter::once("\"cat\":\"c3\"".to_owned()))
            .collect::<Vec<_>>()
            .join(",");
        eprintln!("eddy: serving model {name:?} on http://{addr}/v1/models/{name}");
        eprintln!(
            "eddy: the demo model learns from a generated stream; ask it for a prediction with:"
        );
        eprintln!(
            "  curl -s http://{addr}/v1/models/{name}/predict -H 'content-type: application/json' \
             -d '{{\"instances\":[{{{instance}}}]}}'"
        );
        eprintln!("eddy: metadata at http://{addr}/v1/models/{name}, metrics at http://{addr}/metrics; Ctrl-C stops");
    }) as ServingFn;
    let summary = execute_run(valid, None, true, 2000, Some(on_serving), Extra::default()).await?;
    finish(&summary, None)
}

async fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    if let Some(brokers) = args.kafka {
        let report = crate::kafka_bench::run(crate::kafka_bench::KafkaBench {
            brokers,
            events: args.events,
            partitions: args.partitions,
            batch_size: args.batch_size,
            dir: args.dir,
            latency_rate: args.latency_rate,
            latency_seconds: args.latency_seconds,
            arrival_order: args.arrival_order,
        })
        .await?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let input = args.dir.join(format!("logistic-10f-{}.jsonl", args.events));
    if !input.exists() {
        eprintln!(
            "eddy bench: writing {} events to {}",
            args.events,
            input.display()
        );
        let tmp = input.with_extension("tmp");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        presets::bench_stream().write_jsonl(args.events, &mut out)?;
        out.flush()?;
        drop(out);
        std::fs::rename(&tmp, &input)?;
    }
    let bytes = std::fs::metadata(&input)?.len();
    let mut rates = Vec::new();
    let mut last = None;
    for run in 0..args.runs.max(1) {
        let checkpoints = args.dir.join(format!("checkpoints-{run}"));
        let _ = std::fs::remove_dir_all(&checkpoints);
        let valid = check(
            presets::bench(&input, &checkpoints, args.batch_size),
            "bench pipeline",
        )?;
        let summary = eddy_runtime::run(valid, RunOptions::default()).await?;
        eprintln!(
            "eddy bench: run {} {:.0} events/s ({} events, {:.3}s, {} checkpoints)",
            run + 1,
            summary.events_per_sec,
            summary.events,
            summary.seconds,
            summary.checkpoints_written
        );
        rates.push(summary.events_per_sec);
        let _ = std::fs::remove_dir_all(&checkpoints);
        last = Some(summary);
    }
    rates.sort_by(f64::total_cmp);
    let summary = last.expect("at least one run");
    let report = serde_json::json!({
        "benchmark": "jsonl_10f_scaler_logistic_checkpointed",
        "events": summary.events,
        "input_bytes": bytes,
        "batch_size": args.batch_size,
        "runs": rates.len(),
        "events_per_sec_best": rates.last(),
        "events_per_sec_median": rates[rates.len() / 2],
        "mb_per_sec_median": rates[rates.len() / 2] * bytes as f64 / summary.events as f64 / 1e6,
        "metrics": summary.metrics,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let env = |name: &str| std::env::var(name).ok().filter(|t| !t.is_empty());
    let options = eddy_models::server::ServerOptions {
        addr: args.address,
        max_body_bytes: args.max_body_bytes,
        admin_token: args.admin_token.or_else(|| env("EDDY_ADMIN_TOKEN")),
        predict_token: env("EDDY_PREDICT_TOKEN"),
        tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(eddy_models::server::TlsFiles { cert, key }),
            _ => None,
        },
        ..eddy_models::server::ServerOptions::default()
    };
    let stop = StopHandle::default();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        on_signal.stop();
    });
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let on_serving: ServingFn = Box::new(move |addr, names| {
        eprintln!("eddy: serving model {names:?} on {scheme}://{addr}/v1/models");
        eprintln!("eddy: dashboard on {scheme}://{addr}/");
    });
    eddy_runtime::serve::serve_registry(&args.registry, &options, stop, Some(on_serving)).await?;
    Ok(ExitCode::SUCCESS)
}

fn model(command: ModelCommand) -> anyhow::Result<ExitCode> {
    use eddy_models::{Artifact, Registry};
    match command {
        ModelCommand::Export {
            pipeline,
            registry,
            promote,
        } => {
            let valid = eddy_runtime::load(&pipeline)?;
            let (name, version) =
                eddy_runtime::export::export_checkpoint(&valid, &registry, promote)?;
            println!(
                "exported {name} version {version} to {}",
                registry.display()
            );
        }
        ModelCommand::List { registry } => {
            let list = Registry::open(&registry)?.list()?;
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        ModelCommand::Inspect {
            file,
            registry,
            name,
            version,
        } => {
            let artifact = match (file, registry, name) {
                (Some(file), None, None) => Artifact::read(&file)?,
                (None, Some(registry), Some(name)) => {
                    let registry = Registry::open(&registry)?;
                    let version = match version {
                        Some(v) => v,
                        None => registry
                            .current(&name)?
                            .context("the model has no current version")?,
                    };
                    registry.load(&name, version)?
                }
                _ => bail!(
                    "give an artifact file, or --registry with --name (and optionally --version)"
                ),
            };
            println!("{}", serde_json::to_string_pretty(&artifact.meta)?);
        }
        ModelCommand::Promote {
            registry,
            name,
            version,
        } => {
            Registry::open(&registry)?.promote(&name, version)?;
            println!("{name}: version {version} is current");
        }
        ModelCommand::Rollback { registry, name } => {
            let version = Registry::open(&registry)?.rollback(&name)?;
            println!("{name}: rolled back to version {version}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
