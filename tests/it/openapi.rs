//! `GET /openapi.json` describes exactly the routes the router serves: every path the
//! router holds, with every method it answers there, is an operation of the description,
//! and nothing else is, so a route added without its `#[utoipa::path]` annotation (or an
//! annotation without its route) fails here. The description also carries what clients
//! need: each guarded route's token scope, the request bodies, and the error shapes.

use std::collections::BTreeSet;
use std::sync::Arc;

use lockstep::api::auth::Access;
use lockstep::api::{AppState, app};
use lockstep_tests::{TestBackend, TestServer, api_error};
use serde_json::Value;

/// Methods a route may answer (HEAD follows GET in axum and is not listed separately).
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH"];

/// The paths the router holds, read from its `Debug` form (axum prints each route's path
/// there, before its fallback's; it has no other way to list them).
fn router_paths(router: &impl std::fmt::Debug) -> BTreeSet<String> {
    let text = format!("{router:?}");
    // The routes' paths; the fallback's own router comes after them.
    let routes = text
        .split_once("path_router:")
        .and_then(|(_, after)| after.split_once("fallback_router:"))
        .map_or("", |(routes, _)| routes);
    let mut paths = BTreeSet::new();
    let mut rest = routes;
    while let Some(at) = rest.find("RouteId(") {
        rest = &rest[at..];
        let Some(quote) = rest.find(": \"") else {
            break;
        };
        let after = &rest[quote + 3..];
        let end = after.find('"').expect("a quoted path ends");
        let path = &after[..end];
        if path.starts_with('/') && !path.contains("__private__axum") {
            paths.insert(path.to_owned());
        }
        rest = &after[end..];
    }
    paths
}

/// `path` with every `{parameter}` filled in.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_parameter = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_parameter = true;
                out.push('1');
            }
            '}' => in_parameter = false,
            _ if in_parameter => {}
            c => out.push(c),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_description_lists_every_route_the_router_serves() {
    let backend = TestBackend::sqlite();
    let config = backend.config();
    let router = app(Arc::new(AppState {
        lockstep: lockstep::pipeline::Lockstep::open(&config).await.unwrap(),
        access: Access::Open,
        server: config.server.clone(),
    }));
    let paths = router_paths(&router);
    assert!(
        paths.contains("/health") && paths.contains("/get-online-features") && paths.len() >= 15,
        "the router's paths were not read from its Debug form: {paths:?}"
    );

    // Which methods each path answers: any answer but 405 `method_not_allowed`.
    let server = TestServer::start_with(config, None).await;
    let mut served = BTreeSet::new();
    for path in &paths {
        for method in METHODS {
            let response = server
                .client
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    server.at(&concrete(path)),
                )
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if !(status == 405 && api_error(&body)["code"] == "method_not_allowed") {
                served.insert((method.to_string(), path.clone()));
            }
        }
    }

    let response = server
        .client
        .get(server.at("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let description: Value = response.json().await.unwrap();
    assert!(
        description["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with('3')),
        "{}",
        description["openapi"]
    );
    let mut documented = BTreeSet::new();
    for (path, item) in description["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method.to_lowercase()).is_some() {
                documented.insert((method.to_string(), path.clone()));
            }
        }
    }
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "served without documentation: {undocumented:?}; documented, not served: {not_served:?}"
    );

    // Scopes come from the guards; open routes have none.
    let operation = |method: &str, path: &str| description["paths"][path][method].clone();
    let scope =
        |method: &str, path: &str| operation(method, path)["security"][0]["token"][0].clone();
    assert_eq!(scope("post", "/get-online-features"), "read");
    assert_eq!(scope("post", "/transforms/{name}"), "write");
    assert_eq!(scope("get", "/transforms/{name}"), "read");
    assert!(operation("get", "/health")["security"].is_null());
    // Bodies and error shapes: Feast's request fields, Feast's error on Feast's routes.
    let schemas = &description["components"]["schemas"];
    assert!(
        schemas["GetOnlineFeaturesBody"]["properties"]["include_feature_view_version_metadata"]
            .is_object(),
        "{}",
        schemas["GetOnlineFeaturesBody"]
    );
    let error_ref = |method: &str, path: &str| {
        operation(method, path)["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"]
            .clone()
    };
    assert_eq!(
        error_ref("post", "/push"),
        "#/components/schemas/FeastErrorBody"
    );
    assert_eq!(
        error_ref("post", "/apply"),
        "#/components/schemas/ErrorResponse"
    );
    eprintln!(
        "{} operations on {} paths, all documented",
        served.len(),
        paths.len()
    );
    server.stop().await;
    backend.cleanup().await;
}
