//! Postgres tables and queries: plans equal time ranges sized by row count, and reads a range
//! through a server-side cursor, one `FETCH` of at most `batch_rows` rows per batch.
//!
//! A chunk is read on a thread of its own running a private current-thread tokio runtime; it
//! hands batches over a channel holding one, so reading works from any thread (inside
//! `tokio::task::spawn_blocking` or not) and memory stays bounded by the batch size.
//! Timestamps are compared and decoded in UTC: sqlx sets the session time zone to UTC, so
//! `timestamp` (naive) and `date` columns are taken as UTC.
//!
//! Every statement (describing the relation, planning, reading) runs inside a `READ ONLY`
//! transaction, on a session whose default is read-only too, with the configured
//! `statement_timeout`: a source can read what its role may read, and nothing more.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, RecordBatchOptions, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Field, Schema};
use sqlx::error::BoxDynError;
use sqlx::postgres::{
    PgColumn, PgConnectOptions, PgConnection, PgRow, PgTypeInfo, PgValueFormat, PgValueRef,
    Postgres,
};
use sqlx::{Column, Connection, Executor, Row, Statement, TypeInfo, ValueRef};

use super::batches::{Encoding, Shaper};
use super::canonical::UTC;
use super::chunk::format_micros;
use super::{Chunk, ChunkReader, SourceError, TimeWindow};
use crate::model::definitions::Source;
use crate::model::{FieldSpec, ValueType};

/// Microseconds from the Unix epoch to the Postgres epoch (2000-01-01).
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;
const CURSOR: &str = "lockstep_source";

/// How a source connects: the server, and the limit on each statement.
#[derive(Debug, Clone)]
pub(super) struct Session {
    pub url: String,
    pub statement_timeout_ms: u64,
}

/// Plans the time ranges of a postgres source: `[min, max]` of its timestamp field within
/// `window`, split into `ceil(count / target_rows)` equal ranges (none when no row is in the
/// window). Checks every declared column against the relation on the way.
pub(super) async fn plan(
    source: &Source,
    session: &Session,
    window: TimeWindow,
    target_rows: usize,
) -> Result<Vec<Chunk>, SourceError> {
    let relation = Relation::of(source)?;
    let mut conn = connect(session).await?;
    let mut tx = read_only(&mut conn, &relation.location).await?;
    let columns = describe(&mut tx, &relation).await?;
    for field in source.columns() {
        kind(&relation.location, &columns, &field)?;
    }
    let ts = quote(&relation.timestamp_field);
    let mut clauses = Vec::new();
    let mut binds = Vec::new();
    for (bound, operator) in [(window.from, ">="), (window.to, "<")] {
        if let Some(bound) = bound {
            binds.push(bound);
            clauses.push(format!("src.{ts} {operator} {}", micros_sql(binds.len())));
        }
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT min(src.{ts}), max(src.{ts}), count(src.{ts}) FROM {}{filter}",
        relation.from
    );
    let mut query = sqlx::query_as::<_, (Option<PgMicros>, Option<PgMicros>, i64)>(&sql);
    for bound in binds {
        query = query.bind(bound);
    }
    let (min, max, count) = query
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| pg_error(&format!("cannot plan {}", relation.location), e))?;
    // Best effort: the server ends the session anyway when the socket closes.
    let _ = tx.rollback().await;
    let _ = conn.close().await;
    let (Some(PgMicros(min)), Some(PgMicros(max))) = (min, max) else {
        return Ok(Vec::new());
    };
    let count = u64::try_from(count).unwrap_or(0);
    Ok(split(
        &relation.timestamp_field,
        min,
        max,
        count,
        target_rows,
    ))
}

