//! Backfill jobs as the offline store keeps them, on both backends: the plan (chunks and a
//! fingerprint), claims and leases of chunks, a job's state (running while a process
//! heartbeats it, else interrupted, failed or done) and finish time, the status query, and
//! the migration that adds the state columns to job tables made before them.

use serde::{Deserialize, Serialize};

use super::OfflineError;
use super::sql::Dialect;
use crate::model::Digest;

/// A backfill as planned: the chunks of work, in order, each a JSON description that the
/// pipeline knows how to run. Planning the same chunks for the same table again names the
/// same job, so a rerun resumes it.
#[derive(Debug, Clone)]
pub struct JobPlan {
    pub project: String,
    pub view: String,
    pub table: String,
    /// Opaque to the store: the time window, for display.
    pub window: String,
    pub chunks: Vec<String>,
    /// Start a new job even when an identical plan exists (a forced rerun).
    pub fresh: bool,
}

impl JobPlan {
    /// Identifies the plan: the table and every chunk, in order.
    pub fn fingerprint(&self) -> String {
        let mut text = format!("{}\n{}\n", self.table, self.window);
        for chunk in &self.chunks {
            text.push_str(chunk);
            text.push('\n');
        }
        Digest::of(text.as_bytes()).to_string()
    }
}

/// A chunk a worker holds a lease on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub job: i64,
    pub seq: u32,
    pub spec: String,
    pub owner: String,
    /// How many times the chunk was claimed, this claim included.
    pub attempts: u32,
}

/// A live lease on a chunk not yet done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub seq: u32,
    pub owner: String,
    /// µs since the Unix epoch: when another worker may take the chunk over.
    pub expires_at_micros: i64,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// A process is working on it (its heartbeat is recent).
    Running,
    /// Not every chunk is done and no process works on it: stopped by a signal, or its
    /// process died. A rerun resumes it.
    Interrupted,
    /// Its last run ended with an error (recorded in `error`). A rerun resumes it.
    Failed,
    /// Every chunk is done.
    Done,
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobState::Running => "running",
            JobState::Interrupted => "interrupted",
            JobState::Failed => "failed",
            JobState::Done => "done",
        })
    }
}

/// How a run of a job ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Stopped on request (a signal) with chunks left.
    Interrupted,
    /// Stopped by this error.
    Failed(String),
}

impl RunEnd {
    /// The stored state and error.
    pub(super) fn columns(&self) -> (&'static str, Option<&str>) {
        match self {
            RunEnd::Interrupted => ("interrupted", None),
            RunEnd::Failed(error) => ("failed", Some(error)),
        }
    }
}

/// Where a backfill job stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: i64,
    pub project: String,
    pub view: String,
    pub table: String,
    pub window: String,
    pub state: JobState,
    pub chunks_total: u32,
    pub chunks_done: u32,
    /// Chunks under a live lease: being worked on now.
    pub chunks_running: u32,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_rejected: u64,
    /// µs since the Unix epoch.
    pub created_at_micros: i64,
    /// µs since the Unix epoch: when the job was done, or its last run stopped (for a
    /// process that died, when it last committed a chunk); none while running.
    pub finished_at_micros: Option<i64>,
    /// Why the last run stopped early, until a later run starts.
    pub error: Option<String>,
}

impl JobStatus {
    pub fn is_complete(&self) -> bool {
        self.chunks_done == self.chunks_total
    }
}

/// The state shown for a job: done when every chunk is; else running while some process
/// heartbeats it; else failed when its last run recorded an error, interrupted otherwise
/// (stopped, or its process died without a word).
pub fn derive_state(complete: bool, alive: bool, stored: &str) -> JobState {
    if complete {
        JobState::Done
    } else if alive {
        JobState::Running
    } else if stored == "failed" {
        JobState::Failed
    } else {
        JobState::Interrupted
    }
}

