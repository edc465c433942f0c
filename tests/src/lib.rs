//! Fixtures shared by Lockstep's integration tests and benchmarks: guest components built
//! once per process with the same code as `lockstep build`.

pub mod cluster;
pub mod feast;
pub mod load;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::Int64Type;
use lockstep::model::Digest;
use lockstep::runtime::{Runtime, RuntimeConfig};
use lockstep::toolchain::{self, BuildOptions};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repo")
        .to_owned()
}

/// Components of one guest workspace, by cargo package name.
#[derive(Debug)]
pub struct Guests(BTreeMap<String, Vec<u8>>);

impl Guests {
    /// The component bytes of `package`; panics with the known names if absent.
    pub fn get(&self, package: &str) -> &[u8] {
        self.0.get(package).unwrap_or_else(|| {
            panic!(
                "no guest package `{package}`; built: {:?}",
                self.0.keys().collect::<Vec<_>>()
            )
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

/// The first-party transforms of `transforms/`.
pub fn first_party() -> &'static Guests {
    static GUESTS: OnceLock<Guests> = OnceLock::new();
    GUESTS.get_or_init(|| build_guests("transforms"))
}

/// The hostile and special guests of `tests/guests/`.
pub fn test_guests() -> &'static Guests {
    static GUESTS: OnceLock<Guests> = OnceLock::new();
    GUESTS.get_or_init(|| build_guests("tests/guests"))
}

/// Builds every cdylib crate of a guest workspace into `target/guests` (a target directory
/// of its own, so the nested cargo never waits on the one running the tests).
fn build_guests(workspace: &str) -> Guests {
    let root = repo_root();
    let options = BuildOptions {
        target_dir: Some(root.join("target").join("guests")),
        quiet: true,
    };
    let built = toolchain::build(&root.join(workspace), &options)
        .unwrap_or_else(|e| panic!("building guests in {workspace}: {e}"));
    Guests(
        built
            .into_iter()
            .map(|component| (component.package, component.bytes))
            .collect(),
    )
}

/// A runtime with test-friendly limits (small pools, a 64 MiB memory cap).
pub fn test_runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        max_instances: 32,
        max_memory_bytes: 64 << 20,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts")
}

/// A one-column `x: int64` batch, the input of every test guest.
pub fn xs(values: impl IntoIterator<Item = i64>) -> RecordBatch {
    let values: Vec<i64> = values.into_iter().collect();
    RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from(values)) as ArrayRef)])
        .expect("one int64 column")
}

/// Column `index` of `batch`, an int64 column without nulls, as values.
pub fn ints(batch: &RecordBatch, index: usize) -> Vec<i64> {
    batch
        .column(index)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

/// Loads `bytes` into `runtime`, panicking with the typed error if it is refused.
pub fn load(runtime: &Runtime, bytes: &[u8]) -> Digest {
    match runtime.load(bytes) {
        Ok(info) => info.digest,
        Err(e) => panic!("load failed: [{}] {e}", lockstep::model::Classify::code(&e)),
    }
}

/// The `lockstep` CLI cargo builds beside the tests (`src/bin/lockstep-cli.rs`): what
/// uploads are compiled in first, since a test binary is no `lockstep` to re-execute.
pub fn lockstep_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> or target/<profile>/<bin>
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("lockstep-cli"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("no lockstep-cli beside {}", exe.display()))
}

