//! The difference between applied and proposed definitions, object by object, as
//! `lockstep plan` prints it and the HTTP API returns it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::stored;
use super::{ObjectKind, Resolved, TransformPin, format_ttl};

/// What applying some definitions would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// By kind (in [`ObjectKind`] order), then by name.
    pub changes: Vec<Change>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// One object created, updated or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ObjectKind,
    pub name: String,
    #[serde(flatten)]
    pub action: Action,
}

/// What happens to an object. JSON: `"action": "create" | "update" | "delete"`, with
/// `"details"` for updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Create,
    /// One line per changed field:
    /// `transform movie_watch_features@1 (sha256:ab12…) -> @2 (sha256:cd34…)`.
    Update {
        details: Vec<String>,
    },
    Delete,
}

/// The changes that turn `current` into `next`.
pub fn plan(current: &Resolved, next: &Resolved) -> Plan {
    let index = |resolved: &Resolved| -> BTreeMap<(ObjectKind, String), Value> {
        resolved
            .objects()
            .into_iter()
            .map(|object| ((object.kind, object.name), object.spec))
            .collect()
    };
    let before = index(current);
    let mut after = index(next);
    let mut changes: Vec<Change> = Vec::new();
    for ((kind, name), old) in before {
        let action = match after.remove(&(kind, name.clone())) {
            None => Action::Delete,
            Some(new) if new == old => continue,
            Some(new) => Action::Update {
                details: details(&old, &new),
            },
        };
        changes.push(Change { kind, name, action });
    }
    changes.extend(after.into_keys().map(|(kind, name)| Change {
        kind,
        name,
        action: Action::Create,
    }));
    changes.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    Plan { changes }
}

/// One line per top-level key whose value differs between two stored specs.
fn details(old: &Value, new: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut details = Vec::new();
    for key in keys {
        let (a, b) = (
            old.get(key).unwrap_or(&Value::Null),
            new.get(key).unwrap_or(&Value::Null),
        );
        if a == b {
            continue;
        }
        details.push(match key.as_str() {
            "transform" => transform_change(a, b),
            "ttl_seconds" => format!("ttl {} -> {}", ttl_text(a), ttl_text(b)),
            "schema" => map_change(key, a, b),
            _ if a.is_array() && b.is_array() => list_change(key, a, b),
            _ => format!("{key} {} -> {}", scalar_text(a), scalar_text(b)),
        });
    }
    if details.is_empty() {
        details.push("spec changed".to_owned());
    }
    details
}

/// `transform x@1 (sha256:…) -> @2 (sha256:…)`, naming the transform again when it changed.
fn transform_change(old: &Value, new: &Value) -> String {
    let pin = |value: &Value| stored::decode::<TransformPin>(value.clone()).ok();
    match (pin(old), pin(new)) {
        (Some(a), Some(b))
            if a.name == b.name && a.version == b.version && a.digest == b.digest =>
        {
            format!(
                "transform reference `{}` -> `{}` (still {b})",
                a.reference, b.reference
            )
        }
        (Some(a), Some(b)) if a.name == b.name => format!(
            "transform {a} -> @{} (sha256:{}…)",
            b.version,
            b.digest.short()
        ),
        (a, b) => format!(
            "transform {} -> {}",
            a.map_or_else(|| scalar_text(old), |pin| pin.to_string()),
            b.map_or_else(|| scalar_text(new), |pin| pin.to_string())
        ),
    }
}

fn ttl_text(value: &Value) -> String {
    value
        .as_u64()
        .map_or_else(|| scalar_text(value), format_ttl)
}

/// `schema: +col type, -col, col int64 -> int64?`.
fn map_change(key: &str, old: &Value, new: &Value) -> String {
    let empty = serde_json::Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let mut parts = Vec::new();
    for (name, value) in new {
        match old.get(name) {
            None => parts.push(format!("+{name} {}", scalar_text(value))),
            Some(before) if before != value => parts.push(format!(
                "{name} {} -> {}",
                scalar_text(before),
                scalar_text(value)
            )),
            Some(_) => {}
        }
    }
    parts.extend(
        old.keys()
            .filter(|name| !new.contains_key(*name))
            .map(|name| format!("-{name}")),
    );
    format!("{key}: {}", parts.join(", "))
}

