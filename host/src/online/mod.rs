//! The online store: the latest feature row of every entity, one key per (view table,
//! entity), written newer-wins and read in batches. Redis and an embedded SQLite file behind
//! one byte-level trait, with the typed rows layer on top shared by both.

mod aggregates;
mod backoff;
mod codec;
mod embedded;
mod redis;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, RecordBatch};
use async_trait::async_trait;

use crate::aggregate::Engine;
use crate::columnar::ColumnBuilder;
use crate::model::{Classify, Digest, ErrorKind, ViewTable};
use codec::Typed;

pub use self::redis::RedisStore;
pub use aggregates::{InsertedEvents, insert_events, key_of, late_events, write_states};
pub use codec::{ORDER_LEN, check_namespace, order_prefix};
pub use embedded::EmbeddedStore;

/// Values written per [`OnlineStore::put`] call by [`write_rows`]: one pipelined round trip.
const PUT_BATCH: usize = 1000;

/// Where the online store lives.
#[derive(Debug, Clone)]
pub enum OnlineLocation {
    /// `redis://…` (or `rediss://…`), or a cluster's `redis+cluster://host:port,…`, every
    /// key under `{namespace}:`.
    Redis { url: String, namespace: String },
    /// An embedded SQLite file, every key under `{namespace}:` as on Redis.
    Embedded { path: PathBuf, namespace: String },
}

/// Opens the online store at `location`. On Redis, `timeout` bounds connecting and every
/// round trip after, so a dead server is an [`OnlineError::Unavailable`] within it, never a
/// hang; the embedded store has no network and only waits for SQLite's write lock. On both,
/// read-modify-writes retry against other writers for a few times a round trip's deadline.
pub async fn open(
    location: &OnlineLocation,
    timeout: Duration,
) -> Result<Arc<dyn OnlineStore>, OnlineError> {
    Ok(match location {
        OnlineLocation::Redis { url, namespace } => {
            Arc::new(RedisStore::open(url, namespace, timeout).await?)
        }
        OnlineLocation::Embedded { path, namespace } => {
            Arc::new(EmbeddedStore::open(path, namespace).await?)
        }
    })
}

/// As [`open`], but a Redis store does not connect until its first round trip: a server
/// starts (and reports not ready) while Redis is down, and works once Redis is back.
pub async fn open_lazily(
    location: &OnlineLocation,
    timeout: Duration,
) -> Result<Arc<dyn OnlineStore>, OnlineError> {
    Ok(match location {
        OnlineLocation::Redis { url, namespace } => {
            Arc::new(RedisStore::open_lazily(url, namespace, timeout)?)
        }
        OnlineLocation::Embedded { .. } => open(location, timeout).await?,
    })
}

/// Why the online store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    /// Refused or reset connections, server errors, no answer within the timeout.
    #[error("the online store is unavailable: {0}")]
    Unavailable(String),
    /// A stored value that does not decode as a value of its view.
    #[error("online store data is corrupt: {0}")]
    Corrupt(String),
    /// A request the store cannot take: a null join key, a batch of the wrong shape.
    #[error("{0}")]
    Input(String),
    /// Other writers kept changing the same keys until the retries' deadline: contention,
    /// with the store healthy.
    #[error("conflicting writes: {0}")]
    Conflict(String),
    /// The server could not be reached when the store was opened, or its URL is bad.
    #[error(transparent)]
    Connect(#[from] crate::endpoint::ConnectError),
}

impl Classify for OnlineError {
    fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "online_store_unavailable",
            Self::Corrupt(_) => "online_store_corrupt",
            Self::Input(_) => "invalid_online_input",
            Self::Conflict(_) => "conflict",
            Self::Connect(error) if !error.is_retryable() => "invalid_online_input",
            Self::Connect(_) => "online_store_unavailable",
        }
    }

    /// A store that cannot be reached is unavailable, its URL bad or not.
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Unavailable(_) | Self::Connect(_) => ErrorKind::Unavailable,
            Self::Corrupt(_) => ErrorKind::Internal,
            Self::Input(_) => ErrorKind::BadRequest,
            Self::Conflict(_) => ErrorKind::Conflict,
        }
    }
}

impl OnlineError {
    /// Worth retrying later: the store was unreachable or busy with other writers, not the
    /// request wrong.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Conflict(_) => true,
            Self::Connect(error) => error.is_retryable(),
            Self::Corrupt(_) | Self::Input(_) => false,
        }
    }
}

