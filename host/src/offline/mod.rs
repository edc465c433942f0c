//! The offline store: one history table per feature view (join keys, `event_ts`,
//! `created_ts`, typed features, `transform_digest`), idempotent bulk upserts committed
//! together with backfill checkpoints, chunk leases for many workers, the point-in-time
//! join, and the feature log (sampled online responses, for the skew audit). Postgres and
//! an embedded SQLite file behind one trait.

mod jobs;
mod pgcopy;
mod postgres;
mod sql;
mod sqlite;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::model::{Classify, Digest, ErrorKind, FieldSpec, ValueType};
use crate::model::{arrow_schema, arrow_type};

pub use crate::model::{CREATED_TS, EVENT_TS, TRANSFORM_DIGEST, ViewTable};
pub use jobs::{Claim, JobPlan, JobState, JobStatus, Lease, RunEnd};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Where the offline store lives.
#[derive(Debug, Clone)]
pub enum OfflineLocation {
    /// `postgres://…`, with the schema holding the feature tables (created if missing).
    Postgres { url: String, schema: String },
    /// An embedded SQLite file.
    Sqlite { path: PathBuf },
}

/// Opens (creating its bookkeeping tables) the offline store at `location`.
pub async fn open(location: &OfflineLocation) -> Result<Arc<dyn OfflineStore>, OfflineError> {
    Ok(match location {
        OfflineLocation::Postgres { url, schema } => {
            Arc::new(PostgresStore::open(url, schema).await?)
        }
        OfflineLocation::Sqlite { path } => Arc::new(SqliteStore::open(path).await?),
    })
}

/// Deletes the offline store at `location` with every feature table, job and log in it:
/// drops its Postgres schema or removes its SQLite file. For `lockstep demo`.
pub async fn remove(location: &OfflineLocation) -> Result<(), OfflineError> {
    use crate::sql_store::DropError;
    match location {
        OfflineLocation::Postgres { url, schema } => {
            crate::sql_store::drop_schema(crate::endpoint::Store::Offline, url, schema)
                .await
                .map_err(|error| match error {
                    DropError::Connect(error) => OfflineError::Connect(error),
                    DropError::Other(message) => OfflineError::Open(message),
                })
        }
        OfflineLocation::Sqlite { path } => {
            crate::sql_store::remove_sqlite_file(path).map_err(OfflineError::Open)
        }
    }
}

/// Why the offline store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("the offline store is unavailable: {0}")]
    Unavailable(String),
    #[error("cannot open the offline store: {0}")]
    Open(String),
    #[error(transparent)]
    Connect(#[from] crate::endpoint::ConnectError),
    #[error("offline table `{table}` cannot hold view `{view}`: {message}")]
    Table {
        view: String,
        table: String,
        message: String,
    },
    #[error("backfill job {0} does not exist")]
    UnknownJob(i64),
    #[error("offline store data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Input(String),
}

impl Classify for OfflineError {
    fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) | Self::Open(_) | Self::Connect(_) => "offline_store_unavailable",
            Self::Table { .. } => "offline_table_conflict",
            Self::UnknownJob(_) => "unknown_backfill_job",
            Self::Corrupt(_) => "offline_store_corrupt",
            Self::Input(_) => "invalid_offline_input",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Unavailable(_) | Self::Open(_) | Self::Connect(_) => ErrorKind::Unavailable,
            Self::Table { .. } => ErrorKind::Conflict,
            Self::UnknownJob(_) => ErrorKind::NotFound,
            Self::Corrupt(_) => ErrorKind::Internal,
            Self::Input(_) => ErrorKind::BadRequest,
        }
    }
}

impl OfflineError {
    /// Worth retrying later: the store was unreachable, not the request wrong.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Connect(error) => error.is_retryable(),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for OfflineError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                Self::Corrupt(error.to_string())
            }
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// What processing one chunk produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkCounts {
    /// Source rows read in the window.
    pub rows_in: u64,
    /// Feature rows written (before in-chunk deduplication).
    pub rows_out: u64,
    /// Rows the transform rejected with a row error.
    pub rows_rejected: u64,
}

/// The features to join from one view's table.
#[derive(Debug, Clone)]
pub struct PitView {
    pub table: ViewTable,
    /// Feature names of `table`, in output order. [`EVENT_TS`] may be among them: the
    /// matched row's event time (null when none matched).
    pub features: Vec<String>,
}

