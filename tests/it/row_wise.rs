//! Row-wise contract: every first-party transform gives the same bytes whatever the chunking,
//! on any runtime; a stateful guest is caught by the very same check.

use lockstep::datagen::generate;
use lockstep::runtime::{LoadError, batch};
use lockstep_tests::{first_party, load, test_guests, test_runtime};

const ROWS: usize = 10_000;
const CHUNKS: [u32; 3] = [1, 7, 1000];

#[test]
fn first_party_transforms_are_chunk_size_invariant() {
    let runtime = test_runtime();
    for (package, bytes) in first_party().iter() {
        let digest = load(&runtime, bytes);
        let signature = runtime.signature(&digest).unwrap();
        let input = generate(&signature.inputs, ROWS, 2026);
        if let Err(error) = runtime.check_row_wise(&digest, &input, &CHUNKS) {
            panic!("{package}: [{}] {error}", error.code());
        }
    }
}

#[test]
fn stateful_guest_is_caught_by_the_same_check() {
    let runtime = test_runtime();
    let digest = load(&runtime, test_guests().get("stateful"));
    let signature = runtime.signature(&digest).unwrap();
    let input = generate(&signature.inputs, ROWS, 2026);
    let error = runtime
        .check_row_wise(&digest, &input, &CHUNKS)
        .unwrap_err();
    assert!(
        matches!(error, LoadError::NotRowWise { chunk: 1, .. }),
        "{error}"
    );
    assert_eq!(error.code(), "transform_not_row_wise");
    // The smoke test every upload gets runs the same check on sample rows.
    let smoke = runtime.smoke_test(&digest).unwrap_err();
    assert!(matches!(smoke, LoadError::NotRowWise { .. }), "{smoke}");
}

#[test]
fn first_party_transforms_pass_their_smoke_test() {
    let runtime = test_runtime();
    for (package, bytes) in first_party().iter() {
        let digest = load(&runtime, bytes);
        let report = runtime
            .smoke_test(&digest)
            .unwrap_or_else(|e| panic!("{package}: [{}] {e}", e.code()));
        assert_eq!(report.output.num_rows, report.input.num_rows, "{package}");
    }
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
        assert_eq!(batch::first_difference(&left, &right), None, "{package}");
    }
}
