//! On-demand views evaluated over joined rows: one function for training sets and online
//! requests, so both run the same component bytes the same way. Rows missing a required
//! (non-nullable) input, or rejected by the transform, get null features. Calls are
//! re-checked row-wise as the caller asks ([`RowCheck`]).

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{filter_record_batch, take};

use crate::model::FieldSpec;
use crate::model::arrow_schema;
use crate::model::definitions::ResolvedOnDemandView;
use crate::runtime::{Recheck, RunError, Runtime};

/// How an evaluation re-checks that the transform is row-wise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowCheck {
    /// Every call's sampled rows are re-run alone before its output is used (training sets).
    Inline,
    /// The first call's input and output are kept ([`Evaluated::to_check`]) for a re-check
    /// off the request path (a sampled online request).
    Later,
    /// No re-check (online requests not sampled).
    Skip,
}

/// What an evaluation produced: the view's features, one array per feature, and how many
/// rows got nulls because an input was missing or the transform rejected them.
#[derive(Debug)]
pub struct Evaluated {
    pub features: Vec<ArrayRef>,
    pub missing_inputs: usize,
    pub rejected: usize,
    /// With [`RowCheck::Later`]: a call's input and output, to re-check.
    pub to_check: Option<(RecordBatch, RecordBatch)>,
}

/// Runs `view`'s transform over `inputs` (one array per binding, in `view.inputs` order),
/// `batch_rows` rows per call, and returns its features for every row.
pub fn evaluate(
    runtime: &Runtime,
    view: &ResolvedOnDemandView,
    outputs: &[FieldSpec],
    inputs: &[ArrayRef],
    rows: usize,
    batch_rows: usize,
    check: RowCheck,
) -> Result<Evaluated, RunError> {
    let fields: Vec<FieldSpec> = view
        .inputs
        .iter()
        .map(|binding| binding.input.clone())
        .collect();
    // Only rows with every required input go to the transform.
    let complete: Vec<bool> = (0..rows)
        .map(|row| {
            fields
                .iter()
                .zip(inputs)
                .all(|(field, array)| field.nullable || array.is_valid(row))
        })
        .collect();
    let missing_inputs = complete.iter().filter(|ok| !**ok).count();
    // Nullable in the schema while filtering; the transform batch checks nullability.
    let loose: Vec<FieldSpec> = fields
        .iter()
        .map(|field| FieldSpec {
            nullable: true,
            ..field.clone()
        })
        .collect();
    let all = RecordBatch::try_new(arrow_schema(&loose), inputs.to_vec())
        .map_err(|e| RunError::BadInput(e.to_string()))?;
    let ready = if missing_inputs == 0 {
        all
    } else {
        filter_record_batch(&all, &BooleanArray::from(complete.clone()))
            .map_err(|e| RunError::BadInput(e.to_string()))?
    };
    let digest = &view.transform.digest;
    let recheck = match check {
        RowCheck::Inline => Recheck::Sample,
        RowCheck::Later | RowCheck::Skip => Recheck::Skip,
    };
    let mut to_check = None;
    let mut rejected = 0;
    // Per compact row: its output row in `parts`, or None when rejected.
    let mut parts: Vec<RecordBatch> = Vec::new();
    let mut positions: Vec<Option<u32>> = Vec::with_capacity(ready.num_rows());
    let mut produced = 0u32;
    let mut start = 0;
    while start < ready.num_rows() {
        let length = batch_rows.min(ready.num_rows() - start);
        let slice = ready.slice(start, length);
        let kept = runtime.call_keeping(digest, &slice, recheck)?;
        if check == RowCheck::Later && to_check.is_none() && kept.output.num_rows() > 1 {
            to_check = Some((kept.kept_rows(&slice), kept.output.clone()));
        }
        for row in 0..length {
            if kept.mask.as_ref().is_none_or(|mask| mask.value(row)) {
                positions.push(Some(produced));
                produced += 1;
            } else {
                positions.push(None);
                rejected += 1;
            }
        }
        parts.push(kept.output);
        start += length;
    }
    let compact = match parts.first() {
        None => RecordBatch::new_empty(arrow_schema(outputs)),
        Some(first) => arrow::compute::concat_batches(&first.schema(), &parts)
            .map_err(|e| RunError::Internal(format!("joining a view's outputs: {e}")))?,
    };
    // Scatter back: every row's output position, null for rows that produced none.
    let mut compact_rows = positions.into_iter();
    let indices: UInt32Array = complete
        .iter()
        .map(|&ok| {
            if ok {
                compact_rows.next().flatten()
            } else {
                None
            }
        })
        .collect();
    let features = view
        .features
        .iter()
        .map(|feature| {
            let column = compact
                .column_by_name(&feature.name)
                .ok_or_else(|| RunError::BadOutput(format!("no output `{}`", feature.name)))?;
            take(column.as_ref(), &indices, None).map_err(|e| RunError::BadOutput(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Evaluated {
        features,
        missing_inputs,
        rejected,
        to_check,
    })
}
