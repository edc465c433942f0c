//! What resolving definitions computes: each view with its transform pinned and its schema,
//! each service with its references expanded. The registry stores these through
//! [`super::stored`]; their own serde shape is only what `GET /definitions` answers.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::{Entity, FeatureLogging, Source, names};
use crate::model::aggregation::AggregationSpec;
use crate::model::{Digest, FieldSpec, TransformVersion};

/// The transform version a view runs, pinned by digest when the definitions were applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransformPin {
    /// The reference as written: `movie_watch_features@latest`.
    pub reference: String,
    pub name: String,
    pub version: u32,
    pub digest: Digest,
}

impl TransformPin {
    pub fn new(reference: &str, version: &TransformVersion) -> Self {
        Self {
            reference: reference.to_owned(),
            name: version.name.clone(),
            version: version.version,
            digest: version.digest,
        }
    }
}

impl fmt::Display for TransformPin {
    /// `movie_watch_features@1 (sha256:2cf24dba5fb0…)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} (sha256:{}…)",
            self.name,
            self.version,
            self.digest.short()
        )
    }
}

/// A feature view with its transform pinned and its schema computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedFeatureView {
    /// Entity names, as written.
    pub entities: Vec<String>,
    pub source: String,
    pub transform: Option<TransformPin>,
    /// One per entity, in entity order.
    pub join_keys: Vec<FieldSpec>,
    /// The view's features, in order: the transform's outputs or the source's columns,
    /// narrowed by `features` when given.
    pub features: Vec<FieldSpec>,
    pub ttl_seconds: Option<u64>,
    pub online: bool,
    pub offline: bool,
    /// Time-window aggregations; their outputs are then the view's `features`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<AggregationSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Where an on-demand transform input comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// A field of the request source.
    Request,
    /// A join key of the listed views (an entity key of the request's rows).
    JoinKey,
    /// A feature of this feature view.
    View(String),
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provider::Request => f.write_str("the request"),
            Provider::JoinKey => f.write_str("the join keys"),
            Provider::View(view) => write!(f, "view `{view}`"),
        }
    }
}

/// One input of an on-demand view's transform and where its values come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputBinding {
    /// The input as the transform declares it.
    pub input: FieldSpec,
    pub provider: Provider,
}

/// An on-demand view with its transform pinned and its inputs bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedOnDemandView {
    pub request_source: Option<String>,
    /// Feature views whose features are inputs, as written.
    pub views: Vec<String>,
    pub transform: TransformPin,
    /// One per transform input, in the transform's order.
    pub inputs: Vec<InputBinding>,
    /// The join keys of `views`, each once, in order of first appearance.
    pub join_keys: Vec<FieldSpec>,
    /// The transform's outputs, narrowed by `features` when given.
    pub features: Vec<FieldSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A feature service with its references expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedFeatureService {
    /// `(view, feature)` pairs, in the order written, `view:*` expanded in the view's order.
    pub features: Vec<(String, String)>,
    /// Which online responses are logged for the skew audit; none when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<FeatureLogging>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Definitions that passed every check, with everything [`resolve`] computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    pub project: String,
    pub entities: BTreeMap<String, Entity>,
    pub sources: BTreeMap<String, Source>,
    pub feature_views: BTreeMap<String, ResolvedFeatureView>,
    pub on_demand_views: BTreeMap<String, ResolvedOnDemandView>,
    pub feature_services: BTreeMap<String, ResolvedFeatureService>,
}

impl Resolved {
    /// A project with no objects: what a first `apply` is planned against.
    pub fn empty(project: impl Into<String>) -> Resolved {
        Resolved {
            project: project.into(),
            entities: BTreeMap::new(),
            sources: BTreeMap::new(),
            feature_views: BTreeMap::new(),
            on_demand_views: BTreeMap::new(),
            feature_services: BTreeMap::new(),
        }
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    /// The features of view `name`, a feature view or an on-demand view.
    pub fn view_features(&self, name: &str) -> Option<&[FieldSpec]> {
        self.feature_views
            .get(name)
            .map(|view| view.features.as_slice())
            .or_else(|| {
                self.on_demand_views
                    .get(name)
                    .map(|view| view.features.as_slice())
            })
    }
}

impl Resolved {
    /// Expands feature references (`view:feature`, `view:*`) into `(view, feature)` pairs,
    /// in order, each once.
    pub fn feature_references(
        &self,
        references: &[String],
    ) -> Result<Vec<(String, String)>, String> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for reference in references {
            let (view, feature) = reference
                .split_once(':')
                .filter(|(view, feature)| !view.is_empty() && !feature.is_empty())
                .ok_or_else(|| {
                    format!(
                        "`{}` is not a feature reference: expected `view:feature` or `view:*`",
                        crate::model::text::echo(reference)
                    )
                })?;
            let available = self.view_features(view).ok_or_else(|| {
                let known: Vec<&str> = self
                    .feature_views
                    .keys()
                    .chain(self.on_demand_views.keys())
                    .map(String::as_str)
                    .collect();
                format!(
                    "unknown view `{}` (known: {})",
                    crate::model::text::echo(view),
                    known.join(", ")
                )
            })?;
            let selected: Vec<&FieldSpec> = if feature == "*" {
                available.iter().collect()
            } else {
                let field = available
                    .iter()
                    .find(|field| field.name == feature)
                    .ok_or_else(|| {
                        format!(
                            "view `{view}` has no feature `{}` (features: {})",
                            crate::model::text::echo(feature),
                            names(available)
                        )
                    })?;
                vec![field]
            };
            for field in selected {
                let pair = (view.to_owned(), field.name.clone());
                if !pairs.contains(&pair) {
                    pairs.push(pair);
                }
            }
        }
        if pairs.is_empty() {
            return Err("no features requested".to_owned());
        }
        Ok(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{SCORER_OUTPUTS, WATCH_OUTPUTS, fields, resolved_movies};

    #[test]
    fn view_features_finds_both_kinds_of_view() {
        let resolved = resolved_movies();
        assert_eq!(
            resolved.view_features("movie_scorer"),
            Some(&fields(SCORER_OUTPUTS)[..])
        );
        assert_eq!(
            resolved.view_features("user_movie_interaction_features"),
            Some(&fields(WATCH_OUTPUTS)[..])
        );
        assert_eq!(resolved.view_features("movie_request"), None);
    }
}
