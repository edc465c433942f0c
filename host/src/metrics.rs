//! Prometheus metrics of one host: HTTP requests by endpoint, online requests by feature
//! service, online values by view and status, pushed rows, late events refused by
//! aggregated views, feature logs written and dropped, and, computed when scraped,
//! each transform's calls, time and fuel (from the runtime), each online view's
//! freshness (from the recorded materializations and this process's pushes) and the age of
//! each project's served definitions.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus::core::Collector;
use prometheus::{
    CounterVec, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
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
    /// ages (`(project, seconds since read from the registry)`), all through one encoder.
    pub fn render(
        &self,
        transforms: &[CallStats],
        freshness: &[(String, i64)],
        definitions: &[(String, f64)],
        now: i64,
    ) -> String {
        let mut families = self.registry.gather();
        families.extend(scraped(transforms, freshness, definitions, now).gather());
        TextEncoder::new()
            .encode_to_string(&families)
            .expect("text encoding into memory")
    }
}

/// Registers `metric` in `registry` and gives it back.
fn register<M: Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("registered once");
    metric
}

/// The metrics computed when scraped, in a registry made for this scrape alone.
fn scraped(
    transforms: &[CallStats],
    freshness: &[(String, i64)],
    definitions: &[(String, f64)],
    now: i64,
) -> Registry {
    const PER_TRANSFORM: [&str; 2] = ["digest", "transform"];
    let registry = Registry::new();
    let counter = |name: &str, help: &str| {
        let opts = Opts::new(name, help);
        register(
            &registry,
            IntCounterVec::new(opts, &PER_TRANSFORM).expect("a valid counter"),
        )
    };
    let calls = counter(
        "lockstep_transform_calls_total",
        "Transform calls, by transform digest.",
    );
    let failures = counter(
        "lockstep_transform_failures_total",
        "Transform calls that ended in an error.",
    );
    let seconds = register(
        &registry,
        CounterVec::new(
            Opts::new(
                "lockstep_transform_seconds_total",
                "Time spent in transform calls.",
            ),
            &PER_TRANSFORM,
        )
        .expect("a valid counter"),
    );
    let fuel = counter(
        "lockstep_transform_fuel_total",
        "Fuel (the deterministic instruction budget) transform calls consumed.",
    );
    let rechecked = counter(
        "lockstep_transform_rows_rechecked_total",
        "Rows of transform calls re-run alone and compared bit for bit with the batch's \
         output (backfills, pushes, sampled online calls).",
    );
    let unsafe_ = register(
        &registry,
        IntGaugeVec::new(
            Opts::new(
                "lockstep_transform_unsafe",
                "1 when the transform was caught breaking the row-wise contract and is not run.",
            ),
            &PER_TRANSFORM,
        )
        .expect("a valid gauge"),
    );
    for stats in transforms {
        let labels = [stats.digest.to_string(), stats.name.clone()];
        let labels = [labels[0].as_str(), labels[1].as_str()];
        calls.with_label_values(&labels).inc_by(stats.calls);
        failures.with_label_values(&labels).inc_by(stats.failures);
        seconds.with_label_values(&labels).inc_by(stats.seconds);
        fuel.with_label_values(&labels).inc_by(stats.fuel);
        rechecked
            .with_label_values(&labels)
            .inc_by(stats.rows_rechecked);
        unsafe_
            .with_label_values(&labels)
            .set(i64::from(stats.is_unsafe));
    }
    let gauge = |name: &str, help: &str, label: &str| {
        let opts = Opts::new(name, help);
        register(
            &registry,
            GaugeVec::new(opts, &[label]).expect("a valid gauge"),
        )
    };
    let fresh = gauge(
        "lockstep_view_freshness_seconds",
        "Seconds since the newest event time materialized or pushed into each online view.",
        "view",
    );
    for (view, newest) in freshness {
        fresh
            .with_label_values(&[view])
            .set((now - newest) as f64 / 1e6);
    }
    let age = gauge(
        "lockstep_definitions_age_seconds",
        "Seconds since the definitions served for each project were read from the registry \
         (grows while the registry is unreachable).",
        "project",
    );
    for (project, seconds) in definitions {
        age.with_label_values(&[project]).set(*seconds);
    }
    registry
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
