//! JSON errors of the HTTP API: `{"error": {"code": "snake_case", "message": "…"}}`; on the
//! routes Feast clients call, the same code and message in Feast's shape (`super::feast`).
//!
//! Codes are stable; clients match on them. 4xx messages say what was wrong with the
//! request, repeating at most [`crate::model::text::ECHO_CHARS`] characters of its input;
//! a 5xx never carries internal text (it is logged instead).
//!
//! | status | code | when |
//! |---|---|---|
//! | 400 | `ambiguous_project` (several projects, none named), `invalid_path`, `invalid_query`, `invalid_body`, `invalid_name`, `invalid_alias`, `invalid_backfill`, `invalid_feature_request`, `invalid_entity_rows`, `invalid_offline_input`, `invalid_online_input`, `invalid_rows`, `invalid_value` (a pushed value no store may hold: row and column named; nothing written) | malformed request |
//! | 401 | `unauthorized` | missing or unknown bearer token |
//! | 403 | `forbidden` | the token lacks the endpoint's scope |
//! | 404 | `not_found`, `unknown_project`, `unknown_transform_version`, `unknown_view`, `unknown_backfill_job` | no such route, project, transform, version, view or job |
//! | 405 | `method_not_allowed` | the route exists, not with this method |
//! | 409 | `offline_table_conflict` | a view's table exists with other columns |
//! | 409 | `conflict` | other writers kept changing the same online keys (an aggregated view's state) until the retries' deadline; retry |
//! | 413 | `payload_too_large`, `component_too_large` | body over the limit |
//! | 422 | `invalid_definitions` (with `details`), `compile_memory_limit`, and the component codes: `not_wasm`, `not_a_component`, `invalid_component`, `forbidden_import`, `wrong_world`, `invalid_signature`, `transform_out_of_fuel`, `transform_memory_limit`, `transform_stack_overflow`, `transform_panic`, `transform_trap`, `transform_bad_output`, `transform_output_too_large`, `transform_not_row_wise`, … | the content was refused |
//! | 422 | (offline) `source_*` codes of unreadable or forbidden (`source_forbidden`) source data, `invalid_source_rows`, and the `transform_*` codes of a transform failing on stored or pushed rows, `transform_not_row_wise` when a re-check catches one (it is then marked unsafe) and `transform_unsafe` for one marked so | the data was refused |
//! | 503 | `registry_unavailable`, `offline_store_unavailable`, `online_store_unavailable`, `source_postgres`, `runtime_busy`, `compile_timeout`, `request_timeout`, `transform_timeout` | retry later |
//! | 500 | `internal` | a bug; details in the server log |

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Denied;
use crate::model::definitions::DefinitionError;
use crate::offline::OfflineError;
use crate::online::OnlineError;
use crate::pipeline::{
    AliasError, ApplyError, BackfillError, FeatureError, ProjectError, ReadyError, UploadError,
};
use crate::registry::RegistryError;
use crate::runtime::compile::CompileCheckError;
use crate::runtime::{LoadError, RunError};

/// Longest error message sent; messages echo client input only through
/// [`crate::model::text::echo`], and this caps whatever else they hold.
pub const MAX_MESSAGE_CHARS: usize = 2_000;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<Detail>,
}

/// One problem of an invalid definitions file.
#[derive(Debug, Serialize, ToSchema)]
pub struct Detail {
    pub line: Option<usize>,
    pub path: String,
    pub message: String,
}

/// What an error answer said, kept in the response's extensions so a layer can answer in
/// another shape ([`super::feast::errors`]).
#[derive(Debug, Clone)]
pub struct Answered {
    pub code: &'static str,
    pub message: String,
}

/// Every error answer's body (on Feast's routes, re-shaped by [`super::feast::errors`]).
#[derive(Serialize, ToSchema)]
pub struct ErrorResponse<'a> {
    pub error: ErrorBody<'a>,
}

