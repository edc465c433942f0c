//! Builds guest crates into transform components with nothing but cargo: compiles for
//! `wasm32-unknown-unknown` (no WASI, so the module imports nothing) and wraps the core
//! module into a component with `wit-component`, using the WIT that the SDK embedded.
//!
//! Builds are reproducible: the paths the compiler embeds (panic locations) are rewritten
//! to fixed prefixes, so the same source and `Cargo.lock` give the same bytes, and so the
//! same digest, in any directory and on any machine with the same toolchain.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::model::{Classify, Digest, ErrorKind};

/// The target guests compile for: no WASI, so std's panic and OOM paths import nothing.
pub const GUEST_TARGET: &str = "wasm32-unknown-unknown";

/// How to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Cargo target directory; defaults to the guest workspace's own.
    pub target_dir: Option<PathBuf>,
    /// Pass `--quiet` to cargo.
    pub quiet: bool,
}

/// One component produced by [`build`].
#[derive(Debug, Clone)]
pub struct BuiltComponent {
    /// The cargo package it came from.
    pub package: String,
    /// Where the component was written (`<lib>.component.wasm` beside the core module).
    pub path: PathBuf,
    pub digest: Digest,
    pub bytes: Vec<u8>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{path}: no Cargo.toml here")]
    NoManifest { path: PathBuf },
    #[error("could not run cargo: {0}")]
    Cargo(std::io::Error),
    #[error(
        "`cargo {step}` failed for {manifest} ({status}); is the target installed? `rustup target add {GUEST_TARGET}`"
    )]
    CargoFailed {
        step: &'static str,
        manifest: PathBuf,
        status: std::process::ExitStatus,
    },
    #[error("cannot read cargo metadata: {0}")]
    Metadata(String),
    #[error("`rustup target add {GUEST_TARGET}` failed ({0}); install the target and build again")]
    TargetInstall(std::process::ExitStatus),
    #[error(
        "{path}: no `cdylib` library crate to build (add `crate-type = [\"cdylib\", \"rlib\"]`)"
    )]
    NothingToBuild { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{package}: cannot wrap the module into a component (was it built with lockstep-sdk?): {message}"
    )]
    Componentize { package: String, message: String },
}

impl Classify for BuildError {
    fn code(&self) -> &'static str {
        "build_failed"
    }

    /// Not a crate to build is a bad request; a crate that does not build is refused.
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoManifest { .. } | Self::NothingToBuild { .. } => ErrorKind::BadRequest,
            _ => ErrorKind::Refused,
        }
    }
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    workspace_members: Vec<String>,
    target_directory: PathBuf,
}

#[derive(Deserialize)]
struct Package {
    id: String,
    name: String,
    manifest_path: PathBuf,
    /// `None` for a package on the local file system (a workspace member or path dependency).
    source: Option<String>,
    targets: Vec<Target>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    crate_types: Vec<String>,
}

/// Builds every `cdylib` package at `path` (a package, or a workspace of them) in release
/// mode for [`GUEST_TARGET`] and wraps each into a component.
pub fn build(path: &Path, options: &BuildOptions) -> Result<Vec<BuiltComponent>, BuildError> {
    let manifest = path.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(BuildError::NoManifest {
            path: path.to_owned(),
        });
    }
    // Cargo runs inside `path` (so its `.cargo/config.toml` applies): use absolute paths.
    let path = &path.canonicalize().map_err(|source| BuildError::Read {
        path: path.to_owned(),
        source,
    })?;
    let manifest = path.join("Cargo.toml");
    let metadata = metadata(path, &manifest)?;
    let selected: Vec<(&Package, &Target)> = metadata
        .packages
        .iter()
        .filter(|p| metadata.workspace_members.contains(&p.id))
        .filter(|p| manifest_is_under(&p.manifest_path, path))
        .filter_map(|p| {
            p.targets
                .iter()
                .find(|t| t.crate_types.iter().any(|c| c == "cdylib"))
                .map(|t| (p, t))
        })
        .collect();
    if selected.is_empty() {
        return Err(BuildError::NothingToBuild {
            path: path.to_owned(),
        });
    }

    let target_dir = options
        .target_dir
        .clone()
        .unwrap_or_else(|| metadata.target_directory.clone());
    ensure_target(path)?;
    let mut cargo = cargo_command(path);
    cargo
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags(&metadata, &target_dir))
        .args(["build", "--release", "--lib", "--target", GUEST_TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir);
    for (package, _) in &selected {
        cargo.args(["--package", &package.name]);
    }
    if options.quiet {
        cargo.arg("--quiet");
    }
    let status = cargo.status().map_err(BuildError::Cargo)?;
    if !status.success() {
        return Err(BuildError::CargoFailed {
            step: "build",
            manifest,
            status,
        });
    }

    let out_dir = target_dir.join(GUEST_TARGET).join("release");
    selected
        .into_iter()
        .map(|(package, target)| {
            let lib = target.name.replace('-', "_");
            let module_path = out_dir.join(format!("{lib}.wasm"));
            let module = std::fs::read(&module_path).map_err(|source| BuildError::Read {
                path: module_path.clone(),
                source,
            })?;
            let bytes = componentize(&module).map_err(|message| BuildError::Componentize {
                package: package.name.clone(),
                message,
            })?;
            let path = out_dir.join(format!("{lib}.component.wasm"));
            std::fs::write(&path, &bytes).map_err(|source| BuildError::Write {
                path: path.clone(),
                source,
            })?;
            Ok(BuiltComponent {
                package: package.name.clone(),
                path,
                digest: Digest::of(&bytes),
                bytes,
            })
        })
        .collect()
}

