//! Uploading transforms (checked by the runtime before the registry records them), listing
//! them and moving aliases.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::RecordBatch;
use serde::Serialize;

use super::Lockstep;
use crate::model::definitions::is_identifier;
use crate::model::{Classify, Digest, ErrorKind, TransformVersion};
use crate::registry::{NewTransform, PutOutcome, Registry, RegistryError};
use crate::runtime::compile::CompileCheckError;
use crate::runtime::{LoadError, RunError, Runtime};

/// Longest transform or alias name.
const MAX_NAME_LEN: usize = 64;

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("`{0}` is not a valid transform name: use 1 to 64 letters, digits and `_`")]
    InvalidName(String),
    #[error(transparent)]
    Rejected(#[from] LoadError),
    #[error("compiling and smoke-testing the component took longer than {0:?}")]
    CompileTimeout(std::time::Duration),
    /// The compile worker stopped: over its memory limit (or its time, reported as
    /// [`UploadError::CompileTimeout`]).
    #[error(transparent)]
    Compile(CompileCheckError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl Classify for UploadError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidName(_) => "invalid_name",
            Self::Rejected(load) => load.code(),
            Self::CompileTimeout(_) => "compile_timeout",
            Self::Compile(compile) => compile.code(),
            Self::Registry(registry) => registry.code(),
        }
    }

    /// Out of time: the machine may be busy, retry later.
    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidName(_) => ErrorKind::BadRequest,
            Self::Rejected(load) => load.kind(),
            Self::CompileTimeout(_) => ErrorKind::Unavailable,
            Self::Compile(compile) => compile.kind(),
            Self::Registry(registry) => registry.kind(),
        }
    }
}

/// Why an alias could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum AliasError {
    #[error("`{0}` is not a valid alias: use 1 to 64 letters, digits and `_`")]
    InvalidAlias(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl Classify for AliasError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidAlias(_) => "invalid_alias",
            Self::Registry(registry) => registry.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidAlias(_) => ErrorKind::BadRequest,
            Self::Registry(registry) => registry.kind(),
        }
    }
}

/// A transform name with all its versions and aliases.
#[derive(Debug, Clone, Serialize)]
pub struct TransformSummary {
    pub name: String,
    pub latest: u32,
    pub aliases: BTreeMap<String, u32>,
    pub versions: Vec<TransformVersion>,
}

fn valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN && is_identifier(name)
}

