//! The embedded offline store keeps every float64 bit pattern (NaN payloads, signaling NaNs,
//! -0.0, infinities, subnormals) through every write path (chunk commits, pushes' writes,
//! upserts replacing rows) and every read path (scan, point-in-time join, both streams), as
//! Postgres does; so does the embedded online store. A property test over seeded random
//! bit patterns, and a table made when floats were stored as REAL.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};

use super::sql::{Dialect, ident};
use super::*;
use crate::columnar::ColumnBuilder;
use crate::datagen::SplitMix64;
use crate::model::FieldSpec;
use crate::model::arrow_schema;

/// 2026-01-01T00:00:00Z in µs.
const BASE: i64 = 1_767_225_600_000_000;
const USERS: i64 = 40;

/// One stored row: a user's float64 features `x` (nullable) and `y` at a time.
#[derive(Debug, Clone, Copy)]
struct Row {
    user: i64,
    event_ts: i64,
    created_ts: i64,
    x: Option<f64>,
    y: f64,
}

fn table() -> ViewTable {
    let field = |name: &str, value_type, nullable| FieldSpec {
        name: name.into(),
        value_type,
        nullable,
    };
    ViewTable::new(
        "bits",
        "floats",
        vec![field("user_id", ValueType::Int64, false)],
        vec![
            field("x", ValueType::Float64, true),
            field("y", ValueType::Float64, false),
        ],
        None,
        None,
    )
}

/// A float64 bit pattern from one of the classes that lose bits most easily, or any bits;
/// `None` (null) now and then.
fn float(random: &mut SplitMix64) -> Option<f64> {
    let choice = random.next_u64();
    let payload = random.next_u64();
    let sign = choice & (1 << 63);
    let mantissa = payload & 0x000f_ffff_ffff_ffff;
    let bits = match choice % 11 {
        0 => return None,
        // Quiet NaN with a payload.
        1 => sign | 0x7ff8_0000_0000_0000 | (mantissa & 0x0007_ffff_ffff_ffff),
        // Signaling NaN: quiet bit clear, payload not zero.
        2 => sign | 0x7ff0_0000_0000_0000 | (mantissa & 0x0007_ffff_ffff_ffff).max(1),
        3 => sign,
        4 => sign | 0x7ff0_0000_0000_0000,
        // Subnormal.
        5 => sign | mantissa.max(1),
        6 => sign | f64::MIN_POSITIVE.to_bits(),
        7 => sign | f64::MAX.to_bits(),
        _ => payload,
    };
    Some(f64::from_bits(bits))
}

fn generate(random: &mut SplitMix64, count: usize) -> Vec<Row> {
    (0..count)
        .map(|i| {
            let event_ts = BASE + i as i64 * 1_000;
            Row {
                user: i as i64 % USERS,
                event_ts,
                created_ts: event_ts,
                x: float(random),
                y: float(random).unwrap_or_else(|| f64::from_bits(random.next_u64())),
            }
        })
        .collect()
}

/// Rows in the layout of [`ViewTable::row_fields`].
fn batch(table: &ViewTable, rows: &[Row]) -> RecordBatch {
    let fields = table.row_fields();
    let mut builders: Vec<ColumnBuilder> = fields
        .iter()
        .map(|f| ColumnBuilder::new(f.value_type))
        .collect();
    for row in rows {
        builders[0].int(row.user);
        builders[1].int(row.event_ts);
        builders[2].int(row.created_ts);
        match row.x {
            Some(x) => builders[3].float(x),
            None => builders[3].null(),
        }
        builders[4].float(row.y);
        builders[5].null();
    }
    let columns = builders.into_iter().map(ColumnBuilder::finish).collect();
    RecordBatch::try_new(arrow_schema(&fields), columns).unwrap()
}

fn bits(value: Option<f64>) -> Option<u64> {
    value.map(f64::to_bits)
}

fn float_at(column: &ArrayRef, row: usize) -> Option<f64> {
    column
        .is_valid(row)
        .then(|| column.as_primitive::<Float64Type>().value(row))
}

