//! Feature views: entities whose join keys are source columns, a source that is not a
//! request source, a pinned transform fed by source columns, and the view's features —
//! chosen among the transform's outputs or the source's columns, or its aggregations.

use super::super::{
    Definitions, Entity, FeatureView, ResolvedFeatureView, Source, SourceKind, TransformPin, names,
};
use super::collect::{Errors, Scope, fits, known};
use super::features::{self, Available};
use super::{aggregations, ttl};
use crate::model::aggregation::AggregationSpec;
use crate::model::{FieldSpec, TransformVersion};

/// The feature view `name`, or `None` when any of its errors was reported.
pub(super) fn resolve(
    name: &str,
    view: &FeatureView,
    scope: &Scope<'_>,
    errors: &mut Errors<'_>,
) -> Option<ResolvedFeatureView> {
    let path = format!("feature_views.{name}");
    let before = errors.len();
    let entities = listed_entities(&path, view, scope.definitions, errors);
    let join_keys = join_keys(&entities, errors);
    let source = read_source(&path, view, scope.definitions, errors);
    if let Some(source) = source {
        check_key_columns(view, source, &entities, errors);
    }
    let transform = view
        .transform
        .as_deref()
        .and_then(|reference| pin(&path, reference, scope, errors));
    if let (Some((_, version)), Some(source)) = (transform, source) {
        check_inputs(&path, view, source, version, errors);
    }
    let source_columns = source.map(|source| feature_columns(view, scope.definitions, source));
    let available = available(&path, view, transform, source_columns.as_deref(), errors);
    let (features, aggregation) = if view.aggregations.is_empty() {
        (plain_features(&path, view, available, errors), None)
    } else {
        aggregated_features(&path, view, available, source_columns, errors)
    };
    check_shadowing(&path, features.as_deref(), &join_keys, errors);
    let ttl_seconds = view
        .ttl
        .as_deref()
        .and_then(|text| ttl::parse_at(format!("{path}.ttl"), text, errors));
    if !view.online && !view.offline {
        errors.push(
            path.as_str(),
            "`online` and `offline` are both false: the view would never be computed",
        );
    }
    if errors.len() > before {
        return None;
    }
    Some(ResolvedFeatureView {
        entities: view.entities.clone(),
        source: view.source.clone(),
        transform: transform.map(|(reference, version)| TransformPin::new(reference, version)),
        join_keys,
        features: features?,
        ttl_seconds,
        online: view.online,
        offline: view.offline,
        aggregation,
        description: view.description.clone(),
    })
}

/// An entity the view lists, with the path of its list element.
struct Listed<'a> {
    at: String,
    name: &'a str,
    entity: &'a Entity,
}

/// The view's entities that exist, each once.
fn listed_entities<'a>(
    path: &str,
    view: &'a FeatureView,
    definitions: &'a Definitions,
    errors: &mut Errors<'_>,
) -> Vec<Listed<'a>> {
    if view.entities.is_empty() {
        errors.push(format!("{path}.entities"), "list at least one entity");
    }
    let mut listed: Vec<Listed<'a>> = Vec::new();
    for (index, name) in view.entities.iter().enumerate() {
        let at = format!("{path}.entities[{index}]");
        if listed.iter().any(|seen| seen.name == name) {
            errors.push(at, format!("entity `{name}` is listed twice"));
            continue;
        }
        match definitions.entities.get(name) {
            Some(entity) => listed.push(Listed { at, name, entity }),
            None => errors.push(
                at,
                format!(
                    "unknown entity `{name}` ({})",
                    known(definitions.entities.keys())
                ),
            ),
        }
    }
    listed
}

/// One join key per entity, in entity order; two entities may not share one.
fn join_keys(entities: &[Listed<'_>], errors: &mut Errors<'_>) -> Vec<FieldSpec> {
    let mut join_keys: Vec<FieldSpec> = Vec::new();
    for listed in entities {
        let key = listed.entity.key_field();
        if join_keys.iter().any(|seen| seen.name == key.name) {
            errors.push(
                listed.at.as_str(),
                format!(
                    "entity `{}` repeats the join key `{}` of an earlier entity",
                    listed.name, key.name
                ),
            );
        } else {
            join_keys.push(key);
        }
    }
    join_keys
}

/// The view's source, when it exists and is not a request source.
fn read_source<'a>(
    path: &str,
    view: &FeatureView,
    definitions: &'a Definitions,
    errors: &mut Errors<'_>,
) -> Option<&'a Source> {
    let at = format!("{path}.source");
    match definitions.sources.get(&view.source) {
        Some(source) if source.kind == SourceKind::Request => {
            errors.push(
                at,
                format!(
                    "source `{}` is a request source; feature views read parquet, csv, \
                     postgres or push sources",
                    view.source
                ),
            );
            None
        }
        Some(source) => Some(source),
        None => {
            errors.push(
                at,
                format!(
                    "unknown source `{}` ({})",
                    view.source,
                    known(definitions.sources.keys())
                ),
            );
            None
        }
    }
}

