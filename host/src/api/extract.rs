//! Path and query extractors whose rejection is an [`ApiError`], so a malformed id, a path
//! segment that is not UTF-8 or an unknown query parameter is answered as JSON with a code
//! like every other error (axum's own extractors answer in plain text).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path as AxumPath, Query as AxumQuery};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::request_error::RequestError;
use crate::model::text::echo;

/// A typed path parameter, or a 400 `invalid_path`.
pub struct Path<T>(pub T);

/// A typed query string (with `deny_unknown_fields` on `T`, unknown parameters are
/// refused), or a 400 `invalid_query`.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        AxumPath::<T>::from_request_parts(parts, state)
            .await
            .map(|AxumPath(value)| Path(value))
            .map_err(|rejection: PathRejection| {
                RequestError::InvalidPath(echo(&rejection.body_text())).into()
            })
    }
}

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        AxumQuery::<T>::from_request_parts(parts, state)
            .await
            .map(|AxumQuery(value)| Query(value))
            .map_err(|rejection: QueryRejection| {
                RequestError::InvalidQuery(format!(
                    "invalid query string: {}",
                    echo(&rejection.body_text())
                ))
                .into()
            })
    }
}
