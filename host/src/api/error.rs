//! JSON errors of the HTTP API: `{"error": {"code": "snake_case", "message": "…"}}`; on the
//! routes Feast clients call, the same code and message in Feast's shape (`super::feast`).
//!
//! Codes are stable; clients match on them. Every error type says its code and its
//! [`ErrorKind`] ([`Classify`]); [`status`] maps kinds to statuses, the one place that does,
//! and [`ApiError`] is made from any of them the same way. 4xx messages are the error's text,
//! repeating at most [`crate::model::text::ECHO_CHARS`] characters of the request's input;
//! a 5xx never carries internal text: a 503 says to retry later and a 500 is `internal`,
//! the error itself logged instead.
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

use super::request_error::RequestError;
use crate::model::definitions::DefinitionError;
use crate::model::{Classify, ErrorKind};
use crate::pipeline::ApplyError;

/// Longest error message sent; messages echo client input only through
/// [`crate::model::text::echo`], and this caps whatever else they hold.
pub const MAX_MESSAGE_CHARS: usize = 2_000;

/// The message of every 500: what went wrong is in the server log.
const INTERNAL_MESSAGE: &str = "internal error; see the server log";

/// The HTTP status of each kind of error.
pub fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Refused => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error response, made from any [`Classify`] error (`?` in a handler).
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

impl<E: Classify + 'static> From<E> for ApiError {
    fn from(error: E) -> Self {
        Self::classified(&error)
    }
}

impl ApiError {
    /// The answer to `error`: its kind's status and its code; a 4xx says the error's text
    /// (invalid definitions also each problem in `details`), a 503 only to retry later and
    /// a 500 only `internal`, the error logged instead.
    fn classified(error: &(dyn Classify + 'static)) -> Self {
        let kind = error.kind();
        match kind {
            ErrorKind::Internal => {
                tracing::error!(code = error.code(), %error, "internal error");
                Self::new(status(kind), "internal", INTERNAL_MESSAGE)
            }
            ErrorKind::Unavailable => {
                tracing::warn!(code = error.code(), %error, "unavailable");
                Self::new(
                    status(kind),
                    error.code(),
                    format!("temporarily unavailable ({}); retry later", error.code()),
                )
            }
            _ => match (error as &(dyn std::error::Error + 'static)).downcast_ref() {
                Some(ApplyError::Invalid(errors)) => Self {
                    details: errors.iter().cloned().map(Detail::from).collect(),
                    ..Self::new(status(kind), error.code(), summary(errors))
                },
                _ => Self::new(status(kind), error.code(), error.to_string()),
            },
        }
    }

    /// The answer to a method the route does not take: a bad request, with HTTP's own
    /// status for it.
    pub fn method_not_allowed(method: &str) -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            ..RequestError::MethodNotAllowed(method.to_owned()).into()
        }
    }

    /// An error answer. A message longer than [`MAX_MESSAGE_CHARS`] is cut: whatever a
    /// message repeats of the request, the answer stays small.
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
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
}

/// One line for invalid definitions: the only problem, or how many and the first.
fn summary(errors: &[DefinitionError]) -> String {
    match errors.first() {
        Some(first) if errors.len() == 1 => format!("invalid definitions: {first}"),
        Some(first) => format!(
            "invalid definitions ({} problems); first: {first}",
            errors.len()
        ),
        None => "invalid definitions".to_owned(),
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

impl From<DefinitionError> for Detail {
    fn from(error: DefinitionError) -> Self {
        Self {
            line: error.line,
            path: error.path,
            message: error.message,
        }
    }
}
