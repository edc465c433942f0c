//! The movie-recommendation raw data (watch events, user profiles, movie metadata) and training
//! entity rows, generated deterministically from a seed and written as Parquet and CSV files.
//!
//! Everything streams: watch events are generated file by file in time order (each file covers
//! the next slice of the period, its timestamps drawn and sorted on their own), and the user
//! profile snapshots and movie metadata refreshes are merged into that stream by time, so memory
//! is bounded by one events file plus per-user and per-movie state, never by the event count.
//! Because of that merge the snapshots are consistent with the events: a profile row at time `t`
//! counts exactly the user's events with `event_timestamp <= t`, and a metadata row's
//! `vote_count` / `vote_average` include exactly the movie's ratings up to its timestamp.
//!
//! The same spec and seed give byte-identical files on every machine.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::SplitMix64;
pub use super::files::DatagenError;
use super::files::{
    Draw, arrow_err, file_len, io_err, parquet_err, remove_stale_parts, stream, timestamp_array,
    timestamp_type, writer_properties,
};

/// 2026-01-01T00:00:00Z in microseconds since the Unix epoch: the start of the generated period.
pub const START_MICROS: i64 = 1_767_225_600_000_000;
/// One day in microseconds.
pub const DAY_MICROS: i64 = 86_400_000_000;
/// The genres, in the order of the `genre_*` metadata columns.
pub const GENRES: [&str; 5] = ["action", "comedy", "drama", "horror", "romance"];

/// Days between two refreshes of a movie's metadata.
const METADATA_REFRESH_DAYS: i64 = 10;
/// Profile snapshots: the first within this many days, then every 3–10 days.
const FIRST_PROFILE_DAYS: i64 = 3;
const PROFILE_MIN_GAP_DAYS: i64 = 3;
const PROFILE_MAX_GAP_DAYS: i64 = 10;
/// Probability that a watch event carries a rating.
const RATED: f64 = 0.4;

/// Activity skew of users: `u^1.5`, the top 1% watch ~4.6% of the events (see `Draw::skewed`).
/// Only exactly rounded float operations (no `powf`), so every platform draws the same ranks.
fn user_skew(u: f64) -> f64 {
    u * u.sqrt()
}

/// Popularity skew of movies: `u^2`, the top 1% get ~10% of the watches.
fn movie_skew(u: f64) -> f64 {
    u * u
}

/// The size and shape of the generated movie data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovieDataSpec {
    /// Users, with ids `1..=users`.
    pub users: u64,
    /// Movies, with ids `1..=movies`.
    pub movies: u64,
    /// Watch events over the whole period.
    pub events: u64,
    /// Length of the period in days, from [`START_MICROS`].
    pub days: u32,
    pub seed: u64,
    /// Watch events per Parquet file (the last file may hold fewer).
    pub events_per_file: u64,
    /// Rows per Parquet row group (and per record batch written).
    pub row_group_rows: usize,
}

impl MovieDataSpec {
    /// Demo size: 1,000 users, 200 movies, 20,000 events over 30 days, in 4 files.
    pub fn small() -> Self {
        Self {
            users: 1_000,
            movies: 200,
            events: 20_000,
            days: 30,
            seed: 42,
            events_per_file: 5_000,
            row_group_rows: 2_048,
        }
    }

    /// Benchmark size: 100,000 users, 10,000 movies, 1,000,000 events over 30 days, in 4 files.
    pub fn benchmark() -> Self {
        Self {
            users: 100_000,
            movies: 10_000,
            events: 1_000_000,
            days: 30,
            seed: 42,
            events_per_file: 250_000,
            row_group_rows: 65_536,
        }
    }

    /// The end of the period (exclusive), in microseconds since the Unix epoch.
    pub fn end_micros(&self) -> i64 {
        START_MICROS + i64::from(self.days) * DAY_MICROS
    }

    fn validate(&self, path: &Path) -> Result<(), DatagenError> {
        let reason = if self.users == 0 {
            "users must be at least 1"
        } else if self.movies == 0 {
            "movies must be at least 1"
        } else if self.days == 0 {
            "days must be at least 1"
        } else if self.events_per_file == 0 {
            "events_per_file must be at least 1"
        } else if self.row_group_rows == 0 {
            "row_group_rows must be at least 1"
        } else if self.users > u64::from(u32::MAX) || self.movies > u64::from(u32::MAX) {
            "users and movies must each fit in 32 bits"
        } else {
            return Ok(());
        };
        Err(DatagenError::InvalidSpec {
            path: path.to_path_buf(),
            reason: reason.to_owned(),
        })
    }
}

/// Rows written per data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RowCounts {
    pub watch_events: u64,
    pub user_profiles: u64,
    pub movie_metadata: u64,
}

/// What [`write_movie_data`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFiles {
    pub dir: PathBuf,
    /// `watch_events/part-NNNNN.parquet`, in time order.
    pub watch_event_files: Vec<PathBuf>,
    pub user_profiles: PathBuf,
    pub movie_metadata: PathBuf,
    pub rows: RowCounts,
    /// Total size of all the files written.
    pub bytes: u64,
}

