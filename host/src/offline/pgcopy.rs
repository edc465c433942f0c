//! Postgres binary `COPY` encoding of Arrow columns and decoding back into Arrow arrays:
//! the bulk path in and out of Postgres, with no text formatting of values on either side.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};

use super::OfflineError;
use crate::columnar::ColumnBuilder;
use crate::model::ValueType;

/// Postgres timestamps count µs from 2000-01-01; ours from 1970-01-01.
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Builds a binary `COPY … FROM STDIN` payload, row by row.
pub struct CopyWriter {
    buffer: Vec<u8>,
}

impl CopyWriter {
    pub fn new() -> Self {
        let mut buffer = Vec::with_capacity(1 << 20);
        buffer.extend_from_slice(SIGNATURE);
        buffer.extend_from_slice(&0i32.to_be_bytes()); // flags
        buffer.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Self { buffer }
    }

    /// Appends `rows` rows made of `columns` (each `(type, array)`), prefixed by a row
    /// ordinal column when `first_ordinal` is given.
    pub fn append(
        &mut self,
        columns: &[(ValueType, &ArrayRef)],
        rows: usize,
        first_ordinal: Option<i64>,
    ) {
        let count = columns.len() + usize::from(first_ordinal.is_some());
        let count = i16::try_from(count).expect("fewer than 32k columns");
        for row in 0..rows {
            self.buffer.extend_from_slice(&count.to_be_bytes());
            if let Some(first) = first_ordinal {
                self.fixed(&(first + row as i64).to_be_bytes());
            }
            for (value_type, array) in columns {
                self.value(*value_type, array, row);
            }
        }
    }

    fn fixed(&mut self, bytes: &[u8]) {
        self.buffer
            .extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        self.buffer.extend_from_slice(bytes);
    }

    fn value(&mut self, value_type: ValueType, array: &ArrayRef, row: usize) {
        if array.is_null(row) {
            self.buffer.extend_from_slice(&(-1i32).to_be_bytes());
            return;
        }
        match value_type {
            ValueType::Int64 => {
                self.fixed(&array.as_primitive::<Int64Type>().value(row).to_be_bytes())
            }
            ValueType::Float64 => self.fixed(
                &array
                    .as_primitive::<Float64Type>()
                    .value(row)
                    .to_bits()
                    .to_be_bytes(),
            ),
            ValueType::Timestamp => {
                let micros = array.as_primitive::<TimestampMicrosecondType>().value(row);
                self.fixed(&(micros - PG_EPOCH_OFFSET_MICROS).to_be_bytes());
            }
            ValueType::Boolean => self.fixed(&[u8::from(array.as_boolean().value(row))]),
            ValueType::Utf8 => {
                let text = array.as_string::<i32>().value(row);
                self.fixed(text.as_bytes());
            }
        }
    }

    /// The payload, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.buffer.extend_from_slice(&(-1i16).to_be_bytes());
        self.buffer
    }
}

/// Decodes one binary field of `value_type` into `builder`.
fn decode(builder: &mut ColumnBuilder, value_type: ValueType, bytes: &[u8]) -> Result<(), String> {
    let eight = || -> Result<[u8; 8], String> {
        bytes
            .try_into()
            .map_err(|_| format!("expected 8 bytes, found {}", bytes.len()))
    };
    match value_type {
        ValueType::Int64 => builder.int(i64::from_be_bytes(eight()?)),
        ValueType::Float64 => builder.float(f64::from_bits(u64::from_be_bytes(eight()?))),
        ValueType::Timestamp => builder.int(i64::from_be_bytes(eight()?) + PG_EPOCH_OFFSET_MICROS),
        ValueType::Boolean => match bytes {
            [flag] => builder.boolean(*flag != 0),
            _ => return Err(format!("expected 1 byte, found {}", bytes.len())),
        },
        ValueType::Utf8 => builder.text(std::str::from_utf8(bytes).map_err(|e| e.to_string())?),
    }
    Ok(())
}

/// Decodes a binary `COPY … TO STDOUT` stream, fed in pieces, into Arrow arrays.
pub struct CopyReader {
    types: Vec<ValueType>,
    builders: Vec<ColumnBuilder>,
    pending: Vec<u8>,
    header_done: bool,
    finished: bool,
    rows: usize,
}

impl CopyReader {
    pub fn new(types: &[ValueType]) -> Self {
        Self {
            types: types.to_vec(),
            builders: types.iter().map(|&t| ColumnBuilder::new(t)).collect(),
            pending: Vec::new(),
            header_done: false,
            finished: false,
            rows: 0,
        }
    }

