//! What every data generator shares: the error type, Parquet writing with the same
//! properties, the independent random streams per purpose, and their draws.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::error::ArrowError;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

use super::SplitMix64;
use crate::model::{Classify, ErrorKind};

/// Why generated data could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DatagenError {
    #[error("invalid data spec for {}: {reason}", .path.display())]
    InvalidSpec { path: PathBuf, reason: String },
    #[error("cannot write {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot write Parquet file {}: {source}", .path.display())]
    Parquet { path: PathBuf, source: ParquetError },
    #[error("cannot build Arrow rows for {}: {source}", .path.display())]
    Arrow { path: PathBuf, source: ArrowError },
}

impl Classify for DatagenError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidSpec { .. } => "invalid_data_spec",
            Self::Io { .. } => "datagen_io",
            Self::Parquet { .. } | Self::Arrow { .. } => "internal",
        }
    }

    /// Rows the generator made that Arrow or Parquet refuse are a bug.
    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidSpec { .. } => ErrorKind::BadRequest,
            Self::Io { .. } => ErrorKind::Refused,
            Self::Parquet { .. } | Self::Arrow { .. } => ErrorKind::Internal,
        }
    }
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DatagenError + '_ {
    move |source| DatagenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn parquet_err(path: &Path) -> impl FnOnce(ParquetError) -> DatagenError + '_ {
    move |source| DatagenError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn arrow_err(path: &Path) -> impl FnOnce(ArrowError) -> DatagenError + '_ {
    move |source| DatagenError::Arrow {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

pub(super) fn writer_properties(row_group_rows: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(row_group_rows))
        .build()
}

pub(super) fn timestamp_array(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

pub(super) fn file_len(path: &Path) -> Result<u64, DatagenError> {
    Ok(fs::metadata(path).map_err(io_err(path))?.len())
}

/// Removes `part-*.parquet` left by an earlier run, so that a glob over the directory only sees
/// this run's files.
pub(super) fn remove_stale_parts(dir: &Path) -> Result<(), DatagenError> {
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let stale = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("part-") && name.ends_with(".parquet"));
        if stale && path.is_file() {
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

/// An independent random stream per purpose, so that, e.g., the profile draws do not shift the
/// event draws.
pub(super) fn stream(seed: u64, purpose: u64) -> SplitMix64 {
    let mut mixer = SplitMix64(seed ^ purpose.wrapping_mul(0xA24B_AED4_963E_E407));
    SplitMix64(mixer.next_u64())
}

pub(super) trait Draw {
    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64;
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64;
    fn chance(&mut self, p: f64) -> bool;
    /// A rank in `0..n`, low ranks more likely: `n * shape(u)`; with `shape(u) = u^k` the top
    /// fraction `x` of the ranks gets a share `x^(1 / k)` of the draws.
    fn skewed(&mut self, n: u64, shape: fn(f64) -> f64) -> usize;
}

impl Draw for SplitMix64 {
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn skewed(&mut self, n: u64, shape: fn(f64) -> f64) -> usize {
        ((n as f64 * shape(self.unit())) as u64).min(n - 1) as usize
    }
}
