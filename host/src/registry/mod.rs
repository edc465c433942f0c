//! The system of record for definitions: transform blobs by digest, immutable versions per
//! transform name, aliases, and every applied version of every definition object. Postgres
//! when a database URL is configured, an embedded SQLite file otherwise, behind one trait.

mod notify;
mod sql;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::{Classify, Digest, ErrorKind, FieldSpec, TransformVersion};

pub use notify::{Change, ChangeFeed};
pub use sql::SqlRegistry;

/// A component to record under a name, after the runtime accepted it.
#[derive(Debug, Clone)]
pub struct NewTransform {
    pub digest: Digest,
    pub bytes: Vec<u8>,
    pub declared_name: String,
    pub declared_version: String,
    pub inputs: Vec<FieldSpec>,
    pub outputs: Vec<FieldSpec>,
}

/// The version an upload maps to; `created` is false when the bytes were already there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PutOutcome {
    pub version: TransformVersion,
    pub created: bool,
}

/// A named pointer to one version of a transform (`latest`, `prod`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    pub name: String,
    pub alias: String,
    pub version: u32,
}

/// The current version of one definition object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectRecord {
    pub kind: String,
    pub name: String,
    pub version: u32,
    pub spec: serde_json::Value,
    pub applied_at_micros: i64,
}

/// An object of the definitions being applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectWrite {
    pub kind: String,
    pub name: String,
    pub spec: serde_json::Value,
}

/// What an apply changed, as (kind, name, new version).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    pub created: Vec<(String, String, u32)>,
    pub updated: Vec<(String, String, u32)>,
    pub deleted: Vec<(String, String, u32)>,
    pub unchanged: usize,
}

/// Why the registry could not answer.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("transform `{name}` has no version {version}")]
    UnknownVersion { name: String, version: u32 },
    #[error("the registry database is unavailable: {0}")]
    Unavailable(String),
    #[error("registry data is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot open the registry: {0}")]
    Open(String),
    #[error(transparent)]
    Connect(#[from] crate::endpoint::ConnectError),
}

impl Classify for RegistryError {
    fn code(&self) -> &'static str {
        match self {
            Self::UnknownVersion { .. } => "unknown_transform_version",
            Self::Unavailable(_) => "registry_unavailable",
            Self::Corrupt(_) => "registry_corrupt",
            Self::Open(_) | Self::Connect(_) => "registry_unavailable",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownVersion { .. } => ErrorKind::NotFound,
            Self::Unavailable(_) | Self::Open(_) | Self::Connect(_) => ErrorKind::Unavailable,
            Self::Corrupt(_) => ErrorKind::Internal,
        }
    }
}

impl From<sqlx::Error> for RegistryError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                Self::Corrupt(error.to_string())
            }
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// Where the registry lives.
#[derive(Debug, Clone)]
pub enum RegistryLocation {
    /// `postgres://…`, with the schema holding Lockstep's tables (created if missing).
    Postgres { url: String, schema: String },
    /// An embedded SQLite file.
    Sqlite { path: PathBuf },
}

/// Opens (and migrates) the registry at `location`.
pub async fn open(location: &RegistryLocation) -> Result<Arc<dyn Registry>, RegistryError> {
    Ok(match location {
        RegistryLocation::Postgres { url, schema } => {
            Arc::new(SqlRegistry::postgres(url, schema).await?)
        }
        RegistryLocation::Sqlite { path } => Arc::new(SqlRegistry::sqlite(path).await?),
    })
}

/// Deletes the registry at `location` with everything in it: drops its Postgres schema or
/// removes its SQLite file. For `lockstep demo`, which starts from nothing on every run.
pub async fn remove(location: &RegistryLocation) -> Result<(), RegistryError> {
    match location {
        RegistryLocation::Postgres { url, schema } => {
            drop_schema(crate::endpoint::Store::Registry, url, schema)
                .await
                .map_err(|error| match error {
                    DropError::Connect(error) => RegistryError::Connect(error),
                    DropError::Other(message) => RegistryError::Open(message),
                })
        }
        RegistryLocation::Sqlite { path } => remove_sqlite_file(path).map_err(RegistryError::Open),
    }
}

use crate::sql_store::{DropError, drop_schema, remove_sqlite_file};

