//! The uploaded transform versions and aliases that definitions refer to, and the rules
//! that turn a reference (`name@3`, `name@alias`, `name`, `sha256:…`) into one version.

use std::collections::BTreeMap;

use crate::model::{Digest, TransformVersion};

/// Every uploaded version of every transform, with their aliases.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Versions by transform name, in ascending version order.
    versions: BTreeMap<String, Vec<TransformVersion>>,
    /// Alias → version, by transform name.
    aliases: BTreeMap<String, BTreeMap<String, u32>>,
}

impl Catalog {
    /// A catalog of `versions` and `aliases` given as `(transform name, alias, version)`.
    pub fn new(versions: Vec<TransformVersion>, aliases: Vec<(String, String, u32)>) -> Catalog {
        let mut by_name: BTreeMap<String, Vec<TransformVersion>> = BTreeMap::new();
        for version in versions {
            by_name
                .entry(version.name.clone())
                .or_default()
                .push(version);
        }
        for versions in by_name.values_mut() {
            versions.sort_by_key(|version| version.version);
        }
        let mut by_alias: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
        for (name, alias, version) in aliases {
            by_alias.entry(name).or_default().insert(alias, version);
        }
        Catalog {
            versions: by_name,
            aliases: by_alias,
        }
    }

    /// The versions of transform `name`, oldest first; empty when it has none.
    pub fn versions(&self, name: &str) -> &[TransformVersion] {
        self.versions.get(name).map_or(&[], Vec::as_slice)
    }

    /// The version `reference` names:
    ///
    /// * `name@3`: version 3;
    /// * `name@alias`: the version the alias points to; `latest` is the highest version
    ///   unless an alias explicitly named `latest` exists;
    /// * `name`: same as `name@latest`;
    /// * `sha256:<64 hex>`: a version with those bytes, whatever its name (the first by name
    ///   and version when several names share them).
    ///
    /// A version marked unsafe (caught breaking the row-wise contract) is refused.
    pub fn resolve(&self, reference: &str) -> Result<&TransformVersion, String> {
        let version = self.find(reference)?;
        match &version.unsafe_reason {
            None => Ok(version),
            Some(reason) => Err(format!(
                "transform `{}@{}` ({}) is marked unsafe and cannot be used: {reason}; upload a \
                 fixed version",
                version.name, version.version, version.digest
            )),
        }
    }

