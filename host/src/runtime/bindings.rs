//! Host-side bindings generated from `wit/`: the batch types and the `feature-transform` world.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "feature-transform",
    additional_derives: [PartialEq],
});

pub use lockstep::transform::types::{Column, DataType, Field, RowError, Utf8Values, Values};

/// The one import a transform may have, as the component model names it.
pub const HOST_INTERFACE: &str = "lockstep:transform/host@0.1.0";
