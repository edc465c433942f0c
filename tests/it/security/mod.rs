//! Security around the sandbox, tried as an attacker holding a write or a read token would:
//! every answer is JSON with a code, read-scope input cannot grow the metrics, definitions
//! read only what the server allows, guest strings cannot drive a terminal, shutdown
//! refuses new connections and finishes the rest, compiles run in a child process, and
//! random requests to every route get coded JSON answers.

mod answers;
mod fuzz;
mod guests;
mod shutdown;
mod sources;

use std::path::Path;
use std::time::{Duration, Instant};

use lockstep::config::Config;
use lockstep::pipeline::{BackfillRequest, Lockstep};
use lockstep_tests::{TestBackend, TestServer, api_error, first_party, test_dir, unique_name};
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

/// Asserts an error answer is JSON with `code` (in Lockstep's shape, or Feast's on the
/// routes Feast clients call) and returns its message.
fn assert_error(answer: &(StatusCode, String, Value), status: StatusCode, code: &str) -> String {
    let (got, content_type, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}: {body}"
    );
    let error = api_error(body);
    assert_eq!(error["code"], code, "{body}");
    error["message"].as_str().unwrap_or("").to_owned()
}

/// An in-process server on SQLite whose `sources.base_dir` holds `events.csv`, with
/// [`definitions`] of project `sec` applied.
async fn applied_server(prefix: &str) -> (TestServer, TestBackend, lockstep_tests::TestDir) {
    let backend = TestBackend::sqlite();
    let dir = test_dir(prefix);
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
    (server, backend, dir)
}
