//! The online store on Redis: one multiplexed connection that reconnects by itself,
//! newer-wins writes as a Lua script per key (one key per call, so it runs on Redis
//! Cluster), reads as one `MGET`, and a deadline on every round trip so a dead server is an
//! error within the timeout, never a hang.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ErrorKind, RedisError, RedisResult, Script, ServerErrorKind};

use super::{CompareAndSet, OnlineError, OnlineStore, codec};
use crate::endpoint::{ConnectError, Store};

/// Values per pipelined round trip of [`RedisStore::put`].
const PIPELINE_ENTRIES: usize = 1000;

/// Keys asked for per `SCAN` step of [`RedisStore::clear`].
const SCAN_COUNT: usize = 1000;

/// Stores `ARGV[1]` at `KEYS[1]` unless the stored value's first 32 bytes (its order
/// prefix) are >= the new one's; returns 1 when written. Compared byte by byte: Lua's `<` on
/// strings follows the server's locale collation.
const NEWER_WINS: &str = r"
local function newer(a, b)
  for i = 1, 32 do
    local x, y = string.byte(a, i) or -1, string.byte(b, i) or -1
    if x ~= y then return x > y end
  end
  return false
end
local current = redis.call('GET', KEYS[1])
if current and not newer(ARGV[1], current) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

/// Stores `ARGV[3]` at `KEYS[1]` if the stored value is still `ARGV[2]` (when `ARGV[1]` is
/// `1`) or absent (otherwise); returns 1 when written. Strings compare by bytes.
const COMPARE_AND_SET: &str = r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
";

/// The online store on a Redis server.
pub struct RedisStore {
    client: Client,
    config: ConnectionManagerConfig,
    /// Made by the first round trip that finds the server (the manager reconnects by itself
    /// after that): a store opened while Redis is down works once it is up.
    connection: tokio::sync::OnceCell<ConnectionManager>,
    newer_wins: Script,
    compare_and_set: Script,
    /// `{namespace}:`, before every key.
    namespace: Vec<u8>,
    /// `host:port`, for errors: never the URL, which may hold a password.
    address: String,
    timeout: Duration,
}

impl RedisStore {
    /// Connects to `url` within `timeout`: an error when the server is not there.
    pub async fn open(url: &str, namespace: &str, timeout: Duration) -> Result<Self, OnlineError> {
        let store = Self::open_lazily(url, namespace, timeout)?;
        bounded(timeout, store.connect())
            .await
            .map_err(|Retry(error)| {
                let failure = crate::endpoint::classify_redis(&error, timeout);
                ConnectError::new(Store::Online, url, failure)
            })?;
        Ok(store)
    }

    /// Checks `url` and `namespace` without connecting: the first round trip connects, and
    /// until the server answers every call is [`OnlineError::Unavailable`] within `timeout`.
    /// How a server starts while Redis is down.
    pub fn open_lazily(url: &str, namespace: &str, timeout: Duration) -> Result<Self, OnlineError> {
        codec::check_namespace(namespace).map_err(OnlineError::Input)?;
        let client = Client::open(url).map_err(|error| {
            let failure = crate::endpoint::classify_redis(&error, timeout);
            ConnectError::new(Store::Online, url, failure)
        })?;
        let address = client.get_connection_info().addr().to_string();
        // No reconnect retries inside the manager: a caller's deadline is shorter than any
        // backoff. After a failure, the next call starts one fresh attempt (shared by the
        // calls made meanwhile), so the store is back as soon as the server answers.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(0);
        // The scripts are loaded by the first call that finds them missing (`NOSCRIPT`).
        Ok(Self {
            client,
            config,
            connection: tokio::sync::OnceCell::new(),
            newer_wins: Script::new(NEWER_WINS),
            compare_and_set: Script::new(COMPARE_AND_SET),
            namespace: codec::namespace_prefix(namespace),
            address,
            timeout,
        })
    }

    /// The shared connection, made now if no round trip has found the server yet.
    async fn connect(&self) -> RedisResult<ConnectionManager> {
        self.connection
            .get_or_try_init(|| {
                ConnectionManager::new_with_config(self.client.clone(), self.config.clone())
            })
            .await
            .cloned()
    }

    /// `key` under the namespace.
    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.namespace.len() + key.len());
        full.extend_from_slice(&self.namespace);
        full.extend_from_slice(key);
        full
    }

    /// Runs one round trip on the shared connection with the store's deadline. When the
    /// connection turns out to have dropped (a server restart), the manager reconnects and
    /// the round trip is tried once more within the same deadline, so a server that is
    /// back answers the first call after its return. Every round trip is idempotent:
    /// reads, and newer-wins writes.
    async fn bounded<T, F, Fut>(&self, round_trip: F) -> Result<T, OnlineError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let attempt = || async { round_trip(self.connect().await?).await };
        match bounded(self.timeout, attempt()).await {
            Err(Retry(error)) if error.is_connection_dropped() || error.is_io_error() => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                bounded(left, attempt())
                    .await
                    .map_err(|Retry(error)| failed(&self.address, error, self.timeout))
            }
            result => result.map_err(|Retry(error)| failed(&self.address, error, self.timeout)),
        }
    }

    /// Runs `script` once per call (a key and its arguments), pipelined, and returns each
    /// call's integer answer. A server that lost its script cache (restart, `SCRIPT FLUSH`,
    /// failover) answers `NOSCRIPT`: those calls are sent again after `SCRIPT LOAD`, in the
    /// same round trip.
    async fn run_script(
        &self,
        script: &Script,
        calls: &[(&[u8], Vec<&[u8]>)],
    ) -> Result<Vec<u64>, OnlineError> {
        let mut answers = vec![0; calls.len()];
        let mut pending: Vec<usize> = (0..calls.len()).collect();
        for attempt in 0..2 {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            if attempt > 0 {
                pipe.load_script(script).ignore();
            }
            for &index in &pending {
                let (key, args) = &calls[index];
                let mut invocation = script.key(self.full_key(key));
                for arg in args {
                    invocation.arg(*arg);
                }
                pipe.invoke_script(&invocation);
            }
            let pipe = &pipe;
            let results: Vec<RedisResult<u64>> = self
                .bounded(|mut connection| async move { pipe.query_async(&mut connection).await })
                .await?;
            let mut again = Vec::new();
            for (&index, result) in pending.iter().zip(results) {
                match result {
                    Ok(answer) => answers[index] = answer,
                    Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                        again.push(index);
                    }
                    Err(error) => return Err(failed(&self.address, error, self.timeout)),
                }
            }
            if again.is_empty() {
                return Ok(answers);
            }
            pending = again;
        }
        Err(OnlineError::Unavailable(format!(
            "{}: the server does not keep Lockstep's scripts (NOSCRIPT after SCRIPT LOAD)",
            self.address
        )))
    }
}

