//! `lockstep demo` end to end, as the README's first command runs it: on Postgres and
//! Redis in a schema and namespace of its own, and on the embedded stores twice in one
//! directory (every run starts from empty stores).

use std::collections::BTreeMap;

use lockstep::cli::demo::{Components, DemoOptions, DemoSummary, demo_data, run};
use lockstep_tests::{TestBackend, first_party, test_dir};

fn options(backend: &TestBackend, dir: &std::path::Path) -> DemoOptions {
    let components: BTreeMap<String, Vec<u8>> = first_party()
        .iter()
        .map(|(package, bytes)| (package.to_owned(), bytes.to_vec()))
        .collect();
    DemoOptions {
        dir: dir.to_owned(),
        config: backend.config(),
        components: Components::Bytes(components),
        data: demo_data(),
        requests: 50,
    }
}

/// What every run must show: every view backfilled and materialized, the training set
/// written with every entity row, every online request answered with every value present,
/// and online equal to offline for every value compared.
fn check(summary: &DemoSummary) {
    assert_eq!(summary.data.watch_events, demo_data().events);
    assert_eq!(summary.backfills.len(), 3, "{:?}", summary.backfills);
    for backfill in &summary.backfills {
        assert!(backfill.rows_out > 0, "{backfill:?}");
        assert!(backfill.job.is_complete(), "{backfill:?}");
    }
    let interaction = summary
        .backfills
        .iter()
        .find(|b| b.job.view == "user_movie_interaction_features")
        .expect("the transform's view is backfilled");
    assert_eq!(
        interaction.rows_out + interaction.rows_rejected,
        demo_data().events
    );
    assert_eq!(summary.materialized.len(), 3);
    assert!(summary.materialized.iter().all(|view| view.rows > 0));

    let set = &summary.training_set;
    assert!(set.path.starts_with(&summary.dir));
    let file = std::fs::File::open(&set.path).expect("the training set file");
    let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    use parquet::file::reader::FileReader as _;
    assert_eq!(
        reader.metadata().file_metadata().num_rows() as usize,
        set.rows
    );
    assert_eq!(set.rows, 10_000);
    assert_eq!(set.features, 14);

    let online = &summary.online;
    assert_eq!((online.requests, online.ok), (50, 50));
    assert_eq!(online.values, 50 * 10 * 14);
    assert_eq!(online.present, online.values);
    assert!(online.p50 <= online.p99);

    assert_eq!(summary.parity.len(), 4);
    for check in &summary.parity {
        assert_eq!(check.report.differences, 0, "{check:?}");
        assert!(check.report.present > 0, "{check:?}");
        assert!(check.report.identical(), "{check:?}");
    }
    let compared: u64 = summary.parity.iter().map(|c| c.report.values).sum();
    assert!(compared > 10_000, "only {compared} values compared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_on_postgres_and_redis() {
    let backend = TestBackend::postgres();
    let dir = test_dir("lockstep-demo");
    let summary = run(options(&backend, &dir)).await.expect("the demo runs");
    check(&summary);
    assert!(summary.stores.iter().any(|s| s.contains("Postgres schema")));
    assert!(summary.stores.iter().any(|s| s.contains("Redis")));
    backend.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_embedded_and_reruns_from_scratch() {
    let backend = TestBackend::sqlite();
    let TestBackend::Sqlite { path } = &backend else {
        unreachable!("an embedded backend")
    };
    let dir = path.parent().expect("the backend's directory").to_owned();
    let first = run(options(&backend, &dir)).await.expect("the demo runs");
    check(&first);
    assert!(first.stores.iter().all(|s| !s.contains("Postgres")));
    assert!(path.is_file(), "the registry file {}", path.display());

    // A second run in the same directory starts again from empty stores: same transform
    // versions, same rows, same answers.
    let second = run(options(&backend, &dir)).await.expect("the demo reruns");
    check(&second);
    let versions = |summary: &DemoSummary| -> Vec<(String, u32)> {
        summary
            .transforms
            .iter()
            .map(|t| (t.name.clone(), t.version))
            .collect()
    };
    assert_eq!(versions(&first), versions(&second));
    assert!(second.transforms.iter().all(|t| t.version == 1));
    let rows = |summary: &DemoSummary| -> Vec<(u64, u64)> {
        summary
            .backfills
            .iter()
            .map(|b| (b.rows_out, b.job.id as u64))
            .chain(summary.materialized.iter().map(|m| (m.rows, m.written)))
            .collect()
    };
    assert_eq!(rows(&first), rows(&second));
    backend.cleanup().await;
}
