//! Feature definitions: the TOML file users keep in git and apply with `lockstep apply`,
//! parsed ([`parse`]), checked against the uploaded transforms ([`resolve`]), stored as
//! versioned objects ([`Resolved::objects`]) and diffed ([`plan`]).
//!
//! # The file
//!
//! Every object is a table named `[kind.name]`; names are identifiers
//! (`[A-Za-z_][A-Za-z0-9_]*`). Unknown keys are errors everywhere.
//!
//! ```toml
//! project = "movies"                 # optional, default "default"
//!
//! [entities.user]
//! join_key = "user_id"
//! type = "int64"                     # int64 | float64 | utf8 | boolean | timestamp
//! description = "A viewer"           # optional, on every kind of object
//!
//! [entities.movie]
//! join_key = "movie_id"
//! type = "int64"
//!
//! [sources.watch_events]
//! kind = "parquet"                   # parquet | csv | postgres | push | request
//! path = "data/watch_events/*.parquet"   # parquet and csv only, required there
//! timestamp_field = "event_timestamp"    # required except for request sources
//! created_timestamp_field = "created"    # optional, breaks ties between equal event times
//! # Column types; a `?` suffix marks a nullable column.
//! schema = { user_id = "int64", movie_id = "int64", watch_seconds = "int64", runtime = "int64", rating = "float64?", event_timestamp = "timestamp", created = "timestamp" }
//!
//! [sources.ratings_db]
//! kind = "postgres"
//! query = "select user_id, avg_rating, updated_at from user_ratings"  # or table = "user_ratings": exactly one
//! timestamp_field = "updated_at"
//! schema = { user_id = "int64", avg_rating = "float64?", updated_at = "timestamp" }
//!
//! [sources.movie_request]
//! kind = "request"                   # fields sent with an online request: no path, no timestamps
//! schema = { request_genre = "utf8?" }
//!
//! [feature_views.user_movie_interaction_features]
//! entities = ["user", "movie"]       # their join keys must be source columns of the same type
//! source = "watch_events"            # any kind but request
//! transform = "movie_watch_features@1"   # optional: name@version | name@alias | name (= latest) | sha256:<hex>
//! features = ["watch_time_minutes", "completion_rate"]   # optional, see below
//! ttl = "1d"                         # optional: a whole number of s, m, h, d or w ("90m", "7d")
//! online = true                      # default true
//! offline = true                     # default true
//!
//! [sources.transactions]
//! kind = "push"                      # rows arrive over HTTP (POST /push)
//! timestamp_field = "event_timestamp"
//! schema = { user_id = "int64", amount = "float64", country = "utf8", event_timestamp = "timestamp" }
//!
//! [feature_views.user_transaction_aggregates]
//! entities = ["user"]
//! source = "transactions"            # a `transform` is allowed: aggregations read its outputs or source columns
//! ttl = "30d"
//! granularity = "1m"                 # tile size of the windows, default 1m
//! allowed_lateness = "10m"           # default 5m
//! aggregations = [                   # the view's features; `features` must be left out
//!   { name = "txn_count_1h", function = "count", window = "1h" },   # no column: counts events
//!   { name = "avg_amount_24h", function = "mean", column = "amount", window = "24h" },
//!   { name = "countries_ever", function = "count_distinct", column = "country", window = "lifetime" },
//! ]                                  # count | sum | mean | min | max | last | count_distinct
//!
//! [feature_views.user_ratings]
//! entities = ["user"]
//! source = "ratings_db"              # no transform: features are source columns
//!
//! [on_demand_views.movie_scorer]
//! request_source = "movie_request"   # optional, must be a source of kind request
//! views = ["user_ratings"]           # feature views whose features (and join keys) are inputs
//! transform = "movie_recommendation_scorer@latest"   # required
//!
//! [feature_services.movie_recommendation_service]
//! features = ["user_ratings:avg_rating", "movie_scorer:*"]   # view:feature or view:*
//! logging = { sample_rate = 0.1 }    # optional: log this share of online responses, (0, 1]
//! ```
//!
//! A view's features default to every output of its transform or, without a transform,
//! every source column except the join keys and the timestamp fields; `features` picks a
//! subset, in the order given. Each transform input must be supplied under its own name with
//! its own type: by a source column for a feature view; by exactly one request field, join
//! key or listed view's feature for an on-demand view. A non-nullable column may feed a
//! nullable input, not the reverse. Feature views and on-demand views share one namespace.
//! `examples/movie-recommendation/lockstep.toml` is a complete, valid file.
//!
//! # Flow
//!
//! [`parse`] reports TOML syntax and shape errors with line numbers and keeps the
//! [`Positions`] of every key. [`resolve`] pins every transform reference through a
//! [`Catalog`] of uploaded versions and checks every rule, collecting all errors, each with
//! its line from those positions ([`resolve_text`] does both). The registry stores a
//! [`Resolved`] as one [`StoredObject`] per object, in its own versioned stored form
//! (`stored`), and rebuilds it with [`Resolved::from_objects`]; [`plan`] diffs two of them.
//! `tests/definitions/` holds files with the errors or resolved result each must give.

