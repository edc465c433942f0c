//! Subcommands of the offline path: backfill a view (with a progress bar), show backfill
//! jobs, build a training set into a Parquet file.

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::model::format_timestamp;
use crate::offline::JobStatus;
use crate::pipeline::{
    BackfillEvent, BackfillRequest, BackfillSummary, Lockstep, TrainingSetRequest,
};

/// `lockstep backfill`: plans (or resumes) the job, works on it until done, prints a summary.
pub async fn backfill(lockstep: &Lockstep, request: BackfillRequest) -> anyhow::Result<()> {
    let started = Instant::now();
    let planned = lockstep
        .plan_backfill(&request)
        .await
        .map_err(|e| super::coded(&e, e.code()))?;
    let job = &planned.job;
    eprintln!(
        "backfill job {} of {} into offline table {}: {} chunk(s), {} already done, window {}",
        job.id, job.view, job.table, job.chunks_total, job.chunks_done, job.window
    );
    let progress = Progress::new(job, planned.estimated_rows);
    let summary = lockstep
        .run_backfill(&planned, &|event| progress.on(event))
        .await
        .map_err(|e| super::coded(&e, e.code()))?;
    progress.finish();
    print_summary(&summary, started.elapsed().as_secs_f64());
    Ok(())
}

fn print_summary(summary: &BackfillSummary, seconds: f64) {
    let job = &summary.job;
    println!(
        "backfill job {} {}: {}/{} chunks done",
        job.id,
        if job.is_complete() {
            "complete"
        } else {
            "incomplete"
        },
        job.chunks_done,
        job.chunks_total
    );
    if summary.chunks == 0 {
        println!("nothing to do: every chunk was already done (use --fresh to redo the work)");
    } else {
        println!(
            "this run: {} chunk(s), {} source rows → {} feature rows ({} rejected by the \
             transform) in {:.2}s = {:.0} rows/s",
            summary.chunks,
            summary.rows_in,
            summary.rows_out,
            summary.rows_rejected,
            summary.seconds,
            summary.rows_per_second()
        );
    }
    println!(
        "job total: {} source rows, {} feature rows, {} rejected; table {} ({:.2}s in all)",
        job.rows_in, job.rows_out, job.rows_rejected, summary.table, seconds
    );
}

/// A progress bar on a terminal, plain log lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    state: Mutex<(u32, u64)>,
    total: u32,
}

impl Progress {
    fn new(job: &JobStatus, estimated_rows: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(u64::from(job.chunks_total));
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} chunks  {msg}",
                )
                .expect("valid template"),
            );
            bar.set_position(u64::from(job.chunks_done));
            bar
        });
        if bar.is_none()
            && let Some(rows) = estimated_rows
        {
            eprintln!("about {rows} source rows in all");
        }
        Self {
            bar,
            started: Instant::now(),
            state: Mutex::new((job.chunks_done, 0)),
            total: job.chunks_total,
        }
    }

    fn on(&self, event: BackfillEvent) {
        match event {
            BackfillEvent::Planned { .. } => {}
            BackfillEvent::ChunkDone {
                seq, chunk, counts, ..
            } => {
                let mut state = self.state.lock().expect("progress lock");
                state.0 += 1;
                state.1 += counts.rows_in;
                let rate = state.1 as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
                match &self.bar {
                    Some(bar) => {
                        bar.inc(1);
                        bar.set_message(format!("{} rows, {rate:.0} rows/s", state.1));
                    }
                    None => eprintln!(
                        "chunk {seq} done ({}/{}): {chunk}: {} rows in, {} out; {rate:.0} rows/s",
                        state.0, self.total, counts.rows_in, counts.rows_out
                    ),
                }
            }
            BackfillEvent::LeaseLost { seq } => {
                let message = format!(
                    "chunk {seq}: lease lapsed and another worker took it over; its rows are theirs"
                );
                match &self.bar {
                    Some(bar) => bar.println(message),
                    None => eprintln!("{message}"),
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `lockstep backfills [id]`: one job's status, or the recent jobs.
pub async fn backfills(lockstep: &Lockstep, id: Option<i64>) -> anyhow::Result<()> {
    let jobs = match id {
        Some(id) => vec![lockstep.offline().job(id).await?],
        None => lockstep.offline().jobs(20).await?,
    };
    if jobs.is_empty() {
        println!("no backfill jobs yet");
    }
    for job in jobs {
        println!(
            "job {:<4} {:<28} {:>4}/{:<4} chunks{}  {} rows in, {} out, {} rejected  {}  started {}",
            job.id,
            job.view,
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
        );
    }
    Ok(())
}

/// Reads an entity file (Parquet or CSV): every column, in order, with the columns
/// `request` uses (keys, time, request fields) in their canonical types.
pub async fn read_entities(
    lockstep: &Lockstep,
    request: &TrainingSetRequest,
    entities: &Path,
) -> anyhow::Result<arrow::array::RecordBatch> {
    let (required, optional) = lockstep
        .training_set_columns(request)
        .await
        .map_err(|e| super::coded(&e, e.code()))?;
    let path = entities.to_owned();
    let rows = tokio::task::spawn_blocking(move || {
        crate::source::read_entity_file(
            &path,
            crate::source::EntityColumns {
                required: &required,
                optional: &optional,
            },
        )
    })
    .await?
    .map_err(|e| super::coded(&e, "invalid_entity_rows"))?;
    anyhow::ensure!(rows.num_rows() > 0, "{} has no rows", entities.display());
    Ok(rows)
}

/// `lockstep training-set`: reads the entity file, joins, writes Parquet.
pub async fn training_set(
    lockstep: &Lockstep,
    request: TrainingSetRequest,
    entities: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let entity_rows = read_entities(lockstep, &request, entities).await?;
    let read_seconds = started.elapsed().as_secs_f64();
    let set = lockstep
        .training_set(&request, &entity_rows)
        .await
        .map_err(|e| super::coded(&e, e.code()))?;
    let bytes = set
        .write_parquet(out)
        .with_context(|| format!("writing {}", out.display()))?;
    let rows = set.batch.num_rows();
    println!(
        "training set: {rows} entity rows × {} features → {} ({:.1} KiB)",
        set.features.len(),
        out.display(),
        bytes as f64 / 1024.0
    );
    println!(
        "read entities {:.3}s, join and transforms {:.3}s ({:.0} rows/s), total {:.3}s",
        read_seconds,
        set.seconds,
        rows as f64 / set.seconds.max(1e-9),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