/// An error: its stable code (the table above) and a message for people.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    #[schema(example = "invalid_feature_request")]
    pub code: &'a str,
    pub message: &'a str,
    /// An invalid definitions file's problems, one each.
    #[serde(skip_serializing_if = "<[Detail]>::is_empty")]
    pub details: &'a [Detail],
}

impl ApiError {
    /// An error answer. A message longer than [`MAX_MESSAGE_CHARS`] is cut: whatever a
    /// message repeats of the request, the answer stays small.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
            message.truncate(cut);
            message.push('…');
        }
        Self {
            status,
            code,
            message,
            details: Vec::new(),
        }
    }

    /// A 500 whose cause is logged, never sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// A 503 whose cause is logged, never sent.
    fn unavailable(code: &'static str, what: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(%cause, "{what} unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            format!("{what} is unavailable; retry later"),
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: ErrorBody {
                code: self.code,
                message: &self.message,
                details: &self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(Answered {
            code: self.code,
            message: self.message,
        });
        response
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Unauthenticated => Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required (Authorization: Bearer <token>)",
            ),
            Denied::Forbidden { needed, has } => Self::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this endpoint needs the `{}` scope; the token has `{}`",
                    needed.name(),
                    has.name()
                ),
            ),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::UnknownVersion { .. } => {
                Self::new(StatusCode::NOT_FOUND, error.code(), error.to_string())
            }
            RegistryError::Unavailable(_) | RegistryError::Open(_) | RegistryError::Connect(_) => {
                Self::unavailable(error.code(), "the registry", &error)
            }
            RegistryError::Corrupt(_) => Self::internal(&error),
        }
    }
}

impl From<LoadError> for ApiError {
    fn from(error: LoadError) -> Self {
        match &error {
            LoadError::TooLarge { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                error.code(),
                error.to_string(),
            ),
            LoadError::Internal(_) => Self::internal(&error),
            _ if !error.is_deterministic() => {
                Self::unavailable(error.code(), "the runtime", &error)
            }
            _ => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                error.code(),
                error.to_string(),
            ),
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(error: UploadError) -> Self {
        match error {
            UploadError::InvalidName(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_name", error.to_string())
            }
            UploadError::Rejected(load) => load.into(),
            UploadError::CompileTimeout(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "compile_timeout",
                error.to_string(),
            ),
            UploadError::Compile(CompileCheckError::Worker(_)) => Self::internal(&error),
            UploadError::Compile(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                error.code(),
                error.to_string(),
            ),
            UploadError::Registry(registry) => registry.into(),
        }
    }
}

impl From<ProjectError> for ApiError {
    fn from(error: ProjectError) -> Self {
        match error {
            ProjectError::Unknown { .. } => {
                Self::new(StatusCode::NOT_FOUND, error.code(), error.to_string())
            }
            ProjectError::Ambiguous { .. } => {
                Self::new(StatusCode::BAD_REQUEST, error.code(), error.to_string())
            }
            ProjectError::Registry(registry) => registry.into(),
        }
    }
}

impl From<AliasError> for ApiError {
    fn from(error: AliasError) -> Self {
        match error {
            AliasError::InvalidAlias(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_alias", error.to_string())
            }
            AliasError::Registry(registry) => registry.into(),
        }
    }
}

impl From<ApplyError> for ApiError {
    fn from(error: ApplyError) -> Self {
        match error {
            ApplyError::Invalid(errors) => {
                let summary = match errors.first() {
                    Some(first) if errors.len() == 1 => format!("invalid definitions: {first}"),
                    Some(first) => format!(
                        "invalid definitions ({} problems); first: {first}",
                        errors.len()
                    ),
                    None => "invalid definitions".to_owned(),
                };
                Self {
                    details: errors.into_iter().map(Detail::from).collect(),
                    ..Self::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_definitions",
                        summary,
                    )
                }
            }
            ApplyError::Registry(registry) => registry.into(),
        }
    }
}

