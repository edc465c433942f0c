//! Aggregation benchmark, three parts:
//!
//! 1. The engine alone: a million events of 10,000 users, 4 aggregates (count, sum, mean,
//!    max of the amount) × 3 windows (1h, 24h, 7d), replayed in key and time order as the
//!    offline join and materialization do; then again with a read of every aggregate as of
//!    every event (a training set with one row per event).
//! 2. The fraud example on Postgres and Redis with a million generated transactions:
//!    backfill of its aggregated view (row transform + events upsert), a training set over
//!    the labelled transactions, materialization of the online states.
//! 3. Online, over HTTP to a `lockstep serve` process: pushes of single transactions
//!    (each runs the row transform and updates the aggregation state in Redis and the
//!    offline table), at concurrency 1 and 16; then reads of `fraud_detection_service` for
//!    one user with a candidate amount (7 aggregates, 2 row features, the on-demand
//!    scorer's wasm transform).
//!
//! `cargo bench -p lockstep-tests --bench aggregate` (`LOCKSTEP_BENCH_EVENTS`, default
//! 1,000,000; `LOCKSTEP_BENCH_SECONDS` per online phase, default 5).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::TimestampMicrosecondArray;
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use lockstep::aggregate::{Engine, PointInTime, Replay, State, Visitor, key_bytes};
use lockstep::datagen::SplitMix64;
use lockstep::datagen::fraud::{FraudDataSpec, write_fraud_data};
use lockstep::model::aggregation::{Aggregate, AggregateFunction, AggregationSpec};
use lockstep::model::{FieldSpec, ValueType, ViewTable, format_timestamp, now_micros};
use lockstep::pipeline::TrainingSetRequest;
use lockstep::pipeline::{BackfillRequest, EARLIEST, Lockstep, MaterializeRequest};
use lockstep_tests::load::{closed_loop, concurrent, percentile, start_server};
use lockstep_tests::{TestBackend, apply_fraud_example, unique_name};
use serde_json::json;

const USERS: u64 = 10_000;
const DAY: i64 = 86_400_000_000;

fn main() {
    let env = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let events = env("LOCKSTEP_BENCH_EVENTS", 1_000_000);
    let phase = Duration::from_secs(env("LOCKSTEP_BENCH_SECONDS", 5));
    engine(events);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(stores(events, phase));
}

/// count, sum, mean and max of the amount over 1h, 24h and 7d, in 1-minute tiles.
fn spec() -> AggregationSpec {
    let amount = FieldSpec {
        name: "amount".into(),
        value_type: ValueType::Float64,
        nullable: false,
    };
    let mut aggregates = Vec::new();
    for (window, seconds) in [("1h", 3_600), ("24h", 86_400), ("7d", 604_800)] {
        for function in [
            AggregateFunction::Count,
            AggregateFunction::Sum,
            AggregateFunction::Mean,
            AggregateFunction::Max,
        ] {
            aggregates.push(Aggregate {
                name: format!("amount_{function}_{window}"),
                function,
                column: Some(amount.clone()),
                window_seconds: Some(seconds),
            });
        }
    }
    AggregationSpec {
        granularity_seconds: 60,
        allowed_lateness_seconds: 300,
        aggregates,
    }
}

/// Stored events in key and time order, in batches of 65,536 rows.
fn events(table: &ViewTable, count: u64) -> (Vec<RecordBatch>, Vec<(i64, i64)>) {
    let mut random = SplitMix64(1);
    let per_user = count / USERS;
    let schema = lockstep::model::arrow_schema(&table.row_fields());
    let mut rows: Vec<(i64, i64, f64)> = Vec::with_capacity(count as usize);
    for user in 1..=USERS as i64 {
        let mut times: Vec<i64> = (0..per_user)
            .map(|_| 1_767_225_600_000_000 + (random.next_u64() % (30 * DAY as u64)) as i64)
            .collect();
        times.sort_unstable();
        times.dedup();
        for at in times {
            rows.push((user, at, (random.next_u64() % 100_000) as f64 / 100.0));
        }
    }
    let entities = rows.iter().map(|(user, at, _)| (*user, *at)).collect();
    let batches = rows
        .chunks(65_536)
        .map(|chunk| {
            let times = || {
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(chunk.iter().map(|r| r.1))
                        .with_timezone("UTC"),
                ) as ArrayRef
            };
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.0))),
                times(),
                times(),
                Arc::new(Float64Array::from_iter_values(chunk.iter().map(|r| r.2))),
                Arc::new(StringArray::from(vec![None::<&str>; chunk.len()])),
            ];
            RecordBatch::try_new(schema.clone(), columns).unwrap()
        })
        .collect();
    (batches, entities)
}

/// Counts the keys a replay finishes.
struct Finished(u64);

impl Visitor for Finished {
    fn start(&mut self, _key: &[u8]) -> bool {
        true
    }
    fn before(&mut self, _state: &State, _event_ts: i64) {}
    fn finish(&mut self, _key: Vec<u8>, _state: State, _rows: &RecordBatch, _row: usize) {
        self.0 += 1;
    }
}

