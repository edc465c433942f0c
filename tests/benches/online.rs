//! Online serving load benchmark: a `lockstep serve` process on loopback, on Postgres and
//! Redis, with the movie example's `movie_recommendation_service` (14 features: 3 of
//! `user_profile_features`, 7 of `movie_metadata_features` and the on-demand
//! `movie_scorer`'s, whose wasm transform runs on every request). Each request is one user
//! × 10 candidate movies. Prints p50/p99 latency at concurrency 1 beside the physical
//! limit — a bare `MGET` of the same request's distinct keys on a plain `redis` connection
//! to the same Redis, timed in the same run — with their ratio, and requests/s at
//! concurrency 32, the load generator (this process), the server and Redis sharing the
//! machine.
//!
//! Then a ranking-size request (1 user × 500 candidates), and the 10-candidate request with
//! the online store on a 3-master Redis Cluster of its own (where `redis-server` can run one).
//!
//! `cargo bench -p lockstep-tests --bench online` (`LOCKSTEP_BENCH_SECONDS` per phase,
//! default 5).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch};
use lockstep::model::{ViewTable, arrow_schema, format_timestamp, now_micros};
use lockstep::pipeline::{Lockstep, PushTarget};
use lockstep_tests::JsonRows;
use lockstep_tests::cluster::OwnCluster;
use lockstep_tests::load::{closed_loop, concurrent, percentile, start_server};
use lockstep_tests::{TestBackend, apply_movie_example, unique_name};
use serde_json::{Value, json};

const USERS: i64 = 1_000;
const MOVIES: i64 = 1_000;
const CANDIDATES: usize = 10;
/// A ranking-size request: one user × this many candidates.
const RANKING_CANDIDATES: usize = 500;
/// Goal: the ranking request's p99 at most this many times the 10-candidate one's.
const RANKING_P99_GOAL: f64 = 5.0;
const GENRES: [&str; 5] = ["action", "comedy", "drama", "horror", "romance"];

