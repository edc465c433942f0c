//! Plain-text tables of batches and signatures for terminal output.

use crate::runtime::batch::{is_valid, render};
use crate::runtime::validate::type_name;
use crate::runtime::{Batch, Field};

use super::term::safe;

/// The first `max_rows` rows of `batch` as an aligned text table.
pub fn batch_table(batch: &Batch, max_rows: usize) -> String {
    let rows = (batch.num_rows as usize).min(max_rows);
    let mut cells: Vec<Vec<String>> = vec![batch.columns.iter().map(|c| safe(&c.name)).collect()];
    for row in 0..rows {
        cells.push(
            batch
                .columns
                .iter()
                .map(|c| {
                    safe(&render(
                        &c.values,
                        is_valid(c.validity.as_deref(), row),
                        row,
                    ))
                })
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..batch.columns.len())
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
    if batch.num_rows as usize > rows {
        out.push_str(&format!(
            "  … {} more rows\n",
            batch.num_rows as usize - rows
        ));
    }
    out
}

/// `name type` pairs, `?` marking nullable fields: `rating float64?, title utf8`.
pub fn fields_line(fields: &[Field]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| {
            let null = if f.nullable { "?" } else { "" };
            format!("{} {}{null}", safe(&f.name), type_name(f.data_type))
        })
        .collect();
    if parts.is_empty() {
        "(none)".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The model's fields on one line, as [`fields_line`] does for signatures.
pub fn specs_line(fields: &[crate::model::FieldSpec]) -> String {
    if fields.is_empty() {
        return "(none)".to_owned();
    }
    fields
        .iter()
        .map(|field| safe(&field.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}
