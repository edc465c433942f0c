//! The offline store in an embedded SQLite file: the same tables and checkpoints as on
//! Postgres, multi-row upserts, one writer at a time, and the point-in-time join as a
//! correlated `rowid` lookup per view. Timestamps are µs integers; float64 values are their
//! 8 IEEE 754 bytes in a BLOB (SQLite's REAL turns NaN into NULL and -0.0 into 0.0), so every
//! bit pattern round-trips, as on Postgres. Tables made before that declare such columns
//! `REAL`: values are decoded by their storage class, so the REAL values they already hold
//! read as floats and the blobs written since as bits (a BLOB is never converted by a
//! column's affinity).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use async_trait::async_trait;
use futures_util::StreamExt;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow,
};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::{Mutex, MutexGuard};

use super::jobs::{self, Lease, RunEnd};
use super::sql::{self, Dialect, ROW_ID, ident};
use super::{
    ACQUIRE_TIMEOUT, BatchStream, ChunkCounts, Claim, JobPlan, JobStatus, LogRecord,
    Materialization, OfflineError, OfflineStore, PitPiece, PitView, Rows,
};
use crate::columnar::ColumnBuilder;
use crate::model::ValueType;
use crate::model::ViewTable;
use crate::model::arrow_schema;
use crate::model::now_micros;
use crate::sql_store::migrate::{self, Target};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/offline/sqlite");

/// The job-state columns, as a job table made before them gets them.
const JOB_STATE_COLUMNS: [(&str, &str); 4] = [
    ("state", "TEXT NOT NULL DEFAULT 'running'"),
    ("finished_at", "INTEGER"),
    ("alive_until", "INTEGER"),
    ("plan_fingerprint", "TEXT"),
];

/// SQLite allows at most 32766 bound values per statement.
const MAX_VARIABLES: usize = 32_000;

/// The offline store in one SQLite file.
pub struct SqliteStore {
    pool: SqlitePool,
    /// Writes take this lock, so transactions never race to upgrade to writers.
    writer: Mutex<()>,
}

/// A write transaction with the writer lock held until it ends.
struct WriteTx<'a> {
    tx: Transaction<'static, Sqlite>,
    _guard: MutexGuard<'a, ()>,
}

impl SqliteStore {
    /// Opens (creating if missing) the file and its job tables.
    pub async fn open(path: &Path) -> Result<Self, OfflineError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                OfflineError::Open(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| OfflineError::Open(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| OfflineError::Open(format!("{}: {e}", path.display())))?;
        let store = Self {
            pool,
            writer: Mutex::new(()),
        };
        store.migrate(path).await?;
        Ok(store)
    }

    /// Migrates the bookkeeping tables. A job table made before job states, by a version
    /// before migrations, first gets their columns: SQLite cannot add a column if missing.
    async fn migrate(&self, path: &Path) -> Result<(), OfflineError> {
        let mut tx = self.begin_write().await?;
        let existing: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info('backfill_jobs')")
                .fetch_all(&mut *tx.tx)
                .await?;
        if !existing.is_empty() {
            for (column, definition) in JOB_STATE_COLUMNS {
                if !existing.iter().any(|name| name == column) {
                    sqlx::query(&format!(
                        "ALTER TABLE backfill_jobs ADD COLUMN {column} {definition}"
                    ))
                    .execute(&mut *tx.tx)
                    .await
                    .map_err(|e| OfflineError::Open(format!("migrating the job table: {e}")))?;
                }
            }
        }
        tx.tx.commit().await?;
        migrate::run_at(
            &format!("sqlite://{}", path.display()),
            Target::Sqlite,
            &MIGRATIONS,
            super::MIGRATIONS_TABLE,
        )
        .await
        .map_err(|e| OfflineError::Open(format!("migrating the offline store: {e}")))
    }

