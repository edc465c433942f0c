//! The rows a transform keeps: call, drop the rows it rejects with a row error, call again on
//! the rest. One protocol for every path that may drop rows (backfills, pushes, on-demand
//! views), so they drop the same rows.

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use lockstep_model::Digest;

use crate::arrow::from_guest;
use crate::batch;
use crate::bindings::{Batch, BatchIn};
use crate::{RunError, Runtime};

/// What [`Runtime::call_keeping`] returns.
#[derive(Debug, Clone)]
pub struct Kept {
    /// The transform's outputs for the kept rows, in input order, with the signature's
    /// output columns.
    pub output: RecordBatch,
    /// Which input rows were kept; `None` when every row was.
    pub mask: Option<BooleanArray>,
    /// Rows rejected, and the first rejection: its row in the input and the guest's message.
    pub rejected: usize,
    pub first_rejection: Option<(u32, String)>,
}

impl Kept {
    /// The input rows that were kept (all of `input` when none was rejected).
    pub fn kept_rows(&self, input: &RecordBatch) -> RecordBatch {
        match &self.mask {
            None => input.clone(),
            Some(mask) => filter_record_batch(input, mask).expect("a mask of the input's length"),
        }
    }

    /// The indices in the input of the kept rows; `None` when every row was kept.
    pub fn kept_indices(&self) -> Option<Vec<usize>> {
        self.mask.as_ref().map(|mask| {
            (0..mask.len())
                .filter(|&row| mask.value(row))
                .collect::<Vec<_>>()
        })
    }
}

/// Whether a call's sampled rows are re-run alone, and compared bit for bit, before its
/// output is used ([`Runtime::recheck_sample`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recheck {
    Sample,
    Skip,
}

impl Runtime {
    /// Runs `input` through a transform like [`Runtime::call`], except that rows the
    /// transform rejects with a row error are dropped: the rest are called again, without
    /// them, and their outputs returned with the mask of kept rows. A row error on the
    /// second call, or any other error, is the call's error.
    pub fn call_keeping(
        &self,
        digest: &Digest,
        input: &RecordBatch,
        recheck: Recheck,
    ) -> Result<Kept, RunError> {
        let loaded = self.get(digest)?;
        let outputs = &loaded.signature.outputs;
        let guest = self.to_guest(&loaded, input)?;
        let guest = guest.batch();
        let call = |batch: &BatchIn<'_>| -> Result<Batch, RunError> {
            let output = self.call_guest(digest, batch)?;
            if recheck == Recheck::Sample {
                self.recheck_guest_sample(digest, batch, &output)?;
            }
            Ok(output)
        };
        match call(&guest) {
            Ok(output) => Ok(Kept {
                output: from_guest(output, outputs),
                mask: None,
                rejected: 0,
                first_rejection: None,
            }),
            Err(RunError::GuestRows(errors)) => {
                let mut keep = vec![true; input.num_rows()];
                for (row, _) in &errors {
                    if let Some(slot) = keep.get_mut(*row as usize) {
                        *slot = false;
                    }
                }
                let rows: Vec<usize> = (0..keep.len()).filter(|&row| keep[row]).collect();
                let output = if rows.is_empty() {
                    RecordBatch::new_empty(lockstep_model::arrow_schema(outputs))
                } else {
                    from_guest(call(&batch::take(&guest, &rows).borrow())?, outputs)
                };
                Ok(Kept {
                    output,
                    mask: Some(BooleanArray::from(keep)),
                    rejected: errors.len(),
                    first_rejection: errors.into_iter().next(),
                })
            }
            Err(error) => Err(error),
        }
    }
}
