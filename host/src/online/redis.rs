//! The online store on Redis, one server or a Redis Cluster: one multiplexed connection
//! that reconnects by itself, newer-wins writes as a Lua script per key (one key per call,
//! so each runs on the node owning its key), reads as one `MGET` (on a cluster, split by
//! slot and sent to the nodes in parallel, the answers put back in order), and a deadline on
//! every round trip so a dead server is an error within the timeout, never a hang.
//!
//! On a cluster the client follows `MOVED` and `ASK` (resharding) and refreshes its slot
//! map after a failover; a request made while a failed master's replica is not yet promoted
//! fails within the deadline as unavailable.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Script,
    ServerErrorKind, Value,
};

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

/// The URL schemes of a Redis Cluster: `redis+cluster://[user:password@]host:port,host:port…`.
const CLUSTER_SCHEMES: [(&str, &str); 2] = [
    ("redis+cluster://", "redis://"),
    ("rediss+cluster://", "rediss://"),
];

/// Attempts a cluster round trip gets within the store's deadline: each node answer is
/// awaited for this fraction of it.
const CLUSTER_ATTEMPTS_PER_DEADLINE: u32 = 3;

/// Redirections (`MOVED`, `ASK`) and `TRYAGAIN`s a cluster request follows within its
/// deadline; zero would hand redirections to the caller.
const CLUSTER_RETRIES: u32 = 3;
/// Waits between a cluster request's retries, in milliseconds (a failover makes every
/// shard answer `CLUSTERDOWN` for about a second).
const CLUSTER_RETRY_WAIT_MS: (u64, u64) = (10, 100);

/// The first pause before a cluster round trip caught in a topology change is tried again;
/// each later one waits this much longer.
const CLUSTER_RETRY_PAUSE: Duration = Duration::from_millis(5);

/// How long a cluster connection is kept after a round trip could not reach its node
/// before it is made anew: about the time a failover takes to show in the slot map, so a
/// dead master costs a new connection a few times a second, not on every request.
const CLUSTER_REMAKE_AFTER: Duration = Duration::from_millis(250);

/// How the store reaches Redis.
enum Target {
    Server {
        client: Client,
        config: ConnectionManagerConfig,
    },
    Cluster(ClusterClient),
}

/// A multiplexed connection to a server or a cluster; clones share it.
#[derive(Clone)]
enum Connection {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// The store's connection once made, and when it was made; one caller makes it at a time.
#[derive(Default)]
struct SharedConnection {
    current: std::sync::RwLock<Option<(std::time::Instant, Connection)>>,
    making: tokio::sync::Mutex<()>,
}

impl SharedConnection {
    /// The connection, made by `make` if there is none (once, however many ask at once).
    async fn get_or_make<F, Fut>(&self, make: F) -> RedisResult<Connection>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = RedisResult<Connection>>,
    {
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let _one_at_a_time = self.making.lock().await;
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let connection = make().await?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), connection.clone()));
        Ok(connection)
    }

    fn current(&self) -> Option<Connection> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current.as_ref().map(|(_, connection)| connection.clone())
    }

    /// Drops the connection if it was made more than `age` ago: the next caller makes one.
    fn forget_if_older(&self, age: Duration) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current
            .as_ref()
            .is_some_and(|(made, _)| made.elapsed() >= age)
        {
            *current = None;
        }
    }
}

/// Whether `error` is a cluster's answer while its topology changes: worth asking again.
/// (`TRYAGAIN`, a multi-key command over a slot half moved, is not: the keys are read one
/// by one instead.)
fn in_topology_change(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
        )
    )
}

/// The cluster slot of `key`: CRC16/XMODEM of its hash tag (the first `{…}` with something
/// inside) or of the whole key, modulo 16384.
fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let close = key[open + 1..].iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &key[open + 1..open + 1 + close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % 16_384
}

/// The node URLs of a cluster URL (`redis+cluster://…`), or `None` for a one-server URL.
fn cluster_nodes(url: &str) -> Option<Result<Vec<String>, String>> {
    let (scheme, rest) = CLUSTER_SCHEMES
        .iter()
        .find_map(|(cluster, node)| url.strip_prefix(cluster).map(|rest| (*node, rest)))?;
    let (credentials, hosts) = match rest.rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), rest),
    };
    let hosts = hosts.split('/').next().unwrap_or_default();
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(|host| format!("{scheme}{credentials}{host}"))
        .collect();
    Some(if nodes.is_empty() {
        Err("a cluster URL names at least one node: redis+cluster://host:port[,host:port…]".into())
    } else {
        Ok(nodes)
    })
}

