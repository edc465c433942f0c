//! The `lockstep` command line: clap subcommands over the library.

mod audit;
mod backfill;
pub mod demo;
mod logging;
mod offline;
mod online;
mod out;
mod progress;
mod registry;
mod scaffold;
mod stores;
mod table;
mod term;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser, Subcommand};

use crate::config::{Config, ConfigError, LogFormat};
use crate::model::Classify;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::toolchain::{self, BuildOptions};
use out::outln;

#[derive(Parser)]
#[command(
    name = "lockstep",
    version,
    about = "One WebAssembly transform for training and serving features"
)]
struct Cli {
    /// Config file (TOML); `LOCKSTEP__SECTION__KEY` environment variables override it.
    #[arg(long, global = true, env = "LOCKSTEP_CONFIG")]
    config: Option<PathBuf>,
    /// The project to work on (overrides `LOCKSTEP_PROJECT` and the config's `project`);
    /// by default the only one with definitions applied.
    #[arg(long, global = true)]
    project: Option<String>,
    /// Log lines on stderr as text or as one JSON object per line (overrides `log.format`).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the movie-recommendation example end to end on generated data: backfill,
    /// materialize, training set, an in-process server with pushes and online requests, and
    /// the online values compared with the training set's bit for bit. Embedded stores in
    /// the work directory unless `DATABASE_URL` / `REDIS_URL` are set (then the Postgres
    /// schemas `lockstep_demo*` and the Redis namespace `lockstep_demo`); each run starts
    /// from empty stores.
    Demo {
        /// Work directory: generated data, the training set, embedded stores.
        #[arg(long, default_value = demo::DEFAULT_DIR)]
        dir: PathBuf,
        /// The first-party transforms workspace to build with cargo.
        #[arg(long, default_value = demo::DEFAULT_TRANSFORMS_DIR)]
        transforms: PathBuf,
        /// Load prebuilt `movie_watch.component.wasm` and `movie_scorer.component.wasm`
        /// from this directory instead of building.
        #[arg(long, conflicts_with = "transforms")]
        components: Option<PathBuf>,
    },
    /// Start something new from a template.
    New {
        #[command(subcommand)]
        command: NewCommand,
    },
    /// Build a guest crate (or every cdylib crate of a workspace) into transform components.
    Build {
        /// Directory holding the crate's or workspace's Cargo.toml.
        path: PathBuf,
        /// Cargo target directory (default: the guest workspace's own).
        #[arg(long)]
        target_dir: Option<PathBuf>,
    },
    /// Inspect transform components.
    Transform {
        #[command(subcommand)]
        command: TransformCommand,
    },
    /// Internal: compile a component read from stdin under limits, for `serve`'s uploads.
    #[command(name = "compile-worker", hide = true)]
    CompileWorker {
        #[arg(long)]
        max_memory_bytes: u64,
        #[arg(long)]
        cpu_seconds: u64,
        /// The runtime settings, as JSON.
        #[arg(long)]
        runtime_config: String,
    },
    /// Run the HTTP API server.
    Serve {
        /// Address to listen on (overrides `server.listen`).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Upload a component to the registry as the next version of a transform.
    Upload {
        /// The component file (`.wasm`).
        file: PathBuf,
        /// Transform name to upload under.
        #[arg(long)]
        name: String,
    },
    /// List the projects with definitions applied, or delete one's definitions.
    Projects {
        #[command(subcommand)]
        command: Option<ProjectsCommand>,
    },
    /// List transforms, or one transform's versions.
    Transforms {
        /// Show only this transform.
        name: Option<String>,
    },
    /// Point an alias of a transform at a version.
    Alias {
        name: String,
        alias: String,
        version: u32,
    },
    /// Show what applying a definitions file would change.
    Plan {
        /// The definitions file (TOML).
        file: PathBuf,
    },
    /// Apply a definitions file: it becomes the project's whole definition set.
    Apply {
        /// The definitions file (TOML).
        file: PathBuf,
    },
    /// Compute a feature view over its source history into the offline store. An
    /// interrupted backfill resumes where it stopped; several processes running the same
    /// backfill share its chunks.
    Backfill {
        /// The feature view.
        view: String,
        /// Only events at or after this time (RFC 3339 or a date).
        #[arg(long, value_parser = crate::model::parse_timestamp)]
        from: Option<i64>,
        /// Only events before this time (RFC 3339 or a date).
        #[arg(long, value_parser = crate::model::parse_timestamp)]
        to: Option<i64>,
        /// Redo every chunk even if this exact backfill already completed.
        #[arg(long)]
        fresh: bool,
        /// Chunks worked on at once by this process (overrides `backfill.workers`).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Show recent backfill jobs, or one job: state (running, interrupted, failed, done),
    /// chunks, rows, start and end.
    Backfills {
        /// A job id.
        id: Option<i64>,
        /// Print the jobs as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Build a point-in-time correct training set from the offline store.
    TrainingSet {
        /// Entity rows (Parquet or CSV): join keys, `event_timestamp`, request fields.
        #[arg(long)]
        entities: PathBuf,
        /// A feature service, or feature references `view:feature,view:*,…`.
        #[arg(long)]
        features: String,
        /// The output Parquet file.
        #[arg(long)]
        out: PathBuf,
        /// Name feature columns `view__feature`.
        #[arg(long)]
        full_feature_names: bool,
        /// The entity rows' time column.
        #[arg(long, default_value = "event_timestamp")]
        timestamp_column: String,
    },
    /// Copy each online view's latest values in a time window from the offline store to
    /// the online store.
    Materialize {
        /// Start of the window (RFC 3339 or a date).
        #[arg(long, value_parser = crate::model::parse_timestamp)]
        from: i64,
        /// End of the window (default: now).
        #[arg(long, value_parser = crate::model::parse_timestamp)]
        to: Option<i64>,
        /// Feature views, comma-separated (default: every online view).
        #[arg(long, value_delimiter = ',')]
        views: Vec<String>,
    },
    /// Materialize from where each view's last materialization ended up to now (or `--to`).
    MaterializeIncremental {
        /// End of the window (default: now).
        #[arg(long, value_parser = crate::model::parse_timestamp)]
        to: Option<i64>,
        /// Feature views, comma-separated (default: every online view).
        #[arg(long, value_delimiter = ',')]
        views: Vec<String>,
    },
    /// Rebuild the online store from the offline store (after Redis lost its data): every
    /// online view's latest values within its ttl.
    Rehydrate {
        /// Feature views, comma-separated (default: every online view).
        #[arg(long, value_delimiter = ',')]
        views: Vec<String>,
        /// Delete the views' online values first.
        #[arg(long)]
        fresh: bool,
    },
    /// Push source rows through their views' transforms into the online and offline stores.
    Push {
        /// The source the rows belong to.
        source: String,
        /// A JSON file of columns, `{"user_id": [1], "event_timestamp": ["2026-…"], …}`; `-`
        /// reads standard input.
        #[arg(long)]
        rows: PathBuf,
        /// Which stores to write.
        #[arg(long, value_enum, default_value = "online-and-offline")]
        to: PushTo,
    },
    /// Replay a feature service's logged online responses through the offline path and
    /// compare them with what was served, bit for bit; exits non-zero on any difference.
    Audit {
        /// The feature service (its definitions need `logging = { sample_rate = … }`).
        service: String,
        /// Only responses logged at or after this time (RFC 3339 or a date).
        #[arg(long, value_parser = crate::model::parse_timestamp)]
        since: Option<i64>,
        /// At most this many logged responses, oldest first.
        #[arg(long, default_value_t = 100_000)]
        limit: u32,
        /// How many differences to list.
        #[arg(long, default_value_t = 10)]
        show: usize,
    },
    /// Write an example's raw data and training entity rows.
    Datagen {
        /// Which example: movie recommendation or fraud detection.
        #[arg(long, value_enum, default_value_t = Scenario::Movies)]
        scenario: Scenario,
        /// Output directory.
        #[arg(long, default_value = "data")]
        out: PathBuf,
        /// Watch events (movies) or card transactions (fraud) to generate.
        #[arg(long, default_value_t = 20_000)]
        events: u64,
        /// Users.
        #[arg(long, default_value_t = 1_000)]
        users: u64,
        /// Movies (movies only).
        #[arg(long, default_value_t = 200)]
        movies: u64,
        /// Training entity rows: `<out>/entities.parquet` (movies), or ordinary labelled
        /// transactions in `<out>/labels.parquet` next to every fraudulent one (fraud).
        #[arg(long, default_value_t = 10_000)]
        entity_rows: u64,
        /// Random seed: the same seed writes the same files.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Print a shell completion script, e.g. `lockstep completions bash >
    /// ~/.local/share/bash-completion/completions/lockstep`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
}

/// The examples `lockstep datagen` writes data for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Movies,
    Fraud,
}

/// `lockstep push --to`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PushTo {
    Online,
    Offline,
    OnlineAndOffline,
}

impl From<PushTo> for crate::pipeline::PushTarget {
    fn from(to: PushTo) -> Self {
        match to {
            PushTo::Online => Self::Online,
            PushTo::Offline => Self::Offline,
            PushTo::OnlineAndOffline => Self::OnlineAndOffline,
        }
    }
}

#[derive(Subcommand)]
enum NewCommand {
    /// A transform crate that builds anywhere (the SDK comes inside it): `lockstep build`
    /// it, `lockstep upload` the component, name it in a view's definitions.
    Transform {
        /// Crate name (lowercase, `-` or `_`); the transform is named after it.
        name: String,
        /// An on-demand view's transform (features and request fields in) instead of a
        /// feature view's (source rows in).
        #[arg(long)]
        on_demand: bool,
        /// Directory to create the crate in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ProjectsCommand {
    /// Delete every definition of a project. Its data stays in the stores: applying the
    /// same definitions again serves it as before.
    Delete {
        /// The project.
        name: String,
    },
}

#[derive(Subcommand)]
enum TransformCommand {
    /// Load a component as the server would: print its digest and signature, and smoke-run it
    /// on generated sample rows (whole and in chunks, which must agree bit for bit).
    Check {
        /// The component file (`.wasm`).
        file: PathBuf,
    },
}

/// Runs the command line; errors are printed with their cause chain and exit code 1 (or
/// the code an [`out::ExitWith`] carries); a closed stdout ends it quietly with success.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::CompileWorker {
        max_memory_bytes,
        cpu_seconds,
        runtime_config,
    } = &cli.command
    {
        logging::init(LogFormat::Text, "warn");
        let code =
            crate::runtime::compile::worker_main(*max_memory_bytes, *cpu_seconds, runtime_config);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    // The config may set the log format; a broken one fails the commands that need it.
    let config = Config::load(cli.config.as_deref()).and_then(|mut config| {
        if let Some(project) = cli.project.clone() {
            config.set_project(project)?;
        }
        Ok(config)
    });
    let format = cli
        .log_format
        .or_else(|| config.as_ref().ok().map(|config| config.log.format))
        .unwrap_or_default();
    // A server logs each request at info; other commands only warnings unless asked.
    let level = if matches!(cli.command, Command::Serve { .. }) {
        "info"
    } else {
        "warn"
    };
    logging::init(format, level);
    match run(cli, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if out::is_stdout_closed(&error) => ExitCode::SUCCESS,
        Err(error) => {
            out::error(&term::safe_lines(&format!("{error:#}")));
            ExitCode::from(out::exit_code(&error))
        }
    }
}

fn run(cli: Cli, config: Result<Config, ConfigError>) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo {
            dir,
            transforms,
            components,
        } => {
            let components = match components {
                Some(dir) => demo::Components::Dir(dir),
                None => demo::Components::Build(transforms),
            };
            let options = demo::DemoOptions::new(config?, dir, components);
            stores::announce(&options.config);
            block_on(demo::run(options))?;
            Ok(())
        }
        Command::Build { path, target_dir } => build(path, target_dir),
        Command::New {
            command:
                NewCommand::Transform {
                    name,
                    on_demand,
                    dir,
                },
        } => {
            let kind = if on_demand {
                scaffold::Kind::OnDemand
            } else {
                scaffold::Kind::View
            };
            let root = scaffold::new_transform(&dir, &name, kind)?;
            outln!("created {}", root.display())?;
            outln!("next: lockstep build {}", root.display())?;
            Ok(())
        }
        Command::Transform {
            command: TransformCommand::Check { file },
        } => check(&file),
        Command::Datagen {
            scenario: Scenario::Movies,
            out,
            events,
            users,
            movies,
            entity_rows,
            seed,
        } => datagen(&out, events, users, movies, entity_rows, seed),
        Command::Datagen {
            scenario: Scenario::Fraud,
            out,
            events,
            users,
            entity_rows,
            seed,
            ..
        } => datagen_fraud(&out, events, users, entity_rows, seed),
        Command::Completions { shell } => completions(shell),
        command => {
            let config = config?;
            stores::announce(&config);
            block_on(registry::run(command, config))
        }
    }
}