/// Durable storage of transforms and definitions. Every method is atomic.
#[async_trait]
pub trait Registry: Send + Sync {
    /// Records `transform` under `name`: identical bytes give the existing version; new
    /// bytes the next version number, even under concurrent uploads.
    async fn put_transform(
        &self,
        name: &str,
        transform: NewTransform,
    ) -> Result<PutOutcome, RegistryError>;

    /// Every version of every transform, by name then version.
    async fn transforms(&self) -> Result<Vec<TransformVersion>, RegistryError>;

    /// The component bytes with this digest.
    async fn blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>, RegistryError>;

    /// Every alias, by name then alias.
    async fn aliases(&self) -> Result<Vec<Alias>, RegistryError>;

    /// Points `alias` of transform `name` at `version` (which must exist).
    async fn set_alias(&self, name: &str, alias: &str, version: u32) -> Result<(), RegistryError>;

    /// Projects with at least one live definition object, by name.
    async fn projects(&self) -> Result<Vec<String>, RegistryError>;

    /// The current version of every live object of `project`.
    async fn objects(&self, project: &str) -> Result<Vec<ObjectRecord>, RegistryError>;

    /// Makes `objects` the whole definition set of `project` in one transaction: new objects
    /// get version 1, changed ones their next version, missing ones a deletion record.
    async fn apply(
        &self,
        project: &str,
        objects: Vec<ObjectWrite>,
    ) -> Result<ApplyReport, RegistryError>;

    /// Marks `digest` unsafe (it broke the row-wise contract), keeping the first reason.
    async fn mark_unsafe(&self, digest: &Digest, reason: &str) -> Result<(), RegistryError>;

    /// Every digest marked unsafe, with its reason.
    async fn unsafe_transforms(&self) -> Result<BTreeMap<Digest, String>, RegistryError>;

    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<(), RegistryError>;

    /// The changes that alter what is served (applies, aliases, unsafe marks), as every
    /// process sharing the registry commits them; `None` where the backend cannot tell
    /// (one process owns an embedded registry). Must be called within a tokio runtime.
    fn watch(&self) -> Option<ChangeFeed> {
        None
    }
}

/// A `transform_versions` row as both backends select it.
type VersionRow = (
    String,
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
);

/// The columns of [`VersionRow`], joined with the blob size.
const VERSION_COLUMNS: &str = "v.name, CAST(v.version AS BIGINT), v.digest, v.declared_name, \
     v.declared_version, v.inputs, v.outputs, b.size_bytes, v.uploaded_at";

fn version_from_row(row: VersionRow) -> Result<TransformVersion, RegistryError> {
    let (name, version, digest, declared_name, declared_version, inputs, outputs, size, at) = row;
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        RegistryError::Corrupt(format!("transform {name} version {version}: {what}: {e}"))
    };
    Ok(TransformVersion {
        version: u32::try_from(version).map_err(|e| corrupt("version", &e))?,
        digest: digest.parse().map_err(|e| corrupt("digest", &e))?,
        inputs: serde_json::from_str(&inputs).map_err(|e| corrupt("inputs", &e))?,
        outputs: serde_json::from_str(&outputs).map_err(|e| corrupt("outputs", &e))?,
        size_bytes: u64::try_from(size).map_err(|e| corrupt("size", &e))?,
        uploaded_at_micros: at,
        unsafe_reason: None,
        declared_name,
        declared_version,
        name,
    })
}

/// A `definition_objects` row: kind, name, version, spec (NULL when deleted), applied_at.
type ObjectRow = (String, String, i64, Option<String>, i64);

/// Latest row of every (kind, name) of the project bound as `$1`.
const LATEST_OBJECTS_SQL: &str = "SELECT d.kind, d.name, CAST(d.version AS BIGINT), d.spec, d.applied_at \
     FROM definition_objects d WHERE d.project = $1 AND d.version = (SELECT MAX(m.version) \
     FROM definition_objects m WHERE m.project = d.project AND m.kind = d.kind \
     AND m.name = d.name) ORDER BY d.kind, d.name";

