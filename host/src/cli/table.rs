//! Plain-text tables of batches and signatures for terminal output.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimestampMicrosecondType};

use crate::model::{FieldSpec, format_timestamp};

use super::term::safe;

/// Longest string value shown in a table; longer ones are cut.
const MAX_RENDERED_CHARS: usize = 64;

/// The first `max_rows` rows of `batch` as an aligned text table.
pub fn batch_table(batch: &RecordBatch, max_rows: usize) -> String {
    let rows = batch.num_rows().min(max_rows);
    let schema = batch.schema();
    let mut cells: Vec<Vec<String>> =
        vec![schema.fields().iter().map(|f| safe(f.name())).collect()];
    for row in 0..rows {
        cells.push(
            batch
                .columns()
                .iter()
                .map(|column| safe(&render(column.as_ref(), row)))
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..batch.num_columns())
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str("  ");
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if batch.num_rows() > rows {
        out.push_str(&format!("  … {} more rows\n", batch.num_rows() - rows));
    }
    out
}

/// One value as a table shows it: floats in Rust's shortest round-trip form, strings
/// quoted (long ones cut), timestamps in RFC 3339, `null`.
fn render(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return "null".to_owned();
    }
    match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Float64 => format!("{:?}", array.as_primitive::<Float64Type>().value(row)),
        DataType::Boolean => array.as_boolean().value(row).to_string(),
        DataType::Timestamp(..) => {
            format_timestamp(array.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        DataType::Utf8 => {
            let value = array.as_string::<i32>().value(row);
            match value.char_indices().nth(MAX_RENDERED_CHARS) {
                None => format!("{value:?}"),
                Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
            }
        }
        other => format!("<{other}>"),
    }
}

/// `name type` pairs, `?` marking nullable fields: `rating float64?, title utf8`.
pub fn fields_line(fields: &[FieldSpec]) -> String {
    if fields.is_empty() {
        return "(none)".to_owned();
    }
    fields
        .iter()
        .map(|field| safe(&field.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}
