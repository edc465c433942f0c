//! The row-wise contract, checked rather than assumed: a transform's output for a row must
//! be the output of that row called alone, whatever the batch's size, order or other rows.
//!
//! Fresh state per call ([`Runtime::call`]) rules out state kept between calls by
//! construction. What remains — an output that depends on the batch (its size, a row's
//! position, the other rows) — is checked twice:
//!
//! * at upload, [`Runtime::smoke_test`] calls a pool of sample rows one at a time, keeps a
//!   fingerprint of each row's output (memory bounded whatever the guest returns), then calls
//!   batches of adversarial shapes ([`UPLOAD_SHAPES`], the caller's batch sizes, the pool
//!   reversed and shuffled) and compares every row's bits with its fingerprint;
//! * after a call, [`Runtime::recheck`] re-runs a deterministic sample of the batch's rows
//!   one at a time and compares them with the batch's output (backfill batches, pushes and a
//!   sample of online calls).

use std::collections::HashSet;

use arrow::array::RecordBatch;

use super::arrow::{from_guest, to_guest};
use super::batch::{self, row_difference, row_fingerprint};
use super::bindings::{Batch, BatchIn};
use super::sample::sample_batch;
use super::{LoadError, RunError, Runtime};
use lockstep_model::Digest;
use lockstep_model::random::SplitMix64;

/// Batch sizes every upload is called with: both sides of the powers of two a guest might
/// branch on, the smoke sample's old size (64) and a larger batch.
pub const UPLOAD_SHAPES: [u32; 9] = [1, 2, 63, 64, 65, 127, 128, 129, 1000];

/// Distinct sample rows whose one-row outputs are the reference; larger batches cycle them.
const POOL_ROWS: u32 = 1000;

/// Seed of the rows [`Runtime::recheck_sample`] re-runs.
const SAMPLE_SEED: u64 = 0x726f_772d_7769_7365;

/// Outcome of [`Runtime::smoke_test`].
#[derive(Debug, Clone)]
pub struct SmokeReport {
    /// The sample rows the transform accepted, and its output for them.
    pub input: RecordBatch,
    pub output: RecordBatch,
    /// Sample rows the transform rejected with a per-row error (allowed: the sample is
    /// synthetic), with the first message.
    pub rejected_rows: usize,
    pub first_rejection: Option<String>,
    /// The batch shapes the rows were compared in, described.
    pub shapes: Vec<String>,
}

/// One batch the upload check calls: pool rows in some order.
struct Shape {
    description: String,
    rows: Vec<usize>,
}

impl Runtime {
    /// Runs a newly loaded transform over sample rows and proves it row-wise: every row's
    /// output, in batches of each of [`UPLOAD_SHAPES`] and `batch_sizes` rows and in the
    /// pool reversed and shuffled, must equal the row's output called alone, bit for bit.
    /// Sample rows the transform rejects with a row error are left out (the sample is
    /// synthetic); traps, malformed or oversized output and any difference are failures.
    pub fn smoke_test(
        &self,
        digest: &Digest,
        batch_sizes: &[u32],
    ) -> Result<SmokeReport, LoadError> {
        let signature = self
            .signature(digest)
            .ok_or(LoadError::SmokeRun(RunError::NotLoaded(*digest)))?;
        let mut pool = sample_batch(&signature.inputs, POOL_ROWS);
        let (mut rejected_rows, mut first_rejection) = (0, None);
        if let Err(RunError::GuestRows(errors)) = self.call_guest(digest, &pool.borrow()) {
            rejected_rows = errors.len();
            first_rejection = errors.first().map(|(row, msg)| format!("row {row}: {msg}"));
            let rejected: HashSet<u32> = errors.iter().map(|(row, _)| *row).collect();
            let kept: Vec<usize> = (0..pool.num_rows)
                .filter(|row| !rejected.contains(row))
                .map(|row| row as usize)
                .collect();
            pool = batch::take(&pool.borrow(), &kept);
        }
        let output = self
            .call_guest(digest, &pool.borrow())
            .map_err(LoadError::SmokeRun)?;
        let rows = pool.num_rows as usize;
        let shapes = shapes(rows, batch_sizes);
        if rows > 0 {
            let reference = self.fingerprints_alone(digest, &pool)?;
            for shape in &shapes {
                self.compare_shape(digest, &pool, &reference, shape)?;
            }
        }
        Ok(SmokeReport {
            input: from_guest(pool, &signature.inputs),
            output: from_guest(output, &signature.outputs),
            rejected_rows,
            first_rejection,
            shapes: shapes.into_iter().map(|shape| shape.description).collect(),
        })
    }

