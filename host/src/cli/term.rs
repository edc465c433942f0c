//! Text from elsewhere (guests, definitions, the registry, servers) made safe for a
//! terminal: control characters escaped, so nothing printed can clear the screen, change
//! colours or fake a line of a listing.

use crate::model::text::escape_controls;

/// One value (a name, version, digest, cell, message), every control character escaped,
/// newlines included.
pub fn safe(value: &str) -> String {
    escape_controls(value)
}

/// Several lines of text: each line made [`safe`], the line breaks kept.
pub fn safe_lines(text: &str) -> String {
    text.split('\n').map(safe).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_but_keeps_our_own_line_breaks() {
        assert_eq!(safe("1.0\u{1b}[2J\nv  fake"), "1.0\\u{1b}[2J\\u{a}v  fake");
        assert_eq!(safe_lines("a\u{7}\nb"), "a\\u{7}\nb");
    }
}
