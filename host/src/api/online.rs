//! Online endpoints, in Feast's request and response shapes so Feast clients
//! (`online_store: {type: remote}`) work unchanged: `get-online-features` (column-oriented
//! answer), `push`, `write-to-online-store`, `materialize`, `materialize-incremental`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::error::ApiError;
use super::feast::GetOnlineFeaturesBody;
use super::json::{JsonColumn, JsonColumns, JsonTimestamps};
use super::request_error::RequestError;
use super::{Shared, json_body};
use crate::model::parse_timestamp;
use crate::pipeline::{MaterializeRequest, OnlineFeatures, OnlineRequest, PushTarget, Status};

/// Feast's response: `metadata.feature_names[i]` names `results[i]`, join keys first, then
/// the features in the order asked. Serialized straight from the Arrow columns.
#[derive(Serialize, ToSchema)]
pub struct OnlineResponse<'a> {
    metadata: Metadata<'a>,
    results: Vec<FeatureColumn<'a>>,
}

#[derive(Serialize, ToSchema)]
struct Metadata<'a> {
    #[schema(example = json!(["user_id", "avg_rating"]))]
    feature_names: Vec<&'a str>,
}

/// One column: a value, a status and an event time per entity row.
#[derive(Serialize, ToSchema)]
struct FeatureColumn<'a> {
    /// The values, typed as the feature is (null when not present).
    #[schema(value_type = Vec<Object>, example = json!([7, 8]))]
    values: JsonColumn<'a>,
    /// `PRESENT`, `NOT_FOUND`, `NULL_VALUE` or `OUTSIDE_MAX_AGE` per row.
    #[schema(value_type = Vec<String>, example = json!(["PRESENT", "NOT_FOUND"]))]
    statuses: &'a [Status],
    /// RFC 3339: each value's event time (the epoch for join keys and on-demand features).
    #[schema(value_type = Vec<String>)]
    event_timestamps: JsonTimestamps<'a>,
}

impl<'a> OnlineResponse<'a> {
    fn of(features: &'a OnlineFeatures) -> Self {
        let columns = &features.columns;
        OnlineResponse {
            metadata: Metadata {
                feature_names: columns.iter().map(|c| c.name.as_str()).collect(),
            },
            results: columns
                .iter()
                .map(|column| FeatureColumn {
                    values: JsonColumn(column.values.as_ref()),
                    statuses: &column.statuses,
                    event_timestamps: JsonTimestamps(&column.event_ts),
                })
                .collect(),
        }
    }
}

/// `POST /get-online-features`.
#[utoipa::path(
    post,
    path = "/get-online-features",
    tag = "feast",
    request_body = GetOnlineFeaturesBody,
    responses(
        (status = 200, description = "Feast's column-oriented answer", body = OnlineResponse),
    )
)]
pub async fn get_online_features(
    State(state): Shared,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body: GetOnlineFeaturesBody = json_body(
        bytes,
        r#"{"entities": {"user_id": [1, 2]}, "feature_service": "..." | "features": ["view:feature"], "full_feature_names"?: false, "include_feature_view_version_metadata"?: false, "project"?: "..."}"#,
    )?;
    let features = state
        .lockstep
        .get_online_features(&OnlineRequest::<super::json::JsonEntities>::from(body))
        .await?;
    Ok(Json(OnlineResponse::of(&features)).into_response())
}

/// `POST /push`'s body, Feast's.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PushBody {
    /// The source the rows are of.
    push_source_name: String,
    /// The rows, column by column: `{"user_id": [7], "event_timestamp": ["2026-11-22T10:00:00Z"]}`.
    #[schema(value_type = Object)]
    df: JsonColumns,
    /// `online`, `offline` or `online_and_offline` (the default).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    to: PushTarget,
    /// Feast's; definitions are always served from the cache here.
    #[serde(default)]
    #[allow(dead_code)]
    allow_registry_cache: Option<bool>,
    /// Lockstep's: the project (by default the only one, or `default`).
    #[serde(default)]
    project: Option<String>,
}

