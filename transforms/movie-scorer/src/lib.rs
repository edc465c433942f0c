//! `movie_recommendation_scorer`: the on-demand scorer of a candidate movie
//! for a user, combining user features, movie features and request data at
//! request time online and after the point-in-time join offline.
//!
//! # Score
//!
//! `recommendation_score` is a weighted blend in `[0, 1]` of four signals,
//! each in `[0, 1]`:
//!
//! | signal | weight | definition |
//! |---|---|---|
//! | quality | 0.45 | `vote_average / 10`, clamped |
//! | genre | 0.25 | 1 if `genre_match`, else 0 |
//! | popularity | 0.20 | `log_popularity / (log_popularity + 3)`: 0.5 at popularity ≈ 19, saturating |
//! | taste fit | 0.10 | `1 - min(|rating_gap|, 5) / 5`, or 0.5 when the user has no ratings |

use lockstep_sdk::{Row, math};

/// Weight of the movie's average vote.
pub const QUALITY_WEIGHT: f64 = 0.45;
/// Weight of the genre match.
pub const GENRE_WEIGHT: f64 = 0.25;
/// Weight of the movie's popularity.
pub const POPULARITY_WEIGHT: f64 = 0.20;
/// Weight of how close the movie's rating is to the user's average rating.
pub const TASTE_WEIGHT: f64 = 0.10;
/// `log_popularity` at which the popularity signal is one half.
const POPULARITY_HALF_POINT: f64 = 3.0;
/// Taste fit of a user without ratings: neither a bonus nor a penalty.
const NEUTRAL_TASTE: f64 = 0.5;

/// A (user, candidate movie) pair with the request's context, borrowing its
/// strings from the input batch.
#[derive(Row, Debug, Clone, PartialEq)]
pub struct ScoringInput<'a> {
    /// The user's average rating on the 5-point scale; null without ratings.
    pub avg_rating: Option<f64>,
    /// The user's favorite genre, if known.
    pub favorite_genre: Option<&'a str>,
    /// The movie's average vote on the 10-point scale.
    pub vote_average: f64,
    /// The movie's popularity (an unbounded, non-negative score).
    pub popularity: f64,
    /// The movie's main genre.
    pub candidate_genre: &'a str,
    /// The genre the user is browsing, from the request, if any.
    pub request_genre: Option<&'a str>,
}

/// The scorer's features.
#[derive(Row, Debug, Clone, PartialEq)]
pub struct ScoringFeatures {
    /// The movie's vote average on the 5-point scale minus the user's average
    /// rating; null when the user has no ratings.
    pub rating_gap: Option<f64>,
    /// `ln(1 + max(popularity, 0))`.
    pub log_popularity: f64,
    /// Whether the movie's genre is the requested genre, or the user's
    /// favorite when the request names none (ASCII case-insensitive).
    pub genre_match: bool,
    /// The blend described in the crate docs, in `[0, 1]`.
    pub recommendation_score: f64,
}

/// Scores one candidate movie for one user.
#[lockstep_sdk::transform(name = "movie_recommendation_scorer", version = "1.0.0")]
pub fn score(input: ScoringInput<'_>) -> ScoringFeatures {
    let rating_gap = input.avg_rating.map(|avg| input.vote_average / 2.0 - avg);
    let log_popularity = math::log1p(input.popularity.max(0.0));
    let wanted = input.request_genre.or(input.favorite_genre);
    let genre_match = wanted.is_some_and(|genre| genre.eq_ignore_ascii_case(input.candidate_genre));

    let quality = (input.vote_average / 10.0).clamp(0.0, 1.0);
    let genre = if genre_match { 1.0 } else { 0.0 };
    let popularity = log_popularity / (log_popularity + POPULARITY_HALF_POINT);
    let taste = rating_gap.map_or(NEUTRAL_TASTE, |gap| 1.0 - gap.abs().min(5.0) / 5.0);
    let recommendation_score = QUALITY_WEIGHT * quality
        + GENRE_WEIGHT * genre
        + POPULARITY_WEIGHT * popularity
        + TASTE_WEIGHT * taste;

    ScoringFeatures {
        rating_gap,
        log_popularity,
        genre_match,
        recommendation_score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ScoringInput<'static> {
        ScoringInput {
            avg_rating: Some(3.5),
            favorite_genre: Some("drama"),
            vote_average: 8.0,
            popularity: 19.0,
            candidate_genre: "Drama",
            request_genre: None,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn weights_sum_to_one() {
        assert!(close(
            QUALITY_WEIGHT + GENRE_WEIGHT + POPULARITY_WEIGHT + TASTE_WEIGHT,
            1.0
        ));
    }

    #[test]
    fn rating_gap_is_on_the_five_point_scale() {
        assert_eq!(score(input()).rating_gap, Some(0.5));
        assert_eq!(
            score(ScoringInput {
                avg_rating: None,
                ..input()
            })
            .rating_gap,
            None
        );
    }

    #[test]
    fn log_popularity_ignores_negative_popularity() {
        assert!(close(score(input()).log_popularity, 20f64.ln()));
        assert_eq!(
            score(ScoringInput {
                popularity: -4.0,
                ..input()
            })
            .log_popularity,
            0.0
        );
    }

    #[test]
    fn request_genre_takes_precedence_over_favorite() {
        assert!(score(input()).genre_match);
        let browsing_comedy = ScoringInput {
            request_genre: Some("comedy"),
            ..input()
        };
        assert!(!score(browsing_comedy).genre_match);
        let browsing_drama = ScoringInput {
            request_genre: Some("DRAMA"),
            favorite_genre: None,
            ..input()
        };
        assert!(score(browsing_drama).genre_match);
        assert!(
            !score(ScoringInput {
                favorite_genre: None,
                ..input()
            })
            .genre_match
        );
    }

    #[test]
    fn score_blends_the_signals() {
        // quality 0.8, genre 1, popularity ln(20)/(ln(20)+3), taste 1 - 0.5/5.
        let log_pop = 20f64.ln();
        let expected = 0.45 * 0.8 + 0.25 + 0.20 * log_pop / (log_pop + 3.0) + 0.10 * 0.9;
        assert!(close(score(input()).recommendation_score, expected));
    }

    #[test]
    fn score_stays_in_unit_interval() {
        let best = ScoringInput {
            avg_rating: Some(5.0),
            vote_average: 10.0,
            popularity: 1e300,
            ..input()
        };
        let worst = ScoringInput {
            avg_rating: Some(5.0),
            vote_average: -3.0,
            popularity: 0.0,
            favorite_genre: None,
            ..input()
        };
        let best = score(best).recommendation_score;
        let worst = score(worst).recommendation_score;
        assert!(best > 0.9 && best <= 1.0, "{best}");
        assert!((0.0..0.1).contains(&worst), "{worst}");
    }

    #[test]
    fn unrated_users_get_a_neutral_taste_fit() {
        let with = score(ScoringInput {
            avg_rating: Some(4.0),
            ..input()
        })
        .recommendation_score;
        let without = score(ScoringInput {
            avg_rating: None,
            ..input()
        })
        .recommendation_score;
        assert!(close(with - without, TASTE_WEIGHT * (1.0 - NEUTRAL_TASTE)));
    }
}
