//! Push: fresh source rows sent over HTTP (or from the CLI) → every view of that source
//! computes its rows with its pinned transform (the backfill's [`ViewRows`]) → the online
//! store (newer-wins; an aggregated view inserts the events into its keys' aggregation
//! states, refusing those later than its allowed lateness) and the offline store (upsert),
//! in one call. Also `write-to-online-store`: already-computed feature rows of a view
//! without a transform or aggregations.

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, TimestampMicrosecondArray};
use arrow::compute::filter_record_batch;
use serde::{Deserialize, Serialize};

use super::Lockstep;
use super::features::FeatureError;
use super::view_rows::ViewRows;
use crate::aggregate::Engine;
use crate::columnar::{arrow_schema, from_json};
use crate::model::definitions::{Source, SourceKind};
use crate::model::{FieldSpec, ViewTable, format_timestamp};
use crate::offline::prepare_rows;
use crate::online;

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

/// Rows for a source, column by column: `{"user_id": [1], "event_timestamp": ["…"], …}`.
pub type Columns = serde_json::Map<String, serde_json::Value>;

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
    /// Pushes rows of source `source_name` through every view reading it.
    pub async fn push(
        &self,
        project: Option<&str>,
        source_name: &str,
        columns: &Columns,
        target: PushTarget,
    ) -> Result<Vec<PushedView>, FeatureError> {
        let served = self.served_definitions(project).await?;
        let definitions = &served.resolved;
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
        let mut makers = Vec::with_capacity(views.len());
        for name in &views {
            let view = &definitions.feature_views[*name];
            makers.push(
                self.view_rows(source, view, served.tables[*name].clone())
                    .await?,
            );
        }
        let batch = source_batch(source, &makers, columns)?;
        let mut pushed = Vec::with_capacity(makers.len());
        let mut offline_rows = Vec::with_capacity(makers.len());
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
            let (mut done, rows) = self
                .write_online(name, maker, batch.clone(), online)
                .await?;
            if target.offline() && view.offline {
                self.ensure_offline_table(&maker.table).await?;
                offline_rows.push((&maker.table, rows));
                done.written_offline = true;
            }
            pushed.push(done);
        }
        // Every view's rows in one transaction.
        if !offline_rows.is_empty() {
            self.offline.write_rows(&offline_rows).await?;
        }
        Ok(pushed)
    }

    /// Writes feature rows of a view without a transform straight to the online store:
    /// Feast's `write_to_online_store`. The columns are the view's join keys, its source's
    /// timestamp columns and its features.
    pub async fn write_to_online_store(
        &self,
        project: Option<&str>,
        view_name: &str,
        columns: &Columns,
    ) -> Result<PushedView, FeatureError> {
        let served = self.served_definitions(project).await?;
        let definitions = &served.resolved;
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
        let source = &definitions.sources[&view.source];
        let maker = self
            .view_rows(source, view, served.tables[view_name].clone())
            .await?;
        let batch = source_batch(source, std::slice::from_ref(&maker), columns)?;
        Ok(self
            .write_online(view_name, &maker, batch, OnlineWrite::Rows)
            .await?
            .0)
    }

    /// Computes a view's rows from source rows and writes them to the online store as
    /// `online` says. Returns what it did and the rows for the offline store: without those
    /// an aggregated view refused as too late.
    async fn write_online(
        &self,
        name: &str,
        maker: &ViewRows,
        batch: RecordBatch,
        online: OnlineWrite<'_>,
    ) -> Result<(PushedView, RecordBatch), FeatureError> {
        let (rows, rejected) =
            maker
                .compute(&self.runtime, batch)
                .map_err(|error| FeatureError::Rows {
                    view: name.to_owned(),
                    message: error.to_string(),
                })?;
        let table = &maker.table;
        let (rows, written_online, too_late) = match online {
            OnlineWrite::Events(engine) => {
                // One event per key and time, in key and time order, as the offline store
                // keeps them; the events refused as too late go to neither store.
                let rows = prepare_rows(table, std::slice::from_ref(&rows))?;
                let inserted = online::insert_events(&*self.online, table, engine, &rows).await?;
                let too_late = inserted.too_late.len() as u64;
                let rows = if too_late == 0 {
                    rows
                } else {
                    self.metrics.late_events(name, too_late);
                    let first = inserted.too_late[0];
                    tracing::warn!(
                        view = name,
                        too_late,
                        first_event_ts = %format_timestamp(event_times(table, &rows).value(first)),
                        "events later than the allowed lateness were refused"
                    );
                    let mut keep = vec![true; rows.num_rows()];
                    for row in &inserted.too_late {
                        keep[*row] = false;
                    }
                    filter_record_batch(&rows, &BooleanArray::from(keep))
                        .expect("mask of the batch's length")
                };
                (rows, inserted.inserted, too_late)
            }
            OnlineWrite::Rows => {
                let written = online::write_rows(&*self.online, table, &rows).await?;
                (rows, written, 0)
            }
            OnlineWrite::Skip => (rows, 0, 0),
        };
        let newest = arrow::compute::max(event_times(table, &rows));
        self.metrics.pushed(name, rows.num_rows() as u64, newest);
        let done = PushedView {
            view: name.to_owned(),
            rows: rows.num_rows() as u64,
            rejected,
            written_online,
            written_offline: false,
            too_late,
        };
        Ok((done, rows))
    }

    /// Creates a view's offline table once per process.
    async fn ensure_offline_table(&self, table: &ViewTable) -> Result<(), FeatureError> {
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

/// The columns every maker reads, typed by the source's schema, as one batch. A column
/// that may be null can be left out; other columns of the source are ignored.
fn source_batch(
    source: &Source,
    makers: &[ViewRows],
    columns: &Columns,
) -> Result<RecordBatch, FeatureError> {
    let mut fields: Vec<FieldSpec> = Vec::new();
    for field in makers.iter().flat_map(|maker| &maker.columns) {
        if !fields.iter().any(|known| known.name == field.name) {
            fields.push(field.clone());
        }
    }
    for name in columns.keys() {
        if source.column(name).is_none() {
            let known: Vec<&str> = source.schema.keys().map(String::as_str).collect();
            return Err(FeatureError::Entities(format!(
                "unknown column `{name}` (the source's columns: {})",
                known.join(", ")
            )));
        }
    }
    let rows = super::serving::entity_rows(columns)?;
    let mut arrays: Vec<Option<ArrayRef>> = Vec::with_capacity(fields.len());
    for field in &fields {
        let Some(values) = columns.get(&field.name).and_then(|v| v.as_array()) else {
            if field.nullable {
                arrays.push(None);
                continue;
            }
            return Err(FeatureError::Entities(format!(
                "no values for column `{}`",
                field.name
            )));
        };
        arrays.push(Some(from_json(field, values).map_err(|e| {
            FeatureError::Entities(format!("column `{}`: {e}", field.name))
        })?));
    }
    let arrays = fields
        .iter()
        .zip(arrays)
        .map(|(field, array)| {
            array.unwrap_or_else(|| {
                arrow::array::new_null_array(&crate::columnar::arrow_type(field.value_type), rows)
            })
        })
        .collect();
    RecordBatch::try_new(arrow_schema(&fields), arrays)
        .map_err(|e| FeatureError::Entities(e.to_string()))
}