/// `user_id, movie_id, watch_seconds, runtime, rating?, event_timestamp`.
pub fn watch_events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("movie_id", DataType::Int64, false),
        Field::new("watch_seconds", DataType::Int64, false),
        Field::new("runtime", DataType::Int64, false),
        Field::new("rating", DataType::Float64, true),
        Field::new("event_timestamp", timestamp_type(), false),
    ]))
}

/// `user_id, age, favorite_genre?, avg_rating?, total_movies_watched, signup_date,
/// event_timestamp`.
pub fn user_profiles_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("age", DataType::Int64, false),
        Field::new("favorite_genre", DataType::Utf8, true),
        Field::new("avg_rating", DataType::Float64, true),
        Field::new("total_movies_watched", DataType::Int64, false),
        Field::new("signup_date", timestamp_type(), false),
        Field::new("event_timestamp", timestamp_type(), false),
    ]))
}

/// The columns of `movie_metadata.csv`, as they should be read back. Arrow's CSV reader cannot
/// resolve the zone name `UTC` without its `chrono-tz` feature: read `event_timestamp` as
/// `Timestamp(Microsecond, None)` (or zone `+00:00`); the values are the same UTC instants.
pub fn movie_metadata_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("movie_id", DataType::Int64, false),
        Field::new("vote_average", DataType::Float64, false),
        Field::new("vote_count", DataType::Int64, false),
        Field::new("popularity", DataType::Float64, false),
        Field::new("runtime", DataType::Int64, false),
        Field::new("release_year", DataType::Int64, false),
    ];
    fields.extend(
        GENRES
            .iter()
            .map(|genre| Field::new(format!("genre_{genre}"), DataType::Boolean, false)),
    );
    fields.push(Field::new("event_timestamp", timestamp_type(), false));
    Arc::new(Schema::new(fields))
}

/// `user_id, movie_id, event_timestamp, candidate_genre, request_genre?`.
pub fn entity_rows_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("movie_id", DataType::Int64, false),
        Field::new("event_timestamp", timestamp_type(), false),
        Field::new("candidate_genre", DataType::Utf8, false),
        Field::new("request_genre", DataType::Utf8, true),
    ]))
}

/// Writes, under `dir` (created if missing):
///
/// * `watch_events/part-00000.parquet` …: the events in files of `events_per_file` rows and row
///   groups of `row_group_rows`, zstd compressed, sorted by `event_timestamp` over the whole data
///   set (file `n + 1` starts after file `n` ends). Stale `part-*.parquet` files from an earlier,
///   larger run are removed first. `rating` is null for about 60% of the events; users' activity
///   and movies' popularity are skewed.
/// * `user_profiles.parquet`: one row per user and profile refresh (the first in the first three
///   days, then every 3–10 days), sorted by `event_timestamp`; `total_movies_watched` and
///   `avg_rating` (null until the user has rated something) aggregate the user's events up to and
///   including the snapshot time. `favorite_genre` is null for about 10% of the users.
/// * `movie_metadata.csv`: a header, then one row per movie and refresh (all movies at the
///   start, then every ten days, give or take a few hours), sorted by `event_timestamp` (RFC 3339,
///   `Z`). `runtime` is the one used in the watch events; `vote_count` and `vote_average` include
///   the ratings in the events; `popularity` drifts and follows recent watches.
pub fn write_movie_data(dir: &Path, spec: &MovieDataSpec) -> Result<WrittenFiles, DatagenError> {
    spec.validate(dir)?;
    let events_dir = dir.join("watch_events");
    fs::create_dir_all(&events_dir).map_err(io_err(&events_dir))?;
    remove_stale_parts(&events_dir)?;

    let catalog = Catalog::new(spec);
    let population = Population::new(spec);
    let end = spec.end_micros();
    let props = writer_properties(spec.row_group_rows);

    let profiles_path = dir.join("user_profiles.parquet");
    let metadata_path = dir.join("movie_metadata.csv");
    let mut side = SideData {
        users: population.users,
        movies: catalog
            .movies
            .iter()
            .map(|_| MovieState::default())
            .collect(),
        catalog: &catalog,
        profiles_due: BinaryHeap::new(),
        metadata_due: BinaryHeap::new(),
        profile_rng: stream(spec.seed, 4),
        metadata_rng: stream(spec.seed, 5),
        end,
        profiles: ProfileSink::create(&profiles_path, props.clone(), spec.row_group_rows)?,
        metadata: MetadataSink::create(&metadata_path)?,
    };
    side.schedule_first_refreshes();

    let mut rng = stream(spec.seed, 3);
    let schema = watch_events_schema();
    let files = spec.events.div_ceil(spec.events_per_file).max(1);
    let span = (end - START_MICROS) as u128;
    let mut watch_event_files = Vec::with_capacity(files as usize);
    let mut bytes = 0;
    for file in 0..files {
        let first = file * spec.events_per_file;
        let rows = spec.events_per_file.min(spec.events - first);
        let (lo, hi) = if spec.events == 0 {
            (START_MICROS, end)
        } else {
            let at = |event: u64| {
                START_MICROS + (span * u128::from(event) / u128::from(spec.events)) as i64
            };
            (at(first), at(first + rows))
        };
        let width = (hi - lo).max(1) as u64;
        let mut timestamps: Vec<i64> = (0..rows).map(|_| lo + rng.below(width) as i64).collect();
        timestamps.sort_unstable();

        let path = events_dir.join(format!("part-{file:05}.parquet"));
        let out = File::create(&path).map_err(io_err(&path))?;
        let mut writer = ArrowWriter::try_new(out, schema.clone(), Some(props.clone()))
            .map_err(parquet_err(&path))?;
        for chunk in timestamps.chunks(spec.row_group_rows) {
            let mut user_ids = Vec::with_capacity(chunk.len());
            let mut movie_ids = Vec::with_capacity(chunk.len());
            let mut watch_seconds = Vec::with_capacity(chunk.len());
            let mut runtimes = Vec::with_capacity(chunk.len());
            let mut ratings = Vec::with_capacity(chunk.len());
            for &at in chunk {
                side.emit_due(at)?;
                let user = population.by_rank[rng.skewed(spec.users, user_skew)] as usize;
                let movie = catalog.by_rank[rng.skewed(spec.movies, movie_skew)] as usize;
                let runtime = catalog.movies[movie].runtime;
                let roll = rng.unit();
                let completion = if roll < 0.45 {
                    0.9 + 0.1 * rng.unit()
                } else if roll < 0.5 {
                    1.0 + 0.2 * rng.unit()
                } else {
                    0.02 + 0.88 * rng.unit()
                };
                let rating = rng.chance(RATED).then(|| {
                    let stars = catalog.movies[movie].quality / 2.0
                        + side.users[user].bias
                        + 2.5 * rng.unit()
                        - 1.25;
                    ((stars * 2.0).round() / 2.0).clamp(0.5, 5.0)
                });
                side.record_event(user, movie, rating);
                user_ids.push(user as i64 + 1);
                movie_ids.push(movie as i64 + 1);
                watch_seconds.push((runtime as f64 * 60.0 * completion) as i64);
                runtimes.push(runtime);
                ratings.push(rating);
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(user_ids)),
                Arc::new(Int64Array::from(movie_ids)),
                Arc::new(Int64Array::from(watch_seconds)),
                Arc::new(Int64Array::from(runtimes)),
                Arc::new(Float64Array::from(ratings)),
                timestamp_array(chunk.to_vec()),
            ];
            let batch = RecordBatch::try_new(schema.clone(), columns).map_err(arrow_err(&path))?;
            writer.write(&batch).map_err(parquet_err(&path))?;
        }
        writer.close().map_err(parquet_err(&path))?;
        bytes += file_len(&path)?;
        watch_event_files.push(path);
    }
    side.emit_due(end)?;
    let user_profiles = side.profiles.finish()?;
    let movie_metadata = side.metadata.finish()?;
    bytes += file_len(&profiles_path)? + file_len(&metadata_path)?;
    Ok(WrittenFiles {
        dir: dir.to_path_buf(),
        watch_event_files,
        user_profiles: profiles_path,
        movie_metadata: metadata_path,
        rows: RowCounts {
            watch_events: spec.events,
            user_profiles,
            movie_metadata,
        },
        bytes,
    })
}

