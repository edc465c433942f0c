//! Offline endpoints: start a backfill job (it runs in the background; poll its status),
//! list and show jobs, and build a training set from entity rows sent as JSON columns
//! (answered as JSON columns, or as a Parquet file when asked for one).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorResponse};
use super::extract::Path;
use super::{Shared, json_body};
use crate::columnar::{arrow_schema, from_json, to_json};
use crate::model::{FieldSpec, parse_timestamp};
use crate::pipeline::{BackfillRequest, TrainingSetRequest};

/// Media type of a Parquet response.
const PARQUET: &str = "application/vnd.apache.parquet";

/// `POST /backfills`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BackfillBody {
    /// The view to backfill.
    view: String,
    /// The project (by default the only one, or `default`).
    #[serde(default)]
    project: Option<String>,
    /// RFC 3339 or a date.
    #[serde(default)]
    from: Option<String>,
    /// RFC 3339 or a date.
    #[serde(default)]
    to: Option<String>,
    /// Start a new job instead of resuming the one planned for the same window.
    #[serde(default)]
    fresh: bool,
}

/// `POST /backfills`: plans (or finds) the job, then works on it in the background.
#[utoipa::path(
    post,
    path = "/backfills",
    tag = "offline",
    request_body = BackfillBody,
    responses(
        (status = 202, description = "`{\"job\": ...}`: the job, running in the background", body = Object),
        (status = "4XX", description = "Refused: the error's code says why", body = ErrorResponse),
        (status = "5XX", description = "Unavailable (503, retry later) or a bug (500)", body = ErrorResponse),
    )
)]
pub async fn start_backfill(
    State(state): Shared,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let request: BackfillBody = json_body(
        bytes,
        r#"{"view": "...", "from"?: "2026-01-01", "to"?: "...", "fresh"?: false}"#,
    )?;
    let time = |text: &Option<String>| {
        text.as_deref()
            .map(parse_timestamp)
            .transpose()
            .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message))
    };
    let request = BackfillRequest {
        project: request.project,
        view: request.view,
        from: time(&request.from)?,
        to: time(&request.to)?,
        fresh: request.fresh,
    };
    let planned = state.lockstep.plan_backfill(&request).await?;
    let job = planned.job.clone();
    if !job.is_complete() {
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            match state.lockstep.run_backfill(&planned, &|_| {}).await {
                Ok(summary) => tracing::info!(
                    job = summary.job.id,
                    rows = summary.rows_in,
                    seconds = summary.seconds,
                    "backfill finished"
                ),
                Err(error) => tracing::warn!(job = planned.job.id, %error, "backfill failed"),
            }
        });
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": job }))))
}

/// `GET /backfills`: recent jobs, newest first.
#[utoipa::path(
    get,
    path = "/backfills",
    tag = "offline",
    responses(
        (status = 200, description = "`{\"jobs\": [...]}`: chunks done, running and total, rows in, out and rejected, the last error", body = Object),
        (status = "4XX", description = "Refused: the error's code says why", body = ErrorResponse),
        (status = "5XX", description = "Unavailable (503, retry later) or a bug (500)", body = ErrorResponse),
    )
)]
pub async fn list_backfills(State(state): Shared) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        json!({ "jobs": state.lockstep.offline().jobs(50).await? }),
    ))
}

/// `GET /backfills/{id}`.
#[utoipa::path(
    get,
    path = "/backfills/{id}",
    tag = "offline",
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = Object),
        (status = "4XX", description = "Refused: the error's code says why", body = ErrorResponse),
        (status = "5XX", description = "Unavailable (503, retry later) or a bug (500)", body = ErrorResponse),
    )
)]
pub async fn show_backfill(
    State(state): Shared,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.lockstep.offline().job(id).await?))
}

