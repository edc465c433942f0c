//! The fraud example's README, run as a user copies it: every `sh` block in order, in a
//! database that already holds the movie example, against the `lockstep` binary. What the
//! test changes is only what a shared machine needs: no `cargo build` (the binary under
//! test is on `PATH`), the stores' schema, namespace and port are its own, and it waits for
//! `lockstep serve &` to listen before the next command (a person typing does).

use std::path::{Path, PathBuf};
use std::process::Command;

use lockstep::pipeline::Lockstep;
use lockstep_tests::{
    TestBackend, apply_movie_example, lockstep_exe, repo_root, test_database_url, test_dir,
    test_redis_url,
};

/// The `sh` blocks of a Markdown file, in order.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().expect("in a block")),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A directory laid out like the repository around the example: the example's files, and
/// `../../transforms` reaching the real first-party transforms.
fn checkout(base: &Path) -> PathBuf {
    let example = base.join("examples/fraud-detection");
    std::fs::create_dir_all(&example).unwrap();
    for file in ["README.md", "lockstep.toml"] {
        std::fs::copy(
            repo_root().join("examples/fraud-detection").join(file),
            example.join(file),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink(repo_root().join("transforms"), base.join("transforms")).unwrap();
    let bin = base.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(lockstep_exe(), bin.join("lockstep")).unwrap();
    example
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fraud_readme_runs_unchanged_beside_the_movie_example() {
    let backend = TestBackend::postgres();
    let config = backend.config();
    let lockstep = Lockstep::open(&config).await.unwrap();
    apply_movie_example(&lockstep).await;

    let base = test_dir("lockstep-readme");
    let example = checkout(&base);
    let readme = std::fs::read_to_string(example.join("README.md")).unwrap();
    let port = free_port();
    let mut script =
        String::from("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    for block in sh_blocks(&readme) {
        for line in block.lines() {
            if line.starts_with("cargo build") {
                continue;
            }
            script.push_str(&line.replace("localhost:6566", &format!("localhost:{port}")));
            script.push('\n');
            if line.trim() == "lockstep serve &" {
                script.push_str(&format!(
                    "until curl -sf localhost:{port}/health >/dev/null; do sleep 0.2; done\n"
                ));
            }
        }
    }
    assert!(script.contains("lockstep training-set"), "{script}");
    let (registry_schema, offline_schema) = (
        config.registry.schema.clone(),
        config.offline.schema.clone(),
    );
    let path = format!(
        "{}:{}",
        base.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&example)
        .env("PATH", path)
        // As on a user's machine: none of the test run's own settings.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("LOCKSTEP_PROJECT")
        .env_remove("LOCKSTEP_CONFIG")
        .env("LOCKSTEP__REGISTRY__DATABASE_URL", test_database_url())
        .env("LOCKSTEP__ONLINE__REDIS_URL", test_redis_url())
        .env("LOCKSTEP__REGISTRY__SCHEMA", &registry_schema)
        .env("LOCKSTEP__OFFLINE__SCHEMA", &offline_schema)
        .env("LOCKSTEP__ONLINE__NAMESPACE", &config.online.namespace)
        .env("LOCKSTEP__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the README failed\n--- script\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    // Both pushes reached the online store, and the served features are present.
    assert_eq!(
        stdout.matches("\"written_online\":1").count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("PRESENT"), "{stdout}");
    assert!(!stdout.contains("\"error\""), "{stdout}");

    // The training set carries the label, for every labelled transaction.
    let file = std::fs::File::open(example.join("training_set.parquet")).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let rows = reader.metadata().file_metadata().num_rows();
    assert!(rows > 50_000, "{rows}");
    let columns: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        columns[..5],
        ["txn_id", "user_id", "amount", "is_fraud", "event_timestamp"]
    );
    assert!(columns.iter().any(|c| c == "txn_count_1h"), "{columns:?}");

    // The movie project is untouched.
    let movies = lockstep.definitions("movies").await.unwrap();
    assert_eq!(movies.feature_services.len(), 2);
    backend.cleanup().await;
    std::fs::remove_dir_all(&base).unwrap();
}