/// Live objects among the latest rows (deletions dropped).
fn live_objects(rows: Vec<ObjectRow>) -> Result<Vec<ObjectRecord>, RegistryError> {
    rows.into_iter()
        .filter_map(|(kind, name, version, spec, at)| {
            spec.map(|spec| {
                Ok(ObjectRecord {
                    spec: serde_json::from_str(&spec).map_err(|e| {
                        RegistryError::Corrupt(format!("{kind} {name} version {version}: {e}"))
                    })?,
                    version: version as u32,
                    applied_at_micros: at,
                    kind,
                    name,
                })
            })
        })
        .collect()
}

/// One row to insert for an apply: (kind, name, version, spec or None for a deletion).
type ObjectInsert = (String, String, u32, Option<String>);

/// Compares the latest rows with the objects being applied; returns the rows to insert and
/// the report. Pure, so both backends decide identically.
fn plan_writes(
    latest: &[ObjectRow],
    next: Vec<ObjectWrite>,
) -> Result<(Vec<ObjectInsert>, ApplyReport), RegistryError> {
    let mut current: BTreeMap<(String, String), (u32, Option<serde_json::Value>)> = BTreeMap::new();
    for (kind, name, version, spec, _) in latest {
        let spec = match spec {
            Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                RegistryError::Corrupt(format!("{kind} {name} version {version}: {e}"))
            })?),
            None => None,
        };
        current.insert((kind.clone(), name.clone()), (*version as u32, spec));
    }
    let mut inserts = Vec::new();
    let mut report = ApplyReport::default();
    let mut seen = std::collections::BTreeSet::new();
    for object in next {
        let key = (object.kind.clone(), object.name.clone());
        seen.insert(key.clone());
        let text = object.spec.to_string();
        match current.get(&key) {
            Some((_, Some(spec))) if *spec == object.spec => report.unchanged += 1,
            Some((version, Some(_))) => {
                report
                    .updated
                    .push((object.kind.clone(), object.name.clone(), version + 1));
                inserts.push((object.kind, object.name, version + 1, Some(text)));
            }
            Some((version, None)) => {
                report
                    .created
                    .push((object.kind.clone(), object.name.clone(), version + 1));
                inserts.push((object.kind, object.name, version + 1, Some(text)));
            }
            None => {
                report
                    .created
                    .push((object.kind.clone(), object.name.clone(), 1));
                inserts.push((object.kind, object.name, 1, Some(text)));
            }
        }
    }
    for ((kind, name), (version, spec)) in current {
        if spec.is_some() && !seen.contains(&(kind.clone(), name.clone())) {
            report
                .deleted
                .push((kind.clone(), name.clone(), version + 1));
            inserts.push((kind, name, version + 1, None));
        }
    }
    Ok((inserts, report))
}

pub(crate) use crate::model::now_micros;

#[cfg(test)]
mod tests {
    use super::*;

    fn write(kind: &str, name: &str, spec: serde_json::Value) -> ObjectWrite {
        ObjectWrite {
            kind: kind.into(),
            name: name.into(),
            spec,
        }
    }

    #[test]
    fn writes_version_changes_and_deletions() {
        let latest: Vec<ObjectRow> = vec![
            (
                "entity".into(),
                "user".into(),
                1,
                Some("{\"k\":1}".into()),
                0,
            ),
            ("source".into(), "old".into(), 2, Some("{}".into()), 0),
            ("source".into(), "gone".into(), 3, None, 0),
            ("view".into(), "v".into(), 4, Some("{\"t\":1}".into()), 0),
        ];
        let next = vec![
            write("entity", "user", serde_json::json!({"k": 1})),
            write("view", "v", serde_json::json!({"t": 2})),
            write("source", "gone", serde_json::json!({})),
            write("source", "new", serde_json::json!({})),
        ];
        let (inserts, report) = plan_writes(&latest, next).unwrap();
        assert_eq!(report.unchanged, 1);
        assert_eq!(report.updated, vec![("view".into(), "v".into(), 5)]);
        assert_eq!(
            report.created,
            vec![
                ("source".into(), "gone".into(), 4),
                ("source".into(), "new".into(), 1)
            ]
        );
        assert_eq!(report.deleted, vec![("source".into(), "old".into(), 3)]);
        assert_eq!(inserts.len(), 4);
        assert!(inserts.contains(&("source".into(), "old".into(), 3, None)));
    }
}
