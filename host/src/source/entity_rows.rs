//! Entity rows of a training set, read whole: every column kept, in order. The columns a
//! request uses (join keys, the time, request fields) come in their canonical types; the
//! others (labels, row ids, anything a team keeps beside its entities) come as read.

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_empty_array};
use arrow::csv::ReaderBuilder;
use arrow::csv::reader::Format;
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::batches::{Encoding, Shaper};
use super::csv_files::corrupt;
use super::parquet_files::not_parquet;
use super::{SourceError, files};
use crate::model::FieldSpec;
use crate::model::definitions::SourceKind;
use crate::model::{arrow_field, arrow_type};

/// The columns a training set request reads from its entity rows.
#[derive(Debug, Clone, Copy)]
pub struct EntityColumns<'a> {
    /// Must be present: the time column and the join keys.
    pub required: &'a [FieldSpec],
    /// Typed when present: the request fields on-demand views may use.
    pub optional: &'a [FieldSpec],
}

/// Rows decoded per batch while reading.
const BATCH_ROWS: usize = 64 * 1024;

/// Reads a whole `.parquet` or `.csv` file of entity rows. A CSV file's other columns get
/// the types Arrow infers from the whole file (integers, floats, booleans, text).
pub fn read_entity_file(path: &Path, columns: EntityColumns) -> Result<RecordBatch, SourceError> {
    let name = path.display().to_string();
    match super::file_format(path, &name)? {
        SourceKind::Parquet => {
            let builder = ParquetRecordBatchReaderBuilder::try_new(files::open(path, &name)?)
                .map_err(|e| not_parquet(&name, e))?;
            let native = decode(&name, builder)?;
            shape(&name, Encoding::Typed, native, columns)
        }
        _ => shape(
            &name,
            Encoding::Text,
            read_csv(path, &name, columns)?,
            columns,
        ),
    }
}

/// Reads entity rows sent as the bytes of a Parquet file (an HTTP body).
pub fn parquet_entity_rows(
    name: &str,
    bytes: Bytes,
    columns: EntityColumns,
) -> Result<RecordBatch, SourceError> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| not_parquet(name, e))?;
    let native = decode(name, builder)?;
    shape(name, Encoding::Typed, native, columns)
}

