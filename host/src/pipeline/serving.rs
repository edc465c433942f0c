//! Online requests: entity keys (and request fields) in, the requested features out, read
//! from the online store in one round trip with the cached definitions (served while the
//! registry is down), with each view's ttl applied against now and
//! the on-demand views evaluated once over all rows by their pinned transforms — the same
//! bytes and the same [`evaluate`] the training set uses. Responses of a feature service
//! with `logging` are sampled into the feature log (a non-blocking offer).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, BooleanArray};
use serde::{Deserialize, Serialize};

use super::Lockstep;
use super::feature_log::LoggedResponse;
use super::features::{FeatureError, FeatureRequest, Selection, Store, plan};
use super::on_demand::{RowCheck, evaluate};
pub(crate) use super::served::ServedDefinitions;
use crate::columnar::from_json;
use crate::model::definitions::Provider;
use crate::model::{FieldSpec, within_ttl};
use crate::online::{self, OnlineRead};

/// A `POST /get-online-features` body, as Feast clients send it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineRequest {
    /// Join keys and request fields, column by column: `{"user_id": [1, 2]}`.
    pub entities: serde_json::Map<String, serde_json::Value>,
    /// A feature service's name…
    #[serde(default)]
    pub feature_service: Option<String>,
    /// …or feature references: `view:feature` or `view:*`.
    #[serde(default)]
    pub features: Vec<String>,
    /// Name features `view__feature` instead of `feature`.
    #[serde(default)]
    pub full_feature_names: bool,
    /// Lockstep's addition: the project (by default the only one, or `default`).
    #[serde(default)]
    pub project: Option<String>,
}

/// How a value was found, as Feast reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Present,
    NotFound,
    NullValue,
    OutsideMaxAge,
}

/// One output column: a join key or a feature.
#[derive(Debug, Clone)]
pub struct OnlineColumn {
    pub name: String,
    pub values: ArrayRef,
    pub statuses: Vec<Status>,
    /// µs since the Unix epoch: the value's event time (0 for join keys and on-demand
    /// features).
    pub event_ts: Vec<i64>,
}

/// The answer: join keys first, then the features in the order asked.
#[derive(Debug, Clone)]
pub struct OnlineFeatures {
    pub columns: Vec<OnlineColumn>,
    /// How many of the columns are join keys.
    pub join_keys: usize,
}

impl Status {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Present => "PRESENT",
            Status::NotFound => "NOT_FOUND",
            Status::NullValue => "NULL_VALUE",
            Status::OutsideMaxAge => "OUTSIDE_MAX_AGE",
        }
    }
}

