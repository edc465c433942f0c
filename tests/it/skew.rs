//! The skew guarantee against hostile guests, through the whole pipeline: a guest whose output
//! depends on its batch is refused at upload, or caught by the first backfill or sampled
//! online call that re-runs rows alone, marked unsafe and refused from then on, so online
//! and offline never serve different values for one row; state and leaks never outlive a
//! call; and a push with a value no store may hold writes nothing anywhere.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::Int64Type;
use lockstep::config::Config;
use lockstep::model::Classify;
use lockstep::pipeline::{
    ApplyError, AuditRequest, BackfillRequest, FeatureError, Lockstep, OnlineRequest, PushTarget,
    Status, TrainingSetRequest,
};
use lockstep_tests::JsonRows;
use lockstep_tests::{TestBackend, TestDir, TestServer, test_dir, test_guests, unique_name};
use serde_json::{Value, json};

/// 2026-01-01T00:00:00Z in µs.
const T0: i64 = 1_767_225_600_000_000;

/// Definitions over the test guests' `x: int64 -> y: int64`: a view computing `y` from a CSV
/// (also the push source), a view of its raw `name` and `score`, and an on-demand view over
/// a request field, all with the transform `guest`.
fn definitions(project: &str) -> String {
    format!(
        r#"
project = "{project}"

[entities.thing]
join_key = "thing_id"
type = "int64"

[sources.things]
kind = "csv"
path = "things.csv"
timestamp_field = "event_timestamp"
schema = {{ thing_id = "int64", x = "int64", name = "utf8", score = "float64", event_timestamp = "timestamp" }}

[feature_views.thing_features]
entities = ["thing"]
source = "things"
transform = "guest"

[feature_views.thing_names]
entities = ["thing"]
source = "things"
features = ["name", "score"]

[sources.request]
kind = "request"
schema = {{ x = "int64" }}

[on_demand_views.scored]
request_source = "request"
transform = "guest"

[feature_services.scored]
features = ["scored:*"]
logging = {{ sample_rate = 1.0 }}
"#
    )
}

/// A pipeline on `backend` whose CSV source holds `rows` things, with the test guest
/// `guest` uploaded as `guest` and the definitions applied; its project, config and
/// directory (removed when dropped).
async fn pipeline(
    backend: &TestBackend,
    guest: &str,
    rows: i64,
) -> (Lockstep, String, Config, TestDir) {
    let dir = test_dir("lockstep-skew");
    let mut csv = String::from("thing_id,x,name,score,event_timestamp\n");
    for id in 0..rows {
        csv.push_str(&format!(
            "{id},{},thing {id},{id}.5,2026-01-01T00:00:00Z\n",
            id * 3
        ));
    }
    std::fs::write(dir.join("things.csv"), csv).unwrap();
    let mut config = backend.config();
    config.sources.base_dir = dir.to_path_buf();
    let lockstep = Lockstep::open(&config).await.unwrap();
    lockstep
        .upload("guest", test_guests().get(guest).to_vec())
        .await
        .unwrap_or_else(|e| panic!("upload {guest}: {e}"));
    let project = unique_name("skew");
    lockstep.apply(&definitions(&project)).await.unwrap();
    (lockstep, project, config, dir)
}

/// An online request of the `scored` service for request rows `xs`.
fn scored(project: &str, xs: &[i64]) -> OnlineRequest {
    OnlineRequest {
        entities: lockstep_tests::entity_rows(json!({ "x": xs })),
        feature_service: Some("scored".into()),
        project: Some(project.into()),
        ..OnlineRequest::default()
    }
}

/// The training set of the `scored` service for request rows `xs` at `T0`.
async fn scored_offline(
    lockstep: &Lockstep,
    project: &str,
    xs: &[i64],
) -> Result<Vec<Option<i64>>, FeatureError> {
    let entities = RecordBatch::try_from_iter([
        (
            "event_timestamp",
            Arc::new(TimestampMicrosecondArray::from(vec![T0; xs.len()]).with_timezone("UTC")) as _,
        ),
        ("x", Arc::new(Int64Array::from(xs.to_vec())) as _),
    ])
    .unwrap();
    let request = TrainingSetRequest {
        project: Some(project.into()),
        feature_service: Some("scored".into()),
        ..TrainingSetRequest::default()
    };
    let set = lockstep.training_set(&request, &entities).await?;
    let y = set
        .batch
        .column_by_name("y")
        .unwrap()
        .as_primitive::<Int64Type>();
    Ok(y.iter().collect())
}

