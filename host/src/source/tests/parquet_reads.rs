//! Reading Parquet chunks: projection, casting, window filtering, batch bounds and errors.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float32Array, Int32Array, Int64Array,
    LargeStringArray, RecordBatch, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray, UInt8Array,
};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};

use super::{BASE, MINUTE, TempDir, concat, drain, fields, source};
use crate::model::definitions::{Source, SourceKind};
use crate::model::{FieldSpec, ValueType};
use crate::source::{
    Chunk, SourceContext, SourceError, TimeWindow, arrow_schema, open, plan, read_file,
};

/// `rows` events from id `start`, one a minute from `BASE`: id Int32, amount Float32, name
/// LargeUtf8, flag Boolean, ts naive Timestamp(ns), extra Int64.
pub(super) fn events(start: i32, rows: i32) -> RecordBatch {
    let ids: Vec<i32> = (start..start + rows).collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int32Array::from(ids.clone()))),
        (
            "amount",
            Arc::new(Float32Array::from_iter_values(
                ids.iter().map(|&i| i as f32 * 0.5),
            )),
        ),
        (
            "name",
            Arc::new(LargeStringArray::from_iter_values(
                ids.iter().map(|i| format!("user {i}")),
            )),
        ),
        (
            "flag",
            Arc::new(BooleanArray::from_iter(
                ids.iter().map(|i| Some(i % 2 == 0)),
            )),
        ),
        (
            "ts",
            Arc::new(TimestampNanosecondArray::from_iter_values(
                ids.iter()
                    .map(|&i| (BASE + i64::from(i) * MINUTE) * 1_000 + 999),
            )),
        ),
        (
            "extra",
            Arc::new(Int64Array::from_iter_values(
                ids.iter().map(|&i| i64::from(i) * 7),
            )),
        ),
    ];
    RecordBatch::try_from_iter(columns).expect("events batch")
}

pub(super) fn events_source(path: &str) -> Source {
    source(
        SourceKind::Parquet,
        Some(path),
        Some("ts"),
        &[
            ("id", "int64"),
            ("amount", "float64"),
            ("name", "utf8"),
            ("flag", "boolean"),
            ("ts", "timestamp"),
            ("extra", "int64"),
        ],
    )
}

fn context(dir: &TempDir) -> SourceContext {
    SourceContext::under(dir.path())
}

fn whole_file(path: &str, row_groups: usize) -> Chunk {
    Chunk::ParquetRowGroups {
        path: path.to_owned(),
        row_groups: 0..row_groups,
        rows: 0,
        file_bytes: 0,
    }
}

#[test]
fn reads_only_requested_columns_in_order_with_canonical_types() {
    let dir = TempDir::new("projection");
    dir.write_parquet("data/events.parquet", &[events(0, 1000)], 100);
    let source = events_source("data/*.parquet");
    let columns = fields(&source, &["ts", "amount", "id", "name", "flag"]);
    let reader = open(
        &source,
        &context(&dir),
        &whole_file("data/events.parquet", 10),
        &columns,
        TimeWindow::ALL,
        1000,
    )
    .expect("open");
    let batches = drain(reader, 1000).expect("read");
    let schema = arrow_schema(&columns);
    for batch in &batches {
        assert_eq!(batch.schema(), schema);
    }
    let all = concat(schema, &batches);
    assert_eq!(all.num_rows(), 1000);
    let ts = all.column(0).as_primitive::<TimestampMicrosecondType>();
    // Nanoseconds are truncated to microseconds; naive times are UTC.
    assert_eq!(ts.value(0), BASE);
    assert_eq!(ts.value(999), BASE + 999 * MINUTE);
    assert_eq!(all.column(1).as_primitive::<Float64Type>().value(3), 1.5);
    let ids = all.column(2).as_primitive::<Int64Type>();
    assert_eq!(ids.values().iter().sum::<i64>(), 999 * 1000 / 2);
    assert_eq!(all.column(3).as_string::<i32>().value(42), "user 42");
    assert!(all.column(4).as_boolean().value(42));
}

#[test]
fn drops_rows_outside_the_window_in_bounded_batches() {
    let dir = TempDir::new("window");
    dir.write_parquet("events.parquet", &[events(0, 1000)], 100);
    let source = events_source("*.parquet");
    let columns = fields(&source, &["id"]);
    let window = TimeWindow {
        from: Some(BASE + 150 * MINUTE),
        to: Some(BASE + 750 * MINUTE),
    };
    let reader = open(
        &source,
        &context(&dir),
        &whole_file("events.parquet", 10),
        &columns,
        window,
        64,
    )
    .expect("open");
    let batches = drain(reader, 64).expect("read");
    let all = concat(arrow_schema(&columns), &batches);
    let ids = all.column(0).as_primitive::<Int64Type>();
    assert_eq!(ids.len(), 600);
    assert_eq!((ids.value(0), ids.value(599)), (150, 749));
}

