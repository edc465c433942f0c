//! Text from outside (clients, guests, definitions, files) made safe to show: echoed input
//! cut to a bounded length, control characters escaped, and the check that a label
//! (a name or version) is printable and short.

use std::fmt::Write as _;

/// Most characters of client input an error message repeats.
pub const ECHO_CHARS: usize = 200;

/// Longest label (transform version, signature field) accepted from a guest.
pub const MAX_LABEL_CHARS: usize = 128;

/// `input` as an error message may repeat it: control characters escaped and, past
/// [`ECHO_CHARS`] characters, cut with a note of the full length. Every message that
/// echoes client input goes through here, so a 2 MB name never comes back whole.
pub fn echo(input: &str) -> String {
    let mut shown = escape_controls(&input.chars().take(ECHO_CHARS).collect::<String>());
    let total = input.chars().count();
    if total > ECHO_CHARS {
        let _ = write!(shown, "… ({total} characters)");
    }
    shown
}

/// `text` with every control character (C0, DEL, C1, and the bidirectional overrides that
/// reorder what a terminal shows) written as a `\u{…}` escape; everything else unchanged.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_unsafe(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks a label from a guest or a definitions file: 1 to `max` characters, none of them
/// a control character. The error says what is wrong without repeating the raw bytes.
pub fn check_label(value: &str, max: usize) -> Result<(), String> {
    let chars = value.chars().count();
    if chars == 0 || chars > max {
        return Err(format!("must be 1 to {max} characters, not {chars}"));
    }
    if let Some(c) = value.chars().find(|c| is_unsafe(*c)) {
        return Err(format!(
            "must be printable; `{}` holds the control character U+{:04X}",
            echo(value),
            c as u32
        ));
    }
    Ok(())
}

/// Control characters, and the Unicode formatting characters that can make a terminal
/// line read differently from its bytes (bidirectional embeddings, overrides, isolates).
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_cuts_long_input_and_escapes_controls() {
        assert_eq!(echo("plain"), "plain");
        let long = "x".repeat(10_000);
        let shown = echo(&long);
        assert!(shown.len() < 300, "{}", shown.len());
        assert!(shown.ends_with("… (10000 characters)"), "{shown}");
        assert_eq!(echo("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape_controls("v1\r\n\u{202e}"), "v1\\u{d}\\u{a}\\u{202e}");
    }

    #[test]
    fn labels_are_printable_and_bounded() {
        assert_eq!(check_label("1.2.3-beta+é", 128), Ok(()));
        assert!(check_label("", 128).is_err());
        assert!(check_label(&"v".repeat(129), 128).is_err());
        let error = check_label("1.0\u{1b}[2J", 128).unwrap_err();
        assert!(error.contains("U+001B"), "{error}");
        assert!(!error.contains('\u{1b}'), "{error}");
    }
}