/// Bytes by key, under the store's namespace (which it prepends to every key it is given).
#[async_trait]
pub trait OnlineStore: Send + Sync {
    /// `redis` or `embedded`.
    fn backend(&self) -> &'static str;

    /// Newer-wins: stores each value unless the stored value for its key has an order
    /// prefix (its first [`ORDER_LEN`] bytes) >= the new one's, so an older row never
    /// overwrites a newer one and an equal one is not rewritten. Entries apply in order.
    /// Returns how many were written.
    async fn put(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<u64, OnlineError>;

    /// Sets each entry's key to its value if the stored value is still the expected one
    /// (absent for `None`), atomically per key; says for each whether it was set. What
    /// read-modify-write updates (aggregation states) are built on.
    async fn compare_and_set(&self, entries: &[CompareAndSet]) -> Result<Vec<bool>, OnlineError>;

    /// The values of `keys`, in order, in one round trip (`MGET` on Redis); none without
    /// keys.
    async fn get(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, OnlineError>;

    /// Deletes every key of the namespace that starts with `prefix` (all of them for an
    /// empty prefix), for tests and rebuilding from scratch. Returns how many.
    async fn clear(&self, prefix: &[u8]) -> Result<u64, OnlineError>;

    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), OnlineError>;

    /// The deadline of one round trip (Redis: `online.timeout_ms`; embedded: its wait for
    /// the writer lock): read-modify-writes retry against other writers for a few times
    /// this.
    fn timeout(&self) -> Duration;
}

/// One write of [`OnlineStore::compare_and_set`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompareAndSet {
    pub key: Vec<u8>,
    /// The value the key must still hold; `None`: the key must not exist.
    pub expected: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// The prefix of every key of `table`, for [`OnlineStore::clear`].
pub fn table_prefix(table: &ViewTable) -> Vec<u8> {
    codec::table_prefix(table)
}

/// Writes the latest values of `rows` (the columns of [`ViewTable::row_fields`], as the
/// offline store takes them) newer-wins, in pipelined batches. Returns how many values were
/// written: rows older than (or as old as) what is stored are not.
pub async fn write_rows(
    store: &dyn OnlineStore,
    table: &ViewTable,
    rows: &RecordBatch,
) -> Result<u64, OnlineError> {
    let fields = table.row_fields();
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    let schema = rows.schema();
    let given: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    if given != names {
        return Err(OnlineError::Input(format!(
            "rows for view `{}` have columns ({}), expected ({})",
            table.view,
            given.join(", "),
            names.join(", ")
        )));
    }
    let columns = rows.columns();
    let key_count = table.join_keys.len();
    let key_columns: Vec<&dyn Array> = columns[..key_count].iter().map(AsRef::as_ref).collect();
    let keys = codec::entity_keys(table, &key_columns)?;
    let typed = fields
        .iter()
        .zip(columns)
        .skip(key_count)
        .map(|(field, column)| Typed::new(field, column.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let (Typed::Timestamp(event_ts), Typed::Timestamp(created_ts), Typed::Utf8(digests)) =
        (typed[0], typed[1], typed[typed.len() - 1])
    else {
        unreachable!("row fields are checked against the table's own types");
    };
    for (name, times) in [
        (&names[key_count], event_ts),
        (&names[key_count + 1], created_ts),
    ] {
        if times.null_count() > 0 {
            return Err(OnlineError::Input(format!("`{name}` has nulls")));
        }
    }
    let features = &typed[2..typed.len() - 1];
    let mut last_digest: Option<(&str, Digest)> = None;
    let mut written = 0;
    let mut keys = keys.into_iter();
    let mut entries = Vec::with_capacity(PUT_BATCH.min(rows.num_rows()));
    for row in 0..rows.num_rows() {
        let digest = if digests.is_null(row) {
            None
        } else {
            let text = digests.value(row);
            match last_digest {
                Some((seen, digest)) if seen == text => Some(digest),
                _ => {
                    let digest = text
                        .parse::<Digest>()
                        .map_err(|e| OnlineError::Input(format!("row {row}: {e}")))?;
                    last_digest = Some((text, digest));
                    Some(digest)
                }
            }
        };
        let value = codec::encode_value(
            event_ts.value(row),
            created_ts.value(row),
            digest.as_ref(),
            features,
            row,
        );
        entries.push((keys.next().expect("one key per row"), value));
        if entries.len() == PUT_BATCH {
            written += store.put(&entries).await?;
            entries.clear();
        }
    }
    if !entries.is_empty() {
        written += store.put(&entries).await?;
    }
    Ok(written)
}

/// The stored rows of one request of [`read_rows`], one per requested entity, in order.
#[derive(Debug, Clone)]
pub struct OnlineRows {
    /// Whether a value is stored for the entity.
    pub found: Vec<bool>,
    /// µs since the Unix epoch; `None` where not found.
    pub event_ts: Vec<Option<i64>>,
    pub created_ts: Vec<Option<i64>>,
    /// The transform that computed the row; `None` where not found or computed by none.
    pub transform_digest: Vec<Option<Digest>>,
    /// One array per feature of the view ([`ViewTable::served_features`]), in order, of
    /// its canonical Arrow type; null where not found.
    pub features: Vec<ArrayRef>,
}

impl OnlineRows {
    /// No rows yet, room for `rows`.
    fn with_capacity(rows: usize) -> Self {
        Self {
            found: Vec::with_capacity(rows),
            event_ts: Vec::with_capacity(rows),
            created_ts: Vec::with_capacity(rows),
            transform_digest: Vec::with_capacity(rows),
            features: Vec::new(),
        }
    }

    /// The next entity has a stored value with these times and digest.
    fn push_found(&mut self, event_ts: i64, created_ts: i64, digest: Option<Digest>) {
        self.found.push(true);
        self.event_ts.push(Some(event_ts));
        self.created_ts.push(Some(created_ts));
        self.transform_digest.push(digest);
    }

    /// The next entity has no stored value.
    fn push_missing(&mut self) {
        self.found.push(false);
        self.event_ts.push(None);
        self.created_ts.push(None);
        self.transform_digest.push(None);
    }
}

/// One table's part of a [`read_rows`]: the table, its aggregation engine when it is an
/// aggregated view's (built once, when definitions are loaded), and its join-key columns
/// (one array per join key, in order, all the same length, of the canonical types of
/// [`crate::columnar`]).
#[derive(Debug, Clone, Copy)]
pub struct OnlineRead<'a> {
    pub table: &'a ViewTable,
    pub engine: Option<&'a Engine>,
    pub keys: &'a [ArrayRef],
}

/// Reads the stored rows of several tables' entities with one [`OnlineStore::get`]. An
/// aggregated view's rows are its aggregates as of `now` (µs).
pub async fn read_rows(
    store: &dyn OnlineStore,
    requests: &[OnlineRead<'_>],
    now: i64,
) -> Result<Vec<OnlineRows>, OnlineError> {
    let mut keys = Vec::new();
    let mut ends = Vec::with_capacity(requests.len());
    for request in requests {
        let columns: Vec<&dyn Array> = request.keys.iter().map(AsRef::as_ref).collect();
        keys.extend(codec::entity_keys(request.table, &columns)?);
        ends.push(keys.len());
    }
    let values = store.get(&keys).await?;
    if values.len() != keys.len() {
        return Err(OnlineError::Corrupt(format!(
            "{} values came back for {} keys",
            values.len(),
            keys.len()
        )));
    }
    let mut start = 0;
    requests
        .iter()
        .zip(ends)
        .map(|(request, end)| {
            let range = start..end;
            start = end;
            let (keys, values) = (&keys[range.clone()], &values[range]);
            match (&request.table.aggregation, request.engine) {
                (None, _) => decode_rows(request.table, keys, values),
                (Some(_), Some(engine)) => {
                    aggregates::decode_states(request.table, engine, keys, values, now)
                }
                (Some(_), None) => Err(OnlineError::Input(format!(
                    "view `{}` aggregates its events: its read needs its engine",
                    request.table.view
                ))),
            }
        })
        .collect()
}

/// The rows of `table` stored under `keys`.
fn decode_rows(
    table: &ViewTable,
    keys: &[Vec<u8>],
    values: &[Option<Vec<u8>>],
) -> Result<OnlineRows, OnlineError> {
    let mut builders: Vec<ColumnBuilder> = table
        .features
        .iter()
        .map(|feature| ColumnBuilder::new(feature.value_type))
        .collect();
    let mut rows = OnlineRows::with_capacity(values.len());
    for (key, value) in keys.iter().zip(values) {
        let Some(value) = value else {
            builders.iter_mut().for_each(ColumnBuilder::null);
            rows.push_missing();
            continue;
        };
        let header = codec::decode_value(value, &table.features, &mut builders).map_err(|e| {
            OnlineError::Corrupt(format!("key `{}`: {e}", String::from_utf8_lossy(key)))
        })?;
        rows.push_found(header.event_ts, header.created_ts, header.digest);
    }
    rows.features = builders.into_iter().map(ColumnBuilder::finish).collect();
    Ok(rows)
}
