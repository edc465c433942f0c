//! Test guest `row_position` (`x: int64 -> y: int64`): `y = x`, plus the previous row's `x`
//! for rows past row 64. Row 70 alone and row 70 of a batch disagree; the upload check's
//! batch shapes catch it.

use test_rows::{InputColumns, OutputBuilder};

#[lockstep_sdk::transform_columns(name = "row_position", version = "0.1.0")]
pub fn add_previous(input: InputColumns<'_>) -> OutputBuilder {
    let x = input.x;
    OutputBuilder {
        y: (0..x.len())
            .map(|i| {
                if i > 64 {
                    x[i].wrapping_add(x[i - 1])
                } else {
                    x[i]
                }
            })
            .collect(),
    }
}
