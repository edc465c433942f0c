//! The definitions tests as data: every `tests/definitions/NAME.toml` is resolved, and what
//! it gives — its errors as `lockstep apply` prints them, or what matters about the
//! resolved definitions — must equal `NAME.expected`. `UPDATE_EXPECT=1` rewrites the
//! expected files instead (review the diff before committing).
//!
//! A file's catalog of uploaded transforms is the example catalog ([`fixtures::catalog`])
//! unless the file declares its own in `#@` lines:
//!
//! ```toml
//! #@ transform score@1: amount float64, user_id int64 -> score float64?
//! #@ alias score@prod = 1
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::fixtures;
use super::{
    Catalog, Resolved, ResolvedFeatureView, ResolvedOnDemandView, TransformPin, resolve_text,
};
use crate::model::{Digest, FieldSpec, TransformVersion};

/// The directory of the definitions tests.
pub(crate) fn directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/definitions")
}

#[test]
fn check() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|value| value == "1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory())
        .expect("tests/definitions exists")
        .map(|entry| entry.expect("a readable directory").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "too few definitions tests: {files:?}");
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a readable file");
        let actual = outcome(&text);
        let expected_path = file.with_extension("expected");
        if update {
            std::fs::write(&expected_path, &actual).expect("a writable file");
            continue;
        }
        let name = file.file_name().unwrap().to_string_lossy();
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{name}: the outcome differs from {name_expected} (- expected, + actual):\n{}",
                diff(&expected, &actual),
                name_expected = expected_path.file_name().unwrap().to_string_lossy(),
            )),
            Err(_) => failures.push(format!(
                "{name}: no {} yet; the outcome is:\n{actual}",
                expected_path.display()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n\nRun with UPDATE_EXPECT=1 to accept the new outcomes.",
        failures.join("\n\n")
    );
}

/// What resolving `text` against its catalog gives, as the expected files hold it. Valid
/// definitions must also come back unchanged from their stored objects.
pub(crate) fn outcome(text: &str) -> String {
    match resolve_text(text, &catalog_of(text)) {
        Err(errors) => errors.iter().map(|error| format!("{error}\n")).collect(),
        Ok(resolved) => {
            let stored = Resolved::from_objects(resolved.objects());
            assert_eq!(stored.as_ref(), Ok(&resolved), "the stored objects differ");
            describe(&resolved)
        }
    }
}

/// The catalog a test file declares in `#@` lines, else the example catalog.
pub(crate) fn catalog_of(text: &str) -> Catalog {
    let mut versions = Vec::new();
    let mut aliases = Vec::new();
    for line in text.lines().filter_map(|line| line.strip_prefix("#@ ")) {
        if let Some(transform) = line.strip_prefix("transform ") {
            versions.push(transform_version(transform));
        } else if let Some(alias) = line.strip_prefix("alias ") {
            let (name_alias, version) = alias.split_once(" = ").expect("`name@alias = N`");
            let (name, alias) = name_alias.split_once('@').expect("`name@alias`");
            let version = version.parse().expect("a version number");
            aliases.push((name.to_owned(), alias.to_owned(), version));
        } else {
            panic!("unknown directive `#@ {line}`: expected `transform` or `alias`");
        }
    }
    if versions.is_empty() {
        fixtures::catalog()
    } else {
        Catalog::new(versions, aliases)
    }
}

/// `name@N: inputs -> outputs`, each side a list of `name type` (possibly empty).
fn transform_version(text: &str) -> TransformVersion {
    let (name_version, signature) = text.split_once(": ").expect("`name@N: ... -> ...`");
    let (name, number) = name_version.split_once('@').expect("`name@N`");
    let (inputs, outputs) = signature.split_once("->").expect("`inputs -> outputs`");
    let number = number.parse().expect("a version number");
    fixtures::version(name, number, inputs, outputs)
}

