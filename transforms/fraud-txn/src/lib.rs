//! `fraud_transaction_features`: row-wise features of one card transaction
//! for fraud detection (amount scale and bucket, foreign currency use, hour
//! of day), the input of the per-user windowed aggregations.

use std::fmt;

use lockstep_sdk::{Row, Timestamp, math};

/// One card transaction, borrowing its strings from the input batch.
#[derive(Row, Debug, Clone, PartialEq)]
pub struct Transaction<'a> {
    /// The amount in `currency`; must not be negative.
    pub amount: f64,
    /// ISO 4217 code of the transaction currency, e.g. `USD`.
    pub currency: &'a str,
    /// ISO 3166-1 alpha-2 code of the merchant's country, e.g. `US`.
    pub country: &'a str,
    /// When the transaction happened.
    pub event_timestamp: Timestamp,
}

/// Features of one transaction.
#[derive(Row, Debug, Clone, PartialEq)]
pub struct TransactionFeatures {
    /// `ln(1 + amount)`.
    pub log_amount: f64,
    /// Whether the merchant's country does not use the transaction currency
    /// (see [`home_countries`]); always true for currencies not listed there.
    pub is_foreign: bool,
    /// Hour of the day in UTC, 0 to 23.
    pub hour_of_day: i64,
    /// `0-10`, `10-50`, `50-200`, `200-1000` or `1000+` (lower bounds
    /// inclusive).
    pub amount_bucket: &'static str,
}

/// Why a transaction has no features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TransactionError {
    /// The amount is negative or NaN.
    InvalidAmount(f64),
}

impl fmt::Display for TransactionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidAmount(amount) => {
                write!(f, "amount must be a non-negative number, got {amount}")
            }
        }
    }
}

impl std::error::Error for TransactionError {}

/// Upper bounds (exclusive) and names of the amount buckets; amounts at or
/// above the last bound fall in `1000+`.
const AMOUNT_BUCKETS: [(f64, &str); 4] = [
    (10.0, "0-10"),
    (50.0, "10-50"),
    (200.0, "50-200"),
    (1000.0, "200-1000"),
];

/// Derives the features of one transaction.
///
/// # Errors
///
/// [`TransactionError::InvalidAmount`] for a negative or NaN amount.
#[lockstep_sdk::transform(name = "fraud_transaction_features", version = "1.0.0")]
pub fn transaction_features(txn: Transaction<'_>) -> Result<TransactionFeatures, TransactionError> {
    if txn.amount.is_nan() || txn.amount < 0.0 {
        return Err(TransactionError::InvalidAmount(txn.amount));
    }
    let is_foreign = !home_countries(txn.currency)
        .iter()
        .any(|home| home.eq_ignore_ascii_case(txn.country));
    let hour_of_day = txn
        .event_timestamp
        .as_micros()
        .div_euclid(Timestamp::MICROS_PER_HOUR)
        .rem_euclid(24);
    let amount_bucket = AMOUNT_BUCKETS
        .iter()
        .find(|(bound, _)| txn.amount < *bound)
        .map_or("1000+", |(_, name)| name);
    Ok(TransactionFeatures {
        log_amount: math::log1p(txn.amount),
        is_foreign,
        hour_of_day,
        amount_bucket,
    })
}