/// Writes `rows` training entity rows ("entity dataframe") as Parquet at `path` (its directory
/// must exist): `user_id, movie_id, event_timestamp, candidate_genre, request_genre?`.
///
/// Rows are in random order, not by time. About 5% of the timestamps fall in the week before the
/// period (no history for anyone), the rest anywhere in it; about 5% of the user ids and 5% of the
/// movie ids appear nowhere in the data of [`write_movie_data`] (they are above `users` /
/// `movies`). Users are drawn mostly by activity, so most rows have history. `candidate_genre` is
/// a genre of the movie (random for unknown movies); `request_genre` is null about 30% of the
/// time. Deterministic from `spec` and `seed`. Returns the rows written.
pub fn write_entity_rows(
    path: &Path,
    spec: &MovieDataSpec,
    rows: u64,
    seed: u64,
) -> Result<u64, DatagenError> {
    spec.validate(path)?;
    let catalog = Catalog::new(spec);
    let population = Population::new(spec);
    let mut rng = stream(seed, 6);
    let schema = entity_rows_schema();
    let end = spec.end_micros();
    let out = File::create(path).map_err(io_err(path))?;
    let mut writer = ArrowWriter::try_new(
        out,
        schema.clone(),
        Some(writer_properties(spec.row_group_rows)),
    )
    .map_err(parquet_err(path))?;
    let mut left = rows;
    while left > 0 {
        let n = left.min(spec.row_group_rows as u64);
        left -= n;
        let mut user_ids = Vec::with_capacity(n as usize);
        let mut movie_ids = Vec::with_capacity(n as usize);
        let mut timestamps = Vec::with_capacity(n as usize);
        let mut candidate = Vec::with_capacity(n as usize);
        let mut request = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let roll = rng.unit();
            let user = if roll < 0.05 {
                spec.users + 1 + rng.below(spec.users.max(1_000))
            } else if roll < 0.3 {
                1 + rng.below(spec.users)
            } else {
                population.by_rank[rng.skewed(spec.users, user_skew)] + 1
            };
            let movie = if rng.chance(0.05) {
                None
            } else {
                Some(catalog.by_rank[rng.skewed(spec.movies, movie_skew)] as usize)
            };
            let at = if rng.chance(0.05) {
                START_MICROS - 1 - rng.below(7 * DAY_MICROS as u64) as i64
            } else {
                START_MICROS + rng.below((end - START_MICROS) as u64) as i64
            };
            let genre = match movie {
                Some(movie) => {
                    let genres = catalog.movies[movie].genres;
                    let second = genres & !(1 << catalog.movies[movie].primary_genre);
                    if second != 0 && rng.chance(0.5) {
                        second.trailing_zeros() as usize
                    } else {
                        catalog.movies[movie].primary_genre as usize
                    }
                }
                None => rng.below(GENRES.len() as u64) as usize,
            };
            user_ids.push(user as i64);
            movie_ids.push(match movie {
                Some(movie) => movie as i64 + 1,
                None => (spec.movies + 1 + rng.below(spec.movies.max(1_000))) as i64,
            });
            timestamps.push(at);
            candidate.push(GENRES[genre]);
            request
                .push((!rng.chance(0.3)).then(|| GENRES[rng.below(GENRES.len() as u64) as usize]));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(user_ids)),
            Arc::new(Int64Array::from(movie_ids)),
            timestamp_array(timestamps),
            Arc::new(StringArray::from(candidate)),
            Arc::new(StringArray::from(request)),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(arrow_err(path))?;
        writer.write(&batch).map_err(parquet_err(path))?;
    }
    writer.close().map_err(parquet_err(path))?;
    Ok(rows)
}