    async fn begin_write(&self) -> Result<WriteTx<'_>, OfflineError> {
        let guard = self.writer.lock().await;
        // IMMEDIATE takes the write lock up front: another process's writer makes this wait
        // (busy timeout) instead of failing mid-transaction.
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx { tx, _guard: guard })
    }

    /// Statuses of job `id` (every job when `None`), newest first, at most `limit`.
    async fn statuses(&self, id: Option<i64>, limit: u32) -> Result<Vec<JobStatus>, OfflineError> {
        let sql = Dialect::Sqlite.job_status("backfill_jobs", "backfill_chunks");
        let rows = sqlx::query(&sql)
            .bind(id)
            .bind(i64::from(limit))
            .bind(now_micros())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(jobs::status_from_row).collect()
    }
}

/// Inserts rows of `columns` into `table` (named columns), as many per statement as
/// SQLite allows, with `suffix` (an upsert clause) after each.
async fn insert_rows(
    tx: &mut Transaction<'_, Sqlite>,
    table: &str,
    names: &[String],
    columns: &[(ValueType, &ArrayRef)],
    rows: usize,
    first_ordinal: Option<i64>,
    suffix: &str,
) -> Result<(), OfflineError> {
    let width = columns.len() + usize::from(first_ordinal.is_some());
    let per_statement = (MAX_VARIABLES / width.max(1)).max(1);
    let mut start = 0;
    while start < rows {
        let end = rows.min(start + per_statement);
        let row = format!("({})", vec!["?"; width].join(", "));
        let sql = format!(
            "INSERT INTO {table} AS t ({}) VALUES {} {suffix}",
            names.join(", "),
            vec![row.as_str(); end - start].join(", ")
        );
        let mut query = sqlx::query(&sql);
        for index in start..end {
            if let Some(first) = first_ordinal {
                query = query.bind(first + index as i64);
            }
            for (value_type, array) in columns {
                query = bind(query, *value_type, array, index);
            }
        }
        query.execute(&mut **tx).await?;
        start = end;
    }
    Ok(())
}

fn bind<'q>(
    query: Query<'q, Sqlite, SqliteArguments<'q>>,
    value_type: ValueType,
    array: &ArrayRef,
    row: usize,
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    let valid = array.is_valid(row);
    match value_type {
        ValueType::Int64 => query.bind(valid.then(|| array.as_primitive::<Int64Type>().value(row))),
        ValueType::Timestamp => {
            query.bind(valid.then(|| array.as_primitive::<TimestampMicrosecondType>().value(row)))
        }
        ValueType::Float64 => query.bind(
            valid.then(|| float_bytes(array.as_primitive::<Float64Type>().value(row)).to_vec()),
        ),
        ValueType::Boolean => query.bind(valid.then(|| array.as_boolean().value(row))),
        ValueType::Utf8 => {
            query.bind(valid.then(|| array.as_string::<i32>().value(row).to_owned()))
        }
    }
}

/// Upserts rows (layout of [`ViewTable::row_fields`]) into a view's table: deduplicated,
/// then newer-wins.
async fn upsert_rows(
    tx: &mut Transaction<'_, Sqlite>,
    table: &ViewTable,
    rows: &[RecordBatch],
) -> Result<(), OfflineError> {
    let rows = super::prepare_rows(table, rows)?;
    let fields = table.row_fields();
    let names: Vec<String> = fields.iter().map(|f| ident(&f.name)).collect();
    let upsert = Dialect::Sqlite.upsert("", table, "");
    let suffix = &upsert[upsert.find("ON CONFLICT").expect("upsert clause")..];
    let columns: Vec<(ValueType, &ArrayRef)> = fields
        .iter()
        .zip(rows.columns())
        .map(|(field, array)| (field.value_type, array))
        .collect();
    insert_rows(
        tx,
        &ident(&table.name),
        &names,
        &columns,
        rows.num_rows(),
        None,
        suffix,
    )
    .await
}

