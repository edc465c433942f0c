//! Hostile guests: each must fail with its typed error, and the runtime must go on serving.

use lockstep::model::Classify;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch};
use lockstep::datagen::generate;
use lockstep::model::Digest;
use lockstep::runtime::{LoadError, RunError, Runtime, RuntimeConfig};
use lockstep_tests::{first_party, ints, load, test_guests, test_runtime, xs};

/// A well-behaved transform and an input for it, to prove the runtime still works.
fn healthy(runtime: &Runtime) -> (Digest, RecordBatch) {
    let digest = load(runtime, first_party().get("movie-watch"));
    let signature = runtime.signature(&digest).unwrap();
    (digest, generate(&signature.inputs, 16, 7))
}

/// Calls `guest` twice (the second call gets a fresh instance after the trap), checks both
/// errors, then checks a healthy transform on the same runtime still answers.
fn assert_fails_then_recovers(
    runtime: &Runtime,
    guest: &str,
    input: &RecordBatch,
    check: impl Fn(&RunError) -> bool,
) {
    let digest = load(runtime, test_guests().get(guest));
    for attempt in 0..2 {
        let error = runtime
            .call(&digest, input)
            .expect_err("a hostile guest must fail");
        assert!(
            check(&error),
            "{guest} attempt {attempt}: unexpected error [{}] {error}",
            error.code()
        );
    }
    let (good, batch) = healthy(runtime);
    let output = runtime
        .call(&good, &batch)
        .expect("healthy transform after a hostile one");
    assert_eq!(output.num_rows(), batch.num_rows());
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    assert_fails_then_recovers(&test_runtime(), "infinite-loop", &xs([1]), |e| {
        matches!(e, RunError::OutOfFuel { rows: 1, .. }) && e.code() == "transform_out_of_fuel"
    });
}

