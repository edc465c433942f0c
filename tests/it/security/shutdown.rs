//! `lockstep serve` as a process: SIGTERM refuses new connections and finishes the rest; it
//! starts with Redis down and recovers.

use super::*;

/// A `lockstep serve` process on a free loopback port, with `config`.
struct ServeProcess {
    child: std::process::Child,
    address: String,
    dir: lockstep_tests::TestDir,
}

impl ServeProcess {
    fn start(mut config: Config) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        config.server.listen = ([127, 0, 0, 1], port).into();
        let dir = test_dir("lockstep-sec-serve");
        let file = dir.join("lockstep.toml");
        lockstep_tests::write_config(&config, &file);
        let child = std::process::Command::new(lockstep_tests::lockstep_exe())
            .arg("--config")
            .arg(&file)
            .arg("serve")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = Self {
            child,
            address: format!("127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&server.address).is_err() {
            assert!(Instant::now() < deadline, "the server never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads one HTTP/1.1 response (headers and a `Content-Length` body) from `stream`.
async fn read_response(stream: &mut tokio::net::TcpStream) -> std::io::Result<String> {
    use tokio::io::AsyncReadExt as _;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                return Ok(text);
            }
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&chunk[..read]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_refuses_new_connections_and_finishes_the_rest() {
    use tokio::io::AsyncWriteExt as _;
    let backend = TestBackend::sqlite();
    let mut config = backend.config();
    config.server.shutdown_grace_ms = 300;
    let mut server = ServeProcess::start(config);

    // In flight at the signal: a request whose body is only half sent.
    let body = definitions("sec", "events.csv");
    let mut in_flight = tokio::net::TcpStream::connect(&server.address)
        .await
        .unwrap();
    let head = format!(
        "POST /plan HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(first.as_bytes()).await.unwrap();
    // Idle on a keep-alive connection at the signal, after one answered request.
    let health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut idle = tokio::net::TcpStream::connect(&server.address)
        .await
        .unwrap();
    idle.write_all(health).await.unwrap();
    let answer = read_response(&mut idle).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Sent on a keep-alive connection just before the signal.
    let mut just_before = tokio::net::TcpStream::connect(&server.address)
        .await
        .unwrap();
    just_before.write_all(health).await.unwrap();
    read_response(&mut just_before).await.unwrap();
    just_before.write_all(health).await.unwrap();

    server.signal("TERM");
    let answer = read_response(&mut just_before).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    tokio::time::sleep(Duration::from_millis(100)).await;

    // New connections are refused at once, not left hanging.
    let started = Instant::now();
    let refused = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(&server.address),
    )
    .await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "a new connection after SIGTERM: {refused:?} after {:?}",
        started.elapsed()
    );

    // The in-flight request finishes on its connection.
    in_flight.write_all(rest.as_bytes()).await.unwrap();
    let answer = read_response(&mut in_flight).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The idle keep-alive connection is closed.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::AsyncReadExt as _;
        let mut byte = [0u8; 1];
        idle.read(&mut byte).await
    })
    .await;
    assert!(matches!(closed, Ok(Ok(0) | Err(_))), "{closed:?}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    backend.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_with_redis_down_and_recovers() {
    let mut redis = lockstep_tests::OwnRedis::start();
    redis.kill();
    let backend = TestBackend::sqlite();
    let mut config = backend.config();
    config.online.redis_url = Some(redis.url());
    let server = ServeProcess::start(config);
    let client = reqwest::Client::new();
    let (status, _, _) = send(client.get(server.url("/health"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_error(
        &send(client.get(server.url("/ready"))).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "online_store_unavailable",
    );
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = send(client.get(server.url("/ready"))).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);
    backend.cleanup().await;
}