/// Each entity's join key is a source column of the same type.
fn check_key_columns(
    view: &FeatureView,
    source: &Source,
    entities: &[Listed<'_>],
    errors: &mut Errors<'_>,
) {
    for listed in entities {
        let key = listed.entity.key_field();
        let entity = listed.name;
        match source.column(&key.name) {
            None => errors.push(
                listed.at.as_str(),
                format!(
                    "join key `{key}` of entity `{entity}` is not a column of source `{}` \
                     (columns: {})",
                    view.source,
                    names(&source.columns())
                ),
            ),
            Some(column) if column != key => errors.push(
                listed.at.as_str(),
                format!(
                    "join key `{key}` of entity `{entity}` does not match source column \
                     `{column}`"
                ),
            ),
            Some(_) => {}
        }
    }
}

/// The version `reference` names, reported at `{path}.transform` when there is none.
fn pin<'a, 'r>(
    path: &str,
    reference: &'r str,
    scope: &Scope<'a>,
    errors: &mut Errors<'_>,
) -> Option<(&'r str, &'a TransformVersion)> {
    match scope.catalog.resolve(reference) {
        Ok(version) => Some((reference, version)),
        Err(message) => {
            errors.push(format!("{path}.transform"), message);
            None
        }
    }
}

/// Every transform input is a source column that fits it.
fn check_inputs(
    path: &str,
    view: &FeatureView,
    source: &Source,
    version: &TransformVersion,
    errors: &mut Errors<'_>,
) {
    let at = format!("{path}.transform");
    for input in &version.inputs {
        match source.column(&input.name) {
            None => errors.push(
                at.as_str(),
                format!(
                    "transform input `{input}` is not a column of source `{}` (columns: {})",
                    view.source,
                    names(&source.columns())
                ),
            ),
            Some(column) if !fits(&column, input) => errors.push(
                at.as_str(),
                format!("transform input `{input}` does not match source column `{column}`"),
            ),
            Some(_) => {}
        }
    }
}

/// Source columns that are neither join keys nor timestamps: the features of a view without
/// a transform, and columns aggregations may read.
fn feature_columns(
    view: &FeatureView,
    definitions: &Definitions,
    source: &Source,
) -> Vec<FieldSpec> {
    let not_features: Vec<&str> = view
        .entities
        .iter()
        .filter_map(|entity| definitions.entities.get(entity))
        .map(|entity| entity.join_key.as_str())
        .chain(source.timestamp_field.as_deref())
        .chain(source.created_timestamp_field.as_deref())
        .collect();
    source
        .columns()
        .into_iter()
        .filter(|column| !not_features.contains(&column.name.as_str()))
        .collect()
}

/// The features the view can have: its transform's outputs, else its source's feature
/// columns; `None` when its transform or source is unknown.
fn available(
    path: &str,
    view: &FeatureView,
    transform: Option<(&str, &TransformVersion)>,
    source_columns: Option<&[FieldSpec]>,
    errors: &mut Errors<'_>,
) -> Option<Available> {
    match (&view.transform, transform, source_columns) {
        (Some(_), Some((_, version)), _) => Some(Available {
            fields: version.outputs.clone(),
            what: format!(
                "an output of transform `{}@{}`",
                version.name, version.version
            ),
        }),
        (None, _, Some(columns)) => {
            if columns.is_empty() && view.aggregations.is_empty() {
                errors.push(
                    path,
                    format!(
                        "no features: every column of source `{}` is a join key or a timestamp",
                        view.source
                    ),
                );
            }
            Some(Available {
                fields: columns.to_vec(),
                what: format!("a feature column of source `{}`", view.source),
            })
        }
        _ => None,
    }
}

/// The features of a view without aggregations, which has no tiles to size either.
fn plain_features(
    path: &str,
    view: &FeatureView,
    available: Option<Available>,
    errors: &mut Errors<'_>,
) -> Option<Vec<FieldSpec>> {
    for (key, given) in [
        ("granularity", &view.granularity),
        ("allowed_lateness", &view.allowed_lateness),
    ] {
        if given.is_some() {
            errors.push(
                format!("{path}.{key}"),
                "only a view with `aggregations` has a granularity or an allowed lateness",
            );
        }
    }
    features::select(path, view.features.as_deref(), &available?, errors)
}

/// The aggregations of a view that has them, and their outputs: its features.
fn aggregated_features(
    path: &str,
    view: &FeatureView,
    available: Option<Available>,
    source_columns: Option<Vec<FieldSpec>>,
    errors: &mut Errors<'_>,
) -> (Option<Vec<FieldSpec>>, Option<AggregationSpec>) {
    if view.features.is_some() {
        errors.push(
            format!("{path}.features"),
            "the aggregations are the features of a view that has them; leave `features` out",
        );
    }
    // Aggregated columns: the transform's outputs, then the source's other columns.
    let mut columns = available
        .map(|available| available.fields)
        .unwrap_or_default();
    if view.transform.is_some() {
        for column in source_columns.into_iter().flatten() {
            if columns.iter().all(|seen| seen.name != column.name) {
                columns.push(column);
            }
        }
    }
    let aggregation = aggregations::resolve(path, view, &columns, errors);
    (
        aggregation.as_ref().map(AggregationSpec::outputs),
        aggregation,
    )
}

/// No feature has the name of a join key.
fn check_shadowing(
    path: &str,
    features: Option<&[FieldSpec]>,
    join_keys: &[FieldSpec],
    errors: &mut Errors<'_>,
) {
    for feature in features.into_iter().flatten() {
        if join_keys.iter().any(|key| key.name == feature.name) {
            errors.push(
                format!("{path}.transform"),
                format!("feature `{}` has the name of a join key", feature.name),
            );
        }
    }
}
