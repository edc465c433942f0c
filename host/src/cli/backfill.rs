//! `lockstep backfill` and `lockstep backfills`: a backfill with progress and an ETA, told
//! what it waits for, stopped cleanly by SIGINT or SIGTERM (the first finishes the running
//! chunks, a second releases them; the job is left interrupted, to resume); the jobs with
//! their states, as a table or JSON.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::watch;

use super::out::{self, ExitWith, outln};
use super::progress::Progress;
use crate::model::format_timestamp;
use crate::offline::JobStatus;
use crate::pipeline::{
    BackfillError, BackfillEvent, BackfillRequest, BackfillSummary, Lockstep, StopRequest,
};

/// `lockstep backfill`: plans (or resumes) the job, works on it until done or stopped,
/// prints a summary.
pub async fn backfill(lockstep: &Lockstep, request: BackfillRequest) -> anyhow::Result<()> {
    let started = Instant::now();
    let planned = lockstep
        .plan_backfill(&request)
        .await
        .map_err(|e| super::coded(&e))?;
    let job = &planned.job;
    out::status(&format!(
        "backfill job {} of {} into offline table {}: {} chunk(s), {} already done, window {}{}",
        job.id,
        job.view,
        job.table,
        job.chunks_total,
        job.chunks_done,
        job.window,
        if job.chunks_done > 0 && !job.is_complete() {
            " (resuming)"
        } else {
            ""
        }
    ));
    let progress = match planned.estimated_rows {
        Some(rows) => Progress::new(
            &format!("backfill job {}", job.id),
            "rows",
            job.rows_in,
            Some(rows.max(job.rows_in)),
        ),
        None => Progress::new(
            &format!("backfill job {}", job.id),
            "chunks",
            u64::from(job.chunks_done),
            Some(u64::from(job.chunks_total)),
        ),
    };
    let by_rows = planned.estimated_rows.is_some();
    let (stop, stopping) = watch::channel(StopRequest::None);
    let signal = Arc::new(OnceLock::new());
    let listener = tokio::spawn(listen_for_stops(stop, Arc::clone(&signal)));
    let result = lockstep
        .run_backfill_until(
            &planned,
            &|event| on_event(&progress, by_rows, event),
            stopping,
        )
        .await;
    listener.abort();
    progress.finish();
    match result {
        Ok(summary) => print_summary(&summary, started.elapsed().as_secs_f64()),
        Err(error @ BackfillError::Interrupted { .. }) => {
            let signal = signal.get().copied().unwrap_or("a signal");
            Err(ExitWith {
                code: if signal == "SIGTERM" { 143 } else { 130 },
                message: format!(
                    "{} (stopped by {signal}); run the same command again to resume it",
                    error
                ),
            }
            .into())
        }
        Err(error) => Err(super::coded(&error)),
    }
}

fn on_event(progress: &Progress, by_rows: bool, event: BackfillEvent) {
    match event {
        BackfillEvent::Planned { .. } => {}
        BackfillEvent::ChunkDone { counts, .. } => {
            progress.advance(if by_rows { counts.rows_in } else { 1 });
        }
        BackfillEvent::LeaseLost { seq } => progress.println(&format!(
            "chunk {seq}: lease lapsed and another worker took it over; its rows are theirs"
        )),
        BackfillEvent::Waiting {
            seqs,
            owners,
            until_micros,
        } => {
            let left = (until_micros - crate::registry::now_micros()).max(0) as f64 / 1e6;
            progress.println(&format!(
                "waiting for chunk(s) {} leased by {} until {} ({left:.0}s; taken over then if \
                 that worker died)",
                list(&seqs),
                owners.join(", "),
                format_timestamp(until_micros)
            ));
        }
        BackfillEvent::TakenOver { seqs, owner } => progress.println(&format!(
            "chunk(s) {} were leased by {owner}, which no longer runs: taking them over now",
            list(&seqs)
        )),
    }
}

