//! Materialization: each online view's latest row per entity in a time window, streamed
//! from the offline store into the online store in pipelined batches (newer-wins, so
//! repeating one changes nothing), each run recorded so incremental runs continue where
//! the last ended; an aggregated view's keys get their aggregation state rebuilt from
//! their stored events. Rehydrating a lost online store is a full materialization up to
//! now.

use std::time::Instant;

use arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};

use super::Lockstep;
use super::features::FeatureError;
use crate::aggregate::{Engine, Replay, State, Visitor};
use crate::model::ViewTable;
use crate::offline::{Materialization, Rows};
use crate::online::{self, OnlineError};

/// Rows per batch read from the offline store and written to the online store.
const BATCH_ROWS: usize = 10_000;

/// The earliest time a window starts at: 0001-01-01, which every store can represent.
pub const EARLIEST: i64 = -62_135_596_800_000_000;

/// What to materialize.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MaterializeRequest {
    pub project: Option<String>,
    /// Feature views; every online view when empty.
    pub views: Vec<String>,
    /// Start (µs, inclusive). Incremental runs start where the view's last run ended.
    pub from: Option<i64>,
    /// End (µs, exclusive); now by default.
    pub to: Option<i64>,
    pub incremental: bool,
}

/// Progress of a materialization.
#[derive(Debug, Clone)]
pub enum MaterializeEvent {
    /// A view's materialization starts: about `estimated_rows` rows to read (see
    /// [`crate::offline::OfflineStore::estimate_rows`]).
    Started {
        view: String,
        from: i64,
        to: i64,
        estimated_rows: Option<u64>,
    },
    Rows {
        view: String,
        rows: u64,
    },
    Finished(MaterializedView),
}

/// What materializing one view did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaterializedView {
    pub view: String,
    pub table: String,
    pub from: i64,
    pub to: i64,
    /// Rows read from the offline store: one per entity with a value in the window or, for
    /// an aggregated view, every event before the window's end.
    pub rows: u64,
    /// Values that changed the online store (older or equal values are not rewritten): rows,
    /// or an aggregated view's rebuilt states, one per entity.
    pub written: u64,
    /// Whether the view aggregates its events.
    pub aggregated: bool,
    pub seconds: f64,
}

impl MaterializedView {
    pub fn rows_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.rows as f64 / self.seconds
        } else {
            0.0
        }
    }
}