/// `features: +a float64, -b utf8`, or `features reordered: …` when only the order changed.
fn list_change(key: &str, old: &Value, new: &Value) -> String {
    let items = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .map(|items| items.iter().map(item_text).collect())
            .unwrap_or_default()
    };
    let (old, new) = (items(old), items(new));
    let mut parts: Vec<String> = new
        .iter()
        .filter(|item| !old.contains(item))
        .map(|item| format!("+{item}"))
        .collect();
    parts.extend(
        old.iter()
            .filter(|item| !new.contains(item))
            .map(|item| format!("-{item}")),
    );
    if parts.is_empty() {
        format!("{key} reordered: {} -> {}", old.join(", "), new.join(", "))
    } else {
        format!("{key}: {}", parts.join(", "))
    }
}

/// A list element: a field as `name type?`, an input binding as `name type from …`, a
/// `[view, feature]` pair as `view:feature`, anything else as text.
fn item_text(item: &Value) -> String {
    if let Some(field) = field_text(item) {
        return field;
    }
    if let (Some(input), Some(provider)) =
        (item.get("input").and_then(field_text), item.get("provider"))
    {
        let from = match provider {
            Value::String(provider) => provider.replace('_', " "),
            Value::Object(map) => map
                .iter()
                .map(|(kind, name)| format!("{kind} {}", scalar_text(name)))
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        return format!("{input} from {from}");
    }
    if let Some([view, feature]) = item.as_array().map(Vec::as_slice) {
        return format!("{}:{}", scalar_text(view), scalar_text(feature));
    }
    scalar_text(item)
}

fn field_text(item: &Value) -> Option<String> {
    let field: crate::model::FieldSpec = serde_json::from_value(item.clone()).ok()?;
    Some(field.to_string())
}

/// Strings bare, nothing as `none`, anything else as compact JSON.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => "none".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

impl fmt::Display for Plan {
    /// One line per change, terraform style: `+ feature_view x`,
    /// `~ feature_view y: transform … -> …; ttl 1d -> 7d`, `- source z`; or `no changes`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return f.write_str("no changes");
        }
        for (index, change) in self.changes.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            match &change.action {
                Action::Create => write!(f, "+ {} {}", change.kind, change.name)?,
                Action::Delete => write!(f, "- {} {}", change.kind, change.name)?,
                Action::Update { details } => write!(
                    f,
                    "~ {} {}: {}",
                    change.kind,
                    change.name,
                    details.join("; ")
                )?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{
        MOVIES, WATCH_INPUTS, WATCH_OUTPUTS, catalog, movies, resolved_movies, version,
    };
    use super::super::{Catalog, resolve, resolve_text};
    use super::*;

    #[test]
    fn a_first_apply_creates_everything_in_kind_order() {
        let next = resolved_movies();
        let plan = plan(&Resolved::empty("movies"), &next);
        assert_eq!(plan.changes.len(), next.objects().len());
        assert!(
            plan.changes
                .iter()
                .all(|change| change.action == Action::Create)
        );
        let text = plan.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "+ entity movie");
        assert_eq!(lines[2], "+ source movie_metadata");
        assert_eq!(lines[6], "+ feature_view movie_metadata_features");
        assert_eq!(lines[9], "+ on_demand_view movie_scorer");
        assert_eq!(lines[11], "+ feature_service movie_recommendation_service");
    }

    #[test]
    fn applying_the_same_definitions_changes_nothing() {
        let plan = plan(&resolved_movies(), &resolved_movies());
        assert!(plan.is_empty());
        assert_eq!(plan.to_string(), "no changes");
        assert_eq!(
            serde_json::to_value(&plan).unwrap(),
            serde_json::json!({"changes": []})
        );
    }

    #[test]
    fn updates_say_what_changed() {
        let current = resolved_movies();
        let catalog = Catalog::new(
            vec![
                version("movie_watch_features", 1, WATCH_INPUTS, WATCH_OUTPUTS),
                version(
                    "movie_watch_features",
                    2,
                    WATCH_INPUTS,
                    "watch_time_minutes float64, completion_rate float64",
                ),
                version(
                    "movie_recommendation_scorer",
                    1,
                    super::super::fixtures::SCORER_INPUTS,
                    super::super::fixtures::SCORER_OUTPUTS,
                ),
            ],
            Vec::new(),
        );
        let text = MOVIES
            .replace("movie_watch_features@1", "movie_watch_features@2")
            .replace("ttl = \"7d\"", "ttl = \"36h\"")
            .replace("favorite_genre = \"utf8?\", ", "")
            .replace(", \"favorite_genre\"]", "]")
            .replace("\"user_profile_features:favorite_genre\",", "")
            .replace(
                "[feature_services.movie_interaction_service]\nfeatures = [\"user_movie_interaction_features:*\"]\n",
                "",
            )
            .replace("description = \"A viewer.\"", "description = \"Someone watching.\"")
            .replace("candidate_genre = \"utf8\", ", "candidate_genre = \"utf8\", device = \"utf8?\", ");
        // favorite_genre is a scorer input: give it from the request instead.
        let text = text.replace("device = \"utf8?\"", "favorite_genre = \"utf8?\"");
        let next = resolve_text(&text, &catalog).unwrap();
        let plan = plan(&current, &next);
        let watch1 = catalog
            .resolve("movie_watch_features@1")
            .unwrap()
            .digest
            .short();
        let watch2 = catalog
            .resolve("movie_watch_features@2")
            .unwrap()
            .digest
            .short();
        assert_eq!(
            plan.to_string(),
            [
                "~ entity user: description A viewer. -> Someone watching.",
                "~ source movie_request: schema: +favorite_genre utf8?",
                "~ source user_profiles: schema: -favorite_genre",
                &format!(
                    "~ feature_view user_movie_interaction_features: features: -is_high_rating \
                     boolean?; transform movie_watch_features@1 (sha256:{watch1}…) -> @2 \
                     (sha256:{watch2}…)"
                ),
                "~ feature_view user_profile_features: features: -favorite_genre utf8?; ttl 7d \
                 -> 36h",
                "~ on_demand_view movie_scorer: inputs: +favorite_genre utf8? from request, \
                 -favorite_genre utf8? from view user_profile_features",
                "- feature_service movie_interaction_service",
                "~ feature_service movie_recommendation_service: features: \
                 -user_profile_features:favorite_genre",
            ]
            .join("\n")
        );
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(
            json["changes"][0],
            serde_json::json!({
                "kind": "entity",
                "name": "user",
                "action": "update",
                "details": ["description A viewer. -> Someone watching."],
            })
        );
        assert_eq!(
            json["changes"][6],
            serde_json::json!({
                "kind": "feature_service",
                "name": "movie_interaction_service",
                "action": "delete",
            })
        );
        assert_eq!(serde_json::from_value::<Plan>(json).unwrap(), plan);
    }

    #[test]
    fn transform_changes_read_naturally() {
        let mut parsed = movies();
        let definitions = &mut parsed.definitions;
        let view = definitions
            .feature_views
            .get_mut("user_movie_interaction_features")
            .unwrap();
        view.transform = Some("movie_watch_features@latest".into());
        let current = resolved_movies();
        let same_version = resolve(&parsed, &catalog()).unwrap();
        assert_eq!(
            plan(&current, &same_version).to_string(),
            "~ feature_view user_movie_interaction_features: transform reference \
             `movie_watch_features@1` -> `movie_watch_features@latest` (still \
             movie_watch_features@1 (sha256:"
                .to_owned()
                + &catalog()
                    .resolve("movie_watch_features@1")
                    .unwrap()
                    .digest
                    .short()
                + "…))"
        );

        // Dropping the transform: the view now serves source columns.
        let mut parsed = movies();
        let definitions = &mut parsed.definitions;
        let view = definitions
            .feature_views
            .get_mut("user_movie_interaction_features")
            .unwrap();
        view.transform = None;
        view.features = Some(vec!["watch_seconds".into()]);
        definitions
            .feature_services
            .remove("movie_interaction_service");
        let untransformed = resolve(&parsed, &catalog()).unwrap();
        let text = plan(&current, &untransformed).to_string();
        let (text, rest) = text.split_once('\n').unwrap();
        assert_eq!(rest, "- feature_service movie_interaction_service");
        assert!(
            text.contains(
                "features: +watch_seconds int64, -watch_time_minutes float64, \
                 -completion_rate float64, -is_high_rating boolean?; transform \
                 movie_watch_features@1 (sha256:"
            ),
            "{text}"
        );
        assert!(text.ends_with("…) -> none"), "{text}");
    }

    #[test]
    fn deletes_come_in_kind_order_too() {
        let plan = plan(&resolved_movies(), &Resolved::empty("movies"));
        let kinds: Vec<ObjectKind> = plan.changes.iter().map(|change| change.kind).collect();
        assert!(kinds.is_sorted());
        assert!(
            plan.changes
                .iter()
                .all(|change| change.action == Action::Delete)
        );
        assert!(
            plan.to_string()
                .starts_with("- entity movie\n- entity user\n- source ")
        );
    }
}