fn list(seqs: &[u32]) -> String {
    seqs.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sends [`StopRequest::Finish`] at the first SIGINT or SIGTERM and
/// [`StopRequest::Release`] at the next, saying so; records the first signal's name.
async fn listen_for_stops(stop: watch::Sender<StopRequest>, first: Arc<OnceLock<&'static str>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C still stops the backfill");
            return listen_for_ctrl_c(stop, first).await;
        }
    };
    loop {
        let name = tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        if !on_signal(&stop, &first, name) {
            return;
        }
    }
}

async fn listen_for_ctrl_c(stop: watch::Sender<StopRequest>, first: Arc<OnceLock<&'static str>>) {
    while tokio::signal::ctrl_c().await.is_ok() {
        if !on_signal(&stop, &first, "SIGINT") {
            return;
        }
    }
}

/// Escalates the stop request; false once there is nothing more to ask.
fn on_signal(
    stop: &watch::Sender<StopRequest>,
    first: &OnceLock<&'static str>,
    name: &'static str,
) -> bool {
    let _ = first.set(name);
    if *stop.borrow() == StopRequest::None {
        out::status(&format!(
            "{name}: stopping: finishing the chunks being worked on, claiming no more \
             (send it again to release them now)"
        ));
        stop.send_replace(StopRequest::Finish);
        true
    } else {
        out::status(&format!(
            "{name} again: releasing the chunks being worked on"
        ));
        stop.send_replace(StopRequest::Release);
        false
    }
}

fn print_summary(summary: &BackfillSummary, seconds: f64) -> anyhow::Result<()> {
    let job = &summary.job;
    outln!(
        "backfill job {} {}: {}/{} chunks done",
        job.id,
        if job.is_complete() {
            "complete"
        } else {
            "incomplete"
        },
        job.chunks_done,
        job.chunks_total
    )?;
    if summary.chunks == 0 {
        outln!("nothing to do: every chunk was already done (use --fresh to redo the work)")?;
    } else {
        outln!(
            "this run: {} chunk(s), {} source rows → {} feature rows ({} rejected by the \
             transform) in {:.2}s = {:.0} rows/s",
            summary.chunks,
            summary.rows_in,
            summary.rows_out,
            summary.rows_rejected,
            summary.seconds,
            summary.rows_per_second()
        )?;
    }
    outln!(
        "job total: {} source rows, {} feature rows, {} rejected; table {} ({:.2}s in all)",
        job.rows_in,
        job.rows_out,
        job.rows_rejected,
        summary.table,
        seconds
    )
}

/// `lockstep backfills [id] [--json]`: one job's status, or the recent jobs.
pub async fn backfills(lockstep: &Lockstep, id: Option<i64>, json: bool) -> anyhow::Result<()> {
    let jobs = match id {
        Some(id) => vec![lockstep.offline().job(id).await?],
        None => lockstep.offline().jobs(20).await?,
    };
    if json {
        return outln!("{}", serde_json::to_string_pretty(&jobs)?);
    }
    if jobs.is_empty() {
        outln!("no backfill jobs yet")?;
    }
    for job in jobs {
        outln!("{}", job_line(&job))?;
    }
    Ok(())
}

/// One job as `lockstep backfills` lists it.
fn job_line(job: &JobStatus) -> String {
    let ended = match job.finished_at_micros {
        Some(at) => format!("  ended {}", format_timestamp(at)),
        None => String::new(),
    };
    let error = match &job.error {
        Some(error) => format!("\n         error: {}", super::term::safe(error)),
        None => String::new(),
    };
    format!(
        "job {:<4} {:<11} {:<28} {:>4}/{:<4} chunks{}  {} rows in, {} out, {} rejected  {}  \
         started {}{ended}{error}",
        job.id,
        job.state,
        super::term::safe(&job.view),
        job.chunks_done,
        job.chunks_total,
        if job.chunks_running > 0 {
            format!(" ({} running)", job.chunks_running)
        } else {
            String::new()
        },
        job.rows_in,
        job.rows_out,
        job.rows_rejected,
        job.window,
        format_timestamp(job.created_at_micros)
    )
}
