//! Deterministic generated data for the demo, tests and benchmarks: same seed, same rows.

mod files;
pub mod fraud;
pub mod movies;

pub use crate::model::random::SplitMix64;
pub use files::DatagenError;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::buffer::NullBuffer;

use crate::model::{FieldSpec, ValueType, arrow_schema};

/// Generates plausible rows for the demo domains, by field name, from a fixed seed.
pub fn generate(fields: &[FieldSpec], rows: usize, seed: u64) -> RecordBatch {
    let mut rng = SplitMix64(seed);
    const GENRES: [&str; 5] = ["action", "comedy", "drama", "horror", "romance"];
    const CURRENCIES: [&str; 4] = ["USD", "EUR", "GBP", "JPY"];
    const COUNTRIES: [&str; 8] = ["US", "US", "US", "DE", "FR", "GB", "JP", "BR"];
    const DAY_MICROS: u64 = 86_400_000_000;
    const START_MICROS: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z
    let columns = fields
        .iter()
        .map(|field| {
            let mut uniform = |n: u64| rng.next_u64() % n;
            let ints = |f: &mut dyn FnMut() -> i64| (0..rows).map(|_| f()).collect::<Vec<_>>();
            let floats = |f: &mut dyn FnMut() -> f64| (0..rows).map(|_| f()).collect::<Vec<_>>();
            let texts =
                |f: &mut dyn FnMut() -> &'static str| (0..rows).map(|_| f()).collect::<Vec<_>>();
            let values: ArrayRef = match (field.name.as_str(), field.value_type) {
                ("watch_seconds", ValueType::Int64) => {
                    Arc::new(Int64Array::from(ints(&mut || uniform(3 * 3600) as i64)))
                }
                ("runtime", ValueType::Int64) => {
                    Arc::new(Int64Array::from(ints(&mut || 80 + uniform(100) as i64)))
                }
                (_, ValueType::Int64) => {
                    Arc::new(Int64Array::from(ints(&mut || uniform(1_000) as i64)))
                }
                ("rating" | "avg_rating", ValueType::Float64) => {
                    Arc::new(Float64Array::from(floats(&mut || {
                        1.0 + uniform(9) as f64 / 2.0
                    })))
                }
                ("vote_average", ValueType::Float64) => {
                    Arc::new(Float64Array::from(floats(&mut || {
                        uniform(101) as f64 / 10.0
                    })))
                }
                ("amount", ValueType::Float64) => Arc::new(Float64Array::from(floats(&mut || {
                    (uniform(1_000_000) as f64 / 1e5).exp().round() / 100.0 * 5.0
                }))),
                (_, ValueType::Float64) => Arc::new(Float64Array::from(floats(&mut || {
                    uniform(100_000) as f64 / 100.0
                }))),
                ("currency", ValueType::Utf8) => Arc::new(StringArray::from(texts(&mut || {
                    CURRENCIES[uniform(4) as usize]
                }))),
                ("country", ValueType::Utf8) => Arc::new(StringArray::from(texts(&mut || {
                    COUNTRIES[uniform(8) as usize]
                }))),
                (_, ValueType::Utf8) => Arc::new(StringArray::from(texts(&mut || {
                    GENRES[uniform(5) as usize]
                }))),
                (_, ValueType::Boolean) => Arc::new(BooleanArray::from(
                    (0..rows).map(|_| uniform(2) == 0).collect::<Vec<_>>(),
                )),
                (_, ValueType::Timestamp) => Arc::new(
                    TimestampMicrosecondArray::from(ints(&mut || {
                        START_MICROS + uniform(30 * DAY_MICROS) as i64
                    }))
                    .with_timezone("UTC"),
                ),
            };
            if !field.nullable {
                return values;
            }
            let valid: Vec<bool> = (0..rows).map(|_| uniform(10) >= 3).collect();
            let nulls = NullBuffer::from(valid);
            let data = values.to_data().into_builder().nulls(Some(nulls));
            arrow::array::make_array(data.build().expect("same length as the values"))
        })
        .collect();
    RecordBatch::try_new(arrow_schema(fields), columns).expect("columns built for the fields")
}
