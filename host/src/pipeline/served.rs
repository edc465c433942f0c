//! The definitions a host serves with, cached per project: read from the registry and
//! resolved once (tables, aggregation engines), reused for `online.definitions_refresh_ms`,
//! then stale-while-revalidate for online reads — an expired copy is served at once while one
//! refresh per project runs off the request path, and a failed refresh keeps the last good
//! copy — so serving survives a registry outage. Writes and offline work read the registry
//! when their copy has expired.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::features::{FeatureError, FeatureRequest, Selection};
use super::online_plan::PlanCache;
use super::{ApplyError, Lockstep};
use crate::aggregate::Engine;
use crate::model::ViewTable;
use crate::model::definitions::Resolved;
use crate::registry::Registry;
use crate::runtime::Runtime;

/// A project's definitions as served: resolved once, with each view's table, reused by
/// requests until they are older than the refresh interval (or this process applies new
/// definitions).
#[derive(Debug)]
pub(crate) struct ServedDefinitions {
    pub resolved: Resolved,
    pub tables: BTreeMap<String, ViewTable>,
    /// The aggregation engine of each aggregated view, built once here rather than per
    /// request or push.
    pub engines: BTreeMap<String, Engine>,
    /// Online request plans by shape, built on first use with these definitions.
    pub online_plans: PlanCache,
}

/// Registry changes being followed ([`Lockstep::follow_registry`]); stops when dropped.
pub struct Following(tokio::task::JoinHandle<()>);

impl Drop for Following {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Which project a cached copy is for: the one a request named (`None`: the default).
type Key = Option<String>;

/// One project's cached copy and the state of its refreshes.
#[derive(Default)]
struct Slot {
    /// The last good copy and when it was read.
    current: Option<(Instant, Arc<ServedDefinitions>)>,
    /// A background refresh is running.
    refreshing: bool,
    /// When the last refresh failed, if the last one did: the failure streak's latest
    /// attempt (refreshes are at most one per interval while it lasts).
    failed_at: Option<Instant>,
    /// One load at a time per project, whether a blocking read or a background refresh.
    gate: Arc<tokio::sync::Mutex<()>>,
}

/// Served definitions by project, with the generation that invalidates in-flight loads
/// when definitions are applied.
#[derive(Default)]
pub(crate) struct DefinitionsCache {
    slots: Mutex<(u64, HashMap<Key, Slot>)>,
}

/// What the cache holds for a project.
enum Lookup {
    Fresh(Arc<ServedDefinitions>),
    /// Expired; `refresh` when this caller should start the background refresh.
    Stale {
        served: Arc<ServedDefinitions>,
        refresh: bool,
    },
    Missing,
}

impl DefinitionsCache {
    fn lock(&self) -> MutexGuard<'_, (u64, HashMap<Key, Slot>)> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets every copy (definitions were applied): loads in flight are not stored.
    pub fn clear(&self) {
        let mut slots = self.lock();
        slots.0 += 1;
        for slot in slots.1.values_mut() {
            slot.current = None;
            slot.failed_at = None;
        }
    }

    /// The copy of `key` and whether it is younger than `max_age`. With `claim`, a caller
    /// finding it expired learns whether it should start the refresh (none running, and
    /// the last failure at least `max_age` ago), and the refresh is marked running.
    fn lookup(&self, key: &Key, max_age: Duration, claim: bool) -> Lookup {
        let mut slots = self.lock();
        let Some(slot) = slots.1.get_mut(key) else {
            return Lookup::Missing;
        };
        let Some((loaded, served)) = &slot.current else {
            return Lookup::Missing;
        };
        let served = Arc::clone(served);
        if loaded.elapsed() < max_age {
            return Lookup::Fresh(served);
        }
        let refresh =
            claim && !slot.refreshing && slot.failed_at.is_none_or(|at| at.elapsed() >= max_age);
        slot.refreshing |= refresh;
        Lookup::Stale { served, refresh }
    }

    fn gate(&self, key: &Key) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(&self.lock().1.entry(key.clone()).or_default().gate)
    }

