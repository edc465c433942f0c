//! The skew check on demand: entity rows asked online as of a time and built into a
//! training set at that same time, every value compared bit for bit. `lockstep demo` runs
//! it; it is the audit's comparison without a feature log.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{Field, Schema};

use super::Lockstep;
use super::features::FeatureError;
use super::online_answer::Status;
use super::serving::OnlineRequest;
use super::training_set::{DEFAULT_TIMESTAMP_COLUMN, TrainingSetRequest};
use crate::columnar::{same_value, value_text};
use crate::model::ValueType;
use crate::model::arrow_type;

/// What one online-versus-offline comparison found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParityReport {
    /// Entity rows asked.
    pub rows: usize,
    /// Features per row.
    pub features: usize,
    /// Values compared: rows × features.
    pub values: u64,
    /// Of them, values present (not null) on both paths.
    pub present: u64,
    /// Values that differ in validity or bits.
    pub differences: u64,
    /// The first difference, in row then feature order.
    pub first_difference: Option<ParityDifference>,
}

impl ParityReport {
    /// Values were compared and none differed.
    pub fn identical(&self) -> bool {
        self.values > 0 && self.differences == 0
    }
}

/// One value the two paths disagree on, as exact text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParityDifference {
    pub row: usize,
    pub feature: String,
    pub online: String,
    pub status: Status,
    pub offline: String,
}

impl Lockstep {
    /// Asks for `request`'s features of every row of `entities` (join keys and request
    /// fields; a timestamp column is replaced) online as of `at` (µs) and as a training set
    /// with every row at `at`, and compares the two answers value by value, bit for bit.
    pub async fn compare_online_offline(
        &self,
        request: &TrainingSetRequest,
        entities: &RecordBatch,
        at: i64,
    ) -> Result<ParityReport, FeatureError> {
        let time = request
            .timestamp_column
            .as_deref()
            .unwrap_or(DEFAULT_TIMESTAMP_COLUMN);
        let keys = without_column(entities, time);
        let online = self
            .get_online_features_at(
                &OnlineRequest {
                    entities: keys.clone(),
                    feature_service: request.feature_service.clone(),
                    features: request.features.clone(),
                    full_feature_names: request.full_feature_names,
                    project: request.project.clone(),
                },
                at,
            )
            .await?;
        let set = self
            .training_set(request, &at_time(&keys, time, at)?)
            .await?;
        let features = &online.columns[online.join_keys..];
        if features.len() != set.features.len() {
            return Err(FeatureError::Internal(format!(
                "the online answer has {} features, the training set {}",
                features.len(),
                set.features.len()
            )));
        }
        let rows = keys.num_rows();
        let mut report = ParityReport {
            rows,
            features: features.len(),
            values: (rows * features.len()) as u64,
            present: 0,
            differences: 0,
            first_difference: None,
        };
        let offline_columns: Vec<&ArrayRef> = features
            .iter()
            .map(|column| {
                set.batch.column_by_name(&column.name).ok_or_else(|| {
                    FeatureError::Internal(format!("the training set has no `{}`", column.name))
                })
            })
            .collect::<Result<_, _>>()?;
        for row in 0..rows {
            for (column, offline) in features.iter().zip(&offline_columns) {
                let online_values = column.values.as_ref();
                if same_value(offline.as_ref(), row, online_values, row) {
                    report.present += u64::from(online_values.is_valid(row));
                    continue;
                }
                report.differences += 1;
                report
                    .first_difference
                    .get_or_insert_with(|| ParityDifference {
                        row,
                        feature: column.name.clone(),
                        online: value_text(online_values, row),
                        status: column.statuses[row],
                        offline: value_text(offline.as_ref(), row),
                    });
            }
        }
        Ok(report)
    }
}

/// `batch` without its column `name`, if it has one.
fn without_column(batch: &RecordBatch, name: &str) -> RecordBatch {
    match batch.schema().index_of(name) {
        Ok(index) => {
            let mut batch = batch.clone();
            batch.remove_column(index);
            batch
        }
        Err(_) => batch.clone(),
    }
}

/// `batch` with a column `name` holding `at` in every row.
fn at_time(batch: &RecordBatch, name: &str, at: i64) -> Result<RecordBatch, FeatureError> {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|field| field.as_ref().clone())
        .collect();
    let mut columns = batch.columns().to_vec();
    fields.push(Field::new(name, arrow_type(ValueType::Timestamp), false));
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(vec![at; batch.num_rows()]).with_timezone("UTC"),
    ));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| FeatureError::Entities(e.to_string()))
}
