//! The offline store on Postgres: tables in one schema, chunk rows staged with binary
//! `COPY` and upserted with the chunk's checkpoint in one transaction, leases claimed with
//! `FOR UPDATE SKIP LOCKED`, and the point-in-time join as `LATERAL` index lookups over a
//! `COPY`-loaded temporary table, split across connections.

use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch};
use async_trait::async_trait;
use futures_util::StreamExt;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Row};
use tokio::task::JoinSet;

use super::jobs::{self, Lease, RunEnd};
use super::pgcopy::{CopyReader, CopyWriter};
use super::sql::{self, Dialect, ROW_ID, ident};
use super::{
    ACQUIRE_TIMEOUT, BatchStream, ChunkCounts, Claim, JobPlan, JobStatus, LogRecord,
    Materialization, OfflineError, OfflineStore, PitPiece, PitView, Rows,
};
use crate::endpoint::{ConnectError, Store};
use crate::model::ViewTable;
use crate::model::arrow_schema;
use crate::model::{FieldSpec, ValueType};
use crate::sql_store::migrate::{self, Target};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/offline/postgres");

/// Fewest entity rows worth a point-in-time query (and connection) of their own.
const PIT_MIN_PART_ROWS: usize = 10_000;
/// Connections in the pool: point-in-time parts and concurrent chunk commits.
const CONNECTIONS: u32 = 8;

/// The offline store in a Postgres schema.
pub struct PostgresStore {
    pool: PgPool,
    schema: String,
}

impl PostgresStore {
    /// Connects, creates `schema` if missing and migrates its bookkeeping tables.
    pub async fn open(url: &str, schema: &str) -> Result<Self, OfflineError> {
        crate::sql_store::check_schema_name(schema).map_err(OfflineError::Open)?;
        crate::endpoint::probe_postgres(Store::Offline, url, ACQUIRE_TIMEOUT).await?;
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(|e| {
                let failure = crate::endpoint::classify_sqlx(&e, ACQUIRE_TIMEOUT);
                ConnectError::new(Store::Offline, url, failure)
            })?;
        let store = Self {
            pool,
            schema: schema.to_owned(),
        };
        // The bookkeeping tables; the schema is created if missing.
        migrate::run_at(
            url,
            Target::Postgres { schema },
            &MIGRATIONS,
            super::MIGRATIONS_TABLE,
        )
        .await
        .map_err(|e| OfflineError::Open(format!("migrating the offline store: {e}")))?;
        Ok(store)
    }

