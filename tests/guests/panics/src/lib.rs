//! Test guest `panics` (`x: int64 -> y: int64`): returns `y = x`, but panics
//! on `x == 3` with a message containing `lockstep test panic`, which the
//! SDK's panic hook reports to the host before the guest traps.

use test_rows::{Input, Output};

/// The input that panics.
pub const PANIC_ON: i64 = 3;

#[lockstep_sdk::transform(name = "panics", version = "0.1.0")]
pub fn echo(row: Input) -> Output {
    if row.x == PANIC_ON {
        panic!("lockstep test panic on input x = {}", row.x);
    }
    Output { y: row.x }
}
