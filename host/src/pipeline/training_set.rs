//! Training sets: entity rows (join keys, a timestamp, request fields) joined point in
//! time to every requested feature view in the offline store, then the requested
//! on-demand views evaluated over the joined rows by their pinned transforms: the same
//! bytes the online path runs. Every entity row is kept, in order.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow::array::{Array, ArrayRef, RecordBatch, TimestampMicrosecondArray, UInt32Array};
use arrow::datatypes::{Field, Schema};
use serde::{Deserialize, Serialize};

use super::Lockstep;
use super::features::{FeatureError, FeatureRequest, JoinPlan, Store, plan};
use super::on_demand::{RowCheck, evaluate};
use super::served::ServedDefinitions;
use crate::aggregate::{Engine, PointInTime, Replay, key_bytes};
use crate::model::arrow_type;
use crate::model::definitions::Provider;
use crate::model::{Digest, FieldSpec, ValueType, ViewTable};
use crate::offline::{EVENT_TS, OfflineError, PitView, Rows};
use crate::runtime::RunError;

/// Up to this many distinct entities, an aggregated view's join reads only their events
/// (by a key list in the query); beyond, every event, in one pass.
const KEY_FILTER_LIMIT: usize = 5_000;

/// How often a replay's progress is reported.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// The column of entity rows that holds each row's time, unless told otherwise.
pub const DEFAULT_TIMESTAMP_COLUMN: &str = "event_timestamp";

/// What to retrieve.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSetRequest {
    #[serde(default)]
    pub project: Option<String>,
    /// A feature service's name…
    #[serde(default)]
    pub feature_service: Option<String>,
    /// …or feature references: `view:feature` or `view:*`.
    #[serde(default)]
    pub features: Vec<String>,
    /// Name feature columns `view__feature` instead of `feature`.
    #[serde(default)]
    pub full_feature_names: bool,
    /// The entity rows' time column; `event_timestamp` by default.
    #[serde(default)]
    pub timestamp_column: Option<String>,
}

impl TrainingSetRequest {
    /// The features asked for.
    pub fn feature_request(&self) -> FeatureRequest {
        FeatureRequest {
            project: self.project.clone(),
            feature_service: self.feature_service.clone(),
            features: self.features.clone(),
        }
    }
}

/// How a training set is getting on: a step starts (with its unit and, when known, how many
/// units it has), units of the step are done. Steps: the point-in-time join, each
/// aggregated view's events replayed (about as many as the offline store estimates), each
/// on-demand view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrainingSetEvent {
    Step {
        name: String,
        unit: &'static str,
        total: Option<u64>,
    },
    /// Units of the current step done so far.
    Done(u64),
}

/// Features joined and evaluated offline for some entity rows.
pub(super) struct Joined {
    /// By `(view, feature)`: the point-in-time value, or the on-demand output.
    pub values: BTreeMap<(String, String), ArrayRef>,
    /// By feature view, when asked for: the matched row's event time (null when none).
    pub event_ts: BTreeMap<String, ArrayRef>,
}

/// A built training set: the entity columns, then one column per requested feature.
#[derive(Debug, Clone)]
pub struct TrainingSet {
    pub batch: RecordBatch,
    /// `(view, feature)` per feature column, in column order.
    pub features: Vec<(String, String)>,
    pub seconds: f64,
}

impl TrainingSet {
    /// Writes the set as one Parquet file (zstd).
    pub fn write_parquet(&self, path: &Path) -> Result<u64, FeatureError> {
        let failed = |message: String| FeatureError::Write {
            path: path.display().to_string(),
            message,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| failed(e.to_string()))?;
        }
        let file = std::fs::File::create(path).map_err(|e| failed(e.to_string()))?;
        let properties = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
            .build();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, self.batch.schema(), Some(properties))
                .map_err(|e| failed(e.to_string()))?;
        writer
            .write(&self.batch)
            .map_err(|e| failed(e.to_string()))?;
        writer.close().map_err(|e| failed(e.to_string()))?;
        Ok(std::fs::metadata(path)
            .map_err(|e| failed(e.to_string()))?
            .len())
    }
}

