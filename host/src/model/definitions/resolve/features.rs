//! A view's `features`: a subset, in the order given, of the features it can have.

use std::collections::BTreeSet;

use super::super::names;
use super::collect::Errors;
use crate::model::FieldSpec;

/// The features a view can have, and what they are for messages: "an output of transform
/// `x@1`", "a feature column of source `s`".
pub(super) struct Available {
    pub fields: Vec<FieldSpec>,
    pub what: String,
}

/// Picks `requested` (all when `None`) among `available`; `path` is the view's.
pub(super) fn select(
    path: &str,
    requested: Option<&[String]>,
    available: &Available,
    errors: &mut Errors<'_>,
) -> Option<Vec<FieldSpec>> {
    let Some(requested) = requested else {
        return Some(available.fields.clone());
    };
    if requested.is_empty() {
        errors.push(
            format!("{path}.features"),
            "list at least one feature, or leave `features` out to take them all",
        );
        return None;
    }
    let mut seen = BTreeSet::new();
    let mut selected = Vec::new();
    for (index, feature) in requested.iter().enumerate() {
        let at = format!("{path}.features[{index}]");
        if !seen.insert(feature) {
            errors.push(at, format!("feature `{feature}` is listed twice"));
            continue;
        }
        match available.fields.iter().find(|field| field.name == *feature) {
            Some(field) => selected.push(field.clone()),
            None => errors.push(
                at,
                format!(
                    "unknown feature `{feature}`: not {} (available: {})",
                    available.what,
                    names(&available.fields)
                ),
            ),
        }
    }
    (selected.len() == requested.len()).then_some(selected)
}
