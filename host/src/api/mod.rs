//! The HTTP API: `app(state) -> Router` over the pipeline, bearer-token scopes, JSON errors
//! with stable codes, body limits, a request deadline and graceful shutdown.

pub mod auth;
pub mod error;
mod extract;
pub mod feast;
pub mod json;
mod offline;
mod online;
pub mod openapi;
pub mod request_error;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use utoipa::{OpenApi as _, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::config::ServerConfig;
use crate::model::text::echo;
use crate::pipeline::{Component, Lockstep};
use auth::{Access, Scope};
use error::{ApiError, ErrorResponse};
use extract::{Path, Query};
use request_error::RequestError;

/// What every handler sees.
pub struct AppState {
    pub lockstep: Lockstep,
    pub access: Access,
    pub server: ServerConfig,
}

type Shared = State<Arc<AppState>>;

/// The API router. Every route is registered with its `#[utoipa::path]` documentation
/// (`routes!`), so the description at `GET /openapi.json` lists exactly what is served. Every
/// route with a body or a scope is wrapped by [`guard`], which checks the token and the
/// declared body length before any of the body is read, and documents the scope.
pub fn app(state: Arc<AppState>) -> Router {
    let upload_limit = state.lockstep.runtime().config().max_component_bytes;
    let body_limit = state.server.max_body_bytes;
    let timeout = Duration::from_millis(state.server.request_timeout_ms);
    let guarded = |route: UtoipaMethodRouter<Arc<AppState>>, scope: Scope, limit: usize| {
        let state = Arc::clone(&state);
        openapi::require(route, scope).layer((
            DefaultBodyLimit::max(limit),
            middleware::from_fn(move |request, next| {
                guard(Arc::clone(&state), scope, limit, request, next)
            }),
        ))
    };
    let (router, description) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(openapi::openapi_json))
        .routes(guarded(routes!(list_transforms), Scope::Read, 0))
        .routes(guarded(routes!(show_transform), Scope::Read, 0))
        .routes(guarded(
            routes!(upload_transform),
            Scope::Write,
            upload_limit,
        ))
        .routes(guarded(routes!(set_alias), Scope::Write, body_limit))
        .routes(guarded(routes!(plan), Scope::Read, body_limit))
        .routes(guarded(routes!(apply), Scope::Write, body_limit))
        .routes(guarded(routes!(definitions), Scope::Read, 0))
        .routes(guarded(routes!(projects), Scope::Read, 0))
        .routes(guarded(routes!(delete_project), Scope::Write, 0))
        .routes(guarded(routes!(offline::list_backfills), Scope::Read, 0))
        .routes(guarded(
            routes!(offline::start_backfill),
            Scope::Write,
            body_limit,
        ))
        .routes(guarded(routes!(offline::show_backfill), Scope::Read, 0))
        .routes(guarded(
            routes!(offline::training_set),
            Scope::Read,
            body_limit.max(state.server.max_entity_rows_bytes),
        ))
        .routes(guarded(
            routes!(online::get_online_features),
            Scope::Read,
            body_limit,
        ))
        .routes(guarded(routes!(online::push), Scope::Write, body_limit))
        .routes(guarded(
            routes!(online::write_to_online_store),
            Scope::Write,
            body_limit,
        ))
        .routes(guarded(
            routes!(online::materialize),
            Scope::Write,
            body_limit,
        ))
        .routes(guarded(
            routes!(online::materialize_incremental),
            Scope::Write,
            body_limit,
        ))
        .routes(guarded(routes!(metrics), Scope::Read, 0))
        .split_for_parts();
    router
        .layer(Extension(openapi::Document::new(&description)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(move |request, next| {
            deadline(timeout, request, next)
        }))
        .layer(middleware::from_fn(feast::errors))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), track))
        .with_state(state)
}

/// Serves `state` on `listener` until SIGTERM or Ctrl-C, then closes the listener (new
/// connections are refused), keeps serving open connections for `server.shutdown_grace_ms`
/// (requests already sent are read), closes idle keep-alive connections, lets in-flight
/// requests finish and writes the feature logs still queued. Clients get
/// `server.header_timeout_ms` to send their headers.
pub async fn serve(state: Arc<AppState>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    serve_until(state, listener, shutdown_signal()).await
}

