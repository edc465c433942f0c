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
pub mod random;
pub mod registry;
pub mod runtime;
pub mod source;
pub mod sql_store;
pub mod toolchain;
