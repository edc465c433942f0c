//! Reading CSV chunks: values parsed per declared type, and errors that name the line.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};

use super::{BASE, TempDir, concat, drain, fields, source};
use crate::model::definitions::{Source, SourceKind};
use crate::model::{FieldSpec, ValueType};
use crate::source::{
    Chunk, SourceContext, SourceError, TimeWindow, arrow_schema, open, plan, read_file,
};

const HEADER: &str = "id,score,name,active,ts,unused\n";

fn movies() -> Source {
    source(
        SourceKind::Csv,
        Some("*.csv"),
        Some("ts"),
        &[
            ("id", "int64"),
            ("score", "float64?"),
            ("name", "utf8?"),
            ("active", "boolean"),
            ("ts", "timestamp"),
        ],
    )
}

fn context(dir: &TempDir) -> SourceContext {
    SourceContext::under(dir.path())
}

fn chunk(path: &str) -> Chunk {
    Chunk::CsvFile {
        path: path.to_owned(),
        file_bytes: 0,
    }
}

#[test]
fn parses_each_column_per_its_declared_type() {
    let dir = TempDir::new("csv-types");
    let text = format!(
        "{HEADER}\
         1,0.5,\"Alien, the film\",true,2026-01-01T00:00:00Z,x\n\
         2,,,false,2026-01-01 00:00:01.123456+00:00,y\n\
         3,2,Up,TRUE,2026-01-02,z\n\
         4,-1e3,Heat,false,2026-01-01T02:00:02+02:00,w\n"
    );
    dir.write("movies.csv", text.as_bytes());
    let source = movies();
    let columns = fields(&source, &["ts", "name", "score", "id", "active"]);
    let reader = open(
        &source,
        &context(&dir),
        &chunk("movies.csv"),
        &columns,
        TimeWindow::ALL,
        3,
    )
    .expect("open");
    let all = concat(arrow_schema(&columns), &drain(reader, 3).expect("read"));
    assert_eq!(all.num_rows(), 4);
    let ts = all.column(0).as_primitive::<TimestampMicrosecondType>();
    assert_eq!(
        ts.values().to_vec(),
        vec![
            BASE,
            BASE + 1_123_456,
            BASE + 86_400_000_000,
            BASE + 2_000_000
        ]
    );
    let names = all.column(1).as_string::<i32>();
    assert_eq!(names.value(0), "Alien, the film");
    assert!(names.is_null(1));
    let scores = all.column(2).as_primitive::<Float64Type>();
    assert_eq!(
        (scores.value(0), scores.is_null(1), scores.value(3)),
        (0.5, true, -1000.0)
    );
    assert_eq!(
        all.column(3).as_primitive::<Int64Type>().values().to_vec(),
        vec![1, 2, 3, 4]
    );
    let active = all.column(4).as_boolean();
    assert_eq!(
        (0..4).map(|i| active.value(i)).collect::<Vec<_>>(),
        vec![true, false, true, false]
    );
}

#[test]
fn filters_by_window() {
    let dir = TempDir::new("csv-window");
    let mut text = String::from(HEADER);
    for day in 1..=9 {
        text.push_str(&format!("{day},1,n,true,2026-01-0{day},\n"));
    }
    dir.write("movies.csv", text.as_bytes());
    let source = movies();
    let window = TimeWindow {
        from: Some(BASE + 86_400_000_000),
        to: Some(BASE + 4 * 86_400_000_000),
    };
    let columns = fields(&source, &["id"]);
    let reader = open(
        &source,
        &context(&dir),
        &chunk("movies.csv"),
        &columns,
        window,
        2,
    )
    .expect("open");
    let all = concat(arrow_schema(&columns), &drain(reader, 2).expect("read"));
    assert_eq!(
        all.column(0).as_primitive::<Int64Type>().values().to_vec(),
        vec![2, 3, 4]
    );
}

