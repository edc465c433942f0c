//! The fraud-detection raw data: card transactions of users who mostly pay at home, in their
//! currency, around their own typical amount, plus compromised cards with a burst of large
//! foreign transactions within minutes (labelled fraudulent); and labelled transactions for
//! training sets. Written as Parquet, in time order, file by file: memory is bounded by one
//! file plus per-user state, never by the transaction count. Same spec and seed, same bytes.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;

use super::files::{
    DatagenError, Draw, arrow_err, file_len, io_err, parquet_err, remove_stale_parts, stream,
    timestamp_array, timestamp_type, writer_properties,
};
use super::movies::{DAY_MICROS, START_MICROS};

const MINUTE_MICROS: i64 = 60_000_000;
/// Home countries and their currencies, some more common than others.
const HOMES: [(&str, &str); 9] = [
    ("US", "USD"),
    ("US", "USD"),
    ("US", "USD"),
    ("DE", "EUR"),
    ("FR", "EUR"),
    ("GB", "GBP"),
    ("JP", "JPY"),
    ("BR", "BRL"),
    ("US", "USD"),
];
/// Where travellers and fraudsters pay.
const COUNTRIES: [&str; 10] = ["US", "DE", "FR", "GB", "JP", "BR", "MX", "NG", "RU", "TH"];
const MERCHANT_CATEGORIES: [&str; 8] = [
    "grocery",
    "restaurant",
    "fuel",
    "travel",
    "electronics",
    "online",
    "pharmacy",
    "jewelry",
];
/// Share of a user's ordinary transactions made abroad.
const ABROAD: f64 = 0.07;

/// How much fraud-detection data to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FraudDataSpec {
    pub users: u64,
    /// All transactions, fraudulent ones included.
    pub transactions: u64,
    pub days: u32,
    /// Users whose card is used fraudulently once, per thousand users.
    pub compromised_per_mille: u64,
    pub seed: u64,
    pub transactions_per_file: u64,
    pub row_group_rows: usize,
    /// Ordinary transactions sampled into `labels.parquet` (every fraudulent one is there).
    pub label_rows: u64,
}

impl FraudDataSpec {
    /// A few seconds of work: tests, the example's quick run.
    pub fn small() -> Self {
        Self {
            users: 300,
            transactions: 20_000,
            days: 30,
            compromised_per_mille: 50,
            seed: 42,
            transactions_per_file: 5_000,
            row_group_rows: 4_096,
            label_rows: 2_000,
        }
    }

    /// The scenario's benchmark size: a million transactions over 30 days.
    pub fn benchmark() -> Self {
        Self {
            users: 10_000,
            transactions: 1_000_000,
            days: 30,
            compromised_per_mille: 10,
            seed: 42,
            transactions_per_file: 250_000,
            row_group_rows: 65_536,
            label_rows: 100_000,
        }
    }

    /// The end of the period (exclusive), µs.
    pub fn end_micros(&self) -> i64 {
        START_MICROS + i64::from(self.days) * DAY_MICROS
    }

    fn validate(&self, path: &Path) -> Result<(), DatagenError> {
        let reason = if self.users == 0 || self.users > u64::from(u32::MAX) {
            "users must be between 1 and 2^32 - 1"
        } else if self.days == 0 {
            "days must be at least 1"
        } else if self.transactions_per_file == 0 || self.row_group_rows == 0 {
            "transactions_per_file and row_group_rows must be at least 1"
        } else if self.compromised_per_mille > 1000 {
            "compromised_per_mille must be at most 1000"
        } else {
            return Ok(());
        };
        Err(DatagenError::InvalidSpec {
            path: path.to_path_buf(),
            reason: reason.to_owned(),
        })
    }
}

/// What [`write_fraud_data`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FraudFiles {
    pub dir: PathBuf,
    /// `transactions/part-NNNNN.parquet`, in time order.
    pub transaction_files: Vec<PathBuf>,
    /// `labels.parquet`.
    pub labels: PathBuf,
    pub transactions: u64,
    pub fraudulent: u64,
    pub label_rows: u64,
    pub bytes: u64,
}

/// `txn_id, user_id, amount, currency, country, merchant_category, is_fraud,
/// event_timestamp`.
pub fn transactions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("txn_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("currency", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("merchant_category", DataType::Utf8, false),
        Field::new("is_fraud", DataType::Boolean, false),
        Field::new("event_timestamp", timestamp_type(), false),
    ]))
}

/// Labelled transactions, the entity rows of a training set: `txn_id, user_id, amount,
/// is_fraud, event_timestamp`.
pub fn labels_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("txn_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("is_fraud", DataType::Boolean, false),
        Field::new("event_timestamp", timestamp_type(), false),
    ]))
}

