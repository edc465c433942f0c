//! The only crate that depends on wasmtime: loads transform components and calls them on
//! Arrow record batches.
//!
//! Callers speak Arrow and the model's [`FieldSpec`]; the WIT contract's batch types stay
//! inside this crate (`bindings`, converted by `arrow`). The contract lays columns out as
//! Arrow does, so an input's buffers are lent to the call as they are and copied once, into
//! guest memory; an output's buffers become the Arrow arrays' without another copy. [`Runtime::call`] maps a record
//! batch to a record batch, [`Runtime::call_keeping`] also drops the rows a transform
//! rejects and says which it kept, and [`Runtime::blocking`] is how async code runs either:
//! on the blocking pool, never on an async worker thread.
//!
//! A transform is known by the [`Digest`] of its component bytes. [`Runtime::load`] compiles
//! a component once, checks it implements the `feature-transform` world and imports nothing
//! else, and caches it; [`Runtime::call`] runs one batch through it under fuel, an epoch
//! deadline and memory/table/stack caps, then checks the output against the signature.
//!
//! Every call runs on fresh guest state: a new instance in a new `Store`, from the pooling
//! allocator's copy-on-write memory image, dropped when the call returns. Nothing a guest
//! keeps (a counter in a static, a cache, leaked memory) survives into the next call, so a
//! one-row online call and a batch call see the same guest. [`row_wise`] checks the rest of
//! the row-wise contract: at upload over adversarial batch shapes, and on samples of the
//! rows of later calls; a transform caught is quarantined ([`Runtime::quarantine`]).

mod arrow;
mod batch;
mod bindings;
pub mod compile;
mod config;
mod error;
mod keep;
pub mod row_wise;
mod sample;
mod state;
mod validate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use wasmtime::component::{Component, ComponentExportIndex, HasSelf, InstancePre, Linker};
use wasmtime::{Engine, Store, Trap};

use ::arrow::array::RecordBatch;
use lockstep_model::{Digest, FieldSpec};

pub use config::RuntimeConfig;
pub use error::{LoadError, RunError};
pub use keep::{Kept, Recheck};
pub use row_wise::{SmokeReport, UPLOAD_SHAPES};

use bindings::{
    ALLOWED_IMPORTS, Batch, BatchIn, CONTRACT_VERSION, FeatureTransform, FeatureTransformIndices,
    TransformError,
};
use error::truncate;
use state::{GuestState, LimitExceeded};

/// Longest message kept from a guest's own error; the rest is cut.
const MAX_GUEST_MESSAGE_BYTES: usize = 1024;

/// The wasm runtime of one host: one engine, one linker and every loaded transform.
pub struct Runtime {
    engine: Engine,
    linker: Linker<GuestState>,
    config: RuntimeConfig,
    transforms: RwLock<HashMap<Digest, Arc<Loaded>>>,
    /// Transforms caught breaking the row-wise contract, with why: never run again.
    quarantined: RwLock<HashMap<Digest, String>>,
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

/// What a transform declares it reads and writes; every call is checked against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub name: String,
    pub version: String,
    pub inputs: Vec<FieldSpec>,
    pub outputs: Vec<FieldSpec>,
}

/// A compiled, checked transform.
struct Loaded {
    pre: InstancePre<GuestState>,
    /// The `transform` export, found once.
    transform: ComponentExportIndex,
    signature: Signature,
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
    rows_rechecked: AtomicU64,
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
    /// Rows re-run alone by row-wise re-checks.
    pub rows_rechecked: u64,
    /// Quarantined: caught breaking the row-wise contract.
    pub is_unsafe: bool,
}

/// A fresh instance in its own store, for one call.
struct Instance {
    store: Store<GuestState>,
    instance: wasmtime::component::Instance,
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
            quarantined: RwLock::default(),
            _ticker: ticker,
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Compiles and checks a component, caching it by digest; loading the same bytes again is
    /// free. Rejects anything that is not a component of the `feature-transform` world with
    /// no imports but `lockstep:transform/host`, or whose signature is malformed; a
    /// component of another contract version is told so (`outdated_contract`: rebuild it).
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
        let component_type = component.component_type();
        let imports: Vec<&str> = component_type
            .imports(&self.engine)
            .map(|(name, _)| name)
            .collect();
        if let Some(version) = imports
            .iter()
            .find_map(|name| bindings::other_contract_version(name))
        {
            return Err(LoadError::other_contract(version, CONTRACT_VERSION));
        }
        if let Some(name) = imports.iter().find(|name| !ALLOWED_IMPORTS.contains(name)) {
            return Err(LoadError::ForbiddenImport {
                name: (*name).to_owned(),
            });
        }
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld(error_chain(&e));
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(wrong_world)?;
        let indices = FeatureTransformIndices::new(&pre).map_err(wrong_world)?;
        let transform = component
            .get_export_index(None, "transform")
            .ok_or_else(|| LoadError::WrongWorld("no `transform` export".to_owned()))?;

