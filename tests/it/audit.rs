//! Feature logging and the skew audit on the movie example: responses served with logging
//! at rate 1 replay through the offline path with every value equal bit for bit (on Redis
//! and Postgres, and embedded); a value written to the online store only is reported with
//! its entity, feature and cause, and fails the audit and the `lockstep audit` command.

use std::process::{Command, Stdio};

use lockstep::pipeline::{AuditRequest, Cause, MaterializeRequest, OnlineRequest};
use lockstep_tests::JsonRows;
use lockstep_tests::{TestBackend, movie_definitions, write_config};
use serde_json::json;

use crate::online::{Fixture, HOUR, SERVICE};
use crate::parity::entity_keys;

/// The example's definitions with every response of the recommendation service logged.
fn logged_definitions() -> String {
    let text = movie_definitions();
    let service = "[feature_services.movie_recommendation_service]\n";
    assert!(text.contains(service));
    text.replace(
        service,
        &format!("{service}logging = {{ sample_rate = 1.0 }}\n"),
    )
}

/// The fixture with logging applied: only the service changes, so every table stays.
async fn logged_fixture(backend: TestBackend) -> Fixture {
    let fixture = Fixture::new(backend).await;
    let outcome = fixture.lockstep.apply(&logged_definitions()).await.unwrap();
    let plan = outcome.plan.to_string();
    assert!(
        plan.contains("~ feature_service movie_recommendation_service: logging none -> ")
            && plan.lines().count() == 1,
        "{plan}"
    );
    fixture
}

/// Serves `entities` in requests of `per_request` rows as of `at`; returns the requests.
async fn serve(
    fixture: &Fixture,
    entities: &arrow::array::RecordBatch,
    per_request: usize,
    at: i64,
) -> u64 {
    let mut requests = 0;
    for first in (0..entities.num_rows()).step_by(per_request) {
        let rows = per_request.min(entities.num_rows() - first);
        let request = OnlineRequest {
            entities: entity_keys(&entities.slice(first, rows)),
            feature_service: Some(SERVICE.into()),
            ..OnlineRequest::default()
        };
        fixture
            .lockstep
            .get_online_features_at(&request, at)
            .await
            .unwrap();
        requests += 1;
    }
    requests
}

