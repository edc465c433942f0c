//! Checking definitions against each other and against the uploaded transforms, and
//! computing what each object means: one module per kind of object, in dependency order,
//! all reporting into one [`Errors`] collector that knows each path's line.

mod aggregations;
mod collect;
mod entities;
mod feature_services;
mod feature_views;
mod features;
mod names;
mod on_demand_views;
mod sources;
mod ttl;

pub use ttl::{format_ttl, parse_ttl};

use std::collections::BTreeMap;

use self::collect::{Errors, Scope};
use super::{Catalog, DefinitionError, Parsed, Resolved};

/// Checks the parsed definitions against each other and `catalog`, collecting every error
/// with its line, and pins every transform reference.
pub fn resolve(parsed: &Parsed, catalog: &Catalog) -> Result<Resolved, Vec<DefinitionError>> {
    let definitions = &parsed.definitions;
    let scope = Scope {
        definitions,
        catalog,
    };
    let mut errors = Errors::new(&parsed.positions);
    names::check(definitions, &mut errors);
    for (name, entity) in &definitions.entities {
        entities::check(name, entity, &mut errors);
    }
    for (name, source) in &definitions.sources {
        sources::check(name, source, &mut errors);
    }
    let mut feature_views = BTreeMap::new();
    for (name, view) in &definitions.feature_views {
        if let Some(view) = feature_views::resolve(name, view, &scope, &mut errors) {
            feature_views.insert(name.clone(), view);
        }
    }
    let mut on_demand_views = BTreeMap::new();
    for (name, view) in &definitions.on_demand_views {
        if let Some(view) =
            on_demand_views::resolve(name, view, &scope, &feature_views, &mut errors)
        {
            on_demand_views.insert(name.clone(), view);
        }
    }
    let mut resolved = Resolved {
        project: definitions.project.clone(),
        entities: definitions.entities.clone(),
        sources: definitions.sources.clone(),
        feature_views,
        on_demand_views,
        feature_services: BTreeMap::new(),
    };
    for (name, service) in &definitions.feature_services {
        if let Some(service) =
            feature_services::resolve(name, service, &scope, &resolved, &mut errors)
        {
            resolved.feature_services.insert(name.clone(), service);
        }
    }
    errors.finish(resolved)
}
