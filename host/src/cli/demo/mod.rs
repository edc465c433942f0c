//! `lockstep demo`: the movie-recommendation example end to end on generated data, through
//! the same pipeline the other subcommands and the HTTP API call — build, upload, apply,
//! backfill, materialize, training set, skew check, an in-process server with pushes and
//! online requests — printing one line per step with timings.

use crate::cli::out::outln;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use arrow::array::RecordBatch;

mod online;

use crate::api::{self, AppState, auth::Access};

use crate::config::Config;
use crate::datagen::movies::{MovieDataSpec, RowCounts, write_entity_rows, write_movie_data};
use crate::model::{Digest, format_timestamp, now_micros};
use crate::offline::OfflineLocation;
use crate::online::OnlineLocation;
use crate::pipeline::{
    BackfillRequest, BackfillSummary, EARLIEST, Lockstep, MaterializeRequest, MaterializedView,
    ParityReport, TrainingSetRequest,
};
use crate::registry::RegistryLocation;
use crate::toolchain::{self, BuildOptions};
pub use online::OnlineOutput;

/// The first-party transforms, relative to where `cargo run` builds this binary.
pub const DEFAULT_TRANSFORMS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../transforms");
/// Where the demo works unless told otherwise.
pub const DEFAULT_DIR: &str = ".lockstep/demo";
/// The example's definitions, applied as they are in the repository.
const DEFINITIONS: &str = include_str!("../../../../examples/movie-recommendation/lockstep.toml");
/// The example's transforms: cargo package, component file stem, registry name.
const TRANSFORMS: [(&str, &str, &str); 2] = [
    ("movie-watch", "movie_watch", "movie_watch_features"),
    (
        "movie-scorer",
        "movie_scorer",
        "movie_recommendation_scorer",
    ),
];
/// The feature service the online requests and the training set ask for.
const SERVICE: &str = "movie_recommendation_service";
/// The example's service over the watch transform's view.
const INTERACTION_SERVICE: &str = "movie_interaction_service";
/// Names of the demo's stores when Postgres and Redis are configured: its own, emptied on
/// every run, never the `lockstep` ones.
const SCHEMA: &str = "lockstep_demo";
/// Training entity rows written and joined.
const ENTITY_ROWS: u64 = 10_000;
/// Entity rows compared online and offline as of the data's end.
const PARITY_ROWS: usize = 1_000;
/// Candidate movies per online request.
const CANDIDATES: usize = 10;
/// Watch events pushed.
const WATCHES: usize = 3;

/// Where the example's transforms come from.
#[derive(Debug, Clone)]
pub enum Components {
    /// Build this guest workspace with cargo, as `lockstep build` does.
    Build(PathBuf),
    /// Load `movie_watch.component.wasm` and `movie_scorer.component.wasm` from a directory
    /// (the output of `lockstep build`).
    Dir(PathBuf),
    /// Component bytes by cargo package name (`movie-watch`, `movie-scorer`).
    Bytes(BTreeMap<String, Vec<u8>>),
}

/// What the demo runs on and how much.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The work directory: generated data, the training set and embedded stores' files.
    pub dir: PathBuf,
    /// The stores; everything in them is deleted first.
    pub config: Config,
    pub components: Components,
    pub data: MovieDataSpec,
    /// Online requests made over HTTP.
    pub requests: usize,
}

impl DemoOptions {
    /// The command line's options: `config`'s stores under the demo's own names (embedded
    /// files in `dir`, or Postgres schemas `lockstep_demo*` and the Redis namespace
    /// `lockstep_demo`), the default data size and 200 requests.
    pub fn new(mut config: Config, dir: PathBuf, components: Components) -> Self {
        config.registry.schema = SCHEMA.to_owned();
        config.offline.schema = format!("{SCHEMA}_offline");
        config.online.namespace = SCHEMA.to_owned();
        config.registry.sqlite_path = dir.join("registry.db");
        config.offline.sqlite_path = dir.join("offline.db");
        config.online.sqlite_path = dir.join("online.db");
        Self {
            dir,
            config,
            components,
            data: demo_data(),
            requests: 200,
        }
    }
}

