//! Push: fresh source rows sent over HTTP (or from the CLI) → every view of that source
//! computes its rows with its pinned transform (the backfill's [`ViewRows`]: re-checked
//! row-wise, every value validated) → an aggregated view drops the events its online states
//! would refuse as later than its allowed lateness → the offline store, the system of
//! record, takes every view's rows in one transaction → then the online store (newer-wins
//! rows, or events into the keys' aggregation states). Nothing is written until every view's
//! rows are valid, and the online store is written only after the offline store took the
//! rows, so it never holds what the offline store lacks. Also `write-to-online-store`:
//! already-computed feature rows of a view without a transform or aggregations.

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, TimestampMicrosecondArray};
use arrow::compute::filter_record_batch;
use serde::{Deserialize, Serialize};

use super::Lockstep;
use super::features::FeatureError;
use super::view_rows::{RowsError, ViewRows};
use crate::aggregate::Engine;
use std::sync::Arc;

use crate::model::definitions::{Resolved, ResolvedFeatureView, Source, SourceKind};
use crate::model::{FieldSpec, ViewTable, format_timestamp};
use crate::model::{arrow_schema, arrow_type};
use crate::offline::prepare_rows;
use crate::online;
use crate::runtime::RunError;

/// Which stores a push writes, as Feast names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushTarget {
    Online,
    Offline,
    #[default]
    OnlineAndOffline,
}

impl PushTarget {
    fn online(self) -> bool {
        matches!(self, Self::Online | Self::OnlineAndOffline)
    }

    fn offline(self) -> bool {
        matches!(self, Self::Offline | Self::OnlineAndOffline)
    }
}

/// What a push does to one view's online values.
#[derive(Debug, Clone, Copy)]
enum OnlineWrite<'a> {
    /// Nothing: the push or the view is offline only.
    Skip,
    /// Newer-wins rows.
    Rows,
    /// Events into the view's aggregation states, by its engine.
    Events(&'a Engine),
}

/// One view's part of a push: its checked rows and where they go.
struct ViewPush<'a> {
    name: &'a str,
    table: &'a ViewTable,
    online: OnlineWrite<'a>,
    offline: bool,
    /// The rows to write (for an aggregated view written online: prepared, too-late
    /// events dropped).
    rows: RecordBatch,
    rejected: u64,
    too_late: u64,
}

/// What a push did to one view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushedView {
    pub view: String,
    /// Rows the view computed (rows its transform rejected are not among them).
    pub rows: u64,
    pub rejected: u64,
    /// Rows that changed the online store (an older or equal row never overwrites; for an
    /// aggregated view, events inserted into its states).
    pub written_online: u64,
    pub written_offline: bool,
    /// Events an aggregated view refused as later than its allowed lateness: written to
    /// neither store, counted in `lockstep_late_events_total`.
    #[serde(skip_serializing_if = "is_zero")]
    pub too_late: u64,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

impl Lockstep {
    /// The columns of source `source_name` in their types, when a push of its rows to
    /// `target` can be taken: what an edge converts pushed rows to before [`Lockstep::push`].
    pub async fn push_fields(
        &self,
        project: Option<&str>,
        source_name: &str,
        target: PushTarget,
    ) -> Result<Vec<FieldSpec>, FeatureError> {
        let served = self.served_definitions(project).await?;
        let (source, _) = pushed_source(&served.resolved, source_name, target)?;
        Ok(source.columns())
    }

