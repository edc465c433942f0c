//! Which stores a command uses, said before it opens them: a notice when any store was not
//! chosen by a setting (a forgotten `DATABASE_URL` means embedded SQLite files in the
//! current directory), an info event otherwise; URLs always redacted.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::endpoint::redact;

/// What the stores of `config` are, and whether any of them fell back to a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoresNotice {
    pub text: String,
    /// Some store was not chosen by any setting.
    pub defaulted: bool,
}

/// Describes the registry, offline and online stores of `config`; relative embedded paths
/// are shown under `cwd`.
pub fn describe(config: &Config, cwd: &Path) -> StoresNotice {
    let origins = &config.origins;
    let given = |key: &str| origins.of(key).map(|origin| format!("from {origin}"));
    let absolute = |path: &Path| -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            cwd.join(path.strip_prefix(".").unwrap_or(path))
        }
    };
    let registry_default =
        config.registry.database_url.is_none() && origins.of("registry.sqlite_path").is_none();
    let offline_default = config.offline.database_url.is_none()
        && config.registry.database_url.is_none()
        && origins.of("offline.sqlite_path").is_none();
    let online_default =
        config.online.redis_url.is_none() && origins.of("online.sqlite_path").is_none();
    let defaulted = registry_default || offline_default || online_default;

    let embedded = [
        &config.registry.sqlite_path,
        &config.offline.sqlite_path,
        &config.online.sqlite_path,
    ];
    let same_dir = embedded
        .iter()
        .all(|path| path.parent() == embedded[0].parent());
    if registry_default && offline_default && online_default && same_dir {
        let dir = absolute(embedded[0].parent().unwrap_or(Path::new(".")));
        return StoresNotice {
            text: format!(
                "using embedded stores in {} (DATABASE_URL and REDIS_URL not set)",
                dir.display()
            ),
            defaulted,
        };
    }

    let registry = match &config.registry.database_url {
        Some(url) => format!(
            "{} schema {} ({})",
            redact(url),
            config.registry.schema,
            given("registry.database_url").unwrap_or_else(|| "set".into())
        ),
        None => format!(
            "embedded {} ({})",
            absolute(&config.registry.sqlite_path).display(),
            given("registry.sqlite_path").unwrap_or_else(|| "DATABASE_URL not set".into())
        ),
    };
    let offline = match (&config.offline.database_url, &config.registry.database_url) {
        (Some(url), _) => format!(
            "{} schema {} ({})",
            redact(url),
            config.offline.schema,
            given("offline.database_url").unwrap_or_else(|| "set".into())
        ),
        (None, Some(_)) => format!("the registry's database, schema {}", config.offline.schema),
        (None, None) => format!(
            "embedded {} ({})",
            absolute(&config.offline.sqlite_path).display(),
            given("offline.sqlite_path").unwrap_or_else(|| "DATABASE_URL not set".into())
        ),
    };
    let online = match &config.online.redis_url {
        Some(url) => format!(
            "{} namespace {} ({})",
            redact(url),
            config.online.namespace,
            given("online.redis_url").unwrap_or_else(|| "set".into())
        ),
        None => format!(
            "embedded {} ({})",
            absolute(&config.online.sqlite_path).display(),
            given("online.sqlite_path").unwrap_or_else(|| "REDIS_URL not set".into())
        ),
    };
    StoresNotice {
        text: format!(
            "using stores: registry {registry}; offline store {offline}; online store {online}"
        ),
        defaulted,
    }
}

/// Says which stores `config` means: a notice when a store was defaulted, else an info event.
pub fn announce(config: &Config) {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let notice = describe(config, &cwd);
    if notice.defaulted {
        super::out::notice(&notice.text);
    } else {
        tracing::info!("{}", notice.text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(env: &[(&str, &str)]) -> Config {
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Config::load_from(None, env).unwrap()
    }

    #[test]
    fn nothing_set_means_embedded_stores_here_said_so() {
        let notice = describe(&config(&[]), Path::new("/home/ann/project"));
        assert!(notice.defaulted);
        assert_eq!(
            notice.text,
            "using embedded stores in /home/ann/project/.lockstep (DATABASE_URL and REDIS_URL not set)"
        );
    }

    #[test]
    fn a_missing_redis_url_is_named_and_passwords_never_shown() {
        let notice = describe(
            &config(&[("DATABASE_URL", "postgres://bob:s3cret@db:5432/prod")]),
            Path::new("/srv"),
        );
        assert!(notice.defaulted);
        assert_eq!(
            notice.text,
            "using stores: registry postgres://bob:***@db:5432/prod schema lockstep (from \
             DATABASE_URL); offline store the registry's database, schema lockstep_offline; \
             online store embedded /srv/.lockstep/online.db (REDIS_URL not set)"
        );
    }

    #[test]
    fn stores_all_given_are_not_a_notice() {
        let notice = describe(
            &config(&[
                ("DATABASE_URL", "postgres://bob:s3cret@db/prod"),
                ("LOCKSTEP__ONLINE__REDIS_URL", "redis://:pw@cache:6379"),
            ]),
            Path::new("/srv"),
        );
        assert!(!notice.defaulted);
        assert!(
            notice.text.ends_with(
                "online store redis://:***@cache:6379 namespace lockstep (from \
                 LOCKSTEP__ONLINE__REDIS_URL)"
            ),
            "{}",
            notice.text
        );
        assert!(!notice.text.contains("s3cret"), "{}", notice.text);
    }
}
