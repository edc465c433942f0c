//! Checks that a batch matches a list of fields and that a signature is well formed.
//!
//! The guest is never trusted: every output batch goes through [`check_batch`] before
//! the host reads it, so a malformed batch is a typed error, never a panic later.

use std::collections::HashSet;

use lockstep_model::FieldSpec;

use super::bindings::{BatchIn, ColumnIn, DataType, Signature, ValuesIn, value_type};

/// Longest name accepted for a transform, version or field.
const MAX_NAME_LEN: usize = 128;

/// Checks `batch` has exactly `fields`, in order, with consistent lengths, valid UTF-8 and
/// no nulls in non-nullable fields. The error names the offending column.
pub fn check_batch(batch: &BatchIn<'_>, fields: &[FieldSpec]) -> Result<(), String> {
    if batch.columns.len() != fields.len() {
        let names: Vec<&str> = batch.columns.iter().map(|c| c.name).collect();
        let expected: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        return Err(format!("expected columns {expected:?}, got {names:?}"));
    }
    let rows = batch.num_rows as usize;
    for (column, field) in batch.columns.iter().zip(fields) {
        check_column(column, field, rows).map_err(|e| format!("column `{}`: {e}", field.name))?;
    }
    Ok(())
}

fn check_column(column: &ColumnIn<'_>, field: &FieldSpec, rows: usize) -> Result<(), String> {
    if column.name != field.name {
        return Err(format!(
            "found a column named `{}` in its place",
            column.name
        ));
    }
    let found = value_type(data_type_of(column.values));
    if found != field.value_type {
        return Err(format!("expected {}, got {found}", field.value_type));
    }
    let len = match column.values {
        ValuesIn::Int64(v) | ValuesIn::Timestamp(v) => v.len(),
        ValuesIn::Float64(v) => v.len(),
        ValuesIn::Boolean(bits) if bits.len() != rows.div_ceil(8) => {
            return Err(format!(
                "boolean bitmap has {} bytes for {rows} rows (expected {})",
                bits.len(),
                rows.div_ceil(8)
            ));
        }
        ValuesIn::Boolean(_) => rows,
        ValuesIn::Utf8(utf8) => {
            check_utf8(utf8.offsets, utf8.data)?;
            utf8.offsets.len().saturating_sub(1)
        }
    };
    if len != rows {
        return Err(format!("has {len} values for {rows} rows"));
    }
    if let Some(validity) = column.validity {
        if validity.len() != rows.div_ceil(8) {
            return Err(format!(
                "validity bitmap has {} bytes for {rows} rows (expected {})",
                validity.len(),
                rows.div_ceil(8)
            ));
        }
        if !field.nullable && null_count(validity, rows) > 0 {
            return Err("has nulls but the field is not nullable".to_owned());
        }
    }
    Ok(())
}

fn check_utf8(offsets: &[u32], data: &[u8]) -> Result<(), String> {
    if offsets.is_empty() {
        return Err("utf8 offsets must hold num-rows + 1 entries".to_owned());
    }
    // Arrow's offsets are `i32`.
    if i32::try_from(data.len()).is_err() {
        return Err(format!("holds {} bytes of strings, over 2 GiB", data.len()));
    }
    let text = std::str::from_utf8(data).map_err(|e| format!("invalid UTF-8: {e}"))?;
    let mut previous = 0usize;
    for (i, &offset) in offsets.iter().enumerate() {
        let offset = offset as usize;
        if (i > 0 && offset < previous) || offset > data.len() {
            return Err(format!(
                "utf8 offset {i} ({offset}) is out of order or out of bounds"
            ));
        }
        if !text.is_char_boundary(offset) {
            return Err(format!("utf8 offset {i} ({offset}) splits a character"));
        }
        previous = offset;
    }
    Ok(())
}

/// Number of null rows in an Arrow-style validity bitmap of `rows` rows.
pub fn null_count(validity: &[u8], rows: usize) -> usize {
    let full = &validity[..rows / 8];
    let mut nulls: usize = full.iter().map(|byte| byte.count_zeros() as usize).sum();
    if !rows.is_multiple_of(8) {
        let mask = (1u8 << (rows % 8)) - 1;
        nulls += (!validity[rows / 8] & mask).count_ones() as usize;
    }
    nulls
}

/// Checks names are non-empty, short, unique and plain (`[A-Za-z0-9_]`, not starting with a digit).
pub fn check_signature(signature: &Signature) -> Result<(), String> {
    if signature.name.is_empty() || signature.name.len() > MAX_NAME_LEN {
        return Err(format!("transform name must be 1..={MAX_NAME_LEN} bytes"));
    }
    if !is_identifier(&signature.name) {
        return Err(format!(
            "transform name `{}` must be letters, digits and `_`",
            lockstep_model::text::echo(&signature.name)
        ));
    }
    if signature.version.len() > MAX_NAME_LEN {
        return Err(format!("version must be 1..={MAX_NAME_LEN} bytes"));
    }
    lockstep_model::text::check_label(&signature.version, MAX_NAME_LEN)
        .map_err(|e| format!("version {e}"))?;
    if signature.outputs.is_empty() {
        return Err("a transform must have at least one output".to_owned());
    }
    for (side, fields) in [("input", &signature.inputs), ("output", &signature.outputs)] {
        let mut seen = HashSet::new();
        for field in fields {
            if !is_identifier(&field.name) || field.name.len() > MAX_NAME_LEN {
                return Err(format!(
                    "{side} `{}` must be 1..={MAX_NAME_LEN} letters, digits and `_`",
                    lockstep_model::text::echo(&field.name)
                ));
            }
            if !seen.insert(field.name.as_str()) {
                return Err(format!("{side} `{}` is declared twice", field.name));
            }
        }
    }
    Ok(())
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn data_type_of(values: ValuesIn<'_>) -> DataType {
    match values {
        ValuesIn::Int64(_) => DataType::Int64,
        ValuesIn::Float64(_) => DataType::Float64,
        ValuesIn::Utf8(_) => DataType::Utf8,
        ValuesIn::Boolean(_) => DataType::Boolean,
        ValuesIn::Timestamp(_) => DataType::Timestamp,
    }
}
