//! Feast's own Python client for the Feast compatibility test: a virtualenv holding the
//! pinned `tests/feast/requirements.txt`, made once per target directory under a file lock.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::repo_root;

/// The Feast release the compatibility test pins (`tests/feast/requirements.txt`).
pub const FEAST_VERSION: &str = "0.67.0";

/// The interpreter virtualenvs are made with: `LOCKSTEP_TEST_PYTHON`, else `python3`.
pub const PYTHON_ENV: &str = "LOCKSTEP_TEST_PYTHON";

/// `tests/feast/`: the requirements, the Feast repository and the client script.
pub fn feast_dir() -> PathBuf {
    repo_root().join("tests").join("feast")
}

/// A virtualenv with Feast installed.
#[derive(Debug, Clone)]
pub struct FeastClient {
    /// The virtualenv's Python.
    pub python: PathBuf,
    /// Its `feast` command.
    pub feast: PathBuf,
}

/// The cargo target directory this test binary was built in (the one holding
/// `CACHEDIR.TAG`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .unwrap_or_else(|| panic!("no cargo target directory above {}", exe.display()))
        .to_owned()
}

/// The virtualenv for the pinned requirements, made if missing: `target/feast-venv/<hash of
/// the requirements>`, so changing them makes a new one. Processes running at once wait on
/// one lock and make it once. Panics, saying what is missing, when Python, `venv` or pip
/// fail: the test needs them (`.ci/run` installs them).
pub fn feast_client() -> FeastClient {
    let requirements = feast_dir().join("requirements.txt");
    let pinned = std::fs::read(&requirements).expect("tests/feast/requirements.txt");
    let key = lockstep::model::Digest::of(&pinned).hex();
    let root = target_dir().join("feast-venv");
    std::fs::create_dir_all(&root).expect("create the virtualenv directory");
    let venv = root.join(&key[..16]);
    let client = FeastClient {
        python: venv.join("bin").join("python"),
        feast: venv.join("bin").join("feast"),
    };
    let complete = venv.join(".lockstep-complete");

    let lock = File::create(root.join(".lock")).expect("create the virtualenv lock");
    lock.lock().expect("lock the virtualenv directory");
    if complete.is_file() {
        return client;
    }
    // A virtualenv left half made by a killed run is made again from scratch.
    let _ = std::fs::remove_dir_all(&venv);
    let python = std::env::var_os(PYTHON_ENV).unwrap_or_else(|| "python3".into());
    run(
        Command::new(&python).arg("-m").arg("venv").arg(&venv),
        &format!(
            "`{} -m venv` (set {PYTHON_ENV} to another interpreter; on Debian, \
             `apt-get install python3-venv`)",
            Path::new(&python).display()
        ),
    );
    run(
        Command::new(&client.python)
            .args([
                "-m",
                "pip",
                "install",
                "--no-input",
                "--disable-pip-version-check",
            ])
            .args(["--quiet", "-r"])
            .arg(&requirements),
        "pip install -r tests/feast/requirements.txt",
    );
    std::fs::write(&complete, FEAST_VERSION).expect("mark the virtualenv complete");
    client
}

/// Runs `command`, panicking with its output when it cannot start or fails.
fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what} could not start: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
