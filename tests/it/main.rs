//! Lockstep's integration tests, one binary so the workspace links it once.

mod aggregations;
mod audit;
mod backfill;
mod cli;
mod contention;
mod demo;
mod example_readme;
mod feast_client;
mod fraud;
mod hostile;
mod layers;
mod offline_store;
mod online;
mod online_store;
mod openapi;
mod parity;
mod point_in_time;
mod projects;
mod registry_api;
mod registry_outage;
mod row_wise;
mod scaffold;
mod security;
mod skew;
mod slow_guest;
mod training_labels;
