//! Security around the sandbox, tried as an attacker holding a write or a read token would:
//! every answer is JSON with a code, read-scope input cannot grow the metrics, definitions
//! read only what the server allows, guest strings cannot drive a terminal, shutdown
//! refuses new connections and finishes the rest, compiles run in a child process, and
//! random requests to every route get coded JSON answers.

use std::path::Path;
use std::time::{Duration, Instant};

use lockstep::config::Config;
use lockstep::pipeline::{BackfillRequest, Lockstep};
use lockstep_tests::{TestBackend, TestServer, first_party, unique_name};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Definitions without transforms: one CSV source at `path`, one view, one service.
fn definitions(project: &str, path: &str) -> String {
    format!(
        r#"
project = "{project}"

[entities.user]
join_key = "user_id"
type = "int64"

[sources.events]
kind = "csv"
path = "{path}"
timestamp_field = "ts"
schema = {{ user_id = "int64", score = "float64", ts = "timestamp" }}

[feature_views.scores]
entities = ["user"]
source = "events"

[feature_services.svc]
features = ["scores:score"]
"#
    )
}

/// A temporary directory for a test's files, made the server's `sources.base_dir`.
fn temp_dir(prefix: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique_name(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config_in(backend: &TestBackend, dir: &Path) -> Config {
    let mut config = backend.config();
    config.sources.base_dir = dir.to_owned();
    config
}

/// Sends a request and returns the status, the content type and the body parsed as JSON
/// (`Value::Null` when it is not JSON).
async fn send(request: reqwest::RequestBuilder) -> (StatusCode, String, Value) {
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = response.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, content_type, body)
}

/// Asserts an error answer is JSON with `code` and returns its message.
fn assert_error(answer: &(StatusCode, String, Value), status: StatusCode, code: &str) -> String {
    let (got, content_type, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}: {body}"
    );
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_is_json_with_a_code() {
    let backend = TestBackend::sqlite();
    let dir = temp_dir("lockstep-sec-json");
    std::fs::write(dir.join("events.csv"), "user_id,score,ts\n1,0.5,2026-01-01\n").unwrap();
    let server = TestServer::start_with(config_in(&backend, &dir), None).await;
    let apply = send(
        server
            .client
            .post(server.at("/apply"))
            .body(definitions("sec", "events.csv")),
    )
    .await;
    assert_eq!(apply.0, StatusCode::OK, "{}", apply.2);

    for (method, path, status, code) in [
        ("GET", "/backfills/abc", StatusCode::BAD_REQUEST, "invalid_path"),
        ("GET", "/transforms/%FF%FE", StatusCode::BAD_REQUEST, "invalid_path"),
        ("GET", "/definitions?foo=bar", StatusCode::BAD_REQUEST, "invalid_query"),
        ("DELETE", "/transforms", StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ("PUT", "/health", StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ("GET", "/push", StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ("GET", "/no/such/route", StatusCode::NOT_FOUND, "not_found"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let answer = send(server.client.request(method.clone(), server.at(path))).await;
        assert_error(&answer, status, code);
    }

    let message = assert_error(
        &send(server.client.get(server.at("/definitions?project=nope"))).await,
        StatusCode::NOT_FOUND,
        "unknown_project",
    );
    assert!(message.contains("sec"), "names the projects: {message}");
    let (status, _, body) = send(server.client.get(server.at("/definitions?project=sec"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let backwards = json!({"start_ts": "2026-02-01T00:00:00Z", "end_ts": "2026-01-01T00:00:00Z"});
    assert_error(
        &send(server.client.post(server.at("/materialize")).json(&backwards)).await,
        StatusCode::BAD_REQUEST,
        "invalid_feature_request",
    );

    // An online request naming an unknown project is refused and nothing is cached for it.
    let request = json!({"entities": {"user_id": [1]}, "feature_service": "svc", "project": "nope"});
    assert_error(
        &send(server.client.post(server.at("/get-online-features")).json(&request)).await,
        StatusCode::NOT_FOUND,
        "unknown_project",
    );
    server.stop().await;
    backend.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_feature_services_cannot_grow_the_metrics() {
    let backend = TestBackend::sqlite();
    let dir = temp_dir("lockstep-sec-metrics");
    std::fs::write(dir.join("events.csv"), "user_id,score,ts\n1,0.5,2026-01-01\n").unwrap();
    let server = TestServer::start_with(config_in(&backend, &dir), None).await;
    let (status, _, body) = send(
        server
            .client
            .post(server.at("/apply"))
            .body(definitions("sec", "events.csv")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let long = 100_000;
    for i in 0..40 {
        let name = format!("{i:03}{}", "x".repeat(long));
        let request = json!({"entities": {"user_id": [1]}, "feature_service": name});
        let answer = send(server.client.post(server.at("/get-online-features")).json(&request)).await;
        let message = assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_feature_request");
        assert!(
            message.len() < 1_000,
            "the message echoes {} bytes",
            message.len()
        );
    }
    let request = json!({"entities": {"user_id": [1]}, "feature_service": "svc"});
    let (status, _, body) =
        send(server.client.post(server.at("/get-online-features")).json(&request)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let metrics = server
        .client
        .get(server.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.len() < 100_000,
        "/metrics is {} bytes",
        metrics.len()
    );
    assert!(!metrics.contains("xxxxxxxxxx"), "a request's name became a label");
    assert!(
        metrics.contains(r#"lockstep_online_requests_total{feature_service="unknown",outcome="error"} 40"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"lockstep_online_requests_total{feature_service="svc",outcome="ok"} 1"#),
        "{metrics}"
    );
    server.stop().await;
    backend.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

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
    let dir = temp_dir("lockstep-sec-files");
    let base = dir.join("base");
    std::fs::create_dir_all(&base).unwrap();
    let secret = "user_id,score,ts,SECRET_TOKEN_abc123\n1,0.5,2026-01-01,x\n";
    std::fs::write(dir.join("outside.csv"), secret).unwrap();
    let config = config_in(&backend, &base);
    let server = TestServer::start_with(config.clone(), None).await;

    // Refused at apply, by the path as written: absolute, or climbing out with `..`.
    for path in ["/etc/passwd", "../outside.csv", "../../../../etc/passwd", "sub/../../outside.csv"] {
        let answer = send(
            server
                .client
                .post(server.at("/apply"))
                .body(definitions("sec", path)),
        )
        .await;
        let message = assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_definitions");
        assert!(message.contains("outside the directories"), "{path}: {message}");
        assert_eq!(answer.2["error"]["details"][0]["path"], "sources.events.path");
    }
    server.stop().await;

    // A symlink inside the base directory to a file outside: accepted as written, refused
    // once resolved, without a byte of the file in the error.
    std::os::unix::fs::symlink(dir.join("outside.csv"), base.join("link.csv")).unwrap();
    let lockstep = Lockstep::open(&config).await.unwrap();
    lockstep.apply(&definitions("sec", "link.csv")).await.unwrap();
    let (code, message) = backfill_error(&lockstep).await;
    assert_eq!(code, "source_forbidden", "{message}");
    assert!(!message.contains("SECRET"), "{message}");

    // A file inside whose header is a line of some other file: its content is not echoed.
    std::fs::write(
        base.join("passwd.csv"),
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/sbin/nologin\n",
    )
    .unwrap();
    lockstep.apply(&definitions("sec", "passwd.csv")).await.unwrap();
    let (code, message) = backfill_error(&lockstep).await;
    assert_eq!(code, "source_schema_mismatch", "{message}");
    assert!(!message.contains("root:x"), "{message}");

    // A bad value is located by line, never shown.
    std::fs::write(base.join("bad.csv"), "user_id,score,ts\nSECRET_VALUE,0.5,2026-01-01\n").unwrap();
    lockstep.apply(&definitions("sec", "bad.csv")).await.unwrap();
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
    let probe = format!("select user_id, score, ts from {schema}.events where nextval('{schema}.probe') > 0");

    // Off by default: the query source is refused at apply.
    let lockstep = Lockstep::open(&backend.config()).await.unwrap();
    let error = lockstep.apply(&query_definitions(&probe)).await.unwrap_err();
    assert!(error.to_string().contains("sources.allow_queries"), "{error}");

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

    let slow = format!("select user_id, score, ts from {schema}.events where pg_sleep(5) is not null");
    lockstep.apply(&query_definitions(&slow)).await.unwrap();
    let started = Instant::now();
    let (code, message) = backfill_error(&lockstep).await;
    assert_eq!(code, "source_postgres", "{message}");
    assert!(message.contains("statement timeout"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await
        .unwrap();
    backend.cleanup().await;
}

/// The movie-watch component with its signature's version replaced by `version` (as long
/// as the original `1.0.0`): how a guest would smuggle terminal escapes.
fn with_version(version: &[u8; 5]) -> Vec<u8> {
    let mut bytes = first_party().get("movie-watch").to_vec();
    let marker = b"movie_watch_features1.0.0";
    let at = bytes
        .windows(marker.len())
        .position(|window| window == marker)
        .expect("the signature strings are in the component");
    let start = at + marker.len() - version.len();
    bytes[start..start + version.len()].copy_from_slice(version);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_strings_cannot_drive_a_terminal() {
    let escape = with_version(b"\x1b[2J\x07");
    let backend = TestBackend::sqlite();
    let server = TestServer::start(&backend, None).await;
    let answer = send(
        server
            .client
            .post(server.at("/transforms/sneaky"))
            .body(escape.clone()),
    )
    .await;
    let message = assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_signature");
    assert!(message.contains("U+001B"), "{message}");
    let (status, _, body) = send(server.client.get(server.at("/transforms"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["transforms"], json!([]), "nothing was stored");
    server.stop().await;
    backend.cleanup().await;

    // `lockstep transform check` refuses it too, and prints no raw control character.
    let file = std::env::temp_dir().join(format!("{}.wasm", unique_name("sneaky")));
    std::fs::write(&file, &escape).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lockstep-cli"))
        .args(["transform", "check"])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(!output.status.success());
    let printed = [output.stdout, output.stderr].concat();
    assert!(
        !printed.iter().any(|b| *b == 0x1b || *b == 0x07),
        "{}",
        String::from_utf8_lossy(&printed)
    );
    assert!(
        String::from_utf8_lossy(&printed).contains("invalid_signature"),
        "{}",
        String::from_utf8_lossy(&printed)
    );
}