/// Decodes result rows into one array per type.
fn decode(rows: &[SqliteRow], types: &[ValueType]) -> Result<Vec<ArrayRef>, OfflineError> {
    let mut builders: Vec<ColumnBuilder> = types.iter().map(|&t| ColumnBuilder::new(t)).collect();
    for row in rows {
        for (index, (builder, value_type)) in builders.iter_mut().zip(types).enumerate() {
            match value_type {
                ValueType::Int64 | ValueType::Timestamp => {
                    match row.try_get::<Option<i64>, _>(index)? {
                        Some(value) => builder.int(value),
                        None => builder.null(),
                    }
                }
                ValueType::Float64 => match decode_float(row, index)? {
                    Some(value) => builder.float(value),
                    None => builder.null(),
                },
                ValueType::Boolean => match row.try_get::<Option<bool>, _>(index)? {
                    Some(value) => builder.boolean(value),
                    None => builder.null(),
                },
                ValueType::Utf8 => match row.try_get::<Option<&str>, _>(index)? {
                    Some(value) => builder.text(value),
                    None => builder.null(),
                },
            }
        }
    }
    Ok(builders.into_iter().map(ColumnBuilder::finish).collect())
}

/// How a float64 value is stored: its IEEE 754 bits, big-endian.
fn float_bytes(value: f64) -> [u8; 8] {
    value.to_bits().to_be_bytes()
}

/// The float64 in column `index` of `row`: an 8-byte blob as written by [`float_bytes`], or a
/// REAL of a table made before floats were stored as bits; `None` for NULL.
fn decode_float(row: &SqliteRow, index: usize) -> Result<Option<f64>, OfflineError> {
    use sqlx::{TypeInfo, ValueRef};
    let raw = row.try_get_raw(index)?;
    if raw.is_null() {
        return Ok(None);
    }
    if raw.type_info().name() != "BLOB" {
        return Ok(Some(row.try_get::<f64, _>(index)?));
    }
    let bytes: &[u8] = row.try_get(index)?;
    let bits: [u8; 8] = bytes.try_into().map_err(|_| {
        OfflineError::Corrupt(format!(
            "a float64 value of {} bytes instead of 8",
            bytes.len()
        ))
    })?;
    Ok(Some(f64::from_bits(u64::from_be_bytes(bits))))
}

