//! What each guest store carries: its resource limiter and the panic message the guest sent.

use wasmtime::ResourceLimiter;

use super::bindings::lockstep::transform::{host, types};

/// Longest panic message kept from a guest; the rest is cut.
const MAX_PANIC_MESSAGE_BYTES: usize = 4096;

/// Per-store data of one guest instance.
pub(crate) struct GuestState {
    max_memory_bytes: usize,
    max_table_elements: usize,
    /// The last message sent by the SDK's panic hook, taken when the call traps.
    pub(crate) panic_message: Option<String>,
}

impl GuestState {
    pub(crate) fn new(max_memory_bytes: usize, max_table_elements: usize) -> Self {
        Self {
            max_memory_bytes,
            max_table_elements,
            panic_message: None,
        }
    }
}

/// Raised (as a trap) when a guest asks for more memory or table than allowed, so the
/// failure is typed instead of a guest-side allocation error.
#[derive(Debug, thiserror::Error)]
#[error("guest {resource} growth to {requested} exceeds the limit of {limit}")]
pub(crate) struct LimitExceeded {
    pub(crate) resource: &'static str,
    pub(crate) requested: usize,
    pub(crate) limit: usize,
}

impl ResourceLimiter for GuestState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            return Err(wasmtime::Error::new(LimitExceeded {
                resource: "memory (bytes)",
                requested: desired,
                limit: self.max_memory_bytes,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            return Err(wasmtime::Error::new(LimitExceeded {
                resource: "table (elements)",
                requested: desired,
                limit: self.max_table_elements,
            }));
        }
        Ok(true)
    }
}

impl host::Host for GuestState {
    fn report_panic(&mut self, message: String) {
        self.panic_message = Some(super::error::truncate(message, MAX_PANIC_MESSAGE_BYTES));
    }
}

impl types::Host for GuestState {}
