//! Where a store lives, said safely, and why connecting to it failed: URLs with their
//! passwords redacted, and a connection failure told as refused, timed out, a bad URL or
//! refused credentials, naming the store and the address.

use std::fmt;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::Connection as _;

use crate::model::{Classify, ErrorKind};
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// Which store a connection was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Registry,
    Offline,
    Online,
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Store::Registry => "the registry",
            Store::Offline => "the offline store",
            Store::Online => "the online store",
        })
    }
}

/// Why a connection could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The URL does not parse, or names a database of another kind; `expected` shows the
    /// form wanted.
    BadUrl {
        message: String,
        expected: &'static str,
    },
    /// Nothing listens at the address.
    Refused,
    /// No answer within the deadline.
    TimedOut(Duration),
    /// The server answered and refused: credentials, a missing database, TLS.
    Rejected(String),
    /// Anything else on the way: name resolution, a reset connection.
    Unreachable(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::BadUrl { message, expected } => {
                write!(f, "bad URL ({message}); expected {expected}")
            }
            Failure::Refused => f.write_str("connection refused: is the server running there?"),
            Failure::TimedOut(after) => write!(
                f,
                "timed out after {:.1}s without an answer: is the host right and reachable?",
                after.as_secs_f64()
            ),
            Failure::Rejected(message) => write!(f, "the server refused: {message}"),
            Failure::Unreachable(message) => write!(f, "unreachable: {message}"),
        }
    }
}

/// A store that could not be reached, with its URL redacted.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot connect to {store} at {url}: {failure}")]
pub struct ConnectError {
    pub store: Store,
    /// [`redact`]ed.
    pub url: String,
    pub failure: Failure,
}

impl ConnectError {
    pub fn new(store: Store, url: &str, failure: Failure) -> Self {
        Self {
            store,
            url: redact(url),
            failure,
        }
    }

    /// A bad URL is a configuration mistake, not an outage worth retrying.
    pub fn is_retryable(&self) -> bool {
        !matches!(self.failure, Failure::BadUrl { .. })
    }
}

impl Classify for ConnectError {
    fn code(&self) -> &'static str {
        match (&self.failure, self.store) {
            (Failure::BadUrl { .. }, _) => "invalid_store_url",
            (_, Store::Registry) => "registry_unavailable",
            (_, Store::Offline) => "offline_store_unavailable",
            (_, Store::Online) => "online_store_unavailable",
        }
    }

    fn kind(&self) -> ErrorKind {
        if self.is_retryable() {
            ErrorKind::Unavailable
        } else {
            ErrorKind::BadRequest
        }
    }
}

/// The form of a Postgres URL, for errors.
pub const POSTGRES_URL_FORM: &str = "postgres://user[:password]@host[:port]/database";
/// The form of a Redis URL, for errors.
pub const REDIS_URL_FORM: &str = "redis://[user:password@]host[:port][/db]";

/// `url` with any password replaced by `***`: in the user info (`user:secret@host`) and in
/// query parameters named like a password (`?password=secret`). Text that is no URL at all
/// is redacted the same way where it has the same shape.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            match userinfo.find(':') {
                Some(colon) => format!("{}:***{host}", &userinfo[..colon]),
                None => authority.to_owned(),
            }
        }
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _)) if key.to_ascii_lowercase().contains("pass") => {
                        format!("{key}=***")
                    }
                    _ => param.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

