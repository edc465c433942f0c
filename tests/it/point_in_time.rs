//! Point-in-time correctness, as a property: random histories for three views (Parquet and
//! CSV sources, ttls, ties on event time broken by created time, late-arriving rows, entity
//! keys with no history) are backfilled through the real pipeline, and the training set for
//! random entity rows must equal a brute-force oracle, value for value, on both backends.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use lockstep::columnar::to_json;
use lockstep::datagen::SplitMix64;
use lockstep::pipeline::{BackfillRequest, Lockstep, TrainingSetRequest};
use lockstep_tests::{TestBackend, test_dir};
use serde_json::Value;

const BASE: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z
const MINUTE: i64 = 60_000_000;
const USER_TTL: i64 = 2 * 60 * MINUTE;
const PAIR_TTL: i64 = 30 * MINUTE;

/// One source row: keys, event time, created time, feature values (JSON, as the training
/// set renders them).
#[derive(Debug, Clone)]
struct Event {
    keys: Vec<i64>,
    ts: i64,
    created: i64,
    values: Vec<Value>,
}

struct Histories {
    user: Vec<Event>,
    item: Vec<Event>,
    pair: Vec<Event>,
}

fn definitions(dir: &Path) -> String {
    format!(
        r#"
project = "pit"

[entities.user]
join_key = "user_id"
type = "int64"

[entities.item]
join_key = "item_id"
type = "int64"

[sources.user_events]
kind = "parquet"
path = "{dir}/user_events/*.parquet"
timestamp_field = "ts"
created_timestamp_field = "created"
schema = {{ user_id = "int64", score = "float64?", label = "utf8?", ts = "timestamp", created = "timestamp" }}

[sources.item_events]
kind = "csv"
path = "{dir}/item_events.csv"
timestamp_field = "ts"
schema = {{ item_id = "int64", price = "float64", in_stock = "boolean", ts = "timestamp" }}

[sources.pair_events]
kind = "parquet"
path = "{dir}/pair_events.parquet"
timestamp_field = "ts"
created_timestamp_field = "created"
schema = {{ user_id = "int64", item_id = "int64", clicks = "int64", ts = "timestamp", created = "timestamp" }}

[feature_views.user_stats]
entities = ["user"]
source = "user_events"
ttl = "2h"

[feature_views.item_stats]
entities = ["item"]
source = "item_events"

[feature_views.pair_stats]
entities = ["user", "item"]
source = "pair_events"
ttl = "30m"
"#,
        dir = dir.display()
    )
}

/// Random histories: few keys and minute-aligned times, so ties and ttl edges are common.
fn histories(rng: &mut SplitMix64, rows: usize) -> Histories {
    let mut uniform = |n: u64| rng.next_u64() % n;
    let mut user = Vec::new();
    let mut item = Vec::new();
    let mut pair = Vec::new();
    for _ in 0..rows {
        let ts = BASE + uniform(240) as i64 * MINUTE;
        // Created up to 90 s after the event, in no particular row order: late arrivals.
        // Distinct per key and event time, so ties on event time have one winner.
        let created = ts + uniform(90_000) as i64 * 1_000 + uniform(1_000) as i64;
        let score = if uniform(5) == 0 {
            Value::Null
        } else {
            Value::from(uniform(10_000) as f64 / 7.0)
        };
        let label = if uniform(4) == 0 {
            Value::Null
        } else {
            Value::from(format!("l{}", uniform(50)))
        };
        user.push(Event {
            keys: vec![uniform(8) as i64],
            ts,
            created,
            // In the view's feature order: source columns by name.
            values: vec![label, score],
        });
        item.push(Event {
            keys: vec![uniform(6) as i64],
            ts: BASE + uniform(240) as i64 * MINUTE,
            created: 0,
            values: vec![
                Value::from(uniform(100_000) as f64 / 100.0),
                Value::from(uniform(2) == 0),
            ],
        });
        let ts = BASE + uniform(240) as i64 * MINUTE;
        pair.push(Event {
            keys: vec![uniform(8) as i64, uniform(6) as i64],
            ts,
            created: ts + uniform(90_000_000) as i64,
            values: vec![Value::from(uniform(1_000) as i64)],
        });
    }
    Histories { user, item, pair }
}