#[test]
fn a_window_without_rows_yields_no_batch() {
    let dir = TempDir::new("empty-window");
    dir.write_parquet("events.parquet", &[events(0, 100)], 10);
    let source = events_source("*.parquet");
    let window = TimeWindow {
        from: Some(BASE - 10 * MINUTE),
        to: Some(BASE),
    };
    let reader = open(
        &source,
        &context(&dir),
        &whole_file("events.parquet", 10),
        &fields(&source, &["id", "ts"]),
        window,
        7,
    )
    .expect("open");
    assert_eq!(drain(reader, 7).expect("read").len(), 0);
}

#[test]
fn converts_dates_timestamp_units_time_zones_and_narrow_integers() {
    let dir = TempDir::new("conversions");
    let batch = RecordBatch::try_from_iter(vec![
        (
            "day",
            Arc::new(Date32Array::from(vec![20_454, -1])) as ArrayRef,
        ),
        (
            "at_ms",
            Arc::new(
                TimestampMillisecondArray::from(vec![1_767_225_600_123, -1])
                    .with_timezone("+02:00"),
            ),
        ),
        (
            "at_s",
            Arc::new(TimestampSecondArray::from(vec![1_767_225_600, 0])),
        ),
        ("small", Arc::new(UInt8Array::from(vec![255, 0]))),
    ])
    .expect("batch");
    dir.write_parquet("typed.parquet", &[batch], 10);
    let source = source(
        SourceKind::Parquet,
        Some("*.parquet"),
        None,
        &[
            ("day", "timestamp"),
            ("at_ms", "timestamp"),
            ("at_s", "timestamp"),
            ("small", "int64"),
        ],
    );
    let columns = fields(&source, &["day", "at_ms", "at_s", "small"]);
    let reader = open(
        &source,
        &context(&dir),
        &whole_file("typed.parquet", 1),
        &columns,
        TimeWindow::ALL,
        10,
    )
    .expect("open");
    let all = concat(arrow_schema(&columns), &drain(reader, 10).expect("read"));
    let micros = |i: usize| all.column(i).as_primitive::<TimestampMicrosecondType>();
    // 2026-01-01 is day 20454; the day before 1970 is a negative midnight.
    assert_eq!(micros(0).values().to_vec(), vec![BASE, -86_400_000_000]);
    // A time zone label does not move the instant.
    assert_eq!(micros(1).values().to_vec(), vec![BASE + 123_000, -1_000]);
    assert_eq!(micros(2).values().to_vec(), vec![BASE, 0]);
    assert_eq!(
        all.column(3).as_primitive::<Int64Type>().values().to_vec(),
        vec![255, 0]
    );
}

#[tokio::test]
async fn a_corrupt_file_is_an_error_naming_it() {
    let dir = TempDir::new("corrupt");
    let noise: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    dir.write("data/broken.parquet", &noise);
    let source = events_source("data/*.parquet");
    let error = plan(&source, &context(&dir), TimeWindow::ALL, 100)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SourceError::Corrupt { path, .. } if path == "data/broken.parquet"),
        "{error:?}"
    );
    assert!(error.to_string().contains("data/broken.parquet"), "{error}");
    let Err(error) = open(
        &source,
        &context(&dir),
        &whole_file("data/broken.parquet", 1),
        &fields(&source, &["id"]),
        TimeWindow::ALL,
        10,
    ) else {
        panic!("a corrupt file opened");
    };
    assert!(matches!(error, SourceError::Corrupt { .. }), "{error:?}");
}

#[tokio::test]
async fn a_missing_column_names_the_file_and_the_column() {
    let dir = TempDir::new("missing");
    dir.write_parquet("events.parquet", &[events(0, 10)], 10);
    let mut source = events_source("*.parquet");
    source
        .schema
        .insert("country".to_owned(), "utf8".parse().expect("type"));
    let error = plan(&source, &context(&dir), TimeWindow::ALL, 100)
        .await
        .unwrap_err();
    let SourceError::Schema {
        location, column, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(
        (location.as_str(), column.as_str()),
        ("events.parquet", "country")
    );
    let message = error.to_string();
    assert!(
        message.contains("missing") && message.contains("id, amount, name"),
        "{message}"
    );
}

#[tokio::test]
async fn a_stored_type_that_does_not_fit_is_an_error_naming_both_types() {
    let dir = TempDir::new("mismatch");
    dir.write_parquet("events.parquet", &[events(0, 10)], 10);
    let mut source = events_source("*.parquet");
    source
        .schema
        .insert("name".to_owned(), "int64".parse().expect("type"));
    let error = plan(&source, &context(&dir), TimeWindow::ALL, 100)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(&error, SourceError::Schema { column, .. } if column == "name"));
    assert!(
        message.contains("events.parquet")
            && message.contains("declared int64")
            && message.contains("LargeUtf8"),
        "{message}"
    );

    // An integer is never taken for a timestamp: its unit is ambiguous.
    let mut source = events_source("*.parquet");
    source
        .schema
        .insert("extra".to_owned(), "timestamp".parse().expect("type"));
    let error = plan(&source, &context(&dir), TimeWindow::ALL, 100)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("`extra`") && message.contains("ambiguous"),
        "{message}"
    );
}

