//! Subcommands of the online path: materialize (full or incremental) and rehydrate with
//! progress and an ETA per view, then rows/s, and push rows from a JSON file.

use super::out::outln;
use super::progress::Progress;
use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;

use crate::model::format_timestamp;
use crate::pipeline::{
    EARLIEST, Lockstep, MaterializeEvent, MaterializeRequest, MaterializedView, PushTarget,
};

/// Shows each view's materialization as a progress step, with an ETA from the offline
/// store's estimate of its rows.
fn report(progress: &Progress, event: MaterializeEvent) {
    match event {
        MaterializeEvent::Started {
            view,
            from,
            to,
            estimated_rows,
        } => progress.step(
            &format!(
                "materializing {view} [{}, {})",
                if from <= EARLIEST {
                    "…".to_owned()
                } else {
                    format_timestamp(from)
                },
                format_timestamp(to)
            ),
            "rows",
            estimated_rows,
        ),
        MaterializeEvent::Rows { rows, .. } => progress.set_done(rows),
        MaterializeEvent::Finished(_) => {}
    }
}

fn print_views(views: &[MaterializedView]) -> anyhow::Result<()> {
    for view in views {
        let (read, written) = if view.aggregated {
            ("events replayed", "aggregation states written")
        } else {
            ("entities read", "online values changed")
        };
        outln!(
            "{}: {} {read}, {} {written}, in {:.2}s = {:.0} rows/s",
            view.view,
            view.rows,
            view.written,
            view.seconds,
            view.rows_per_second()
        )?;
    }
    Ok(())
}

/// `lockstep materialize` and `lockstep materialize-incremental`.
pub async fn materialize(lockstep: &Lockstep, request: MaterializeRequest) -> anyhow::Result<()> {
    let progress = Progress::new("materialize", "rows", 0, None);
    let views = lockstep
        .materialize(&request, &|event| report(&progress, event))
        .await;
    progress.finish();
    let views = views.map_err(|e| super::coded(&e))?;
    if views.is_empty() {
        outln!("no online views to materialize")?;
    }
    print_views(&views)
}

/// `lockstep rehydrate`.
pub async fn rehydrate(
    lockstep: &Lockstep,
    project: Option<String>,
    views: Vec<String>,
    fresh: bool,
) -> anyhow::Result<()> {
    let progress = Progress::new("rehydrate", "rows", 0, None);
    let views = lockstep
        .rehydrate(project, views, fresh, &|event| report(&progress, event))
        .await;
    progress.finish();
    print_views(&views.map_err(|e| super::coded(&e))?)
}

/// `lockstep push`.
pub async fn push(
    lockstep: &Lockstep,
    project: Option<&str>,
    source: &str,
    rows: &Path,
    to: PushTarget,
) -> anyhow::Result<()> {
    let text = if rows == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading rows from standard input")?;
        text
    } else {
        std::fs::read_to_string(rows).with_context(|| format!("cannot read {}", rows.display()))?
    };
    let columns: crate::api::json::JsonColumns =
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: expected a JSON object of columns, {{\"column\": [values], …}}",
                rows.display()
            )
        })?;
    let views = crate::api::json::push(lockstep, project, source, &columns, to)
        .await
        .map_err(|e| super::coded(&e))?;
    for view in views {
        outln!(
            "{}: {} rows ({} rejected by the transform), {} online values changed{}",
            view.view,
            view.rows,
            view.rejected,
            view.written_online,
            if view.written_offline {
                ", written offline"
            } else {
                ""
            }
        )?;
    }
    Ok(())
}
