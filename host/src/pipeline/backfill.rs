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
use crate::model::{Classify, ErrorKind};
use crate::offline::{ChunkCounts, Claim, JobPlan, JobStatus, OfflineError, RunEnd, ViewTable};
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
    #[error(
        "backfill job {} interrupted with {}/{} chunks done{}{}",
        .job.id,
        .job.chunks_done,
        .job.chunks_total,
        describe_chunks(", finished", .finished),
        describe_chunks(", released", .released)
    )]
    Interrupted {
        job: Box<JobStatus>,
        /// Chunks this process finished after the stop was asked for.
        finished: Vec<u32>,
        /// Chunks this process gave up unfinished, free for the next run at once.
        released: Vec<u32>,
    },
}

/// `, finished chunk(s) 3, 4` (with `prefix`), or nothing for no chunks.
fn describe_chunks(prefix: &str, seqs: &[u32]) -> String {
    if seqs.is_empty() {
        return String::new();
    }
    let seqs: Vec<String> = seqs.iter().map(u32::to_string).collect();
    format!("{prefix} chunk(s) {}", seqs.join(", "))
}

impl Classify for BackfillError {
    fn code(&self) -> &'static str {
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
            Self::Interrupted { .. } => "backfill_interrupted",
        }
    }

    /// An interrupted run resumes when started again: unavailable, retry later.
    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownView { .. } => ErrorKind::NotFound,
            Self::NotOffline(_) | Self::NotBatch { .. } | Self::EmptyWindow { .. } => {
                ErrorKind::BadRequest
            }
            Self::Source(error) => error.kind(),
            Self::Offline(error) => error.kind(),
            Self::Registry(error) => error.kind(),
            Self::Project(error) => error.kind(),
            Self::Ready(error) => error.kind(),
            Self::Transform { error, .. } => error.kind(),
            Self::Rows { .. } => ErrorKind::Refused,
            Self::BadChunk { .. } | Self::Internal(_) => ErrorKind::Internal,
            Self::Interrupted { .. } => ErrorKind::Unavailable,
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
    /// No chunk is free: this process waits for chunks another worker holds, until their
    /// leases lapse at the latest (when that worker died). Sent when what it waits for
    /// changes.
    Waiting {
        seqs: Vec<u32>,
        owners: Vec<String>,
        /// µs since the Unix epoch: the last of the leases' expiry.
        until_micros: i64,
    },
    /// Chunks leased by a process of this host that no longer runs were released and are
    /// claimed again now, without waiting for their leases to lapse.
    TakenOver { seqs: Vec<u32>, owner: String },
}

