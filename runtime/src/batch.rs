//! Operations on columnar batches: building, slicing, concatenating, comparing bit for bit.

use std::ops::Range;

use super::bindings::{Batch, BatchIn, Column, Utf8In, Utf8Values, Values, ValuesIn};
use lockstep_model::format_timestamp;

/// Is row `row` valid (not null) under an optional Arrow-style bitmap?
pub fn is_valid(validity: Option<&[u8]>, row: usize) -> bool {
    validity.is_none_or(|bits| bits[row / 8] & (1 << (row % 8)) != 0)
}

/// Bit `i` of an Arrow-style bitmap (a packed boolean column).
pub fn bit(bits: &[u8], i: usize) -> bool {
    bits[i / 8] & (1 << (i % 8)) != 0
}

/// Packs bits Arrow-style: bit (i % 8) of byte (i / 8), padding bits zero.
pub fn pack_bits(values: impl ExactSizeIterator<Item = bool>) -> Vec<u8> {
    let mut bits = vec![0u8; values.len().div_ceil(8)];
    for (i, value) in values.enumerate() {
        bits[i / 8] |= u8::from(value) << (i % 8);
    }
    bits
}

/// Builds a bitmap from per-row validity; `None` when every row is valid.
pub fn bitmap(valid: impl ExactSizeIterator<Item = bool> + Clone) -> Option<Vec<u8>> {
    let all_valid = valid.clone().all(|ok| ok);
    (!all_valid).then(|| pack_bits(valid))
}

/// Packs strings into the offsets + bytes layout.
pub fn utf8<S: AsRef<str>>(strings: impl IntoIterator<Item = S>) -> Utf8Values {
    let mut offsets = vec![0u32];
    let mut data = Vec::new();
    for s in strings {
        data.extend_from_slice(s.as_ref().as_bytes());
        offsets.push(u32::try_from(data.len()).expect("utf8 column over 4 GiB"));
    }
    Utf8Values { offsets, data }
}

/// Value `row` of a packed string column.
pub fn utf8_value(values: &Utf8Values, row: usize) -> &str {
    utf8_in_value(
        Utf8In {
            offsets: &values.offsets,
            data: &values.data,
        },
        row,
    )
}

fn utf8_in_value(values: Utf8In<'_>, row: usize) -> &str {
    let range = values.offsets[row] as usize..values.offsets[row + 1] as usize;
    std::str::from_utf8(&values.data[range]).expect("validated utf8")
}

/// Rows `range` of `batch`.
pub fn slice(batch: &BatchIn<'_>, range: Range<usize>) -> Batch {
    take(batch, &range.collect::<Vec<_>>())
}

/// The rows at `rows` of `batch`, in that order.
pub fn take(batch: &BatchIn<'_>, rows: &[usize]) -> Batch {
    let columns = batch
        .columns
        .iter()
        .map(|column| Column {
            name: column.name.to_owned(),
            values: take_values(column.values, rows),
            validity: column
                .validity
                .and_then(|bits| bitmap(rows.iter().map(|&i| bit(bits, i)))),
        })
        .collect();
    Batch {
        num_rows: u32::try_from(rows.len()).expect("rows of a u32-sized batch"),
        columns,
    }
}

fn take_values(values: ValuesIn<'_>, rows: &[usize]) -> Values {
    match values {
        ValuesIn::Int64(v) => Values::Int64(rows.iter().map(|&i| v[i]).collect()),
        ValuesIn::Timestamp(v) => Values::Timestamp(rows.iter().map(|&i| v[i]).collect()),
        ValuesIn::Float64(v) => Values::Float64(rows.iter().map(|&i| v[i]).collect()),
        ValuesIn::Boolean(v) => Values::Boolean(pack_bits(rows.iter().map(|&i| bit(v, i)))),
        ValuesIn::Utf8(v) => Values::Utf8(utf8(rows.iter().map(|&i| utf8_in_value(v, i)))),
    }
}

#[cfg(test)]
/// Compares two batches value by value, bit for bit (floats by their bits, so NaN equals
/// itself and -0.0 differs from 0.0). Returns the first difference, described.
pub fn first_difference(left: &Batch, right: &Batch) -> Option<String> {
    if left.num_rows != right.num_rows {
        return Some(format!("{} rows vs {} rows", left.num_rows, right.num_rows));
    }
    (0..left.num_rows as usize).find_map(|row| row_difference(left, row, right, row))
}

/// Compares row `left_row` of `left` with row `right_row` of `right`, bit for bit; the
/// first differing column, described (`row N` names the left row).
pub fn row_difference(
    left: &Batch,
    left_row: usize,
    right: &Batch,
    right_row: usize,
) -> Option<String> {
    if left.columns.len() != right.columns.len() {
        return Some(format!(
            "{} columns vs {} columns",
            left.columns.len(),
            right.columns.len()
        ));
    }
    for (a, b) in left.columns.iter().zip(&right.columns) {
        if a.name != b.name {
            return Some(format!("column `{}` vs `{}`", a.name, b.name));
        }
        let (va, vb) = (
            is_valid(a.validity.as_deref(), left_row),
            is_valid(b.validity.as_deref(), right_row),
        );
        let same = match (va, vb) {
            (false, false) => true,
            (true, true) => same_value(&a.values, left_row, &b.values, right_row),
            _ => false,
        };
        if !same {
            return Some(format!(
                "row {left_row}, column `{}`: {} vs {}",
                a.name,
                render(&a.values, va, left_row),
                render(&b.values, vb, right_row)
            ));
        }
    }
    None
}

