//! Host configuration: built-in defaults < a TOML file < `LOCKSTEP__SECTION__KEY` environment
//! variables (plus the conventional `DATABASE_URL`, `REDIS_URL` and `LOCKSTEP_PROJECT`).
//! Unknown keys are errors;
//! secrets (API tokens) come only from the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{Classify, ErrorKind};
use crate::offline::OfflineLocation;
use crate::online::OnlineLocation;
use crate::registry::RegistryLocation;
use crate::runtime::RuntimeConfig;
use crate::runtime::compile::CompileLimits;
use crate::source::{Roots, SourceContext};

/// Prefix of environment overrides: `LOCKSTEP__SERVER__LISTEN=0.0.0.0:6566`.
pub const ENV_PREFIX: &str = "LOCKSTEP__";

/// Everything the host can be configured with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The project that commands and requests naming none work on. Without it, the only
    /// project with definitions applied; with several, such calls are refused.
    pub project: Option<String>,
    pub server: ServerConfig,
    pub registry: RegistryConfig,
    pub offline: OfflineConfig,
    pub online: OnlineConfig,
    pub backfill: BackfillConfig,
    pub sources: SourcesConfig,
    pub runtime: RuntimeConfig,
    pub feature_logging: FeatureLoggingConfig,
    pub log: LogConfig,
    /// Where each setting that was given came from, by `section.key`: not a setting itself.
    #[serde(skip)]
    pub origins: Origins,
}

/// How the host logs (which events: `LOCKSTEP_LOG`, else `RUST_LOG`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (human-readable lines) or `json` (one JSON object per line); `--log-format`
    /// overrides it.
    pub format: LogFormat,
}

/// The shape of log lines on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Where settings came from: the config file or an environment variable, by `section.key`.
/// A setting absent here has its built-in default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(std::collections::BTreeMap<String, String>);

impl Origins {
    /// Where `section.key` was set (`config file lockstep.toml`, `DATABASE_URL`, …), if it was.
    pub fn of(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn set(&mut self, key: String, origin: String) {
        self.0.insert(key, origin);
    }
}

/// The HTTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Without API tokens only a loopback address is allowed.
    pub listen: SocketAddr,
    /// Largest JSON or definitions body, in bytes.
    pub max_body_bytes: usize,
    /// Largest Parquet body of entity rows sent to `POST /training-set`, in bytes.
    pub max_entity_rows_bytes: usize,
    /// Whole-request deadline, in milliseconds.
    pub request_timeout_ms: u64,
    /// Time a client has to send a request's headers, in milliseconds (slow-client guard).
    pub header_timeout_ms: u64,
    /// Uploads compiled at the same time; the rest wait their turn.
    pub max_concurrent_compiles: usize,
    /// Longest an upload's compile and smoke run may take, in milliseconds.
    pub compile_timeout_ms: u64,
    /// The `lockstep` executable uploads are first compiled in (as `lockstep
    /// compile-worker`, killed at `compile_timeout_ms`); by default this very executable.
    pub compile_worker: Option<PathBuf>,
    /// Heap limit of the compile worker (`RLIMIT_DATA`: its private writable mappings,
    /// typically 3 to 5 times its peak resident memory), in bytes: a component needing more
    /// is refused (`compile_memory_limit`).
    pub compile_memory_bytes: u64,
    /// At shutdown, how long open connections are still served after the listener closes,
    /// so requests already sent on keep-alive connections are read, in milliseconds.
    pub shutdown_grace_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 6566)),
            max_body_bytes: 2 << 20,
            max_entity_rows_bytes: 256 << 20,
            request_timeout_ms: 90_000,
            header_timeout_ms: 10_000,
            max_concurrent_compiles: 2,
            compile_timeout_ms: 60_000,
            compile_worker: None,
            compile_memory_bytes: 2 << 30,
            shutdown_grace_ms: 250,
        }
    }
}

impl ServerConfig {
    /// Where and how uploads are compiled first.
    pub fn compile_limits(&self) -> CompileLimits {
        let worker = self.compile_worker.clone().unwrap_or_else(|| {
            std::env::current_exe().unwrap_or_else(|_| PathBuf::from("lockstep"))
        });
        CompileLimits {
            worker,
            timeout: Duration::from_millis(self.compile_timeout_ms),
            max_memory_bytes: self.compile_memory_bytes,
        }
    }

