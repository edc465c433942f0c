//! Planning and applying definitions: parse and resolve against the uploaded transforms,
//! diff with what is applied, and write the whole set in one registry transaction.

use serde::Serialize;

use super::Lockstep;
use crate::model::definitions::{
    Catalog, DefinitionError, ObjectKind, Plan, Resolved, StoredObject, plan, resolve_text,
};
use crate::registry::{ApplyReport, ObjectWrite, Registry, RegistryError};

/// Why definitions could not be planned or applied. Nothing is written on any of these.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{}", render_errors(.0))]
    Invalid(Vec<DefinitionError>),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

fn render_errors(errors: &[DefinitionError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!("invalid definitions:\n  {}", lines.join("\n  "))
}

/// What applying a file would change.
#[derive(Debug, Clone, Serialize)]
pub struct PlanOutcome {
    pub project: String,
    pub plan: Plan,
    #[serde(skip)]
    pub resolved: Resolved,
}

/// What an apply changed.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyOutcome {
    pub project: String,
    pub plan: Plan,
    pub report: ApplyReport,
}

impl Lockstep {
    /// Checks a definitions file against the registry and diffs it with what is applied.
    pub async fn plan(&self, text: &str) -> Result<PlanOutcome, ApplyError> {
        let catalog = Catalog::new(
            self.transform_versions().await?,
            self.registry
                .aliases()
                .await?
                .into_iter()
                .map(|a| (a.name, a.alias, a.version))
                .collect(),
        );
        let resolved = resolve_text(text, &catalog).map_err(ApplyError::Invalid)?;
        let project = resolved.project().to_owned();
        let current = self.definitions(&project).await?;
        Ok(PlanOutcome {
            plan: plan(&current, &resolved),
            project,
            resolved,
        })
    }

    /// Plans, then makes the file the project's whole definition set in one transaction.
    pub async fn apply(&self, text: &str) -> Result<ApplyOutcome, ApplyError> {
        let PlanOutcome {
            project,
            plan,
            resolved,
        } = self.plan(text).await?;
        let objects = resolved
            .objects()
            .into_iter()
            .map(|object| ObjectWrite {
                kind: object.kind.as_str().to_owned(),
                name: object.name,
                spec: object.spec,
            })
            .collect();
        let report = self.registry.apply(&project, objects).await?;
        self.served.clear();
        tracing::info!(
            project,
            created = report.created.len(),
            updated = report.updated.len(),
            deleted = report.deleted.len(),
            "definitions applied"
        );
        Ok(ApplyOutcome {
            project,
            plan,
            report,
        })
    }

    /// The definitions applied to `project` (empty if none).
    pub async fn definitions(&self, project: &str) -> Result<Resolved, ApplyError> {
        applied_definitions(&*self.registry, project).await
    }
}

/// The definitions applied to `project` in `registry` (empty if none).
pub(crate) async fn applied_definitions(
    registry: &dyn Registry,
    project: &str,
) -> Result<Resolved, ApplyError> {
    let records = registry.objects(project).await?;
    let objects = records
        .into_iter()
        .map(|record| {
            let kind: ObjectKind = record
                .kind
                .parse()
                .map_err(|e| RegistryError::Corrupt(format!("{}: {e}", record.kind)))?;
            Ok(StoredObject {
                kind,
                name: record.name,
                spec: record.spec,
            })
        })
        .collect::<Result<Vec<_>, RegistryError>>()?;
    if objects.is_empty() {
        return Ok(Resolved::empty(project));
    }
    Ok(Resolved::from_objects(objects).map_err(RegistryError::Corrupt)?)
}
