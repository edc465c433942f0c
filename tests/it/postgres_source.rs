//! Planning and reading Postgres tables and queries against a real server, each test in a
//! schema of its own (`LOCKSTEP_TEST_DATABASE_URL`, default the local `test` database).

use std::collections::BTreeMap;
use std::future::Future;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use lockstep::model::definitions::{Source, SourceKind};
use lockstep::model::{FieldSpec, arrow_schema};
use lockstep::source::{Chunk, SourceContext, SourceError, TimeWindow, open, plan};
use lockstep_tests::{test_database_url, unique_name};
use sqlx::{Connection, PgConnection};

/// 2026-01-01T00:00:00Z in µs.
const BASE: i64 = 1_767_225_600_000_000;
const MINUTE: i64 = 60_000_000;

/// Runs `test` with a fresh schema holding `events`: 1000 rows, one a minute from `BASE`
/// plus a minute, then drops the schema whatever the outcome.
async fn with_events<F, Fut>(test: F)
where
    F: FnOnce(String, SourceContext) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let schema = unique_name("lockstep_source_test");
    let url = test_database_url();
    let mut conn = PgConnection::connect(&url)
        .await
        .expect("connect to the test database");
    let setup = format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.events (
             id int4 NOT NULL, big int8 NOT NULL, score float8, label text NOT NULL,
             active bool NOT NULL, ts timestamptz NOT NULL, amount numeric);
         INSERT INTO {schema}.events
             SELECT g, g * 1000000000::int8, CASE WHEN g % 10 = 0 THEN NULL ELSE g * 0.5 END,
                    'row ' || g, g % 2 = 0,
                    TIMESTAMPTZ '2026-01-01T00:00:00Z' + g * INTERVAL '1 minute', g
             FROM generate_series(1, 1000) AS g;"
    );
    sqlx::raw_sql(&setup)
        .execute(&mut conn)
        .await
        .expect("create the events table");
    let ctx = SourceContext {
        postgres_url: Some(url),
        allow_queries: true,
        statement_timeout_ms: 10_000,
        ..SourceContext::under(&std::env::temp_dir())
    };
    let outcome = tokio::spawn(test(schema.clone(), ctx)).await;
    sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut conn)
        .await
        .expect("drop the test schema");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

/// A Postgres source with `schema` given as `name: type` pairs (`float64?` is nullable).
fn source(ts: &str, schema: &[(&str, &str)]) -> Source {
    Source {
        kind: SourceKind::Postgres,
        path: None,
        table: None,
        query: None,
        timestamp_field: Some(ts.to_owned()),
        created_timestamp_field: None,
        schema: schema
            .iter()
            .map(|(name, ty)| ((*name).to_owned(), ty.parse().expect("column type")))
            .collect::<BTreeMap<_, _>>(),
        description: None,
    }
}

/// The fields `names` of `source`, in that order.
fn fields(source: &Source, names: &[&str]) -> Vec<FieldSpec> {
    names
        .iter()
        .map(|name| source.column(name).expect("declared column"))
        .collect()
}

fn events_source(schema: &str) -> Source {
    let mut source = source(
        "ts",
        &[
            ("id", "int64"),
            ("big", "int64"),
            ("score", "float64?"),
            ("label", "utf8"),
            ("active", "boolean"),
            ("ts", "timestamp"),
        ],
    );
    source.table = Some(format!("{schema}.events"));
    source
}