    /// Rejects settings that cannot work together, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_concurrent_compiles == 0 {
            return Err("server.max_concurrent_compiles must be positive".into());
        }
        if self.request_timeout_ms == 0 || self.header_timeout_ms == 0 {
            return Err("server timeouts must be positive".into());
        }
        if self.compile_timeout_ms >= self.request_timeout_ms {
            return Err(format!(
                "server.compile_timeout_ms ({}) must be below server.request_timeout_ms ({}), or uploads end as request timeouts",
                self.compile_timeout_ms, self.request_timeout_ms
            ));
        }
        Ok(())
    }
}

/// Where definitions and transform blobs are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// `postgres://…`; when absent, the embedded SQLite file below is used.
    pub database_url: Option<String>,
    /// Postgres schema of Lockstep's tables.
    pub schema: String,
    /// Embedded registry file.
    pub sqlite_path: PathBuf,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            database_url: None,
            schema: "lockstep".to_owned(),
            sqlite_path: PathBuf::from(".lockstep/registry.db"),
        }
    }
}

impl RegistryConfig {
    pub fn location(&self) -> RegistryLocation {
        match &self.database_url {
            Some(url) => RegistryLocation::Postgres {
                url: url.clone(),
                schema: self.schema.clone(),
            },
            None => RegistryLocation::Sqlite {
                path: self.sqlite_path.clone(),
            },
        }
    }
}

/// Where feature history and backfill checkpoints are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineConfig {
    /// `postgres://…`; defaults to the registry's database, and without one to the embedded
    /// SQLite file below.
    pub database_url: Option<String>,
    /// Postgres schema of the feature tables and backfill jobs.
    pub schema: String,
    /// Embedded offline store file.
    pub sqlite_path: PathBuf,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        Self {
            database_url: None,
            schema: "lockstep_offline".to_owned(),
            sqlite_path: PathBuf::from(".lockstep/offline.db"),
        }
    }
}

impl Config {
    /// The offline store: its own URL, else the registry's database, else embedded.
    pub fn offline_location(&self) -> OfflineLocation {
        match self
            .offline
            .database_url
            .as_ref()
            .or(self.registry.database_url.as_ref())
        {
            Some(url) => OfflineLocation::Postgres {
                url: url.clone(),
                schema: self.offline.schema.clone(),
            },
            None => OfflineLocation::Sqlite {
                path: self.offline.sqlite_path.clone(),
            },
        }
    }

    /// Where sources are read from: relative paths under `sources.base_dir`, files only
    /// under it and `sources.data_dirs`, `postgres` sources from `sources.postgres_url` or
    /// else the offline store's Postgres.
    pub fn source_context(&self) -> SourceContext {
        let postgres_url =
            self.sources
                .postgres_url
                .clone()
                .or_else(|| match self.offline_location() {
                    OfflineLocation::Postgres { url, .. } => Some(url),
                    OfflineLocation::Sqlite { .. } => None,
                });
        let roots = std::iter::once(&self.sources.base_dir)
            .chain(&self.sources.data_dirs)
            .map(PathBuf::as_path);
        SourceContext {
            base_dir: self.sources.base_dir.clone(),
            roots: Roots::new(roots),
            postgres_url,
            allow_queries: self.sources.allow_queries,
            statement_timeout_ms: self.sources.statement_timeout_ms,
        }
    }
}

/// Where the latest feature values are served from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnlineConfig {
    /// `redis://…` for one server, `redis+cluster://host:port,host:port…` for a Redis
    /// Cluster (any of its nodes; `rediss+…` with TLS); when absent, the embedded SQLite
    /// file below is used.
    pub redis_url: Option<String>,
    /// Prefix of every key (`{namespace}:…`), so several deployments can share a server.
    pub namespace: String,
    /// Embedded online store file.
    pub sqlite_path: PathBuf,
    /// Longest a Redis round trip (connecting included) may take, in milliseconds.
    pub timeout_ms: u64,
    /// How long a server reuses definitions for online requests before reading them again,
    /// in milliseconds. On a Postgres registry every server hears of an `apply` (or an
    /// alias move) through any of them at once; this is the fallback while it cannot, and
    /// how soon an embedded registry's server sees another process's apply.
    pub definitions_refresh_ms: u64,
    /// Every how many on-demand evaluations one is re-checked row-wise, off the request path
    /// (its sampled rows re-run alone and compared bit for bit); 1 checks every one.
    pub row_check_every: u64,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            namespace: "lockstep".to_owned(),
            sqlite_path: PathBuf::from(".lockstep/online.db"),
            timeout_ms: 250,
            definitions_refresh_ms: 1_000,
            row_check_every: 20,
        }
    }
}