/// A digest of one row's bits (validity and value of every column), so rows can be
/// compared later without keeping them.
pub fn row_fingerprint(batch: &Batch, row: usize) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    let mut hash = Sha256::new();
    for column in &batch.columns {
        if !is_valid(column.validity.as_deref(), row) {
            hash.update([0u8]);
            continue;
        }
        hash.update([1u8]);
        match &column.values {
            Values::Int64(v) | Values::Timestamp(v) => hash.update(v[row].to_le_bytes()),
            Values::Float64(v) => hash.update(v[row].to_bits().to_le_bytes()),
            Values::Boolean(v) => hash.update([u8::from(bit(v, row))]),
            Values::Utf8(v) => {
                let value = utf8_value(v, row);
                hash.update((value.len() as u64).to_le_bytes());
                hash.update(value.as_bytes());
            }
        }
    }
    hash.finalize().into()
}

fn same_value(a: &Values, i: usize, b: &Values, j: usize) -> bool {
    match (a, b) {
        (Values::Int64(a), Values::Int64(b)) | (Values::Timestamp(a), Values::Timestamp(b)) => {
            a[i] == b[j]
        }
        (Values::Float64(a), Values::Float64(b)) => a[i].to_bits() == b[j].to_bits(),
        (Values::Boolean(a), Values::Boolean(b)) => bit(a, i) == bit(b, j),
        (Values::Utf8(a), Values::Utf8(b)) => utf8_value(a, i) == utf8_value(b, j),
        _ => false,
    }
}

/// Longest string value shown in a message; longer ones are cut.
const MAX_RENDERED_CHARS: usize = 64;

/// One value as text, for tables and error messages.
pub fn render(values: &Values, valid: bool, row: usize) -> String {
    if !valid {
        return "null".to_owned();
    }
    match values {
        Values::Int64(v) => v[row].to_string(),
        Values::Timestamp(v) => format_timestamp(v[row]),
        Values::Float64(v) => format!("{:?}", v[row]),
        Values::Boolean(v) => bit(v, row).to_string(),
        Values::Utf8(v) => {
            let value = utf8_value(v, row);
            match value.char_indices().nth(MAX_RENDERED_CHARS) {
                None => format!("{value:?}"),
                Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
            }
        }
    }
}

/// Approximate bytes the batch occupies once copied into guest memory.
pub fn size_in_guest(batch: &BatchIn<'_>) -> usize {
    batch
        .columns
        .iter()
        .map(|column| {
            let values = match column.values {
                ValuesIn::Int64(v) | ValuesIn::Timestamp(v) => v.len() * 8,
                ValuesIn::Float64(v) => v.len() * 8,
                ValuesIn::Boolean(v) => v.len(),
                ValuesIn::Utf8(v) => v.offsets.len() * 4 + v.data.len(),
            };
            column.name.len() + values + column.validity.map_or(0, <[u8]>::len)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Batch {
        Batch {
            num_rows: 10,
            columns: vec![
                Column {
                    name: "n".into(),
                    values: Values::Int64((0..10).collect()),
                    validity: bitmap((0..10).map(|i| i % 3 != 0)),
                },
                Column {
                    name: "s".into(),
                    values: Values::Utf8(utf8((0..10).map(|i| "é".repeat(i)))),
                    validity: None,
                },
                Column {
                    name: "f".into(),
                    values: Values::Float64((0..10).map(|i| i as f64 / 3.0).collect()),
                    validity: None,
                },
            ],
        }
    }

    #[test]
    fn differences_are_found_and_described() {
        let whole = sample();
        let mut other = whole.clone();
        if let Values::Float64(v) = &mut other.columns[2].values {
            v[4] = -v[4];
        }
        let diff = first_difference(&whole, &other).unwrap();
        assert!(diff.starts_with("row 4, column `f`"), "{diff}");

        let mut nulled = whole.clone();
        nulled.columns[1].validity = bitmap((0..10).map(|i| i != 2));
        assert_eq!(
            first_difference(&whole, &nulled).unwrap(),
            "row 2, column `s`: \"éé\" vs null"
        );
    }

    #[test]
    fn bitmap_is_none_when_all_valid() {
        assert_eq!(bitmap([true; 9].into_iter()), None);
        assert_eq!(bitmap([true, false, true].into_iter()), Some(vec![0b101]));
        assert_eq!(bitmap(std::iter::empty()), None);
    }

    #[test]
    fn differences_of_huge_values_are_described_briefly() {
        let text = |fill: &str| Batch {
            num_rows: 1,
            columns: vec![Column {
                name: "s".into(),
                values: Values::Utf8(utf8([fill.repeat(8 << 20)])),
                validity: None,
            }],
        };
        let difference = row_difference(&text("a"), 0, &text("b"), 0).unwrap();
        assert!(difference.len() < 300, "{difference}");
        assert!(difference.contains("(8388608 bytes)"), "{difference}");
    }
}