impl Lockstep {
    /// The upload pipeline: name check → the runtime compiles (off the async threads, a few
    /// at a time, under a deadline) and checks the component → smoke run proving it
    /// row-wise over adversarial batch shapes → the registry records it. Identical bytes give the same version.
    pub async fn upload(&self, name: &str, bytes: Vec<u8>) -> Result<PutOutcome, UploadError> {
        if !valid_name(name) {
            return Err(UploadError::InvalidName(name.to_owned()));
        }
        // The permit moves into the blocking task: a compile that outlives its deadline
        // still counts against the limit until it really ends.
        let permit = Arc::clone(&self.compiles)
            .acquire_owned()
            .await
            .expect("the compile semaphore is never closed");
        let runtime = Arc::clone(&self.runtime);
        // Row-wise at every batch size the host will call it with.
        let batch_sizes = [self.backfill.batch_rows as u32];
        let abandoned = Arc::new(AtomicBool::new(false));
        let abandoned_by_caller = Arc::clone(&abandoned);
        let limits = self.compile_limits.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // A component not compiled yet is first compiled by a worker process that is
            // killed at the deadline: a compile bomb never holds the slot past it.
            runtime
                .compile_in_child_first(&limits, &bytes)
                .map_err(|error| match error {
                    CompileCheckError::Timeout(limit) => UploadError::CompileTimeout(limit),
                    other => UploadError::Compile(other),
                })?;
            let info = runtime.load(&bytes)?;
            let smoke = runtime.smoke_test(&info.digest, &batch_sizes);
            // Nobody will store a transform whose upload timed out: free its slot.
            if smoke.is_err() || abandoned.load(Ordering::Relaxed) {
                runtime.unload(&info.digest);
            }
            smoke?;
            Ok::<_, UploadError>((info, bytes))
        });
        let (info, bytes) = match tokio::time::timeout(self.compile_timeout, checked).await {
            Err(_) => {
                abandoned_by_caller.store(true, Ordering::Relaxed);
                return Err(UploadError::CompileTimeout(self.compile_timeout));
            }
            Ok(Err(join)) => {
                return Err(UploadError::Rejected(LoadError::Internal(join.to_string())));
            }
            Ok(Ok(result)) => result?,
        };
        let outcome = self
            .registry
            .put_transform(
                name,
                NewTransform {
                    digest: info.digest,
                    bytes,
                    declared_name: info.signature.name.clone(),
                    declared_version: info.signature.version.clone(),
                    inputs: info.signature.inputs.clone(),
                    outputs: info.signature.outputs.clone(),
                },
            )
            .await?;
        tracing::info!(
            name,
            version = outcome.version.version,
            digest = %info.digest,
            created = outcome.created,
            "transform uploaded"
        );
        Ok(outcome)
    }

    /// Every version of every transform, each marked with why it is unsafe if it is.
    pub(crate) async fn transform_versions(&self) -> Result<Vec<TransformVersion>, RegistryError> {
        let mut versions = self.registry.transforms().await?;
        let unsafe_transforms = self.registry.unsafe_transforms().await?;
        for version in &mut versions {
            version.unsafe_reason = unsafe_transforms.get(&version.digest).cloned();
        }
        Ok(versions)
    }

    /// Fails a transform closed after it was caught breaking the row-wise contract: see
    /// [`mark_unsafe`].
    pub(crate) async fn mark_unsafe(&self, digest: &Digest, reason: &str) {
        mark_unsafe(&self.runtime, &*self.registry, digest, reason).await;
    }

    /// Re-checks a sampled online call off the request path: its sampled rows re-run alone
    /// on a blocking thread; a difference marks the transform unsafe.
    pub(crate) fn recheck_later(&self, digest: Digest, input: RecordBatch, output: RecordBatch) {
        let runtime = Arc::clone(&self.runtime);
        let registry = Arc::clone(&self.registry);
        tokio::spawn(async move {
            let checked = runtime
                .blocking(move |runtime| runtime.recheck_sample(&digest, &input, &output))
                .await;
            match checked {
                Err(error @ RunError::NotRowWise { .. }) => {
                    mark_unsafe(&runtime, &*registry, &digest, &error.to_string()).await;
                }
                Err(error) => {
                    tracing::warn!(%digest, %error, "online row-wise re-check could not run");
                }
                Ok(()) => {}
            }
        });
    }

    /// Quarantines in this process every transform the registry marks unsafe.
    pub(crate) async fn sync_unsafe_transforms(&self) -> Result<(), RegistryError> {
        sync_unsafe_transforms(&*self.registry, &self.runtime).await
    }

    /// Every transform with its versions and aliases, by name.
    pub async fn transforms(&self) -> Result<Vec<TransformSummary>, RegistryError> {
        let versions = self.transform_versions().await?;
        let aliases = self.registry.aliases().await?;
        let mut summaries: BTreeMap<String, TransformSummary> = BTreeMap::new();
        for version in versions {
            let summary =
                summaries
                    .entry(version.name.clone())
                    .or_insert_with(|| TransformSummary {
                        name: version.name.clone(),
                        latest: 0,
                        aliases: BTreeMap::new(),
                        versions: Vec::new(),
                    });
            summary.latest = summary.latest.max(version.version);
            summary.versions.push(version);
        }
        for alias in aliases {
            if let Some(summary) = summaries.get_mut(&alias.name) {
                summary.aliases.insert(alias.alias, alias.version);
            }
        }
        Ok(summaries.into_values().collect())
    }

    /// One transform's versions and aliases, if it exists.
    pub async fn transform(&self, name: &str) -> Result<Option<TransformSummary>, RegistryError> {
        Ok(self
            .transforms()
            .await?
            .into_iter()
            .find(|summary| summary.name == name))
    }

    /// Points `alias` of `name` at `version`.
    pub async fn set_alias(&self, name: &str, alias: &str, version: u32) -> Result<(), AliasError> {
        if !valid_name(alias) {
            return Err(AliasError::InvalidAlias(alias.to_owned()));
        }
        self.registry.set_alias(name, alias, version).await?;
        tracing::info!(name, alias, version, "alias moved");
        Ok(())
    }
}

/// Fails a transform closed after it was caught breaking the row-wise contract: this process
/// never runs it again (`transform_unsafe`), and the registry marks it unsafe, so it is
/// refused for new definitions and by every other process when it next loads it. The
/// metric `lockstep_transform_unsafe` shows it.
async fn mark_unsafe(runtime: &Runtime, registry: &dyn Registry, digest: &Digest, reason: &str) {
    if runtime.quarantined(digest).is_none() {
        tracing::error!(%digest, reason, "transform broke the row-wise contract: marked unsafe");
    }
    runtime.quarantine(digest, reason);
    if let Err(error) = registry.mark_unsafe(digest, reason).await {
        tracing::error!(%digest, %error, "could not record the unsafe transform in the registry");
    }
}

/// Quarantines in `runtime` every transform `registry` marks unsafe (another process may
/// have caught one): on a cold load and on every definitions load.
pub(crate) async fn sync_unsafe_transforms(
    registry: &dyn Registry,
    runtime: &Runtime,
) -> Result<(), RegistryError> {
    for (digest, reason) in registry.unsafe_transforms().await? {
        runtime.quarantine(&digest, &reason);
    }
    Ok(())
}