/// `(user, event_ts, x bits, y bits)` of every row of stored-row batches, in order.
fn stored(batches: &[RecordBatch]) -> Vec<(i64, i64, Option<u64>, Option<u64>)> {
    let mut out = Vec::new();
    for batch in batches {
        let users = batch.column(0).as_primitive::<Int64Type>();
        let times = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        for row in 0..batch.num_rows() {
            out.push((
                users.value(row),
                times.value(row),
                bits(float_at(batch.column(3), row)),
                bits(float_at(batch.column(4), row)),
            ));
        }
    }
    out
}

fn expected(rows: &BTreeMap<(i64, i64), Row>) -> Vec<(i64, i64, Option<u64>, Option<u64>)> {
    rows.values()
        .map(|row| (row.user, row.event_ts, bits(row.x), Some(row.y.to_bits())))
        .collect()
}

async fn collect(mut stream: BatchStream) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    while let Some(batch) = stream.recv().await {
        batches.push(batch.unwrap());
    }
    batches
}

#[tokio::test]
async fn every_float_bit_pattern_round_trips_through_the_embedded_stores() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let store = SqliteStore::open(&dir.join("offline.db")).await.unwrap();
    let table = table();
    store.ensure_table(&table).await.unwrap();
    let mut random = SplitMix64(0x5eed_f10a7);
    let rows = generate(&mut random, 3_000);
    let all_bits: Vec<u64> = rows
        .iter()
        .flat_map(|row| row.x.into_iter().chain([row.y]))
        .map(f64::to_bits)
        .collect();
    let nan_payloads = all_bits
        .iter()
        .filter(|&&b| f64::from_bits(b).is_nan() && b & 0x0007_ffff_ffff_ffff != 0)
        .count();
    let signaling = all_bits
        .iter()
        .filter(|&&b| f64::from_bits(b).is_nan() && b & 0x0008_0000_0000_0000 == 0)
        .count();
    let negative_zeros = all_bits
        .iter()
        .filter(|&&b| b == (-0.0f64).to_bits())
        .count();
    let subnormals = all_bits
        .iter()
        .filter(|&&b| f64::from_bits(b).is_subnormal())
        .count();
    assert!(
        nan_payloads > 100 && signaling > 100 && negative_zeros > 50 && subnormals > 100,
        "{nan_payloads} NaN payloads, {signaling} signaling, {negative_zeros} -0.0, {subnormals} subnormal"
    );
    assert!(rows.iter().filter(|row| row.x.is_none()).count() > 100);

    // The first half as a backfill chunk, the rest as pushes' writes.
    let (chunk, pushed) = rows.split_at(rows.len() / 2);
    let job = store
        .create_job(&JobPlan {
            project: table.project.clone(),
            view: table.view.clone(),
            table: table.name.clone(),
            window: "all".into(),
            chunks: vec!["0".into()],
            fresh: false,
        })
        .await
        .unwrap();
    let claim = store
        .claim_chunk(job.id, "test", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a chunk to claim");
    assert!(
        store
            .commit_chunk(
                &table,
                &claim,
                &[batch(&table, chunk)],
                ChunkCounts::default()
            )
            .await
            .unwrap()
    );
    store
        .write_rows(&[(&table, batch(&table, pushed))])
        .await
        .unwrap();
    let mut truth: BTreeMap<(i64, i64), Row> = rows
        .iter()
        .map(|row| ((row.user, row.event_ts), *row))
        .collect();
    // Every seventh row replaced by a later-created one with other bits: the upsert path.
    let replaced: Vec<Row> = rows
        .iter()
        .step_by(7)
        .map(|row| Row {
            created_ts: row.created_ts + 1,
            x: float(&mut random),
            y: f64::from_bits(random.next_u64()),
            ..*row
        })
        .collect();
    store
        .write_rows(&[(&table, batch(&table, &replaced))])
        .await
        .unwrap();
    for row in &replaced {
        truth.insert((row.user, row.event_ts), *row);
    }

    assert_eq!(stored(&store.scan(&table).await.unwrap()), expected(&truth));
    let end = BASE + rows.len() as i64 * 1_000;
    let events = store.stream(
        &table,
        Rows::Events {
            to: end,
            keys: None,
        },
        256,
    );
    assert_eq!(stored(&collect(events).await), expected(&truth));

    // The newest row of each user, by the stream materialization reads.
    let mut newest: BTreeMap<i64, Row> = BTreeMap::new();
    for row in truth.values() {
        newest.insert(row.user, *row);
    }
    let latest = store.stream(
        &table,
        Rows::LatestPerKey {
            from: BASE,
            to: end,
        },
        16,
    );
    let mut latest = stored(&collect(latest).await);
    latest.sort();
    let newest_expected: Vec<_> = newest
        .values()
        .map(|row| (row.user, row.event_ts, bits(row.x), Some(row.y.to_bits())))
        .collect();
    assert_eq!(latest, newest_expected);

    // The point-in-time join of every row at its own time finds that row.
    let entity_fields = [
        FieldSpec {
            name: EVENT_TS.into(),
            value_type: ValueType::Timestamp,
            nullable: false,
        },
        table.join_keys[0].clone(),
    ];
    let mut times = ColumnBuilder::new(ValueType::Timestamp);
    let mut users = ColumnBuilder::new(ValueType::Int64);
    for row in &rows {
        times.int(row.event_ts);
        users.int(row.user);
    }
    let entities = RecordBatch::try_new(
        arrow_schema(&entity_fields),
        vec![times.finish(), users.finish()],
    )
    .unwrap();
    let joined = store
        .point_in_time(
            &entities,
            &[PitView {
                table: table.clone(),
                features: vec!["x".into(), "y".into()],
            }],
        )
        .await
        .unwrap();
    for (index, row) in rows.iter().enumerate() {
        let truth = truth[&(row.user, row.event_ts)];
        assert_eq!(
            (
                bits(float_at(joined[0].column(0), index)),
                bits(float_at(joined[0].column(1), index))
            ),
            (bits(truth.x), Some(truth.y.to_bits())),
            "entity row {index}"
        );
    }

    // The embedded online store keeps the same bits: every row written newer-wins, each
    // user's newest read back.
    let online = crate::online::EmbeddedStore::open(&dir.join("online.db"), "bits")
        .await
        .unwrap();
    let everything: Vec<Row> = truth.values().copied().collect();
    crate::online::write_rows(&online, &table, &batch(&table, &everything))
        .await
        .unwrap();
    let mut keys = ColumnBuilder::new(ValueType::Int64);
    for user in newest.keys() {
        keys.int(*user);
    }
    let keys = [keys.finish()];
    let read = crate::online::read_rows(
        &online,
        &[crate::online::OnlineRead {
            table: &table,
            engine: None,
            keys: &keys,
        }],
        end,
    )
    .await
    .unwrap();
    for (index, row) in newest.values().enumerate() {
        assert_eq!(
            (
                bits(float_at(&read[0].features[0], index)),
                bits(float_at(&read[0].features[1], index))
            ),
            (bits(row.x), Some(row.y.to_bits())),
            "user {}",
            row.user
        );
    }
}

