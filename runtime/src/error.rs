//! Typed errors of loading and calling transforms, each with a stable code and a retry class.

use std::time::Duration;

use lockstep_model::{Classify, Digest, ErrorKind};

/// Why a component was not accepted. All of these are the uploader's fault: never retry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    #[error("component is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("not a WebAssembly binary (no `\\0asm` header)")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component; build transforms with `lockstep build`"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error(
        "component imports `{name}`; transforms may import only `lockstep:transform/host` (no WASI: no clocks, random, files or network)"
    )]
    ForbiddenImport { name: String },
    #[error(
        "component was built against contract lockstep:transform@{found} (an older SDK); this host runs @{expected}: rebuild it with the current SDK (`lockstep build`)"
    )]
    OutdatedContract {
        found: String,
        expected: &'static str,
    },
    #[error(
        "component was built against contract lockstep:transform@{found} (a newer SDK); this host runs @{expected}: upgrade the host, or build with the SDK of its version"
    )]
    NewerContract {
        found: String,
        expected: &'static str,
    },
    #[error("component does not implement the `lockstep:transform/feature-transform` world: {0}")]
    WrongWorld(String),
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    #[error("calling `signature` failed: {0}")]
    SignatureCall(RunError),
    #[error("smoke run on sample rows failed: {0}")]
    SmokeRun(RunError),
    #[error(
        "transform is not row-wise: {shape}, a row's output differs from the same row called alone (first difference: {difference}); a row's output must depend on that row alone, not on the batch's size, order or other rows"
    )]
    NotRowWise { shape: String, difference: String },
    #[error("runtime failure while loading: {0}")]
    Internal(String),
}

impl LoadError {
    /// The error for a component of contract version `found`, not `expected`: older or
    /// newer, compared number by number.
    pub fn other_contract(found: &str, expected: &'static str) -> Self {
        let numbers = |version: &str| -> Vec<u64> {
            version
                .split(['.', '-', '+'])
                .map_while(|part| part.parse().ok())
                .collect()
        };
        let found_owned = found.to_owned();
        if numbers(found) < numbers(expected) {
            Self::OutdatedContract {
                found: found_owned,
                expected,
            }
        } else {
            Self::NewerContract {
                found: found_owned,
                expected,
            }
        }
    }

    /// False only for host-side failures (e.g. the instance pool is exhausted).
    pub fn is_deterministic(&self) -> bool {
        match self {
            Self::Internal(_) => false,
            Self::SignatureCall(run) | Self::SmokeRun(run) => run.is_deterministic(),
            _ => true,
        }
    }
}

/// Why a call did not produce a valid output batch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    #[error("no transform with digest {0} is loaded")]
    NotLoaded(Digest),
    #[error("input does not match the transform's signature: {0}")]
    BadInput(String),
    /// The record batch given lacks an input column, or holds it in another Arrow type.
    #[error("{0}")]
    InputColumns(String),
    #[error("input batch is about {bytes} bytes, over the {limit}-byte memory limit")]
    InputTooLarge { bytes: usize, limit: usize },
    #[error("transform ran out of fuel (budget {budget} for {rows} rows)")]
    OutOfFuel { budget: u64, rows: u32 },
    #[error("transform exceeded the {0:?} wall-clock deadline")]
    Timeout(Duration),
    #[error("transform tried to grow its {resource} to {requested}, over the limit of {limit}")]
    ResourceLimit {
        resource: &'static str,
        requested: usize,
        limit: usize,
    },
    #[error("transform overflowed its call stack")]
    StackOverflow,
    #[error("transform panicked: {0}")]
    Panic(String),
    #[error("transform trapped: {0}")]
    Trap(String),
    #[error("transform rejected the input: {0}")]
    GuestInvalidInput(String),
    #[error("transform failed on {} row(s); first: row {}: {}", .0.len(), .0[0].0, .0[0].1)]
    GuestRows(Vec<(u32, String)>),
    #[error("transform failed: {0}")]
    GuestFailed(String),
    #[error("transform returned a malformed batch: {0}")]
    BadOutput(String),
    #[error("transform returned about {bytes} bytes, over the {limit}-byte output limit")]
    OutputTooLarge { bytes: usize, limit: usize },
    #[error(
        "transform is not row-wise: row {row} of a {rows}-row batch differs when called alone ({difference}); the version is marked unsafe"
    )]
    NotRowWise {
        row: u32,
        rows: u32,
        difference: String,
    },
    #[error("transform is marked unsafe and is not run: {0}")]
    Unsafe(String),
    #[error("the runtime has no free instance slot (raise runtime.max_instances): {0}")]
    Busy(String),
    #[error("runtime failure: {0}")]
    Internal(String),
}

