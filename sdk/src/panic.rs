//! Forwards a guest panic's message to the host before the guest traps.
//!
//! A transform is built with `panic = "abort"` for a target without stderr,
//! so without this hook the host would only see an `unreachable` trap.

/// The longest panic message sent to the host, in bytes; longer messages are
/// cut at a character boundary. The host keeps only a few KiB anyway.
pub const MAX_PANIC_MESSAGE_BYTES: usize = 4096;

/// Installs, once, a panic hook that sends the panic message and location
/// through the `host.report-panic` import. Idempotent and cheap after the
/// first call.
///
/// `#[transform]` and `#[transform_columns]` call it on entry; a hand-written
/// [`Guest`](crate::Guest) should call it at the start of each export. On
/// targets other than wasm32 there is no host to report to: it does nothing
/// and the default hook keeps printing to stderr.
pub fn install_panic_hook() {
    #[cfg(target_arch = "wasm32")]
    {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let message = info.to_string();
                crate::bindings::lockstep::transform::host::report_panic(truncate(
                    &message,
                    MAX_PANIC_MESSAGE_BYTES,
                ));
            }));
        });
    }
}

/// The longest prefix of `message` of at most `max` bytes that ends on a
/// character boundary.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn truncate(message: &str, max: usize) -> &str {
    if message.len() <= max {
        return message;
    }
    let end = (0..=max)
        .rev()
        .find(|&i| message.is_char_boundary(i))
        .unwrap_or(0);
    &message[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_short_messages() {
        assert_eq!(truncate("boom", 4), "boom");
        assert_eq!(truncate("", 0), "");
    }

    #[test]
    fn truncate_cuts_on_char_boundaries() {
        assert_eq!(truncate("boom", 2), "bo");
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("é", 0), "");
    }

    #[test]
    fn installing_on_native_targets_is_a_no_op() {
        install_panic_hook();
        install_panic_hook();
        let caught = std::panic::catch_unwind(|| panic!("still unwinds natively"));
        assert!(caught.is_err());
    }
}
