//! Tests of the source module over real files in a temporary directory (Postgres reads are
//! in `tests/it/postgres_source.rs`: unit tests need no services).

mod csv_reads;
mod parquet_reads;
mod planning;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::Schema;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::{ChunkReader, SourceError};
use crate::model::FieldSpec;
use crate::model::definitions::{Source, SourceKind};

/// 2026-01-01T00:00:00Z in µs.
const BASE: i64 = 1_767_225_600_000_000;
const MINUTE: i64 = 60_000_000;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(tempfile::TempDir);

impl TempDir {
    fn new(test: &str) -> Self {
        let prefix = format!("lockstep-source-{test}-");
        Self(
            tempfile::Builder::new()
                .prefix(&prefix)
                .tempdir()
                .expect("create temp dir"),
        )
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// Writes `bytes` to `name` (relative), creating directories.
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dir");
        }
        std::fs::write(&path, bytes).expect("write file");
        path
    }

    /// Writes `batches` as a Parquet file with row groups of `row_group_rows` rows.
    fn write_parquet(&self, name: &str, batches: &[RecordBatch], row_group_rows: usize) -> PathBuf {
        let path = self.write(name, b"");
        let file = std::fs::File::create(&path).expect("create parquet file");
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(row_group_rows))
            .build();
        let mut writer =
            ArrowWriter::try_new(file, batches[0].schema(), Some(properties)).expect("writer");
        for batch in batches {
            writer.write(batch).expect("write batch");
        }
        writer.close().expect("close parquet file");
        path
    }
}

/// A source of `kind` with `schema` given as `name: type` pairs (`int64?` is nullable).
fn source(
    kind: SourceKind,
    path: Option<&str>,
    ts: Option<&str>,
    schema: &[(&str, &str)],
) -> Source {
    Source {
        kind,
        path: path.map(str::to_owned),
        table: None,
        query: None,
        timestamp_field: ts.map(str::to_owned),
        created_timestamp_field: None,
        schema: schema
            .iter()
            .map(|(name, ty)| ((*name).to_owned(), ty.parse().expect("column type")))
            .collect::<BTreeMap<_, _>>(),
        description: None,
    }
}

/// The fields `names` of `source`, in that order.
fn fields(source: &Source, names: &[&str]) -> Vec<FieldSpec> {
    names
        .iter()
        .map(|name| source.column(name).expect("declared column"))
        .collect()
}

/// Every batch of `reader`, checking none is empty or over `batch_rows`.
fn drain(reader: ChunkReader, batch_rows: usize) -> Result<Vec<RecordBatch>, SourceError> {
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    for batch in &batches {
        assert!(batch.num_rows() > 0, "empty batch");
        assert!(batch.num_rows() <= batch_rows, "{} rows", batch.num_rows());
    }
    Ok(batches)
}

/// All `batches` as one, with `schema`.
fn concat(schema: Arc<Schema>, batches: &[RecordBatch]) -> RecordBatch {
    concat_batches(&schema, batches).expect("concat")
}