        let mut instance = self.instantiate(&pre).map_err(LoadError::SignatureCall)?;
        // Type-checks the exports against the world (the input batch against `BatchIn`).
        let exports = indices
            .load(&mut instance.store, &instance.instance)
            .map_err(wrong_world)?;
        instance.transform(&transform).map_err(wrong_world)?;
        instance.arm(self.config.fuel_per_call, self.config.deadline_ticks());
        let signature = match exports.call_signature(&mut instance.store) {
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
        let signature = bindings::signature(signature);

        let loaded = Arc::new(Loaded {
            pre,
            transform,
            signature: signature.clone(),
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

    /// Forgets a transform (e.g. after it failed its smoke test).
    pub fn unload(&self, digest: &Digest) {
        self.transforms
            .write()
            .expect("transform table poisoned")
            .remove(digest);
    }

    /// The call totals of every loaded transform, by digest.
    pub fn call_stats(&self) -> Vec<CallStats> {
        let transforms = self.transforms.read().expect("transform table poisoned");
        let quarantined = self.quarantined.read().expect("quarantine table poisoned");
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
                    rows_rechecked: counters.rows_rechecked.load(Ordering::Relaxed),
                    is_unsafe: quarantined.contains_key(digest),
                }
            })
            .collect();
        stats.sort_by_key(|s| s.digest.to_string());
        stats
    }

    /// Refuses every later call of `digest` with `transform_unsafe`: it broke the row-wise
    /// contract (a sampled re-check caught it, or the registry says so).
    pub fn quarantine(&self, digest: &Digest, reason: &str) {
        if self.quarantined(digest).is_some() {
            return;
        }
        self.quarantined
            .write()
            .expect("quarantine table poisoned")
            .entry(*digest)
            .or_insert_with(|| truncate(reason.to_owned(), MAX_GUEST_MESSAGE_BYTES));
    }

    /// Why `digest` is quarantined, if it is.
    pub fn quarantined(&self, digest: &Digest) -> Option<String> {
        self.quarantined
            .read()
            .expect("quarantine table poisoned")
            .get(digest)
            .cloned()
    }

    /// Runs `input` through a loaded transform, on a fresh instance, and returns its checked
    /// output: the same number of rows, exactly the signature's output columns (canonical
    /// Arrow types, the signature's nullability), nulls only where declared nullable, within
    /// the output size limit. `input` must hold the signature's input columns, by name, in
    /// their canonical Arrow types; other columns are ignored.
    pub fn call(&self, digest: &Digest, input: &RecordBatch) -> Result<RecordBatch, RunError> {
        let loaded = self.get(digest)?;
        let input = self.to_guest(&loaded, input)?;
        let output = self.call_guest(digest, &input.batch())?;
        Ok(arrow::from_guest(output, &loaded.signature.outputs))
    }

