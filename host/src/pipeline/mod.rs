//! The host's operations, composed from runtime, registry, sources and stores: upload and
//! alias transforms, plan and apply definitions, backfill views, build training sets, serve
//! and log online requests, audit logged requests against the offline path. The CLI and the
//! HTTP API both call these, so each operation has one implementation.

mod audit;
mod backfill;
mod definitions;
mod feature_log;
mod features;
mod health;
mod materialize;
mod on_demand;
mod online_answer;
mod online_plan;
mod parity;
mod push;
mod served;
mod serving;
mod training_set;
mod transforms;
mod view_rows;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

pub use audit::{AuditReport, AuditRequest, Cause, Difference};
pub use backfill::{
    BackfillError, BackfillEvent, BackfillRequest, BackfillSummary, PlannedBackfill, StopRequest,
    describe_window,
};
pub use definitions::{ApplyError, ApplyOutcome, PlanOutcome, ProjectError, ProjectSummary};
pub use feature_log::{LoggedFeature, LoggedRequest};
pub use features::{FeatureError, FeatureRequest};
pub use health::{Component, Readiness, ReadyStatus};
pub use materialize::{EARLIEST, MaterializeEvent, MaterializeRequest, MaterializedView};
pub use online_answer::{OnlineColumn, OnlineFeatures, Status};
pub use online_plan::EntityFields;
pub use parity::{ParityDifference, ParityReport};
pub use push::{PushTarget, PushedView};
pub use served::Following;
pub use serving::{EntityRows, OnlineRequest};
pub use training_set::{TrainingSet, TrainingSetEvent, TrainingSetRequest};
pub use transforms::{AliasError, TransformSummary, UploadError};

use crate::config::{BackfillConfig, Config, FeatureLoggingConfig};
use crate::model::{Classify, Digest, ErrorKind};
use crate::offline::{self, OfflineError, OfflineStore};
use crate::online::{OnlineError, OnlineStore};
use crate::registry::{self, Registry, RegistryError};
use crate::runtime::{LoadError, Runtime, Signature, StartError};
use crate::source::SourceContext;

/// One host: its wasm runtime, its registry and its offline store.
pub struct Lockstep {
    runtime: Arc<Runtime>,
    registry: Arc<dyn Registry>,
    offline: Arc<dyn OfflineStore>,
    online: Arc<dyn OnlineStore>,
    served: Arc<served::DefinitionsCache>,
    definitions_refresh: Duration,
    metrics: Arc<crate::metrics::Metrics>,
    /// Offline tables known to exist (created by this process or found).
    ensured: std::sync::Mutex<std::collections::HashSet<String>>,
    sources: SourceContext,
    backfill: BackfillConfig,
    compiles: Arc<Semaphore>,
    compile_timeout: Duration,
    compile_limits: crate::runtime::compile::CompileLimits,
    feature_logging: FeatureLoggingConfig,
    /// Started by the first response logged.
    logger: std::sync::OnceLock<feature_log::FeatureLogger>,
    /// On-demand evaluations so far, and every how many one is re-checked row-wise.
    on_demand_calls: std::sync::atomic::AtomicU64,
    row_check_every: u64,
    /// The project calls naming none work on (`project` in the config).
    default_project: Option<String>,
}

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Runtime(#[from] StartError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Offline(#[from] OfflineError),
    #[error(transparent)]
    Online(#[from] OnlineError),
}

/// Why a pinned transform could not be made ready to run.
#[derive(Debug, thiserror::Error)]
pub enum ReadyError {
    #[error("transform {0} is pinned by the definitions but missing from the registry")]
    Missing(Digest),
    #[error("loading transform {digest}: {error}")]
    Load { digest: Digest, error: LoadError },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl Classify for OpenError {
    fn code(&self) -> &'static str {
        match self {
            Self::Runtime(error) => error.code(),
            Self::Registry(error) => error.code(),
            Self::Offline(error) => error.code(),
            Self::Online(error) => error.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Runtime(error) => error.kind(),
            Self::Registry(error) => error.kind(),
            Self::Offline(error) => error.kind(),
            Self::Online(error) => error.kind(),
        }
    }
}

impl Classify for ReadyError {
    fn code(&self) -> &'static str {
        match self {
            Self::Load { error, .. } => error.code(),
            Self::Missing(_) => "transform_missing",
            Self::Registry(error) => error.code(),
        }
    }

    /// A digest the applied definitions pin but the registry lacks is a bug.
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Load { error, .. } => error.kind(),
            Self::Missing(_) => ErrorKind::Internal,
            Self::Registry(error) => error.kind(),
        }
    }
}

