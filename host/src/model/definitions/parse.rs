//! Reading a definitions file: TOML syntax and the shape of each object, every error with
//! its line, and the [`Positions`] of everything written for the checks that follow.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::positions::{Lines, Positions};
use super::{DefinitionError, Definitions};

/// The top-level keys of a definitions file.
const TOP_LEVEL_KEYS: &str =
    "project, entities, sources, feature_views, on_demand_views, feature_services";

/// A definitions file that has the right shape, and where each of its keys is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub definitions: Definitions,
    pub positions: Positions,
}

/// Parses a definitions file, reporting every syntax error or else every shape error
/// (unknown key, missing key, wrong type) with its line.
pub fn parse(text: &str) -> Result<Parsed, Vec<DefinitionError>> {
    let lines = Lines::of(text);
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        return Err(syntax_errors
            .iter()
            .map(|error| DefinitionError {
                path: String::new(),
                line: error.span().map(|span| lines.line(span.start)),
                message: error.message().to_owned(),
            })
            .collect());
    }
    let positions = Positions::of(text, root.get_ref());
    let mut definitions = Definitions::default();
    let mut errors = Vec::new();
    for (key, value) in root.into_inner() {
        let mut section = Section {
            lines: &lines,
            errors: &mut errors,
        };
        match key.get_ref().as_ref() {
            "project" => match value.get_ref().as_str() {
                Some(project) => project.clone_into(&mut definitions.project),
                None => section.error(
                    "project".to_owned(),
                    key.span().start,
                    format!("expected a string, found {}", value.get_ref().type_str()),
                ),
            },
            "entities" => section.parse("entities", value, &mut definitions.entities),
            "sources" => section.parse("sources", value, &mut definitions.sources),
            "feature_views" => {
                section.parse("feature_views", value, &mut definitions.feature_views);
            }
            "on_demand_views" => {
                section.parse("on_demand_views", value, &mut definitions.on_demand_views);
            }
            "feature_services" => {
                section.parse("feature_services", value, &mut definitions.feature_services);
            }
            other => section.error(
                other.to_owned(),
                key.span().start,
                format!("unknown key `{other}`, expected one of {TOP_LEVEL_KEYS}"),
            ),
        }
    }
    if errors.is_empty() {
        Ok(Parsed {
            definitions,
            positions,
        })
    } else {
        errors.sort_by_key(|error| error.line);
        Err(errors)
    }
}

/// Reads the objects of one `[section.name]` group, collecting their shape errors.
struct Section<'a> {
    lines: &'a Lines,
    errors: &'a mut Vec<DefinitionError>,
}

impl Section<'_> {
    fn error(&mut self, path: String, offset: usize, message: String) {
        self.errors.push(DefinitionError {
            path,
            line: Some(self.lines.line(offset)),
            message,
        });
    }

    /// Deserializes each object on its own, so that one bad object does not hide the
    /// errors of the next.
    fn parse<T: DeserializeOwned>(
        &mut self,
        section: &str,
        value: Spanned<DeValue<'_>>,
        out: &mut BTreeMap<String, T>,
    ) {
        let start = value.span().start;
        let DeValue::Table(objects) = value.into_inner() else {
            let message = format!("expected tables named `[{section}.<name>]`");
            self.error(section.to_owned(), start, message);
            return;
        };
        for (name, body) in objects {
            let path = format!("{section}.{}", name.get_ref());
            if let Some(object) = self.object(path, name.span().start, body) {
                out.insert(name.into_inner().into_owned(), object);
            }
        }
    }

    /// One object, `None` (with its error) when it has the wrong shape.
    fn object<T: DeserializeOwned>(
        &mut self,
        path: String,
        name_start: usize,
        body: Spanned<DeValue<'_>>,
    ) -> Option<T> {
        let Some(fields) = body.get_ref().as_table() else {
            let message = format!("expected a table, found {}", body.get_ref().type_str());
            self.error(path, name_start, message);
            return None;
        };
        match T::deserialize(ValueDeserializer::from(body.clone())) {
            Ok(object) => Some(object),
            Err(error) => {
                let (suffix, offset) = match error.span() {
                    Some(span) => (path_to_span(fields, &span), span.start),
                    None => (String::new(), name_start),
                };
                self.error(path + &suffix, offset, error.message().to_owned());
                None
            }
        }
    }
}

/// The `.key.key[i]` path, inside `table`, of the innermost key or value containing `span`.
fn path_to_span(table: &DeTable<'_>, span: &Range<usize>) -> String {
    let contains = |outer: Range<usize>| outer.start <= span.start && span.end <= outer.end;
    let mut path = String::new();
    let mut value: Option<&DeValue<'_>> = None;
    let mut current = Some(table);
    while let Some(table) = current.take() {
        for (key, item) in table {
            if contains(key.span()) {
                path.push('.');
                path.push_str(key.get_ref());
                break;
            }
            if contains(item.span()) {
                path.push('.');
                path.push_str(key.get_ref());
                value = Some(item.get_ref());
                break;
            }
        }
        while let Some(DeValue::Array(items)) = value {
            value = None;
            if let Some((index, item)) = items
                .iter()
                .enumerate()
                .find(|(_, item)| contains(item.span()))
            {
                path.push_str(&format!("[{index}]"));
                value = Some(item.get_ref());
            }
        }
        current = value.take().and_then(DeValue::as_table);
    }
    path
}
