//! The registry and HTTP API over a real socket, against real Postgres (own schema per
//! test) and the embedded SQLite backend: upload, list, alias, apply, restart, hostile
//! uploads, concurrency, auth.

use std::collections::BTreeSet;

use lockstep_tests::{TestBackend, TestServer, first_party, test_guests};
use reqwest::StatusCode;
use serde_json::{Value, json};

const READ_TOKEN: &str = "read-token-for-tests-0001";
const WRITE_TOKEN: &str = "write-token-for-tests-0002";

/// Definitions using the movie-watch transform uploaded as `movie_watch_features`.
const DEFINITIONS: &str = r#"
project = "movies"

[entities.user]
join_key = "user_id"
type = "int64"

[entities.movie]
join_key = "movie_id"
type = "int64"

[sources.watch_events]
kind = "parquet"
path = "data/watch_events/*.parquet"
timestamp_field = "event_timestamp"
schema = { user_id = "int64", movie_id = "int64", watch_seconds = "int64", runtime = "int64", rating = "float64?", event_timestamp = "timestamp" }

[feature_views.user_movie_interaction_features]
entities = ["user", "movie"]
source = "watch_events"
transform = "movie_watch_features@prod"
ttl = "1d"

[feature_services.recommendations]
features = ["user_movie_interaction_features:*"]
"#;

