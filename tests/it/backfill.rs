//! Backfills of the movie example into real Postgres: a `lockstep backfill` process killed
//! with SIGKILL mid-way and run again ends with exactly the table of a clean run, a third
//! run changes nothing; the HTTP job endpoints; clear errors for bad sources.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lockstep::config::Config;
use lockstep::datagen::movies::{MovieDataSpec, write_movie_data};
use lockstep::offline::{ViewTable, checksum};
use lockstep::pipeline::{BackfillRequest, Lockstep};
use lockstep_tests::{TestBackend, TestServer, apply_movie_example, unique_name, write_config};
use serde_json::{Value, json};

const VIEW: &str = "user_movie_interaction_features";

/// Generated movie data under `<dir>/data`, as the example's definitions expect.
fn movie_data(dir: &Path, events: u64) {
    let spec = MovieDataSpec {
        events,
        events_per_file: 60_000,
        row_group_rows: 8_000,
        ..MovieDataSpec::small()
    };
    write_movie_data(&dir.join("data"), &spec).expect("generate movie data");
}

fn config_for(backend: &TestBackend, dir: &Path) -> Config {
    let mut config = backend.config();
    config.sources.base_dir = dir.to_owned();
    config.backfill.chunk_rows = 8_000;
    config.backfill.workers = 1;
    config.backfill.lease_seconds = 1.0;
    config
}

async fn table_checksum(lockstep: &Lockstep) -> (u64, String) {
    let definitions = lockstep.definitions("movies").await.unwrap();
    let table = ViewTable::for_view("movies", VIEW, &definitions.feature_views[VIEW]);
    checksum(lockstep.offline().as_ref(), &table).await.unwrap()
}