    /// Re-runs `rows` of a batch one at a time and compares each with the batch's output
    /// for it, bit for bit. `transform_not_row_wise` names the first row that differs; the
    /// caller fails closed (the pipeline marks the transform unsafe).
    pub fn recheck(
        &self,
        digest: &Digest,
        input: &RecordBatch,
        output: &RecordBatch,
        rows: &[usize],
    ) -> Result<(), RunError> {
        let (input, output) = self.guest_pair(digest, input, output)?;
        self.recheck_guest(digest, &input.borrow(), &output, rows)
    }

    /// [`Runtime::recheck`] on the deterministic sample of `config.row_check_rows` rows
    /// ([`sample_rows`]); nothing to do for a one-row batch.
    pub fn recheck_sample(
        &self,
        digest: &Digest,
        input: &RecordBatch,
        output: &RecordBatch,
    ) -> Result<(), RunError> {
        if input.num_rows() < 2 {
            return Ok(());
        }
        let (input, output) = self.guest_pair(digest, input, output)?;
        self.recheck_guest_sample(digest, &input.borrow(), &output)
    }

    /// A call's input and output as the guest's batches.
    fn guest_pair(
        &self,
        digest: &Digest,
        input: &RecordBatch,
        output: &RecordBatch,
    ) -> Result<(Batch, Batch), RunError> {
        let loaded = self.get(digest)?;
        let bad = |e: super::arrow::ColumnarError| RunError::InputColumns(e.to_string());
        Ok((
            to_guest(input, &loaded.signature.inputs).map_err(bad)?,
            to_guest(output, &loaded.signature.outputs).map_err(bad)?,
        ))
    }

    fn recheck_guest(
        &self,
        digest: &Digest,
        input: &BatchIn<'_>,
        output: &Batch,
        rows: &[usize],
    ) -> Result<(), RunError> {
        self.count_rechecked(digest, rows.len());
        for &row in rows {
            let alone = self.call_guest(digest, &batch::slice(input, row..row + 1).borrow())?;
            if let Some(difference) = row_difference(output, row, &alone, 0) {
                return Err(RunError::NotRowWise {
                    row: row as u32,
                    rows: input.num_rows,
                    difference: format!("batch vs alone: {difference}"),
                });
            }
        }
        Ok(())
    }

    /// [`Runtime::recheck_sample`] on the guest's batches.
    pub(crate) fn recheck_guest_sample(
        &self,
        digest: &Digest,
        input: &BatchIn<'_>,
        output: &Batch,
    ) -> Result<(), RunError> {
        let rows = input.num_rows as usize;
        if rows < 2 {
            return Ok(());
        }
        let sample = sample_rows(rows, self.config.row_check_rows, SAMPLE_SEED);
        self.recheck_guest(digest, input, output, &sample)
    }

    /// The fingerprint of each pool row's output called alone.
    fn fingerprints_alone(
        &self,
        digest: &Digest,
        pool: &Batch,
    ) -> Result<Vec<[u8; 32]>, LoadError> {
        let pool = &pool.borrow();
        (0..pool.num_rows as usize)
            .map(|row| {
                let alone = self.call_guest(digest, &batch::slice(pool, row..row + 1).borrow());
                match alone {
                    Ok(output) => Ok(row_fingerprint(&output, 0)),
                    // Accepted in the whole pool, refused alone.
                    Err(RunError::GuestRows(errors)) => Err(LoadError::NotRowWise {
                        shape: format!("sample row {row} called alone"),
                        difference: format!(
                            "rejected alone but accepted in a batch: {}",
                            errors[0].1
                        ),
                    }),
                    Err(error) => Err(LoadError::SmokeRun(error)),
                }
            })
            .collect()
    }

