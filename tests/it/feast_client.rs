//! Feast's own Python client (the pinned release, `online_store: {type: remote}`, a Feast
//! repository mirroring the movie example applied with `feast apply`) against `lockstep
//! serve` on Postgres and Redis: a feature list over two views, a feature service, an
//! on-demand view, missing and expired entities, full feature names and an error, each
//! answer compared with Lockstep's own HTTP answer to the same request — names, values, the
//! value types Feast made of them, statuses, and the error Feast raises.

use std::path::Path;

use lockstep::model::format_timestamp;
use lockstep_tests::feast::{FEAST_VERSION, FeastClient, feast_client, feast_dir};
use lockstep_tests::{TestBackend, TestServer, api_error, test_dir};
use serde_json::{Map, Value, json};

use crate::online::{Fixture, SERVICE, post, push_profiles};

/// A user without any profile and a movie not in the catalog.
const UNKNOWN_USER: i64 = 123_456_789;
const UNKNOWN_MOVIE: i64 = 987_654;
/// A user and a movie whose only values are months old: outside the views' ttls now.
const STALE_USER: i64 = 8;
const STALE_MOVIE: i64 = 3;

/// A catalog row of `movie` at `at` (µs), as the `movie_metadata` source has it.
fn metadata_row(movie: i64, at: i64) -> Value {
    json!({
        "movie_id": [movie],
        "vote_average": [6.5 + movie as f64 / 4.0],
        "vote_count": [100 * movie],
        "popularity": [12.5 * movie as f64],
        "runtime": [95 + movie],
        "release_year": [2000 + movie],
        "genre_action": [movie % 2 == 1],
        "genre_comedy": [movie % 2 == 0],
        "genre_drama": [movie == 1],
        "genre_horror": [false],
        "genre_romance": [movie == 2],
        "event_timestamp": [format_timestamp(at)],
    })
}

/// The cases Feast's client asks, in the client script's format (`tests/feast/client.py`).
fn cases() -> Value {
    json!([
        {
            "name": "feature list over two views",
            "features": [
                "user_profile_features:avg_rating",
                "user_profile_features:favorite_genre",
                "user_profile_features:total_movies_watched",
                "movie_metadata_features:vote_average",
                "movie_metadata_features:vote_count",
                "movie_metadata_features:genre_drama",
            ],
            // Feast's row form: one dict per entity row.
            "entity_rows": [{"user_id": 1, "movie_id": 1}, {"user_id": 2, "movie_id": 2}],
        },
        {
            "name": "feature service",
            "feature_service": SERVICE,
            // Feast's column form, with the on-demand view's request fields.
            "entity_rows": {
                "user_id": [1, 2, 1],
                "movie_id": [1, 2, 2],
                "candidate_genre": ["drama", "comedy", "romance"],
                "request_genre": ["drama", null, "romance"],
            },
        },
        {
            "name": "on-demand view",
            "features": [
                "movie_scorer:recommendation_score",
                "movie_scorer:genre_match",
                "movie_scorer:rating_gap",
                "movie_scorer:log_popularity",
            ],
            "entity_rows": [
                {"user_id": 2, "movie_id": 1, "candidate_genre": "drama", "request_genre": null},
                {"user_id": 1, "movie_id": 2, "candidate_genre": "comedy", "request_genre": "comedy"},
            ],
        },
        {
            "name": "missing and expired entities",
            "features": ["user_profile_features:age", "movie_metadata_features:popularity"],
            "entity_rows": {
                "user_id": [1, UNKNOWN_USER, STALE_USER],
                "movie_id": [UNKNOWN_MOVIE, STALE_MOVIE, 1],
            },
        },
        {
            "name": "full feature names",
            "feature_service": SERVICE,
            "full_feature_names": true,
            "entity_rows": {
                "user_id": [2, UNKNOWN_USER],
                "movie_id": [1, 2],
                "candidate_genre": ["action", "comedy"],
                "request_genre": [null, null],
            },
        },
        {
            "name": "unknown view",
            "features": ["no_such_view:x"],
            "entity_rows": [{"user_id": 1}],
        },
    ])
}

/// The `POST /get-online-features` body Feast's remote online store sends for `case`.
fn lockstep_request(case: &Value) -> Value {
    let mut entities = Map::new();
    match &case["entity_rows"] {
        Value::Array(rows) => {
            for row in rows {
                for (key, value) in row.as_object().unwrap() {
                    let column = entities.entry(key.clone()).or_insert_with(|| json!([]));
                    column.as_array_mut().unwrap().push(value.clone());
                }
            }
        }
        Value::Object(columns) => entities = columns.clone(),
        other => panic!("entity rows {other}"),
    }
    let mut body = json!({
        "entities": entities,
        "full_feature_names": case["full_feature_names"].as_bool().unwrap_or(false),
        "include_feature_view_version_metadata": false,
    });
    match (&case["feature_service"], &case["features"]) {
        (Value::String(service), _) => body["feature_service"] = json!(service),
        (_, features) => body["features"] = features.clone(),
    }
    body
}

/// The kind of protobuf value Feast's client should make of a JSON value of Lockstep's.
fn proto_kind(value: &Value) -> Value {
    match value {
        Value::Null => Value::Null,
        Value::Bool(_) => json!("bool_val"),
        Value::Number(number) if number.is_f64() => json!("double_val"),
        Value::Number(_) => json!("int64_val"),
        Value::String(_) => json!("string_val"),
        other => panic!("Lockstep answered a nested value {other}"),
    }
}