#[test]
fn infinite_loop_hits_the_wall_clock_deadline_when_fuel_is_plentiful() {
    let runtime = Runtime::new(RuntimeConfig {
        max_instances: 8,
        fuel_per_call: u64::MAX / 2,
        call_timeout_ms: 200,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let started = std::time::Instant::now();
    assert_fails_then_recovers(&runtime, "infinite-loop", &xs([1]), |e| {
        matches!(e, RunError::Timeout(_)) && !e.is_deterministic()
    });
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    assert_fails_then_recovers(&test_runtime(), "memory-bomb", &xs([1]), |e| {
        matches!(e, RunError::ResourceLimit { limit, .. } if *limit == 64 << 20)
            && e.code() == "transform_memory_limit"
    });
}

#[test]
fn deep_recursion_overflows_the_stack() {
    assert_fails_then_recovers(&test_runtime(), "deep-recursion", &xs([1]), |e| {
        *e == RunError::StackOverflow
    });
}

#[test]
fn panic_surfaces_with_its_message() {
    assert_fails_then_recovers(
        &test_runtime(),
        "panics",
        &xs([1, 2, 3, 4]),
        |e| matches!(e, RunError::Panic(message) if message.contains("lockstep test panic")),
    );
}

#[test]
fn panicking_guest_still_serves_rows_that_do_not_panic() {
    let runtime = test_runtime();
    let digest = load(&runtime, test_guests().get("panics"));
    assert!(runtime.call(&digest, &xs([3])).is_err());
    let output = runtime.call(&digest, &xs([1, 2])).unwrap();
    assert_eq!(ints(&output, 0), vec![1, 2]);
}

#[test]
fn wrong_row_count_is_rejected() {
    assert_fails_then_recovers(
        &test_runtime(),
        "wrong-row-count",
        &xs([1, 2, 3]),
        |e| matches!(e, RunError::BadOutput(m) if m.contains("4 rows for 3 input rows")),
    );
}

#[test]
fn wrong_output_type_is_rejected() {
    assert_fails_then_recovers(
        &test_runtime(),
        "wrong-output-type",
        &xs([1, 2]),
        |e| matches!(e, RunError::BadOutput(m) if m.contains("expected float64, got int64")),
    );
}

#[test]
fn row_errors_name_their_rows() {
    let runtime = test_runtime();
    let digest = load(&runtime, test_guests().get("row-errors"));
    let error = runtime.call(&digest, &xs([1, -2, 3, -4])).unwrap_err();
    let RunError::GuestRows(rows) = &error else {
        panic!("expected row errors, got {error}");
    };
    let failing: Vec<u32> = rows.iter().map(|(row, _)| *row).collect();
    assert_eq!(failing, vec![1, 3]);
    assert!(rows[0].1.contains("negative input"));
    let output = runtime.call(&digest, &xs([1, 2])).unwrap();
    assert_eq!(ints(&output, 0), vec![2, 4]);
}

#[test]
fn input_not_matching_the_signature_never_reaches_the_guest() {
    let runtime = test_runtime();
    let digest = load(&runtime, test_guests().get("row-errors"));
    let wrong =
        RecordBatch::try_from_iter([("x", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef)])
            .unwrap();
    let error = runtime.call(&digest, &wrong).unwrap_err();
    assert!(
        matches!(&error, RunError::InputColumns(m) if m.contains("column `x`")),
        "{error}"
    );
}

fn load_error(bytes: &[u8]) -> LoadError {
    test_runtime()
        .load(bytes)
        .expect_err("hostile component must be refused")
}

#[test]
fn component_without_the_exports_is_the_wrong_world() {
    let bytes = wat::parse_str("(component)").unwrap();
    assert!(matches!(load_error(&bytes), LoadError::WrongWorld(_)));
}

#[test]
fn component_with_mistyped_exports_is_the_wrong_world() {
    let bytes = wat::parse_str(
        r#"(component
            (core module $m (func (export "f") (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func $f (result u32) (canon lift (core func $i "f")))
            (export "signature" (func $f))
            (export "transform" (func $f)))"#,
    )
    .unwrap();
    let error = load_error(&bytes);
    assert!(matches!(error, LoadError::WrongWorld(_)), "{error}");
    assert_eq!(error.code(), "wrong_world");
}

#[test]
fn wasi_imports_are_forbidden() {
    let bytes = wat::parse_str(
        r#"(component
            (import "wasi:clocks/wall-clock@0.2.0" (instance))
            (import "wasi:random/random@0.2.0" (instance)))"#,
    )
    .unwrap();
    assert_eq!(
        load_error(&bytes),
        LoadError::ForbiddenImport {
            name: "wasi:clocks/wall-clock@0.2.0".into()
        }
    );
}

/// What a component built by the 0.1.0 SDK imports: the contract's interfaces at 0.1.0.
const CONTRACT_0_1_0_IMPORTS: &str = r#"
    (import "lockstep:transform/types@0.1.0" (instance))
    (import "lockstep:transform/host@0.1.0" (instance
        (export "report-panic" (func (param "message" string)))))"#;

#[test]
fn components_of_an_older_contract_must_be_rebuilt() {
    let bytes = wat::parse_str(format!("(component {CONTRACT_0_1_0_IMPORTS})")).unwrap();
    let error = load_error(&bytes);
    assert_eq!(
        error,
        LoadError::OutdatedContract {
            found: "0.1.0".into(),
            expected: "0.2.0",
        }
    );
    assert_eq!(error.code(), "outdated_contract");
    assert!(error.is_deterministic());
    let message = error.to_string();
    assert!(
        message.contains("older SDK") && message.contains("rebuild"),
        "{message}"
    );
}

#[test]
fn components_of_a_newer_contract_are_named_as_such() {
    let bytes =
        wat::parse_str(r#"(component (import "lockstep:transform/types@0.10.0" (instance)))"#)
            .unwrap();
    let error = load_error(&bytes);
    assert_eq!(
        error,
        LoadError::NewerContract {
            found: "0.10.0".into(),
            expected: "0.2.0",
        }
    );
    assert_eq!(error.code(), "newer_contract");
}

#[test]
fn core_modules_are_not_components() {
    let bytes = wat::parse_str(r#"(module (func (export "transform")))"#).unwrap();
    assert_eq!(load_error(&bytes), LoadError::CoreModule);
}

#[test]
fn random_bytes_are_refused() {
    let mut rng = lockstep::datagen::SplitMix64(42);
    let noise: Vec<u8> = (0..4096).map(|_| rng.next_u64() as u8).collect();
    assert_eq!(load_error(&noise), LoadError::NotWasm);
    let mut framed = b"\0asm\x0d\0\x01\0".to_vec();
    framed.extend_from_slice(&noise);
    assert!(matches!(load_error(&framed), LoadError::Invalid(_)));
}

#[test]
fn a_runtime_survives_every_hostile_guest_in_turn() {
    let runtime = test_runtime();
    let one = xs([3]);
    for guest in [
        "infinite-loop",
        "memory-bomb",
        "deep-recursion",
        "panics",
        "wrong-row-count",
        "wrong-output-type",
    ] {
        let digest = load(&runtime, test_guests().get(guest));
        let error = runtime.call(&digest, &one).unwrap_err();
        assert!(error.is_deterministic(), "{guest}: {error}");
    }
    let (good, batch) = healthy(&runtime);
    runtime.call(&good, &batch).unwrap();
}

#[test]
fn a_full_instance_pool_frees_idle_slots_instead_of_refusing() {
    let runtime = Runtime::new(RuntimeConfig {
        max_instances: 2,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let mut digests = Vec::new();
    for package in ["movie-watch", "movie-scorer", "fraud-txn"] {
        digests.push(load(&runtime, first_party().get(package)));
    }
    for digest in &digests {
        let signature = runtime.signature(digest).unwrap();
        let input = generate(&signature.inputs, 8, 5);
        runtime
            .call(digest, &input)
            .expect("a slot is freed for every call");
    }
}
