//! Conversions between Arrow record batches (sources, stores, Parquet) and the transform
//! batches of the WIT contract, in the canonical Arrow types of [`arrow_type`].

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Float64Array, Float64Builder,
    Int64Array, Int64Builder, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};

use crate::model::{FieldSpec, ValueType, arrow_schema, arrow_type};
use crate::runtime::batch::is_valid;
use crate::runtime::{Batch, Column, Utf8Values, Values};

/// Why a record batch cannot become a transform batch.
#[derive(Debug, thiserror::Error)]
pub enum ColumnarError {
    #[error("column `{0}` is missing")]
    Missing(String),
    #[error("column `{column}` has Arrow type {found}, expected {expected}")]
    WrongType {
        column: String,
        expected: DataType,
        found: DataType,
    },
    #[error("batch of {0} rows is too large for one transform call")]
    TooManyRows(usize),
}

/// The columns `fields` of `batch`, by name, as a transform batch.
pub fn to_transform_batch(
    batch: &RecordBatch,
    fields: &[FieldSpec],
) -> Result<Batch, ColumnarError> {
    let num_rows = u32::try_from(batch.num_rows())
        .map_err(|_| ColumnarError::TooManyRows(batch.num_rows()))?;
    let columns = fields
        .iter()
        .map(|field| {
            let array = batch
                .column_by_name(&field.name)
                .ok_or_else(|| ColumnarError::Missing(field.name.clone()))?;
            to_column(&field.name, field.value_type, array)
        })
        .collect::<Result<_, _>>()?;
    Ok(Batch { num_rows, columns })
}

/// One Arrow array as a transform column of `value_type`.
pub fn to_column(
    name: &str,
    value_type: ValueType,
    array: &ArrayRef,
) -> Result<Column, ColumnarError> {
    let expected = arrow_type(value_type);
    if array.data_type() != &expected {
        return Err(ColumnarError::WrongType {
            column: name.to_owned(),
            expected,
            found: array.data_type().clone(),
        });
    }
    let values = match value_type {
        ValueType::Int64 => Values::Int64(array.as_primitive::<Int64Type>().values().to_vec()),
        ValueType::Float64 => {
            Values::Float64(array.as_primitive::<Float64Type>().values().to_vec())
        }
        ValueType::Timestamp => Values::Timestamp(
            array
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .values()
                .to_vec(),
        ),
        ValueType::Boolean => Values::Boolean(array.as_boolean().values().iter().collect()),
        ValueType::Utf8 => {
            let strings = array.as_string::<i32>();
            let offsets = strings.value_offsets();
            let start = offsets[0];
            let end = offsets[offsets.len() - 1];
            Values::Utf8(Utf8Values {
                offsets: offsets.iter().map(|&o| (o - start) as u32).collect(),
                data: strings.value_data()[start as usize..end as usize].to_vec(),
            })
        }
    };
    let validity = array.logical_nulls().map(|nulls| {
        let mut bits = vec![0u8; array.len().div_ceil(8)];
        for (row, valid) in nulls.iter().enumerate() {
            if valid {
                bits[row / 8] |= 1 << (row % 8);
            }
        }
        bits
    });
    Ok(Column {
        name: name.to_owned(),
        values,
        validity,
    })
}

/// A transform column as an Arrow array of its canonical type.
pub fn to_array(column: &Column, rows: usize) -> ArrayRef {
    let nulls = column.validity.as_deref().map(|bits| {
        NullBuffer::new(BooleanBuffer::from_iter(
            (0..rows).map(|row| is_valid(Some(bits), row)),
        ))
    });
    match &column.values {
        Values::Int64(v) => Arc::new(Int64Array::new(ScalarBuffer::from(v.clone()), nulls)),
        Values::Float64(v) => Arc::new(Float64Array::new(ScalarBuffer::from(v.clone()), nulls)),
        Values::Timestamp(v) => Arc::new(
            TimestampMicrosecondArray::new(ScalarBuffer::from(v.clone()), nulls)
                .with_timezone("UTC"),
        ),
        Values::Boolean(v) => Arc::new(BooleanArray::new(
            BooleanBuffer::from_iter(v.iter().copied()),
            nulls,
        )),
        Values::Utf8(v) => {
            let offsets: Vec<i32> = v.offsets.iter().map(|&o| o as i32).collect();
            Arc::new(StringArray::new(
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                v.data.clone().into(),
                nulls,
            ))
        }
    }
}