mod catalog;
mod objects;
mod parse;
mod plan;
mod positions;
mod resolve;
mod resolved;
mod stored;

#[cfg(test)]
mod check;
#[cfg(test)]
mod fixtures;

pub use catalog::Catalog;
pub use objects::{ObjectKind, StoredObject};
pub use parse::{Parsed, parse};
pub use plan::{Action, Change, Plan, plan};
pub use positions::Positions;
pub use resolve::{format_ttl, parse_ttl, resolve};
pub use resolved::{
    InputBinding, Provider, Resolved, ResolvedFeatureService, ResolvedFeatureView,
    ResolvedOnDemandView, TransformPin,
};

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{FieldSpec, ValueType};

/// The project of a file that names none.
pub const DEFAULT_PROJECT: &str = "default";

/// A definitions file as written, before any checks across objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definitions {
    #[serde(default = "default_project")]
    pub project: String,
    #[serde(default)]
    pub entities: BTreeMap<String, Entity>,
    #[serde(default)]
    pub sources: BTreeMap<String, Source>,
    #[serde(default)]
    pub feature_views: BTreeMap<String, FeatureView>,
    #[serde(default)]
    pub on_demand_views: BTreeMap<String, OnDemandView>,
    #[serde(default)]
    pub feature_services: BTreeMap<String, FeatureService>,
}

impl Default for Definitions {
    fn default() -> Self {
        Self {
            project: default_project(),
            entities: BTreeMap::new(),
            sources: BTreeMap::new(),
            feature_views: BTreeMap::new(),
            on_demand_views: BTreeMap::new(),
            feature_services: BTreeMap::new(),
        }
    }
}

fn default_project() -> String {
    DEFAULT_PROJECT.to_owned()
}

fn yes() -> bool {
    true
}

/// What features are about (a user, a movie), identified by one typed join key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    pub join_key: String,
    #[serde(rename = "type", deserialize_with = "value_type_from_text")]
    pub value_type: ValueType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Entity {
    /// The join key as a field: join keys are never null.
    pub fn key_field(&self) -> FieldSpec {
        FieldSpec {
            name: self.join_key.clone(),
            value_type: self.value_type,
            nullable: false,
        }
    }
}

/// Where a source's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Parquet files (`path`, a glob).
    Parquet,
    /// CSV files (`path`, a glob) with a header row.
    Csv,
    /// A Postgres `table` or `query`.
    Postgres,
    /// Rows pushed over HTTP (`POST /push`).
    Push,
    /// Fields sent with an online request, for on-demand views.
    Request,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Parquet => "parquet",
            SourceKind::Csv => "csv",
            SourceKind::Postgres => "postgres",
            SourceKind::Push => "push",
            SourceKind::Request => "request",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A column type as written in a source schema: a [`ValueType`] name, `?` when nullable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ColumnType {
    pub value_type: ValueType,
    pub nullable: bool,
}

impl ColumnType {
    /// The column `name` of this type.
    pub fn field(self, name: &str) -> FieldSpec {
        FieldSpec {
            name: name.to_owned(),
            value_type: self.value_type,
            nullable: self.nullable,
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let null = if self.nullable { "?" } else { "" };
        write!(f, "{}{null}", self.value_type)
    }
}

impl FromStr for ColumnType {
    type Err = String;

