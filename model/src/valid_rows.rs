//! What a stored row may hold, checked before any store is written: event and created times
//! in a sane range (a nanosecond epoch read as microseconds, or `i64::MAX`, would freeze an
//! entity, since no later row could ever be newer), no NUL byte in a string (Postgres text
//! cannot hold one), and no NaN in a float column that is not nullable (NaN there is a
//! missing value in disguise; nullable columns keep NaN bit for bit).

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, TimestampMicrosecondType};

use super::{FieldSpec, ValueType};

/// Earliest time a stored timestamp may hold: 1900-01-01T00:00:00Z, in µs.
pub const MIN_TIMESTAMP_MICROS: i64 = -2_208_988_800_000_000;
/// First time past the latest a stored timestamp may hold: 2200-01-01T00:00:00Z, in µs.
pub const MAX_TIMESTAMP_MICROS: i64 = 7_258_118_400_000_000;

/// A value no store may hold, named by its row and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("row {row}, column `{column}`: {problem}")]
pub struct InvalidValue {
    /// The row's index in the rows given.
    pub row: usize,
    pub column: String,
    pub problem: String,
}

/// Checks every value of `rows`, whose columns are `fields` (in order). Returns the first
/// invalid value, scanning column by column.
pub fn check_rows(fields: &[FieldSpec], rows: &RecordBatch) -> Result<(), InvalidValue> {
    for (field, array) in fields.iter().zip(rows.columns()) {
        let invalid = |row: usize, problem: String| InvalidValue {
            row,
            column: field.name.clone(),
            problem,
        };
        match field.value_type {
            ValueType::Timestamp => {
                let values = array.as_primitive::<TimestampMicrosecondType>();
                for (row, value) in values.iter().enumerate() {
                    if let Some(value) = value
                        && !(MIN_TIMESTAMP_MICROS..MAX_TIMESTAMP_MICROS).contains(&value)
                    {
                        return Err(invalid(
                            row,
                            format!(
                                "timestamp {value} µs is outside 1900-01-01 to 2200-01-01 \
                                 (nanoseconds or milliseconds given as microseconds?)"
                            ),
                        ));
                    }
                }
            }
            ValueType::Utf8 => {
                let values = array.as_string::<i32>();
                for (row, value) in values.iter().enumerate() {
                    if value.is_some_and(|value| value.contains('\0')) {
                        return Err(invalid(row, "text contains a NUL byte".to_owned()));
                    }
                }
            }
            ValueType::Float64 if !field.nullable => {
                let values = array.as_primitive::<Float64Type>();
                if let Some(row) = (0..values.len()).find(|&row| values.value(row).is_nan()) {
                    return Err(invalid(
                        row,
                        "NaN in a column that is not nullable (declare it `float64?` and send \
                         null for a missing value)"
                            .to_owned(),
                    ));
                }
            }
            ValueType::Float64 | ValueType::Int64 | ValueType::Boolean => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray, TimestampMicrosecondArray};

    use super::*;

    fn field(name: &str, value_type: ValueType, nullable: bool) -> FieldSpec {
        FieldSpec {
            name: name.into(),
            value_type,
            nullable,
        }
    }

    fn check(ts: i64, text: &str, strict: f64, loose: f64) -> Result<(), InvalidValue> {
        let fields = [
            field("event_ts", ValueType::Timestamp, false),
            field("name", ValueType::Utf8, true),
            field("amount", ValueType::Float64, false),
            field("ratio", ValueType::Float64, true),
        ];
        let rows = RecordBatch::try_from_iter([
            (
                "event_ts",
                Arc::new(TimestampMicrosecondArray::from(vec![0, ts]).with_timezone("UTC")) as _,
            ),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("ok"), Some(text)])) as _,
            ),
            (
                "amount",
                Arc::new(Float64Array::from(vec![1.0, strict])) as _,
            ),
            ("ratio", Arc::new(Float64Array::from(vec![2.0, loose])) as _),
        ])
        .unwrap();
        check_rows(&fields, &rows)
    }

    #[test]
    fn good_rows_pass_and_nullable_nan_is_kept() {
        assert_eq!(check(1_767_225_600_000_000, "é", -0.0, f64::NAN), Ok(()));
        assert_eq!(check(MIN_TIMESTAMP_MICROS, "", 1.0, 1.0), Ok(()));
        assert_eq!(check(MAX_TIMESTAMP_MICROS - 1, "", 1.0, 1.0), Ok(()));
    }

    #[test]
    fn each_bad_value_is_named_by_row_and_column() {
        let error = check(i64::MAX, "", 1.0, 1.0).unwrap_err();
        assert_eq!((error.row, error.column.as_str()), (1, "event_ts"));
        // 2026 in nanoseconds read as microseconds.
        let error = check(1_767_225_600_000_000_000, "", 1.0, 1.0).unwrap_err();
        assert!(
            error.problem.contains("outside 1900-01-01 to 2200-01-01"),
            "{error}"
        );
        assert_eq!(
            check(MAX_TIMESTAMP_MICROS, "", 1.0, 1.0).unwrap_err().row,
            1
        );
        let error = check(0, "a\0b", 1.0, 1.0).unwrap_err();
        assert_eq!(
            error.to_string(),
            "row 1, column `name`: text contains a NUL byte"
        );
        let error = check(0, "", f64::NAN, 1.0).unwrap_err();
        assert_eq!((error.row, error.column.as_str()), (1, "amount"));
    }
}
