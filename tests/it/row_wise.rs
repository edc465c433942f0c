//! Row-wise contract: every first-party transform gives the same bytes whatever the chunking,
//! on any runtime; state kept between calls cannot reach the next one; guests whose output
//! depends on the batch are refused at upload, or caught by the re-check of rows alone.

use arrow::array::RecordBatch;
use lockstep::columnar::first_difference;
use lockstep::datagen::generate;
use lockstep::model::Classify;
use lockstep::runtime::{LoadError, RunError, Runtime, RuntimeConfig, SmokeReport};
use lockstep_tests::{first_party, ints, load, test_guests, test_runtime, xs};

const ROWS: usize = 10_000;
const CHUNKS: [usize; 3] = [7, 1000, 4096];

#[test]
fn first_party_transforms_give_each_row_alone_what_they_give_it_in_a_batch() {
    let runtime = test_runtime();
    for (package, bytes) in first_party().iter() {
        let digest = load(&runtime, bytes);
        let signature = runtime.signature(&digest).unwrap();
        let input = generate(&signature.inputs, ROWS, 2026);
        let whole = runtime.call(&digest, &input).unwrap();
        let every_row: Vec<usize> = (0..ROWS).collect();
        if let Err(error) = runtime.recheck(&digest, &input, &whole, &every_row) {
            panic!("{package}: [{}] {error}", error.code());
        }
        for chunk in CHUNKS {
            let parts: Vec<RecordBatch> = (0..ROWS)
                .step_by(chunk)
                .map(|start| {
                    let rows = chunk.min(ROWS - start);
                    runtime.call(&digest, &input.slice(start, rows)).unwrap()
                })
                .collect();
            let joined = arrow::compute::concat_batches(&whole.schema(), &parts).unwrap();
            assert_eq!(
                first_difference(&whole, &joined),
                None,
                "{package} in chunks of {chunk}"
            );
        }
    }
}

/// The smoke test every upload runs, at the default backfill batch size.
fn smoke(runtime: &Runtime, guest: &str) -> Result<SmokeReport, LoadError> {
    let digest = load(runtime, test_guests().get(guest));
    runtime.smoke_test(&digest, &[16_384])
}

#[test]
fn state_kept_between_calls_cannot_reach_the_next_call() {
    // `stateful` adds the number of calls its instance has served: every call gets a fresh
    // instance, so every call is its first.
    let runtime = test_runtime();
    let digest = load(&runtime, test_guests().get("stateful"));
    for _ in 0..300 {
        let output = runtime.call(&digest, &xs([5])).unwrap();
        assert_eq!(ints(&output, 0), vec![6]);
    }
    let report = smoke(&runtime, "stateful").unwrap();
    assert_eq!(report.shapes.len(), 12, "{:?}", report.shapes);
}

#[test]
fn memory_leaked_by_a_call_is_gone_by_the_next() {
    // 1 MiB leaked per call would exhaust the 64 MiB cap within 64 calls on a reused
    // instance.
    let runtime = test_runtime();
    let digest = load(&runtime, test_guests().get("leaky"));
    for call in 0..300 {
        let output = runtime
            .call(&digest, &xs([call, call + 1]))
            .unwrap_or_else(|e| panic!("call {call}: [{}] {e}", e.code()));
        assert_eq!(ints(&output, 0), vec![call + 1, call + 2]);
    }
    smoke(&runtime, "leaky").unwrap();
}

#[test]
fn output_depending_on_the_batch_size_is_refused_at_upload() {
    let error = smoke(&test_runtime(), "batch-size").unwrap_err();
    assert_eq!(error.code(), "transform_not_row_wise");
    let message = error.to_string();
    assert!(
        message.contains("in a batch of 65 rows") && message.contains("1000"),
        "{message}"
    );
}

#[test]
fn output_depending_on_other_rows_is_refused_at_upload() {
    let error = smoke(&test_runtime(), "row-position").unwrap_err();
    assert_eq!(error.code(), "transform_not_row_wise");
    assert!(
        error.to_string().contains("in a batch of 127 rows"),
        "{error}"
    );
}

#[test]
fn rows_rechecked_alone_catch_what_the_upload_check_missed() {
    // `sneaky` misbehaves only in batches of 3 to 50 rows, sizes the upload never calls.
    let runtime = test_runtime();
    smoke(&runtime, "sneaky").expect("accepted at upload");
    let digest = load(&runtime, test_guests().get("sneaky"));
    let input = xs(0..10);
    let output = runtime.call(&digest, &input).unwrap();
    let error = runtime
        .recheck_sample(&digest, &input, &output)
        .unwrap_err();
    assert!(
        matches!(error, RunError::NotRowWise { rows: 10, .. }),
        "{error}"
    );
    assert_eq!(error.code(), "transform_not_row_wise");
    // Quarantined, no call runs it again.
    runtime.quarantine(&digest, &error.to_string());
    let refused = runtime.call(&digest, &xs([1])).unwrap_err();
    assert_eq!(refused.code(), "transform_unsafe");
    assert!(
        runtime
            .call_stats()
            .iter()
            .any(|s| s.digest == digest && s.is_unsafe)
    );
}

#[test]
fn huge_outputs_are_bounded_and_so_are_their_messages() {
    // 8 MiB of text per row: over a 4 MiB output limit in one row.
    let runtime = Runtime::new(RuntimeConfig {
        max_instances: 8,
        max_output_bytes: 4 << 20,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let digest = load(&runtime, test_guests().get("huge-output"));
    let error = runtime.call(&digest, &xs([1])).unwrap_err();
    assert!(
        matches!(error, RunError::OutputTooLarge { limit, .. } if limit == 4 << 20),
        "{error}"
    );
    // Refused at upload under the test runtime's limits (64 MiB of memory, 64 MiB of
    // output), whichever trips first, with a short message.
    let error = smoke(&test_runtime(), "huge-output").unwrap_err();
    assert!(
        ["transform_memory_limit", "transform_output_too_large"].contains(&error.code()),
        "[{}] {error}",
        error.code()
    );
    assert!(error.to_string().len() < 1024, "{error}");
}

#[test]
fn two_runtimes_give_the_same_bytes() {
    let (first, second) = (test_runtime(), test_runtime());
    for (package, bytes) in first_party().iter() {
        let (a, b) = (load(&first, bytes), load(&second, bytes));
        assert_eq!(a, b, "{package}: digest is the content address");
        let input = generate(&first.signature(&a).unwrap().inputs, 4096, 11);
        let (left, right) = (
            first.call(&a, &input).unwrap(),
            second.call(&b, &input).unwrap(),
        );
        assert_eq!(first_difference(&left, &right), None, "{package}");
    }
}
