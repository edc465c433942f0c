//! `lockstep audit`: the skew audit's report for people, and its verdict as the exit code.

use super::out::outln;
use crate::model::format_timestamp;
use crate::pipeline::{AuditReport, AuditRequest, Lockstep};

/// Runs the audit and prints its report; an error (exit code 1) unless values were compared
/// and all matched bit for bit.
pub async fn audit(lockstep: &Lockstep, request: AuditRequest) -> anyhow::Result<()> {
    let report = lockstep
        .audit(&request)
        .await
        .map_err(|e| super::coded(&e))?;
    outln!("{}", render(&report, request.since).trim_end_matches('\n'))?;
    anyhow::ensure!(
        report.unsafe_transforms.is_empty(),
        "audit failed: {} logged requests were served by transforms since marked unsafe",
        report.skipped_requests
    );
    anyhow::ensure!(
        report.values > 0,
        "nothing to audit: no logged responses of feature service `{}`{} (give it \
         `logging = {{ sample_rate = … }}` and serve requests)",
        report.service,
        since_text(request.since)
    );
    anyhow::ensure!(
        report.differed == 0,
        "audit failed: {} of {} values differ between online and offline",
        report.differed,
        report.values
    );
    Ok(())
}

fn since_text(since: i64) -> String {
    if since == i64::MIN {
        String::new()
    } else {
        format!(" since {}", format_timestamp(since))
    }
}

/// The report as printed.
pub fn render(report: &AuditReport, since: i64) -> String {
    let mut out = format!(
        "audit of {}/{}{}: {} logged requests, {} rows, {} values compared\n",
        report.project,
        report.service,
        since_text(since),
        report.requests,
        report.rows,
        report.values
    );
    let share = |count: u64| {
        if report.values == 0 {
            0.0
        } else {
            count as f64 * 100.0 / report.values as f64
        }
    };
    out.push_str(&format!(
        "  matched bit for bit  {:>9} ({:.2}%)\n  differed             {:>9} ({:.2}%)\n",
        report.matched,
        share(report.matched),
        report.differed,
        share(report.differed)
    ));
    for (view, (digest, reason)) in &report.unsafe_transforms {
        out.push_str(&format!(
            "  UNSAFE {view} ({digest}): {reason}; {} logged requests not replayed\n",
            report.skipped_requests
        ));
    }
    for (cause, count) in &report.causes {
        out.push_str(&format!(
            "    {count:>9}  {}\n",
            serde_json::to_value(cause)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ));
    }
    if !report.differences.is_empty() {
        out.push_str(&format!(
            "first {} differences:\n",
            report.differences.len()
        ));
    }
    let time = |ts: Option<i64>| ts.map_or_else(|| "none".to_owned(), format_timestamp);
    for difference in &report.differences {
        let entity: Vec<String> = difference
            .entity
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        out.push_str(&format!(
            "  at {} {} {}:{}\n    online  {} ({}, event time {})\n    offline {} (event time {})\n    likely cause: {}\n",
            format_timestamp(difference.request_ts),
            entity.join(" "),
            difference.view,
            difference.feature,
            difference.online,
            difference.status.as_str(),
            time(difference.online_event_ts),
            difference.offline,
            time(difference.offline_event_ts),
            difference.cause.describe()
        ));
    }
    out
}