#[tokio::test]
async fn guests_whose_output_depends_on_the_batch_are_refused_at_upload() {
    let backend = TestBackend::sqlite();
    let server = TestServer::start(&backend, None).await;
    for (guest, codes) in [
        ("batch-size", &["transform_not_row_wise"][..]),
        ("row-position", &["transform_not_row_wise"]),
        (
            "huge-output",
            &["transform_memory_limit", "transform_output_too_large"],
        ),
    ] {
        let answer = server
            .client
            .post(server.at(&format!("/transforms/{}", guest.replace('-', "_"))))
            .body(test_guests().get(guest).to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 422, "{guest}");
        let body = answer.text().await.unwrap();
        assert!(
            body.len() < 2048,
            "{guest}: a {}-byte error body",
            body.len()
        );
        let body: Value = serde_json::from_str(&body).unwrap();
        let code = body["error"]["code"].as_str().unwrap();
        assert!(codes.contains(&code), "{guest}: {body}");
    }
    // State and leaks are harmless with fresh state per call: accepted.
    for guest in ["stateful", "leaky", "sneaky"] {
        let answer = server
            .client
            .post(server.at(&format!("/transforms/{guest}")))
            .body(test_guests().get(guest).to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201, "{guest}");
    }
    let health = server
        .client
        .get(server.at("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    server.stop().await;
    backend.cleanup().await;
}

#[tokio::test]
async fn call_history_and_leaks_never_reach_a_served_value() {
    let backend = TestBackend::sqlite();
    for guest in ["stateful", "leaky"] {
        let (lockstep, project, _, _dir) = pipeline(&backend, guest, 0).await;
        let offline = scored_offline(&lockstep, &project, &[5]).await.unwrap();
        assert_eq!(offline, [Some(6)], "{guest}");
        // 300 identical requests: on a reused instance `stateful` would drift and `leaky`
        // would run out of memory.
        for request in 0..300 {
            let online = lockstep
                .get_online_features(&scored(&project, &[5]))
                .await
                .unwrap_or_else(|e| panic!("{guest} request {request}: [{}] {e}", e.code()));
            let y = online.columns.last().unwrap();
            assert_eq!(y.statuses, [Status::Present]);
            let value = y.values.as_primitive::<Int64Type>().value(0);
            assert_eq!(Some(value), offline[0], "{guest} request {request}");
        }
    }
    backend.cleanup().await;
}

#[tokio::test]
async fn a_backfill_that_catches_a_transform_fails_closed_and_marks_it_unsafe() {
    let backend = TestBackend::sqlite();
    // Uploaded (and smoke-run) by a host with the default 16 384-row batches…
    let (uploader, project, mut config, _dir) = pipeline(&backend, "sneaky", 45).await;
    // …backfilled by one reading 20-row batches, a size `sneaky` misbehaves at.
    config.backfill.batch_rows = 20;
    let backfiller = Lockstep::open(&config).await.unwrap();
    let request = BackfillRequest {
        project: Some(project.clone()),
        view: "thing_features".into(),
        ..BackfillRequest::default()
    };
    let planned = backfiller.plan_backfill(&request).await.unwrap();
    let error = backfiller
        .run_backfill(&planned, &|_| {})
        .await
        .unwrap_err();
    assert_eq!(error.code(), "transform_not_row_wise", "{error}");
    // Nothing of the failed chunk was written.
    let job = backfiller.offline().job(planned.job.id).await.unwrap();
    assert_eq!(job.rows_out, 0, "{job:?}");
    // Marked unsafe in the registry: listed so, refused for new definitions and by every
    // path of every process.
    let versions = uploader.transforms().await.unwrap();
    let reason = versions[0].versions[0].unsafe_reason.as_deref().unwrap();
    assert!(reason.contains("not row-wise"), "{reason}");
    let Err(ApplyError::Invalid(errors)) = uploader.apply(&definitions(&project)).await else {
        panic!("definitions pinning an unsafe transform must be refused");
    };
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("is marked unsafe")),
        "{errors:?}"
    );
    let fresh = Lockstep::open(&config).await.unwrap();
    let online = fresh
        .get_online_features(&scored(&project, &[1]))
        .await
        .unwrap_err();
    assert_eq!(online.code(), "transform_unsafe", "{online}");
    let offline = scored_offline(&fresh, &project, &[1]).await.unwrap_err();
    assert_eq!(offline.code(), "transform_unsafe", "{offline}");
    backend.cleanup().await;
}

