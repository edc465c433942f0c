//! Where things are in a definitions file: the line of every key and list element, taken
//! from the TOML parser's spans once, when the file is parsed.

use std::collections::BTreeMap;

use toml::de::{DeTable, DeValue};

/// The 1-based line of every key and list element of a file, by dotted path
/// (`feature_views.v.entities[1]`, `sources.s.schema.rating`). A key's line is the line of
/// the key itself (for a `[kind.name]` table, its header); a list element's is where the
/// element starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions {
    lines: BTreeMap<String, usize>,
}

impl Positions {
    /// The positions of everything in `root`, the parsed `text`.
    pub(super) fn of(text: &str, root: &DeTable<'_>) -> Positions {
        let lines = Lines::of(text);
        let mut positions = Positions::default();
        positions.add_table("", root, &lines);
        positions
    }

    /// The line of `path`, else of the deepest key or element on its way that the file has:
    /// `feature_views.v.ttl` is on the line of `[feature_views.v]` when `ttl` is not written.
    pub fn line(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(line) = self.lines.get(path) {
                return Some(*line);
            }
            path = &path[..path.rfind(['.', '['])?];
        }
    }

    fn add_table(&mut self, prefix: &str, table: &DeTable<'_>, lines: &Lines) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            self.lines
                .insert(path.clone(), lines.line(key.span().start));
            self.add_value(&path, value.get_ref(), lines);
        }
    }

    fn add_value(&mut self, path: &str, value: &DeValue<'_>, lines: &Lines) {
        match value {
            DeValue::Table(table) => self.add_table(path, table, lines),
            DeValue::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    let path = format!("{path}[{index}]");
                    self.lines
                        .insert(path.clone(), lines.line(item.span().start));
                    self.add_value(&path, item.get_ref(), lines);
                }
            }
            _ => {}
        }
    }
}

/// The byte offset where each line of a text starts.
pub(super) struct Lines(Vec<usize>);

impl Lines {
    pub(super) fn of(text: &str) -> Lines {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(offset, _)| offset + 1))
            .collect();
        Lines(starts)
    }

    /// The 1-based line holding byte `offset`.
    pub(super) fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions(text: &str) -> Positions {
        Positions::of(text, DeTable::parse(text).unwrap().get_ref())
    }

    #[test]
    fn keys_headers_and_list_elements_have_lines() {
        let text = "\
[feature_views.v]
entities = [
  \"user\",
  \"movie\",
]
source = \"events\"

[on_demand_views.o]
transform = \"t\"
";
        let positions = positions(text);
        let lines: Vec<_> = [
            "feature_views.v.source",
            "feature_views.v.entities[1]",
            "feature_views.v.ttl",
            "on_demand_views.o.transform",
            "on_demand_views.missing.transform",
            "feature_services.s",
        ]
        .iter()
        .map(|path| positions.line(path))
        .collect();
        assert_eq!(lines, [Some(6), Some(4), Some(1), Some(9), Some(8), None]);
    }

    #[test]
    fn inline_tables_inside_lists_and_subtables() {
        let text = "\
[feature_views.a]
aggregations = [
  { name = \"n\", function = \"count\" },
  { name = \"m\",
    column = \"c\" },
]

[sources.s.schema]
rating = \"float64?\"
";
        let positions = positions(text);
        assert_eq!(
            positions.line("feature_views.a.aggregations[1].column"),
            Some(5)
        );
        assert_eq!(
            positions.line("feature_views.a.aggregations[0].window"),
            Some(3)
        );
        assert_eq!(
            positions.line("feature_views.a.aggregations[7].name"),
            Some(2)
        );
        assert_eq!(positions.line("sources.s.schema.rating"), Some(9));
        assert_eq!(positions.line("sources.s.schema"), Some(8));
        assert_eq!(positions.line("project"), None);
    }

    #[test]
    fn lines_count_from_one() {
        let lines = Lines::of("a\nbc\n\nd");
        let found: Vec<usize> = [0, 1, 2, 4, 5, 6, 99]
            .map(|offset| lines.line(offset))
            .to_vec();
        assert_eq!(found, [1, 1, 2, 2, 3, 4, 4]);
    }
}