    /// Runs DDL in one transaction under a per-schema advisory lock, so processes starting
    /// together do not race on `CREATE … IF NOT EXISTS`.
    async fn ddl(&self, statements: &[String]) -> Result<(), OfflineError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("lockstep-offline:{}", self.schema))
            .execute(&mut *tx)
            .await?;
        for statement in statements {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    fn qualified(&self, name: &str) -> String {
        format!("{}.{}", ident(&self.schema), ident(name))
    }

    /// Statuses of job `id` (every job when `None`), newest first, at most `limit`.
    async fn statuses(&self, id: Option<i64>, limit: u32) -> Result<Vec<JobStatus>, OfflineError> {
        let sql = Dialect::Postgres.job_status(
            &self.qualified("backfill_jobs"),
            &self.qualified("backfill_chunks"),
        );
        let rows = sqlx::query(&sql)
            .bind(id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(jobs::status_from_row).collect()
    }

    /// Writes prepared rows (see [`super::prepare_rows`]) into a view's table. Most chunks hold only new keys (a first
    /// backfill), so the rows are first `COPY`ed straight into the table under a savepoint;
    /// if any key already exists, that is rolled back and the rows go through a staging
    /// table and the newer-wins upsert instead.
    async fn copy_rows(
        &self,
        tx: &mut PgConnection,
        table: &ViewTable,
        rows: &RecordBatch,
    ) -> Result<(), OfflineError> {
        let fields = table.row_fields();
        let names: Vec<String> = fields.iter().map(|f| ident(&f.name)).collect();
        let columns: Vec<(ValueType, &ArrayRef)> = fields
            .iter()
            .zip(rows.columns())
            .map(|(field, array)| (field.value_type, array))
            .collect();
        let mut writer = CopyWriter::new();
        writer.append(&columns, rows.num_rows(), None);
        let payload = writer.finish();
        let qualified = self.qualified(&table.name);
        sqlx::query("SAVEPOINT lockstep_direct")
            .execute(&mut *tx)
            .await?;
        let direct = copy_in(
            tx,
            &format!(
                "COPY {qualified} ({}) FROM STDIN (FORMAT binary)",
                names.join(", ")
            ),
            payload.clone(),
        )
        .await;
        match direct {
            Ok(_) => {
                sqlx::query("RELEASE SAVEPOINT lockstep_direct")
                    .execute(&mut *tx)
                    .await?;
                return Ok(());
            }
            Err(CopyFailure::UniqueViolation) => {
                sqlx::query("ROLLBACK TO SAVEPOINT lockstep_direct")
                    .execute(&mut *tx)
                    .await?;
            }
            Err(CopyFailure::Other(error)) => return Err(error),
        }
        let staged = Dialect::Postgres.column_defs(&fields);
        sqlx::query(&format!(
            "CREATE TEMPORARY TABLE lockstep_stage ({}) ON COMMIT DROP",
            staged
        ))
        .execute(&mut *tx)
        .await?;
        copy_in(
            tx,
            &format!(
                "COPY lockstep_stage ({}) FROM STDIN (FORMAT binary)",
                names.join(", ")
            ),
            payload,
        )
        .await
        .map_err(CopyFailure::into_error)?;
        let select = format!("SELECT {} FROM lockstep_stage", names.join(", "));
        sqlx::query(&Dialect::Postgres.upsert(&qualified, table, &select))
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// One part of a point-in-time join, on its own connection: `COPY` the entity rows into
    /// a temporary table, then `COPY` each view's joined features out.
    async fn pit_part(
        pool: PgPool,
        queries: Vec<(String, Vec<ValueType>)>,
        entity_fields: Vec<FieldSpec>,
        entities: RecordBatch,
        first_row: i64,
    ) -> Result<Vec<PitPiece>, OfflineError> {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let columns = Dialect::Postgres.column_defs(&entity_fields);
        sqlx::query(&format!(
            "CREATE TEMPORARY TABLE lockstep_entities ({} BIGINT, {}) ON COMMIT DROP",
            ident(ROW_ID),
            columns
        ))
        .execute(&mut *tx)
        .await?;
        let names: Vec<String> = entity_fields.iter().map(|f| ident(&f.name)).collect();
        let arrays: Vec<(ValueType, &ArrayRef)> = entity_fields
            .iter()
            .map(|field| {
                let array = entities
                    .column_by_name(&field.name)
                    .expect("entity columns checked by the caller");
                (field.value_type, array)
            })
            .collect();
        let mut writer = CopyWriter::new();
        writer.append(&arrays, entities.num_rows(), Some(first_row));
        copy_in(
            &mut tx,
            &format!(
                "COPY lockstep_entities ({}, {}) FROM STDIN (FORMAT binary)",
                ident(ROW_ID),
                names.join(", ")
            ),
            writer.finish(),
        )
        .await
        .map_err(CopyFailure::into_error)?;
        // Thousands of short index lookups: compiling them to machine code costs more than
        // it saves.
        sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
        let mut pieces = Vec::with_capacity(queries.len());
        for (sql, types) in &queries {
            let (_, columns) = copy_out(
                &mut tx,
                &format!("COPY ({sql}) TO STDOUT (FORMAT binary)"),
                types,
            )
            .await?;
            pieces.push(PitPiece::from_columns(columns)?);
        }
        tx.commit().await?;
        Ok(pieces)
    }
}

/// Why a `COPY … FROM STDIN` failed: a duplicate key (the caller may fall back), or not.
enum CopyFailure {
    UniqueViolation,
    Other(OfflineError),
}

impl CopyFailure {
    fn into_error(self) -> OfflineError {
        match self {
            CopyFailure::UniqueViolation => {
                OfflineError::Corrupt("duplicate keys in rows already deduplicated".into())
            }
            CopyFailure::Other(error) => error,
        }
    }
}

impl From<sqlx::Error> for CopyFailure {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
                CopyFailure::UniqueViolation
            }
            _ => CopyFailure::Other(error.into()),
        }
    }
}

