//! Native tests of the SDK's batch path: what the generated exports run.

use lockstep_sdk::{
    Batch, Column, ColumnView, DataType, Field, NullableBuilder, Row, RowColumns, RowError,
    Timestamp, TransformError, Utf8Builder, Utf8Values, Values, run_columns, run_rows, signature,
};

#[derive(Row, Debug, Clone, PartialEq)]
struct AllTypes {
    int: i64,
    float: f64,
    text: String,
    flag: bool,
    at: Timestamp,
    maybe_int: Option<i64>,
    maybe_float: Option<f64>,
    maybe_text: Option<String>,
    maybe_flag: Option<bool>,
    maybe_at: Option<Timestamp>,
}

#[derive(Row, Debug, PartialEq)]
pub struct X {
    pub x: i64,
}

#[derive(Row, Debug, PartialEq)]
pub struct Y {
    pub y: i64,
}

#[derive(Row)]
struct Renamed {
    #[row(rename = "event-time")]
    event_time: Timestamp,
    r#type: String,
}

/// Compiles the row attribute natively: the exports are wasm-only.
#[lockstep_sdk::transform(name = "double_or_fail", version = "1.0.0")]
pub fn double_or_fail(row: X) -> Result<Y, String> {
    if row.x < 0 {
        Err(format!("negative input {}", row.x))
    } else {
        Ok(Y { y: row.x * 2 })
    }
}

/// Compiles the columns attribute natively.
#[lockstep_sdk::transform_columns(name = "cumulative", version = "0.1.0")]
pub fn plus_one(input: XColumns<'_>) -> YBuilder {
    YBuilder {
        y: input.x.iter().map(|x| x + 1).collect(),
    }
}

fn column(name: &str, values: Values, validity: Option<Vec<u8>>) -> Column {
    Column {
        name: name.into(),
        values,
        validity,
    }
}

fn utf8(values: &[&str]) -> Values {
    let mut builder = Utf8Builder::new();
    values.iter().for_each(|value| builder.push(value));
    let column = lockstep_sdk::ColumnBuilder::finish(builder, "").unwrap();
    column.values
}

fn ints(name: &str, values: Vec<i64>) -> Batch {
    Batch {
        num_rows: values.len() as u32,
        columns: vec![column(name, Values::Int64(values), None)],
    }
}

fn all_types_batch() -> Batch {
    Batch {
        num_rows: 3,
        columns: vec![
            column("int", Values::Int64(vec![1, -2, i64::MAX]), None),
            column(
                "float",
                Values::Float64(vec![0.5, -1.25, f64::INFINITY]),
                None,
            ),
            column("text", utf8(&["a", "", "ünï"]), None),
            // Booleans are bit-packed: bit i of the bytes is row i.
            column("flag", Values::Boolean(vec![0b101]), None),
            column(
                "at",
                Values::Timestamp(vec![0, -1, 1_700_000_000_000_000]),
                None,
            ),
            column("maybe_int", Values::Int64(vec![7, 0, 9]), Some(vec![0b101])),
            column(
                "maybe_float",
                Values::Float64(vec![0.0, 2.5, 0.0]),
                Some(vec![0b010]),
            ),
            column("maybe_text", utf8(&["x", "", ""]), Some(vec![0b001])),
            column(
                "maybe_flag",
                Values::Boolean(vec![0b010]),
                Some(vec![0b110]),
            ),
            column("maybe_at", Values::Timestamp(vec![5, 6, 7]), None),
        ],
    }
}

fn invalid_input(result: Result<Batch, TransformError>) -> String {
    match result {
        Err(TransformError::InvalidInput(message)) => message,
        other => panic!("expected invalid-input, got {other:?}"),
    }
}

fn failed(result: Result<Batch, TransformError>) -> String {
    match result {
        Err(TransformError::Failed(message)) => message,
        other => panic!("expected failed, got {other:?}"),
    }
}

