//! Subcommands of the offline path: build a training set into a Parquet file (backfills
//! are `backfill`).

use super::out::outln;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;

use super::progress::Progress;
use crate::pipeline::{FeatureError, Lockstep, TrainingSetEvent, TrainingSetRequest};

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
        .map_err(|e| super::coded(&e))?;
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
    .map_err(|e| super::coded(&FeatureError::Entities(e.to_string())))?;
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
    let progress = Progress::new("training set", "rows", 0, None);
    let set = lockstep
        .training_set_reporting(&request, &entity_rows, &|event| match event {
            TrainingSetEvent::Step { name, unit, total } => progress.step(&name, unit, total),
            TrainingSetEvent::Done(done) => progress.set_done(done),
        })
        .await;
    progress.finish();
    let set = set.map_err(|e| super::coded(&e))?;
    let bytes = set
        .write_parquet(out)
        .with_context(|| format!("writing {}", out.display()))?;
    let rows = set.batch.num_rows();
    outln!(
        "training set: {rows} entity rows × {} features → {} ({:.1} KiB)",
        set.features.len(),
        out.display(),
        bytes as f64 / 1024.0
    )?;
    outln!(
        "read entities {:.3}s, join and transforms {:.3}s ({:.0} rows/s), total {:.3}s",
        read_seconds,
        set.seconds,
        rows as f64 / set.seconds.max(1e-9),
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}
