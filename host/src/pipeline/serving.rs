//! Online requests, as named steps over Arrow: [`Lockstep::online_plan`] (cached with the
//! served definitions, which serve while the registry is down) → [`entities`] (the join
//! keys and request fields checked) → [`Lockstep::read`] (one store round trip, one key
//! per distinct entity, fanned back out to rows) → [`Lockstep::apply_ttl`] (each view's ttl
//! against now, and every value's status) → [`Lockstep::evaluate_on_demand`] (on-demand
//! views over all rows by their pinned transforms, on the blocking pool — the same bytes
//! and the same [`evaluate`] the training set uses) → [`assemble`] → [`Lockstep::log`]
//! (responses of a feature service with `logging` sampled into the feature log, a
//! non-blocking offer).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::Schema;
use arrow::row::{RowConverter, SortField};

use super::Lockstep;
use super::feature_log::LoggedResponse;
use super::features::{FeatureError, Selection, Store, plan};
use super::on_demand::{Evaluated, RowCheck, evaluate};
use super::online_answer::{OnlineColumn, OnlineFeatures, Status};
use super::online_plan::{self, EntityFields, Input, OnlinePlan, Shape, Source};
use super::served::ServedDefinitions;
use crate::model::{FieldSpec, arrow_type, within_ttl};
use crate::online::{self, OnlineRead, OnlineRows};

/// An online request: entity rows (join keys and request fields; other columns are not
/// read) and the features to serve for each.
#[derive(Debug, Clone)]
pub struct OnlineRequest<E = RecordBatch> {
    pub entities: E,
    /// A feature service's name…
    pub feature_service: Option<String>,
    /// …or feature references: `view:feature` or `view:*`.
    pub features: Vec<String>,
    /// Name features `view__feature` instead of `feature`.
    pub full_feature_names: bool,
    /// The project (by default the only one, or `default`).
    pub project: Option<String>,
}

/// Entity rows as a caller holds them, made into Arrow once the request's plan says which
/// columns it reads and their types: a record batch as it is, or an edge's own form (a
/// JSON body's columns, converted in `api`).
pub trait EntityRows {
    /// The rows, with (at least) the columns of `fields` in their canonical Arrow types.
    fn rows(&self, fields: &EntityFields) -> Result<RecordBatch, FeatureError>;
}

impl EntityRows for RecordBatch {
    fn rows(&self, _: &EntityFields) -> Result<RecordBatch, FeatureError> {
        Ok(self.clone())
    }
}

impl Default for OnlineRequest {
    fn default() -> Self {
        Self {
            entities: RecordBatch::new_empty(Arc::new(Schema::empty())),
            feature_service: None,
            features: Vec::new(),
            full_feature_names: false,
            project: None,
        }
    }
}

impl<E> OnlineRequest<E> {
    fn shape(&self) -> Shape {
        Shape {
            feature_service: self.feature_service.clone(),
            features: self.features.clone(),
            full_feature_names: self.full_feature_names,
        }
    }
}

/// A request's checked entity columns, in the plan's order.
struct Entities {
    rows: usize,
    keys: Vec<ArrayRef>,
    request_fields: Vec<ArrayRef>,
}

/// One view's stored values, one row per entity row.
struct ViewValues {
    found: Vec<bool>,
    event_ts: Vec<Option<i64>>,
    /// The planned features ([`online_plan::ViewRead::features`]), in order.
    features: Vec<ArrayRef>,
}

impl Lockstep {
    /// Answers an online request: the features of every entity row, from the online store,
    /// with on-demand views evaluated over all rows at once.
    pub async fn get_online_features<E: EntityRows>(
        &self,
        request: &OnlineRequest<E>,
    ) -> Result<OnlineFeatures, FeatureError> {
        let started = Instant::now();
        let answer = self
            .get_online_features_at(request, crate::model::now_micros())
            .await;
        let service = match &request.feature_service {
            None => None,
            Some(name) if self.serves_service(request.project.as_deref(), name).await => {
                Some(name.as_str())
            }
            Some(_) => Some(crate::metrics::UNKNOWN),
        };
        self.metrics
            .online_request(service, answer.is_ok(), started.elapsed().as_secs_f64());
        answer
    }

