//! `fraud_transaction_scorer`: the on-demand features of a candidate card
//! transaction, comparing its amount (sent with the request) to the user's
//! windowed aggregates, at request time online and after the point-in-time
//! join offline.

use lockstep_sdk::Row;

/// Transactions in the last hour at which the user counts as bursting.
pub const BURST_TRANSACTIONS_1H: i64 = 5;

/// A candidate transaction with the user's aggregates.
#[derive(Row, Debug, Clone, PartialEq)]
pub struct CandidateTransaction {
    /// The candidate's amount, from the request.
    pub amount: f64,
    /// The user's mean amount over 24 hours; null without transactions then.
    pub avg_amount_24h: Option<f64>,
    /// The user's largest amount over 7 days; null without transactions then.
    pub max_amount_7d: Option<f64>,
    /// The user's transactions in the last hour; null for an unknown user.
    pub txn_count_1h: Option<i64>,
}

/// The candidate's features.
#[derive(Row, Debug, Clone, PartialEq)]
pub struct CandidateFeatures {
    /// `amount / avg_amount_24h`; null without a positive 24-hour average.
    pub amount_vs_avg_24h: Option<f64>,
    /// Whether the amount exceeds everything the user spent in 7 days; null
    /// without transactions in 7 days.
    pub exceeds_max_7d: Option<bool>,
    /// Whether the user made at least [`BURST_TRANSACTIONS_1H`] transactions
    /// in the last hour (false for an unknown user).
    pub is_burst: bool,
}

/// Scores one candidate transaction.
#[lockstep_sdk::transform(name = "fraud_transaction_scorer", version = "1.0.0")]
pub fn score(candidate: CandidateTransaction) -> CandidateFeatures {
    CandidateFeatures {
        amount_vs_avg_24h: candidate
            .avg_amount_24h
            .filter(|average| *average > 0.0)
            .map(|average| candidate.amount / average),
        exceeds_max_7d: candidate.max_amount_7d.map(|max| candidate.amount > max),
        is_burst: candidate
            .txn_count_1h
            .is_some_and(|count| count >= BURST_TRANSACTIONS_1H),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate() -> CandidateTransaction {
        CandidateTransaction {
            amount: 300.0,
            avg_amount_24h: Some(60.0),
            max_amount_7d: Some(250.0),
            txn_count_1h: Some(2),
        }
    }

    #[test]
    fn the_amount_is_compared_to_the_average_and_the_maximum() {
        let features = score(candidate());
        assert_eq!(features.amount_vs_avg_24h, Some(5.0));
        assert_eq!(features.exceeds_max_7d, Some(true));
        assert!(!features.is_burst);
    }

    #[test]
    fn missing_history_gives_nulls_not_guesses() {
        let features = score(CandidateTransaction {
            avg_amount_24h: None,
            max_amount_7d: None,
            txn_count_1h: None,
            ..candidate()
        });
        assert_eq!(features.amount_vs_avg_24h, None);
        assert_eq!(features.exceeds_max_7d, None);
        assert!(!features.is_burst);
        let zero_average = CandidateTransaction {
            avg_amount_24h: Some(0.0),
            ..candidate()
        };
        assert_eq!(score(zero_average).amount_vs_avg_24h, None);
    }

    #[test]
    fn five_transactions_in_an_hour_are_a_burst() {
        let burst = CandidateTransaction {
            txn_count_1h: Some(BURST_TRANSACTIONS_1H),
            ..candidate()
        };
        assert!(score(burst).is_burst);
    }
}
