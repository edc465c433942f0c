//! Contention is not an outage: 16 pushers over HTTP, at once, each pushing distinct
//! transactions of one user into the fraud example's aggregated view, on Redis and on the
//! embedded store. Every push answers 200 (none is told the store is unavailable), and
//! afterwards the user's online counts equal the number of events pushed and the training
//! set's, bit for bit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use lockstep::model::format_timestamp;
use lockstep::pipeline::{Lockstep, OnlineRequest, TrainingSetRequest};
use lockstep_tests::{TestBackend, TestServer, apply_fraud_example};
use serde_json::{Value, json};

use crate::parity::{assert_parity, user_rows};

const PUSHERS: i64 = 16;
const PUSHES_EACH: i64 = 8;
const USER: i64 = 7;
const VIEW: &str = "user_transaction_aggregates";

/// Transaction `n` of the user, `n` tenths of a second after `start`: distinct events, all
/// within the view's 10-minute lateness of each other, so none is refused whatever order
/// they arrive in.
fn transaction(n: i64, start: i64) -> Value {
    json!({
        "push_source_name": "transactions",
        "project": "fraud",
        "df": {
            "txn_id": [1_000_000 + n],
            "user_id": [USER],
            "amount": [10.0 + n as f64],
            "currency": ["USD"],
            "country": ["FR"],
            "merchant_category": ["grocery"],
            "event_timestamp": [format_timestamp(start + n * 100_000)],
        },
    })
}

async fn pushers_of_one_key(backend: TestBackend) {
    let lockstep = Lockstep::open(&backend.config()).await.unwrap();
    apply_fraud_example(&lockstep).await;
    let server = TestServer::start(&backend, None).await;
    let start = lockstep::model::now_micros() - 5 * 60_000_000;
    // Transaction 0 alone first: the server loads (compiles) the transform once, outside
    // the measured pushes.
    let warm = server
        .client
        .post(server.at("/push"))
        .json(&transaction(0, start))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status().as_u16(), 200);

    let started = Instant::now();
    let barrier = Arc::new(tokio::sync::Barrier::new(PUSHERS as usize));
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|pusher| {
            let client = server.client.clone();
            let url = server.at("/push");
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                let mut answers = Vec::new();
                for i in 0..PUSHES_EACH {
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .json(&transaction(1 + pusher * PUSHES_EACH + i, start))
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    answers.push((status, body, sent.elapsed()));
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for pusher in pushers {
        answers.extend(pusher.await.unwrap());
    }
    let took = started.elapsed();
    let slowest = answers.iter().map(|(_, _, took)| *took).max().unwrap();
    eprintln!(
        "{} pushes by {PUSHERS} pushers of one key on {}: {took:?}, slowest {slowest:?}",
        answers.len(),
        lockstep.online().backend()
    );
    for (status, body, _) in &answers {
        assert_eq!(*status, 200, "{body}");
        let aggregated = body["views"]
            .as_array()
            .unwrap()
            .iter()
            .find(|view| view["view"] == VIEW)
            .unwrap_or_else(|| panic!("no {VIEW} in {body}"));
        assert_eq!(aggregated["written_online"], 1, "{body}");
        assert!(aggregated.get("too_late").is_none(), "{body}");
    }

    // Every event counted online, and online equals the training set at the same time.
    let pushed = 1 + PUSHERS * PUSHES_EACH;
    let at = start + pushed * 100_000;
    let request = OnlineRequest {
        project: Some("fraud".into()),
        features: vec![
            format!("{VIEW}:txn_count_ever"),
            format!("{VIEW}:txn_count_1h"),
        ],
        entities: lockstep_tests::entity_rows(json!({ "user_id": [USER] })),
        ..OnlineRequest::default()
    };
    let online = lockstep.get_online_features_at(&request, at).await.unwrap();
    for column in &online.columns[online.join_keys..] {
        assert_eq!(
            column.values.as_primitive::<Int64Type>().value(0),
            pushed,
            "{}",
            column.name
        );
    }
    let entities = user_rows(&[USER], at);
    let every_aggregate = TrainingSetRequest {
        project: Some("fraud".into()),
        features: vec![format!("{VIEW}:*")],
        ..TrainingSetRequest::default()
    };
    let (present, _) = assert_parity(&lockstep, every_aggregate, &entities, at).await;
    assert!(present >= 7, "{present} aggregates present");
    assert!(slowest < Duration::from_secs(5), "slowest push {slowest:?}");
    server.stop().await;
    backend.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_pushers_of_one_key_lose_nothing_and_never_hear_unavailable_on_redis() {
    pushers_of_one_key(TestBackend::postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_pushers_of_one_key_lose_nothing_and_never_hear_unavailable_embedded() {
    pushers_of_one_key(TestBackend::sqlite()).await;
}
