//! Offline endpoints: start a backfill job (it runs in the background; poll its status),
//! list and show jobs, and build a training set from entity rows sent as JSON columns
//! (answered as JSON columns, or as a Parquet file when asked for one).

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

use super::error::ApiError;
use super::extract::Path;
use super::extract::Query;
use super::json::{JsonColumn, from_json, infer_json_type};
use super::request_error::RequestError;
use super::{Shared, body, json_body};
use crate::model::arrow_schema;
use crate::model::text::echo;
use crate::model::{FieldSpec, parse_timestamp};
use crate::pipeline::{BackfillRequest, TrainingSetRequest};
use crate::source::{EntityColumns, parquet_entity_rows};
use indexmap::IndexMap;

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
            .map_err(RequestError::InvalidBody)
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
    /// Entity rows by column: join keys, the timestamp column, request fields, and any
    /// other column (labels, row ids), which comes back unchanged and in order.
    #[schema(value_type = Object, example = json!({"user_id": [7], "event_timestamp": ["2026-01-20T00:00:00Z"], "is_fraud": [true]}))]
    entities: IndexMap<String, Vec<serde_json::Value>>,
}

/// The request of a training set whose entity rows are a Parquet body.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TrainingSetQuery {
    /// The project (with a Parquet body only).
    #[serde(default)]
    project: Option<String>,
    /// A feature service's name, or…
    #[serde(default)]
    feature_service: Option<String>,
    /// …comma-separated feature references.
    #[serde(default)]
    features: Option<String>,
    /// Name feature columns `view__feature`.
    #[serde(default)]
    full_feature_names: bool,
    /// The entity rows' time column; `event_timestamp` by default.
    #[serde(default)]
    timestamp_column: Option<String>,
}

impl From<TrainingSetQuery> for TrainingSetRequest {
    fn from(query: TrainingSetQuery) -> Self {
        TrainingSetRequest {
            project: query.project,
            feature_service: query.feature_service,
            features: query
                .features
                .iter()
                .flat_map(|list| list.split(','))
                .map(|reference| reference.trim().to_owned())
                .filter(|reference| !reference.is_empty())
                .collect(),
            full_feature_names: query.full_feature_names,
            timestamp_column: query.timestamp_column,
        }
    }
}

/// `POST /training-set`: entity rows in — a JSON body, or a Parquet body
/// (`Content-Type: application/vnd.apache.parquet`, the request in the query string) —
/// and every entity column back, in order, with the features joined as of each row's time.
#[utoipa::path(
    post,
    path = "/training-set",
    tag = "offline",
    params(TrainingSetQuery),
    request_body(
        content(
            (TrainingSetBody = "application/json"),
            (Vec<u8> = "application/vnd.apache.parquet"),
        ),
        description = "Entity rows as JSON columns with the request, or a Parquet file with the request in the query string"
    ),
    responses(
        (status = 200, description = "`{\"rows\", \"columns\": {\"column\": [values]}, \"seconds\"}`, or a Parquet file with `Accept: application/vnd.apache.parquet`", body = Object),
    )
)]
pub async fn training_set(
    State(state): Shared,
    Query(query): Query<TrainingSetQuery>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let is = |name: header::HeaderName, media: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.contains(media))
    };
    let (request, entities) = if is(header::CONTENT_TYPE, PARQUET) {
        let request = TrainingSetRequest::from(query);
        let (required, optional) = state.lockstep.training_set_columns(&request).await?;
        let bytes = body(bytes)?;
        let entities = tokio::task::spawn_blocking(move || {
            parquet_entity_rows(
                "the entity rows",
                bytes,
                EntityColumns {
                    required: &required,
                    optional: &optional,
                },
            )
        })
        .await
        .map_err(|e| RequestError::Internal(format!("reading the entity rows: {e}")))?
        .map_err(|e| RequestError::InvalidEntityRows(e.to_string()))?;
        (request, entities)
    } else {
        if query.project.is_some()
            || query.feature_service.is_some()
            || query.features.is_some()
            || query.full_feature_names
            || query.timestamp_column.is_some()
        {
            return Err(RequestError::InvalidQuery(
                "the query string carries the request only with a Parquet body; a JSON body \
                 carries it in its fields"
                    .to_owned(),
            )
            .into());
        }
        let bytes = body(bytes)?;
        let limit = state.server.max_body_bytes;
        if bytes.len() > limit {
            return Err(RequestError::TooLarge(format!(
                "the JSON body is {} bytes, over the {limit}-byte limit; send the entity \
                     rows as Parquet (Content-Type: {PARQUET})",
                bytes.len()
            ))
            .into());
        }
        let body: TrainingSetBody = json_body(
            Ok(bytes),
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
        (request, entities)
    };
    let set = state.lockstep.training_set(&request, &entities).await?;
    if is(header::ACCEPT, PARQUET) {
        let mut bytes = Vec::new();
        let parquet = |e: parquet::errors::ParquetError| {
            RequestError::Internal(format!("writing the training set as Parquet: {e}"))
        };
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, set.batch.schema(), None)
            .map_err(parquet)?;
        writer.write(&set.batch).map_err(parquet)?;
        writer.close().map_err(parquet)?;
        return Ok(([(header::CONTENT_TYPE, PARQUET)], bytes).into_response());
    }
    Ok(Json(TrainingSetAnswer {
        rows: set.batch.num_rows(),
        columns: Columns(&set.batch),
        seconds: set.seconds,
    })
    .into_response())
}

#[derive(serde::Serialize)]
struct TrainingSetAnswer<'a> {
    rows: usize,
    columns: Columns<'a>,
    seconds: f64,
}

/// A batch as a JSON object of columns, in the batch's column order.
struct Columns<'a>(&'a RecordBatch);

impl serde::Serialize for Columns<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            self.0
                .schema_ref()
                .fields()
                .iter()
                .zip(self.0.columns())
                .map(|(field, array)| (field.name(), JsonColumn(array.as_ref()))),
        )
    }
}

fn invalid_rows(message: String) -> ApiError {
    RequestError::InvalidEntityRows(message).into()
}

/// Entity rows from JSON columns of equal length, in the body's column order: the
/// columns the training set uses in their types, every other column in the one its values
/// share (integers, numbers, booleans or strings).
fn entity_batch(
    columns: &IndexMap<String, Vec<serde_json::Value>>,
    required: &[FieldSpec],
    optional: &[FieldSpec],
) -> Result<RecordBatch, ApiError> {
    let rows = columns.values().map(Vec::len).max().unwrap_or(0);
    if let Some((name, values)) = columns.iter().find(|(_, values)| values.len() != rows) {
        return Err(invalid_rows(format!(
            "entity column `{}` has {} values, others have {rows}",
            echo(name),
            values.len()
        )));
    }
    if let Some(field) = required.iter().find(|f| !columns.contains_key(&f.name)) {
        return Err(invalid_rows(format!(
            "the entity rows need a column `{}` ({})",
            field.name, field.value_type
        )));
    }
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays = Vec::with_capacity(columns.len());
    for (name, values) in columns {
        let field = match required.iter().chain(optional).find(|f| f.name == *name) {
            Some(field) => field.clone(),
            None => FieldSpec {
                name: name.clone(),
                value_type: infer_json_type(values).map_err(|message| {
                    invalid_rows(format!("entity column `{}`: {message}", echo(name)))
                })?,
                nullable: true,
            },
        };
        arrays.push(from_json(&field, values).map_err(invalid_rows)?);
        fields.push(field);
    }
    RecordBatch::try_new_with_options(
        arrow_schema(&fields),
        arrays,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| invalid_rows(e.to_string()))
}
