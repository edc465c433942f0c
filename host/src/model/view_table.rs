//! A feature view's stored form, shared by the offline table and the online keys: its name
//! (one per version of the view's schema and transform, so a changed view never rewrites
//! stored values) and its columns.

use serde::Serialize;

use super::aggregation::AggregationSpec;
use super::definitions::ResolvedFeatureView;
use super::{Digest, FieldSpec, ValueType};

/// The event time of a feature row.
pub const EVENT_TS: &str = "event_ts";
/// When the row was created at its source; breaks ties between equal event times.
pub const CREATED_TS: &str = "created_ts";
/// The sha256 of the transform that produced the row; null for views without one.
pub const TRANSFORM_DIGEST: &str = "transform_digest";

/// Longest table name Postgres keeps without truncating.
const MAX_NAME: usize = 63;

/// A feature view as stored: the offline table and the online keys of one version of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ViewTable {
    pub project: String,
    pub view: String,
    /// `{project}__{view}__{8 hex}`: the hex fingerprints keys, features and transform.
    pub name: String,
    pub join_keys: Vec<FieldSpec>,
    /// The stored columns: the view's features or, for an aggregated view, its events'
    /// aggregated columns.
    pub features: Vec<FieldSpec>,
    pub ttl_seconds: Option<u64>,
    pub transform: Option<Digest>,
    /// An aggregated view's aggregations: the offline rows are its events and the online
    /// values its aggregation states (`crate::aggregate`).
    pub aggregation: Option<AggregationSpec>,
}

impl ViewTable {
    /// The table of `view` as currently defined.
    pub fn for_view(project: &str, name: &str, view: &ResolvedFeatureView) -> Self {
        let stored = match &view.aggregation {
            Some(aggregation) => aggregation.inputs(),
            None => view.features.clone(),
        };
        Self::new(
            project,
            name,
            view.join_keys.clone(),
            stored,
            view.ttl_seconds,
            view.transform.as_ref().map(|pin| pin.digest),
        )
        .aggregated(view.aggregation.clone())
    }

    pub fn new(
        project: &str,
        view: &str,
        join_keys: Vec<FieldSpec>,
        features: Vec<FieldSpec>,
        ttl_seconds: Option<u64>,
        transform: Option<Digest>,
    ) -> Self {
        let mut table = Self {
            project: project.to_owned(),
            view: view.to_owned(),
            name: String::new(),
            join_keys,
            features,
            ttl_seconds,
            transform,
            aggregation: None,
        };
        table.name = table.versioned_name();
        table
    }

    /// The table with `aggregation` (which is part of its identity, so of its name).
    pub fn aggregated(mut self, aggregation: Option<AggregationSpec>) -> Self {
        self.aggregation = aggregation;
        self.name = self.versioned_name();
        self
    }

    /// `{project}__{view}__{8 hex}`, the hex a fingerprint of keys, columns, transform and
    /// aggregations.
    fn versioned_name(&self) -> String {
        let (project, view) = (&self.project, &self.view);
        let mut identity = serde_json::json!({
            "project": project,
            "view": view,
            "join_keys": self.join_keys,
            "features": self.features,
            "transform": self.transform.map(|digest| digest.to_string()),
        });
        if let Some(aggregation) = &self.aggregation {
            identity["aggregation"] = serde_json::json!(aggregation);
        }
        let fingerprint = Digest::of(identity.to_string().as_bytes()).short();
        let fingerprint = &fingerprint[..8.min(fingerprint.len())];
        let mut stem = format!("{project}__{view}");
        let room = MAX_NAME - fingerprint.len() - 2;
        if stem.len() > room {
            stem.truncate(room);
        }
        format!("{stem}__{fingerprint}")
    }

    /// The columns of a stored row: join keys, [`EVENT_TS`], [`CREATED_TS`], features,
    /// [`TRANSFORM_DIGEST`].
    pub fn row_fields(&self) -> Vec<FieldSpec> {
        let timestamp = |name: &str| FieldSpec {
            name: name.to_owned(),
            value_type: ValueType::Timestamp,
            nullable: false,
        };
        let mut fields = self.join_keys.clone();
        fields.push(timestamp(EVENT_TS));
        fields.push(timestamp(CREATED_TS));
        fields.extend(self.features.iter().cloned());
        fields.push(FieldSpec {
            name: TRANSFORM_DIGEST.to_owned(),
            value_type: ValueType::Utf8,
            nullable: true,
        });
        fields
    }

    /// The features clients get: the aggregates of an aggregated view, else the stored
    /// features.
    pub fn served_features(&self) -> Vec<FieldSpec> {
        match &self.aggregation {
            Some(aggregation) => aggregation.outputs(),
            None => self.features.clone(),
        }
    }

    /// The feature called `name`.
    pub fn feature(&self, name: &str) -> Option<&FieldSpec> {
        self.features.iter().find(|feature| feature.name == name)
    }

    /// Rejects column names that collide with each other or with the bookkeeping columns.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for field in self.row_fields() {
            if !seen.insert(field.name.clone()) {
                return Err(format!(
                    "column `{}` appears twice (`{EVENT_TS}`, `{CREATED_TS}` and \
                     `{TRANSFORM_DIGEST}` are reserved)",
                    field.name
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str) -> FieldSpec {
        FieldSpec {
            name: name.into(),
            value_type: ValueType::Int64,
            nullable: false,
        }
    }

    #[test]
    fn names_change_with_the_schema_and_fit_postgres() {
        let table = ViewTable::new(
            "movies",
            "v",
            vec![field("k")],
            vec![field("a")],
            None,
            None,
        );
        assert!(table.name.starts_with("movies__v__"));
        assert_eq!(table.name.len(), "movies__v__".len() + 8);
        let other = ViewTable::new(
            "movies",
            "v",
            vec![field("k")],
            vec![field("b")],
            None,
            None,
        );
        assert_ne!(table.name, other.name);
        let long = ViewTable::new(&"p".repeat(40), &"v".repeat(40), vec![], vec![], None, None);
        assert_eq!(long.name.len(), MAX_NAME);
        assert!(table.check().is_ok());
        let clash = ViewTable::new(
            "p",
            "v",
            vec![field("k")],
            vec![field(EVENT_TS)],
            None,
            None,
        );
        assert!(clash.check().unwrap_err().contains("appears twice"));
    }
}
