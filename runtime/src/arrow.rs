//! Arrow record batches ↔ the guest's batches of the WIT contract, in the canonical Arrow
//! types of [`lockstep_model::arrow_type`].

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use lockstep_model::{FieldSpec, ValueType, arrow_schema, arrow_type};

use crate::batch::is_valid;
use crate::bindings::{Batch, Column, Utf8Values, Values};

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

/// The columns `fields` of `batch`, by name, as the guest's batch.
pub fn to_guest(batch: &RecordBatch, fields: &[FieldSpec]) -> Result<Batch, ColumnarError> {
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
fn to_column(name: &str, value_type: ValueType, array: &ArrayRef) -> Result<Column, ColumnarError> {
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
fn to_array(column: &Column, rows: usize) -> ArrayRef {
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

/// A checked guest batch (exactly `fields`' columns, in order: [`crate::validate`]) as an
/// Arrow record batch with the schema of `fields`.
pub fn from_guest(batch: &Batch, fields: &[FieldSpec]) -> RecordBatch {
    let rows = batch.num_rows as usize;
    let arrays = batch
        .columns
        .iter()
        .map(|column| to_array(column, rows))
        .collect();
    RecordBatch::try_new(arrow_schema(fields), arrays).expect("a checked batch fits its fields")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{first_difference, slice};
    use crate::sample::sample_batch;

    #[test]
    fn guest_batches_round_trip_through_arrow() {
        let fields: Vec<FieldSpec> = ValueType::ALL
            .into_iter()
            .enumerate()
            .map(|(i, value_type)| FieldSpec {
                name: format!("f{i}"),
                value_type,
                nullable: i % 2 == 1,
            })
            .collect();
        let batch = sample_batch(&fields, 37);
        let record = from_guest(&batch, &fields);
        assert_eq!(record.num_rows(), 37);
        assert_eq!(record.schema(), arrow_schema(&fields));
        let back = to_guest(&record, &fields).unwrap();
        assert_eq!(first_difference(&batch, &back), None);
        // A sliced record batch (non-zero offsets) converts too.
        let sliced = to_guest(&record.slice(5, 10), &fields).unwrap();
        assert_eq!(first_difference(&slice(&batch, 5..15), &sliced), None);
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
        let error = to_guest(&batch, &fields).unwrap_err().to_string();
        assert_eq!(error, "column `x` has Arrow type Float64, expected Int64");
        let missing = vec![FieldSpec {
            name: "y".into(),
            ..fields[0].clone()
        }];
        let error = to_guest(&batch, &missing).unwrap_err().to_string();
        assert_eq!(error, "column `y` is missing");
    }
}
