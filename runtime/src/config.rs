//! Sandbox limits and the hardened wasmtime engine built from them, in one commented place.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Every limit the runtime puts on a guest. Defaults suit a serving host; all come from config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Largest component accepted by `load` (and by uploads), in bytes.
    pub max_component_bytes: usize,
    /// Largest linear memory one instance may grow to, in bytes.
    pub max_memory_bytes: usize,
    /// Largest table one instance may grow to, in elements.
    pub max_table_elements: usize,
    /// Wasm call-stack budget; deep recursion traps with `stack_overflow` past it.
    pub max_wasm_stack_bytes: usize,
    /// Fuel (roughly: wasm instructions) every call gets before its rows are counted.
    pub fuel_per_call: u64,
    /// Extra fuel per input row, so the budget scales with the batch and stays deterministic.
    pub fuel_per_row: u64,
    /// Wall-clock backstop for one call, in milliseconds; fuel normally ends a runaway guest first.
    pub call_timeout_ms: u64,
    /// How often the epoch ticker advances, in milliseconds: the deadline's resolution.
    pub epoch_tick_ms: u64,
    /// Instances the pooling allocator reserves slots for, across all transforms: the most
    /// calls that can run at once (every call has an instance of its own).
    pub max_instances: u32,
    /// Largest output one call may return, in bytes (as laid out in guest memory).
    pub max_output_bytes: usize,
    /// Rows of a checked batch re-run one at a time and compared bit for bit with the
    /// batch's output (backfill batches, pushes and sampled online calls).
    pub row_check_rows: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_component_bytes: 16 << 20,
            max_memory_bytes: 256 << 20,
            max_table_elements: 100_000,
            max_wasm_stack_bytes: 512 << 10,
            fuel_per_call: 100_000_000,
            fuel_per_row: 1_000_000,
            call_timeout_ms: 10_000,
            epoch_tick_ms: 5,
            max_instances: 256,
            max_output_bytes: 64 << 20,
            row_check_rows: 8,
        }
    }
}

impl RuntimeConfig {
    /// The fuel budget of a call over `rows` rows.
    pub fn fuel_for(&self, rows: u32) -> u64 {
        self.fuel_per_call
            .saturating_add(self.fuel_per_row.saturating_mul(u64::from(rows)))
    }

    /// The wall-clock deadline of one call, in epoch ticks (at least one).
    pub fn deadline_ticks(&self) -> u64 {
        self.call_timeout_ms
            .div_ceil(self.epoch_tick_ms.max(1))
            .max(1)
    }

    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }

    pub fn epoch_tick(&self) -> Duration {
        Duration::from_millis(self.epoch_tick_ms.max(1))
    }

    /// Rejects settings that cannot work together, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (
                self.max_component_bytes > 0,
                "max_component_bytes must be positive",
            ),
            (
                self.max_memory_bytes >= 1 << 20,
                "max_memory_bytes must be at least 1 MiB",
            ),
            (
                self.max_memory_bytes <= 4 << 30,
                "max_memory_bytes must be at most 4 GiB (32-bit memories)",
            ),
            (
                self.max_wasm_stack_bytes >= 64 << 10,
                "max_wasm_stack_bytes must be at least 64 KiB",
            ),
            (self.fuel_per_call > 0, "fuel_per_call must be positive"),
            (self.call_timeout_ms > 0, "call_timeout_ms must be positive"),
            (self.epoch_tick_ms > 0, "epoch_tick_ms must be positive"),
            (self.max_instances > 0, "max_instances must be positive"),
            (
                self.max_output_bytes > 0,
                "max_output_bytes must be positive",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err((*message).to_owned()),
            None => Ok(()),
        }
    }
}

/// Components produced by `lockstep build` hold one core instance of the user's module plus
/// a few adapter shims; this bounds how many a component may have.
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
const TABLES_PER_COMPONENT: u32 = 4;
/// Bytes of each freed memory and table slot reset in place and kept resident: what a call
/// over a backfill batch touches (stack, allocator, a 16 384-row batch in and out).
const KEEP_RESIDENT_BYTES: usize = 16 << 20;
/// Freed slots kept warm (resident) for the next instance: about the calls running at once.
const MAX_WARM_SLOTS: u32 = 16;

/// Builds the one engine every transform runs in. Each line is a sandbox guarantee.
pub fn engine(config: &RuntimeConfig) -> wasmtime::Result<Engine> {
    let mut wasm = Config::new();

    // Determinism (invariant 2): the same input bytes give the same output bytes everywhere.
    // NaN bit patterns are otherwise platform-dependent; threads and relaxed SIMD are the
    // only other sources of nondeterminism in core wasm. Threads (and async components) are
    // compiled out: wasmtime's `threads` and `component-model-async` features are off.
    wasm.cranelift_nan_canonicalization(true);
    wasm.wasm_relaxed_simd(false);
    // Proposals a transform has no use for are less attack surface when off.
    wasm.wasm_stack_switching(false);

    // Termination: fuel is the deterministic budget (scaled by rows per call, so the same
    // batch always fails or succeeds alike); the epoch deadline is the wall-clock backstop
    // for anything fuel does not meter (host-side copies, a slow machine).
    wasm.consume_fuel(true);
    wasm.epoch_interruption(true);

    // Deep recursion traps cleanly instead of overflowing the host thread's stack.
    wasm.max_wasm_stack(config.max_wasm_stack_bytes);

    // Fresh state for every call (invariant 3): each call instantiates anew, so nothing a
    // guest keeps in memory or globals survives it. The pooling allocator makes that cheap:
    // slots are reserved up front (address space, not RAM, for a 32-bit memory each), the
    // module's data segments are mapped copy-on-write from one image, and a freed slot's
    // pages are reset in place and kept resident instead of unmapped, so the next instance
    // takes no page faults for the heap a call touched. Where the kernel has PAGEMAP_SCAN
    // (Linux 6.7+) only the pages a call dirtied are reset; elsewhere the first
    // KEEP_RESIDENT_BYTES are. Warm slots are bounded, which bounds the memory kept.
    let max_instances = config.max_instances;
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_component_instances(max_instances)
        .total_core_instances(max_instances * CORE_INSTANCES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .total_memories(max_instances)
        .max_memories_per_component(1)
        .max_memory_size(config.max_memory_bytes)
        .total_tables(max_instances * TABLES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .table_elements(config.max_table_elements)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES)
        .pagemap_scan(Enabled::Auto)
        .max_unused_warm_slots(MAX_WARM_SLOTS.min(max_instances));
    wasm.memory_init_cow(true);
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));

    Engine::new(&wasm)
}
