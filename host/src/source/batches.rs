//! Shapes decoded batches into the output contract: the requested columns in order, canonical
//! types, non-nullable columns checked, rows outside the window dropped, no empty batches.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow::buffer::BooleanBuffer;
use arrow::compute::filter_record_batch;
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};

use super::canonical::{self, ConvertError};
use super::{SourceError, TimeWindow};
use crate::model::{FieldSpec, ValueType};

/// How input columns are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    /// Typed columns (Parquet, Postgres): converted with [`canonical::convert`].
    Typed,
    /// Text columns of a CSV file: parsed per declared type; positions are reported as
    /// lines too (the header is line 1).
    Text,
}

/// Rows are kept when the source's timestamp column lies in the window; a null timestamp
/// never does.
#[derive(Debug, Clone)]
pub(super) struct TimeFilter {
    /// The timestamp column as the source declares it.
    pub field: FieldSpec,
    pub window: TimeWindow,
}

/// Turns the batches read from one file (or query) into output batches.
pub(super) struct Shaper {
    location: String,
    encoding: Encoding,
    outputs: Vec<FieldSpec>,
    schema: SchemaRef,
    time: Option<TimeFilter>,
    /// The 0-based row of the file the next input batch starts at.
    next_row: u64,
}

impl Shaper {
    pub(super) fn new(
        location: String,
        encoding: Encoding,
        outputs: Vec<FieldSpec>,
        time: Option<TimeFilter>,
        first_row: u64,
    ) -> Self {
        let schema = crate::model::arrow_schema(&outputs);
        Self {
            location,
            encoding,
            outputs,
            schema,
            time,
            next_row: first_row,
        }
    }

    /// The columns read from the input, each once: the outputs, then the timestamp column.
    pub(super) fn inputs(&self) -> Vec<FieldSpec> {
        let mut inputs = self.outputs.clone();
        if let Some(time) = &self.time
            && !inputs.iter().any(|field| field.name == time.field.name)
        {
            inputs.push(time.field.clone());
        }
        inputs
    }

    /// Shapes one input batch (whose columns are found by name); `None` when no row is left.
    /// Every row read is checked, inside the window or not.
    pub(super) fn shape(
        &mut self,
        batch: &RecordBatch,
    ) -> Result<Option<RecordBatch>, SourceError> {
        let first_row = self.next_row;
        self.next_row += batch.num_rows() as u64;
        let mut columns = Vec::with_capacity(self.outputs.len());
        for field in &self.outputs {
            let array = self.convert(batch, field, first_row)?;
            if !field.nullable {
                self.check_nulls(&array, &field.name, first_row)?;
            }
            columns.push(array);
        }
        let keep = match &self.time {
            Some(time) => {
                let array = match self.outputs.iter().position(|f| f.name == time.field.name) {
                    Some(index) => columns[index].clone(),
                    None => self.convert(batch, &time.field, first_row)?,
                };
                if !time.field.nullable {
                    self.check_nulls(&array, &time.field.name, first_row)?;
                }
                window_mask(&array, time.window)
            }
            None => None,
        };
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let shaped = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map_err(|e| SourceError::Corrupt {
                path: self.location.clone(),
                message: format!("cannot assemble a batch: {e}"),
            })?;
        let shaped = match keep {
            Some(mask) => {
                filter_record_batch(&shaped, &mask).map_err(|e| SourceError::Corrupt {
                    path: self.location.clone(),
                    message: format!("cannot filter a batch by time: {e}"),
                })?
            }
            None => shaped,
        };
        Ok((shaped.num_rows() > 0).then_some(shaped))
    }

    /// The column `field` of `batch`, in its canonical type.
    fn convert(
        &self,
        batch: &RecordBatch,
        field: &FieldSpec,
        first_row: u64,
    ) -> Result<ArrayRef, SourceError> {
        let array = batch.column_by_name(&field.name).ok_or_else(|| {
            SourceError::missing_column(
                &self.location,
                &field.name,
                batch
                    .schema_ref()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str()),
            )
        })?;
        let converted = match self.encoding {
            Encoding::Typed => canonical::convert(array, field.value_type),
            Encoding::Text => canonical::parse_text(array, field.value_type),
        };
        converted.map_err(|error| self.convert_error(error, field, first_row))
    }

    fn convert_error(&self, error: ConvertError, field: &FieldSpec, first_row: u64) -> SourceError {
        let declared = field.value_type;
        let message = match error {
            ConvertError::Type(message) => message,
            // The value itself is not repeated: errors never carry a file's contents.
            ConvertError::Value { index, .. } => format!(
                "has a value in {} that is not a valid {declared}{}",
                self.position(first_row + index as u64),
                text_hint(declared)
            ),
            ConvertError::Range(message) => {
                format!("cannot be converted to {declared}: {message}")
            }
        };
        SourceError::schema(&self.location, &field.name, message)
    }

    fn check_nulls(
        &self,
        array: &ArrayRef,
        column: &str,
        first_row: u64,
    ) -> Result<(), SourceError> {
        if array.null_count() == 0 {
            return Ok(());
        }
        let Some(index) = (0..array.len()).find(|&i| array.is_null(i)) else {
            return Ok(());
        };
        let row = first_row + index as u64 + 1;
        Err(SourceError::NullInRequired {
            location: self.location.clone(),
            column: column.to_owned(),
            row,
            line: (self.encoding == Encoding::Text).then_some(row + 1),
        })
    }

    /// `row 7` or, in a CSV file, `line 8`, from a 0-based row.
    fn position(&self, row: u64) -> String {
        match self.encoding {
            Encoding::Typed => format!("row {}", row + 1),
            Encoding::Text => format!("line {}", row + 2),
        }
    }
}

fn text_hint(declared: ValueType) -> &'static str {
    match declared {
        ValueType::Timestamp => {
            " (expected RFC 3339 like 2026-01-03T04:05:06Z or 2026-01-03 04:05:06.123456+00:00, or a date like 2026-01-03)"
        }
        ValueType::Boolean => " (expected true or false)",
        ValueType::Int64 | ValueType::Float64 | ValueType::Utf8 => "",
    }
}

/// The rows of a canonical timestamp column inside `window`, or `None` when all are.
fn window_mask(timestamps: &ArrayRef, window: TimeWindow) -> Option<BooleanArray> {
    let timestamps = timestamps.as_primitive::<TimestampMicrosecondType>();
    if window.is_unbounded() && timestamps.null_count() == 0 {
        return None;
    }
    let keep = BooleanBuffer::collect_bool(timestamps.len(), |i| {
        timestamps.is_valid(i) && window.contains(timestamps.value(i))
    });
    if keep.count_set_bits() == timestamps.len() {
        return None;
    }
    Some(BooleanArray::new(keep, None))
}

/// A blocking reader of shaped batches over raw batches of one file; stops after an error.
pub(super) struct ShapedReader<I> {
    raw: I,
    shaper: Shaper,
    done: bool,
}

impl<I> ShapedReader<I> {
    pub(super) fn new(raw: I, shaper: Shaper) -> Self {
        Self {
            raw,
            shaper,
            done: false,
        }
    }
}

impl<I> Iterator for ShapedReader<I>
where
    I: Iterator<Item = Result<RecordBatch, SourceError>>,
{
    type Item = Result<RecordBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let shaped = match self.raw.next() {
                None => {
                    self.done = true;
                    return None;
                }
                Some(raw) => raw.and_then(|batch| self.shaper.shape(&batch)),
            };
            match shaped {
                Ok(Some(batch)) => return Some(Ok(batch)),
                Ok(None) => {}
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
        None
    }
}