impl Lockstep {
    /// Copies each view's latest rows in the window from the offline to the online store.
    pub async fn materialize(
        &self,
        request: &MaterializeRequest,
        events: &(dyn Fn(MaterializeEvent) + Send + Sync),
    ) -> Result<Vec<MaterializedView>, FeatureError> {
        let served = self.served_definitions(request.project.as_deref()).await?;
        let definitions = &served.resolved;
        let views: Vec<String> = if request.views.is_empty() {
            definitions
                .feature_views
                .iter()
                .filter(|(_, view)| view.online && view.offline)
                .map(|(name, _)| name.clone())
                .collect()
        } else {
            request.views.clone()
        };
        let mut tables = Vec::with_capacity(views.len());
        for name in &views {
            let Some(view) = definitions.feature_views.get(name) else {
                let known: Vec<&str> = definitions
                    .feature_views
                    .keys()
                    .map(String::as_str)
                    .collect();
                return Err(FeatureError::Invalid(format!(
                    "project `{}` has no feature view `{}` (known: {})",
                    definitions.project(),
                    crate::model::text::echo(name),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            };
            if !view.online || !view.offline {
                return Err(FeatureError::Invalid(format!(
                    "feature view `{name}` is not both offline and online: nothing to materialize"
                )));
            }
            tables.push(served.tables[name].clone());
        }
        let to = request.to.unwrap_or_else(crate::registry::now_micros);
        if !request.incremental && request.from.is_none() {
            return Err(FeatureError::Invalid(
                "a materialization needs a start time (or use the incremental one)".into(),
            ));
        }
        if let Some(from) = request.from.filter(|from| *from >= to) {
            return Err(FeatureError::Invalid(format!(
                "the window is empty: the end ({}) must be after the start ({})",
                crate::model::format_timestamp(to),
                crate::model::format_timestamp(from)
            )));
        }
        let mut done = Vec::with_capacity(tables.len());
        for table in &tables {
            let from = if request.incremental {
                self.offline.materialized_until(&table.name).await?
            } else {
                request.from
            }
            .unwrap_or(EARLIEST);
            done.push(self.materialize_table(table, from, to, events).await?);
        }
        Ok(done)
    }

    /// Rebuilds the online values of `views` (every online view when empty) from the
    /// offline store: everything up to now, within each view's ttl. With `fresh`, their
    /// online values are deleted first (otherwise newer-wins keeps what is newer).
    pub async fn rehydrate(
        &self,
        project: Option<String>,
        views: Vec<String>,
        fresh: bool,
        events: &(dyn Fn(MaterializeEvent) + Send + Sync),
    ) -> Result<Vec<MaterializedView>, FeatureError> {
        let request = MaterializeRequest {
            project,
            views,
            from: Some(EARLIEST),
            to: None,
            incremental: false,
        };
        if fresh {
            let served = self.served_definitions(request.project.as_deref()).await?;
            for (name, view) in &served.resolved.feature_views {
                if view.online && (request.views.is_empty() || request.views.contains(name)) {
                    let prefix = online::table_prefix(&served.tables[name]);
                    let deleted = self.online.clear(&prefix).await?;
                    tracing::info!(view = %name, deleted, "cleared online values");
                }
            }
        }
        self.materialize(&request, events).await
    }

    /// Materializes one table over `[from, to)`, narrowed to the ttl before `to`: older rows
    /// would be outside the ttl when served.
    async fn materialize_table(
        &self,
        table: &ViewTable,
        from: i64,
        to: i64,
        events: &(dyn Fn(MaterializeEvent) + Send + Sync),
    ) -> Result<MaterializedView, FeatureError> {
        let started = Instant::now();
        let from = match table.ttl_seconds {
            Some(ttl) => from.max(to.saturating_sub((ttl as i64).saturating_mul(1_000_000))),
            None => from,
        }
        .max(EARLIEST);
        let selection = match Engine::of(table) {
            None => Rows::LatestPerKey { from, to },
            Some(_) => Rows::Events { to, keys: None },
        };
        let estimated_rows = if from < to {
            self.offline.ensure_table(table).await?;
            self.offline.estimate_rows(table, &selection).await?
        } else {
            Some(0)
        };
        events(MaterializeEvent::Started {
            view: table.view.clone(),
            from,
            to,
            estimated_rows,
        });
        let (mut rows, mut written) = (0, 0);
        if from < to {
            let report = |rows| {
                events(MaterializeEvent::Rows {
                    view: table.view.clone(),
                    rows,
                })
            };
            match Engine::of(table) {
                None => {
                    let mut batches = self.offline.stream(table, selection, BATCH_ROWS);
                    while let Some(batch) = batches.recv().await {
                        let batch = batch?;
                        written += online::write_rows(&*self.online, table, &batch).await?;
                        rows += batch.num_rows() as u64;
                        report(rows);
                    }
                }
                Some(engine) => {
                    (rows, written) = self
                        .materialize_states(table, &engine, from, to, &report)
                        .await?;
                }
            }
        }
        self.offline
            .record_materialization(&Materialization {
                project: table.project.clone(),
                view: table.view.clone(),
                table: table.name.clone(),
                from,
                to,
                rows,
            })
            .await?;
        let view = MaterializedView {
            view: table.view.clone(),
            table: table.name.clone(),
            from,
            to,
            rows,
            written,
            aggregated: table.aggregation.is_some(),
            seconds: started.elapsed().as_secs_f64(),
        };
        events(MaterializeEvent::Finished(view.clone()));
        Ok(view)
    }

    /// Rebuilds the online states of an aggregated view's keys whose newest event before
    /// `to` is at or after `from`, replaying every stored event before `to` in key and time
    /// order: the same replay the training set's join does. Returns the events read and the
    /// states written.
    async fn materialize_states(
        &self,
        table: &ViewTable,
        engine: &Engine,
        from: i64,
        to: i64,
        report: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(u64, u64), FeatureError> {
        /// Collects finished keys' states for writing.
        struct Finished<'a> {
            table: &'a ViewTable,
            from: i64,
            states: Vec<(Vec<u8>, State)>,
            error: Option<OnlineError>,
        }
        impl Visitor for Finished<'_> {
            fn start(&mut self, _key: &[u8]) -> bool {
                true
            }
            fn before(&mut self, _state: &State, _event_ts: i64) {}
            fn finish(&mut self, _key: Vec<u8>, state: State, rows: &RecordBatch, row: usize) {
                if state.newest().is_none_or(|(newest, _)| newest < self.from) {
                    return;
                }
                match online::key_of(self.table, rows, row) {
                    Ok(key) => self.states.push((key, state)),
                    Err(error) => {
                        self.error.get_or_insert(error);
                    }
                }
            }
        }
        let mut finished = Finished {
            table,
            from,
            states: Vec::new(),
            error: None,
        };
        let mut replay = Replay::new(engine, table);
        let (mut rows, mut written) = (0, 0);
        let mut batches = self
            .offline
            .stream(table, Rows::Events { to, keys: None }, BATCH_ROWS);
        while let Some(batch) = batches.recv().await {
            let batch = batch?;
            replay.feed(&batch, &mut finished);
            rows += batch.num_rows() as u64;
            if let Some(error) = finished.error.take() {
                return Err(error.into());
            }
            let states = std::mem::take(&mut finished.states);
            written += online::write_states(&*self.online, table, engine, &states).await?;
            report(rows);
        }
        replay.end(&mut finished);
        if let Some(error) = finished.error.take() {
            return Err(error.into());
        }
        written += online::write_states(&*self.online, table, engine, &finished.states).await?;
        Ok((rows, written))
    }
}