fn timestamps(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(values).with_timezone("UTC"))
}

fn ts_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    )
}

fn write_parquet(path: &Path, batch: &RecordBatch, row_group_rows: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(properties)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

fn write_sources(dir: &Path, histories: &Histories) {
    // User events in two files, several row groups each: many chunks, several workers.
    let half = histories.user.len() / 2;
    for (index, part) in [&histories.user[..half], &histories.user[half..]]
        .into_iter()
        .enumerate()
    {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("score", DataType::Float64, true),
            Field::new("label", DataType::Utf8, true),
            ts_field("ts"),
            ts_field("created"),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(part.iter().map(|e| e.keys[0]))),
                Arc::new(Float64Array::from_iter(
                    part.iter().map(|e| e.values[1].as_f64()),
                )),
                Arc::new(StringArray::from_iter(
                    part.iter().map(|e| e.values[0].as_str()),
                )),
                timestamps(part.iter().map(|e| e.ts)),
                timestamps(part.iter().map(|e| e.created)),
            ],
        )
        .unwrap();
        write_parquet(
            &dir.join(format!("user_events/part-{index}.parquet")),
            &batch,
            37,
        );
    }
    let mut csv = String::from("item_id,price,in_stock,ts\n");
    for event in &histories.item {
        csv.push_str(&format!(
            "{},{},{},{}\n",
            event.keys[0],
            event.values[0],
            event.values[1],
            lockstep::model::format_timestamp(event.ts)
        ));
    }
    std::fs::write(dir.join("item_events.csv"), csv).unwrap();
    let pair = &histories.pair;
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("item_id", DataType::Int64, false),
        Field::new("clicks", DataType::Int64, false),
        ts_field("ts"),
        ts_field("created"),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(pair.iter().map(|e| e.keys[0]))),
            Arc::new(Int64Array::from_iter_values(pair.iter().map(|e| e.keys[1]))),
            Arc::new(Int64Array::from_iter_values(
                pair.iter().map(|e| e.values[0].as_i64().unwrap()),
            )),
            timestamps(pair.iter().map(|e| e.ts)),
            timestamps(pair.iter().map(|e| e.created)),
        ],
    )
    .unwrap();
    write_parquet(&dir.join("pair_events.parquet"), &batch, 50);
}

/// The rule, by brute force: same keys, greatest event time at or before `t` (and within
/// the ttl), ties to the greatest created time, then to the later row; null when none.
fn oracle(events: &[Event], keys: &[i64], t: i64, ttl: Option<i64>, width: usize) -> Vec<Value> {
    let best = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.keys == keys && e.ts <= t && ttl.is_none_or(|ttl| e.ts >= t - ttl))
        .max_by_key(|(index, e)| (e.ts, e.created, *index));
    match best {
        Some((_, event)) => event.values.clone(),
        None => vec![Value::Null; width],
    }
}