/// `[min, max]` as `ceil(count / target_rows)` (at least 1) half-open ranges of equal length.
fn split(timestamp_field: &str, min: i64, max: i64, count: u64, target_rows: usize) -> Vec<Chunk> {
    let span = i128::from(max) - i128::from(min) + 1;
    let wanted = count.div_ceil(target_rows.max(1) as u64).max(1);
    let parts = i128::from(wanted).min(span);
    let at = |i: i128| i64::try_from(i128::from(min) + span * i / parts).unwrap_or(i64::MAX);
    (0..parts)
        .map(|i| Chunk::PostgresRange {
            timestamp_field: timestamp_field.to_owned(),
            from: at(i),
            to: at(i + 1),
        })
        .collect()
}

/// Reads the rows with the timestamp field in `[from, to)` narrowed to `window`.
pub(super) fn open(
    source: &Source,
    session: Session,
    (from, to): (i64, i64),
    outputs: Vec<FieldSpec>,
    window: TimeWindow,
    batch_rows: usize,
) -> Result<ChunkReader, SourceError> {
    let relation = Relation::of(source)?;
    let (from, to) = window.clamp(from, to);
    if from >= to {
        return Ok(Box::new(std::iter::empty()));
    }
    let selected = if outputs.is_empty() {
        "1".to_owned()
    } else {
        let quoted: Vec<String> = outputs
            .iter()
            .map(|f| format!("src.{}", quote(&f.name)))
            .collect();
        quoted.join(", ")
    };
    let ts = quote(&relation.timestamp_field);
    let select = format!(
        "SELECT {selected} FROM {} WHERE src.{ts} >= {} AND src.{ts} < {}",
        relation.from,
        micros_sql(1),
        micros_sql(2)
    );
    let job = Job {
        session,
        location: format!(
            "{}, rows with {} in [{}, {})",
            relation.location,
            relation.timestamp_field,
            format_micros(from),
            format_micros(to)
        ),
        relation,
        select,
        bounds: (from, to),
        outputs,
        batch_rows: batch_rows.max(1),
    };
    let (sender, receiver) = sync_channel(1);
    std::thread::Builder::new()
        .name("lockstep-postgres-source".to_owned())
        .spawn(move || job.run(&sender))
        .map_err(|e| SourceError::Postgres {
            message: format!("cannot start a reader thread: {e}"),
            retryable: true,
        })?;
    Ok(Box::new(Batches {
        receiver,
        done: false,
    }))
}

/// What the reader thread hands over.
enum Message {
    Batch(RecordBatch),
    Failed(SourceError),
    Finished,
}

/// The consuming end: batches until `Finished`, or the error that ended the read.
struct Batches {
    receiver: Receiver<Message>,
    done: bool,
}

impl Iterator for Batches {
    type Item = Result<RecordBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.receiver.recv() {
            Ok(Message::Batch(batch)) => Some(Ok(batch)),
            Ok(Message::Failed(error)) => {
                self.done = true;
                Some(Err(error))
            }
            Ok(Message::Finished) => {
                self.done = true;
                None
            }
            Err(_) => {
                self.done = true;
                Some(Err(SourceError::Postgres {
                    message: "the reader thread stopped before the end of the rows".to_owned(),
                    retryable: false,
                }))
            }
        }
    }
}

/// One chunk read, run on its own thread.
struct Job {
    session: Session,
    location: String,
    relation: Relation,
    select: String,
    bounds: (i64, i64),
    outputs: Vec<FieldSpec>,
    batch_rows: usize,
}

impl Job {
    fn run(self, sender: &SyncSender<Message>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let outcome = match runtime {
            Ok(runtime) => runtime.block_on(self.stream(sender)),
            Err(e) => Err(SourceError::Postgres {
                message: format!("cannot start a runtime for the reader: {e}"),
                retryable: true,
            }),
        };
        // The receiver may be gone: then nobody is waiting for the end either.
        let _ = sender.send(match outcome {
            Ok(()) => Message::Finished,
            Err(error) => Message::Failed(error),
        });
    }

