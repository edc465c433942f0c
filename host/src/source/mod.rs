//! Reads historical data (Parquet files, CSV files, a Postgres table or query) as Arrow record
//! batches, streamed with memory bounded by the batch size.
//!
//! # Flow
//!
//! [`plan`] splits a source into [`Chunk`]s up front, in a deterministic order, and checks the
//! declared schema against the data on the way. [`open`] streams the rows of one chunk as
//! batches of at most `batch_rows` rows, never empty. [`read_file`] reads a whole local file
//! (entity files of training sets).
//!
//! # Output contract
//!
//! Every batch has exactly the requested columns, in the requested order, with the canonical
//! types of [`crate::model::arrow_type`] and the nullability of each [`FieldSpec`]. Stored columns are
//! converted: any integer width to int64; Float32 to float64; LargeUtf8 and Utf8View to utf8;
//! timestamps of any unit to µs (time zone labels do not change the instant; naive is UTC);
//! Date32 and Date64 to midnight UTC. An integer column is never taken as a timestamp (its
//! unit is ambiguous). CSV values are parsed per declared type: RFC 3339 timestamps (no
//! offset means UTC) or bare dates, `true`/`false`. Every row read is checked, whether or not
//! it falls in the window: a type mismatch, a missing column, an unparsable value or a null in
//! a non-nullable column is an error naming the file (or table/query), the column and, for a
//! value, its row (CSV: its line). Rows whose timestamp is null never fall in a window.
//!
//! # Threads
//!
//! [`plan`] is async. The [`ChunkReader`] of [`open`] is a blocking iterator: call it inside
//! `tokio::task::spawn_blocking` (or any plain thread). File chunks are decoded on the calling
//! thread; a Postgres chunk is fetched on a private thread of its own (see `postgres.rs`), so
//! it also works from inside `spawn_blocking` of a multi-threaded runtime.

mod batches;
mod canonical;
mod chunk;
mod confine;
mod csv_files;
mod entity_rows;
mod error;
mod files;
mod parquet_files;
mod postgres;

#[cfg(test)]
mod tests;

pub use chunk::{Chunk, TimeWindow};
pub use confine::{Roots, check_source};
pub use entity_rows::{EntityColumns, parquet_entity_rows, read_entity_file};
pub use error::SourceError;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;

#[cfg(test)]
use crate::model::arrow_schema;
use crate::model::definitions::{Source, SourceKind};
use crate::model::{FieldSpec, ValueType};
use batches::TimeFilter;

/// Rows per batch of [`read_file`].
const READ_FILE_BATCH_ROWS: usize = 65_536;

/// The batches of one chunk: a blocking iterator that ends after the first error.
pub type ChunkReader = Box<dyn Iterator<Item = Result<RecordBatch, SourceError>> + Send>;

/// Where relative paths are resolved, which directories may be read, which Postgres a
/// `postgres` source reads and how.
#[derive(Debug, Clone, Default)]
pub struct SourceContext {
    pub base_dir: PathBuf,
    /// The directories file sources may read (the base directory among them).
    pub roots: Roots,
    pub postgres_url: Option<String>,
    /// Whether `postgres` sources may name a `query` (else only a `table`).
    pub allow_queries: bool,
    /// `statement_timeout` of every statement a `postgres` source runs, in milliseconds.
    pub statement_timeout_ms: u64,
}

impl SourceContext {
    /// Sources under `base_dir` only, no Postgres: what tests of files use.
    pub fn under(base_dir: &Path) -> Self {
        Self {
            base_dir: base_dir.to_owned(),
            roots: Roots::new([base_dir]),
            ..Self::default()
        }
    }

    /// Checks what `source` would read is allowed here, reading nothing: see
    /// [`check_source`].
    pub fn check(&self, source: &Source) -> Result<(), SourceError> {
        check_source(source, &self.base_dir, &self.roots, self.allow_queries)
    }
}