#[tokio::test]
async fn an_online_call_that_catches_a_transform_quarantines_it_for_both_paths() {
    let backend = TestBackend::sqlite();
    let (lockstep, project, _, _dir) = pipeline(&backend, "sneaky", 0).await;
    let xs: Vec<i64> = (0..10).collect();
    // The first on-demand evaluation is re-checked off the request path.
    let first = lockstep.get_online_features(&scored(&project, &xs)).await;
    assert!(first.is_ok(), "{first:?}");
    let started = Instant::now();
    let refused = loop {
        match lockstep.get_online_features(&scored(&project, &xs)).await {
            Err(error) => break error,
            Ok(_) if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(_) => panic!("the re-check did not catch the transform within 10 s"),
        }
    };
    assert_eq!(refused.code(), "transform_unsafe", "{refused}");
    // The training set refuses it too: the two paths never serve different values.
    let offline = scored_offline(&lockstep, &project, &xs).await.unwrap_err();
    assert_eq!(offline.code(), "transform_unsafe", "{offline}");
    // The audit names it and fails rather than replaying it.
    let audit = lockstep
        .audit(&AuditRequest {
            project: Some(project.clone()),
            ..AuditRequest::new("scored")
        })
        .await
        .unwrap();
    assert!(!audit.passed());
    assert!(audit.unsafe_transforms.contains_key("scored"), "{audit:?}");
    assert!(audit.skipped_requests >= 1, "{audit:?}");
    let metrics = lockstep.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("lockstep_transform_unsafe{") && line.ends_with(" 1")),
        "{metrics}"
    );
    backend.cleanup().await;
}

/// The state of `ids` in both stores: online statuses of `thing_names:name`, and how many
/// training-set rows have a `name`.
async fn stored(lockstep: &Lockstep, project: &str, ids: &[i64]) -> (Vec<Status>, usize) {
    let request = OnlineRequest {
        entities: lockstep_tests::entity_rows(json!({ "thing_id": ids })),
        features: vec!["thing_names:name".into(), "thing_features:y".into()],
        project: Some(project.into()),
        ..OnlineRequest::default()
    };
    let online = lockstep.get_online_features(&request).await.unwrap();
    let statuses = online.columns[1..]
        .iter()
        .flat_map(|column| column.statuses.clone())
        .collect();
    let entities = RecordBatch::try_from_iter([
        (
            "event_timestamp",
            Arc::new(
                TimestampMicrosecondArray::from(vec![T0 + 3_600_000_000; ids.len()])
                    .with_timezone("UTC"),
            ) as _,
        ),
        ("thing_id", Arc::new(Int64Array::from(ids.to_vec())) as _),
    ])
    .unwrap();
    let training = TrainingSetRequest {
        project: Some(project.into()),
        features: request.features.clone(),
        ..TrainingSetRequest::default()
    };
    let set = lockstep.training_set(&training, &entities).await.unwrap();
    let names = set.batch.column_by_name("name").unwrap();
    (statuses, names.len() - names.null_count())
}

#[tokio::test]
async fn a_push_with_a_value_no_store_may_hold_writes_nothing_anywhere() {
    let backend = TestBackend::postgres();
    let (lockstep, project, _, _dir) = pipeline(&backend, "row-errors", 0).await;
    let ids = [1, 2, 3];
    let push = |name: Value, score: Value, time: Value| {
        let columns = serde_json::from_value(json!({
            "thing_id": ids,
            "x": [1, 2, 3],
            "name": ["a", name, "c"],
            "score": [0.5, score, 1.5],
            "event_timestamp": ["2026-01-01T00:00:00Z", time, "2026-01-01T00:00:00Z"],
        }))
        .unwrap();
        let lockstep = &lockstep;
        let project = project.clone();
        async move {
            lockstep
                .push_json(
                    Some(&project),
                    "things",
                    &columns,
                    PushTarget::OnlineAndOffline,
                )
                .await
        }
    };
    let ok_time = json!("2026-01-01T00:00:00Z");
    for (name, score, time, column) in [
        (json!("b\u{0}"), json!(1.0), ok_time.clone(), "name"),
        (json!("b"), json!("NaN"), ok_time.clone(), "score"),
        // Nanoseconds since the epoch, taken for microseconds: year 58 000.
        (
            json!("b"),
            json!(1.0),
            json!(1_767_225_600_000_000_000_i64),
            "event_timestamp",
        ),
        (json!("b"), json!(1.0), json!(i64::MAX), "event_timestamp"),
    ] {
        let error = push(name, score, time).await.unwrap_err();
        assert_eq!(error.code(), "invalid_value", "{error}");
        let message = error.to_string();
        assert!(
            message.contains(&format!("row 1, column `{column}`")),
            "{message}"
        );
        // The other view's rows were valid, but nothing reached either store.
        let (statuses, offline_rows) = stored(&lockstep, &project, &ids).await;
        assert!(
            statuses.iter().all(|status| *status == Status::NotFound),
            "{statuses:?}"
        );
        assert_eq!(offline_rows, 0);
    }
    // The same push with good values is written to both stores, then later pushes of the
    // entity are not refused as older.
    push(json!("b"), json!(1.0), ok_time).await.unwrap();
    let (statuses, offline_rows) = stored(&lockstep, &project, &ids).await;
    assert!(statuses.iter().all(|status| *status == Status::Present));
    assert_eq!(offline_rows, 3);
    backend.cleanup().await;
}