impl From<OfflineError> for ApiError {
    fn from(error: OfflineError) -> Self {
        match &error {
            OfflineError::Unavailable(_) | OfflineError::Open(_) | OfflineError::Connect(_) => {
                Self::unavailable(error.code(), "the offline store", &error)
            }
            OfflineError::UnknownJob(_) => {
                Self::new(StatusCode::NOT_FOUND, error.code(), error.to_string())
            }
            OfflineError::Table { .. } => {
                Self::new(StatusCode::CONFLICT, error.code(), error.to_string())
            }
            OfflineError::Input(_) => {
                Self::new(StatusCode::BAD_REQUEST, error.code(), error.to_string())
            }
            OfflineError::Corrupt(_) => Self::internal(&error),
        }
    }
}

impl From<ReadyError> for ApiError {
    fn from(error: ReadyError) -> Self {
        match error {
            ReadyError::Load { error, .. } => error.into(),
            ReadyError::Missing(_) => Self::internal(&error),
            ReadyError::Registry(registry) => registry.into(),
        }
    }
}

/// A transform failing on stored or sent rows: the data's fault (422) unless the runtime
/// was busy or slow (503).
fn transform_failure(context: String, error: &RunError) -> ApiError {
    if error.is_deterministic() {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.code(), context)
    } else {
        ApiError::unavailable(error.code(), "the runtime", &context)
    }
}

impl From<BackfillError> for ApiError {
    fn from(error: BackfillError) -> Self {
        let message = error.to_string();
        match error {
            BackfillError::UnknownView { .. } => {
                Self::new(StatusCode::NOT_FOUND, "unknown_view", message)
            }
            BackfillError::NotOffline(_)
            | BackfillError::NotBatch { .. }
            | BackfillError::EmptyWindow { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_backfill", message)
            }
            BackfillError::Source(source) if source.is_retryable() => {
                Self::unavailable(source.code(), "the source", &source)
            }
            BackfillError::Source(source) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, source.code(), message)
            }
            BackfillError::Offline(offline) => offline.into(),
            BackfillError::Registry(registry) => registry.into(),
            BackfillError::Project(project) => project.into(),
            BackfillError::Ready(ready) => ready.into(),
            BackfillError::Transform { error, .. } => transform_failure(message, &error),
            BackfillError::Rows { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_source_rows",
                message,
            ),
            BackfillError::BadChunk { .. } | BackfillError::Internal(_) => Self::internal(&message),
            BackfillError::Interrupted { .. } => {
                Self::unavailable("backfill_interrupted", "the backfill", &message)
            }
        }
    }
}

impl From<OnlineError> for ApiError {
    fn from(error: OnlineError) -> Self {
        match &error {
            OnlineError::Unavailable(_) | OnlineError::Connect(_) => {
                Self::unavailable(error.code(), "the online store", &error)
            }
            OnlineError::Input(_) => {
                Self::new(StatusCode::BAD_REQUEST, error.code(), error.to_string())
            }
            OnlineError::Conflict(_) => {
                Self::new(StatusCode::CONFLICT, error.code(), error.to_string())
            }
            OnlineError::Corrupt(_) => Self::internal(&error),
        }
    }
}

impl From<FeatureError> for ApiError {
    fn from(error: FeatureError) -> Self {
        let message = error.to_string();
        match error {
            FeatureError::Invalid(_)
            | FeatureError::Entities(_)
            | FeatureError::Rows { .. }
            | FeatureError::InvalidValue { .. } => {
                Self::new(StatusCode::BAD_REQUEST, error.code(), message)
            }
            FeatureError::Registry(registry) => registry.into(),
            FeatureError::Project(project) => project.into(),
            FeatureError::Online(online) => online.into(),
            FeatureError::Offline(offline) => offline.into(),
            FeatureError::Ready(ready) => ready.into(),
            FeatureError::Transform { error, .. } => transform_failure(message, &error),
            FeatureError::Write { .. } => Self::internal(&message),
        }
    }
}

impl From<DefinitionError> for Detail {
    fn from(error: DefinitionError) -> Self {
        Self {
            line: error.line,
            path: error.path,
            message: error.message,
        }
    }
}