    /// Decodes every complete row in `bytes` (plus what was left over).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), OfflineError> {
        self.pending.extend_from_slice(bytes);
        let mut at = 0;
        let data = std::mem::take(&mut self.pending);
        if !self.header_done {
            let header = SIGNATURE.len() + 8;
            if data.len() < header {
                self.pending = data;
                return Ok(());
            }
            if &data[..SIGNATURE.len()] != SIGNATURE {
                return Err(corrupt("not a binary COPY stream"));
            }
            let extension = i32::from_be_bytes(
                data[SIGNATURE.len() + 4..header]
                    .try_into()
                    .expect("4 bytes"),
            );
            at = header
                + usize::try_from(extension).map_err(|_| corrupt("negative header extension"))?;
            self.header_done = true;
        }
        while !self.finished {
            let Some(count) = data.get(at..at + 2) else {
                break;
            };
            let count = i16::from_be_bytes(count.try_into().expect("2 bytes"));
            if count == -1 {
                self.finished = true;
                at += 2;
                break;
            }
            if count as usize != self.builders.len() {
                return Err(corrupt(&format!(
                    "row has {count} fields, expected {}",
                    self.builders.len()
                )));
            }
            // Find the row's end before decoding anything, so a partial row waits.
            let mut end = at + 2;
            let mut fields = Vec::with_capacity(self.builders.len());
            let mut complete = true;
            for _ in 0..count {
                let Some(length) = data.get(end..end + 4) else {
                    complete = false;
                    break;
                };
                let length = i32::from_be_bytes(length.try_into().expect("4 bytes"));
                end += 4;
                if length < 0 {
                    fields.push(None);
                    continue;
                }
                let length = length as usize;
                if data.len() < end + length {
                    complete = false;
                    break;
                }
                fields.push(Some(end..end + length));
                end += length;
            }
            if !complete {
                break;
            }
            for ((builder, &value_type), field) in
                self.builders.iter_mut().zip(&self.types).zip(fields)
            {
                match field {
                    None => builder.null(),
                    Some(range) => {
                        decode(builder, value_type, &data[range]).map_err(|e| corrupt(&e))?
                    }
                }
            }
            self.rows += 1;
            at = end;
        }
        self.pending = data[at..].to_vec();
        Ok(())
    }

    /// Rows decoded so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Takes the columns decoded so far, leaving the reader ready for the rest of the
    /// stream: how a long result is cut into batches.
    pub fn take(&mut self) -> (usize, Vec<ArrayRef>) {
        let builders = self.types.iter().map(|&t| ColumnBuilder::new(t)).collect();
        let taken = std::mem::replace(&mut self.builders, builders);
        (
            std::mem::take(&mut self.rows),
            taken.into_iter().map(ColumnBuilder::finish).collect(),
        )
    }

    /// The decoded columns; fails if the stream ended early.
    pub fn finish(self) -> Result<(usize, Vec<ArrayRef>), OfflineError> {
        if !self.finished || !self.pending.is_empty() {
            return Err(corrupt("the COPY stream ended in the middle"));
        }
        Ok((
            self.rows,
            self.builders
                .into_iter()
                .map(ColumnBuilder::finish)
                .collect(),
        ))
    }
}

fn corrupt(message: &str) -> OfflineError {
    OfflineError::Corrupt(format!("binary COPY: {message}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use arrow::array::{
        BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };

    #[test]
    fn encoding_and_decoding_round_trip_in_any_piece_sizes() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(-7)]));
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![Some(0.1), Some(f64::NAN), None]));
        let text: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), Some(""), None]));
        let flags: ArrayRef = Arc::new(BooleanArray::from(vec![None, Some(true), Some(false)]));
        let times: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from(vec![Some(0), Some(1_767_225_600_000_001), None])
                .with_timezone("UTC"),
        );
        let types = [
            ValueType::Int64,
            ValueType::Float64,
            ValueType::Utf8,
            ValueType::Boolean,
            ValueType::Timestamp,
        ];
        let arrays = [&ints, &floats, &text, &flags, &times];
        let columns: Vec<(ValueType, &ArrayRef)> = types.iter().copied().zip(arrays).collect();
        let mut writer = CopyWriter::new();
        writer.append(&columns, 3, None);
        let payload = writer.finish();
        for piece in [1, 3, 7, payload.len()] {
            let mut reader = CopyReader::new(&types);
            for part in payload.chunks(piece) {
                reader.feed(part).unwrap();
            }
            let (rows, decoded) = reader.finish().unwrap();
            assert_eq!(rows, 3);
            for (decoded, original) in decoded.iter().zip(arrays) {
                assert_eq!(decoded.to_data(), original.to_data(), "piece size {piece}");
            }
        }
        let mut truncated = CopyReader::new(&types);
        truncated.feed(&payload[..payload.len() - 5]).unwrap();
        assert!(truncated.finish().is_err());
    }
}
