//! The one error collector every check reports into, and the helpers their messages share.

use super::super::{Catalog, DefinitionError, Definitions, Positions};
use crate::model::FieldSpec;

/// What every check reads: the definitions as written and the uploaded transforms.
pub(super) struct Scope<'a> {
    pub definitions: &'a Definitions,
    pub catalog: &'a Catalog,
}

/// Every error found so far, each given its line from the file's positions when pushed.
pub(super) struct Errors<'a> {
    positions: &'a Positions,
    errors: Vec<DefinitionError>,
}

impl<'a> Errors<'a> {
    pub(super) fn new(positions: &'a Positions) -> Self {
        Self {
            positions,
            errors: Vec::new(),
        }
    }

    /// Reports `message` about the value at `path` (`feature_views.v.entities[1]`).
    pub(super) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        self.errors.push(DefinitionError {
            line: self.positions.line(&path),
            path,
            message: message.into(),
        });
    }

    /// How many errors were reported: a check compares it before and after.
    pub(super) fn len(&self) -> usize {
        self.errors.len()
    }

    /// `value` when nothing was reported, else every error in the order found.
    pub(super) fn finish<T>(self, value: T) -> Result<T, Vec<DefinitionError>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }
}

/// How names must be written.
pub(super) const NAME_RULE: &str = "use letters, digits and `_`, not starting with a digit";

/// `known: a, b`, or `none defined`, for "unknown X" messages.
pub(super) fn known<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
    if names.is_empty() {
        "none defined".to_owned()
    } else {
        format!("known: {}", names.join(", "))
    }
}

/// Whether values of `provided` can feed `input`: same name and type, and no nulls into a
/// non-nullable input.
pub(super) fn fits(provided: &FieldSpec, input: &FieldSpec) -> bool {
    provided.name == input.name
        && provided.value_type == input.value_type
        && (input.nullable || !provided.nullable)
}