/// Asks a running backfill to stop (see [`Lockstep::run_backfill_until`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopRequest {
    /// Keep going.
    None,
    /// Claim no more chunks; finish (commit) those being worked on, then stop.
    Finish,
    /// Stop now: give up the chunks being worked on, releasing their leases.
    Release,
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
        let (_keep, stop) = tokio::sync::watch::channel(StopRequest::None);
        self.run_backfill_until(planned, events, stop).await
    }

    /// [`Lockstep::run_backfill`], stopping early when `stop` asks: then the job is recorded
    /// as interrupted and the error is [`BackfillError::Interrupted`], saying which chunks
    /// were finished and which released. While it runs, the job is heartbeated as running;
    /// when it fails, the job is recorded as failed with the error.
    pub async fn run_backfill_until(
        &self,
        planned: &PlannedBackfill,
        events: &(dyn Fn(BackfillEvent) + Send + Sync),
        stop: tokio::sync::watch::Receiver<StopRequest>,
    ) -> Result<BackfillSummary, BackfillError> {
        let started = Instant::now();
        events(BackfillEvent::Planned {
            job: planned.job.clone(),
            estimated_rows: planned.estimated_rows,
        });
        let job = planned.job.id;
        let lease = Duration::from_secs_f64(self.backfill.lease_seconds);
        let run = Run {
            job,
            owner: Owner::of_this_process(),
            lease,
            stop,
            waiting: Default::default(),
            finished: Default::default(),
            released: Default::default(),
        };
        self.offline.mark_running(job, lease, true).await?;
        let workers = (0..self.backfill.workers.max(1))
            .map(|index| self.work(planned, &run, run.owner.worker(index), events));
        let heartbeat = async {
            let mut tick = tokio::time::interval(lease / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(error) = self.offline.mark_running(job, lease, false).await {
                    tracing::warn!(%error, job, "could not heartbeat the backfill job");
                }
            }
        };
        let done = tokio::select! {
            done = futures_util::future::try_join_all(workers) => done,
            never = heartbeat => never,
        };
        let done = match done {
            Ok(done) => done,
            Err(error) => {
                // Best effort: the error itself is what the caller must see.
                let _ = self
                    .offline
                    .end_run(job, &RunEnd::Failed(error.to_string()))
                    .await;
                return Err(error);
            }
        };
        let status = self.offline.job(job).await?;
        if !status.is_complete() && *run.stop.borrow() != StopRequest::None {
            self.offline.end_run(job, &RunEnd::Interrupted).await?;
            let mut finished = std::mem::take(&mut *run.finished.lock().expect("lock"));
            let mut released = std::mem::take(&mut *run.released.lock().expect("lock"));
            finished.sort_unstable();
            released.sort_unstable();
            return Err(BackfillError::Interrupted {
                job: Box::new(self.offline.job(job).await?),
                finished,
                released,
            });
        }
        let mut totals = ChunkCounts::default();
        let mut chunks = 0;
        for (count, counts) in done {
            chunks += count;
            totals.rows_in += counts.rows_in;
            totals.rows_out += counts.rows_out;
            totals.rows_rejected += counts.rows_rejected;
        }
        Ok(BackfillSummary {
            job: status,
            table: planned.context.rows.table.name.clone(),
            chunks,
            rows_in: totals.rows_in,
            rows_out: totals.rows_out,
            rows_rejected: totals.rows_rejected,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// One worker: claim, run, commit, until no chunk is left or a stop is asked for.
    async fn work(
        &self,
        planned: &PlannedBackfill,
        run: &Run,
        owner: String,
        events: &(dyn Fn(BackfillEvent) + Send + Sync),
    ) -> Result<(u32, ChunkCounts), BackfillError> {
        let job = run.job;
        let mut stop = run.stop.clone();
        let (mut chunks, mut totals) = (0, ChunkCounts::default());
        loop {
            if *stop.borrow() != StopRequest::None {
                return Ok((chunks, totals));
            }
            let Some(claim) = self.offline.claim_chunk(job, &owner, run.lease).await? else {
                if self.offline.job(job).await?.is_complete() {
                    return Ok((chunks, totals));
                }
                // Other workers hold the rest, or a dead worker's lease has yet to lapse.
                if self.take_over_or_report(run, events).await? {
                    continue;
                }
                let pause = (run.lease / 4).min(Duration::from_millis(250));
                let asking = stop.has_changed().is_ok();
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = stop.changed(), if asking => {}
                }
                continue;
            };
            let chunk: Chunk =
                serde_json::from_str(&claim.spec).map_err(|e| BackfillError::BadChunk {
                    job,
                    seq: claim.seq,
                    message: e.to_string(),
                })?;
            let started = Instant::now();
            let Some((rows, counts)) = self
                .run_leased(&planned.context, &claim, &chunk, run.lease, &mut stop)
                .await?
            else {
                // Given up at a stop: free for the next run at once.
                let released = self.offline.release_leases(job, &owner).await?;
                run.released.lock().expect("lock").extend(released);
                return Ok((chunks, totals));
            };
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
                if *stop.borrow() != StopRequest::None {
                    run.finished.lock().expect("lock").push(claim.seq);
                }
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

    /// With no chunk free: releases the leases of dead processes of this host (true: claim
    /// again now), or reports what this run waits for, once per change.
    async fn take_over_or_report(
        &self,
        run: &Run,
        events: &(dyn Fn(BackfillEvent) + Send + Sync),
    ) -> Result<bool, BackfillError> {
        let leases = self.offline.leases(run.job).await?;
        let foreign: Vec<_> = leases
            .into_iter()
            .filter(|lease| !run.owner.owns(&lease.owner))
            .collect();
        let mut owners: Vec<String> = foreign.iter().map(|lease| lease.owner.clone()).collect();
        owners.sort();
        owners.dedup();
        let mut took_over = false;
        for owner in &owners {
            if Owner::is_dead_here(owner) {
                let seqs = self.offline.release_leases(run.job, owner).await?;
                if !seqs.is_empty() {
                    took_over = true;
                    events(BackfillEvent::TakenOver {
                        seqs,
                        owner: owner.clone(),
                    });
                }
            }
        }
        if took_over {
            return Ok(true);
        }
        let seqs: Vec<u32> = foreign.iter().map(|lease| lease.seq).collect();
        let mut waiting = run.waiting.lock().expect("lock");
        if !seqs.is_empty() && *waiting != seqs {
            waiting.clone_from(&seqs);
            events(BackfillEvent::Waiting {
                seqs,
                owners,
                until_micros: foreign
                    .iter()
                    .map(|lease| lease.expires_at_micros)
                    .max()
                    .unwrap_or_default(),
            });
        }
        Ok(false)
    }

    /// Runs one chunk off the async threads, renewing its lease until it is done; `None`
    /// when a stop asked to give it up first.
    async fn run_leased(
        &self,
        context: &Arc<JobContext>,
        claim: &Claim,
        chunk: &Chunk,
        lease: Duration,
        stop: &mut tokio::sync::watch::Receiver<StopRequest>,
    ) -> Result<Option<(Vec<RecordBatch>, ChunkCounts)>, BackfillError> {
        let runtime = Arc::clone(&self.runtime);
        let job = Arc::clone(context);
        let owned = chunk.clone();
        let mut work = tokio::task::spawn_blocking(move || run_chunk(&runtime, &job, &owned));
        let mut renew = tokio::time::interval(lease / 3);
        renew.tick().await;
        // Whoever asks for stops may go away; then nothing more will be asked.
        let mut asking = true;
        loop {
            if *stop.borrow() == StopRequest::Release {
                // The blocking read goes on until it ends; its result is dropped.
                return Ok(None);
            }
            tokio::select! {
                result = &mut work => {
                    let result = result.map_err(|e| BackfillError::Internal(e.to_string()))?;
                    if let Err(BackfillError::Transform { error: error @ RunError::NotRowWise { .. }, .. }) = &result
                        && let Some(digest) = context.rows.digest()
                    {
                        self.mark_unsafe(digest, &error.to_string()).await;
                    }
                    return result.map(Some);
                }
                _ = renew.tick() => {
                    // A lost lease shows at commit time, which then writes nothing.
                    if let Err(error) = self.offline.renew_lease(claim, lease).await {
                        tracing::warn!(%error, seq = claim.seq, "could not renew a chunk lease");
                    }
                }
                changed = stop.changed(), if asking => asking = changed.is_ok(),
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

/// What one run shares between its workers.
struct Run {
    job: i64,
    owner: Owner,
    lease: Duration,
    stop: tokio::sync::watch::Receiver<StopRequest>,
    /// The chunks of other workers last reported waited for.
    waiting: std::sync::Mutex<Vec<u32>>,
    /// Chunks finished after a stop was asked for.
    finished: std::sync::Mutex<Vec<u32>>,
    /// Chunks given up at a stop.
    released: std::sync::Mutex<Vec<u32>>,
}

/// Who holds a lease: `host:pid:start µs`, and `:worker` after it for each worker.
struct Owner {
    prefix: String,
}

impl Owner {
    fn of_this_process() -> Self {
        Self {
            prefix: format!(
                "{}:{}:{}",
                hostname(),
                std::process::id(),
                crate::registry::now_micros()
            ),
        }
    }

    fn worker(&self, index: usize) -> String {
        format!("{}:{index}", self.prefix)
    }

    /// Whether `owner` is one of this run's workers.
    fn owns(&self, owner: &str) -> bool {
        owner
            .strip_prefix(&self.prefix)
            .is_some_and(|rest| rest.starts_with(':'))
    }

    /// Whether `owner` names a process of this host that no longer runs: its leases can be
    /// taken over without waiting for them to lapse. Unknown forms are never dead.
    fn is_dead_here(owner: &str) -> bool {
        let mut parts = owner.rsplitn(4, ':');
        let (Some(_worker), Some(_started), Some(pid), Some(host)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Some(pid) = pid
            .parse::<i32>()
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return false;
        };
        host == hostname()
            && pid.as_raw_nonzero().get() != std::process::id() as i32
            && matches!(
                rustix::process::test_kill_process(pid),
                Err(rustix::io::Errno::SRCH)
            )
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_of_this_run_and_of_dead_processes_here_are_told_apart() {
        let owner = Owner::of_this_process();
        assert!(owner.owns(&owner.worker(3)));
        assert!(!owner.owns(&format!("{}7:0", owner.prefix)));
        // This process is alive; pid 0 and unparsable owners are never taken as dead.
        let here = hostname();
        assert!(!Owner::is_dead_here(&owner.worker(0)));
        assert!(!Owner::is_dead_here(&format!("{here}:0:1:0")));
        assert!(!Owner::is_dead_here("nonsense"));
        // A child that has exited and been reaped no longer runs.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(Owner::is_dead_here(&format!("{here}:{pid}:1:0")));
        // The same pid on another host is not ours to judge.
        assert!(!Owner::is_dead_here(&format!("elsewhere-{here}:{pid}:1:0")));
    }
}