/// Reads every chunk on a blocking thread, as the pipeline does.
async fn read_all(
    source: &Source,
    ctx: &SourceContext,
    chunks: &[Chunk],
    columns: &[&str],
    window: TimeWindow,
    batch_rows: usize,
) -> Result<Vec<RecordBatch>, SourceError> {
    let (source, ctx, chunks) = (source.clone(), ctx.clone(), chunks.to_vec());
    let columns = fields(&source, columns);
    tokio::task::spawn_blocking(move || {
        let mut batches = Vec::new();
        for chunk in &chunks {
            for batch in open(&source, &ctx, chunk, &columns, window, batch_rows)? {
                let batch = batch?;
                assert!(batch.num_rows() > 0, "empty batch");
                assert!(batch.num_rows() <= batch_rows, "{} rows", batch.num_rows());
                batches.push(batch);
            }
        }
        Ok(batches)
    })
    .await
    .expect("reader thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_time_ranges_by_row_count_and_reads_every_row() {
    with_events(|schema, ctx| async move {
        let source = events_source(&schema);
        let chunks = plan(&source, &ctx, TimeWindow::ALL, 300)
            .await
            .expect("plan");
        assert_eq!(chunks.len(), 4, "{chunks:?}");
        let ranges: Vec<(i64, i64)> = chunks
            .iter()
            .map(|chunk| match chunk {
                Chunk::PostgresRange { from, to, .. } => (*from, *to),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ranges[0].0, BASE + MINUTE);
        assert_eq!(ranges[3].1, BASE + 1000 * MINUTE + 1);
        assert!(ranges.windows(2).all(|pair| pair[0].1 == pair[1].0));
        assert!(
            chunks[0]
                .describe()
                .starts_with("postgres rows with ts in [2026-01-01T00:01:00Z, ")
        );

        let columns = ["id", "big", "score", "label", "active", "ts"];
        let batches = read_all(&source, &ctx, &chunks, &columns, TimeWindow::ALL, 128)
            .await
            .expect("read");
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 1000);
        let (mut ids, mut bigs, mut scores, mut nulls, mut active, mut ts_min) =
            (0i64, 0i64, 0f64, 0, 0, i64::MAX);
        for batch in &batches {
            assert_eq!(batch.schema(), arrow_schema(&fields(&source, &columns)));
            ids += batch
                .column(0)
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .sum::<i64>();
            bigs += batch
                .column(1)
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .sum::<i64>();
            let score = batch.column(2).as_primitive::<Float64Type>();
            scores += score.iter().flatten().sum::<f64>();
            nulls += score.null_count();
            active += batch.column(4).as_boolean().true_count();
            let ts = batch.column(5).as_primitive::<TimestampMicrosecondType>();
            ts_min = ts_min.min(ts.values().iter().copied().min().unwrap_or(i64::MAX));
            let label = batch.column(3).as_string::<i32>().value(0);
            assert!(label.starts_with("row "), "{label}");
        }
        assert_eq!(ids, 500_500);
        assert_eq!(bigs, 500_500 * 1_000_000_000);
        // Every tenth score is null: 0.5 * (500500 - 10 * 5050).
        assert_eq!((scores, nulls), (225_000.0, 100));
        assert_eq!(active, 500);
        assert_eq!(ts_min, BASE + MINUTE);

        // A window narrows both the plan and the reads.
        let window = TimeWindow {
            from: Some(BASE + 101 * MINUTE),
            to: Some(BASE + 201 * MINUTE),
        };
        let chunks = plan(&source, &ctx, window, 300).await.expect("plan");
        assert_eq!(chunks.len(), 1);
        let batches = read_all(&source, &ctx, &chunks, &["id"], window, 1000)
            .await
            .expect("read");
        let ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ids.len(), 100);
        assert_eq!(ids.iter().sum::<i64>(), (101..=200).sum::<i64>());
        let empty = TimeWindow {
            from: Some(BASE + 5000 * MINUTE),
            to: None,
        };
        assert_eq!(plan(&source, &ctx, empty, 300).await.expect("plan"), vec![]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_a_query_source_and_checks_column_types() {
    with_events(|schema, ctx| async move {
        let mut source = source(
            "at",
            &[("id", "int64"), ("label", "utf8"), ("at", "timestamp")],
        );
        source.query = Some(format!(
            "select id, label, ts::timestamp as at from {schema}.events where active;"
        ));
        let chunks = plan(&source, &ctx, TimeWindow::ALL, 10_000)
            .await
            .expect("plan");
        assert_eq!(chunks.len(), 1);
        let batches = read_all(&source, &ctx, &chunks, &["at", "id"], TimeWindow::ALL, 64)
            .await
            .expect("read");
        let mut ids = 0;
        let mut rows = 0;
        for batch in &batches {
            rows += batch.num_rows();
            ids += batch
                .column(1)
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .sum::<i64>();
            let at = batch.column(0).as_primitive::<TimestampMicrosecondType>();
            let id = batch.column(1).as_primitive::<Int64Type>();
            // Naive timestamps are UTC.
            assert_eq!(at.value(0), BASE + id.value(0) * MINUTE);
        }
        assert_eq!((rows, ids), (500, (1..=500).map(|i| 2 * i).sum::<i64>()));

        // numeric is not a float64: the error names the relation, column and both types.
        let mut numeric = events_source(&schema);
        numeric
            .schema
            .insert("amount".to_owned(), "float64".parse().expect("type"));
        let error = plan(&numeric, &ctx, TimeWindow::ALL, 100)
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(&error, SourceError::Schema { column, .. } if column == "amount"),
            "{error:?}"
        );
        assert!(
            message.contains("events")
                && message.contains("numeric")
                && message.contains("float64"),
            "{message}"
        );
        let mut missing = events_source(&schema);
        missing
            .schema
            .insert("country".to_owned(), "utf8".parse().expect("type"));
        let message = plan(&missing, &ctx, TimeWindow::ALL, 100)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("`country`") && message.contains("id, big, score"),
            "{message}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_server_is_retryable_and_a_missing_url_is_not() {
    let source = events_source("public");
    let unreachable = SourceContext {
        postgres_url: Some("postgres://postgres@127.0.0.1:1/test".to_owned()),
        ..SourceContext::under(&std::env::temp_dir())
    };
    let error = plan(&source, &unreachable, TimeWindow::ALL, 100)
        .await
        .unwrap_err();
    assert!(matches!(error, SourceError::Postgres { .. }), "{error:?}");
    assert!(error.is_retryable(), "{error}");
    assert!(error.to_string().contains("127.0.0.1:1"), "{error}");

    let error = plan(&source, &SourceContext::default(), TimeWindow::ALL, 100)
        .await
        .unwrap_err();
    assert!(matches!(error, SourceError::Config { .. }), "{error:?}");
    assert!(!error.is_retryable());
}