#[tokio::test]
async fn a_null_in_a_required_column_names_its_row_in_the_file() {
    let dir = TempDir::new("nulls");
    let scores: Vec<Option<i64>> = (0..300).map(|i| (i != 123).then_some(i)).collect();
    let batch = RecordBatch::try_from_iter(vec![
        ("score", Arc::new(Int64Array::from(scores)) as ArrayRef),
        (
            "ts",
            Arc::new(TimestampNanosecondArray::from_iter_values(
                (0..300).map(|i| (BASE + i * MINUTE) * 1_000),
            )),
        ),
    ])
    .expect("batch");
    dir.write_parquet("scores.parquet", &[batch], 100);
    let source = source(
        SourceKind::Parquet,
        Some("*.parquet"),
        Some("ts"),
        &[("score", "int64"), ("ts", "timestamp")],
    );
    let chunks = plan(&source, &context(&dir), TimeWindow::ALL, 100)
        .await
        .expect("plan");
    assert_eq!(chunks.len(), 3);
    // Only the second chunk holds the null; its row counts from the start of the file.
    let reader = open(
        &source,
        &context(&dir),
        &chunks[1],
        &fields(&source, &["score"]),
        TimeWindow::ALL,
        1000,
    )
    .expect("open");
    let error = drain(reader, 1000).unwrap_err();
    assert!(
        matches!(
            &error,
            SourceError::NullInRequired { location, column, row: 124, line: None }
                if location == "scores.parquet" && column == "score"
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("row 124"), "{error}");

    // Nullable, it reads.
    let nullable = FieldSpec {
        name: "score".to_owned(),
        value_type: ValueType::Int64,
        nullable: true,
    };
    let reader = open(
        &source,
        &context(&dir),
        &chunks[1],
        &[nullable],
        TimeWindow::ALL,
        1000,
    )
    .expect("open");
    let batches = drain(reader, 1000).expect("read");
    assert_eq!(
        batches
            .iter()
            .map(|b| b.column(0).null_count())
            .sum::<usize>(),
        1
    );
}

#[test]
fn columns_must_come_from_the_source_schema() {
    let dir = TempDir::new("foreign");
    let source = events_source("*.parquet");
    let foreign = FieldSpec {
        name: "country".to_owned(),
        value_type: ValueType::Utf8,
        nullable: true,
    };
    let chunk = whole_file("events.parquet", 1);
    let error = open(
        &source,
        &context(&dir),
        &chunk,
        &[foreign],
        TimeWindow::ALL,
        10,
    )
    .err()
    .expect("foreign column rejected");
    assert!(matches!(&error, SourceError::Config { message } if message.contains("country")));
    let mut retyped = source.column("id").expect("id");
    retyped.value_type = ValueType::Utf8;
    let error = open(
        &source,
        &context(&dir),
        &chunk,
        &[retyped],
        TimeWindow::ALL,
        10,
    )
    .err()
    .expect("retyped column rejected");
    assert!(matches!(error, SourceError::Config { .. }), "{error:?}");
}

#[test]
fn read_file_returns_required_then_present_optional_columns() {
    let dir = TempDir::new("read-file");
    let path = dir.write_parquet("entities.parquet", &[events(0, 5)], 10);
    let required = [FieldSpec {
        name: "id".to_owned(),
        value_type: ValueType::Int64,
        nullable: false,
    }];
    let optional = [
        FieldSpec {
            name: "country".to_owned(),
            value_type: ValueType::Utf8,
            nullable: true,
        },
        FieldSpec {
            name: "ts".to_owned(),
            value_type: ValueType::Timestamp,
            nullable: false,
        },
    ];
    let (batches, found) = read_file(&path, &required, &optional).expect("read");
    assert_eq!(found, vec![None, Some(optional[1].clone())]);
    let expected = arrow_schema(&[required[0].clone(), optional[1].clone()]);
    let all = concat(expected, &batches);
    assert_eq!(all.num_rows(), 5);
    assert_eq!(
        all.column(1)
            .as_primitive::<TimestampMicrosecondType>()
            .value(1),
        BASE + MINUTE
    );

    let missing = [optional[0].clone()];
    let error = read_file(&path, &missing, &[]).unwrap_err();
    assert!(matches!(&error, SourceError::Schema { column, .. } if column == "country"));
}