fn engine(count: u64) {
    let spec = spec();
    let table = ViewTable::new(
        "bench",
        "amounts",
        vec![FieldSpec {
            name: "user_id".into(),
            value_type: ValueType::Int64,
            nullable: false,
        }],
        spec.inputs(),
        None,
        None,
    )
    .aggregated(Some(spec.clone()));
    let engine = Engine::new(&spec);
    let (batches, entities) = events(&table, count);
    let events = entities.len() as f64;

    let started = Instant::now();
    let mut finished = Finished(0);
    let mut replay = Replay::new(&engine, &table);
    for batch in &batches {
        replay.feed(batch, &mut finished);
    }
    replay.end(&mut finished);
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "engine, 4 aggregates × 3 windows: {events} events of {} users replayed in {seconds:.3}s \
         = {:.0} events/s",
        finished.0,
        events / seconds
    );

    let keys: Vec<Vec<u8>> = entities
        .iter()
        .map(|(user, _)| key_bytes(&[&Int64Array::from(vec![*user])], &[ValueType::Int64], 0))
        .collect();
    let times: Vec<i64> = entities.iter().map(|(_, at)| *at).collect();
    let started = Instant::now();
    let mut join = PointInTime::new(&engine, None, keys, &times);
    let mut replay = Replay::new(&engine, &table);
    for batch in &batches {
        replay.feed(batch, &mut join);
    }
    replay.end(&mut join);
    let (columns, _) = join.finish();
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(columns.len(), 12);
    println!(
        "engine, the same with all 12 aggregates read as of every event (a point-in-time join \
         of {events} rows): {seconds:.3}s = {:.0} events/s",
        events / seconds
    );
}

async fn stores(count: u64, phase: Duration) {
    let dir = std::env::temp_dir().join(unique_name("lockstep-bench-aggregate"));
    let spec = FraudDataSpec {
        transactions: count,
        ..FraudDataSpec::benchmark()
    };
    let files = write_fraud_data(&dir.join("data"), &spec).unwrap();
    let backend = TestBackend::postgres();
    let mut config = backend.config();
    config.sources.base_dir = dir.clone();
    let lockstep = Lockstep::open(&config).await.unwrap();
    apply_fraud_example(&lockstep).await;
    let project = Some("fraud".to_owned());

    for view in ["user_transaction_aggregates", "latest_transaction_features"] {
        let started = Instant::now();
        let planned = lockstep
            .plan_backfill(&BackfillRequest {
                project: project.clone(),
                view: view.into(),
                ..BackfillRequest::default()
            })
            .await
            .unwrap();
        let summary = lockstep.run_backfill(&planned, &|_| {}).await.unwrap();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "postgres: backfill of {view}: {} transactions in {seconds:.2}s = {:.0} rows/s",
            summary.rows_out,
            summary.rows_out as f64 / seconds
        );
    }

    let file = std::fs::File::open(&files.labels).unwrap();
    let labels: Vec<RecordBatch> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 65_536)
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let labels = arrow::compute::concat_batches(&labels[0].schema(), &labels).unwrap();
    let request = TrainingSetRequest {
        project: project.clone(),
        feature_service: Some("fraud_detection_service".into()),
        ..TrainingSetRequest::default()
    };
    let set = lockstep.training_set(&request, &labels).await.unwrap();
    println!(
        "postgres: training set of {} labelled transactions × {} features (7 aggregates over \
         {} events, 4 row features, the scorer): {:.2}s",
        set.batch.num_rows(),
        set.features.len(),
        files.transactions,
        set.seconds
    );

    let started = Instant::now();
    let materialized = lockstep
        .materialize(
            &MaterializeRequest {
                project: project.clone(),
                views: vec!["user_transaction_aggregates".into()],
                from: Some(EARLIEST),
                to: Some(spec.end_micros()),
                ..MaterializeRequest::default()
            },
            &|_| {},
        )
        .await
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "postgres → redis: materialized {} aggregation states from {} events in {seconds:.2}s \
         = {:.0} events/s",
        materialized[0].written,
        materialized[0].rows,
        materialized[0].rows as f64 / seconds
    );

    let (server, url) = start_server(env!("CARGO_BIN_EXE_lockstep-cli"), &config, &dir).await;
    let start = now_micros();
    // Each push: one transaction of a user, a microsecond apart per worker.
    let push = move |i: i64| {
        json!({
            "push_source_name": "transactions",
            "df": {
                "txn_id": [10_000_000 + i],
                "user_id": [1 + i % USERS as i64],
                "amount": [10.0 + (i % 500) as f64],
                "currency": ["USD"],
                "country": ["US"],
                "merchant_category": ["online"],
                "event_timestamp": [format_timestamp(start + i)],
            }
        })
    };
    let push_url = format!("{url}/push");
    for concurrency in [1, 16] {
        let until = Instant::now() + phase;
        let first = |worker: i64| concurrency * 1_000_000 + worker * 100_000;
        let (all, elapsed) = concurrent(concurrency, &push_url, until, first, push).await;
        println!(
            "push over HTTP, concurrency {concurrency}: {:.0} pushes/s ({} in {elapsed:.1}s), \
             p50 {:.3} ms, p99 {:.3} ms (2 views: row transform + aggregation state in Redis, \
             both rows in Postgres)",
            all.len() as f64 / elapsed,
            all.len(),
            percentile(&all, 0.50),
            percentile(&all, 0.99),
        );
    }

    let read = |i: i64| {
        json!({
            "feature_service": "fraud_detection_service",
            "entities": { "user_id": [1 + (i * 37) % USERS as i64], "amount": [250.0] },
        })
    };
    let read_url = format!("{url}/get-online-features");
    let client = reqwest::Client::new();
    let answer: serde_json::Value = client
        .post(&read_url)
        .json(&read(0))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let present = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|column| column["statuses"][0] == "PRESENT")
        .count();
    assert!(present >= 10, "{answer}");
    closed_loop(
        client.clone(),
        read_url.clone(),
        0,
        Instant::now() + Duration::from_secs(1),
        read,
    )
    .await;
    let mut latencies = closed_loop(client, read_url, 0, Instant::now() + phase, read).await;
    latencies.sort();
    println!(
        "online read of fraud_detection_service for a user with aggregates, concurrency 1: {} \
         requests, p50 {:.3} ms, p99 {:.3} ms ({present} of 13 columns present)",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
    );
    drop(server);
    backend.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}
