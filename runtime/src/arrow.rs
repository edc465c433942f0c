//! Arrow record batches ↔ the guest's batches of the WIT contract, in the canonical Arrow
//! types of [`lockstep_model::arrow_type`].

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, UInt32Array,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimestampMicrosecondType};
use lockstep_model::{FieldSpec, ValueType, arrow_schema, arrow_type};

use crate::bindings::{Batch, BatchIn, Column, ColumnIn, Utf8In, Values, ValuesIn};

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
    #[error("cannot re-lay column `{column}` out from offset 0: {message}")]
    Relayout { column: String, message: String },
}

/// The columns of a record batch that a transform reads, each an Arrow array whose buffers
/// the contract's layout borrows as they are ([`GuestInput::batch`]): lowering them into
/// guest memory is one memcpy per buffer.
pub struct GuestInput<'f> {
    fields: &'f [FieldSpec],
    num_rows: u32,
    arrays: Vec<ArrayRef>,
}

impl<'f> GuestInput<'f> {
    /// The columns `fields` of `batch`, by name, checked against their canonical Arrow
    /// types. An array the contract cannot borrow as it is (a slice starting inside a bitmap
    /// byte, or strings whose offsets do not start at 0) is copied out from offset 0 first.
    pub fn new(batch: &RecordBatch, fields: &'f [FieldSpec]) -> Result<Self, ColumnarError> {
        let num_rows = u32::try_from(batch.num_rows())
            .map_err(|_| ColumnarError::TooManyRows(batch.num_rows()))?;
        let arrays = fields
            .iter()
            .map(|field| {
                let array = batch
                    .column_by_name(&field.name)
                    .ok_or_else(|| ColumnarError::Missing(field.name.clone()))?;
                let expected = arrow_type(field.value_type);
                if array.data_type() != &expected {
                    return Err(ColumnarError::WrongType {
                        column: field.name.clone(),
                        expected,
                        found: array.data_type().clone(),
                    });
                }
                if borrowable(array) {
                    return Ok(Arc::clone(array));
                }
                let all = UInt32Array::from_iter_values(0..num_rows);
                arrow::compute::take(array.as_ref(), &all, None).map_err(|e| {
                    ColumnarError::Relayout {
                        column: field.name.clone(),
                        message: e.to_string(),
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            fields,
            num_rows,
            arrays,
        })
    }

    /// The contract's batch, borrowing the arrays' buffers.
    pub fn batch(&self) -> BatchIn<'_> {
        let columns = self
            .fields
            .iter()
            .zip(&self.arrays)
            .map(|(field, array)| ColumnIn {
                name: &field.name,
                values: values(array, field.value_type),
                validity: array
                    .nulls()
                    .filter(|nulls| nulls.null_count() > 0)
                    .map(|nulls| bytes(nulls.inner())),
            })
            .collect();
        BatchIn {
            num_rows: self.num_rows,
            columns,
        }
    }
}

/// Whether the contract can borrow `array`'s buffers as they are: bitmaps that start on a
/// byte and string offsets that start at 0 (what an unsliced array has).
fn borrowable(array: &ArrayRef) -> bool {
    let byte_aligned = |bits: &BooleanBuffer| bits.offset().is_multiple_of(8);
    array
        .nulls()
        .is_none_or(|nulls| byte_aligned(nulls.inner()))
        && match array.data_type() {
            DataType::Boolean => byte_aligned(array.as_boolean().values()),
            DataType::Utf8 => array.as_string::<i32>().value_offsets()[0] == 0,
            _ => true,
        }
}

/// The bytes of a byte-aligned bitmap.
fn bytes(bits: &BooleanBuffer) -> &[u8] {
    let start = bits.offset() / 8;
    &bits.values()[start..start + bits.len().div_ceil(8)]
}

/// The values of a [`borrowable`] array of `value_type`, borrowed.
fn values(array: &ArrayRef, value_type: ValueType) -> ValuesIn<'_> {
    match value_type {
        ValueType::Int64 => ValuesIn::Int64(array.as_primitive::<Int64Type>().values()),
        ValueType::Float64 => ValuesIn::Float64(array.as_primitive::<Float64Type>().values()),
        ValueType::Timestamp => {
            ValuesIn::Timestamp(array.as_primitive::<TimestampMicrosecondType>().values())
        }
        ValueType::Boolean => ValuesIn::Boolean(bytes(array.as_boolean().values())),
        ValueType::Utf8 => {
            let strings = array.as_string::<i32>();
            // Offsets start at 0 and ascend, so as `u32` they are the same bytes.
            let offsets = strings.offsets().inner().inner().typed_data::<u32>();
            let end = offsets.last().map_or(0, |&end| end as usize);
            ValuesIn::Utf8(Utf8In {
                offsets,
                data: &strings.value_data()[..end],
            })
        }
    }
}

/// The columns `fields` of `batch` as an owned guest batch (for comparing with one).
pub fn to_guest(batch: &RecordBatch, fields: &[FieldSpec]) -> Result<Batch, ColumnarError> {
    Ok(GuestInput::new(batch, fields)?.batch().to_owned())
}

/// A transform column as an Arrow array of its canonical type, taking over its buffers.
fn to_array(column: Column, rows: usize) -> ArrayRef {
    let bits = |bytes: Vec<u8>| BooleanBuffer::new(Buffer::from_vec(bytes), 0, rows);
    let nulls = column
        .validity
        .map(|validity| NullBuffer::new(bits(validity)));
    match column.values {
        Values::Int64(v) => Arc::new(Int64Array::new(v.into(), nulls)),
        Values::Float64(v) => Arc::new(Float64Array::new(v.into(), nulls)),
        Values::Timestamp(v) => {
            Arc::new(TimestampMicrosecondArray::new(v.into(), nulls).with_timezone("UTC"))
        }
        Values::Boolean(v) => Arc::new(BooleanArray::new(bits(v), nulls)),
        Values::Utf8(v) => {
            // Checked: ascending, at most `i32::MAX` (`validate`), so the same bits as `i32`.
            let offsets = ScalarBuffer::<i32>::new(Buffer::from_vec(v.offsets), 0, rows + 1);
            Arc::new(StringArray::new(
                OffsetBuffer::new(offsets),
                Buffer::from_vec(v.data),
                nulls,
            ))
        }
    }
}

/// A checked guest batch (exactly `fields`' columns, in order: [`crate::validate`]) as an
/// Arrow record batch with the schema of `fields`, taking over the batch's buffers.
pub fn from_guest(batch: Batch, fields: &[FieldSpec]) -> RecordBatch {
    let rows = batch.num_rows as usize;
    let arrays = batch
        .columns
        .into_iter()
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
        let record = from_guest(batch.clone(), &fields);
        assert_eq!(record.num_rows(), 37);
        assert_eq!(record.schema(), arrow_schema(&fields));
        let back = to_guest(&record, &fields).unwrap();
        assert_eq!(first_difference(&batch, &back), None);
        // Sliced record batches convert too: borrowed as they are when their bitmaps start
        // on a byte, copied out from offset 0 otherwise (and strings always, their offsets
        // not starting at 0).
        for (offset, length) in [(5, 10), (8, 20), (16, 0)] {
            let sliced = to_guest(&record.slice(offset, length), &fields).unwrap();
            let expected = slice(&batch.borrow(), offset..offset + length);
            assert_eq!(first_difference(&expected, &sliced), None, "at {offset}");
        }
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