/// [`serve`], stopping the same graceful way when `shutdown` completes instead of on a
/// signal: how `lockstep demo` runs a server in-process.
pub async fn serve_until(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let header_timeout = Duration::from_millis(state.server.header_timeout_ms);
    // Applies made through other servers sharing the registry are served at once.
    let _following = state.lockstep.follow_registry();
    let service = TowerToHyperService::new(app(Arc::clone(&state)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    // Stop accepting at once: a new connection is refused, not left waiting in the backlog
    // for the whole drain.
    drop(listener);
    // Requests already sent on open keep-alive connections are read and become in flight;
    // then idle connections are closed and in-flight requests finish, each on its own
    // connection.
    tokio::time::sleep(Duration::from_millis(state.server.shutdown_grace_ms)).await;
    graceful.shutdown().await;
    // Responses logged by the requests just finished reach the offline store before exit.
    if let Err(error) = state.lockstep.flush_feature_logs().await {
        tracing::warn!(%error, "feature logs were lost at shutdown");
    }
    Ok(())
}

/// Refuses to serve without tokens anywhere but on loopback; says so loudly when open.
pub fn check_access(access: &Access, listen: SocketAddr) -> Result<(), String> {
    match access {
        Access::Open if !listen.ip().is_loopback() => Err(format!(
            "refusing to listen on {listen} without API tokens: set {} (e.g. `write:<secret>`) or listen on 127.0.0.1",
            auth::TOKENS_ENV
        )),
        Access::Open => {
            tracing::warn!(
                "DEV MODE: no {} set; the API on {listen} is open to every local caller",
                auth::TOKENS_ENV
            );
            Ok(())
        }
        Access::Tokens(_) => Ok(()),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Ends a request that runs past the deadline with a JSON 503 `request_timeout`.
async fn deadline(timeout: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::from(RequestError::Timeout(timeout)).into_response(),
    }
}

/// Counts and times every request by its route (the matched pattern, never the raw path,
/// so ids do not explode the label set).
async fn track(State(state): Shared, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", MatchedPath::as_str)
        .to_owned();
    let method = access_method(request.method());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    state
        .lockstep
        .metrics()
        .http_request(&endpoint, status, seconds);
    // The access log: only what the server chose (the route pattern, not the client's path
    // or query), so a client's strings never reach the log.
    tracing::info!(
        target: "lockstep::access",
        method,
        path = %endpoint,
        status,
        latency_ms = (seconds * 1e6).round() / 1e3,
        "request"
    );
    response
}

/// A request method for the access log: a standard one by name, any other as `OTHER`.
fn access_method(method: &axum::http::Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("OTHER")
}

/// `GET /metrics`: the Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "server",
    responses(
        (status = 200, description = "The Prometheus text exposition", content_type = "text/plain", body = String),
    )
)]
async fn metrics(State(state): Shared) -> Response {
    let text = state.lockstep.metrics_text().await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Checks the bearer token against `scope`, then answers 413 from the `Content-Length`
/// header alone if it is over `limit`: both before any of the body is read. Bodies without
/// a length are cut off at the same limit while being read (`DefaultBodyLimit`).
async fn guard(
    state: Arc<AppState>,
    scope: Scope,
    limit: usize,
    request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if let Err(denied) = state.access.check(authorization, scope) {
        return ApiError::from(denied).into_response();
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => ApiError::from(RequestError::TooLarge(format!(
            "the body is {length} bytes, over the {limit}-byte limit"
        )))
        .into_response(),
        _ => next.run(request).await,
    }
}

/// Maps a body rejection (too large, unreadable) to a JSON error.
/// A JSON body of type `T`, or a 400 `invalid_body` showing the shape expected.
fn json_body<T: for<'de> Deserialize<'de>>(
    bytes: Result<Bytes, BytesRejection>,
    expected: &str,
) -> Result<T, ApiError> {
    serde_json::from_slice(&body(bytes)?)
        .map_err(|e| RequestError::InvalidBody(format!("expected {expected}: {e}")).into())
}

fn body(result: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    result.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            RequestError::TooLarge(rejection.body_text()).into()
        } else {
            RequestError::InvalidBody(rejection.body_text()).into()
        }
    })
}

fn text(bytes: Bytes) -> Result<String, ApiError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        RequestError::InvalidBody(
            "the body must be UTF-8 text (a TOML definitions file)".to_owned(),
        )
        .into()
    })
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "server",
    responses((status = 200, description = "The process is up: `{\"status\": \"ok\"}`", body = Object))
)]
async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: 200 while online reads can be served (`ok`, or `degraded` on cached
/// definitions while the registry is down), 503 otherwise; the body names each component's
/// state.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "server",
    responses(
        (status = 200, description = "Online reads can be served: `ok`, or `degraded` on cached definitions while the registry is down; each component's state", body = Object),
        (status = 503, description = "Online reads cannot be served: the same findings and an `error` with its code", body = Object),
    )
)]
async fn ready(State(state): Shared) -> Response {
    let readiness = state.lockstep.readiness().await;
    if readiness.can_serve() {
        return (StatusCode::OK, Json(readiness)).into_response();
    }
    // Like every error answer, a stable code; the findings beside it.
    let (code, message) = if readiness.online_store == Component::Unavailable {
        (
            "online_store_unavailable",
            "the online store does not answer",
        )
    } else {
        (
            "registry_unavailable",
            "the registry does not answer and no definitions are cached",
        )
    };
    let mut body = serde_json::to_value(&readiness).expect("readiness serializes");
    body["error"] = serde_json::json!({ "code": code, "message": message });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn not_found() -> ApiError {
    RequestError::NotFound("no such endpoint".to_owned()).into()
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::method_not_allowed(&echo(request.method().as_str()))
}

#[utoipa::path(
    get,
    path = "/transforms",
    tag = "transforms",
    responses(
        (status = 200, description = "`{\"transforms\": [...]}`: every transform's versions, digests, signatures and aliases", body = Object),
    )
)]
async fn list_transforms(State(state): Shared) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        json!({ "transforms": state.lockstep.transforms().await? }),
    ))
}

