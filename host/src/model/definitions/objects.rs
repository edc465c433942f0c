//! Resolved definitions as a flat list of named, kinded JSON objects in their stored form
//! ([`super::stored`]): the registry stores each as a versioned row and rebuilds
//! [`Resolved`] from them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::stored::{self, Stored};
use super::{DEFAULT_PROJECT, Resolved};

/// The kinds of definition objects, in dependency order (an object only refers to kinds
/// before its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Entity,
    Source,
    FeatureView,
    OnDemandView,
    FeatureService,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 5] = [
        ObjectKind::Entity,
        ObjectKind::Source,
        ObjectKind::FeatureView,
        ObjectKind::OnDemandView,
        ObjectKind::FeatureService,
    ];

    /// `entity`, `source`, `feature_view`, `on_demand_view`, `feature_service`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Entity => "entity",
            ObjectKind::Source => "source",
            ObjectKind::FeatureView => "feature_view",
            ObjectKind::OnDemandView => "on_demand_view",
            ObjectKind::FeatureService => "feature_service",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ObjectKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown object kind `{s}`; expected one of entity, source, feature_view, \
                     on_demand_view, feature_service"
                )
            })
    }
}

/// One definition object as the registry stores it. `spec` is the stored form of the
/// resolved object (an [`super::Entity`], [`super::Source`], [`super::ResolvedFeatureView`],
/// [`super::ResolvedOnDemandView`] or [`super::ResolvedFeatureService`]) plus a `project`
/// key naming its project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredObject {
    pub kind: ObjectKind,
    pub name: String,
    pub spec: serde_json::Value,
}

impl Resolved {
    /// Every object, by kind in [`ObjectKind`] order then by name.
    pub fn objects(&self) -> Vec<StoredObject> {
        let mut objects = Vec::new();
        self.push_objects(ObjectKind::Entity, &self.entities, &mut objects);
        self.push_objects(ObjectKind::Source, &self.sources, &mut objects);
        self.push_objects(ObjectKind::FeatureView, &self.feature_views, &mut objects);
        self.push_objects(
            ObjectKind::OnDemandView,
            &self.on_demand_views,
            &mut objects,
        );
        self.push_objects(
            ObjectKind::FeatureService,
            &self.feature_services,
            &mut objects,
        );
        objects
    }

    fn push_objects<T: Stored>(
        &self,
        kind: ObjectKind,
        map: &BTreeMap<String, T>,
        out: &mut Vec<StoredObject>,
    ) {
        for (name, object) in map {
            let mut spec = stored::encode(object);
            spec.insert("project".to_owned(), self.project.clone().into());
            out.push(StoredObject {
                kind,
                name: name.clone(),
                spec: serde_json::Value::Object(spec),
            });
        }
    }

    /// Rebuilds definitions from their stored objects, the inverse of [`Resolved::objects`].
    /// The project comes from the objects (all must agree); with no objects it is
    /// [`DEFAULT_PROJECT`], so prefer [`Resolved::empty`] when the project is known.
    pub fn from_objects(objects: Vec<StoredObject>) -> Result<Resolved, String> {
        let mut project: Option<String> = None;
        let mut resolved = Resolved::empty(DEFAULT_PROJECT);
        for object in objects {
            let StoredObject { kind, name, spec } = object;
            let serde_json::Value::Object(mut fields) = spec else {
                return Err(format!(
                    "{kind} `{name}`: the stored spec is not a JSON object"
                ));
            };
            let object_project = match fields.remove("project") {
                Some(serde_json::Value::String(object_project)) => object_project,
                _ => return Err(format!("{kind} `{name}`: the stored spec names no project")),
            };
            match &project {
                Some(first) if *first != object_project => {
                    return Err(format!(
                        "{kind} `{name}` belongs to project `{object_project}`, not `{first}`"
                    ));
                }
                Some(_) => {}
                None => project = Some(object_project),
            }
            stored::take_format(&mut fields)
                .map_err(|error| format!("{kind} `{name}`: {error}"))?;
            let spec = serde_json::Value::Object(fields);
            match kind {
                ObjectKind::Entity => insert(kind, name, spec, &mut resolved.entities)?,
                ObjectKind::Source => insert(kind, name, spec, &mut resolved.sources)?,
                ObjectKind::FeatureView => insert(kind, name, spec, &mut resolved.feature_views)?,
                ObjectKind::OnDemandView => {
                    insert(kind, name, spec, &mut resolved.on_demand_views)?;
                }
                ObjectKind::FeatureService => {
                    insert(kind, name, spec, &mut resolved.feature_services)?;
                }
            }
        }
        if let Some(project) = project {
            resolved.project = project;
        }
        Ok(resolved)
    }
}