    /// Calls one shape and compares each row's output with the row's reference.
    fn compare_shape(
        &self,
        digest: &Digest,
        pool: &Batch,
        reference: &[[u8; 32]],
        shape: &Shape,
    ) -> Result<(), LoadError> {
        let pool = &pool.borrow();
        let input = batch::take(pool, &shape.rows);
        let output = match self.call_guest(digest, &input.borrow()) {
            Ok(output) => output,
            Err(RunError::GuestRows(errors)) => {
                let (row, message) = &errors[0];
                return Err(LoadError::NotRowWise {
                    shape: shape.description.clone(),
                    difference: format!(
                        "row {row} rejected in the batch but accepted alone: {message}"
                    ),
                });
            }
            Err(error) => return Err(LoadError::SmokeRun(error)),
        };
        let differing = (0..shape.rows.len())
            .find(|&row| row_fingerprint(&output, row) != reference[shape.rows[row]]);
        let Some(row) = differing else {
            return Ok(());
        };
        let source = shape.rows[row];
        let alone = self
            .call_guest(digest, &batch::slice(pool, source..source + 1).borrow())
            .map_err(LoadError::SmokeRun)?;
        let difference = row_difference(&output, row, &alone, 0)
            .unwrap_or_else(|| format!("row {row} differs between two calls alone"));
        Err(LoadError::NotRowWise {
            shape: shape.description.clone(),
            difference: format!("batch vs alone: {difference}"),
        })
    }
}

/// The shapes an upload is called in: prefixes of the pool of each size (cycling the pool
/// past its end), then the whole pool reversed and shuffled.
fn shapes(pool_rows: usize, batch_sizes: &[u32]) -> Vec<Shape> {
    let mut sizes: Vec<u32> = UPLOAD_SHAPES.iter().chain(batch_sizes).copied().collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut shapes: Vec<Shape> = sizes
        .into_iter()
        .filter(|&size| size > 0)
        .map(|size| Shape {
            description: format!("in a batch of {size} rows"),
            rows: (0..size as usize).map(|i| i % pool_rows.max(1)).collect(),
        })
        .collect();
    shapes.push(Shape {
        description: format!("in a batch of {pool_rows} rows in reverse order"),
        rows: (0..pool_rows).rev().collect(),
    });
    let mut shuffled: Vec<usize> = (0..pool_rows).collect();
    let mut random = SplitMix64(0x5eed_1e55);
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, random.index(i + 1));
    }
    shapes.push(Shape {
        description: format!("in a batch of {pool_rows} rows shuffled"),
        rows: shuffled,
    });
    shapes
}

/// Rows of an `rows`-row batch to re-run alone: the first, the last and `count - 2` more
/// drawn from `seed`, each once, in order. Deterministic: the same batch shape and seed give
/// the same rows.
pub fn sample_rows(rows: usize, count: usize, seed: u64) -> Vec<usize> {
    if rows <= count {
        return (0..rows).collect();
    }
    let mut chosen = vec![0, rows - 1];
    let mut random = SplitMix64(seed ^ rows as u64);
    while chosen.len() < count {
        let row = random.index(rows);
        if !chosen.contains(&row) {
            chosen.push(row);
        }
    }
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_rows_are_distinct_sorted_and_include_both_ends() {
        for rows in [1, 2, 8, 9, 100, 16_384] {
            let sample = sample_rows(rows, 8, 42);
            assert_eq!(sample.len(), rows.min(8), "{rows}");
            assert!(sample.windows(2).all(|w| w[0] < w[1]), "{rows}: {sample:?}");
            assert_eq!(sample[0], 0);
            assert_eq!(*sample.last().unwrap(), rows - 1);
            assert_eq!(sample, sample_rows(rows, 8, 42), "deterministic");
        }
    }

    #[test]
    fn shapes_cover_the_sizes_and_permutations() {
        let shapes = shapes(1000, &[16_384, 64]);
        let sizes: Vec<usize> = shapes.iter().map(|s| s.rows.len()).collect();
        assert_eq!(
            sizes,
            [1, 2, 63, 64, 65, 127, 128, 129, 1000, 16_384, 1000, 1000]
        );
        let shuffled = &shapes.last().unwrap().rows;
        let mut sorted = shuffled.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_ne!(*shuffled, sorted);
        assert!(shapes[9].rows.iter().all(|&row| row < 1000));
    }
}
