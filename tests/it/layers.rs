//! The import invariants of ARCHITECTURE.md, checked: which top-level module of the host may
//! import which. Only non-test code counts (`tests.rs`, `tests/` and `#[cfg(test)]` modules
//! may reach anything). Crate boundaries (`lockstep-model`, `lockstep-runtime`) are Cargo's
//! to enforce; this checks the layers inside the host crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use lockstep_tests::repo_root;

/// What each top-level module of `host/src` may import of the crate, lowest layer first. A
/// module missing here fails the test: a new module must be placed in the map.
const ALLOWED: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("endpoint", &["model"]),
    ("columnar", &["model"]),
    ("datagen", &["model"]),
    ("toolchain", &["model"]),
    ("source", &["model", "columnar"]),
    ("aggregate", &["model", "columnar"]),
    ("sql_store", &["endpoint"]),
    ("registry", &["model", "endpoint", "sql_store"]),
    (
        "offline",
        &["model", "columnar", "aggregate", "endpoint", "sql_store"],
    ),
    ("online", &["model", "columnar", "aggregate", "endpoint"]),
    ("metrics", &["model", "runtime"]),
    (
        "config",
        &[
            "model", "endpoint", "source", "registry", "offline", "online", "runtime",
        ],
    ),
    (
        "pipeline",
        &[
            "model",
            "columnar",
            "aggregate",
            "source",
            "registry",
            "offline",
            "online",
            "runtime",
            "metrics",
            "config",
            "endpoint",
        ],
    ),
    (
        "api",
        &[
            "model", "columnar", "source", "registry", "offline", "online", "runtime", "metrics",
            "config", "pipeline", "endpoint",
        ],
    ),
    (
        "cli",
        &[
            "model",
            "columnar",
            "datagen",
            "toolchain",
            "source",
            "registry",
            "offline",
            "online",
            "runtime",
            "metrics",
            "config",
            "pipeline",
            "api",
            "endpoint",
        ],
    ),
];

#[test]
fn host_modules_import_only_the_layers_below_them() {
    let src = repo_root().join("host/src");
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(module, deps)| (*module, deps.iter().copied().collect()))
        .collect();
    let mut problems = Vec::new();
    for (module, imports) in crate_imports(&src) {
        let Some(permitted) = allowed.get(module.as_str()) else {
            problems.push(format!(
                "module `{module}` is not in the layer map of tests/it/layers.rs"
            ));
            continue;
        };
        for (import, file) in imports {
            if import != module && !permitted.contains(import.as_str()) {
                problems.push(format!("{file}: `{module}` imports `crate::{import}`"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layer violations:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_a_forbidden_import() {
    let code = "use crate::model::Digest;\n// crate::cli in a comment is fine\nfn f() { crate::pipeline::x(); }\n#[cfg(test)]\nmod tests { use crate::cli::x; }\n";
    assert_eq!(
        imports_of(code),
        BTreeSet::from(["model".to_owned(), "pipeline".to_owned()])
    );
}

/// Each top-level module's imports of `crate::…`, with the first file naming each.
fn crate_imports(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut modules: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("host/src") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        let files = if path.is_dir() {
            rust_files(&path)
        } else {
            vec![path.clone()]
        };
        let imports = modules.entry(name).or_default();
        for file in files {
            let shown = file.strip_prefix(src).unwrap().display().to_string();
            let code = std::fs::read_to_string(&file).expect("a source file");
            for import in imports_of(&code) {
                imports.entry(import).or_insert_with(|| shown.clone());
            }
        }
    }
    modules
}

/// The `.rs` files under `dir` that are not test modules.
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a module directory") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if name != "tests" {
                files.extend(rust_files(&path));
            }
        } else if name.ends_with(".rs") && name != "tests.rs" {
            files.push(path);
        }
    }
    files
}

/// The top-level modules `code` names as `crate::module`, outside comments and before its
/// `#[cfg(test)]` module (`#[cfg(test)]` followed by `mod`).
fn imports_of(code: &str) -> BTreeSet<String> {
    let code = code.split("#[cfg(test)]\nmod ").next().unwrap_or_default();
    let mut imports = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or_default();
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `crate::{a, b}` names several modules.
            if name.is_empty() && after.starts_with('{') {
                let group = &after[1..after.find('}').unwrap_or(after.len())];
                for item in group.split(',') {
                    let item = item.trim().split("::").next().unwrap_or_default();
                    if !item.is_empty() {
                        imports.insert(item.to_owned());
                    }
                }
            } else if !name.is_empty() {
                imports.insert(name);
            }
            rest = after;
        }
    }
    imports
}
