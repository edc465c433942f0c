//! Feature requests: which features a list of references or a feature service names, and
//! what serving them needs (views to read, join keys, request fields, on-demand views).
//! Training sets and online requests plan through the same code, so they agree on what a
//! request means.

use serde::{Deserialize, Serialize};

use super::{ProjectError, ReadyError};
use crate::model::definitions::{Provider, Resolved};
use crate::model::text::echo;
use crate::model::{Classify, ErrorKind, FieldSpec, InvalidValue};
use crate::offline::OfflineError;
use crate::online::OnlineError;
use crate::registry::RegistryError;
use crate::runtime::RunError;

/// The features asked for, as training-set and online requests name them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureRequest {
    pub project: Option<String>,
    /// A feature service's name…
    pub feature_service: Option<String>,
    /// …or feature references: `view:feature` or `view:*`.
    pub features: Vec<String>,
}

/// Why a feature request (a training set, an online request, a materialization or a push)
/// failed: one error for every path that serves features, so they fail alike.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// The request asks for something the definitions do not serve that way.
    #[error("{0}")]
    Invalid(String),
    /// A host failure, not the request's: a task that panicked or was cancelled, stored
    /// definitions that no longer resolve, an Arrow kernel failing on arrays the host built.
    #[error("{0}")]
    Internal(String),
    #[error("the entities: {0}")]
    Entities(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Offline(#[from] OfflineError),
    #[error(transparent)]
    Online(#[from] OnlineError),
    #[error(transparent)]
    Ready(#[from] ReadyError),
    #[error("view `{view}`: {error}")]
    Transform { view: String, error: RunError },
    #[error("view `{view}`: {message}")]
    Rows { view: String, message: String },
    #[error("view `{view}`: {invalid}; nothing was written")]
    InvalidValue { view: String, invalid: InvalidValue },
    #[error("writing {path}: {message}")]
    Write { path: String, message: String },
}

impl Classify for FeatureError {
    fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_feature_request",
            Self::Entities(_) => "invalid_entity_rows",
            Self::Registry(error) => error.code(),
            Self::Project(error) => error.code(),
            Self::Offline(error) => error.code(),
            Self::Online(error) => error.code(),
            Self::Ready(error) => error.code(),
            Self::Transform { error, .. } => error.code(),
            Self::Rows { .. } => "invalid_rows",
            Self::InvalidValue { .. } => "invalid_value",
            Self::Write { .. } => "write_failed",
            Self::Internal(_) => "internal",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_)
            | Self::Entities(_)
            | Self::Rows { .. }
            | Self::InvalidValue { .. } => ErrorKind::BadRequest,
            Self::Registry(error) => error.kind(),
            Self::Project(error) => error.kind(),
            Self::Offline(error) => error.kind(),
            Self::Online(error) => error.kind(),
            Self::Ready(error) => error.kind(),
            Self::Transform { error, .. } => error.kind(),
            Self::Write { .. } | Self::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// Which store the features come from: views must be offline or online accordingly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    Offline,
    Online,
}

/// The requested features, in output order.
#[derive(Debug, Clone)]
pub(crate) struct Selection {
    /// `(view, feature)` in output order.
    pub requested: Vec<(String, String)>,
}

impl Selection {
    /// The features `request` names in `definitions`.
    pub(crate) fn of(
        definitions: &Resolved,
        request: &FeatureRequest,
    ) -> Result<Self, FeatureError> {
        let project = definitions.project();
        let requested = match (&request.feature_service, request.features.is_empty()) {
            (Some(service), true) => definitions
                .feature_services
                .get(service)
                .map(|service| service.features.clone())
                .ok_or_else(|| {
                    let known: Vec<&str> = definitions
                        .feature_services
                        .keys()
                        .map(String::as_str)
                        .collect();
                    FeatureError::Invalid(format!(
                        "project `{project}` has no feature service `{}` (known: {})",
                        echo(service),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ))
                })?,
            (None, false) => definitions
                .feature_references(&request.features)
                .map_err(FeatureError::Invalid)?,
            _ => {
                return Err(FeatureError::Invalid(
                    "give either a feature service or a list of features".to_owned(),
                ));
            }
        };
        Ok(Selection { requested })
    }
}

/// What the join and the on-demand evaluation need.
pub(crate) struct JoinPlan {
    /// Every join key of the views joined, once.
    pub keys: Vec<FieldSpec>,
    /// Feature views and the features to join from each (requested ones and on-demand
    /// inputs), in order of first mention.
    pub views: Vec<(String, Vec<String>)>,
    /// On-demand views to evaluate.
    pub on_demand: Vec<String>,
    /// Request fields the on-demand views read.
    pub request_fields: Vec<FieldSpec>,
}

/// What `selection` needs from `definitions` in `store`.
pub(crate) fn plan(
    definitions: &Resolved,
    selection: &Selection,
    store: Store,
) -> Result<JoinPlan, FeatureError> {
    let mut plan = JoinPlan {
        keys: Vec::new(),
        views: Vec::new(),
        on_demand: Vec::new(),
        request_fields: Vec::new(),
    };
    let join = |plan: &mut JoinPlan, view: &str, feature: &str| -> Result<(), FeatureError> {
        let resolved = &definitions.feature_views[view];
        match store {
            Store::Offline if !resolved.offline => {
                return Err(FeatureError::Invalid(format!(
                    "feature view `{view}` has `offline = false`: it has no history to join"
                )));
            }
            Store::Online if !resolved.online => {
                return Err(FeatureError::Invalid(format!(
                    "feature view `{view}` has `online = false`: it is not served online"
                )));
            }
            _ => {}
        }
        for key in &resolved.join_keys {
            if !plan.keys.iter().any(|known| known.name == key.name) {
                plan.keys.push(key.clone());
            }
        }
        match plan.views.iter_mut().find(|(name, _)| name == view) {
            Some((_, features)) if !features.iter().any(|f| f == feature) => {
                features.push(feature.to_owned())
            }
            Some(_) => {}
            None => plan.views.push((view.to_owned(), vec![feature.to_owned()])),
        }
        Ok(())
    };
    for (view, feature) in &selection.requested {
        if definitions.feature_views.contains_key(view) {
            join(&mut plan, view, feature)?;
        } else if let Some(on_demand) = definitions.on_demand_views.get(view) {
            if plan.on_demand.contains(view) {
                continue;
            }
            plan.on_demand.push(view.clone());
            for binding in &on_demand.inputs {
                match &binding.provider {
                    Provider::View(source) => join(&mut plan, source, &binding.input.name)?,
                    Provider::JoinKey => {
                        if !plan
                            .keys
                            .iter()
                            .any(|known| known.name == binding.input.name)
                        {
                            plan.keys.push(FieldSpec {
                                nullable: false,
                                ..binding.input.clone()
                            });
                        }
                    }
                    Provider::Request => {
                        if !plan
                            .request_fields
                            .iter()
                            .any(|f| f.name == binding.input.name)
                        {
                            plan.request_fields.push(binding.input.clone());
                        }
                    }
                }
            }
        }
    }
    Ok(plan)
}