/// Runs a command's future on a runtime of its own. Work still running on blocking threads
/// when it ends (a chunk given up at an interruption) is left behind, not waited for.
fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(future);
    runtime.shutdown_background();
    result
}

/// `lockstep completions <shell>`: the completion script on stdout.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "lockstep", &mut script);
    outln!("{}", String::from_utf8_lossy(&script).trim_end())
}

fn build(path: PathBuf, target_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let started = Instant::now();
    let options = BuildOptions {
        target_dir,
        quiet: false,
    };
    let built = toolchain::build(&path, &options)?;
    for component in &built {
        outln!(
            "{:<28} {}  {:>7.1} KiB  {}",
            component.package,
            component.digest,
            component.bytes.len() as f64 / 1024.0,
            component.path.display()
        )?;
    }
    out::status(&format!(
        "built {} component(s) in {:.1}s",
        built.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn check(file: &PathBuf) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let started = Instant::now();
    let info = runtime.load(&bytes).map_err(|e| coded(&e))?;
    let loaded_in = started.elapsed();
    outln!(
        "component  {} ({:.1} KiB)",
        file.display(),
        bytes.len() as f64 / 1024.0
    )?;
    outln!("digest     {}", info.digest)?;
    outln!(
        "signature  {} {}",
        term::safe(&info.signature.name),
        term::safe(&info.signature.version)
    )?;
    outln!("  inputs   {}", table::fields_line(&info.signature.inputs))?;
    outln!("  outputs  {}", table::fields_line(&info.signature.outputs))?;
    outln!("compiled   in {:.1} ms", loaded_in.as_secs_f64() * 1e3)?;
    let batch_rows = crate::config::BackfillConfig::default().batch_rows as u32;
    let report = runtime
        .smoke_test(&info.digest, &[batch_rows])
        .map_err(|e| coded(&e))?;
    outln!(
        "smoke run  {} sample rows, each alone and in {} batch shapes (sizes 1 to {batch_rows}, reversed, shuffled): identical bit for bit (row-wise)",
        report.input.num_rows(),
        report.shapes.len(),
    )?;
    if let Some(first) = &report.first_rejection {
        outln!(
            "           {} sample rows rejected by the transform (first: {first})",
            report.rejected_rows
        )?;
    }
    outln!("sample input\n{}", table::batch_table(&report.input, 5))?;
    outln!("sample output\n{}", table::batch_table(&report.output, 5))?;
    Ok(())
}

/// An error as the CLI prints it: `[code] message`, with the stable code the HTTP API
/// reports (there, `internal` for a bug; here the error's own code and text).
fn coded(error: &dyn Classify) -> anyhow::Error {
    anyhow::anyhow!("[{}] {error}", error.code())
}

/// `lockstep datagen`: the movie example's raw data and training entity rows.
fn datagen(
    out: &std::path::Path,
    events: u64,
    users: u64,
    movies: u64,
    entity_rows: u64,
    seed: u64,
) -> anyhow::Result<()> {
    use crate::datagen::movies::{MovieDataSpec, write_entity_rows, write_movie_data};
    let started = Instant::now();
    let spec = MovieDataSpec {
        users,
        movies,
        events,
        seed,
        events_per_file: 50_000,
        row_group_rows: 16_384,
        ..MovieDataSpec::small()
    };
    let written = write_movie_data(out, &spec)?;
    let entities = out.join("entities.parquet");
    let rows = write_entity_rows(&entities, &spec, entity_rows, seed.wrapping_add(1))?;
    outln!(
        "wrote {events} watch events in {} file(s), user profiles, movie metadata and {rows} \
         entity rows under {} ({:.1} MiB) in {:.2}s",
        written.watch_event_files.len(),
        out.display(),
        written.bytes as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}

fn datagen_fraud(
    out: &std::path::Path,
    transactions: u64,
    users: u64,
    label_rows: u64,
    seed: u64,
) -> anyhow::Result<()> {
    use crate::datagen::fraud::{FraudDataSpec, write_fraud_data};
    let started = Instant::now();
    let spec = FraudDataSpec {
        users,
        transactions,
        seed,
        label_rows,
        transactions_per_file: 250_000,
        row_group_rows: 65_536,
        ..FraudDataSpec::small()
    };
    let written = write_fraud_data(out, &spec)?;
    outln!(
        "wrote {} card transactions ({} fraudulent) in {} file(s) and {} labelled \
         transactions under {} ({:.1} MiB) in {:.2}s",
        written.transactions,
        written.fraudulent,
        written.transaction_files.len(),
        written.label_rows,
        out.display(),
        written.bytes as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}