impl Lockstep {
    /// The entity columns a request needs (join keys and the timestamp) and may use
    /// (request fields of on-demand views): what to read from an entity file.
    pub async fn training_set_columns(
        &self,
        request: &TrainingSetRequest,
    ) -> Result<(Vec<FieldSpec>, Vec<FieldSpec>), FeatureError> {
        let (served, selection) = self.select(&request.feature_request()).await?;
        let definitions = &served.resolved;
        let plan = plan(definitions, &selection, Store::Offline)?;
        let mut required = vec![FieldSpec {
            name: timestamp_column(request).to_owned(),
            value_type: ValueType::Timestamp,
            nullable: false,
        }];
        required.extend(plan.keys.iter().cloned());
        Ok((required, plan.request_fields))
    }

    /// Builds a training set for `entities`, which hold the join keys of every requested
    /// view, the timestamp column and any request fields the on-demand views need.
    pub async fn training_set(
        &self,
        request: &TrainingSetRequest,
        entities: &RecordBatch,
    ) -> Result<TrainingSet, FeatureError> {
        self.training_set_reporting(request, entities, &|_| {})
            .await
    }

    /// [`Lockstep::training_set`], telling `events` how it gets on.
    pub async fn training_set_reporting(
        &self,
        request: &TrainingSetRequest,
        entities: &RecordBatch,
        events: &(dyn Fn(TrainingSetEvent) + Send + Sync),
    ) -> Result<TrainingSet, FeatureError> {
        let started = Instant::now();
        let (served, selection) = self.select(&request.feature_request()).await?;
        let definitions = &served.resolved;
        let plan = plan(definitions, &selection, Store::Offline)?;
        let time = timestamp_column(request);

        let values = self
            .join_offline(
                &served,
                &plan,
                entities,
                time,
                &BTreeMap::new(),
                false,
                events,
            )
            .await?
            .values;

        // Entity columns as given, then the features in the order asked.
        let mut fields: Vec<Field> = entities
            .schema()
            .fields()
            .iter()
            .map(|field| field.as_ref().clone())
            .collect();
        let mut arrays: Vec<ArrayRef> = entities.columns().to_vec();
        for (view, feature) in &selection.requested {
            let name = if request.full_feature_names {
                format!("{view}__{feature}")
            } else {
                feature.clone()
            };
            if fields.iter().any(|field| field.name() == &name) {
                return Err(FeatureError::Invalid(format!(
                    "column `{name}` would appear twice (an entity column or another view's \
                     feature has that name); ask for full feature names"
                )));
            }
            let column = values[&(view.clone(), feature.clone())].clone();
            fields.push(Field::new(name, column.data_type().clone(), true));
            arrays.push(column);
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| FeatureError::Entities(e.to_string()))?;
        Ok(TrainingSet {
            batch,
            features: selection.requested,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The point-in-time join of `entities` (the plan's join keys, the time column `time`
    /// and the on-demand views' request fields) to the plan's views, then its on-demand views
    /// evaluated over the joined rows — by their pinned transforms, or by the digests in
    /// `on_demand_digests` (how the audit replays a logged request). With `with_event_ts`,
    /// also each view's matched event times. Each step is told to `events`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn join_offline(
        &self,
        served: &ServedDefinitions,
        plan: &JoinPlan,
        entities: &RecordBatch,
        time: &str,
        on_demand_digests: &BTreeMap<String, Digest>,
        with_event_ts: bool,
        events: &(dyn Fn(TrainingSetEvent) + Send + Sync),
    ) -> Result<Joined, FeatureError> {
        let definitions = &served.resolved;
        // The store sees the keys and the time, renamed to its column.
        let mut store_fields = vec![FieldSpec {
            name: EVENT_TS.to_owned(),
            value_type: ValueType::Timestamp,
            nullable: false,
        }];
        let mut store_arrays = vec![entity_column(entities, time, ValueType::Timestamp)?];
        for key in &plan.keys {
            store_fields.push(key.clone());
            store_arrays.push(entity_column(entities, &key.name, key.value_type)?);
        }
        let store_entities =
            RecordBatch::try_new(crate::model::arrow_schema(&store_fields), store_arrays)
                .map_err(|e| FeatureError::Entities(e.to_string()))?;
        // Plain views join in the offline store; aggregated ones replay their events.
        let (aggregated, plain): (Vec<_>, Vec<_>) = plan
            .views
            .iter()
            .partition(|(view, _)| served.tables[view].aggregation.is_some());
        let pit: Vec<PitView> = plain
            .iter()
            .map(|(view, features)| {
                let mut features = features.clone();
                if with_event_ts {
                    features.push(EVENT_TS.to_owned());
                }
                PitView {
                    table: served.tables[view].clone(),
                    features,
                }
            })
            .collect();
        // A view nothing was written to yet joins as nulls, not as a missing table.
        for view in &pit {
            self.ensure_offline_table(&view.table).await?;
        }
        let rows = entities.num_rows() as u64;
        if !pit.is_empty() {
            events(TrainingSetEvent::Step {
                name: format!("point-in-time join to {} view(s)", pit.len()),
                unit: "rows",
                total: Some(rows),
            });
        }
        let joined = self.offline.point_in_time(&store_entities, &pit).await?;
        events(TrainingSetEvent::Done(rows));
        let mut values: BTreeMap<(String, String), ArrayRef> = BTreeMap::new();
        let mut event_ts: BTreeMap<String, ArrayRef> = BTreeMap::new();
        for ((view, features), batch) in plain.iter().zip(&joined) {
            for (feature, column) in features.iter().zip(batch.columns()) {
                values.insert((view.clone(), feature.clone()), column.clone());
            }
            if with_event_ts {
                event_ts.insert(view.clone(), batch.column(features.len()).clone());
            }
        }
        for (view, features) in aggregated {
            let table = &served.tables[view];
            let engine = served.engines[view].clone();
            let (columns, newest) = self
                .join_aggregates(table, engine, &store_entities, events)
                .await?;
            if with_event_ts {
                event_ts.insert(view.clone(), newest);
            }
            let outputs = table.served_features();
            for feature in features {
                let index = outputs
                    .iter()
                    .position(|output| output.name == *feature)
                    .expect("planned features exist");
                values.insert((view.clone(), feature.clone()), columns[index].clone());
            }
        }

        for name in &plan.on_demand {
            let mut view = definitions.on_demand_views[name].clone();
            if let Some(digest) = on_demand_digests.get(name) {
                view.transform.digest = *digest;
            }
            let signature = self.ensure_loaded(&view.transform.digest).await?;
            let outputs = signature.outputs.clone();
            let inputs = view
                .inputs
                .iter()
                .map(|binding| match &binding.provider {
                    Provider::Request | Provider::JoinKey => {
                        entity_column(entities, &binding.input.name, binding.input.value_type)
                    }
                    Provider::View(source) => {
                        Ok(values[&(source.clone(), binding.input.name.clone())].clone())
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            events(TrainingSetEvent::Step {
                name: format!("on-demand view {name}"),
                unit: "rows",
                total: Some(rows),
            });
            let runtime = Arc::clone(&self.runtime);
            let owned_view = view.clone();
            let rows = entities.num_rows();
            let batch_rows = self.backfill.batch_rows;
            let evaluated = tokio::task::spawn_blocking(move || {
                evaluate(
                    &runtime,
                    &owned_view,
                    &outputs,
                    &inputs,
                    rows,
                    batch_rows,
                    RowCheck::Inline,
                )
            })
            .await
            .map_err(|e| FeatureError::Transform {
                view: name.clone(),
                error: RunError::Internal(e.to_string()),
            })?;
            if let Err(error @ RunError::NotRowWise { .. }) = &evaluated {
                self.mark_unsafe(&view.transform.digest, &error.to_string())
                    .await;
            }
            let evaluated = evaluated.map_err(|error| FeatureError::Transform {
                view: name.clone(),
                error,
            })?;
            if evaluated.missing_inputs + evaluated.rejected > 0 {
                tracing::info!(
                    view = %name,
                    missing_inputs = evaluated.missing_inputs,
                    rejected = evaluated.rejected,
                    "on-demand features are null where inputs were missing or rows rejected"
                );
            }
            for (feature, column) in view.features.iter().zip(evaluated.features) {
                values.insert((name.clone(), feature.name.clone()), column);
            }
            events(TrainingSetEvent::Done(rows as u64));
        }
        Ok(Joined { values, event_ts })
    }
}

impl Lockstep {
    /// The aggregates of `table` (an aggregated view's) for each entity row (its join keys
    /// and [`EVENT_TS`]) as of its time: the view's stored events before the latest entity
    /// time, streamed in key and time order and replayed on a blocking thread, one key's
    /// state at a time. One column per aggregate, in order, and the event time of each
    /// row's newest event (null where the row has no aggregates).
    async fn join_aggregates(
        &self,
        table: &ViewTable,
        engine: Engine,
        entities: &RecordBatch,
        events: &(dyn Fn(TrainingSetEvent) + Send + Sync),
    ) -> Result<(Vec<ArrayRef>, ArrayRef), FeatureError> {
        self.ensure_offline_table(table).await?;
        let column = |name: &str| {
            entities
                .column_by_name(name)
                .expect("the store's entity rows carry keys and time")
                .clone()
        };
        let key_columns: Vec<ArrayRef> = table.join_keys.iter().map(|k| column(&k.name)).collect();
        let key_columns: Vec<&dyn Array> = key_columns.iter().map(AsRef::as_ref).collect();
        let types: Vec<ValueType> = table.join_keys.iter().map(|k| k.value_type).collect();
        let keys: Vec<Vec<u8>> = (0..entities.num_rows())
            .map(|row| key_bytes(&key_columns, &types, row))
            .collect();
        // Few entities (an audit, a small request): read only their events.
        let mut first_rows: HashMap<&[u8], u32> = HashMap::new();
        for (row, key) in keys.iter().enumerate() {
            first_rows.entry(key.as_slice()).or_insert(row as u32);
            if first_rows.len() > KEY_FILTER_LIMIT {
                break;
            }
        }
        let filterable = types
            .iter()
            .all(|t| matches!(t, ValueType::Int64 | ValueType::Utf8));
        let wanted = if filterable && first_rows.len() <= KEY_FILTER_LIMIT {
            let mut rows: Vec<u32> = first_rows.into_values().collect();
            rows.sort_unstable();
            let rows = UInt32Array::from(rows);
            let columns = key_columns
                .iter()
                .map(|column| arrow::compute::take(*column, &rows, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| FeatureError::Entities(e.to_string()))?;
            let fields: Vec<FieldSpec> = table.join_keys.clone();
            Some(
                RecordBatch::try_new(crate::model::arrow_schema(&fields), columns)
                    .map_err(|e| FeatureError::Entities(e.to_string()))?,
            )
        } else {
            None
        };
        let times: Vec<i64> = column(EVENT_TS)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .expect("entity times are timestamps")
            .values()
            .to_vec();
        let Some(to) = times.iter().max().map(|latest| latest.saturating_add(1)) else {
            return Ok(PointInTime::new(&engine, table.ttl_seconds, keys, &times).finish());
        };
        self.offline.ensure_table(table).await?;
        let selection = Rows::Events { to, keys: wanted };
        events(TrainingSetEvent::Step {
            name: format!("replaying the events of {}", table.view),
            unit: "events",
            total: self.offline.estimate_rows(table, &selection).await?,
        });
        let mut batches = self
            .offline
            .stream(table, selection, self.backfill.batch_rows);
        let table = table.clone();
        let replayed_events = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&replayed_events);
        let mut replaying = tokio::task::spawn_blocking(move || {
            let mut join = PointInTime::new(&engine, table.ttl_seconds, keys, &times);
            let mut replay = Replay::new(&engine, &table);
            while let Some(batch) = batches.blocking_recv() {
                let batch = batch?;
                replay.feed(&batch, &mut join);
                counter.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            }
            replay.end(&mut join);
            Ok::<_, OfflineError>(join.finish())
        });
        // The replay runs on a blocking thread; its count is reported from here.
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        let replayed = loop {
            tokio::select! {
                replayed = &mut replaying => break replayed,
                _ = tick.tick() => events(TrainingSetEvent::Done(replayed_events.load(Ordering::Relaxed))),
            }
        }
        .map_err(|e| FeatureError::Internal(format!("the aggregation join failed: {e}")))?;
        events(TrainingSetEvent::Done(
            replayed_events.load(Ordering::Relaxed),
        ));
        Ok(replayed?)
    }
}

fn timestamp_column(request: &TrainingSetRequest) -> &str {
    request
        .timestamp_column
        .as_deref()
        .unwrap_or(DEFAULT_TIMESTAMP_COLUMN)
}

/// Column `name` of the entity rows, which must have the canonical type of `value_type`.
fn entity_column(
    entities: &RecordBatch,
    name: &str,
    value_type: ValueType,
) -> Result<ArrayRef, FeatureError> {
    let column = entities.column_by_name(name).ok_or_else(|| {
        let known: Vec<String> = entities
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        FeatureError::Entities(format!(
            "no column `{name}` (columns: {})",
            known.join(", ")
        ))
    })?;
    let expected = arrow_type(value_type);
    if column.data_type() != &expected {
        return Err(FeatureError::Entities(format!(
            "column `{name}` is {}, expected {value_type}",
            column.data_type()
        )));
    }
    Ok(column.clone())
}
