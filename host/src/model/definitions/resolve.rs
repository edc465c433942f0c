//! Checking definitions against each other and against the uploaded transforms, and
//! computing what each object means: pinned transforms, join keys, feature schemas, ttls.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{
    Catalog, DefinitionError, Definitions, Entity, FeatureLogging, FeatureService, FeatureView,
    OnDemandView, Source, SourceKind, is_identifier,
};
use crate::model::aggregation::{Aggregate, AggregateFunction, AggregationSpec};
use crate::model::{Digest, FieldSpec, TransformVersion, ValueType};

/// The transform version a view runs, pinned by digest when the definitions were applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<AggregationSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Where an on-demand transform input comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputBinding {
    /// The input as the transform declares it.
    pub input: FieldSpec,
    pub provider: Provider,
}

/// An on-demand view with its transform pinned and its inputs bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A feature service with its references expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolvedFeatureService {
    /// `(view, feature)` pairs, in the order written, `view:*` expanded in the view's order.
    pub features: Vec<(String, String)>,
    /// Which online responses are logged for the skew audit; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<FeatureLogging>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Definitions that passed every check, with everything [`resolve`] computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// Checks `definitions` against each other and `catalog`, collecting every error (without
/// lines: see [`super::locate`]), and pins every transform reference.
pub fn resolve(
    definitions: &Definitions,
    catalog: &Catalog,
) -> Result<Resolved, Vec<DefinitionError>> {
    let mut errors = Errors::default();
    if !is_identifier(&definitions.project) {
        errors.push(
            "project",
            format!(
                "`{}` is not a valid project name: {NAME_RULE}",
                definitions.project
            ),
        );
    }
    check_names("entities", definitions.entities.keys(), &mut errors);
    check_names("sources", definitions.sources.keys(), &mut errors);
    check_names(
        "feature_views",
        definitions.feature_views.keys(),
        &mut errors,
    );
    check_names(
        "on_demand_views",
        definitions.on_demand_views.keys(),
        &mut errors,
    );
    check_names(
        "feature_services",
        definitions.feature_services.keys(),
        &mut errors,
    );
    for (name, entity) in &definitions.entities {
        check_entity(name, entity, &mut errors);
    }
    for (name, source) in &definitions.sources {
        check_source(name, source, &mut errors);
    }
    let mut feature_views = BTreeMap::new();
    for (name, view) in &definitions.feature_views {
        if let Some(view) = resolve_feature_view(name, view, definitions, catalog, &mut errors) {
            feature_views.insert(name.clone(), view);
        }
    }
    let mut on_demand_views = BTreeMap::new();
    for (name, view) in &definitions.on_demand_views {
        let resolved = resolve_on_demand_view(
            name,
            view,
            definitions,
            &feature_views,
            catalog,
            &mut errors,
        );
        if let Some(view) = resolved {
            on_demand_views.insert(name.clone(), view);
        }
    }
    let mut feature_services = BTreeMap::new();
    for (name, service) in &definitions.feature_services {
        let views = Views {
            definitions,
            feature_views: &feature_views,
            on_demand_views: &on_demand_views,
        };
        if let Some(service) = resolve_service(name, service, &views, &mut errors) {
            feature_services.insert(name.clone(), service);
        }
    }
    if !errors.0.is_empty() {
        return Err(errors.0);
    }
    Ok(Resolved {
        project: definitions.project.clone(),
        entities: definitions.entities.clone(),
        sources: definitions.sources.clone(),
        feature_views,
        on_demand_views,
        feature_services,
    })
}

const NAME_RULE: &str = "use letters, digits and `_`, not starting with a digit";

#[derive(Default)]
struct Errors(Vec<DefinitionError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(DefinitionError::new(path, message));
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// `known: a, b`, or `none defined`, for "unknown X" messages.
fn known<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
    if names.is_empty() {
        "none defined".to_owned()
    } else {
        format!("known: {}", names.join(", "))
    }
}