/// 100,000 watch events of 5,000 users and 1,000 movies over 30 days.
pub fn demo_data() -> MovieDataSpec {
    MovieDataSpec {
        users: 5_000,
        movies: 1_000,
        events: 100_000,
        events_per_file: 25_000,
        row_group_rows: 8_192,
        ..MovieDataSpec::small()
    }
}

/// One uploaded transform.
#[derive(Debug, Clone)]
pub struct UploadedTransform {
    pub name: String,
    pub version: u32,
    pub digest: Digest,
}

/// The training set written.
#[derive(Debug, Clone)]
pub struct TrainingSetOutput {
    pub path: PathBuf,
    pub rows: usize,
    pub features: usize,
    pub seconds: f64,
}

/// One skew check: the online answer against the training set of the same rows.
#[derive(Debug, Clone)]
pub struct ParityCheck {
    pub what: String,
    pub report: ParityReport,
}

/// Everything the demo did, for callers that check it.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    pub dir: PathBuf,
    pub data: RowCounts,
    pub transforms: Vec<UploadedTransform>,
    pub backfills: Vec<BackfillSummary>,
    pub materialized: Vec<MaterializedView>,
    pub training_set: TrainingSetOutput,
    pub online: OnlineOutput,
    pub parity: Vec<ParityCheck>,
    /// Where the stores are, for people.
    pub stores: Vec<String>,
    pub seconds: f64,
}