    /// Declares a cursor in a read-only transaction and fetches it batch by batch. Returns
    /// early, successfully, when the receiver is dropped.
    async fn stream(&self, sender: &SyncSender<Message>) -> Result<(), SourceError> {
        let failed = |what: &str| {
            let context = format!("{what} {}", self.location);
            move |e| pg_error(&context, e)
        };
        let mut conn = connect(&self.session).await?;
        let mut tx = read_only(&mut conn, &self.location).await?;
        let columns = describe(&mut tx, &self.relation).await?;
        let kinds = self
            .outputs
            .iter()
            .map(|field| kind(&self.relation.location, &columns, field))
            .collect::<Result<Vec<_>, _>>()?;
        sqlx::query(&format!(
            "DECLARE {CURSOR} NO SCROLL CURSOR FOR {}",
            self.select
        ))
        .bind(self.bounds.0)
        .bind(self.bounds.1)
        .execute(&mut *tx)
        .await
        .map_err(failed("cannot query"))?;
        let fetch = format!("FETCH FORWARD {} FROM {CURSOR}", self.batch_rows);
        let schema = Arc::new(Schema::new(
            self.outputs
                .iter()
                .map(|f| Field::new(&f.name, crate::model::arrow_type(f.value_type), true))
                .collect::<Vec<_>>(),
        ));
        let mut shaper = Shaper::new(
            self.location.clone(),
            Encoding::Typed,
            self.outputs.clone(),
            None,
            0,
        );
        loop {
            let rows = sqlx::query(&fetch)
                .fetch_all(&mut *tx)
                .await
                .map_err(failed("cannot read"))?;
            if rows.is_empty() {
                break;
            }
            let mut arrays = Vec::with_capacity(kinds.len());
            for (index, (kind, field)) in kinds.iter().zip(&self.outputs).enumerate() {
                let array = kind.build(&rows, index).map_err(|e| {
                    SourceError::schema(
                        &self.location,
                        &field.name,
                        format!("cannot be decoded: {e}"),
                    )
                })?;
                arrays.push(array);
            }
            let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
            let batch = RecordBatch::try_new_with_options(schema.clone(), arrays, &options)
                .map_err(|e| SourceError::Postgres {
                    message: format!("cannot assemble a batch of {}: {e}", self.location),
                    retryable: false,
                })?;
            if let Some(batch) = shaper.shape(&batch)?
                && sender.send(Message::Batch(batch)).is_err()
            {
                return Ok(());
            }
            if rows.len() < self.batch_rows {
                break;
            }
        }
        // Read-only: nothing to keep. Best effort, the connection is closed next anyway.
        let _ = tx.rollback().await;
        let _ = conn.close().await;
        Ok(())
    }
}

/// What a postgres source reads from.
#[derive(Debug, Clone)]
struct Relation {
    /// `"schema"."table" AS src` or `(query) AS src`.
    from: String,
    /// `postgres table `name`` or `postgres query `select …``, for messages.
    location: String,
    timestamp_field: String,
}

impl Relation {
    /// A `table` is split on `.` (`schema.table`) and each part quoted as an identifier, so
    /// names are case-sensitive; a `query` is used as a subquery, a trailing `;` dropped.
    fn of(source: &Source) -> Result<Self, SourceError> {
        let (from, location) = match (&source.table, &source.query) {
            (Some(table), None) => {
                let parts: Vec<String> = table.split('.').map(quote).collect();
                (
                    format!("{} AS src", parts.join(".")),
                    format!("postgres table `{table}`"),
                )
            }
            (None, Some(query)) => {
                let query = query.trim().trim_end_matches(';').trim_end();
                let mut short: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
                if short.chars().count() > 60 {
                    short = short.chars().take(59).collect::<String>() + "…";
                }
                (
                    format!("({query}) AS src"),
                    format!("postgres query `{short}`"),
                )
            }
            _ => {
                return Err(SourceError::config(
                    "a postgres source needs exactly one of `table` and `query`",
                ));
            }
        };
        let timestamp_field = source.timestamp_field.clone().ok_or_else(|| {
            SourceError::config(format!("{location} has no `timestamp_field` to read by"))
        })?;
        Ok(Self {
            from,
            location,
            timestamp_field,
        })
    }
}