impl OnlineConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.timeout_ms == 0 {
            return Err("online.timeout_ms must be positive".into());
        }
        if self.row_check_every == 0 {
            return Err("online.row_check_every must be positive".into());
        }
        crate::online::check_namespace(&self.namespace)
            .map_err(|message| format!("online.namespace: {message}"))
    }

    /// The deadline of every online store round trip.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl Config {
    /// The online store: Redis when a URL is set, else embedded.
    pub fn online_location(&self) -> OnlineLocation {
        let namespace = self.online.namespace.clone();
        match &self.online.redis_url {
            Some(url) => OnlineLocation::Redis {
                url: url.clone(),
                namespace,
            },
            None => OnlineLocation::Embedded {
                path: self.online.sqlite_path.clone(),
                namespace,
            },
        }
    }
}

/// How backfills split and run their work.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackfillConfig {
    /// Source rows per chunk, the unit of checkpointing and of work sharing.
    pub chunk_rows: usize,
    /// Rows per transform call.
    pub batch_rows: usize,
    /// Chunks worked on at once by one process.
    pub workers: usize,
    /// A chunk's lease; renewed while it is worked on, taken over by another worker when
    /// it lapses (the worker died).
    pub lease_seconds: f64,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        Self {
            chunk_rows: 100_000,
            batch_rows: 16_384,
            workers: 2,
            lease_seconds: 30.0,
        }
    }
}

impl BackfillConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.chunk_rows == 0 || self.batch_rows == 0 || self.workers == 0 {
            return Err("backfill.chunk_rows, batch_rows and workers must be positive".into());
        }
        if !(self.lease_seconds >= 0.5 && self.lease_seconds <= 86_400.0) {
            return Err("backfill.lease_seconds must be between 0.5 and 86400".into());
        }
        Ok(())
    }
}

/// How sampled online responses (feature services with `logging`) reach the offline store:
/// the request path only offers a response to a bounded queue, and one background task
/// writes what it holds in batches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureLoggingConfig {
    /// Logged responses waiting to be written; when full, a response's log is dropped (and
    /// counted) rather than slowing the request.
    pub queue_capacity: usize,
    /// Logged responses (rows of the `feature_log` table) written per offline-store write.
    pub batch_rows: usize,
    /// Longest a logged response waits for its batch to fill before it is written, in
    /// milliseconds.
    pub flush_ms: u64,
}

impl Default for FeatureLoggingConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 10_000,
            batch_rows: 500,
            flush_ms: 1_000,
        }
    }
}

impl FeatureLoggingConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.queue_capacity == 0 || self.batch_rows == 0 || self.flush_ms == 0 {
            return Err(
                "feature_logging.queue_capacity, batch_rows and flush_ms must be positive".into(),
            );
        }
        Ok(())
    }

    /// How long a partial batch waits.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_ms)
    }
}

/// Where batch sources are read from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesConfig {
    /// Directory that relative `path`s of Parquet and CSV sources are under; file sources
    /// may read under it.
    pub base_dir: PathBuf,
    /// Further directories file sources may read (absolute paths in definitions). A path
    /// anywhere else, also through a symlink or `..`, is refused (`source_forbidden`).
    pub data_dirs: Vec<PathBuf>,
    /// The Postgres that `postgres` sources query; defaults to the offline store's. Give it
    /// a role with `SELECT` on the allowed schemas only (see the README's security model).
    pub postgres_url: Option<String>,
    /// Whether `postgres` sources may be a `query` (arbitrary SQL run with the source role's
    /// rights) rather than a `table`. Off unless the operator turns it on.
    pub allow_queries: bool,
    /// `statement_timeout` of every statement a `postgres` source runs, in milliseconds.
    pub statement_timeout_ms: u64,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        Self {
            base_dir: PathBuf::from("."),
            data_dirs: Vec::new(),
            postgres_url: None,
            allow_queries: false,
            statement_timeout_ms: 120_000,
        }
    }
}

impl SourcesConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.statement_timeout_ms == 0 {
            return Err("sources.statement_timeout_ms must be positive".into());
        }
        Ok(())
    }
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Classify for ConfigError {
    fn code(&self) -> &'static str {
        "invalid_config"
    }

    fn kind(&self) -> ErrorKind {
        ErrorKind::BadRequest
    }
}

