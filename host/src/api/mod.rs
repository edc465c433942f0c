//! The HTTP API: `app(state) -> Router` over the pipeline, bearer-token scopes, JSON errors
//! with stable codes, body limits, a request deadline and graceful shutdown.

pub mod auth;
pub mod error;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tower_http::trace::TraceLayer;

use crate::config::ServerConfig;
use crate::model::definitions::DEFAULT_PROJECT;
use crate::pipeline::Lockstep;
use auth::{Access, Scope};
use error::ApiError;

/// What every handler sees.
pub struct AppState {
    pub lockstep: Lockstep,
    pub access: Access,
    pub server: ServerConfig,
}

type Shared = State<Arc<AppState>>;

/// The API router.
pub fn app(state: Arc<AppState>) -> Router {
    let upload_limit = state.lockstep.runtime().config().max_component_bytes;
    let body_limit = state.server.max_body_bytes;
    let timeout = Duration::from_millis(state.server.request_timeout_ms);
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/transforms", get(list_transforms))
        .route(
            "/transforms/{name}",
            get(show_transform).post(upload_transform).layer((
                DefaultBodyLimit::max(upload_limit),
                middleware::from_fn(move |request, next| {
                    declared_length_limit(upload_limit, request, next)
                }),
            )),
        )
        .route("/transforms/{name}/aliases/{alias}", put(set_alias))
        .route("/plan", post(plan))
        .route("/apply", post(apply))
        .route("/definitions", get(definitions))
        .fallback(not_found)
        .layer((
            DefaultBodyLimit::max(body_limit),
            middleware::from_fn(move |request, next| {
                declared_length_limit(body_limit, request, next)
            }),
        ))
        .layer(middleware::from_fn(move |request, next| {
            deadline(timeout, request, next)
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves `state` on `listener` until SIGTERM or Ctrl-C, then stops accepting and lets
/// in-flight requests finish. Clients get `server.header_timeout_ms` to send their headers.
pub async fn serve(state: Arc<AppState>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let header_timeout = Duration::from_millis(state.server.header_timeout_ms);
    let service = TowerToHyperService::new(app(state));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
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
    graceful.shutdown().await;
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

/// Ends a request that runs past the deadline with a JSON 408.
async fn deadline(timeout: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request took longer than {timeout:?}"),
        )
        .into_response(),
    }
}

/// Answers 413 from the `Content-Length` header alone, before any of the body is read;
/// bodies without one are cut off at the same limit while being read.
async fn declared_length_limit(limit: usize, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is {length} bytes, over the {limit}-byte limit"),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

fn authorize(state: &AppState, headers: &HeaderMap, needed: Scope) -> Result<(), ApiError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    Ok(state.access.check(header, needed)?)
}

/// Maps a body rejection (too large, unreadable) to a JSON error.
fn body(result: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    result.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "payload_too_large", rejection.body_text())
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                rejection.body_text(),
            )
        }
    })
}

fn text(bytes: Bytes) -> Result<String, ApiError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the body must be UTF-8 text (a TOML definitions file)",
        )
    })
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(state): Shared) -> Result<Json<serde_json::Value>, ApiError> {
    state.lockstep.ready().await?;
    Ok(Json(json!({ "status": "ready" })))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn list_transforms(
    State(state): Shared,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    Ok(Json(
        json!({ "transforms": state.lockstep.transforms().await? }),
    ))
}

async fn show_transform(
    State(state): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    match state.lockstep.transform(&name).await? {
        Some(summary) => Ok(Json(summary)),
        None => Err(ApiError::not_found(format!("no transform named `{name}`"))),
    }
}

async fn upload_transform(
    State(state): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Write)?;
    let bytes = body(bytes)?;
    let outcome = state.lockstep.upload(&name, bytes.to_vec()).await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(outcome)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    version: u32,
}

async fn set_alias(
    State(state): Shared,
    headers: HeaderMap,
    Path((name, alias)): Path<(String, String)>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Write)?;
    let request: AliasBody = serde_json::from_slice(&body(bytes)?).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("expected {{\"version\": <number>}}: {e}"),
        )
    })?;
    state
        .lockstep
        .set_alias(&name, &alias, request.version)
        .await?;
    Ok(Json(
        json!({ "name": name, "alias": alias, "version": request.version }),
    ))
}

async fn plan(
    State(state): Shared,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let outcome = state.lockstep.plan(&text(body(bytes)?)?).await?;
    Ok(Json(outcome))
}

async fn apply(
    State(state): Shared,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Write)?;
    let outcome = state.lockstep.apply(&text(body(bytes)?)?).await?;
    Ok(Json(outcome))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectQuery {
    project: Option<String>,
}

async fn definitions(
    State(state): Shared,
    headers: HeaderMap,
    Query(query): Query<ProjectQuery>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Scope::Read)?;
    let project = query.project.as_deref().unwrap_or(DEFAULT_PROJECT);
    let resolved = state.lockstep.definitions(project).await?;
    Ok(Json(resolved))
}
