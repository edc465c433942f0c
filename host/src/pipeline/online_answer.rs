//! An online request's answer, in Arrow: one column per join key and per feature asked,
//! with Feast's status and the event time of every value. `api` serializes it.

use arrow::array::ArrayRef;
use serde::{Deserialize, Serialize};

/// How a value was found, as Feast reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Present,
    NotFound,
    NullValue,
    OutsideMaxAge,
}

/// One output column: a join key or a feature.
#[derive(Debug, Clone)]
pub struct OnlineColumn {
    pub name: String,
    pub values: ArrayRef,
    pub statuses: Vec<Status>,
    /// µs since the Unix epoch: the value's event time (0 for join keys and on-demand
    /// features).
    pub event_ts: Vec<i64>,
}

/// The answer: join keys first, then the features in the order asked.
#[derive(Debug, Clone)]
pub struct OnlineFeatures {
    pub columns: Vec<OnlineColumn>,
    /// How many of the columns are join keys.
    pub join_keys: usize,
}

impl Status {
    /// Every status, in the order of their discriminants.
    pub const ALL: [Status; 4] = [
        Status::Present,
        Status::NotFound,
        Status::NullValue,
        Status::OutsideMaxAge,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Present => "PRESENT",
            Status::NotFound => "NOT_FOUND",
            Status::NullValue => "NULL_VALUE",
            Status::OutsideMaxAge => "OUTSIDE_MAX_AGE",
        }
    }
}
