//! The online store in an embedded SQLite file: one `(key, value)` table of blobs, newer-wins
//! multi-row upserts (SQLite compares blobs, and `substr` of a blob, byte by byte), reads
//! with `key IN (…)`, one writer at a time.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Sqlite, Transaction};
use tokio::sync::{Mutex, MutexGuard};

use super::{CompareAndSet, ORDER_LEN, OnlineError, OnlineStore, codec};

/// SQLite allows at most 32766 bound values per statement.
const MAX_VARIABLES: usize = 32_000;

/// How long a write waits for another process's writer before reporting unavailable.
const LOCK_WAIT: Duration = Duration::from_secs(5);

impl From<sqlx::Error> for OnlineError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                Self::Corrupt(error.to_string())
            }
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// The online store in one SQLite file.
pub struct EmbeddedStore {
    pool: SqlitePool,
    /// Writes take this lock, so transactions never race to upgrade to writers.
    writer: Mutex<()>,
    /// `{namespace}:`, before every key.
    namespace: Vec<u8>,
}

impl EmbeddedStore {
    /// Opens (creating the file, its directory and its table if missing) the store at `path`.
    pub async fn open(path: &Path, namespace: &str) -> Result<Self, OnlineError> {
        codec::check_namespace(namespace).map_err(OnlineError::Input)?;
        let unavailable = |e: &dyn std::fmt::Display| {
            OnlineError::Unavailable(format!("{}: {e}", path.display()))
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| unavailable(&e))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| unavailable(&e))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(LOCK_WAIT);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(LOCK_WAIT)
            .connect_with(options)
            .await
            .map_err(|e| unavailable(&e))?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS online (key BLOB PRIMARY KEY, value BLOB NOT NULL) \
             WITHOUT ROWID",
        )
        .execute(&pool)
        .await
        .map_err(|e| unavailable(&e))?;
        Ok(Self {
            pool,
            writer: Mutex::new(()),
            namespace: codec::namespace_prefix(namespace),
        })
    }

    /// `key` under the namespace.
    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.namespace.len() + key.len());
        full.extend_from_slice(&self.namespace);
        full.extend_from_slice(key);
        full
    }

    /// Starts a write transaction, holding the writer lock until it ends. `BEGIN IMMEDIATE`
    /// takes SQLite's write lock up front: another process's writer makes it wait (busy
    /// timeout) instead of failing mid-transaction.
    async fn begin_write(&self) -> Result<WriteTx<'_>, OnlineError> {
        let guard = self.writer.lock().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx { tx, _guard: guard })
    }
}

/// A write transaction with the writer lock held.
struct WriteTx<'a> {
    tx: Transaction<'static, Sqlite>,
    _guard: MutexGuard<'a, ()>,
}

/// The first key after every key that starts with `prefix`, if there is one.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[async_trait]
impl OnlineStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn put(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<u64, OnlineError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let mut written = 0;
        for chunk in entries.chunks(MAX_VARIABLES / 2) {
            let sql = format!(
                "INSERT INTO online (key, value) VALUES {} ON CONFLICT (key) DO UPDATE \
                     SET value = excluded.value \
                     WHERE substr(excluded.value, 1, {ORDER_LEN}) > substr(online.value, 1, {ORDER_LEN})",
                vec!["(?, ?)"; chunk.len()].join(", ")
            );
            let mut query = sqlx::query(&sql);
            for (key, value) in chunk {
                query = query.bind(self.full_key(key)).bind(value.as_slice());
            }
            written += query.execute(&mut *tx.tx).await?.rows_affected();
        }
        tx.tx.commit().await?;
        Ok(written)
    }

    /// One write transaction: each key's value is compared and set under the writer lock.
    async fn compare_and_set(&self, entries: &[CompareAndSet]) -> Result<Vec<bool>, OnlineError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let mut set = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = self.full_key(&entry.key);
            let rows = match &entry.expected {
                Some(expected) => {
                    sqlx::query("UPDATE online SET value = ? WHERE key = ? AND value = ?")
                        .bind(entry.value.as_slice())
                        .bind(key.as_slice())
                        .bind(expected.as_slice())
                }
                None => sqlx::query(
                    "INSERT INTO online (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                )
                .bind(key.as_slice())
                .bind(entry.value.as_slice()),
            }
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
            set.push(rows == 1);
        }
        tx.tx.commit().await?;
        Ok(set)
    }

    async fn get(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, OnlineError> {
        let full: Vec<Vec<u8>> = keys.iter().map(|key| self.full_key(key)).collect();
        let mut found: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        if !full.is_empty() {
            // One read transaction: every chunk sees the same snapshot.
            let mut tx = self.pool.begin().await?;
            for chunk in full.chunks(MAX_VARIABLES) {
                let sql = format!(
                    "SELECT key, value FROM online WHERE key IN ({})",
                    vec!["?"; chunk.len()].join(", ")
                );
                let mut query = sqlx::query_as::<_, (Vec<u8>, Vec<u8>)>(&sql);
                for key in chunk {
                    query = query.bind(key.as_slice());
                }
                found.extend(query.fetch_all(&mut *tx).await?);
            }
            tx.commit().await?;
        }
        Ok(full.iter().map(|key| found.get(key).cloned()).collect())
    }

    async fn clear(&self, prefix: &[u8]) -> Result<u64, OnlineError> {
        let start = self.full_key(prefix);
        let end = prefix_end(&start);
        let mut tx = self.begin_write().await?;
        let result = match &end {
            Some(end) => {
                sqlx::query("DELETE FROM online WHERE key >= ? AND key < ?")
                    .bind(start.as_slice())
                    .bind(end.as_slice())
                    .execute(&mut *tx.tx)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM online WHERE key >= ?")
                    .bind(start.as_slice())
                    .execute(&mut *tx.tx)
                    .await?
            }
        };
        tx.tx.commit().await?;
        Ok(result.rows_affected())
    }

    async fn ping(&self) -> Result<(), OnlineError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A round trip waits for the writer lock at most this long: one writer at a time, so
    /// under contention a round waits for the others'.
    fn timeout(&self) -> Duration {
        LOCK_WAIT
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends_bound_exactly_the_prefixed_keys() {
        assert_eq!(prefix_end(b"ns:"), Some(b"ns;".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff, 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }
}
