//! Serving survives a registry outage: the movie example on a Postgres cluster of the test's
//! own (registry and offline store) and the shared Redis, under a load of online requests,
//! with that Postgres stopped mid-load. Reads keep answering 200 with the same values,
//! quickly, from the cached definitions; `/ready` says degraded and `/metrics` shows the
//! definitions' age; a push answers 503 and changes nothing online; after Postgres is back,
//! online equals offline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lockstep::pipeline::TrainingSetRequest;
use lockstep_tests::{OwnPostgres, TestBackend, TestServer, api_error};
use serde_json::{Value, json};

use crate::online::{Fixture, SERVICE, post, profile_row, push_profiles};
use crate::parity::{assert_parity, user_rows};

/// The definitions' refresh interval: short, so the cached copy expires many times over
/// during the outage.
const REFRESH_MS: u64 = 200;

/// One online request of the load: how long it took, its status, and whether its results
/// equal the ones before the outage.
type Outcome = (Duration, u16, bool);

async fn get(server: &TestServer, path: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let response = server.client.get(server.at(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap(), started.elapsed())
}

/// The value of the sample `series` (name and labels, exactly) in a Prometheus text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_reads_survive_a_registry_outage_and_agree_with_offline_after() {
    let mut postgres = OwnPostgres::start();
    let backend = TestBackend::postgres();
    let mut config = backend.config();
    config.registry.database_url = Some(postgres.url());
    config.online.definitions_refresh_ms = REFRESH_MS;
    let fixture = Fixture::with_config(config.clone(), backend).await;
    config.sources.base_dir = fixture.dir.to_path_buf();
    let server = TestServer::start_with(config, None).await;

    let now = lockstep::model::now_micros();
    // Users the generated history does not have: their pushed rows change no past value.
    let users: Vec<i64> = (1_000_001..=1_000_010).collect();
    push_profiles(&server, &users, now).await;
    let requests = [
        json!({"features": ["user_profile_features:age", "user_profile_features:avg_rating"],
               "entities": {"user_id": users}}),
        json!({"feature_service": SERVICE, "entities": {
            "user_id": [1, 1, 2], "movie_id": [1, 2, 3],
            "candidate_genre": ["drama", "comedy", "drama"],
            "request_genre": ["drama", null, "comedy"]}}),
    ];
    let mut before = Vec::new();
    for request in &requests {
        let (status, body) = post(&server, "/get-online-features", request).await;
        assert_eq!(status, 200, "{body}");
        before.push(body["results"].clone());
    }
    assert!(
        before[0][1]["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|status| status == "PRESENT"),
        "{}",
        before[0]
    );

    // Online requests from a second task, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let client = server.client.clone();
        let url = server.at("/get-online-features");
        let (requests, before, stop) = (requests.clone(), before.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut outcomes: Vec<Outcome> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let which = outcomes.len() % requests.len();
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .json(&requests[which])
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                outcomes.push((sent.elapsed(), status, body["results"] == before[which]));
            }
            outcomes
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    postgres.stop();
    let outage = Instant::now();
    // Several refresh intervals: the cached copy expired and its refreshes failed.
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let (status, body, took) = get(&server, "/ready").await;
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&ready["status"], &ready["registry"], &ready["online_store"]),
        (&json!("degraded"), &json!("unavailable"), &json!("ok")),
        "{body}"
    );
    let age = ready["definitions_age_seconds"].as_f64().unwrap();
    assert!(age >= 1.0, "{body}");
    assert!(took < Duration::from_secs(1), "/ready took {took:?}");

    let (status, metrics, took) = get(&server, "/metrics").await;
    assert_eq!(status, 200, "{metrics}");
    let age = sample(
        &metrics,
        "lockstep_definitions_age_seconds{project=\"movies\"}",
    )
    .unwrap_or_else(|| panic!("no definitions age in\n{metrics}"));
    assert!(age >= 1.0, "definitions age {age}");
    assert!(took < Duration::from_secs(2), "/metrics took {took:?}");
    assert!(
        metrics.contains("lockstep_view_freshness_seconds{view=\"user_profile_features\"}"),
        "the pushed view's freshness is known without the offline store:\n{metrics}"
    );

    // A push fails cleanly: 503, and nothing changes online.
    let (status, body) = post(
        &server,
        "/push",
        &json!({"push_source_name": "user_profiles", "df": profile_row(users[0], 99, now + 1_000_000)}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let code = api_error(&body)["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        ["registry_unavailable", "offline_store_unavailable"].contains(&code.as_str()),
        "{body}"
    );
    let (status, body) = post(&server, "/get-online-features", &requests[0]).await;
    assert_eq!((status, &body["results"]), (200, &before[0]));
    let outage_lasted = outage.elapsed();

    stop.store(true, Ordering::Relaxed);
    let outcomes = load.await.unwrap();
    let slowest = outcomes.iter().map(|(took, _, _)| *took).max().unwrap();
    eprintln!(
        "{} online requests over a {outage_lasted:?} registry outage, slowest {slowest:?}",
        outcomes.len()
    );
    assert!(outcomes.len() > 100, "{} requests", outcomes.len());
    for (took, status, same) in &outcomes {
        assert_eq!((*status, *same), (200, true), "after {took:?}");
    }
    assert!(
        slowest < Duration::from_millis(500),
        "slowest answer {slowest:?}"
    );

    // Back: ready again, and online equals offline, for the pushed rows and the rest.
    postgres.restart();
    let started = Instant::now();
    loop {
        let (status, body, _) = get(&server, "/ready").await;
        let ready: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if status == 200 && ready["status"] == "ok" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not ready again: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at = lockstep::model::now_micros();
    let entities = user_rows(&users, at);
    let profiles = TrainingSetRequest {
        features: vec!["user_profile_features:*".into()],
        ..TrainingSetRequest::default()
    };
    let (present, _) = assert_parity(&fixture.lockstep, profiles, &entities, at).await;
    assert!(present >= users.len() * 4, "{present} present");
    let service = TrainingSetRequest {
        feature_service: Some(SERVICE.into()),
        ..TrainingSetRequest::default()
    };
    let rows = fixture.entities(200, fixture.t).await;
    let (present, _) = assert_parity(&fixture.lockstep, service, &rows, fixture.t).await;
    assert!(present > 500, "{present} present");
    server.stop().await;
    fixture.cleanup().await;
}