#[tokio::test]
async fn a_table_made_with_real_columns_reads_its_floats_and_keeps_new_bits() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let path = dir.join("offline.db");
    let table = table();
    let store = SqliteStore::open(&path).await.unwrap();
    // The table as made before floats were stored as bits, with a row written then.
    let old_ddl = Dialect::Sqlite
        .create_table(&ident(&table.name), &table)
        .replace(" BLOB", " REAL");
    assert!(old_ddl.contains("\"x\" REAL"), "{old_ddl}");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(&old_ddl).execute(&pool).await.unwrap();
    sqlx::query(&format!(
        "INSERT INTO {} VALUES (1, {BASE}, {BASE}, 1.5, -0.0, NULL)",
        ident(&table.name)
    ))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    store.ensure_table(&table).await.unwrap();

    let payload = f64::from_bits(0x7ff4_0000_dead_beef);
    let new = Row {
        user: 2,
        event_ts: BASE,
        created_ts: BASE,
        x: Some(payload),
        y: -0.0,
    };
    store
        .write_rows(&[(&table, batch(&table, &[new]))])
        .await
        .unwrap();
    assert_eq!(
        stored(&store.scan(&table).await.unwrap()),
        vec![
            // REAL lost the sign of zero when it was written; it still reads as a float.
            (1, BASE, Some(1.5f64.to_bits()), Some(0.0f64.to_bits())),
            (2, BASE, bits(Some(payload)), Some((-0.0f64).to_bits())),
        ]
    );
}
