//! Fixtures shared by Lockstep's integration tests and benchmarks: guest components built
//! once per process with the same code as `lockstep build`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use lockstep::model::Digest;
use lockstep::runtime::{Runtime, RuntimeConfig};
use lockstep::toolchain::{self, BuildOptions};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repo")
        .to_owned()
}

/// Components of one guest workspace, by cargo package name.
#[derive(Debug)]
pub struct Guests(BTreeMap<String, Vec<u8>>);

impl Guests {
    /// The component bytes of `package`; panics with the known names if absent.
    pub fn get(&self, package: &str) -> &[u8] {
        self.0.get(package).unwrap_or_else(|| {
            panic!(
                "no guest package `{package}`; built: {:?}",
                self.0.keys().collect::<Vec<_>>()
            )
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

/// The first-party transforms of `transforms/`.
pub fn first_party() -> &'static Guests {
    static GUESTS: OnceLock<Guests> = OnceLock::new();
    GUESTS.get_or_init(|| build_guests("transforms"))
}

/// The hostile and special guests of `tests/guests/`.
pub fn test_guests() -> &'static Guests {
    static GUESTS: OnceLock<Guests> = OnceLock::new();
    GUESTS.get_or_init(|| build_guests("tests/guests"))
}

/// Builds every cdylib crate of a guest workspace into `target/guests` (a target directory
/// of its own, so the nested cargo never waits on the one running the tests).
fn build_guests(workspace: &str) -> Guests {
    let root = repo_root();
    let options = BuildOptions {
        target_dir: Some(root.join("target").join("guests")),
        quiet: true,
    };
    let built = toolchain::build(&root.join(workspace), &options)
        .unwrap_or_else(|e| panic!("building guests in {workspace}: {e}"));
    Guests(
        built
            .into_iter()
            .map(|component| (component.package, component.bytes))
            .collect(),
    )
}

/// A runtime with test-friendly limits (small pools, a 64 MiB memory cap).
pub fn test_runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        max_instances: 32,
        max_memory_bytes: 64 << 20,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts")
}

/// Loads `bytes` into `runtime`, panicking with the typed error if it is refused.
pub fn load(runtime: &Runtime, bytes: &[u8]) -> Digest {
    match runtime.load(bytes) {
        Ok(info) => info.digest,
        Err(e) => panic!("load failed: [{}] {e}", e.code()),
    }
}