impl Config {
    /// Loads defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// As [`Config::load`], with the environment given explicitly (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut merged = toml::Table::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let mut origins = Origins::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::File {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
            let origin = format!("config file {}", path.display());
            for key in leaf_keys(&table, "") {
                origins.set(key, origin.clone());
            }
            merge(&mut merged, table);
        }
        // The conventional variables first, then the LOCKSTEP__ ones, each group sorted: an
        // explicit LOCKSTEP__REGISTRY__DATABASE_URL or LOCKSTEP__ONLINE__REDIS_URL wins.
        let mut env: Vec<(Option<&[&str]>, String, String)> = env
            .into_iter()
            .map(|(name, value)| (conventional(&name), name, value))
            .collect();
        env.sort_by(|a, b| (a.0.is_none(), &a.1).cmp(&(b.0.is_none(), &b.1)));
        for (section_key, name, value) in &env {
            let keys: Vec<String> = if let Some(path) = section_key {
                path.iter().map(|&key| key.to_owned()).collect()
            } else if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
                rest.split("__").map(str::to_ascii_lowercase).collect()
            } else {
                continue;
            };
            if keys.iter().any(String::is_empty) {
                return Err(ConfigError::Env {
                    name: name.clone(),
                    message: "expected LOCKSTEP__SECTION__KEY".into(),
                });
            }
            set_path(&mut merged, &keys, scalar(value)).map_err(|message| ConfigError::Env {
                name: name.clone(),
                message,
            })?;
            origins.set(keys.join("."), name.clone());
        }
        let mut config: Config = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_owned()))?;
        if let Some(project) = &config.project {
            check_project(project)?;
        }
        config.runtime.validate().map_err(ConfigError::Invalid)?;
        config.server.validate().map_err(ConfigError::Invalid)?;
        config.backfill.validate().map_err(ConfigError::Invalid)?;
        config.online.validate().map_err(ConfigError::Invalid)?;
        config.sources.validate().map_err(ConfigError::Invalid)?;
        config
            .feature_logging
            .validate()
            .map_err(ConfigError::Invalid)?;
        config.origins = origins;
        Ok(config)
    }
}

impl Config {
    /// Makes `project` the project calls naming none work on (`--project`).
    pub fn set_project(&mut self, project: String) -> Result<(), ConfigError> {
        check_project(&project)?;
        self.project = Some(project);
        Ok(())
    }
}

fn check_project(project: &str) -> Result<(), ConfigError> {
    if crate::model::definitions::is_identifier(project) {
        return Ok(());
    }
    Err(ConfigError::Invalid(format!(
        "project `{}` is not a name ([A-Za-z_][A-Za-z0-9_]*)",
        crate::model::text::echo(project)
    )))
}

/// Every `section.key` path to a value (not a table) in `table`.
fn leaf_keys(table: &toml::Table, prefix: &str) -> Vec<String> {
    table
        .iter()
        .flat_map(|(key, value)| {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => leaf_keys(inner, &path),
                _ => vec![path],
            }
        })
        .collect()
}

/// The setting a conventional environment variable stands for, if `name` is one.
fn conventional(name: &str) -> Option<&'static [&'static str]> {
    match name {
        "DATABASE_URL" => Some(&["registry", "database_url"]),
        "REDIS_URL" => Some(&["online", "redis_url"]),
        "LOCKSTEP_PROJECT" => Some(&["project"]),
        _ => None,
    }
}