    /// Pushes `rows` of source `source_name` (its columns, in their canonical Arrow types;
    /// a column that may be null can be left out) through every view reading it.
    pub async fn push(
        &self,
        project: Option<&str>,
        source_name: &str,
        rows: &RecordBatch,
        target: PushTarget,
    ) -> Result<Vec<PushedView>, FeatureError> {
        let served = self.served_definitions(project).await?;
        let definitions = &served.resolved;
        let (source, views) = pushed_source(definitions, source_name, target)?;
        let mut makers = Vec::with_capacity(views.len());
        for name in &views {
            let view = &definitions.feature_views[*name];
            makers.push(
                self.view_rows(source, view, served.tables[*name].clone())
                    .await?,
            );
        }
        let batch = source_batch(source, &makers, rows)?;

        // 1. Every view's rows, checked: nothing is written unless all are valid.
        let mut pushes = Vec::with_capacity(makers.len());
        for (name, maker) in views.into_iter().zip(&makers) {
            let view = &definitions.feature_views[name];
            let online = match (
                target.online() && view.online,
                served.engines.get(name.as_str()),
            ) {
                (false, _) => OnlineWrite::Skip,
                (true, None) => OnlineWrite::Rows,
                (true, Some(engine)) => OnlineWrite::Events(engine),
            };
            let (rows, rejected) = self.compute_rows(name, maker, batch.clone()).await?;
            pushes.push(ViewPush {
                name,
                table: &maker.table,
                online,
                offline: target.offline() && view.offline,
                rows,
                rejected,
                too_late: 0,
            });
        }
        // 2. Events the online states would refuse go to neither store.
        for push in &mut pushes {
            if let OnlineWrite::Events(engine) = push.online {
                let rows = prepare_rows(push.table, std::slice::from_ref(&push.rows))?;
                let late = online::late_events(&*self.online, push.table, engine, &rows).await?;
                push.rows = self.drop_late(push.name, push.table, rows, &late);
                push.too_late = late.len() as u64;
            }
        }
        // 3. The offline store, the system of record: every view's rows in one transaction.
        let mut offline_rows = Vec::new();
        for push in pushes.iter().filter(|push| push.offline) {
            self.ensure_offline_table(push.table).await?;
            offline_rows.push((push.table, push.rows.clone()));
        }
        if !offline_rows.is_empty() {
            self.offline.write_rows(&offline_rows).await?;
        }
        // 4. The online store, a cache of it: a failure here is retryable (503), and the
        // next push, materialize or rehydrate converges.
        let mut pushed = Vec::with_capacity(pushes.len());
        for push in pushes {
            pushed.push(self.write_online(&push).await?);
        }
        Ok(pushed)
    }

    /// A view's stored rows from pushed source rows, computed on the blocking pool (a slow
    /// guest never holds an async worker); a transform caught breaking the row-wise
    /// contract is marked unsafe before the error is returned.
    async fn compute_rows(
        &self,
        name: &str,
        maker: &ViewRows,
        batch: RecordBatch,
    ) -> Result<(RecordBatch, u64), FeatureError> {
        let view = name.to_owned();
        let shared = maker.clone();
        let computed = self
            .runtime
            .blocking(move |runtime| Ok(shared.compute(runtime, batch)))
            .await
            .map_err(|error| FeatureError::Transform {
                view: view.clone(),
                error,
            })?;
        match computed {
            Ok(computed) => Ok(computed),
            Err(RowsError::Run(error)) => {
                if let (RunError::NotRowWise { .. }, Some(digest)) = (&error, maker.digest()) {
                    self.mark_unsafe(digest, &error.to_string()).await;
                }
                Err(FeatureError::Transform { view, error })
            }
            Err(RowsError::Columns(message)) => Err(FeatureError::Rows { view, message }),
            Err(RowsError::Invalid(invalid)) => Err(FeatureError::InvalidValue { view, invalid }),
        }
    }

    /// `rows` without the rows at `late`, which are counted and logged.
    fn drop_late(
        &self,
        name: &str,
        table: &ViewTable,
        rows: RecordBatch,
        late: &[usize],
    ) -> RecordBatch {
        let Some(&first) = late.first() else {
            return rows;
        };
        self.metrics.late_events(name, late.len() as u64);
        tracing::warn!(
            view = name,
            too_late = late.len(),
            first_event_ts = %format_timestamp(event_times(table, &rows).value(first)),
            "events later than the allowed lateness were refused"
        );
        let mut keep = vec![true; rows.num_rows()];
        for &row in late {
            keep[row] = false;
        }
        filter_record_batch(&rows, &BooleanArray::from(keep)).expect("mask of the batch's length")
    }