async fn upload(server: &TestServer, name: &str, bytes: &[u8]) -> (StatusCode, Value) {
    let response = server
        .client
        .post(server.at(&format!("/transforms/{name}")))
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn get(server: &TestServer, path: &str) -> (StatusCode, Value) {
    let response = server.client.get(server.at(path)).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn post_text(server: &TestServer, path: &str, body: &str) -> (StatusCode, Value) {
    let response = server
        .client
        .post(server.at(path))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn set_alias(server: &TestServer, name: &str, alias: &str, version: u32) -> StatusCode {
    server
        .client
        .put(server.at(&format!("/transforms/{name}/aliases/{alias}")))
        .json(&json!({ "version": version }))
        .send()
        .await
        .unwrap()
        .status()
}

/// A raw TCP connection to the server, for requests no HTTP client would send.
async fn raw_connection(server: &TestServer) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(server.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Checks the server still answers, then stops it and removes its backend.
async fn healthy_then_stop(server: TestServer, backend: TestBackend) {
    let (status, _) = get(&server, "/health").await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
    backend.cleanup().await;
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

async fn lifecycle_survives_a_restart(backend: TestBackend) {
    let watch = first_party().get("movie-watch");
    let scorer = first_party().get("movie-scorer");
    let server = TestServer::start(&backend, None).await;

    let (status, first) = upload(&server, "movie_watch_features", watch).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["version"]["version"], 1);
    assert_eq!(first["created"], true);
    let (status, again) = upload(&server, "movie_watch_features", watch).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "identical bytes are idempotent: {again}"
    );
    assert_eq!(again["version"]["version"], 1);
    // A different component under the same name is the next version.
    let (status, second) = upload(&server, "movie_watch_features", scorer).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["version"]["version"], 2);

    let (status, list) = get(&server, "/transforms").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["transforms"][0]["name"], "movie_watch_features");
    assert_eq!(list["transforms"][0]["latest"], 2);

    assert_eq!(
        set_alias(&server, "movie_watch_features", "prod", 1).await,
        StatusCode::OK
    );
    let (status, shown) = get(&server, "/transforms/movie_watch_features").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["aliases"]["prod"], 1);
    assert_eq!(
        shown["versions"][0]["declared_name"],
        "movie_watch_features"
    );
    assert_eq!(shown["versions"][0]["digest"], first["version"]["digest"]);

    let (status, plan) = post_text(&server, "/plan", DEFINITIONS).await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    let (status, applied) = post_text(&server, "/apply", DEFINITIONS).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(applied["report"]["created"].as_array().unwrap().len(), 5);
    let (status, reapplied) = post_text(&server, "/apply", DEFINITIONS).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reapplied["report"]["unchanged"], 5, "{reapplied}");
    let (status, definitions) = get(&server, "/definitions?project=movies").await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = get(&server, "/transforms").await;
    let pinned = definitions.to_string();
    assert!(
        pinned.contains(first["version"]["digest"].as_str().unwrap()),
        "the view is pinned to version 1's digest (the `prod` alias): {pinned}"
    );
    server.stop().await;

    // A new server on the same database sees everything.
    let server = TestServer::start(&backend, None).await;
    let (_, list_after) = get(&server, "/transforms").await;
    assert_eq!(list_after, list);
    let (_, shown_after) = get(&server, "/transforms/movie_watch_features").await;
    assert_eq!(shown_after, shown);
    let (_, definitions_after) = get(&server, "/definitions?project=movies").await;
    assert_eq!(definitions_after, definitions);
    let (status, _) = get(&server, "/ready").await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
    backend.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_postgres_survives_a_restart() {
    lifecycle_survives_a_restart(TestBackend::postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_sqlite_survives_a_restart() {
    lifecycle_survives_a_restart(TestBackend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uploads_get_their_codes_and_the_server_stays_healthy() {
    let backend = TestBackend::sqlite();
    let server = TestServer::start(&backend, None).await;
    let core_module = wat::parse_str("(module)").unwrap();
    let wasi = wat::parse_str(r#"(component (import "wasi:clocks/wall-clock@0.2.0" (instance)))"#)
        .unwrap();
    // Oversized bodies: `oversized_uploads_are_refused_before_the_body_is_read`. Large ones
    // under the upload cap (above the 2 MiB JSON limit) reach the component checks.
    let large_noise = vec![7u8; 3 << 20];
    let cases: [(&str, &[u8], StatusCode, &str); 7] = [
        (
            "large",
            &large_noise,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_wasm",
        ),
        (
            "noise",
            b"definitely not wasm",
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_wasm",
        ),
        (
            "core",
            &core_module,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_component",
        ),
        (
            "wasi",
            &wasi,
            StatusCode::UNPROCESSABLE_ENTITY,
            "forbidden_import",
        ),
        (
            "loop",
            test_guests().get("infinite-loop"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "transform_out_of_fuel",
        ),
        (
            "bomb",
            test_guests().get("memory-bomb"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "transform_memory_limit",
        ),
        (
            "batch_size",
            test_guests().get("batch-size"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "transform_not_row_wise",
        ),
    ];
    for (name, bytes, status, code) in cases {
        let (got, body) = upload(&server, name, bytes).await;
        assert_eq!((got, error_code(&body)), (status, code), "{name}: {body}");
    }
    let wrong_world = wat::parse_str("(component)").unwrap();
    let (status, body) = upload(&server, "empty", &wrong_world).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "wrong_world")
    );
    let (status, body) = upload(&server, "bad name!", first_party().get("movie-watch")).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_name")
    );

    let (status, _) = get(&server, "/health").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = upload(&server, "watch", first_party().get("movie-watch")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, list) = get(&server, "/transforms").await;
    assert_eq!(
        list["transforms"].as_array().unwrap().len(),
        1,
        "nothing hostile was stored"
    );
    server.stop().await;
    backend.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_uploads_are_refused_before_the_body_is_read() {
    let backend = TestBackend::sqlite();
    let server = TestServer::start(&backend, None).await;
    // Claim a body far over the cap and send none of it: the answer must come anyway.
    let mut stream = raw_connection(&server).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = "POST /transforms/huge HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000000\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = vec![0u8; 512];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read(&mut response),
    )
    .await
    .expect("answered without waiting for the body")
    .unwrap();
    let head = String::from_utf8_lossy(&response[..read]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains(r#""code":"payload_too_large""#), "{head}");
    drop(stream);
    healthy_then_stop(server, backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = TestBackend::sqlite();
    let mut config = backend.config();
    config.server.header_timeout_ms = 300;
    let server = TestServer::start_with(config, None).await;
    let mut stream = raw_connection(&server).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut buffer),
    )
    .await;
    assert!(closed.is_ok(), "the server closed the half-sent request");
    healthy_then_stop(server, backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_get_distinct_consecutive_versions() {
    let backend = TestBackend::postgres();
    let server = std::sync::Arc::new(TestServer::start(&backend, None).await);
    let components = [
        first_party().get("movie-watch"),
        first_party().get("movie-scorer"),
        first_party().get("fraud-txn"),
        test_guests().get("row-errors"),
    ];
    let uploads = components.map(|bytes| {
        let server = server.clone();
        tokio::spawn(async move { upload(&server, "shared", bytes).await })
    });
    let mut versions = BTreeSet::new();
    for task in uploads {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        versions.insert(body["version"]["version"].as_u64().unwrap());
    }
    assert_eq!(versions, BTreeSet::from([1, 2, 3, 4]));

    let same = (0..6).map(|_| {
        let server = server.clone();
        tokio::spawn(async move { upload(&server, "same", first_party().get("fraud-txn")).await })
    });
    let mut created = 0;
    let mut seen = BTreeSet::new();
    for task in same {
        let (status, body) = task.await.unwrap();
        assert!(status.is_success(), "{body}");
        created += usize::from(body["created"] == true);
        seen.insert(body["version"]["version"].as_u64().unwrap());
    }
    assert_eq!((created, seen), (1, BTreeSet::from([1])));
    std::sync::Arc::try_unwrap(server)
        .ok()
        .unwrap()
        .stop()
        .await;
    backend.cleanup().await;
}

/// Everything the server logs, captured on this (current) thread.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tokens_gate_writes_and_are_never_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let backend = TestBackend::sqlite();
    let tokens = format!("read:{READ_TOKEN},write:{WRITE_TOKEN}");
    let server = TestServer::start(&backend, Some(&tokens)).await;
    let watch = first_party().get("movie-watch");
    let post = |token: Option<&str>| {
        let mut request = server
            .client
            .post(server.at("/transforms/watch"))
            .body(watch.to_vec());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let response = post(None).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&response.json().await.unwrap()), "unauthorized");
    let response = post(Some("not-a-known-token-at-all")).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = post(Some(READ_TOKEN)).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(&response.json().await.unwrap()), "forbidden");
    let response = post(Some(WRITE_TOKEN)).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    let list = |token: Option<&'static str>| {
        let mut request = server.client.get(server.at("/transforms"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(list(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        list(Some(READ_TOKEN)).await.unwrap().status(),
        StatusCode::OK
    );
    // Health and readiness stay open for load balancers.
    assert_eq!(get(&server, "/health").await.0, StatusCode::OK);
    server.stop().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("/transforms"),
        "the request log was captured: {logs}"
    );
    for token in [READ_TOKEN, WRITE_TOKEN, "not-a-known-token-at-all"] {
        assert!(!logs.contains(token), "a token leaked into the logs");
    }
    backend.cleanup().await;
}

async fn definitions_of(server: &TestServer) -> Value {
    get(server, "/definitions?project=movies").await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_applies_name_the_problem_and_change_nothing() {
    let backend = TestBackend::postgres();
    let server = TestServer::start(&backend, None).await;
    let (status, _) = upload(
        &server,
        "movie_watch_features",
        first_party().get("movie-watch"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        set_alias(&server, "movie_watch_features", "prod", 1).await,
        StatusCode::OK
    );
    let (status, body) = post_text(&server, "/apply", DEFINITIONS).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = definitions_of(&server).await;

    let unknown_transform = DEFINITIONS.replace("movie_watch_features@prod", "no_such_transform");
    let type_mismatch = DEFINITIONS.replace("rating = \"float64?\"", "rating = \"utf8?\"");
    let duplicate = format!(
        "{DEFINITIONS}\n[on_demand_views.user_movie_interaction_features]\nviews = []\ntransform = \"movie_watch_features@1\"\n"
    );
    let cases = [
        (unknown_transform, "no_such_transform"),
        (type_mismatch, "rating"),
        (duplicate, "user_movie_interaction_features"),
    ];
    for (text, mentioned) in cases {
        let (status, body) = post_text(&server, "/apply", &text).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_code(&body), "invalid_definitions");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(mentioned),
            "`{mentioned}` not in: {message}"
        );
        assert!(!body["error"]["details"].as_array().unwrap().is_empty());
        assert_eq!(
            definitions_of(&server).await,
            before,
            "nothing half-applied"
        );
    }
    server.stop().await;
    backend.cleanup().await;
}
