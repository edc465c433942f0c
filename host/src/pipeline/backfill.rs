//! Backfills: a view's source planned into chunks up front, then chunk by chunk (by any
//! number of workers, in this process or others) read → the view's pinned transform →
//! offline upsert, each chunk's rows and checkpoint committed together. A killed backfill
//! resumes where it stopped; a repeated one changes nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};

use super::view_rows::{RowsError, ViewRows};
use super::{Lockstep, ReadyError};
use crate::model::definitions::Source;
use crate::offline::{ChunkCounts, Claim, JobPlan, JobStatus, OfflineError, ViewTable};
use crate::registry::RegistryError;
use crate::runtime::{RunError, Runtime};
use crate::source::{self, Chunk, SourceContext, SourceError, TimeWindow};

/// What to backfill.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// Defaults to the only project with definitions, or `default`.
    #[serde(default)]
    pub project: Option<String>,
    pub view: String,
    /// Event times from (inclusive), µs since the epoch.
    #[serde(default)]
    pub from: Option<i64>,
    /// Event times to (exclusive), µs since the epoch.
    #[serde(default)]
    pub to: Option<i64>,
    /// Plan a new job even if the same plan already ran (rewrites nothing that is equal).
    #[serde(default)]
    pub fresh: bool,
}

/// Why a backfill could not run.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("project `{project}` has no feature view `{view}`{known}")]
    UnknownView {
        project: String,
        view: String,
        known: String,
    },
    #[error("feature view `{0}` has `offline = false`: it has no offline table to backfill")]
    NotOffline(String),
    #[error(
        "feature view `{view}` reads source `{source_name}`, a {kind} source: only parquet, csv and postgres sources can be backfilled"
    )]
    NotBatch {
        view: String,
        source_name: String,
        kind: String,
    },
    #[error("`from` ({from}) must be before `to` ({to})")]
    EmptyWindow { from: i64, to: i64 },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Offline(#[from] OfflineError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Project(#[from] super::ProjectError),
    #[error(transparent)]
    Ready(#[from] ReadyError),
    #[error("{chunk}: {error}")]
    Transform { chunk: String, error: RunError },
    #[error("{chunk}: {message}")]
    Rows { chunk: String, message: String },
    #[error("chunk {seq} of job {job} is not a chunk this version can read: {message}")]
    BadChunk { job: i64, seq: u32, message: String },
    #[error("backfill worker failed: {0}")]
    Internal(String),
}

impl BackfillError {
    /// Stable code for wire errors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownView { .. } => "unknown_view",
            Self::NotOffline(_) | Self::NotBatch { .. } | Self::EmptyWindow { .. } => {
                "invalid_backfill"
            }
            Self::Source(error) => error.code(),
            Self::Offline(error) => error.code(),
            Self::Registry(error) => error.code(),
            Self::Project(error) => error.code(),
            Self::Ready(error) => error.code(),
            Self::Transform { error, .. } => error.code(),
            Self::Rows { .. } => "invalid_source_rows",
            Self::BadChunk { .. } => "invalid_backfill_chunk",
            Self::Internal(_) => "internal",
        }
    }
}

/// What a backfill reports as it goes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BackfillEvent {
    /// The job exists: how much of it is left.
    Planned {
        job: JobStatus,
        estimated_rows: Option<u64>,
    },
    /// One chunk committed by this process.
    ChunkDone {
        seq: u32,
        chunk: String,
        counts: ChunkCounts,
        /// Reading and transforming the chunk.
        compute_seconds: f64,
        /// Writing it and its checkpoint.
        write_seconds: f64,
    },
    /// Another worker took over a chunk whose lease this process let lapse.
    LeaseLost { seq: u32 },
}

/// A finished backfill run.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillSummary {
    pub job: JobStatus,
    pub table: String,
    /// Chunks and rows this process did (others may have done the rest).
    pub chunks: u32,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_rejected: u64,
    pub seconds: f64,
}

