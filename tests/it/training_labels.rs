//! Training sets keep every entity column (labels, row ids), unchanged and in order,
//! whichever way the entity rows arrive: a file as `lockstep training-set` reads it, JSON
//! or Parquet over HTTP. Called by the fraud example's test, on its backfilled stores.

use arrow::array::{Array, AsArray, RecordBatch};
use bytes::Bytes;
use lockstep::config::Config;
use lockstep::datagen::fraud::FraudFiles;
use lockstep::pipeline::{Lockstep, TrainingSet, TrainingSetRequest};
use lockstep::source::{EntityColumns, read_entity_file};
use lockstep_tests::TestServer;
use serde_json::{Value, json};

const PARQUET: &str = "application/vnd.apache.parquet";

/// `set` is the training set built from the labels file as the pipeline read it.
pub async fn entity_columns_are_kept(
    lockstep: &Lockstep,
    config: Config,
    request: &TrainingSetRequest,
    files: &FraudFiles,
    set: &TrainingSet,
) {
    let entity_names = ["txn_id", "user_id", "amount", "is_fraud", "event_timestamp"];
    let names = |batch: &RecordBatch| -> Vec<String> {
        batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    };
    assert_eq!(names(&set.batch)[..5], entity_names);

    // The CLI's path: the file read whole, its used columns typed, the rest as stored.
    let (required, optional) = lockstep.training_set_columns(request).await.unwrap();
    let rows = read_entity_file(
        &files.labels,
        EntityColumns {
            required: &required,
            optional: &optional,
        },
    )
    .unwrap();
    let from_file = lockstep.training_set(request, &rows).await.unwrap();
    assert_eq!(names(&from_file.batch), names(&set.batch));
    for name in ["txn_id", "is_fraud", "txn_count_1h", "amount_vs_avg_24h"] {
        assert_eq!(
            from_file.batch.column_by_name(name).unwrap().as_ref(),
            set.batch.column_by_name(name).unwrap().as_ref(),
            "{name}"
        );
    }

    // HTTP, Parquet in and out: large label sets do not fit a JSON body.
    let server = TestServer::start_with(config, None).await;
    let body = std::fs::read(&files.labels).unwrap();
    let answer = server
        .client
        .post(server.at("/training-set?project=fraud&feature_service=fraud_detection_service"))
        .header("content-type", PARQUET)
        .header("accept", PARQUET)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let bytes: Bytes = answer.bytes().await.unwrap();
    let batches: Vec<RecordBatch> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(bytes, 65_536)
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let over_http = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(names(&over_http), names(&set.batch));
    for name in ["txn_id", "is_fraud", "txn_count_1h", "amount_vs_avg_24h"] {
        assert_eq!(
            over_http.column_by_name(name).unwrap().as_ref(),
            set.batch.column_by_name(name).unwrap().as_ref(),
            "{name}"
        );
    }

    // HTTP, JSON: extra columns of any JSON type come back as sent, in the body's order.
    // Bodies as text: `json!` would sort the columns.
    let post = |entities: String| {
        server
            .client
            .post(server.at("/training-set"))
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"project": "fraud", "feature_service": "fraud_detection_service", "entities": {entities}}}"#
            ))
            .send()
    };
    let answer = post(
        r#"{"row_id": ["r1", "r2", "r3"], "is_fraud": [true, false, null], "user_id": [7, 8, 9],
            "weight": [1, 2.5, 3],
            "event_timestamp": ["2026-01-20T00:00:00Z", "2026-01-21T00:00:00Z", "2026-01-22"],
            "amount": [10.0, 20.0, 30.0]}"#
            .to_owned(),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);
    let text = answer.text().await.unwrap();
    // In the body's order, before the features (found in the raw text: a JSON map
    // parsed here would sort its keys).
    let order = [
        "row_id",
        "is_fraud",
        "user_id",
        "weight",
        "event_timestamp",
        "amount",
        "txn_count_1h",
    ]
    .map(|name| {
        text.find(&format!("\"{name}\":"))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    });
    assert!(order.is_sorted(), "{order:?} in {text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    let columns = answer["columns"].as_object().unwrap();
    assert_eq!(columns["row_id"], json!(["r1", "r2", "r3"]));
    assert_eq!(columns["is_fraud"], json!([true, false, null]));
    assert_eq!(columns["weight"], json!([1.0, 2.5, 3.0]));
    assert!(columns.contains_key("txn_count_1h"));

    // A label named like a feature would be ambiguous: refused, naming it.
    let answer = post(
        json!({
            "user_id": [7],
            "event_timestamp": ["2026-01-20T00:00:00Z"],
            "amount": [1.0],
            "txn_count_1h": [3],
        })
        .to_string(),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("txn_count_1h"),
        "{body}"
    );
    // Mixed types in an extra column are refused, naming the column.
    let answer = post(
        json!({
            "user_id": [7, 8],
            "event_timestamp": ["2026-01-20", "2026-01-20"],
            "amount": [1.0, 2.0],
            "label": [1, "yes"],
        })
        .to_string(),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_entity_rows", "{body}");
    assert!(body.to_string().contains("label"), "{body}");
    let is_fraud = over_http.column_by_name("is_fraud").unwrap();
    assert!(is_fraud.as_boolean().true_count() > 0);
    assert_eq!(is_fraud.len() as u64, files.label_rows);
    server.stop().await;
}
