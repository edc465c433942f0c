//! Subcommands of the online path: materialize (full or incremental) and rehydrate with
//! progress lines and rows/s, and push rows from a JSON file.

use std::io::Read as _;
use std::path::Path;

use anyhow::Context as _;

use crate::model::format_timestamp;
use crate::pipeline::{
    Columns, EARLIEST, Lockstep, MaterializeEvent, MaterializeRequest, MaterializedView, PushTarget,
};

/// Prints one line per view as it starts and finishes.
fn report(event: MaterializeEvent) {
    match event {
        MaterializeEvent::Started { view, from, to } => eprintln!(
            "materializing {view}: [{}, {})",
            if from <= EARLIEST {
                "…".to_owned()
            } else {
                format_timestamp(from)
            },
            format_timestamp(to)
        ),
        MaterializeEvent::Rows { .. } => {}
        MaterializeEvent::Finished(view) => print_view(&view),
    }
}

fn print_view(view: &MaterializedView) {
    let (read, written) = if view.aggregated {
        ("events replayed", "aggregation states written")
    } else {
        ("entities read", "online values changed")
    };
    println!(
        "{}: {} {read}, {} {written}, in {:.2}s = {:.0} rows/s",
        view.view,
        view.rows,
        view.written,
        view.seconds,
        view.rows_per_second()
    );
}

/// `lockstep materialize` and `lockstep materialize-incremental`.
pub async fn materialize(lockstep: &Lockstep, request: MaterializeRequest) -> anyhow::Result<()> {
    let views = lockstep
        .materialize(&request, &report)
        .await
        .map_err(|e| super::coded(&e, e.code()))?;
    if views.is_empty() {
        println!("no online views to materialize");
    }
    Ok(())
}

/// `lockstep rehydrate`.
pub async fn rehydrate(
    lockstep: &Lockstep,
    project: Option<String>,
    views: Vec<String>,
    fresh: bool,
) -> anyhow::Result<()> {
    lockstep
        .rehydrate(project, views, fresh, &report)
        .await
        .map_err(|e| super::coded(&e, e.code()))?;
    Ok(())
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
    let columns: Columns = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected a JSON object of columns, {{\"column\": [values], …}}",
            rows.display()
        )
    })?;
    let views = lockstep
        .push(project, source, &columns, to)
        .await
        .map_err(|e| super::coded(&e, e.code()))?;
    for view in views {
        println!(
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
        );
    }
    Ok(())
}
