//! Deterministic generated data for the demo, tests and benchmarks: same seed, same rows.

mod files;
pub mod fraud;
pub mod movies;

pub use crate::random::SplitMix64;
pub use files::DatagenError;

use crate::runtime::batch::{bitmap, utf8};
use crate::runtime::{Batch, Column, DataType, Field, Values};

/// Generates plausible rows for the demo domains, by field name, from a fixed seed.
pub fn generate(fields: &[Field], rows: usize, seed: u64) -> Batch {
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
            let values = match (field.name.as_str(), field.data_type) {
                ("watch_seconds", DataType::Int64) => {
                    Values::Int64((0..rows).map(|_| uniform(3 * 3600) as i64).collect())
                }
                ("runtime", DataType::Int64) => {
                    Values::Int64((0..rows).map(|_| 80 + uniform(100) as i64).collect())
                }
                (_, DataType::Int64) => {
                    Values::Int64((0..rows).map(|_| uniform(1_000) as i64).collect())
                }
                ("rating" | "avg_rating", DataType::Float64) => {
                    Values::Float64((0..rows).map(|_| 1.0 + uniform(9) as f64 / 2.0).collect())
                }
                ("vote_average", DataType::Float64) => {
                    Values::Float64((0..rows).map(|_| uniform(101) as f64 / 10.0).collect())
                }
                ("amount", DataType::Float64) => Values::Float64(
                    (0..rows)
                        .map(|_| (uniform(1_000_000) as f64 / 1e5).exp().round() / 100.0 * 5.0)
                        .collect(),
                ),
                (_, DataType::Float64) => {
                    Values::Float64((0..rows).map(|_| uniform(100_000) as f64 / 100.0).collect())
                }
                ("currency", DataType::Utf8) => {
                    Values::Utf8(utf8((0..rows).map(|_| CURRENCIES[uniform(4) as usize])))
                }
                ("country", DataType::Utf8) => {
                    Values::Utf8(utf8((0..rows).map(|_| COUNTRIES[uniform(8) as usize])))
                }
                (_, DataType::Utf8) => {
                    Values::Utf8(utf8((0..rows).map(|_| GENRES[uniform(5) as usize])))
                }
                (_, DataType::Boolean) => {
                    Values::Boolean((0..rows).map(|_| uniform(2) == 0).collect())
                }
                (_, DataType::Timestamp) => Values::Timestamp(
                    (0..rows)
                        .map(|_| START_MICROS + uniform(30 * DAY_MICROS) as i64)
                        .collect(),
                ),
            };
            let validity = if field.nullable {
                bitmap((0..rows).map(|_| uniform(10) >= 3))
            } else {
                None
            };
            Column {
                name: field.name.clone(),
                values,
                validity,
            }
        })
        .collect();
    Batch {
        num_rows: rows as u32,
        columns,
    }
}
