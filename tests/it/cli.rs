//! The `lockstep` command line as a user meets it, run as a process: which stores it uses
//! when none are set, connection errors that name the store and say why (refused, timed
//! out, bad URL) without the password, Redis down for a command that needs it, a closed
//! stdout ending quietly, shell completions, and the server's access log (text and JSON,
//! `RUST_LOG` and `LOCKSTEP_LOG`).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lockstep_tests::test_dir;

/// The CLI in `dir`, with no store, log or config variable inherited from the test's
/// environment.
fn lockstep(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lockstep-cli"));
    command.current_dir(dir).stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("LOCKSTEP")
            || matches!(name.as_str(), "DATABASE_URL" | "REDIS_URL" | "RUST_LOG")
        {
            command.env_remove(name);
        }
    }
    command
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A loopback port nothing listens on (a listener's, just closed).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port()
}

#[test]
fn without_urls_every_store_command_says_it_uses_embedded_stores_here() {
    let dir = test_dir("lockstep-cli-notice");
    let output = lockstep(&dir).arg("transforms").output().unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stdout, "");
    let here = dir.canonicalize().unwrap();
    assert!(
        stderr.contains(&format!(
            "using embedded stores in {}/.lockstep (DATABASE_URL and REDIS_URL not set)",
            here.display()
        )),
        "{stderr}"
    );
    // Commands without stores say nothing of them.
    let output = lockstep(&dir)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(!text(&output).1.contains("embedded"), "{}", text(&output).1);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn connection_errors_name_the_store_the_address_and_why_never_the_password() {
    let dir = test_dir("lockstep-cli-connect");
    let port = closed_port();
    let cases = [
        // A closed port: refused at once, not a pool timeout naming no host.
        (
            format!("postgres://bob:s3cret@127.0.0.1:{port}/test"),
            format!(
                "error: cannot connect to the registry at postgres://bob:***@127.0.0.1:{port}/test: connection refused"
            ),
        ),
        // No scheme: a bad URL, not "relative URL without a base".
        (
            "bob:s3cret@127.0.0.1:5432/test".to_owned(),
            "error: cannot connect to the registry at bob:***@127.0.0.1:5432/test: bad URL (no scheme); expected postgres://".to_owned(),
        ),
    ];
    for (url, expected) in cases {
        let started = Instant::now();
        let output = lockstep(&dir)
            .arg("transforms")
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(&expected), "{url}:\n{stderr}");
        assert!(!stderr.contains("s3cret"), "{stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{url}: {:?}",
            started.elapsed()
        );
        // The notice names the registry's URL, redacted, and the online store's default.
        assert!(stderr.contains("REDIS_URL not set"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_server_that_never_answers_is_a_timeout() {
    let dir = test_dir("lockstep-cli-timeout");
    // Accepts connections (the kernel's backlog) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let output = lockstep(&dir)
        .arg("transforms")
        .env(
            "DATABASE_URL",
            format!("postgres://bob@127.0.0.1:{port}/test"),
        )
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot connect to the registry at postgres://bob@127.0.0.1:{port}/test: timed out after 5.0s"
        )),
        "{stderr}"
    );
    drop(silent);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn redis_down_is_an_online_store_error_for_commands_that_need_it() {
    let dir = test_dir("lockstep-cli-redis");
    let port = closed_port();
    let output = lockstep(&dir)
        .args(["materialize", "--from", "2026-01-01"])
        .env("REDIS_URL", format!("redis://:hunter2@127.0.0.1:{port}"))
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: cannot connect to the online store at redis://:***@127.0.0.1:{port}: connection refused"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    // Not reported as a failure to open the registry or the offline store.
    let error = stderr
        .lines()
        .find(|line| line.starts_with("error:"))
        .unwrap();
    assert!(
        !error.contains("registry") && !error.contains("offline"),
        "{error}"
    );
    // Without scheme: a bad URL of the online store.
    let output = lockstep(&dir)
        .args(["materialize", "--from", "2026-01-01"])
        .env("REDIS_URL", "127.0.0.1:6379")
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert!(
        stderr.contains("cannot connect to the online store at 127.0.0.1:6379: bad URL"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_closed_stdout_ends_quietly_with_success() {
    let dir = test_dir("lockstep-cli-pipe");
    for args in [&["completions", "bash"][..], &["backfills"][..]] {
        // A pipe whose reader is gone before anything is written: every write is EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = lockstep(&dir)
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("error"), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn completions_cover_every_shell_and_subcommand() {
    let dir = test_dir("lockstep-cli-completions");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = lockstep(&dir)
            .args(["completions", shell])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{shell}: {stderr}");
        assert!(stdout.contains("lockstep"), "{shell}");
    }
    let output = lockstep(&dir)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let (bash, _) = text(&output);
    for subcommand in [
        "backfill",
        "backfills",
        "training-set",
        "materialize-incremental",
        "completions",
        "--log-format",
    ] {
        assert!(
            bash.contains(subcommand),
            "bash completions lack {subcommand}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `lockstep serve` on embedded stores in `dir` with `args` and `env`, three requests, then
/// SIGTERM; its stderr.
fn serve_and_request(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let port = closed_port();
    let mut command = lockstep(dir);
    command
        .args(args)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    for path in [
        "/health?token=s3cret-query",
        "/transforms/a-name-the-client-chose",
        "/no/such/route/with-a-long-client-string",
    ] {
        get(&format!("127.0.0.1:{port}"), path);
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A GET over a plain socket (`Connection: close`), its answer read to the end.
fn get(address: &str, path: &str) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
}

#[test]
fn the_server_logs_one_access_line_per_request_and_honours_the_log_variables() {
    let dir = test_dir("lockstep-cli-access");
    // Default: info for a server, text lines.
    let stderr = serve_and_request(&dir, &[], &[]);
    let access: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("lockstep::access"))
        .collect();
    assert_eq!(access.len(), 3, "{stderr}");
    assert!(
        access[0].contains("method=\"GET\"") || access[0].contains("method=GET"),
        "{stderr}"
    );
    assert!(
        access[0].contains("path=/health") && access[0].contains("status=200"),
        "{stderr}"
    );
    assert!(access[0].contains("latency_ms="), "{stderr}");
    assert!(access[1].contains("path=/transforms/{name}"), "{stderr}");
    assert!(
        access[2].contains("path=(unmatched)") && access[2].contains("status=404"),
        "{stderr}"
    );
    for secret in [
        "s3cret-query",
        "a-name-the-client-chose",
        "with-a-long-client-string",
    ] {
        assert!(!stderr.contains(secret), "{secret} logged:\n{stderr}");
    }

    // JSON: every stderr line one object; RUST_LOG=warn would hide access lines, but
    // LOCKSTEP_LOG wins.
    let stderr = serve_and_request(
        &dir,
        &["--log-format", "json"],
        &[
            ("RUST_LOG", "warn"),
            ("LOCKSTEP_LOG", "warn,lockstep::access=info"),
        ],
    );
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let access: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["target"] == "lockstep::access")
        .collect();
    assert_eq!(access.len(), 3, "{stderr}");
    assert_eq!(access[0]["level"], "INFO");
    assert_eq!(access[0]["method"], "GET");
    assert_eq!(access[0]["path"], "/health");
    assert_eq!(access[0]["status"], 200);
    assert!(access[0]["latency_ms"].as_f64().is_some(), "{}", access[0]);
    // The store notice is an event too, not a bare line.
    assert!(
        lines.iter().any(|line| line["message"]
            .as_str()
            .is_some_and(|m| m.contains("using embedded stores"))),
        "{stderr}"
    );

    // RUST_LOG alone is honoured: warnings only, no access lines.
    let stderr = serve_and_request(&dir, &[], &[("RUST_LOG", "warn")]);
    assert!(!stderr.contains("lockstep::access"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