/// The `lockstep audit` command against the fixture's stores: exit code and output.
fn audit_process(fixture: &Fixture) -> (Option<i32>, String, String) {
    let mut config = fixture.backend.config();
    config.sources.base_dir = fixture.dir.to_path_buf();
    let file = fixture.dir.join("lockstep.toml");
    write_config(&config, &file);
    let output = Command::new(env!("CARGO_BIN_EXE_lockstep-cli"))
        .arg("--config")
        .arg(&file)
        .args(["audit", SERVICE, "--show", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn served_responses_match_bit_for_bit(backend: TestBackend) {
    let fixture = logged_fixture(backend).await;
    let lockstep = &fixture.lockstep;

    // Nothing logged yet: nothing proven.
    let empty = lockstep.audit(&AuditRequest::new(SERVICE)).await.unwrap();
    assert_eq!((empty.requests, empty.values), (0, 0));
    assert!(!empty.passed());

    // As of `t`, materialized up to `t`; then, materialized to the end, 20 hours after it,
    // where ttls have run out (OUTSIDE_MAX_AGE online, null offline).
    let entities = fixture.entities(240, fixture.t).await;
    let mut requests = serve(&fixture, &entities, 40, fixture.t).await;
    let end = fixture.spec.end_micros();
    lockstep
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
    let later = end + 20 * HOUR;
    let late_entities = fixture.entities(60, later).await;
    requests += serve(&fixture, &late_entities, 30, later).await;
    // And one served as of now, through the entry point the HTTP API calls.
    lockstep
        .get_online_features(&OnlineRequest {
            entities: entity_keys(&entities.slice(0, 5)),
            feature_service: Some(SERVICE.into()),
            ..OnlineRequest::default()
        })
        .await
        .unwrap();
    requests += 1;
    // Another service is not logged.
    lockstep
        .get_online_features_at(
            &OnlineRequest {
                entities: lockstep_tests::entity_rows(json!({"user_id": [1], "movie_id": [1]})),
                feature_service: Some("movie_interaction_service".into()),
                ..OnlineRequest::default()
            },
            fixture.t,
        )
        .await
        .unwrap();

    lockstep.flush_feature_logs().await.unwrap();
    let metrics = lockstep.metrics_text().await;
    let written =
        format!("lockstep_feature_log_written_total{{feature_service=\"{SERVICE}\"}} {requests}");
    assert!(metrics.contains(&written), "no `{written}` in\n{metrics}");
    let unlogged = lockstep
        .audit(&AuditRequest::new("movie_interaction_service"))
        .await
        .unwrap();
    assert_eq!((unlogged.requests, unlogged.passed()), (0, false));

    let report = lockstep.audit(&AuditRequest::new(SERVICE)).await.unwrap();
    let rows = (entities.num_rows() + late_entities.num_rows() + 5) as u64;
    assert_eq!(report.requests, requests);
    assert_eq!(report.rows, rows);
    // 10 feature-view features and the scorer's 4 outputs per row.
    assert_eq!(report.values, rows * 14);
    assert_eq!(report.matched, report.values, "{:#?}", report.differences);
    assert!(report.passed());
    assert!(report.differences.is_empty());
    assert!(report.values > 3_000, "{}", report.values);

    // `--since` after everything logged: nothing to compare.
    let since = lockstep
        .audit(&AuditRequest {
            since: lockstep::model::now_micros() + HOUR,
            ..AuditRequest::new(SERVICE)
        })
        .await
        .unwrap();
    assert_eq!(since.requests, 0);

    let (code, stdout, stderr) = audit_process(&fixture);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "matched bit for bit  {:>9} (100.00%)",
            report.values
        )),
        "{stdout}"
    );
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_responses_replay_bit_for_bit_on_redis() {
    served_responses_match_bit_for_bit(TestBackend::postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_responses_replay_bit_for_bit_embedded() {
    served_responses_match_bit_for_bit(TestBackend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_written_online_only_fails_the_audit() {
    let fixture = logged_fixture(TestBackend::postgres()).await;
    let lockstep = &fixture.lockstep;
    let entities = fixture.entities(50, fixture.t).await;
    let user = entities
        .column_by_name("user_id")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);

    // A profile row for the first user, newer than anything materialized, written to the
    // online store only.
    let written = lockstep
        .write_json(
            None,
            "user_profile_features",
            &serde_json::from_value(json!({
                "user_id": [user],
                "age": [33],
                "favorite_genre": ["horror"],
                "avg_rating": [0.123_456_789],
                "total_movies_watched": [12_345],
                "signup_date": ["2025-06-01T00:00:00Z"],
                "event_timestamp": [lockstep::model::format_timestamp(fixture.t)],
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(written.written_online, 1);
    serve(&fixture, &entities, 25, fixture.t).await;

    let report = lockstep.audit(&AuditRequest::new(SERVICE)).await.unwrap();
    assert!(!report.passed());
    assert_eq!(report.values, entities.num_rows() as u64 * 14);
    // The user's rows (one per candidate movie) differ in the written features and in the
    // scores computed from them; nothing else does.
    let user_rows = (0..entities.num_rows())
        .filter(|&row| {
            entities
                .column_by_name("user_id")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap()
                .value(row)
                == user
        })
        .count() as u64;
    let written_only = report.causes[&Cause::WrittenOnlineOnly];
    assert_eq!(written_only % user_rows, 0, "{:?}", report.causes);
    assert!(written_only >= 2 * user_rows, "{:?}", report.causes);
    assert!(report.causes[&Cause::InputDiffered] >= user_rows);
    assert_eq!(
        report.causes.keys().copied().collect::<Vec<_>>(),
        [Cause::WrittenOnlineOnly, Cause::InputDiffered],
        "{:#?}",
        report.differences
    );
    assert_eq!(report.differed + report.matched, report.values);
    let first = report
        .differences
        .iter()
        .find(|d| d.feature == "avg_rating")
        .expect("avg_rating is among the first differences");
    assert_eq!(first.entity[0], ("user_id".to_owned(), user.to_string()));
    assert_eq!(first.view, "user_profile_features");
    assert_eq!(first.online, "0.123456789");
    assert_ne!(first.offline, first.online);
    assert_eq!(first.online_event_ts, Some(fixture.t));
    assert!(first.offline_event_ts.is_some_and(|ts| ts < fixture.t));
    assert_eq!(first.cause, Cause::WrittenOnlineOnly);

    let (code, stdout, stderr) = audit_process(&fixture);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("written_online_only"), "{stdout}");
    assert!(stdout.contains(&format!("user_id={user}")), "{stdout}");
    assert!(stderr.contains("audit failed"), "{stderr}");
    fixture.cleanup().await;
}
