//! An online request's plan: what a request shape (a feature service or a feature list, and
//! the naming) needs from a project's served definitions — the entity columns, each view's
//! reads as indexes into its stored features, each on-demand view's inputs and output
//! fields, the answer's column names, what to log — built once per shape and kept with the
//! served definitions ([`PlanCache`]), so a request only looks it up.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::features::{FeatureError, FeatureRequest, JoinPlan, Selection};
use crate::model::definitions::{Provider, Resolved, ResolvedOnDemandView};
use crate::model::{Digest, FieldSpec, ViewTable};

/// Shapes whose plans are kept per project; beyond, plans are built per request, so callers
/// naming ever new feature lists cannot grow the server.
const CACHED_PLANS: usize = 256;

/// What names a plan: the features asked for and how they are named.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Shape {
    pub feature_service: Option<String>,
    pub features: Vec<String>,
    pub full_feature_names: bool,
}

/// The entity columns an online request reads, in their types: what an edge converts its
/// input to ([`super::EntityRows`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityFields {
    /// Every join key of the views read and the on-demand views' join-key inputs, once:
    /// required, never null.
    pub join_keys: Vec<FieldSpec>,
    /// Request fields the on-demand views read, once, in order of first use; a nullable
    /// one may be left out (all null).
    pub request_fields: Vec<FieldSpec>,
}

/// The plan of one request shape.
#[derive(Debug)]
pub(crate) struct OnlinePlan {
    pub entities: EntityFields,
    pub views: Vec<ViewRead>,
    pub on_demand: Vec<OnDemandStep>,
    /// The answer's feature columns, in the order asked.
    pub outputs: Vec<Output>,
    /// `(view, feature)` per output, as the feature log records them.
    pub requested: Vec<(String, String)>,
    /// The feature service asked for, with its logging sample rate when it logs.
    pub logged: Option<(String, f64)>,
    /// The digest of every view read or evaluated that has a transform, for the log.
    pub digests: BTreeMap<String, Digest>,
}

/// One feature view's read.
#[derive(Debug)]
pub(crate) struct ViewRead {
    pub view: String,
    /// The view's join keys, in its table's order, as indexes into
    /// [`EntityFields::join_keys`].
    pub keys: Vec<usize>,
    /// The features read (asked for, or on-demand inputs), as indexes into the table's
    /// served features…
    pub features: Vec<usize>,
    /// …and their names.
    pub names: Vec<String>,
}

/// One on-demand view's evaluation.
#[derive(Debug)]
pub(crate) struct OnDemandStep {
    pub name: String,
    pub call: Arc<OnDemandCall>,
    /// One per transform input, in the view's order.
    pub inputs: Vec<Input>,
}

/// What evaluating an on-demand view needs, shared with the blocking pool.
#[derive(Debug)]
pub(crate) struct OnDemandCall {
    pub view: ResolvedOnDemandView,
    /// The transform's output fields (its signature's).
    pub outputs: Vec<FieldSpec>,
}

/// Where an on-demand input comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input {
    /// [`EntityFields::join_keys`]`[i]`.
    Key(usize),
    /// [`EntityFields::request_fields`]`[i]`.
    Request(usize),
    /// Feature `feature` (an index into [`ViewRead::features`]) of view `view`.
    View { view: usize, feature: usize },
}

/// One feature column of the answer.
#[derive(Debug)]
pub(crate) struct Output {
    pub name: String,
    pub from: Source,
}

/// Where an answer's column comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    /// Feature `feature` (an index into [`ViewRead::features`]) of view `view`.
    View { view: usize, feature: usize },
    /// Feature `feature` of on-demand step `step`.
    OnDemand { step: usize, feature: usize },
}

impl Shape {
    pub fn feature_request(&self, project: Option<&str>) -> FeatureRequest {
        FeatureRequest {
            project: project.map(str::to_owned),
            feature_service: self.feature_service.clone(),
            features: self.features.clone(),
        }
    }
}

/// Plans by shape, kept with one copy of a project's served definitions (dropped with it).
#[derive(Debug, Default)]
pub(crate) struct PlanCache(Mutex<HashMap<Shape, Arc<OnlinePlan>>>);

impl PlanCache {
    pub fn get(&self, shape: &Shape) -> Option<Arc<OnlinePlan>> {
        self.lock().get(shape).cloned()
    }

