//! Several servers on one registry agree: an apply through one is served by the others at
//! once, told by the registry (Postgres `LISTEN`/`NOTIFY`), not found by their refresh
//! interval, which here is a minute.

use std::time::{Duration, Instant};

use lockstep::pipeline::Lockstep;
use lockstep_tests::{TestBackend, TestServer, apply_movie_example, movie_definitions};
use serde_json::{Value, json};

/// How soon the other server must serve an apply.
const AGREE_WITHIN: Duration = Duration::from_millis(100);

/// The feature names `server` answers `movie_interaction_service` with.
async fn served_features(server: &TestServer) -> Vec<String> {
    let answer = server
        .client
        .post(server.at("/get-online-features"))
        .json(&json!({
            "feature_service": "movie_interaction_service",
            "entities": {"user_id": [1], "movie_id": [2]},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    body["metadata"]["feature_names"]
        .as_array()
        .expect("feature names")
        .iter()
        .map(|name| name.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_through_one_server_is_served_by_the_other_within_100_ms() {
    let backend = TestBackend::postgres();
    let mut config = backend.config();
    // Only the registry's notification can explain what follows.
    config.online.definitions_refresh_ms = 60_000;
    apply_movie_example(&Lockstep::open(&config).await.unwrap()).await;
    let first = TestServer::start_with(config.clone(), None).await;
    let second = TestServer::start_with(config, None).await;
    let before = served_features(&second).await;
    assert!(
        before.iter().any(|name| name == "watch_time_minutes"),
        "{before:?}"
    );
    // The listeners are up once each server has said it is listening (its first change,
    // `Unknown`, clears nothing a request depends on): give them the time to connect.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(served_features(&second).await, before);

    let changed = movie_definitions().replace(
        "features = [\"user_movie_interaction_features:*\"]",
        "features = [\"user_profile_features:avg_rating\"]",
    );
    let applied = first
        .client
        .post(first.at("/apply"))
        .body(changed)
        .send()
        .await
        .unwrap();
    assert_eq!(applied.status(), 200, "{}", applied.text().await.unwrap());
    let applied_at = Instant::now();
    let mut asked = 0;
    loop {
        asked += 1;
        let served = served_features(&second).await;
        if served == ["user_id", "avg_rating"] {
            break;
        }
        assert!(
            applied_at.elapsed() < Duration::from_secs(5),
            "the second server still serves {served:?} 5 s after the apply"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = applied_at.elapsed();
    println!("the second server served the apply after {took:?} ({asked} requests)");
    assert!(
        took < AGREE_WITHIN,
        "the second server served the apply after {took:?}, not within {AGREE_WITHIN:?}"
    );
    first.stop().await;
    second.stop().await;
    backend.cleanup().await;
}
