//! `lockstep new transform` outside this repository, and reproducible builds: the same
//! crate scaffolded in two directories builds to the same bytes, so to the same digest;
//! the component loads, passes the upload checks and has the scaffold's signature.

use lockstep::model::Classify;
use std::path::{Path, PathBuf};
use std::process::Command;

use lockstep::toolchain::{self, BuildOptions};
use lockstep_tests::{first_party, lockstep_exe, repo_root, test_dir, test_runtime};

fn scaffold(dir: &Path, name: &str, on_demand: bool) -> PathBuf {
    let mut command = Command::new(lockstep_exe());
    command.args(["new", "transform", name, "--dir"]).arg(dir);
    if on_demand {
        command.arg("--on-demand");
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir.join(name)
}

#[test]
fn a_scaffolded_transform_builds_anywhere_to_the_same_digest() {
    let base = test_dir("lockstep-scaffold");
    let first = scaffold(&base.join("laptop/src"), "order-features", false);
    let second = scaffold(&base.join("ci/checkout/deeper"), "order-features", false);
    let on_demand = scaffold(&base.join("laptop/src"), "order-scorer", true);
    // One shared target directory keeps the test fast; packages at different paths still
    // compile apart, which is what would make the bytes differ.
    let options = BuildOptions {
        target_dir: Some(repo_root().join("target/guests-scaffold")),
        quiet: true,
    };
    let built = |root: &Path| {
        let mut built = toolchain::build(root, &options)
            .unwrap_or_else(|e| panic!("building {}: {e}", root.display()));
        assert_eq!(built.len(), 1, "only the transform is a cdylib");
        built.remove(0)
    };
    let a = built(&first);
    // The same Cargo.lock, as a team commits it.
    std::fs::copy(first.join("Cargo.lock"), second.join("Cargo.lock")).unwrap();
    let b = built(&second);
    assert_eq!(
        a.digest, b.digest,
        "same source and Cargo.lock, same digest"
    );
    assert_eq!(a.bytes, b.bytes);

    let runtime = test_runtime();
    for component in [a, built(&on_demand)] {
        let info = runtime
            .load(&component.bytes)
            .unwrap_or_else(|e| panic!("{}: [{}] {e}", component.package, e.code()));
        runtime
            .smoke_test(&info.digest, &[1024])
            .unwrap_or_else(|e| panic!("{}: [{}] {e}", component.package, e.code()));
        let expected = component.package.replace('-', "_");
        assert_eq!(info.signature.name, expected);
    }
    std::fs::remove_dir_all(&base).unwrap();
}

/// The first-party transforms take the SDK through a link inside their workspace, so a
/// second checkout of this repository builds them to the same digests.
#[test]
fn the_first_party_transforms_build_the_same_in_another_checkout() {
    let copy = test_dir("lockstep-checkout");
    let root = repo_root();
    // Only what the transforms' build reads: their workspace (links kept) and the SDK.
    std::fs::create_dir_all(copy.join("transforms")).unwrap();
    let mut sources: Vec<PathBuf> = vec![root.join("sdk")];
    for entry in std::fs::read_dir(root.join("transforms")).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|name| name != "target") {
            sources.push(path);
        }
    }
    for source in sources {
        let into = if source.starts_with(root.join("transforms")) {
            copy.join("transforms")
        } else {
            copy.to_path_buf()
        };
        let status = Command::new("cp")
            .arg("-a")
            .arg(&source)
            .arg(&into)
            .status()
            .unwrap();
        assert!(status.success(), "copying {}", source.display());
    }
    let options = BuildOptions {
        target_dir: Some(repo_root().join("target/guests-checkout")),
        quiet: true,
    };
    let here = first_party();
    let there = toolchain::build(&copy.join("transforms"), &options).unwrap();
    for component in there {
        assert_eq!(
            component.bytes,
            here.get(&component.package),
            "{} differs between checkouts",
            component.package
        );
    }
    std::fs::remove_dir_all(&copy).unwrap();
}