/// Runs the demo, printing each step; fails when any step does, when an online request is
/// not answered 200 with every value present, or when online and offline differ anywhere.
pub async fn run(options: DemoOptions) -> anyhow::Result<DemoSummary> {
    let total = Instant::now();
    let DemoOptions {
        dir,
        mut config,
        components,
        data: spec,
        requests,
    } = options;
    config.sources.base_dir = dir.clone();
    outln!("Lockstep demo: movie recommendation, one WebAssembly transform offline and online")?;
    outln!("work directory {}\n", dir.display())?;

    // 1. Data.
    let started = Instant::now();
    crate::pipeline::remove_stores(&config)
        .await
        .context("emptying the demo's stores")?;
    let data_dir = dir.join("data");
    let written = write_movie_data(&data_dir, &spec).context("generating the movie data")?;
    let entities_path = data_dir.join("entities.parquet");
    write_entity_rows(
        &entities_path,
        &spec,
        ENTITY_ROWS,
        spec.seed.wrapping_add(1),
    )
    .context("generating the training entity rows")?;
    let rows = written.rows;
    step(
        1,
        "data",
        started,
        format!(
            "{} watch events, {} profile snapshots, {} metadata rows, {ENTITY_ROWS} entity rows \
             ({:.1} MiB, {} to {}) in {}",
            rows.watch_events,
            rows.user_profiles,
            rows.movie_metadata,
            written.bytes as f64 / f64::from(1 << 20),
            format_timestamp(crate::datagen::movies::START_MICROS),
            format_timestamp(spec.end_micros()),
            data_dir.display()
        ),
    )?;

    // 2. Transforms and definitions.
    let started = Instant::now();
    let (bytes, origin) = components_bytes(&components)?;
    let built_in = started.elapsed();
    let lockstep = Lockstep::open_connected(&config).await?;
    let mut transforms = Vec::new();
    for (package, _, name) in TRANSFORMS {
        let component = bytes
            .get(package)
            .with_context(|| format!("no component for `{package}` ({origin})"))?;
        let outcome = lockstep
            .upload(name, component.clone())
            .await
            .map_err(|e| super::coded(&e))
            .with_context(|| format!("uploading {name}"))?;
        transforms.push(UploadedTransform {
            name: name.to_owned(),
            version: outcome.version.version,
            digest: outcome.version.digest,
        });
    }
    let applied = lockstep
        .apply(DEFINITIONS)
        .await
        .context("applying examples/movie-recommendation/lockstep.toml")?;
    step(
        2,
        "transforms",
        started,
        format!(
            "{origin} in {}, uploaded (compiled, smoke-run) and definitions applied to project `{}`",
            secs(built_in),
            applied.project
        ),
    )?;
    for transform in &transforms {
        detail(format!(
            "{}@{}  {}",
            transform.name, transform.version, transform.digest
        ))?;
    }

    // 3. Backfill every view with a batch source.
    let started = Instant::now();
    let definitions = lockstep
        .definitions(&applied.project)
        .await
        .context("reading the applied definitions")?;
    let mut backfills = Vec::new();
    for (name, view) in &definitions.feature_views {
        let batch = definitions.sources.get(&view.source).is_some_and(|source| {
            use crate::model::definitions::SourceKind;
            matches!(
                source.kind,
                SourceKind::Parquet | SourceKind::Csv | SourceKind::Postgres
            )
        });
        if !batch {
            continue;
        }
        let planned = lockstep
            .plan_backfill(&BackfillRequest {
                view: name.clone(),
                ..BackfillRequest::default()
            })
            .await
            .map_err(|e| super::coded(&e))
            .with_context(|| format!("planning the backfill of {name}"))?;
        let summary = lockstep
            .run_backfill(&planned, &|_| {})
            .await
            .map_err(|e| super::coded(&e))
            .with_context(|| format!("backfilling {name}"))?;
        backfills.push(summary);
    }
    let backfilled: u64 = backfills.iter().map(|b| b.rows_out).sum();
    step(
        3,
        "backfill",
        started,
        format!("{backfilled} feature rows into the offline store"),
    )?;
    for summary in &backfills {
        detail(format!(
            "{:<34} {:>7} rows in {:.2}s = {:>7.0} rows/s{}",
            summary.job.view,
            summary.rows_out,
            summary.seconds,
            summary.rows_per_second(),
            if summary.rows_rejected > 0 {
                format!(" ({} rejected by the transform)", summary.rows_rejected)
            } else {
                String::new()
            }
        ))?;
    }

    // 4. Materialize as of the data's end.
    let started = Instant::now();
    let end = spec.end_micros();
    let materialized = lockstep
        .materialize(
            &MaterializeRequest {
                from: Some(EARLIEST),
                to: Some(end),
                ..MaterializeRequest::default()
            },
            &|_| {},
        )
        .await
        .map_err(|e| super::coded(&e))
        .context("materializing")?;
    let entities_online: u64 = materialized.iter().map(|view| view.rows).sum();
    step(
        4,
        "materialize",
        started,
        format!(
            "{entities_online} entities' latest values as of {} into the online store",
            format_timestamp(end)
        ),
    )?;
    for view in &materialized {
        detail(format!(
            "{:<34} {:>7} rows in {:.2}s = {:>7.0} rows/s",
            view.view,
            view.rows,
            view.seconds,
            view.rows_per_second()
        ))?;
    }

    // 5. Training set.
    let started = Instant::now();
    let service = TrainingSetRequest {
        feature_service: Some(SERVICE.into()),
        ..TrainingSetRequest::default()
    };
    let entity_rows = super::offline::read_entities(&lockstep, &service, &entities_path).await?;
    let set = lockstep
        .training_set(&service, &entity_rows)
        .await
        .map_err(|e| super::coded(&e))
        .context("building the training set")?;
    let training_path = dir.join("training_set.parquet");
    set.write_parquet(&training_path)
        .with_context(|| format!("writing {}", training_path.display()))?;
    let training_set = TrainingSetOutput {
        path: training_path,
        rows: set.batch.num_rows(),
        features: set.features.len(),
        seconds: set.seconds,
    };
    step(
        5,
        "training set",
        started,
        format!(
            "{} entity rows × {} features of {SERVICE}, point in time, joined and scored in {:.2}s \
             ({:.0} rows/s) → {}",
            training_set.rows,
            training_set.features,
            training_set.seconds,
            training_set.rows as f64 / training_set.seconds.max(1e-9),
            training_set.path.display()
        ),
    )?;

    // 6. Skew check as of the data's end, before anything newer is pushed.
    let started = Instant::now();
    let at = end - 1;
    let sample = entity_rows.slice(0, PARITY_ROWS.min(entity_rows.num_rows()));
    let watched = recent_watches(&written.watch_event_files).await?;
    let mut parity = vec![
        compare(&lockstep, SERVICE, &sample, at, "training entity rows").await?,
        compare(
            &lockstep,
            INTERACTION_SERVICE,
            &watched,
            at,
            "the last watches",
        )
        .await?,
    ];
    step(6, "skew check", started, parity_line(&parity[..]))?;
    for check in &parity {
        detail(describe(check))?;
    }

    // 7. Serve: fresh pushes and online requests over HTTP.
    let started = Instant::now();
    let state = Arc::new(AppState {
        lockstep,
        access: Access::Open,
        server: config.server.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a loopback port")?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve_until(Arc::clone(&state), listener, async {
        let _ = stopped.await;
    }));
    let served = online::serve_requests(&state.lockstep, &url, at, requests).await;
    let _ = stop.send(());
    server
        .await
        .context("the server task")?
        .context("the server")?;
    let (online, pushed, served_rows, example) = served?;
    step(
        7,
        "online",
        started,
        format!(
            "server on {url}: {} requests of 1 user × {CANDIDATES} movies for {SERVICE}, {} \
             answered 200, {}/{} values PRESENT; latency p50 {:.2} ms, p99 {:.2} ms; stopped",
            online.requests,
            online.ok,
            online.present,
            online.values,
            millis(online.p50),
            millis(online.p99)
        ),
    )?;
    detail(pushed)?;
    online::print_example(&example)?;

    // The served rows, online and offline, at one time after the pushes.
    let started = Instant::now();
    let now = now_micros();
    for name in [SERVICE, INTERACTION_SERVICE] {
        let check = compare(&state.lockstep, name, &served_rows, now, "the served rows").await?;
        parity.push(check);
    }
    step(8, "skew check", started, parity_line(&parity[2..]))?;
    for check in &parity[2..] {
        detail(describe(check))?;
    }
    let compared: u64 = parity.iter().map(|check| check.report.values).sum();
    outln!("\n   skew proof: {compared} values, all identical")?;

    let stores = describe_stores(&config);
    let summary = DemoSummary {
        dir: dir.clone(),
        data: rows,
        transforms,
        backfills,
        materialized,
        training_set,
        online,
        parity,
        stores,
        seconds: total.elapsed().as_secs_f64(),
    };
    outln!("\ndone in {:.1}s", summary.seconds)?;
    outln!("   data          {}", data_dir.display())?;
    outln!("   training set  {}", summary.training_set.path.display())?;
    for store in &summary.stores {
        outln!("   {store}")?;
    }
    Ok(summary)
}