/// `name` as a quoted identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The timestamptz at parameter `$n`, given in µs since the Unix epoch.
fn micros_sql(n: usize) -> String {
    format!("(TIMESTAMPTZ 'epoch' + ${n}::int8 * INTERVAL '1 microsecond')")
}

/// A session whose transactions are read-only unless a statement says otherwise (none of
/// ours does), every statement limited to the configured time.
async fn connect(session: &Session) -> Result<PgConnection, SourceError> {
    let options = PgConnectOptions::from_str(&session.url)
        .map_err(|e| SourceError::config(format!("the postgres URL is invalid: {e}")))?
        .application_name("lockstep-source")
        .options([
            ("default_transaction_read_only", "on".to_owned()),
            (
                "statement_timeout",
                format!("{}ms", session.statement_timeout_ms),
            ),
        ]);
    PgConnection::connect_with(&options).await.map_err(|e| {
        let database = options.get_database().unwrap_or("postgres");
        let context = format!(
            "cannot connect to {}:{}/{database}",
            options.get_host(),
            options.get_port()
        );
        pg_error(&context, e)
    })
}

/// Begins the `READ ONLY` transaction every statement of a source runs in (its first
/// statement, so nothing a query does later can make it writable).
async fn read_only<'c>(
    conn: &'c mut PgConnection,
    location: &str,
) -> Result<sqlx::Transaction<'c, Postgres>, SourceError> {
    let failed = |e| pg_error(&format!("cannot begin reading {location}"), e);
    let mut tx = conn.begin().await.map_err(failed)?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    Ok(tx)
}

/// The columns of the relation, by name, with their types.
async fn describe(
    conn: &mut PgConnection,
    relation: &Relation,
) -> Result<Vec<(String, PgTypeInfo)>, SourceError> {
    let sql = format!("SELECT * FROM {}", relation.from);
    let statement = conn
        .prepare(&sql)
        .await
        .map_err(|e| pg_error(&format!("cannot describe {}", relation.location), e))?;
    Ok(statement
        .columns()
        .iter()
        .map(|column: &PgColumn| (column.name().to_owned(), column.type_info().clone()))
        .collect())
}

/// Classifies a sqlx error: connection trouble is retryable, the rest is not.
fn pg_error(context: &str, error: sqlx::Error) -> SourceError {
    let retryable = match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Connection exceptions, insufficient resources, operator intervention (shutdown),
        // serialization failures and deadlocks.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            ["08", "53", "57P"]
                .iter()
                .any(|class| code.starts_with(class))
                || code == "40001"
                || code == "40P01"
        }),
        _ => false,
    };
    SourceError::Postgres {
        message: format!("{context}: {error}"),
        retryable,
    }
}

/// How a postgres column is decoded.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Bool,
    Time,
}

/// How to decode `field` from the relation's `columns`, if its type is accepted.
fn kind(
    location: &str,
    columns: &[(String, PgTypeInfo)],
    field: &FieldSpec,
) -> Result<Kind, SourceError> {
    let Some((_, type_info)) = columns.iter().find(|(name, _)| name == &field.name) else {
        return Err(SourceError::missing_column(
            location,
            &field.name,
            columns.iter().map(|(name, _)| name.as_str()),
        ));
    };
    let found = type_info.name();
    let kind = match (field.value_type, found.to_ascii_uppercase().as_str()) {
        (ValueType::Int64, "INT2") => Some(Kind::Int2),
        (ValueType::Int64, "INT4") => Some(Kind::Int4),
        (ValueType::Int64, "INT8") => Some(Kind::Int8),
        (ValueType::Float64, "FLOAT4") => Some(Kind::Float4),
        (ValueType::Float64, "FLOAT8") => Some(Kind::Float8),
        (ValueType::Utf8, "TEXT" | "VARCHAR" | "CHAR" | "NAME" | "CITEXT") => Some(Kind::Text),
        (ValueType::Boolean, "BOOL") => Some(Kind::Bool),
        (ValueType::Timestamp, "TIMESTAMPTZ" | "TIMESTAMP" | "DATE") => Some(Kind::Time),
        _ => None,
    };
    kind.ok_or_else(|| {
        let declared = field.value_type;
        let (accepted, cast) = match declared {
            ValueType::Int64 => ("int2, int4, int8", "int8"),
            ValueType::Float64 => ("float4, float8", "float8"),
            ValueType::Utf8 => ("text, varchar, char, name, citext", "text"),
            ValueType::Boolean => ("bool", "bool"),
            ValueType::Timestamp => ("timestamptz, timestamp (taken as UTC), date", "timestamptz"),
        };
        SourceError::schema(
            location,
            &field.name,
            format!(
                "is declared {declared} but has the postgres type {}; accepted for {declared}: \
                 {accepted} (cast it in a query source, e.g. `{}::{cast}`)",
                found.to_ascii_lowercase(),
                field.name,
            ),
        )
    })
}