/// Postgres for tests: `LOCKSTEP_TEST_DATABASE_URL`, or the local server's `test` database.
pub fn test_database_url() -> String {
    std::env::var("LOCKSTEP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Redis for tests: `LOCKSTEP_TEST_REDIS_URL`, or the local server.
pub fn test_redis_url() -> String {
    std::env::var("LOCKSTEP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A fresh directory for one test's files, named after `prefix`, removed when dropped.
/// Derefs to its path.
pub fn test_dir(prefix: &str) -> TestDir {
    TestDir(
        tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .expect("create a test directory"),
    )
}

/// See [`test_dir`].
pub struct TestDir(tempfile::TempDir);

impl std::ops::Deref for TestDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// A name no other test (or earlier run) uses: for schemas, files and key prefixes.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The offline store's schema beside a test registry schema.
fn offline_schema(registry_schema: &str) -> String {
    format!("{registry_schema}_offline")
}

/// Which registry a test server uses; each test gets its own schema or file.
#[derive(Debug, Clone)]
pub enum TestBackend {
    Postgres { schema: String },
    Sqlite { path: PathBuf },
}

impl TestBackend {
    pub fn postgres() -> Self {
        TestBackend::Postgres {
            schema: unique_name("lockstep_test"),
        }
    }

    pub fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(unique_name("lockstep-test"));
        TestBackend::Sqlite {
            path: dir.join("registry.db"),
        }
    }

    /// A config pointing at this backend, with test-friendly runtime limits.
    pub fn config(&self) -> lockstep::config::Config {
        let mut config = lockstep::config::Config::default();
        config.server.compile_worker = Some(lockstep_exe());
        config.runtime.max_instances = 32;
        config.runtime.max_memory_bytes = 64 << 20;
        match self {
            TestBackend::Postgres { schema } => {
                config.registry.database_url = Some(test_database_url());
                config.registry.schema = schema.clone();
                config.offline.schema = offline_schema(schema);
                config.online.redis_url = Some(test_redis_url());
                config.online.namespace = schema.clone();
            }
            TestBackend::Sqlite { path } => {
                config.registry.sqlite_path = path.clone();
                config.offline.sqlite_path = path.with_file_name("offline.db");
                config.online.sqlite_path = path.with_file_name("online.db");
            }
        }
        config
    }

    /// Drops the schema or deletes the file.
    pub async fn cleanup(&self) {
        match self {
            TestBackend::Postgres { schema } => {
                let redis = lockstep::online::RedisStore::open(
                    &test_redis_url(),
                    schema,
                    std::time::Duration::from_secs(2),
                )
                .await;
                if let Ok(redis) = redis {
                    use lockstep::online::OnlineStore as _;
                    let _ = redis.clear(&[]).await;
                }
                if let Ok(pool) = sqlx::PgPool::connect(&test_database_url()).await {
                    for schema in [schema.clone(), offline_schema(schema)] {
                        let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                        let _ = sqlx::query(&drop).execute(&pool).await;
                    }
                    pool.close().await;
                }
            }
            TestBackend::Sqlite { path } => {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
    }
}

/// A `lockstep serve` running in this process on a loopback port.
pub struct TestServer {
    pub url: String,
    pub client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Opens the backend (migrating it) and serves on 127.0.0.1:0; `tokens` is the
    /// `LOCKSTEP_TOKENS` spec, `None` for the open dev mode.
    pub async fn start(backend: &TestBackend, tokens: Option<&str>) -> TestServer {
        Self::start_with(backend.config(), tokens).await
    }

    /// As [`TestServer::start`], with a config of the caller's.
    pub async fn start_with(config: lockstep::config::Config, tokens: Option<&str>) -> TestServer {
        use std::sync::Arc;
        let lockstep = lockstep::pipeline::Lockstep::open(&config)
            .await
            .expect("open the registry");
        let access = lockstep::api::auth::Access::from_spec(tokens).expect("token spec");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(lockstep::api::AppState {
            lockstep,
            access,
            server: config.server,
        });
        let task = tokio::spawn(async move {
            lockstep::api::serve(state, listener).await.unwrap();
        });
        TestServer {
            url,
            client: reqwest::Client::new(),
            task,
        }
    }

    /// Stops serving (the in-process equivalent of killing the server).
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.at("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }
}

/// The movie-recommendation example's definitions file.
pub fn movie_definitions() -> String {
    std::fs::read_to_string(repo_root().join("examples/movie-recommendation/lockstep.toml"))
        .expect("the example definitions")
}

/// Uploads the movie example's transforms under the names its definitions use and applies
/// the definitions.
pub async fn apply_movie_example(lockstep: &lockstep::pipeline::Lockstep) {
    for (package, name) in [
        ("movie-watch", "movie_watch_features"),
        ("movie-scorer", "movie_recommendation_scorer"),
    ] {
        lockstep
            .upload(name, first_party().get(package).to_vec())
            .await
            .unwrap_or_else(|e| panic!("upload {name}: {e}"));
    }
    lockstep
        .apply(&movie_definitions())
        .await
        .expect("apply the movie example");
}

/// The fraud-detection example's definitions file.
pub fn fraud_definitions() -> String {
    std::fs::read_to_string(repo_root().join("examples/fraud-detection/lockstep.toml"))
        .expect("the example definitions")
}

/// Uploads the fraud example's transforms under the names its definitions use and applies
/// the definitions.
pub async fn apply_fraud_example(lockstep: &lockstep::pipeline::Lockstep) {
    for (package, name) in [
        ("fraud-txn", "fraud_transaction_features"),
        ("fraud-scorer", "fraud_transaction_scorer"),
    ] {
        lockstep
            .upload(name, first_party().get(package).to_vec())
            .await
            .unwrap_or_else(|e| panic!("upload {name}: {e}"));
    }
    lockstep
        .apply(&fraud_definitions())
        .await
        .expect("apply the fraud example");
}

/// Writes `config` as a TOML file for the `lockstep` binary's `--config`.
pub fn write_config(config: &lockstep::config::Config, path: &Path) {
    let text = toml::to_string(config).expect("config serializes");
    std::fs::write(path, text).expect("write config file");
}

/// A `redis-server` of a test's own on a free loopback port, for killing and restarting
/// (never the shared server). Killed with SIGKILL when dropped.
pub struct OwnRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self { port, child: None };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no chance to close connections cleanly; the data is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the running server's process.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server is running");
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Starts (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is on the PATH");
        self.child = Some(child);
        wait_for_redis(self.port);
    }
}

/// Waits until the Redis on loopback `port` answers `PING`.
pub(crate) fn wait_for_redis(port: u16) {
    use std::io::{Read as _, Write as _};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answered = std::net::TcpStream::connect(("127.0.0.1", port))
            .and_then(|mut stream| {
                stream.write_all(b"PING\r\n")?;
                let mut reply = [0u8; 7];
                stream.read_exact(&mut reply)?;
                Ok(&reply == b"+PONG\r\n")
            })
            .unwrap_or(false);
        if answered {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server on port {port} never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Postgres cluster of a test's own on a free loopback port (trust auth, user
/// `postgres`, database `postgres`), for stopping and restarting (never the shared server).
/// Run as the `postgres` OS user when the tests run as root (Postgres refuses root), with
/// its data directory in a temp dir; stopped and removed when dropped.
pub struct OwnPostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    running: bool,
}

impl OwnPostgres {
    /// `initdb`, then starts it and waits until it accepts connections.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Postgres server binaries in /usr/lib/postgresql/*/bin")
            .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .max()
            .expect("initdb in /usr/lib/postgresql/*/bin");
        let dir = std::env::temp_dir().join(unique_name("lockstep-own-postgres"));
        let mut server = Self {
            port,
            dir,
            bin,
            running: false,
        };
        server.run(
            Path::new("mkdir"),
            &["-p", &server.dir.display().to_string()],
        );
        let data = server.data().display().to_string();
        server.run(
            &server.bin.join("initdb"),
            &["-D", &data, "-U", "postgres", "--auth=trust", "--no-sync"],
        );
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `program` run as the `postgres` user when the tests run as root.
    fn command(program: &Path) -> std::process::Command {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
        if root {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            std::process::Command::new(program)
        }
    }

    /// Runs `program` (as [`OwnPostgres::command`]), panicking with its output if it fails.
    fn run(&self, program: &Path, args: &[&str]) {
        let output = Self::command(program)
            .args(args)
            .output()
            .expect("run a Postgres tool");
        assert!(
            output.status.success(),
            "{} {args:?}: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data().display().to_string();
        let mut all = vec!["-D", &data];
        all.extend_from_slice(args);
        self.run(&self.bin.join("pg_ctl"), &all);
    }

    /// Stops it at once (`pg_ctl stop -m immediate`: connections are cut, no shutdown
    /// checkpoint, as in a crash; committed data survives).
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
        self.running = false;
    }

    /// Starts (again) on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let log = self.dir.join("postgres.log").display().to_string();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        self.pg_ctl(&["-l", &log, "-o", &options, "-w", "start"]);
        self.running = true;
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = Self::command(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `{"code", "message"}` of an error answer: Lockstep's `{"error": {…}}`, or, on the
/// routes Feast clients call, Feast's shape — a JSON string holding `{"module", "class",
/// "message", "error": {…}}`. `Null` when the body is neither.
pub fn api_error(body: &serde_json::Value) -> serde_json::Value {
    match body {
        serde_json::Value::String(detail) => serde_json::from_str::<serde_json::Value>(detail)
            .map_or(serde_json::Value::Null, |detail| detail["error"].clone()),
        _ => body["error"].clone(),
    }
}

/// Entity rows given as JSON columns (`{"user_id": [1, 2]}`), each column in the type its
/// values share (integers int64, numbers float64, strings utf8, booleans), through the API's
/// own conversion.
pub fn entity_rows(columns: serde_json::Value) -> RecordBatch {
    use lockstep::api::json::{from_json, infer_json_type};
    let columns = columns.as_object().expect("an object of columns");
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for (name, values) in columns {
        let values = values.as_array().expect("a list of values");
        let field = lockstep::model::FieldSpec {
            name: name.clone(),
            value_type: infer_json_type(values).unwrap(),
            nullable: true,
        };
        arrays.push(from_json(&field, values).unwrap());
        fields.push(field);
    }
    RecordBatch::try_new(lockstep::model::arrow_schema(&fields), arrays).unwrap()
}

/// Pushes and writes rows given as JSON columns, as the API and the CLI do
/// (`lockstep::api::json`).
pub trait JsonRows {
    fn push_json(
        &self,
        project: Option<&str>,
        source: &str,
        columns: &lockstep::api::json::JsonColumns,
        target: lockstep::pipeline::PushTarget,
    ) -> impl Future<
        Output = Result<Vec<lockstep::pipeline::PushedView>, lockstep::pipeline::FeatureError>,
    >;

    fn write_json(
        &self,
        project: Option<&str>,
        view: &str,
        columns: &lockstep::api::json::JsonColumns,
    ) -> impl Future<Output = Result<lockstep::pipeline::PushedView, lockstep::pipeline::FeatureError>>;
}

impl JsonRows for lockstep::pipeline::Lockstep {
    async fn push_json(
        &self,
        project: Option<&str>,
        source: &str,
        columns: &lockstep::api::json::JsonColumns,
        target: lockstep::pipeline::PushTarget,
    ) -> Result<Vec<lockstep::pipeline::PushedView>, lockstep::pipeline::FeatureError> {
        lockstep::api::json::push(self, project, source, columns, target).await
    }

    async fn write_json(
        &self,
        project: Option<&str>,
        view: &str,
        columns: &lockstep::api::json::JsonColumns,
    ) -> Result<lockstep::pipeline::PushedView, lockstep::pipeline::FeatureError> {
        lockstep::api::json::write_to_online_store(self, project, view, columns).await
    }
}
