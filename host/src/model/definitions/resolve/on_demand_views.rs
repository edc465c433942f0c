//! On-demand views: a request source and feature views whose fields feed a pinned
//! transform, each input provided by exactly one of them with a fitting type, the views'
//! join keys consistent, and the view's features chosen among the transform's outputs.

use std::collections::{BTreeMap, BTreeSet};

use super::super::{
    InputBinding, OnDemandView, Provider, ResolvedFeatureView, ResolvedOnDemandView, Source,
    SourceKind, TransformPin,
};
use super::collect::{Errors, Scope, fits, known};
use super::features::{self, Available};
use crate::model::{FieldSpec, TransformVersion};

/// The on-demand view `name`, or `None` when any of its errors was reported (or a view it
/// reads is broken).
pub(super) fn resolve(
    name: &str,
    view: &OnDemandView,
    scope: &Scope<'_>,
    feature_views: &BTreeMap<String, ResolvedFeatureView>,
    errors: &mut Errors<'_>,
) -> Option<ResolvedOnDemandView> {
    let path = format!("on_demand_views.{name}");
    let before = errors.len();
    if scope.definitions.feature_views.contains_key(name) {
        errors.push(
            path.as_str(),
            format!(
                "`{name}` is also the name of a feature view; feature views and on-demand \
                 views share one namespace"
            ),
        );
    }
    let mut providers = Providers::new(&path, view, errors);
    providers.read_request(&path, view, scope, errors);
    providers.read_views(&path, view, scope, feature_views, errors);
    let join_keys = join_keys(&path, &providers.views, errors);
    let transform = match scope.catalog.resolve(&view.transform) {
        Ok(version) => Some(version),
        Err(message) => {
            errors.push(format!("{path}.transform"), message);
            None
        }
    };
    let inputs = match transform.filter(|_| providers.complete) {
        Some(version) => providers.bind(&path, version, &join_keys, errors),
        None => Vec::new(),
    };
    let features = transform.and_then(|version| {
        let available = Available {
            fields: version.outputs.clone(),
            what: format!(
                "an output of transform `{}@{}`",
                version.name, version.version
            ),
        };
        features::select(&path, view.features.as_deref(), &available, errors)
    });
    if errors.len() > before || !providers.complete {
        return None;
    }
    Some(ResolvedOnDemandView {
        request_source: view.request_source.clone(),
        views: view.views.clone(),
        transform: TransformPin::new(&view.transform, transform?),
        inputs,
        join_keys: join_keys.into_iter().map(|(key, _)| key).collect(),
        features: features?,
        description: view.description.clone(),
    })
}

/// What can feed the view's transform: its request source and the feature views it reads.
struct Providers<'a> {
    request: Option<(&'a str, &'a Source)>,
    views: Vec<(&'a str, &'a ResolvedFeatureView)>,
    /// Whether every provider is known, so that a missing input is worth reporting.
    complete: bool,
}

impl<'a> Providers<'a> {
    /// No providers yet; a view naming none is reported.
    fn new(path: &str, view: &OnDemandView, errors: &mut Errors<'_>) -> Self {
        let complete = view.request_source.is_some() || !view.views.is_empty();
        if !complete {
            errors.push(
                path,
                "an on-demand view needs a `request_source`, `views` or both",
            );
        }
        Self {
            request: None,
            views: Vec::new(),
            complete,
        }
    }

    /// The `request_source`, which must be a source of kind request.
    fn read_request(
        &mut self,
        path: &str,
        view: &'a OnDemandView,
        scope: &Scope<'a>,
        errors: &mut Errors<'_>,
    ) {
        let Some(name) = view.request_source.as_deref() else {
            return;
        };
        let at = format!("{path}.request_source");
        let sources = &scope.definitions.sources;
        match sources.get(name) {
            Some(source) if source.kind == SourceKind::Request => {
                self.request = Some((name, source));
            }
            Some(source) => {
                errors.push(
                    at,
                    format!(
                        "source `{name}` is a {} source; `request_source` must name a source \
                         of kind request",
                        source.kind
                    ),
                );
                self.complete = false;
            }
            None => {
                let request_sources = sources
                    .iter()
                    .filter(|(_, source)| source.kind == SourceKind::Request)
                    .map(|(name, _)| name);
                errors.push(
                    at,
                    format!("unknown source `{name}` ({})", known(request_sources)),
                );
                self.complete = false;
            }
        }
    }

