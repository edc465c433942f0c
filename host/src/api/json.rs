//! JSON ↔ Arrow at the edge: JSON bodies' columns as typed Arrow arrays and record batches
//! (entity rows of online requests, pushed rows), and Arrow arrays serialized straight into
//! JSON lists (answers). Only `api` (and the CLI, another edge) speaks JSON; the pipeline
//! takes and returns Arrow.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, NullArray, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use serde::ser::SerializeSeq;

use crate::columnar::{ColumnBuilder, float_json};
use crate::model::{FieldSpec, ValueType, arrow_schema, format_timestamp, parse_timestamp};
use crate::pipeline::{EntityFields, EntityRows, FeatureError, Lockstep, PushTarget, PushedView};

/// A JSON body's columns: `{"user_id": [1, 2], …}`.
pub type JsonColumns = serde_json::Map<String, serde_json::Value>;

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
                parse_timestamp(text)
                    .map_err(|message| format!("`{}`[{row}]: {message}", field.name))?,
            ),
            _ => return Err(wrong()),
        }
    }
    Ok(builder.finish())
}

/// An online request's entity rows as a JSON body's columns, converted to Arrow in the types
/// of the columns the request's plan reads ([`entity_rows`]).
#[derive(Debug, Clone, Default)]
pub struct JsonEntities(pub JsonColumns);

impl EntityRows for JsonEntities {
    fn rows(&self, fields: &EntityFields) -> Result<RecordBatch, FeatureError> {
        entity_rows(&self.0, fields)
    }
}

/// Pushes rows of source `source_name` given as JSON columns (`{"user_id": [1], …}`): typed
/// by the source's schema, then [`Lockstep::push`]. The API's and the CLI's push.
pub async fn push(
    lockstep: &Lockstep,
    project: Option<&str>,
    source_name: &str,
    columns: &JsonColumns,
    target: PushTarget,
) -> Result<Vec<PushedView>, FeatureError> {
    let schema = lockstep.push_fields(project, source_name, target).await?;
    let rows = pushed_rows(columns, &schema)?;
    lockstep.push(project, source_name, &rows, target).await
}

/// Writes feature rows of view `view_name` given as JSON columns: typed by its source's
/// schema, then [`Lockstep::write_to_online_store`].
pub async fn write_to_online_store(
    lockstep: &Lockstep,
    project: Option<&str>,
    view_name: &str,
    columns: &JsonColumns,
) -> Result<PushedView, FeatureError> {
    let schema = lockstep.write_fields(project, view_name).await?;
    let rows = pushed_rows(columns, &schema)?;
    lockstep
        .write_to_online_store(project, view_name, &rows)
        .await
}

/// The number of rows of JSON columns: their common length. Every column must be a list.
pub fn row_count(columns: &JsonColumns) -> Result<usize, FeatureError> {
    let mut rows = None;
    for (name, values) in columns {
        let length = values
            .as_array()
            .ok_or_else(|| FeatureError::Entities(format!("`{name}` must be a list of values")))?
            .len();
        match rows {
            None => rows = Some((name, length)),
            Some((first, expected)) if expected != length => {
                return Err(FeatureError::Entities(format!(
                    "`{first}` has {expected} values but `{name}` has {length}"
                )));
            }
            Some(_) => {}
        }
    }
    rows.map(|(_, rows)| rows)
        .ok_or_else(|| FeatureError::Entities("no entity columns".into()))
}

/// The values of column `name`, if sent.
fn values<'a>(columns: &'a JsonColumns, name: &str) -> Option<&'a [serde_json::Value]> {
    columns
        .get(name)
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
}

/// An online request's entity rows: the join keys (never null) and the request fields
/// (null allowed: a row missing a required input gets null features) of `fields` that
/// were sent, in their types; other columns are not read. A column left out is the
/// pipeline's to refuse (or, for a nullable request field, to fill with nulls).
pub fn entity_rows(
    columns: &JsonColumns,
    fields: &EntityFields,
) -> Result<RecordBatch, FeatureError> {
    let rows = row_count(columns)?;
    let keys = fields.join_keys.iter().map(|key| {
        let field = FieldSpec {
            nullable: false,
            ..key.clone()
        };
        (field, "join key")
    });
    let request = fields.request_fields.iter().map(|request| {
        let field = FieldSpec {
            nullable: true,
            ..request.clone()
        };
        (field, "request field")
    });
    let mut typed = Vec::new();
    let mut arrays = Vec::new();
    for (field, role) in keys.chain(request) {
        let Some(values) = values(columns, &field.name) else {
            continue;
        };
        let array = from_json(&field, values)
            .map_err(|e| FeatureError::Entities(format!("{role} `{}`: {e}", field.name)))?;
        arrays.push(array);
        typed.push(field);
    }
    batch(&typed, arrays, rows)
}

/// Pushed rows: every column sent, typed by `schema` (the source's); a column the schema
/// lacks is passed on untyped (all null), for the pipeline to refuse by name.
pub fn pushed_rows(
    columns: &JsonColumns,
    schema: &[FieldSpec],
) -> Result<RecordBatch, FeatureError> {
    let rows = row_count(columns)?;
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (name, values) in columns {
        let values = values.as_array().map_or(&[][..], Vec::as_slice);
        match schema.iter().find(|field| field.name == *name) {
            Some(field) => {
                arrays.push(from_json(field, values).map_err(|e| {
                    FeatureError::Entities(format!("column `{}`: {e}", field.name))
                })?);
                fields.push(arrow::datatypes::Field::new(
                    name,
                    crate::model::arrow_type(field.value_type),
                    field.nullable,
                ));
            }
            None => {
                arrays.push(Arc::new(NullArray::new(rows)));
                fields.push(arrow::datatypes::Field::new(name, DataType::Null, true));
            }
        }
    }
    RecordBatch::try_new_with_options(
        Arc::new(arrow::datatypes::Schema::new(fields)),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| FeatureError::Entities(e.to_string()))
}

