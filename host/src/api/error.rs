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
//! | 405 | `method_not_allowed` | the route exists, not with this method (a bad request, with HTTP's own status) |
//! | 409 | `offline_table_conflict` | a view's table exists with other columns |
//! | 409 | `conflict` | other writers kept changing the same online keys (an aggregated view's state) until the retries' deadline; retry |
//! | 413 | `payload_too_large`, `component_too_large` | body over the limit |
//! | 422 | `invalid_definitions` (with `details`), `compile_memory_limit`, and the component codes: `not_wasm`, `not_a_component`, `invalid_component`, `forbidden_import`, `wrong_world`, `invalid_signature`, `transform_out_of_fuel`, `transform_memory_limit`, `transform_stack_overflow`, `transform_panic`, `transform_trap`, `transform_bad_output`, `transform_output_too_large`, `transform_not_row_wise`, … | the content was refused |
//! | 422 | (offline) `source_*` codes of unreadable or forbidden (`source_forbidden`) source data, `invalid_source_rows`, and the `transform_*` codes of a transform failing on stored or pushed rows, `transform_not_row_wise` when a re-check catches one (it is then marked unsafe) and `transform_unsafe` for one marked so | the data was refused |
//! | 503 | `registry_unavailable`, `offline_store_unavailable`, `online_store_unavailable`, `source_postgres`, `runtime_busy`, `compile_timeout`, `request_timeout`, `transform_timeout`, `transform_not_loaded`, `backfill_interrupted` | retry later; the message says only that |
//! | 500 | `internal` | a bug (a task that panicked, stored data or definitions that no longer read, a host-side Arrow or Parquet failure, a runtime failure); the error's own code and text only in the server log |

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

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;
    use crate::model::Digest;
    use crate::pipeline::{BackfillError, FeatureError, ReadyError, UploadError};
    use crate::registry::RegistryError;
    use crate::runtime::{LoadError, RunError};

    /// The status of every kind; the `match` stops compiling when a kind is added.
    #[test]
    fn every_kind_maps_to_its_status() {
        let table = [
            (ErrorKind::BadRequest, 400),
            (ErrorKind::Unauthorized, 401),
            (ErrorKind::Forbidden, 403),
            (ErrorKind::NotFound, 404),
            (ErrorKind::Conflict, 409),
            (ErrorKind::TooLarge, 413),
            (ErrorKind::Refused, 422),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::Internal, 500),
        ];
        for (kind, expected) in table {
            match kind {
                ErrorKind::BadRequest
                | ErrorKind::Unauthorized
                | ErrorKind::Forbidden
                | ErrorKind::NotFound
                | ErrorKind::Conflict
                | ErrorKind::TooLarge
                | ErrorKind::Refused
                | ErrorKind::Unavailable
                | ErrorKind::Internal => {}
            }
            assert_eq!(status(kind).as_u16(), expected, "{kind:?}");
        }
    }

    /// The status, code and whole body text of `error`'s answer.
    async fn answer(error: impl Into<ApiError>) -> (u16, &'static str, String) {
        let error = error.into();
        let code = error.code;
        let response = error.into_response();
        let status = response.status().as_u16();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, code, String::from_utf8(body.to_vec()).unwrap())
    }

    const SECRET: &str = "host-only detail 10.1.2.3";

    /// Host failures that were once 400 `invalid_feature_request` (a panicked join task,
    /// definitions that no longer resolve, an Arrow kernel failing) and the other bugs:
    /// 500 `internal`, nothing of the failure in the body.
    #[tokio::test]
    async fn internal_failures_are_500_internal_without_their_text() {
        let failures: Vec<ApiError> = vec![
            FeatureError::Internal(format!("the aggregation join failed: {SECRET}")).into(),
            FeatureError::Internal(format!(
                "the applied definitions no longer resolve: {SECRET}"
            ))
            .into(),
            FeatureError::Transform {
                view: "v".into(),
                error: RunError::Internal(SECRET.into()),
            }
            .into(),
            FeatureError::Ready(ReadyError::Missing(Digest::of(SECRET.as_bytes()))).into(),
            FeatureError::Write {
                path: SECRET.into(),
                message: SECRET.into(),
            }
            .into(),
            BackfillError::Internal(SECRET.into()).into(),
            UploadError::Rejected(LoadError::Internal(SECRET.into())).into(),
            RegistryError::Corrupt(SECRET.into()).into(),
            RequestError::Internal(SECRET.into()).into(),
        ];
        for failure in failures {
            let (status, code, body) = answer(failure).await;
            assert_eq!((status, code), (500, "internal"), "{body}");
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                body,
                serde_json::json!({"error": {"code": "internal", "message": INTERNAL_MESSAGE}})
            );
        }
    }

    /// A 503 keeps its code and says to retry later, nothing of the cause.
    #[tokio::test]
    async fn unavailable_is_503_with_its_code_and_no_cause() {
        let (status, code, body) = answer(RegistryError::Unavailable(SECRET.into())).await;
        assert_eq!((status, code), (503, "registry_unavailable"), "{body}");
        assert!(!body.contains(SECRET), "{body}");
        let (status, code, body) = answer(FeatureError::Transform {
            view: "v".into(),
            error: RunError::Busy(SECRET.into()),
        })
        .await;
        assert_eq!((status, code), (503, "runtime_busy"), "{body}");
        assert!(!body.contains(SECRET), "{body}");
    }

    /// Client mistakes stay 4xx with the error's text.
    #[tokio::test]
    async fn client_mistakes_keep_their_code_and_text() {
        let (status, code, body) = answer(FeatureError::Invalid(
            "give either a feature service".into(),
        ))
        .await;
        assert_eq!((status, code), (400, "invalid_feature_request"));
        assert!(body.contains("give either a feature service"), "{body}");
        let (status, code, _) = answer(FeatureError::Transform {
            view: "v".into(),
            error: RunError::OutOfFuel { budget: 1, rows: 1 },
        })
        .await;
        assert_eq!((status, code), (422, "transform_out_of_fuel"));
        let (status, code, _) = answer(LoadError::TooLarge { size: 2, limit: 1 }).await;
        assert_eq!((status, code), (413, "component_too_large"));
        let (status, code, _) = answer(ApiError::method_not_allowed("PATCH")).await;
        assert_eq!((status, code), (405, "method_not_allowed"));
    }

    /// Invalid definitions: 422, a one-line summary and each problem in `details`.
    #[tokio::test]
    async fn invalid_definitions_carry_details() {
        let errors = vec![
            DefinitionError {
                line: Some(3),
                ..DefinitionError::new("feature_views.v.transform", "unknown transform `t`")
            },
            DefinitionError::new("sources.s", "no path"),
        ];
        let (status, code, body) = answer(ApplyError::Invalid(errors)).await;
        assert_eq!((status, code), (422, "invalid_definitions"));
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body["error"]["message"],
            "invalid definitions (2 problems); first: line 3: feature_views.v.transform: unknown transform `t`"
        );
        assert_eq!(body["error"]["details"][1]["path"], "sources.s");
        assert_eq!(body["error"]["details"][0]["line"], 3);
    }
}
