//! Durations as written in definitions (`90m`, `7d`): ttls, granularities, windows.

use super::collect::Errors;

/// Seconds in a ttl such as `90m` or `7d`: a positive whole number followed by one unit,
/// s, m, h, d or w.
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid duration `{text}`: expected a positive whole number followed by s, m, h, d or w, \
             such as `90m` or `7d`"
        )
    };
    let Some(unit) = text.chars().last() else {
        return Err(invalid());
    };
    let digits = &text[..text.len() - unit.len_utf8()];
    let unit_seconds: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return Err(invalid()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let count: u64 = digits
        .parse()
        .map_err(|_| format!("invalid duration `{text}`: too long"))?;
    if count == 0 {
        return Err(format!("invalid duration `{text}`: must be positive"));
    }
    count
        .checked_mul(unit_seconds)
        .ok_or_else(|| format!("invalid duration `{text}`: too long"))
}

/// A ttl in the largest of d, h, m, s that divides it: `7d`, `90m`.
pub fn format_ttl(seconds: u64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds >= size && seconds.is_multiple_of(size) {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// The duration `text` written at `path`, reporting it when invalid.
pub(super) fn parse_at(path: String, text: &str, errors: &mut Errors<'_>) -> Option<u64> {
    parse_ttl(text)
        .map_err(|message| errors.push(path, message))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_syntax() {
        for (text, seconds) in [
            ("45s", 45),
            ("90m", 5_400),
            ("1h", 3_600),
            ("7d", 604_800),
            ("2w", 1_209_600),
        ] {
            assert_eq!(parse_ttl(text), Ok(seconds), "{text}");
        }
        for bad in ["", "d", "7", "7y", "-1d", "1.5h", " 7d", "7D", "٣d", "7é"] {
            assert!(
                parse_ttl(bad)
                    .unwrap_err()
                    .contains("expected a positive whole number"),
                "{bad}"
            );
        }
        assert_eq!(
            parse_ttl("0s").unwrap_err(),
            "invalid duration `0s`: must be positive"
        );
        assert!(
            parse_ttl("99999999999999999999w")
                .unwrap_err()
                .ends_with("too long")
        );
        assert!(
            parse_ttl("9999999999999999999w")
                .unwrap_err()
                .ends_with("too long")
        );
        for (seconds, text) in [(45, "45s"), (5_400, "90m"), (3_600, "1h"), (604_800, "7d")] {
            assert_eq!(format_ttl(seconds), text);
        }
    }
}