    /// Keeps `plan` unless the cache is full.
    pub fn keep(&self, shape: &Shape, plan: &Arc<OnlinePlan>) {
        let mut plans = self.lock();
        if plans.len() < CACHED_PLANS {
            plans.insert(shape.clone(), Arc::clone(plan));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Shape, Arc<OnlinePlan>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The plan of `shape` over `definitions` and their `tables`, from what it selects and
/// needs (`selection`, `join`); `outputs` holds the output fields (the signature's) of the
/// transform of every on-demand view in `join`.
pub(crate) fn build(
    definitions: &Resolved,
    tables: &BTreeMap<String, ViewTable>,
    shape: &Shape,
    selection: Selection,
    join: JoinPlan,
    outputs: &BTreeMap<Digest, Vec<FieldSpec>>,
) -> Result<OnlinePlan, FeatureError> {
    let keys: Vec<FieldSpec> = join
        .keys
        .iter()
        .map(|key| FieldSpec {
            nullable: false,
            ..key.clone()
        })
        .collect();
    let key_index = |name: &str| {
        keys.iter()
            .position(|key| key.name == name)
            .expect("every join key is in the plan")
    };
    let mut views = Vec::with_capacity(join.views.len());
    for (view, features) in &join.views {
        let table = &tables[view];
        let served = table.served_features();
        views.push(ViewRead {
            view: view.clone(),
            keys: table
                .join_keys
                .iter()
                .map(|key| key_index(&key.name))
                .collect(),
            features: features
                .iter()
                .map(|feature| {
                    served
                        .iter()
                        .position(|f| &f.name == feature)
                        .expect("planned features exist")
                })
                .collect(),
            names: features.clone(),
        });
    }
    let view_feature = |view: &str, feature: &str| {
        let (index, (_, features)) = join
            .views
            .iter()
            .enumerate()
            .find(|(_, (name, _))| name == view)
            .expect("every view read is planned");
        let feature = features
            .iter()
            .position(|f| f == feature)
            .expect("every feature read is planned");
        (index, feature)
    };
    let mut on_demand = Vec::with_capacity(join.on_demand.len());
    for name in &join.on_demand {
        let view = &definitions.on_demand_views[name];
        let inputs = view
            .inputs
            .iter()
            .map(|binding| match &binding.provider {
                Provider::JoinKey => Input::Key(key_index(&binding.input.name)),
                Provider::Request => Input::Request(
                    join.request_fields
                        .iter()
                        .position(|f| f.name == binding.input.name)
                        .expect("every request field is planned"),
                ),
                Provider::View(source) => {
                    let (view, feature) = view_feature(source, &binding.input.name);
                    Input::View { view, feature }
                }
            })
            .collect();
        on_demand.push(OnDemandStep {
            name: name.clone(),
            call: Arc::new(OnDemandCall {
                view: view.clone(),
                outputs: outputs[&view.transform.digest].clone(),
            }),
            inputs,
        });
    }
    let mut names: Vec<&str> = keys.iter().map(|key| key.name.as_str()).collect();
    let mut columns = Vec::with_capacity(selection.requested.len());
    for (view, feature) in &selection.requested {
        let from = match on_demand.iter().position(|step| &step.name == view) {
            Some(step) => Source::OnDemand {
                step,
                feature: on_demand[step]
                    .call
                    .view
                    .features
                    .iter()
                    .position(|f| &f.name == feature)
                    .expect("requested on-demand features exist"),
            },
            None => {
                let (view, feature) = view_feature(view, feature);
                Source::View { view, feature }
            }
        };
        let name = if shape.full_feature_names {
            format!("{view}__{feature}")
        } else {
            feature.clone()
        };
        columns.push(Output { name, from });
    }
    for output in &columns {
        if names.contains(&output.name.as_str()) {
            return Err(FeatureError::Invalid(format!(
                "`{}` would appear twice (a join key or another view's feature has that \
                 name); ask for full feature names",
                output.name
            )));
        }
        names.push(&output.name);
    }
    let logged = shape.feature_service.as_ref().and_then(|service| {
        let logging = definitions.feature_services.get(service)?.logging?;
        Some((service.clone(), logging.sample_rate.0))
    });
    let mut digests = BTreeMap::new();
    for read in &views {
        if let Some(digest) = tables[&read.view].transform {
            digests.insert(read.view.clone(), digest);
        }
    }
    for step in &on_demand {
        digests.insert(step.name.clone(), step.call.view.transform.digest);
    }
    Ok(OnlinePlan {
        entities: EntityFields {
            join_keys: keys,
            request_fields: join.request_fields,
        },
        views,
        on_demand,
        outputs: columns,
        requested: selection.requested,
        logged,
        digests,
    })
}
