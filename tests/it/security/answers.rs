//! Every rejection is coded JSON, and read-scope input cannot grow the metrics or the
//! messages.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_is_json_with_a_code() {
    let (server, backend, dir) = applied_server("lockstep-sec-json").await;

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
    let (server, backend, dir) = applied_server("lockstep-sec-metrics").await;

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

    let metrics = server.metrics().await;
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
