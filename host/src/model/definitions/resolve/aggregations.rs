//! A feature view's aggregations: tile size and allowed lateness, and each aggregate's
//! name, function, column (among the transform's outputs and the source's columns) and
//! window (a whole number of tiles, or `lifetime`).

use super::super::{AggregationDef, FeatureView, format_ttl, is_identifier, names};
use super::collect::Errors;
use super::ttl;
use crate::model::FieldSpec;
use crate::model::aggregation::{Aggregate, AggregateFunction, AggregationSpec};

/// The tile size when `granularity` is not written: one minute.
const DEFAULT_GRANULARITY_SECONDS: u64 = 60;
/// The allowed lateness when `allowed_lateness` is not written: five minutes.
const DEFAULT_LATENESS_SECONDS: u64 = 300;

/// The aggregations of `view` (at `path`), reading `columns`; `None` when any is wrong.
pub(super) fn resolve(
    path: &str,
    view: &FeatureView,
    columns: &[FieldSpec],
    errors: &mut Errors<'_>,
) -> Option<AggregationSpec> {
    let before = errors.len();
    let granularity = match view.granularity.as_deref() {
        None => Some(DEFAULT_GRANULARITY_SECONDS),
        Some(text) => ttl::parse_at(format!("{path}.granularity"), text, errors),
    };
    let lateness = match view.allowed_lateness.as_deref() {
        None => Some(DEFAULT_LATENESS_SECONDS),
        Some("0s" | "0m" | "0") => Some(0),
        Some(text) => ttl::parse_at(format!("{path}.allowed_lateness"), text, errors),
    };
    let mut aggregates: Vec<Aggregate> = Vec::new();
    for (index, written) in view.aggregations.iter().enumerate() {
        let at = format!("{path}.aggregations[{index}]");
        check_name(&at, written, &aggregates, errors);
        let resolved = aggregate(&at, written, granularity, columns, errors);
        aggregates.extend(resolved);
    }
    if errors.len() > before {
        return None;
    }
    Some(AggregationSpec {
        granularity_seconds: granularity?,
        allowed_lateness_seconds: lateness?,
        aggregates,
    })
}

/// The aggregate's name is an identifier no earlier aggregate has.
fn check_name(at: &str, written: &AggregationDef, earlier: &[Aggregate], errors: &mut Errors<'_>) {
    if !is_identifier(&written.name) {
        errors.push(
            format!("{at}.name"),
            format!("`{}` is not a name ([A-Za-z_][A-Za-z0-9_]*)", written.name),
        );
    } else if earlier.iter().any(|seen| seen.name == written.name) {
        errors.push(
            format!("{at}.name"),
            format!("aggregation `{}` is declared twice", written.name),
        );
    }
}

/// One aggregate; `None` when its function, window or column is wrong.
fn aggregate(
    at: &str,
    written: &AggregationDef,
    granularity: Option<u64>,
    columns: &[FieldSpec],
    errors: &mut Errors<'_>,
) -> Option<Aggregate> {
    let function = written
        .function
        .parse::<AggregateFunction>()
        .map_err(|message| errors.push(format!("{at}.function"), message))
        .ok();
    let window_seconds = window(at, &written.window, granularity, errors);
    let column = column(at, written, function, columns, errors);
    Some(Aggregate {
        name: written.name.clone(),
        function: function?,
        column: column?,
        window_seconds: window_seconds?,
    })
}

/// The window's seconds, `Some(None)` for `lifetime`; a whole number of tiles.
fn window(
    at: &str,
    window: &str,
    granularity: Option<u64>,
    errors: &mut Errors<'_>,
) -> Option<Option<u64>> {
    if window == "lifetime" {
        return Some(None);
    }
    let at = format!("{at}.window");
    match ttl::parse_ttl(window) {
        Ok(seconds) => match granularity {
            Some(granularity) if seconds % granularity != 0 => {
                errors.push(
                    at,
                    format!(
                        "window `{window}` is not a whole number of granularities ({})",
                        format_ttl(granularity)
                    ),
                );
                None
            }
            _ => Some(Some(seconds)),
        },
        Err(message) => {
            errors.push(at, format!("{message}, or `lifetime`"));
            None
        }
    }
}

/// The aggregated column, `Some(None)` for a count of events; one the function takes.
fn column(
    at: &str,
    written: &AggregationDef,
    function: Option<AggregateFunction>,
    columns: &[FieldSpec],
    errors: &mut Errors<'_>,
) -> Option<Option<FieldSpec>> {
    let Some(name) = &written.column else {
        if function == Some(AggregateFunction::Count) {
            return Some(None);
        }
        errors.push(
            format!("{at}.column"),
            format!(
                "`{}` needs a column: one of {}",
                written.function,
                names(columns)
            ),
        );
        return None;
    };
    let Some(column) = columns.iter().find(|column| column.name == *name) else {
        errors.push(
            format!("{at}.column"),
            format!(
                "unknown column `{name}`: not an output of the transform or a column of the \
                 source (columns: {})",
                names(columns)
            ),
        );
        return None;
    };
    match function {
        Some(function) if !function.accepts(column.value_type) => {
            errors.push(
                format!("{at}.function"),
                format!("`{function}` does not take column `{column}`"),
            );
            None
        }
        _ => Some(Some(column.clone())),
    }
}
