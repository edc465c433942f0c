//! The online path against real Redis and Postgres (and the embedded stores): values
//! served online equal the training set's for the same entities at the same time, bit for
//! bit, on-demand view included; pushes are newer-wins and served; ttl and unknown entities
//! give Feast's statuses in order; the HTTP endpoints speak Feast's shapes; a killed Redis
//! gives fast 503s and recovery, and rehydrate rebuilds it from the offline store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::parity::{assert_parity, first_difference};
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, TimestampMicrosecondArray};
use lockstep::datagen::movies::{MovieDataSpec, write_entity_rows, write_movie_data};
use lockstep::model::format_timestamp;
use lockstep::pipeline::{
    BackfillRequest, EARLIEST, Lockstep, MaterializeRequest, OnlineFeatures, OnlineRequest,
    PushTarget, Status, TrainingSetRequest,
};
use lockstep_tests::JsonRows;
use lockstep_tests::{
    OwnRedis, TestBackend, TestDir, TestServer, api_error, apply_movie_example, test_dir,
};
use serde_json::{Value, json};

pub(crate) const HOUR: i64 = 3_600_000_000;
pub(crate) const SERVICE: &str = "movie_recommendation_service";

/// Movie data backfilled into every view and materialized as of `t`.
pub(crate) struct Fixture {
    pub(crate) backend: TestBackend,
    pub(crate) dir: TestDir,
    pub(crate) lockstep: Lockstep,
    pub(crate) spec: MovieDataSpec,
    /// The time online answers are judged at: 12 hours before the data ends.
    pub(crate) t: i64,
}

impl Fixture {
    pub(crate) async fn new(backend: TestBackend) -> Self {
        Self::with_config(backend.config(), backend).await
    }

    pub(crate) async fn with_config(
        mut config: lockstep::config::Config,
        backend: TestBackend,
    ) -> Self {
        let dir = test_dir("lockstep-online");
        let spec = MovieDataSpec::small();
        write_movie_data(&dir.join("data"), &spec).expect("generate movie data");
        config.sources.base_dir = dir.to_path_buf();
        let lockstep = Lockstep::open(&config).await.unwrap();
        apply_movie_example(&lockstep).await;
        for view in [
            "user_profile_features",
            "movie_metadata_features",
            "user_movie_interaction_features",
        ] {
            let planned = lockstep
                .plan_backfill(&BackfillRequest {
                    view: view.into(),
                    ..BackfillRequest::default()
                })
                .await
                .unwrap();
            lockstep.run_backfill(&planned, &|_| {}).await.unwrap();
        }
        let t = spec.end_micros() - 12 * HOUR;
        let materialized = lockstep
            .materialize(
                &MaterializeRequest {
                    from: Some(EARLIEST),
                    to: Some(t + 1),
                    ..MaterializeRequest::default()
                },
                &|_| {},
            )
            .await
            .unwrap();
        assert_eq!(materialized.len(), 3, "{materialized:?}");
        assert!(materialized.iter().all(|view| view.rows > 0));
        Self {
            backend,
            dir,
            lockstep,
            spec,
            t,
        }
    }

    /// Entity rows of the example (known movies only: a join key cannot be null), all at
    /// time `at`.
    pub(crate) async fn entities(&self, rows: usize, at: i64) -> RecordBatch {
        let path = self.dir.join("entities.parquet");
        write_entity_rows(&path, &self.spec, rows as u64 * 2, 7).unwrap();
        let request = TrainingSetRequest {
            feature_service: Some(SERVICE.into()),
            ..TrainingSetRequest::default()
        };
        let (mut required, optional) = self.lockstep.training_set_columns(&request).await.unwrap();
        // The file has rows without a movie, filtered below.
        for field in &mut required {
            field.nullable |= field.name == "movie_id";
        }
        let (batches, _) = lockstep::source::read_file(&path, &required, &optional).unwrap();
        let all = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let known = arrow::compute::is_not_null(all.column_by_name("movie_id").unwrap()).unwrap();
        let kept = arrow::compute::filter_record_batch(&all, &known).unwrap();
        let kept = kept.slice(0, rows.min(kept.num_rows()));
        let schema = kept.schema();
        let columns = schema
            .fields()
            .iter()
            .zip(kept.columns())
            .map(|(field, column)| {
                if field.name() == "event_timestamp" {
                    Arc::new(
                        TimestampMicrosecondArray::from(vec![at; kept.num_rows()])
                            .with_timezone("UTC"),
                    ) as ArrayRef
                } else {
                    column.clone()
                }
            })
            .collect();
        RecordBatch::try_new(schema, columns).unwrap()
    }

