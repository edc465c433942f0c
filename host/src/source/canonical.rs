//! The canonical Arrow type of each value type, and the conversions from stored types to it.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow::error::ArrowError;

use crate::model::ValueType;
use crate::model::arrow_type;

/// The time zone of every canonical timestamp column.
pub const UTC: &str = "UTC";

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Why a stored column could not be converted to its declared type.
#[derive(Debug)]
pub(super) enum ConvertError {
    /// The stored type is not accepted for the declared type; the text explains.
    Type(String),
    /// The value at `index` is not a valid value of the declared type.
    Value { index: usize },
    /// A value is out of range of the declared type.
    Range(String),
}

/// The stored types accepted for each declared type, for error messages.
fn accepted(declared: ValueType) -> &'static str {
    match declared {
        ValueType::Int64 => "any integer type",
        ValueType::Float64 => "Float32 or Float64",
        ValueType::Utf8 => "Utf8, LargeUtf8 or Utf8View",
        ValueType::Boolean => "Boolean",
        ValueType::Timestamp => {
            "a timestamp of any unit and time zone (none means UTC), Date32 or Date64"
        }
    }
}

/// Checks that a column stored as `found` can be read as `declared`.
pub(super) fn check_type(found: &DataType, declared: ValueType) -> Result<(), String> {
    let ok = match (found, declared) {
        (DataType::Null, _) => true,
        (DataType::Dictionary(_, values), _) => return check_type(values, declared),
        (found, ValueType::Int64) => found.is_integer(),
        (found, ValueType::Float64) => matches!(found, DataType::Float32 | DataType::Float64),
        (found, ValueType::Utf8) => {
            matches!(
                found,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
        }
        (found, ValueType::Boolean) => found == &DataType::Boolean,
        (found, ValueType::Timestamp) => {
            if found.is_integer() {
                return Err(format!(
                    "is declared timestamp but is stored as {found}, whose unit (seconds? \
                     milliseconds? microseconds?) is ambiguous; store it as a timestamp type"
                ));
            }
            matches!(
                found,
                DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
            )
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "is declared {declared} but is stored as {found}; accepted for {declared}: {}",
            accepted(declared)
        ))
    }
}

/// Converts a stored column to the canonical type of `declared`.
pub(super) fn convert(array: &ArrayRef, declared: ValueType) -> Result<ArrayRef, ConvertError> {
    let target = arrow_type(declared);
    if array.data_type() == &target {
        return Ok(array.clone());
    }
    check_type(array.data_type(), declared).map_err(ConvertError::Type)?;
    let strict = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let range = |e: ArrowError| ConvertError::Range(e.to_string());
    match array.data_type() {
        DataType::Null => Ok(new_null_array(&target, array.len())),
        DataType::Dictionary(_, values) => {
            let plain = cast_with_options(array, values, &strict).map_err(range)?;
            convert(&plain, declared)
        }
        DataType::Timestamp(unit, _) => to_micros(array, *unit).map_err(range),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>();
            let micros: PrimitiveArray<TimestampMicrosecondType> = days
                .try_unary(|day| checked(i64::from(day).checked_mul(MICROS_PER_DAY)))
                .map_err(range)?;
            Ok(Arc::new(micros.with_timezone(UTC)))
        }
        DataType::Date64 => {
            let millis = array.as_primitive::<Date64Type>();
            let micros: PrimitiveArray<TimestampMicrosecondType> = millis
                .try_unary(|ms| checked(ms.checked_mul(1_000)))
                .map_err(range)?;
            Ok(Arc::new(micros.with_timezone(UTC)))
        }
        _ => cast_with_options(array, &target, &strict).map_err(range),
    }
}

/// Rescales timestamps of any unit to microseconds (rounding towards the past). Stored values
/// are instants since the Unix epoch whatever the time zone label, and naive ones are taken
/// as UTC, so only the unit changes.
fn to_micros(array: &ArrayRef, unit: TimeUnit) -> Result<ArrayRef, ArrowError> {
    let micros: PrimitiveArray<TimestampMicrosecondType> = match unit {
        TimeUnit::Second => array
            .as_primitive::<TimestampSecondType>()
            .try_unary(|s| checked(s.checked_mul(1_000_000)))?,
        TimeUnit::Millisecond => array
            .as_primitive::<TimestampMillisecondType>()
            .try_unary(|ms| checked(ms.checked_mul(1_000)))?,
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().clone(),
        TimeUnit::Nanosecond => array
            .as_primitive::<TimestampNanosecondType>()
            .unary(|ns| ns.div_euclid(1_000)),
    };
    Ok(Arc::new(micros.with_timezone(UTC)))
}

fn checked(value: Option<i64>) -> Result<i64, ArrowError> {
    value.ok_or_else(|| {
        ArrowError::ComputeError("the timestamp is out of range of microseconds since 1970".into())
    })
}

/// Parses a text column (CSV) as `declared`: integers, floats, `true`/`false`, RFC 3339
/// timestamps (a missing offset means UTC) or bare dates. Nulls stay null.
pub(super) fn parse_text(array: &ArrayRef, declared: ValueType) -> Result<ArrayRef, ConvertError> {
    let Some(text) = array.as_string_opt::<i32>() else {
        return convert(array, declared);
    };
    let target = match declared {
        ValueType::Utf8 => return Ok(array.clone()),
        // Parsed as naive UTC instants, then labelled UTC: explicit offsets are honoured.
        ValueType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        other => arrow_type(other),
    };
    // `safe` turns unparsable values into nulls; the first new null is the culprit.
    let parsed = cast_with_options(array, &target, &CastOptions::default())
        .map_err(|e| ConvertError::Range(e.to_string()))?;
    if parsed.null_count() != text.null_count()
        && let Some(index) = (0..text.len()).find(|&i| text.is_valid(i) && parsed.is_null(i))
    {
        return Err(ConvertError::Value { index });
    }
    if declared == ValueType::Timestamp {
        let micros = parsed.as_primitive::<TimestampMicrosecondType>().clone();
        return Ok(Arc::new(micros.with_timezone(UTC)));
    }
    Ok(parsed)
}
