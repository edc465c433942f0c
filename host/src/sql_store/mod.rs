//! SQL plumbing both SQL stores (the registry and the offline store) share: Postgres schema
//! names, `Any` pools said as connection errors, dropping a schema, removing an SQLite file,
//! and migrations under a bookkeeping table of each store's own (`migrate`).

pub mod migrate;

use std::path::Path;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

use crate::endpoint::{ConnectError, Store};

/// Lowercase, so the quoted name in `CREATE SCHEMA` and the unquoted one in `search_path`
/// are the same schema.
pub fn is_schema_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// `Ok` for a usable schema name, else the message saying what one must be.
pub fn check_schema_name(name: &str) -> Result<(), String> {
    if is_schema_name(name) {
        Ok(())
    } else {
        Err(format!(
            "schema `{name}` must be lowercase letters, digits and `_`, at most 63 characters"
        ))
    }
}

/// A pool of `connections` on `url` (Postgres or SQLite) through sqlx's `Any` driver.
pub async fn any_pool(
    url: &str,
    connections: u32,
    acquire_timeout: Duration,
) -> Result<AnyPool, sqlx::Error> {
    install_default_drivers();
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(acquire_timeout)
        .connect(url)
        .await
}

/// A pool on `store`'s Postgres, a failure said as a [`ConnectError`].
pub async fn postgres_pool(
    store: Store,
    url: &str,
    connections: u32,
    acquire_timeout: Duration,
) -> Result<AnyPool, ConnectError> {
    any_pool(url, connections, acquire_timeout)
        .await
        .map_err(|e| {
            let failure = crate::endpoint::classify_sqlx(&e, acquire_timeout);
            ConnectError::new(store, url, failure)
        })
}

/// `url` with `schema` first on the search path of every connection.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

/// Why a schema could not be dropped.
#[derive(Debug)]
pub enum DropError {
    Connect(ConnectError),
    Other(String),
}

/// Drops Postgres schema `schema` (of `store`) and everything in it, if it exists.
pub async fn drop_schema(store: Store, url: &str, schema: &str) -> Result<(), DropError> {
    const TIMEOUT: Duration = Duration::from_secs(5);
    check_schema_name(schema).map_err(DropError::Other)?;
    install_default_drivers();
    crate::endpoint::probe_postgres(store, url, TIMEOUT)
        .await
        .map_err(DropError::Connect)?;
    let pool = postgres_pool(store, url, 1, TIMEOUT)
        .await
        .map_err(DropError::Connect)?;
    let dropped = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&pool)
        .await
        .map_err(|e| DropError::Other(format!("dropping schema `{schema}`: {e}")));
    pool.close().await;
    dropped.map(drop)
}

/// Removes an SQLite database file and its write-ahead log, where they exist.
pub fn remove_sqlite_file(path: &Path) -> Result<(), String> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", Path::new(&name).display())),
        }
    }
    Ok(())
}
