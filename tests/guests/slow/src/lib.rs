//! Test guest `slow` (`x: int64 -> y: int64`): `y = x`, except that it never returns for
//! `x = 424242424242`, so it passes the upload check (whose sample rows never hold that
//! value) and then spins on a request that sends it until the host's fuel or deadline
//! stops it.

use std::hint::black_box;

use test_rows::{Input, Output};

/// The input the guest spins on.
const SPIN: i64 = 424_242_424_242;

#[lockstep_sdk::transform(name = "slow", version = "0.1.0")]
pub fn echo_or_spin(row: Input) -> Output {
    let mut counter = row.x;
    if counter == SPIN {
        loop {
            // Opaque to the optimizer: the loop cannot be proven empty or removed.
            counter = black_box(counter.wrapping_add(1));
        }
    }
    Output { y: counter }
}