    fn find(&self, reference: &str) -> Result<&TransformVersion, String> {
        if reference.starts_with("sha256:") {
            let digest: Digest = reference.parse().map_err(|error| format!("{error}"))?;
            return self
                .versions
                .values()
                .flatten()
                .find(|version| version.digest == digest)
                .ok_or_else(|| format!("no uploaded transform has digest `{digest}`"));
        }
        let (name, selector) = reference.split_once('@').unwrap_or((reference, "latest"));
        if name.is_empty() || selector.is_empty() {
            return Err(format!(
                "`{reference}` is not a transform reference: expected `name`, `name@version`, \
                 `name@alias` or `sha256:<digest>`"
            ));
        }
        let Some(versions) = self
            .versions
            .get(name)
            .filter(|versions| !versions.is_empty())
        else {
            return Err(if self.versions.is_empty() {
                format!("unknown transform `{name}` (none uploaded)")
            } else {
                let known: Vec<&str> = self.versions.keys().map(String::as_str).collect();
                format!("unknown transform `{name}` (known: {})", known.join(", "))
            });
        };
        let numbers = || {
            versions
                .iter()
                .map(|version| version.version.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let find = |number: u32| versions.iter().find(|version| version.version == number);
        if selector.bytes().all(|b| b.is_ascii_digit()) {
            return selector.parse().ok().and_then(find).ok_or_else(|| {
                format!(
                    "transform `{name}` has no version {selector} (versions: {})",
                    numbers()
                )
            });
        }
        let aliases = self.aliases.get(name);
        match aliases.and_then(|aliases| aliases.get(selector)) {
            Some(&number) => find(number).ok_or_else(|| {
                format!(
                    "alias `{name}@{selector}` points to version {number}, which does not \
                     exist (versions: {})",
                    numbers()
                )
            }),
            // Non-empty, checked above.
            None if selector == "latest" => versions
                .last()
                .ok_or_else(|| format!("transform `{name}` has no versions")),
            None => {
                let mut known: Vec<&str> = aliases
                    .into_iter()
                    .flat_map(|aliases| aliases.keys().map(String::as_str))
                    .collect();
                if !known.contains(&"latest") {
                    known.push("latest");
                }
                known.sort_unstable();
                Err(format!(
                    "transform `{name}` has no alias `{selector}` (aliases: {}; versions: {})",
                    known.join(", "),
                    numbers()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::version;
    use super::*;

    #[test]
    fn unsafe_versions_are_refused() {
        let mut bad = version("scorer", 2, "x int64", "y int64");
        bad.unsafe_reason = Some("row 7 of a 16384-row batch differs".into());
        let catalog = Catalog::new(
            vec![version("scorer", 1, "x int64", "y int64"), bad],
            Vec::new(),
        );
        assert_eq!(catalog.resolve("scorer@1").unwrap().version, 1);
        let error = catalog.resolve("scorer").unwrap_err();
        assert!(
            error.starts_with("transform `scorer@2` (sha256:")
                && error.contains("is marked unsafe and cannot be used: row 7"),
            "{error}"
        );
    }

    fn catalog() -> Catalog {
        Catalog::new(
            vec![
                version("scorer", 2, "x int64", "y int64"),
                version("scorer", 1, "x int64", "y int64"),
                version("scorer", 3, "x int64", "y int64"),
                version("watch", 1, "x int64", "y int64"),
            ],
            vec![
                ("scorer".into(), "stable".into(), 2),
                ("scorer".into(), "broken".into(), 9),
                ("watch".into(), "latest".into(), 1),
            ],
        )
    }

    fn resolved(catalog: &Catalog, reference: &str) -> (String, u32) {
        let version = catalog.resolve(reference).unwrap();
        (version.name.clone(), version.version)
    }

    #[test]
    fn every_reference_form_resolves() {
        let catalog = catalog();
        let scorer = |v| ("scorer".to_owned(), v);
        assert_eq!(resolved(&catalog, "scorer@1"), scorer(1));
        assert_eq!(resolved(&catalog, "scorer@3"), scorer(3));
        assert_eq!(resolved(&catalog, "scorer@latest"), scorer(3));
        assert_eq!(resolved(&catalog, "scorer"), scorer(3));
        assert_eq!(resolved(&catalog, "scorer@stable"), scorer(2));
        let digest = catalog.versions("scorer")[0].digest;
        assert_eq!(resolved(&catalog, &digest.to_string()), scorer(1));
        assert_eq!(catalog.versions("scorer").len(), 3);
        assert!(catalog.versions("nope").is_empty());
    }

    #[test]
    fn an_explicit_latest_alias_wins_over_the_highest_version() {
        let mut catalog = catalog();
        assert_eq!(resolved(&catalog, "watch"), ("watch".to_owned(), 1));
        catalog
            .versions
            .get_mut("watch")
            .unwrap()
            .push(version("watch", 2, "x int64", "y int64"));
        assert_eq!(resolved(&catalog, "watch@latest"), ("watch".to_owned(), 1));
        assert_eq!(resolved(&catalog, "watch@2"), ("watch".to_owned(), 2));
    }

    #[test]
    fn failures_say_what_exists() {
        let catalog = catalog();
        let error = |reference: &str| catalog.resolve(reference).unwrap_err();
        assert_eq!(
            error("foo"),
            "unknown transform `foo` (known: scorer, watch)"
        );
        assert_eq!(
            error("foo@1"),
            "unknown transform `foo` (known: scorer, watch)"
        );
        assert_eq!(
            error("scorer@7"),
            "transform `scorer` has no version 7 (versions: 1, 2, 3)"
        );
        assert_eq!(
            error("scorer@99999999999"),
            "transform `scorer` has no version 99999999999 (versions: 1, 2, 3)"
        );
        assert_eq!(
            error("scorer@prod"),
            "transform `scorer` has no alias `prod` (aliases: broken, latest, stable; \
             versions: 1, 2, 3)"
        );
        assert_eq!(
            error("scorer@broken"),
            "alias `scorer@broken` points to version 9, which does not exist (versions: 1, 2, 3)"
        );
        assert!(error("scorer@").contains("is not a transform reference"));
        assert!(error("@1").contains("is not a transform reference"));
        assert!(error("sha256:abc").contains("is not a digest"));
        let unknown = Digest::of(b"nothing");
        assert_eq!(
            error(&unknown.to_string()),
            format!("no uploaded transform has digest `{unknown}`")
        );
        assert_eq!(
            Catalog::default().resolve("x").unwrap_err(),
            "unknown transform `x` (none uploaded)"
        );
    }
}
