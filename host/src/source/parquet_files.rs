//! Parquet files: plans chunks of consecutive row groups (skipping those whose timestamp
//! statistics lie outside the window) and decodes only the requested columns.

use std::ops::Range;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Schema, TimestampMicrosecondType};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};

use super::batches::{Encoding, ShapedReader, Shaper, TimeFilter};
use super::files::{self, Listed};
use super::{Chunk, SourceError, TimeWindow, canonical};
use crate::model::definitions::Source;
use crate::model::{FieldSpec, ValueType};

/// Appends the chunks of one file: its row groups in order, those in the window grouped
/// while they add up to at most `target_rows` (a larger row group is a chunk of its own).
/// Checks every declared column against the file's schema on the way.
pub(super) fn plan_file(
    file: &Listed,
    source: &Source,
    window: TimeWindow,
    target_rows: usize,
    chunks: &mut Vec<Chunk>,
) -> Result<(), SourceError> {
    let handle = files::open(&file.path, &file.name)?;
    let file_bytes = files::size(&file.path, &file.name)?;
    let meta = ArrowReaderMetadata::load(&handle, ArrowReaderOptions::default())
        .map_err(|e| not_parquet(&file.name, e))?;
    for field in source.columns() {
        locate(&file.name, meta.schema(), &field)?;
    }
    let in_window = match &source.timestamp_field {
        Some(ts) if !window.is_unbounded() => row_groups_in_window(&file.name, &meta, ts, window)?,
        _ => vec![true; meta.metadata().num_row_groups()],
    };
    let target = target_rows.max(1) as u64;
    let mut group: Option<(Range<usize>, u64)> = None;
    let mut flush = |group: &mut Option<(Range<usize>, u64)>| {
        if let Some((row_groups, rows)) = group.take() {
            chunks.push(Chunk::ParquetRowGroups {
                path: file.name.clone(),
                row_groups,
                rows,
                file_bytes,
            });
        }
    };
    for (index, row_group) in meta.metadata().row_groups().iter().enumerate() {
        if !in_window[index] {
            flush(&mut group);
            continue;
        }
        let rows = u64::try_from(row_group.num_rows()).unwrap_or(0);
        if group.as_ref().is_some_and(|(_, sum)| sum + rows > target) {
            flush(&mut group);
        }
        match &mut group {
            Some((row_groups, sum)) => {
                row_groups.end = index + 1;
                *sum += rows;
            }
            None => group = Some((index..index + 1, rows)),
        }
    }
    flush(&mut group);
    Ok(())
}

/// Whether each row group may hold rows in `window`, by the statistics of column `ts`;
/// row groups without statistics are kept.
fn row_groups_in_window(
    name: &str,
    meta: &ArrowReaderMetadata,
    ts: &str,
    window: TimeWindow,
) -> Result<Vec<bool>, SourceError> {
    let field = FieldSpec {
        name: ts.to_owned(),
        value_type: ValueType::Timestamp,
        nullable: true,
    };
    locate(name, meta.schema(), &field)?;
    let statistics = |e: parquet::errors::ParquetError| SourceError::Corrupt {
        path: name.to_owned(),
        message: format!("unreadable statistics of column `{ts}`: {e}"),
    };
    let converter = StatisticsConverter::try_new(ts, meta.schema(), meta.parquet_schema())
        .map_err(statistics)?;
    let row_groups = meta.metadata().row_groups();
    let bounds = [
        converter
            .row_group_mins(row_groups.iter())
            .map_err(statistics)?,
        converter
            .row_group_maxes(row_groups.iter())
            .map_err(statistics)?,
    ];
    let [mins, maxes] = bounds.map(|array| canonical::convert(&array, ValueType::Timestamp));
    let (Ok(mins), Ok(maxes)) = (mins, maxes) else {
        // Statistics out of range of microseconds: read everything, the filter decides.
        return Ok(vec![true; row_groups.len()]);
    };
    let (mins, maxes) = (
        mins.as_primitive::<TimestampMicrosecondType>(),
        maxes.as_primitive::<TimestampMicrosecondType>(),
    );
    Ok((0..row_groups.len())
        .map(|i| {
            mins.is_null(i) || maxes.is_null(i) || window.overlaps(mins.value(i), maxes.value(i))
        })
        .collect())
}

/// Reads the row groups `row_groups` (all when `None`) of the file `name` at `path`,
/// decoding only the columns the shaped output needs.
pub(super) fn open(
    name: &str,
    path: &Path,
    row_groups: Option<Range<usize>>,
    outputs: Vec<FieldSpec>,
    time: Option<TimeFilter>,
    batch_rows: usize,
) -> Result<impl Iterator<Item = Result<RecordBatch, SourceError>> + Send + 'static, SourceError> {
    let handle = files::open(path, name)?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(handle).map_err(|e| not_parquet(name, e))?;
    let all_row_groups = builder.metadata().row_groups();
    let row_groups = row_groups.unwrap_or(0..all_row_groups.len());
    if row_groups.end > all_row_groups.len() || row_groups.start > row_groups.end {
        return Err(SourceError::Corrupt {
            path: name.to_owned(),
            message: format!(
                "it has {} row groups but row groups {}..{} were planned; the file changed \
                 after planning",
                all_row_groups.len(),
                row_groups.start,
                row_groups.end
            ),
        });
    }
    let first_row = all_row_groups[..row_groups.start]
        .iter()
        .map(|row_group| u64::try_from(row_group.num_rows()).unwrap_or(0))
        .sum();
    let shaper = Shaper::new(name.to_owned(), Encoding::Typed, outputs, time, first_row);
    let mut roots = Vec::new();
    for field in shaper.inputs() {
        roots.push(locate(name, builder.schema(), &field)?);
    }
    let projection = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(projection)
        .with_row_groups(row_groups.collect())
        .with_batch_size(batch_rows.max(1))
        .build()
        .map_err(|e| not_parquet(name, e))?;
    let location = name.to_owned();
    let raw = reader.map(move |batch| {
        batch.map_err(|e| SourceError::Corrupt {
            path: location.clone(),
            message: format!("cannot decode a row group: {e}"),
        })
    });
    Ok(ShapedReader::new(raw, shaper))
}

/// The names of the file's top-level columns.
pub(super) fn column_names(name: &str, path: &Path) -> Result<Vec<String>, SourceError> {
    let handle = files::open(path, name)?;
    let meta = ArrowReaderMetadata::load(&handle, ArrowReaderOptions::default())
        .map_err(|e| not_parquet(name, e))?;
    Ok(meta
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect())
}

/// The index of `field` among the file's top-level columns, if its stored type is accepted.
fn locate(name: &str, schema: &Schema, field: &FieldSpec) -> Result<usize, SourceError> {
    let (index, found) = schema.column_with_name(&field.name).ok_or_else(|| {
        SourceError::missing_column(
            name,
            &field.name,
            schema.fields().iter().map(|f| f.name().as_str()),
        )
    })?;
    canonical::check_type(found.data_type(), field.value_type)
        .map_err(|message| SourceError::schema(name, &field.name, message))?;
    Ok(index)
}

pub(super) fn not_parquet(name: &str, error: parquet::errors::ParquetError) -> SourceError {
    SourceError::Corrupt {
        path: name.to_owned(),
        message: format!("it is not a readable Parquet file ({error})"),
    }
}
