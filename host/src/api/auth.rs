//! Bearer tokens with scopes. Tokens come from the environment (`LOCKSTEP_TOKENS`), are kept
//! only as sha256 hashes and compared in constant time; they are never logged.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::model::{Classify, ErrorKind};

/// Environment variable holding `scope:token` pairs separated by commas.
pub const TOKENS_ENV: &str = "LOCKSTEP_TOKENS";

/// What a token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// Who may call the API.
#[derive(Clone)]
pub enum Access {
    /// No tokens configured: every call is allowed. Only for a loopback listener.
    Open,
    /// Hashes of the configured tokens and their scopes.
    Tokens(Vec<([u8; 32], Scope)>),
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Open => f.write_str("Access::Open"),
            Access::Tokens(tokens) => write!(f, "Access::Tokens({} tokens)", tokens.len()),
        }
    }
}

/// Why a request is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No token, a malformed header or an unknown token.
    #[error("a valid bearer token is required (Authorization: Bearer <token>)")]
    Unauthenticated,
    /// A valid token without the scope the endpoint needs.
    #[error(
        "this endpoint needs the `{}` scope; the token has `{}`",
        .needed.name(),
        .has.name()
    )]
    Forbidden { needed: Scope, has: Scope },
}

impl Classify for Denied {
    fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Unauthenticated => ErrorKind::Unauthorized,
            Self::Forbidden { .. } => ErrorKind::Forbidden,
        }
    }
}

impl Access {
    /// Parses `scope:token[,scope:token…]`; empty or absent means [`Access::Open`].
    pub fn from_spec(spec: Option<&str>) -> Result<Self, String> {
        let Some(spec) = spec.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(Access::Open);
        };
        let mut tokens = Vec::new();
        for (index, entry) in spec.split(',').enumerate() {
            let (scope, token) = entry.trim().split_once(':').ok_or_else(|| {
                format!("{TOKENS_ENV} entry {}: expected `scope:token`", index + 1)
            })?;
            let scope = Scope::parse(scope).ok_or_else(|| {
                format!(
                    "{TOKENS_ENV} entry {}: unknown scope `{scope}` (read, write or admin)",
                    index + 1
                )
            })?;
            if token.len() < 16 {
                return Err(format!(
                    "{TOKENS_ENV} entry {}: tokens must be at least 16 characters",
                    index + 1
                ));
            }
            tokens.push((hash(token), scope));
        }
        Ok(Access::Tokens(tokens))
    }

    /// Checks an `Authorization` header value against the scope an endpoint needs.
    pub fn check(&self, authorization: Option<&str>, needed: Scope) -> Result<(), Denied> {
        let Access::Tokens(tokens) = self else {
            return Ok(());
        };
        // The scheme name is case-insensitive (RFC 7235).
        let presented = authorization
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(Denied::Unauthenticated)?;
        let presented = hash(presented);
        // Compare against every token, without stopping early, so timing says nothing.
        let mut found: Option<Scope> = None;
        for (token, scope) in tokens {
            if bool::from(token.ct_eq(&presented)) {
                found = found.max(Some(*scope));
            }
        }
        match found {
            None => Err(Denied::Unauthenticated),
            Some(has) if has < needed => Err(Denied::Forbidden { needed, has }),
            Some(_) => Ok(()),
        }
    }
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: &str = "read-token-0123456789";
    const WRITE: &str = "write-token-0123456789";

    fn access() -> Access {
        Access::from_spec(Some(&format!("read:{READ}, write:{WRITE}"))).unwrap()
    }

    #[test]
    fn scopes_are_ordered() {
        let access = access();
        let bearer = |t: &str| format!("Bearer {t}");
        assert_eq!(access.check(Some(&bearer(READ)), Scope::Read), Ok(()));
        assert_eq!(
            access.check(Some(&format!("bearer {READ}")), Scope::Read),
            Ok(())
        );
        assert_eq!(
            access.check(Some(&bearer(READ)), Scope::Write),
            Err(Denied::Forbidden {
                needed: Scope::Write,
                has: Scope::Read
            })
        );
        assert_eq!(access.check(Some(&bearer(WRITE)), Scope::Read), Ok(()));
        assert_eq!(
            access.check(Some(&bearer(WRITE)), Scope::Admin),
            Err(Denied::Forbidden {
                needed: Scope::Admin,
                has: Scope::Write
            })
        );
    }

    #[test]
    fn missing_or_unknown_tokens_are_unauthenticated() {
        let access = access();
        for header in [None, Some("Bearer nope"), Some(READ), Some("Basic abc")] {
            assert_eq!(
                access.check(header, Scope::Read),
                Err(Denied::Unauthenticated)
            );
        }
        assert_eq!(Access::Open.check(None, Scope::Admin), Ok(()));
    }

    #[test]
    fn bad_specs_are_rejected_without_echoing_tokens() {
        for spec in ["read", "root:0123456789abcdef", "read:short"] {
            let error = Access::from_spec(Some(spec)).unwrap_err();
            assert!(!error.contains("0123456789abcdef"), "{error}");
        }
        assert!(matches!(Access::from_spec(Some(" ")), Ok(Access::Open)));
    }
}
