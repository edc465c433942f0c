//! Lockstep's integration tests, one binary so the workspace links it once.

mod hostile;
mod registry_api;
mod row_wise;
