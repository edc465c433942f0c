//! Definitions read only what the server allows: files under the roots, read-only and
//! time-limited Postgres statements, queries only when allowed, no file contents in errors.

use super::*;
use lockstep::model::Classify;

/// The error of planning a backfill of the `scores` view of `definitions`.
async fn backfill_error(lockstep: &Lockstep) -> (String, String) {
    let Err(error) = lockstep
        .plan_backfill(&BackfillRequest {
            view: "scores".into(),
            ..BackfillRequest::default()
        })
        .await
    else {
        panic!("the backfill must be refused");
    };
    let code = match &error {
        lockstep::pipeline::BackfillError::Source(source) => source.code().to_owned(),
        other => format!("not a source error: {other}"),
    };
    (code, error.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sources_read_only_under_the_allowed_directories() {
    let backend = TestBackend::sqlite();
    let dir = test_dir("lockstep-sec-files");
    let base = dir.join("base");
    std::fs::create_dir_all(&base).unwrap();
    let secret = "user_id,score,ts,SECRET_TOKEN_abc123\n1,0.5,2026-01-01,x\n";
    std::fs::write(dir.join("outside.csv"), secret).unwrap();
    let config = config_in(&backend, &base);
    let server = TestServer::start_with(config.clone(), None).await;

    // Refused at apply, by the path as written: absolute, or climbing out with `..`.
    for path in [
        "/etc/passwd",
        "../outside.csv",
        "../../../../etc/passwd",
        "sub/../../outside.csv",
    ] {
        let answer = send(
            server
                .client
                .post(server.at("/apply"))
                .body(definitions("sec", path)),
        )
        .await;
        let message = assert_error(
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_definitions",
        );
        assert!(
            message.contains("outside the directories"),
            "{path}: {message}"
        );
        assert_eq!(
            answer.2["error"]["details"][0]["path"],
            "sources.events.path"
        );
    }
    server.stop().await;

    // A symlink inside the base directory to a file outside: accepted as written, refused
    // once resolved, without a byte of the file in the error.
    std::os::unix::fs::symlink(dir.join("outside.csv"), base.join("link.csv")).unwrap();
    let lockstep = Lockstep::open(&config).await.unwrap();
    lockstep
        .apply(&definitions("sec", "link.csv"))
        .await
        .unwrap();
    let (code, message) = backfill_error(&lockstep).await;
    assert_eq!(code, "source_forbidden", "{message}");
    assert!(!message.contains("SECRET"), "{message}");

    // A file inside whose header is a line of some other file: its content is not echoed.
    std::fs::write(
        base.join("passwd.csv"),
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/sbin/nologin\n",
    )
    .unwrap();
    lockstep
        .apply(&definitions("sec", "passwd.csv"))
        .await
        .unwrap();
    let (code, message) = backfill_error(&lockstep).await;
    assert_eq!(code, "source_schema_mismatch", "{message}");
    assert!(!message.contains("root:x"), "{message}");

    // A bad value is located by line, never shown.
    std::fs::write(
        base.join("bad.csv"),
        "user_id,score,ts\nSECRET_VALUE,0.5,2026-01-01\n",
    )
    .unwrap();
    lockstep
        .apply(&definitions("sec", "bad.csv"))
        .await
        .unwrap();
    let planned = lockstep
        .plan_backfill(&BackfillRequest {
            view: "scores".into(),
            ..BackfillRequest::default()
        })
        .await
        .unwrap();
    let error = lockstep.run_backfill(&planned, &|_| {}).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("line 2"), "{message}");
    assert!(!message.contains("SECRET"), "{message}");
    backend.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Definitions reading the Postgres query `query` (columns `user_id`, `score`, `ts`).
fn query_definitions(query: &str) -> String {
    format!(
        r#"
project = "secpg"

[entities.user]
join_key = "user_id"
type = "int64"

[sources.events]
kind = "postgres"
query = "{query}"
timestamp_field = "ts"
schema = {{ user_id = "int64", score = "float64", ts = "timestamp" }}

[feature_views.scores]
entities = ["user"]
source = "events"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sources_are_read_only_time_limited_and_queries_can_be_off() {
    let backend = TestBackend::postgres();
    let schema = unique_name("lockstep_sec_src");
    let pool = sqlx::PgPool::connect(&lockstep_tests::test_database_url())
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA {schema}; \
         CREATE TABLE {schema}.events (user_id int8, score float8, ts timestamptz); \
         INSERT INTO {schema}.events VALUES (1, 0.5, '2026-01-01T00:00:00Z'); \
         CREATE SEQUENCE {schema}.probe;"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let probe = format!(
        "select user_id, score, ts from {schema}.events where nextval('{schema}.probe') > 0"
    );

    // Off by default: the query source is refused at apply.
    let lockstep = Lockstep::open(&backend.config()).await.unwrap();
    let error = lockstep
        .apply(&query_definitions(&probe))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("sources.allow_queries"),
        "{error}"
    );

    let mut config = backend.config();
    config.sources.allow_queries = true;
    config.sources.statement_timeout_ms = 300;
    let lockstep = Lockstep::open(&config).await.unwrap();
    lockstep.apply(&query_definitions(&probe)).await.unwrap();
    let (code, message) = backfill_error(&lockstep).await;
    assert_eq!(code, "source_postgres", "{message}");
    assert!(message.contains("read-only"), "{message}");
    let called: bool = sqlx::query_scalar(&format!("SELECT is_called FROM {schema}.probe"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!called, "a source statement advanced the probe sequence");

    let slow =
        format!("select user_id, score, ts from {schema}.events where pg_sleep(5) is not null");
    lockstep.apply(&query_definitions(&slow)).await.unwrap();
    let started = Instant::now();
    let (code, message) = backfill_error(&lockstep).await;
    assert_eq!(code, "source_postgres", "{message}");
    assert!(message.contains("statement timeout"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
    backend.cleanup().await;
}
