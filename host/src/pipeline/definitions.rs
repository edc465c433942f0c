//! Planning and applying definitions: parse and resolve against the uploaded transforms,
//! diff with what is applied, and write the whole set in one registry transaction.

use serde::Serialize;

use super::Lockstep;
use crate::model::definitions::{
    Catalog, DEFAULT_PROJECT, DefinitionError, ObjectKind, Plan, Resolved, StoredObject, plan,
    resolve_text,
};
use crate::model::text::echo;
use crate::model::{Classify, ErrorKind};
use crate::registry::{ApplyReport, ObjectWrite, Registry, RegistryError};

/// Why definitions could not be planned or applied. Nothing is written on any of these.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{}", render_errors(.0))]
    Invalid(Vec<DefinitionError>),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Why a request's project cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("no project `{}` has definitions applied (projects: {})", echo(.project), list(.known))]
    Unknown { project: String, known: Vec<String> },
    #[error(
        "several projects have definitions applied ({}): name one with `--project`, \
         `LOCKSTEP_PROJECT`, the config key `project` or the request's `project` field",
        .known.join(", ")
    )]
    Ambiguous { known: Vec<String> },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl Classify for ApplyError {
    fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_definitions",
            Self::Registry(error) => error.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::Refused,
            Self::Registry(error) => error.kind(),
        }
    }
}

impl Classify for ProjectError {
    fn code(&self) -> &'static str {
        match self {
            Self::Unknown { .. } => "unknown_project",
            Self::Ambiguous { .. } => "ambiguous_project",
            Self::Registry(error) => error.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Unknown { .. } => ErrorKind::NotFound,
            Self::Ambiguous { .. } => ErrorKind::BadRequest,
            Self::Registry(error) => error.kind(),
        }
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none yet; run `lockstep apply`".to_owned()
    } else {
        names.join(", ")
    }
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

/// One project with definitions applied.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectSummary {
    pub name: String,
    pub entities: usize,
    pub sources: usize,
    pub feature_views: usize,
    pub on_demand_views: usize,
    pub feature_services: usize,
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
        self.check_sources(&resolved)?;
        let project = resolved.project().to_owned();
        let current = self.definitions(&project).await?;
        Ok(PlanOutcome {
            plan: plan(&current, &resolved),
            project,
            resolved,
        })
    }

    /// Refuses definitions whose sources would read what this server does not allow
    /// (files outside the roots, queries when they are off), before anything is written.
    fn check_sources(&self, resolved: &Resolved) -> Result<(), ApplyError> {
        let errors: Vec<DefinitionError> = resolved
            .sources
            .iter()
            .filter_map(|(name, source)| {
                let refused = self.sources.check(source).err()?;
                let key = if source.query.is_some() {
                    "query"
                } else {
                    "path"
                };
                Some(DefinitionError {
                    path: format!("sources.{name}.{key}"),
                    line: None,
                    message: refused.to_string(),
                })
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApplyError::Invalid(errors))
        }
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

    /// Checks `project` has definitions applied, or is the default project (whose
    /// definitions are empty before the first apply): requests naming any other project
    /// are refused before anything is read or cached for it.
    pub async fn check_project(&self, project: &str) -> Result<(), ProjectError> {
        known_project(&*self.registry, project).await
    }

    /// The project a call naming `project` (or none) works on; see [`resolve_project`].
    pub async fn project(&self, project: Option<&str>) -> Result<String, ProjectError> {
        resolve_project(&*self.registry, project, self.default_project.as_deref()).await
    }

    /// Every project with definitions applied, with the number of objects of each kind.
    pub async fn projects(&self) -> Result<Vec<ProjectSummary>, ApplyError> {
        let mut summaries = Vec::new();
        for name in self.registry.projects().await? {
            let resolved = self.definitions(&name).await?;
            summaries.push(ProjectSummary {
                entities: resolved.entities.len(),
                sources: resolved.sources.len(),
                feature_views: resolved.feature_views.len(),
                on_demand_views: resolved.on_demand_views.len(),
                feature_services: resolved.feature_services.len(),
                name,
            });
        }
        Ok(summaries)
    }

    /// The project calls naming none work on, if configured.
    pub fn default_project(&self) -> Option<&str> {
        self.default_project.as_deref()
    }

    /// Deletes every definition of `project` (its data in the stores stays: applying the
    /// same definitions again serves it as before).
    pub async fn delete_project(&self, project: &str) -> Result<ApplyReport, ProjectError> {
        let known = self.registry.projects().await?;
        if !known.iter().any(|name| name == project) {
            return Err(ProjectError::Unknown {
                project: project.to_owned(),
                known,
            });
        }
        let report = self.registry.apply(project, Vec::new()).await?;
        self.served.clear();
        tracing::info!(project, deleted = report.deleted.len(), "project deleted");
        Ok(report)
    }

    /// The definitions applied to `project` (empty if none).
    pub async fn definitions(&self, project: &str) -> Result<Resolved, ApplyError> {
        applied_definitions(&*self.registry, project).await
    }
}

/// The project a call works on: the one it names, else the configured `default`, else the
/// only project with definitions applied, else (none applied yet) [`DEFAULT_PROJECT`].
/// With several projects and none named, the call is refused, naming them: guessing would
/// send it to the wrong project's definitions.
pub(crate) async fn resolve_project(
    registry: &dyn Registry,
    named: Option<&str>,
    default: Option<&str>,
) -> Result<String, ProjectError> {
    if let Some(project) = named.or(default) {
        return Ok(project.to_owned());
    }
    let mut known = registry.projects().await?;
    match known.len() {
        0 => Ok(DEFAULT_PROJECT.to_owned()),
        1 => Ok(known.remove(0)),
        _ => Err(ProjectError::Ambiguous { known }),
    }
}

/// Succeeds when `project` has definitions in `registry` (or is the default project);
/// otherwise names the projects that exist.
pub(crate) async fn known_project(
    registry: &dyn Registry,
    project: &str,
) -> Result<(), ProjectError> {
    if project == DEFAULT_PROJECT {
        return Ok(());
    }
    let known = registry.projects().await?;
    if known.iter().any(|name| name == project) {
        return Ok(());
    }
    Err(ProjectError::Unknown {
        project: project.to_owned(),
        known,
    })
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