#[test]
fn identity_round_trips_every_type() {
    // Placeholders under nulls are the defaults, so the output equals the input.
    let input = all_types_batch();
    let mut rows = Vec::new();
    let output = run_rows(&input, |row: AllTypes| {
        rows.push(row.clone());
        row
    })
    .unwrap();
    assert_eq!(output, input);
    assert_eq!(
        rows[1],
        AllTypes {
            int: -2,
            float: -1.25,
            text: String::new(),
            flag: false,
            at: Timestamp::from_micros(-1),
            maybe_int: None,
            maybe_float: Some(2.5),
            maybe_text: None,
            maybe_flag: Some(true),
            maybe_at: Some(Timestamp::from_micros(6)),
        }
    );
    assert_eq!(rows[2].text, "ünï");
    assert_eq!(rows[0].maybe_flag, None);
}

#[test]
fn signature_lists_fields_in_declaration_order() {
    let sig = signature::<AllTypes, X>("all", "2.0.0");
    assert_eq!((sig.name.as_str(), sig.version.as_str()), ("all", "2.0.0"));
    let field = |name: &str, data_type, nullable| Field {
        name: name.into(),
        data_type,
        nullable,
    };
    assert_eq!(
        sig.inputs,
        [
            field("int", DataType::Int64, false),
            field("float", DataType::Float64, false),
            field("text", DataType::Utf8, false),
            field("flag", DataType::Boolean, false),
            field("at", DataType::Timestamp, false),
            field("maybe_int", DataType::Int64, true),
            field("maybe_float", DataType::Float64, true),
            field("maybe_text", DataType::Utf8, true),
            field("maybe_flag", DataType::Boolean, true),
            field("maybe_at", DataType::Timestamp, true),
        ]
    );
    assert_eq!(sig.outputs, [field("x", DataType::Int64, false)]);
    assert_eq!(
        Renamed::fields(),
        [
            field("event-time", DataType::Timestamp, false),
            field("type", DataType::Utf8, false)
        ]
    );
}

#[test]
fn row_signature_follows_the_function() {
    let sig = lockstep_sdk::__private::row_signature("double_or_fail", "1.0.0", double_or_fail);
    assert_eq!(sig, signature::<X, Y>("double_or_fail", "1.0.0"));
    let sig = lockstep_sdk::__private::columns_signature("cumulative", "0.1.0", plus_one);
    assert_eq!(sig, signature::<X, Y>("cumulative", "0.1.0"));
}

#[test]
fn nulls_become_none_and_back() {
    #[derive(Row)]
    struct In {
        rating: Option<f64>,
    }
    #[derive(Row)]
    struct Out {
        high: Option<bool>,
        label: Option<String>,
    }
    let input = Batch {
        num_rows: 4,
        columns: vec![column(
            "rating",
            Values::Float64(vec![4.5, 0.0, 1.0, 0.0]),
            Some(vec![0b0101]),
        )],
    };
    let output = run_rows(&input, |row: In| Out {
        high: row.rating.map(|r| r >= 4.0),
        label: row.rating.map(|r| format!("{r:.1}")),
    })
    .unwrap();
    assert_eq!(output.num_rows, 4);
    assert_eq!(
        output.columns[0],
        column("high", Values::Boolean(vec![0b0001]), Some(vec![0b0101]))
    );
    assert_eq!(
        output.columns[1],
        column("label", utf8(&["4.5", "", "1.0", ""]), Some(vec![0b0101]))
    );
}

#[test]
fn all_valid_bitmaps_are_accepted_for_non_nullable_fields() {
    let input = Batch {
        num_rows: 3,
        columns: vec![column("x", Values::Int64(vec![1, 2, 3]), Some(vec![0b111]))],
    };
    let output = run_rows(&input, |row: X| Y { y: row.x }).unwrap();
    assert_eq!(output, ints("y", vec![1, 2, 3]));
}

