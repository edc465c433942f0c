//! A slow guest on online requests does not hold the server's async workers: with more slow
//! requests in flight than the server has worker threads, `GET /health` answers about as
//! fast as with nothing in flight, because guest calls run on the blocking pool.

use std::time::{Duration, Instant};

use lockstep::pipeline::Lockstep;
use lockstep_tests::{TestBackend, TestServer, test_guests, unique_name};
use serde_json::json;

/// The server's async worker threads, and the slow requests kept in flight (more).
const WORKERS: usize = 2;
const SLOW_REQUESTS: usize = 4;
/// How long a slow guest runs: until the call's wall-clock deadline (fuel is plentiful).
const GUEST_MS: u64 = 2_000;
/// The input the `slow` test guest spins on.
const SPIN: i64 = 424_242_424_242;

/// `x: int64 -> y: int64` by the `slow` test guest, served as the feature service `spin`.
fn definitions(project: &str) -> String {
    format!(
        r#"
project = "{project}"

[sources.request]
kind = "request"
schema = {{ x = "int64" }}

[on_demand_views.spin]
request_source = "request"
transform = "spin"

[feature_services.spin]
features = ["spin:*"]
"#
    )
}

/// Each of `count` `GET /health` answers' latency, one after another.
async fn health_latencies(server: &TestServer, count: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let sent = Instant::now();
        let response = server
            .client
            .get(server.at("/health"))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        latencies.push(sent.elapsed());
    }
    latencies.sort();
    latencies
}

#[test]
fn a_slow_guest_does_not_delay_health_on_the_same_server() {
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .unwrap();
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let backend = TestBackend::postgres();
    let mut config = backend.config();
    config.runtime.fuel_per_call = u64::MAX / 2;
    config.runtime.call_timeout_ms = GUEST_MS;
    let project = unique_name("slow");
    client_runtime.block_on(async {
        let lockstep = Lockstep::open(&config).await.unwrap();
        lockstep
            .upload("spin", test_guests().get("slow").to_vec())
            .await
            .unwrap();
        lockstep.apply(&definitions(&project)).await.unwrap();
    });
    // The server's tasks run on its own runtime of `WORKERS` threads.
    let server = server_runtime.block_on(TestServer::start_with(config, None));

    client_runtime.block_on(async {
        let baseline = health_latencies(&server, 20).await;
        let request = json!({
            "feature_service": "spin",
            "project": project,
            "entities": {"x": [SPIN]},
        });
        let started = Instant::now();
        let slow: Vec<_> = (0..SLOW_REQUESTS)
            .map(|_| {
                let (client, url, body) = (
                    server.client.clone(),
                    server.at("/get-online-features"),
                    request.clone(),
                );
                tokio::spawn(async move {
                    let response = client.post(url).json(&body).send().await.unwrap();
                    (response.status(), response.text().await.unwrap())
                })
            })
            .collect();
        // Let every slow request reach its guest.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let during = health_latencies(&server, 20).await;
        let measured = started.elapsed();
        let in_flight = slow.iter().filter(|task| !task.is_finished()).count();
        for task in slow {
            let (status, body) = task.await.unwrap();
            assert!(
                body.contains("transform_timeout"),
                "the guest ran to its deadline: {status} {body}"
            );
        }
        let slow_took = started.elapsed();
        assert_eq!(
            in_flight, SLOW_REQUESTS,
            "every slow request was still in its guest while /health was timed ({measured:?})"
        );
        assert!(slow_took >= Duration::from_millis(GUEST_MS));
        let (normal, loaded) = (baseline[baseline.len() - 1], during[during.len() - 1]);
        assert!(
            loaded < normal * 10 + Duration::from_millis(200),
            "/health took up to {loaded:?} with slow guests running, {normal:?} without"
        );
    });
    server_runtime.block_on(server.stop());
    client_runtime.block_on(backend.cleanup());
}
