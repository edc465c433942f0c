//! Compiles an uploaded component in a child process first (`lockstep compile-worker`, the
//! same executable) under a wall-clock and a memory limit. Wasmtime's compiler cannot be
//! interrupted in-process, so a compile bomb is stopped there: the child is killed at the
//! deadline (freeing the upload's slot at once) or runs out of its memory limit, and the
//! server never compiles it. A component the child compiled within the limits is then
//! compiled in the server as usual (no precompiled artifact crosses the process boundary,
//! so nothing is deserialized and no unsafe code is needed).

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{Runtime, RuntimeConfig, check_header};
use lockstep_model::Digest;

/// The hidden subcommand the worker runs as.
pub const WORKER_COMMAND: &str = "compile-worker";

/// Exit code of a worker whose compile finished, successfully or with a compile error
/// (the server compiles again and reports which).
const COMPILED: i32 = 0;
/// Exit code of a worker that could not even start compiling.
const UNUSABLE: i32 = 3;

/// How long the poll of a running worker sleeps.
const POLL: Duration = Duration::from_millis(5);

/// Where the worker is and what it may use.
#[derive(Debug, Clone)]
pub struct CompileLimits {
    /// The `lockstep` executable to run as the worker.
    pub worker: PathBuf,
    /// Wall-clock limit of the compile.
    pub timeout: Duration,
    /// Heap (`RLIMIT_DATA`) limit of the worker, in bytes.
    pub max_memory_bytes: u64,
}

/// Why a component was not compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileCheckError {
    #[error("compiling the component took longer than {0:?}: the compile was stopped")]
    Timeout(Duration),
    #[error(
        "compiling the component needed more than the {} MiB allowed: the compile was stopped",
        .0 >> 20
    )]
    Memory(u64),
    #[error("the compile worker could not run: {0}")]
    Worker(String),
}

impl Runtime {
    /// What an upload does before [`Runtime::load`]: compiles `bytes` in a worker process
    /// within `limits`, unless `load` will answer without compiling (too large, not a
    /// component, already loaded).
    pub fn compile_in_child_first(
        &self,
        limits: &CompileLimits,
        bytes: &[u8],
    ) -> Result<(), CompileCheckError> {
        let answered_without_compiling = bytes.len() > self.config.max_component_bytes
            || check_header(bytes).is_err()
            || self.signature(&Digest::of(bytes)).is_some();
        if answered_without_compiling {
            return Ok(());
        }
        check_in_child(limits, &self.config, bytes)
    }
}

/// Compiles `bytes` in a worker process with `config`'s engine settings, within `limits`.
/// Blocks the calling thread (run it off the async threads) until the worker ends or is
/// killed at the deadline.
fn check_in_child(
    limits: &CompileLimits,
    config: &RuntimeConfig,
    bytes: &[u8],
) -> Result<(), CompileCheckError> {
    let worker_error = |e: &dyn std::fmt::Display| CompileCheckError::Worker(e.to_string());
    let settings = serde_json::to_string(config).map_err(|e| worker_error(&e))?;
    let started = Instant::now();
    let mut child = Command::new(&limits.worker)
        .arg(WORKER_COMMAND)
        .arg("--max-memory-bytes")
        .arg(limits.max_memory_bytes.to_string())
        .arg("--cpu-seconds")
        .arg(cpu_seconds(limits.timeout).to_string())
        .arg("--runtime-config")
        .arg(settings)
        // One malloc arena per thread would reserve far more than the heap it uses.
        .env("MALLOC_ARENA_MAX", "2")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| worker_error(&format!("{}: {e}", limits.worker.display())))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let status = std::thread::scope(|scope| {
        // The component goes in while the worker runs (a pipe holds far less than it).
        scope.spawn(move || {
            let _ = stdin.write_all(bytes);
        });
        let said = scope.spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let status = wait_until(&mut child, started + limits.timeout);
        (status, said.join().unwrap_or_default())
    });
    match status {
        (Ok(None), _) => Err(CompileCheckError::Timeout(limits.timeout)),
        (Ok(Some(status)), _) if status.code() == Some(COMPILED) => Ok(()),
        (Ok(Some(status)), said) if status.code() == Some(UNUSABLE) => {
            Err(worker_error(&said.trim()))
        }
        (Ok(Some(status)), said) => {
            tracing::warn!(%status, said = said.trim(), "the compile worker failed");
            Err(CompileCheckError::Memory(limits.max_memory_bytes))
        }
        (Err(e), _) => Err(worker_error(&e)),
    }
}

/// The worker's CPU-time backstop: every core busy for the whole wall-clock limit, and a
/// second more, so it never fires before the parent's deadline.
fn cpu_seconds(timeout: Duration) -> u64 {
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as u64;
    timeout.as_secs().saturating_add(1).saturating_mul(cores)
}

/// Waits for `child` until `deadline`; past it, kills the child and returns `None`.
fn wait_until(
    child: &mut std::process::Child,
    deadline: Instant,
) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// The worker's side: limits itself, reads a component from stdin, compiles it with the
/// engine settings of `runtime_config` (a JSON [`RuntimeConfig`]) and exits with
/// [`COMPILED`] whether or not the compile succeeded; [`UNUSABLE`] when it could not start.
/// Running out of memory aborts the process.
pub fn worker_main(max_memory_bytes: u64, cpu_seconds: u64, runtime_config: &str) -> i32 {
    let unusable = |what: &str, error: &dyn std::fmt::Display| {
        eprintln!("{what}: {error}");
        UNUSABLE
    };
    if let Err(e) = limit_self(max_memory_bytes, cpu_seconds) {
        return unusable("cannot set the worker's limits", &e);
    }
    let config: RuntimeConfig = match serde_json::from_str(runtime_config) {
        Ok(config) => config,
        Err(e) => return unusable("invalid runtime settings", &e),
    };
    // One instance slot: the engine's code-generation settings, without reserving the
    // server's pools.
    let config = RuntimeConfig {
        max_instances: 1,
        ..config
    };
    let engine = match super::config::engine(&config) {
        Ok(engine) => engine,
        Err(e) => return unusable("cannot build the engine", &e),
    };
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin()
        .take(config.max_component_bytes as u64 + 1)
        .read_to_end(&mut bytes)
    {
        return unusable("cannot read the component", &e);
    }
    // Success or a compile error alike: the compile ended within the limits.
    let _ = wasmtime::component::Component::new(&engine, &bytes);
    COMPILED
}

/// Caps the worker's heap (private writable mappings: what compiling allocates) and its
/// CPU time (a backstop to the parent's wall clock).
fn limit_self(max_memory_bytes: u64, cpu_seconds: u64) -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let limit = |value: u64| Rlimit {
        current: Some(value),
        maximum: Some(value),
    };
    setrlimit(Resource::Data, limit(max_memory_bytes))?;
    setrlimit(Resource::Cpu, limit(cpu_seconds.max(1)))?;
    Ok(())
}

// The error taxonomy's view of a compile check (`lockstep_model::Classify`).

impl lockstep_model::Classify for CompileCheckError {
    fn code(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "compile_timeout",
            Self::Memory(_) => "compile_memory_limit",
            Self::Worker(_) => "internal",
        }
    }

    /// Over the deadline: the machine may be busy, retry later; over the memory limit: the
    /// component is refused; a worker that cannot run is a bug.
    fn kind(&self) -> lockstep_model::ErrorKind {
        use lockstep_model::ErrorKind;
        match self {
            Self::Timeout(_) => ErrorKind::Unavailable,
            Self::Memory(_) => ErrorKind::Refused,
            Self::Worker(_) => ErrorKind::Internal,
        }
    }
}