/// One logged online response: what a feature service served at `request_ts`. The store
/// keeps `payload` as opaque bytes (the pipeline writes Arrow IPC, so values stay exact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub project: String,
    pub service: String,
    /// µs since the Unix epoch: when the response was logged (what `since` filters on).
    pub logged_at: i64,
    /// µs since the Unix epoch: the time the request was served as of.
    pub request_ts: i64,
    /// The transform digest of each view and on-demand view the response used.
    pub digests: BTreeMap<String, Digest>,
    pub payload: Vec<u8>,
}

impl LogRecord {
    /// The digests as stored: a JSON object of view → `sha256:…`.
    fn digests_text(&self) -> String {
        serde_json::to_string(&self.digests).expect("a map of strings serializes")
    }

    /// Rebuilds a record from a row of [`sql::read_feature_logs`], on either backend.
    fn from_row<'r, R>(row: &'r R) -> Result<Self, OfflineError>
    where
        R: sqlx::Row,
        usize: sqlx::ColumnIndex<R>,
        i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        let digests: String = row.try_get(4)?;
        let digests = serde_json::from_str(&digests)
            .map_err(|e| OfflineError::Corrupt(format!("feature log digests: {e}")))?;
        Ok(Self {
            project: row.try_get(0)?,
            service: row.try_get(1)?,
            logged_at: row.try_get(2)?,
            request_ts: row.try_get(3)?,
            digests,
            payload: row.try_get(5)?,
        })
    }
}

/// Durable feature history, backfill checkpoints and point-in-time retrieval.
#[async_trait]
pub trait OfflineStore: Send + Sync {
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;

    /// Creates the view's table and its index if missing; fails if a table of that name
    /// exists with other columns.
    async fn ensure_table(&self, table: &ViewTable) -> Result<(), OfflineError>;

    /// Records a plan as a job; unless the plan is `fresh`, first looks for a job of the same
    /// plan (an earlier run, fresh or not) and returns the newest unfinished one, else the
    /// newest done one.
    async fn create_job(&self, plan: &JobPlan) -> Result<JobStatus, OfflineError>;

    /// Marks `job` running by a live process for `alive_for` from now: called when a run
    /// starts (`start`: the last run's error and finish time cleared) and then as its
    /// heartbeat. A done job stays done.
    async fn mark_running(
        &self,
        job: i64,
        alive_for: Duration,
        start: bool,
    ) -> Result<(), OfflineError>;

    /// Records that a run of `job` stopped early, and when. A done job stays done.
    async fn end_run(&self, job: i64, end: &RunEnd) -> Result<(), OfflineError>;

    /// The live leases on chunks of `job` not yet done, by chunk.
    async fn leases(&self, job: i64) -> Result<Vec<Lease>, OfflineError>;

    /// Gives up the leases `owner` holds on chunks of `job` not yet done, so any worker
    /// may claim them at once: chunks abandoned by a stopping run, or leased by a process
    /// known to be dead. Returns the chunks released.
    async fn release_leases(&self, job: i64, owner: &str) -> Result<Vec<u32>, OfflineError>;