/// Plans the chunks of `source` within `window`, in a deterministic order (files sorted by
/// path, row groups in order).
///
/// * Parquet: consecutive row groups of one file, grouped while they add up to at most
///   `target_rows` rows; row groups whose timestamp statistics lie entirely outside the
///   window are skipped.
/// * CSV: one chunk per file.
/// * Postgres: `[min, max]` of the timestamp field within the window, split into
///   `ceil(count / target_rows)` equal time ranges (none when no row is in the window).
///
/// Files are listed with a glob relative to `ctx.base_dir`; no match is [`SourceError::NoFiles`].
/// Every declared column is checked against each file's schema (or header, or the Postgres
/// relation). File metadata is read on tokio's blocking pool, so this must run inside a
/// tokio runtime.
pub async fn plan(
    source: &Source,
    ctx: &SourceContext,
    window: TimeWindow,
    target_rows: usize,
) -> Result<Vec<Chunk>, SourceError> {
    time_filter(source, window)?;
    ctx.check(source)?;
    match source.kind {
        SourceKind::Parquet | SourceKind::Csv => {
            let (source, ctx) = (source.clone(), ctx.clone());
            let planned =
                tokio::task::spawn_blocking(move || plan_files(&source, &ctx, window, target_rows))
                    .await;
            match planned {
                Ok(chunks) => chunks,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => Err(SourceError::config("planning was cancelled")),
            }
        }
        SourceKind::Postgres => {
            postgres::plan(source, &postgres_session(ctx)?, window, target_rows).await
        }
        kind @ (SourceKind::Push | SourceKind::Request) => Err(SourceError::Unsupported { kind }),
    }
}

fn plan_files(
    source: &Source,
    ctx: &SourceContext,
    window: TimeWindow,
    target_rows: usize,
) -> Result<Vec<Chunk>, SourceError> {
    let pattern = source
        .path
        .as_deref()
        .ok_or_else(|| SourceError::config(format!("a {} source needs a `path`", source.kind)))?;
    let mut chunks = Vec::new();
    for file in files::list(&ctx.base_dir, &ctx.roots, pattern)? {
        match source.kind {
            SourceKind::Parquet => {
                parquet_files::plan_file(&file, source, window, target_rows, &mut chunks)?
            }
            _ => csv_files::plan_file(&file, source, &mut chunks)?,
        }
    }
    Ok(chunks)
}

/// Streams the rows of one chunk: only `columns` (a subset of the source schema), cast to
/// the canonical types, rows outside `window` dropped (by the source's timestamp field), in
/// batches of at most `batch_rows` rows, never empty.
///
/// For Parquet only the needed leaf columns are decoded; for CSV every line is split but only
/// the needed columns are built; Postgres rows come through a server-side cursor, one `FETCH`
/// per batch. The returned reader blocks: see the module documentation.
pub fn open(
    source: &Source,
    ctx: &SourceContext,
    chunk: &Chunk,
    columns: &[FieldSpec],
    window: TimeWindow,
    batch_rows: usize,
) -> Result<ChunkReader, SourceError> {
    check_columns(source, columns)?;
    ctx.check(source)?;
    let time = time_filter(source, window)?;
    let outputs = columns.to_vec();
    match (source.kind, chunk) {
        (kind @ (SourceKind::Push | SourceKind::Request), _) => {
            Err(SourceError::Unsupported { kind })
        }
        (
            SourceKind::Parquet,
            Chunk::ParquetRowGroups {
                path, row_groups, ..
            },
        ) => {
            let full = files::resolve(&ctx.base_dir, &ctx.roots, path)?;
            let reader = parquet_files::open(
                path,
                &full,
                Some(row_groups.clone()),
                outputs,
                time,
                batch_rows,
            )?;
            Ok(Box::new(reader))
        }
        (SourceKind::Csv, Chunk::CsvFile { path, .. }) => {
            let full = files::resolve(&ctx.base_dir, &ctx.roots, path)?;
            let reader = csv_files::open(path, &full, outputs, time, batch_rows)?;
            Ok(Box::new(reader))
        }
        (SourceKind::Postgres, Chunk::PostgresRange { from, to, .. }) => postgres::open(
            source,
            postgres_session(ctx)?,
            (*from, *to),
            outputs,
            window,
            batch_rows,
        ),
        (kind, chunk) => Err(SourceError::config(format!(
            "a {kind} source cannot read the chunk `{}`",
            chunk.describe()
        ))),
    }
}

