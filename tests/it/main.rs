//! Lockstep's integration tests, one binary so the workspace links it once.

mod aggregations;
mod audit;
mod backfill;
mod contention;
mod demo;
mod feast_client;
mod fraud;
mod hostile;
mod online;
mod openapi;
mod parity;
mod point_in_time;
mod registry_api;
mod registry_outage;
mod row_wise;
mod security;
mod skew;