    fn generation(&self) -> u64 {
        self.lock().0
    }

    /// Records a load started at `generation`: the new copy, or the failure (logged once
    /// per failure streak).
    fn finish(
        &self,
        key: &Key,
        generation: u64,
        loaded: &Result<Arc<ServedDefinitions>, FeatureError>,
    ) {
        let mut slots = self.lock();
        let current_generation = slots.0;
        let slot = slots.1.entry(key.clone()).or_default();
        let project = key.as_deref().unwrap_or("(default)");
        match loaded {
            Ok(served) => {
                if let Some(failed) = slot.failed_at.take() {
                    tracing::info!(
                        project,
                        last_failure_ms_ago = failed.elapsed().as_millis() as u64,
                        "definitions read from the registry again"
                    );
                }
                if generation == current_generation {
                    slot.current = Some((Instant::now(), Arc::clone(served)));
                }
            }
            Err(error) => {
                if slot.failed_at.is_none() {
                    let age = slot
                        .current
                        .as_ref()
                        .map(|(at, _)| at.elapsed().as_secs_f64());
                    tracing::warn!(
                        project,
                        %error,
                        serving_copy_age_seconds = age,
                        "cannot read definitions from the registry; online reads keep the last \
                         good copy until it answers (logged once until then)"
                    );
                }
                slot.failed_at = Some(Instant::now());
            }
        }
    }

    /// The background refresh of `key` ended.
    fn refreshed(&self, key: &Key) {
        if let Some(slot) = self.lock().1.get_mut(key) {
            slot.refreshing = false;
        }
    }

    /// The newest copy of each cached project (by its resolved name).
    pub fn copies(&self) -> Vec<Arc<ServedDefinitions>> {
        let slots = self.lock();
        let mut newest: BTreeMap<&str, (Instant, &Arc<ServedDefinitions>)> = BTreeMap::new();
        for (loaded, served) in slots.1.values().filter_map(|slot| slot.current.as_ref()) {
            let entry = newest
                .entry(served.resolved.project())
                .or_insert((*loaded, served));
            if *loaded > entry.0 {
                *entry = (*loaded, served);
            }
        }
        newest
            .into_values()
            .map(|(_, served)| Arc::clone(served))
            .collect()
    }

    /// Each cached project (by its resolved name) and the age of its oldest copy served.
    pub fn ages(&self) -> Vec<(String, Duration)> {
        let slots = self.lock();
        let mut ages: BTreeMap<String, Duration> = BTreeMap::new();
        for (loaded, served) in slots.1.values().filter_map(|slot| slot.current.as_ref()) {
            let age = ages
                .entry(served.resolved.project().to_owned())
                .or_default();
            *age = (*age).max(loaded.elapsed());
        }
        ages.into_iter().collect()
    }
}

/// Reads and resolves `key`'s definitions from the registry, and quarantines in `runtime`
/// the transforms the registry marks unsafe (another process may have caught one).
async fn load(
    registry: &dyn Registry,
    runtime: &Runtime,
    key: &Key,
) -> Result<Arc<ServedDefinitions>, FeatureError> {
    super::transforms::sync_unsafe_transforms(registry, runtime).await?;
    let project = super::definitions::resolve_project(registry, key.as_deref(), None).await?;
    super::definitions::known_project(registry, &project).await?;
    let resolved = super::definitions::applied_definitions(registry, &project)
        .await
        .map_err(|error| match error {
            ApplyError::Registry(error) => FeatureError::Registry(error),
            other => FeatureError::Internal(format!(
                "the applied definitions no longer resolve: {other}"
            )),
        })?;
    let tables: BTreeMap<String, ViewTable> = resolved
        .feature_views
        .iter()
        .map(|(name, view)| (name.clone(), ViewTable::for_view(&project, name, view)))
        .collect();
    let engines = tables
        .iter()
        .filter_map(|(name, table)| Some((name.clone(), Engine::of(table)?)))
        .collect();
    Ok(Arc::new(ServedDefinitions {
        resolved,
        tables,
        engines,
        online_plans: PlanCache::default(),
    }))
}