/// What resolving computed, one object a paragraph: pinned transforms with their digests,
/// join keys, features, ttls, flags, aggregations, input bindings, expanded references.
fn describe(resolved: &Resolved) -> String {
    let mut out = format!("project {}\n", resolved.project);
    writeln!(out, "entities: {}", list(resolved.entities.keys())).unwrap();
    writeln!(out, "sources: {}", list(resolved.sources.keys())).unwrap();
    for (name, view) in &resolved.feature_views {
        describe_feature_view(&mut out, name, view);
    }
    for (name, view) in &resolved.on_demand_views {
        describe_on_demand_view(&mut out, name, view);
    }
    for (name, service) in &resolved.feature_services {
        writeln!(out, "\nfeature service {name}").unwrap();
        for (view, feature) in &service.features {
            writeln!(out, "  {view}:{feature}").unwrap();
        }
        if let Some(logging) = service.logging {
            writeln!(out, "  logging: {}", logging.sample_rate.0).unwrap();
        }
    }
    out
}

fn describe_feature_view(out: &mut String, name: &str, view: &ResolvedFeatureView) {
    writeln!(out, "\nfeature view {name}").unwrap();
    writeln!(out, "  entities: {}", list(&view.entities)).unwrap();
    writeln!(out, "  source: {}", view.source).unwrap();
    if let Some(pin) = &view.transform {
        writeln!(out, "  transform: {} = {}", pin.reference, pinned(pin)).unwrap();
    }
    writeln!(out, "  join keys: {}", fields_text(&view.join_keys)).unwrap();
    writeln!(out, "  features: {}", fields_text(&view.features)).unwrap();
    if let Some(ttl) = view.ttl_seconds {
        writeln!(out, "  ttl: {ttl}s").unwrap();
    }
    writeln!(out, "  online: {}, offline: {}", view.online, view.offline).unwrap();
    let Some(aggregation) = &view.aggregation else {
        return;
    };
    writeln!(
        out,
        "  tiles: {}s, allowed lateness: {}s",
        aggregation.granularity_seconds, aggregation.allowed_lateness_seconds
    )
    .unwrap();
    for aggregate in &aggregation.aggregates {
        let column = aggregate
            .column
            .as_ref()
            .map_or("events".to_owned(), ToString::to_string);
        let window = aggregate
            .window_seconds
            .map_or("lifetime".to_owned(), |seconds| format!("{seconds}s"));
        writeln!(
            out,
            "  aggregate {}: {} of {column} over {window}",
            aggregate.name, aggregate.function
        )
        .unwrap();
    }
}

fn describe_on_demand_view(out: &mut String, name: &str, view: &ResolvedOnDemandView) {
    writeln!(out, "\non-demand view {name}").unwrap();
    if let Some(source) = &view.request_source {
        writeln!(out, "  request source: {source}").unwrap();
    }
    writeln!(out, "  views: {}", list(&view.views)).unwrap();
    let pin = &view.transform;
    writeln!(out, "  transform: {} = {}", pin.reference, pinned(pin)).unwrap();
    for binding in &view.inputs {
        writeln!(out, "  input {} from {}", binding.input, binding.provider).unwrap();
    }
    writeln!(out, "  join keys: {}", fields_text(&view.join_keys)).unwrap();
    writeln!(out, "  features: {}", fields_text(&view.features)).unwrap();
}

/// `a, b`, or `none`.
fn list<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// `name@N sha256:<hex>`, checking the digest is the one the catalog's version has.
fn pinned(pin: &TransformPin) -> String {
    let expected = Digest::of(format!("{}@{}", pin.name, pin.version).as_bytes());
    assert_eq!(pin.digest, expected, "the digest of {pin}");
    format!("{}@{} {}", pin.name, pin.version, pin.digest)
}

fn fields_text(fields: &[FieldSpec]) -> String {
    fields
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A line diff of two texts: `-` lines only in `expected`, `+` only in `actual`, two
/// spaces for common lines (a longest common subsequence; the files are small).
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // common[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut common = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            common[i][j] = if a[i] == b[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            writeln!(out, "  {}", a[i]).unwrap();
            (i, j) = (i + 1, j + 1);
        } else if j < b.len() && (i == a.len() || common[i][j + 1] > common[i + 1][j]) {
            writeln!(out, "+ {}", b[j]).unwrap();
            j += 1;
        } else {
            writeln!(out, "- {}", a[i]).unwrap();
            i += 1;
        }
    }
    out
}

#[test]
fn the_diff_marks_removed_and_added_lines() {
    assert_eq!(diff("a\nb\nc\n", "a\nc\nd\n"), "  a\n- b\n  c\n+ d\n");
    assert_eq!(diff("", "x\n"), "+ x\n");
}