/// `POST /push`: source rows through their views' transforms into the stores.
#[utoipa::path(
    post,
    path = "/push",
    tag = "feast",
    request_body = PushBody,
    responses(
        (status = 200, description = "`{\"views\": [...]}`: rows computed and written per view", body = Object),
    )
)]
pub async fn push(
    State(state): Shared,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body: PushBody = json_body(
        bytes,
        r#"{"push_source_name": "...", "df": {"column": [values]}, "to"?: "online" | "offline" | "online_and_offline"}"#,
    )?;
    let views = super::json::push(
        &state.lockstep,
        body.project.as_deref(),
        &body.push_source_name,
        &body.df,
        body.to,
    )
    .await?;
    Ok(Json(json!({ "views": views })))
}

/// `POST /write-to-online-store`'s body, Feast's.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WriteBody {
    /// A view without a transform.
    feature_view_name: String,
    /// Its join keys, features and `event_timestamp`, column by column.
    #[schema(value_type = Object)]
    df: JsonColumns,
    #[serde(default)]
    #[allow(dead_code)]
    allow_registry_cache: Option<bool>,
    /// Lockstep's: the project (by default the only one, or `default`).
    #[serde(default)]
    project: Option<String>,
}

/// `POST /write-to-online-store`: computed feature rows of a view without a transform.
#[utoipa::path(
    post,
    path = "/write-to-online-store",
    tag = "feast",
    request_body = WriteBody,
    responses(
        (status = 200, description = "`{\"view\": ...}`: the rows written", body = Object),
    )
)]
pub async fn write_to_online_store(
    State(state): Shared,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body: WriteBody = json_body(
        bytes,
        r#"{"feature_view_name": "...", "df": {"column": [values]}}"#,
    )?;
    let view = super::json::write_to_online_store(
        &state.lockstep,
        body.project.as_deref(),
        &body.feature_view_name,
        &body.df,
    )
    .await?;
    Ok(Json(json!({ "view": view })))
}

/// The materialize endpoints' body, Feast's.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MaterializeBody {
    /// RFC 3339 or a date; not with `materialize-incremental`.
    #[serde(default)]
    start_ts: Option<String>,
    /// RFC 3339 or a date.
    #[serde(default)]
    end_ts: Option<String>,
    /// The views; by default every online view.
    #[serde(default)]
    feature_views: Option<Vec<String>>,
    /// Lockstep's: the project (by default the only one, or `default`).
    #[serde(default)]
    project: Option<String>,
}

fn time(text: &Option<String>) -> Result<Option<i64>, ApiError> {
    text.as_deref()
        .map(parse_timestamp)
        .transpose()
        .map_err(|message| RequestError::InvalidBody(message).into())
}

async fn materialize_with(
    state: Shared,
    bytes: Result<Bytes, BytesRejection>,
    incremental: bool,
) -> Result<impl IntoResponse, ApiError> {
    let State(state) = state;
    let body: MaterializeBody = json_body(
        bytes,
        r#"{"start_ts": "2026-01-01T00:00:00Z", "end_ts": "...", "feature_views"?: ["..."]}"#,
    )?;
    if incremental && body.start_ts.is_some() {
        return Err(RequestError::InvalidBody(
            "an incremental materialization starts where the last ended: no start_ts".to_owned(),
        )
        .into());
    }
    let request = MaterializeRequest {
        project: body.project,
        views: body.feature_views.unwrap_or_default(),
        from: time(&body.start_ts)?,
        to: time(&body.end_ts)?,
        incremental,
    };
    let views = state.lockstep.materialize(&request, &|_| {}).await?;
    Ok(Json(json!({ "views": views })))
}

/// `POST /materialize`: `[start_ts, end_ts)` of the given (or every online) view.
#[utoipa::path(
    post,
    path = "/materialize",
    tag = "feast",
    request_body = MaterializeBody,
    responses(
        (status = 200, description = "`{\"views\": [...]}`: rows materialized per view", body = Object),
    )
)]
pub async fn materialize(
    state: Shared,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    materialize_with(state, bytes, false).await
}

/// `POST /materialize-incremental`: from where each view's last run ended to `end_ts`.
#[utoipa::path(
    post,
    path = "/materialize-incremental",
    tag = "feast",
    request_body = MaterializeBody,
    responses(
        (status = 200, description = "`{\"views\": [...]}`: rows materialized per view", body = Object),
    )
)]
pub async fn materialize_incremental(
    state: Shared,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    materialize_with(state, bytes, true).await
}
