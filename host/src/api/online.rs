//! Online endpoints, in Feast's request and response shapes so Feast clients
//! (`online_store: {type: remote}`) work unchanged: `get-online-features` (column-oriented
//! answer), `push`, `write-to-online-store`, `materialize`, `materialize-incremental`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::ApiError;
use super::feast::GetOnlineFeaturesBody;
use super::{Shared, json_body};
use crate::columnar::{JsonColumn, JsonTimestamps};
use crate::model::parse_timestamp;
use crate::pipeline::{
    Columns, MaterializeRequest, OnlineFeatures, OnlineRequest, PushTarget, Status,
};

/// Feast's response: `metadata.feature_names[i]` names `results[i]`. Serialized straight
/// from the Arrow columns.
struct OnlineResponse(OnlineFeatures);

impl Serialize for OnlineResponse {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Metadata<'a> {
            feature_names: Vec<&'a str>,
        }
        #[derive(Serialize)]
        struct Column<'a> {
            values: JsonColumn<'a>,
            statuses: &'a [Status],
            event_timestamps: JsonTimestamps<'a>,
        }
        #[derive(Serialize)]
        struct Response<'a> {
            metadata: Metadata<'a>,
            results: Vec<Column<'a>>,
        }
        let columns = &self.0.columns;
        Response {
            metadata: Metadata {
                feature_names: columns.iter().map(|c| c.name.as_str()).collect(),
            },
            results: columns
                .iter()
                .map(|column| Column {
                    values: JsonColumn(column.values.as_ref()),
                    statuses: &column.statuses,
                    event_timestamps: JsonTimestamps(&column.event_ts),
                })
                .collect(),
        }
        .serialize(serializer)
    }
}

/// `POST /get-online-features`.
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
        .get_online_features(&OnlineRequest::from(body))
        .await?;
    Ok(Json(OnlineResponse(features)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushBody {
    push_source_name: String,
    df: Columns,
    #[serde(default)]
    to: PushTarget,
    /// Feast's; definitions are always served from the cache here.
    #[serde(default)]
    #[allow(dead_code)]
    allow_registry_cache: Option<bool>,
    #[serde(default)]
    project: Option<String>,
}

/// `POST /push`: source rows through their views' transforms into the stores.
pub async fn push(
    State(state): Shared,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body: PushBody = json_body(
        bytes,
        r#"{"push_source_name": "...", "df": {"column": [values]}, "to"?: "online" | "offline" | "online_and_offline"}"#,
    )?;
    let views = state
        .lockstep
        .push(
            body.project.as_deref(),
            &body.push_source_name,
            &body.df,
            body.to,
        )
        .await?;
    Ok(Json(json!({ "views": views })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBody {
    feature_view_name: String,
    df: Columns,
    #[serde(default)]
    #[allow(dead_code)]
    allow_registry_cache: Option<bool>,
    #[serde(default)]
    project: Option<String>,
}

/// `POST /write-to-online-store`: computed feature rows of a view without a transform.
pub async fn write_to_online_store(
    State(state): Shared,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body: WriteBody = json_body(
        bytes,
        r#"{"feature_view_name": "...", "df": {"column": [values]}}"#,
    )?;
    let view = state
        .lockstep
        .write_to_online_store(body.project.as_deref(), &body.feature_view_name, &body.df)
        .await?;
    Ok(Json(json!({ "view": view })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaterializeBody {
    #[serde(default)]
    start_ts: Option<String>,
    #[serde(default)]
    end_ts: Option<String>,
    #[serde(default)]
    feature_views: Option<Vec<String>>,
    #[serde(default)]
    project: Option<String>,
}

fn time(text: &Option<String>) -> Result<Option<i64>, ApiError> {
    text.as_deref()
        .map(parse_timestamp)
        .transpose()
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message))
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
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "an incremental materialization starts where the last ended: no start_ts",
        ));
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
pub async fn materialize(
    state: Shared,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    materialize_with(state, bytes, false).await
}

/// `POST /materialize-incremental`: from where each view's last run ended to `end_ts`.
pub async fn materialize_incremental(
    state: Shared,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    materialize_with(state, bytes, true).await
}