/// One transaction before it gets its id.
#[derive(Debug, Clone)]
struct Transaction {
    at: i64,
    user: u64,
    amount: f64,
    country: &'static str,
    category: &'static str,
    fraud: bool,
}

/// A user's habits.
struct User {
    home: (&'static str, &'static str),
    /// Median amount, in the home currency.
    typical: f64,
}

/// `exp` of a roughly normal draw with the given spread: a log-normal factor around 1.
fn lognormal(rng: &mut impl Draw, spread: f64) -> f64 {
    let normal = rng.unit() + rng.unit() + rng.unit() + rng.unit() - 2.0;
    (normal * spread).exp()
}

fn cents(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

/// Writes `transactions/part-*.parquet` and `labels.parquet` under `dir`.
pub fn write_fraud_data(dir: &Path, spec: &FraudDataSpec) -> Result<FraudFiles, DatagenError> {
    spec.validate(dir)?;
    let files_dir = dir.join("transactions");
    fs::create_dir_all(&files_dir).map_err(io_err(&files_dir))?;
    remove_stale_parts(&files_dir)?;
    let end = spec.end_micros();

    let mut rng = stream(spec.seed, 11);
    let users: Vec<User> = (0..spec.users)
        .map(|_| User {
            home: HOMES[rng.below(HOMES.len() as u64) as usize],
            typical: 8.0 + 60.0 * lognormal(&mut rng, 0.9),
        })
        .collect();

    // The fraud bursts, sorted by time, merged into the ordinary stream below.
    let mut bursts: Vec<Transaction> = Vec::new();
    let compromised = spec.users * spec.compromised_per_mille / 1000;
    for _ in 0..compromised {
        let user = rng.below(spec.users);
        let country = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
        let length = 15 * MINUTE_MICROS;
        let start = START_MICROS + rng.below((end - START_MICROS - length) as u64) as i64;
        let count = 5 + rng.below(16);
        for _ in 0..count {
            bursts.push(Transaction {
                at: start + rng.below(length as u64) as i64,
                user,
                amount: cents(users[user as usize].typical * (3.0 + 7.0 * rng.unit())),
                country,
                category: ["electronics", "jewelry", "online"][rng.below(3) as usize],
                fraud: true,
            });
        }
    }
    bursts.sort_by_key(|t| t.at);
    let fraudulent = (bursts.len() as u64).min(spec.transactions);
    bursts.truncate(fraudulent as usize);
    let ordinary = spec.transactions - fraudulent;

    let schema = transactions_schema();
    let props = writer_properties(spec.row_group_rows);
    let labels_path = dir.join("labels.parquet");
    let labels_out = File::create(&labels_path).map_err(io_err(&labels_path))?;
    let mut labels = ArrowWriter::try_new(labels_out, labels_schema(), Some(props.clone()))
        .map_err(parquet_err(&labels_path))?;
    let label_chance = spec.label_rows as f64 / ordinary.max(1) as f64;
    let mut label_rng = stream(spec.seed, 12);
    let mut label_rows = 0;

    let files = ordinary.div_ceil(spec.transactions_per_file).max(1);
    let span = (end - START_MICROS) as u128;
    let mut bursts = bursts.into_iter().peekable();
    let mut next_id = 1i64;
    let mut transaction_files = Vec::with_capacity(files as usize);
    let mut bytes = 0;
    for file in 0..files {
        let first = file * spec.transactions_per_file;
        let rows = spec
            .transactions_per_file
            .min(ordinary.saturating_sub(first));
        let at =
            |n: u64| START_MICROS + (span * u128::from(n) / u128::from(ordinary.max(1))) as i64;
        let (lo, hi) = if file + 1 == files {
            (at(first), end)
        } else {
            (at(first), at(first + rows))
        };
        let mut times: Vec<i64> = (0..rows)
            .map(|_| lo + rng.below((hi - lo).max(1) as u64) as i64)
            .collect();
        times.sort_unstable();
        let mut batch: Vec<Transaction> = Vec::with_capacity(rows as usize);
        for at in times {
            while let Some(burst) = bursts.next_if(|burst| burst.at <= at) {
                batch.push(burst);
            }
            let user_index = rng.skewed(spec.users, |u| u * u.sqrt()) as u64;
            let user = &users[user_index as usize];
            let country = if rng.chance(ABROAD) {
                COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize]
            } else {
                user.home.0
            };
            batch.push(Transaction {
                at,
                user: user_index,
                amount: cents(user.typical * lognormal(&mut rng, 0.5)),
                country,
                category: MERCHANT_CATEGORIES[rng.below(MERCHANT_CATEGORIES.len() as u64) as usize],
                fraud: false,
            });
        }
        if file + 1 == files {
            batch.extend(bursts.by_ref());
        }

        let path = files_dir.join(format!("part-{file:05}.parquet"));
        let out = File::create(&path).map_err(io_err(&path))?;
        let mut writer = ArrowWriter::try_new(out, schema.clone(), Some(props.clone()))
            .map_err(parquet_err(&path))?;
        for chunk in batch.chunks(spec.row_group_rows) {
            let ids: Vec<i64> = (next_id..next_id + chunk.len() as i64).collect();
            next_id += chunk.len() as i64;
            let user_ids: Vec<i64> = chunk.iter().map(|t| t.user as i64 + 1).collect();
            let amounts: Vec<f64> = chunk.iter().map(|t| t.amount).collect();
            let frauds: Vec<bool> = chunk.iter().map(|t| t.fraud).collect();
            let times: Vec<i64> = chunk.iter().map(|t| t.at).collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(Int64Array::from(user_ids.clone())),
                Arc::new(Float64Array::from(amounts.clone())),
                Arc::new(StringArray::from_iter_values(
                    chunk.iter().map(|t| users[t.user as usize].home.1),
                )),
                Arc::new(StringArray::from_iter_values(
                    chunk.iter().map(|t| t.country),
                )),
                Arc::new(StringArray::from_iter_values(
                    chunk.iter().map(|t| t.category),
                )),
                Arc::new(BooleanArray::from(frauds.clone())),
                timestamp_array(times.clone()),
            ];
            let rows = RecordBatch::try_new(schema.clone(), columns).map_err(arrow_err(&path))?;
            writer.write(&rows).map_err(parquet_err(&path))?;

            let labelled: Vec<usize> = (0..chunk.len())
                .filter(|&i| frauds[i] || label_rng.chance(label_chance))
                .collect();
            if !labelled.is_empty() {
                let pick = |values: &[i64]| -> ArrayRef {
                    Arc::new(Int64Array::from_iter_values(
                        labelled.iter().map(|&i| values[i]),
                    ))
                };
                let columns: Vec<ArrayRef> = vec![
                    pick(&ids),
                    pick(&user_ids),
                    Arc::new(Float64Array::from_iter_values(
                        labelled.iter().map(|&i| amounts[i]),
                    )),
                    Arc::new(BooleanArray::from_iter(
                        labelled.iter().map(|&i| Some(frauds[i])),
                    )),
                    timestamp_array(labelled.iter().map(|&i| times[i]).collect()),
                ];
                let rows = RecordBatch::try_new(labels_schema(), columns)
                    .map_err(arrow_err(&labels_path))?;
                labels.write(&rows).map_err(parquet_err(&labels_path))?;
                label_rows += labelled.len() as u64;
            }
        }
        writer.close().map_err(parquet_err(&path))?;
        bytes += file_len(&path)?;
        transaction_files.push(path);
    }
    labels.close().map_err(parquet_err(&labels_path))?;
    bytes += file_len(&labels_path)?;
    Ok(FraudFiles {
        dir: dir.to_path_buf(),
        transaction_files,
        labels: labels_path,
        transactions: (next_id - 1) as u64,
        fraudulent,
        label_rows,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_writes_the_same_bytes_and_bursts_are_labelled() {
        let dir = std::env::temp_dir().join(format!("lockstep-fraud-{}", std::process::id()));
        let spec = FraudDataSpec {
            transactions: 3_000,
            transactions_per_file: 1_000,
            ..FraudDataSpec::small()
        };
        let first = write_fraud_data(&dir.join("a"), &spec).unwrap();
        let second = write_fraud_data(&dir.join("b"), &spec).unwrap();
        assert_eq!(first.transactions, 3_000);
        assert!(first.fraudulent > 20, "{first:?}");
        assert!(first.label_rows >= first.fraudulent);
        assert_eq!(first.transaction_files.len(), 3);
        for (a, b) in first
            .transaction_files
            .iter()
            .zip(&second.transaction_files)
        {
            assert_eq!(fs::read(a).unwrap(), fs::read(b).unwrap());
        }
        // Time order across files, and ids in time order.
        let mut last = (i64::MIN, 0);
        for path in &first.transaction_files {
            let file = File::open(path).unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024)
                    .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let ids = batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap();
                let times = batch
                    .column(7)
                    .as_any()
                    .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
                    .unwrap();
                for row in 0..batch.num_rows() {
                    let now = (times.value(row), ids.value(row));
                    assert!(
                        now.0 >= last.0 && now.1 == last.1 + 1,
                        "{now:?} after {last:?}"
                    );
                    assert!(now.0 < spec.end_micros());
                    last = now;
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
