//! Deterministic sample rows for a signature's inputs, used by smoke runs and `transform check`.
//!
//! The values cover the edges transforms get wrong: zero, negatives, fractions, large
//! magnitudes, empty and non-ASCII strings, and nulls in every nullable field.

use super::batch::{bitmap, pack_bits, utf8};
use lockstep_model::{FieldSpec, ValueType};

use super::bindings::{Batch, Column, Values};

const INTS: [i64; 8] = [0, 1, -1, 42, 7_200, -86_400, 1_000_000, i32::MAX as i64];
const FLOATS: [f64; 8] = [0.0, 1.0, -1.5, 0.25, 3.75, 49.99, 1234.5, 1.0e9];
const STRINGS: [&str; 8] = ["", "US", "comedy", "EUR", "drama", "GB", "naïve ✓", "USD"];
/// 2026-01-01T00:00:00Z, stepped by 37 minutes so every hour of the day shows up.
const FIRST_TIMESTAMP_MICROS: i64 = 1_767_225_600_000_000;
const TIMESTAMP_STEP_MICROS: i64 = 37 * 60 * 1_000_000;
/// Every `NULL_EVERY`-th row of a nullable field is null.
const NULL_EVERY: usize = 5;

/// `rows` sample rows with one column per field, in order.
pub fn sample_batch(fields: &[FieldSpec], rows: u32) -> Batch {
    let n = rows as usize;
    let columns = fields
        .iter()
        .enumerate()
        .map(|(f, field)| {
            // Offset each column so columns of one type do not move in lockstep.
            let pick = |i: usize| (i * 3 + f * 5) % 8;
            let values = match field.value_type {
                ValueType::Int64 => Values::Int64((0..n).map(|i| INTS[pick(i)]).collect()),
                ValueType::Float64 => Values::Float64((0..n).map(|i| FLOATS[pick(i)]).collect()),
                ValueType::Utf8 => Values::Utf8(utf8((0..n).map(|i| STRINGS[pick(i)]))),
                ValueType::Boolean => Values::Boolean(pack_bits((0..n).map(|i| pick(i) % 2 == 0))),
                ValueType::Timestamp => Values::Timestamp(
                    (0..n as i64)
                        .map(|i| FIRST_TIMESTAMP_MICROS + i * TIMESTAMP_STEP_MICROS)
                        .collect(),
                ),
            };
            let validity = field
                .nullable
                .then(|| bitmap((0..n).map(|i| (i + f) % NULL_EVERY != 0)))
                .flatten();
            Column {
                name: field.name.clone(),
                values,
                validity,
            }
        })
        .collect();
    Batch {
        num_rows: rows,
        columns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::check_batch;

    #[test]
    fn samples_match_their_fields() {
        let fields: Vec<FieldSpec> = ValueType::ALL
            .into_iter()
            .enumerate()
            .map(|(i, value_type)| FieldSpec {
                name: format!("f{i}"),
                value_type,
                nullable: i % 2 == 0,
            })
            .collect();
        for rows in [0, 1, 9, 64] {
            let batch = sample_batch(&fields, rows);
            check_batch(&batch.borrow(), &fields).unwrap();
        }
        assert!(sample_batch(&fields, 64).columns[0].validity.is_some());
        assert!(sample_batch(&fields, 64).columns[1].validity.is_none());
    }
}
