//! The registry on SQL, one implementation for both backends through sqlx's `Any` driver:
//! Postgres (tables in a dedicated schema; advisory locks serialize version assignment per
//! transform name and applies per project) and embedded SQLite (one writer at a time).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::{Mutex, MutexGuard};

use super::notify::{self, Change, ChangeFeed};
use super::{
    Alias, ApplyReport, LATEST_OBJECTS_SQL, NewTransform, ObjectRecord, ObjectRow, ObjectWrite,
    PutOutcome, Registry, RegistryError, VERSION_COLUMNS, VersionRow, live_objects, now_micros,
    plan_writes, version_from_row,
};
use crate::endpoint::Store;
use crate::model::{Digest, TransformVersion};
use crate::sql_store::migrate::{self, Target};
use crate::sql_store::{any_pool, check_schema_name, postgres_pool, with_search_path};

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/registry");
/// The registry's applied migrations: the table sqlx's own migrator kept them in.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// How long a registry call waits for a pooled connection before reporting unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database is behind the pool.
enum Backend {
    /// Postgres; the schema names advisory-lock keys so registries in other schemas of the
    /// same database never wait on each other, and the notifications of its changes.
    Postgres { url: String, schema: String },
    /// SQLite: writes take this lock, so transactions never race to upgrade to writers.
    Sqlite { writer: Mutex<()> },
}

/// The registry tables, in Postgres or SQLite.
pub struct SqlRegistry {
    pool: AnyPool,
    backend: Backend,
}

impl SqlRegistry {
    /// Connects to Postgres, creates `schema` if missing, and migrates it.
    pub async fn postgres(url: &str, schema: &str) -> Result<Self, RegistryError> {
        check_schema_name(schema).map_err(RegistryError::Open)?;
        crate::endpoint::probe_postgres(Store::Registry, url, ACQUIRE_TIMEOUT).await?;
        let url = with_search_path(url, schema);
        Self::migrated(
            postgres_pool(Store::Registry, &url, 8, ACQUIRE_TIMEOUT).await?,
            Backend::Postgres {
                url,
                schema: schema.to_owned(),
            },
        )
        .await
    }

    /// Opens (creating if missing) an SQLite file and migrates it.
    pub async fn sqlite(path: &Path) -> Result<Self, RegistryError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                RegistryError::Open(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = any_pool(&url, 4, ACQUIRE_TIMEOUT)
            .await
            .map_err(|e| RegistryError::Open(format!("{}: {e}", path.display())))?;
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await
            .map_err(|e| RegistryError::Open(e.to_string()))?;
        Self::migrated(
            pool,
            Backend::Sqlite {
                writer: Mutex::new(()),
            },
        )
        .await
    }

    /// Runs pending migrations (one set serves both backends; the schema is created if
    /// missing) and wraps the pool.
    async fn migrated(pool: AnyPool, backend: Backend) -> Result<Self, RegistryError> {
        let target = match &backend {
            Backend::Postgres { schema, .. } => Target::Postgres { schema },
            Backend::Sqlite { .. } => Target::Sqlite,
        };
        let mut conn = pool.acquire().await?;
        migrate::run(&mut conn, target, &MIGRATIONS, MIGRATIONS_TABLE)
            .await
            .map_err(|e| RegistryError::Open(format!("migrating the registry: {e}")))?;
        drop(conn);
        Ok(Self { pool, backend })
    }

    /// Begins a write transaction holding the backend's lock for `key` until it ends.
    async fn begin_write(&self, key: &str) -> Result<WriteTx<'_>, RegistryError> {
        match &self.backend {
            Backend::Postgres { schema, .. } => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                    .bind(format!("lockstep:{schema}:{key}"))
                    .execute(&mut *tx)
                    .await?;
                Ok(WriteTx { tx, _guard: None })
            }
            Backend::Sqlite { writer } => {
                let guard = writer.lock().await;
                // IMMEDIATE takes the write lock up front, so a writer in another process
                // (the CLI beside a server) makes this wait (busy timeout), not fail.
                let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                Ok(WriteTx {
                    tx,
                    _guard: Some(guard),
                })
            }
        }
    }
}