/// `host:port` of every node of a cluster URL, for errors: never the URL's password.
fn cluster_address(nodes: &[String]) -> String {
    let hosts: Vec<&str> = nodes
        .iter()
        .map(|node| {
            let rest = node
                .split_once("://")
                .map_or(node.as_str(), |(_, rest)| rest);
            rest.rsplit_once('@').map_or(rest, |(_, host)| host)
        })
        .collect();
    format!("cluster {}", hosts.join(","))
}

/// The online store on a Redis server or cluster.
pub struct RedisStore {
    target: Target,
    /// Made by the first round trip that finds the server: a store opened while Redis is
    /// down works once it is up.
    connection: SharedConnection,
    newer_wins: Script,
    compare_and_set: Script,
    /// `{namespace}:`, before every key.
    namespace: Vec<u8>,
    /// `host:port` (or `cluster host:port,…`), for errors: never the URL, which may hold a
    /// password.
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
    /// How a server starts while Redis is down. `redis+cluster://host:port,…` (or
    /// `rediss+cluster://`) is a cluster, found from any of the nodes named.
    pub fn open_lazily(url: &str, namespace: &str, timeout: Duration) -> Result<Self, OnlineError> {
        codec::check_namespace(namespace).map_err(OnlineError::Input)?;
        let bad_url = |error: &RedisError| {
            let failure = crate::endpoint::classify_redis(error, timeout);
            ConnectError::new(Store::Online, url, failure)
        };
        let (target, address) = match cluster_nodes(url) {
            Some(nodes) => {
                let nodes = nodes.map_err(OnlineError::Input)?;
                let (min_wait, max_wait) = CLUSTER_RETRY_WAIT_MS;
                let client = ClusterClient::builder(nodes.clone())
                    .connection_timeout(timeout)
                    // Below the deadline: a node's answer that never comes (seen while a slot
                    // moves) fails one attempt, and the store tries again within the deadline.
                    .response_timeout(timeout / CLUSTER_ATTEMPTS_PER_DEADLINE)
                    .retries(CLUSTER_RETRIES)
                    .min_retry_wait(min_wait)
                    .max_retry_wait(max_wait)
                    .build()
                    .map_err(|error| bad_url(&error))?;
                (Target::Cluster(client), cluster_address(&nodes))
            }
            None => {
                let client = Client::open(url).map_err(|error| bad_url(&error))?;
                let address = client.get_connection_info().addr().to_string();
                // No reconnect retries inside the manager: a caller's deadline is shorter
                // than any backoff. After a failure, the next call starts one fresh attempt
                // (shared by the calls made meanwhile), so the store is back as soon as the
                // server answers.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(0);
                (Target::Server { client, config }, address)
            }
        };
        // The scripts are loaded by the first call that finds them missing (`NOSCRIPT`).
        Ok(Self {
            target,
            connection: SharedConnection::default(),
            newer_wins: Script::new(NEWER_WINS),
            compare_and_set: Script::new(COMPARE_AND_SET),
            namespace: codec::namespace_prefix(namespace),
            address,
            timeout,
        })
    }

    /// The shared connection, made now if no round trip has found the server yet (or the
    /// cluster's was forgotten).
    async fn connect(&self) -> RedisResult<Connection> {
        self.connection
            .get_or_make(|| async {
                match &self.target {
                    Target::Server { client, config } => {
                        ConnectionManager::new_with_config(client.clone(), config.clone())
                            .await
                            .map(Connection::Server)
                    }
                    Target::Cluster(client) => {
                        client.get_async_connection().await.map(Connection::Cluster)
                    }
                }
            })
            .await
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
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.bounded_raw(round_trip)
            .await
            .map_err(|error| self.failed(error))
    }

