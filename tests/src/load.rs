//! What the load benchmarks share: a `lockstep serve` child process on loopback, closed-loop
//! HTTP clients and latency percentiles.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::write_config;

/// The server process, stopped when dropped.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `binary serve` with `config` (written under `dir`) on a free loopback port and
/// waits until it answers; returns it and its base URL.
pub async fn start_server(
    binary: &str,
    config: &lockstep::config::Config,
    dir: &std::path::Path,
) -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = dir.join("lockstep.toml");
    write_config(config, &file);
    let child = Command::new(binary)
        .arg("--config")
        .arg(&file)
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        // Warnings only: an access-log line per request would be measured with the rest.
        .env("LOCKSTEP_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let server = Server(child);
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{url}/health")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, url)
}

/// Posts `body(i)` for i = `first`, `first + 1`, … one after another on `client` until
/// `until`, each answer a success; returns each latency.
pub async fn closed_loop(
    client: reqwest::Client,
    url: String,
    first: i64,
    until: Instant,
    body: impl Fn(i64) -> Value,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let mut i = first;
    while Instant::now() < until {
        let body = body(i);
        let sent = Instant::now();
        let response = client.post(&url).json(&body).send().await.unwrap();
        let status = response.status();
        let answer = response.bytes().await.unwrap();
        assert!(
            status.is_success(),
            "{status}: {}",
            String::from_utf8_lossy(&answer)
        );
        latencies.push(sent.elapsed());
        i += 1;
    }
    latencies
}

/// Runs `workers` closed loops at once, each on a connection of its own, worker `w` posting
/// `body(first(w))`, `body(first(w) + 1)`, … until `until`; returns every latency, sorted,
/// and the seconds the phase took.
pub async fn concurrent<B>(
    workers: i64,
    url: &str,
    until: Instant,
    first: impl Fn(i64) -> i64,
    body: B,
) -> (Vec<Duration>, f64)
where
    B: Fn(i64) -> Value + Clone + Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let client = reqwest::Client::new();
            tokio::spawn(closed_loop(
                client,
                url.to_owned(),
                first(worker),
                until,
                body.clone(),
            ))
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    (all, started.elapsed().as_secs_f64())
}

/// The `p` quantile of sorted latencies, in ms.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e3
}