/// `POST /training-set`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TrainingSetBody {
    /// The project (by default the only one, or `default`).
    #[serde(default)]
    project: Option<String>,
    /// A feature service's name, or…
    #[serde(default)]
    feature_service: Option<String>,
    /// …feature references: `view:feature` or `view:*`.
    #[serde(default)]
    features: Vec<String>,
    /// Name feature columns `view__feature` instead of `feature`.
    #[serde(default)]
    full_feature_names: bool,
    /// The entity rows' time column; `event_timestamp` by default.
    #[serde(default)]
    timestamp_column: Option<String>,
    /// Entity rows by column: join keys, the timestamp column, request fields.
    #[schema(value_type = Object, example = json!({"user_id": [7], "event_timestamp": ["2026-01-20T00:00:00Z"]}))]
    entities: BTreeMap<String, Vec<serde_json::Value>>,
}

/// `POST /training-set`: entity rows in, features joined as of each row's time out.
#[utoipa::path(
    post,
    path = "/training-set",
    tag = "offline",
    request_body = TrainingSetBody,
    responses(
        (status = 200, description = "`{\"rows\", \"columns\": {\"column\": [values]}, \"seconds\"}`, or a Parquet file with `Accept: application/vnd.apache.parquet`", body = Object),
        (status = "4XX", description = "Refused: the error's code says why", body = ErrorResponse),
        (status = "5XX", description = "Unavailable (503, retry later) or a bug (500)", body = ErrorResponse),
    )
)]
pub async fn training_set(
    State(state): Shared,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: TrainingSetBody = json_body(
        bytes,
        r#"{"feature_service": "..." | "features": ["view:feature"], "entities": {"column": [values]}}"#,
    )?;
    let request = TrainingSetRequest {
        project: body.project,
        feature_service: body.feature_service,
        features: body.features,
        full_feature_names: body.full_feature_names,
        timestamp_column: body.timestamp_column,
    };
    let (required, optional) = state.lockstep.training_set_columns(&request).await?;
    let entities = entity_batch(&body.entities, &required, &optional)?;
    let set = state.lockstep.training_set(&request, &entities).await?;
    let wants_parquet = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains(PARQUET));
    if wants_parquet {
        let mut bytes = Vec::new();
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, set.batch.schema(), None)
            .map_err(|e| ApiError::internal(&e))?;
        writer
            .write(&set.batch)
            .map_err(|e| ApiError::internal(&e))?;
        writer.close().map_err(|e| ApiError::internal(&e))?;
        return Ok(([(header::CONTENT_TYPE, PARQUET)], bytes).into_response());
    }
    let columns: serde_json::Map<String, serde_json::Value> = set
        .batch
        .schema()
        .fields()
        .iter()
        .zip(set.batch.columns())
        .map(|(field, array)| {
            let values = (0..array.len())
                .map(|row| to_json(array.as_ref(), row))
                .collect();
            (field.name().clone(), serde_json::Value::Array(values))
        })
        .collect();
    Ok(Json(json!({
        "rows": set.batch.num_rows(),
        "columns": columns,
        "seconds": set.seconds,
    }))
    .into_response())
}

/// The entity columns a training set needs, typed, from JSON columns of equal length.
fn entity_batch(
    columns: &BTreeMap<String, Vec<serde_json::Value>>,
    required: &[FieldSpec],
    optional: &[FieldSpec],
) -> Result<RecordBatch, ApiError> {
    let invalid =
        |message: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_entity_rows", message);
    let rows = columns.values().map(Vec::len).max().unwrap_or(0);
    if let Some((name, values)) = columns.iter().find(|(_, values)| values.len() != rows) {
        return Err(invalid(format!(
            "entity column `{name}` has {} values, others have {rows}",
            values.len()
        )));
    }
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for field in required {
        let values = columns.get(&field.name).ok_or_else(|| {
            invalid(format!(
                "the entity rows need a column `{}` ({})",
                field.name, field.value_type
            ))
        })?;
        arrays.push(from_json(field, values).map_err(invalid)?);
        fields.push(field.clone());
    }
    for field in optional {
        if let Some(values) = columns.get(&field.name) {
            arrays.push(from_json(field, values).map_err(invalid)?);
            fields.push(field.clone());
        }
    }
    RecordBatch::try_new(arrow_schema(&fields), arrays).map_err(|e| invalid(e.to_string()))
}