/// The (user, movie) pairs of the last watch events: the interaction view's freshest keys.
async fn recent_watches(files: &[PathBuf]) -> anyhow::Result<RecordBatch> {
    use crate::model::{FieldSpec, ValueType};
    let path = files.last().context("no watch event files")?.clone();
    let keys: Vec<FieldSpec> = ["user_id", "movie_id"]
        .into_iter()
        .map(|name| FieldSpec {
            name: name.to_owned(),
            value_type: ValueType::Int64,
            nullable: false,
        })
        .collect();
    let (batches, _) = tokio::task::spawn_blocking(move || {
        crate::source::read_file(&path, &keys, &[])
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    })
    .await??;
    let schema = batches.first().context("no watch events")?.schema();
    let all = arrow::compute::concat_batches(&schema, &batches)?;
    let rows = PARITY_ROWS.min(all.num_rows());
    Ok(all.slice(all.num_rows() - rows, rows))
}

/// One skew check of `service` over `rows` at `at`; fails on any difference.
async fn compare(
    lockstep: &Lockstep,
    service: &str,
    rows: &RecordBatch,
    at: i64,
    what: &str,
) -> anyhow::Result<ParityCheck> {
    let request = TrainingSetRequest {
        feature_service: Some(service.to_owned()),
        ..TrainingSetRequest::default()
    };
    let report = lockstep
        .compare_online_offline(&request, rows, at)
        .await
        .map_err(|e| super::coded(&e))
        .with_context(|| format!("comparing {service} online and offline"))?;
    let check = ParityCheck {
        what: format!("{service}, {what}, as of {}", format_timestamp(at)),
        report,
    };
    if let Some(first) = &check.report.first_difference {
        anyhow::bail!(
            "SKEW: {}: {} of {} values differ; first at row {}, `{}`: online {} ({}), offline {}",
            check.what,
            check.report.differences,
            check.report.values,
            first.row,
            first.feature,
            first.online,
            first.status.as_str(),
            first.offline
        );
    }
    anyhow::ensure!(check.report.identical(), "{}: nothing compared", check.what);
    Ok(check)
}