/// A copy of the Feast repository with `feast apply` run on it, its registry in `dir`.
fn apply_feast_repo(client: &FeastClient, dir: &Path, url: &str) {
    let repo = dir.join("feature_repo");
    std::fs::create_dir_all(&repo).unwrap();
    for file in ["feature_store.yaml", "movies.py"] {
        std::fs::copy(feast_dir().join("feature_repo").join(file), repo.join(file)).unwrap();
    }
    let output = feast_command(&client.feast, dir, url)
        .arg("-c")
        .arg(&repo)
        .arg("apply")
        .output()
        .expect("run feast apply");
    assert!(
        output.status.success(),
        "feast apply: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `program` with the environment the repository's `feature_store.yaml` reads.
fn feast_command(program: &Path, dir: &Path, url: &str) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    command
        .env("LOCKSTEP_URL", url)
        .env("FEAST_REGISTRY_PATH", dir.join("registry.db"))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

/// Every case through Feast's client: the script's JSON answer.
fn ask_feast(client: &FeastClient, dir: &Path, url: &str, cases: &Value) -> Vec<Value> {
    let cases_path = dir.join("cases.json");
    std::fs::write(&cases_path, cases.to_string()).unwrap();
    let output = feast_command(&client.python, dir, url)
        .arg(feast_dir().join("client.py"))
        .arg(dir.join("feature_repo"))
        .arg(&cases_path)
        .output()
        .expect("run the Feast client script");
    assert!(
        output.status.success(),
        "the Feast client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the Feast client printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feasts_own_client_gets_lockstep_answers() {
    // The virtualenv (made once per target directory) while the fixture is built.
    let client = tokio::task::spawn_blocking(feast_client);
    let backend = TestBackend::postgres();
    let fixture = Fixture::new(backend.clone()).await;
    let mut config = backend.config();
    config.sources.base_dir = fixture.dir.to_path_buf();
    let server = TestServer::start_with(config, None).await;
    let client = client.await.expect("the Feast virtualenv");

    // Fresh values for users 1 and 2 and movies 1 and 2; user 8 and movie 3 only have the
    // generated history, months old.
    let now = lockstep::model::now_micros();
    push_profiles(&server, &[1, 2], now).await;
    for movie in [1, 2] {
        let (status, body) = post(
            &server,
            "/push",
            &json!({"push_source_name": "movie_metadata", "df": metadata_row(movie, now)}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    let dir = test_dir("lockstep-feast");
    let url = server.url.clone();
    let cases = cases();
    let answers = {
        let (client, dir, cases) = (client.clone(), dir.to_path_buf(), cases.clone());
        tokio::task::spawn_blocking(move || {
            apply_feast_repo(&client, &dir, &url);
            ask_feast(&client, &dir, &url, &cases)
        })
        .await
        .unwrap()
    };

    let cases = cases.as_array().unwrap();
    assert_eq!(answers.len(), cases.len());
    let mut statuses_seen = std::collections::BTreeSet::new();
    for (case, feast) in cases.iter().zip(&answers) {
        let name = case["name"].as_str().unwrap();
        assert_eq!(feast["name"], case["name"]);
        let (status, lockstep) =
            post(&server, "/get-online-features", &lockstep_request(case)).await;
        if status != 200 {
            // Feast raised the error Lockstep answered: its class, with the stable code.
            let error = api_error(&lockstep);
            let code = error["code"].as_str().unwrap();
            assert_eq!(
                (&feast["error"]["module"], &feast["error"]["class"]),
                (
                    &json!("feast.errors"),
                    &json!(lockstep::api::feast::class(code))
                ),
                "{name}: Feast raised {feast}"
            );
            assert_eq!(
                feast["error"]["message"],
                json!(format!("{code}: {}", error["message"].as_str().unwrap())),
                "{name}"
            );
            assert_eq!((status, code), (400, "invalid_feature_request"), "{name}");
            continue;
        }
        assert!(feast["error"].is_null(), "{name}: Feast raised {feast}");
        assert_eq!(
            feast["feature_names"], lockstep["metadata"]["feature_names"],
            "{name}"
        );
        let results = lockstep["results"].as_array().unwrap();
        for (i, result) in results.iter().enumerate() {
            let column = &lockstep["metadata"]["feature_names"][i];
            assert_eq!(
                feast["values"][i], result["values"],
                "{name}: values of {column}"
            );
            assert_eq!(
                feast["statuses"][i], result["statuses"],
                "{name}: statuses of {column}"
            );
            let kinds: Vec<Value> = result["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(proto_kind)
                .collect();
            assert_eq!(feast["kinds"][i], json!(kinds), "{name}: types of {column}");
            for status in result["statuses"].as_array().unwrap() {
                statuses_seen.insert(status.as_str().unwrap().to_owned());
            }
        }
    }
    // Every status reached Feast's client, so the comparisons above compared something.
    for status in ["PRESENT", "NOT_FOUND", "OUTSIDE_MAX_AGE"] {
        assert!(
            statuses_seen.contains(status),
            "no {status} among {statuses_seen:?}"
        );
    }
    // The on-demand scores are the scorer's (in [0, 1]), never the sentinels Feast's copy
    // of the view returns.
    let on_demand = &answers[2];
    let scores = on_demand["values"][2].as_array().unwrap();
    assert!(
        scores
            .iter()
            .all(|score| (0.0..=1.0).contains(&score.as_f64().unwrap())),
        "{on_demand}"
    );
    eprintln!("Feast {FEAST_VERSION}: {} cases agree", answers.len());

    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    fixture.cleanup().await;
}