/// A write transaction and the lock that serializes it (SQLite); rolls back unless committed.
struct WriteTx<'a> {
    tx: Transaction<'static, Any>,
    _guard: Option<MutexGuard<'a, ()>>,
}

impl SqlRegistry {
    /// Tells every process sharing this registry about `change` when `connection`'s
    /// transaction commits (at once outside one). Only Postgres can: an embedded registry
    /// has one process, whose own writes clear its caches.
    async fn notify(
        &self,
        connection: &mut sqlx::AnyConnection,
        change: Change,
    ) -> Result<(), RegistryError> {
        if let Backend::Postgres { schema, .. } = &self.backend {
            notify::notify(connection, schema, change).await?;
        }
        Ok(())
    }
}

impl WriteTx<'_> {
    async fn commit(self) -> Result<(), RegistryError> {
        self.tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl Registry for SqlRegistry {
    async fn put_transform(
        &self,
        name: &str,
        transform: NewTransform,
    ) -> Result<PutOutcome, RegistryError> {
        let mut tx = self.begin_write(&format!("transform:{name}")).await?;
        let digest = transform.digest.to_string();
        let existing: Option<VersionRow> = sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM transform_versions v JOIN transform_blobs b \
                 ON b.digest = v.digest WHERE v.name = $1 AND v.digest = $2"
        ))
        .bind(name)
        .bind(&digest)
        .fetch_optional(&mut *tx.tx)
        .await?;
        if let Some(row) = existing {
            return Ok(PutOutcome {
                version: version_from_row(row)?,
                created: false,
            });
        }
        sqlx::query(
            "INSERT INTO transform_blobs (digest, bytes, size_bytes) VALUES ($1, $2, $3) \
                 ON CONFLICT (digest) DO NOTHING",
        )
        .bind(&digest)
        .bind(transform.bytes.as_slice())
        .bind(transform.bytes.len() as i64)
        .execute(&mut *tx.tx)
        .await?;
        let (next,): (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT) FROM transform_versions \
                 WHERE name = $1",
        )
        .bind(name)
        .fetch_one(&mut *tx.tx)
        .await?;
        let uploaded_at = now_micros();
        sqlx::query(
            "INSERT INTO transform_versions (name, version, digest, declared_name, \
                 declared_version, inputs, outputs, uploaded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(name)
        .bind(next as i32)
        .bind(&digest)
        .bind(&transform.declared_name)
        .bind(&transform.declared_version)
        .bind(serde_json::to_string(&transform.inputs).expect("fields serialize"))
        .bind(serde_json::to_string(&transform.outputs).expect("fields serialize"))
        .bind(uploaded_at)
        .execute(&mut *tx.tx)
        .await?;
        tx.commit().await?;
        Ok(PutOutcome {
            version: TransformVersion {
                name: name.to_owned(),
                version: next as u32,
                digest: transform.digest,
                declared_name: transform.declared_name.clone(),
                declared_version: transform.declared_version.clone(),
                inputs: transform.inputs.clone(),
                outputs: transform.outputs.clone(),
                size_bytes: transform.bytes.len() as u64,
                unsafe_reason: None,
                uploaded_at_micros: uploaded_at,
            },
            created: true,
        })
    }

    async fn transforms(&self) -> Result<Vec<TransformVersion>, RegistryError> {
        let rows: Vec<VersionRow> = sqlx::query_as(&format!(
            "SELECT {VERSION_COLUMNS} FROM transform_versions v \
             JOIN transform_blobs b ON b.digest = v.digest ORDER BY v.name, v.version"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(version_from_row).collect()
    }

    async fn blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>, RegistryError> {
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT bytes FROM transform_blobs WHERE digest = $1")
                .bind(digest.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(bytes,)| bytes))
    }

    async fn aliases(&self) -> Result<Vec<Alias>, RegistryError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT name, alias, CAST(version AS BIGINT) FROM transform_aliases \
             ORDER BY name, alias",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, alias, version)| Alias {
                name,
                alias,
                version: version as u32,
            })
            .collect())
    }

    async fn set_alias(&self, name: &str, alias: &str, version: u32) -> Result<(), RegistryError> {
        let mut tx = self.begin_write(&format!("transform:{name}")).await?;
        let exists: Option<(String,)> = sqlx::query_as(
            "SELECT digest FROM transform_versions WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(version as i32)
        .fetch_optional(&mut *tx.tx)
        .await?;
        if exists.is_none() {
            return Err(RegistryError::UnknownVersion {
                name: name.to_owned(),
                version,
            });
        }
        sqlx::query(
            "INSERT INTO transform_aliases (name, alias, version, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name, alias) \
                 DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(alias)
        .bind(version as i32)
        .bind(now_micros())
        .execute(&mut *tx.tx)
        .await?;
        self.notify(&mut tx.tx, Change::Transforms).await?;
        tx.commit().await
    }

    async fn projects(&self) -> Result<Vec<String>, RegistryError> {
        // A project whose latest row of some object is not a deletion has live objects.
        let projects: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT d.project FROM definition_objects d WHERE d.spec IS NOT NULL \
             AND d.version = (SELECT MAX(m.version) FROM definition_objects m \
             WHERE m.project = d.project AND m.kind = d.kind AND m.name = d.name) \
             ORDER BY d.project",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(projects)
    }

    async fn objects(&self, project: &str) -> Result<Vec<ObjectRecord>, RegistryError> {
        let rows: Vec<ObjectRow> = sqlx::query_as(LATEST_OBJECTS_SQL)
            .bind(project)
            .fetch_all(&self.pool)
            .await?;
        live_objects(rows)
    }

    async fn apply(
        &self,
        project: &str,
        objects: Vec<ObjectWrite>,
    ) -> Result<ApplyReport, RegistryError> {
        let mut tx = self.begin_write(&format!("apply:{project}")).await?;
        let latest: Vec<ObjectRow> = sqlx::query_as(LATEST_OBJECTS_SQL)
            .bind(project)
            .fetch_all(&mut *tx.tx)
            .await?;
        let (inserts, report) = plan_writes(&latest, objects)?;
        let applied_at = now_micros();
        for (kind, name, version, spec) in inserts {
            sqlx::query(
                "INSERT INTO definition_objects (project, kind, name, version, spec, \
                     applied_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(project)
            .bind(kind)
            .bind(name)
            .bind(version as i32)
            .bind(spec)
            .bind(applied_at)
            .execute(&mut *tx.tx)
            .await?;
        }
        let change = Change::Definitions {
            project: project.to_owned(),
        };
        self.notify(&mut tx.tx, change).await?;
        tx.commit().await?;
        Ok(report)
    }

    async fn mark_unsafe(&self, digest: &Digest, reason: &str) -> Result<(), RegistryError> {
        sqlx::query(
            "INSERT INTO unsafe_transforms (digest, reason, marked_at) VALUES ($1, $2, $3) \
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(digest.to_string())
        .bind(reason)
        .bind(now_micros())
        .execute(&self.pool)
        .await?;
        let mut connection = self.pool.acquire().await?;
        self.notify(&mut connection, Change::Transforms).await
    }

    async fn unsafe_transforms(&self) -> Result<BTreeMap<Digest, String>, RegistryError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT digest, reason FROM unsafe_transforms ORDER BY digest")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(digest, reason)| {
                let digest = digest.parse().map_err(|e| {
                    RegistryError::Corrupt(format!("unsafe transform {digest}: {e}"))
                })?;
                Ok((digest, reason))
            })
            .collect()
    }

    async fn ping(&self) -> Result<(), RegistryError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn watch(&self) -> Option<ChangeFeed> {
        match &self.backend {
            Backend::Postgres { url, schema } => {
                Some(ChangeFeed::listen(url.clone(), schema.clone()))
            }
            Backend::Sqlite { .. } => None,
        }
    }
}