async fn copy_in(
    conn: &mut PgConnection,
    statement: &str,
    payload: Vec<u8>,
) -> Result<u64, CopyFailure> {
    let mut copy = conn.copy_in_raw(statement).await?;
    if let Err(error) = copy.send(payload).await {
        // Best effort: the connection reports the original error either way.
        let _ = copy.abort("send failed").await;
        return Err(error.into());
    }
    Ok(copy.finish().await?)
}

async fn copy_out(
    conn: &mut PgConnection,
    statement: &str,
    types: &[ValueType],
) -> Result<(usize, Vec<ArrayRef>), OfflineError> {
    let mut reader = CopyReader::new(types);
    let mut stream = conn.copy_out_raw(statement).await?;
    while let Some(bytes) = stream.next().await {
        reader.feed(&bytes?)?;
    }
    reader.finish()
}

#[async_trait]
impl OfflineStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ensure_table(&self, table: &ViewTable) -> Result<(), OfflineError> {
        table.check().map_err(|message| OfflineError::Table {
            view: table.view.clone(),
            table: table.name.clone(),
            message,
        })?;
        let qualified = self.qualified(&table.name);
        self.ddl(&[Dialect::Postgres.create_table(&qualified, table)])
            .await?;
        let existing: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
        )
        .bind(&self.schema)
        .bind(&table.name)
        .fetch_all(&self.pool)
        .await?;
        super::check_existing_columns(table, existing)
    }

    async fn create_job(&self, plan: &JobPlan) -> Result<JobStatus, OfflineError> {
        let (jobs, chunks) = (
            self.qualified("backfill_jobs"),
            self.qualified("backfill_chunks"),
        );
        let plan_fingerprint = plan.fingerprint();
        let mut tx = self.pool.begin().await?;
        if !plan.fresh {
            let existing: Option<i64> =
                sqlx::query_scalar(&Dialect::Postgres.job_to_resume(&jobs, &chunks))
                    .bind(&plan.table)
                    .bind(&plan_fingerprint)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(id) = existing {
                tx.commit().await?;
                return self.job(id).await;
            }
        }
        let fingerprint = if plan.fresh {
            format!("{plan_fingerprint}#{}", crate::model::now_micros())
        } else {
            plan_fingerprint.clone()
        };
        let created: Option<i64> = sqlx::query_scalar(&format!(
            "INSERT INTO {jobs} (project, view, table_name, time_window, fingerprint, \
                plan_fingerprint, chunks) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (table_name, fingerprint) DO NOTHING \
             RETURNING id"
        ))
        .bind(&plan.project)
        .bind(&plan.view)
        .bind(&plan.table)
        .bind(&plan.window)
        .bind(&fingerprint)
        .bind(&plan_fingerprint)
        .bind(plan.chunks.len() as i32)
        .fetch_optional(&mut *tx)
        .await?;
        let id = match created {
            Some(id) => {
                let seqs: Vec<i32> = (0..plan.chunks.len() as i32).collect();
                sqlx::query(&format!(
                    "INSERT INTO {chunks} (job_id, seq, spec) \
                     SELECT $1, seq, spec FROM UNNEST($2::int4[], $3::text[]) AS u (seq, spec)"
                ))
                .bind(id)
                .bind(&seqs)
                .bind(&plan.chunks)
                .execute(&mut *tx)
                .await?;
                id
            }
            // Another process created the same job a moment ago.
            None => {
                sqlx::query_scalar(&format!(
                    "SELECT id FROM {jobs} WHERE table_name = $1 AND fingerprint = $2"
                ))
                .bind(&plan.table)
                .bind(&fingerprint)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
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
        sqlx::query(&format!(
            "UPDATE {} SET state = 'running', \
                alive_until = clock_timestamp() + make_interval(secs => $2){restart} \
             WHERE id = $1 AND state <> 'done'",
            self.qualified("backfill_jobs")
        ))
        .bind(job)
        .bind(alive_for.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn end_run(&self, job: i64, end: &RunEnd) -> Result<(), OfflineError> {
        let (state, error) = end.columns();
        sqlx::query(&format!(
            "UPDATE {} SET state = $2, error = $3, finished_at = clock_timestamp(), \
                alive_until = NULL \
             WHERE id = $1 AND state <> 'done'",
            self.qualified("backfill_jobs")
        ))
        .bind(job)
        .bind(state)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn leases(&self, job: i64) -> Result<Vec<Lease>, OfflineError> {
        let rows = sqlx::query(&format!(
            "SELECT seq, lease_owner, \
                CAST(extract(epoch FROM lease_expires) * 1000000 AS BIGINT) \
             FROM {} WHERE job_id = $1 AND NOT done AND lease_owner IS NOT NULL \
                AND lease_expires > clock_timestamp() ORDER BY seq",
            self.qualified("backfill_chunks")
        ))
        .bind(job)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Lease {
                    seq: row.try_get::<i32, _>(0)? as u32,
                    owner: row.try_get(1)?,
                    expires_at_micros: row.try_get(2)?,
                })
            })
            .collect()
    }

    async fn release_leases(&self, job: i64, owner: &str) -> Result<Vec<u32>, OfflineError> {
        let released: Vec<i32> = sqlx::query_scalar(&format!(
            "UPDATE {} SET lease_owner = NULL, lease_expires = NULL \
             WHERE job_id = $1 AND lease_owner = $2 AND NOT done RETURNING seq",
            self.qualified("backfill_chunks")
        ))
        .bind(job)
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
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
        let chunks = self.qualified("backfill_chunks");
        let row = sqlx::query(&format!(
            "UPDATE {chunks} c SET lease_owner = $2, \
                lease_expires = clock_timestamp() + make_interval(secs => $3), \
                attempts = c.attempts + 1 \
             WHERE (c.job_id, c.seq) = ( \
                SELECT job_id, seq FROM {chunks} \
                WHERE job_id = $1 AND NOT done \
                  AND (lease_expires IS NULL OR lease_expires < clock_timestamp()) \
                ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING c.seq, c.spec, c.attempts"
        ))
        .bind(job)
        .bind(owner)
        .bind(lease.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Claim {
                job,
                seq: row.try_get::<i32, _>(0)? as u32,
                spec: row.try_get(1)?,
                owner: owner.to_owned(),
                attempts: row.try_get::<i32, _>(2)? as u32,
            })
        })
        .transpose()
    }

    async fn renew_lease(&self, claim: &Claim, lease: Duration) -> Result<bool, OfflineError> {
        let done = sqlx::query(&format!(
            "UPDATE {} SET lease_expires = clock_timestamp() + make_interval(secs => $4) \
             WHERE job_id = $1 AND seq = $2 AND lease_owner = $3 AND NOT done",
            self.qualified("backfill_chunks")
        ))
        .bind(claim.job)
        .bind(claim.seq as i32)
        .bind(&claim.owner)
        .bind(lease.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn commit_chunk(
        &self,
        table: &ViewTable,
        claim: &Claim,
        rows: &[RecordBatch],
        counts: ChunkCounts,
    ) -> Result<bool, OfflineError> {
        let mut tx = self.pool.begin().await?;
        // The checkpoint row first: its lock orders commits of the same chunk, and a lost
        // lease aborts before any work.
        let marked = sqlx::query(&format!(
            "UPDATE {} SET done = true, lease_owner = NULL, lease_expires = NULL, \
                rows_in = $4, rows_out = $5, rows_rejected = $6, finished_at = clock_timestamp() \
             WHERE job_id = $1 AND seq = $2 AND lease_owner = $3 AND NOT done",
            self.qualified("backfill_chunks")
        ))
        .bind(claim.job)
        .bind(claim.seq as i32)
        .bind(&claim.owner)
        .bind(counts.rows_in as i64)
        .bind(counts.rows_out as i64)
        .bind(counts.rows_rejected as i64)
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() != 1 {
            return Ok(false);
        }
        // A crash loses only whole transactions, checkpoint and rows together, which the
        // next run redoes: durability of each commit is not needed for correctness.
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        let rows = super::prepare_rows(table, rows)?;
        if rows.num_rows() > 0 {
            self.copy_rows(&mut tx, table, &rows).await?;
        }
        // The job's last chunk: the job is done, with the chunk.
        let chunks = self.qualified("backfill_chunks");
        sqlx::query(&format!(
            "UPDATE {} SET state = 'done', finished_at = clock_timestamp(), alive_until = NULL, \
                error = NULL \
             WHERE id = $1 AND state <> 'done' \
               AND NOT EXISTS (SELECT 1 FROM {chunks} WHERE job_id = $1 AND NOT done)",
            self.qualified("backfill_jobs")
        ))
        .bind(claim.job)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
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
        // Per view: its query and the types it returns (row id, then features).
        let queries: Vec<(String, Vec<ValueType>)> = views
            .iter()
            .zip(&feature_fields)
            .map(|(view, fields)| {
                let sql = Dialect::Postgres.point_in_time(
                    "lockstep_entities",
                    view,
                    &self.qualified(&view.table.name),
                );
                let types = std::iter::once(ValueType::Int64)
                    .chain(fields.iter().map(|field| field.value_type))
                    .collect();
                (sql, types)
            })
            .collect();
        let mut parts = JoinSet::new();
        let rows = entities.num_rows();
        // One part per core (the lookups are CPU-bound in Postgres), none under the minimum.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let part_rows = rows
            .div_ceil(cores.min(CONNECTIONS as usize))
            .max(PIT_MIN_PART_ROWS);
        for first in (0..rows).step_by(part_rows) {
            let length = part_rows.min(rows - first);
            parts.spawn(Self::pit_part(
                self.pool.clone(),
                queries.clone(),
                entity_fields.clone(),
                entities.slice(first, length),
                first as i64,
            ));
        }
        let mut pieces: Vec<Vec<PitPiece>> = views.iter().map(|_| Vec::new()).collect();
        while let Some(joined) = parts.join_next().await {
            let part = joined.map_err(|e| OfflineError::Unavailable(e.to_string()))??;
            for (view, piece) in pieces.iter_mut().zip(part) {
                view.push(piece);
            }
        }
        super::assemble(pieces, &feature_fields, rows)
    }

    async fn write_rows(&self, rows: &[(&ViewTable, RecordBatch)]) -> Result<(), OfflineError> {
        let mut prepared = Vec::with_capacity(rows.len());
        for (table, rows) in rows {
            let rows = super::prepare_rows(table, std::slice::from_ref(rows))?;
            if rows.num_rows() > 0 {
                prepared.push((*table, rows));
            }
        }
        if prepared.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for (table, rows) in &prepared {
            self.copy_rows(&mut tx, table, rows).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    fn stream(&self, table: &ViewTable, rows: Rows, batch_rows: usize) -> BatchStream {
        let pool = self.pool.clone();
        let sql = Dialect::Postgres.stream(&self.qualified(&table.name), table, &rows);
        let fields = table.row_fields();
        super::spawn_stream(move |sender| async move {
            let types: Vec<ValueType> = fields.iter().map(|f| f.value_type).collect();
            let schema = arrow_schema(&fields);
            let batch = |arrays: Vec<ArrayRef>| {
                RecordBatch::try_new(schema.clone(), arrays)
                    .map_err(|e| OfflineError::Corrupt(e.to_string()))
            };
            let mut conn = pool.acquire().await?;
            let mut reader = CopyReader::new(&types);
            let mut stream = conn
                .copy_out_raw(&format!("COPY ({sql}) TO STDOUT (FORMAT binary)"))
                .await?;
            while let Some(bytes) = stream.next().await {
                reader.feed(&bytes?)?;
                if reader.rows() >= batch_rows {
                    let (_, arrays) = reader.take();
                    if sender.send(batch(arrays)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            let (rows, arrays) = reader.finish()?;
            if rows > 0 {
                let _ = sender.send(batch(arrays)).await;
            }
            Ok(())
        })
    }

    async fn estimate_rows(
        &self,
        table: &ViewTable,
        rows: &Rows,
    ) -> Result<Option<u64>, OfflineError> {
        let qualified = self.qualified(&table.name);
        // -1: never analyzed, so the planner would guess without statistics.
        let tuples: f32 =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = $1::regclass")
                .bind(&qualified)
                .fetch_one(&self.pool)
                .await?;
        if tuples < 0.0 {
            sqlx::query(&format!("ANALYZE {qualified}"))
                .execute(&self.pool)
                .await?;
        }
        let sql = Dialect::Postgres.stream(&qualified, table, rows);
        let plan: serde_json::Value = sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {sql}"))
            .fetch_one(&self.pool)
            .await?;
        Ok(plan[0]["Plan"]["Plan Rows"]
            .as_f64()
            .map(|rows| rows.max(0.0).round() as u64))
    }

    async fn record_materialization(&self, record: &Materialization) -> Result<(), OfflineError> {
        sqlx::query(&format!(
            "INSERT INTO {} (project, view, table_name, start_micros, end_micros, rows) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            self.qualified("materializations")
        ))
        .bind(&record.project)
        .bind(&record.view)
        .bind(&record.table)
        .bind(record.from)
        .bind(record.to)
        .bind(record.rows as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn materialized_until(&self, table: &str) -> Result<Option<i64>, OfflineError> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT max(end_micros) FROM {} WHERE table_name = $1",
            self.qualified("materializations")
        ))
        .bind(table)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn write_feature_logs(&self, records: &[LogRecord]) -> Result<(), OfflineError> {
        let sql = format!(
            "INSERT INTO {} (project, service, logged_at, request_ts, digests, payload) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            self.qualified("feature_log")
        );
        let mut tx = self.pool.begin().await?;
        for record in records {
            sqlx::query(&sql)
                .bind(&record.project)
                .bind(&record.service)
                .bind(record.logged_at)
                .bind(record.request_ts)
                .bind(record.digests_text())
                .bind(&record.payload)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn read_feature_logs(
        &self,
        project: &str,
        service: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<LogRecord>, OfflineError> {
        let rows = sqlx::query(&sql::read_feature_logs(&self.qualified("feature_log")))
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
        let sql = Dialect::Postgres.scan(&self.qualified(&table.name), table);
        let mut conn = self.pool.acquire().await?;
        let (_, arrays) = copy_out(
            &mut conn,
            &format!("COPY ({sql}) TO STDOUT (FORMAT binary)"),
            &types,
        )
        .await?;
        let batch = RecordBatch::try_new(arrow_schema(&fields), arrays)
            .map_err(|e| OfflineError::Corrupt(e.to_string()))?;
        Ok(vec![batch])
    }
}