fn insert<T: Stored>(
    kind: ObjectKind,
    name: String,
    spec: serde_json::Value,
    map: &mut BTreeMap<String, T>,
) -> Result<(), String> {
    let object = stored::decode(spec)
        .map_err(|error| format!("{kind} `{name}`: invalid stored spec: {error}"))?;
    if map.contains_key(&name) {
        return Err(format!("{kind} `{name}` is stored twice"));
    }
    map.insert(name, object);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::fixtures::resolved_movies;
    use super::super::{check, resolve_text};
    use super::*;

    #[test]
    fn objects_round_trip_exactly() {
        let resolved = resolved_movies();
        let objects = resolved.objects();
        assert_eq!(objects.len(), 2 + 4 + 3 + 1 + 2);
        let kinds: Vec<ObjectKind> = objects.iter().map(|object| object.kind).collect();
        assert!(kinds.is_sorted(), "{kinds:?}");
        assert_eq!(
            Resolved::from_objects(objects.clone()),
            Ok(resolved.clone())
        );

        // Through text too, as a database column would hold them, in any order.
        let mut stored: Vec<StoredObject> = objects
            .iter()
            .map(|object| {
                let text = serde_json::to_string(object).unwrap();
                serde_json::from_str(&text).unwrap()
            })
            .collect();
        stored.reverse();
        assert_eq!(Resolved::from_objects(stored), Ok(resolved));
    }

    #[test]
    fn stored_specs_are_plain_json() {
        let objects = resolved_movies().objects();
        let view = objects
            .iter()
            .find(|object| object.name == "user_movie_interaction_features")
            .unwrap();
        assert_eq!(view.kind, ObjectKind::FeatureView);
        assert_eq!(view.spec["project"], "movies");
        assert_eq!(
            view.spec["transform"]["reference"],
            "movie_watch_features@1"
        );
        assert_eq!(view.spec["transform"]["version"], 1);
        assert_eq!(
            view.spec["join_keys"][0],
            serde_json::json!({"name": "user_id", "type": "int64", "nullable": false})
        );
        assert_eq!(view.spec["ttl_seconds"], 86_400);
        let source = objects
            .iter()
            .find(|object| object.name == "watch_events")
            .unwrap();
        assert_eq!(source.spec["schema"]["rating"], "float64?");
        assert_eq!(
            serde_json::to_value(source).unwrap()["kind"],
            serde_json::json!("source")
        );
    }

    #[test]
    fn an_empty_project_round_trips_through_empty() {
        let empty = Resolved::empty("movies");
        assert!(empty.objects().is_empty());
        assert_eq!(
            Resolved::from_objects(Vec::new()),
            Ok(Resolved::empty(DEFAULT_PROJECT))
        );
    }

    #[test]
    fn bad_stored_objects_are_rejected() {
        let objects = resolved_movies().objects();
        let mut twice = objects.clone();
        twice.push(objects[0].clone());
        assert_eq!(
            Resolved::from_objects(twice),
            Err("entity `movie` is stored twice".to_owned())
        );

        let mut mixed = objects.clone();
        mixed[1].spec["project"] = "other".into();
        assert_eq!(
            Resolved::from_objects(mixed),
            Err("entity `user` belongs to project `other`, not `movies`".to_owned())
        );

        let mut unknown_key = objects.clone();
        unknown_key[0].spec["colour"] = "red".into();
        let error = Resolved::from_objects(unknown_key).unwrap_err();
        assert!(
            error.starts_with("entity `movie`: invalid stored spec: unknown field `colour`"),
            "{error}"
        );

        let mut no_project = objects.clone();
        no_project[0]
            .spec
            .as_object_mut()
            .unwrap()
            .remove("project");
        assert_eq!(
            Resolved::from_objects(no_project),
            Err("entity `movie`: the stored spec names no project".to_owned())
        );

        let mut not_object = objects;
        not_object[0].spec = serde_json::json!([1]);
        assert_eq!(
            Resolved::from_objects(not_object),
            Err("entity `movie`: the stored spec is not a JSON object".to_owned())
        );
    }

    /// Format 1 as the first versions wrote it, captured from them: it must stay readable, and
    /// this build must still write it byte for byte (the registry compares stored specs to
    /// find what changed).
    #[test]
    fn format_1_objects_read_and_write_as_captured() {
        let directory = check::directory().join("stored");
        let text = std::fs::read_to_string(directory.join("v1.toml")).unwrap();
        let captured = std::fs::read_to_string(directory.join("v1.json")).unwrap();
        let objects: Vec<StoredObject> = serde_json::from_str(&captured).unwrap();
        let resolved = resolve_text(&text, &check::catalog_of(&text)).unwrap();
        assert_eq!(
            Resolved::from_objects(objects.clone()),
            Ok(resolved.clone())
        );
        assert_eq!(resolved.objects(), objects);
        assert_eq!(
            serde_json::to_string_pretty(&resolved.objects()).unwrap() + "\n",
            captured
        );
        let kinds: BTreeSet<ObjectKind> = objects.iter().map(|object| object.kind).collect();
        assert_eq!(kinds.len(), ObjectKind::ALL.len());
    }

    #[test]
    fn the_format_key_says_which_format_a_spec_is_in() {
        let resolved = resolved_movies();
        let mut objects = resolved.objects();
        for object in &mut objects {
            object.spec["format"] = 1.into();
        }
        assert_eq!(Resolved::from_objects(objects.clone()), Ok(resolved));
        objects[3].spec["format"] = 2.into();
        assert_eq!(
            Resolved::from_objects(objects.clone()),
            Err(
                "source `movie_request`: stored format 2: this build reads format 1 (a newer \
                 Lockstep may have written it)"
                    .to_owned()
            )
        );
        objects[3].spec["format"] = "1".into();
        assert!(
            Resolved::from_objects(objects)
                .unwrap_err()
                .starts_with("source `movie_request`: stored format \"1\"")
        );
    }

    #[test]
    fn kinds_have_stable_names() {
        for kind in ObjectKind::ALL {
            assert_eq!(kind.as_str().parse::<ObjectKind>(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert!("view".parse::<ObjectKind>().is_err());
    }
}
