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
    std::fs::write(
        dir.join("events.csv"),
        "user_id,score,ts\n1,0.5,2026-01-01\n",
    )
    .unwrap();
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
        (
            "GET",
            "/backfills/abc",
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            "GET",
            "/transforms/%FF%FE",
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            "GET",
            "/definitions?foo=bar",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "DELETE",
            "/transforms",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "PUT",
            "/health",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "GET",
            "/push",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
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
        &send(
            server
                .client
                .post(server.at("/materialize"))
                .json(&backwards),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_feature_request",
    );

    // An online request naming an unknown project is refused and nothing is cached for it.
    let request =
        json!({"entities": {"user_id": [1]}, "feature_service": "svc", "project": "nope"});
    assert_error(
        &send(
            server
                .client
                .post(server.at("/get-online-features"))
                .json(&request),
        )
        .await,
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
    std::fs::write(
        dir.join("events.csv"),
        "user_id,score,ts\n1,0.5,2026-01-01\n",
    )
    .unwrap();
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
        let answer = send(
            server
                .client
                .post(server.at("/get-online-features"))
                .json(&request),
        )
        .await;
        let message = assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_feature_request");
        assert!(
            message.len() < 1_000,
            "the message echoes {} bytes",
            message.len()
        );
    }
    let request = json!({"entities": {"user_id": [1]}, "feature_service": "svc"});
    let (status, _, body) = send(
        server
            .client
            .post(server.at("/get-online-features"))
            .json(&request),
    )
    .await;
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
    assert!(
        !metrics.contains("xxxxxxxxxx"),
        "a request's name became a label"
    );
    assert!(
        metrics.contains(
            r#"lockstep_online_requests_total{feature_service="unknown",outcome="error"} 40"#
        ),
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
    let message = assert_error(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_signature",
    );
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

/// A component whose one core function has `blocks` branches over `locals` live locals:
/// a few MB to send, and SSA construction and register allocation superlinear in both.
fn compile_bomb(locals: usize, blocks: usize) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut body = String::new();
    let mut x: usize = 1;
    for _ in 0..blocks {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let (a, b) = ((x >> 7) % locals, (x >> 29) % locals);
        let _ = write!(
            body,
            "(block local.get {a} local.get {b} i64.add local.set {a} \
             local.get {b} i32.wrap_i64 br_if 0 local.get {a} local.set {b}) "
        );
    }
    let mut sum = String::new();
    for i in 0..locals {
        let _ = write!(sum, "local.get {i} i64.add ");
    }
    let wat = format!(
        "(component (core module (func (export \"f\") (param i64) (result i64) (local {}) \
         {body} i64.const 0 {sum})))",
        "i64 ".repeat(locals)
    );
    wat::parse_str(&wat).expect("the bomb is valid WAT")
}

/// Uploads `bytes` as `name`; the status, code and how long the answer took.
async fn timed_upload(
    server: &TestServer,
    name: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let (status, _, body) = send(
        server
            .client
            .post(server.at(&format!("/transforms/{name}")))
            .body(bytes),
    )
    .await;
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_bomb_is_stopped_at_the_limit_and_frees_its_slot() {
    // 106 KB that take over 10 s to compile in-process (measured on one core).
    let bomb = compile_bomb(2_000, 4_000);
    let limit = Duration::from_millis(1_500);
    let backend = TestBackend::sqlite();
    let mut config = backend.config();
    config.server.compile_timeout_ms = limit.as_millis() as u64;
    config.server.max_concurrent_compiles = 2;
    // Time is the limit tried here, not memory.
    config.server.compile_memory_bytes = 8 << 30;
    let server = TestServer::start_with(config, None).await;

    // Two bombs take both compile slots; a normal upload queued behind them is served
    // once the bombs' workers are killed at the limit.
    let started = Instant::now();
    let bombs = futures_bombs(&server, &bomb);
    let normal = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        timed_upload(
            &server,
            "movie_watch_features",
            first_party().get("movie-watch").to_vec(),
        )
        .await
    };
    let ((first, second), (status, body, _)) = tokio::join!(bombs, normal);
    for (bomb_status, bomb_body, took) in [first, second] {
        assert_eq!(bomb_status, StatusCode::SERVICE_UNAVAILABLE, "{bomb_body}");
        assert_eq!(bomb_body["error"]["code"], "compile_timeout", "{bomb_body}");
        assert!(took < limit + Duration::from_secs(1), "{took:?}");
    }
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let total = started.elapsed();
    assert!(
        total < limit + Duration::from_secs(4),
        "the normal upload waited {total:?} behind the bombs"
    );
    server.stop().await;

    // Over the worker's memory limit: refused with its own code, quickly.
    let mut config = backend.config();
    config.server.compile_timeout_ms = 20_000;
    config.server.compile_memory_bytes = 64 << 20;
    let server = TestServer::start_with(config, None).await;
    let (status, body, took) = timed_upload(&server, "bomb", bomb).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "compile_memory_limit", "{body}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    let (status, body, _) = timed_upload(
        &server,
        "movie_watch_features",
        first_party().get("movie-watch").to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the same bytes again: {body}");
    server.stop().await;
    backend.cleanup().await;
}

async fn futures_bombs(
    server: &TestServer,
    bomb: &[u8],
) -> ((StatusCode, Value, Duration), (StatusCode, Value, Duration)) {
    tokio::join!(
        timed_upload(server, "bomb_a", bomb.to_vec()),
        timed_upload(server, "bomb_b", bomb.to_vec())
    )
}

/// A `lockstep serve` process on a free loopback port, with `config`.
struct ServeProcess {
    child: std::process::Child,
    address: String,
    dir: std::path::PathBuf,
}

impl ServeProcess {
    fn start(mut config: Config) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        config.server.listen = ([127, 0, 0, 1], port).into();
        let dir = temp_dir("lockstep-sec-serve");
        let file = dir.join("lockstep.toml");
        lockstep_tests::write_config(&config, &file);
        let child = std::process::Command::new(lockstep_tests::lockstep_exe())
            .arg("--config")
            .arg(&file)
            .arg("serve")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = Self {
            child,
            address: format!("127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&server.address).is_err() {
            assert!(Instant::now() < deadline, "the server never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads one HTTP/1.1 response (headers and a `Content-Length` body) from `stream`.
async fn read_response(stream: &mut tokio::net::TcpStream) -> std::io::Result<String> {
    use tokio::io::AsyncReadExt as _;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                return Ok(text);
            }
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&chunk[..read]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_refuses_new_connections_and_finishes_the_rest() {
    use tokio::io::AsyncWriteExt as _;
    let backend = TestBackend::sqlite();
    let mut config = backend.config();
    config.server.shutdown_grace_ms = 300;
    let mut server = ServeProcess::start(config);

    // In flight at the signal: a request whose body is only half sent.
    let body = definitions("sec", "events.csv");
    let mut in_flight = tokio::net::TcpStream::connect(&server.address)
        .await
        .unwrap();
    let head = format!(
        "POST /plan HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(first.as_bytes()).await.unwrap();
    // Idle on a keep-alive connection at the signal, after one answered request.
    let health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut idle = tokio::net::TcpStream::connect(&server.address)
        .await
        .unwrap();
    idle.write_all(health).await.unwrap();
    let answer = read_response(&mut idle).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Sent on a keep-alive connection just before the signal.
    let mut just_before = tokio::net::TcpStream::connect(&server.address)
        .await
        .unwrap();
    just_before.write_all(health).await.unwrap();
    read_response(&mut just_before).await.unwrap();
    just_before.write_all(health).await.unwrap();

    server.signal("TERM");
    let answer = read_response(&mut just_before).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    tokio::time::sleep(Duration::from_millis(100)).await;

    // New connections are refused at once, not left hanging.
    let started = Instant::now();
    let refused = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(&server.address),
    )
    .await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "a new connection after SIGTERM: {refused:?} after {:?}",
        started.elapsed()
    );

    // The in-flight request finishes on its connection.
    in_flight.write_all(rest.as_bytes()).await.unwrap();
    let answer = read_response(&mut in_flight).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The idle keep-alive connection is closed.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::AsyncReadExt as _;
        let mut byte = [0u8; 1];
        idle.read(&mut byte).await
    })
    .await;
    assert!(matches!(closed, Ok(Ok(0) | Err(_))), "{closed:?}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    backend.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_with_redis_down_and_recovers() {
    let mut redis = lockstep_tests::OwnRedis::start();
    redis.kill();
    let backend = TestBackend::sqlite();
    let mut config = backend.config();
    config.online.redis_url = Some(redis.url());
    let server = ServeProcess::start(config);
    let client = reqwest::Client::new();
    let (status, _, _) = send(client.get(server.url("/health"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &send(client.get(server.url("/ready"))).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "online_store_unavailable",
    );
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = send(client.get(server.url("/ready"))).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);
    backend.cleanup().await;
}

/// Every route of the API, with its method, `{}` standing for a path parameter.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/transforms"),
    ("GET", "/transforms/{}"),
    ("POST", "/transforms/{}"),
    ("PUT", "/transforms/{}/aliases/{}"),
    ("POST", "/plan"),
    ("POST", "/apply"),
    ("GET", "/definitions"),
    ("GET", "/backfills"),
    ("POST", "/backfills"),
    ("GET", "/backfills/{}"),
    ("POST", "/training-set"),
    ("POST", "/get-online-features"),
    ("POST", "/push"),
    ("POST", "/write-to-online-store"),
    ("POST", "/materialize"),
    ("POST", "/materialize-incremental"),
    ("GET", "/metrics"),
];

/// 503 codes the API documents as "retry later" (`api/error.rs`).
const UNAVAILABLE: &[&str] = &[
    "registry_unavailable",
    "offline_store_unavailable",
    "online_store_unavailable",
    "source_postgres",
    "runtime_busy",
    "compile_timeout",
    "request_timeout",
    "transform_timeout",
];

/// Random text: printable, escapes, percent-encodings, JSON punctuation and non-ASCII.
fn random_text(rng: &mut lockstep::datagen::SplitMix64, max: u64) -> String {
    const PIECES: &[&str] = &[
        "a", "Z", "0", "9", "_", "-", ".", "..", "/", "%FF", "%00", "%2F", "?", "&", "=", "{", "}",
        "[", "]", "\"", ":", ",", "é", "☃", " ", "*", "user_id", "svc", "scores", "sec",
    ];
    let len = rng.next_u64() % (max + 1);
    (0..len)
        .map(|_| PIECES[(rng.next_u64() % PIECES.len() as u64) as usize])
        .collect()
}

/// A random JSON value, nested up to `depth`, using the API's field names now and then.
fn random_json(rng: &mut lockstep::datagen::SplitMix64, depth: u32) -> Value {
    const KEYS: &[&str] = &[
        "entities",
        "feature_service",
        "features",
        "project",
        "view",
        "from",
        "to",
        "df",
        "push_source_name",
        "feature_view_name",
        "start_ts",
        "end_ts",
        "version",
        "user_id",
        "fresh",
        "to",
        "feature_views",
    ];
    match rng.next_u64() % if depth == 0 { 5 } else { 7 } {
        0 => Value::Null,
        1 => json!(rng.next_u64().is_multiple_of(3)),
        2 => json!(rng.next_u64() as i64),
        3 => json!(f64::from_bits(rng.next_u64()).to_string()),
        4 => json!(random_text(rng, 12)),
        5 => Value::Array(
            (0..rng.next_u64() % 4)
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.next_u64() % 5)
                .map(|_| {
                    let key = KEYS[(rng.next_u64() % KEYS.len() as u64) as usize];
                    (key.to_owned(), random_json(rng, depth - 1))
                })
                .collect(),
        ),
    }
}

/// Resident memory of this process, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_to_every_route_get_coded_json_answers() {
    let backend = TestBackend::sqlite();
    let dir = temp_dir("lockstep-sec-fuzz");
    std::fs::write(
        dir.join("events.csv"),
        "user_id,score,ts\n1,0.5,2026-01-01\n",
    )
    .unwrap();
    let server = TestServer::start_with(config_in(&backend, &dir), None).await;
    let (status, _, body) = send(
        server
            .client
            .post(server.at("/apply"))
            .body(definitions("sec", "events.csv")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut rng = lockstep::datagen::SplitMix64(0x5EC0_5EED);
    let rss_before = rss_bytes();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut sent = 0;
    while Instant::now() < deadline {
        let (method, route) = ROUTES[(rng.next_u64() % ROUTES.len() as u64) as usize];
        let mut path = route.to_owned();
        while path.contains("{}") {
            path = path.replacen("{}", &random_text(&mut rng, 20), 1);
        }
        match rng.next_u64() % 4 {
            0 => path = format!("/{}", random_text(&mut rng, 30)),
            1 => path = format!("{path}?{}", random_text(&mut rng, 20)),
            _ => {}
        }
        let method = match rng.next_u64() % 8 {
            0 => reqwest::Method::DELETE,
            1 => reqwest::Method::PATCH,
            _ => reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        };
        let Ok(url) = reqwest::Url::parse(&server.at(&path)) else {
            continue;
        };
        let body: Vec<u8> = match rng.next_u64() % 3 {
            0 => (0..rng.next_u64() % 2_000)
                .map(|_| rng.next_u64() as u8)
                .collect(),
            1 => random_json(&mut rng, 4).to_string().into_bytes(),
            _ => Vec::new(),
        };
        let (status, content_type, answer) =
            send(server.client.request(method.clone(), url).body(body)).await;
        sent += 1;
        if status.is_success() {
            continue;
        }
        assert!(
            content_type.starts_with("application/json") && answer["error"]["code"].is_string(),
            "{method} {path}: {status} {content_type} {answer}"
        );
        let code = answer["error"]["code"].as_str().unwrap();
        assert!(
            !status.is_server_error()
                || (status == StatusCode::SERVICE_UNAVAILABLE && UNAVAILABLE.contains(&code)),
            "{method} {path}: {status} {answer}"
        );
    }
    assert!(sent > 100, "only {sent} requests in the time");
    let (status, _, _) = send(server.client.get(server.at("/health"))).await;
    assert_eq!(status, StatusCode::OK);
    let grown = rss_bytes().saturating_sub(rss_before);
    assert!(grown < 200 << 20, "RSS grew by {} MiB", grown >> 20);
    eprintln!("{sent} random requests; RSS grew by {} MiB", grown >> 20);
    server.stop().await;
    backend.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}