    /// `float64`, `float64?` (nullable); the aliases of [`ValueType`] work too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, nullable) = match s.strip_suffix('?') {
            Some(name) => (name, true),
            None => (s, false),
        };
        let value_type = name.parse().map_err(|_| {
            format!(
                "unknown column type `{s}`; expected one of int64, float64, utf8, boolean, \
                 timestamp, with `?` after it when nullable"
            )
        })?;
        Ok(Self {
            value_type,
            nullable,
        })
    }
}

impl Serialize for ColumnType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ColumnType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn value_type_from_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ValueType, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// Raw rows with an event timestamp (batch and push sources) or request fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub kind: SourceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_timestamp_field: Option<String>,
    pub schema: BTreeMap<String, ColumnType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Source {
    /// The schema as fields, by column name.
    pub fn columns(&self) -> Vec<FieldSpec> {
        self.schema
            .iter()
            .map(|(name, column)| column.field(name))
            .collect()
    }

    /// The column `name`, if the schema has it.
    pub fn column(&self, name: &str) -> Option<FieldSpec> {
        self.schema.get(name).map(|column| column.field(name))
    }
}

/// Features of one or more entities computed from a source, optionally by a transform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureView {
    pub entities: Vec<String>,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(default = "yes")]
    pub online: bool,
    #[serde(default = "yes")]
    pub offline: bool,
    /// Time-window aggregations over the (transformed) events; when given, they are the
    /// view's features.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregations: Vec<AggregationDef>,
    /// The tile size of the aggregations' windows, `1m` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granularity: Option<String>,
    /// How much older than its key's newest event a pushed event may be; `5m` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_lateness: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One aggregate feature as written: `{ name = "txn_count_1h", function = "count",
/// window = "1h" }`, with a `column` for every function but a plain count of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationDef {
    pub name: String,
    pub function: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// A duration (`1h`, `7d`) or `lifetime`.
    pub window: String,
}

/// Features computed at request time from request fields and other views' features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnDemandView {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_source: Option<String>,
    #[serde(default)]
    pub views: Vec<String>,
    pub transform: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A named list of feature references (`view:feature`, `view:*`) that clients ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureService {
    pub features: Vec<String>,
    /// Log a sample of the service's online responses to the offline store, for the skew
    /// audit: `logging = { sample_rate = 0.1 }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<FeatureLogging>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Which online responses of a feature service are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureLogging {
    /// The fraction of responses logged, in (0, 1]; 1 logs every response.
    pub sample_rate: SampleRate,
}

/// A fraction, compared bit for bit so that equality stays reflexive (NaN is refused when
/// definitions are resolved, but a file may say `nan`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SampleRate(pub f64);

impl PartialEq for SampleRate {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for SampleRate {}

/// One problem in a definitions file: where (a dotted path and, for a file, a line) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionError {
    /// Dotted path to the offending value, `feature_views.user_watch.transform`, with `[i]`
    /// for a list element; empty for a TOML syntax error.
    pub path: String,
    /// 1-based line in the file.
    pub line: Option<usize>,
    pub message: String,
}

