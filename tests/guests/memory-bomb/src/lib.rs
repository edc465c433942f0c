//! Test guest `memory-bomb` (`x: int64 -> y: int64`): allocates 1 MiB blocks,
//! touches and keeps every one, until the host's memory limit stops it.

use std::sync::{Mutex, PoisonError};

use test_rows::{Input, Output};

/// Size of each retained allocation.
pub const BLOCK_BYTES: usize = 1 << 20;
/// Distance between touched bytes: one write per wasm-page-sized stride is
/// enough to make every block really used.
const TOUCH_STRIDE: usize = 4096;

/// Everything allocated so far; reachable from a static, so never freed.
static HOARD: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[lockstep_sdk::transform(name = "memory_bomb", version = "0.1.0")]
pub fn hoard(row: Input) -> Output {
    let mut hoard = HOARD.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        // Aborts (a trap) once the allocator cannot grow memory any more.
        let mut block = vec![0u8; BLOCK_BYTES];
        for byte in block.iter_mut().step_by(TOUCH_STRIDE) {
            *byte = row.x as u8;
        }
        hoard.push(block);
    }
}
