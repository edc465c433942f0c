//! Arrow columns built and read value by value, in the canonical Arrow types of
//! [`crate::model::arrow_type`]: a builder per value type, bit-for-bit comparison, and the
//! exact text and JSON value of one value (JSON bodies are `api::json`'s).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};

use crate::model::ValueType;

/// Builds one column of a value type from values arriving one at a time.
pub enum ColumnBuilder {
    Int64(Int64Builder),
    Float64(Float64Builder),
    Utf8(StringBuilder),
    Boolean(BooleanBuilder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl ColumnBuilder {
    pub fn new(value_type: ValueType) -> Self {
        match value_type {
            ValueType::Int64 => Self::Int64(Int64Builder::new()),
            ValueType::Float64 => Self::Float64(Float64Builder::new()),
            ValueType::Utf8 => Self::Utf8(StringBuilder::new()),
            ValueType::Boolean => Self::Boolean(BooleanBuilder::new()),
            ValueType::Timestamp => Self::Timestamp(TimestampMicrosecondBuilder::new()),
        }
    }

    pub fn null(&mut self) {
        match self {
            Self::Int64(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Utf8(b) => b.append_null(),
            Self::Boolean(b) => b.append_null(),
            Self::Timestamp(b) => b.append_null(),
        }
    }

    /// An int64 value, or a timestamp in µs.
    pub fn int(&mut self, value: i64) {
        match self {
            Self::Int64(b) => b.append_value(value),
            Self::Timestamp(b) => b.append_value(value),
            _ => panic!("int value for a non-integer column"),
        }
    }

    pub fn float(&mut self, value: f64) {
        match self {
            Self::Float64(b) => b.append_value(value),
            _ => panic!("float value for a non-float column"),
        }
    }

    pub fn text(&mut self, value: &str) {
        match self {
            Self::Utf8(b) => b.append_value(value),
            _ => panic!("text value for a non-text column"),
        }
    }

    pub fn boolean(&mut self, value: bool) {
        match self {
            Self::Boolean(b) => b.append_value(value),
            _ => panic!("boolean value for a non-boolean column"),
        }
    }

    pub fn finish(self) -> ArrayRef {
        match self {
            Self::Int64(mut b) => Arc::new(b.finish()),
            Self::Float64(mut b) => Arc::new(b.finish()),
            Self::Utf8(mut b) => Arc::new(b.finish()),
            Self::Boolean(mut b) => Arc::new(b.finish()),
            Self::Timestamp(mut b) => Arc::new(b.finish().with_timezone("UTC")),
        }
    }
}

/// One value of an array of a canonical type, borrowed, as JSON renders it.
enum Cell<'a> {
    Null,
    Int(i64),
    Float(f64),
    Text(&'a str),
    Bool(bool),
    Timestamp(i64),
    Other(String),
}

fn cell(array: &dyn Array, row: usize) -> Cell<'_> {
    if array.is_null(row) {
        return Cell::Null;
    }
    match array.data_type() {
        DataType::Int64 => Cell::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => Cell::Float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Cell::Text(array.as_string::<i32>().value(row)),
        DataType::Boolean => Cell::Bool(array.as_boolean().value(row)),
        DataType::Timestamp(TimeUnit::Microsecond, _) => Cell::Timestamp(
            array
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(row),
        ),
        other => Cell::Other(format!("<{other}>")),
    }
}

/// Whether value `row_a` of `a` and value `row_b` of `b` (arrays of canonical types) are
/// the same bit for bit: both null, or equal values of one type, floats by their bits.
pub fn same_value(a: &dyn Array, row_a: usize, b: &dyn Array, row_b: usize) -> bool {
    match (cell(a, row_a), cell(b, row_b)) {
        (Cell::Null, Cell::Null) => true,
        (Cell::Int(x), Cell::Int(y)) | (Cell::Timestamp(x), Cell::Timestamp(y)) => x == y,
        (Cell::Float(x), Cell::Float(y)) => x.to_bits() == y.to_bits(),
        (Cell::Text(x), Cell::Text(y)) => x == y,
        (Cell::Bool(x), Cell::Bool(y)) => x == y,
        _ => false,
    }
}

/// The first value where two record batches differ, bit for bit ([`same_value`]), as
/// `row R, column `c`: left vs right`; their shapes too. `None` when they are the same.
pub fn first_difference(left: &RecordBatch, right: &RecordBatch) -> Option<String> {
    if left.schema() != right.schema() || left.num_rows() != right.num_rows() {
        return Some(format!(
            "shapes differ: {} rows of {:?} vs {} rows of {:?}",
            left.num_rows(),
            left.schema().fields(),
            right.num_rows(),
            right.schema().fields()
        ));
    }
    let schema = left.schema();
    (0..left.num_rows()).find_map(|row| {
        left.columns()
            .iter()
            .zip(right.columns())
            .zip(schema.fields())
            .find(|((a, b), _)| !same_value(a.as_ref(), row, b.as_ref(), row))
            .map(|((a, b), field)| {
                format!(
                    "row {row}, column `{}`: {} vs {}",
                    field.name(),
                    value_text(a.as_ref(), row),
                    value_text(b.as_ref(), row)
                )
            })
    })
}

/// Value `row` as exact text: floats in Rust's shortest round-trip form (`-0.0`, `NaN`),
/// text quoted, timestamps in RFC 3339, `null`.
pub fn value_text(array: &dyn Array, row: usize) -> String {
    match cell(array, row) {
        Cell::Float(value) => format!("{value:?}"),
        _ => to_json(array, row).to_string(),
    }
}

/// A float as JSON: a number, or `"NaN"`, `"inf"`, `"-inf"`.
pub fn float_json(value: f64) -> serde_json::Value {
    match serde_json::Number::from_f64(value) {
        Some(number) => serde_json::Value::Number(number),
        None if value.is_nan() => "NaN".into(),
        None if value > 0.0 => "inf".into(),
        None => "-inf".into(),
    }
}

/// Value `row` of an array of a canonical type as JSON: numbers, strings, booleans,
/// timestamps as RFC 3339 strings, non-finite floats as `"NaN"`, `"inf"`, `"-inf"`, null.
pub fn to_json(array: &dyn Array, row: usize) -> serde_json::Value {
    use serde_json::Value;
    match cell(array, row) {
        Cell::Null => Value::Null,
        Cell::Int(value) => Value::from(value),
        Cell::Float(value) => float_json(value),
        Cell::Text(value) => Value::from(value),
        Cell::Bool(value) => Value::from(value),
        Cell::Timestamp(micros) => Value::from(crate::model::format_timestamp(micros)),
        Cell::Other(text) => Value::from(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_compare_bit_for_bit_and_print_exactly() {
        use arrow::array::{Float64Array, Int64Array};
        let a = Float64Array::from(vec![Some(0.0), Some(f64::NAN), None, Some(0.1)]);
        let b = Float64Array::from(vec![Some(-0.0), Some(f64::NAN), None, Some(0.1)]);
        let same: Vec<bool> = (0..4).map(|row| same_value(&a, row, &b, row)).collect();
        assert_eq!(same, [false, true, true, true]);
        assert!(!same_value(&a, 2, &b, 3), "null differs from a value");
        let ints = Int64Array::from(vec![0]);
        assert!(!same_value(&a, 0, &ints, 0), "types must match");
        assert_eq!(value_text(&b, 0), "-0.0");
        assert_eq!(value_text(&b, 2), "null");
        assert_eq!(value_text(&ints, 0), "0");
    }
}
