//! The HTTP layer's own errors: what is wrong with a request before the pipeline sees it
//! (path, query, body, size, route), a deadline, and a failure of the layer itself.

use std::time::Duration;

use crate::model::{Classify, ErrorKind};

/// Why the HTTP layer answered a request itself. Messages echo client input only through
/// [`crate::model::text::echo`].
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("invalid path parameter: {0}")]
    InvalidPath(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("{0}")]
    InvalidBody(String),
    #[error("{0}")]
    InvalidEntityRows(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    NotFound(String),
    /// The route exists, not with this method: a bad request answered 405
    /// ([`super::error::ApiError::method_not_allowed`]).
    #[error("this endpoint does not answer {0}")]
    MethodNotAllowed(String),
    #[error("the request took longer than {0:?}")]
    Timeout(Duration),
    /// The layer itself failed (a task that panicked, an encoder refusing a batch): a bug.
    #[error("{0}")]
    Internal(String),
}

impl Classify for RequestError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidPath(_) => "invalid_path",
            Self::InvalidQuery(_) => "invalid_query",
            Self::InvalidBody(_) => "invalid_body",
            Self::InvalidEntityRows(_) => "invalid_entity_rows",
            Self::TooLarge(_) => "payload_too_large",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Timeout(_) => "request_timeout",
            Self::Internal(_) => "internal",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidPath(_)
            | Self::InvalidQuery(_)
            | Self::InvalidBody(_)
            | Self::InvalidEntityRows(_)
            | Self::MethodNotAllowed(_) => ErrorKind::BadRequest,
            Self::TooLarge(_) => ErrorKind::TooLarge,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Timeout(_) => ErrorKind::Unavailable,
            Self::Internal(_) => ErrorKind::Internal,
        }
    }
}
