//! Seeded random paths, methods, bytes and JSON to every route: coded JSON answers only, in
//! Feast's error shape on the routes Feast clients call and Lockstep's everywhere else.

use super::*;

/// Every route of the API, with its method, `{}` standing for a path parameter.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/transforms"),
    ("GET", "/transforms/{}"),
    ("POST", "/transforms/{}"),
    ("PUT", "/transforms/{}/aliases/{}"),
    ("POST", "/plan"),
    ("POST", "/apply"),
    ("GET", "/definitions"),
    ("GET", "/backfills"),
    ("POST", "/backfills"),
    ("GET", "/backfills/{}"),
    ("POST", "/training-set"),
    ("POST", "/get-online-features"),
    ("POST", "/push"),
    ("POST", "/write-to-online-store"),
    ("POST", "/materialize"),
    ("POST", "/materialize-incremental"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

/// 503 codes the API documents as "retry later" (`api/error.rs`).
const UNAVAILABLE: &[&str] = &[
    "registry_unavailable",
    "offline_store_unavailable",
    "online_store_unavailable",
    "source_postgres",
    "runtime_busy",
    "compile_timeout",
    "request_timeout",
    "transform_timeout",
];

/// Random text: printable, escapes, percent-encodings, JSON punctuation and non-ASCII.
fn random_text(rng: &mut lockstep::datagen::SplitMix64, max: u64) -> String {
    const PIECES: &[&str] = &[
        "a", "Z", "0", "9", "_", "-", ".", "..", "/", "%FF", "%00", "%2F", "?", "&", "=", "{", "}",
        "[", "]", "\"", ":", ",", "é", "☃", " ", "*", "user_id", "svc", "scores", "sec",
    ];
    let len = rng.next_u64() % (max + 1);
    (0..len)
        .map(|_| PIECES[(rng.next_u64() % PIECES.len() as u64) as usize])
        .collect()
}

/// A random JSON value, nested up to `depth`, using the API's field names now and then.
fn random_json(rng: &mut lockstep::datagen::SplitMix64, depth: u32) -> Value {
    const KEYS: &[&str] = &[
        "entities",
        "feature_service",
        "features",
        "project",
        "view",
        "from",
        "to",
        "df",
        "push_source_name",
        "feature_view_name",
        "start_ts",
        "end_ts",
        "version",
        "user_id",
        "fresh",
        "to",
        "feature_views",
    ];
    match rng.next_u64() % if depth == 0 { 5 } else { 7 } {
        0 => Value::Null,
        1 => json!(rng.next_u64().is_multiple_of(3)),
        2 => json!(rng.next_u64() as i64),
        3 => json!(f64::from_bits(rng.next_u64()).to_string()),
        4 => json!(random_text(rng, 12)),
        5 => Value::Array(
            (0..rng.next_u64() % 4)
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.next_u64() % 5)
                .map(|_| {
                    let key = KEYS[(rng.next_u64() % KEYS.len() as u64) as usize];
                    (key.to_owned(), random_json(rng, depth - 1))
                })
                .collect(),
        ),
    }
}

/// Resident memory of this process, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_to_every_route_get_coded_json_answers() {
    let (server, backend, dir) = applied_server("lockstep-sec-fuzz").await;

    let mut rng = lockstep::datagen::SplitMix64(0x5EC0_5EED);
    let rss_before = rss_bytes();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut sent = 0;
    while Instant::now() < deadline {
        let (method, route) = ROUTES[(rng.next_u64() % ROUTES.len() as u64) as usize];
        let mut path = route.to_owned();
        while path.contains("{}") {
            path = path.replacen("{}", &random_text(&mut rng, 20), 1);
        }
        match rng.next_u64() % 4 {
            0 => path = format!("/{}", random_text(&mut rng, 30)),
            1 => path = format!("{path}?{}", random_text(&mut rng, 20)),
            _ => {}
        }
        let method = match rng.next_u64() % 8 {
            0 => reqwest::Method::DELETE,
            1 => reqwest::Method::PATCH,
            _ => reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        };
        let Ok(url) = reqwest::Url::parse(&server.at(&path)) else {
            continue;
        };
        let body: Vec<u8> = match rng.next_u64() % 3 {
            0 => (0..rng.next_u64() % 2_000)
                .map(|_| rng.next_u64() as u8)
                .collect(),
            1 => random_json(&mut rng, 4).to_string().into_bytes(),
            _ => Vec::new(),
        };
        let (status, content_type, answer) =
            send(server.client.request(method.clone(), url).body(body)).await;
        sent += 1;
        if status.is_success() {
            continue;
        }
        assert!(
            content_type.starts_with("application/json"),
            "{method} {path}: {status} {content_type} {answer}"
        );
        let route = path.split('?').next().unwrap_or_default();
        let error = if lockstep::api::feast::ROUTES.contains(&route) {
            // Feast's shape: a JSON string holding Feast's detail and Lockstep's error.
            let detail: Value = answer
                .as_str()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_else(|| panic!("{method} {path}: {status} not Feast's shape: {answer}"));
            assert_eq!(
                detail["module"], "feast.errors",
                "{method} {path}: {detail}"
            );
            assert!(detail["class"].is_string(), "{method} {path}: {detail}");
            detail["error"].clone()
        } else {
            answer["error"].clone()
        };
        let code = error["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: {status} no code: {answer}"));
        assert!(
            !status.is_server_error()
                || (status == StatusCode::SERVICE_UNAVAILABLE && UNAVAILABLE.contains(&code)),
            "{method} {path}: {status} {answer}"
        );
    }
    assert!(sent > 100, "only {sent} requests in the time");
    let (status, _, _) = send(server.client.get(server.at("/health"))).await;
    assert_eq!(status, StatusCode::OK);
    let grown = rss_bytes().saturating_sub(rss_before);
    assert!(grown < 200 << 20, "RSS grew by {} MiB", grown >> 20);
    eprintln!("{sent} random requests; RSS grew by {} MiB", grown >> 20);
    server.stop().await;
    backend.cleanup().await;
    let _ = std::fs::remove_dir_all(dir);
}