    /// The columns of the source of view `view_name` in their types, when feature rows
    /// can be written to it: what an edge converts rows to before
    /// [`Lockstep::write_to_online_store`].
    pub async fn write_fields(
        &self,
        project: Option<&str>,
        view_name: &str,
    ) -> Result<Vec<FieldSpec>, FeatureError> {
        let served = self.served_definitions(project).await?;
        let view = written_view(&served.resolved, view_name)?;
        Ok(served.resolved.sources[&view.source].columns())
    }

    /// Writes feature rows of a view without a transform straight to the online store:
    /// Feast's `write_to_online_store`. The columns are the view's join keys, its source's
    /// timestamp columns and its features, in their canonical Arrow types.
    pub async fn write_to_online_store(
        &self,
        project: Option<&str>,
        view_name: &str,
        rows: &RecordBatch,
    ) -> Result<PushedView, FeatureError> {
        let served = self.served_definitions(project).await?;
        let definitions = &served.resolved;
        let view = written_view(definitions, view_name)?;
        let source = &definitions.sources[&view.source];
        let maker = self
            .view_rows(source, view, served.tables[view_name].clone())
            .await?;
        let batch = source_batch(source, std::slice::from_ref(&maker), rows)?;
        let (rows, rejected) = self.compute_rows(view_name, &maker, batch).await?;
        self.write_online(&ViewPush {
            name: view_name,
            table: &maker.table,
            online: OnlineWrite::Rows,
            offline: false,
            rows,
            rejected,
            too_late: 0,
        })
        .await
    }
}

/// The source `source_name` of `definitions` and the views a push of its rows to `target`
/// writes, when it can be pushed.
fn pushed_source<'a>(
    definitions: &'a Resolved,
    source_name: &str,
    target: PushTarget,
) -> Result<(&'a Source, Vec<&'a String>), FeatureError> {
    let source = definitions.sources.get(source_name).ok_or_else(|| {
        let known: Vec<&str> = definitions.sources.keys().map(String::as_str).collect();
        FeatureError::Invalid(format!(
            "project `{}` has no source `{source_name}` (known: {})",
            definitions.project(),
            known.join(", ")
        ))
    })?;
    if source.kind == SourceKind::Request {
        return Err(FeatureError::Invalid(format!(
            "`{source_name}` is a request source: its fields come with online requests"
        )));
    }
    let views: Vec<&String> = definitions
        .feature_views
        .iter()
        .filter(|(_, view)| {
            view.source == source_name
                && ((target.online() && view.online) || (target.offline() && view.offline))
        })
        .map(|(name, _)| name)
        .collect();
    if views.is_empty() {
        return Err(FeatureError::Invalid(format!(
            "no feature view reads source `{source_name}` into the stores pushed to"
        )));
    }
    Ok((source, views))
}

/// The view `view_name` of `definitions`, when feature rows can be written to it directly.
fn written_view<'a>(
    definitions: &'a Resolved,
    view_name: &str,
) -> Result<&'a ResolvedFeatureView, FeatureError> {
    let view = definitions.feature_views.get(view_name).ok_or_else(|| {
        FeatureError::Invalid(format!(
            "project `{}` has no feature view `{view_name}`",
            definitions.project()
        ))
    })?;
    if let Some(pin) = &view.transform {
        return Err(FeatureError::Invalid(format!(
            "feature view `{view_name}` computes its features with transform `{}`: push \
                 its source rows (POST /push) so the same bytes compute them",
            pin.reference
        )));
    }
    if view.aggregation.is_some() {
        return Err(FeatureError::Invalid(format!(
            "feature view `{view_name}` aggregates its events: push its source rows \
                 (POST /push) so its aggregation states take them"
        )));
    }
    if !view.online {
        return Err(FeatureError::Invalid(format!(
            "feature view `{view_name}` has `online = false`"
        )));
    }
    Ok(view)
}

