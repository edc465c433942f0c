//! Feast's wire conventions on the routes Feast clients call: the `get-online-features` body
//! Feast's remote online store sends, and Feast's error shape, which its client turns back
//! into a `feast.errors` exception.
//!
//! Feast's feature server answers an error with a JSON *string* holding
//! `{"module", "class", "message"}` (`FeastError.to_error_detail`), and Feast's client
//! (`feast/rest_error_handler.py`) decodes that string, imports the class and raises it; any
//! other body becomes a bare `RuntimeError`. So on [`ROUTES`] every error answer — the
//! handler's, the token check's, the body limit's, the deadline's — is re-shaped here, with
//! Lockstep's stable code kept twice: as the message's prefix (what a Feast user reads) and
//! as the `error` object beside Feast's fields (what a program reads).

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::Answered;
use super::json::{JsonColumns, JsonEntities};
use crate::pipeline::OnlineRequest;

/// The routes Feast's feature server also serves: their error answers take Feast's shape.
pub const ROUTES: &[&str] = &[
    "/get-online-features",
    "/push",
    "/write-to-online-store",
    "/materialize",
    "/materialize-incremental",
];

/// The module of every class named in an error answer; Feast's client imports it.
const MODULE: &str = "feast.errors";

/// A `POST /get-online-features` body: the fields of Feast's `GetOnlineFeaturesRequest`
/// (every one its remote online store sends) and Lockstep's `project`. Any other field is
/// refused (`invalid_body`), so a misspelt one is never silently ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetOnlineFeaturesBody {
    /// Join keys and request fields, column by column: `{"user_id": [1, 2]}`.
    #[schema(value_type = Object, example = json!({"user_id": [7, 8], "movie_id": [12, 40]}))]
    pub entities: JsonColumns,
    /// A feature service's name, or…
    #[serde(default)]
    pub feature_service: Option<String>,
    /// …feature references: `view:feature` or `view:*`.
    #[serde(default)]
    pub features: Vec<String>,
    /// Name features `view__feature` instead of `feature`.
    #[serde(default)]
    pub full_feature_names: bool,
    /// Feast's request for each view's version in `metadata.feature_view_metadata`.
    /// Accepted and not used: the answer has no `feature_view_metadata`, which Feast's
    /// client reads as none.
    #[serde(default)]
    pub include_feature_view_version_metadata: bool,
    /// Lockstep's: the project (by default the only one, or `default`).
    #[serde(default)]
    pub project: Option<String>,
}

impl From<GetOnlineFeaturesBody> for OnlineRequest<JsonEntities> {
    fn from(body: GetOnlineFeaturesBody) -> Self {
        OnlineRequest {
            entities: JsonEntities(body.entities),
            feature_service: body.feature_service,
            features: body.features,
            full_feature_names: body.full_feature_names,
            project: body.project,
        }
    }
}

/// Middleware over every route: on [`ROUTES`], an error answer (one carrying [`Answered`])
/// gets Feast's shape, with the same status.
pub async fn errors(request: Request, next: Next) -> Response {
    let feast = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|path| ROUTES.contains(&path.as_str()));
    let response = next.run(request).await;
    if !feast {
        return response;
    }
    let Some(answered) = response.extensions().get::<Answered>().cloned() else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body(&answered).0))
}

/// An error answer on Feast's routes: a JSON string whose text is
/// `{"module": "feast.errors", "class", "message": "<code>: <message>", "error": {"code", "message"}}`;
/// Feast's client raises `class` with `message`.
#[derive(ToSchema)]
#[schema(
    example = "{\"module\": \"feast.errors\", \"class\": \"FeastError\", \"message\": \"invalid_feature_request: give either a feature service or a list of features\", \"error\": {\"code\": \"invalid_feature_request\", \"message\": \"give either a feature service or a list of features\"}}"
)]
pub struct FeastErrorBody(String);

/// Feast's error body for `answered`: a JSON string whose text is the detail document.
pub fn body(answered: &Answered) -> FeastErrorBody {
    #[derive(Serialize)]
    struct Error<'a> {
        code: &'a str,
        message: &'a str,
    }
    #[derive(Serialize)]
    struct Detail<'a> {
        module: &'static str,
        class: &'static str,
        message: String,
        error: Error<'a>,
    }
    let detail = Detail {
        module: MODULE,
        class: class(answered.code),
        message: format!("{}: {}", answered.code, answered.message),
        error: Error {
            code: answered.code,
            message: &answered.message,
        },
    };
    let text = serde_json::to_string(&detail).expect("an error detail serializes");
    FeastErrorBody(serde_json::to_string(&text).expect("a string serializes"))
}

/// The `feast.errors` class raised for a code: Feast's own class where one means the same,
/// else `FeastError`, the base class of every Feast error.
pub fn class(code: &str) -> &'static str {
    match code {
        "unauthorized" | "forbidden" => "FeastPermissionError",
        "unknown_project" => "ProjectNotFoundException",
        "not_found" => "FeastObjectNotFoundException",
        _ => "FeastError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_a_json_string_holding_feasts_detail_and_the_code() {
        let answered = Answered {
            code: "invalid_feature_request",
            message: "no view \"x\"".to_owned(),
        };
        let outer: serde_json::Value = serde_json::from_str(&body(&answered).0).unwrap();
        let detail: serde_json::Value =
            serde_json::from_str(outer.as_str().expect("a JSON string")).unwrap();
        assert_eq!(
            detail,
            serde_json::json!({
                "module": "feast.errors",
                "class": "FeastError",
                "message": "invalid_feature_request: no view \"x\"",
                "error": {"code": "invalid_feature_request", "message": "no view \"x\""},
            })
        );
        assert_eq!(class("forbidden"), "FeastPermissionError");
        assert_eq!(class("unknown_project"), "ProjectNotFoundException");
    }

    #[test]
    fn feasts_fields_are_accepted_and_others_refused() {
        let sent = serde_json::json!({
            "entities": {"user_id": [1]},
            "features": ["v:f"],
            "full_feature_names": true,
            "include_feature_view_version_metadata": true,
        });
        let body: GetOnlineFeaturesBody = serde_json::from_value(sent).unwrap();
        let request = OnlineRequest::<JsonEntities>::from(body);
        assert_eq!(request.features, ["v:f"]);
        assert!(request.full_feature_names);
        let misspelt = serde_json::json!({"entities": {}, "feature": ["v:f"]});
        let error = serde_json::from_value::<GetOnlineFeaturesBody>(misspelt).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `feature`"),
            "{error}"
        );
    }
}