/// A failed round trip, before it is judged worth a retry or turned into a store error.
struct Retry(RedisError);

/// Runs `round_trip` against the server with the deadline `timeout`; running out of time
/// is an I/O timeout error.
async fn bounded<T>(
    timeout: Duration,
    round_trip: impl Future<Output = RedisResult<T>>,
) -> Result<T, Retry> {
    match tokio::time::timeout(timeout, round_trip).await {
        Ok(result) => result.map_err(Retry),
        Err(_) => Err(Retry(RedisError::from(std::io::Error::from(
            std::io::ErrorKind::TimedOut,
        )))),
    }
}

/// The error for a round trip that did not finish within `timeout`.
fn no_answer(address: &str, timeout: Duration) -> OnlineError {
    OnlineError::Unavailable(format!(
        "{address}: no answer within {} ms",
        timeout.as_millis()
    ))
}

/// A Redis error as a store error: a key holding something else than a string is corrupt
/// data; a timeout (ours or the connection's, the same duration) is no answer; the rest
/// (connections, server refusals) is unavailability.
fn failed(address: &str, error: RedisError, timeout: Duration) -> OnlineError {
    if error.code() == Some("WRONGTYPE") || error.to_string().contains("WRONGTYPE") {
        return OnlineError::Corrupt(format!("{address}: {error}"));
    }
    if error.is_timeout() {
        return no_answer(address, timeout);
    }
    if error.is_connection_refusal() {
        return OnlineError::Unavailable(format!(
            "{address}: connection refused: is Redis running there?"
        ));
    }
    OnlineError::Unavailable(format!("{address}: {error}"))
}

/// `bytes` as a `SCAN MATCH` pattern matching exactly them.
fn glob_escape(bytes: &[u8]) -> Vec<u8> {
    let mut pattern = Vec::with_capacity(bytes.len() + 1);
    for &byte in bytes {
        if matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(byte);
    }
    pattern
}

#[async_trait]
impl OnlineStore for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn put(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<u64, OnlineError> {
        let mut written = 0;
        for chunk in entries.chunks(PIPELINE_ENTRIES) {
            let calls: Vec<(&[u8], Vec<&[u8]>)> = chunk
                .iter()
                .map(|(key, value)| (key.as_slice(), vec![value.as_slice()]))
                .collect();
            written += self
                .run_script(&self.newer_wins, &calls)
                .await?
                .into_iter()
                .sum::<u64>();
        }
        Ok(written)
    }

    async fn compare_and_set(&self, entries: &[CompareAndSet]) -> Result<Vec<bool>, OnlineError> {
        let mut set = Vec::with_capacity(entries.len());
        for chunk in entries.chunks(PIPELINE_ENTRIES) {
            let calls: Vec<(&[u8], Vec<&[u8]>)> = chunk
                .iter()
                .map(|entry| {
                    let args: Vec<&[u8]> = match &entry.expected {
                        Some(expected) => vec![b"1", expected, &entry.value],
                        None => vec![b"0", b"", &entry.value],
                    };
                    (entry.key.as_slice(), args)
                })
                .collect();
            let answers = self.run_script(&self.compare_and_set, &calls).await?;
            set.extend(answers.into_iter().map(|answer| answer == 1));
        }
        Ok(set)
    }

    async fn get(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, OnlineError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut mget = redis::cmd("MGET");
        for key in keys {
            mget.arg(self.full_key(key));
        }
        let mget = &mget;
        self.bounded(|mut connection| async move { mget.query_async(&mut connection).await })
            .await
    }

    /// `SCAN MATCH` and `UNLINK` in steps, each step a round trip with the deadline.
    async fn clear(&self, prefix: &[u8]) -> Result<u64, OnlineError> {
        let mut pattern = glob_escape(&self.full_key(prefix));
        pattern.push(b'*');
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern.as_slice())
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let scan = &scan;
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .bounded(|mut connection| async move { scan.query_async(&mut connection).await })
                .await?;
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(keys);
                let unlink = &unlink;
                let count: u64 = self
                    .bounded(
                        |mut connection| async move { unlink.query_async(&mut connection).await },
                    )
                    .await?;
                removed += count;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn ping(&self) -> Result<(), OnlineError> {
        let ping = redis::cmd("PING");
        let ping = &ping;
        let _: String = self
            .bounded(|mut connection| async move { ping.query_async(&mut connection).await })
            .await?;
        Ok(())
    }
}
