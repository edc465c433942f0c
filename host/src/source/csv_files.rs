//! CSV files with a header row: one chunk per file; every line is split, only the requested
//! columns are built, each parsed per its declared type.

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::csv::ReaderBuilder;
use arrow::csv::reader::Format;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;

use super::batches::{Encoding, ShapedReader, Shaper, TimeFilter};
use super::files::{self, Listed};
use super::{Chunk, SourceError};
use crate::model::FieldSpec;
use crate::model::definitions::Source;

/// Appends the chunk of one file after checking its header names every declared column.
pub(super) fn plan_file(
    file: &Listed,
    source: &Source,
    chunks: &mut Vec<Chunk>,
) -> Result<(), SourceError> {
    let header = header(&file.path, &file.name)?;
    for field in source.columns() {
        position(&file.name, &header, &field)?;
    }
    chunks.push(Chunk::CsvFile {
        path: file.name.clone(),
        file_bytes: files::size(&file.path, &file.name)?,
    });
    Ok(())
}

/// Reads the file `name` at `path`, building only the columns the shaped output needs.
pub(super) fn open(
    name: &str,
    path: &Path,
    outputs: Vec<FieldSpec>,
    time: Option<TimeFilter>,
    batch_rows: usize,
) -> Result<impl Iterator<Item = Result<RecordBatch, SourceError>> + Send + 'static, SourceError> {
    let header = header(path, name)?;
    let shaper = Shaper::new(name.to_owned(), Encoding::Text, outputs, time, 0);
    let projection = shaper
        .inputs()
        .iter()
        .map(|field| position(name, &header, field))
        .collect::<Result<Vec<_>, _>>()?;
    // Every column is read as text; the shaper parses the projected ones per declared type.
    let schema = Schema::new(
        header
            .iter()
            .map(|column| Field::new(column, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    let reader = ReaderBuilder::new(Arc::new(schema))
        .with_header(true)
        .with_batch_size(batch_rows.max(1))
        .with_projection(projection)
        .build(BufReader::new(files::open(path, name)?))
        .map_err(|e| corrupt(name, e))?;
    let location = name.to_owned();
    let raw = reader.map(move |batch| batch.map_err(|e| corrupt(&location, e)));
    Ok(ShapedReader::new(raw, shaper))
}

/// The column names of the header row.
pub(super) fn header(path: &Path, name: &str) -> Result<Vec<String>, SourceError> {
    let file = files::open(path, name)?;
    let (schema, _) = Format::default()
        .with_header(true)
        .infer_schema(BufReader::new(file), Some(0))
        .map_err(|e| corrupt(name, e))?;
    Ok(schema.fields().iter().map(|f| f.name().clone()).collect())
}

/// The index of `field` in the header.
fn position(name: &str, header: &[String], field: &FieldSpec) -> Result<usize, SourceError> {
    header
        .iter()
        .position(|column| column == &field.name)
        .ok_or_else(|| {
            SourceError::missing_column(
                &format!("{name} (header row)"),
                &field.name,
                header.iter().map(String::as_str),
            )
        })
}

pub(super) fn corrupt(name: &str, error: ArrowError) -> SourceError {
    SourceError::Corrupt {
        path: name.to_owned(),
        message: format!("it is not a readable CSV file with a header row ({error})"),
    }
}