    pub(crate) async fn cleanup(self) {
        self.backend.cleanup().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Online equals the training set, bit for bit, on `config`'s stores (`backend`'s, or
/// another online store).
pub(crate) async fn parity(config: lockstep::config::Config, backend: TestBackend) {
    let fixture = Fixture::with_config(config, backend).await;
    let service = TrainingSetRequest {
        feature_service: Some(SERVICE.into()),
        ..TrainingSetRequest::default()
    };
    let views = TrainingSetRequest {
        features: vec![
            "user_movie_interaction_features:*".into(),
            "movie_metadata_features:genre_drama".into(),
        ],
        ..TrainingSetRequest::default()
    };
    // As of `t`, materialized up to `t`: a feature service with an on-demand view, and
    // plain views.
    let entities = fixture.entities(300, fixture.t).await;
    assert!(entities.num_rows() >= 250);
    let (present, _) =
        assert_parity(&fixture.lockstep, service.clone(), &entities, fixture.t).await;
    assert!(present > 1_000, "only {present} values present");
    let (present, _) = assert_parity(&fixture.lockstep, views.clone(), &entities, fixture.t).await;
    assert!(present > 100, "only {present} values present");

    // Incrementally materialized to the end of the data, then asked 20 hours later: values
    // the online store holds but whose ttl has run out must be nulls on both paths.
    let end = fixture.spec.end_micros();
    let incremental = fixture
        .lockstep
        .materialize(
            &MaterializeRequest {
                to: Some(end + 1),
                incremental: true,
                ..MaterializeRequest::default()
            },
            &|_| {},
        )
        .await
        .unwrap();
    assert!(incremental.iter().all(|view| view.from == fixture.t + 1));
    let later = end + 20 * HOUR;
    let entities = fixture.entities(300, later).await;
    for request in [service, views] {
        let (present, outside) = assert_parity(&fixture.lockstep, request, &entities, later).await;
        assert!(
            present > 100 && outside > 10,
            "{present} present, {outside} outside"
        );
    }
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_values_equal_the_training_set_on_redis() {
    let backend = TestBackend::postgres();
    parity(backend.config(), backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_values_equal_the_training_set_embedded() {
    let backend = TestBackend::sqlite();
    parity(backend.config(), backend).await;
}

fn interaction_request(users: &[i64], movies: &[i64]) -> OnlineRequest {
    OnlineRequest {
        entities: lockstep_tests::entity_rows(json!({ "user_id": users, "movie_id": movies })),
        features: vec!["user_movie_interaction_features:*".into()],
        ..OnlineRequest::default()
    }
}

fn watch(user: i64, movie: i64, seconds: i64, at: i64) -> lockstep::api::json::JsonColumns {
    serde_json::from_value(json!({
        "user_id": [user],
        "movie_id": [movie],
        "watch_seconds": [seconds],
        "runtime": [7200],
        "rating": [4.5],
        "event_timestamp": [format_timestamp(at)],
    }))
    .unwrap()
}

fn statuses(features: &OnlineFeatures) -> Vec<Vec<Status>> {
    features.columns[features.join_keys..]
        .iter()
        .map(|column| column.statuses.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_newer_wins_and_statuses_follow_feast() {
    let fixture = Fixture::new(TestBackend::postgres()).await;
    let lockstep = &fixture.lockstep;
    let (user, movie) = (3, 5);
    let pushed_at = fixture.t + HOUR;
    let pushed = lockstep
        .push_json(
            None,
            "watch_events",
            &watch(user, movie, 3_600, pushed_at),
            PushTarget::OnlineAndOffline,
        )
        .await
        .unwrap();
    assert_eq!(pushed.len(), 1);
    assert_eq!((pushed[0].rows, pushed[0].written_online), (1, 1));

    // Served as pushed, and equal to the offline store's value at the same time.
    let at = fixture.t + 2 * HOUR;
    let request = interaction_request(&[user], &[movie]);
    let online = lockstep.get_online_features_at(&request, at).await.unwrap();
    assert!(statuses(&online).iter().all(|s| s == &[Status::Present]));
    assert!(
        online.columns[2..]
            .iter()
            .all(|c| c.event_ts == [pushed_at])
    );
    let entities = RecordBatch::try_new(
        lockstep::model::arrow_schema(&[
            lockstep::model::FieldSpec {
                name: "user_id".into(),
                value_type: lockstep::model::ValueType::Int64,
                nullable: false,
            },
            lockstep::model::FieldSpec {
                name: "movie_id".into(),
                value_type: lockstep::model::ValueType::Int64,
                nullable: false,
            },
            lockstep::model::FieldSpec {
                name: "event_timestamp".into(),
                value_type: lockstep::model::ValueType::Timestamp,
                nullable: false,
            },
        ]),
        vec![
            Arc::new(arrow::array::Int64Array::from(vec![user])),
            Arc::new(arrow::array::Int64Array::from(vec![movie])),
            Arc::new(TimestampMicrosecondArray::from(vec![at]).with_timezone("UTC")),
        ],
    )
    .unwrap();
    let training = TrainingSetRequest {
        features: request.features.clone(),
        ..TrainingSetRequest::default()
    };
    let offline = lockstep.training_set(&training, &entities).await.unwrap();
    for column in &online.columns[2..] {
        let stored = offline.batch.column_by_name(&column.name).unwrap();
        assert_eq!(
            first_difference(stored.as_ref(), column.values.as_ref()),
            None
        );
    }

    // An older push changes nothing online, and not the value as of `at` offline.
    let older = lockstep
        .push_json(
            None,
            "watch_events",
            &watch(user, movie, 60, fixture.t + HOUR / 2),
            PushTarget::OnlineAndOffline,
        )
        .await
        .unwrap();
    assert_eq!(older[0].written_online, 0);
    let again = lockstep.get_online_features_at(&request, at).await.unwrap();
    for (before, after) in online.columns.iter().zip(&again.columns) {
        assert_eq!(
            first_difference(before.values.as_ref(), after.values.as_ref()),
            None
        );
    }
    let offline_again = lockstep.training_set(&training, &entities).await.unwrap();
    assert_eq!(offline.batch, offline_again.batch);

    // Past the view's ttl (1 day): OUTSIDE_MAX_AGE and no value.
    let late = lockstep
        .get_online_features_at(&request, pushed_at + 25 * HOUR)
        .await
        .unwrap();
    assert!(
        statuses(&late)
            .iter()
            .all(|s| s == &[Status::OutsideMaxAge])
    );
    assert!(late.columns[2..].iter().all(|c| c.values.is_null(0)));

    // Unknown entities: NOT_FOUND, in request order.
    let mixed = lockstep
        .get_online_features_at(
            &interaction_request(&[user, 987_654, user], &[movie, movie, 987_654]),
            at,
        )
        .await
        .unwrap();
    for column in statuses(&mixed) {
        assert_eq!(
            column,
            [Status::Present, Status::NotFound, Status::NotFound]
        );
    }
    assert_eq!(
        mixed.columns[0]
            .values
            .as_primitive::<arrow::datatypes::Int64Type>()
            .values(),
        &[user, 987_654, user]
    );
    fixture.cleanup().await;
}

pub(crate) async fn post(server: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    let response = server
        .client
        .post(server.at(path))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Pushes a profile of each of `users` at `at` (age 20 + the user id) over HTTP.
pub(crate) async fn push_profiles(server: &TestServer, users: &[i64], at: i64) {
    for &user in users {
        let (status, body) = post(
            server,
            "/push",
            &json!({"push_source_name": "user_profiles", "df": profile_row(user, 20 + user, at)}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
}

pub(crate) fn profile_row(user: i64, age: i64, at: i64) -> Value {
    json!({
        "user_id": [user],
        "age": [age],
        "favorite_genre": ["drama"],
        "avg_rating": [3.25],
        "total_movies_watched": [12],
        "signup_date": ["2025-06-01T00:00:00Z"],
        "event_timestamp": [format_timestamp(at)],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feast_shaped_http_endpoints() {
    let backend = TestBackend::postgres();
    let fixture = Fixture::new(backend.clone()).await;
    let mut config = backend.config();
    config.sources.base_dir = fixture.dir.to_path_buf();
    let server = TestServer::start_with(config, None).await;
    let now = lockstep::model::now_micros();

    // Feast's push body; then the value is served, as of now.
    let (status, body) = post(
        &server,
        "/push",
        &json!({"push_source_name": "user_profiles", "df": profile_row(7, 41, now), "to": "online_and_offline"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let request = json!({
        "features": ["user_profile_features:age", "user_profile_features:avg_rating"],
        "entities": {"user_id": [7, 123_456_789, 8]},
        "full_feature_names": true,
    });
    let (status, body) = post(&server, "/get-online-features", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["metadata"]["feature_names"],
        json!([
            "user_id",
            "user_profile_features__age",
            "user_profile_features__avg_rating"
        ])
    );
    assert_eq!(body["results"][0]["values"], json!([7, 123_456_789, 8]));
    assert_eq!(body["results"][1]["values"], json!([41, null, null]));
    assert_eq!(body["results"][2]["values"][0], json!(3.25));
    // User 8 has history, but months old: outside the 7-day ttl now.
    assert_eq!(
        body["results"][1]["statuses"],
        json!(["PRESENT", "NOT_FOUND", "OUTSIDE_MAX_AGE"])
    );
    assert_eq!(
        body["results"][1]["event_timestamps"][0],
        json!(format_timestamp(now))
    );

    // Feast's materialize bodies.
    let (status, body) = post(
        &server,
        "/materialize",
        &json!({"start_ts": "2026-01-01T00:00:00Z", "end_ts": format_timestamp(fixture.t), "feature_views": ["movie_metadata_features"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["views"][0]["view"], "movie_metadata_features");
    let (status, body) = post(
        &server,
        "/materialize-incremental",
        &json!({"end_ts": format_timestamp(fixture.t + HOUR)}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["views"].as_array().unwrap().len(), 3);

    // write-to-online-store: views without a transform only.
    let (status, body) = post(
        &server,
        "/write-to-online-store",
        &json!({"feature_view_name": "user_profile_features", "df": profile_row(9, 30, now)}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &server,
        "/write-to-online-store",
        &json!({"feature_view_name": "user_movie_interaction_features", "df": {}}),
    )
    .await;
    assert_eq!(
        (status, api_error(&body)["code"].clone()),
        (400, json!("invalid_feature_request")),
        "{body}"
    );

    // Clear errors.
    for (request, code) in [
        (
            json!({"features": ["nope:x"], "entities": {"user_id": [1]}}),
            "invalid_feature_request",
        ),
        (
            json!({"features": ["user_profile_features:age"], "entities": {"movie_id": [1]}}),
            "invalid_entity_rows",
        ),
        (
            json!({"features": ["user_profile_features:age"], "entities": {"user_id": ["x"]}}),
            "invalid_entity_rows",
        ),
        (
            json!({"features": ["user_profile_features:age"], "entities": {"user_id": [1]}, "extra": 1}),
            "invalid_body",
        ),
        (
            json!({"features": ["user_profile_features:age"], "entities": {"user_id": [1]}, "full_feature_names": "yes"}),
            "invalid_body",
        ),
        (
            json!({"features": ["user_profile_features:age"], "entities": [1]}),
            "invalid_body",
        ),
        (
            json!({"features": ["user_profile_features:age"], "feature_service": SERVICE, "entities": {"user_id": [1]}}),
            "invalid_feature_request",
        ),
        (
            json!({"features": [], "entities": {"user_id": [1]}, "include_feature_view_version_metadata": false}),
            "invalid_feature_request",
        ),
        (
            json!({"feature_service": SERVICE, "entities": {"user_id": [1], "movie_id": [1, 2]}}),
            "invalid_entity_rows",
        ),
    ] {
        let (status, body) = post(&server, "/get-online-features", &request).await;
        assert_eq!(
            (status, api_error(&body)["code"].as_str()),
            (400, Some(code)),
            "{request}: {body}"
        );
    }
    let (status, body) = post(
        &server,
        "/push",
        &json!({"push_source_name": "user_profiles", "df": {"user_id": [1]}}),
    )
    .await;
    assert_eq!(
        (status, api_error(&body)["code"].as_str()),
        (400, Some("invalid_entity_rows")),
        "{body}"
    );
    // The on-demand scorer runs online too; then everything shows in /metrics.
    let (status, body) = post(
        &server,
        "/get-online-features",
        &json!({"feature_service": SERVICE, "entities": {
            "user_id": [7, 7], "movie_id": [1, 2],
            "candidate_genre": ["drama", "comedy"], "request_genre": ["drama", null]}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let metrics = server.metrics().await;
    for line in [
        "lockstep_http_requests_total{endpoint=\"/get-online-features\",status=\"200\"} 2",
        "lockstep_http_requests_total{endpoint=\"/get-online-features\",status=\"400\"} 9",
        "lockstep_online_requests_total{feature_service=\"movie_recommendation_service\",outcome=\"ok\"} 1",
        "lockstep_online_values_total{status=\"NOT_FOUND\",view=\"user_profile_features\"}",
        "lockstep_pushed_rows_total{view=\"user_profile_features\"} 2",
        "lockstep_transform_calls_total{digest=\"sha256:",
        "lockstep_view_freshness_seconds{view=\"user_profile_features\"}",
        "lockstep_online_request_duration_seconds_bucket{feature_service=\"-\",le=\"+Inf\"} 1",
    ] {
        assert!(metrics.contains(line), "no `{line}` in\n{metrics}");
    }
    server.stop().await;
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_gives_fast_503s_then_recovers_and_rehydrates() {
    let mut redis = OwnRedis::start();
    let backend = TestBackend::postgres();
    let mut config = backend.config();
    config.online.redis_url = Some(redis.url());
    config.online.timeout_ms = 200;
    let fixture = Fixture::with_config(config.clone(), backend).await;
    config.sources.base_dir = fixture.dir.to_path_buf();
    let server = TestServer::start_with(config, None).await;
    let now = lockstep::model::now_micros();
    let users: Vec<i64> = (1..=20).collect();
    push_profiles(&server, &users, now).await;
    let request =
        json!({"features": ["user_profile_features:age"], "entities": {"user_id": users}});
    let (status, before) = post(&server, "/get-online-features", &request).await;
    assert_eq!(status, 200);
    assert!(
        before["results"][1]["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s == "PRESENT")
    );

    // Load from a second task while the server dies.
    let load = {
        let client = server.client.clone();
        let url = server.at("/get-online-features");
        let request = request.clone();
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(2) {
                let sent = Instant::now();
                let response = client.post(&url).json(&request).send().await.unwrap();
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                outcomes.push((sent.elapsed(), status, api_error(&body)["code"].clone()));
            }
            outcomes
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    let outcomes = load.await.unwrap();
    let failures: Vec<_> = outcomes
        .iter()
        .filter(|(_, status, _)| *status != 200)
        .collect();
    assert!(
        failures.len() > 5,
        "{} failures of {}",
        failures.len(),
        outcomes.len()
    );
    for (took, status, code) in &failures {
        assert_eq!(
            (*status, code.as_str()),
            (503, Some("online_store_unavailable"))
        );
        assert!(*took < Duration::from_millis(1_000), "a 503 took {took:?}");
    }
    let slowest = outcomes.iter().map(|(took, _, _)| *took).max().unwrap();
    assert!(
        slowest < Duration::from_millis(1_000),
        "slowest answer {slowest:?}"
    );

    let ready = server.client.get(server.at("/ready")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);

    // Back, but empty: answers again (NOT_FOUND) within seconds, then rehydrate.
    redis.restart();
    let started = Instant::now();
    let after = loop {
        let (status, body) = post(&server, "/get-online-features", &request).await;
        if status == 200 {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no recovery: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        after["results"][1]["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s == "NOT_FOUND")
    );
    let rehydrated = fixture
        .lockstep
        .rehydrate(None, vec!["user_profile_features".into()], false, &|_| {})
        .await
        .unwrap();
    assert!(rehydrated[0].rows >= users.len() as u64, "{rehydrated:?}");
    let (_, restored) = post(&server, "/get-online-features", &request).await;
    assert_eq!(restored["results"], before["results"]);
    server.stop().await;
    fixture.cleanup().await;
}