/// Types the used columns of `native` rows, keeping every column in place. Used columns
/// sent as JSON are already typed, so this is what the file and Parquet paths share.
pub(super) fn shape(
    location: &str,
    encoding: Encoding,
    native: RecordBatch,
    columns: EntityColumns,
) -> Result<RecordBatch, SourceError> {
    let schema = native.schema();
    let present = |field: &&FieldSpec| schema.column_with_name(&field.name).is_some();
    let used: Vec<FieldSpec> = columns
        .required
        .iter()
        .chain(columns.optional.iter().filter(present))
        .cloned()
        .collect();
    let typed: Vec<ArrayRef> = if native.num_rows() == 0 {
        for field in columns.required {
            if !present(&field) {
                return Err(SourceError::missing_column(
                    location,
                    &field.name,
                    schema.fields().iter().map(|f| f.name().as_str()),
                ));
            }
        }
        used.iter()
            .map(|field| new_empty_array(&arrow_type(field.value_type)))
            .collect()
    } else {
        let mut shaper = Shaper::new(location.to_owned(), encoding, used.clone(), None, 0);
        shaper
            .shape(&native)?
            .expect("no time filter: every row is kept")
            .columns()
            .to_vec()
    };
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut arrays = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(native.columns()) {
        match used.iter().position(|spec| spec.name == *field.name()) {
            Some(index) => {
                fields.push(arrow_field(&used[index]));
                arrays.push(typed[index].clone());
            }
            None => {
                fields.push(field.as_ref().clone());
                arrays.push(column.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| SourceError::Corrupt {
        path: location.to_owned(),
        message: format!("cannot assemble the entity rows: {e}"),
    })
}

/// Every row group of a Parquet reader, as one batch.
fn decode<T: parquet::file::reader::ChunkReader + 'static>(
    name: &str,
    builder: ParquetRecordBatchReaderBuilder<T>,
) -> Result<RecordBatch, SourceError> {
    let schema = builder.schema().clone();
    let batches = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| not_parquet(name, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SourceError::Corrupt {
            path: name.to_owned(),
            message: format!("cannot decode a row group: {e}"),
        })?;
    concat(name, &schema, &batches)
}

/// A CSV file as one batch: the used columns as text (the shaper parses them), the others
/// in the types inferred from every line.
fn read_csv(path: &Path, name: &str, columns: EntityColumns) -> Result<RecordBatch, SourceError> {
    let (inferred, _) = Format::default()
        .with_header(true)
        .infer_schema(BufReader::new(files::open(path, name)?), None)
        .map_err(|e| corrupt(name, e))?;
    let used = |column: &str| {
        columns
            .required
            .iter()
            .chain(columns.optional)
            .any(|field| field.name == column)
    };
    let schema = Arc::new(Schema::new(
        inferred
            .fields()
            .iter()
            .map(|field| {
                if used(field.name()) {
                    Field::new(field.name(), DataType::Utf8, true)
                } else {
                    field.as_ref().clone()
                }
            })
            .collect::<Vec<_>>(),
    ));
    let batches = ReaderBuilder::new(schema.clone())
        .with_header(true)
        .with_batch_size(BATCH_ROWS)
        .build(BufReader::new(files::open(path, name)?))
        .map_err(|e| corrupt(name, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt(name, e))?;
    concat(name, &schema, &batches)
}

fn concat(
    name: &str,
    schema: &arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> Result<RecordBatch, SourceError> {
    arrow::compute::concat_batches(schema, batches).map_err(|e| SourceError::Corrupt {
        path: name.to_owned(),
        message: format!("cannot assemble the entity rows: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ValueType;
    use arrow::array::{Array, Int64Array, StringArray, TimestampMicrosecondArray};

    fn spec(name: &str, value_type: ValueType, nullable: bool) -> FieldSpec {
        FieldSpec {
            name: name.to_owned(),
            value_type,
            nullable,
        }
    }

    fn columns() -> (Vec<FieldSpec>, Vec<FieldSpec>) {
        (
            vec![
                spec("event_timestamp", ValueType::Timestamp, false),
                spec("user_id", ValueType::Int64, false),
            ],
            vec![spec("amount", ValueType::Float64, true)],
        )
    }

    #[test]
    fn csv_keeps_every_column_in_order_with_inferred_types() {
        let dir = std::env::temp_dir().join(format!("lockstep-entity-rows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("labels.csv");
        std::fs::write(
            &path,
            "row_id,user_id,is_fraud,event_timestamp,note\n\
             a1,7,1,2026-01-02T00:00:00Z,first\n\
             a2,8,0,2026-01-03,\n",
        )
        .unwrap();
        let (required, optional) = columns();
        let batch = read_entity_file(
            &path,
            EntityColumns {
                required: &required,
                optional: &optional,
            },
        )
        .unwrap();
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            names,
            ["row_id", "user_id", "is_fraud", "event_timestamp", "note"]
        );
        let labels = batch
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(labels.values(), &[1, 0]);
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(ids.value(1), "a2");
        let times = batch.column(3);
        assert!(times.as_any().is::<TimestampMicrosecondArray>());
        assert!(batch.column(4).is_null(1));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_key_is_named() {
        let batch = RecordBatch::try_from_iter([(
            "event_timestamp",
            Arc::new(StringArray::from(vec!["2026-01-01"])) as ArrayRef,
        )])
        .unwrap();
        let (required, optional) = columns();
        let error = shape(
            "rows",
            Encoding::Text,
            batch,
            EntityColumns {
                required: &required,
                optional: &optional,
            },
        )
        .unwrap_err();
        assert!(error.to_string().contains("user_id"), "{error}");
    }

    #[test]
    fn parquet_bytes_pass_other_columns_through_unchanged() {
        let batch = RecordBatch::try_from_iter([
            (
                "label",
                Arc::new(arrow::array::BooleanArray::from(vec![true, false])) as ArrayRef,
            ),
            (
                "user_id",
                Arc::new(arrow::array::Int32Array::from(vec![1, 2])) as ArrayRef,
            ),
            (
                "event_timestamp",
                Arc::new(StringArray::from(vec!["2026-01-01", "2026-01-02"])) as ArrayRef,
            ),
        ])
        .unwrap();
        let mut bytes = Vec::new();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let (_, optional) = columns();
        // A string time column is refused by type, as from any Parquet source...
        let required = columns().0;
        let columns_used = EntityColumns {
            required: &required,
            optional: &optional,
        };
        assert!(parquet_entity_rows("body", Bytes::from(bytes.clone()), columns_used).is_err());
        // ...while a key stored narrower is widened, and the label passes as is.
        let required = vec![spec("user_id", ValueType::Int64, false)];
        let read = parquet_entity_rows(
            "body",
            Bytes::from(bytes),
            EntityColumns {
                required: &required,
                optional: &optional,
            },
        )
        .unwrap();
        assert_eq!(read.schema().field(0).data_type(), &DataType::Boolean);
        assert_eq!(read.schema().field(1).data_type(), &DataType::Int64);
        assert_eq!(read.schema().field(2).data_type(), &DataType::Utf8);
    }
}
