//! The fraud-detection example end to end on real Postgres and Redis: backfill of a
//! generated month of card transactions through the row transform into windowed
//! aggregations, a training set over the labelled transactions, materialization, then a
//! pushed transaction updating the online aggregates within the same call, with the online
//! answers (on-demand scorer included) equal to the training set's at the same time.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimeUnit};
use lockstep::datagen::fraud::{FraudDataSpec, write_fraud_data};
use lockstep::model::format_timestamp;
use lockstep::pipeline::{
    BackfillRequest, EARLIEST, Lockstep, MaterializeRequest, OnlineRequest, PushTarget, Status,
    TrainingSetRequest,
};
use lockstep_tests::JsonRows;
use lockstep_tests::{TestBackend, apply_fraud_example, test_dir};
use serde_json::json;

use crate::parity::assert_parity;

const SERVICE: &str = "fraud_detection_service";
const MINUTE: i64 = 60_000_000;

fn service() -> TrainingSetRequest {
    TrainingSetRequest {
        project: Some("fraud".into()),
        feature_service: Some(SERVICE.into()),
        ..TrainingSetRequest::default()
    }
}

/// Users 1..=users, each with a candidate amount, all at `at`.
fn candidates(users: i64, at: i64) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]);
    let ids: Vec<i64> = (1..=users).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(Float64Array::from_iter_values(
            ids.iter().map(|id| 20.0 + (*id % 17) as f64 * 31.5),
        )),
        Arc::new(TimestampMicrosecondArray::from(vec![at; ids.len()]).with_timezone("UTC")),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fraud_example_runs_end_to_end_on_postgres_and_redis() {
    end_to_end(None).await;
}

/// The fraud example on Postgres, online on the shared Redis or on the Redis at
/// `online_url`.
pub(crate) async fn end_to_end(online_url: Option<String>) {
    let backend = TestBackend::postgres();
    let dir = test_dir("lockstep-fraud");
    let spec = FraudDataSpec::small();
    let files = write_fraud_data(&dir.join("data"), &spec).unwrap();
    let mut config = backend.config();
    config.sources.base_dir = dir.to_path_buf();
    if let Some(url) = online_url {
        config.online.redis_url = Some(url);
    }
    let lockstep = Lockstep::open(&config).await.unwrap();
    apply_fraud_example(&lockstep).await;

    for view in ["latest_transaction_features", "user_transaction_aggregates"] {
        let planned = lockstep
            .plan_backfill(&BackfillRequest {
                project: Some("fraud".into()),
                view: view.into(),
                ..BackfillRequest::default()
            })
            .await
            .unwrap();
        let summary = lockstep.run_backfill(&planned, &|_| {}).await.unwrap();
        assert_eq!(summary.rows_out, files.transactions, "{view}");
    }

    // The labelled transactions, each joined to the features as of its own time: the
    // fraudulent ones come in bursts, so their hour counts are higher.
    let file = std::fs::File::open(&files.labels).unwrap();
    let labels: Vec<RecordBatch> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 8192)
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let labels = arrow::compute::concat_batches(&labels[0].schema(), &labels).unwrap();
    let set = lockstep.training_set(&service(), &labels).await.unwrap();
    assert_eq!(set.batch.num_rows() as u64, files.label_rows);
    crate::training_labels::entity_columns_are_kept(
        &lockstep,
        config.clone(),
        &service(),
        &files,
        &set,
    )
    .await;
    let column = |name: &str| set.batch.column_by_name(name).unwrap().clone();
    let scored = column("amount_vs_avg_24h");
    assert!(scored.len() - scored.null_count() > set.batch.num_rows() * 9 / 10);
    let counts = column("txn_count_1h");
    let counts = counts.as_primitive::<Int64Type>();
    let is_fraud = column("is_fraud");
    let is_fraud = is_fraud.as_boolean();
    let mean = |fraud: bool| {
        let picked: Vec<i64> = (0..counts.len())
            .filter(|&row| is_fraud.value(row) == fraud)
            .map(|row| counts.value(row))
            .collect();
        picked.iter().sum::<i64>() as f64 / picked.len() as f64
    };
    assert!(
        mean(true) > 3.0 * mean(false),
        "{} vs {}",
        mean(true),
        mean(false)
    );

    // Materialized to the end of the month: online equals offline, scorer included.
    let end = spec.end_micros();
    lockstep
        .materialize(
            &MaterializeRequest {
                project: Some("fraud".into()),
                from: Some(EARLIEST),
                to: Some(end),
                ..MaterializeRequest::default()
            },
            &|_| {},
        )
        .await
        .unwrap();
    let (present, _) = assert_parity(&lockstep, service(), &candidates(300, end), end).await;
    assert!(present > 2_000, "{present}");

    // A new transaction, pushed: the next request sees it in the user's windows.
    let request = || OnlineRequest {
        project: Some("fraud".into()),
        feature_service: Some(SERVICE.into()),
        entities: lockstep_tests::entity_rows(json!({ "user_id": [7], "amount": [950.0] })),
        ..OnlineRequest::default()
    };
    let at = end + 5 * MINUTE;
    let before = lockstep
        .get_online_features_at(&request(), at)
        .await
        .unwrap();
    let pushed = lockstep
        .push_json(
            Some("fraud"),
            "transactions",
            &serde_json::from_value(json!({
                "txn_id": [99_000_001],
                "user_id": [7],
                "amount": [950.0],
                "currency": ["USD"],
                "country": ["TH"],
                "merchant_category": ["jewelry"],
                "event_timestamp": [format_timestamp(end + MINUTE)],
            }))
            .unwrap(),
            PushTarget::OnlineAndOffline,
        )
        .await
        .unwrap();
    assert_eq!(pushed.len(), 2);
    assert!(pushed.iter().all(|view| view.written_online == 1));
    let after = lockstep
        .get_online_features_at(&request(), at)
        .await
        .unwrap();
    let column = |features: &lockstep::pipeline::OnlineFeatures, name: &str| {
        features
            .columns
            .iter()
            .find(|column| column.name == name)
            .unwrap()
            .clone()
    };
    let (count_before, count_after) = (
        column(&before, "txn_count_1h"),
        column(&after, "txn_count_1h"),
    );
    let value = |column: &lockstep::pipeline::OnlineColumn| {
        column.values.as_primitive::<Int64Type>().value(0)
    };
    assert_eq!(value(&count_after), value(&count_before) + 1);
    assert_eq!(count_after.statuses[0], Status::Present);
    let max = column(&after, "max_amount_7d");
    assert!(max.values.as_primitive::<Float64Type>().value(0) >= 950.0);
    assert!(!column(&after, "is_burst").values.is_null(0));
    let (present, _) = assert_parity(&lockstep, service(), &candidates(20, at), at).await;
    assert!(present > 100, "{present}");

    backend.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}
