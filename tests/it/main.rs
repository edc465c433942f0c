//! Lockstep's integration tests, one binary so the workspace links it once.

mod backfill;
mod hostile;
mod online;
mod point_in_time;
mod registry_api;
mod row_wise;