    /// Whether `service` is a feature service of the applied definitions of `project`:
    /// only those become metric labels, so a caller's input cannot add series.
    async fn serves_service(&self, project: Option<&str>, service: &str) -> bool {
        self.serving_definitions(project)
            .await
            .is_ok_and(|served| served.resolved.feature_services.contains_key(service))
    }

    /// [`Lockstep::get_online_features`] with ttls judged as of `now` (µs): how a logged
    /// request is replayed, and how tests compare with a training set at a past time.
    pub async fn get_online_features_at<E: EntityRows>(
        &self,
        request: &OnlineRequest<E>,
        now: i64,
    ) -> Result<OnlineFeatures, FeatureError> {
        let (served, plan) = self.online_plan(request).await?;
        let entities = entities(&plan, &request.entities.rows(&plan.entities)?)?;
        let stored = self.read(&served, &plan, &entities, now).await?;
        let read = self.apply_ttl(&served, &plan, stored, now)?;
        let evaluated = self.evaluate_on_demand(&plan, &entities, &read).await?;
        let answer = assemble(&plan, &entities, &read, &evaluated);
        self.log(&served, &plan, &entities, &answer, now);
        Ok(answer)
    }

    /// Step 1: the served definitions and the plan of `request`'s shape in them, built once
    /// per shape (loading the on-demand views' transforms) and kept with the definitions.
    async fn online_plan<E>(
        &self,
        request: &OnlineRequest<E>,
    ) -> Result<(Arc<ServedDefinitions>, Arc<OnlinePlan>), FeatureError> {
        let served = self.serving_definitions(request.project.as_deref()).await?;
        let shape = request.shape();
        if let Some(plan) = served.online_plans.get(&shape) {
            return Ok((served, plan));
        }
        let definitions = &served.resolved;
        let selection = Selection::of(definitions, &shape.feature_request(None))?;
        let join = plan(definitions, &selection, Store::Online)?;
        let mut outputs = BTreeMap::new();
        for name in &join.on_demand {
            let digest = definitions.on_demand_views[name].transform.digest;
            if let std::collections::btree_map::Entry::Vacant(entry) = outputs.entry(digest) {
                entry.insert(self.ensure_loaded(&digest).await?.outputs);
            }
        }
        let plan = Arc::new(online_plan::build(
            definitions,
            &served.tables,
            &shape,
            selection,
            join,
            &outputs,
        )?);
        served.online_plans.keep(&shape, &plan);
        Ok((served, plan))
    }

    /// Step 3: every view's stored rows in one round trip, one key per distinct entity of
    /// each view, fanned back out to the entity rows.
    async fn read(
        &self,
        served: &ServedDefinitions,
        plan: &OnlinePlan,
        entities: &Entities,
        now: i64,
    ) -> Result<Vec<(OnlineRows, Option<UInt32Array>)>, FeatureError> {
        let mut distinct = Vec::with_capacity(plan.views.len());
        for read in &plan.views {
            let keys: Vec<ArrayRef> = read
                .keys
                .iter()
                .map(|&key| Arc::clone(&entities.keys[key]))
                .collect();
            distinct.push(distinct_rows(keys)?);
        }
        let reads: Vec<OnlineRead> = plan
            .views
            .iter()
            .zip(&distinct)
            .map(|(read, (keys, _))| OnlineRead {
                table: &served.tables[&read.view],
                engine: served.engines.get(&read.view),
                keys,
            })
            .collect();
        let stored = online::read_rows(&*self.online, &reads, now).await?;
        drop(reads);
        Ok(stored
            .into_iter()
            .zip(distinct)
            .map(|(rows, (_, positions))| (rows, positions))
            .collect())
    }