#[test]
fn a_bad_value_names_the_file_the_column_and_the_line() {
    let dir = TempDir::new("csv-bad");
    let text = format!(
        "{HEADER}1,1,a,true,2026-01-01,\n2,1,b,true,2026-01-01,\nabc,1,c,true,2026-01-01,\n"
    );
    dir.write("movies.csv", text.as_bytes());
    let source = movies();
    // Batches of 2: the bad value is in the second batch, at line 4.
    let reader = open(
        &source,
        &context(&dir),
        &chunk("movies.csv"),
        &fields(&source, &["id"]),
        TimeWindow::ALL,
        2,
    )
    .expect("open");
    let error = drain(reader, 2).unwrap_err();
    assert!(
        matches!(&error, SourceError::Schema { location, column, .. }
            if location == "movies.csv" && column == "id"),
        "{error:?}"
    );
    let message = error.to_string();
    // The line and the type, never the value: errors carry no file contents.
    assert!(
        message.contains("in line 4") && message.contains("int64") && !message.contains("abc"),
        "{message}"
    );

    let text = format!("{HEADER}1,1,a,true,yesterday,\n");
    dir.write("movies.csv", text.as_bytes());
    let reader = open(
        &source,
        &context(&dir),
        &chunk("movies.csv"),
        &fields(&source, &["id"]),
        TimeWindow::ALL,
        2,
    )
    .expect("open");
    let message = drain(reader, 2).unwrap_err().to_string();
    assert!(
        message.contains("`ts`") && message.contains("line 2"),
        "{message}"
    );
}

#[test]
fn a_null_in_a_required_column_names_row_and_line() {
    let dir = TempDir::new("csv-null");
    let text = format!("{HEADER}1,1,a,true,2026-01-01,\n2,1,b,,2026-01-01,\n");
    dir.write("movies.csv", text.as_bytes());
    let source = movies();
    let reader = open(
        &source,
        &context(&dir),
        &chunk("movies.csv"),
        &fields(&source, &["active"]),
        TimeWindow::ALL,
        10,
    )
    .expect("open");
    let error = drain(reader, 10).unwrap_err();
    assert!(
        matches!(&error, SourceError::NullInRequired { column, row: 2, line: Some(3), .. }
            if column == "active"),
        "{error:?}"
    );
    assert!(error.to_string().contains("movies.csv"), "{error}");
}

#[tokio::test]
async fn a_header_without_a_declared_column_names_file_and_column() {
    let dir = TempDir::new("csv-header");
    dir.write("movies.csv", b"id,score,name,ts\n1,1,a,2026-01-01\n");
    let error = plan(&movies(), &context(&dir), TimeWindow::ALL, 10)
        .await
        .unwrap_err();
    let SourceError::Schema {
        location, column, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert!(location.contains("movies.csv"), "{location}");
    assert_eq!(column, "active");
    assert!(error.to_string().contains("id, score, name, ts"), "{error}");
}

#[test]
fn read_file_reads_csv_entity_files() {
    let dir = TempDir::new("csv-read-file");
    let path = dir.write(
        "entities.csv",
        b"user_id,event_timestamp,extra\n7,2026-01-01,x\n8,2026-01-02,y\n",
    );
    let required = [
        FieldSpec {
            name: "user_id".to_owned(),
            value_type: ValueType::Int64,
            nullable: false,
        },
        FieldSpec {
            name: "event_timestamp".to_owned(),
            value_type: ValueType::Timestamp,
            nullable: false,
        },
    ];
    let optional = [FieldSpec {
        name: "label".to_owned(),
        value_type: ValueType::Float64,
        nullable: true,
    }];
    let (batches, found) = read_file(&path, &required, &optional).expect("read");
    assert_eq!(found, vec![None]);
    let all = concat(arrow_schema(&required), &batches);
    assert_eq!(
        all.column(0).as_primitive::<Int64Type>().values().to_vec(),
        vec![7, 8]
    );
    assert_eq!(
        all.column(1)
            .as_primitive::<TimestampMicrosecondType>()
            .value(1),
        BASE + 86_400_000_000
    );
    let error = read_file(&dir.path().join("entities.json"), &required, &[]).unwrap_err();
    assert!(matches!(error, SourceError::Config { .. }), "{error:?}");
}
