//! Test guest `leaky` (`x: int64 -> y: int64`): `y = x + 1`, and every call leaks 1 MiB
//! (touched, reachable from a static). On a reused instance it would fail after a few dozen
//! calls; with fresh state per call it never does.

use std::sync::{Mutex, PoisonError};

use test_rows::{InputColumns, OutputBuilder};

/// Bytes leaked per call.
pub const LEAK_BYTES: usize = 1 << 20;

static LEAKED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[lockstep_sdk::transform_columns(name = "leaky", version = "0.1.0")]
pub fn leak(input: InputColumns<'_>) -> OutputBuilder {
    let mut block = vec![0u8; LEAK_BYTES];
    for byte in block.iter_mut().step_by(4096) {
        *byte = 1;
    }
    LEAKED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(block);
    OutputBuilder {
        y: input.x.iter().map(|x| x.wrapping_add(1)).collect(),
    }
}
