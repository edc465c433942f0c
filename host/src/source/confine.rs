//! What definitions may read: file sources only under the configured roots (checked on the
//! path as written, then on every file after symlinks and `..` are resolved, and again when
//! a file is opened), and Postgres `query` sources only when the operator allows them.

use std::path::{Component, Path, PathBuf};

use super::SourceError;
use crate::model::definitions::{Source, SourceKind};

/// The directories file sources may read, each kept as written (made absolute) and as
/// resolved on disk.
#[derive(Debug, Clone, Default)]
pub struct Roots {
    roots: Vec<Root>,
}

#[derive(Debug, Clone)]
struct Root {
    /// Absolute, `.` and `..` removed, symlinks kept: compared with patterns as written.
    lexical: PathBuf,
    /// Symlinks resolved (when the directory exists): compared with files found.
    resolved: PathBuf,
}

impl Roots {
    /// The roots `dirs` (relative ones against the current directory).
    pub fn new<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> Self {
        let roots = dirs
            .into_iter()
            .map(|dir| {
                let lexical = normalize(&absolute(dir));
                let resolved = std::fs::canonicalize(&lexical).unwrap_or_else(|_| lexical.clone());
                Root { lexical, resolved }
            })
            .collect();
        Self { roots }
    }

    /// Checks the file pattern `full` (already joined to the base directory) starts, as
    /// written, inside a root: the part before its first wildcard, with `..` applied, must
    /// be under one. Nothing is read from disk, so a refused pattern tells nothing about
    /// what exists outside.
    pub(super) fn check_pattern(&self, pattern: &str, full: &Path) -> Result<(), SourceError> {
        let literal: PathBuf = full
            .components()
            .take_while(|part| !has_wildcard(part.as_os_str().to_string_lossy().as_ref()))
            .collect();
        let literal = normalize(&absolute(&literal));
        if self
            .roots
            .iter()
            .any(|root| literal.starts_with(&root.lexical))
        {
            Ok(())
        } else {
            Err(self.outside(pattern))
        }
    }

    /// Checks the file at `path` is, after symlinks and `..`, under a root; `name` is how
    /// errors show it.
    pub(super) fn check_file(&self, path: &Path, name: &str) -> Result<(), SourceError> {
        let resolved = std::fs::canonicalize(path).map_err(|source| SourceError::Io {
            path: name.to_owned(),
            source,
        })?;
        if self
            .roots
            .iter()
            .any(|root| resolved.starts_with(&root.resolved))
        {
            Ok(())
        } else {
            Err(self.outside(name))
        }
    }

    fn outside(&self, path: &str) -> SourceError {
        let roots: Vec<String> = self
            .roots
            .iter()
            .map(|root| root.lexical.display().to_string())
            .collect();
        SourceError::Forbidden {
            message: format!(
                "`{}` is outside the directories sources may read ({}); add its directory to \
                 `sources.data_dirs` to allow it",
                crate::model::text::echo(path),
                if roots.is_empty() {
                    "none configured".to_owned()
                } else {
                    roots.join(", ")
                }
            ),
        }
    }
}

/// Checks what `source` would read is allowed, without reading anything: a file pattern
/// under the roots (relative to `base_dir`), a `query` only with `allow_queries`.
pub fn check_source(
    source: &Source,
    base_dir: &Path,
    roots: &Roots,
    allow_queries: bool,
) -> Result<(), SourceError> {
    match source.kind {
        SourceKind::Parquet | SourceKind::Csv => match source.path.as_deref() {
            Some(pattern) => roots.check_pattern(pattern, &base_dir.join(pattern)),
            None => Ok(()),
        },
        SourceKind::Postgres if source.query.is_some() && !allow_queries => {
            Err(SourceError::Forbidden {
                message: "postgres `query` sources are turned off on this server \
                          (`sources.allow_queries = false`); use a `table`"
                    .to_owned(),
            })
        }
        _ => Ok(()),
    }
}

fn has_wildcard(part: &str) -> bool {
    part.contains(['*', '?', '['])
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map(|dir| dir.join(path))
            .unwrap_or_else(|_| path.to_owned())
    }
}

/// `path` with `.` dropped and each `..` taking off the part before it (never above `/`).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Classify;

    #[test]
    fn patterns_must_start_inside_a_root() {
        let base = std::env::temp_dir().join("lockstep-confine-base");
        let roots = Roots::new([base.as_path(), Path::new("/srv/data")]);
        for inside in ["events/*.csv", "**/*.parquet", "a/../b.csv", "./x.csv"] {
            assert!(
                roots.check_pattern(inside, &base.join(inside)).is_ok(),
                "{inside}"
            );
        }
        assert!(
            roots
                .check_pattern("/srv/data/x/*.csv", Path::new("/srv/data/x/*.csv"))
                .is_ok()
        );
        for outside in [
            "/etc/passwd",
            "../../etc/passwd",
            "events/../../x.csv",
            "/srv/*/x.csv",
            "/srv/database/x.csv",
        ] {
            let error = roots
                .check_pattern(outside, &base.join(outside))
                .unwrap_err();
            assert_eq!(error.code(), "source_forbidden", "{outside}");
        }
    }

    #[test]
    fn files_are_checked_after_symlinks() {
        let dir = std::env::temp_dir().join(format!("lockstep-confine-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(dir.join("secret.csv"), "a\n1\n").unwrap();
        std::fs::write(root.join("ok.csv"), "a\n1\n").unwrap();
        std::os::unix::fs::symlink(dir.join("secret.csv"), root.join("link.csv")).unwrap();
        let roots = Roots::new([root.as_path()]);
        assert!(roots.check_file(&root.join("ok.csv"), "ok.csv").is_ok());
        let error = roots
            .check_file(&root.join("link.csv"), "link.csv")
            .unwrap_err();
        assert_eq!(error.code(), "source_forbidden");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