impl Kind {
    /// Column `index` of `rows` as a canonical array.
    fn build(self, rows: &[PgRow], index: usize) -> Result<ArrayRef, sqlx::Error> {
        fn column<'r, T, U>(
            rows: &'r [PgRow],
            index: usize,
            map: impl Fn(T) -> U,
        ) -> Result<Vec<Option<U>>, sqlx::Error>
        where
            T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
        {
            rows.iter()
                .map(|row| Ok(row.try_get::<Option<T>, _>(index)?.map(&map)))
                .collect()
        }
        Ok(match self {
            Kind::Int2 => Arc::new(Int64Array::from(column::<i16, _>(rows, index, i64::from)?)),
            Kind::Int4 => Arc::new(Int64Array::from(column::<i32, _>(rows, index, i64::from)?)),
            Kind::Int8 => Arc::new(Int64Array::from(column(rows, index, |v: i64| v)?)),
            Kind::Float4 => Arc::new(Float64Array::from(column::<f32, _>(
                rows,
                index,
                f64::from,
            )?)),
            Kind::Float8 => Arc::new(Float64Array::from(column(rows, index, |v: f64| v)?)),
            Kind::Text => Arc::new(StringArray::from(column(rows, index, |v: &str| v)?)),
            Kind::Bool => Arc::new(BooleanArray::from(column(rows, index, |v: bool| v)?)),
            Kind::Time => Arc::new(
                TimestampMicrosecondArray::from(column(rows, index, |v: PgMicros| v.0)?)
                    .with_timezone(UTC),
            ),
        })
    }
}

/// A `timestamptz`, `timestamp` (taken as UTC) or `date` (midnight UTC) value as µs since the
/// Unix epoch, decoded from the binary wire format.
#[derive(Debug, Clone, Copy)]
struct PgMicros(i64);

impl sqlx::Type<Postgres> for PgMicros {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("timestamptz")
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        matches!(ty.name(), "TIMESTAMPTZ" | "TIMESTAMP" | "DATE")
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for PgMicros {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        if value.format() != PgValueFormat::Binary {
            return Err("timestamps are expected in the binary format".into());
        }
        let is_date = value.type_info().name() == "DATE";
        let bytes = value.as_bytes()?;
        let since_2000 = if is_date {
            let days = i32::from_be_bytes(bytes.try_into()?);
            if days == i32::MAX || days == i32::MIN {
                return Err("infinite dates are not supported".into());
            }
            i64::from(days) * MICROS_PER_DAY
        } else {
            let micros = i64::from_be_bytes(bytes.try_into()?);
            if micros == i64::MAX || micros == i64::MIN {
                return Err("infinite timestamps are not supported".into());
            }
            micros
        };
        since_2000
            .checked_add(POSTGRES_EPOCH_MICROS)
            .map(PgMicros)
            .ok_or_else(|| "the timestamp is out of range".into())
    }
}