    /// Leases the next chunk of `job` that is neither done nor under a live lease.
    async fn claim_chunk(
        &self,
        job: i64,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, OfflineError>;

    /// Extends a lease; false when it was lost (expired and taken by another worker).
    async fn renew_lease(&self, claim: &Claim, lease: Duration) -> Result<bool, OfflineError>;

    /// Upserts a chunk's rows (in the layout of [`ViewTable::row_fields`]) and marks the
    /// chunk done, in one transaction. Rows with the same keys and `event_ts` keep the
    /// greatest `created_ts` (the later row on a tie); equal rows are not rewritten. False,
    /// with nothing written, when the lease was lost.
    async fn commit_chunk(
        &self,
        table: &ViewTable,
        claim: &Claim,
        rows: &[RecordBatch],
        counts: ChunkCounts,
    ) -> Result<bool, OfflineError>;

    async fn job(&self, job: i64) -> Result<JobStatus, OfflineError>;

    /// Recent jobs, newest first.
    async fn jobs(&self, limit: u32) -> Result<Vec<JobStatus>, OfflineError>;

    /// Point-in-time join: for each entity row (join keys and [`EVENT_TS`] columns), each
    /// view's row with the same keys and the greatest `event_ts <= ts` (within the ttl),
    /// ties to the greatest `created_ts`. One batch per view, of its features, with one row
    /// per entity row in order; null where nothing matched.
    async fn point_in_time(
        &self,
        entities: &RecordBatch,
        views: &[PitView],
    ) -> Result<Vec<RecordBatch>, OfflineError>;

    /// Every row of a table in key and time order, in the layout of
    /// [`ViewTable::row_fields`] (for checksums and exports).
    async fn scan(&self, table: &ViewTable) -> Result<Vec<RecordBatch>, OfflineError>;

    /// Upserts rows of several tables (each in the layout of its [`ViewTable::row_fields`])
    /// in one transaction, outside any backfill, with the rules of
    /// [`OfflineStore::commit_chunk`]: the push path, all views of a push at once.
    async fn write_rows(&self, rows: &[(&ViewTable, RecordBatch)]) -> Result<(), OfflineError>;

    /// The rows `rows` picks (layout of [`ViewTable::row_fields`]), streamed in
    /// batches of about `batch_rows` rows, so memory stays bounded whatever the table's
    /// size: what materialization and the aggregations' join read.
    fn stream(&self, table: &ViewTable, rows: Rows, batch_rows: usize) -> BatchStream;

    /// About how many rows [`OfflineStore::stream`] would give for `rows`, for progress:
    /// the planner's estimate on Postgres (tables never analyzed are analyzed first), an
    /// exact count on SQLite. `None` when the store cannot tell.
    async fn estimate_rows(
        &self,
        table: &ViewTable,
        rows: &Rows,
    ) -> Result<Option<u64>, OfflineError>;

    /// Records a finished materialization.
    async fn record_materialization(&self, record: &Materialization) -> Result<(), OfflineError>;

    /// The end of the latest materialization of the table named `table`, if any: where an
    /// incremental run starts.
    async fn materialized_until(&self, table: &str) -> Result<Option<i64>, OfflineError>;

    /// Appends logged online responses to the feature log, in one transaction.
    async fn write_feature_logs(&self, records: &[LogRecord]) -> Result<(), OfflineError>;

    /// A service's logged responses with `logged_at >= since`, oldest first, at most
    /// `limit`.
    async fn read_feature_logs(
        &self,
        project: &str,
        service: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<LogRecord>, OfflineError>;
}

/// Which rows of a table [`OfflineStore::stream`] reads, µs bounds.
#[derive(Debug, Clone)]
pub enum Rows {
    /// For each key, its row with the greatest event time in `[from, to)`.
    LatestPerKey { from: i64, to: i64 },
    /// Every row with an event time before `to`, sorted by join keys, then event time (each
    /// key's rows together, whatever order the keys come in), with null transform digests:
    /// an aggregated view's events, to replay. With `keys` (a batch of the table's int64 or
    /// utf8 join-key columns), only the rows of those keys.
    Events { to: i64, keys: Option<RecordBatch> },
}

/// The batches of a [`OfflineStore::stream`].
pub type BatchStream = mpsc::Receiver<Result<RecordBatch, OfflineError>>;

/// Runs `produce` on a task of its own, handing it the sender of the returned stream (two
/// batches in flight, so memory stays bounded); an error it returns ends the stream as its
/// last item. `produce` stops early, with `Ok`, when a send fails: nobody reads any more.
fn spawn_stream<F>(
    produce: impl FnOnce(mpsc::Sender<Result<RecordBatch, OfflineError>>) -> F,
) -> BatchStream
where
    F: Future<Output = Result<(), OfflineError>> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(2);
    let errors = sender.clone();
    let work = produce(sender);
    tokio::spawn(async move {
        if let Err(error) = work.await {
            let _ = errors.send(Err(error)).await;
        }
    });
    receiver
}

/// One materialization of a view's table into the online store, over `[from, to)` (µs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Materialization {
    pub project: String,
    pub view: String,
    pub table: String,
    pub from: i64,
    pub to: i64,
    /// Rows read (one per key) and sent to the online store.
    pub rows: u64,
}

