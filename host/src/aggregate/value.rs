//! One typed value of an aggregated column: read from Arrow, ordered for min and max,
//! encoded losslessly (floats by their bits) for states and distinct sets.

use std::cmp::Ordering;

use arrow::array::{
    Array, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};

use super::codec::{Reader, Writer};
use crate::columnar::ColumnBuilder;
use crate::model::ValueType;

/// A value of an aggregated column or an aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    /// µs since the Unix epoch.
    Time(i64),
}

impl Value {
    /// Row `row` of `array`, an array of the canonical Arrow type of `value_type`.
    pub fn read(array: &dyn Array, value_type: ValueType, row: usize) -> Value {
        if array.is_null(row) {
            return Value::Null;
        }
        let any = array.as_any();
        let expect = "aggregated columns have their canonical Arrow type";
        match value_type {
            ValueType::Int64 => {
                Value::Int(any.downcast_ref::<Int64Array>().expect(expect).value(row))
            }
            ValueType::Float64 => {
                Value::Float(any.downcast_ref::<Float64Array>().expect(expect).value(row))
            }
            ValueType::Utf8 => Value::Text(
                any.downcast_ref::<StringArray>()
                    .expect(expect)
                    .value(row)
                    .to_owned(),
            ),
            ValueType::Boolean => {
                Value::Bool(any.downcast_ref::<BooleanArray>().expect(expect).value(row))
            }
            ValueType::Timestamp => Value::Time(
                any.downcast_ref::<TimestampMicrosecondArray>()
                    .expect(expect)
                    .value(row),
            ),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Appends the value to a builder of its column's type.
    pub fn append_to(&self, builder: &mut ColumnBuilder) {
        match self {
            Value::Null => builder.null(),
            Value::Int(value) | Value::Time(value) => builder.int(*value),
            Value::Float(value) => builder.float(*value),
            Value::Text(value) => builder.text(value),
            Value::Bool(value) => builder.boolean(*value),
        }
    }

    /// The order of min and max among values of one column: numbers and times by value,
    /// floats by IEEE total order (so NaN sorts above every number), text by bytes.
    pub fn compare(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) | (Value::Time(a), Value::Time(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
            (Value::Text(a), Value::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (a, b) => a.tag().cmp(&b.tag()),
        }
    }

    fn tag(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Int(_) => 1,
            Value::Float(_) => 2,
            Value::Text(_) => 3,
            Value::Bool(_) => 4,
            Value::Time(_) => 5,
        }
    }

    pub(super) fn encode(&self, out: &mut Writer) {
        out.u8(self.tag());
        match self {
            Value::Null => {}
            Value::Int(value) | Value::Time(value) => out.i64(*value),
            Value::Float(value) => out.u64(value.to_bits()),
            Value::Text(value) => out.bytes(value.as_bytes()),
            Value::Bool(value) => out.u8(u8::from(*value)),
        }
    }

    pub(super) fn decode(input: &mut Reader<'_>) -> Result<Value, String> {
        Ok(match input.u8()? {
            0 => Value::Null,
            1 => Value::Int(input.i64()?),
            2 => Value::Float(f64::from_bits(input.u64()?)),
            3 => {
                Value::Text(String::from_utf8(input.bytes()?.to_vec()).map_err(|e| e.to_string())?)
            }
            4 => Value::Bool(input.u8()? != 0),
            5 => Value::Time(input.i64()?),
            tag => return Err(format!("unknown value tag {tag}")),
        })
    }

    /// The value's bytes, equal exactly for equal values (floats by bits): what distinct
    /// counts compare.
    pub fn key(&self) -> Vec<u8> {
        let mut out = Writer::default();
        self.encode(&mut out);
        out.into_bytes()
    }
}
