//! Planning file sources: sorted files, grouped and pruned row groups, chunk descriptions.

use super::parquet_reads::{events, events_source};
use super::{BASE, MINUTE, TempDir, drain, fields, source};
use crate::model::definitions::SourceKind;
use crate::source::{Chunk, SourceContext, SourceError, TimeWindow, open, plan};

fn context(dir: &TempDir) -> SourceContext {
    SourceContext::under(dir.path())
}

fn row_groups(chunks: &[Chunk]) -> Vec<(String, std::ops::Range<usize>, u64)> {
    chunks
        .iter()
        .map(|chunk| match chunk {
            Chunk::ParquetRowGroups {
                path,
                row_groups,
                rows,
                ..
            } => (path.clone(), row_groups.clone(), *rows),
            other => panic!("not a parquet chunk: {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn groups_row_groups_per_file_with_files_sorted() {
    let dir = TempDir::new("plan-groups");
    // Written out of order: the plan sorts by path.
    dir.write_parquet("data/part-1.parquet", &[events(1000, 500)], 100);
    dir.write_parquet("data/part-0.parquet", &[events(0, 1000)], 100);
    dir.write("data/notes.txt", b"not matched");
    let source = events_source("data/part-*.parquet");
    let chunks = plan(&source, &context(&dir), TimeWindow::ALL, 250)
        .await
        .expect("plan");
    let part0 = "data/part-0.parquet".to_owned();
    let part1 = "data/part-1.parquet".to_owned();
    assert_eq!(
        row_groups(&chunks),
        vec![
            (part0.clone(), 0..2, 200),
            (part0.clone(), 2..4, 200),
            (part0.clone(), 4..6, 200),
            (part0.clone(), 6..8, 200),
            (part0.clone(), 8..10, 200),
            (part1.clone(), 0..2, 200),
            (part1.clone(), 2..4, 200),
            (part1.clone(), 4..5, 100),
        ]
    );
    assert_eq!(chunks[0].describe(), "data/part-0.parquet row groups 0..2");
    assert_eq!(chunks[0].estimated_rows(), Some(200));
    let Chunk::ParquetRowGroups { file_bytes, .. } = &chunks[0] else {
        unreachable!()
    };
    assert!(*file_bytes > 0);

    // A target below one row group gives one chunk per row group.
    let chunks = plan(&source, &context(&dir), TimeWindow::ALL, 1)
        .await
        .expect("plan");
    assert_eq!(chunks.len(), 15);

    // Reading every chunk reads every row once.
    let columns = fields(&source, &["id"]);
    let mut rows = 0;
    for chunk in &chunks {
        let reader = open(
            &source,
            &context(&dir),
            chunk,
            &columns,
            TimeWindow::ALL,
            33,
        )
        .expect("open");
        rows += drain(reader, 33)
            .expect("read")
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>();
    }
    assert_eq!(rows, 1500);
}

#[tokio::test]
async fn skips_row_groups_whose_statistics_are_outside_the_window() {
    let dir = TempDir::new("plan-prune");
    dir.write_parquet("events.parquet", &[events(0, 1000)], 100);
    let source = events_source("*.parquet");
    // Rows 150..750: row groups 1 to 7 overlap.
    let window = TimeWindow {
        from: Some(BASE + 150 * MINUTE),
        to: Some(BASE + 750 * MINUTE),
    };
    let chunks = plan(&source, &context(&dir), window, 250)
        .await
        .expect("plan");
    let path = "events.parquet".to_owned();
    assert_eq!(
        row_groups(&chunks),
        vec![
            (path.clone(), 1..3, 200),
            (path.clone(), 3..5, 200),
            (path.clone(), 5..7, 200),
            (path.clone(), 7..8, 100),
        ]
    );
    let columns = fields(&source, &["id"]);
    let mut rows = 0;
    for chunk in &chunks {
        let reader = open(&source, &context(&dir), chunk, &columns, window, 1000).expect("open");
        rows += drain(reader, 1000)
            .expect("read")
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>();
    }
    assert_eq!(rows, 600);

    // A window after the data leaves nothing to do.
    let later = TimeWindow {
        from: Some(BASE + 5000 * MINUTE),
        to: None,
    };
    assert_eq!(
        plan(&source, &context(&dir), later, 250)
            .await
            .expect("plan"),
        vec![]
    );
}

#[tokio::test]
async fn a_pattern_without_files_is_no_files() {
    let dir = TempDir::new("plan-none");
    dir.write("data/events.csv", b"id\n1\n");
    let source = events_source("data/*.parquet");
    let error = plan(&source, &context(&dir), TimeWindow::ALL, 100)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SourceError::NoFiles { pattern } if pattern == "data/*.parquet"),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        "no files match the pattern `data/*.parquet`"
    );
}

#[tokio::test]
async fn csv_sources_plan_one_chunk_per_file_and_push_sources_none() {
    let dir = TempDir::new("plan-csv");
    dir.write("b.csv", b"id,ts\n1,2026-01-01\n");
    dir.write("a.csv", b"id,ts\n2,2026-01-02\n");
    let csv = source(
        SourceKind::Csv,
        Some("*.csv"),
        Some("ts"),
        &[("id", "int64"), ("ts", "timestamp")],
    );
    let chunks = plan(&csv, &context(&dir), TimeWindow::ALL, 1)
        .await
        .expect("plan");
    let described: Vec<String> = chunks.iter().map(Chunk::describe).collect();
    assert_eq!(described, vec!["a.csv", "b.csv"]);
    assert_eq!(
        chunks[0],
        Chunk::CsvFile {
            path: "a.csv".to_owned(),
            file_bytes: 19
        }
    );
    assert_eq!(chunks[0].estimated_rows(), None);

    let push = source(SourceKind::Push, None, Some("ts"), &[("ts", "timestamp")]);
    let error = plan(&push, &context(&dir), TimeWindow::ALL, 1)
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        SourceError::Unsupported {
            kind: SourceKind::Push
        }
    ));
}