fn backfill_process(config_file: &Path, extra: &[&str]) -> Command {
    // The `lockstep` CLI, built by cargo for these tests (`tests/src/bin/lockstep-cli.rs`).
    let mut command = Command::new(env!("CARGO_BIN_EXE_lockstep-cli"));
    command
        .arg("--config")
        .arg(config_file)
        .arg("backfill")
        .arg(VIEW)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backfill_resumes_to_the_same_table_and_a_rerun_changes_nothing() {
    let dir = std::env::temp_dir().join(unique_name("lockstep-kill"));
    movie_data(&dir, 240_000);

    // The reference: a clean, uninterrupted run in its own schemas.
    let clean_backend = TestBackend::postgres();
    let clean = Lockstep::open(&config_for(&clean_backend, &dir))
        .await
        .unwrap();
    apply_movie_example(&clean).await;
    let planned = clean
        .plan_backfill(&BackfillRequest {
            view: VIEW.into(),
            ..BackfillRequest::default()
        })
        .await
        .unwrap();
    let chunks = planned.job.chunks_total;
    assert!(chunks >= 20, "{chunks} chunks: too few to kill mid-way");
    clean.run_backfill(&planned, &|_| {}).await.unwrap();
    let expected = table_checksum(&clean).await;
    assert!(expected.0 > 100_000, "{expected:?}");

    // The same backfill as a process, killed once a few chunks are committed.
    let backend = TestBackend::postgres();
    let config = config_for(&backend, &dir);
    let config_file = dir.join("lockstep.toml");
    write_config(&config, &config_file);
    let lockstep = Lockstep::open(&config).await.unwrap();
    apply_movie_example(&lockstep).await;
    let mut child = backfill_process(&config_file, &[]).spawn().unwrap();
    let started = Instant::now();
    let killed_at = loop {
        let done = match lockstep.offline().jobs(1).await.unwrap().first() {
            Some(job) => job.chunks_done,
            None => 0,
        };
        if done >= 3 {
            child.kill().unwrap(); // SIGKILL: no cleanup, a lease left behind.
            break done;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backfill ended before it could be killed"
        );
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    child.wait().unwrap();
    let job = lockstep.offline().jobs(1).await.unwrap().remove(0);
    assert!(
        job.chunks_done < job.chunks_total,
        "killed after {killed_at} chunks, yet all {} are done",
        job.chunks_total
    );

    // Run again: it resumes the same job (taking over the dead worker's lease) and ends
    // with the clean run's table.
    let output = backfill_process(&config_file, &[]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let resumed = lockstep.offline().job(job.id).await.unwrap();
    assert!(resumed.is_complete(), "{resumed:?}");
    assert_eq!(
        lockstep.offline().jobs(10).await.unwrap().len(),
        1,
        "one job, resumed"
    );
    assert!(
        stdout.contains(&format!("backfill job {} complete", job.id)),
        "{stdout}"
    );
    assert_eq!(table_checksum(&lockstep).await, expected);

    // A third run has nothing to do; a forced fresh run rewrites nothing.
    let output = backfill_process(&config_file, &[]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(stdout.contains("nothing to do"), "{stdout}");
    assert_eq!(table_checksum(&lockstep).await, expected);
    let output = backfill_process(&config_file, &["--fresh"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(table_checksum(&lockstep).await, expected);

    backend.cleanup().await;
    clean_backend.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfills_run_as_http_jobs_with_status() {
    let dir = std::env::temp_dir().join(unique_name("lockstep-http-backfill"));
    movie_data(&dir, 20_000);
    let backend = TestBackend::sqlite();
    let config = config_for(&backend, &dir);
    let lockstep = Lockstep::open(&config).await.unwrap();
    apply_movie_example(&lockstep).await;
    drop(lockstep);
    let server = TestServer::start_with(config, None).await;
    let response = server
        .client
        .post(server.at("/backfills"))
        .json(&json!({ "view": "movie_metadata_features", "from": "2026-01-01" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let id = body["job"]["id"].as_i64().unwrap();
    let started = Instant::now();
    let job = loop {
        let job: Value = server
            .client
            .get(server.at(&format!("/backfills/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["chunks_done"] == job["chunks_total"] {
            break job;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(job["rows_in"].as_u64().unwrap() > 0, "{job}");
    assert_eq!(job["error"], Value::Null);

    let list: Value = server
        .client
        .get(server.at("/backfills"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["jobs"][0]["id"], id);

    // A training set over HTTP: JSON columns in, JSON columns (or Parquet) out, every row
    // kept in order; movie 1 has metadata from 2026-01-01, movie 999999 none.
    let request = json!({
        "features": ["movie_metadata_features:vote_average", "movie_metadata_features:genre_drama"],
        "entities": {
            "movie_id": [999999, 1, 1],
            "event_timestamp": ["2026-01-05T00:00:00Z", "2026-01-05T00:00:00Z", "2025-12-01"],
        }
    });
    let response = server
        .client
        .post(server.at("/training-set"))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let set: Value = response.json().await.unwrap();
    assert_eq!(set["rows"], 3, "{set}");
    assert_eq!(set["columns"]["movie_id"], json!([999999, 1, 1]), "{set}");
    let votes = &set["columns"]["vote_average"];
    assert!(
        votes[0].is_null() && votes[1].is_number() && votes[2].is_null(),
        "{set}"
    );
    let parquet = server
        .client
        .post(server.at("/training-set"))
        .header("accept", "application/vnd.apache.parquet")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(parquet.status(), 200);
    assert!(parquet.bytes().await.unwrap().starts_with(b"PAR1"));
    let missing = server
        .client
        .post(server.at("/training-set"))
        .json(
            &json!({ "features": ["movie_metadata_features:*"], "entities": { "movie_id": [1] } }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    let error: Value = missing.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_entity_rows", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("event_timestamp"),
        "{error}"
    );

    // Unknown views and malformed bodies get their codes.
    for (body, status, code) in [
        (json!({ "view": "nope" }), 404, "unknown_view"),
        (
            json!({ "view": "movie_metadata_features", "from": "yesterday" }),
            400,
            "invalid_body",
        ),
        (
            json!({ "view": "movie_metadata_features", "colour": 1 }),
            400,
            "invalid_body",
        ),
        (
            json!({ "view": "movie_metadata_features", "from": "2026-02-01", "to": "2026-01-01" }),
            400,
            "invalid_backfill",
        ),
    ] {
        let response = server
            .client
            .post(server.at("/backfills"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{error}");
    }
    let missing = server
        .client
        .get(server.at("/backfills/999"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    server.stop().await;
    backend.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_corrupt_sources_are_named() {
    let dir = std::env::temp_dir().join(unique_name("lockstep-bad-source"));
    movie_data(&dir, 5_000);
    let backend = TestBackend::sqlite();
    let lockstep = Lockstep::open(&config_for(&backend, &dir)).await.unwrap();
    apply_movie_example(&lockstep).await;
    let request = |view: &str| BackfillRequest {
        view: view.into(),
        ..BackfillRequest::default()
    };

    // A file that is not Parquet at all.
    let bad = dir.join("data/watch_events/part-99999.parquet");
    std::fs::write(&bad, b"definitely not parquet").unwrap();
    let error = match lockstep.plan_backfill(&request(VIEW)).await {
        Err(error) => error,
        Ok(planned) => lockstep.run_backfill(&planned, &|_| {}).await.unwrap_err(),
    };
    let message = error.to_string();
    assert!(message.contains("part-99999.parquet"), "{message}");
    assert_eq!(error.code(), "source_corrupt", "{message}");
    std::fs::remove_file(bad).unwrap();

    // No files at all.
    std::fs::remove_file(dir.join("data/movie_metadata.csv")).unwrap();
    let error = lockstep
        .plan_backfill(&request("movie_metadata_features"))
        .await
        .err()
        .expect("no files");
    assert_eq!(error.code(), "source_no_files", "{error}");
    assert!(error.to_string().contains("movie_metadata.csv"), "{error}");

    backend.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}
