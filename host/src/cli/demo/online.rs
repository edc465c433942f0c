//! Step 7 of `lockstep demo`: a user and candidate movies picked from the online store,
//! their rows pushed again as today's over `POST /push`, then online requests over HTTP,
//! timed, each answer checked for 200 and every value `PRESENT`.

use crate::cli::out::outln;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use arrow::array::{Array, RecordBatch};
use serde_json::{Value, json};

use super::{CANDIDATES, SERVICE, WATCHES, detail, millis};
use crate::columnar::to_json;
use crate::model::{FieldSpec, ValueType, format_timestamp, now_micros};
use crate::pipeline::{Lockstep, OnlineFeatures, OnlineRequest, Status};

/// The online requests made over HTTP.
#[derive(Debug, Clone)]
pub struct OnlineOutput {
    pub requests: usize,
    /// Requests answered 200.
    pub ok: usize,
    /// Feature values returned (join keys not counted), and of them `PRESENT`.
    pub values: u64,
    pub present: u64,
    pub p50: Duration,
    pub p99: Duration,
}

/// What step 7 did: the requests' summary, what was pushed, the entity rows served (keys
/// and request fields) and the first response.
pub(super) type Served = (OnlineOutput, String, RecordBatch, Value);

/// Picks a user and candidate movies with values as of `at`, pushes them again as of now
/// (with a few watch events) over HTTP, then makes `requests` online requests.
pub(super) async fn serve_requests(
    lockstep: &Lockstep,
    url: &str,
    at: i64,
    requests: usize,
) -> anyhow::Result<Served> {
    let client = reqwest::Client::new();
    let now = now_micros();

    // The latest values of a user with a complete profile and of ten movies, pushed again
    // as today's snapshot: the generated history is months old, outside every ttl.
    let profiles = latest(lockstep, "user_id", 1..=200, "user_profile_features:*", at).await?;
    let user = complete_rows(&profiles)
        .next()
        .context("no user has a complete profile at the end of the data")?;
    let movies = latest(
        lockstep,
        "movie_id",
        1..=100,
        "movie_metadata_features:*",
        at,
    )
    .await?;
    let candidates: Vec<usize> = complete_rows(&movies).take(CANDIDATES).collect();
    anyhow::ensure!(
        candidates.len() == CANDIDATES,
        "only {} movies have metadata at the end of the data",
        candidates.len()
    );
    let user_id = json_value(&profiles, "user_id", user);
    let favorite = json_value(&profiles, "favorite_genre", user);
    let movie_ids: Vec<Value> = candidates
        .iter()
        .map(|&row| json_value(&movies, "movie_id", row))
        .collect();
    let genres: Vec<Value> = candidates
        .iter()
        .map(|&row| Value::from(main_genre(&movies, row)))
        .collect();
    let stamp = Value::from(format_timestamp(now));
    let mut pushes = vec![
        (
            "user_profiles",
            push_rows(&profiles, &[user], vec![stamp.clone()]),
        ),
        (
            "movie_metadata",
            push_rows(&movies, &candidates, vec![stamp.clone(); CANDIDATES]),
        ),
    ];
    // The user just watched three of the candidates: the watch transform runs on the push.
    let watched = &candidates[..WATCHES];
    let runtimes: Vec<i64> = watched
        .iter()
        .map(|&row| json_value(&movies, "runtime", row).as_i64().unwrap_or(90))
        .collect();
    pushes.push((
        "watch_events",
        json!({
            "user_id": vec![user_id.clone(); WATCHES],
            "movie_id": watched.iter().map(|&row| json_value(&movies, "movie_id", row)).collect::<Vec<_>>(),
            "watch_seconds": runtimes.iter().zip([0.95, 0.5, 0.2]).map(|(r, f)| (*r as f64 * 60.0 * f) as i64).collect::<Vec<_>>(),
            "runtime": runtimes,
            "rating": [json!(4.5), Value::Null, json!(2.0)],
            "event_timestamp": (1..=WATCHES as i64).rev().map(|m| format_timestamp(now - m * 600_000_000)).collect::<Vec<_>>(),
        }),
    ));
    let started = Instant::now();
    let mut pushed = Vec::new();
    for (source, df) in pushes {
        let response = client
            .post(format!("{url}/push"))
            .json(&json!({"push_source_name": source, "df": df}))
            .send()
            .await
            .with_context(|| format!("POST /push {source}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "POST /push {source}: {status} {body}");
        for view in body["views"].as_array().into_iter().flatten() {
            pushed.push(format!(
                "{} {}",
                view["view"].as_str().unwrap_or("?"),
                view["rows"]
            ));
        }
    }
    let pushed = format!(
        "pushed today's rows first (POST /push, {:.1} ms), rows per view: {}",
        millis(started.elapsed()),
        pushed.join(", ")
    );

    let entities = json!({
        "user_id": vec![user_id; CANDIDATES],
        "movie_id": movie_ids,
        "candidate_genre": genres,
        "request_genre": vec![favorite; CANDIDATES],
    });
    let body = json!({"feature_service": SERVICE, "entities": entities});
    let mut latencies = Vec::with_capacity(requests);
    let (mut ok, mut values, mut present) = (0, 0, 0);
    let mut example = Value::Null;
    for _ in 0..requests {
        let sent = Instant::now();
        let response = client
            .post(format!("{url}/get-online-features"))
            .json(&body)
            .send()
            .await
            .context("POST /get-online-features")?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        latencies.push(sent.elapsed());
        anyhow::ensure!(
            status.is_success(),
            "POST /get-online-features: {status} {answer}"
        );
        ok += 1;
        // Join keys come first: user_id, movie_id.
        for result in answer["results"].as_array().into_iter().flatten().skip(2) {
            for status in result["statuses"].as_array().into_iter().flatten() {
                values += 1;
                present += u64::from(status == "PRESENT");
            }
        }
        if example.is_null() {
            example = answer;
        }
    }
    anyhow::ensure!(
        values > 0 && present == values,
        "{} of {values} online values were not PRESENT: {example}",
        values - present
    );
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let online = OnlineOutput {
        requests,
        ok,
        values,
        present,
        p50: percentile(0.5),
        p99: percentile(0.99),
    };
    let rows = served_rows(&entities).context("the served entity rows")?;
    Ok((online, pushed, rows, example))
}

/// The request's entities (`user_id`, `movie_id`, `candidate_genre`, `request_genre`) as
/// entity rows.
fn served_rows(entities: &Value) -> anyhow::Result<RecordBatch> {
    let fields: Vec<FieldSpec> = [
        ("user_id", ValueType::Int64, false),
        ("movie_id", ValueType::Int64, false),
        ("candidate_genre", ValueType::Utf8, false),
        ("request_genre", ValueType::Utf8, true),
    ]
    .into_iter()
    .map(|(name, value_type, nullable)| FieldSpec {
        name: name.to_owned(),
        value_type,
        nullable,
    })
    .collect();
    let columns = fields
        .iter()
        .map(|field| {
            let values = entities[&field.name]
                .as_array()
                .with_context(|| format!("no `{}`", field.name))?;
            crate::api::json::from_json(field, values).map_err(|e| anyhow::anyhow!("{e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(
        crate::model::arrow_schema(&fields),
        columns,
    )?)
}

/// The online values of `features` as of `at` for the entities `ids` of join key `key`.
async fn latest(
    lockstep: &Lockstep,
    key: &str,
    ids: std::ops::RangeInclusive<i64>,
    features: &str,
    at: i64,
) -> anyhow::Result<OnlineFeatures> {
    let field = FieldSpec {
        name: key.to_owned(),
        value_type: ValueType::Int64,
        nullable: false,
    };
    let ids: arrow::array::ArrayRef =
        std::sync::Arc::new(arrow::array::Int64Array::from_iter_values(ids));
    let entities = RecordBatch::try_new(crate::model::arrow_schema(&[field]), vec![ids])?;
    lockstep
        .get_online_features_at(
            &OnlineRequest {
                entities,
                features: vec![features.to_owned()],
                ..OnlineRequest::default()
            },
            at,
        )
        .await
        .map_err(|e| super::super::coded(&e))
        .with_context(|| format!("reading {features}"))
}

/// Rows whose every feature is present.
fn complete_rows(answer: &OnlineFeatures) -> impl Iterator<Item = usize> + '_ {
    let rows = answer
        .columns
        .first()
        .map_or(0, |column| column.values.len());
    (0..rows).filter(|&row| {
        answer.columns[answer.join_keys..]
            .iter()
            .all(|column| column.statuses[row] == Status::Present)
    })
}

/// Value `row` of column `name` as JSON (null when there is no such column).
fn json_value(answer: &OnlineFeatures, name: &str, row: usize) -> Value {
    answer
        .columns
        .iter()
        .find(|column| column.name == name)
        .map_or(Value::Null, |column| to_json(column.values.as_ref(), row))
}

/// The first genre flag a movie has, its main genre for the request.
fn main_genre(movies: &OnlineFeatures, row: usize) -> &'static str {
    crate::datagen::movies::GENRES
        .into_iter()
        .find(|genre| json_value(movies, &format!("genre_{genre}"), row) == Value::Bool(true))
        .unwrap_or("drama")
}

/// Source rows for a push: the answer's `rows` (join keys and features), stamped `times`.
fn push_rows(answer: &OnlineFeatures, rows: &[usize], times: Vec<Value>) -> Value {
    let mut columns: serde_json::Map<String, Value> = answer
        .columns
        .iter()
        .map(|column| {
            let values = rows
                .iter()
                .map(|&row| to_json(column.values.as_ref(), row))
                .collect();
            (column.name.clone(), Value::Array(values))
        })
        .collect();
    columns.insert("event_timestamp".to_owned(), Value::Array(times));
    Value::Object(columns)
}

/// The first candidate of the first response, feature by feature.
pub(super) fn print_example(answer: &Value) -> anyhow::Result<()> {
    let names = answer["metadata"]["feature_names"].as_array();
    let results = answer["results"].as_array();
    let (Some(names), Some(results)) = (names, results) else {
        return Ok(());
    };
    detail("example response, first candidate (feature, value, status):".to_owned())?;
    for (name, result) in names.iter().zip(results) {
        outln!(
            "       {:<24} {:<22} {}",
            name.as_str().unwrap_or("?"),
            result["values"][0].to_string(),
            result["statuses"][0].as_str().unwrap_or("?")
        )?;
    }
    Ok(())
}
