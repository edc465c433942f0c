//! Offline-path benchmark against the local Postgres, on generated movie data:
//!
//! * backfill of `user_movie_interaction_features` (Parquet source → the movie-watch wasm
//!   transform → binary `COPY` upsert with checkpoints): rows/s and peak memory, each in a
//!   process of its own (peak = its `VmHWM`), at two input sizes, so equal peaks show that
//!   memory does not grow with the input;
//! * training set: 100,000 entity rows joined point in time to 3 views, and the feature
//!   service (2 views + the on-demand scorer).
//!
//! `cargo bench -p lockstep-tests --bench offline` (1,000,000 events; set
//! `LOCKSTEP_BENCH_EVENTS` for another size, `LOCKSTEP_BENCH_KEEP=1` to keep the data and
//! tables for a look afterwards).

use std::path::Path;
use std::time::Instant;

use lockstep::datagen::movies::{MovieDataSpec, write_entity_rows, write_movie_data};
use lockstep::pipeline::{BackfillRequest, Lockstep, TrainingSetRequest};
use lockstep_tests::{TestBackend, apply_movie_example, unique_name};

const ENTITY_ROWS: u64 = 100_000;

/// Set in the child process that runs one backfill: `{schema} {data dir}`.
const CHILD: &str = "LOCKSTEP_BENCH_BACKFILL_CHILD";

fn main() {
    let events: u64 = std::env::var("LOCKSTEP_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match std::env::var(CHILD) {
        Ok(child) => {
            let (schema, dir) = child.split_once(' ').expect("schema and directory");
            runtime.block_on(backfill_child(schema, Path::new(dir)));
        }
        Err(_) => runtime.block_on(run(events)),
    }
}

/// The child's part: one backfill in a fresh process, so its peak memory is its own.
async fn backfill_child(schema: &str, dir: &Path) {
    let backend = TestBackend::Postgres {
        schema: schema.to_owned(),
    };
    let lockstep = open(&backend, dir).await;
    let before = peak_rss_mib();
    let (rows, seconds) = backfill(&lockstep, "user_movie_interaction_features").await;
    println!(
        "backfill user_movie_interaction_features: {rows} rows in {seconds:.2}s = {:.0} rows/s \
         (transform + COPY upsert into Postgres), peak RSS {:.0} MiB (after opening: {before:.0} MiB)",
        rows as f64 / seconds,
        peak_rss_mib()
    );
}

/// Runs [`backfill_child`] in a new process of this benchmark, on `backend`'s schema.
fn backfill_in_child(backend: &TestBackend, dir: &Path) {
    let TestBackend::Postgres { schema } = backend else {
        panic!("the benchmark runs on Postgres");
    };
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD, format!("{schema} {}", dir.display()))
        .status()
        .unwrap();
    assert!(status.success(), "the backfill child failed: {status}");
}

/// The process's peak resident memory so far, in MiB (Linux's `VmHWM`).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

async fn backfill(lockstep: &Lockstep, view: &str) -> (u64, f64) {
    let planned = lockstep
        .plan_backfill(&BackfillRequest {
            view: view.into(),
            ..BackfillRequest::default()
        })
        .await
        .unwrap();
    let split = std::sync::Mutex::new((0.0, 0.0));
    let summary = lockstep
        .run_backfill(&planned, &|event| {
            if let lockstep::pipeline::BackfillEvent::ChunkDone {
                compute_seconds,
                write_seconds,
                ..
            } = event
            {
                let mut split = split.lock().unwrap();
                split.0 += compute_seconds;
                split.1 += write_seconds;
            }
        })
        .await
        .unwrap();
    let (compute, write) = *split.lock().unwrap();
    println!(
        "  {view}: {} chunks; summed over workers: read + transform {compute:.2}s, write {write:.2}s",
        summary.chunks
    );
    (summary.rows_in, summary.seconds)
}

async fn open(backend: &TestBackend, dir: &Path) -> Lockstep {
    let mut config = backend.config();
    config.runtime.max_memory_bytes = 256 << 20;
    config.sources.base_dir = dir.to_owned();
    let lockstep = Lockstep::open(&config).await.unwrap();
    apply_movie_example(&lockstep).await;
    lockstep
}

async fn run(events: u64) {
    println!(
        "offline benchmark: movie data, Postgres at {}",
        lockstep_tests::test_database_url()
    );
    let root = std::env::temp_dir().join(unique_name("lockstep-bench-offline"));
    let sizes = [events / 4, events];
    let mut keep = None;
    for events in sizes {
        let dir = root.join(events.to_string());
        let spec = MovieDataSpec {
            events,
            ..MovieDataSpec::benchmark()
        };
        let started = Instant::now();
        write_movie_data(&dir.join("data"), &spec).unwrap();
        println!(
            "\ngenerated {events} watch events in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        let backend = TestBackend::postgres();
        // Creates the schema and applies the definitions for the child.
        let lockstep = open(&backend, &dir).await;
        backfill_in_child(&backend, &dir);
        keep = Some((backend, lockstep, dir, spec));
    }
    let (backend, lockstep, dir, spec) = keep.expect("at least one size");
    for view in ["user_profile_features", "movie_metadata_features"] {
        let (rows, seconds) = backfill(&lockstep, view).await;
        println!("backfill {view}: {rows} rows in {seconds:.2}s");
    }

    let entities_path = dir.join("entities.parquet");
    write_entity_rows(&entities_path, &spec, ENTITY_ROWS, 7).unwrap();
    for (label, request) in [
        (
            "3 views",
            TrainingSetRequest {
                features: vec![
                    "user_profile_features:*".into(),
                    "movie_metadata_features:*".into(),
                    "user_movie_interaction_features:*".into(),
                ],
                ..TrainingSetRequest::default()
            },
        ),
        (
            "service movie_recommendation_service (2 views + on-demand scorer)",
            TrainingSetRequest {
                feature_service: Some("movie_recommendation_service".into()),
                ..TrainingSetRequest::default()
            },
        ),
    ] {
        let (required, optional) = lockstep.training_set_columns(&request).await.unwrap();
        let (batches, _) =
            lockstep::source::read_file(&entities_path, &required, &optional).unwrap();
        let entities = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        // One warm-up, then the best of three.
        lockstep.training_set(&request, &entities).await.unwrap();
        let mut best = f64::INFINITY;
        let mut columns = 0;
        for _ in 0..3 {
            let started = Instant::now();
            let set = lockstep.training_set(&request, &entities).await.unwrap();
            best = best.min(started.elapsed().as_secs_f64());
            columns = set.features.len();
        }
        println!(
            "training set, {label}: {ENTITY_ROWS} entity rows × {columns} features in {best:.3}s \
             = {:.0} rows/s",
            ENTITY_ROWS as f64 / best
        );
    }
    if std::env::var_os("LOCKSTEP_BENCH_KEEP").is_some() {
        println!(
            "\nkept the data in {} and the tables in {backend:?}",
            root.display()
        );
    } else {
        backend.cleanup().await;
        let _ = std::fs::remove_dir_all(root);
    }
}