/// The countries (ISO 3166-1 alpha-2) whose legal tender is `currency` (ISO
/// 4217, ASCII case-insensitive), including territories and countries that
/// use it officially; empty for currencies not in this table.
pub fn home_countries(currency: &str) -> &'static [&'static str] {
    let &[a, b, c] = currency.as_bytes() else {
        return &[];
    };
    match &[a, b, c].map(|byte| byte.to_ascii_uppercase()) {
        b"USD" => &[
            "US", "PR", "GU", "VI", "AS", "MP", "UM", "EC", "SV", "PA", "TL", "FM", "MH", "PW",
            "BQ", "TC", "VG",
        ],
        // The euro area, plus states using the euro by agreement or unilaterally.
        b"EUR" => &[
            "AT", "BE", "BG", "CY", "DE", "EE", "ES", "FI", "FR", "GR", "HR", "IE", "IT", "LT",
            "LU", "LV", "MT", "NL", "PT", "SI", "SK", "AD", "MC", "SM", "VA", "ME", "XK",
        ],
        b"GBP" => &["GB", "GG", "JE", "IM"],
        b"JPY" => &["JP"],
        b"CHF" => &["CH", "LI"],
        b"CAD" => &["CA"],
        b"AUD" => &["AU", "KI", "NR", "TV"],
        b"NZD" => &["NZ", "CK", "NU"],
        b"CNY" => &["CN"],
        b"HKD" => &["HK"],
        b"SGD" => &["SG"],
        b"KRW" => &["KR"],
        b"INR" => &["IN"],
        b"BRL" => &["BR"],
        b"MXN" => &["MX"],
        b"ZAR" => &["ZA"],
        b"SEK" => &["SE"],
        b"NOK" => &["NO"],
        b"DKK" => &["DK", "FO", "GL"],
        b"PLN" => &["PL"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use lockstep_sdk::{Batch, Column, RowError, TransformError, Utf8Builder, Values, run_rows};

    use super::*;

    const HOUR: i64 = Timestamp::MICROS_PER_HOUR;

    fn txn<'a>(amount: f64, currency: &'a str, country: &'a str, micros: i64) -> Transaction<'a> {
        Transaction {
            amount,
            currency,
            country,
            event_timestamp: Timestamp::from_micros(micros),
        }
    }

    fn features(amount: f64, currency: &str, country: &str, micros: i64) -> TransactionFeatures {
        transaction_features(txn(amount, currency, country, micros)).unwrap()
    }

    #[test]
    fn log_amount() {
        assert_eq!(features(0.0, "USD", "US", 0).log_amount, 0.0);
        assert_eq!(
            features(std::f64::consts::E - 1.0, "USD", "US", 0).log_amount,
            1.0
        );
    }

    #[test]
    fn foreign_by_currency_table() {
        assert!(!features(1.0, "USD", "US", 0).is_foreign);
        assert!(!features(1.0, "usd", "pr", 0).is_foreign);
        assert!(features(1.0, "USD", "FR", 0).is_foreign);
        assert!(!features(1.0, "EUR", "FR", 0).is_foreign);
        assert!(!features(1.0, "EUR", "HR", 0).is_foreign);
        assert!(features(1.0, "EUR", "GB", 0).is_foreign);
        assert!(!features(1.0, "GBP", "GB", 0).is_foreign);
        assert!(!features(1.0, "JPY", "JP", 0).is_foreign);
    }

    #[test]
    fn unknown_currencies_are_foreign() {
        assert!(features(1.0, "XYZ", "US", 0).is_foreign);
        assert!(features(1.0, "", "US", 0).is_foreign);
        assert!(features(1.0, "US DOLLAR", "US", 0).is_foreign);
        assert!(features(1.0, "€€", "FR", 0).is_foreign);
    }

    #[test]
    fn hour_of_day_in_utc() {
        assert_eq!(features(1.0, "USD", "US", 0).hour_of_day, 0);
        assert_eq!(
            features(1.0, "USD", "US", 5 * HOUR + 59 * 60_000_000).hour_of_day,
            5
        );
        // 2023-11-14T22:13:20Z
        assert_eq!(
            features(1.0, "USD", "US", 1_700_000_000_000_000).hour_of_day,
            22
        );
        assert_eq!(features(1.0, "USD", "US", 24 * HOUR).hour_of_day, 0);
    }

    #[test]
    fn hour_of_day_before_1970() {
        assert_eq!(features(1.0, "USD", "US", -1).hour_of_day, 23);
        assert_eq!(features(1.0, "USD", "US", -HOUR).hour_of_day, 23);
        assert_eq!(features(1.0, "USD", "US", -HOUR - 1).hour_of_day, 22);
        assert_eq!(features(1.0, "USD", "US", -24 * HOUR).hour_of_day, 0);
        assert_eq!(
            features(1.0, "USD", "US", i64::MIN).hour_of_day,
            i64::MIN.div_euclid(HOUR).rem_euclid(24)
        );
    }

    #[test]
    fn amount_buckets_include_lower_bounds() {
        let bucket = |amount| features(amount, "USD", "US", 0).amount_bucket;
        assert_eq!(bucket(0.0), "0-10");
        assert_eq!(bucket(9.99), "0-10");
        assert_eq!(bucket(10.0), "10-50");
        assert_eq!(bucket(49.99), "10-50");
        assert_eq!(bucket(50.0), "50-200");
        assert_eq!(bucket(200.0), "200-1000");
        assert_eq!(bucket(999.99), "200-1000");
        assert_eq!(bucket(1000.0), "1000+");
        assert_eq!(bucket(f64::INFINITY), "1000+");
    }

    #[test]
    fn negative_and_nan_amounts_are_row_errors() {
        assert_eq!(
            transaction_features(txn(-0.01, "USD", "US", 0)),
            Err(TransactionError::InvalidAmount(-0.01))
        );
        assert!(transaction_features(txn(f64::NAN, "USD", "US", 0)).is_err());
        assert_eq!(
            TransactionError::InvalidAmount(-5.0).to_string(),
            "amount must be a non-negative number, got -5"
        );
    }

    #[test]
    fn batch_path_reports_failed_rows() {
        let strings = |values: &[&str]| {
            let builder: Utf8Builder = values.iter().collect();
            lockstep_sdk::ColumnBuilder::finish(builder, "")
                .unwrap()
                .values
        };
        let column = |name: &str, values| Column {
            name: name.into(),
            values,
            validity: None,
        };
        let batch = Batch {
            num_rows: 3,
            columns: vec![
                column("amount", Values::Float64(vec![12.5, -1.0, 3000.0])),
                column("currency", strings(&["EUR", "USD", "GBP"])),
                column("country", strings(&["DE", "US", "GB"])),
                column("event_timestamp", Values::Timestamp(vec![0, HOUR, -HOUR])),
            ],
        };
        let result = run_rows(&batch, transaction_features);
        let expected = vec![RowError {
            row: 1,
            message: "amount must be a non-negative number, got -1".into(),
        }];
        assert_eq!(result, Err(TransformError::Rows(expected)));

        let batch = Batch {
            num_rows: 2,
            columns: batch
                .columns
                .into_iter()
                .map(|mut c| {
                    c.values = match c.values {
                        Values::Float64(_) => Values::Float64(vec![12.5, 3000.0]),
                        Values::Timestamp(_) => Values::Timestamp(vec![0, -HOUR]),
                        _ if c.name == "currency" => strings(&["EUR", "GBP"]),
                        _ => strings(&["DE", "US"]),
                    };
                    c
                })
                .collect(),
        };
        let out = run_rows(&batch, transaction_features).unwrap();
        assert_eq!(out.columns[1].values, Values::Boolean(vec![0b10]));
        assert_eq!(out.columns[2].values, Values::Int64(vec![0, 23]));
        assert_eq!(out.columns[3].values, strings(&["10-50", "1000+"]));
    }
}