fn shuffled(n: u64, rng: &mut SplitMix64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..n).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    order
}

struct Movie {
    /// Minutes, 80–180.
    runtime: i64,
    release_year: i64,
    /// Bit `i` set: the movie is of genre `GENRES[i]`.
    genres: u8,
    primary_genre: u8,
    /// The vote average (0–10) before the generated ratings.
    quality: f64,
    base_votes: u64,
    base_popularity: f64,
}

/// The movies (index `i` is movie id `i + 1`) and their popularity order.
struct Catalog {
    movies: Vec<Movie>,
    /// Movie indexes, most watched first.
    by_rank: Vec<u64>,
}

impl Catalog {
    fn new(spec: &MovieDataSpec) -> Self {
        let mut rng = stream(spec.seed, 1);
        let mut movies: Vec<Movie> = (0..spec.movies)
            .map(|_| {
                let primary = rng.below(GENRES.len() as u64) as u8;
                let mut genres = 1 << primary;
                if rng.chance(0.4) {
                    genres |= 1 << ((primary as u64 + 1 + rng.below(4)) % 5);
                }
                Movie {
                    runtime: 80 + rng.below(101) as i64,
                    release_year: 2025 - (65.0 * movie_skew(rng.unit())) as i64,
                    genres,
                    primary_genre: primary,
                    quality: (3.0 + 3.0 * (rng.unit() + rng.unit())).min(9.5),
                    base_votes: 0,
                    base_popularity: 0.0,
                }
            })
            .collect();
        let by_rank = shuffled(spec.movies, &mut rng);
        let n = spec.movies as f64;
        for (rank, &movie) in by_rank.iter().enumerate() {
            let movie = &mut movies[movie as usize];
            // Follows the watch density at the rank, `x^(-1/2)` for `movie_skew`.
            movie.base_popularity =
                0.5 + 5.0 / ((rank as f64 + 1.0) / n).sqrt() * (0.8 + 0.4 * rng.unit());
            movie.base_votes = 5 + (movie.base_popularity * (20.0 + 60.0 * rng.unit())) as u64;
        }
        Self { movies, by_rank }
    }
}

struct User {
    age: i64,
    favorite_genre: Option<u8>,
    signup: i64,
    /// Added to the movie's quality (in stars) when this user rates.
    bias: f64,
    watched: u64,
    rated: u64,
    rating_sum: f64,
}

/// The users (index `i` is user id `i + 1`) and their activity order.
struct Population {
    users: Vec<User>,
    /// User indexes, most active first.
    by_rank: Vec<u64>,
}

impl Population {
    fn new(spec: &MovieDataSpec) -> Self {
        let mut rng = stream(spec.seed, 2);
        let users = (0..spec.users)
            .map(|_| User {
                age: 16 + (60.0 * rng.unit() * rng.unit().sqrt()) as i64,
                favorite_genre: (!rng.chance(0.1)).then(|| rng.below(GENRES.len() as u64) as u8),
                signup: START_MICROS - DAY_MICROS - rng.below(1_500 * DAY_MICROS as u64) as i64,
                bias: rng.unit() - 0.5,
                watched: 0,
                rated: 0,
                rating_sum: 0.0,
            })
            .collect();
        let by_rank = shuffled(spec.users, &mut rng);
        Self { users, by_rank }
    }
}

#[derive(Default)]
struct MovieState {
    rated: u64,
    rating_sum: f64,
    watches_since_refresh: u64,
    refreshes: i64,
    drift: f64,
}

/// User profile snapshots and movie metadata refreshes, emitted in time order between events.
struct SideData<'a> {
    users: Vec<User>,
    movies: Vec<MovieState>,
    catalog: &'a Catalog,
    /// `(time, user index)` of each user's next snapshot.
    profiles_due: BinaryHeap<Reverse<(i64, usize)>>,
    /// `(time, movie index)` of each movie's next refresh.
    metadata_due: BinaryHeap<Reverse<(i64, usize)>>,
    profile_rng: SplitMix64,
    metadata_rng: SplitMix64,
    end: i64,
    profiles: ProfileSink,
    metadata: MetadataSink,
}

