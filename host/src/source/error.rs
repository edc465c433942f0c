//! Typed errors of reading historical data, each naming the file (or table/query) and column
//! at fault, with a stable code and a retry class.

use crate::model::definitions::{SourceKind, is_identifier};
use crate::model::{Classify, ErrorKind};

/// Longest header name an error shows.
const MAX_SHOWN_NAME: usize = 64;

/// Why a source could not be planned or read. Only Postgres connection trouble is worth
/// retrying; everything else is a fault in the data or the definitions and fails the same
/// way every time.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("no files match the pattern `{pattern}`")]
    NoFiles { pattern: String },
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is corrupt: {message}")]
    Corrupt { path: String, message: String },
    #[error("{location}: column `{column}` {message}")]
    Schema {
        location: String,
        column: String,
        message: String,
    },
    #[error(
        "{location}: column `{column}` is declared non-nullable but is null in row {row}{}",
        line.map(|line| format!(" (line {line})")).unwrap_or_default()
    )]
    NullInRequired {
        location: String,
        column: String,
        /// The row within the file (or query result), counting data rows from 1.
        row: u64,
        /// The line of a CSV file, counting the header as line 1.
        line: Option<u64>,
    },
    #[error("postgres: {message}")]
    Postgres { message: String, retryable: bool },
    #[error(
        "a {kind} source has no history to read in batch; only parquet, csv and postgres sources can be backfilled"
    )]
    Unsupported { kind: SourceKind },
    #[error("{message}")]
    Config { message: String },
    /// The definitions ask for something this server does not let sources read.
    #[error("{message}")]
    Forbidden { message: String },
}

impl Classify for SourceError {
    fn code(&self) -> &'static str {
        match self {
            SourceError::NoFiles { .. } => "source_no_files",
            SourceError::Io { .. } => "source_io",
            SourceError::Corrupt { .. } => "source_corrupt",
            SourceError::Schema { .. } => "source_schema_mismatch",
            SourceError::NullInRequired { .. } => "source_null_in_required_column",
            SourceError::Postgres { .. } => "source_postgres",
            SourceError::Unsupported { .. } => "source_not_readable",
            SourceError::Config { .. } => "source_config",
            SourceError::Forbidden { .. } => "source_forbidden",
        }
    }

    /// Postgres out of reach is unavailable; everything else is the data's or the
    /// definitions' fault, refused the same way every time.
    fn kind(&self) -> ErrorKind {
        if self.is_retryable() {
            ErrorKind::Unavailable
        } else {
            ErrorKind::Refused
        }
    }
}

impl SourceError {
    /// Whether trying again later may succeed: only when Postgres could not be reached or
    /// dropped the connection.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SourceError::Postgres {
                retryable: true,
                ..
            }
        )
    }

    pub(super) fn config(message: impl Into<String>) -> Self {
        SourceError::Config {
            message: message.into(),
        }
    }

    pub(super) fn schema(location: &str, column: &str, message: impl Into<String>) -> Self {
        SourceError::Schema {
            location: location.to_owned(),
            column: column.to_owned(),
            message: message.into(),
        }
    }

    pub(super) fn missing_column<'a>(
        location: &str,
        column: &str,
        found: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        // Only names that look like column names: a header that is really a line of some
        // other file (say `root:x:0:0:…`) is counted, never shown.
        let (plain, other): (Vec<&str>, Vec<&str>) = found
            .into_iter()
            .partition(|name| name.len() <= MAX_SHOWN_NAME && is_identifier(name));
        let mut shown = if plain.is_empty() {
            "none".to_owned()
        } else {
            plain.join(", ")
        };
        if !other.is_empty() {
            shown.push_str(&format!(
                " (and {} not shown: not plain column names)",
                other.len()
            ));
        }
        SourceError::schema(
            location,
            column,
            format!("is expected but missing; the columns present are: {shown}"),
        )
    }
}
