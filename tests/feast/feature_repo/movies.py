"""Feast definitions mirroring Lockstep's movie example (examples/movie-recommendation/lockstep.toml).

Feast's registry needs them so that `FeatureStore.get_feature_service` finds the service; the
values themselves come from Lockstep. The sources' files are never read: online reads go to
the remote online store.
"""

from datetime import timedelta

from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    RequestSource,
    ValueType,
)
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Bool, Float64, Int64, String

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
movie = Entity(name="movie", join_keys=["movie_id"], value_type=ValueType.INT64)

user_profiles = FileSource(
    name="user_profiles",
    path="data/user_profiles.parquet",
    timestamp_field="event_timestamp",
)
movie_metadata = FileSource(
    name="movie_metadata",
    path="data/movie_metadata.parquet",
    timestamp_field="event_timestamp",
)
watch_events = FileSource(
    name="watch_events",
    path="data/watch_events.parquet",
    timestamp_field="event_timestamp",
)

user_profile_features = FeatureView(
    name="user_profile_features",
    entities=[user],
    ttl=timedelta(days=7),
    schema=[
        Field(name="age", dtype=Int64),
        Field(name="avg_rating", dtype=Float64),
        Field(name="total_movies_watched", dtype=Int64),
        Field(name="favorite_genre", dtype=String),
    ],
    source=user_profiles,
)

movie_metadata_features = FeatureView(
    name="movie_metadata_features",
    entities=[movie],
    ttl=timedelta(days=30),
    schema=[
        Field(name="vote_average", dtype=Float64),
        Field(name="vote_count", dtype=Int64),
        Field(name="popularity", dtype=Float64),
        Field(name="runtime", dtype=Int64),
        Field(name="release_year", dtype=Int64),
        Field(name="genre_action", dtype=Bool),
        Field(name="genre_comedy", dtype=Bool),
        Field(name="genre_drama", dtype=Bool),
        Field(name="genre_horror", dtype=Bool),
        Field(name="genre_romance", dtype=Bool),
    ],
    source=movie_metadata,
)

user_movie_interaction_features = FeatureView(
    name="user_movie_interaction_features",
    entities=[user, movie],
    ttl=timedelta(days=1),
    schema=[
        Field(name="watch_time_minutes", dtype=Float64),
        Field(name="completion_rate", dtype=Float64),
        Field(name="is_high_rating", dtype=Bool),
    ],
    source=watch_events,
)

movie_request = RequestSource(
    name="movie_request",
    schema=[
        Field(name="candidate_genre", dtype=String),
        Field(name="request_genre", dtype=String),
    ],
)


@on_demand_feature_view(
    sources=[user_profile_features, movie_metadata_features, movie_request],
    schema=[
        Field(name="rating_gap", dtype=Float64),
        Field(name="log_popularity", dtype=Float64),
        Field(name="genre_match", dtype=Bool),
        Field(name="recommendation_score", dtype=Float64),
    ],
    mode="python",
)
def movie_scorer(inputs: dict) -> dict:
    # Lockstep evaluates this view with its `movie_recommendation_scorer` component: the
    # remote online store sends the whole request to it. Feast runs this function only to
    # check the schema at `feast apply`; its sentinels (a score of -1, outside the scorer's
    # [0, 1]) would show if a client ever computed the view itself.
    rows = len(inputs["candidate_genre"])
    return {
        "rating_gap": [-1.0] * rows,
        "log_popularity": [-1.0] * rows,
        "genre_match": [False] * rows,
        "recommendation_score": [-1.0] * rows,
    }


movie_recommendation_service = FeatureService(
    name="movie_recommendation_service",
    features=[
        user_profile_features[["avg_rating", "total_movies_watched", "favorite_genre"]],
        movie_metadata_features[
            [
                "vote_average",
                "popularity",
                "genre_action",
                "genre_comedy",
                "genre_drama",
                "genre_horror",
                "genre_romance",
            ]
        ],
        movie_scorer,
    ],
)

movie_interaction_service = FeatureService(
    name="movie_interaction_service",
    features=[user_movie_interaction_features],
)
