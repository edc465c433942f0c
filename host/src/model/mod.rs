//! The data model of the host: the shared core of [`lockstep_model`] (digests, value
//! types, fields, row checks, the error taxonomy), plus transform versions and the feature
//! definitions users apply (entities, sources, views, services).

pub mod aggregation;
pub mod definitions;
mod view_table;

pub use lockstep_model::*;
pub use view_table::{CREATED_TS, EVENT_TS, TRANSFORM_DIGEST, ViewTable};

use serde::{Deserialize, Serialize};

/// One immutable version of an uploaded transform, as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformVersion {
    /// The name it was uploaded under (`POST /transforms/{name}`).
    pub name: String,
    /// 1, 2, 3… per name, in upload order; never reused.
    pub version: u32,
    pub digest: Digest,
    /// The name and version the component declares in its own signature.
    pub declared_name: String,
    pub declared_version: String,
    pub inputs: Vec<FieldSpec>,
    pub outputs: Vec<FieldSpec>,
    pub size_bytes: u64,
    /// Upload time, µs since the Unix epoch.
    pub uploaded_at_micros: i64,
    /// Set when the digest was caught breaking the row-wise contract: why. Such a version is
    /// refused for new definitions and never run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsafe_reason: Option<String>,
}
