//! What a host reports about itself while parts of it are down: readiness by component
//! (serving needs the online store and definitions, cached or readable, not the registry
//! itself) and the metrics text, which reports what it can reach. Every probe of a store is
//! bounded by `online.timeout_ms`, so neither waits out a dead server.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use super::Lockstep;

/// How a dependency answered its probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    Ok,
    Unavailable,
}

/// Whether the host can serve online reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    /// Every dependency answers.
    Ok,
    /// The registry does not answer: online reads are served with the cached definitions.
    Degraded,
    /// The online store does not answer, or the registry does not and nothing is cached.
    Unavailable,
}

/// The readiness probe's findings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readiness {
    pub status: ReadyStatus,
    pub registry: Component,
    pub online_store: Component,
    /// Seconds since the oldest definitions served were read; `None` when none are cached.
    pub definitions_age_seconds: Option<f64>,
}

impl Readiness {
    /// Online reads can be answered: ok or degraded.
    pub fn can_serve(&self) -> bool {
        self.status != ReadyStatus::Unavailable
    }
}

/// `probe` finished within `limit` and succeeded.
async fn answers<T, E>(limit: Duration, probe: impl Future<Output = Result<T, E>>) -> Option<T> {
    tokio::time::timeout(limit, probe).await.ok()?.ok()
}

impl Lockstep {
    /// Probes the registry and the online store (at once, each within `online.timeout_ms`)
    /// and judges whether online reads can be served.
    pub async fn readiness(&self) -> Readiness {
        let limit = self.online.timeout();
        let (registry, online_store) = tokio::join!(
            answers(limit, self.registry.ping()),
            answers(limit, self.online.ping()),
        );
        let state = |up: Option<()>| match up {
            Some(()) => Component::Ok,
            None => Component::Unavailable,
        };
        let (registry, online_store) = (state(registry), state(online_store));
        let age = self
            .definitions_ages()
            .into_iter()
            .map(|(_, age)| age)
            .max();
        let status = match (online_store, registry, age) {
            (Component::Unavailable, _, _) | (_, Component::Unavailable, None) => {
                ReadyStatus::Unavailable
            }
            (Component::Ok, Component::Ok, _) => ReadyStatus::Ok,
            (Component::Ok, Component::Unavailable, Some(_)) => ReadyStatus::Degraded,
        };
        Readiness {
            status,
            registry,
            online_store,
            definitions_age_seconds: age.map(|age| age.as_secs_f64()),
        }
    }

    /// The Prometheus text of this host's metrics, with each online view's freshness (the
    /// recorded materializations and this process's pushes) and the served definitions'
    /// ages. Answers while the registry or the offline store is down: projects then come
    /// from the cache, and freshness from pushes alone.
    pub async fn metrics_text(&self) -> String {
        let limit = self.online.timeout();
        if let Some(projects) = answers(limit, self.registry.projects()).await {
            for project in projects {
                // Caches projects not served yet, so their views' freshness shows.
                let _ = answers(limit, self.serving_definitions(Some(&project))).await;
            }
        }
        let mut offline_up = true;
        let mut freshness = Vec::new();
        for served in self.served.copies() {
            for (name, view) in &served.resolved.feature_views {
                if !view.online {
                    continue;
                }
                let mut materialized = None;
                if offline_up {
                    let until = self.offline.materialized_until(&served.tables[name].name);
                    match answers(limit, until).await {
                        Some(until) => materialized = until.map(|end| end - 1),
                        // Down or slow: not asked again during this scrape.
                        None => offline_up = false,
                    }
                }
                if let Some(newest) = materialized.max(self.metrics.pushed_until(name)) {
                    freshness.push((name.clone(), newest));
                }
            }
        }
        let ages: Vec<(String, f64)> = self
            .definitions_ages()
            .into_iter()
            .map(|(project, age)| (project, age.as_secs_f64()))
            .collect();
        self.metrics.render(
            &self.runtime.call_stats(),
            &freshness,
            &ages,
            crate::model::now_micros(),
        )
    }
}
