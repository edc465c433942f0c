//! Host-side bindings generated from `wit/`: the batch types and the `feature-transform` world.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "feature-transform",
    additional_derives: [PartialEq],
});

pub use lockstep::transform::types::{Column, DataType, Field, RowError, Utf8Values, Values};

/// The imports a transform may have, as the component model names them: the `host`
/// functions and the `types` interface (types only, no functions).
pub const ALLOWED_IMPORTS: [&str; 2] = [
    "lockstep:transform/host@0.1.0",
    "lockstep:transform/types@0.1.0",
];
