//! Feature services: references (`view:feature`, `view:*`) to features of resolved views,
//! each feature once, and a logging sample rate in (0, 1].

use super::super::{FeatureService, Resolved, ResolvedFeatureService, names};
use super::collect::{Errors, Scope, known};
use crate::model::FieldSpec;

/// The service `name`, its references expanded against the views of `resolved`; `None`
/// when any of its errors was reported.
pub(super) fn resolve(
    name: &str,
    service: &FeatureService,
    scope: &Scope<'_>,
    resolved: &Resolved,
    errors: &mut Errors<'_>,
) -> Option<ResolvedFeatureService> {
    let path = format!("feature_services.{name}");
    let before = errors.len();
    if service.features.is_empty() {
        errors.push(
            format!("{path}.features"),
            "list at least one feature reference (`view:feature` or `view:*`)",
        );
    }
    let mut features: Vec<(String, String)> = Vec::new();
    for (index, reference) in service.features.iter().enumerate() {
        let at = format!("{path}.features[{index}]");
        let Some(selected) = select(&at, reference, scope, resolved, errors) else {
            continue;
        };
        for (view, field) in selected {
            if features
                .iter()
                .any(|(seen_view, seen)| seen_view == view && *seen == field.name)
            {
                errors.push(
                    at.as_str(),
                    format!("feature `{view}:{}` is included more than once", field.name),
                );
            } else {
                features.push((view.to_owned(), field.name.clone()));
            }
        }
    }
    check_logging(&path, service, errors);
    (errors.len() == before).then(|| ResolvedFeatureService {
        features,
        logging: service.logging,
        description: service.description.clone(),
    })
}

/// The features one reference names, with their view; `None` when it names none (reported
/// unless its view is broken, whose own errors are reported).
fn select<'r, 'v>(
    at: &str,
    reference: &'r str,
    scope: &Scope<'_>,
    resolved: &'v Resolved,
    errors: &mut Errors<'_>,
) -> Option<Vec<(&'r str, &'v FieldSpec)>> {
    let Some((view, feature)) = reference.split_once(':').filter(|(view, feature)| {
        !view.is_empty() && !feature.is_empty() && !feature.contains(':')
    }) else {
        errors.push(
            at,
            format!(
                "`{reference}` is not a feature reference: expected `view:feature` or `view:*`"
            ),
        );
        return None;
    };
    let Some(available) = resolved.view_features(view) else {
        let definitions = scope.definitions;
        if !definitions.feature_views.contains_key(view)
            && !definitions.on_demand_views.contains_key(view)
        {
            let all = definitions
                .feature_views
                .keys()
                .chain(definitions.on_demand_views.keys());
            errors.push(at, format!("unknown view `{view}` ({})", known(all)));
        }
        return None;
    };
    if feature == "*" {
        return Some(available.iter().map(|field| (view, field)).collect());
    }
    match available.iter().find(|field| field.name == feature) {
        Some(field) => Some(vec![(view, field)]),
        None => {
            errors.push(
                at,
                format!(
                    "view `{view}` has no feature `{feature}` (features: {})",
                    names(available)
                ),
            );
            None
        }
    }
}

/// The logged share of responses is in (0, 1].
fn check_logging(path: &str, service: &FeatureService, errors: &mut Errors<'_>) {
    let Some(logging) = &service.logging else {
        return;
    };
    let rate = logging.sample_rate.0;
    // Written so that NaN fails too.
    if !(rate > 0.0 && rate <= 1.0) {
        errors.push(
            format!("{path}.logging.sample_rate"),
            format!("must be above 0 and at most 1 (the share of responses logged), not {rate}"),
        );
    }
}
