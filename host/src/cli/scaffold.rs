//! `lockstep new transform NAME`: a guest crate that builds anywhere, outside this
//! repository too. The SDK comes with it, as a copy inside the crate's own workspace
//! (`lockstep-sdk/`, written from the sources this binary was built with), so the crate
//! needs nothing but crates.io, and its builds are reproducible: the SDK's path is relative
//! to the workspace, the same in every checkout.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The SDK's files, as `(path inside lockstep-sdk/, contents)`.
const SDK_FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../../../sdk/Cargo.toml")),
    (
        "wit/transform.wit",
        include_str!("../../../sdk/wit/transform.wit"),
    ),
    ("src/lib.rs", include_str!("../../../sdk/src/lib.rs")),
    (
        "src/builder.rs",
        include_str!("../../../sdk/src/builder.rs"),
    ),
    ("src/column.rs", include_str!("../../../sdk/src/column.rs")),
    ("src/math.rs", include_str!("../../../sdk/src/math.rs")),
    ("src/panic.rs", include_str!("../../../sdk/src/panic.rs")),
    ("src/row.rs", include_str!("../../../sdk/src/row.rs")),
    (
        "src/timestamp.rs",
        include_str!("../../../sdk/src/timestamp.rs"),
    ),
    ("src/view.rs", include_str!("../../../sdk/src/view.rs")),
    (
        "macros/Cargo.toml",
        include_str!("../../../sdk/macros/Cargo.toml"),
    ),
    (
        "macros/src/lib.rs",
        include_str!("../../../sdk/macros/src/lib.rs"),
    ),
];

/// Which kind of transform to start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A feature view's transform: one source row in, its features out.
    View,
    /// An on-demand view's transform: features and request fields in, new features out.
    OnDemand,
}

/// Writes the crate `name` into `dir/name` (which must not exist yet); returns its path.
pub fn new_transform(dir: &Path, name: &str, kind: Kind) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        is_crate_name(name),
        "`{name}` is not a crate name: use lowercase letters, digits, `-` and `_`, starting with a letter"
    );
    let root = dir.join(name);
    anyhow::ensure!(
        !root.exists(),
        "{} already exists; choose another name or directory",
        root.display()
    );
    let snake = name.replace('-', "_");
    let mut files: Vec<(PathBuf, String)> = vec![
        (PathBuf::from("Cargo.toml"), manifest(name)),
        (PathBuf::from(".cargo/config.toml"), CARGO_CONFIG.to_owned()),
        (PathBuf::from(".gitignore"), "/target\n".to_owned()),
        (PathBuf::from("src/lib.rs"), source(&snake, kind)),
        (PathBuf::from("README.md"), readme(name, &snake)),
    ];
    for (path, contents) in SDK_FILES {
        files.push((Path::new("lockstep-sdk").join(path), (*contents).to_owned()));
    }
    for (path, contents) in files {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(root)
}

/// Cargo's rule for package names, narrowed to what also makes a good transform name.
fn is_crate_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn manifest(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the WebAssembly module `lockstep build` wraps into a component;
# rlib: native unit tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
# The SDK, copied in by `lockstep new`: a path inside this workspace keeps builds
# reproducible (the same source and Cargo.lock give the same digest anywhere).
lockstep-sdk = {{ path = "lockstep-sdk" }}

# A workspace of its own, so builds never depend on the directory around it.
[workspace]
resolver = "3"

# Small, fast, deterministic modules: a panic traps instead of unwinding.
[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true
"#
    )
}

const CARGO_CONFIG: &str = r#"# Transforms run as WebAssembly; native unit tests need an explicit host target:
#   cargo test --target x86_64-unknown-linux-gnu
[build]
target = "wasm32-unknown-unknown"
"#;

fn source(snake: &str, kind: Kind) -> String {
    let body = match kind {
        Kind::View => VIEW_SOURCE,
        Kind::OnDemand => ON_DEMAND_SOURCE,
    };
    body.replace("{name}", snake)
}

const VIEW_SOURCE: &str = r#"//! `{name}`: a feature view's transform. Each source row's columns named like the
//! input's fields come in; the output's fields are the view's features.

use lockstep_sdk::Row;

