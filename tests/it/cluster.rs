//! The online store on a Redis Cluster of the test's own (3 masters + 3 replicas, started
//! here; skipped, saying so, where `redis-server` cannot run one): both examples' parity
//! holds unchanged, a master killed under load gives fast errors and then the same values,
//! and a slot moved during reads gives clients no error. (The store's own contract runs on
//! a cluster too: `online_store.rs`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lockstep::online::{OnlineError, OnlineStore, RedisStore, order_prefix};
use lockstep_tests::TestBackend;
use lockstep_tests::cluster::OwnCluster;

const TIMEOUT: Duration = Duration::from_millis(300);
/// Reads of all the keys (one `MGET` per slot: about 500) by 2 readers on 2 cores while
/// the client refreshes its slot map.
const RESHARDING_TIMEOUT: Duration = Duration::from_secs(1);
/// An entity's keys share its hash tag, so one slot: a request reads several keys there.
const HOT_ENTITY_KEYS: usize = 100;
const SPREAD_KEYS: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn movie_parity_holds_on_a_redis_cluster() {
    let Some(cluster) = OwnCluster::shared() else {
        return;
    };
    let backend = TestBackend::postgres();
    let mut config = backend.config();
    config.online.redis_url = Some(cluster.url());
    crate::online::parity(config, backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fraud_example_runs_end_to_end_on_a_redis_cluster() {
    let Some(cluster) = OwnCluster::shared() else {
        return;
    };
    crate::fraud::end_to_end(Some(cluster.url())).await;
}

/// Keys spread over the slots, and the keys of one hot entity in one slot, each with a
/// value naming it.
fn entries() -> Vec<(Vec<u8>, Vec<u8>)> {
    let hot = (0..HOT_ENTITY_KEYS).map(|i| format!("{{user:7}}:view{i}"));
    let spread = (0..SPREAD_KEYS).map(|i| format!("{{user:{i}}}:profile"));
    hot.chain(spread)
        .map(|key| {
            let mut value = order_prefix(1, 1).to_vec();
            value.extend_from_slice(key.as_bytes());
            (key.into_bytes(), value)
        })
        .collect()
}

/// A store on `cluster` in a namespace of its own, holding [`entries`], written to the
/// replicas too (replication is asynchronous: a failover loses what they lack).
async fn filled_store(
    cluster: &OwnCluster,
    namespace: &str,
    timeout: Duration,
) -> (RedisStore, Vec<Vec<u8>>) {
    let store = RedisStore::open(&cluster.url(), namespace, timeout)
        .await
        .expect("open the cluster");
    let entries = entries();
    assert_eq!(store.put(&entries).await.unwrap(), entries.len() as u64);
    for master in cluster.masters() {
        let acknowledged = cluster.cli(master, &["wait", "1", "5000"]);
        assert_eq!(acknowledged.trim(), "1", "replica of {master} in sync");
    }
    let keys = entries.into_iter().map(|(key, _)| key).collect();
    (store, keys)
}

/// Every value is the one written for its key.
fn check_values(keys: &[Vec<u8>], values: &[Option<Vec<u8>>]) {
    assert_eq!(values.len(), keys.len());
    for (key, value) in keys.iter().zip(values) {
        let value = value.as_deref().expect("every key has its value");
        assert_eq!(&value[32..], key.as_slice(), "a wrong value was served");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_load_fails_fast_then_serves_the_same_values() {
    let Some(mut cluster) = OwnCluster::start() else {
        return;
    };
    let (store, keys) = filled_store(&cluster, "failover", TIMEOUT).await;
    check_values(&keys, &store.get(&keys).await.unwrap());

    let hot_slot = cluster.slot_of(b"failover:{user:7}:view0");
    let victim = cluster.master_of(hot_slot);
    cluster.kill(victim);
    let killed = Instant::now();
    let (mut failed, mut slowest_failure) = (0, Duration::ZERO);
    // Reads go on until the replica is promoted and reads succeed again.
    loop {
        let started = Instant::now();
        match store.get(&keys).await {
            Ok(values) => {
                check_values(&keys, &values);
                if failed > 0 || killed.elapsed() > Duration::from_secs(5) {
                    break;
                }
            }
            Err(OnlineError::Unavailable(_)) => {
                failed += 1;
                slowest_failure = slowest_failure.max(started.elapsed());
            }
            Err(other) => panic!("expected unavailability, got {other}"),
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "reads did not recover within 30 s of the failover"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let recovered = killed.elapsed();
    println!(
        "master killed: {failed} reads failed (slowest {slowest_failure:?}), served again after {recovered:?}"
    );
    assert!(failed > 0, "no read failed while the master was down");
    // Fast: within the deadline, and one reconnection attempt within it.
    assert!(
        slowest_failure < TIMEOUT * 2 + Duration::from_millis(100),
        "a failing read took {slowest_failure:?}"
    );
    assert_ne!(cluster.master_of(hot_slot), victim);
    // Writes reach the new master too.
    let (key, mut value) = (keys[0].clone(), order_prefix(2, 2).to_vec());
    value.extend_from_slice(&key);
    assert_eq!(store.put(&[(key.clone(), value.clone())]).await.unwrap(), 1);
    assert_eq!(store.get(&[key]).await.unwrap(), [Some(value)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_during_reads_gives_clients_no_error() {
    let Some(cluster) = OwnCluster::start() else {
        return;
    };
    let (store, keys) = filled_store(&cluster, "resharding", RESHARDING_TIMEOUT).await;
    let store = Arc::new(store);
    let keys = Arc::new(keys);
    let hot_slot = cluster.slot_of(b"resharding:{user:7}:view0");
    let from = cluster.master_of(hot_slot);
    let to = *cluster
        .masters()
        .iter()
        .find(|&&master| master != from)
        .expect("another master");

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, keys, stop, reads) = (
                Arc::clone(&store),
                Arc::clone(&keys),
                Arc::clone(&stop),
                Arc::clone(&reads),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let values = store.get(&keys).await.expect("no read fails");
                    check_values(&keys, &values);
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.migrate_slot(hot_slot, from, to);
        cluster
    })
    .await
    .unwrap();
    // Reads go on a little after the move (the clients learn the new owner by `MOVED`).
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.expect("the readers saw no error");
    }
    assert_eq!(cluster.master_of(hot_slot), to);
    let reads = reads.load(Ordering::Relaxed);
    println!("slot {hot_slot} moved from :{from} to :{to} during {reads} reads");
    assert!(reads > 10, "only {reads} reads ran");
    check_values(&keys, &store.get(&keys).await.unwrap());
}