    /// Runs `work` (calls of this runtime) on tokio's blocking pool: the way async code
    /// calls a guest, so a slow guest never holds an async worker thread (and with it
    /// `/health` and every other request on that worker). A panic in `work` is an internal
    /// error.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Runtime) -> Result<T, RunError> + Send + 'static,
    ) -> Result<T, RunError> {
        let runtime = Arc::clone(self);
        tokio::task::spawn_blocking(move || work(&runtime))
            .await
            .unwrap_or_else(|e| {
                Err(RunError::Internal(format!(
                    "a guest call's task failed: {e}"
                )))
            })
    }

    /// The signature's input columns of `input`, ready to lend to the guest.
    fn to_guest<'l>(
        &self,
        loaded: &'l Loaded,
        input: &RecordBatch,
    ) -> Result<arrow::GuestInput<'l>, RunError> {
        arrow::GuestInput::new(input, &loaded.signature.inputs)
            .map_err(|e| RunError::InputColumns(e.to_string()))
    }

    /// [`Runtime::call`] on the guest's own batch types.
    fn call_guest(&self, digest: &Digest, input: &BatchIn<'_>) -> Result<Batch, RunError> {
        if let Some(reason) = self.quarantined(digest) {
            return Err(RunError::Unsafe(reason));
        }
        let loaded = self.get(digest)?;
        validate::check_batch(input, &loaded.signature.inputs).map_err(RunError::BadInput)?;
        let bytes = batch::size_in_guest(input);
        // Arguments are copied into guest memory, which must also hold the output.
        let limit = self.config.max_memory_bytes / 2;
        if bytes > limit {
            return Err(RunError::InputTooLarge { bytes, limit });
        }

        let rows = input.num_rows;
        let budget = self.config.fuel_for(rows);
        let started = std::time::Instant::now();
        let result = self.instantiate(&loaded.pre).and_then(|mut instance| {
            let transform = instance
                .transform(&loaded.transform)
                .map_err(|e| RunError::Internal(error_chain(&e)))?;
            instance.arm(budget, self.config.deadline_ticks());
            let result = transform
                .call(&mut instance.store, (input,))
                .map(|(result,)| result);
            let left = instance.store.get_fuel().unwrap_or(0);
            loaded
                .stats
                .fuel
                .fetch_add(budget.saturating_sub(left), Ordering::Relaxed);
            // The instance is dropped here, whatever happened: the next call starts fresh.
            match result {
                Err(trap) => Err(classify(
                    trap,
                    instance.store.data_mut(),
                    budget,
                    rows,
                    &self.config,
                )),
                Ok(Err(guest_error)) => Err(guest_error_to_run_error(guest_error, rows)),
                Ok(Ok(output)) => Ok(output),
            }
        });
        let stats = &loaded.stats;
        stats.calls.fetch_add(1, Ordering::Relaxed);
        stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
        stats
            .nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let output = result
            .and_then(|output| self.check_output(&loaded, rows, output))
            .inspect_err(|_| {
                stats.failures.fetch_add(1, Ordering::Relaxed);
            })?;
        Ok(output)
    }

    /// The checks every output passes: its size, row count and columns.
    fn check_output(&self, loaded: &Loaded, rows: u32, output: Batch) -> Result<Batch, RunError> {
        let bytes = batch::size_in_guest(&output.borrow());
        let limit = self.config.max_output_bytes;
        if bytes > limit {
            return Err(RunError::OutputTooLarge { bytes, limit });
        }
        if output.num_rows != rows {
            return Err(RunError::BadOutput(format!(
                "returned {} rows for {rows} input rows",
                output.num_rows
            )));
        }
        validate::check_batch(&output.borrow(), &loaded.signature.outputs)
            .map_err(|message| RunError::BadOutput(truncate(message, MAX_GUEST_MESSAGE_BYTES)))?;
        Ok(output)
    }

    /// Counts rows re-run alone by a row-wise re-check.
    fn count_rechecked(&self, digest: &Digest, rows: usize) {
        if let Ok(loaded) = self.get(digest) {
            loaded
                .stats
                .rows_rechecked
                .fetch_add(rows as u64, Ordering::Relaxed);
        }
    }

    fn get(&self, digest: &Digest) -> Result<Arc<Loaded>, RunError> {
        self.transforms
            .read()
            .expect("transform table poisoned")
            .get(digest)
            .cloned()
            .ok_or(RunError::NotLoaded(*digest))
    }

    /// A fresh instance. When the pooling allocator has no free slot (more calls at once
    /// than `max_instances`) the runtime is busy, which is retryable.
    fn instantiate(&self, pre: &InstancePre<GuestState>) -> Result<Instance, RunError> {
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
            Ok(instance) => Ok(Instance { store, instance }),
            Err(e) => match classify(e, store.data_mut(), budget, 0, &self.config) {
                RunError::Internal(message) => Err(RunError::Busy(message)),
                other => Err(other),
            },
        }
    }
}

/// The `transform` export's type as the host calls it: a borrowed batch in, an owned one out.
type TransformFunc<'a> =
    wasmtime::component::TypedFunc<(&'a BatchIn<'a>,), (Result<Batch, TransformError>,)>;

impl Instance {
    /// The instance's `transform` export, type-checked.
    fn transform<'a>(
        &mut self,
        index: &ComponentExportIndex,
    ) -> wasmtime::Result<TransformFunc<'a>> {
        self.instance.get_typed_func(&mut self.store, index)
    }

    /// Gives the call its fuel and arms its deadline (it counts from when it is set).
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
    let cut = |message: String| truncate(message, MAX_GUEST_MESSAGE_BYTES);
    match error {
        TransformError::InvalidInput(message) => RunError::GuestInvalidInput(cut(message)),
        TransformError::Failed(message) => RunError::GuestFailed(cut(message)),
        TransformError::Rows(errors) if errors.is_empty() => {
            RunError::BadOutput("reported row errors but listed no rows".to_owned())
        }
        TransformError::Rows(errors) => match errors.iter().find(|e| e.row >= rows) {
            Some(bad) => RunError::BadOutput(format!(
                "reported an error for row {} of a {rows}-row batch",
                bad.row
            )),
            None => RunError::GuestRows(
                errors
                    .into_iter()
                    .map(|e| (e.row, cut(e.message)))
                    .collect(),
            ),
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
        let batch = RecordBatch::new_empty(Arc::new(::arrow::datatypes::Schema::empty()));
        assert_eq!(
            runtime().call(&digest, &batch).unwrap_err(),
            RunError::NotLoaded(digest)
        );
    }
}