/// Typed arrays of `rows` rows as a batch.
fn batch(
    fields: &[FieldSpec],
    arrays: Vec<ArrayRef>,
    rows: usize,
) -> Result<RecordBatch, FeatureError> {
    RecordBatch::try_new_with_options(
        arrow_schema(fields),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| FeatureError::Entities(e.to_string()))
}

/// A whole array of a canonical type serialized as a JSON list of
/// [`crate::columnar::to_json`] values, without building them: the hot path of answers.
/// Repeated timestamps are formatted once.
pub struct JsonColumn<'a>(pub &'a dyn Array);

impl serde::Serialize for JsonColumn<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let array = self.0;
        let mut seq = serializer.serialize_seq(Some(array.len()))?;
        let valid = |row: usize| array.is_valid(row);
        match array.data_type() {
            DataType::Int64 => {
                let values = array.as_primitive::<Int64Type>();
                for row in 0..array.len() {
                    seq.serialize_element(&valid(row).then(|| values.value(row)))?;
                }
            }
            DataType::Float64 => {
                let values = array.as_primitive::<Float64Type>();
                for row in 0..array.len() {
                    match valid(row).then(|| values.value(row)) {
                        Some(value) if !value.is_finite() => {
                            seq.serialize_element(&float_json(value))?
                        }
                        value => seq.serialize_element(&value)?,
                    }
                }
            }
            DataType::Utf8 => {
                let values = array.as_string::<i32>();
                for row in 0..array.len() {
                    seq.serialize_element(&valid(row).then(|| values.value(row)))?;
                }
            }
            DataType::Boolean => {
                let values = array.as_boolean();
                for row in 0..array.len() {
                    seq.serialize_element(&valid(row).then(|| values.value(row)))?;
                }
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                let values = array.as_primitive::<TimestampMicrosecondType>();
                let mut times = Timestamps::default();
                for row in 0..array.len() {
                    match valid(row) {
                        true => seq.serialize_element(times.format(values.value(row)))?,
                        false => seq.serialize_element(&())?,
                    }
                }
            }
            other => {
                let text = format!("<{other}>");
                for row in 0..array.len() {
                    match valid(row) {
                        true => seq.serialize_element(&text)?,
                        false => seq.serialize_element(&())?,
                    }
                }
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
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        let mut times = Timestamps::default();
        for &micros in self.0 {
            seq.serialize_element(times.format(micros))?;
        }
        seq.end()
    }
}

/// The last timestamp formatted, so a run of equal ones is formatted once.
#[derive(Default)]
struct Timestamps(Option<(i64, String)>);

impl Timestamps {
    fn format(&mut self, micros: i64) -> &str {
        if self.0.as_ref().is_none_or(|(known, _)| *known != micros) {
            self.0 = Some((micros, format_timestamp(micros)));
        }
        &self.0.as_ref().expect("just set").1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columnar::to_json;

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
    fn columns_serialize_as_to_json_renders_each_value() {
        use arrow::array::{
            BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
        };
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![Some(1), None])),
            Arc::new(Float64Array::from(vec![
                Some(f64::NEG_INFINITY),
                Some(-0.0),
            ])),
            Arc::new(StringArray::from(vec![None, Some("a\"b")])),
            Arc::new(BooleanArray::from(vec![Some(true), None])),
            Arc::new(TimestampMicrosecondArray::from(vec![Some(0), None]).with_timezone("UTC")),
        ];
        for array in arrays {
            let expected: Vec<serde_json::Value> = (0..array.len())
                .map(|row| to_json(array.as_ref(), row))
                .collect();
            let serialized = serde_json::to_value(JsonColumn(array.as_ref())).unwrap();
            assert_eq!(serialized, serde_json::Value::Array(expected));
        }
    }

    #[test]
    fn entity_rows_keep_the_fields_sent_in_their_types() {
        let field = |name: &str, value_type| FieldSpec {
            name: name.into(),
            value_type,
            nullable: false,
        };
        let fields = EntityFields {
            join_keys: vec![field("user_id", ValueType::Int64)],
            request_fields: vec![field("genre", ValueType::Utf8)],
        };
        let columns: JsonColumns = serde_json::from_str(
            r#"{"user_id": [1, 2], "genre": ["a", null], "ignored": [[], {}]}"#,
        )
        .unwrap();
        let rows = entity_rows(&columns, &fields).unwrap();
        assert_eq!(rows.num_rows(), 2);
        assert_eq!(rows.schema().field(0).name(), "user_id");
        assert_eq!(rows.column(1).null_count(), 1, "request fields may be null");
        let null_key: JsonColumns = serde_json::from_str(r#"{"user_id": [null]}"#).unwrap();
        let error = entity_rows(&null_key, &fields).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the entities: join key `user_id`: `user_id`[0]: expected int64, found null"
        );
        let ragged: JsonColumns = serde_json::from_str(r#"{"user_id": [1], "x": []}"#).unwrap();
        assert_eq!(
            entity_rows(&ragged, &fields).unwrap_err().to_string(),
            "the entities: `user_id` has 1 values but `x` has 0"
        );
    }
}
