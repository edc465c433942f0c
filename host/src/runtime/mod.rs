//! The only module that touches wasmtime: loads transform components and calls them on batches.
//!
//! A transform is known by the [`Digest`] of its component bytes. [`Runtime::load`] compiles
//! a component once, checks it implements the `feature-transform` world and imports nothing
//! else, and caches it; [`Runtime::call`] runs one batch through it under fuel, an epoch
//! deadline and memory/table/stack caps, then checks the output against the signature.
//!
//! Instances are reused between successful calls (a warm call costs about a microsecond
//! instead of tens), each in its own `Store`, and dropped after any trap or malformed
//! output: a store is never entered again after it misbehaved.

pub mod batch;
mod bindings;
pub mod compile;
mod config;
mod error;
pub mod sample;
mod state;
pub mod validate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, Trap};

pub use bindings::{
    Batch, Column, DataType, Field, RowError, Signature, TransformError, Utf8Values, Values,
};
pub use config::RuntimeConfig;
pub use error::{LoadError, RunError};

use crate::model::Digest;
use bindings::{ALLOWED_IMPORTS, FeatureTransform, FeatureTransformPre};
use state::{GuestState, LimitExceeded};

/// Rows in the sample a smoke run feeds a newly loaded transform.
pub const SMOKE_ROWS: u32 = 64;
/// Chunk sizes the smoke run re-feeds the sample in, to prove the transform row-wise.
pub const SMOKE_CHUNKS: [u32; 2] = [1, 7];

/// The wasm runtime of one host: one engine, one linker and every loaded transform.
pub struct Runtime {
    engine: Engine,
    linker: Linker<GuestState>,
    config: RuntimeConfig,
    transforms: RwLock<HashMap<Digest, Arc<Loaded>>>,
    /// Held for its `Drop`: stops the ticker thread with the runtime.
    _ticker: EpochTicker,
}

/// What [`Runtime::load`] learned about a component.
#[derive(Debug, Clone)]
pub struct TransformInfo {
    pub digest: Digest,
    pub signature: Signature,
    pub size_bytes: usize,
}

/// Outcome of [`Runtime::smoke_test`].
#[derive(Debug, Clone)]
pub struct SmokeReport {
    /// The sample rows the transform accepted, and its output for them.
    pub input: Batch,
    pub output: Batch,
    /// Sample rows the transform rejected with a per-row error (allowed: the sample is
    /// synthetic), with the first message.
    pub rejected_rows: usize,
    pub first_rejection: Option<String>,
}

/// A compiled, checked transform and its idle instances.
struct Loaded {
    pre: FeatureTransformPre<GuestState>,
    signature: Signature,
    idle: Mutex<Vec<Instance>>,
    stats: CallCounters,
}

/// Running totals of one transform's calls (relaxed atomics: read for metrics only).
#[derive(Default)]
struct CallCounters {
    calls: AtomicU64,
    failures: AtomicU64,
    rows: AtomicU64,
    nanos: AtomicU64,
    fuel: AtomicU64,
}

/// What a loaded transform's calls have cost so far: for metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct CallStats {
    pub digest: Digest,
    pub name: String,
    pub calls: u64,
    /// Calls that ended in an error (guest row errors included).
    pub failures: u64,
    pub rows: u64,
    pub seconds: f64,
    /// Fuel (deterministic instruction budget) consumed.
    pub fuel: u64,
}