impl DefinitionError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for DefinitionError {
    /// `line 12: feature_views.user_watch.transform: unknown transform `foo` (known: a, b)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for DefinitionError {}

/// Parses and resolves in one go: what `lockstep apply` and `POST /definitions` do. Errors
/// come sorted by line.
pub fn resolve_text(text: &str, catalog: &Catalog) -> Result<Resolved, Vec<DefinitionError>> {
    let parsed = parse(text)?;
    resolve(&parsed, catalog).map_err(|mut errors| {
        errors.sort_by_key(|error| error.line.unwrap_or(usize::MAX));
        errors
    })
}

/// The names of `fields`, comma-separated.
fn names(fields: &[FieldSpec]) -> String {
    fields
        .iter()
        .map(|field| field.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `name` is an identifier: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::fixtures::{self, MOVIES, catalog};
    use super::*;

    #[test]
    fn the_movie_example_parses() {
        let definitions = parse(MOVIES).unwrap().definitions;
        assert_eq!(definitions.project, "movies");
        assert_eq!(
            definitions.entities.keys().collect::<Vec<_>>(),
            ["movie", "user"]
        );
        assert_eq!(definitions.sources.len(), 4);
        let watch = &definitions.sources["watch_events"];
        assert_eq!(watch.kind, SourceKind::Parquet);
        assert_eq!(
            watch.column("rating"),
            Some(FieldSpec {
                name: "rating".into(),
                value_type: ValueType::Float64,
                nullable: true,
            })
        );
        let interaction = &definitions.feature_views["user_movie_interaction_features"];
        assert_eq!(interaction.entities, ["user", "movie"]);
        assert_eq!(
            interaction.transform.as_deref(),
            Some("movie_watch_features@1")
        );
        assert!(interaction.online && interaction.offline);
        assert_eq!(interaction.features, None);
        assert_eq!(
            definitions.on_demand_views["movie_scorer"].views,
            ["user_profile_features", "movie_metadata_features"]
        );
        assert_eq!(definitions.feature_services.len(), 2);
        // The serde shape is the file's shape: the derived deserializer agrees with `parse`.
        assert_eq!(toml::from_str::<Definitions>(MOVIES).unwrap(), definitions);
        assert!(resolve_text(MOVIES, &catalog()).is_ok());
    }

    #[test]
    fn the_example_in_the_module_docs_is_valid() {
        let text: String = include_str!("mod.rs")
            .lines()
            .skip_while(|line| *line != "//! ```toml")
            .skip(1)
            .take_while(|line| *line != "//! ```")
            .map(|line| {
                line.strip_prefix("//!")
                    .unwrap()
                    .trim_start_matches(' ')
                    .to_owned()
                    + "\n"
            })
            .collect();
        assert!(text.contains("[feature_services.movie_recommendation_service]"));
        let catalog = Catalog::new(
            vec![
                fixtures::version(
                    "movie_watch_features",
                    1,
                    fixtures::WATCH_INPUTS,
                    fixtures::WATCH_OUTPUTS,
                ),
                fixtures::version(
                    "movie_recommendation_scorer",
                    1,
                    "avg_rating float64?, request_genre utf8?",
                    "score float64",
                ),
            ],
            Vec::new(),
        );
        let resolved = resolve_text(&text, &catalog).unwrap();
        assert_eq!(resolved.project(), "movies");
        assert_eq!(
            resolved.feature_services["movie_recommendation_service"].features,
            [
                ("user_ratings".to_owned(), "avg_rating".to_owned()),
                ("movie_scorer".to_owned(), "score".to_owned()),
            ]
        );
    }

    #[test]
    fn an_empty_file_is_an_empty_default_project() {
        assert_eq!(parse("").unwrap().definitions, Definitions::default());
        assert_eq!(
            parse("# nothing\n").unwrap().definitions.project,
            DEFAULT_PROJECT
        );
    }

    #[test]
    fn column_types_read_and_print_with_nullability() {
        for (text, value_type, nullable) in [
            ("int64", ValueType::Int64, false),
            ("float64?", ValueType::Float64, true),
            ("timestamp", ValueType::Timestamp, false),
        ] {
            let column: ColumnType = text.parse().unwrap();
            assert_eq!(
                column,
                ColumnType {
                    value_type,
                    nullable
                }
            );
            assert_eq!(column.to_string(), text);
        }
        assert_eq!(
            "string?".parse::<ColumnType>().unwrap().to_string(),
            "utf8?"
        );
        for bad in ["", "?", "int64 ?", "decimal"] {
            assert!(bad.parse::<ColumnType>().is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_display_line_path_and_message() {
        let mut error = DefinitionError::new(
            "feature_views.user_watch.transform",
            "unknown transform `foo` (known: a, b)",
        );
        assert_eq!(
            error.to_string(),
            "feature_views.user_watch.transform: unknown transform `foo` (known: a, b)"
        );
        error.line = Some(12);
        assert_eq!(
            error.to_string(),
            "line 12: feature_views.user_watch.transform: unknown transform `foo` (known: a, b)"
        );
    }

    #[test]
    fn identifiers() {
        for good in ["a", "_x", "user_id", "A9"] {
            assert!(is_identifier(good), "{good}");
        }
        for bad in ["", "9a", "a-b", "a.b", "a b", "é"] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }
}