impl Lockstep {
    /// Writes a view's checked rows to the online store as its push says, after the
    /// offline store took them. An aggregated view's events refused now (another push moved
    /// the key's newest event past the lateness since they were checked) are in the offline
    /// store only, counted and logged; `materialize` rebuilds the state from it.
    async fn write_online(&self, push: &ViewPush<'_>) -> Result<PushedView, FeatureError> {
        let (written_online, raced) = match push.online {
            OnlineWrite::Events(engine) => {
                let inserted =
                    online::insert_events(&*self.online, push.table, engine, &push.rows).await?;
                if !inserted.too_late.is_empty() {
                    self.metrics
                        .late_events(push.name, inserted.too_late.len() as u64);
                    tracing::warn!(
                        view = push.name,
                        events = inserted.too_late.len(),
                        "events became too late between the check and the online write: in \
                         the offline store only until the view is materialized"
                    );
                }
                (inserted.inserted, inserted.too_late.len() as u64)
            }
            OnlineWrite::Rows => (
                online::write_rows(&*self.online, push.table, &push.rows).await?,
                0,
            ),
            OnlineWrite::Skip => (0, 0),
        };
        let newest = arrow::compute::max(event_times(push.table, &push.rows));
        self.metrics
            .pushed(push.name, push.rows.num_rows() as u64, newest);
        Ok(PushedView {
            view: push.name.to_owned(),
            rows: push.rows.num_rows() as u64,
            rejected: push.rejected,
            written_online,
            written_offline: push.offline,
            too_late: push.too_late + raced,
        })
    }

    /// Creates a view's offline table once per process.
    pub(super) async fn ensure_offline_table(&self, table: &ViewTable) -> Result<(), FeatureError> {
        if self
            .ensured
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&table.name)
        {
            return Ok(());
        }
        self.offline.ensure_table(table).await?;
        self.ensured
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(table.name.clone());
        Ok(())
    }
}

/// The event times of stored rows.
fn event_times<'a>(table: &ViewTable, rows: &'a RecordBatch) -> &'a TimestampMicrosecondArray {
    rows.column(table.join_keys.len())
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("stored rows' event times are timestamps")
}

/// The columns every maker reads, in the types of the source's schema, from pushed `rows`,
/// as one batch. A column that may be null can be left out; a column the source lacks is
/// refused.
fn source_batch(
    source: &Source,
    makers: &[ViewRows],
    rows: &RecordBatch,
) -> Result<RecordBatch, FeatureError> {
    let mut fields: Vec<FieldSpec> = Vec::new();
    for field in makers.iter().flat_map(|maker| &maker.columns) {
        if !fields.iter().any(|known| known.name == field.name) {
            fields.push(field.clone());
        }
    }
    let schema = rows.schema();
    for name in schema.fields().iter().map(|field| field.name()) {
        if source.column(name).is_none() {
            let known: Vec<&str> = source.schema.keys().map(String::as_str).collect();
            return Err(FeatureError::Entities(format!(
                "unknown column `{name}` (the source's columns: {})",
                known.join(", ")
            )));
        }
    }
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(fields.len());
    for field in &fields {
        let expected = arrow_type(field.value_type);
        match rows.column_by_name(&field.name) {
            Some(array) if array.data_type() == &expected => arrays.push(Arc::clone(array)),
            Some(array) => {
                return Err(FeatureError::Entities(format!(
                    "column `{}`: expected {}, found {}",
                    field.name,
                    field.value_type,
                    array.data_type()
                )));
            }
            None if field.nullable => {
                arrays.push(arrow::array::new_null_array(&expected, rows.num_rows()))
            }
            None => {
                return Err(FeatureError::Entities(format!(
                    "no values for column `{}`",
                    field.name
                )));
            }
        }
    }
    RecordBatch::try_new_with_options(
        arrow_schema(&fields),
        arrays,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.num_rows())),
    )
    .map_err(|e| FeatureError::Entities(e.to_string()))
}
