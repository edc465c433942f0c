//! Lockstep's integration tests, one binary so the workspace links it once.

mod hostile;
mod row_wise;