/// Deletes everything the configured stores hold: the registry's and the offline store's
/// Postgres schemas (or SQLite files) are dropped, the online store's namespace cleared.
/// For `lockstep demo`, which starts from nothing on every run.
pub async fn remove_stores(config: &Config) -> Result<(), OpenError> {
    registry::remove(&config.registry.location()).await?;
    offline::remove(&config.offline_location()).await?;
    let online = crate::online::open(&config.online_location(), config.online.timeout()).await?;
    online.clear(&[]).await?;
    Ok(())
}

impl Lockstep {
    /// Starts the runtime and opens (migrating) the configured registry and offline store;
    /// the online store connects on first use (Redis may be down now and up later: a server
    /// starts not ready and recovers).
    pub async fn open(config: &Config) -> Result<Self, OpenError> {
        Self::open_with(config, false).await
    }

    /// As [`Lockstep::open`], connecting to the online store now: for commands that need
    /// it, so Redis being down is said at once, as a connection error naming it.
    pub async fn open_connected(config: &Config) -> Result<Self, OpenError> {
        Self::open_with(config, true).await
    }

    async fn open_with(config: &Config, connect_online: bool) -> Result<Self, OpenError> {
        let runtime = Arc::new(Runtime::new(config.runtime.clone())?);
        let registry = registry::open(&config.registry.location()).await?;
        let offline = offline::open(&config.offline_location()).await?;
        let (location, timeout) = (config.online_location(), config.online.timeout());
        let online = if connect_online {
            crate::online::open(&location, timeout).await?
        } else {
            crate::online::open_lazily(&location, timeout).await?
        };
        Ok(Self::new(runtime, registry, offline, online, config))
    }

    pub fn new(
        runtime: Arc<Runtime>,
        registry: Arc<dyn Registry>,
        offline: Arc<dyn OfflineStore>,
        online: Arc<dyn OnlineStore>,
        config: &Config,
    ) -> Self {
        Self {
            runtime,
            registry,
            offline,
            online,
            served: Arc::default(),
            definitions_refresh: Duration::from_millis(config.online.definitions_refresh_ms),
            ensured: Default::default(),
            metrics: Arc::default(),
            sources: config.source_context(),
            backfill: config.backfill.clone(),
            compiles: Arc::new(Semaphore::new(config.server.max_concurrent_compiles)),
            compile_timeout: Duration::from_millis(config.server.compile_timeout_ms),
            compile_limits: config.server.compile_limits(),
            feature_logging: config.feature_logging.clone(),
            logger: std::sync::OnceLock::new(),
            on_demand_calls: Default::default(),
            row_check_every: config.online.row_check_every.max(1),
            default_project: config.project.clone(),
        }
    }

    /// Whether this on-demand evaluation is re-checked row-wise: the first, then every
    /// `online.row_check_every`-th.
    fn sample_row_check(&self) -> bool {
        let call = self
            .on_demand_calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        call.is_multiple_of(self.row_check_every)
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.registry
    }

    pub fn offline(&self) -> &Arc<dyn OfflineStore> {
        &self.offline
    }

    pub fn online(&self) -> &Arc<dyn OnlineStore> {
        &self.online
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Loads a transform the definitions pin, from the registry, unless already loaded.
    pub async fn ensure_loaded(&self, digest: &Digest) -> Result<Signature, ReadyError> {
        if let Some(signature) = self.runtime.signature(digest) {
            return Ok(signature);
        }
        let bytes = self
            .registry
            .blob(digest)
            .await?
            .ok_or(ReadyError::Missing(*digest))?;
        // Another process may have caught it breaking the row-wise contract.
        self.sync_unsafe_transforms().await?;
        let runtime = Arc::clone(&self.runtime);
        let digest = *digest;
        tokio::task::spawn_blocking(move || runtime.load(&bytes))
            .await
            .map_err(|e| ReadyError::Load {
                digest,
                error: LoadError::Internal(e.to_string()),
            })?
            .map(|info| info.signature)
            .map_err(|error| ReadyError::Load { digest, error })
    }

    /// The feature logger, started (with its writer task on the current runtime) on first
    /// use.
    fn logger(&self) -> &feature_log::FeatureLogger {
        self.logger.get_or_init(|| {
            feature_log::FeatureLogger::start(
                &self.feature_logging,
                Arc::clone(&self.offline),
                Arc::clone(&self.metrics),
            )
        })
    }

    /// Waits until every online response logged so far is in the offline store's feature
    /// log: before an audit, and when a server stops.
    pub async fn flush_feature_logs(&self) -> Result<(), FeatureError> {
        match self.logger.get() {
            Some(logger) => Ok(logger.flush().await?),
            None => Ok(()),
        }
    }
}
