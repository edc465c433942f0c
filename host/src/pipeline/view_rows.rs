//! A feature view's stored rows from its source rows: the view's pinned transform (if it
//! has one) over the source columns, laid out as keys, `event_ts`, `created_ts`, features
//! and the transform digest. Backfill chunks and pushed rows both go through
//! [`ViewRows::compute`], so both paths write the same rows for the same input.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};

use super::{Lockstep, ReadyError};
use crate::model::arrow_schema;
use crate::model::definitions::{ResolvedFeatureView, Source};
use crate::model::{CREATED_TS, Digest, EVENT_TS, FieldSpec, InvalidValue, ViewTable, check_rows};
use crate::runtime::{Recheck, RunError, Runtime};

/// How one view turns source rows into its stored rows.
#[derive(Debug, Clone)]
pub(crate) struct ViewRows {
    pub table: ViewTable,
    /// Source columns used: join keys, timestamps, and the transform's inputs or the
    /// features.
    pub columns: Vec<FieldSpec>,
    timestamp_field: String,
    created_field: Option<String>,
    /// The pinned transform's digest, inputs and outputs.
    transform: Option<(Digest, Vec<FieldSpec>, Vec<FieldSpec>)>,
}

/// Why source rows could not become view rows.
#[derive(Debug)]
pub(crate) enum RowsError {
    /// The transform failed as a whole.
    Run(RunError),
    /// The rows do not have the columns or values the view needs.
    Columns(String),
    /// A value no store may hold; its row is the source row's index in the batch given.
    Invalid(InvalidValue),
}

impl std::fmt::Display for RowsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowsError::Run(error) => error.fmt(f),
            RowsError::Columns(message) => f.write_str(message),
            RowsError::Invalid(invalid) => invalid.fmt(f),
        }
    }
}

impl Lockstep {
    /// The rows maker of `view`, reading `source`, writing `table`; loads the pinned
    /// transform.
    pub(crate) async fn view_rows(
        &self,
        source: &Source,
        view: &ResolvedFeatureView,
        table: ViewTable,
    ) -> Result<ViewRows, ReadyError> {
        let transform = match &view.transform {
            Some(pin) => {
                let signature = self.ensure_loaded(&pin.digest).await?;
                Some((
                    pin.digest,
                    signature.inputs.clone(),
                    signature.outputs.clone(),
                ))
            }
            None => None,
        };
        Ok(ViewRows::new(source, view, table, transform))
    }
}

impl ViewRows {
    fn new(
        source: &Source,
        view: &ResolvedFeatureView,
        table: ViewTable,
        transform: Option<(Digest, Vec<FieldSpec>, Vec<FieldSpec>)>,
    ) -> Self {
        let timestamp_field = source
            .timestamp_field
            .clone()
            .expect("sources of feature views have a timestamp field (checked by resolve)");
        let created_field = source.created_timestamp_field.clone();
        let mut names: Vec<String> = view.join_keys.iter().map(|key| key.name.clone()).collect();
        names.push(timestamp_field.clone());
        names.extend(created_field.clone());
        match &transform {
            Some((_, inputs, outputs)) => {
                names.extend(inputs.iter().map(|input| input.name.clone()));
                // An aggregated view may aggregate source columns next to the outputs.
                if view.aggregation.is_some() {
                    names.extend(
                        table
                            .features
                            .iter()
                            .filter(|column| outputs.iter().all(|o| o.name != column.name))
                            .map(|column| column.name.clone()),
                    );
                }
            }
            None => names.extend(table.features.iter().map(|column| column.name.clone())),
        }
        let mut columns: Vec<FieldSpec> = Vec::new();
        for name in names {
            if columns.iter().all(|column| column.name != name)
                && let Some(column) = source.column(&name)
            {
                columns.push(column);
            }
        }
        Self {
            table,
            columns,
            timestamp_field,
            created_field,
            transform,
        }
    }

    /// The digest of the view's pinned transform, if it has one.
    pub fn digest(&self) -> Option<&Digest> {
        self.transform.as_ref().map(|(digest, _, _)| digest)
    }