#[test]
fn chunks_round_trip_through_json_and_describe_themselves() {
    let chunks = vec![
        Chunk::ParquetRowGroups {
            path: "data/watch_events/part-0.parquet".to_owned(),
            row_groups: 0..4,
            rows: 4000,
            file_bytes: 123_456,
        },
        Chunk::CsvFile {
            path: "data/movie_metadata.csv".to_owned(),
            file_bytes: 99,
        },
        Chunk::PostgresRange {
            timestamp_field: "event_timestamp".to_owned(),
            from: BASE,
            to: BASE + 24 * 60 * MINUTE,
        },
    ];
    for chunk in &chunks {
        let json = serde_json::to_string(chunk).expect("serialize");
        let back: Chunk = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(&back, chunk);
    }
    let json = serde_json::to_value(&chunks[1]).expect("serialize");
    assert_eq!(json["kind"], "csv_file");
    let described: Vec<String> = chunks.iter().map(Chunk::describe).collect();
    assert_eq!(
        described,
        vec![
            "data/watch_events/part-0.parquet row groups 0..4",
            "data/movie_metadata.csv",
            "postgres rows with event_timestamp in [2026-01-01T00:00:00Z, 2026-01-02T00:00:00Z)",
        ]
    );
    let odd = Chunk::PostgresRange {
        timestamp_field: "ts".to_owned(),
        from: BASE + 1,
        to: BASE + 1_500,
    };
    assert_eq!(
        odd.describe(),
        "postgres rows with ts in [2026-01-01T00:00:00.000001Z, 2026-01-01T00:00:00.001500Z)"
    );
}

#[test]
fn windows_are_half_open() {
    let window = TimeWindow {
        from: Some(10),
        to: Some(20),
    };
    assert!(!window.contains(9) && window.contains(10) && window.contains(19));
    assert!(!window.contains(20));
    assert!(TimeWindow::ALL.contains(i64::MIN) && TimeWindow::ALL.contains(i64::MAX));
    assert!(window.overlaps(0, 10) && !window.overlaps(0, 9) && !window.overlaps(20, 30));
}