/// The names of `fields`, comma-separated.
fn names(fields: &[FieldSpec]) -> String {
    fields
        .iter()
        .map(|field| field.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether values of `provided` can feed `input`: same name and type, and no nulls into a
/// non-nullable input.
fn fits(provided: &FieldSpec, input: &FieldSpec) -> bool {
    provided.name == input.name
        && provided.value_type == input.value_type
        && (input.nullable || !provided.nullable)
}

fn check_names<'a>(section: &str, names: impl Iterator<Item = &'a String>, errors: &mut Errors) {
    for name in names.filter(|name| !is_identifier(name)) {
        errors.push(
            format!("{section}.{name}"),
            format!("`{name}` is not a valid name: {NAME_RULE}"),
        );
    }
}

fn check_entity(name: &str, entity: &Entity, errors: &mut Errors) {
    let path = format!("entities.{name}");
    if entity.join_key.is_empty() {
        errors.push(format!("{path}.join_key"), "must not be empty");
    }
    if !matches!(entity.value_type, ValueType::Int64 | ValueType::Utf8) {
        errors.push(
            format!("{path}.type"),
            format!("join keys must be int64 or utf8, not {}", entity.value_type),
        );
    }
}

fn check_source(name: &str, source: &Source, errors: &mut Errors) {
    let path = format!("sources.{name}");
    let kind = source.kind;
    if source.schema.is_empty() {
        errors.push(format!("{path}.schema"), "declare at least one column");
    }
    let locations = [
        ("path", &source.path),
        ("table", &source.table),
        ("query", &source.query),
    ];
    for (key, value) in locations {
        if value
            .as_deref()
            .is_some_and(|value| value.trim().is_empty())
        {
            errors.push(format!("{path}.{key}"), "must not be empty");
        }
    }
    match kind {
        SourceKind::Parquet | SourceKind::Csv => {
            if source.path.is_none() {
                errors.push(
                    format!("{path}.path"),
                    format!("a {kind} source needs `path`"),
                );
            }
            for (key, value) in [("table", &source.table), ("query", &source.query)] {
                if value.is_some() {
                    errors.push(
                        format!("{path}.{key}"),
                        format!("`{key}` applies to postgres sources only"),
                    );
                }
            }
        }
        SourceKind::Postgres => {
            match (&source.table, &source.query) {
                (Some(_), Some(_)) => errors.push(
                    path.clone(),
                    "a postgres source takes one of `table` and `query`, not both",
                ),
                (None, None) => {
                    errors.push(path.clone(), "a postgres source needs `table` or `query`")
                }
                _ => {}
            }
            if source.path.is_some() {
                errors.push(
                    format!("{path}.path"),
                    "`path` applies to parquet and csv sources only",
                );
            }
        }
        SourceKind::Push | SourceKind::Request => {
            for (key, value) in locations {
                if value.is_some() {
                    errors.push(
                        format!("{path}.{key}"),
                        format!("a {kind} source has no `{key}`"),
                    );
                }
            }
        }
    }
    let timestamps = [
        ("timestamp_field", &source.timestamp_field, false),
        (
            "created_timestamp_field",
            &source.created_timestamp_field,
            true,
        ),
    ];
    if kind == SourceKind::Request {
        for (key, value, _) in timestamps {
            if value.is_some() {
                errors.push(
                    format!("{path}.{key}"),
                    "a request source has no timestamps: its fields arrive with each request",
                );
            }
        }
        return;
    }
    if source.timestamp_field.is_none() {
        errors.push(
            format!("{path}.timestamp_field"),
            format!("a {kind} source needs `timestamp_field`"),
        );
    }
    for (key, value, nullable_ok) in timestamps {
        let Some(field) = value else { continue };
        match source.schema.get(field) {
            None => errors.push(
                format!("{path}.{key}"),
                format!(
                    "`{field}` is not a column of the schema (columns: {})",
                    names(&source.columns())
                ),
            ),
            Some(column)
                if column.value_type != ValueType::Timestamp
                    || (column.nullable && !nullable_ok) =>
            {
                let expected = if nullable_ok {
                    "timestamp` or `timestamp?"
                } else {
                    "timestamp"
                };
                errors.push(
                    format!("{path}.{key}"),
                    format!("column `{field}` has type `{column}`; expected `{expected}`"),
                );
            }
            Some(_) => {}
        }
    }
}

/// Picks `requested` (all when `None`) among `available`, the features a view can have;
/// `what` says what they are: "an output of transform `x@1`".
fn select_features(
    path: &str,
    requested: Option<&[String]>,
    available: &[FieldSpec],
    what: &str,
    errors: &mut Errors,
) -> Option<Vec<FieldSpec>> {
    let Some(requested) = requested else {
        return Some(available.to_vec());
    };
    if requested.is_empty() {
        errors.push(
            format!("{path}.features"),
            "list at least one feature, or leave `features` out to take them all",
        );
        return None;
    }
    let mut seen = BTreeSet::new();
    let mut selected = Vec::new();
    for (index, feature) in requested.iter().enumerate() {
        let at = format!("{path}.features[{index}]");
        if !seen.insert(feature) {
            errors.push(at, format!("feature `{feature}` is listed twice"));
            continue;
        }
        match available.iter().find(|field| field.name == *feature) {
            Some(field) => selected.push(field.clone()),
            None => errors.push(
                at,
                format!(
                    "unknown feature `{feature}`: not {what} (available: {})",
                    names(available)
                ),
            ),
        }
    }
    (selected.len() == requested.len()).then_some(selected)
}

fn parse_ttl_at(path: &str, ttl: Option<&str>, errors: &mut Errors) -> Option<u64> {
    match parse_ttl(ttl?) {
        Ok(seconds) => Some(seconds),
        Err(message) => {
            errors.push(format!("{path}.ttl"), message);
            None
        }
    }
}

fn resolve_feature_view(
    name: &str,
    view: &FeatureView,
    definitions: &Definitions,
    catalog: &Catalog,
    errors: &mut Errors,
) -> Option<ResolvedFeatureView> {
    let path = format!("feature_views.{name}");
    let before = errors.len();

    if view.entities.is_empty() {
        errors.push(format!("{path}.entities"), "list at least one entity");
    }
    let mut entities: Vec<(String, &str, &Entity)> = Vec::new();
    for (index, entity_name) in view.entities.iter().enumerate() {
        let at = format!("{path}.entities[{index}]");
        if entities.iter().any(|(_, seen, _)| seen == entity_name) {
            errors.push(at, format!("entity `{entity_name}` is listed twice"));
            continue;
        }
        match definitions.entities.get(entity_name) {
            Some(entity) => entities.push((at, entity_name, entity)),
            None => errors.push(
                at,
                format!(
                    "unknown entity `{entity_name}` ({})",
                    known(definitions.entities.keys())
                ),
            ),
        }
    }
    let mut join_keys: Vec<FieldSpec> = Vec::new();
    for (at, entity_name, entity) in &entities {
        let key = entity.key_field();
        if join_keys.iter().any(|seen| seen.name == key.name) {
            errors.push(
                at.clone(),
                format!(
                    "entity `{entity_name}` repeats the join key `{}` of an earlier entity",
                    key.name
                ),
            );
        } else {
            join_keys.push(key);
        }
    }

    let source = match definitions.sources.get(&view.source) {
        Some(source) if source.kind == SourceKind::Request => {
            errors.push(
                format!("{path}.source"),
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
                format!("{path}.source"),
                format!(
                    "unknown source `{}` ({})",
                    view.source,
                    known(definitions.sources.keys())
                ),
            );
            None
        }
    };
    if let Some(source) = source {
        for (at, entity_name, entity) in &entities {
            let key = entity.key_field();
            match source.column(&key.name) {
                None => errors.push(
                    at.clone(),
                    format!(
                        "join key `{key}` of entity `{entity_name}` is not a column of source \
                         `{}` (columns: {})",
                        view.source,
                        names(&source.columns())
                    ),
                ),
                Some(column) if column != key => errors.push(
                    at.clone(),
                    format!(
                        "join key `{key}` of entity `{entity_name}` does not match source \
                         column `{column}`"
                    ),
                ),
                Some(_) => {}
            }
        }
    }

    let transform_path = format!("{path}.transform");
    let transform =
        view.transform
            .as_deref()
            .and_then(|reference| match catalog.resolve(reference) {
                Ok(version) => Some((reference, version)),
                Err(message) => {
                    errors.push(transform_path.clone(), message);
                    None
                }
            });
    if let (Some((_, version)), Some(source)) = (transform, source) {
        for input in &version.inputs {
            match source.column(&input.name) {
                None => errors.push(
                    transform_path.clone(),
                    format!(
                        "transform input `{input}` is not a column of source `{}` (columns: {})",
                        view.source,
                        names(&source.columns())
                    ),
                ),
                Some(column) if !fits(&column, input) => errors.push(
                    transform_path.clone(),
                    format!("transform input `{input}` does not match source column `{column}`"),
                ),
                Some(_) => {}
            }
        }
    }

    // Source columns that are neither join keys nor timestamps: features of a view without a
    // transform, and columns aggregations may read.
    let source_columns = source.map(|source| {
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
            .collect::<Vec<FieldSpec>>()
    });
    let available = match (&view.transform, transform, &source_columns) {
        (Some(_), Some((_, version)), _) => Some((
            version.outputs.clone(),
            format!(
                "an output of transform `{}@{}`",
                version.name, version.version
            ),
        )),
        (None, _, Some(columns)) => {
            if columns.is_empty() && view.aggregations.is_empty() {
                errors.push(
                    path.clone(),
                    format!(
                        "no features: every column of source `{}` is a join key or a timestamp",
                        view.source
                    ),
                );
            }
            Some((
                columns.clone(),
                format!("a feature column of source `{}`", view.source),
            ))
        }
        _ => None,
    };
    let mut aggregation = None;
    let features = if view.aggregations.is_empty() {
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
        available.and_then(|(available, what)| {
            select_features(&path, view.features.as_deref(), &available, &what, errors)
        })
    } else {
        if view.features.is_some() {
            errors.push(
                format!("{path}.features"),
                "the aggregations are the features of a view that has them; leave `features` out",
            );
        }
        // Aggregated columns: the transform's outputs, then the source's other columns.
        let mut columns = available
            .map(|(available, _)| available)
            .unwrap_or_default();
        if view.transform.is_some() {
            for column in source_columns.iter().flatten() {
                if columns.iter().all(|seen| seen.name != column.name) {
                    columns.push(column.clone());
                }
            }
        }
        aggregation = resolve_aggregations(&path, view, &columns, errors);
        aggregation.as_ref().map(AggregationSpec::outputs)
    };
    for feature in features.iter().flatten() {
        if join_keys.iter().any(|key| key.name == feature.name) {
            errors.push(
                transform_path.clone(),
                format!("feature `{}` has the name of a join key", feature.name),
            );
        }
    }
    let ttl_seconds = parse_ttl_at(&path, view.ttl.as_deref(), errors);
    if !view.online && !view.offline {
        errors.push(
            path.clone(),
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

/// The aggregations of `view`, reading `columns`; `None` (with errors) when any is wrong.
fn resolve_aggregations(
    path: &str,
    view: &FeatureView,
    columns: &[FieldSpec],
    errors: &mut Errors,
) -> Option<AggregationSpec> {
    let before = errors.len();
    let duration = |key: &str, given: Option<&str>, default: u64, errors: &mut Errors| match given {
        None => Some(default),
        Some(text) => parse_ttl(text)
            .map_err(|message| errors.push(format!("{path}.{key}"), message))
            .ok(),
    };
    let granularity = duration("granularity", view.granularity.as_deref(), 60, errors);
    let lateness = match view.allowed_lateness.as_deref() {
        Some("0s" | "0m" | "0") => Some(0),
        given => duration("allowed_lateness", given, 300, errors),
    };
    let mut aggregates: Vec<Aggregate> = Vec::new();
    for (index, written) in view.aggregations.iter().enumerate() {
        let at = format!("{path}.aggregations[{index}]");
        if !is_identifier(&written.name) {
            errors.push(
                format!("{at}.name"),
                format!("`{}` is not a name ([A-Za-z_][A-Za-z0-9_]*)", written.name),
            );
        } else if aggregates.iter().any(|seen| seen.name == written.name) {
            errors.push(
                format!("{at}.name"),
                format!("aggregation `{}` is declared twice", written.name),
            );
        }
        let function = written
            .function
            .parse::<AggregateFunction>()
            .map_err(|message| errors.push(format!("{at}.function"), message))
            .ok();
        let window_seconds = if written.window == "lifetime" {
            Some(None)
        } else {
            match parse_ttl(&written.window) {
                Ok(seconds) => match granularity {
                    Some(granularity) if seconds % granularity != 0 => {
                        errors.push(
                            format!("{at}.window"),
                            format!(
                                "window `{}` is not a whole number of granularities ({})",
                                written.window,
                                format_ttl(granularity)
                            ),
                        );
                        None
                    }
                    _ => Some(Some(seconds)),
                },
                Err(message) => {
                    errors.push(format!("{at}.window"), format!("{message}, or `lifetime`"));
                    None
                }
            }
        };
        let column = match &written.column {
            None if function == Some(AggregateFunction::Count) => Some(None),
            None => {
                errors.push(
                    format!("{at}.column"),
                    format!(
                        "`{}` needs a column: one of {}",
                        written.function,
                        names(columns)
                    ),
                );
                None
            }
            Some(name) => match columns.iter().find(|column| column.name == *name) {
                None => {
                    errors.push(
                        format!("{at}.column"),
                        format!(
                            "unknown column `{name}`: not an output of the transform or a column \
                             of the source (columns: {})",
                            names(columns)
                        ),
                    );
                    None
                }
                Some(column) => match function {
                    Some(function) if !function.accepts(column.value_type) => {
                        errors.push(
                            format!("{at}.function"),
                            format!("`{function}` does not take column `{column}`"),
                        );
                        None
                    }
                    _ => Some(Some(column.clone())),
                },
            },
        };
        if let (Some(function), Some(window_seconds), Some(column)) =
            (function, window_seconds, column)
        {
            aggregates.push(Aggregate {
                name: written.name.clone(),
                function,
                column,
                window_seconds,
            });
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(AggregationSpec {
        granularity_seconds: granularity?,
        allowed_lateness_seconds: lateness?,
        aggregates,
    })
}

fn resolve_on_demand_view(
    name: &str,
    view: &OnDemandView,
    definitions: &Definitions,
    feature_views: &BTreeMap<String, ResolvedFeatureView>,
    catalog: &Catalog,
    errors: &mut Errors,
) -> Option<ResolvedOnDemandView> {
    let path = format!("on_demand_views.{name}");
    let before = errors.len();
    // Whether every provider of inputs is known, so that a missing input is worth reporting.
    let mut complete = true;

    if definitions.feature_views.contains_key(name) {
        errors.push(
            path.clone(),
            format!(
                "`{name}` is also the name of a feature view; feature views and on-demand \
                 views share one namespace"
            ),
        );
    }
    if view.request_source.is_none() && view.views.is_empty() {
        errors.push(
            path.clone(),
            "an on-demand view needs a `request_source`, `views` or both",
        );
        complete = false;
    }
    let request = view.request_source.as_deref().and_then(|source_name| {
        let at = format!("{path}.request_source");
        match definitions.sources.get(source_name) {
            Some(source) if source.kind == SourceKind::Request => Some((source_name, source)),
            Some(source) => {
                errors.push(
                    at,
                    format!(
                        "source `{source_name}` is a {} source; `request_source` must name a \
                         source of kind request",
                        source.kind
                    ),
                );
                complete = false;
                None
            }
            None => {
                let request_sources = definitions
                    .sources
                    .iter()
                    .filter(|(_, source)| source.kind == SourceKind::Request)
                    .map(|(name, _)| name);
                errors.push(
                    at,
                    format!(
                        "unknown source `{source_name}` ({})",
                        known(request_sources)
                    ),
                );
                complete = false;
                None
            }
        }
    });

    let mut views: Vec<(&str, &ResolvedFeatureView)> = Vec::new();
    let mut seen = BTreeSet::new();
    for (index, view_name) in view.views.iter().enumerate() {
        let at = format!("{path}.views[{index}]");
        if !seen.insert(view_name) {
            errors.push(at, format!("view `{view_name}` is listed twice"));
        } else if let Some(resolved) = feature_views.get(view_name) {
            views.push((view_name, resolved));
        } else if definitions.feature_views.contains_key(view_name) {
            // Its own errors are reported; its features are unknown.
            complete = false;
        } else if definitions.on_demand_views.contains_key(view_name) {
            errors.push(
                at,
                format!(
                    "`{view_name}` is an on-demand view; on-demand views read feature views only"
                ),
            );
            complete = false;
        } else {
            errors.push(
                at,
                format!(
                    "unknown feature view `{view_name}` ({})",
                    known(definitions.feature_views.keys())
                ),
            );
            complete = false;
        }
    }

    let mut join_keys: Vec<(FieldSpec, &str)> = Vec::new();
    for (view_name, resolved) in &views {
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

    let transform_path = format!("{path}.transform");
    let transform = match catalog.resolve(&view.transform) {
        Ok(version) => Some(version),
        Err(message) => {
            errors.push(transform_path.clone(), message);
            None
        }
    };

    let mut providers: BTreeMap<&str, Vec<(Provider, FieldSpec)>> = BTreeMap::new();
    let request_fields = request
        .map(|(_, source)| source.columns())
        .unwrap_or_default();
    for field in &request_fields {
        providers
            .entry(&field.name)
            .or_default()
            .push((Provider::Request, field.clone()));
    }
    for (key, _) in &join_keys {
        providers
            .entry(&key.name)
            .or_default()
            .push((Provider::JoinKey, key.clone()));
    }
    for (view_name, resolved) in &views {
        for feature in &resolved.features {
            providers
                .entry(&feature.name)
                .or_default()
                .push((Provider::View((*view_name).to_owned()), feature.clone()));
        }
    }
    let mut inputs = Vec::new();
    if let Some(version) = transform.filter(|_| complete) {
        for input in &version.inputs {
            match providers
                .get(input.name.as_str())
                .map_or(&[][..], Vec::as_slice)
            {
                [] => {
                    let from: Vec<String> = request
                        .map(|(source_name, _)| format!("request source `{source_name}`"))
                        .into_iter()
                        .chain(
                            views
                                .iter()
                                .map(|(view_name, _)| format!("view `{view_name}`")),
                        )
                        .collect();
                    let available: Vec<&str> = providers.keys().copied().collect();
                    errors.push(
                        transform_path.clone(),
                        format!(
                            "transform input `{input}` is not provided by {} (available: {})",
                            from.join(", "),
                            available.join(", ")
                        ),
                    );
                }
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
                        transform_path.clone(),
                        format!("transform input `{input}` does not match {what}"),
                    );
                }
                several => {
                    let by: Vec<String> = several
                        .iter()
                        .map(|(provider, _)| provider.to_string())
                        .collect();
                    errors.push(
                        transform_path.clone(),
                        format!(
                            "transform input `{input}` is ambiguous: provided by {}",
                            by.join(" and ")
                        ),
                    );
                }
            }
        }
    }

    let features = transform.and_then(|version| {
        let what = format!(
            "an output of transform `{}@{}`",
            version.name, version.version
        );
        select_features(
            &path,
            view.features.as_deref(),
            &version.outputs,
            &what,
            errors,
        )
    });

    if errors.len() > before || !complete {
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

/// The views a service may refer to: resolved ones, and the definitions to tell a broken
/// view (already reported) from an unknown one.
struct Views<'a> {
    definitions: &'a Definitions,
    feature_views: &'a BTreeMap<String, ResolvedFeatureView>,
    on_demand_views: &'a BTreeMap<String, ResolvedOnDemandView>,
}

fn resolve_service(
    name: &str,
    service: &FeatureService,
    views: &Views<'_>,
    errors: &mut Errors,
) -> Option<ResolvedFeatureService> {
    let path = format!("feature_services.{name}");
    let before = errors.len();
    if service.features.is_empty() {
        errors.push(
            format!("{path}.features"),
            "list at least one feature reference (`view:feature` or `view:*`)",
        );
    }
    let mut features: Vec<(String, String)> = Vec::new();
    for (index, reference) in service.features.iter().enumerate() {
        let at = format!("{path}.features[{index}]");
        let Some((view_name, feature)) = reference.split_once(':').filter(|(view, feature)| {
            !view.is_empty() && !feature.is_empty() && !feature.contains(':')
        }) else {
            errors.push(
                at,
                format!(
                    "`{reference}` is not a feature reference: expected `view:feature` or `view:*`"
                ),
            );
            continue;
        };
        let available: &[FieldSpec] = if let Some(view) = views.feature_views.get(view_name) {
            &view.features
        } else if let Some(view) = views.on_demand_views.get(view_name) {
            &view.features
        } else if views.definitions.feature_views.contains_key(view_name)
            || views.definitions.on_demand_views.contains_key(view_name)
        {
            // Broken: its own errors are reported.
            continue;
        } else {
            let all = views
                .definitions
                .feature_views
                .keys()
                .chain(views.definitions.on_demand_views.keys());
            errors.push(at, format!("unknown view `{view_name}` ({})", known(all)));
            continue;
        };
        let selected: Vec<&FieldSpec> = if feature == "*" {
            available.iter().collect()
        } else if let Some(field) = available.iter().find(|field| field.name == feature) {
            vec![field]
        } else {
            errors.push(
                at,
                format!(
                    "view `{view_name}` has no feature `{feature}` (features: {})",
                    names(available)
                ),
            );
            continue;
        };
        for field in selected {
            if features
                .iter()
                .any(|(view, name)| view == view_name && *name == field.name)
            {
                errors.push(
                    at.clone(),
                    format!(
                        "feature `{view_name}:{}` is included more than once",
                        field.name
                    ),
                );
            } else {
                features.push((view_name.to_owned(), field.name.clone()));
            }
        }
    }
    if let Some(logging) = &service.logging {
        let rate = logging.sample_rate.0;
        // Written so that NaN fails too.
        if !(rate > 0.0 && rate <= 1.0) {
            errors.push(
                format!("{path}.logging.sample_rate"),
                format!(
                    "must be above 0 and at most 1 (the share of responses logged), not {rate}"
                ),
            );
        }
    }
    (errors.len() == before).then(|| ResolvedFeatureService {
        features,
        logging: service.logging,
        description: service.description.clone(),
    })
}

/// Seconds in a ttl such as `90m` or `7d`: a positive whole number followed by one unit,
/// s, m, h, d or w.
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid duration `{text}`: expected a positive whole number followed by s, m, h, d or w, \
             such as `90m` or `7d`"
        )
    };
    let Some(unit) = text.chars().last() else {
        return Err(invalid());
    };
    let digits = &text[..text.len() - unit.len_utf8()];
    let unit_seconds: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return Err(invalid()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let count: u64 = digits
        .parse()
        .map_err(|_| format!("invalid duration `{text}`: too long"))?;
    if count == 0 {
        return Err(format!("invalid duration `{text}`: must be positive"));
    }
    count
        .checked_mul(unit_seconds)
        .ok_or_else(|| format!("invalid duration `{text}`: too long"))
}

/// A ttl in the largest of d, h, m, s that divides it: `7d`, `90m`.
pub fn format_ttl(seconds: u64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds >= size && seconds.is_multiple_of(size) {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{
        SCORER_OUTPUTS, WATCH_OUTPUTS, catalog, fields, movies, resolved_movies, version,
    };
    use super::super::{ColumnType, resolve_text};
    use super::*;

    /// The errors of resolving `definitions` against the example catalog, as displayed.
    fn errors(definitions: &Definitions) -> Vec<String> {
        errors_with(definitions, &catalog())
    }

    fn errors_with(definitions: &Definitions, catalog: &Catalog) -> Vec<String> {
        resolve(definitions, catalog)
            .expect_err("the definitions are invalid")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn column(text: &str) -> ColumnType {
        text.parse().unwrap()
    }

    #[test]
    fn the_movie_example_resolves_with_everything_computed() {
        let resolved = resolved_movies();
        let catalog = catalog();
        assert_eq!(resolved.project(), "movies");

        let interaction = &resolved.feature_views["user_movie_interaction_features"];
        let watch = catalog.resolve("movie_watch_features@1").unwrap();
        assert_eq!(
            interaction.transform,
            Some(TransformPin {
                reference: "movie_watch_features@1".into(),
                name: "movie_watch_features".into(),
                version: 1,
                digest: watch.digest,
            })
        );
        assert_eq!(
            interaction.join_keys,
            fields("user_id int64, movie_id int64")
        );
        assert_eq!(interaction.features, fields(WATCH_OUTPUTS));
        assert_eq!(interaction.ttl_seconds, Some(86_400));

        let profile = &resolved.feature_views["user_profile_features"];
        assert_eq!(profile.transform, None);
        assert_eq!(
            profile.features,
            fields(
                "age int64, avg_rating float64?, total_movies_watched int64, favorite_genre utf8?"
            )
        );
        assert_eq!(profile.ttl_seconds, Some(7 * 86_400));

        // No `features`: the source's columns but the join key and the timestamp.
        let movie = &resolved.feature_views["movie_metadata_features"];
        assert_eq!(
            names(&movie.features),
            "genre_action, genre_comedy, genre_drama, genre_horror, genre_romance, popularity, \
             release_year, runtime, vote_average, vote_count"
        );

        let scorer = &resolved.on_demand_views["movie_scorer"];
        assert_eq!(
            scorer.transform.reference,
            "movie_recommendation_scorer@latest"
        );
        assert_eq!(scorer.transform.version, 1);
        assert_eq!(scorer.join_keys, fields("user_id int64, movie_id int64"));
        assert_eq!(scorer.features, fields(SCORER_OUTPUTS));
        let bindings: Vec<(&str, &Provider)> = scorer
            .inputs
            .iter()
            .map(|binding| (binding.input.name.as_str(), &binding.provider))
            .collect();
        let profile = Provider::View("user_profile_features".into());
        let movie = Provider::View("movie_metadata_features".into());
        assert_eq!(
            bindings,
            [
                ("avg_rating", &profile),
                ("favorite_genre", &profile),
                ("vote_average", &movie),
                ("popularity", &movie),
                ("candidate_genre", &Provider::Request),
                ("request_genre", &Provider::Request),
            ]
        );
        assert_eq!(
            resolved.view_features("movie_scorer"),
            Some(&fields(SCORER_OUTPUTS)[..])
        );

        let service = &resolved.feature_services["movie_recommendation_service"];
        assert_eq!(service.features.len(), 14);
        assert_eq!(
            service.features[0],
            ("user_profile_features".to_owned(), "avg_rating".to_owned())
        );
        assert_eq!(
            service.features[13],
            ("movie_scorer".to_owned(), "recommendation_score".to_owned())
        );
    }

    #[test]
    fn names_must_be_identifiers_and_views_share_a_namespace() {
        let mut definitions = movies();
        definitions.project = "my movies".into();
        let user = definitions.entities["user"].clone();
        definitions.entities.insert("bad-name".into(), user);
        let view = definitions.feature_views["user_profile_features"].clone();
        definitions
            .feature_views
            .insert("movie_scorer".into(), view);
        assert_eq!(
            errors(&definitions),
            [
                "project: `my movies` is not a valid project name: use letters, digits and `_`, \
                 not starting with a digit",
                "entities.bad-name: `bad-name` is not a valid name: use letters, digits and `_`, \
                 not starting with a digit",
                "on_demand_views.movie_scorer: `movie_scorer` is also the name of a feature view; \
                 feature views and on-demand views share one namespace",
            ]
        );
    }

    #[test]
    fn unknown_references_list_what_exists() {
        let mut definitions = movies();
        let view = definitions
            .feature_views
            .get_mut("user_movie_interaction_features")
            .unwrap();
        view.entities = vec!["user".into(), "viewer".into(), "user".into()];
        view.source = "watches".into();
        view.transform = Some("movie_watch@1".into());
        let scorer = definitions.on_demand_views.get_mut("movie_scorer").unwrap();
        scorer.request_source = Some("watch_events".into());
        scorer.views = vec!["nope".into(), "movie_scorer".into()];
        scorer.transform = "movie_recommendation_scorer@9".into();
        assert_eq!(
            errors(&definitions),
            [
                "feature_views.user_movie_interaction_features.entities[1]: unknown entity \
                 `viewer` (known: movie, user)",
                "feature_views.user_movie_interaction_features.entities[2]: entity `user` is \
                 listed twice",
                "feature_views.user_movie_interaction_features.source: unknown source `watches` \
                 (known: movie_metadata, movie_request, user_profiles, watch_events)",
                "feature_views.user_movie_interaction_features.transform: unknown transform \
                 `movie_watch` (known: movie_recommendation_scorer, movie_watch_features)",
                "on_demand_views.movie_scorer.request_source: source `watch_events` is a parquet \
                 source; `request_source` must name a source of kind request",
                "on_demand_views.movie_scorer.views[0]: unknown feature view `nope` (known: \
                 movie_metadata_features, user_movie_interaction_features, user_profile_features)",
                "on_demand_views.movie_scorer.views[1]: `movie_scorer` is an on-demand view; \
                 on-demand views read feature views only",
                "on_demand_views.movie_scorer.transform: transform `movie_recommendation_scorer` \
                 has no version 9 (versions: 1)",
            ]
        );
    }

    #[test]
    fn a_feature_view_cannot_read_a_request_source_nor_name_an_unknown_request_source() {
        let mut definitions = movies();
        definitions
            .feature_views
            .get_mut("user_profile_features")
            .unwrap()
            .source = "movie_request".into();
        definitions
            .on_demand_views
            .get_mut("movie_scorer")
            .unwrap()
            .request_source = Some("request".into());
        assert_eq!(
            errors(&definitions),
            [
                "feature_views.user_profile_features.source: source `movie_request` is a request \
                 source; feature views read parquet, csv, postgres or push sources",
                "on_demand_views.movie_scorer.request_source: unknown source `request` (known: \
                 movie_request)",
            ]
        );
    }

    #[test]
    fn source_kinds_have_their_own_keys() {
        let mut definitions = movies();
        let base = definitions.sources["watch_events"].clone();
        let with = |change: &dyn Fn(&mut Source)| {
            let mut source = base.clone();
            change(&mut source);
            source
        };
        let sources = [
            ("a_parquet", with(&|s| s.path = None)),
            (
                "b_csv",
                with(&|s| {
                    s.kind = SourceKind::Csv;
                    s.table = Some("t".into());
                }),
            ),
            (
                "c_postgres",
                with(&|s| {
                    s.kind = SourceKind::Postgres;
                    s.table = Some("t".into());
                    s.query = Some("select 1".into());
                }),
            ),
            (
                "d_postgres",
                with(&|s| {
                    s.kind = SourceKind::Postgres;
                    s.path = None;
                }),
            ),
            ("e_push", with(&|s| s.kind = SourceKind::Push)),
            (
                "f_push",
                with(&|s| {
                    s.kind = SourceKind::Push;
                    s.path = None;
                    s.timestamp_field = None;
                }),
            ),
            (
                "g_request",
                with(&|s| {
                    s.kind = SourceKind::Request;
                    s.path = None;
                    s.created_timestamp_field = Some("event_timestamp".into());
                }),
            ),
            ("h_parquet", with(&|s| s.path = Some(" ".into()))),
            ("i_parquet", with(&|s| s.schema.clear())),
        ];
        definitions
            .sources
            .extend(sources.map(|(name, source)| (name.to_owned(), source)));
        // The valid variants of each kind resolve.
        definitions.sources.insert(
            "j_postgres".into(),
            with(&|s| {
                s.kind = SourceKind::Postgres;
                s.path = None;
                s.query = Some("select * from watch_events".into());
            }),
        );
        definitions.sources.insert(
            "k_push".into(),
            with(&|s| {
                s.kind = SourceKind::Push;
                s.path = None;
            }),
        );
        assert_eq!(
            errors(&definitions),
            [
                "sources.a_parquet.path: a parquet source needs `path`",
                "sources.b_csv.table: `table` applies to postgres sources only",
                "sources.c_postgres: a postgres source takes one of `table` and `query`, not both",
                "sources.c_postgres.path: `path` applies to parquet and csv sources only",
                "sources.d_postgres: a postgres source needs `table` or `query`",
                "sources.e_push.path: a push source has no `path`",
                "sources.f_push.timestamp_field: a push source needs `timestamp_field`",
                "sources.g_request.timestamp_field: a request source has no timestamps: its fields \
                 arrive with each request",
                "sources.g_request.created_timestamp_field: a request source has no timestamps: \
                 its fields arrive with each request",
                "sources.h_parquet.path: must not be empty",
                "sources.i_parquet.schema: declare at least one column",
                "sources.i_parquet.timestamp_field: `event_timestamp` is not a column of the \
                 schema (columns: )",
            ]
        );
    }

    #[test]
    fn timestamp_fields_must_be_timestamp_columns() {
        let mut definitions = movies();
        let source = definitions.sources.get_mut("watch_events").unwrap();
        source
            .schema
            .insert("event_timestamp".into(), column("timestamp?"));
        source.schema.insert("created".into(), column("int64"));
        source.created_timestamp_field = Some("created".into());
        assert_eq!(
            errors(&definitions),
            [
                "sources.watch_events.timestamp_field: column `event_timestamp` has type \
                 `timestamp?`; expected `timestamp`",
                "sources.watch_events.created_timestamp_field: column `created` has type `int64`; \
                 expected `timestamp` or `timestamp?`",
            ]
        );
        let source = definitions.sources.get_mut("watch_events").unwrap();
        source
            .schema
            .insert("event_timestamp".into(), column("timestamp"));
        source.schema.insert("created".into(), column("timestamp?"));
        assert!(resolve(&definitions, &catalog()).is_ok());
    }

    #[test]
    fn entities_need_a_join_key_of_a_key_type() {
        let mut definitions = movies();
        let user = definitions.entities.get_mut("user").unwrap();
        user.join_key.clear();
        user.value_type = ValueType::Float64;
        let errors = errors(&definitions);
        assert_eq!(
            errors[..2],
            [
                "entities.user.join_key: must not be empty",
                "entities.user.type: join keys must be int64 or utf8, not float64",
            ]
        );
    }

    #[test]
    fn join_keys_must_be_source_columns_of_the_entity_type() {
        let mut definitions = movies();
        let source = definitions.sources.get_mut("watch_events").unwrap();
        source.schema.remove("user_id");
        source.schema.insert("movie_id".into(), column("utf8"));
        let profiles = definitions.sources.get_mut("user_profiles").unwrap();
        profiles.schema.insert("user_id".into(), column("int64?"));
        assert_eq!(
            errors(&definitions),
            [
                "feature_views.user_movie_interaction_features.entities[0]: join key `user_id \
                 int64` of entity `user` is not a column of source `watch_events` (columns: \
                 event_timestamp, movie_id, rating, runtime, watch_seconds)",
                "feature_views.user_movie_interaction_features.entities[1]: join key `movie_id \
                 int64` of entity `movie` does not match source column `movie_id utf8`",
                "feature_views.user_profile_features.entities[0]: join key `user_id int64` of \
                 entity `user` does not match source column `user_id int64?`",
            ]
        );
    }

    #[test]
    fn transform_inputs_must_be_source_columns_of_the_same_type() {
        let mut definitions = movies();
        let source = definitions.sources.get_mut("watch_events").unwrap();
        source.schema.insert("rating".into(), column("utf8"));
        source.schema.insert("runtime".into(), column("int64?"));
        source.schema.remove("watch_seconds");
        assert_eq!(
            errors(&definitions),
            [
                "feature_views.user_movie_interaction_features.transform: transform input \
                 `watch_seconds int64` is not a column of source `watch_events` (columns: \
                 event_timestamp, movie_id, rating, runtime, user_id)",
                "feature_views.user_movie_interaction_features.transform: transform input \
                 `runtime int64` does not match source column `runtime int64?`",
                "feature_views.user_movie_interaction_features.transform: transform input \
                 `rating float64?` does not match source column `rating utf8`",
            ]
        );
        // A non-nullable column may feed a nullable input.
        let source = definitions.sources.get_mut("watch_events").unwrap();
        source.schema.insert("rating".into(), column("float64"));
        source.schema.insert("runtime".into(), column("int64"));
        source
            .schema
            .insert("watch_seconds".into(), column("int64"));
        assert!(resolve(&definitions, &catalog()).is_ok());
    }

    #[test]
    fn features_must_exist_once_and_not_shadow_join_keys() {
        let mut definitions = movies();
        definitions
            .feature_views
            .get_mut("user_movie_interaction_features")
            .unwrap()
            .features = Some(vec![
            "completion_rate".into(),
            "watch_minutes".into(),
            "completion_rate".into(),
        ]);
        definitions
            .feature_views
            .get_mut("user_profile_features")
            .unwrap()
            .features = Some(vec!["user_id".into()]);
        definitions
            .feature_views
            .get_mut("movie_metadata_features")
            .unwrap()
            .features = Some(Vec::new());
        assert_eq!(
            errors(&definitions),
            [
                "feature_views.movie_metadata_features.features: list at least one feature, or \
                 leave `features` out to take them all",
                "feature_views.user_movie_interaction_features.features[1]: unknown feature \
                 `watch_minutes`: not an output of transform `movie_watch_features@1` \
                 (available: watch_time_minutes, completion_rate, is_high_rating)",
                "feature_views.user_movie_interaction_features.features[2]: feature \
                 `completion_rate` is listed twice",
                "feature_views.user_profile_features.features[0]: unknown feature `user_id`: not \
                 a feature column of source `user_profiles` (available: age, avg_rating, \
                 favorite_genre, signup_date, total_movies_watched)",
            ]
        );

        let mut definitions = movies();
        let catalog = Catalog::new(
            vec![
                version("movie_watch_features", 1, "runtime int64", "user_id int64"),
                version(
                    "movie_recommendation_scorer",
                    1,
                    "popularity float64",
                    "score float64",
                ),
            ],
            Vec::new(),
        );
        definitions
            .feature_services
            .remove("movie_recommendation_service");
        definitions
            .feature_services
            .remove("movie_interaction_service");
        assert_eq!(
            errors_with(&definitions, &catalog),
            [
                "feature_views.user_movie_interaction_features.transform: feature `user_id` has \
              the name of a join key"
            ]
        );
    }

    #[test]
    fn ttls_and_flags() {
        let mut definitions = movies();
        let view = definitions
            .feature_views
            .get_mut("user_profile_features")
            .unwrap();
        view.ttl = Some("7 days".into());
        view.online = false;
        view.offline = false;
        assert_eq!(
            errors(&definitions),
            [
                "feature_views.user_profile_features.ttl: invalid duration `7 days`: expected a \
                 positive whole number followed by s, m, h, d or w, such as `90m` or `7d`",
                "feature_views.user_profile_features: `online` and `offline` are both false: the \
                 view would never be computed",
            ]
        );
    }

    #[test]
    fn ttl_syntax() {
        for (text, seconds) in [
            ("45s", 45),
            ("90m", 5_400),
            ("1h", 3_600),
            ("7d", 604_800),
            ("2w", 1_209_600),
        ] {
            assert_eq!(parse_ttl(text), Ok(seconds), "{text}");
        }
        for bad in ["", "d", "7", "7y", "-1d", "1.5h", " 7d", "7D", "٣d", "7é"] {
            assert!(
                parse_ttl(bad)
                    .unwrap_err()
                    .contains("expected a positive whole number"),
                "{bad}"
            );
        }
        assert_eq!(
            parse_ttl("0s").unwrap_err(),
            "invalid duration `0s`: must be positive"
        );
        assert!(
            parse_ttl("99999999999999999999w")
                .unwrap_err()
                .ends_with("too long")
        );
        assert!(
            parse_ttl("9999999999999999999w")
                .unwrap_err()
                .ends_with("too long")
        );
        for (seconds, text) in [(45, "45s"), (5_400, "90m"), (3_600, "1h"), (604_800, "7d")] {
            assert_eq!(format_ttl(seconds), text);
        }
    }

    #[test]
    fn on_demand_inputs_must_be_provided_once_with_the_right_type() {
        let mut definitions = movies();
        let request = definitions.sources.get_mut("movie_request").unwrap();
        request
            .schema
            .insert("avg_rating".into(), column("float64?"));
        request
            .schema
            .insert("request_genre".into(), column("int64"));
        request.schema.remove("candidate_genre");
        definitions
            .sources
            .get_mut("movie_metadata")
            .unwrap()
            .schema
            .insert("popularity".into(), column("float64?"));
        assert_eq!(
            errors(&definitions),
            [
                "on_demand_views.movie_scorer.transform: transform input `avg_rating float64?` is \
                 ambiguous: provided by the request and view `user_profile_features`",
                "on_demand_views.movie_scorer.transform: transform input `popularity float64` \
                 does not match feature `popularity float64?` of view `movie_metadata_features`",
                "on_demand_views.movie_scorer.transform: transform input `candidate_genre utf8` \
                 is not provided by request source `movie_request`, view \
                 `user_profile_features`, view `movie_metadata_features` (available: age, \
                 avg_rating, favorite_genre, genre_action, genre_comedy, genre_drama, \
                 genre_horror, genre_romance, movie_id, popularity, release_year, \
                 request_genre, runtime, total_movies_watched, user_id, vote_average, \
                 vote_count)",
                "on_demand_views.movie_scorer.transform: transform input `request_genre utf8?` \
                 does not match request field `request_genre int64`",
            ]
        );
    }

    #[test]
    fn on_demand_views_need_inputs_and_consistent_join_keys() {
        let mut definitions = movies();
        let scorer = definitions.on_demand_views.get_mut("movie_scorer").unwrap();
        scorer.request_source = None;
        scorer.views.clear();
        assert!(
            errors(&definitions).contains(
                &"on_demand_views.movie_scorer: an on-demand view needs a `request_source`, \
                  `views` or both"
                    .to_owned()
            )
        );

        let mut definitions = movies();
        let entity = Entity {
            join_key: "user_id".into(),
            value_type: ValueType::Utf8,
            description: None,
        };
        definitions.entities.insert("account".into(), entity);
        let source = definitions.sources.get_mut("movie_metadata").unwrap();
        source.schema.insert("user_id".into(), column("utf8"));
        let movie_view = definitions
            .feature_views
            .get_mut("movie_metadata_features")
            .unwrap();
        movie_view.entities.push("account".into());
        movie_view.features = Some(vec!["vote_average".into(), "popularity".into()]);
        definitions
            .feature_services
            .remove("movie_recommendation_service");
        assert_eq!(
            errors(&definitions),
            [
                "on_demand_views.movie_scorer.views: join key `user_id` differs between views: \
              `user_id int64` in `user_profile_features`, `user_id utf8` in \
              `movie_metadata_features`"
            ]
        );
    }

    #[test]
    fn a_broken_view_does_not_cascade_into_its_readers() {
        let mut definitions = movies();
        definitions
            .feature_views
            .get_mut("user_profile_features")
            .unwrap()
            .source = "nope".into();
        assert_eq!(
            errors(&definitions),
            [
                "feature_views.user_profile_features.source: unknown source `nope` (known: \
              movie_metadata, movie_request, user_profiles, watch_events)"
            ]
        );
    }

    #[test]
    fn service_references_must_name_existing_features_once() {
        let mut definitions = movies();
        definitions
            .feature_services
            .get_mut("movie_interaction_service")
            .unwrap()
            .features = vec![
            "user_movie_interaction_features".into(),
            "user_movie_interaction_features:*".into(),
            "user_movie_interaction_features:completion_rate".into(),
            "movie_features:popularity".into(),
            "movie_scorer:score".into(),
            "a:b:c".into(),
        ];
        definitions.feature_services.insert(
            "empty".into(),
            FeatureService {
                features: Vec::new(),
                logging: None,
                description: None,
            },
        );
        assert_eq!(
            errors(&definitions),
            [
                "feature_services.empty.features: list at least one feature reference \
                 (`view:feature` or `view:*`)",
                "feature_services.movie_interaction_service.features[0]: \
                 `user_movie_interaction_features` is not a feature reference: expected \
                 `view:feature` or `view:*`",
                "feature_services.movie_interaction_service.features[2]: feature \
                 `user_movie_interaction_features:completion_rate` is included more than once",
                "feature_services.movie_interaction_service.features[3]: unknown view \
                 `movie_features` (known: movie_metadata_features, \
                 user_movie_interaction_features, user_profile_features, movie_scorer)",
                "feature_services.movie_interaction_service.features[4]: view `movie_scorer` has \
                 no feature `score` (features: rating_gap, log_popularity, genre_match, \
                 recommendation_score)",
                "feature_services.movie_interaction_service.features[5]: `a:b:c` is not a \
                 feature reference: expected `view:feature` or `view:*`",
            ]
        );
    }

    #[test]
    fn logging_sample_rates_are_checked_and_kept() {
        let with_logging = |logging: &str| {
            super::super::fixtures::MOVIES.replace(
                "features = [\"user_movie_interaction_features:*\"]",
                &format!("features = [\"user_movie_interaction_features:*\"]\nlogging = {logging}"),
            )
        };
        let errors_for = |logging: &str| -> Vec<String> {
            match resolve_text(&with_logging(logging), &catalog()) {
                Ok(_) => Vec::new(),
                Err(errors) => errors.iter().map(ToString::to_string).collect(),
            }
        };
        for rate in ["0.0", "-0.5", "1.5", "nan", "inf"] {
            let errors = errors_for(&format!("{{ sample_rate = {rate} }}"));
            assert_eq!(errors.len(), 1, "{rate}: {errors:?}");
            assert!(
                errors[0].contains(
                    "feature_services.movie_interaction_service.logging.sample_rate: must be \
                     above 0 and at most 1"
                ),
                "{rate}: {}",
                errors[0]
            );
        }
        let errors = errors_for("{ sample_rate = 0.5, rate = 1 }");
        assert!(
            errors.len() == 1 && errors[0].contains("unknown field `rate`"),
            "{errors:?}"
        );
        let resolved = resolve_text(&with_logging("{ sample_rate = 0.25 }"), &catalog()).unwrap();
        let service = &resolved.feature_services["movie_interaction_service"];
        assert_eq!(service.logging.map(|l| l.sample_rate.0), Some(0.25));
        assert_eq!(
            resolved.feature_services["movie_recommendation_service"].logging,
            None
        );
        let objects = resolved.objects();
        assert_eq!(Resolved::from_objects(objects), Ok(resolved));
    }

    #[test]
    fn every_error_is_collected_and_located() {
        let text = super::super::fixtures::MOVIES
            .replace("movie_watch_features@1", "movie_watch_features@2")
            .replace("ttl = \"30d\"", "ttl = \"30 days\"")
            .replace(
                "\"user_profile_features:favorite_genre\"",
                "\"user_profile_features:nope\"",
            );
        let errors: Vec<String> = resolve_text(&text, &catalog())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        let line = |needle: &str| text.lines().position(|line| line.contains(needle)).unwrap() + 1;
        assert_eq!(
            errors,
            [
                format!(
                    "line {}: feature_views.movie_metadata_features.ttl: invalid duration `30 days`: \
                     expected a positive whole number followed by s, m, h, d or w, such as `90m` \
                     or `7d`",
                    line("30 days")
                ),
                format!(
                    "line {}: feature_views.user_movie_interaction_features.transform: transform \
                     `movie_watch_features` has no version 2 (versions: 1)",
                    line("movie_watch_features@2")
                ),
                format!(
                    "line {}: feature_services.movie_recommendation_service.features[2]: view \
                     `user_profile_features` has no feature `nope` (features: age, avg_rating, \
                     total_movies_watched, favorite_genre)",
                    line("user_profile_features:nope")
                ),
            ]
        );
    }
}