/// A digest of a table's whole content, for comparing two runs.
pub async fn checksum(
    store: &dyn OfflineStore,
    table: &ViewTable,
) -> Result<(u64, String), OfflineError> {
    let batches = store.scan(table).await?;
    let mut rows = 0u64;
    let mut bytes = Vec::new();
    for batch in &batches {
        rows += batch.num_rows() as u64;
        for row in 0..batch.num_rows() {
            for column in batch.columns() {
                let cell = crate::columnar::to_json(column.as_ref(), row).to_string();
                bytes.extend_from_slice(cell.as_bytes());
                bytes.push(0x1f);
            }
            bytes.push(b'\n');
        }
    }
    Ok((rows, Digest::of(&bytes).to_string()))
}

/// A chunk's rows as one batch in primary-key order, one row per key and event time: the
/// one with the greatest created time, the later row on a tie (what applying the rows one
/// by one as upserts gives). Key order makes index inserts sequential.
pub(crate) fn prepare_rows(
    table: &ViewTable,
    rows: &[RecordBatch],
) -> Result<RecordBatch, OfflineError> {
    use arrow::row::{RowConverter, SortField};
    let fields = table.row_fields();
    let schema = arrow_schema(&fields);
    let failed = |e: arrow::error::ArrowError| OfflineError::Input(e.to_string());
    let all = arrow::compute::concat_batches(&schema, rows).map_err(failed)?;
    // Join keys, event time, then created time: the sort order and the tie-breaks.
    let keys = table.join_keys.len() + 1;
    let converter = RowConverter::new(
        fields[..=keys]
            .iter()
            .map(|field| SortField::new(arrow_type(field.value_type)))
            .collect(),
    )
    .map_err(failed)?;
    let converted = converter
        .convert_columns(&all.columns()[..=keys])
        .map_err(failed)?;
    let key_only = RowConverter::new(
        fields[..keys]
            .iter()
            .map(|field| SortField::new(arrow_type(field.value_type)))
            .collect(),
    )
    .map_err(failed)?;
    let key_rows = key_only
        .convert_columns(&all.columns()[..keys])
        .map_err(failed)?;
    let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
    // Stable: equal keys and created times keep their input order.
    order.sort_by(|&a, &b| converted.row(a as usize).cmp(&converted.row(b as usize)));
    // The last row of each run of equal keys wins.
    let winners: Vec<u32> = order
        .iter()
        .enumerate()
        .filter(|&(position, &row)| {
            order
                .get(position + 1)
                .is_none_or(|&next| key_rows.row(next as usize) != key_rows.row(row as usize))
        })
        .map(|(_, &row)| row)
        .collect();
    arrow::compute::take_record_batch(&all, &arrow::array::UInt32Array::from(winners))
        .map_err(failed)
}

/// Fails unless a view's existing table has exactly the expected columns, in order.
fn check_existing_columns(table: &ViewTable, existing: Vec<String>) -> Result<(), OfflineError> {
    let expected: Vec<String> = table.row_fields().into_iter().map(|f| f.name).collect();
    if existing == expected {
        return Ok(());
    }
    Err(OfflineError::Table {
        view: table.view.clone(),
        table: table.name.clone(),
        message: format!(
            "it exists with columns ({}), expected ({})",
            existing.join(", "),
            expected.join(", ")
        ),
    })
}

/// How long a store call waits for a pooled connection before reporting unavailable.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The offline store's applied migrations, a table of its own: the registry's
/// (`_sqlx_migrations`) may share its Postgres schema or SQLite file.
pub const MIGRATIONS_TABLE: &str = "_lockstep_offline_migrations";

/// The columns of the entity table: [`EVENT_TS`] and every join key of `views`, checked
/// against the entity batch.
fn entity_fields(
    entities: &RecordBatch,
    views: &[PitView],
) -> Result<Vec<FieldSpec>, OfflineError> {
    let mut fields = vec![FieldSpec {
        name: EVENT_TS.to_owned(),
        value_type: ValueType::Timestamp,
        nullable: false,
    }];
    for key in views.iter().flat_map(|view| &view.table.join_keys) {
        if !fields.iter().any(|field| field.name == key.name) {
            fields.push(key.clone());
        }
    }
    for field in &fields {
        let Some(column) = entities.column_by_name(&field.name) else {
            return Err(OfflineError::Input(format!(
                "the entity rows have no column `{}`",
                field.name
            )));
        };
        let expected = arrow_type(field.value_type);
        if column.data_type() != &expected {
            return Err(OfflineError::Input(format!(
                "entity column `{}` is {}, expected {expected}",
                field.name,
                column.data_type()
            )));
        }
        if column.null_count() > 0 {
            return Err(OfflineError::Input(format!(
                "entity column `{}` has nulls",
                field.name
            )));
        }
    }
    Ok(fields)
}

