//! Test fixtures: the movie-recommendation example file and a catalog holding its transforms.

use super::{Catalog, ColumnType, Parsed, Resolved, parse, resolve};
use crate::model::{Digest, FieldSpec, TransformVersion};

/// `examples/movie-recommendation/lockstep.toml`, which must stay valid.
pub(crate) const MOVIES: &str =
    include_str!("../../../../examples/movie-recommendation/lockstep.toml");

/// Fields written `name type, name type?`; none when `text` is blank.
pub(crate) fn fields(text: &str) -> Vec<FieldSpec> {
    text.split(',')
        .filter(|field| !field.trim().is_empty())
        .map(|field| {
            let (name, column) = field.trim().split_once(' ').expect("`name type`");
            column
                .parse::<ColumnType>()
                .expect("a column type")
                .field(name)
        })
        .collect()
}

/// Version `number` of transform `name`, its digest derived from both.
pub(crate) fn version(name: &str, number: u32, inputs: &str, outputs: &str) -> TransformVersion {
    TransformVersion {
        name: name.to_owned(),
        version: number,
        digest: Digest::of(format!("{name}@{number}").as_bytes()),
        declared_name: name.to_owned(),
        declared_version: format!("{number}.0.0"),
        inputs: fields(inputs),
        outputs: fields(outputs),
        size_bytes: 1024,
        uploaded_at_micros: 1_767_225_600_000_000 + i64::from(number),
        unsafe_reason: None,
    }
}

pub(crate) const WATCH_INPUTS: &str = "watch_seconds int64, runtime int64, rating float64?";
pub(crate) const WATCH_OUTPUTS: &str =
    "watch_time_minutes float64, completion_rate float64, is_high_rating boolean?";
pub(crate) const SCORER_INPUTS: &str = "avg_rating float64?, favorite_genre utf8?, \
     vote_average float64, popularity float64, candidate_genre utf8, request_genre utf8?";
pub(crate) const SCORER_OUTPUTS: &str = "rating_gap float64?, log_popularity float64, \
     genre_match boolean, recommendation_score float64";

/// `movie_watch_features@1` and `movie_recommendation_scorer@1`, as in transforms/README.md.
pub(crate) fn catalog() -> Catalog {
    Catalog::new(
        vec![
            version("movie_watch_features", 1, WATCH_INPUTS, WATCH_OUTPUTS),
            version(
                "movie_recommendation_scorer",
                1,
                SCORER_INPUTS,
                SCORER_OUTPUTS,
            ),
        ],
        Vec::new(),
    )
}

/// The example file, parsed.
pub(crate) fn movies() -> Parsed {
    parse(MOVIES).expect("the example parses")
}

/// The example file, resolved against [`catalog`].
pub(crate) fn resolved_movies() -> Resolved {
    resolve(&movies(), &catalog()).expect("the example resolves")
}
