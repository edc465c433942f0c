//! The project's name and every object's name must be identifiers.

use super::super::{Definitions, is_identifier};
use super::collect::{Errors, NAME_RULE};

pub(super) fn check(definitions: &Definitions, errors: &mut Errors<'_>) {
    if !is_identifier(&definitions.project) {
        errors.push(
            "project",
            format!(
                "`{}` is not a valid project name: {NAME_RULE}",
                definitions.project
            ),
        );
    }
    check_section("entities", definitions.entities.keys(), errors);
    check_section("sources", definitions.sources.keys(), errors);
    check_section("feature_views", definitions.feature_views.keys(), errors);
    check_section(
        "on_demand_views",
        definitions.on_demand_views.keys(),
        errors,
    );
    check_section(
        "feature_services",
        definitions.feature_services.keys(),
        errors,
    );
}

fn check_section<'a>(
    section: &str,
    names: impl Iterator<Item = &'a String>,
    errors: &mut Errors<'_>,
) {
    for name in names.filter(|name| !is_identifier(name)) {
        errors.push(
            format!("{section}.{name}"),
            format!("`{name}` is not a valid name: {NAME_RULE}"),
        );
    }
}