impl SideData<'_> {
    fn schedule_first_refreshes(&mut self) {
        let window = (FIRST_PROFILE_DAYS * DAY_MICROS).min(self.end - START_MICROS) as u64;
        for user in 0..self.users.len() {
            let at = START_MICROS + self.profile_rng.below(window) as i64;
            self.profiles_due.push(Reverse((at, user)));
        }
        for (movie, state) in self.movies.iter_mut().enumerate() {
            state.drift = 1.0;
            self.metadata_due.push(Reverse((START_MICROS, movie)));
        }
    }

    fn record_event(&mut self, user: usize, movie: usize, rating: Option<f64>) {
        let (user, movie) = (&mut self.users[user], &mut self.movies[movie]);
        user.watched += 1;
        movie.watches_since_refresh += 1;
        if let Some(rating) = rating {
            user.rated += 1;
            user.rating_sum += rating;
            movie.rated += 1;
            movie.rating_sum += rating;
        }
    }

    /// Emits every snapshot and refresh due strictly before `at`: they then include all events
    /// with a timestamp up to their own, and none after.
    fn emit_due(&mut self, at: i64) -> Result<(), DatagenError> {
        while let Some(&Reverse((due, user))) = self.profiles_due.peek() {
            if due >= at {
                break;
            }
            self.profiles_due.pop();
            self.emit_profile(user, due)?;
        }
        while let Some(&Reverse((due, movie))) = self.metadata_due.peek() {
            if due >= at {
                break;
            }
            self.metadata_due.pop();
            self.emit_metadata(movie, due)?;
        }
        Ok(())
    }

    fn emit_profile(&mut self, index: usize, at: i64) -> Result<(), DatagenError> {
        let rng = &mut self.profile_rng;
        let user = &mut self.users[index];
        if user.favorite_genre.is_some() && rng.chance(0.05) {
            user.favorite_genre = Some(rng.below(GENRES.len() as u64) as u8);
        }
        self.profiles.push(ProfileRow {
            user_id: index as i64 + 1,
            age: user.age,
            favorite_genre: user.favorite_genre.map(|genre| GENRES[genre as usize]),
            avg_rating: (user.rated > 0).then(|| user.rating_sum / user.rated as f64),
            total_movies_watched: user.watched as i64,
            signup_date: user.signup,
            event_timestamp: at,
        })?;
        let gap = PROFILE_MIN_GAP_DAYS * DAY_MICROS
            + rng.below(((PROFILE_MAX_GAP_DAYS - PROFILE_MIN_GAP_DAYS) * DAY_MICROS) as u64) as i64;
        if at + gap < self.end {
            self.profiles_due.push(Reverse((at + gap, index)));
        }
        Ok(())
    }

    fn emit_metadata(&mut self, index: usize, at: i64) -> Result<(), DatagenError> {
        let rng = &mut self.metadata_rng;
        let movie = &self.catalog.movies[index];
        let state = &mut self.movies[index];
        if state.refreshes > 0 {
            state.drift = (state.drift * (0.9 + 0.2 * rng.unit())).clamp(0.5, 2.0);
        }
        let votes = movie.base_votes + state.rated;
        let vote_average = ((movie.quality * movie.base_votes as f64 + 2.0 * state.rating_sum)
            / votes as f64)
            .clamp(0.0, 10.0);
        let popularity =
            movie.base_popularity * state.drift + 0.05 * state.watches_since_refresh as f64;
        self.metadata
            .row(index as i64 + 1, movie, vote_average, votes, popularity, at)?;
        state.watches_since_refresh = 0;
        state.refreshes += 1;
        let next = START_MICROS
            + state.refreshes * METADATA_REFRESH_DAYS * DAY_MICROS
            + rng.below(12 * 3_600_000_000) as i64;
        if next < self.end {
            self.metadata_due.push(Reverse((next, index)));
        }
        Ok(())
    }
}

struct ProfileRow {
    user_id: i64,
    age: i64,
    favorite_genre: Option<&'static str>,
    avg_rating: Option<f64>,
    total_movies_watched: i64,
    signup_date: i64,
    event_timestamp: i64,
}

/// `user_profiles.parquet`, buffered one row group at a time.
struct ProfileSink {
    path: PathBuf,
    schema: SchemaRef,
    writer: ArrowWriter<File>,
    buffer: Vec<ProfileRow>,
    row_group_rows: usize,
    rows: u64,
}

impl ProfileSink {
    fn create(
        path: &Path,
        props: WriterProperties,
        row_group_rows: usize,
    ) -> Result<Self, DatagenError> {
        let schema = user_profiles_schema();
        let out = File::create(path).map_err(io_err(path))?;
        let writer =
            ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(parquet_err(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            schema,
            writer,
            buffer: Vec::with_capacity(row_group_rows),
            row_group_rows,
            rows: 0,
        })
    }