#[async_trait]
impl OfflineStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ensure_table(&self, table: &ViewTable) -> Result<(), OfflineError> {
        table.check().map_err(|message| OfflineError::Table {
            view: table.view.clone(),
            table: table.name.clone(),
            message,
        })?;
        let mut tx = self.begin_write().await?;
        sqlx::query(&Dialect::Sqlite.create_table(&ident(&table.name), table))
            .execute(&mut *tx.tx)
            .await?;
        let existing: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
                .bind(&table.name)
                .fetch_all(&mut *tx.tx)
                .await?;
        tx.tx.commit().await?;
        super::check_existing_columns(table, existing)
    }

    async fn create_job(&self, plan: &JobPlan) -> Result<JobStatus, OfflineError> {
        let plan_fingerprint = plan.fingerprint();
        let mut tx = self.begin_write().await?;
        if !plan.fresh {
            let existing: Option<i64> = sqlx::query_scalar(
                &Dialect::Sqlite.job_to_resume("backfill_jobs", "backfill_chunks"),
            )
            .bind(&plan.table)
            .bind(&plan_fingerprint)
            .fetch_optional(&mut *tx.tx)
            .await?;
            if let Some(id) = existing {
                tx.tx.commit().await?;
                return self.job(id).await;
            }
        }
        let fingerprint = if plan.fresh {
            format!("{plan_fingerprint}#{}", now_micros())
        } else {
            plan_fingerprint.clone()
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO backfill_jobs (project, view, table_name, time_window, fingerprint, \
             plan_fingerprint, chunks, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             RETURNING id",
        )
        .bind(&plan.project)
        .bind(&plan.view)
        .bind(&plan.table)
        .bind(&plan.window)
        .bind(&fingerprint)
        .bind(&plan_fingerprint)
        .bind(plan.chunks.len() as i64)
        .bind(now_micros())
        .fetch_one(&mut *tx.tx)
        .await?;
        for (seq, spec) in plan.chunks.iter().enumerate() {
            sqlx::query("INSERT INTO backfill_chunks (job_id, seq, spec) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(seq as i64)
                .bind(spec)
                .execute(&mut *tx.tx)
                .await?;
        }
        tx.tx.commit().await?;
        self.job(id).await
    }

    async fn mark_running(
        &self,
        job: i64,
        alive_for: Duration,
        start: bool,
    ) -> Result<(), OfflineError> {
        let restart = if start {
            ", error = NULL, finished_at = NULL"
        } else {
            ""
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "UPDATE backfill_jobs SET state = 'running', alive_until = $2{restart} \
             WHERE id = $1 AND state <> 'done'"
        ))
        .bind(job)
        .bind(now_micros() + alive_for.as_micros() as i64)
        .execute(&mut *tx.tx)
        .await?;
        tx.tx.commit().await?;
        Ok(())
    }

    async fn end_run(&self, job: i64, end: &RunEnd) -> Result<(), OfflineError> {
        let (state, error) = end.columns();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE backfill_jobs SET state = $2, error = $3, finished_at = $4, \
                alive_until = NULL \
             WHERE id = $1 AND state <> 'done'",
        )
        .bind(job)
        .bind(state)
        .bind(error)
        .bind(now_micros())
        .execute(&mut *tx.tx)
        .await?;
        tx.tx.commit().await?;
        Ok(())
    }

    async fn leases(&self, job: i64) -> Result<Vec<Lease>, OfflineError> {
        let rows = sqlx::query(
            "SELECT seq, lease_owner, lease_expires FROM backfill_chunks \
             WHERE job_id = $1 AND NOT done AND lease_owner IS NOT NULL \
               AND lease_expires > $2 ORDER BY seq",
        )
        .bind(job)
        .bind(now_micros())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Lease {
                    seq: row.try_get::<i64, _>(0)? as u32,
                    owner: row.try_get(1)?,
                    expires_at_micros: row.try_get(2)?,
                })
            })
            .collect()
    }

    async fn release_leases(&self, job: i64, owner: &str) -> Result<Vec<u32>, OfflineError> {
        let mut tx = self.begin_write().await?;
        let released: Vec<i64> = sqlx::query_scalar(
            "UPDATE backfill_chunks SET lease_owner = NULL, lease_expires = NULL \
             WHERE job_id = $1 AND lease_owner = $2 AND NOT done RETURNING seq",
        )
        .bind(job)
        .bind(owner)
        .fetch_all(&mut *tx.tx)
        .await?;
        tx.tx.commit().await?;
        let mut released: Vec<u32> = released.into_iter().map(|seq| seq as u32).collect();
        released.sort_unstable();
        Ok(released)
    }

    async fn claim_chunk(
        &self,
        job: i64,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, OfflineError> {
        let mut tx = self.begin_write().await?;
        let now = now_micros();
        let row = sqlx::query(
            "UPDATE backfill_chunks SET lease_owner = $2, lease_expires = $3, \
                attempts = attempts + 1 \
             WHERE job_id = $1 AND seq = ( \
                SELECT seq FROM backfill_chunks WHERE job_id = $1 AND NOT done \
                  AND (lease_expires IS NULL OR lease_expires < $4) ORDER BY seq LIMIT 1) \
             RETURNING seq, spec, attempts",
        )
        .bind(job)
        .bind(owner)
        .bind(now + lease.as_micros() as i64)
        .bind(now)
        .fetch_optional(&mut *tx.tx)
        .await?;
        tx.tx.commit().await?;
        row.map(|row| {
            Ok(Claim {
                job,
                seq: row.try_get::<i64, _>(0)? as u32,
                spec: row.try_get(1)?,
                owner: owner.to_owned(),
                attempts: row.try_get::<i64, _>(2)? as u32,
            })
        })
        .transpose()
    }

    async fn renew_lease(&self, claim: &Claim, lease: Duration) -> Result<bool, OfflineError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE backfill_chunks SET lease_expires = $4 \
             WHERE job_id = $1 AND seq = $2 AND lease_owner = $3 AND NOT done",
        )
        .bind(claim.job)
        .bind(claim.seq as i64)
        .bind(&claim.owner)
        .bind(now_micros() + lease.as_micros() as i64)
        .execute(&mut *tx.tx)
        .await?;
        tx.tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn commit_chunk(
        &self,
        table: &ViewTable,
        claim: &Claim,
        rows: &[RecordBatch],
        counts: ChunkCounts,
    ) -> Result<bool, OfflineError> {
        let mut tx = self.begin_write().await?;
        let marked = sqlx::query(
            "UPDATE backfill_chunks SET done = 1, lease_owner = NULL, lease_expires = NULL, \
                rows_in = $4, rows_out = $5, rows_rejected = $6, finished_at = $7 \
             WHERE job_id = $1 AND seq = $2 AND lease_owner = $3 AND NOT done",
        )
        .bind(claim.job)
        .bind(claim.seq as i64)
        .bind(&claim.owner)
        .bind(counts.rows_in as i64)
        .bind(counts.rows_out as i64)
        .bind(counts.rows_rejected as i64)
        .bind(now_micros())
        .execute(&mut *tx.tx)
        .await?;
        if marked.rows_affected() != 1 {
            return Ok(false);
        }
        upsert_rows(&mut tx.tx, table, rows).await?;
        // The job's last chunk: the job is done, with the chunk.
        sqlx::query(
            "UPDATE backfill_jobs SET state = 'done', finished_at = $2, alive_until = NULL, \
                error = NULL \
             WHERE id = $1 AND state <> 'done' \
               AND NOT EXISTS (SELECT 1 FROM backfill_chunks WHERE job_id = $1 AND NOT done)",
        )
        .bind(claim.job)
        .bind(now_micros())
        .execute(&mut *tx.tx)
        .await?;
        tx.tx.commit().await?;
        Ok(true)
    }

    async fn job(&self, job: i64) -> Result<JobStatus, OfflineError> {
        self.statuses(Some(job), 1)
            .await?
            .pop()
            .ok_or(OfflineError::UnknownJob(job))
    }

    async fn jobs(&self, limit: u32) -> Result<Vec<JobStatus>, OfflineError> {
        self.statuses(None, limit).await
    }

    async fn point_in_time(
        &self,
        entities: &RecordBatch,
        views: &[PitView],
    ) -> Result<Vec<RecordBatch>, OfflineError> {
        let entity_fields = super::entity_fields(entities, views)?;
        let feature_fields = super::feature_fields(views)?;
        // A private connection: the temporary table lives as long as it does.
        let mut conn = self.pool.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let columns = Dialect::Sqlite.column_defs(&entity_fields);
        sqlx::query("DROP TABLE IF EXISTS temp.lockstep_entities")
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "CREATE TEMPORARY TABLE lockstep_entities ({} INTEGER PRIMARY KEY, {})",
            ident(ROW_ID),
            columns
        ))
        .execute(&mut *tx)
        .await?;
        let arrays: Vec<(ValueType, &ArrayRef)> = entity_fields
            .iter()
            .map(|field| {
                let array = entities
                    .column_by_name(&field.name)
                    .expect("entity columns checked");
                (field.value_type, array)
            })
            .collect();
        let mut names = vec![ident(ROW_ID)];
        names.extend(entity_fields.iter().map(|f| ident(&f.name)));
        insert_rows(
            &mut tx,
            "lockstep_entities",
            &names,
            &arrays,
            entities.num_rows(),
            Some(0),
            "",
        )
        .await?;
        let mut pieces = Vec::with_capacity(views.len());
        for (view, fields) in views.iter().zip(&feature_fields) {
            let sql =
                Dialect::Sqlite.point_in_time("lockstep_entities", view, &ident(&view.table.name));
            let rows = sqlx::query(&sql).fetch_all(&mut *tx).await?;
            let types: Vec<ValueType> = std::iter::once(ValueType::Int64)
                .chain(fields.iter().map(|field| field.value_type))
                .collect();
            pieces.push(vec![PitPiece::from_columns(decode(&rows, &types)?)?]);
        }
        sqlx::query("DROP TABLE temp.lockstep_entities")
            .execute(&mut *tx)
            .await?;
        tx.rollback().await?;
        super::assemble(pieces, &feature_fields, entities.num_rows())
    }

    async fn write_rows(&self, rows: &[(&ViewTable, RecordBatch)]) -> Result<(), OfflineError> {
        let mut tx = self.begin_write().await?;
        for (table, rows) in rows {
            upsert_rows(&mut tx.tx, table, std::slice::from_ref(rows)).await?;
        }
        tx.tx.commit().await?;
        Ok(())
    }

    fn stream(&self, table: &ViewTable, rows: Rows, batch_rows: usize) -> BatchStream {
        let pool = self.pool.clone();
        let sql = Dialect::Sqlite.stream(&ident(&table.name), table, &rows);
        let fields = table.row_fields();
        super::spawn_stream(move |sender| async move {
            let types: Vec<ValueType> = fields.iter().map(|f| f.value_type).collect();
            let schema = arrow_schema(&fields);
            let batch = |rows: &[SqliteRow]| {
                RecordBatch::try_new(schema.clone(), decode(rows, &types)?)
                    .map_err(|e| OfflineError::Corrupt(e.to_string()))
            };
            let mut rows = sqlx::query(&sql).fetch(&pool);
            let mut pending = Vec::with_capacity(batch_rows);
            while let Some(row) = rows.next().await {
                pending.push(row?);
                if pending.len() >= batch_rows {
                    let full = batch(&pending);
                    pending.clear();
                    if sender.send(full).await.is_err() {
                        return Ok(());
                    }
                }
            }
            if !pending.is_empty() {
                let _ = sender.send(batch(&pending)).await;
            }
            Ok(())
        })
    }

    async fn estimate_rows(
        &self,
        table: &ViewTable,
        rows: &Rows,
    ) -> Result<Option<u64>, OfflineError> {
        let sql = Dialect::Sqlite.stream(&ident(&table.name), table, rows);
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM ({sql})"))
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(count.max(0) as u64))
    }

    async fn record_materialization(&self, record: &Materialization) -> Result<(), OfflineError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO materializations \
             (project, view, table_name, start_micros, end_micros, rows, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&record.project)
        .bind(&record.view)
        .bind(&record.table)
        .bind(record.from)
        .bind(record.to)
        .bind(record.rows as i64)
        .bind(now_micros())
        .execute(&mut *tx.tx)
        .await?;
        tx.tx.commit().await?;
        Ok(())
    }

    async fn materialized_until(&self, table: &str) -> Result<Option<i64>, OfflineError> {
        Ok(
            sqlx::query_scalar(
                "SELECT max(end_micros) FROM materializations WHERE table_name = $1",
            )
            .bind(table)
            .fetch_one(&self.pool)
            .await?,
        )
    }

    async fn write_feature_logs(&self, records: &[LogRecord]) -> Result<(), OfflineError> {
        let mut tx = self.begin_write().await?;
        for record in records {
            sqlx::query(
                "INSERT INTO feature_log \
                 (project, service, logged_at, request_ts, digests, payload) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&record.project)
            .bind(&record.service)
            .bind(record.logged_at)
            .bind(record.request_ts)
            .bind(record.digests_text())
            .bind(&record.payload)
            .execute(&mut *tx.tx)
            .await?;
        }
        tx.tx.commit().await?;
        Ok(())
    }

    async fn read_feature_logs(
        &self,
        project: &str,
        service: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<LogRecord>, OfflineError> {
        let rows = sqlx::query(&sql::read_feature_logs("feature_log"))
            .bind(project)
            .bind(service)
            .bind(since)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(LogRecord::from_row).collect()
    }

    async fn scan(&self, table: &ViewTable) -> Result<Vec<RecordBatch>, OfflineError> {
        let fields = table.row_fields();
        let types: Vec<ValueType> = fields.iter().map(|f| f.value_type).collect();
        let sql = Dialect::Sqlite.scan(&ident(&table.name), table);
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        let arrays = decode(&rows, &types)?;
        let batch = RecordBatch::try_new(arrow_schema(&fields), arrays)
            .map_err(|e| OfflineError::Corrupt(e.to_string()))?;
        Ok(vec![batch])
    }
}
