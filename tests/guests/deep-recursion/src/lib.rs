//! Test guest `deep-recursion` (`x: int64 -> y: int64`): recurses without
//! bound until the host's wasm stack limit stops it.
//!
//! The state of each frame stays in wasm locals, never in the shadow stack in
//! linear memory, so the engine's call stack overflows (a stack-overflow trap)
//! rather than the shadow stack running out of linear memory. `black_box` is
//! not used for that reason: it spills its argument to the shadow stack.

use test_rows::{Input, Output};

#[lockstep_sdk::transform(name = "deep_recursion", version = "0.1.0")]
pub fn recurse(row: Input) -> Output {
    Output {
        y: descend(row.x as u64, 0) as i64,
    }
}

/// Recurses about 2^64 times. The base case is reachable in principle, so the
/// compiler cannot declare the recursion infinite and drop it, and the result
/// is combined with two non-associative operations, so it cannot turn the
/// recursion into a loop.
#[inline(never)]
fn descend(depth: u64, trail: u64) -> u64 {
    if depth == u64::MAX {
        return trail;
    }
    let below = descend(depth.wrapping_add(1), trail ^ depth.rotate_left(7));
    below
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(depth ^ trail)
}