/// Loads `key` unless a copy younger than `max_age` arrived while waiting for the gate.
async fn load_once(
    cache: &DefinitionsCache,
    registry: &dyn Registry,
    runtime: &Runtime,
    key: &Key,
    max_age: Duration,
) -> Result<Arc<ServedDefinitions>, FeatureError> {
    let gate = cache.gate(key);
    let _one_at_a_time = gate.lock().await;
    if let Lookup::Fresh(served) = cache.lookup(key, max_age, false) {
        return Ok(served);
    }
    let generation = cache.generation();
    let loaded = load(registry, runtime, key).await;
    cache.finish(key, generation, &loaded);
    loaded
}

impl Lockstep {
    /// The definitions for `project`, at most the refresh interval old: read from the
    /// registry (one read at a time per project) when the cached copy is older. What writes
    /// and offline work use: they fail while the registry is down.
    pub(crate) async fn served_definitions(
        &self,
        project: Option<&str>,
    ) -> Result<Arc<ServedDefinitions>, FeatureError> {
        let key = project
            .or(self.default_project.as_deref())
            .map(str::to_owned);
        if let Lookup::Fresh(served) = self.served.lookup(&key, self.definitions_refresh, false) {
            return Ok(served);
        }
        load_once(
            &self.served,
            &*self.registry,
            &self.runtime,
            &key,
            self.definitions_refresh,
        )
        .await
    }

    /// The definitions online reads are served with: the cached copy, even expired — an
    /// expired one is refreshed off the request path — or, when none is cached, read from
    /// the registry.
    pub(crate) async fn serving_definitions(
        &self,
        project: Option<&str>,
    ) -> Result<Arc<ServedDefinitions>, FeatureError> {
        let key = project
            .or(self.default_project.as_deref())
            .map(str::to_owned);
        match self.served.lookup(&key, self.definitions_refresh, true) {
            Lookup::Fresh(served) => Ok(served),
            Lookup::Stale { served, refresh } => {
                if refresh {
                    let cache = Arc::clone(&self.served);
                    let registry = Arc::clone(&self.registry);
                    let runtime = Arc::clone(&self.runtime);
                    let max_age = self.definitions_refresh;
                    tokio::spawn(async move {
                        // The outcome is recorded, and a failure logged, by `finish`.
                        let _ = load_once(&cache, &*registry, &runtime, &key, max_age).await;
                        cache.refreshed(&key);
                    });
                }
                Ok(served)
            }
            Lookup::Missing => self.served_definitions(project).await,
        }
    }

    /// Follows the registry's changes, committed by this or any other server sharing it,
    /// until the returned guard drops: each one forgets the served definitions, so the next
    /// request reads the new ones (the refresh interval stays the fallback, e.g. while the
    /// registry cannot be listened to). `None` where the registry cannot tell (embedded:
    /// one process). Must be called within a tokio runtime.
    pub fn follow_registry(&self) -> Option<Following> {
        let mut feed = self.registry.watch()?;
        let served = Arc::downgrade(&self.served);
        let task = tokio::spawn(async move {
            while let Some(change) = feed.next().await {
                let Some(served) = served.upgrade() else {
                    return;
                };
                tracing::debug!(?change, "the registry changed: definitions are read again");
                served.clear();
            }
        });
        Some(Following(task))
    }

    /// Each project whose definitions are cached, and how old the oldest copy served is.
    pub fn definitions_ages(&self) -> Vec<(String, Duration)> {
        self.served.ages()
    }
}

impl Lockstep {
    /// The project's served definitions and the features `request` names in them.
    pub(crate) async fn select(
        &self,
        request: &FeatureRequest,
    ) -> Result<(Arc<ServedDefinitions>, Selection), FeatureError> {
        let served = self.served_definitions(request.project.as_deref()).await?;
        let selection = Selection::of(&served.resolved, request)?;
        Ok((served, selection))
    }
}
