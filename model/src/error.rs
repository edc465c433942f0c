//! One error taxonomy: every error type says its stable code and its kind, and the edges
//! (HTTP statuses in `api`, the CLI's output) map kinds in one place each.

/// What kind of failure an error is; the HTTP layer maps each kind to one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request itself is malformed (400).
    BadRequest,
    /// No credentials, or unknown ones (401).
    Unauthorized,
    /// The credentials lack the scope (403).
    Forbidden,
    /// The named thing does not exist (404).
    NotFound,
    /// The request conflicts with the current state; retrying may help (409).
    Conflict,
    /// The input is over a size limit (413).
    TooLarge,
    /// Well-formed content that was refused: invalid definitions, a component that fails
    /// its checks, data a transform or store refuses (422).
    Refused,
    /// A dependency (store, registry, runtime capacity) is unavailable or timed out:
    /// retry later (503).
    Unavailable,
    /// A bug: details are logged, never sent (500).
    Internal,
}

/// An error with a stable, snake_case code clients match on, and its [`ErrorKind`].
pub trait Classify: std::error::Error {
    /// The stable code, e.g. `unknown_view`; never changes for the same failure.
    fn code(&self) -> &'static str;
    /// What kind of failure it is.
    fn kind(&self) -> ErrorKind;
}