impl BackfillSummary {
    /// Source rows processed per second by this process.
    pub fn rows_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.rows_in as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Everything a worker needs to run any chunk of one job.
struct JobContext {
    source: Source,
    sources: SourceContext,
    window: TimeWindow,
    rows: ViewRows,
    batch_rows: usize,
}

/// A planned backfill, ready for workers.
pub struct PlannedBackfill {
    pub job: JobStatus,
    pub estimated_rows: Option<u64>,
    context: Arc<JobContext>,
}

impl Lockstep {
    /// Finds the view, plans its chunks and records (or finds) the job.
    pub async fn plan_backfill(
        &self,
        request: &BackfillRequest,
    ) -> Result<PlannedBackfill, BackfillError> {
        if let (Some(from), Some(to)) = (request.from, request.to)
            && from >= to
        {
            return Err(BackfillError::EmptyWindow { from, to });
        }
        let project = self.project(request.project.as_deref()).await?;
        let definitions = self
            .definitions(&project)
            .await
            .map_err(|error| match error {
                super::ApplyError::Registry(error) => BackfillError::Registry(error),
                other => BackfillError::Internal(other.to_string()),
            })?;
        let Some(view) = definitions.feature_views.get(&request.view) else {
            let known: Vec<&str> = definitions
                .feature_views
                .keys()
                .map(String::as_str)
                .collect();
            return Err(BackfillError::UnknownView {
                project,
                view: crate::model::text::echo(&request.view),
                known: if known.is_empty() {
                    " (it has no feature views; run `lockstep apply` first)".to_owned()
                } else {
                    format!(" (known: {})", known.join(", "))
                },
            });
        };
        if !view.offline {
            return Err(BackfillError::NotOffline(request.view.clone()));
        }
        let source = definitions
            .sources
            .get(&view.source)
            .cloned()
            .ok_or_else(|| BackfillError::Internal(format!("source `{}` missing", view.source)))?;
        use crate::model::definitions::SourceKind;
        if !matches!(
            source.kind,
            SourceKind::Parquet | SourceKind::Csv | SourceKind::Postgres
        ) {
            return Err(BackfillError::NotBatch {
                view: request.view.clone(),
                source_name: view.source.clone(),
                kind: source.kind.to_string(),
            });
        }
        let table = ViewTable::for_view(&project, &request.view, view);
        self.offline.ensure_table(&table).await?;
        let rows = self.view_rows(&source, view, table).await?;
        let context = JobContext {
            source,
            sources: self.sources.clone(),
            window: TimeWindow {
                from: request.from,
                to: request.to,
            },
            rows,
            batch_rows: self.backfill.batch_rows,
        };
        let chunks = source::plan(
            &context.source,
            &context.sources,
            context.window,
            self.backfill.chunk_rows,
        )
        .await?;
        let estimated_rows = chunks
            .iter()
            .map(Chunk::estimated_rows)
            .sum::<Option<u64>>();
        let specs = chunks
            .iter()
            .map(|chunk| serde_json::to_string(chunk).expect("chunks serialize"))
            .collect();
        let job = self
            .offline
            .create_job(&JobPlan {
                project: project.clone(),
                view: request.view.clone(),
                table: context.rows.table.name.clone(),
                window: describe_window(context.window),
                chunks: specs,
                fresh: request.fresh,
            })
            .await?;
        Ok(PlannedBackfill {
            job,
            estimated_rows,
            context: Arc::new(context),
        })
    }

