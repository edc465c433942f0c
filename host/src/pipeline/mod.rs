//! The host's operations, composed from runtime, registry and model: upload a transform,
//! list and alias transforms, plan and apply definitions. The CLI and the HTTP API both
//! call these, so each operation has one implementation.

mod definitions;
mod transforms;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

pub use definitions::{ApplyError, ApplyOutcome, PlanOutcome};
pub use transforms::{AliasError, TransformSummary, UploadError};

use crate::config::Config;
use crate::registry::{self, Registry, RegistryError};
use crate::runtime::{Runtime, StartError};

/// One host: its wasm runtime and its registry.
pub struct Lockstep {
    runtime: Arc<Runtime>,
    registry: Arc<dyn Registry>,
    compiles: Arc<Semaphore>,
    compile_timeout: Duration,
}

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Runtime(#[from] StartError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl Lockstep {
    /// Starts the runtime and opens (migrating) the configured registry.
    pub async fn open(config: &Config) -> Result<Self, OpenError> {
        let runtime = Arc::new(Runtime::new(config.runtime.clone())?);
        let registry = registry::open(&config.registry.location()).await?;
        Ok(Self::new(runtime, registry, config))
    }

    pub fn new(runtime: Arc<Runtime>, registry: Arc<dyn Registry>, config: &Config) -> Self {
        Self {
            runtime,
            registry,
            compiles: Arc::new(Semaphore::new(config.server.max_concurrent_compiles)),
            compile_timeout: Duration::from_millis(config.server.compile_timeout_ms),
        }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.registry
    }

    /// Succeeds when the registry answers: the readiness probe.
    pub async fn ready(&self) -> Result<(), RegistryError> {
        self.registry.ping().await
    }
}
