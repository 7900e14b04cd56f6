//! Command-line interface: the commands and their flags, and how each maps onto the runtime.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use eddy_runtime::{presets, RunOptions, ServingFn, StopHandle, ValidConfig};

use crate::run::{execute_run, finish, run, wait_for_signal, Extra, RunArgs};

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

pub(crate) fn check(
    config: eddy_runtime::PipelineConfig,
    origin: &str,
) -> anyhow::Result<ValidConfig> {
    config
        .check()
        .map_err(|problems| anyhow::anyhow!("{origin}: {}", problems.join("\n  ")))
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
    let progress = crate::run::progress_style(false, false);
    let summary = execute_run(
        valid,
        None,
        progress,
        2000,
        Some(on_serving),
        Extra::default(),
    )
    .await?;
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
