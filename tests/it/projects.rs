//! Several projects in one registry: a call naming no project goes to the configured
//! default, or to the only project, and is refused (naming the projects) when there are
//! several; projects are listed and deleted over HTTP and the CLI.

use lockstep::model::Classify;
use lockstep::pipeline::{BackfillRequest, Lockstep, ProjectError};
use lockstep_tests::{
    TestBackend, TestServer, api_error, apply_fraud_example, apply_movie_example, test_dir,
};
use serde_json::{Value, json};

/// The answer of `GET /projects`.
async fn list_projects(server: &TestServer) -> Value {
    let answer = server.client.get(server.at("/projects")).send().await;
    answer.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_project_never_silently_takes_the_first_ones_calls() {
    let backend = TestBackend::postgres();
    let lockstep = Lockstep::open(&backend.config()).await.unwrap();
    assert_eq!(lockstep.project(None).await.unwrap(), "default");
    apply_movie_example(&lockstep).await;
    // One project: calls naming none go to it.
    assert_eq!(lockstep.project(None).await.unwrap(), "movies");
    apply_fraud_example(&lockstep).await;
    match lockstep.project(None).await {
        Err(ProjectError::Ambiguous { known }) => assert_eq!(known, ["fraud", "movies"]),
        other => panic!("expected an ambiguity, got {other:?}"),
    }
    let Err(error) = lockstep
        .plan_backfill(&BackfillRequest {
            view: "user_transaction_aggregates".into(),
            ..BackfillRequest::default()
        })
        .await
    else {
        panic!("a backfill naming no project was planned among two projects");
    };
    assert_eq!(error.code(), "ambiguous_project", "{error}");
    assert!(error.to_string().contains("fraud, movies"), "{error}");

    // The configured default takes calls naming no project; a named project still wins.
    let mut config = backend.config();
    config.project = Some("fraud".into());
    let server = TestServer::start_with(config, None).await;
    let online = |body: Value| {
        server
            .client
            .post(server.at("/get-online-features"))
            .json(&body)
            .send()
    };
    let answer = online(json!({
        "feature_service": "fraud_detection_service",
        "entities": {"user_id": [7], "amount": [10.0]},
    }))
    .await
    .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    let answer = online(json!({
        "project": "movies",
        "feature_service": "movie_interaction_service",
        "entities": {"user_id": [1], "movie_id": [2]},
    }))
    .await
    .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());

    let projects = list_projects(&server).await;
    assert_eq!(projects["default"], "fraud");
    let names: Vec<&str> = projects["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fraud", "movies"]);
    assert_eq!(projects["projects"][1]["feature_services"], 2);
    server.stop().await;

    // Without a default, the server refuses a call naming no project, naming the projects.
    let server = TestServer::start(&backend, None).await;
    let answer = server
        .client
        .post(server.at("/get-online-features"))
        .json(&json!({"features": ["user_profile_features:avg_rating"], "entities": {"user_id": [1]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    // A Feast route: the error in Feast's shape, Lockstep's code inside.
    let body: Value = answer.json().await.unwrap();
    assert_eq!(api_error(&body)["code"], "ambiguous_project", "{body}");
    let projects = list_projects(&server).await;
    assert_eq!(projects["default"], Value::Null);

    // Deleting a project leaves the other one as the only, hence default, project.
    let deleted = server
        .client
        .delete(server.at("/projects/fraud"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200, "{}", deleted.text().await.unwrap());
    let unknown = server
        .client
        .delete(server.at("/projects/fraud"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(lockstep.project(None).await.unwrap(), "movies");
    server.stop().await;
    backend.cleanup().await;
}

/// `lockstep projects` and `--project` / `LOCKSTEP_PROJECT` from the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_projects_and_takes_the_default_from_flag_or_environment() {
    let backend = TestBackend::postgres();
    let lockstep = Lockstep::open(&backend.config()).await.unwrap();
    apply_movie_example(&lockstep).await;
    apply_fraud_example(&lockstep).await;
    let dir = test_dir("lockstep-projects");
    let config_path = dir.join("lockstep.toml");
    lockstep_tests::write_config(&backend.config(), &config_path);
    let cli = |args: &[&str], project_env: Option<&str>| {
        let mut command = std::process::Command::new(lockstep_tests::lockstep_exe());
        command
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .env_remove("LOCKSTEP_PROJECT")
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL");
        if let Some(project) = project_env {
            command.env("LOCKSTEP_PROJECT", project);
        }
        let output = command.output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, listed, _) = cli(&["projects"], None);
    assert!(ok);
    assert!(
        listed.contains("fraud") && listed.contains("movies"),
        "{listed}"
    );
    assert!(listed.contains("no default"), "{listed}");
    let (ok, listed, _) = cli(&["projects"], Some("movies"));
    assert!(ok);
    assert!(listed.contains("* movies"), "{listed}");

    let (ok, _, error) = cli(&["materialize-incremental"], None);
    assert!(!ok);
    assert!(error.contains("several projects"), "{error}");
    let (ok, out, error) = cli(&["--project", "fraud", "materialize-incremental"], None);
    assert!(ok, "{error}");
    assert!(out.contains("user_transaction_aggregates"), "{out}");
    let (ok, out, error) = cli(&["materialize-incremental"], Some("movies"));
    assert!(ok, "{error}");
    assert!(out.contains("user_profile_features"), "{out}");
    let (ok, _, error) = cli(&["--project", "no such", "projects"], None);
    assert!(!ok);
    assert!(error.contains("not a name"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
    backend.cleanup().await;
}