#[utoipa::path(
    get,
    path = "/transforms/{name}",
    tag = "transforms",
    params(("name" = String, Path, description = "The transform's name")),
    responses(
        (status = 200, description = "The transform's versions, digests, signatures and aliases", body = Object),
    )
)]
async fn show_transform(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    match state.lockstep.transform(&name).await? {
        Some(summary) => Ok(Json(summary)),
        None => Err(RequestError::NotFound(format!("no transform named `{}`", echo(&name))).into()),
    }
}

#[utoipa::path(
    post,
    path = "/transforms/{name}",
    tag = "transforms",
    params(("name" = String, Path, description = "The transform's name")),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "The component's bytes (`lockstep build`)"),
    responses(
        (status = 201, description = "A new version", body = Object),
        (status = 200, description = "The same bytes as an existing version", body = Object),
    )
)]
async fn upload_transform(
    State(state): Shared,
    Path(name): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let bytes = body(bytes)?;
    let outcome = state.lockstep.upload(&name, bytes.to_vec()).await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(outcome)))
}

/// `PUT /transforms/{name}/aliases/{alias}`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    /// The version the alias points at.
    version: u32,
}

#[utoipa::path(
    put,
    path = "/transforms/{name}/aliases/{alias}",
    tag = "transforms",
    params(
        ("name" = String, Path, description = "The transform's name"),
        ("alias" = String, Path, description = "The alias, e.g. `latest` or `prod`"),
    ),
    request_body = AliasBody,
    responses(
        (status = 200, description = "`{\"name\", \"alias\", \"version\"}`", body = Object),
    )
)]
async fn set_alias(
    State(state): Shared,
    Path((name, alias)): Path<(String, String)>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let request: AliasBody = serde_json::from_slice(&body(bytes)?).map_err(|e| {
        RequestError::InvalidBody(format!("expected {{\"version\": <number>}}: {e}"))
    })?;
    state
        .lockstep
        .set_alias(&name, &alias, request.version)
        .await?;
    Ok(Json(
        json!({ "name": name, "alias": alias, "version": request.version }),
    ))
}

#[utoipa::path(
    post,
    path = "/plan",
    tag = "definitions",
    request_body(content = String, content_type = "application/toml", description = "The definitions file"),
    responses(
        (status = 200, description = "What an apply would change", body = Object),
    )
)]
async fn plan(
    State(state): Shared,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let outcome = state.lockstep.plan(&text(body(bytes)?)?).await?;
    Ok(Json(outcome))
}

#[utoipa::path(
    post,
    path = "/apply",
    tag = "definitions",
    request_body(content = String, content_type = "application/toml", description = "The definitions file"),
    responses(
        (status = 200, description = "What changed, each object with its new version", body = Object),
    )
)]
async fn apply(
    State(state): Shared,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let outcome = state.lockstep.apply(&text(body(bytes)?)?).await?;
    Ok(Json(outcome))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectQuery {
    project: Option<String>,
}

#[utoipa::path(
    get,
    path = "/definitions",
    tag = "definitions",
    params(("project" = Option<String>, Query, description = "The project; by default the configured one, else the only one (`ambiguous_project` among several)")),
    responses(
        (status = 200, description = "The applied definitions, resolved", body = Object),
    )
)]
async fn definitions(
    State(state): Shared,
    Query(query): Query<ProjectQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let project = state.lockstep.project(query.project.as_deref()).await?;
    state.lockstep.check_project(&project).await?;
    let resolved = state.lockstep.definitions(&project).await?;
    Ok(Json(resolved))
}

/// `GET /projects`: the projects with definitions applied, and the one requests naming
/// none go to (null when that depends on which projects exist and there are several).
#[utoipa::path(
    get,
    path = "/projects",
    tag = "definitions",
    responses(
        (status = 200, description = "`{\"projects\": [{\"name\", \"entities\", \"sources\", \"feature_views\", \"on_demand_views\", \"feature_services\"}], \"default\"}`", body = Object),
    )
)]
async fn projects(State(state): Shared) -> Result<impl IntoResponse, ApiError> {
    let projects = state.lockstep.projects().await?;
    let default = state.lockstep.project(None).await.ok();
    Ok(Json(json!({ "projects": projects, "default": default })))
}

/// `DELETE /projects/{name}`: deletes the project's definitions (its stored data stays).
#[utoipa::path(
    delete,
    path = "/projects/{name}",
    tag = "definitions",
    params(("name" = String, Path, description = "The project")),
    responses(
        (status = 200, description = "`{\"project\", \"report\"}`: the definitions deleted", body = Object),
        (status = "4XX", description = "Refused: `unknown_project` names the projects there are", body = ErrorResponse),
    )
)]
async fn delete_project(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let report = state.lockstep.delete_project(&name).await?;
    Ok(Json(json!({ "project": name, "report": report })))
}
