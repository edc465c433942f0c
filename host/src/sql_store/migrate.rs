//! Migrations of a store's tables: a `sqlx::migrate!` set applied under a bookkeeping table
//! the store names, so stores sharing a Postgres schema or an SQLite file never read each
//! other's history (sqlx 0.8's `Migrator` always uses `_sqlx_migrations`).

use std::time::Instant;

use sqlx::migrate::{Migration, Migrator};
use sqlx::{AnyConnection, Connection};

/// Where a migration set runs.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// In `schema` (created if missing), migrations serialized per schema and set by an
    /// advisory lock.
    Postgres { schema: &'a str },
    /// In the connection's file, migrations serialized by SQLite's write lock.
    Sqlite,
}

/// Why a migration set could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("migration {version} was applied but failed; repair the database by hand")]
    Dirty { version: i64 },
    #[error("migration {version} was applied with other contents than this version's")]
    Modified { version: i64 },
    #[error("migration {version} was applied by a newer Lockstep; use that version")]
    Unknown { version: i64 },
}

/// Connects to `url` (Postgres or SQLite) and applies `migrator` there (see [`run`]).
pub async fn run_at(
    url: &str,
    target: Target<'_>,
    migrator: &Migrator,
    table: &str,
) -> Result<(), MigrationError> {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(url).await?;
    let migrated = run(&mut conn, target, migrator, table).await;
    conn.close().await?;
    migrated
}

/// Applies the migrations of `migrator` not yet recorded in `table`, in one transaction.
pub async fn run(
    conn: &mut AnyConnection,
    target: Target<'_>,
    migrator: &Migrator,
    table: &str,
) -> Result<(), MigrationError> {
    let mut tx = match target {
        Target::Postgres { schema } => {
            let mut tx = conn.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(format!("lockstep-migrate:{schema}:{table}"))
                .execute(&mut *tx)
                .await?;
            sqlx::raw_sql(&format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; SET LOCAL search_path TO \"{schema}\""
            ))
            .execute(&mut *tx)
            .await?;
            tx
        }
        // IMMEDIATE takes the write lock up front: another process migrating makes this
        // wait (busy timeout), then find the work done.
        Target::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await?,
    };
    let installed_on = match target {
        Target::Postgres { .. } => "TIMESTAMPTZ NOT NULL DEFAULT now()",
        Target::Sqlite => "TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP",
    };
    // The columns of sqlx's own table, so the registry's `_sqlx_migrations` reads as it is.
    sqlx::query(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (version BIGINT PRIMARY KEY, \
         description TEXT NOT NULL, installed_on {installed_on}, success BOOLEAN NOT NULL, \
         checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)"
    ))
    .execute(&mut *tx)
    .await?;
    // `success` as an integer: the `Any` driver decodes no SQLite boolean.
    let applied: Vec<(i64, Vec<u8>, i64)> = sqlx::query_as(&format!(
        "SELECT version, checksum, CAST(CASE WHEN success THEN 1 ELSE 0 END AS BIGINT) \
         FROM {table} ORDER BY version"
    ))
    .fetch_all(&mut *tx)
    .await?;
    let ups: Vec<&Migration> = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .collect();
    for (version, checksum, success) in &applied {
        let version = *version;
        if *success == 0 {
            return Err(MigrationError::Dirty { version });
        }
        match ups.iter().find(|m| m.version == version) {
            None => return Err(MigrationError::Unknown { version }),
            Some(m) if m.checksum.as_ref() != checksum.as_slice() => {
                return Err(MigrationError::Modified { version });
            }
            Some(_) => {}
        }
    }
    for migration in ups {
        if applied
            .iter()
            .any(|(version, ..)| *version == migration.version)
        {
            continue;
        }
        let started = Instant::now();
        sqlx::raw_sql(&migration.sql).execute(&mut *tx).await?;
        sqlx::query(&format!(
            "INSERT INTO {table} (version, description, success, checksum, execution_time) \
             VALUES ($1, $2, TRUE, $3, $4)"
        ))
        .bind(migration.version)
        .bind(migration.description.as_ref())
        .bind(migration.checksum.as_ref())
        .bind(started.elapsed().as_nanos() as i64)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
