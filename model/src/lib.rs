//! The data model every Lockstep crate shares: transform digests, value types and their
//! canonical Arrow types, typed fields, the checks a stored row passes, safe echo of outside
//! text, and the error taxonomy ([`ErrorKind`], [`Classify`]) every error type implements.

mod digest;
mod error;
pub mod random;
pub mod text;
mod valid_rows;

pub use digest::{Digest, InvalidDigest};
pub use error::{Classify, ErrorKind};
pub use valid_rows::{InvalidValue, MAX_TIMESTAMP_MICROS, MIN_TIMESTAMP_MICROS, check_rows};

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

/// The type of a column or feature value. `Timestamp` is microseconds since the Unix
/// epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    Int64,
    Float64,
    Utf8,
    Boolean,
    Timestamp,
}

impl ValueType {
    pub const ALL: [ValueType; 5] = [
        ValueType::Int64,
        ValueType::Float64,
        ValueType::Utf8,
        ValueType::Boolean,
        ValueType::Timestamp,
    ];

    /// The name used in definitions files, signatures and errors.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Int64 => "int64",
            ValueType::Float64 => "float64",
            ValueType::Utf8 => "utf8",
            ValueType::Boolean => "boolean",
            ValueType::Timestamp => "timestamp",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ValueType {
    type Err = String;

    /// Accepts the canonical names and the common aliases `string`, `bool`, `int`, `float`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "int64" | "int" => Ok(ValueType::Int64),
            "float64" | "float" | "double" => Ok(ValueType::Float64),
            "utf8" | "string" => Ok(ValueType::Utf8),
            "boolean" | "bool" => Ok(ValueType::Boolean),
            "timestamp" => Ok(ValueType::Timestamp),
            other => Err(format!(
                "unknown type `{other}`; expected one of int64, float64, utf8, boolean, timestamp"
            )),
        }
    }
}

/// A timestamp (µs since the Unix epoch) as RFC 3339 UTC, e.g. `2026-01-01T07:24:00Z`, with
/// six fraction digits when it is not a whole second. Times beyond chrono's range (±262,000
/// years; no storable time comes near) render as its nearest bound.
pub fn format_timestamp(micros: i64) -> String {
    use chrono::{DateTime, Datelike, Timelike, Utc};
    let time = DateTime::from_timestamp_micros(micros).unwrap_or(if micros < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    });
    let fraction = match time.timestamp_subsec_micros() {
        0 => String::new(),
        fraction => format!(".{fraction:06}"),
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}Z",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

/// Whether a value whose event time is `event_ts` is still valid at `t` under `ttl_seconds`
/// (all µs): the point-in-time rule `event_ts >= t - ttl`, which the offline join, online
/// reads (`OUTSIDE_MAX_AGE`) and aggregates all apply.
pub fn within_ttl(event_ts: i64, t: i64, ttl_seconds: Option<u64>) -> bool {
    ttl_seconds
        .is_none_or(|ttl| event_ts >= t.saturating_sub((ttl as i64).saturating_mul(1_000_000)))
}

/// Now, in µs since the Unix epoch.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Parses a time as written by people and JSON clients: RFC 3339
/// (`2026-01-05T12:00:00Z`, `2026-01-05 12:00:00.5+01:00`; no offset means UTC) or a bare
/// date (`2026-01-05`, midnight UTC). Returns µs since the Unix epoch.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let trimmed = text.trim();
    let full = if trimmed.len() == 10 {
        format!("{trimmed}T00:00:00Z")
    } else {
        trimmed.to_owned()
    };
    arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(&full)
        .map(|nanos| nanos.div_euclid(1_000))
        .map_err(|_| {
            format!(
                "`{text}` is not a time: use RFC 3339 (2026-01-05T12:00:00Z) or a date (2026-01-05)"
            )
        })
}

/// A named, typed column: a transform input or output, a source column, a feature.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub value_type: ValueType,
    pub nullable: bool,
}

impl fmt::Display for FieldSpec {
    /// `name type`, with `?` after the type when nullable: `rating float64?`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let null = if self.nullable { "?" } else { "" };
        write!(f, "{} {}{null}", self.name, self.value_type)
    }
}

/// The Arrow type every layer uses for a value type: timestamps are µs in UTC.
pub fn arrow_type(value_type: ValueType) -> DataType {
    match value_type {
        ValueType::Int64 => DataType::Int64,
        ValueType::Float64 => DataType::Float64,
        ValueType::Utf8 => DataType::Utf8,
        ValueType::Boolean => DataType::Boolean,
        ValueType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

/// The Arrow field of `field`: its canonical type and nullability.
pub fn arrow_field(field: &FieldSpec) -> Field {
    Field::new(&field.name, arrow_type(field.value_type), field.nullable)
}

/// The Arrow schema of `fields`, in order.
pub fn arrow_schema(fields: &[FieldSpec]) -> SchemaRef {
    Arc::new(Schema::new(
        fields.iter().map(arrow_field).collect::<Vec<_>>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_rfc3339_utc() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_timestamp(1_767_225_600_000_000),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            format_timestamp(951_782_400_000_001),
            "2000-02-29T00:00:00.000001Z"
        );
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999999Z");
    }
}
