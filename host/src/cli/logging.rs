//! Logging for every command: which events from `LOCKSTEP_LOG`, else `RUST_LOG`, else quiet
//! defaults (sqlx only at `error` unless a filter names it), written to stderr as text or as
//! one JSON object per line.

use std::io::Write as _;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter variable of Lockstep's own, which wins over `RUST_LOG`.
pub const LOCKSTEP_LOG: &str = "LOCKSTEP_LOG";
/// The conventional filter variable.
pub const RUST_LOG: &str = "RUST_LOG";

/// The format chosen at start, for what the CLI prints beside its logs (notices, progress).
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The log format in use (text until [`init`] says otherwise).
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// The filter directives: `lockstep_log`, else `rust_log`, else `default`, with sqlx held to
/// errors unless the chosen filter names it (sqlx warns of slow statements with the whole
/// statement text, which under load floods a backfill's output).
pub fn directives(lockstep_log: Option<&str>, rust_log: Option<&str>, default: &str) -> String {
    let chosen = [lockstep_log, rust_log]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|value| !value.is_empty())
        .unwrap_or(default);
    let names_sqlx = chosen
        .split(',')
        .any(|directive| directive.trim().starts_with("sqlx"));
    if names_sqlx {
        chosen.to_owned()
    } else {
        format!("{chosen},sqlx=error")
    }
}

/// Installs the process's subscriber: events on stderr in `format`, filtered by
/// [`directives`] over the environment with `default` as the level when none is set.
pub fn init(format: LogFormat, default: &str) {
    let _ = FORMAT.set(format);
    let lockstep_log = std::env::var(LOCKSTEP_LOG).ok();
    let rust_log = std::env::var(RUST_LOG).ok();
    let wanted = directives(lockstep_log.as_deref(), rust_log.as_deref(), default);
    let filter = EnvFilter::try_new(&wanted).unwrap_or_else(|error| {
        // Before any subscriber: straight to stderr, which may be closed (nothing to do then).
        let _ = writeln!(
            std::io::stderr(),
            "warning: ignoring the log filter `{wanted}` ({error}); logging at `{default}`"
        );
        EnvFilter::new(directives(None, None, default))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init`: a second call (tests running the CLI in-process) keeps the first.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockstep_log_wins_over_rust_log_and_sqlx_stays_quiet_unless_named() {
        assert_eq!(directives(None, None, "warn"), "warn,sqlx=error");
        assert_eq!(directives(None, Some("debug"), "warn"), "debug,sqlx=error");
        assert_eq!(
            directives(Some("lockstep=trace"), Some("debug"), "warn"),
            "lockstep=trace,sqlx=error"
        );
        // An empty variable is as good as none.
        assert_eq!(
            directives(Some(" "), Some("info"), "warn"),
            "info,sqlx=error"
        );
        // Naming sqlx is asking for it.
        assert_eq!(
            directives(None, Some("info,sqlx::query=debug"), "warn"),
            "info,sqlx::query=debug"
        );
    }

    #[test]
    fn the_directives_parse() {
        for wanted in [
            directives(None, None, "warn"),
            directives(None, Some("lockstep::access=info"), "warn"),
        ] {
            EnvFilter::try_new(&wanted).unwrap_or_else(|e| panic!("{wanted}: {e}"));
        }
    }
}
