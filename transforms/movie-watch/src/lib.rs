//! `movie_watch_features`: per-event watch features for movie recommendation
//! (how long a user watched a movie, how much of it, and whether they rated
//! it highly), feeding the `user_movie_interaction_features` view.

use lockstep_sdk::Row;

/// Ratings at or above this (on the 5-point scale) count as high.
pub const HIGH_RATING: f64 = 4.0;

/// One watch/rating event of a user on a movie.
#[derive(Row, Debug, Clone, PartialEq)]
pub struct WatchEvent {
    /// Seconds the user watched.
    pub watch_seconds: i64,
    /// The movie's runtime in minutes.
    pub runtime: i64,
    /// The user's rating from 0 to 5, null when they did not rate.
    pub rating: Option<f64>,
}

/// Features derived from one watch event.
#[derive(Row, Debug, Clone, PartialEq)]
pub struct WatchFeatures {
    /// `watch_seconds / 60`.
    pub watch_time_minutes: f64,
    /// Watch time over runtime, clamped to `[0, 1]`; 0 when the runtime is
    /// unknown (zero or negative).
    pub completion_rate: f64,
    /// Whether the rating is at least [`HIGH_RATING`]; null when unrated.
    pub is_high_rating: Option<bool>,
}

/// Derives the watch features of one event.
#[lockstep_sdk::transform(name = "movie_watch_features", version = "1.0.0")]
pub fn watch_features(event: WatchEvent) -> WatchFeatures {
    let watch_time_minutes = event.watch_seconds as f64 / 60.0;
    let completion_rate = if event.runtime > 0 {
        (watch_time_minutes / event.runtime as f64).clamp(0.0, 1.0)
    } else {
        0.0
    };
    WatchFeatures {
        watch_time_minutes,
        completion_rate,
        is_high_rating: event.rating.map(|rating| rating >= HIGH_RATING),
    }
}

#[cfg(test)]
mod tests {
    use lockstep_sdk::{Batch, Column, Values, run_rows};

    use super::*;

    fn features(watch_seconds: i64, runtime: i64, rating: Option<f64>) -> WatchFeatures {
        watch_features(WatchEvent {
            watch_seconds,
            runtime,
            rating,
        })
    }

    #[test]
    fn partial_watch() {
        let f = features(3_600, 120, Some(4.5));
        assert_eq!(f.watch_time_minutes, 60.0);
        assert_eq!(f.completion_rate, 0.5);
        assert_eq!(f.is_high_rating, Some(true));
    }

    #[test]
    fn completion_is_capped_at_one() {
        assert_eq!(features(10_000, 90, None).completion_rate, 1.0);
    }

    #[test]
    fn completion_is_zero_without_a_runtime() {
        assert_eq!(features(600, 0, None).completion_rate, 0.0);
        assert_eq!(features(600, -5, None).completion_rate, 0.0);
    }

    #[test]
    fn negative_watch_time_does_not_go_below_zero_completion() {
        let f = features(-60, 100, None);
        assert_eq!(f.watch_time_minutes, -1.0);
        assert_eq!(f.completion_rate, 0.0);
    }

    #[test]
    fn high_rating_threshold_and_nulls() {
        assert_eq!(features(0, 90, Some(4.0)).is_high_rating, Some(true));
        assert_eq!(features(0, 90, Some(3.9)).is_high_rating, Some(false));
        assert_eq!(features(0, 90, None).is_high_rating, None);
    }

    #[test]
    fn batch_path_matches_row_function() {
        let batch = Batch {
            num_rows: 3,
            columns: vec![
                Column {
                    name: "watch_seconds".into(),
                    values: Values::Int64(vec![5_400, 60, 0]),
                    validity: None,
                },
                Column {
                    name: "runtime".into(),
                    values: Values::Int64(vec![90, 0, 100]),
                    validity: None,
                },
                Column {
                    name: "rating".into(),
                    values: Values::Float64(vec![5.0, 0.0, 2.0]),
                    validity: Some(vec![0b101]),
                },
            ],
        };
        let out = run_rows(&batch, watch_features).unwrap();
        assert_eq!(out.num_rows, 3);
        assert_eq!(out.columns[0].values, Values::Float64(vec![90.0, 1.0, 0.0]));
        assert_eq!(out.columns[1].values, Values::Float64(vec![1.0, 0.0, 0.0]));
        assert_eq!(out.columns[2].values, Values::Boolean(vec![0b001]));
        assert_eq!(out.columns[2].validity, Some(vec![0b101]));
    }
}