/// Wraps a core module carrying wit-bindgen's `component-type` section into a component.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>, String> {
    wit_component::ComponentEncoder::default()
        .module(module)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| format!("{e:#}"))
}

fn metadata(dir: &Path, manifest: &Path) -> Result<Metadata, BuildError> {
    let output = cargo_command(dir)
        .args(["metadata", "--format-version", "1"])
        .arg("--manifest-path")
        .arg(manifest)
        .output()
        .map_err(BuildError::Cargo)?;
    if !output.status.success() {
        return Err(BuildError::Metadata(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| BuildError::Metadata(e.to_string()))
}

/// The guest build's rustflags: the caller's (`CARGO_ENCODED_RUSTFLAGS` or `RUSTFLAGS`),
/// then a `--remap-path-prefix` for every directory whose path the compiler could embed:
/// cargo's home (registry sources), the target directory (generated sources), and each
/// local package (`/lockstep/<package>`). Rustc applies the last matching remap, so the
/// most specific directories come last.
fn rustflags(metadata: &Metadata, target_dir: &Path) -> String {
    let mut flags: Vec<String> = match std::env::var("CARGO_ENCODED_RUSTFLAGS") {
        Ok(encoded) if !encoded.is_empty() => encoded.split('\x1f').map(str::to_owned).collect(),
        _ => std::env::var("RUSTFLAGS")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    };
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let mut remaps: Vec<(PathBuf, String)> = Vec::new();
    remaps.extend(cargo_home.map(|home| (home, "/cargo".to_owned())));
    remaps.push((target_dir.to_owned(), "/target".to_owned()));
    let mut local: Vec<(PathBuf, String)> = metadata
        .packages
        .iter()
        .filter(|package| package.source.is_none())
        .filter_map(|package| {
            let dir = package.manifest_path.parent()?.to_owned();
            Some((dir, format!("/lockstep/{}", package.name)))
        })
        .collect();
    local.sort_by_key(|(dir, _)| dir.as_os_str().len());
    remaps.extend(local);
    for (from, to) in remaps {
        let from = from.canonicalize().unwrap_or(from);
        flags.push(format!("--remap-path-prefix={}={to}", from.display()));
    }
    flags.join("\x1f")
}

/// Installs [`GUEST_TARGET`] with rustup when the toolchain that builds in `dir` lacks it:
/// rustup installs a `rust-toolchain.toml`'s targets only along with the toolchain itself,
/// so a machine whose toolchain came first would fail the first build. Without rustup the
/// build goes ahead, and its error says what to install.
fn ensure_target(dir: &Path) -> Result<(), BuildError> {
    let libdir = Command::new("rustc")
        .current_dir(dir)
        .args(["--print", "target-libdir", "--target", GUEST_TARGET])
        .output();
    let installed = libdir.is_ok_and(|output| {
        output.status.success()
            && Path::new(String::from_utf8_lossy(&output.stdout).trim()).is_dir()
    });
    if installed {
        return Ok(());
    }
    eprintln!("lockstep: installing the {GUEST_TARGET} target: rustup target add {GUEST_TARGET}");
    match Command::new("rustup")
        .current_dir(dir)
        .args(["target", "add", GUEST_TARGET])
        .status()
    {
        Ok(status) if !status.success() => Err(BuildError::TargetInstall(status)),
        _ => Ok(()),
    }
}

/// A cargo command run in `dir`, so the guest workspace's `.cargo/config.toml` applies.
fn cargo_command(dir: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(dir);
    command
}

fn manifest_is_under(manifest: &Path, dir: &Path) -> bool {
    match (manifest.canonicalize(), dir.canonicalize()) {
        (Ok(manifest), Ok(dir)) => manifest.starts_with(dir),
        _ => false,
    }
}