/// Checks that `url` is a Postgres URL and that one connection can be made within
/// `timeout`, so a failure says why (a pool only says that it timed out).
pub async fn probe_postgres(
    store: Store,
    url: &str,
    timeout: Duration,
) -> Result<(), ConnectError> {
    let failed = |failure| ConnectError::new(store, url, failure);
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    if !matches!(scheme, Some("postgres" | "postgresql")) {
        return Err(failed(Failure::BadUrl {
            message: match scheme {
                Some(scheme) => format!("scheme `{scheme}` is not postgres"),
                None => "no scheme".to_owned(),
            },
            expected: POSTGRES_URL_FORM,
        }));
    }
    let options = PgConnectOptions::from_str(url).map_err(|error| {
        failed(Failure::BadUrl {
            message: root_message(&error),
            expected: POSTGRES_URL_FORM,
        })
    })?;
    match tokio::time::timeout(timeout, PgConnection::connect_with(&options)).await {
        Err(_) => Err(failed(Failure::TimedOut(timeout))),
        Ok(Err(error)) => Err(failed(classify_sqlx(&error, timeout))),
        Ok(Ok(connection)) => {
            // Best effort: the probe's only purpose was to connect.
            let _ = connection.close().await;
            Ok(())
        }
    }
}

/// Why a sqlx connection attempt failed.
pub fn classify_sqlx(error: &sqlx::Error, timeout: Duration) -> Failure {
    match error {
        sqlx::Error::Configuration(_) => Failure::BadUrl {
            message: root_message(error),
            expected: POSTGRES_URL_FORM,
        },
        sqlx::Error::Io(io) => classify_io(io, timeout),
        sqlx::Error::PoolTimedOut => Failure::TimedOut(timeout),
        sqlx::Error::Tls(_) | sqlx::Error::Database(_) | sqlx::Error::Protocol(_) => {
            Failure::Rejected(root_message(error))
        }
        other => Failure::Unreachable(root_message(other)),
    }
}

/// Why a Redis connection attempt failed.
pub fn classify_redis(error: &redis::RedisError, timeout: Duration) -> Failure {
    if error.is_connection_refusal() {
        Failure::Refused
    } else if error.is_timeout() {
        Failure::TimedOut(timeout)
    } else if matches!(error.kind(), redis::ErrorKind::InvalidClientConfig) {
        Failure::BadUrl {
            message: error.to_string(),
            expected: REDIS_URL_FORM,
        }
    } else if matches!(error.kind(), redis::ErrorKind::AuthenticationFailed) {
        Failure::Rejected(error.to_string())
    } else {
        Failure::Unreachable(error.to_string())
    }
}

fn classify_io(error: &std::io::Error, timeout: Duration) -> Failure {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => Failure::Refused,
        std::io::ErrorKind::TimedOut => Failure::TimedOut(timeout),
        _ => Failure::Unreachable(error.to_string()),
    }
}

/// The innermost message of an error's source chain, where the reason is.
fn root_message(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_wherever_they_are() {
        for (url, expected) in [
            (
                "postgres://bob:s3cret@db.example:5432/prod",
                "postgres://bob:***@db.example:5432/prod",
            ),
            ("postgres://bob@db/prod", "postgres://bob@db/prod"),
            ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
            (
                "postgres://db/prod?user=bob&password=s3cret&sslmode=require",
                "postgres://db/prod?user=bob&password=***&sslmode=require",
            ),
            ("bob:s3cret@db:5432/prod", "bob:***@db:5432/prod"),
            // An `@` in the password: everything before the last `@` is user info.
            ("postgres://bob:a@b@db/prod", "postgres://bob:***@db/prod"),
            (
                "sqlite://.lockstep/registry.db",
                "sqlite://.lockstep/registry.db",
            ),
        ] {
            assert_eq!(redact(url), expected, "{url}");
            assert!(!redact(url).contains("s3cret") && !redact(url).contains("hunter2"));
        }
    }

    #[tokio::test]
    async fn a_url_without_a_scheme_is_a_bad_url_naming_the_store() {
        let error = probe_postgres(
            Store::Offline,
            "bob:pw@localhost:5432/db",
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(matches!(error.failure, Failure::BadUrl { .. }), "{error}");
        let message = error.to_string();
        assert!(
            message.starts_with("cannot connect to the offline store at bob:***@"),
            "{message}"
        );
        assert!(message.contains("expected postgres://"), "{message}");
        assert!(!error.is_retryable());
    }
}