/// The requested features of each view, all nullable (no match gives null).
fn feature_fields(views: &[PitView]) -> Result<Vec<Vec<FieldSpec>>, OfflineError> {
    views
        .iter()
        .map(|view| {
            view.features
                .iter()
                .map(|name| {
                    if name == EVENT_TS {
                        return Ok(FieldSpec {
                            name: EVENT_TS.to_owned(),
                            value_type: ValueType::Timestamp,
                            nullable: true,
                        });
                    }
                    let feature = view.table.feature(name).ok_or_else(|| {
                        OfflineError::Input(format!(
                            "view `{}` has no feature `{name}`",
                            view.table.view
                        ))
                    })?;
                    Ok(FieldSpec {
                        nullable: true,
                        ..feature.clone()
                    })
                })
                .collect()
        })
        .collect()
}

/// One view's point-in-time result for some entity rows, in any order: each row's entity
/// row id and the view's features.
struct PitPiece {
    row_ids: ArrayRef,
    features: Vec<ArrayRef>,
}

impl PitPiece {
    /// Splits decoded query columns: the row id first, then the features.
    fn from_columns(mut columns: Vec<ArrayRef>) -> Result<Self, OfflineError> {
        if columns.is_empty() {
            return Err(OfflineError::Corrupt(
                "a point-in-time result without row ids".into(),
            ));
        }
        let features = columns.split_off(1);
        Ok(Self {
            row_ids: columns.remove(0),
            features,
        })
    }
}

/// Puts each view's pieces (together covering every entity row `0..rows` once) back in
/// entity row order: one batch per view.
fn assemble(
    views: Vec<Vec<PitPiece>>,
    fields: &[Vec<FieldSpec>],
    rows: usize,
) -> Result<Vec<RecordBatch>, OfflineError> {
    let corrupt = |e: arrow::error::ArrowError| OfflineError::Corrupt(e.to_string());
    views
        .into_iter()
        .zip(fields)
        .map(|(pieces, view_fields)| {
            if pieces.is_empty() && rows == 0 {
                return Ok(RecordBatch::new_empty(arrow_schema(view_fields)));
            }
            let ids: Vec<&dyn Array> = pieces.iter().map(|p| p.row_ids.as_ref()).collect();
            let ids = arrow::compute::concat(&ids).map_err(corrupt)?;
            let ids = ids
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .ok_or_else(|| OfflineError::Corrupt("row ids are not int64".into()))?;
            // position[row id] = where that row's values are in the concatenated pieces.
            let mut position = vec![u32::MAX; rows];
            for (at, id) in ids.iter().enumerate() {
                let slot = id
                    .and_then(|id| usize::try_from(id).ok())
                    .and_then(|id| position.get_mut(id))
                    .ok_or_else(|| OfflineError::Corrupt(format!("row id {id:?} out of range")))?;
                *slot = at as u32;
            }
            if ids.len() != rows || position.contains(&u32::MAX) {
                return Err(OfflineError::Corrupt(format!(
                    "the point-in-time join returned {} rows for {rows} entity rows",
                    ids.len()
                )));
            }
            let position = arrow::array::UInt32Array::from(position);
            let arrays = (0..view_fields.len())
                .map(|column| {
                    let parts: Vec<&dyn Array> =
                        pieces.iter().map(|p| p.features[column].as_ref()).collect();
                    let joined = arrow::compute::concat(&parts).map_err(corrupt)?;
                    arrow::compute::take(&joined, &position, None).map_err(corrupt)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let options = RecordBatchOptions::new().with_row_count(Some(rows));
            RecordBatch::try_new_with_options(arrow_schema(view_fields), arrays, &options)
                .map_err(corrupt)
        })
        .collect()
}