fn main() {
    let seconds: u64 = std::env::var("LOCKSTEP_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(Duration::from_secs(seconds)));
}

/// Fresh values for every user and movie, pushed through the views (so they are within
/// their ttls now).
async fn load_features(lockstep: &Lockstep) {
    let now = now_micros();
    let users: Vec<i64> = (1..=USERS).collect();
    let profiles = json!({
        "user_id": users,
        "age": users.iter().map(|u| 18 + u % 50).collect::<Vec<_>>(),
        "favorite_genre": users.iter().map(|u| GENRES[*u as usize % 5]).collect::<Vec<_>>(),
        "avg_rating": users.iter().map(|u| 2.5 + (u % 5) as f64 / 2.0).collect::<Vec<_>>(),
        "total_movies_watched": users.iter().map(|u| u % 300).collect::<Vec<_>>(),
        "signup_date": users.iter().map(|_| "2025-01-01T00:00:00Z").collect::<Vec<_>>(),
        "event_timestamp": users.iter().map(|_| format_timestamp(now)).collect::<Vec<_>>(),
    });
    let movies: Vec<i64> = (1..=MOVIES).collect();
    let genre = |m: &i64, g: usize| (*m as usize) % 5 == g;
    let metadata = json!({
        "movie_id": movies,
        "vote_average": movies.iter().map(|m| 5.0 + (m % 50) as f64 / 10.0).collect::<Vec<_>>(),
        "vote_count": movies.iter().map(|m| m * 37).collect::<Vec<_>>(),
        "popularity": movies.iter().map(|m| (m % 100) as f64 * 1.5).collect::<Vec<_>>(),
        "runtime": movies.iter().map(|m| 80 + m % 60).collect::<Vec<_>>(),
        "release_year": movies.iter().map(|m| 1980 + m % 45).collect::<Vec<_>>(),
        "genre_action": movies.iter().map(|m| genre(m, 0)).collect::<Vec<_>>(),
        "genre_comedy": movies.iter().map(|m| genre(m, 1)).collect::<Vec<_>>(),
        "genre_drama": movies.iter().map(|m| genre(m, 2)).collect::<Vec<_>>(),
        "genre_horror": movies.iter().map(|m| genre(m, 3)).collect::<Vec<_>>(),
        "genre_romance": movies.iter().map(|m| genre(m, 4)).collect::<Vec<_>>(),
        "event_timestamp": movies.iter().map(|_| format_timestamp(now)).collect::<Vec<_>>(),
    });
    for (source, rows) in [("user_profiles", profiles), ("movie_metadata", metadata)] {
        let columns = serde_json::from_value(rows).unwrap();
        lockstep
            .push_json(None, source, &columns, PushTarget::OnlineAndOffline)
            .await
            .unwrap();
    }
}

/// `count` distinct candidate movies after `seed`.
fn candidates(seed: i64, count: usize) -> Vec<i64> {
    (0..count as i64)
        .map(|i| 1 + (seed * 7 + i * 13) % MOVIES)
        .collect()
}

/// The request for `user` and `count` candidate movies after `seed`.
fn request(user: i64, seed: i64, count: usize) -> Value {
    let movies = candidates(seed, count);
    json!({
        "feature_service": "movie_recommendation_service",
        "entities": {
            "user_id": vec![user; count],
            "movie_id": movies,
            "candidate_genre": movies.iter().map(|m| GENRES[*m as usize % 5]).collect::<Vec<_>>(),
            "request_genre": vec![GENRES[user as usize % 5]; count],
        }
    })
}

/// The Redis keys (namespace included) the request for `user` and the candidates after
/// `seed` needs: each distinct entity of each view it reads, once.
struct RequestKeys {
    namespace: String,
    users: ViewTable,
    movies: ViewTable,
}

impl RequestKeys {
    async fn of(lockstep: &Lockstep, namespace: &str) -> Self {
        let project = lockstep.project(None).await.unwrap();
        let definitions = lockstep.definitions(&project).await.unwrap();
        let table =
            |view: &str| ViewTable::for_view(&project, view, &definitions.feature_views[view]);
        RequestKeys {
            namespace: format!("{namespace}:"),
            users: table("user_profile_features"),
            movies: table("movie_metadata_features"),
        }
    }

    fn keys(&self, user: i64, seed: i64) -> Vec<Vec<u8>> {
        let mut movies = candidates(seed, CANDIDATES);
        movies.sort();
        movies.dedup();
        let key = |table: &ViewTable, id: i64| {
            let batch = RecordBatch::try_new(
                arrow_schema(&table.join_keys),
                vec![Arc::new(Int64Array::from(vec![id]))],
            )
            .unwrap();
            let mut key = self.namespace.clone().into_bytes();
            key.extend(lockstep::online::key_of(table, &batch, 0).unwrap());
            key
        };
        std::iter::once(key(&self.users, user))
            .chain(movies.into_iter().map(|movie| key(&self.movies, movie)))
            .collect()
    }
}

/// Times one bare `MGET` of the keys of request `i` after another until `until`, on one
/// plain multiplexed connection (as the server's), each answer checked whole; returns each
/// latency.
async fn bare_mget(
    redis: &mut redis::aio::MultiplexedConnection,
    keys: &RequestKeys,
    request: impl Fn(i64) -> (i64, i64),
    until: Instant,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let mut i = 0;
    while Instant::now() < until {
        let (user, seed) = request(i);
        let keys = keys.keys(user, seed);
        let sent = Instant::now();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(redis)
            .await
            .unwrap();
        latencies.push(sent.elapsed());
        assert!(values.iter().all(Option::is_some), "every key is stored");
        i += 1;
    }
    latencies
}

async fn run(phase: Duration) {
    let dir = std::env::temp_dir().join(unique_name("lockstep-bench-online"));
    std::fs::create_dir_all(&dir).unwrap();
    let backend = TestBackend::postgres();
    let config = backend.config();
    let lockstep = Lockstep::open(&config).await.unwrap();
    apply_movie_example(&lockstep).await;
    load_features(&lockstep).await;
    let (server, url) = start_server(env!("CARGO_BIN_EXE_lockstep-cli"), &config, &dir).await;
    let url = format!("{url}/get-online-features");

    // A check of the answer's shape and values before timing anything.
    let client = reqwest::Client::new();
    let answer: Value = client
        .post(&url)
        .json(&request(1, 0, CANDIDATES))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names = answer["metadata"]["feature_names"].as_array().unwrap();
    let present = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|column| column["statuses"].as_array().unwrap())
        .filter(|status| *status == "PRESENT")
        .count();
    println!(
        "online benchmark: {} columns ({} features) × {CANDIDATES} rows per request, {present} values present",
        names.len(),
        names.len() - 2,
    );
    assert_eq!(present, names.len() * CANDIDATES, "{answer}");

    // Warm-up, then concurrency 1.
    let entities = |i: i64| (1 + (i * 31) % USERS, i);
    let body = move |i: i64| {
        let (user, seed) = entities(i);
        request(user, seed, CANDIDATES)
    };
    closed_loop(
        client.clone(),
        url.clone(),
        0,
        Instant::now() + Duration::from_secs(1),
        body,
    )
    .await;
    let mut latencies =
        closed_loop(client.clone(), url.clone(), 0, Instant::now() + phase, body).await;
    latencies.sort();
    println!(
        "concurrency 1: {} requests, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms ({:.0} requests/s)",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
        latencies.len() as f64 / phase.as_secs_f64()
    );

    // The physical limit: the same requests' keys in one bare round trip.
    let keys = RequestKeys::of(&lockstep, &config.online.namespace).await;
    let mut redis = redis::Client::open(config.online.redis_url.clone().unwrap())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    bare_mget(
        &mut redis,
        &keys,
        entities,
        Instant::now() + Duration::from_secs(1),
    )
    .await;
    let mut bare = bare_mget(&mut redis, &keys, entities, Instant::now() + phase).await;
    bare.sort();
    let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
    let (bare_p50, bare_p99) = (percentile(&bare, 0.50), percentile(&bare, 0.99));
    println!(
        "bare MGET of the same {} distinct keys: {} round trips, p50 {bare_p50:.3} ms, p99 \
         {bare_p99:.3} ms; Lockstep / MGET: p50 {:.2}×, p99 {:.2}×",
        keys.keys(1, 0).len(),
        bare.len(),
        p50 / bare_p50,
        p99 / bare_p99,
    );

    // Concurrency 32: one connection per worker.
    let until = Instant::now() + phase;
    let (all, elapsed) = concurrent(32, &url, until, |worker| worker * 1_000, body).await;
    let single_throughput = all.len() as f64 / elapsed;
    println!(
        "concurrency 32: {:.0} requests/s ({} in {elapsed:.1}s), p50 {:.3} ms, p99 {:.3} ms",
        all.len() as f64 / elapsed,
        all.len(),
        percentile(&all, 0.50),
        percentile(&all, 0.99),
    );

    // Ranking size: one user × 500 candidates, the same service.
    let ranking = move |i: i64| {
        let (user, seed) = entities(i);
        request(user, seed, RANKING_CANDIDATES)
    };
    closed_loop(
        client.clone(),
        url.clone(),
        0,
        Instant::now() + Duration::from_secs(1),
        ranking,
    )
    .await;
    let mut large = closed_loop(
        client.clone(),
        url.clone(),
        0,
        Instant::now() + phase,
        ranking,
    )
    .await;
    large.sort();
    let large_p99 = percentile(&large, 0.99);
    let until = Instant::now() + phase;
    let (all, elapsed) = concurrent(32, &url, until, |worker| worker * 1_000, ranking).await;
    println!(
        "1 user × {RANKING_CANDIDATES} candidates: concurrency 1 p50 {:.3} ms, p99 {large_p99:.3} ms \
         ({:.2}× the 10-candidate p99; goal <= {RANKING_P99_GOAL}×); concurrency 32: {:.0} \
         requests/s",
        percentile(&large, 0.50),
        large_p99 / p99,
        all.len() as f64 / elapsed,
    );
    drop(server);

    // The same 10-candidate request with the online store on a 3-master Redis Cluster.
    if let Some(cluster) = OwnCluster::start() {
        let mut config = config.clone();
        config.online.redis_url = Some(cluster.url());
        let cluster_dir = dir.join("cluster");
        std::fs::create_dir_all(&cluster_dir).unwrap();
        load_features(&Lockstep::open(&config).await.unwrap()).await;
        let (server, url) =
            start_server(env!("CARGO_BIN_EXE_lockstep-cli"), &config, &cluster_dir).await;
        let url = format!("{url}/get-online-features");
        let warm_up = Instant::now() + Duration::from_secs(1);
        closed_loop(client.clone(), url.clone(), 0, warm_up, body).await;
        let mut on_cluster =
            closed_loop(client.clone(), url.clone(), 0, Instant::now() + phase, body).await;
        on_cluster.sort();
        let until = Instant::now() + phase;
        let (all, elapsed) = concurrent(32, &url, until, |worker| worker * 1_000, body).await;
        let (cluster_p50, cluster_p99) =
            (percentile(&on_cluster, 0.50), percentile(&on_cluster, 0.99));
        println!(
            "on a 3-master Redis Cluster: concurrency 1 p50 {cluster_p50:.3} ms, p99 \
             {cluster_p99:.3} ms ({:.2}× / {:.2}× one server; goal <= 1.5×); concurrency 32: \
             {:.0} requests/s ({:.2}× one server's)",
            cluster_p50 / p50,
            cluster_p99 / p99,
            all.len() as f64 / elapsed,
            (all.len() as f64 / elapsed) / single_throughput,
        );
        drop(server);
    }
    backend.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}
