//! Guests: strings that would drive a terminal are refused, a compile bomb is stopped in its
//! worker process at the limit.

use super::*;

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