    fn push(&mut self, row: ProfileRow) -> Result<(), DatagenError> {
        self.buffer.push(row);
        if self.buffer.len() >= self.row_group_rows {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DatagenError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let rows = &self.buffer;
        let int = |f: fn(&ProfileRow) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(rows.iter().map(f)))
        };
        let columns: Vec<ArrayRef> = vec![
            int(|row| row.user_id),
            int(|row| row.age),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|row| row.favorite_genre),
            )),
            Arc::new(Float64Array::from_iter(
                rows.iter().map(|row| row.avg_rating),
            )),
            int(|row| row.total_movies_watched),
            timestamp_array(rows.iter().map(|row| row.signup_date).collect()),
            timestamp_array(rows.iter().map(|row| row.event_timestamp).collect()),
        ];
        let batch =
            RecordBatch::try_new(self.schema.clone(), columns).map_err(arrow_err(&self.path))?;
        self.writer.write(&batch).map_err(parquet_err(&self.path))?;
        self.rows += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<u64, DatagenError> {
        self.flush()?;
        self.writer.close().map_err(parquet_err(&self.path))?;
        Ok(self.rows)
    }
}

/// `movie_metadata.csv`.
struct MetadataSink {
    path: PathBuf,
    out: BufWriter<File>,
    rows: u64,
}

impl MetadataSink {
    fn create(path: &Path) -> Result<Self, DatagenError> {
        let mut out = BufWriter::new(File::create(path).map_err(io_err(path))?);
        let header: Vec<String> = movie_metadata_schema()
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        writeln!(out, "{}", header.join(",")).map_err(io_err(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            out,
            rows: 0,
        })
    }

    fn row(
        &mut self,
        movie_id: i64,
        movie: &Movie,
        vote_average: f64,
        vote_count: u64,
        popularity: f64,
        at: i64,
    ) -> Result<(), DatagenError> {
        let out = &mut self.out;
        let result = (|| {
            write!(
                out,
                "{movie_id},{vote_average:.1},{vote_count},{popularity:.3},{},{}",
                movie.runtime, movie.release_year
            )?;
            for genre in 0..GENRES.len() {
                write!(out, ",{}", movie.genres & (1 << genre) != 0)?;
            }
            writeln!(out, ",{}", crate::model::format_timestamp(at))
        })();
        result.map_err(io_err(&self.path))?;
        self.rows += 1;
        Ok(())
    }

    fn finish(self) -> Result<u64, DatagenError> {
        self.out.into_inner().map_err(|err| DatagenError::Io {
            path: self.path.clone(),
            source: err.into_error(),
        })?;
        Ok(self.rows)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    fn read_parquet(path: &Path) -> (SchemaRef, Vec<RecordBatch>, usize) {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
        let schema = builder.schema().clone();
        let row_groups = builder.metadata().num_row_groups();
        let batches = builder
            .build()
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        (schema, batches, row_groups)
    }

    fn read_csv(path: &Path) -> Vec<RecordBatch> {
        // Arrow's CSV reader cannot resolve the zone name "UTC" without chrono-tz: read the
        // timestamps zone-less (the `Z` suffix makes them UTC instants anyway).
        let fields = movie_metadata_schema()
            .fields()
            .iter()
            .map(|field| match field.data_type() {
                DataType::Timestamp(unit, _) => field
                    .as_ref()
                    .clone()
                    .with_data_type(DataType::Timestamp(*unit, None)),
                _ => field.as_ref().clone(),
            })
            .collect::<Vec<_>>();
        arrow::csv::ReaderBuilder::new(Arc::new(Schema::new(fields)))
            .with_header(true)
            .build(File::open(path).unwrap())
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    fn int64(batch: &RecordBatch, name: &str) -> Vec<i64> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    }

    fn timestamps(batch: &RecordBatch, name: &str) -> Vec<i64> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>()
            .values()
            .to_vec()
    }

