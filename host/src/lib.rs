//! Lockstep host: runs feature transforms (WebAssembly components) identically for training
//! and serving. See ARCHITECTURE.md for the module map and invariants.

pub mod aggregate;
pub mod api;
pub mod cli;
pub mod columnar;
pub mod config;
pub mod datagen;
pub mod endpoint;
pub mod metrics;
pub mod model;
pub mod offline;
pub mod online;
pub mod pipeline;
pub mod registry;
pub mod source;
pub mod sql_store;
pub mod toolchain;

/// The wasm runtime, a crate of its own (the only one that depends on wasmtime).
pub use lockstep_runtime as runtime;