    /// [`RedisStore::bounded`], keeping Redis's error. On a cluster, a round trip caught
    /// in a topology change (a redirection the client could not settle, `CLUSTERDOWN`
    /// during a failover) is tried again until the deadline; one that cannot
    /// reach its node (a dead master) also forgets the connection, so the next one reads
    /// the slot map anew: the client alone would keep asking the dead master for its slots
    /// until some node redirects it.
    async fn bounded_raw<T, F, Fut>(&self, round_trip: F) -> RedisResult<T>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let cluster = matches!(self.target, Target::Cluster(_));
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut attempts = 0u32;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let attempt = async { round_trip(self.connect().await?).await };
            let error = match bounded(left, attempt).await {
                Ok(value) => return Ok(value),
                Err(Retry(error)) => error,
            };
            attempts += 1;
            let lost = error.is_connection_dropped() || error.is_io_error();
            if lost && cluster {
                self.connection.forget_if_older(CLUSTER_REMAKE_AFTER);
            }
            let again = if cluster {
                lost || in_topology_change(&error)
            } else {
                lost && attempts == 1
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !again || left.is_zero() {
                return Err(error);
            }
            if cluster {
                tokio::time::sleep(CLUSTER_RETRY_PAUSE.saturating_mul(attempts).min(left)).await;
            }
        }
    }

    /// Values of `keys` in one `MGET`.
    async fn mget<'k>(
        &self,
        keys: impl Iterator<Item = &'k Vec<u8>>,
    ) -> RedisResult<Vec<Option<Vec<u8>>>> {
        let mut mget = redis::cmd("MGET");
        for key in keys {
            mget.arg(self.full_key(key));
        }
        let mget = &mget;
        self.bounded_raw(|mut connection| async move { mget.query_async(&mut connection).await })
            .await
    }

    /// A Redis error of this store as a store error.
    fn failed(&self, error: RedisError) -> OnlineError {
        failed(&self.address, error, self.timeout)
    }

    /// Values of `keys`, one `GET` each, all at once: what a cluster reads while a slot is
    /// half moved.
    async fn get_one_by_one<'k>(
        &self,
        keys: impl Iterator<Item = &'k Vec<u8>>,
    ) -> Result<Vec<Option<Vec<u8>>>, OnlineError> {
        let values = join_all(keys.map(|key| async move {
            let mut get = redis::cmd("GET");
            get.arg(self.full_key(key));
            let get = &get;
            self.bounded(|mut connection| async move { get.query_async(&mut connection).await })
                .await
        }))
        .await;
        values.into_iter().collect()
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
        if matches!(self.target, Target::Cluster(_)) {
            return self.run_script_on_cluster(script, calls).await;
        }
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

impl RedisStore {
    /// [`RedisStore::run_script`] on a cluster: a pipeline must stay within one slot, so
    /// each call is a request of its own, all sent at once (the node connections pipeline
    /// them on the wire). A call redirected during a resharding is resent alone, never its
    /// neighbours; a node missing the script gets it (`SCRIPT LOAD` reaches every node).
    async fn run_script_on_cluster(
        &self,
        script: &Script,
        calls: &[(&[u8], Vec<&[u8]>)],
    ) -> Result<Vec<u64>, OnlineError> {
        let answers = join_all(calls.iter().map(|(key, args)| async move {
            let mut invocation = script.key(self.full_key(key));
            for arg in args {
                invocation.arg(*arg);
            }
            let invocation = &invocation;
            self.bounded(
                |mut connection| async move { invocation.invoke_async(&mut connection).await },
            )
            .await
        }))
        .await;
        answers.into_iter().collect()
    }

    /// The `host:port` of every master of the cluster, as its slot map names them.
    async fn masters(&self) -> Result<Vec<(String, u16)>, OnlineError> {
        let every_master = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        let Value::Map(answers) = self.route(redis::cmd("PING"), every_master).await? else {
            return Err(OnlineError::Unavailable(format!(
                "{}: the masters' answers are not a map of addresses",
                self.address
            )));
        };
        answers
            .into_iter()
            .map(|(address, _)| {
                let address: String = redis::from_redis_value(address)
                    .map_err(|error| failed(&self.address, error.into(), self.timeout))?;
                let parsed = address
                    .rsplit_once(':')
                    .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)));
                parsed.ok_or_else(|| {
                    OnlineError::Unavailable(format!("{}: a master at {address}?", self.address))
                })
            })
            .collect()
    }

    /// Sends `cmd` where `routing` says, on a cluster, with the store's deadline.
    async fn route(&self, cmd: Cmd, routing: RoutingInfo) -> Result<Value, OnlineError> {
        let (cmd, routing) = (&cmd, &routing);
        self.bounded(|connection| async move {
            match connection {
                Connection::Cluster(mut cluster) => {
                    cluster.route_command(cmd.clone(), routing.clone()).await
                }
                Connection::Server(mut server) => cmd.query_async(&mut server).await,
            }
        })
        .await
    }

    /// `SCAN MATCH pattern` and `UNLINK` in steps on one node (`None`: the one server), each
    /// step a round trip with the deadline; returns the keys removed.
    async fn clear_node(
        &self,
        node: Option<(String, u16)>,
        pattern: &[u8],
    ) -> Result<u64, OnlineError> {
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let answer = match &node {
                Some((host, port)) => {
                    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.clone(),
                        port: *port,
                    });
                    self.route(scan, routing).await?
                }
                None => {
                    let scan = &scan;
                    self.bounded(
                        |mut connection| async move { scan.query_async(&mut connection).await },
                    )
                    .await?
                }
            };
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::from_redis_value(answer)
                .map_err(|error| failed(&self.address, error.into(), self.timeout))?;
            if !keys.is_empty() {
                // On a cluster, split by slot and summed by the client.
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
        if matches!(self.target, Target::Server { .. }) {
            return self
                .mget(keys.iter())
                .await
                .map_err(|error| self.failed(error));
        }
        // One `MGET` per slot, all at once (the node connections pipeline them: a round trip
        // per node), each a one-slot command whose redirections the client follows alone.
        let mut by_slot: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (index, key) in keys.iter().enumerate() {
            by_slot
                .entry(slot(&self.full_key(key)))
                .or_default()
                .push(index);
        }
        let reads = join_all(by_slot.values().map(|indices| async move {
            let slot_keys = indices.iter().map(|&index| &keys[index]);
            match self.mget(slot_keys.clone()).await {
                // A slot half moved answers a multi-key read `TRYAGAIN`; one key follows `ASK`.
                Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::TryAgain) => {
                    self.get_one_by_one(slot_keys).await
                }
                result => result.map_err(|error| self.failed(error)),
            }
        }))
        .await;
        let mut values = vec![None; keys.len()];
        for (indices, read) in by_slot.values().zip(reads) {
            for (&index, value) in indices.iter().zip(read?) {
                values[index] = value;
            }
        }
        Ok(values)
    }

    /// `SCAN MATCH` and `UNLINK` in steps, each step a round trip with the deadline; on a
    /// cluster, on every master.
    async fn clear(&self, prefix: &[u8]) -> Result<u64, OnlineError> {
        let mut pattern = glob_escape(&self.full_key(prefix));
        pattern.push(b'*');
        let nodes = match self.target {
            Target::Cluster(_) => self.masters().await?.into_iter().map(Some).collect(),
            Target::Server { .. } => vec![None],
        };
        let mut removed = 0;
        for node in nodes {
            removed += self.clear_node(node, &pattern).await?;
        }
        Ok(removed)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_their_nodes_and_errors_name_no_password() {
        assert_eq!(cluster_nodes("redis://127.0.0.1:6379"), None);
        let nodes = cluster_nodes("redis+cluster://:pw@10.0.0.1:7000, 10.0.0.2:7001/")
            .unwrap()
            .unwrap();
        assert_eq!(
            nodes,
            ["redis://:pw@10.0.0.1:7000", "redis://:pw@10.0.0.2:7001"]
        );
        assert_eq!(
            cluster_address(&nodes),
            "cluster 10.0.0.1:7000,10.0.0.2:7001"
        );
        assert_eq!(
            cluster_nodes("rediss+cluster://cache:7000")
                .unwrap()
                .unwrap(),
            ["rediss://cache:7000"]
        );
        assert!(cluster_nodes("redis+cluster://").unwrap().is_err());
    }

    #[test]
    fn slots_are_the_servers() {
        // As `CLUSTER KEYSLOT` answers.
        assert_eq!(slot(b"foo"), 12_182);
        assert_eq!(slot(b"somekey"), 11_058);
        assert_eq!(slot(b"ns:{user1000}:profile"), slot(b"user1000"));
        assert_eq!(slot(b"{}x"), slot(b"{}x"));
        assert_ne!(slot(b"a{}b"), slot(b""));
    }
}
