//! Runtime benchmark: the same transform compiled to wasm and run by the host vs compiled
//! natively, on 8192-row batches (numeric and utf8), and the latency of one-row calls (each
//! on a fresh instance, as every call is).
//!
//! Run with `cargo bench -p lockstep-tests --bench runtime`. Prints figures; asserts nothing.

use std::hint::black_box;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimestampMicrosecondType};
use lockstep::datagen::generate;
use lockstep::model::Digest;
use lockstep::runtime::{Runtime, RuntimeConfig};
use lockstep_sdk as sdk;
use lockstep_tests::{first_party, load};

const BATCH_ROWS: usize = 8192;
const MEASURE_FOR: Duration = Duration::from_secs(3);
const LATENCY_CALLS: usize = 50_000;
/// Goals of wasm over native throughput, with the sandbox fully on (fuel, NaN
/// canonicalisation, a fresh instance per call).
const NUMERIC_GOAL: f64 = 0.8;
const UTF8_GOAL: f64 = 0.7;

fn main() {
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime");
    println!("lockstep runtime benchmark ({BATCH_ROWS}-row batches, {MEASURE_FOR:?} per figure)\n");

    let watch = compare(
        &runtime,
        "numeric (movie_watch_features: 2 int64 + 1 float64? -> 2 float64 + 1 bool?)",
        "movie-watch",
        NUMERIC_GOAL,
        |batch| lockstep_sdk::run_rows(batch, movie_watch::watch_features),
    );
    compare(
        &runtime,
        "utf8 (fraud_transaction_features: 2 utf8 in, 1 utf8 out)",
        "fraud-txn",
        UTF8_GOAL,
        |batch| lockstep_sdk::run_rows(batch, fraud_txn::transaction_features),
    );

    let one = generate(&runtime.signature(&watch).unwrap().inputs, 1, 3);
    for _ in 0..1_000 {
        runtime.call(&watch, &one).unwrap();
    }
    let mut latencies: Vec<Duration> = (0..LATENCY_CALLS)
        .map(|_| {
            let started = Instant::now();
            black_box(runtime.call(&watch, &one).unwrap());
            started.elapsed()
        })
        .collect();
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    println!(
        "one-row call, fresh instance each ({LATENCY_CALLS} calls): median {:.2} µs, p99 {:.2} µs",
        at(0.5),
        at(0.99)
    );
    println!(
        "  (goal: as close to a warm call on a reused instance, 2-3 µs, as instantiating \
         afresh for every call allows)"
    );
}

/// Runs one first-party transform over the same batch as wasm and natively (`native` is
/// the same crate's code through the SDK's runner) and prints both rates. Returns the digest.
fn compare(
    runtime: &Runtime,
    what: &str,
    package: &str,
    goal: f64,
    native: impl Fn(&sdk::Batch) -> Result<sdk::Batch, sdk::TransformError>,
) -> Digest {
    let digest = load(runtime, first_party().get(package));
    let input = generate(&runtime.signature(&digest).unwrap().inputs, BATCH_ROWS, 1);
    let native_input = to_sdk(&input);
    let wasm = rows_per_sec(|| black_box(runtime.call(&digest, &input).unwrap()).num_rows() as u32);
    let native = rows_per_sec(|| black_box(native(&native_input).unwrap()).num_rows);
    report(what, wasm, native, goal);
    digest
}

/// Calls `run` repeatedly for [`MEASURE_FOR`] after a warm-up; returns rows per second.
fn rows_per_sec(mut run: impl FnMut() -> u32) -> f64 {
    for _ in 0..20 {
        run();
    }
    let started = Instant::now();
    let mut rows = 0u64;
    while started.elapsed() < MEASURE_FOR {
        rows += u64::from(run());
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

fn report(what: &str, wasm: f64, native: f64, goal: f64) {
    println!("{what}");
    println!("  wasm   {:>8.2} M rows/s", wasm / 1e6);
    println!("  native {:>8.2} M rows/s", native / 1e6);
    println!("  ratio  {:>8.2} (goal >= {goal})\n", wasm / native);
}

/// A record batch as the SDK's (guest-side) batch: the native baseline's input.
fn to_sdk(batch: &RecordBatch) -> sdk::Batch {
    let schema = batch.schema();
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(array, field)| {
            let values = match array.data_type() {
                DataType::Int64 => {
                    sdk::Values::Int64(array.as_primitive::<Int64Type>().values().to_vec())
                }
                DataType::Float64 => {
                    sdk::Values::Float64(array.as_primitive::<Float64Type>().values().to_vec())
                }
                DataType::Boolean => sdk::Values::Boolean(bitmap(array.as_boolean().values())),
                DataType::Timestamp(..) => sdk::Values::Timestamp(
                    array
                        .as_primitive::<TimestampMicrosecondType>()
                        .values()
                        .to_vec(),
                ),
                DataType::Utf8 => {
                    let strings = array.as_string::<i32>();
                    sdk::Values::Utf8(sdk::Utf8Values {
                        offsets: strings.value_offsets().iter().map(|&o| o as u32).collect(),
                        data: strings.value_data().to_vec(),
                    })
                }
                other => panic!("no SDK column type for {other}"),
            };
            let validity = array.logical_nulls().map(|nulls| bitmap(nulls.inner()));
            sdk::Column {
                name: field.name().clone(),
                values,
                validity,
            }
        })
        .collect();
    sdk::Batch {
        num_rows: batch.num_rows() as u32,
        columns,
    }
}

/// Bits packed Arrow-style from offset 0, as the contract carries booleans and validity.
fn bitmap(bits: &BooleanBuffer) -> Vec<u8> {
    let mut bytes = vec![0u8; bits.len().div_ceil(8)];
    for (i, bit) in bits.iter().enumerate() {
        bytes[i / 8] |= u8::from(bit) << (i % 8);
    }
    bytes
}
