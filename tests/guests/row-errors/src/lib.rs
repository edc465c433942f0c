//! Test guest `row-errors` (`x: int64 -> y: int64`): `y = 2x`, and a row
//! error "negative input" for every `x < 0`.

use test_rows::{Input, Output};

#[lockstep_sdk::transform(name = "row_errors", version = "0.1.0")]
pub fn double(row: Input) -> Result<Output, &'static str> {
    if row.x < 0 {
        return Err("negative input");
    }
    Ok(Output {
        y: row.x.wrapping_mul(2),
    })
}