async fn check(backend: TestBackend, seed: u64) {
    let dir = test_dir("lockstep-pit");
    let mut rng = SplitMix64(seed);
    let histories = histories(&mut rng, 600);
    write_sources(&dir, &histories);

    let mut config = backend.config();
    config.backfill.chunk_rows = 40;
    config.backfill.workers = 3;
    // The definitions name the files by absolute path: their directory must be allowed.
    config.sources.data_dirs = vec![dir.to_path_buf()];
    let lockstep = Lockstep::open(&config).await.unwrap();
    lockstep.apply(&definitions(&dir)).await.unwrap();
    for view in ["user_stats", "item_stats", "pair_stats"] {
        let planned = lockstep
            .plan_backfill(&BackfillRequest {
                view: view.into(),
                ..BackfillRequest::default()
            })
            .await
            .unwrap();
        let summary = lockstep.run_backfill(&planned, &|_| {}).await.unwrap();
        assert!(summary.job.is_complete(), "{view}: {:?}", summary.job);
        assert_eq!(summary.rows_in, 600, "{view}");
    }

    // Entity rows in random order; ids 8, 9 (users) and 6, 7 (items) have no history; some
    // times sit exactly on an event or a ttl edge.
    let entity_rows = 500;
    let mut uniform = |n: u64| rng.next_u64() % n;
    let mut users = Vec::new();
    let mut items = Vec::new();
    let mut times = Vec::new();
    for _ in 0..entity_rows {
        users.push(uniform(10) as i64);
        items.push(uniform(8) as i64);
        let anchor = &histories.user[uniform(600) as usize];
        times.push(match uniform(4) {
            0 => anchor.ts,
            1 => anchor.ts + USER_TTL,
            2 => anchor.ts + PAIR_TTL + 1,
            _ => BASE + (uniform(300) as i64 - 20) * MINUTE + uniform(60_000_000) as i64,
        });
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("item_id", DataType::Int64, false),
        ts_field("event_timestamp"),
        Field::new("note", DataType::Boolean, false),
    ]));
    let entities = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(users.clone())),
            Arc::new(Int64Array::from(items.clone())),
            timestamps(times.iter().copied()),
            Arc::new(BooleanArray::from(vec![true; entity_rows])),
        ],
    )
    .unwrap();
    let request = TrainingSetRequest {
        features: vec![
            "user_stats:*".into(),
            "item_stats:price".into(),
            "item_stats:in_stock".into(),
            "pair_stats:clicks".into(),
        ],
        ..TrainingSetRequest::default()
    };
    let set = lockstep.training_set(&request, &entities).await.unwrap();
    let names: Vec<String> = set
        .batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "user_id",
            "item_id",
            "event_timestamp",
            "note",
            "label",
            "score",
            "price",
            "in_stock",
            "clicks"
        ]
    );
    assert_eq!(set.batch.num_rows(), entity_rows);

    let mut mismatches = Vec::new();
    let mut matched_rows = [0usize; 3];
    for row in 0..entity_rows {
        let (user, item, t) = (users[row], items[row], times[row]);
        let expected: Vec<Value> = [
            oracle(&histories.user, &[user], t, Some(USER_TTL), 2),
            oracle(&histories.item, &[item], t, None, 2),
            oracle(&histories.pair, &[user, item], t, Some(PAIR_TTL), 1),
        ]
        .concat();
        for (view, range) in [(0, 0..2), (1, 2..4), (2, 4..5)] {
            if expected[range].iter().any(|v| !v.is_null()) {
                matched_rows[view] += 1;
            }
        }
        let actual: Vec<Value> = (4..9)
            .map(|column| to_json(set.batch.column(column).as_ref(), row))
            .collect();
        assert_eq!(
            to_json(set.batch.column(0).as_ref(), row),
            Value::from(user)
        );
        if actual != expected {
            mismatches.push(format!(
                "row {row} (user {user}, item {item}, t {t}): got {actual:?}, expected {expected:?}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {entity_rows} rows differ ({}); first: {}",
        mismatches.len(),
        lockstep.offline().backend(),
        mismatches[0]
    );
    // The data exercised every case: matches and misses for each view.
    for (view, matched) in matched_rows.into_iter().enumerate() {
        assert!(
            matched > 20 && matched < entity_rows - 20,
            "view {view}: {matched} of {entity_rows} rows matched"
        );
    }
    backend.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_sets_match_the_oracle_on_postgres() {
    for seed in [1, 2, 3] {
        check(TestBackend::postgres(), seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_sets_match_the_oracle_on_sqlite() {
    for seed in [1, 2, 3] {
        check(TestBackend::sqlite(), seed).await;
    }
}
