//! SQL text shared by both offline backends, which differ only where the dialects do:
//! column types, and how the point-in-time lookup picks one row per entity row.

use arrow::array::{Int64Array, RecordBatch, StringArray};

use super::{PitView, Rows};
use crate::model::ValueType;
use crate::model::{CREATED_TS, EVENT_TS, TRANSFORM_DIGEST, ViewTable};

/// The SQL dialect of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// The entity-row number column of the point-in-time temporary table.
pub const ROW_ID: &str = "row_id";

/// A quoted identifier: names are checked identifiers, but quoting keeps their case.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Dialect {
    /// The column type of `value_type`. SQLite keeps timestamps as µs integers and floats as
    /// their 8 IEEE 754 bytes (its REAL loses NaN and -0.0).
    pub fn column_type(self, value_type: ValueType) -> &'static str {
        match (self, value_type) {
            (Dialect::Postgres, ValueType::Int64) => "BIGINT",
            (Dialect::Postgres, ValueType::Float64) => "DOUBLE PRECISION",
            (Dialect::Postgres, ValueType::Utf8) => "TEXT",
            (Dialect::Postgres, ValueType::Boolean) => "BOOLEAN",
            (Dialect::Postgres, ValueType::Timestamp) => "TIMESTAMPTZ",
            (Dialect::Sqlite, ValueType::Int64 | ValueType::Timestamp | ValueType::Boolean) => {
                "INTEGER"
            }
            (Dialect::Sqlite, ValueType::Float64) => "BLOB",
            (Dialect::Sqlite, ValueType::Utf8) => "TEXT",
        }
    }

    /// Column definitions (`"name" TYPE`) for `fields`, without constraints.
    pub fn column_defs(self, fields: &[crate::model::FieldSpec]) -> String {
        fields
            .iter()
            .map(|field| {
                format!(
                    "{} {}",
                    ident(&field.name),
                    self.column_type(field.value_type)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `CREATE TABLE IF NOT EXISTS` for a view's table (named by `qualified`), keyed by join
    /// keys and event time; the primary key is the point-in-time index.
    pub fn create_table(self, qualified: &str, table: &ViewTable) -> String {
        let columns: Vec<String> = table
            .row_fields()
            .iter()
            .map(|field| {
                let null = if field.nullable { "" } else { " NOT NULL" };
                format!(
                    "{} {}{null}",
                    ident(&field.name),
                    self.column_type(field.value_type)
                )
            })
            .collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {qualified} ({}, PRIMARY KEY ({}))",
            columns.join(", "),
            key_columns(table).join(", ")
        )
    }

    /// The upsert of staged rows into a view's table: rows only replace rows with the same
    /// keys and event time, only when not older by `created_ts`, and only when different.
    /// `select` yields the row columns, deduplicated on the key.
    pub fn upsert(self, qualified: &str, table: &ViewTable, select: &str) -> String {
        let fields = table.row_fields();
        let names: Vec<String> = fields.iter().map(|field| ident(&field.name)).collect();
        let keys = key_columns(table);
        let updated: Vec<String> = fields
            .iter()
            .map(|field| ident(&field.name))
            .filter(|name| !keys.contains(name))
            .collect();
        let set: Vec<String> = updated
            .iter()
            .map(|name| format!("{name} = excluded.{name}"))
            .collect();
        let current: Vec<String> = updated.iter().map(|name| format!("t.{name}")).collect();
        let incoming: Vec<String> = updated
            .iter()
            .map(|name| format!("excluded.{name}"))
            .collect();
        let distinct = match self {
            Dialect::Postgres => "IS DISTINCT FROM",
            Dialect::Sqlite => "IS NOT",
        };
        let created = ident(CREATED_TS);
        format!(
            "INSERT INTO {qualified} AS t ({names}) {select} \
             ON CONFLICT ({keys}) DO UPDATE SET {set} \
             WHERE t.{created} < excluded.{created} \
             OR (t.{created} = excluded.{created} AND ({current}) {distinct} ({incoming}))",
            names = names.join(", "),
            keys = keys.join(", "),
            set = set.join(", "),
            current = current.join(", "),
            incoming = incoming.join(", "),
        )
    }

    /// Every row of a table in key and time order.
    pub fn scan(self, qualified: &str, table: &ViewTable) -> String {
        let names: Vec<String> = table.row_fields().iter().map(|f| ident(&f.name)).collect();
        format!(
            "SELECT {} FROM {qualified} ORDER BY {}",
            names.join(", "),
            key_columns(table).join(", ")
        )
    }

    /// A timestamp (µs) as a literal of this dialect: exact, and safe to inline in
    /// statements that take no parameters (`COPY`).
    pub fn timestamp_literal(self, micros: i64) -> String {
        match self {
            Dialect::Postgres => {
                format!("TIMESTAMPTZ '{}'", crate::model::format_timestamp(micros))
            }
            Dialect::Sqlite => micros.to_string(),
        }
    }

    /// The query of [`Rows`] over a view's table, in the layout of
    /// [`ViewTable::row_fields`]: what materialization and the aggregations' join read.
    pub fn stream(self, qualified: &str, table: &ViewTable, rows: &Rows) -> String {
        // Events are replayed, not stored again: their digests would only be transferred.
        let skip_digest = matches!(rows, Rows::Events { .. });
        let names: Vec<String> = table
            .row_fields()
            .iter()
            .map(|f| match f.name.as_str() {
                TRANSFORM_DIGEST if skip_digest => format!("NULL AS {}", ident(TRANSFORM_DIGEST)),
                name => ident(name),
            })
            .collect();
        let keys: Vec<String> = table.join_keys.iter().map(|k| ident(&k.name)).collect();
        let event = ident(EVENT_TS);
        let (from, to) = match rows {
            Rows::LatestPerKey { from, to } => (Some(*from), *to),
            Rows::Events { to, .. } => (None, *to),
        };
        let mut window = format!("{event} < {}", self.timestamp_literal(to));
        if let Some(from) = from {
            window = format!("{event} >= {} AND {window}", self.timestamp_literal(from));
        }
        if let Rows::Events {
            keys: Some(wanted), ..
        } = rows
        {
            window = if wanted.num_rows() == 0 {
                format!("{window} AND FALSE")
            } else {
                format!(
                    "{window} AND ({}) IN ({})",
                    keys.join(", "),
                    key_tuples(wanted)
                )
            };
        }
        match (rows, self) {
            // The primary-key index, read forwards.
            (Rows::Events { .. }, _) => format!(
                "SELECT {} FROM {qualified} WHERE {window} ORDER BY {}",
                names.join(", "),
                key_columns(table).join(", ")
            ),
            // The primary-key index read backwards gives each key's newest row first.
            (Rows::LatestPerKey { .. }, Dialect::Postgres) => {
                let descending: Vec<String> = key_columns(table)
                    .iter()
                    .map(|column| format!("{column} DESC"))
                    .collect();
                format!(
                    "SELECT DISTINCT ON ({}) {} FROM {qualified} WHERE {window} ORDER BY {}",
                    keys.join(", "),
                    names.join(", "),
                    descending.join(", ")
                )
            }
            (Rows::LatestPerKey { .. }, Dialect::Sqlite) => format!(
                "SELECT {names} FROM (SELECT {names}, row_number() OVER \
                 (PARTITION BY {keys} ORDER BY {event} DESC) AS newest \
                 FROM {qualified} WHERE {window}) WHERE newest = 1",
                names = names.join(", "),
                keys = keys.join(", "),
            ),
        }
    }

    /// The point-in-time query of one view over the entity table `entities` (columns
    /// [`ROW_ID`], [`EVENT_TS`] and the join keys): for every entity row, its row id and the
    /// view's features (null when no row matches). The entity rows are visited in the view's
    /// key order, so consecutive lookups walk neighbouring index pages; the caller puts the
    /// results back in row order by id. `source` is the view table's qualified name.
    pub fn point_in_time(self, entities: &str, view: &PitView, source: &str) -> String {
        let event = ident(EVENT_TS);
        let table = &view.table;
        let mut conditions: Vec<String> = table
            .join_keys
            .iter()
            .map(|key| format!("h.{k} = e.{k}", k = ident(&key.name)))
            .collect();
        conditions.push(format!("h.{event} <= e.{event}"));
        if let Some(ttl) = table.ttl_seconds {
            conditions.push(match self {
                Dialect::Postgres => {
                    format!("h.{event} >= e.{event} - make_interval(secs => {ttl})")
                }
                Dialect::Sqlite => format!("h.{event} >= e.{event} - {}", ttl * 1_000_000),
            });
        }
        // Keys and event time are the primary key, and the upsert kept the row with the
        // greatest created time for each: the newest event time alone picks the row, so the
        // lookup is one backward step in the primary-key index.
        let latest = format!(
            "FROM {source} AS h WHERE {} ORDER BY h.{event} DESC LIMIT 1",
            conditions.join(" AND ")
        );
        let order = key_columns(table).join(", ");
        let row_id = ident(ROW_ID);
        let features = |alias: &str| -> Vec<String> {
            std::iter::once(format!("e.{row_id}"))
                .chain(
                    view.features
                        .iter()
                        .map(|feature| format!("{alias}.{}", ident(feature))),
                )
                .collect()
        };
        match self {
            Dialect::Postgres => {
                let columns: Vec<String> = view
                    .features
                    .iter()
                    .map(|feature| format!("h.{}", ident(feature)))
                    .collect();
                let columns = if columns.is_empty() {
                    "1".to_owned()
                } else {
                    columns.join(", ")
                };
                format!(
                    "SELECT {} FROM (SELECT * FROM {entities} ORDER BY {order}) AS e \
                     LEFT JOIN LATERAL (SELECT {columns} {latest}) AS v ON true",
                    features("v").join(", ")
                )
            }
            Dialect::Sqlite => format!(
                "SELECT {} FROM {entities} AS e \
                 LEFT JOIN {source} AS v ON v.rowid = (SELECT h.rowid {latest}) ORDER BY {}",
                features("v").join(", "),
                table
                    .join_keys
                    .iter()
                    .map(|key| format!("e.{}", ident(&key.name)))
                    .chain([format!("e.{event}")])
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// The primary key: join keys, then event time.
/// A service's logged responses from `feature_log` (its qualified name), oldest first:
/// binds project, service, since (µs), limit; rows for `LogRecord::from_row`.
pub fn read_feature_logs(feature_log: &str) -> String {
    format!(
        "SELECT project, service, logged_at, request_ts, digests, payload FROM {feature_log} \
         WHERE project = $1 AND service = $2 AND logged_at >= $3 \
         ORDER BY logged_at, id LIMIT $4"
    )
}

/// The rows of join-key columns as SQL tuples, `(1, 'a'), (2, 'b')`: int64 as numbers, utf8
/// as quoted strings (both dialects double a quote inside one).
fn key_tuples(keys: &RecordBatch) -> String {
    let columns = keys.columns();
    (0..keys.num_rows())
        .map(|row| {
            let values: Vec<String> = columns
                .iter()
                .map(|column| {
                    if let Some(ints) = column.as_any().downcast_ref::<Int64Array>() {
                        ints.value(row).to_string()
                    } else if let Some(texts) = column.as_any().downcast_ref::<StringArray>() {
                        format!("'{}'", texts.value(row).replace('\'', "''"))
                    } else {
                        unreachable!("keys to filter by are int64 or utf8 (checked by the caller)")
                    }
                })
                .collect();
            format!("({})", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_columns(table: &ViewTable) -> Vec<String> {
    table
        .join_keys
        .iter()
        .map(|key| ident(&key.name))
        .chain([ident(EVENT_TS)])
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::FieldSpec;

    #[test]
    fn events_of_some_keys_are_filtered_by_quoted_tuples() {
        let key = |name: &str, value_type| FieldSpec {
            name: name.into(),
            value_type,
            nullable: false,
        };
        let keys = vec![
            key("user_id", ValueType::Int64),
            key("country", ValueType::Utf8),
        ];
        let table = ViewTable::new("p", "v", keys.clone(), vec![], None, None);
        let wanted = RecordBatch::try_new(
            crate::model::arrow_schema(&keys),
            vec![
                Arc::new(Int64Array::from(vec![7, -2])),
                Arc::new(StringArray::from(vec!["FR", "x'); DROP TABLE t; --"])),
            ],
        )
        .unwrap();
        let rows = Rows::Events {
            to: 5,
            keys: Some(wanted.clone()),
        };
        let sql = Dialect::Sqlite.stream("t", &table, &rows);
        assert!(
            sql.contains(
                r#"("user_id", "country") IN ((7, 'FR'), (-2, 'x''); DROP TABLE t; --'))"#
            ),
            "{sql}"
        );
        assert!(sql.contains("NULL AS \"transform_digest\""), "{sql}");
        let none = Rows::Events {
            to: 5,
            keys: Some(wanted.slice(0, 0)),
        };
        assert!(
            Dialect::Postgres
                .stream("t", &table, &none)
                .contains("AND FALSE")
        );
    }
}