impl Dialect {
    /// Job statuses from the `jobs` and `chunks` tables: the jobs with `id = $1` (or every
    /// job when `$1` is null), newest first, at most `$2`. SQLite takes the current time
    /// (µs) as `$3`; Postgres reads its clock. Columns as [`status_from_row`] reads them.
    pub fn job_status(self, jobs: &str, chunks: &str) -> String {
        let micros = |column: &str| match self {
            Dialect::Postgres => {
                format!("CAST(extract(epoch FROM {column}) * 1000000 AS BIGINT)")
            }
            Dialect::Sqlite => column.to_owned(),
        };
        let now = match self {
            Dialect::Postgres => "clock_timestamp()",
            Dialect::Sqlite => "$3",
        };
        format!(
            "SELECT j.id, j.project, j.view, j.table_name, j.time_window, CAST(j.chunks AS BIGINT),
                count(c.seq) FILTER (WHERE c.done),
                count(c.seq) FILTER (WHERE NOT c.done AND c.lease_expires > {now}),
                CAST(COALESCE(sum(c.rows_in), 0) AS BIGINT),
                CAST(COALESCE(sum(c.rows_out), 0) AS BIGINT),
                CAST(COALESCE(sum(c.rows_rejected), 0) AS BIGINT),
                {created}, j.error, j.state,
                CAST(CASE WHEN j.alive_until > {now} THEN 1 ELSE 0 END AS BIGINT),
                {finished}, {last_chunk}
             FROM {jobs} j LEFT JOIN {chunks} c ON c.job_id = j.id
             WHERE $1 IS NULL OR j.id = $1 GROUP BY j.id ORDER BY j.id DESC LIMIT $2",
            created = micros("j.created_at"),
            finished = micros("j.finished_at"),
            last_chunk = micros("max(c.finished_at)"),
        )
    }

    /// The newest job of table `$1` with plan fingerprint `$2`, unfinished ones first: the
    /// job a rerun of the same plan resumes (or finds done).
    pub fn job_to_resume(self, jobs: &str, chunks: &str) -> String {
        format!(
            "SELECT j.id FROM {jobs} j WHERE j.table_name = $1 AND j.plan_fingerprint = $2
             ORDER BY CASE WHEN EXISTS (SELECT 1 FROM {chunks} c WHERE c.job_id = j.id AND NOT c.done)
                      THEN 1 ELSE 0 END DESC, j.id DESC
             LIMIT 1"
        )
    }
}

/// A job status from a row of [`Dialect::job_status`] (counts as BIGINT).
pub(super) fn status_from_row<'r, R>(row: &'r R) -> Result<JobStatus, OfflineError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let count = |i: usize| -> Result<i64, OfflineError> { Ok(row.try_get::<i64, _>(i)?.max(0)) };
    let chunks_total = count(5)? as u32;
    let chunks_done = count(6)? as u32;
    let stored: String = row.try_get(13)?;
    let alive = row.try_get::<i64, _>(14)? == 1;
    let state = derive_state(chunks_done == chunks_total, alive, &stored);
    let finished: Option<i64> = row.try_get(15)?;
    let last_chunk: Option<i64> = row.try_get(16)?;
    Ok(JobStatus {
        id: row.try_get(0)?,
        project: row.try_get(1)?,
        view: row.try_get(2)?,
        table: row.try_get(3)?,
        window: row.try_get(4)?,
        state,
        chunks_total,
        chunks_done,
        chunks_running: count(7)? as u32,
        rows_in: count(8)? as u64,
        rows_out: count(9)? as u64,
        rows_rejected: count(10)? as u64,
        created_at_micros: row.try_get(11)?,
        finished_at_micros: match state {
            JobState::Running => None,
            _ => finished.or(last_chunk),
        },
        error: row.try_get(12)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_running_only_while_heartbeated() {
        assert_eq!(derive_state(true, true, "running"), JobState::Done);
        assert_eq!(derive_state(true, false, "failed"), JobState::Done);
        assert_eq!(derive_state(false, true, "interrupted"), JobState::Running);
        // A process killed with SIGKILL left `running` behind: its heartbeat stopped.
        assert_eq!(derive_state(false, false, "running"), JobState::Interrupted);
        assert_eq!(
            derive_state(false, false, "interrupted"),
            JobState::Interrupted
        );
        assert_eq!(derive_state(false, false, "failed"), JobState::Failed);
    }
}
