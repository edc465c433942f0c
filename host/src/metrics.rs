//! Prometheus metrics of one host: HTTP requests by endpoint, online requests by feature
//! service, online values by view and status, pushed rows, late events refused by
//! aggregated views, feature logs written and dropped, and, computed when scraped,
//! each transform's calls, time and fuel (from the runtime), each online view's
//! freshness (from the recorded materializations and this process's pushes) and the age of
//! each project's served definitions.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::runtime::CallStats;

/// The label value of a feature service that is not among the applied definitions: every
/// label value is an applied name (or a route pattern), so requests cannot add series.
pub const UNKNOWN: &str = "unknown";

/// Latency buckets, in seconds: tenths of a millisecond up to seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

/// A metric rendered from the runtime's call totals: name, type, help, value.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&CallStats) -> String,
);

/// The host's metrics.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    online_requests: IntCounterVec,
    online_seconds: HistogramVec,
    online_values: IntCounterVec,
    pushed_rows: IntCounterVec,
    late_events: IntCounterVec,
    feature_logs_written: IntCounterVec,
    feature_logs_dropped: IntCounterVec,
    /// Newest event time (µs) pushed per view by this process.
    pushed_until: Mutex<HashMap<String, i64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let counter = IntCounterVec::new(Opts::new(name, help), labels)
                .expect("a valid counter definition");
            registry
                .register(Box::new(counter.clone()))
                .expect("registered once");
            counter
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let histogram = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )
            .expect("a valid histogram definition");
            registry
                .register(Box::new(histogram.clone()))
                .expect("registered once");
            histogram
        };
        Self {
            http_requests: counter(
                "lockstep_http_requests_total",
                "HTTP requests answered, by endpoint and status code.",
                &["endpoint", "status"],
            ),
            http_seconds: histogram(
                "lockstep_http_request_duration_seconds",
                "Time to answer an HTTP request, by endpoint.",
                &["endpoint"],
            ),
            online_requests: counter(
                "lockstep_online_requests_total",
                "Online feature requests, by feature service (`-` for feature lists) and outcome.",
                &["feature_service", "outcome"],
            ),
            online_seconds: histogram(
                "lockstep_online_request_duration_seconds",
                "Time to compute an online answer, by feature service.",
                &["feature_service"],
            ),
            online_values: counter(
                "lockstep_online_values_total",
                "Feature values served, by view and status (PRESENT is a hit, NOT_FOUND a miss).",
                &["view", "status"],
            ),
            pushed_rows: counter(
                "lockstep_pushed_rows_total",
                "Rows pushed into a view's stores.",
                &["view"],
            ),
            late_events: counter(
                "lockstep_late_events_total",
                "Pushed events refused by an aggregated view: older than the key's newest \
                 event by more than the allowed lateness.",
                &["view"],
            ),
            feature_logs_written: counter(
                "lockstep_feature_log_written_total",
                "Logged online responses written to the offline store, by feature service.",
                &["feature_service"],
            ),
            feature_logs_dropped: counter(
                "lockstep_feature_log_dropped_total",
                "Logged online responses dropped, by feature service and reason (queue_full: \
                 the bounded queue was full; write_failed: the offline store refused the batch).",
                &["feature_service", "reason"],
            ),
            registry,
            pushed_until: Mutex::default(),
        }
    }

    /// One HTTP request answered.
    pub fn http_request(&self, endpoint: &str, status: u16, seconds: f64) {
        self.http_requests
            .with_label_values(&[endpoint, &status.to_string()])
            .inc();
        self.http_seconds
            .with_label_values(&[endpoint])
            .observe(seconds);
    }

    /// One online request computed (or failed); `service` must be an applied feature
    /// service's name or [`UNKNOWN`].
    pub fn online_request(&self, service: Option<&str>, ok: bool, seconds: f64) {
        let service = service.unwrap_or("-");
        self.online_requests
            .with_label_values(&[service, if ok { "ok" } else { "error" }])
            .inc();
        if ok {
            self.online_seconds
                .with_label_values(&[service])
                .observe(seconds);
        }
    }

    /// `count` values of `view` served with `status`.
    pub fn online_values(&self, view: &str, status: &str, count: u64) {
        if count > 0 {
            self.online_values
                .with_label_values(&[view, status])
                .inc_by(count);
        }
    }

    /// Rows pushed into `view`, the newest with event time `newest` (µs).
    pub fn pushed(&self, view: &str, rows: u64, newest: Option<i64>) {
        self.pushed_rows.with_label_values(&[view]).inc_by(rows);
        if let Some(newest) = newest {
            let mut until = self
                .pushed_until
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let entry = until.entry(view.to_owned()).or_insert(newest);
            *entry = (*entry).max(newest);
        }
    }

    /// Events refused by aggregated `view` as too late.
    pub fn late_events(&self, view: &str, events: u64) {
        self.late_events.with_label_values(&[view]).inc_by(events);
    }

    /// `count` logged responses of `service` written to the offline store.
    pub fn feature_logs_written(&self, service: &str, count: u64) {
        self.feature_logs_written
            .with_label_values(&[service])
            .inc_by(count);
    }

    /// One logged response of `service` dropped, for `reason` (`queue_full`,
    /// `write_failed`).
    pub fn feature_log_dropped(&self, service: &str, reason: &str) {
        self.feature_logs_dropped
            .with_label_values(&[service, reason])
            .inc();
    }

    /// Logged responses of `service` dropped so far for `reason`.
    pub fn feature_logs_dropped(&self, service: &str, reason: &str) -> u64 {
        self.feature_logs_dropped
            .with_label_values(&[service, reason])
            .get()
    }

    /// The newest event time pushed into `view` by this process.
    pub fn pushed_until(&self, view: &str) -> Option<i64> {
        self.pushed_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(view)
            .copied()
    }

    /// The Prometheus text exposition: the registered metrics, then the transforms' call
    /// totals, the views' freshness (seconds since the newest value each view received,
    /// as `(view, newest event time µs)`), as of `now` (µs), and the served definitions'
    /// ages (`(project, seconds since read from the registry)`).
    pub fn render(
        &self,
        transforms: &[CallStats],
        freshness: &[(String, i64)],
        definitions: &[(String, f64)],
        now: i64,
    ) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into memory");
        let mut text = String::from_utf8(out).expect("the text format is UTF-8");
        let series: [Series; 6] = [
            (
                "lockstep_transform_calls_total",
                "counter",
                "Transform calls, by transform digest.",
                |s| s.calls.to_string(),
            ),
            (
                "lockstep_transform_failures_total",
                "counter",
                "Transform calls that ended in an error.",
                |s| s.failures.to_string(),
            ),
            (
                "lockstep_transform_seconds_total",
                "counter",
                "Time spent in transform calls.",
                |s| s.seconds.to_string(),
            ),
            (
                "lockstep_transform_fuel_total",
                "counter",
                "Fuel (the deterministic instruction budget) transform calls consumed.",
                |s| s.fuel.to_string(),
            ),
            (
                "lockstep_transform_rows_rechecked_total",
                "counter",
                "Rows of transform calls re-run alone and compared bit for bit with the batch's \
                 output (backfills, pushes, sampled online calls).",
                |s| s.rows_rechecked.to_string(),
            ),
            (
                "lockstep_transform_unsafe",
                "gauge",
                "1 when the transform was caught breaking the row-wise contract and is not run.",
                |s| u8::from(s.is_unsafe).to_string(),
            ),
        ];
        for (name, kind, help, value) in series {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for stats in transforms {
                text.push_str(&format!(
                    "{name}{{digest=\"{}\",transform=\"{}\"}} {}\n",
                    stats.digest,
                    escape(&stats.name),
                    value(stats)
                ));
            }
        }
        let name = "lockstep_view_freshness_seconds";
        text.push_str(&format!(
            "# HELP {name} Seconds since the newest event time materialized or pushed into \
             each online view.\n# TYPE {name} gauge\n"
        ));
        for (view, newest) in freshness {
            let age = (now - newest) as f64 / 1e6;
            text.push_str(&format!("{name}{{view=\"{}\"}} {age}\n", escape(view)));
        }
        let name = "lockstep_definitions_age_seconds";
        text.push_str(&format!(
            "# HELP {name} Seconds since the definitions served for each project were read from \
             the registry (grows while the registry is unreachable).\n# TYPE {name} gauge\n"
        ));
        for (project, age) in definitions {
            text.push_str(&format!(
                "{name}{{project=\"{}\"}} {age}\n",
                escape(project)
            ));
        }
        text
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Digest;

    #[test]
    fn renders_every_family_in_text_format() {
        let metrics = Metrics::new();
        metrics.http_request("/get-online-features", 200, 0.0004);
        metrics.online_request(Some("svc"), true, 0.0003);
        metrics.online_values("v", "PRESENT", 10);
        metrics.online_values("v", "NOT_FOUND", 0);
        metrics.pushed("v", 3, Some(5_000_000));
        metrics.pushed("v", 1, Some(4_000_000));
        metrics.feature_logs_written("svc", 3);
        metrics.feature_log_dropped("svc", "queue_full");
        assert_eq!(metrics.feature_logs_dropped("svc", "queue_full"), 1);
        assert_eq!(metrics.pushed_until("v"), Some(5_000_000));
        let stats = CallStats {
            digest: Digest::of(b"x"),
            name: "a\"b".into(),
            calls: 2,
            failures: 0,
            rows: 20,
            seconds: 0.5,
            fuel: 1234,
            rows_rechecked: 16,
            is_unsafe: true,
        };
        let text = metrics.render(
            &[stats],
            &[("v".into(), 5_000_000)],
            &[("movies".into(), 1.5)],
            7_000_000,
        );
        for line in [
            "lockstep_http_requests_total{endpoint=\"/get-online-features\",status=\"200\"} 1",
            "lockstep_online_requests_total{feature_service=\"svc\",outcome=\"ok\"} 1",
            "lockstep_online_values_total{status=\"PRESENT\",view=\"v\"} 10",
            "lockstep_pushed_rows_total{view=\"v\"} 4",
            "lockstep_transform_rows_rechecked_total{digest=\"sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\",transform=\"a\\\"b\"} 16",
            "lockstep_feature_log_written_total{feature_service=\"svc\"} 3",
            "lockstep_feature_log_dropped_total{feature_service=\"svc\",reason=\"queue_full\"} 1",
            "lockstep_transform_fuel_total{digest=\"sha256:",
            "transform=\"a\\\"b\"} 1234",
            "lockstep_view_freshness_seconds{view=\"v\"} 2",
            "lockstep_definitions_age_seconds{project=\"movies\"} 1.5",
            "lockstep_online_request_duration_seconds_bucket{feature_service=\"svc\",le=\"0.0005\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(
            !text.contains("status=\"NOT_FOUND\""),
            "zero counts are not created"
        );
    }
}