impl Lockstep {
    /// Answers an online request: the features of every entity row, from the online store,
    /// with on-demand views evaluated over all rows at once.
    pub async fn get_online_features(
        &self,
        request: &OnlineRequest,
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
    pub async fn get_online_features_at(
        &self,
        request: &OnlineRequest,
        now: i64,
    ) -> Result<OnlineFeatures, FeatureError> {
        let served = self.serving_definitions(request.project.as_deref()).await?;
        let definitions = &served.resolved;
        let selection = Selection::of(
            definitions,
            &FeatureRequest {
                project: request.project.clone(),
                feature_service: request.feature_service.clone(),
                features: request.features.clone(),
            },
        )?;
        let plan = plan(definitions, &selection, Store::Online)?;
        let rows = entity_rows(&request.entities)?;

        let mut keys: Vec<(FieldSpec, ArrayRef)> = Vec::with_capacity(plan.keys.len());
        for key in &plan.keys {
            let values = entity_values(&request.entities, &key.name).ok_or_else(|| {
                FeatureError::Entities(format!("no values for join key `{}`", key.name))
            })?;
            let field = FieldSpec {
                nullable: false,
                ..key.clone()
            };
            let array = from_json(&field, values)
                .map_err(|e| FeatureError::Entities(format!("join key `{}`: {e}", key.name)))?;
            keys.push((key.clone(), array));
        }
        let key_array = |name: &str| -> &ArrayRef {
            &keys
                .iter()
                .find(|(field, _)| field.name == name)
                .expect("every view's join keys are in the plan")
                .1
        };

        // Every view's rows in one round trip.
        let key_columns: Vec<Vec<ArrayRef>> = plan
            .views
            .iter()
            .map(|(view, _)| {
                served.tables[view]
                    .join_keys
                    .iter()
                    .map(|key| Arc::clone(key_array(&key.name)))
                    .collect()
            })
            .collect();
        let reads: Vec<OnlineRead> = plan
            .views
            .iter()
            .zip(&key_columns)
            .map(|((view, _), columns)| OnlineRead {
                table: &served.tables[view],
                engine: served.engines.get(view),
                keys: columns,
            })
            .collect();
        let stored = online::read_rows(&*self.online, &reads, now).await?;

        let mut values: BTreeMap<(&str, &str), OnlineColumn> = BTreeMap::new();
        for ((view, features), stored) in plan.views.iter().zip(stored) {
            let table = &served.tables[view];
            // Found and within the ttl, judged against now.
            let fresh: Vec<bool> = stored
                .event_ts
                .iter()
                .map(|event| event.is_some_and(|event| within_ttl(event, now, table.ttl_seconds)))
                .collect();
            let served_features = table.served_features();
            let stale = BooleanArray::from(fresh.iter().map(|fresh| !fresh).collect::<Vec<_>>());
            for feature in features {
                let index = served_features
                    .iter()
                    .position(|f| &f.name == feature)
                    .expect("planned features exist");
                let array = arrow::compute::nullif(&stored.features[index], &stale)
                    .map_err(|e| FeatureError::Internal(e.to_string()))?;
                let statuses: Vec<Status> = (0..rows)
                    .map(
                        |row| match (stored.found[row], fresh[row], array.is_valid(row)) {
                            (false, _, _) => Status::NotFound,
                            (true, false, _) => Status::OutsideMaxAge,
                            (true, true, true) => Status::Present,
                            (true, true, false) => Status::NullValue,
                        },
                    )
                    .collect();
                for status in [
                    Status::Present,
                    Status::NotFound,
                    Status::NullValue,
                    Status::OutsideMaxAge,
                ] {
                    let count = statuses.iter().filter(|s| **s == status).count();
                    self.metrics
                        .online_values(view, status.as_str(), count as u64);
                }
                let event_ts = stored.event_ts.iter().map(|ts| ts.unwrap_or(0)).collect();
                values.insert(
                    (view.as_str(), feature.as_str()),
                    OnlineColumn {
                        name: feature.clone(),
                        values: array,
                        statuses,
                        event_ts,
                    },
                );
            }
        }

        let mut on_demand: BTreeMap<(&str, &str), OnlineColumn> = BTreeMap::new();
        // The request fields as read, for the feature log.
        let mut request_fields: Vec<(String, ArrayRef)> = Vec::new();
        for name in &plan.on_demand {
            let view = &definitions.on_demand_views[name];
            let signature = self.ensure_loaded(&view.transform.digest).await?;
            let outputs = signature.outputs.clone();
            let inputs = view
                .inputs
                .iter()
                .map(|binding| match &binding.provider {
                    Provider::JoinKey => Ok(Arc::clone(key_array(&binding.input.name))),
                    Provider::Request => request_field(&request.entities, &binding.input, rows),
                    Provider::View(source) => Ok(Arc::clone(
                        &values[&(source.as_str(), binding.input.name.as_str())].values,
                    )),
                })
                .collect::<Result<Vec<_>, FeatureError>>()?;
            for (binding, array) in view.inputs.iter().zip(&inputs) {
                if matches!(binding.provider, Provider::Request)
                    && !request_fields
                        .iter()
                        .any(|(known, _)| *known == binding.input.name)
                {
                    request_fields.push((binding.input.name.clone(), Arc::clone(array)));
                }
            }
            let check = if self.sample_row_check() {
                RowCheck::Later
            } else {
                RowCheck::Skip
            };
            let digest = view.transform.digest;
            let evaluated = evaluate(
                &self.runtime,
                view,
                &outputs,
                &inputs,
                rows,
                rows.max(1),
                check,
            )
            .map_err(|error| FeatureError::Transform {
                view: name.clone(),
                error,
            })?;
            if let Some((input, output)) = evaluated.to_check {
                self.recheck_later(digest, input, output);
            }
            for (feature, array) in view.features.iter().zip(evaluated.features) {
                let statuses = (0..rows)
                    .map(|row| {
                        if array.is_valid(row) {
                            Status::Present
                        } else {
                            Status::NullValue
                        }
                    })
                    .collect();
                on_demand.insert(
                    (name.as_str(), feature.name.as_str()),
                    OnlineColumn {
                        name: feature.name.clone(),
                        values: array,
                        statuses,
                        event_ts: vec![0; rows],
                    },
                );
            }
        }

        let mut columns: Vec<OnlineColumn> = keys
            .iter()
            .map(|(field, array)| OnlineColumn {
                name: field.name.clone(),
                values: Arc::clone(array),
                statuses: vec![Status::Present; rows],
                event_ts: vec![0; rows],
            })
            .collect();
        let join_keys = columns.len();
        for (view, feature) in &selection.requested {
            let column = values
                .get(&(view.as_str(), feature.as_str()))
                .or_else(|| on_demand.get(&(view.as_str(), feature.as_str())))
                .expect("every requested feature was read or evaluated");
            let name = if request.full_feature_names {
                format!("{view}__{feature}")
            } else {
                feature.clone()
            };
            if columns.iter().any(|known| known.name == name) {
                return Err(FeatureError::Invalid(format!(
                    "`{name}` would appear twice (a join key or another view's feature has that \
                     name); ask for full feature names"
                )));
            }
            columns.push(OnlineColumn {
                name,
                ..column.clone()
            });
        }
        let answer = OnlineFeatures { columns, join_keys };
        if let Some(service) = request.feature_service.as_deref()
            && let Some(logging) = definitions
                .feature_services
                .get(service)
                .and_then(|service| service.logging)
            && self.logger().sampled(logging.sample_rate.0)
        {
            // Shared arrays and a few small vectors: the encoding happens off the request path.
            let mut digests = BTreeMap::new();
            for (view, _) in &plan.views {
                if let Some(digest) = served.tables[view].transform {
                    digests.insert(view.clone(), digest);
                }
            }
            for name in &plan.on_demand {
                digests.insert(
                    name.clone(),
                    definitions.on_demand_views[name].transform.digest,
                );
            }
            self.logger().offer(LoggedResponse {
                project: definitions.project().to_owned(),
                service: service.to_owned(),
                logged_at: crate::model::now_micros(),
                request_ts: now,
                digests,
                keys: keys
                    .iter()
                    .map(|(field, array)| (field.name.clone(), Arc::clone(array)))
                    .collect(),
                request_fields,
                features: selection
                    .requested
                    .iter()
                    .cloned()
                    .zip(answer.columns[join_keys..].iter().cloned())
                    .collect(),
            });
        }
        Ok(answer)
    }
}

/// The number of rows: the common length of every column sent (entities or pushed rows).
pub(super) fn entity_rows(
    entities: &serde_json::Map<String, serde_json::Value>,
) -> Result<usize, FeatureError> {
    let mut rows = None;
    for (name, values) in entities {
        let length = values
            .as_array()
            .ok_or_else(|| FeatureError::Entities(format!("`{name}` must be a list of values")))?
            .len();
        match rows {
            None => rows = Some((name, length)),
            Some((first, expected)) if expected != length => {
                return Err(FeatureError::Entities(format!(
                    "`{first}` has {expected} values but `{name}` has {length}"
                )));
            }
            Some(_) => {}
        }
    }
    rows.map(|(_, rows)| rows)
        .ok_or_else(|| FeatureError::Entities("no entity columns".into()))
}

/// The values sent for column `name`, if any.
fn entity_values<'a>(
    entities: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a [serde_json::Value]> {
    entities
        .get(name)
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
}

/// A request field of an on-demand view: sent, or all null when it may be null.
fn request_field(
    entities: &serde_json::Map<String, serde_json::Value>,
    field: &FieldSpec,
    rows: usize,
) -> Result<ArrayRef, FeatureError> {
    let nulls;
    let values = match entity_values(entities, &field.name) {
        Some(values) => values,
        None if field.nullable => {
            nulls = vec![serde_json::Value::Null; rows];
            &nulls
        }
        None => {
            return Err(FeatureError::Entities(format!(
                "no values for request field `{}`",
                field.name
            )));
        }
    };
    let loose = FieldSpec {
        nullable: true,
        ..field.clone()
    };
    from_json(&loose, values)
        .map_err(|e| FeatureError::Entities(format!("request field `{}`: {e}", field.name)))
}