/// A transform batch as an Arrow record batch with the schema of `fields` (the batch's
/// columns, matched by name).
pub fn to_record_batch(batch: &Batch, fields: &[FieldSpec]) -> Result<RecordBatch, ColumnarError> {
    let rows = batch.num_rows as usize;
    let arrays = fields
        .iter()
        .map(|field| {
            batch
                .columns
                .iter()
                .find(|column| column.name == field.name)
                .map(|column| to_array(column, rows))
                .ok_or_else(|| ColumnarError::Missing(field.name.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(arrow_schema(fields), arrays).expect("arrays built for the schema"))
}

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

/// The one type every non-null value of a JSON column fits: integers, numbers (integers
/// among them), booleans or strings; text when every value is null. Lists, objects and
/// mixed columns are refused.
pub fn infer_json_type(values: &[serde_json::Value]) -> Result<ValueType, String> {
    use serde_json::Value;
    let mut found: Option<ValueType> = None;
    for value in values {
        let here = match value {
            Value::Null => continue,
            Value::Bool(_) => ValueType::Boolean,
            Value::Number(n) if n.is_i64() => ValueType::Int64,
            Value::Number(_) => ValueType::Float64,
            Value::String(_) => ValueType::Utf8,
            Value::Array(_) | Value::Object(_) => {
                return Err("values must be numbers, booleans, strings or null".to_owned());
            }
        };
        found = Some(match (found, here) {
            (None, here) => here,
            (Some(known), here) if known == here => known,
            (
                Some(ValueType::Int64 | ValueType::Float64),
                ValueType::Int64 | ValueType::Float64,
            ) => ValueType::Float64,
            (Some(known), here) => {
                return Err(format!("mixes {known} and {here} values"));
            }
        });
    }
    Ok(found.unwrap_or(ValueType::Utf8))
}

/// A JSON array of values as an Arrow array of `field`'s type: numbers for int64 and
/// float64 (`"NaN"`, `"inf"`, `"-inf"` strings for floats too), strings, booleans, and
/// timestamps as RFC 3339 strings or µs integers; `null` where the field is nullable.
pub fn from_json(field: &FieldSpec, values: &[serde_json::Value]) -> Result<ArrayRef, String> {
    use serde_json::Value;
    let mut builder = ColumnBuilder::new(field.value_type);
    for (row, value) in values.iter().enumerate() {
        let wrong = || {
            format!(
                "`{}`[{row}]: expected {}{}, found {value}",
                field.name,
                field.value_type,
                if field.nullable { " or null" } else { "" }
            )
        };
        match (field.value_type, value) {
            (_, Value::Null) if field.nullable => builder.null(),
            (ValueType::Int64, Value::Number(n)) => builder.int(n.as_i64().ok_or_else(wrong)?),
            (ValueType::Float64, Value::Number(n)) => builder.float(n.as_f64().ok_or_else(wrong)?),
            (ValueType::Float64, Value::String(text)) => builder.float(match text.as_str() {
                "NaN" | "nan" => f64::NAN,
                "inf" | "Infinity" => f64::INFINITY,
                "-inf" | "-Infinity" => f64::NEG_INFINITY,
                _ => return Err(wrong()),
            }),
            (ValueType::Utf8, Value::String(text)) => builder.text(text),
            (ValueType::Boolean, Value::Bool(flag)) => builder.boolean(*flag),
            (ValueType::Timestamp, Value::Number(n)) => builder.int(n.as_i64().ok_or_else(wrong)?),
            (ValueType::Timestamp, Value::String(text)) => builder.int(
                crate::model::parse_timestamp(text)
                    .map_err(|message| format!("`{}`[{row}]: {message}", field.name))?,
            ),
            _ => return Err(wrong()),
        }
    }
    Ok(builder.finish())
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

/// Value `row` as exact text: floats in Rust's shortest round-trip form (`-0.0`, `NaN`),
/// text quoted, timestamps in RFC 3339, `null`.
pub fn value_text(array: &dyn Array, row: usize) -> String {
    match cell(array, row) {
        Cell::Float(value) => format!("{value:?}"),
        _ => to_json(array, row).to_string(),
    }
}

/// A float as JSON: a number, or `"NaN"`, `"inf"`, `"-inf"`.
fn float_json(value: f64) -> serde_json::Value {
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

/// A whole array serialized as a JSON list of [`to_json`] values, without building them:
/// the hot path of online responses. Repeated timestamps are formatted once.
pub struct JsonColumn<'a>(pub &'a dyn Array);

impl serde::Serialize for JsonColumn<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        let mut last: Option<(i64, String)> = None;
        for row in 0..self.0.len() {
            match cell(self.0, row) {
                Cell::Null => seq.serialize_element(&())?,
                Cell::Int(value) => seq.serialize_element(&value)?,
                Cell::Float(value) if value.is_finite() => seq.serialize_element(&value)?,
                Cell::Float(value) => seq.serialize_element(&float_json(value))?,
                Cell::Text(value) => seq.serialize_element(value)?,
                Cell::Bool(value) => seq.serialize_element(&value)?,
                Cell::Timestamp(micros) => {
                    if last.as_ref().is_none_or(|(known, _)| *known != micros) {
                        last = Some((micros, crate::model::format_timestamp(micros)));
                    }
                    seq.serialize_element(&last.as_ref().expect("just set").1)?
                }
                Cell::Other(text) => seq.serialize_element(&text)?,
            }
        }
        seq.end()
    }
}

/// Timestamps (µs) serialized as a JSON list of RFC 3339 strings, each distinct run
/// formatted once.
pub struct JsonTimestamps<'a>(pub &'a [i64]);

impl serde::Serialize for JsonTimestamps<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        let mut last: Option<(i64, String)> = None;
        for &micros in self.0 {
            if last.as_ref().is_none_or(|(known, _)| *known != micros) {
                last = Some((micros, crate::model::format_timestamp(micros)));
            }
            seq.serialize_element(&last.as_ref().expect("just set").1)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datagen::generate;
    use crate::runtime::{DataType as WitType, Field as WitField};

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

    #[test]
    fn transform_batches_round_trip_through_arrow() {
        let wit_fields: Vec<WitField> = [
            ("user_id", WitType::Int64, false),
            ("rating", WitType::Float64, true),
            ("favorite_genre", WitType::Utf8, true),
            ("flag", WitType::Boolean, true),
            ("event_timestamp", WitType::Timestamp, false),
        ]
        .into_iter()
        .map(|(name, data_type, nullable)| WitField {
            name: name.into(),
            data_type,
            nullable,
        })
        .collect();
        let fields = crate::pipeline::field_specs(&wit_fields);
        let batch = generate(&wit_fields, 37, 7);
        let record = to_record_batch(&batch, &fields).unwrap();
        assert_eq!(record.num_rows(), 37);
        assert_eq!(record.schema(), arrow_schema(&fields));
        let back = to_transform_batch(&record, &fields).unwrap();
        assert_eq!(crate::runtime::batch::first_difference(&batch, &back), None);
        // A sliced record batch (non-zero offsets) converts too.
        let sliced = to_transform_batch(&record.slice(5, 10), &fields).unwrap();
        let expected = crate::runtime::batch::slice(&batch, 5..15);
        assert_eq!(
            crate::runtime::batch::first_difference(&expected, &sliced),
            None
        );
    }

    #[test]
    fn json_values_convert_both_ways() {
        let field = |name: &str, value_type, nullable| FieldSpec {
            name: name.into(),
            value_type,
            nullable,
        };
        let values: Vec<serde_json::Value> =
            serde_json::from_str(r#"["2026-01-02T03:04:05Z", 1767225600000000, null]"#).unwrap();
        let times = from_json(&field("t", ValueType::Timestamp, true), &values).unwrap();
        assert_eq!(to_json(times.as_ref(), 0), "2026-01-02T03:04:05Z");
        assert_eq!(to_json(times.as_ref(), 1), "2026-01-01T00:00:00Z");
        assert!(to_json(times.as_ref(), 2).is_null());
        let floats = from_json(
            &field("f", ValueType::Float64, false),
            &serde_json::from_str::<Vec<serde_json::Value>>(r#"[0.5, "NaN", 3]"#).unwrap(),
        )
        .unwrap();
        assert_eq!(to_json(floats.as_ref(), 0), 0.5);
        assert_eq!(to_json(floats.as_ref(), 1), "NaN");
        assert_eq!(to_json(floats.as_ref(), 2), 3.0);
        let error = from_json(
            &field("k", ValueType::Int64, false),
            &[serde_json::Value::Null],
        )
        .unwrap_err();
        assert_eq!(error, "`k`[0]: expected int64, found null");
        let error = from_json(
            &field("k", ValueType::Int64, true),
            &[serde_json::json!(1.5)],
        )
        .unwrap_err();
        assert_eq!(error, "`k`[0]: expected int64 or null, found 1.5");
    }

    #[test]
    fn wrong_types_and_missing_columns_are_named() {
        let fields = vec![FieldSpec {
            name: "x".into(),
            value_type: ValueType::Int64,
            nullable: false,
        }];
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("x", DataType::Float64, false),
        ]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Float64Array::from(vec![1.0]))]).unwrap();
        let error = to_transform_batch(&batch, &fields).unwrap_err().to_string();
        assert_eq!(error, "column `x` has Arrow type Float64, expected Int64");
        let missing = vec![FieldSpec {
            name: "y".into(),
            ..fields[0].clone()
        }];
        let error = to_transform_batch(&batch, &missing)
            .unwrap_err()
            .to_string();
        assert_eq!(error, "column `y` is missing");
    }
}