/// The source columns this transform reads (by name; `Option` for nullable ones).
#[derive(Row, Debug, Clone, PartialEq)]
pub struct Input {
    pub amount: f64,
    pub quantity: i64,
}

/// The features it computes.
#[derive(Row, Debug, Clone, PartialEq)]
pub struct Features {
    pub total: f64,
    pub is_large: bool,
}

/// One row in, one row out: a pure function of the row, which is what keeps training
/// and serving in lockstep.
#[lockstep_sdk::transform(name = "{name}", version = "0.1.0")]
pub fn features(input: Input) -> Features {
    let total = input.amount * input.quantity as f64;
    Features {
        total,
        is_large: total >= 100.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_flags() {
        let out = features(Input {
            amount: 12.5,
            quantity: 10,
        });
        assert_eq!(out.total, 125.0);
        assert!(out.is_large);
    }
}
"#;

const ON_DEMAND_SOURCE: &str = r#"//! `{name}`: an on-demand view's transform, run per request online and after the
//! point-in-time join offline. Its inputs are other views' features and request fields.

use lockstep_sdk::{Row, math};

/// Features of other views and request fields, by name (`Option` where they may be
/// missing: an entity without values, a request without the field).
#[derive(Row, Debug, Clone, PartialEq)]
pub struct Input<'a> {
    pub avg_amount: Option<f64>,
    pub amount: f64,
    pub channel: Option<&'a str>,
}

/// The features it computes.
#[derive(Row, Debug, Clone, PartialEq)]
pub struct Features {
    pub amount_ratio: Option<f64>,
    pub log_amount: f64,
    pub is_online: bool,
}

#[lockstep_sdk::transform(name = "{name}", version = "0.1.0")]
pub fn score(input: Input<'_>) -> Features {
    Features {
        amount_ratio: input
            .avg_amount
            .filter(|avg| *avg > 0.0)
            .map(|avg| input.amount / avg),
        log_amount: math::log1p(input.amount.max(0.0)),
        is_online: input.channel == Some("online"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_needs_a_positive_average() {
        let input = |avg_amount| Input {
            avg_amount,
            amount: 50.0,
            channel: Some("online"),
        };
        assert_eq!(score(input(Some(25.0))).amount_ratio, Some(2.0));
        assert_eq!(score(input(None)).amount_ratio, None);
        assert!(score(input(Some(0.0))).is_online);
    }
}
"#;

fn readme(name: &str, snake: &str) -> String {
    format!(
        r#"# {name}

A Lockstep feature transform, scaffolded by `lockstep new transform`.

```sh
lockstep build .                                  # → target/wasm32-unknown-unknown/release/{snake}.component.wasm
lockstep transform check target/wasm32-unknown-unknown/release/{snake}.component.wasm
lockstep upload target/wasm32-unknown-unknown/release/{snake}.component.wasm --name {snake}
cargo test --target x86_64-unknown-linux-gnu      # unit tests, natively
```

`lockstep-sdk/` is the Lockstep SDK, copied here so this crate builds anywhere and its
builds are reproducible. Commit it with `Cargo.lock`; to take a newer SDK, run
`lockstep new transform` with the newer `lockstep` and copy its `lockstep-sdk/` over.
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every source file of the SDK is embedded: a new SDK module must be listed above.
    #[test]
    fn every_sdk_source_is_embedded() {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
        for dir in ["src", "macros/src", "wit"] {
            for entry in std::fs::read_dir(sdk.join(dir)).unwrap() {
                let name = format!("{dir}/{}", entry.unwrap().file_name().to_string_lossy());
                assert!(
                    SDK_FILES.iter().any(|(path, _)| *path == name),
                    "{name} is not embedded in SDK_FILES"
                );
            }
        }
    }

    #[test]
    fn names_are_checked_and_directories_kept() {
        let dir = std::env::temp_dir().join(format!("lockstep-new-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(new_transform(&dir, "Bad Name", Kind::View).is_err());
        let root = new_transform(&dir, "order-features", Kind::View).unwrap();
        assert!(root.join("lockstep-sdk/wit/transform.wit").is_file());
        let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
        assert!(lib.contains(r#"name = "order_features""#));
        let again = new_transform(&dir, "order-features", Kind::OnDemand).unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
