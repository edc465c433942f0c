//! Both online stores against real servers: Redis (`LOCKSTEP_TEST_REDIS_URL`, default the
//! local server; each test in a namespace of its own, cleared at the end) and a SQLite file
//! in a temp dir; plus a Redis server of the test's own, stopped, killed and restarted under
//! a store.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::TimestampMicrosecondType;
use async_trait::async_trait;
use futures_util::FutureExt;

use lockstep::aggregate::Engine;
use lockstep::columnar::ColumnBuilder;
use lockstep::datagen::SplitMix64;
use lockstep::model::{
    CREATED_TS, Digest, EVENT_TS, FieldSpec, TRANSFORM_DIGEST, ValueType, ViewTable,
};
use lockstep::model::{Classify, arrow_schema};
use lockstep::online::*;
use lockstep_tests::cluster::OwnCluster;
use lockstep_tests::{OwnRedis, test_dir, test_redis_url, unique_name};

/// Generous: the shared server runs beside benchmarks.
const TIMEOUT: Duration = Duration::from_secs(2);

/// 2026-01-01T00:00:00Z in µs.
const BASE: i64 = 1_767_225_600_000_000;

/// Runs `test` on an embedded store in a fresh file, then on Redis and on a Redis Cluster
/// (where this machine can run one) in a fresh namespace, which is cleared whatever the
/// outcome.
async fn on_every_backend<F, Fut>(test: F)
where
    F: Fn(Arc<dyn OnlineStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = test_dir("lockstep-online");
    let embedded = OnlineLocation::Embedded {
        path: dir.join("nested").join("online.db"),
        namespace: "test".into(),
    };
    let store = open(&embedded, TIMEOUT)
        .await
        .expect("open the embedded store");
    assert_eq!(store.backend(), "embedded");
    test(store).await;
    std::fs::remove_dir_all(&dir).expect("remove the temp dir");

    let cluster = OwnCluster::shared();
    let urls = std::iter::once(test_redis_url()).chain(cluster.as_ref().map(|c| c.url()));
    for url in urls {
        let redis = OnlineLocation::Redis {
            url,
            namespace: unique_name("lockstep-test"),
        };
        let store = open(&redis, TIMEOUT).await.expect("open Redis");
        assert_eq!(store.backend(), "redis");
        let outcome = AssertUnwindSafe(test(store.clone())).catch_unwind().await;
        store.clear(b"").await.expect("clear the test namespace");
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// A value with the order prefix of `(event_ts, created_ts)` and `body` after it.
fn value(event_ts: i64, created_ts: i64, body: &str) -> Vec<u8> {
    let mut value = order_prefix(event_ts, created_ts).to_vec();
    value.extend_from_slice(body.as_bytes());
    value
}

fn entry(key: &str, event_ts: i64, created_ts: i64, body: &str) -> (Vec<u8>, Vec<u8>) {
    (key.as_bytes().to_vec(), value(event_ts, created_ts, body))
}

#[tokio::test]
async fn newer_values_win_and_reads_keep_request_order() {
    on_every_backend(|store| async move {
        let get = async |keys: &[&str]| {
            let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
            store.get(&keys).await.unwrap()
        };
        store.ping().await.unwrap();
        assert_eq!(store.put(&[entry("k", 10, 1, "a")]).await.unwrap(), 1);
        // Older event, equal order, older negative time: none is written.
        assert_eq!(store.put(&[entry("k", 9, 50, "b")]).await.unwrap(), 0);
        assert_eq!(store.put(&[entry("k", 10, 1, "c")]).await.unwrap(), 0);
        assert_eq!(store.put(&[entry("k", -5, 99, "d")]).await.unwrap(), 0);
        assert_eq!(get(&["k"]).await, vec![Some(value(10, 1, "a"))]);
        // A tie on the event time goes to the later created time.
        assert_eq!(store.put(&[entry("k", 10, 2, "e")]).await.unwrap(), 1);
        assert_eq!(store.put(&[entry("k", 10, -1, "f")]).await.unwrap(), 0);
        // Entries of one call apply in order.
        let batch = [
            entry("n", -20, 0, "x"),
            entry("n", -10, 0, "y"),
            entry("n", -15, 0, "z"),
            entry("o", 0, 0, "o"),
        ];
        assert_eq!(store.put(&batch).await.unwrap(), 3);
        assert_eq!(
            get(&["k", "missing", "n", "k", "o"]).await,
            vec![
                Some(value(10, 2, "e")),
                None,
                Some(value(-10, 0, "y")),
                Some(value(10, 2, "e")),
                Some(value(0, 0, "o")),
            ]
        );
        assert_eq!(get(&[]).await, Vec::<Option<Vec<u8>>>::new());
        assert_eq!(store.put(&[]).await.unwrap(), 0);
        // More than a pipeline's worth in one call.
        let many: Vec<_> = (0..2500)
            .map(|i| entry(&format!("many:{i}"), i, 0, "m"))
            .collect();
        assert_eq!(store.put(&many).await.unwrap(), 2500);
        assert_eq!(store.clear(b"many:").await.unwrap(), 2500);
        assert_eq!(
            get(&["many:7", "k"]).await,
            vec![None, Some(value(10, 2, "e"))]
        );
    })
    .await;
}

fn field(name: &str, value_type: ValueType) -> FieldSpec {
    FieldSpec {
        name: name.into(),
        value_type,
        nullable: true,
    }
}

/// A view keyed by `keys` with a feature of every type.
fn table(view: &str, keys: Vec<FieldSpec>) -> ViewTable {
    let features = ValueType::ALL
        .iter()
        .map(|&t| field(&format!("f_{t}"), t))
        .collect();
    ViewTable::new("test", view, keys, features, None, Some(Digest::of(b"t")))
}

fn user_country() -> ViewTable {
    table(
        "users",
        vec![
            FieldSpec {
                nullable: false,
                ..field("user_id", ValueType::Int64)
            },
            FieldSpec {
                nullable: false,
                ..field("country", ValueType::Utf8)
            },
        ],
    )
}

const COUNTRIES: [&str; 3] = ["fr", "a:b{c},%", ""];

/// `rows` rows of `table`: int64 join keys 0.., utf8 ones from [`COUNTRIES`], event times
/// `BASE + i + shift`, the digest on even rows, and random features of every type with
/// nulls, NaN and -0.0.
fn rows(table: &ViewTable, rows: usize, shift: i64, seed: u64) -> RecordBatch {
    let fields = table.row_fields();
    let mut rng = SplitMix64(seed);
    let digest = Digest::of(b"t").to_string();
    let mut builders: Vec<ColumnBuilder> = fields
        .iter()
        .map(|f| ColumnBuilder::new(f.value_type))
        .collect();
    for row in 0..rows {
        for (index, (field, builder)) in fields.iter().zip(&mut builders).enumerate() {
            let random = rng.next_u64();
            match field.name.as_str() {
                _ if index < table.join_keys.len() => match field.value_type {
                    ValueType::Utf8 => builder.text(COUNTRIES[row % 3]),
                    _ => builder.int(row as i64),
                },
                EVENT_TS => builder.int(BASE + row as i64 + shift),
                CREATED_TS => builder.int(BASE - (row as i64 % 2)),
                TRANSFORM_DIGEST if row.is_multiple_of(2) => builder.text(&digest),
                TRANSFORM_DIGEST => builder.null(),
                _ if random.is_multiple_of(4) => builder.null(),
                _ => match field.value_type {
                    ValueType::Int64 | ValueType::Timestamp => builder.int(random as i64),
                    ValueType::Float64 => builder.float(match random % 8 {
                        1 => f64::NAN,
                        2 => -0.0,
                        _ => f64::from_bits(random >> 2),
                    }),
                    ValueType::Utf8 => builder.text(&format!("s{}:{{}}%", random % 1000)),
                    ValueType::Boolean => builder.boolean(random.is_multiple_of(2)),
                },
            }
        }
    }
    let arrays = builders.into_iter().map(ColumnBuilder::finish).collect();
    RecordBatch::try_new(arrow_schema(&fields), arrays).unwrap()
}

/// Counts the round trips of a real store.
struct Counting {
    inner: Arc<dyn OnlineStore>,
    gets: AtomicUsize,
}

#[async_trait]
impl OnlineStore for Counting {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn put(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<u64, OnlineError> {
        self.inner.put(entries).await
    }
    async fn get(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, OnlineError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get(keys).await
    }
    async fn compare_and_set(&self, entries: &[CompareAndSet]) -> Result<Vec<bool>, OnlineError> {
        self.inner.compare_and_set(entries).await
    }
    async fn clear(&self, prefix: &[u8]) -> Result<u64, OnlineError> {
        self.inner.clear(prefix).await
    }
    async fn ping(&self) -> Result<(), OnlineError> {
        self.inner.ping().await
    }
    fn timeout(&self) -> Duration {
        self.inner.timeout()
    }
}

/// The read of a plain view's `keys`.
fn read<'a>(table: &'a ViewTable, keys: &'a [ArrayRef]) -> OnlineRead<'a> {
    OnlineRead {
        table,
        engine: None,
        keys,
    }
}

/// The stored rows of `batch` that `picks` name (`None`: an entity never written).
fn check_rows(found: &OnlineRows, table: &ViewTable, batch: &RecordBatch, picks: &[Option<u32>]) {
    let keys = table.join_keys.len();
    let take = |column: usize| {
        arrow::compute::take(
            batch.column(column).as_ref(),
            &UInt32Array::from(picks.to_vec()),
            None,
        )
        .unwrap()
    };
    let times = |column: usize| -> Vec<Option<i64>> {
        let taken = take(column);
        let taken = taken.as_primitive::<TimestampMicrosecondType>();
        (0..picks.len())
            .map(|i| taken.is_valid(i).then(|| taken.value(i)))
            .collect()
    };
    let digest = take(batch.num_columns() - 1);
    let digest = digest.as_string::<i32>();
    assert_eq!(
        found.found,
        picks.iter().map(Option::is_some).collect::<Vec<_>>()
    );
    assert_eq!(found.event_ts, times(keys));
    assert_eq!(found.created_ts, times(keys + 1));
    let expected: Vec<Option<Digest>> = (0..picks.len())
        .map(|i| digest.is_valid(i).then(|| digest.value(i).parse().unwrap()))
        .collect();
    assert_eq!(found.transform_digest, expected);
    assert_eq!(found.features.len(), table.features.len());
    for (index, feature) in found.features.iter().enumerate() {
        // Arrow compares float values bit for bit: NaN payloads and -0.0 must survive.
        assert_eq!(
            feature.as_ref(),
            take(keys + 2 + index).as_ref(),
            "{}",
            table.features[index]
        );
    }
}

#[tokio::test]
async fn rows_round_trip_and_reads_take_one_round_trip() {
    on_every_backend(|store| async move {
        let users = user_country();
        let items = table(
            "items",
            vec![FieldSpec {
                nullable: false,
                ..field("item_id", ValueType::Int64)
            }],
        );
        let batch = rows(&users, 2100, 0, 1);
        assert_eq!(write_rows(&*store, &users, &batch).await.unwrap(), 2100);
        // The same rows again, and older ones: nothing changes.
        assert_eq!(write_rows(&*store, &users, &batch).await.unwrap(), 0);
        let older = rows(&users, 2100, -1, 2);
        assert_eq!(write_rows(&*store, &users, &older).await.unwrap(), 0);
        let item_rows = rows(&items, 10, 0, 3);
        assert_eq!(write_rows(&*store, &items, &item_rows).await.unwrap(), 10);

        // Hits, misses (unknown ids, a known id with another country) and repeats, in any order.
        let picks: Vec<(i64, usize, Option<u32>)> = vec![
            (5, 5 % 3, Some(5)),
            (99_999, 0, None),
            (0, 0, Some(0)),
            (4, 0, None),
            (2099, 2099 % 3, Some(2099)),
            (5, 5 % 3, Some(5)),
            (1, 1, Some(1)),
            (2, 2, Some(2)),
        ];
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(picks.iter().map(|p| p.0)));
        let countries: ArrayRef = Arc::new(StringArray::from_iter_values(
            picks.iter().map(|p| COUNTRIES[p.1]),
        ));
        let item_ids: ArrayRef = Arc::new(Int64Array::from(vec![3, 10, 9]));
        let counting = Counting {
            inner: store.clone(),
            gets: AtomicUsize::new(0),
        };
        let user_keys = [ids, countries];
        let item_keys = [item_ids];
        let found = read_rows(
            &counting,
            &[read(&users, &user_keys), read(&items, &item_keys)],
            0,
        )
        .await
        .unwrap();
        assert_eq!(counting.gets.load(Ordering::Relaxed), 1);
        let user_picks: Vec<Option<u32>> = picks.iter().map(|p| p.2).collect();
        check_rows(&found[0], &users, &batch, &user_picks);
        check_rows(&found[1], &items, &item_rows, &[Some(3), None, Some(9)]);
        let none = read_rows(&*store, &[], 0).await.unwrap();
        assert!(none.is_empty());

        // A value that does not decode is corrupt data, named by its key.
        let key = format!("{}:{{0,fr}}", users.name).into_bytes();
        store
            .put(&[(key, value(i64::MAX, 0, "garbage"))])
            .await
            .unwrap();
        let error = read_rows(&*store, &[read(&users, &user_keys)], 0)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "online_store_corrupt", "{error}");
        assert!(error.to_string().contains(":{0,fr}`"), "{error}");
        assert!(!error.is_retryable());
    })
    .await;
}

#[tokio::test]
async fn bad_rows_are_input_errors() {
    let dir = test_dir("lockstep-online");
    let location = OnlineLocation::Embedded {
        path: dir.join("online.db"),
        namespace: "test".into(),
    };
    let store = open(&location, TIMEOUT).await.unwrap();
    let users = user_country();
    let batch = rows(&users, 3, 0, 1);
    let missing = batch.project(&[0, 2, 3]).unwrap();
    let error = write_rows(&*store, &users, &missing).await.unwrap_err();
    assert_eq!(error.code(), "invalid_online_input");
    assert!(
        error
            .to_string()
            .contains("expected (user_id, country, event_ts"),
        "{error}"
    );
    let mut columns = batch.columns().to_vec();
    columns[0] = Arc::new(Int64Array::from(vec![Some(1), None, Some(3)]));
    let schema = Arc::new(arrow::datatypes::Schema::new(
        batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let nulls = RecordBatch::try_new(schema.clone(), columns.clone()).unwrap();
    let error = write_rows(&*store, &users, &nulls).await.unwrap_err();
    assert!(
        error.to_string().contains("`user_id` is null in row 1"),
        "{error}"
    );
    columns[0] = batch.column(0).clone();
    columns[9] = Arc::new(StringArray::from(vec![Some("sha256:nope"), None, None]));
    let bad_digest = RecordBatch::try_new(schema, columns).unwrap();
    let error = write_rows(&*store, &users, &bad_digest).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("row 0: `sha256:nope` is not a digest"),
        "{error}"
    );
    let short: [ArrayRef; 1] = [Arc::new(Int64Array::from(vec![1]))];
    let error = read_rows(&*store, &[read(&users, &short)], 0)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("2 join keys, 1 key columns"),
        "{error}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn clear_removes_exactly_a_prefix() {
    on_every_backend(|store| async move {
        let users = user_country();
        let other = table("other", users.join_keys.clone());
        write_rows(&*store, &users, &rows(&users, 30, 0, 1))
            .await
            .unwrap();
        write_rows(&*store, &other, &rows(&other, 20, 0, 2))
            .await
            .unwrap();
        // A prefix with glob characters matches only itself.
        let globs = [entry("xa", 1, 1, "g"), entry("x*[a]?\\", 1, 1, "g")];
        assert_eq!(store.put(&globs).await.unwrap(), 2);
        assert_eq!(store.clear(b"x?").await.unwrap(), 0);
        assert_eq!(store.clear(b"x*[a]").await.unwrap(), 1);
        assert_eq!(store.clear(&table_prefix(&users)).await.unwrap(), 30);
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![0, 1]));
        let countries: ArrayRef = Arc::new(StringArray::from(vec![COUNTRIES[0], COUNTRIES[1]]));
        let keys = [ids, countries];
        let found = read_rows(&*store, &[read(&users, &keys), read(&other, &keys)], 0)
            .await
            .unwrap();
        assert_eq!(found[0].found, vec![false, false]);
        assert_eq!(found[1].found, vec![true, true]);
        assert_eq!(store.clear(b"").await.unwrap(), 21);
        assert_eq!(store.clear(b"").await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn namespaces_and_urls_are_checked_before_connecting() {
    for location in [
        OnlineLocation::Redis {
            url: test_redis_url(),
            namespace: "a:b".into(),
        },
        OnlineLocation::Redis {
            url: "http://nowhere".into(),
            namespace: "ns".into(),
        },
        OnlineLocation::Embedded {
            path: PathBuf::from("unused.db"),
            namespace: "{ns}".into(),
        },
    ] {
        let error = open(&location, TIMEOUT).await.err().expect("refused");
        assert_eq!(error.code(), "invalid_online_input", "{error}");
    }
}

/// Asserts that `call` fails as unavailable within `bound`.
async fn assert_unavailable<T: std::fmt::Debug>(
    what: &str,
    bound: Duration,
    call: impl Future<Output = Result<T, OnlineError>>,
) {
    let started = Instant::now();
    let outcome = call.await;
    let elapsed = started.elapsed();
    match outcome {
        // Opening says which store and why; later calls that the store is unavailable.
        Err(error @ (OnlineError::Unavailable(_) | OnlineError::Connect(_))) => {
            assert!(error.is_retryable());
            assert_eq!(error.code(), "online_store_unavailable");
        }
        other => panic!("{what}: expected unavailable, got {other:?}"),
    }
    assert!(elapsed < bound, "{what} took {elapsed:?}");
}

/// Retries `get(keys)` until it succeeds, for at most 5 s.
async fn recovered(store: &dyn OnlineStore, keys: &[Vec<u8>]) -> Vec<Option<Vec<u8>>> {
    let started = Instant::now();
    loop {
        match store.get(keys).await {
            Ok(values) => return values,
            Err(error) => {
                assert!(error.is_retryable(), "{error}");
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "no recovery: {error}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outages_fail_fast_and_the_store_recovers() {
    let timeout = Duration::from_millis(200);
    let bound = timeout + Duration::from_millis(300);
    let mut server = OwnRedis::start();
    server.kill();
    let location = OnlineLocation::Redis {
        url: server.url(),
        namespace: "fault".into(),
    };
    let opening = async { open(&location, timeout).await.map(|_| ()) };
    assert_unavailable("open without a server", bound, opening).await;

    server.restart();
    let store = open(&location, timeout).await.unwrap();
    let key = vec![b"k".to_vec()];
    assert_eq!(store.put(&[entry("k", 1, 1, "a")]).await.unwrap(), 1);
    assert_eq!(store.get(&key).await.unwrap(), vec![Some(value(1, 1, "a"))]);

    // A server that stops answering is a timeout, not a hang.
    server.signal("STOP");
    for _ in 0..2 {
        assert_unavailable("get while stopped", bound, store.get(&key)).await;
        assert_unavailable(
            "put while stopped",
            bound,
            store.put(&[entry("k", 2, 2, "b")]),
        )
        .await;
    }
    server.signal("CONT");
    let values = recovered(&*store, &key).await;
    assert!(values[0].is_some(), "the server kept its data");

    // A killed server: every call fails at once, until it is back.
    server.kill();
    for _ in 0..3 {
        assert_unavailable("get while down", bound, store.get(&key)).await;
        assert_unavailable("put while down", bound, store.put(&[entry("k", 2, 2, "b")])).await;
        assert_unavailable("ping while down", bound, store.ping()).await;
    }

    // Same port, empty server (no persistence), empty script cache.
    server.restart();
    assert_eq!(recovered(&*store, &key).await, vec![None]);
    // The first write finds no script on the new server and loads it again.
    assert_eq!(store.put(&[entry("k", 3, 3, "c")]).await.unwrap(), 1);
    assert_eq!(store.put(&[entry("k", 2, 9, "d")]).await.unwrap(), 0);
    assert_eq!(store.get(&key).await.unwrap(), vec![Some(value(3, 3, "c"))]);
    drop(server);
}

/// An embedded store whose compare-and-sets lose to an imagined other writer `losses`
/// times before they go through, with a round-trip deadline of `timeout_ms`.
struct Contended {
    inner: EmbeddedStore,
    losses: AtomicUsize,
    timeout_ms: AtomicU64,
}

#[async_trait]
impl OnlineStore for Contended {
    fn backend(&self) -> &'static str {
        "contended"
    }
    async fn put(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<u64, OnlineError> {
        self.inner.put(entries).await
    }
    async fn get(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, OnlineError> {
        self.inner.get(keys).await
    }
    async fn compare_and_set(&self, entries: &[CompareAndSet]) -> Result<Vec<bool>, OnlineError> {
        let lost = self
            .losses
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if lost {
            return Ok(vec![false; entries.len()]);
        }
        self.inner.compare_and_set(entries).await
    }
    async fn clear(&self, prefix: &[u8]) -> Result<u64, OnlineError> {
        self.inner.clear(prefix).await
    }
    async fn ping(&self) -> Result<(), OnlineError> {
        self.inner.ping().await
    }
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }
}

#[tokio::test]
async fn contention_is_retried_until_a_deadline_then_a_conflict() {
    use lockstep::model::aggregation::{Aggregate, AggregateFunction, AggregationSpec};
    let dir = test_dir("lockstep-online");
    let table = ViewTable::new(
        "test",
        "counts",
        vec![field("user_id", ValueType::Int64)],
        vec![],
        None,
        None,
    )
    .aggregated(Some(AggregationSpec {
        granularity_seconds: 60,
        allowed_lateness_seconds: 600,
        aggregates: vec![Aggregate {
            name: "events_ever".into(),
            function: AggregateFunction::Count,
            column: None,
            window_seconds: None,
        }],
    }));
    let engine = Engine::of(&table).expect("an aggregated view");
    let event = |user: i64, at: i64| {
        let fields = table.row_fields();
        let mut columns: Vec<ColumnBuilder> = fields
            .iter()
            .map(|f| ColumnBuilder::new(f.value_type))
            .collect();
        columns[0].int(user);
        columns[1].int(at);
        columns[2].int(at);
        columns[3].null();
        RecordBatch::try_new(
            arrow_schema(&fields),
            columns.into_iter().map(ColumnBuilder::finish).collect(),
        )
        .unwrap()
    };
    let store = Contended {
        inner: EmbeddedStore::open(&dir.join("online.db"), "test")
            .await
            .unwrap(),
        // More rounds than the 16 that used to be reported as an outage, well within
        // 4 × 1 s.
        losses: AtomicUsize::new(24),
        timeout_ms: AtomicU64::new(1_000),
    };
    let inserted = insert_events(&store, &table, &engine, &event(1, BASE))
        .await
        .unwrap();
    assert_eq!((inserted.inserted, inserted.keys), (1, 1));
    assert_eq!(store.losses.load(Ordering::Relaxed), 0);

    // Other writers that never stop: a conflict once the budget (4 × 50 ms) is spent.
    store.losses.store(usize::MAX, Ordering::Relaxed);
    store.timeout_ms.store(50, Ordering::Relaxed);
    let started = Instant::now();
    let error = insert_events(&store, &table, &engine, &event(1, BASE + 1))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, OnlineError::Conflict(_)), "{error}");
    assert_eq!(error.code(), "conflict");
    assert!(
        (Duration::from_millis(100)..Duration::from_secs(2)).contains(&took),
        "gave up after {took:?}"
    );
    // The state kept its one event.
    let keys = [Arc::new(Int64Array::from(vec![1])) as ArrayRef];
    let read = read_rows(
        &store,
        &[OnlineRead {
            table: &table,
            engine: Some(&engine),
            keys: &keys,
        }],
        BASE + 2,
    )
    .await
    .unwrap();
    assert_eq!(
        read[0].features[0]
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        1
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
