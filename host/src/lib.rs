//! Lockstep host: runs feature transforms (WebAssembly components) identically for training
//! and serving. See ARCHITECTURE.md for the module map and invariants.

pub mod cli;
pub mod datagen;
pub mod model;
pub mod runtime;
pub mod toolchain;
