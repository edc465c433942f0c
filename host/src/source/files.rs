//! Lists the files of a glob relative to the base directory, sorted, and resolves chunk
//! paths; both only under the allowed roots.

use std::path::{Path, PathBuf};

use glob::{MatchOptions, Pattern};

use super::{Roots, SourceError};

/// A file matched by a source's glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listed {
    /// As recorded in chunks: relative to the base directory when the glob was.
    pub name: String,
    /// Where it is on disk.
    pub path: PathBuf,
}

/// The files matching `pattern` (relative to `base_dir` unless absolute), sorted by name.
/// `*` does not cross `/`; `**` does. Directories are skipped.
pub(super) fn list(
    base_dir: &Path,
    roots: &Roots,
    pattern: &str,
) -> Result<Vec<Listed>, SourceError> {
    let relative = !Path::new(pattern).is_absolute();
    roots.check_pattern(pattern, &base_dir.join(pattern))?;
    let full = if relative && !base_dir.as_os_str().is_empty() {
        let base = base_dir.to_str().ok_or_else(|| {
            SourceError::config(format!(
                "the base directory {} is not valid UTF-8",
                base_dir.display()
            ))
        })?;
        format!("{}/{pattern}", Pattern::escape(base.trim_end_matches('/')))
    } else {
        pattern.to_owned()
    };
    let options = MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let matches = glob::glob_with(&full, options)
        .map_err(|e| SourceError::config(format!("invalid path pattern `{pattern}`: {e}")))?;
    let mut files = Vec::new();
    for entry in matches {
        let path = entry.map_err(|e| SourceError::Io {
            path: e.path().display().to_string(),
            source: e.into(),
        })?;
        if !path.is_file() {
            continue;
        }
        roots.check_file(&path, &path.display().to_string())?;
        let shown = if relative {
            path.strip_prefix(base_dir).unwrap_or(&path)
        } else {
            &path
        };
        let name = shown
            .to_str()
            .ok_or_else(|| {
                SourceError::config(format!(
                    "the file name {} is not valid UTF-8",
                    path.display()
                ))
            })?
            .to_owned();
        files.push(Listed { name, path });
    }
    if files.is_empty() {
        return Err(SourceError::NoFiles {
            pattern: pattern.to_owned(),
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Where the chunk path `name` is on disk, checked (again, at open time: a symlink may
/// have changed since planning) to be under a root.
pub(super) fn resolve(base_dir: &Path, roots: &Roots, name: &str) -> Result<PathBuf, SourceError> {
    let path = base_dir.join(name);
    roots.check_file(&path, name)?;
    Ok(path)
}

/// The size of `path` in bytes.
pub(super) fn size(path: &Path, name: &str) -> Result<u64, SourceError> {
    std::fs::metadata(path)
        .map(|meta| meta.len())
        .map_err(|source| SourceError::Io {
            path: name.to_owned(),
            source,
        })
}

/// Opens `path` for reading; errors name the file as `name`.
pub(super) fn open(path: &Path, name: &str) -> Result<std::fs::File, SourceError> {
    std::fs::File::open(path).map_err(|source| SourceError::Io {
        path: name.to_owned(),
        source,
    })
}