#[test]
fn failing_rows_are_all_reported() {
    let input = ints("x", vec![1, -1, 2, -3]);
    let result = run_rows(&input, double_or_fail);
    assert_eq!(
        result,
        Err(TransformError::Rows(vec![
            RowError {
                row: 1,
                message: "negative input -1".into()
            },
            RowError {
                row: 3,
                message: "negative input -3".into()
            },
        ]))
    );
    assert_eq!(
        run_rows(&ints("x", vec![0, 4]), double_or_fail),
        Ok(ints("y", vec![0, 8]))
    );
}

#[test]
fn missing_column_is_named() {
    let message = invalid_input(run_rows(&ints("y", vec![1]), |row: X| row));
    assert_eq!(message, "missing input column `x` (int64)");
    let message = invalid_input(run_rows(&ints("int", vec![1]), |row: AllTypes| row));
    assert_eq!(message, "missing input column `float` (float64)");
    #[derive(Row)]
    struct Nullable {
        x: i64,
        rating: Option<f64>,
    }
    let message = invalid_input(run_rows(&ints("x", vec![1]), |row: Nullable| X {
        x: row.x,
    }));
    assert_eq!(message, "missing input column `rating` (float64, nullable)");
}

#[test]
fn wrong_type_is_named() {
    let input = Batch {
        num_rows: 1,
        columns: vec![column("x", Values::Float64(vec![1.0]), None)],
    };
    assert_eq!(
        invalid_input(run_rows(&input, |row: X| row)),
        "input column `x` has type float64, expected int64"
    );
    let input = Batch {
        num_rows: 1,
        columns: vec![column("x", Values::Timestamp(vec![1]), None)],
    };
    assert_eq!(
        invalid_input(run_rows(&input, |row: X| row)),
        "input column `x` has type timestamp, expected int64"
    );
}

#[test]
fn malformed_columns_are_rejected() {
    let short = Batch {
        num_rows: 3,
        columns: vec![column("x", Values::Int64(vec![1, 2]), None)],
    };
    assert_eq!(
        invalid_input(run_rows(&short, |row: X| row)),
        "input column `x` has 2 values but the batch has 3 rows"
    );

    let null = Batch {
        num_rows: 10,
        columns: vec![column(
            "x",
            Values::Int64(vec![0; 10]),
            Some(vec![0xFF, 0b01]),
        )],
    };
    assert_eq!(
        invalid_input(run_rows(&null, |row: X| row)),
        "input column `x` is not nullable but row 9 is null"
    );

    let bitmap = Batch {
        num_rows: 9,
        columns: vec![column("x", Values::Int64(vec![0; 9]), Some(vec![0xFF]))],
    };
    assert_eq!(
        invalid_input(run_rows(&bitmap, |row: X| row)),
        "input column `x` has a validity bitmap of 1 bytes, 2 needed for 9 rows"
    );

    let twice = Batch {
        num_rows: 1,
        columns: vec![column("x", Values::Int64(vec![1]), None); 2],
    };
    assert_eq!(
        invalid_input(run_rows(&twice, |row: X| row)),
        "input column `x` appears more than once"
    );

    #[derive(Row)]
    struct Text {
        text: String,
    }
    let offsets = Batch {
        num_rows: 2,
        columns: vec![column(
            "text",
            Values::Utf8(Utf8Values {
                offsets: vec![0, 3, 1],
                data: b"abc".to_vec(),
            }),
            None,
        )],
    };
    assert_eq!(
        invalid_input(run_rows(&offsets, |row: Text| X {
            x: row.text.len() as i64
        })),
        "input column `text` has utf8 offsets that decrease at row 1"
    );
}

#[test]
fn extra_columns_are_ignored() {
    let mut input = ints("x", vec![5]);
    input
        .columns
        .insert(0, column("other", Values::Boolean(vec![0b1]), None));
    assert_eq!(
        run_rows(&input, |row: X| Y { y: row.x }),
        Ok(ints("y", vec![5]))
    );
}

