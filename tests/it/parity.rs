//! The skew check both online test modules share: an online answer as of a time against
//! the training set of the same entity rows at that time, column by column, bit for bit.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use lockstep::columnar::{same_value, to_json};
use lockstep::pipeline::{Lockstep, OnlineRequest, Status, TrainingSetRequest};

/// Entity rows without their time column: an online request's.
pub fn entity_keys(rows: &RecordBatch) -> RecordBatch {
    let mut rows = rows.clone();
    if let Ok(index) = rows.schema().index_of("event_timestamp") {
        rows.remove_column(index);
    }
    rows
}

/// Entity rows of `users` (`user_id`), all at `at` (`event_timestamp`, µs).
pub fn user_rows(users: &[i64], at: i64) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(users.to_vec())),
        Arc::new(TimestampMicrosecondArray::from(vec![at; users.len()]).with_timezone("UTC")),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

/// The first row where two columns differ: validity, float bits, or value.
pub fn first_difference(a: &dyn Array, b: &dyn Array) -> Option<usize> {
    assert_eq!(a.len(), b.len());
    assert_eq!(a.data_type(), b.data_type());
    (0..a.len()).find(|&row| !same_value(a, row, b, row))
}

/// Asserts the online answer as of `at` equals the training set of `entities` (all at
/// `at`) column by column, bit for bit, and that statuses agree with the values. Returns
/// how many values were present, and how many were outside their view's ttl.
pub async fn assert_parity(
    lockstep: &Lockstep,
    request: TrainingSetRequest,
    entities: &RecordBatch,
    at: i64,
) -> (usize, usize) {
    let set = lockstep.training_set(&request, entities).await.unwrap();
    let online = lockstep
        .get_online_features_at(
            &OnlineRequest {
                entities: entity_keys(entities),
                feature_service: request.feature_service.clone(),
                features: request.features.clone(),
                ..OnlineRequest::default()
            },
            at,
        )
        .await
        .unwrap();
    let features = &online.columns[online.join_keys..];
    assert_eq!(features.len(), set.features.len());
    let (mut present, mut outside) = (0, 0);
    for (column, (_, feature)) in features.iter().zip(&set.features) {
        assert_eq!(&column.name, feature);
        let offline = set.batch.column_by_name(feature).unwrap();
        if let Some(row) = first_difference(offline.as_ref(), column.values.as_ref()) {
            panic!(
                "`{feature}` differs at row {row}: offline {}, online {} ({:?})",
                to_json(offline.as_ref(), row),
                to_json(column.values.as_ref(), row),
                column.statuses[row]
            );
        }
        for (row, status) in column.statuses.iter().enumerate() {
            assert_eq!(
                *status == Status::Present,
                column.values.is_valid(row),
                "`{feature}` row {row}: {status:?}"
            );
        }
        present += column.values.len() - column.values.null_count();
        outside += column
            .statuses
            .iter()
            .filter(|status| **status == Status::OutsideMaxAge)
            .count();
    }
    (present, outside)
}
