//! What the CLI prints. Results go to stdout through [`outln!`], which returns an error
//! instead of panicking when the reader went away (`lockstep backfills | head -1`), so the
//! command ends quietly with success; notices and status lines go to stderr, or become log
//! events when logs are JSON, so stderr stays one JSON object per line.

use std::fmt;
use std::io::Write as _;

use crate::config::LogFormat;

/// Standard output was closed by its reader: nothing more can be shown, and nothing is
/// wrong.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct StdoutClosed;

/// Writes one line to stdout; a closed pipe is [`StdoutClosed`].
pub fn line(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{args}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(error) => Err(anyhow::Error::new(error).context("writing to standard output")),
    }
}

/// `println!` for results: `outln!("…", …)?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Whether `error` only says that stdout was closed.
pub fn is_stdout_closed(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<StdoutClosed>())
}

/// Something the user should know that is not the command's result (which stores are
/// used): a line on stderr, or a warning event when logs are JSON.
pub fn notice(message: &str) {
    match super::logging::format() {
        LogFormat::Text => stderr_line(message),
        LogFormat::Json => tracing::warn!(target: "lockstep::cli", "{message}"),
    }
}

/// How a command is getting on (what it plans, progress lines): a line on stderr, or an
/// info event when logs are JSON.
pub fn status(message: &str) {
    match super::logging::format() {
        LogFormat::Text => stderr_line(message),
        LogFormat::Json => tracing::info!(target: "lockstep::cli", "{message}"),
    }
}

/// The error a command ended with: `error: …` on stderr, or an error event.
pub fn error(message: &str) {
    match super::logging::format() {
        LogFormat::Text => stderr_line(&format!("error: {message}")),
        LogFormat::Json => tracing::error!(target: "lockstep::cli", "{message}"),
    }
}

/// A line on stderr; if stderr is closed too there is no one to tell.
fn stderr_line(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}

/// A command that ends with an exit code of its own (an interrupted backfill: 130 after
/// Ctrl-C, 143 after SIGTERM), and the message saying why.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExitWith {
    pub code: u8,
    pub message: String,
}

/// The exit code `error` asks for: an [`ExitWith`]'s, else 1.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<ExitWith>())
        .map_or(1, |exit| exit.code)
}
