//! Backfills of the movie example into real Postgres: a `lockstep backfill` process killed
//! with SIGKILL mid-way and run again ends with exactly the table of a clean run, a third
//! run changes nothing; SIGTERM leaves an interrupted job that reruns resume (a `--fresh`
//! one too), taking a dead process's leases over at once; a run says what it waits for;
//! job tables from before job states migrated; the HTTP job endpoints; clear errors for
//! bad sources.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lockstep::config::Config;
use lockstep::datagen::movies::{MovieDataSpec, write_movie_data};
use lockstep::model::Classify;
use lockstep::offline::{JobState, ViewTable, checksum};
use lockstep::pipeline::{BackfillEvent, BackfillRequest, Lockstep};
use lockstep_tests::{
    TestBackend, TestServer, apply_movie_example, test_dir, unique_name, write_config,
};
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
    let dir = test_dir("lockstep-kill");
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
    let dir = test_dir("lockstep-http-backfill");
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
    let dir = test_dir("lockstep-bad-source");
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

/// The CLI's `backfills --json`, as JSON.
fn jobs_json(config_file: &Path) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_lockstep-cli"))
        .arg("--config")
        .arg(config_file)
        .args(["backfills", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Waits until the newest job has at least `chunks` chunks done, then sends `signal`.
async fn signal_after(lockstep: &Lockstep, child: &std::process::Child, chunks: u32, signal: &str) {
    let started = Instant::now();
    loop {
        let done = match lockstep.offline().jobs(1).await.unwrap().first() {
            Some(job) => job.chunks_done,
            None => 0,
        };
        if done >= chunks {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_interrupts_a_fresh_backfill_and_reruns_resume_it_even_after_sigkill() {
    let dir = test_dir("lockstep-sigterm");
    movie_data(&dir, 240_000);
    let backend = TestBackend::postgres();
    let mut config = config_for(&backend, &dir);
    // Long leases: a rerun that waited for a lapse would take this long.
    config.backfill.lease_seconds = 60.0;
    let config_file = dir.join("lockstep.toml");
    write_config(&config, &config_file);
    let lockstep = Lockstep::open(&config).await.unwrap();
    apply_movie_example(&lockstep).await;

    // A --fresh run, stopped with SIGTERM: it finishes its chunk and says so.
    let child = backfill_process(&config_file, &["--fresh"])
        .spawn()
        .unwrap();
    signal_after(&lockstep, &child, 2, "TERM").await;
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("SIGTERM: stopping: finishing the chunks"),
        "{stderr}"
    );
    assert!(stderr.contains("interrupted with"), "{stderr}");
    assert!(
        stderr.contains("(stopped by SIGTERM); run the same command again to resume it"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ETA "),
        "progress lines carry an ETA: {stderr}"
    );
    let job = lockstep.offline().jobs(1).await.unwrap().remove(0);
    assert_eq!(job.state, JobState::Interrupted, "{job:?}");
    assert!(job.finished_at_micros.is_some(), "{job:?}");
    assert_eq!(job.chunks_running, 0, "no lease left behind: {job:?}");
    assert!(
        job.chunks_done >= 2 && job.chunks_done < job.chunks_total,
        "{job:?}"
    );
    let listed = jobs_json(&config_file);
    assert_eq!(listed[0]["id"], job.id);
    assert_eq!(listed[0]["state"], "interrupted", "{listed}");
    assert!(listed[0]["finished_at_micros"].is_i64(), "{listed}");

    // A plain rerun resumes the interrupted --fresh job; SIGKILL it mid-way.
    let child = backfill_process(&config_file, &[]).spawn().unwrap();
    signal_after(&lockstep, &child, job.chunks_done + 2, "KILL").await;
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), None, "killed by a signal");
    let killed = lockstep.offline().job(job.id).await.unwrap();
    assert!(!killed.is_complete(), "{killed:?}");
    // Still heartbeated for one lease: it counts as running until then.
    assert_eq!(killed.state, JobState::Running, "{killed:?}");
    let held_a_lease = killed.chunks_running > 0;

    // The next rerun takes the dead process's lease over at once instead of waiting 60 s.
    let started = Instant::now();
    let output = backfill_process(&config_file, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(55), "{stderr}");
    assert!(!stderr.contains("waiting for chunk"), "{stderr}");
    if held_a_lease {
        assert!(
            stderr.contains("which no longer runs: taking them over now"),
            "{stderr}"
        );
    }
    let done = lockstep.offline().job(job.id).await.unwrap();
    assert_eq!(done.state, JobState::Done, "{done:?}");
    assert!(done.finished_at_micros.is_some(), "{done:?}");
    assert_eq!(
        lockstep.offline().jobs(10).await.unwrap().len(),
        1,
        "one job, resumed"
    );
    assert_eq!(jobs_json(&config_file)[0]["state"], "done");

    // Training sets and materializations show their steps, with counts toward a total.
    let entities = dir.join("entities.parquet");
    let spec = MovieDataSpec {
        events: 240_000,
        events_per_file: 60_000,
        row_group_rows: 8_000,
        ..MovieDataSpec::small()
    };
    lockstep::datagen::movies::write_entity_rows(&entities, &spec, 2_000, 7).unwrap();
    let cli = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_lockstep-cli"))
            .arg("--config")
            .arg(&config_file)
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{args:?}: {stderr}");
        stderr
    };
    let training = dir.join("train.parquet").display().to_string();
    let stderr = cli(&[
        "training-set",
        "--entities",
        &entities.display().to_string(),
        "--features",
        &format!("{VIEW}:*"),
        "--out",
        &training,
    ]);
    assert!(
        stderr.contains("point-in-time join to 1 view(s): 0/2000 rows (0%)"),
        "{stderr}"
    );
    let stderr = cli(&["materialize", "--from", "2020-01-01", "--views", VIEW]);
    assert!(
        stderr.contains(&format!("materializing {VIEW} [")),
        "{stderr}"
    );
    assert!(
        stderr.contains(" rows (0%)"),
        "an estimated total: {stderr}"
    );

    backend.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_says_what_it_waits_for_and_takes_dead_local_leases_over() {
    let dir = test_dir("lockstep-wait");
    movie_data(&dir, 20_000);
    let backend = TestBackend::sqlite();
    let mut config = config_for(&backend, &dir);
    config.backfill.chunk_rows = 2_000;
    let lockstep = Lockstep::open(&config).await.unwrap();
    apply_movie_example(&lockstep).await;
    let request = BackfillRequest {
        view: VIEW.into(),
        ..BackfillRequest::default()
    };
    let planned = lockstep.plan_backfill(&request).await.unwrap();
    assert!(planned.job.chunks_total >= 3, "{:?}", planned.job);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    // A worker of another host holds a chunk for 2 s; a dead process of this host another.
    let lease = Duration::from_secs(2);
    let offline = lockstep.offline();
    let other = offline
        .claim_chunk(planned.job.id, "other-host:1:1:0", lease)
        .await
        .unwrap()
        .unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let dead_owner = format!("{hostname}:{dead_pid}:1:0");
    let dead = offline
        .claim_chunk(planned.job.id, &dead_owner, Duration::from_secs(600))
        .await
        .unwrap()
        .unwrap();

    let events = std::sync::Mutex::new(Vec::new());
    let started = Instant::now();
    let summary = lockstep
        .run_backfill(&planned, &|event| events.lock().unwrap().push(event))
        .await
        .unwrap();
    assert!(summary.job.is_complete());
    let events = events.into_inner().unwrap();
    let taken_over: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            BackfillEvent::TakenOver { seqs, owner } => Some((seqs.clone(), owner.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(taken_over, vec![(vec![dead.seq], dead_owner)]);
    let waits: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            BackfillEvent::Waiting {
                seqs,
                owners,
                until_micros,
            } => Some((seqs.clone(), owners.clone(), *until_micros)),
            _ => None,
        })
        .collect();
    assert_eq!(waits.len(), 1, "told once: {waits:?}");
    assert_eq!(waits[0].0, vec![other.seq]);
    assert_eq!(waits[0].1, vec!["other-host:1:1:0".to_owned()]);
    // The other host's lease lapsed, then its chunk was done here.
    assert!(
        started.elapsed() >= Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
    let done_here: Vec<u32> = events
        .iter()
        .filter_map(|event| match event {
            BackfillEvent::ChunkDone { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert!(
        done_here.contains(&other.seq) && done_here.contains(&dead.seq),
        "{done_here:?}"
    );
    backend.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The job tables as they were before job states, with a finished job and an unfinished one.
const OLD_JOBS: &str = "CREATE TABLE backfill_jobs (
    id BIGSERIAL PRIMARY KEY, project TEXT NOT NULL, view TEXT NOT NULL,
    table_name TEXT NOT NULL, time_window TEXT NOT NULL, fingerprint TEXT NOT NULL,
    chunks INTEGER NOT NULL, error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (table_name, fingerprint));
CREATE TABLE backfill_chunks (
    job_id BIGINT NOT NULL REFERENCES backfill_jobs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, spec TEXT NOT NULL, done BOOLEAN NOT NULL DEFAULT false,
    lease_owner TEXT, lease_expires TIMESTAMPTZ, attempts INTEGER NOT NULL DEFAULT 0,
    rows_in BIGINT NOT NULL DEFAULT 0, rows_out BIGINT NOT NULL DEFAULT 0,
    rows_rejected BIGINT NOT NULL DEFAULT 0, finished_at TIMESTAMPTZ,
    PRIMARY KEY (job_id, seq));";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_tables_from_before_job_states_are_migrated_on_both_backends() {
    use lockstep::offline::{JobPlan, OfflineLocation};
    let plan = |window: &str| JobPlan {
        project: "p".into(),
        view: "v".into(),
        table: "t".into(),
        window: window.into(),
        chunks: vec!["a".into(), "b".into()],
        fresh: false,
    };
    let (done_plan, open_plan) = (plan("done"), plan("open"));
    // An interrupted fresh job of the open plan: its fingerprint carries `#<time>`.
    let inserts = format!(
        "INSERT INTO backfill_jobs (project, view, table_name, time_window, fingerprint, chunks) \
         VALUES ('p', 'v', 't', 'done', '{}', 2), ('p', 'v', 't', 'open', '{}#123', 2);
         INSERT INTO backfill_chunks (job_id, seq, spec, done, finished_at) VALUES \
         (1, 0, 'a', true, {now}), (1, 1, 'b', true, {now}), (2, 0, 'a', true, {now}), \
         (2, 1, 'b', false, NULL);",
        done_plan.fingerprint(),
        open_plan.fingerprint(),
        now = "{now}",
    );

    // Postgres: the old tables in a schema of their own.
    let schema = unique_name("lockstep_old_jobs");
    let pool = sqlx::PgPool::connect(&lockstep_tests::test_database_url())
        .await
        .unwrap();
    let mut setup = format!("CREATE SCHEMA {schema}; SET search_path TO {schema};\n{OLD_JOBS}\n");
    setup.push_str(&inserts.replace("{now}", "clock_timestamp()"));
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql(&setup).execute(&mut *conn).await.unwrap();
    drop(conn);
    let postgres = lockstep::offline::open(&OfflineLocation::Postgres {
        url: lockstep_tests::test_database_url(),
        schema: schema.clone(),
    })
    .await
    .unwrap();

    // SQLite: the same tables in the embedded dialect.
    let dir = test_dir("lockstep-old-jobs");
    let path = dir.join("offline.db");
    let sqlite_pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    let old_sqlite = OLD_JOBS
        .replace("BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT")
        .replace(
            "TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()",
            "INTEGER NOT NULL DEFAULT 0",
        )
        .replace("TIMESTAMPTZ", "INTEGER");
    let now = lockstep::model::now_micros().to_string();
    sqlx::raw_sql(&format!("{old_sqlite}\n{}", inserts.replace("{now}", &now)))
        .execute(&sqlite_pool)
        .await
        .unwrap();
    sqlite_pool.close().await;
    let sqlite = lockstep::offline::open(&OfflineLocation::Sqlite { path })
        .await
        .unwrap();

    for store in [postgres, sqlite] {
        let backend = store.backend();
        let jobs = store.jobs(10).await.unwrap();
        assert_eq!(jobs.len(), 2, "{backend}");
        let (open, done) = (&jobs[0], &jobs[1]);
        assert_eq!(done.state, JobState::Done, "{backend}: {done:?}");
        assert!(
            done.finished_at_micros.is_some(),
            "{backend}: the last chunk's time"
        );
        assert_eq!(open.state, JobState::Interrupted, "{backend}: {open:?}");
        // A rerun of either plan finds its job: the unfinished fresh one is resumed.
        assert_eq!(
            store.create_job(&open_plan).await.unwrap().id,
            open.id,
            "{backend}"
        );
        assert_eq!(
            store.create_job(&done_plan).await.unwrap().id,
            done.id,
            "{backend}"
        );
    }
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
