//! The offline store's bookkeeping tables under migrations: a store made by the version
//! before migrations opens with its data (both backends), and the registry and the offline
//! store sharing one Postgres schema or one SQLite file each keep their own migrations.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use lockstep::model::Digest;
use lockstep::offline::{
    JobPlan, JobState, LogRecord, MIGRATIONS_TABLE, OfflineLocation, OfflineStore,
};
use lockstep::registry::RegistryLocation;
use lockstep_tests::{test_database_url, test_dir, unique_name};

/// The previous version's bookkeeping tables.
const POSTGRES_BEFORE: &str = include_str!("fixtures/offline_before_migrations/postgres.sql");
const SQLITE_BEFORE: &str = include_str!("fixtures/offline_before_migrations/sqlite.sql");

fn plan() -> JobPlan {
    JobPlan {
        project: "p".into(),
        view: "v".into(),
        table: "t".into(),
        window: "w".into(),
        chunks: vec!["a".into(), "b".into()],
        fresh: false,
    }
}

fn digests() -> BTreeMap<String, Digest> {
    BTreeMap::from([("v".to_owned(), Digest::of(b"transform"))])
}

/// Rows in every bookkeeping table, as the previous version wrote them: a finished job of
/// [`plan`] with its two chunks, a materialization and a logged response. `now` is the
/// backend's current-time expression, `bytes` its literal of the bytes 00 ff.
fn rows(now: &str, bytes: &str) -> String {
    let fingerprint = plan().fingerprint();
    let digests = serde_json::to_string(&digests()).unwrap();
    format!(
        "INSERT INTO backfill_jobs (project, view, table_name, time_window, fingerprint, chunks, \
             created_at, state, finished_at, plan_fingerprint) \
         VALUES ('p', 'v', 't', 'w', '{fingerprint}', 2, {now}, 'done', {now}, '{fingerprint}');
         INSERT INTO backfill_chunks (job_id, seq, spec, done, rows_in, rows_out, finished_at) \
         VALUES (1, 0, 'a', true, 5, 4, {now}), (1, 1, 'b', true, 3, 3, {now});
         INSERT INTO materializations (project, view, table_name, start_micros, end_micros, \
             rows, finished_at) VALUES ('p', 'v', 't', 0, 5000000, 7, {now});
         INSERT INTO feature_log (project, service, logged_at, request_ts, digests, payload) \
         VALUES ('p', 's', 10, 20, '{digests}', {bytes});"
    )
}

/// Reads back what [`rows`] wrote, then writes and reads on: the store works on.
async fn check_rows(store: &Arc<dyn OfflineStore>) {
    let backend = store.backend();
    let jobs = store.jobs(10).await.unwrap();
    assert_eq!(jobs.len(), 1, "{backend}: {jobs:?}");
    let job = &jobs[0];
    assert_eq!(
        (job.project.as_str(), job.view.as_str(), job.table.as_str()),
        ("p", "v", "t"),
        "{backend}"
    );
    assert_eq!(job.window, "w", "{backend}");
    assert_eq!(job.state, JobState::Done, "{backend}: {job:?}");
    assert_eq!((job.chunks_total, job.chunks_done), (2, 2), "{backend}");
    assert_eq!((job.rows_in, job.rows_out), (8, 7), "{backend}");
    assert!(job.finished_at_micros.is_some(), "{backend}");
    // A rerun of the plan finds the job.
    assert_eq!(
        store.create_job(&plan()).await.unwrap().id,
        job.id,
        "{backend}"
    );
    assert_eq!(
        store.materialized_until("t").await.unwrap(),
        Some(5_000_000),
        "{backend}"
    );
    let logged = LogRecord {
        project: "p".into(),
        service: "s".into(),
        logged_at: 10,
        request_ts: 20,
        digests: digests(),
        payload: vec![0, 255],
    };
    let later = LogRecord {
        logged_at: 30,
        payload: vec![1],
        ..logged.clone()
    };
    store
        .write_feature_logs(std::slice::from_ref(&later))
        .await
        .unwrap();
    assert_eq!(
        store.read_feature_logs("p", "s", 0, 10).await.unwrap(),
        vec![logged, later],
        "{backend}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_made_before_migrations_opens_with_its_data_on_both_backends() {
    // Postgres: the previous version's tables and rows in a schema of their own.
    let url = test_database_url();
    let schema = unique_name("lockstep_offline_before");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let setup = format!(
        "CREATE SCHEMA {schema}; SET search_path TO {schema};\n{POSTGRES_BEFORE}\n{}",
        rows("clock_timestamp()", "'\\x00ff'::bytea")
    );
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql(&setup).execute(&mut *conn).await.unwrap();
    drop(conn);
    let location = OfflineLocation::Postgres {
        url: url.clone(),
        schema: schema.clone(),
    };
    let postgres = lockstep::offline::open(&location).await.unwrap();
    check_rows(&postgres).await;
    // Opened again, the migrations are recorded and nothing is applied twice.
    let again = lockstep::offline::open(&location).await.unwrap();
    assert_eq!(again.jobs(10).await.unwrap().len(), 1);
    let applied: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT version FROM {schema}.{MIGRATIONS_TABLE} ORDER BY version"
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(applied, vec![1]);

    // SQLite: the same in the embedded dialect.
    let dir = test_dir("lockstep-offline-before");
    let path = dir.join("offline.db");
    let now = lockstep::model::now_micros().to_string();
    run_sqlite(
        &path,
        &format!("{SQLITE_BEFORE}\n{}", rows(&now, "x'00ff'")),
    )
    .await;
    let location = OfflineLocation::Sqlite { path };
    let sqlite = lockstep::offline::open(&location).await.unwrap();
    check_rows(&sqlite).await;
    let again = lockstep::offline::open(&location).await.unwrap();
    assert_eq!(again.jobs(10).await.unwrap().len(), 1);

    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

async fn run_sqlite(path: &Path, sql: &str) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_and_the_offline_store_share_a_schema_or_a_file() {
    let url = test_database_url();
    let schema = unique_name("lockstep_shared");
    let dir = test_dir("lockstep-shared");
    let path = dir.join("lockstep.db");
    let locations = [
        (
            RegistryLocation::Postgres {
                url: url.clone(),
                schema: schema.clone(),
            },
            OfflineLocation::Postgres {
                url: url.clone(),
                schema: schema.clone(),
            },
        ),
        (
            RegistryLocation::Sqlite { path: path.clone() },
            OfflineLocation::Sqlite { path: path.clone() },
        ),
    ];
    for (registry_at, offline_at) in &locations {
        // Each order, twice: every open finds its own migrations recorded, never the other's.
        for _ in 0..2 {
            let registry = lockstep::registry::open(registry_at).await.unwrap();
            let offline = lockstep::offline::open(offline_at).await.unwrap();
            assert!(registry.projects().await.unwrap().is_empty());
            assert!(offline.jobs(10).await.unwrap().is_empty());
            let offline = lockstep::offline::open(offline_at).await.unwrap();
            let registry = lockstep::registry::open(registry_at).await.unwrap();
            assert!(registry.transforms().await.unwrap().is_empty());
            assert!(offline.materialized_until("t").await.unwrap().is_none());
        }
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for (table, versions) in [
        ("_sqlx_migrations", vec![1, 2]),
        (MIGRATIONS_TABLE, vec![1]),
    ] {
        let applied: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT version FROM {schema}.{table} ORDER BY version"
        ))
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(applied, versions, "{table}");
    }
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
