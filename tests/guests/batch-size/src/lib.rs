//! Test guest `batch_size` (`x: int64 -> y: int64`): `y = x`, plus 1 000 000 when the batch
//! has more than 64 rows. A 1-row online call and a large backfill batch would disagree;
//! the upload check's batch shapes catch it.

use test_rows::{InputColumns, OutputBuilder};

#[lockstep_sdk::transform_columns(name = "batch_size", version = "0.1.0")]
pub fn add_when_large(input: InputColumns<'_>) -> OutputBuilder {
    let extra = if input.x.len() > 64 { 1_000_000 } else { 0 };
    OutputBuilder {
        y: input.x.iter().map(|x| x.wrapping_add(extra)).collect(),
    }
}
