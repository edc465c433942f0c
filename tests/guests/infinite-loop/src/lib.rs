//! Test guest `infinite-loop` (`x: int64 -> y: int64`): never returns, so only
//! the host's fuel budget or its wall-clock deadline can stop it.

use std::hint::black_box;

use test_rows::{Input, Output};

#[lockstep_sdk::transform(name = "infinite_loop", version = "0.1.0")]
pub fn spin(row: Input) -> Output {
    let mut counter = row.x;
    loop {
        // Opaque to the optimizer: the loop cannot be proven empty or removed.
        counter = black_box(counter.wrapping_add(1));
    }
}