impl RunError {
    /// Deterministic errors repeat on retry (bad data, guest fault); the others may not
    /// (a deadline under load, the instance pool exhausted, a transform not yet loaded).
    pub fn is_deterministic(&self) -> bool {
        !matches!(
            self,
            Self::NotLoaded(_) | Self::Timeout(_) | Self::Busy(_) | Self::Internal(_)
        )
    }
}

/// `message`, cut to at most `max` bytes (on a character boundary) with `…` and the
/// length it had: guest and client text never grows an error without bound.
pub fn truncate(mut message: String, max: usize) -> String {
    if message.len() <= max {
        return message;
    }
    let length = message.len();
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message.push_str(&format!("… ({length} bytes)"));
    message
}

// The error taxonomy's view of the runtime's errors (`lockstep_model::Classify`): each one's
// stable snake_case code (for wire errors and metrics), and a kind each edge maps in one place.

impl Classify for LoadError {
    fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "component_too_large",
            Self::NotWasm => "not_wasm",
            Self::CoreModule => "not_a_component",
            Self::Invalid(_) => "invalid_component",
            Self::ForbiddenImport { .. } => "forbidden_import",
            Self::OutdatedContract { .. } => "outdated_contract",
            Self::NewerContract { .. } => "newer_contract",
            Self::WrongWorld(_) => "wrong_world",
            Self::InvalidSignature(_) => "invalid_signature",
            Self::SignatureCall(run) | Self::SmokeRun(run) => run.code(),
            Self::NotRowWise { .. } => "transform_not_row_wise",
            Self::Internal(_) => "internal",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::TooLarge { .. } => ErrorKind::TooLarge,
            Self::SignatureCall(run) | Self::SmokeRun(run) => run.kind(),
            Self::Internal(_) => ErrorKind::Internal,
            _ => ErrorKind::Refused,
        }
    }
}

impl Classify for RunError {
    fn code(&self) -> &'static str {
        match self {
            Self::NotLoaded(_) => "transform_not_loaded",
            Self::BadInput(_) | Self::InputColumns(_) => "transform_bad_input",
            Self::InputTooLarge { .. } => "transform_input_too_large",
            Self::OutOfFuel { .. } => "transform_out_of_fuel",
            Self::Timeout(_) => "transform_timeout",
            Self::ResourceLimit { .. } => "transform_memory_limit",
            Self::StackOverflow => "transform_stack_overflow",
            Self::Panic(_) => "transform_panic",
            Self::Trap(_) => "transform_trap",
            Self::GuestInvalidInput(_) => "transform_invalid_input",
            Self::GuestRows(_) => "transform_row_errors",
            Self::GuestFailed(_) => "transform_failed",
            Self::BadOutput(_) => "transform_bad_output",
            Self::OutputTooLarge { .. } => "transform_output_too_large",
            Self::NotRowWise { .. } => "transform_not_row_wise",
            Self::Unsafe(_) => "transform_unsafe",
            Self::Busy(_) => "runtime_busy",
            Self::Internal(_) => "internal",
        }
    }

    /// A guest's fault or bad data is refused (never retry); a busy or slow runtime, or a
    /// transform not loaded yet, is unavailable (retry later); a runtime failure is a bug.
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotLoaded(_) | Self::Timeout(_) | Self::Busy(_) => ErrorKind::Unavailable,
            Self::Internal(_) => ErrorKind::Internal,
            _ => ErrorKind::Refused,
        }
    }
}

impl Classify for super::StartError {
    fn code(&self) -> &'static str {
        "runtime_start_failed"
    }

    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}
