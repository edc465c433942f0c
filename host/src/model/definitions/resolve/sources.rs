//! Sources: the keys each kind takes (`path`, `table`, `query`), and timestamp fields that
//! are timestamp columns of the schema.

use super::super::{Source, SourceKind, names};
use super::collect::Errors;
use crate::model::ValueType;

pub(super) fn check(name: &str, source: &Source, errors: &mut Errors<'_>) {
    let path = format!("sources.{name}");
    if source.schema.is_empty() {
        errors.push(format!("{path}.schema"), "declare at least one column");
    }
    check_location(&path, source, errors);
    check_timestamps(&path, source, errors);
}

/// `path`, `table` and `query`, as written.
fn locations(source: &Source) -> [(&'static str, &Option<String>); 3] {
    [
        ("path", &source.path),
        ("table", &source.table),
        ("query", &source.query),
    ]
}

/// Where the rows come from: the keys of the source's kind, none empty.
fn check_location(path: &str, source: &Source, errors: &mut Errors<'_>) {
    for (key, value) in locations(source) {
        if value
            .as_deref()
            .is_some_and(|value| value.trim().is_empty())
        {
            errors.push(format!("{path}.{key}"), "must not be empty");
        }
    }
    let kind = source.kind;
    match kind {
        SourceKind::Parquet | SourceKind::Csv => {
            if source.path.is_none() {
                errors.push(
                    format!("{path}.path"),
                    format!("a {kind} source needs `path`"),
                );
            }
            for (key, value) in [("table", &source.table), ("query", &source.query)] {
                if value.is_some() {
                    errors.push(
                        format!("{path}.{key}"),
                        format!("`{key}` applies to postgres sources only"),
                    );
                }
            }
        }
        SourceKind::Postgres => {
            match (&source.table, &source.query) {
                (Some(_), Some(_)) => errors.push(
                    path,
                    "a postgres source takes one of `table` and `query`, not both",
                ),
                (None, None) => errors.push(path, "a postgres source needs `table` or `query`"),
                _ => {}
            }
            if source.path.is_some() {
                errors.push(
                    format!("{path}.path"),
                    "`path` applies to parquet and csv sources only",
                );
            }
        }
        SourceKind::Push | SourceKind::Request => {
            for (key, value) in locations(source) {
                if value.is_some() {
                    errors.push(
                        format!("{path}.{key}"),
                        format!("a {kind} source has no `{key}`"),
                    );
                }
            }
        }
    }
}

/// A request source has no timestamps; every other kind has a `timestamp_field`, and each
/// timestamp field is a timestamp column (`created_timestamp_field` may be nullable).
fn check_timestamps(path: &str, source: &Source, errors: &mut Errors<'_>) {
    let timestamps = [
        ("timestamp_field", &source.timestamp_field, false),
        (
            "created_timestamp_field",
            &source.created_timestamp_field,
            true,
        ),
    ];
    let kind = source.kind;
    if kind == SourceKind::Request {
        for (key, value, _) in timestamps {
            if value.is_some() {
                errors.push(
                    format!("{path}.{key}"),
                    "a request source has no timestamps: its fields arrive with each request",
                );
            }
        }
        return;
    }
    if source.timestamp_field.is_none() {
        errors.push(
            format!("{path}.timestamp_field"),
            format!("a {kind} source needs `timestamp_field`"),
        );
    }
    for (key, value, nullable_ok) in timestamps {
        let Some(field) = value else { continue };
        let at = format!("{path}.{key}");
        match source.schema.get(field) {
            None => errors.push(
                at,
                format!(
                    "`{field}` is not a column of the schema (columns: {})",
                    names(&source.columns())
                ),
            ),
            Some(column)
                if column.value_type != ValueType::Timestamp
                    || (column.nullable && !nullable_ok) =>
            {
                let expected = if nullable_ok {
                    "timestamp` or `timestamp?"
                } else {
                    "timestamp"
                };
                errors.push(
                    at,
                    format!("column `{field}` has type `{column}`; expected `{expected}`"),
                );
            }
            Some(_) => {}
        }
    }
}