    /// Works on a planned job until every chunk is done (by this process or others),
    /// with `backfill.workers` chunks at a time.
    pub async fn run_backfill(
        &self,
        planned: &PlannedBackfill,
        events: &(dyn Fn(BackfillEvent) + Send + Sync),
    ) -> Result<BackfillSummary, BackfillError> {
        let started = Instant::now();
        events(BackfillEvent::Planned {
            job: planned.job.clone(),
            estimated_rows: planned.estimated_rows,
        });
        let owner = format!(
            "{}:{}:{}",
            hostname(),
            std::process::id(),
            crate::registry::now_micros()
        );
        self.offline.record_error(planned.job.id, None).await?;
        let workers = (0..self.backfill.workers.max(1))
            .map(|index| self.work(planned, format!("{owner}:{index}"), events));
        let done = match futures_util::future::try_join_all(workers).await {
            Ok(done) => done,
            Err(error) => {
                // Best effort: the error itself is what the caller must see.
                let _ = self
                    .offline
                    .record_error(planned.job.id, Some(&error.to_string()))
                    .await;
                return Err(error);
            }
        };
        let mut totals = ChunkCounts::default();
        let mut chunks = 0;
        for (count, counts) in done {
            chunks += count;
            totals.rows_in += counts.rows_in;
            totals.rows_out += counts.rows_out;
            totals.rows_rejected += counts.rows_rejected;
        }
        Ok(BackfillSummary {
            job: self.offline.job(planned.job.id).await?,
            table: planned.context.rows.table.name.clone(),
            chunks,
            rows_in: totals.rows_in,
            rows_out: totals.rows_out,
            rows_rejected: totals.rows_rejected,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// One worker: claim, run, commit, until no chunk is left.
    async fn work(
        &self,
        planned: &PlannedBackfill,
        owner: String,
        events: &(dyn Fn(BackfillEvent) + Send + Sync),
    ) -> Result<(u32, ChunkCounts), BackfillError> {
        let lease = Duration::from_secs_f64(self.backfill.lease_seconds);
        let job = planned.job.id;
        let (mut chunks, mut totals) = (0, ChunkCounts::default());
        loop {
            let Some(claim) = self.offline.claim_chunk(job, &owner, lease).await? else {
                if self.offline.job(job).await?.is_complete() {
                    return Ok((chunks, totals));
                }
                // Other workers hold the rest, or a dead worker's lease has yet to lapse.
                tokio::time::sleep((lease / 4).min(Duration::from_millis(50))).await;
                continue;
            };
            let chunk: Chunk =
                serde_json::from_str(&claim.spec).map_err(|e| BackfillError::BadChunk {
                    job,
                    seq: claim.seq,
                    message: e.to_string(),
                })?;
            let started = Instant::now();
            let (rows, counts) = self
                .run_leased(&planned.context, &claim, &chunk, lease)
                .await?;
            let computed = Instant::now();
            if self
                .offline
                .commit_chunk(&planned.context.rows.table, &claim, &rows, counts)
                .await?
            {
                chunks += 1;
                totals.rows_in += counts.rows_in;
                totals.rows_out += counts.rows_out;
                totals.rows_rejected += counts.rows_rejected;
                events(BackfillEvent::ChunkDone {
                    seq: claim.seq,
                    chunk: chunk.describe(),
                    counts,
                    compute_seconds: (computed - started).as_secs_f64(),
                    write_seconds: computed.elapsed().as_secs_f64(),
                });
            } else {
                events(BackfillEvent::LeaseLost { seq: claim.seq });
            }
        }
    }

    /// Runs one chunk off the async threads, renewing its lease until it is done.
    async fn run_leased(
        &self,
        context: &Arc<JobContext>,
        claim: &Claim,
        chunk: &Chunk,
        lease: Duration,
    ) -> Result<(Vec<RecordBatch>, ChunkCounts), BackfillError> {
        let runtime = Arc::clone(&self.runtime);
        let job = Arc::clone(context);
        let owned = chunk.clone();
        let mut work = tokio::task::spawn_blocking(move || run_chunk(&runtime, &job, &owned));
        let mut renew = tokio::time::interval(lease / 3);
        renew.tick().await;
        loop {
            tokio::select! {
                result = &mut work => {
                    let result = result.map_err(|e| BackfillError::Internal(e.to_string()))?;
                    if let Err(BackfillError::Transform { error: error @ RunError::NotRowWise { .. }, .. }) = &result
                        && let Some(digest) = context.rows.digest()
                    {
                        self.mark_unsafe(digest, &error.to_string()).await;
                    }
                    return result;
                }
                _ = renew.tick() => {
                    // A lost lease shows at commit time, which then writes nothing.
                    if let Err(error) = self.offline.renew_lease(claim, lease).await {
                        tracing::warn!(%error, seq = claim.seq, "could not renew a chunk lease");
                    }
                }
            }
        }
    }
}

/// Reads one chunk and turns it into the table's rows.
fn run_chunk(
    runtime: &Runtime,
    job: &JobContext,
    chunk: &Chunk,
) -> Result<(Vec<RecordBatch>, ChunkCounts), BackfillError> {
    let describe = || chunk.describe();
    let reader = source::open(
        &job.source,
        &job.sources,
        chunk,
        &job.rows.columns,
        job.window,
        job.batch_rows,
    )?;
    let mut counts = ChunkCounts::default();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch?;
        let offset = counts.rows_in as usize;
        counts.rows_in += batch.num_rows() as u64;
        let (rows, rejected) = job
            .rows
            .compute(runtime, batch)
            .map_err(|error| match error {
                RowsError::Run(error) => BackfillError::Transform {
                    chunk: describe(),
                    error,
                },
                RowsError::Columns(message) => BackfillError::Rows {
                    chunk: describe(),
                    message,
                },
                RowsError::Invalid(invalid) => BackfillError::Rows {
                    chunk: describe(),
                    message: format!(
                        "source row {} of the chunk, column `{}`: {}",
                        offset + invalid.row,
                        invalid.column,
                        invalid.problem
                    ),
                },
            })?;
        counts.rows_rejected += rejected;
        if rows.num_rows() > 0 {
            counts.rows_out += rows.num_rows() as u64;
            out.push(rows);
        }
    }
    Ok((out, counts))
}

/// `[from, to)` in RFC 3339, or `all time`.
pub fn describe_window(window: TimeWindow) -> String {
    let show =
        |micros: Option<i64>| micros.map_or_else(|| "…".to_owned(), crate::model::format_timestamp);
    match (window.from, window.to) {
        (None, None) => "all time".to_owned(),
        (from, to) => format!("[{}, {})", show(from), show(to)),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}