fn parity_line(checks: &[ParityCheck]) -> String {
    let values: u64 = checks.iter().map(|check| check.report.values).sum();
    let present: u64 = checks.iter().map(|check| check.report.present).sum();
    format!(
        "online store vs training set, same rows, same time: {values} values ({present} present), \
         all identical bit for bit"
    )
}

fn describe(check: &ParityCheck) -> String {
    let report = &check.report;
    format!(
        "{}: {} rows × {} features, {} present, {} differ",
        check.what, report.rows, report.features, report.present, report.differences
    )
}

fn describe_stores(config: &Config) -> Vec<String> {
    let registry = match config.registry.location() {
        RegistryLocation::Postgres { schema, .. } => format!("Postgres schema {schema}"),
        RegistryLocation::Sqlite { path } => path.display().to_string(),
    };
    let offline = match config.offline_location() {
        OfflineLocation::Postgres { schema, .. } => format!("Postgres schema {schema}"),
        OfflineLocation::Sqlite { path } => path.display().to_string(),
    };
    let online = match config.online_location() {
        OnlineLocation::Redis { namespace, .. } => format!("Redis keys {namespace}:*"),
        OnlineLocation::Embedded { path, namespace } => {
            format!("{} (keys {namespace}:*)", path.display())
        }
    };
    vec![
        format!("registry      {registry}"),
        format!("offline store {offline}"),
        format!("online store  {online}"),
    ]
}

/// The example's component bytes by package, and where they came from.
fn components_bytes(
    components: &Components,
) -> anyhow::Result<(BTreeMap<String, Vec<u8>>, String)> {
    match components {
        Components::Build(dir) => {
            anyhow::ensure!(
                dir.join("Cargo.toml").is_file(),
                "no transforms workspace at {} (pass --transforms <dir>, or --components <dir> \
                 with movie_watch.component.wasm and movie_scorer.component.wasm)",
                dir.display()
            );
            let built = toolchain::build(
                dir,
                &BuildOptions {
                    target_dir: None,
                    quiet: true,
                },
            )
            .with_context(|| format!("building the transforms in {}", dir.display()))?;
            let bytes = built
                .into_iter()
                .map(|component| (component.package, component.bytes))
                .collect();
            Ok((bytes, format!("built with cargo from {}", dir.display())))
        }
        Components::Dir(dir) => {
            let mut bytes = BTreeMap::new();
            for (package, stem, _) in TRANSFORMS {
                let path = dir.join(format!("{stem}.component.wasm"));
                let component = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                bytes.insert(package.to_owned(), component);
            }
            Ok((bytes, format!("loaded from {}", dir.display())))
        }
        Components::Bytes(bytes) => Ok((bytes.clone(), "prebuilt components".to_owned())),
    }
}

/// A step's line: number, name, time taken, what happened.
fn step(number: u32, name: &str, started: Instant, text: String) -> anyhow::Result<()> {
    outln!(
        "{number}. {name:<13} {:>6}  {text}",
        secs(started.elapsed())
    )
}

/// A line under a step.
fn detail(text: String) -> anyhow::Result<()> {
    outln!("                         {text}")
}

fn secs(duration: Duration) -> String {
    format!("{:.2}s", duration.as_secs_f64())
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