    /// The stored rows of a batch of source rows (canonical types), and how many rows the
    /// transform rejected: those are dropped (the row-wise contract makes the others'
    /// outputs the same without them). Every value is checked ([`check_rows`]) before the
    /// rows are given back, so nothing invalid reaches a store.
    pub fn compute(
        &self,
        runtime: &Runtime,
        batch: RecordBatch,
    ) -> Result<(RecordBatch, u64), RowsError> {
        let rows_in = batch.num_rows();
        let (batch, outputs, kept) = match &self.transform {
            None => (batch, None, None),
            Some((digest, _, _)) => {
                let (batch, output, kept) = transform(runtime, digest, batch)?;
                (batch, Some(output), kept)
            }
        };
        let rows = self
            .layout(&batch, outputs.as_ref())
            .map_err(RowsError::Columns)?;
        check_rows(&self.table.row_fields(), &rows).map_err(|mut invalid| {
            // Name the row as it was sent, not among the rows the transform kept.
            if let Some(kept) = &kept {
                invalid.row = kept[invalid.row];
            }
            // …and its timestamps by the source's names for them.
            if invalid.column == EVENT_TS {
                invalid.column = self.timestamp_field.clone();
            } else if invalid.column == CREATED_TS {
                invalid.column = self
                    .created_field
                    .clone()
                    .unwrap_or_else(|| self.timestamp_field.clone());
            }
            RowsError::Invalid(invalid)
        })?;
        let rejected = rows_in - batch.num_rows();
        Ok((rows, rejected as u64))
    }

    /// A source batch (and its transform outputs) in the table's row layout.
    fn layout(
        &self,
        batch: &RecordBatch,
        outputs: Option<&RecordBatch>,
    ) -> Result<RecordBatch, String> {
        let column = |name: &str| -> Result<ArrayRef, String> {
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| format!("source column `{name}` is missing"))
        };
        let event = column(&self.timestamp_field)?;
        if event.null_count() > 0 {
            return Err(format!(
                "the event time `{}` is null in {} rows",
                self.timestamp_field,
                event.null_count()
            ));
        }
        let created = match &self.created_field {
            None => event.clone(),
            Some(name) => fill_nulls(&column(name)?, &event),
        };
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for key in &self.table.join_keys {
            let array = column(&key.name)?;
            if array.null_count() > 0 {
                return Err(format!(
                    "join key `{}` is null in {} rows",
                    key.name,
                    array.null_count()
                ));
            }
            arrays.push(array);
        }
        arrays.push(event);
        arrays.push(created);
        for feature in &self.table.features {
            let array = outputs
                .and_then(|outputs| outputs.column_by_name(&feature.name))
                .or_else(|| batch.column_by_name(&feature.name))
                .cloned()
                .ok_or_else(|| format!("feature `{}` is missing", feature.name))?;
            arrays.push(array);
        }
        let digest = self
            .transform
            .as_ref()
            .map(|(digest, _, _)| digest.to_string());
        arrays.push(Arc::new(StringArray::from(vec![digest; batch.num_rows()])));
        RecordBatch::try_new(arrow_schema(&self.table.row_fields()), arrays)
            .map_err(|e| e.to_string())
    }
}

/// The source rows a transform kept, their outputs, and the kept rows' indices in the batch
/// given (`None` when it kept them all).
type Transformed = (RecordBatch, RecordBatch, Option<Vec<usize>>);

/// Runs the transform over a source batch, dropping rows it rejects. A sample of the rows is
/// re-run alone and compared bit for bit before anything is written
/// (`transform_not_row_wise`).
fn transform(
    runtime: &Runtime,
    digest: &Digest,
    batch: RecordBatch,
) -> Result<Transformed, RowsError> {
    let kept = runtime
        .call_keeping(digest, &batch, Recheck::Sample)
        .map_err(|error| match error {
            RunError::InputColumns(message) => RowsError::Columns(message),
            error => RowsError::Run(error),
        })?;
    if let Some((row, message)) = &kept.first_rejection {
        tracing::debug!(
            rejected = kept.rejected,
            row,
            message,
            "transform rejected rows"
        );
    }
    Ok((
        kept.kept_rows(&batch),
        kept.output.clone(),
        kept.kept_indices(),
    ))
}

/// `created`, with `event` where `created` is null.
fn fill_nulls(created: &ArrayRef, event: &ArrayRef) -> ArrayRef {
    if created.null_count() == 0 {
        return created.clone();
    }
    let created = created
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("timestamp column");
    let event = event
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("timestamp column");
    let filled: TimestampMicrosecondArray = created
        .iter()
        .zip(event.iter())
        .map(|(created, event)| created.or(event))
        .collect();
    Arc::new(filled.with_timezone("UTC"))
}