/// A live instance in its own store, ready for the next call.
struct Instance {
    store: Store<GuestState>,
    bindings: FeatureTransform,
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the wasm runtime: {0}")]
pub struct StartError(String);

impl Runtime {
    /// Builds the hardened engine and starts its epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self, StartError> {
        config.validate().map_err(StartError)?;
        let engine = config::engine(&config).map_err(|e| StartError(error_chain(&e)))?;
        let mut linker = Linker::new(&engine);
        FeatureTransform::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| StartError(error_chain(&e)))?;
        let ticker = EpochTicker::start(&engine, config.epoch_tick());
        Ok(Self {
            engine,
            linker,
            config,
            transforms: RwLock::default(),
            _ticker: ticker,
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Compiles and checks a component, caching it by digest; loading the same bytes again is
    /// free. Rejects anything that is not a component of the `feature-transform` world with
    /// no imports but `lockstep:transform/host`, or whose signature is malformed.
    pub fn load(&self, bytes: &[u8]) -> Result<TransformInfo, LoadError> {
        let limit = self.config.max_component_bytes;
        if bytes.len() > limit {
            return Err(LoadError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        check_header(bytes)?;
        let digest = Digest::of(bytes);
        if let Some(signature) = self.signature(&digest) {
            return Ok(TransformInfo {
                digest,
                signature,
                size_bytes: bytes.len(),
            });
        }

        let component =
            Component::new(&self.engine, bytes).map_err(|e| LoadError::Invalid(error_chain(&e)))?;
        if let Some((name, _)) = component
            .component_type()
            .imports(&self.engine)
            .find(|(name, _)| !ALLOWED_IMPORTS.contains(name))
        {
            return Err(LoadError::ForbiddenImport {
                name: name.to_owned(),
            });
        }
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::WrongWorld(error_chain(&e)))?;
        let pre = FeatureTransformPre::new(instance_pre)
            .map_err(|e| LoadError::WrongWorld(error_chain(&e)))?;

        let mut instance = self.instantiate(&pre).map_err(LoadError::SignatureCall)?;
        instance.arm(self.config.fuel_per_call, self.config.deadline_ticks());
        let signature = match instance.bindings.call_signature(&mut instance.store) {
            Ok(signature) => signature,
            Err(trap) => {
                let budget = self.config.fuel_per_call;
                return Err(LoadError::SignatureCall(classify(
                    trap,
                    instance.store.data_mut(),
                    budget,
                    0,
                    &self.config,
                )));
            }
        };
        validate::check_signature(&signature).map_err(LoadError::InvalidSignature)?;

        let loaded = Arc::new(Loaded {
            pre,
            signature: signature.clone(),
            idle: Mutex::new(vec![instance]),
            stats: CallCounters::default(),
        });
        self.transforms
            .write()
            .expect("transform table poisoned")
            .entry(digest)
            .or_insert(loaded);
        tracing::debug!(%digest, name = %signature.name, "transform loaded");
        Ok(TransformInfo {
            digest,
            signature,
            size_bytes: bytes.len(),
        })
    }

    /// The signature of a loaded transform.
    pub fn signature(&self, digest: &Digest) -> Option<Signature> {
        self.get(digest).ok().map(|loaded| loaded.signature.clone())
    }

    /// Forgets a transform and its instances (e.g. after it failed its smoke test).
    pub fn unload(&self, digest: &Digest) {
        self.transforms
            .write()
            .expect("transform table poisoned")
            .remove(digest);
    }

    /// The call totals of every loaded transform, by digest.
    pub fn call_stats(&self) -> Vec<CallStats> {
        let transforms = self.transforms.read().expect("transform table poisoned");
        let mut stats: Vec<CallStats> = transforms
            .iter()
            .map(|(digest, loaded)| {
                let counters = &loaded.stats;
                CallStats {
                    digest: *digest,
                    name: loaded.signature.name.clone(),
                    calls: counters.calls.load(Ordering::Relaxed),
                    failures: counters.failures.load(Ordering::Relaxed),
                    rows: counters.rows.load(Ordering::Relaxed),
                    seconds: counters.nanos.load(Ordering::Relaxed) as f64 / 1e9,
                    fuel: counters.fuel.load(Ordering::Relaxed),
                }
            })
            .collect();
        stats.sort_by_key(|s| s.digest.to_string());
        stats
    }

    /// Runs `input` through a loaded transform and returns its checked output: the same
    /// number of rows, exactly the signature's output columns, valid UTF-8, nulls only
    /// where declared nullable.
    pub fn call(&self, digest: &Digest, input: &Batch) -> Result<Batch, RunError> {
        let loaded = self.get(digest)?;
        validate::check_batch(input, &loaded.signature.inputs).map_err(RunError::BadInput)?;
        let bytes = batch::size_in_guest(input);
        // Arguments are copied into guest memory, which must also hold the output.
        let limit = self.config.max_memory_bytes / 2;
        if bytes > limit {
            return Err(RunError::InputTooLarge { bytes, limit });
        }

        let idle = loaded.idle.lock().expect("instance pool poisoned").pop();
        let mut instance = match idle {
            Some(instance) => instance,
            None => self.instantiate(&loaded.pre)?,
        };
        let rows = input.num_rows;
        let budget = self.config.fuel_for(rows);
        instance.arm(budget, self.config.deadline_ticks());
        let started = std::time::Instant::now();
        let result = instance.bindings.call_transform(&mut instance.store, input);
        let stats = &loaded.stats;
        stats.calls.fetch_add(1, Ordering::Relaxed);
        stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
        stats
            .nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let left = instance.store.get_fuel().unwrap_or(0);
        stats
            .fuel
            .fetch_add(budget.saturating_sub(left), Ordering::Relaxed);
        if !matches!(result, Ok(Ok(_))) {
            stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        let output = match result {
            Err(trap) => {
                // The instance is dropped here: never entered again after a trap.
                let state = instance.store.data_mut();
                return Err(classify(trap, state, budget, rows, &self.config));
            }
            Ok(Err(guest_error)) => {
                let error = guest_error_to_run_error(guest_error, rows);
                // A guest error is a normal outcome; a malformed one retires the instance.
                if !matches!(error, RunError::BadOutput(_)) {
                    self.release(&loaded, instance);
                }
                return Err(error);
            }
            Ok(Ok(output)) => output,
        };
        if output.num_rows != rows {
            return Err(RunError::BadOutput(format!(
                "returned {} rows for {rows} input rows",
                output.num_rows
            )));
        }
        validate::check_batch(&output, &loaded.signature.outputs).map_err(RunError::BadOutput)?;
        self.release(&loaded, instance);
        Ok(output)
    }

    /// Runs the signature's sample rows through a loaded transform, whole and in chunks of
    /// [`SMOKE_CHUNKS`], and checks the outputs agree bit for bit. Sample rows the transform
    /// rejects with a row error are left out (the sample is synthetic); traps, malformed
    /// output and state kept between calls are failures.
    pub fn smoke_test(&self, digest: &Digest) -> Result<SmokeReport, LoadError> {
        let loaded = self.get(digest).map_err(LoadError::SmokeRun)?;
        let mut input = sample::sample_batch(&loaded.signature.inputs, SMOKE_ROWS);
        let (mut rejected_rows, mut first_rejection) = (0, None);
        if let Err(RunError::GuestRows(errors)) = self.call(digest, &input) {
            rejected_rows = errors.len();
            first_rejection = errors.first().map(|(row, msg)| format!("row {row}: {msg}"));
            let rejected: std::collections::HashSet<u32> =
                errors.iter().map(|(row, _)| *row).collect();
            let kept: Vec<usize> = (0..input.num_rows)
                .filter(|row| !rejected.contains(row))
                .map(|row| row as usize)
                .collect();
            input = batch::take(&input, &kept);
        }
        let output = self.check_row_wise(digest, &input, &SMOKE_CHUNKS)?;
        Ok(SmokeReport {
            input,
            output,
            rejected_rows,
            first_rejection,
        })
    }

    /// Calls the transform on `input` whole, then in chunks of each size, and checks every
    /// concatenation equals the whole output bit for bit. Returns the whole output.
    pub fn check_row_wise(
        &self,
        digest: &Digest,
        input: &Batch,
        chunk_sizes: &[u32],
    ) -> Result<Batch, LoadError> {
        let whole = self.call(digest, input).map_err(LoadError::SmokeRun)?;
        let rows = input.num_rows as usize;
        if rows == 0 {
            // Nothing to split (e.g. every sample row was rejected with a row error).
            return Ok(whole);
        }
        for &chunk in chunk_sizes {
            let parts = (0..rows)
                .step_by(chunk.max(1) as usize)
                .map(|start| {
                    let end = (start + chunk as usize).min(rows);
                    self.call(digest, &batch::slice(input, start..end))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(LoadError::SmokeRun)?;
            if let Some(difference) = batch::first_difference(&whole, &batch::concat(&parts)) {
                return Err(LoadError::NotRowWise {
                    rows: input.num_rows,
                    chunk,
                    difference,
                });
            }
        }
        Ok(whole)
    }

    fn get(&self, digest: &Digest) -> Result<Arc<Loaded>, RunError> {
        self.transforms
            .read()
            .expect("transform table poisoned")
            .get(digest)
            .cloned()
            .ok_or(RunError::NotLoaded(*digest))
    }

    /// A fresh instance. When the pooling allocator has no free slot, the idle instances of
    /// every transform are dropped and the instantiation tried once more; if that fails too
    /// the runtime is busy (retryable).
    fn instantiate(&self, pre: &FeatureTransformPre<GuestState>) -> Result<Instance, RunError> {
        match self.try_instantiate(pre) {
            Err(RunError::Internal(_)) => {
                self.drop_idle_instances();
                self.try_instantiate(pre).map_err(|error| match error {
                    RunError::Internal(message) => RunError::Busy(message),
                    other => other,
                })
            }
            result => result,
        }
    }

    fn try_instantiate(&self, pre: &FeatureTransformPre<GuestState>) -> Result<Instance, RunError> {
        let state = GuestState::new(self.config.max_memory_bytes, self.config.max_table_elements);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state);
        store.epoch_deadline_trap();
        // Instantiation runs the guest's start code: it is metered like a call.
        let budget = self.config.fuel_per_call;
        store
            .set_fuel(budget)
            .map_err(|e| RunError::Internal(error_chain(&e)))?;
        store.set_epoch_deadline(self.config.deadline_ticks());
        match pre.instantiate(&mut store) {
            Ok(bindings) => Ok(Instance { store, bindings }),
            Err(e) => Err(classify(e, store.data_mut(), budget, 0, &self.config)),
        }
    }

    /// Frees every idle instance's pool slot (and memory); the next calls instantiate anew.
    fn drop_idle_instances(&self) {
        let transforms = self.transforms.read().expect("transform table poisoned");
        for loaded in transforms.values() {
            loaded.idle.lock().expect("instance pool poisoned").clear();
        }
    }

    fn release(&self, loaded: &Loaded, instance: Instance) {
        let mut idle = loaded.idle.lock().expect("instance pool poisoned");
        if idle.len() < self.config.max_idle_instances_per_transform {
            idle.push(instance);
        }
    }
}

impl Instance {
    /// Refills fuel, re-arms the deadline (it counts from when it is set) and clears the
    /// last panic message before a call.
    fn arm(&mut self, fuel: u64, deadline_ticks: u64) {
        self.store
            .set_fuel(fuel)
            .expect("fuel is enabled in the engine config");
        self.store.set_epoch_deadline(deadline_ticks);
        self.store.data_mut().panic_message = None;
    }
}

/// Accepts only the component encoding (`\0asm` + layer 1), naming what else it is.
fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    const COMPONENT: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
    const CORE_MODULE: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(LoadError::NotWasm);
    }
    match &bytes[4..8] {
        layer if layer == COMPONENT => Ok(()),
        layer if layer == CORE_MODULE => Err(LoadError::CoreModule),
        _ => Err(LoadError::Invalid(format!(
            "unsupported WebAssembly version/layer bytes {:02x?}",
            &bytes[4..8]
        ))),
    }
}

/// Turns a wasmtime failure into a typed error, using what the store saw (limiter, panic hook).
fn classify(
    error: wasmtime::Error,
    state: &mut GuestState,
    budget: u64,
    rows: u32,
    config: &RuntimeConfig,
) -> RunError {
    if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
        return RunError::ResourceLimit {
            resource: limit.resource,
            requested: limit.requested,
            limit: limit.limit,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => RunError::OutOfFuel { budget, rows },
        Some(Trap::Interrupt) => RunError::Timeout(config.call_timeout()),
        Some(Trap::StackOverflow) => RunError::StackOverflow,
        Some(trap) => match state.panic_message.take() {
            Some(message) => RunError::Panic(message),
            None => RunError::Trap(trap.to_string()),
        },
        None => RunError::Internal(error_chain(&error)),
    }
}

fn guest_error_to_run_error(error: TransformError, rows: u32) -> RunError {
    match error {
        TransformError::InvalidInput(message) => RunError::GuestInvalidInput(message),
        TransformError::Failed(message) => RunError::GuestFailed(message),
        TransformError::Rows(errors) if errors.is_empty() => {
            RunError::BadOutput("reported row errors but listed no rows".to_owned())
        }
        TransformError::Rows(errors) => match errors.iter().find(|e| e.row >= rows) {
            Some(bad) => RunError::BadOutput(format!(
                "reported an error for row {} of a {rows}-row batch",
                bad.row
            )),
            None => RunError::GuestRows(errors.into_iter().map(|e| (e.row, e.message)).collect()),
        },
    }
}

/// A wasmtime error and its causes on one line.
fn error_chain(error: &wasmtime::Error) -> String {
    error
        .chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// Advances the engine's epoch on a timer so epoch deadlines fire; stops with the runtime.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: &Engine, tick: std::time::Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("lockstep-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .expect("spawn the epoch ticker thread");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> Runtime {
        Runtime::new(RuntimeConfig {
            max_instances: 4,
            ..RuntimeConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn rejects_what_is_not_a_component() {
        let runtime = runtime();
        assert_eq!(runtime.load(b"").unwrap_err(), LoadError::NotWasm);
        assert_eq!(
            runtime.load(b"\0asm\x01\0\0\0").unwrap_err(),
            LoadError::CoreModule
        );
        assert!(matches!(
            runtime.load(b"\0asm\x0d\0\x01\0garbage").unwrap_err(),
            LoadError::Invalid(_)
        ));
        let huge = vec![0u8; runtime.config().max_component_bytes + 1];
        assert!(matches!(
            runtime.load(&huge).unwrap_err(),
            LoadError::TooLarge { .. }
        ));
    }

    #[test]
    fn calls_to_unknown_digests_are_typed() {
        let digest = Digest::of(b"nothing");
        let batch = Batch {
            num_rows: 0,
            columns: vec![],
        };
        assert_eq!(
            runtime().call(&digest, &batch).unwrap_err(),
            RunError::NotLoaded(digest)
        );
    }
}