    /// Step 4: each view's planned features, fanned out to the entity rows, null where the
    /// stored row is older than the view's ttl at `now`; the statuses counted in metrics.
    fn apply_ttl(
        &self,
        served: &ServedDefinitions,
        plan: &OnlinePlan,
        stored: Vec<(OnlineRows, Option<UInt32Array>)>,
        now: i64,
    ) -> Result<Vec<Vec<OnlineColumn>>, FeatureError> {
        let mut views = Vec::with_capacity(plan.views.len());
        for (read, (rows, positions)) in plan.views.iter().zip(stored) {
            let values = fan_out(rows, &read.features, positions.as_ref())?;
            let ttl = served.tables[&read.view].ttl_seconds;
            let fresh: Vec<bool> = values
                .event_ts
                .iter()
                .map(|event| event.is_some_and(|event| within_ttl(event, now, ttl)))
                .collect();
            let stale: BooleanArray = fresh.iter().map(|fresh| Some(!fresh)).collect();
            let event_ts: Vec<i64> = values.event_ts.iter().map(|ts| ts.unwrap_or(0)).collect();
            let mut counts = [0u64; 4];
            let mut columns = Vec::with_capacity(values.features.len());
            for (name, array) in read.names.iter().zip(&values.features) {
                let array = arrow::compute::nullif(array, &stale)
                    .map_err(|e| FeatureError::Internal(e.to_string()))?;
                let statuses: Vec<Status> = (0..array.len())
                    .map(
                        |row| match (values.found[row], fresh[row], array.is_valid(row)) {
                            (false, _, _) => Status::NotFound,
                            (true, false, _) => Status::OutsideMaxAge,
                            (true, true, true) => Status::Present,
                            (true, true, false) => Status::NullValue,
                        },
                    )
                    .collect();
                for status in &statuses {
                    counts[*status as usize] += 1;
                }
                columns.push(OnlineColumn {
                    name: name.clone(),
                    values: array,
                    statuses,
                    event_ts: event_ts.clone(),
                });
            }
            for status in Status::ALL {
                self.metrics
                    .online_values(&read.view, status.as_str(), counts[status as usize]);
            }
            views.push(columns);
        }
        Ok(views)
    }

    /// Step 5: every on-demand view over all rows, on the blocking pool (a slow guest never
    /// holds an async worker), each call re-checked row-wise later when sampled.
    async fn evaluate_on_demand(
        &self,
        plan: &OnlinePlan,
        entities: &Entities,
        read: &[Vec<OnlineColumn>],
    ) -> Result<Vec<Vec<OnlineColumn>>, FeatureError> {
        if plan.on_demand.is_empty() {
            return Ok(Vec::new());
        }
        let rows = entities.rows;
        let mut calls = Vec::with_capacity(plan.on_demand.len());
        for step in &plan.on_demand {
            // Loaded when planned; loaded again if this runtime has dropped it since.
            self.ensure_loaded(&step.call.view.transform.digest).await?;
            let inputs: Vec<ArrayRef> = step
                .inputs
                .iter()
                .map(|input| match *input {
                    Input::Key(key) => Arc::clone(&entities.keys[key]),
                    Input::Request(field) => Arc::clone(&entities.request_fields[field]),
                    Input::View { view, feature } => Arc::clone(&read[view][feature].values),
                })
                .collect();
            let check = if self.sample_row_check() {
                RowCheck::Later
            } else {
                RowCheck::Skip
            };
            calls.push((Arc::clone(&step.call), inputs, check));
        }
        let results = self
            .runtime
            .blocking(move |runtime| {
                Ok(calls
                    .iter()
                    .map(|(call, inputs, check)| {
                        evaluate(
                            runtime,
                            &call.view,
                            &call.outputs,
                            inputs,
                            rows,
                            rows.max(1),
                            *check,
                        )
                    })
                    .collect::<Vec<_>>())
            })
            .await
            .map_err(|error| FeatureError::Transform {
                view: plan.on_demand[0].name.clone(),
                error,
            })?;
        let mut evaluated = Vec::with_capacity(results.len());
        for (step, result) in plan.on_demand.iter().zip(results) {
            let Evaluated {
                features, to_check, ..
            } = result.map_err(|error| FeatureError::Transform {
                view: step.name.clone(),
                error,
            })?;
            if let Some((input, output)) = to_check {
                self.recheck_later(step.call.view.transform.digest, input, output);
            }
            let columns = step
                .call
                .view
                .features
                .iter()
                .zip(features)
                .map(|(feature, array)| OnlineColumn {
                    name: feature.name.clone(),
                    statuses: (0..rows)
                        .map(|row| {
                            if array.is_valid(row) {
                                Status::Present
                            } else {
                                Status::NullValue
                            }
                        })
                        .collect(),
                    values: array,
                    event_ts: vec![0; rows],
                })
                .collect();
            evaluated.push(columns);
        }
        Ok(evaluated)
    }

