//! Test guest `stateful` (`x: int64 -> y: int64`): `y = x + calls`, where
//! `calls` counts the `transform` calls this instance has served, this one
//! included. Deliberately not row-wise: its output depends on how the rows
//! were split into batches, which the host's chunk-invariance check catches.

use std::sync::atomic::{AtomicI64, Ordering};

use test_rows::{InputColumns, OutputBuilder};

/// `transform` calls so far, incremented once per call (not per row).
static CALLS: AtomicI64 = AtomicI64::new(0);

#[lockstep_sdk::transform_columns(name = "stateful", version = "0.1.0")]
pub fn add_call_count(input: InputColumns<'_>) -> OutputBuilder {
    let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    OutputBuilder {
        y: input.x.iter().map(|x| x.wrapping_add(calls)).collect(),
    }
}
