//! A feature view's time-window aggregations as resolved from its definition: the tile
//! size, how late an event may arrive, and each aggregate (function, input column, window).
//! The engine that computes them, offline and online alike, is `crate::aggregate`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{FieldSpec, ValueType};

/// What an aggregate computes over the events of its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateFunction {
    /// Events (without a column) or non-null values of the column; 0 when none.
    Count,
    /// Sum of the non-null values; 0 when none. Int64 sums wrap on overflow.
    Sum,
    /// Mean of the non-null values as float64; null when none.
    Mean,
    /// Smallest non-null value; null when none.
    Min,
    /// Largest non-null value; null when none.
    Max,
    /// The non-null value of the latest event (greatest event time, then created time).
    Last,
    /// Number of distinct non-null values, exact; 0 when none.
    CountDistinct,
}

impl AggregateFunction {
    pub const ALL: [AggregateFunction; 7] = [
        AggregateFunction::Count,
        AggregateFunction::Sum,
        AggregateFunction::Mean,
        AggregateFunction::Min,
        AggregateFunction::Max,
        AggregateFunction::Last,
        AggregateFunction::CountDistinct,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AggregateFunction::Count => "count",
            AggregateFunction::Sum => "sum",
            AggregateFunction::Mean => "mean",
            AggregateFunction::Min => "min",
            AggregateFunction::Max => "max",
            AggregateFunction::Last => "last",
            AggregateFunction::CountDistinct => "count_distinct",
        }
    }

    /// The column types the function takes; `None` input (no column) only for `count`.
    pub fn accepts(self, input: ValueType) -> bool {
        match self {
            AggregateFunction::Sum | AggregateFunction::Mean => {
                matches!(input, ValueType::Int64 | ValueType::Float64)
            }
            AggregateFunction::Min | AggregateFunction::Max => input != ValueType::Boolean,
            AggregateFunction::Count
            | AggregateFunction::Last
            | AggregateFunction::CountDistinct => true,
        }
    }

    /// The type of the result over an input of type `input` (none for counting events).
    pub fn output_type(self, input: Option<ValueType>) -> ValueType {
        match self {
            AggregateFunction::Count | AggregateFunction::CountDistinct => ValueType::Int64,
            AggregateFunction::Mean => ValueType::Float64,
            AggregateFunction::Sum
            | AggregateFunction::Min
            | AggregateFunction::Max
            | AggregateFunction::Last => input.unwrap_or(ValueType::Int64),
        }
    }
}

impl fmt::Display for AggregateFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AggregateFunction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AggregateFunction::ALL
            .into_iter()
            .find(|function| function.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown aggregation function `{s}`; expected one of count, sum, mean, min, \
                     max, last, count_distinct"
                )
            })
    }
}

/// One aggregate feature of a view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregate {
    /// The feature's name.
    pub name: String,
    pub function: AggregateFunction,
    /// The aggregated column (a transform output or a source column); `None` counts events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<FieldSpec>,
    /// The window in seconds, a multiple of the granularity; `None` for the whole history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u64>,
}

impl Aggregate {
    /// The feature this aggregate produces. Every aggregate is nullable: an entity without
    /// events has no value.
    pub fn output(&self) -> FieldSpec {
        FieldSpec {
            name: self.name.clone(),
            value_type: self
                .function
                .output_type(self.column.as_ref().map(|c| c.value_type)),
            nullable: true,
        }
    }
}

/// The aggregations of one feature view.
///
/// Time is cut into tiles of `granularity_seconds` (tile `k` holds events with
/// `k·g <= event_ts < (k+1)·g`). As of time `t`, a window of `w` seconds covers the `w/g`
/// tiles ending with `t`'s own tile, counting only events at or before `t`: the events with
/// `event_ts <= t` and `event_ts >= (tile(t) + 1)·g − w`. So it never reaches further back
/// than `w`, and leaves out at most one granularity of its oldest events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregationSpec {
    pub granularity_seconds: u64,
    /// An event older than its key's newest event by more than this is refused by push
    /// (counted and reported); below it, events may arrive in any order.
    pub allowed_lateness_seconds: u64,
    pub aggregates: Vec<Aggregate>,
}

impl AggregationSpec {
    /// The columns the events keep: each aggregated column once, in order of first use.
    pub fn inputs(&self) -> Vec<FieldSpec> {
        let mut inputs: Vec<FieldSpec> = Vec::new();
        for column in self.aggregates.iter().filter_map(|a| a.column.as_ref()) {
            if inputs.iter().all(|seen| seen.name != column.name) {
                inputs.push(column.clone());
            }
        }
        inputs
    }

    /// The features, one per aggregate, in order.
    pub fn outputs(&self) -> Vec<FieldSpec> {
        self.aggregates.iter().map(Aggregate::output).collect()
    }

    /// The longest finite window, in seconds (0 when every window is the lifetime).
    pub fn longest_window_seconds(&self) -> u64 {
        self.aggregates
            .iter()
            .filter_map(|a| a.window_seconds)
            .max()
            .unwrap_or(0)
    }

    /// Whether some aggregate covers the whole history.
    pub fn has_lifetime(&self) -> bool {
        self.aggregates.iter().any(|a| a.window_seconds.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_round_trip_their_names_and_type_their_outputs() {
        for function in AggregateFunction::ALL {
            assert_eq!(function.as_str().parse::<AggregateFunction>(), Ok(function));
        }
        assert!("median".parse::<AggregateFunction>().is_err());
        assert_eq!(
            AggregateFunction::Mean.output_type(Some(ValueType::Int64)),
            ValueType::Float64
        );
        assert_eq!(
            AggregateFunction::Max.output_type(Some(ValueType::Timestamp)),
            ValueType::Timestamp
        );
        assert_eq!(AggregateFunction::Count.output_type(None), ValueType::Int64);
        assert!(!AggregateFunction::Sum.accepts(ValueType::Utf8));
        assert!(AggregateFunction::CountDistinct.accepts(ValueType::Utf8));
    }
}
