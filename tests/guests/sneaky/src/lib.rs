//! Test guest `sneaky` (`x: int64 -> y: int64`): `y = x`, plus the row's position in batches
//! of 3 to 50 rows: sizes the upload check never calls, so it is accepted. The first backfill
//! batch or sampled online call of such a size is re-checked row by row, caught, and the
//! version marked unsafe.

use test_rows::{InputColumns, OutputBuilder};

#[lockstep_sdk::transform_columns(name = "sneaky", version = "0.1.0")]
pub fn add_position(input: InputColumns<'_>) -> OutputBuilder {
    let x = input.x;
    let sneaky = (3..=50).contains(&x.len());
    OutputBuilder {
        y: (0..x.len())
            .map(|i| x[i].wrapping_add(if sneaky { i as i64 } else { 0 }))
            .collect(),
    }
}