    /// The listed feature views, each once; a broken one (its errors already reported)
    /// leaves the providers incomplete.
    fn read_views(
        &mut self,
        path: &str,
        view: &'a OnDemandView,
        scope: &Scope<'_>,
        feature_views: &'a BTreeMap<String, ResolvedFeatureView>,
        errors: &mut Errors<'_>,
    ) {
        let definitions = scope.definitions;
        let mut seen = BTreeSet::new();
        for (index, name) in view.views.iter().enumerate() {
            let at = format!("{path}.views[{index}]");
            if !seen.insert(name) {
                errors.push(at, format!("view `{name}` is listed twice"));
            } else if let Some(resolved) = feature_views.get(name) {
                self.views.push((name, resolved));
            } else if definitions.feature_views.contains_key(name) {
                self.complete = false;
            } else if definitions.on_demand_views.contains_key(name) {
                errors.push(
                    at,
                    format!(
                        "`{name}` is an on-demand view; on-demand views read feature views only"
                    ),
                );
                self.complete = false;
            } else {
                errors.push(
                    at,
                    format!(
                        "unknown feature view `{name}` ({})",
                        known(definitions.feature_views.keys())
                    ),
                );
                self.complete = false;
            }
        }
    }

    /// Every field that can feed an input, by name, with who provides it: request fields,
    /// join keys, then the views' features.
    fn by_name(
        &self,
        join_keys: &[(FieldSpec, &str)],
    ) -> BTreeMap<String, Vec<(Provider, FieldSpec)>> {
        let mut by_name: BTreeMap<String, Vec<(Provider, FieldSpec)>> = BTreeMap::new();
        let mut add = |provider: Provider, field: &FieldSpec| {
            by_name
                .entry(field.name.clone())
                .or_default()
                .push((provider, field.clone()));
        };
        if let Some((_, source)) = self.request {
            for field in source.columns() {
                add(Provider::Request, &field);
            }
        }
        for (key, _) in join_keys {
            add(Provider::JoinKey, key);
        }
        for (view_name, resolved) in &self.views {
            for feature in &resolved.features {
                add(Provider::View((*view_name).to_owned()), feature);
            }
        }
        by_name
    }

    /// Binds each input of `version` to the one field that provides it.
    fn bind(
        &self,
        path: &str,
        version: &TransformVersion,
        join_keys: &[(FieldSpec, &str)],
        errors: &mut Errors<'_>,
    ) -> Vec<InputBinding> {
        let by_name = self.by_name(join_keys);
        let at = format!("{path}.transform");
        let mut inputs = Vec::new();
        for input in &version.inputs {
            let provided = by_name.get(&input.name).map_or(&[][..], Vec::as_slice);
            match provided {
                [] => errors.push(at.as_str(), self.not_provided(input, &by_name)),
                [(provider, field)] if fits(field, input) => inputs.push(InputBinding {
                    input: input.clone(),
                    provider: provider.clone(),
                }),
                [(provider, field)] => {
                    let what = match provider {
                        Provider::Request => format!("request field `{field}`"),
                        Provider::JoinKey => format!("join key `{field}`"),
                        Provider::View(view_name) => {
                            format!("feature `{field}` of view `{view_name}`")
                        }
                    };
                    errors.push(
                        at.as_str(),
                        format!("transform input `{input}` does not match {what}"),
                    );
                }
                several => {
                    let by: Vec<String> = several
                        .iter()
                        .map(|(provider, _)| provider.to_string())
                        .collect();
                    errors.push(
                        at.as_str(),
                        format!(
                            "transform input `{input}` is ambiguous: provided by {}",
                            by.join(" and ")
                        ),
                    );
                }
            }
        }
        inputs
    }

    /// Why nothing provides `input`: who was asked and what they have.
    fn not_provided(
        &self,
        input: &FieldSpec,
        by_name: &BTreeMap<String, Vec<(Provider, FieldSpec)>>,
    ) -> String {
        let from: Vec<String> = self
            .request
            .map(|(name, _)| format!("request source `{name}`"))
            .into_iter()
            .chain(self.views.iter().map(|(name, _)| format!("view `{name}`")))
            .collect();
        let available: Vec<&str> = by_name.keys().map(String::as_str).collect();
        format!(
            "transform input `{input}` is not provided by {} (available: {})",
            from.join(", "),
            available.join(", ")
        )
    }
}

/// The join keys of the views, each once with the first view having it; a key must have
/// one type in every view.
fn join_keys<'a>(
    path: &str,
    views: &[(&'a str, &'a ResolvedFeatureView)],
    errors: &mut Errors<'_>,
) -> Vec<(FieldSpec, &'a str)> {
    let mut join_keys: Vec<(FieldSpec, &str)> = Vec::new();
    for (view_name, resolved) in views {
        for key in &resolved.join_keys {
            match join_keys.iter().find(|(seen, _)| seen.name == key.name) {
                Some((seen, first)) if seen != key => errors.push(
                    format!("{path}.views"),
                    format!(
                        "join key `{}` differs between views: `{seen}` in `{first}`, `{key}` in \
                         `{view_name}`",
                        key.name
                    ),
                ),
                Some(_) => {}
                None => join_keys.push((key.clone(), view_name)),
            }
        }
    }
    join_keys
}