    fn tiny() -> MovieDataSpec {
        MovieDataSpec {
            users: 300,
            movies: 50,
            events: 6_000,
            days: 30,
            seed: 7,
            events_per_file: 2_500,
            row_group_rows: 1_000,
        }
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(
            crate::model::format_timestamp(START_MICROS),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            crate::model::format_timestamp(START_MICROS + 59 * DAY_MICROS + 3_723_000_042),
            "2026-03-01T01:02:03.000042Z"
        );
        assert_eq!(crate::model::format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            crate::model::format_timestamp(951_782_400_000_000),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn small_spec_writes_consistent_files() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let spec = MovieDataSpec::small();
        let written = write_movie_data(dir, &spec).unwrap();
        assert_eq!(written.watch_event_files.len(), 4);
        assert_eq!(written.rows.watch_events, spec.events);
        assert!(written.bytes > 0);

        // Watch events: schema, counts, row groups, global time order, nulls, skew.
        let mut total = 0;
        let mut last = i64::MIN;
        let mut rated = 0;
        let mut per_user: HashMap<i64, u64> = HashMap::new();
        let mut runtime_of: HashMap<i64, i64> = HashMap::new();
        let mut rated_at: HashMap<i64, Vec<i64>> = HashMap::new();
        for path in &written.watch_event_files {
            let (schema, batches, row_groups) = read_parquet(path);
            assert_eq!(schema, watch_events_schema());
            assert_eq!(row_groups, 3); // 5,000 rows in groups of 2,048
            for batch in &batches {
                total += batch.num_rows() as u64;
                let times = timestamps(batch, "event_timestamp");
                for &at in &times {
                    assert!(at >= last, "events not sorted by time");
                    assert!((START_MICROS..spec.end_micros()).contains(&at));
                    last = at;
                }
                let ratings = batch
                    .column_by_name("rating")
                    .unwrap()
                    .as_primitive::<Float64Type>();
                rated += ratings.len() - ratings.null_count();
                for rating in ratings.iter().flatten() {
                    assert!((0.5..=5.0).contains(&rating) && (rating * 2.0).fract() == 0.0);
                }
                let users = int64(batch, "user_id");
                let movies = int64(batch, "movie_id");
                let runtimes = int64(batch, "runtime");
                let seconds = int64(batch, "watch_seconds");
                for i in 0..batch.num_rows() {
                    if ratings.is_valid(i) {
                        rated_at.entry(movies[i]).or_default().push(times[i]);
                    }
                    assert!((1..=spec.users as i64).contains(&users[i]));
                    assert!((1..=spec.movies as i64).contains(&movies[i]));
                    assert!((80..=180).contains(&runtimes[i]));
                    assert!(seconds[i] >= 0 && seconds[i] <= runtimes[i] * 72);
                    *per_user.entry(users[i]).or_default() += 1;
                    let runtime = *runtime_of.entry(movies[i]).or_insert(runtimes[i]);
                    assert_eq!(runtime, runtimes[i], "a movie's runtime changed");
                }
            }
        }
        assert_eq!(total, spec.events);
        let rated_share = rated as f64 / total as f64;
        assert!((0.35..0.45).contains(&rated_share), "rated {rated_share}");
        let busiest = per_user.values().max().copied().unwrap();
        assert!(
            busiest > 4 * spec.events / spec.users,
            "activity not skewed"
        );

        // User profiles: schema, time order, and counts consistent with the events.
        let (schema, batches, _) = read_parquet(&written.user_profiles);
        assert_eq!(schema, user_profiles_schema());
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows as u64, written.rows.user_profiles);
        assert!(rows as u64 >= spec.users * 3);
        let mut last = i64::MIN;
        let mut latest: HashMap<i64, (i64, i64)> = HashMap::new();
        let mut null_genres = 0;
        for batch in &batches {
            let users = int64(batch, "user_id");
            let watched = int64(batch, "total_movies_watched");
            let times = timestamps(batch, "event_timestamp");
            let signups = timestamps(batch, "signup_date");
            let avg = batch
                .column_by_name("avg_rating")
                .unwrap()
                .as_primitive::<Float64Type>();
            null_genres += batch.column_by_name("favorite_genre").unwrap().null_count();
            for i in 0..batch.num_rows() {
                assert!(times[i] >= last);
                last = times[i];
                assert!(signups[i] < START_MICROS);
                if watched[i] == 0 {
                    assert!(avg.is_null(i));
                }
                if avg.is_valid(i) {
                    assert!((0.5..=5.0).contains(&avg.value(i)));
                }
                let previous = latest.insert(users[i], (times[i], watched[i]));
                if let Some((_, before)) = previous {
                    assert!(watched[i] >= before);
                }
            }
        }
        assert!(null_genres > 0 && null_genres < rows / 4);
        // Each user's last snapshot counts exactly the events up to it.
        let mut counted: HashMap<i64, i64> = HashMap::new();
        for path in &written.watch_event_files {
            for batch in read_parquet(path).1 {
                let users = int64(&batch, "user_id");
                let times = timestamps(&batch, "event_timestamp");
                for i in 0..batch.num_rows() {
                    if times[i] <= latest[&users[i]].0 {
                        *counted.entry(users[i]).or_default() += 1;
                    }
                }
            }
        }
        for (user, (_, watched)) in &latest {
            assert_eq!(counted.get(user).copied().unwrap_or(0), *watched);
        }

        // Movie metadata: header, schema, refreshes, runtimes shared with the events.
        let header = fs::read_to_string(&written.movie_metadata).unwrap();
        assert!(header.starts_with(
            "movie_id,vote_average,vote_count,popularity,runtime,release_year,genre_action,\
             genre_comedy,genre_drama,genre_horror,genre_romance,event_timestamp\n"
        ));
        assert!(
            header
                .lines()
                .nth(1)
                .unwrap()
                .ends_with(",2026-01-01T00:00:00Z")
        );
        let batches = read_csv(&written.movie_metadata);
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows as u64, written.rows.movie_metadata);
        assert_eq!(rows as u64, spec.movies * 3);
        let mut last = i64::MIN;
        // vote_count = the movie's votes before the period + its ratings up to the refresh.
        let mut votes_before: HashMap<i64, i64> = HashMap::new();
        for batch in &batches {
            let movies = int64(batch, "movie_id");
            let runtimes = int64(batch, "runtime");
            let vote_counts = int64(batch, "vote_count");
            let times = timestamps(batch, "event_timestamp");
            let votes = batch
                .column_by_name("vote_average")
                .unwrap()
                .as_primitive::<Float64Type>();
            let flags: Vec<_> = GENRES
                .iter()
                .map(|genre| {
                    batch
                        .column_by_name(&format!("genre_{genre}"))
                        .unwrap()
                        .as_boolean()
                        .clone()
                })
                .collect();
            for i in 0..batch.num_rows() {
                assert!(times[i] >= last);
                last = times[i];
                assert!((0.0..=10.0).contains(&votes.value(i)));
                let genres = flags.iter().filter(|flag| flag.value(i)).count();
                assert!((1..=2).contains(&genres));
                if let Some(&runtime) = runtime_of.get(&movies[i]) {
                    assert_eq!(runtime, runtimes[i], "movie {} runtime", movies[i]);
                }
                let ratings_so_far = rated_at.get(&movies[i]).map_or(0, |times_rated| {
                    times_rated.iter().filter(|&&at| at <= times[i]).count() as i64
                });
                let before = *votes_before
                    .entry(movies[i])
                    .or_insert(vote_counts[i] - ratings_so_far);
                assert_eq!(vote_counts[i] - ratings_so_far, before);
            }
        }
        // Popular movies show up in the events with the metadata's runtime.
        assert!(runtime_of.len() > 20);
    }

    #[test]
    fn same_seed_same_bytes() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let spec = tiny();
        let a = write_movie_data(&dir.join("a"), &spec).unwrap();
        let b = write_movie_data(&dir.join("b"), &spec).unwrap();
        let c = write_movie_data(&dir.join("c"), &MovieDataSpec { seed: 8, ..spec }).unwrap();
        assert_eq!(a.watch_event_files.len(), 3);
        let pairs = a.watch_event_files.iter().zip(&b.watch_event_files).chain([
            (&a.user_profiles, &b.user_profiles),
            (&a.movie_metadata, &b.movie_metadata),
        ]);
        for (left, right) in pairs {
            assert_eq!(fs::read(left).unwrap(), fs::read(right).unwrap());
        }
        assert_eq!(a.rows, b.rows);
        assert_eq!(a.bytes, b.bytes);
        assert_ne!(
            fs::read(&a.watch_event_files[0]).unwrap(),
            fs::read(&c.watch_event_files[0]).unwrap()
        );
        let (x, y) = (dir.join("x.parquet"), dir.join("y.parquet"));
        write_entity_rows(&x, &spec, 500, 3).unwrap();
        write_entity_rows(&y, &spec, 500, 3).unwrap();
        assert_eq!(fs::read(&x).unwrap(), fs::read(&y).unwrap());

        // A smaller rerun in the same directory leaves no stale event files.
        let smaller = MovieDataSpec {
            events: 1_000,
            ..spec
        };
        let again = write_movie_data(&dir.join("a"), &smaller).unwrap();
        assert_eq!(again.watch_event_files.len(), 1);
        assert_eq!(fs::read_dir(dir.join("a/watch_events")).unwrap().count(), 1);
    }

    #[test]
    fn entity_rows_include_ids_and_times_without_history() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let spec = tiny();
        let path = dir.join("entities.parquet");
        assert_eq!(write_entity_rows(&path, &spec, 2_500, 11).unwrap(), 2_500);
        let (schema, batches, row_groups) = read_parquet(&path);
        assert_eq!(schema, entity_rows_schema());
        assert_eq!(row_groups, 3);
        let mut rows = 0;
        let (mut unknown_users, mut unknown_movies, mut early) = (0, 0, 0);
        let mut unsorted = 0;
        let mut null_requests = 0;
        let catalog = Catalog::new(&spec);
        for batch in &batches {
            rows += batch.num_rows();
            let users = int64(batch, "user_id");
            let movies = int64(batch, "movie_id");
            let times = timestamps(batch, "event_timestamp");
            let candidate = batch
                .column_by_name("candidate_genre")
                .unwrap()
                .as_string::<i32>();
            assert_eq!(candidate.null_count(), 0);
            null_requests += batch.column_by_name("request_genre").unwrap().null_count();
            for i in 0..batch.num_rows() {
                assert!(users[i] >= 1 && movies[i] >= 1);
                unknown_users += usize::from(users[i] > spec.users as i64);
                unknown_movies += usize::from(movies[i] > spec.movies as i64);
                early += usize::from(times[i] < START_MICROS);
                assert!(times[i] < spec.end_micros());
                unsorted += usize::from(i > 0 && times[i] < times[i - 1]);
                if movies[i] <= spec.movies as i64 {
                    let movie = &catalog.movies[movies[i] as usize - 1];
                    let genre = GENRES
                        .iter()
                        .position(|genre| *genre == candidate.value(i))
                        .unwrap();
                    assert!(movie.genres & (1 << genre) != 0);
                }
            }
        }
        assert_eq!(rows, 2_500);
        assert!(unknown_users > 50 && unknown_users < 250, "{unknown_users}");
        assert!(
            unknown_movies > 50 && unknown_movies < 250,
            "{unknown_movies}"
        );
        assert!(early > 50 && early < 250, "{early}");
        assert!(unsorted > 500, "rows should not be in time order");
        assert!(null_requests > 500 && null_requests < 1_000);
    }

    #[test]
    fn invalid_spec_is_an_error() {
        let dir = std::env::temp_dir().join("lockstep-datagen-never-created");
        let spec = MovieDataSpec {
            events_per_file: 0,
            ..tiny()
        };
        let err = write_movie_data(&dir, &spec).unwrap_err();
        assert!(err.to_string().contains("events_per_file"), "{err}");
        assert!(err.to_string().contains("lockstep-datagen-never-created"));
        assert!(!dir.exists());
    }
}