#[test]
fn utf8_round_trips_through_packed_layout() {
    #[derive(Row)]
    struct Text {
        text: String,
    }
    let values = ["", "ascii", "naïve café", "日本語", "🦀🦀", ""];
    let input = Batch {
        num_rows: values.len() as u32,
        columns: vec![column("text", utf8(&values), None)],
    };
    let output = run_rows(&input, |row: Text| Text {
        text: row.text.to_uppercase(),
    })
    .unwrap();
    let expected: Vec<String> = values.iter().map(|v| v.to_uppercase()).collect();
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(output.columns[0].values, utf8(&expected));
    let Values::Utf8(packed) = &output.columns[0].values else {
        unreachable!()
    };
    assert_eq!(packed.offsets.len(), values.len() + 1);
    assert_eq!(packed.offsets[0], 0);
    assert_eq!(*packed.offsets.last().unwrap() as usize, packed.data.len());
}

#[test]
fn bitmaps_round_trip_at_byte_edges() {
    #[derive(Row)]
    struct MaybeX {
        x: Option<i64>,
    }
    for rows in [0usize, 1, 7, 8, 9, 10_000] {
        let values: Vec<Option<i64>> = (0..rows as i64)
            .map(|i| (i % 3 != 1).then_some(i))
            .collect();
        let builder: NullableBuilder<Vec<i64>> = values.iter().copied().collect();
        let input_column = lockstep_sdk::ColumnBuilder::finish(builder, "x").unwrap();
        assert_eq!(
            input_column.validity.as_ref().map(Vec::len),
            (rows > 1).then(|| rows.div_ceil(8)),
            "{rows} rows"
        );
        let input = Batch {
            num_rows: rows as u32,
            columns: vec![input_column.clone()],
        };
        let output = run_rows(&input, |row: MaybeX| row).unwrap();
        assert_eq!(output.num_rows as usize, rows);
        assert_eq!(output.columns, [input_column], "{rows} rows");

        let all_valid = Batch {
            num_rows: rows as u32,
            columns: vec![column("x", Values::Int64(vec![3; rows]), None)],
        };
        let output = run_rows(&all_valid, |row: MaybeX| row).unwrap();
        assert_eq!(output.columns[0].validity, None, "{rows} rows");
        let output = run_rows(&all_valid, |_: MaybeX| MaybeX { x: None }).unwrap();
        let expected = (rows > 0).then(|| vec![0; rows.div_ceil(8)]);
        assert_eq!(output.columns[0].validity, expected, "{rows} rows");
    }
}

#[test]
fn empty_batches_produce_empty_columns() {
    let output = run_rows(&all_types_batch_with_rows(0), |row: AllTypes| row).unwrap();
    assert_eq!(output.num_rows, 0);
    assert_eq!(output.columns.len(), 10);
    assert_eq!(
        output.columns[2].values,
        Values::Utf8(Utf8Values {
            offsets: vec![0],
            data: vec![]
        })
    );
    assert!(output.columns.iter().all(|c| c.validity.is_none()));
}

fn all_types_batch_with_rows(rows: usize) -> Batch {
    let mut batch = all_types_batch();
    batch.num_rows = rows as u32;
    for column in &mut batch.columns {
        column.validity = None;
        column.values = match &column.values {
            Values::Int64(_) => Values::Int64(vec![0; rows]),
            Values::Float64(_) => Values::Float64(vec![0.0; rows]),
            Values::Utf8(_) => utf8(&vec![""; rows]),
            Values::Boolean(_) => Values::Boolean(vec![0; rows.div_ceil(8)]),
            Values::Timestamp(_) => Values::Timestamp(vec![0; rows]),
        };
    }
    batch
}

#[test]
fn columns_functions_see_typed_views() {
    let input = all_types_batch();
    let output = run_columns(&input, |columns: AllTypesColumns<'_>| {
        assert_eq!(columns.num_rows(), 3);
        assert_eq!(columns.text.iter().collect::<Vec<_>>(), ["a", "", "ünï"]);
        assert_eq!(columns.maybe_int.value(1), None);
        assert_eq!(columns.maybe_int.null_count(), 1);
        assert_eq!(columns.at.value(1), Timestamp::from_micros(-1));
        let mut out = YBuilder::with_capacity(columns.num_rows());
        for row in 0..columns.num_rows() {
            out.push(Y {
                y: columns.int[row].wrapping_add(columns.maybe_int.value(row).unwrap_or(100)),
            });
        }
        out
    })
    .unwrap();
    assert_eq!(output, ints("y", vec![8, 98, i64::MAX.wrapping_add(9)]));
    assert_eq!(
        run_columns(&ints("x", vec![1, 2]), plus_one),
        Ok(ints("y", vec![2, 3]))
    );
}