    /// Step 7: a response of a feature service with `logging`, when sampled, offered to the
    /// feature log: shared arrays and a few small vectors, encoded off the request path.
    fn log(
        &self,
        served: &ServedDefinitions,
        plan: &OnlinePlan,
        entities: &Entities,
        answer: &OnlineFeatures,
        now: i64,
    ) {
        let Some((service, rate)) = &plan.logged else {
            return;
        };
        if !self.logger().sampled(*rate) {
            return;
        }
        self.logger().offer(LoggedResponse {
            project: served.resolved.project().to_owned(),
            service: service.clone(),
            logged_at: crate::model::now_micros(),
            request_ts: now,
            digests: plan.digests.clone(),
            keys: plan
                .entities
                .join_keys
                .iter()
                .zip(&entities.keys)
                .map(|(field, array)| (field.name.clone(), Arc::clone(array)))
                .collect(),
            request_fields: plan
                .entities
                .request_fields
                .iter()
                .zip(&entities.request_fields)
                .map(|(field, array)| (field.name.clone(), Arc::clone(array)))
                .collect(),
            features: plan
                .requested
                .iter()
                .cloned()
                .zip(answer.columns[answer.join_keys..].iter().cloned())
                .collect(),
        });
    }
}

/// Step 2: the entity columns `plan` reads from `batch`, checked: each join key present,
/// of its type, never null; each request field of its type, or all null when left out
/// and nullable.
fn entities(plan: &OnlinePlan, batch: &RecordBatch) -> Result<Entities, FeatureError> {
    let column = |field: &FieldSpec, role: &str| -> Result<Option<ArrayRef>, FeatureError> {
        let Some(array) = batch.column_by_name(&field.name) else {
            return Ok(None);
        };
        let expected = arrow_type(field.value_type);
        if array.data_type() != &expected {
            return Err(FeatureError::Entities(format!(
                "{role} `{}`: expected {}, found {}",
                field.name,
                field.value_type,
                array.data_type()
            )));
        }
        if !field.nullable && array.null_count() > 0 {
            return Err(FeatureError::Entities(format!(
                "{role} `{}`: expected {}, found null",
                field.name, field.value_type
            )));
        }
        Ok(Some(Arc::clone(array)))
    };
    let rows = batch.num_rows();
    let keys = plan
        .entities
        .join_keys
        .iter()
        .map(|key| {
            column(key, "join key")?.ok_or_else(|| {
                FeatureError::Entities(format!("no values for join key `{}`", key.name))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let request_fields = plan
        .entities
        .request_fields
        .iter()
        .map(|field| {
            let loose = FieldSpec {
                nullable: true,
                ..field.clone()
            };
            match column(&loose, "request field")? {
                Some(array) => Ok(array),
                None if field.nullable => Ok(arrow::array::new_null_array(
                    &arrow_type(field.value_type),
                    rows,
                )),
                None => Err(FeatureError::Entities(format!(
                    "no values for request field `{}`",
                    field.name
                ))),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Entities {
        rows,
        keys,
        request_fields,
    })
}

/// The distinct rows of `keys` (one array per join key, all of one length) and, when some
/// repeat, each row's position among them.
fn distinct_rows(
    keys: Vec<ArrayRef>,
) -> Result<(Vec<ArrayRef>, Option<UInt32Array>), FeatureError> {
    let rows = keys.first().map_or(0, |key| key.len());
    if rows <= 1 {
        return Ok((keys, None));
    }
    let internal = |e: arrow::error::ArrowError| FeatureError::Internal(e.to_string());
    let converter = RowConverter::new(
        keys.iter()
            .map(|key| SortField::new(key.data_type().clone()))
            .collect(),
    )
    .map_err(internal)?;
    let converted = converter.convert_columns(&keys).map_err(internal)?;
    let mut seen = HashMap::with_capacity(rows);
    let mut firsts: Vec<u32> = Vec::with_capacity(rows);
    let positions: Vec<u32> = (0..rows)
        .map(|row| {
            *seen.entry(converted.row(row)).or_insert_with(|| {
                firsts.push(row as u32);
                firsts.len() as u32 - 1
            })
        })
        .collect();
    if firsts.len() == rows {
        return Ok((keys, None));
    }
    let firsts = UInt32Array::from(firsts);
    let distinct = keys
        .iter()
        .map(|key| take(key.as_ref(), &firsts, None).map_err(internal))
        .collect::<Result<_, _>>()?;
    Ok((distinct, Some(UInt32Array::from(positions))))
}

/// The `features` (indexes into the view's served features) of stored `rows`, one row per
/// distinct entity, back at every entity row (`positions`; none when every entity was
/// distinct).
fn fan_out(
    rows: OnlineRows,
    features: &[usize],
    positions: Option<&UInt32Array>,
) -> Result<ViewValues, FeatureError> {
    let Some(positions) = positions else {
        return Ok(ViewValues {
            features: features
                .iter()
                .map(|&feature| Arc::clone(&rows.features[feature]))
                .collect(),
            found: rows.found,
            event_ts: rows.event_ts,
        });
    };
    let at = |row: &u32| *row as usize;
    Ok(ViewValues {
        found: positions
            .values()
            .iter()
            .map(|p| rows.found[at(p)])
            .collect(),
        event_ts: positions
            .values()
            .iter()
            .map(|p| rows.event_ts[at(p)])
            .collect(),
        features: features
            .iter()
            .map(|&feature| {
                take(rows.features[feature].as_ref(), positions, None)
                    .map_err(|e| FeatureError::Internal(e.to_string()))
            })
            .collect::<Result<_, _>>()?,
    })
}

/// Step 6: the answer — the join keys, then each asked feature under its name, in order.
fn assemble(
    plan: &OnlinePlan,
    entities: &Entities,
    read: &[Vec<OnlineColumn>],
    evaluated: &[Vec<OnlineColumn>],
) -> OnlineFeatures {
    let rows = entities.rows;
    let mut columns: Vec<OnlineColumn> = plan
        .entities
        .join_keys
        .iter()
        .zip(&entities.keys)
        .map(|(field, array)| OnlineColumn {
            name: field.name.clone(),
            values: Arc::clone(array),
            statuses: vec![Status::Present; rows],
            event_ts: vec![0; rows],
        })
        .collect();
    let join_keys = columns.len();
    for output in &plan.outputs {
        let column = match output.from {
            Source::View { view, feature } => &read[view][feature],
            Source::OnDemand { step, feature } => &evaluated[step][feature],
        };
        columns.push(OnlineColumn {
            name: output.name.clone(),
            ..column.clone()
        });
    }
    OnlineFeatures { columns, join_keys }
}