/// Reads a whole local file (`.parquet` or `.csv`) with the `required` columns, then those of
/// `optional` the file has, in that order; same conversions and errors as [`open`]. Columns
/// of the file not asked for are ignored. The second value tells, for each `optional` column,
/// whether it was read.
pub fn read_file(
    path: &Path,
    required: &[FieldSpec],
    optional: &[FieldSpec],
) -> Result<(Vec<RecordBatch>, Vec<Option<FieldSpec>>), SourceError> {
    let name = path.display().to_string();
    let format = file_format(path, &name)?;
    let present: BTreeSet<String> = match format {
        SourceKind::Parquet => parquet_files::column_names(&name, path)?,
        _ => csv_files::header(path, &name)?,
    }
    .into_iter()
    .collect();
    let found: Vec<Option<FieldSpec>> = optional
        .iter()
        .map(|field| present.contains(&field.name).then(|| field.clone()))
        .collect();
    let outputs: Vec<FieldSpec> = required
        .iter()
        .chain(found.iter().flatten())
        .cloned()
        .collect();
    distinct(&outputs)?;
    let batches = match format {
        SourceKind::Parquet => {
            parquet_files::open(&name, path, None, outputs, None, READ_FILE_BATCH_ROWS)?
                .collect::<Result<Vec<_>, _>>()?
        }
        _ => csv_files::open(&name, path, outputs, None, READ_FILE_BATCH_ROWS)?
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok((batches, found))
}

/// Whether a local file is Parquet or CSV, by its extension.
fn file_format(path: &Path, name: &str) -> Result<SourceKind, SourceError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq") => {
            Ok(SourceKind::Parquet)
        }
        Some(e) if e.eq_ignore_ascii_case("csv") => Ok(SourceKind::Csv),
        _ => Err(SourceError::config(format!(
            "cannot tell the format of `{name}`: expected a .parquet or .csv file"
        ))),
    }
}

fn postgres_session(ctx: &SourceContext) -> Result<postgres::Session, SourceError> {
    let url = ctx.postgres_url.clone().ok_or_else(|| {
        SourceError::config(
            "a postgres source needs a Postgres URL, and none is configured for sources",
        )
    })?;
    Ok(postgres::Session {
        url,
        statement_timeout_ms: ctx.statement_timeout_ms,
    })
}

/// The filter on the source's timestamp field, if it has one.
fn time_filter(source: &Source, window: TimeWindow) -> Result<Option<TimeFilter>, SourceError> {
    let Some(name) = &source.timestamp_field else {
        return if window.is_unbounded() {
            Ok(None)
        } else {
            Err(SourceError::config(
                "the source has no `timestamp_field`, so it cannot be limited to a time window",
            ))
        };
    };
    let field = source.column(name).ok_or_else(|| {
        SourceError::config(format!(
            "the timestamp field `{name}` is not in the source schema"
        ))
    })?;
    if field.value_type != ValueType::Timestamp {
        return Err(SourceError::config(format!(
            "the timestamp field `{name}` is declared {}, not timestamp",
            field.value_type
        )));
    }
    Ok(Some(TimeFilter { field, window }))
}

/// Checks that `columns` are distinct columns of the source schema, of the declared types.
fn check_columns(source: &Source, columns: &[FieldSpec]) -> Result<(), SourceError> {
    for field in columns {
        let declared = source.column(&field.name).ok_or_else(|| {
            let known: Vec<&str> = source.schema.keys().map(String::as_str).collect();
            SourceError::config(format!(
                "column `{}` is not in the source schema (its columns: {})",
                field.name,
                known.join(", ")
            ))
        })?;
        if declared.value_type != field.value_type {
            return Err(SourceError::config(format!(
                "column `{}` is asked for as {} but the source declares it {}",
                field.name, field.value_type, declared.value_type
            )));
        }
    }
    distinct(columns)
}

fn distinct(columns: &[FieldSpec]) -> Result<(), SourceError> {
    let mut seen = BTreeSet::new();
    for field in columns {
        if !seen.insert(field.name.as_str()) {
            return Err(SourceError::config(format!(
                "column `{}` is asked for twice",
                field.name
            )));
        }
    }
    Ok(())
}