#[test]
fn columns_functions_must_keep_the_row_count() {
    let message = failed(run_columns(&ints("x", vec![1, 2]), |_: XColumns<'_>| {
        YBuilder { y: vec![1] }
    }));
    assert_eq!(
        message,
        "the transform returned 1 rows for 2 input rows; it must return exactly one row per input row"
    );

    #[derive(Row)]
    struct Two {
        a: i64,
        b: Option<String>,
    }
    let message = failed(run_columns(&ints("x", vec![1]), |_: XColumns<'_>| {
        TwoBuilder {
            a: vec![1],
            b: NullableBuilder::with_capacity(0),
        }
    }));
    assert_eq!(
        message,
        "output column `b` has 0 rows but output column `a` has 1"
    );
}

#[test]
fn columns_functions_may_fail() {
    let result = run_columns(
        &ints("x", vec![1]),
        |_: XColumns<'_>| -> Result<YBuilder, TransformError> {
            Err(TransformError::Failed("model not ready".into()))
        },
    );
    assert_eq!(
        result,
        Err(TransformError::Failed("model not ready".into()))
    );
}

#[derive(Row, Debug, PartialEq)]
struct Borrowed<'a> {
    code: &'a str,
    label: Option<&'a str>,
    owned: String,
}

#[derive(Row, Debug, PartialEq)]
struct Labelled {
    bucket: &'static str,
    maybe: Option<&'static str>,
}

#[test]
fn str_fields_borrow_from_the_batch() {
    let input = Batch {
        num_rows: 3,
        columns: vec![
            column("code", utf8(&["USD", "EUR", "ünï"]), None),
            column("label", utf8(&["a", "", "c"]), Some(vec![0b101])),
            column("owned", utf8(&["x", "y", "z"]), None),
        ],
    };
    let mut seen = Vec::new();
    let output = run_rows(&input, |row: Borrowed<'_>| {
        seen.push((row.code.len(), row.label.is_some()));
        row
    })
    .unwrap();
    assert_eq!(output, input);
    assert_eq!(seen, [(3, true), (3, false), (5, true)]);
    let columns = BorrowedColumns::from_batch(&input).unwrap();
    assert_eq!(
        columns.row(2),
        Borrowed {
            code: "ünï",
            label: Some("c"),
            owned: "z".into()
        }
    );
    assert_eq!(
        signature::<Borrowed<'_>, Labelled>("s", "1").inputs[1],
        Field {
            name: "label".into(),
            data_type: DataType::Utf8,
            nullable: true,
        }
    );
}

#[test]
fn static_str_fields_are_output_only_columns() {
    let output = run_rows(&ints("x", vec![1, 20]), |row: X| Labelled {
        bucket: if row.x < 10 { "0-10" } else { "10+" },
        maybe: (row.x < 10).then_some("small"),
    })
    .unwrap();
    assert_eq!(output.columns[0].values, utf8(&["0-10", "10+"]));
    assert_eq!(output.columns[1].values, utf8(&["small", ""]));
    assert_eq!(output.columns[1].validity, Some(vec![0b01]));
}

#[test]
fn rows_may_return_borrowed_input() {
    #[derive(Row)]
    struct Echo<'s> {
        text: &'s str,
    }
    let input = Batch {
        num_rows: 2,
        columns: vec![column("text", utf8(&["hello", "wörld"]), None)],
    };
    let output = run_rows(&input, |row: Echo<'_>| Echo {
        text: row.text.trim_end_matches('d'),
    })
    .unwrap();
    assert_eq!(output.columns[0].values, utf8(&["hello", "wörl"]));
}
