//! Event-time windows and chunks: the serializable units of backfill work a plan is made of.

use std::ops::Range;

use arrow::array::temporal_conversions::timestamp_us_to_datetime;
use serde::{Deserialize, Serialize};

/// Half-open event-time window `[from, to)` in µs since the Unix epoch; `None` = unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl TimeWindow {
    /// The window without bounds: every time.
    pub const ALL: TimeWindow = TimeWindow {
        from: None,
        to: None,
    };

    /// Whether `ts` (µs) lies in the window.
    pub fn contains(&self, ts: i64) -> bool {
        self.from.is_none_or(|from| ts >= from) && self.to.is_none_or(|to| ts < to)
    }

    /// Whether the window has neither bound.
    pub fn is_unbounded(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }

    /// Whether the closed range `[min, max]` has a point in the window.
    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        self.from.is_none_or(|from| max >= from) && self.to.is_none_or(|to| min < to)
    }

    /// The half-open `[from, to)` narrowed to the window.
    pub(super) fn clamp(&self, from: i64, to: i64) -> (i64, i64) {
        (
            self.from.map_or(from, |f| f.max(from)),
            self.to.map_or(to, |t| t.min(to)),
        )
    }
}

/// One unit of backfill work, planned up front. Serializable (checkpoints store it as JSON)
/// and described by [`Chunk::describe`] in stable, human-readable words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Chunk {
    /// Consecutive row groups of one Parquet file; `path` as listed (relative to the
    /// context's base directory when the glob was).
    ParquetRowGroups {
        path: String,
        row_groups: Range<usize>,
        rows: u64,
        file_bytes: u64,
    },
    /// One whole CSV file.
    CsvFile { path: String, file_bytes: u64 },
    /// The rows of a Postgres table or query whose `timestamp_field` is in `[from, to)` (µs).
    PostgresRange {
        timestamp_field: String,
        from: i64,
        to: i64,
    },
}

impl Chunk {
    /// `data/watch_events/part-0.parquet row groups 0..4`, `data/movie_metadata.csv`,
    /// `postgres rows with event_timestamp in [2026-01-01T00:00:00Z, 2026-01-02T00:00:00Z)`.
    pub fn describe(&self) -> String {
        match self {
            Chunk::ParquetRowGroups {
                path, row_groups, ..
            } => format!("{path} row groups {}..{}", row_groups.start, row_groups.end),
            Chunk::CsvFile { path, .. } => path.clone(),
            Chunk::PostgresRange {
                timestamp_field,
                from,
                to,
            } => format!(
                "postgres rows with {timestamp_field} in [{}, {})",
                format_micros(*from),
                format_micros(*to)
            ),
        }
    }

    /// The number of rows the chunk holds before window filtering, when known up front
    /// (Parquet only: row-group metadata).
    pub fn estimated_rows(&self) -> Option<u64> {
        match self {
            Chunk::ParquetRowGroups { rows, .. } => Some(*rows),
            Chunk::CsvFile { .. } | Chunk::PostgresRange { .. } => None,
        }
    }
}

/// `ts` (µs since the epoch) as RFC 3339 UTC: `2026-01-01T00:00:00Z`, with a fraction only
/// when there is one; the raw number when out of the calendar's range.
pub(super) fn format_micros(ts: i64) -> String {
    match timestamp_us_to_datetime(ts) {
        Some(time) => time.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string(),
        None => format!("{ts}µs"),
    }
}