/// Interprets an environment value as a TOML scalar when it parses as one (numbers,
/// booleans), as a string otherwise.
fn scalar(value: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {value}")) {
        Ok(mut table) => match table.remove("v") {
            Some(
                v @ (toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_)),
            ) => v,
            _ => toml::Value::String(value.to_owned()),
        },
        Err(_) => toml::Value::String(value.to_owned()),
    }
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(overlay)) => merge(base, overlay),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) -> Result<(), String> {
    let (last, sections) = keys.split_last().expect("at least one key");
    let mut current = table;
    for key in sections {
        current = match current
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        {
            toml::Value::Table(next) => next,
            _ => return Err(format!("`{key}` is a value, not a section")),
        };
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = std::env::temp_dir().join(format!("lockstep-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("lockstep.toml");
        std::fs::write(
            &file,
            "[server]\nlisten = \"127.0.0.1:7000\"\nmax_body_bytes = 10\n[runtime]\nfuel_per_row = 5\n",
        )
        .unwrap();
        let config = Config::load_from(
            Some(&file),
            env(&[
                ("LOCKSTEP__SERVER__MAX_BODY_BYTES", "20"),
                ("DATABASE_URL", "postgres://a/b"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.server.listen.port(), 7000);
        assert_eq!(config.server.max_body_bytes, 20);
        assert_eq!(config.runtime.fuel_per_row, 5);
        assert_eq!(
            config.runtime.fuel_per_call,
            RuntimeConfig::default().fuel_per_call
        );
        assert_eq!(
            config.registry.database_url.as_deref(),
            Some("postgres://a/b")
        );
        // Each setting given knows where it came from; the rest have none.
        assert_eq!(
            config.origins.of("registry.database_url"),
            Some("DATABASE_URL")
        );
        assert_eq!(
            config.origins.of("server.max_body_bytes"),
            Some("LOCKSTEP__SERVER__MAX_BODY_BYTES")
        );
        assert_eq!(
            config.origins.of("runtime.fuel_per_row"),
            Some(format!("config file {}", file.display()).as_str())
        );
        assert_eq!(config.origins.of("online.redis_url"), None);
        assert_eq!(config.log.format, LogFormat::Text);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let error = Config::load_from(None, env(&[("LOCKSTEP__SERVER__LISTN", "x")])).unwrap_err();
        assert!(error.to_string().contains("listn"), "{error}");
        let error = Config::load_from(None, env(&[("LOCKSTEP__NOPE__X", "1")])).unwrap_err();
        assert!(error.to_string().contains("nope"), "{error}");
    }

    #[test]
    fn online_store_is_embedded_unless_a_redis_url_is_set() {
        let config = Config::load_from(None, env(&[])).unwrap();
        assert_eq!(config.online.timeout(), Duration::from_millis(250));
        match config.online_location() {
            OnlineLocation::Embedded { path, namespace } => {
                assert_eq!(path, PathBuf::from(".lockstep/online.db"));
                assert_eq!(namespace, "lockstep");
            }
            other => panic!("expected the embedded store, got {other:?}"),
        }
        let redis = |pairs: &[(&str, &str)]| match Config::load_from(None, env(pairs))
            .unwrap()
            .online_location()
        {
            OnlineLocation::Redis { url, namespace } => (url, namespace),
            other => panic!("expected Redis, got {other:?}"),
        };
        assert_eq!(
            redis(&[("REDIS_URL", "redis://a:6379")]),
            ("redis://a:6379".to_owned(), "lockstep".to_owned())
        );
        // The explicit setting wins over the conventional variable, whatever the order.
        assert_eq!(
            redis(&[
                ("LOCKSTEP__ONLINE__REDIS_URL", "redis://b:6379"),
                ("LOCKSTEP__ONLINE__NAMESPACE", "staging"),
                ("REDIS_URL", "redis://a:6379"),
            ]),
            ("redis://b:6379".to_owned(), "staging".to_owned())
        );
        for (name, value, expected) in [
            ("LOCKSTEP__ONLINE__TIMEOUT_MS", "0", "online.timeout_ms"),
            ("LOCKSTEP__ONLINE__NAMESPACE", "a:b", "online.namespace"),
            ("LOCKSTEP__ONLINE__NAMESPACE", "{tag}", "online.namespace"),
            ("LOCKSTEP__ONLINE__NAMESPACE", "", "online.namespace"),
        ] {
            let error = Config::load_from(None, env(&[(name, value)])).unwrap_err();
            assert!(error.to_string().contains(expected), "{value}: {error}");
        }
    }

    #[test]
    fn values_are_typed_and_validated() {
        let error =
            Config::load_from(None, env(&[("LOCKSTEP__RUNTIME__FUEL_PER_CALL", "0")])).unwrap_err();
        assert!(error.to_string().contains("fuel_per_call"), "{error}");
        let error =
            Config::load_from(None, env(&[("LOCKSTEP__SERVER__LISTEN", "nowhere")])).unwrap_err();
        assert!(matches!(error, ConfigError::Invalid(_)), "{error}");
    }

    #[test]
    fn feature_logging_is_layered_and_validated() {
        let config = Config::load_from(
            None,
            env(&[("LOCKSTEP__FEATURE_LOGGING__QUEUE_CAPACITY", "7")]),
        )
        .unwrap();
        assert_eq!(config.feature_logging.queue_capacity, 7);
        assert_eq!(
            config.feature_logging.batch_rows,
            FeatureLoggingConfig::default().batch_rows
        );
        let error = Config::load_from(None, env(&[("LOCKSTEP__FEATURE_LOGGING__FLUSH_MS", "0")]))
            .unwrap_err();
        assert!(error.to_string().contains("feature_logging"), "{error}");
        let error = Config::load_from(
            None,
            env(&[("LOCKSTEP__FEATURE_LOGGING__SAMPLE_RATE", "1")]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("sample_rate"), "{error}");
    }
}
