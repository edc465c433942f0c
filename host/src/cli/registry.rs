//! Subcommands that open the host's stores: serve, upload, transforms, alias, plan, apply,
//! and the offline, online and audit paths' (see `offline`, `online`, `audit`).

use super::out::{self, outln};
use std::sync::Arc;

use anyhow::Context as _;

use super::term::safe;
use super::{Command, PushTo, audit, backfill, coded, offline, online, table};
use crate::api::{self, AppState, auth};
use crate::config::Config;
use crate::model::format_timestamp;
use crate::pipeline::{BackfillRequest, Lockstep, MaterializeRequest, TrainingSetRequest};

pub async fn run(command: Command, mut config: Config) -> anyhow::Result<()> {
    match &command {
        Command::Serve {
            listen: Some(listen),
        } => config.server.listen = *listen,
        Command::Backfill {
            workers: Some(workers),
            ..
        } => config.backfill.workers = *workers,
        _ => {}
    }
    // Commands that write the online store connect to it now; the rest (a server among
    // them) only when they use it. Errors name the store and its redacted URL.
    let needs_online = matches!(
        &command,
        Command::Materialize { .. }
            | Command::MaterializeIncremental { .. }
            | Command::Rehydrate { .. }
            | Command::Push {
                to: PushTo::Online | PushTo::OnlineAndOffline,
                ..
            }
    );
    let lockstep = if needs_online {
        Lockstep::open_connected(&config).await?
    } else {
        Lockstep::open(&config).await?
    };
    match command {
        Command::Serve { .. } => serve(lockstep, config).await,
        Command::Upload { file, name } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let outcome = lockstep.upload(&name, bytes).await.map_err(|e| coded(&e))?;
            let verb = if outcome.created {
                "uploaded"
            } else {
                "already present as"
            };
            outln!(
                "{verb} {}@{} {}",
                outcome.version.name,
                outcome.version.version,
                outcome.version.digest
            )?;
            Ok(())
        }
        Command::Transforms { name } => {
            let summaries = lockstep.transforms().await?;
            let shown: Vec<_> = summaries
                .iter()
                .filter(|s| name.as_ref().is_none_or(|n| *n == s.name))
                .collect();
            if let Some(name) = &name {
                anyhow::ensure!(!shown.is_empty(), "no transform named `{name}`");
            }
            for summary in shown {
                let aliases: Vec<String> = summary
                    .aliases
                    .iter()
                    .map(|(alias, version)| format!("{alias}→{version}"))
                    .collect();
                outln!(
                    "{}  latest {}  aliases [{}]",
                    safe(&summary.name),
                    summary.latest,
                    safe(&aliases.join(", "))
                )?;
                for version in &summary.versions {
                    outln!(
                        "  @{:<3} {}  {} {}  {}  in: {}  out: {}",
                        version.version,
                        version.digest,
                        safe(&version.declared_name),
                        safe(&version.declared_version),
                        format_timestamp(version.uploaded_at_micros),
                        table::fields_line(&version.inputs),
                        table::fields_line(&version.outputs),
                    )?;
                    if let Some(reason) = &version.unsafe_reason {
                        outln!("        UNSAFE, not run: {reason}")?;
                    }
                }
            }
            Ok(())
        }
        Command::Alias {
            name,
            alias,
            version,
        } => {
            lockstep.set_alias(&name, &alias, version).await?;
            outln!("{name}@{alias} → version {version}")?;
            Ok(())
        }
        Command::Plan { file } => {
            let text = read(&file)?;
            let outcome = lockstep.plan(&text).await?;
            outln!("project {}\n{}", outcome.project, outcome.plan)?;
            Ok(())
        }
        Command::Apply { file } => {
            let text = read(&file)?;
            let outcome = lockstep.apply(&text).await?;
            outln!("project {}\n{}", outcome.project, outcome.plan)?;
            let report = &outcome.report;
            outln!(
                "applied: {} created, {} updated, {} deleted, {} unchanged",
                report.created.len(),
                report.updated.len(),
                report.deleted.len(),
                report.unchanged
            )?;
            Ok(())
        }
        Command::Backfill {
            view,
            from,
            to,
            fresh,
            workers: _,
        } => {
            backfill::backfill(
                &lockstep,
                BackfillRequest {
                    project: None,
                    view,
                    from,
                    to,
                    fresh,
                },
            )
            .await
        }
        Command::Backfills { id, json } => backfill::backfills(&lockstep, id, json).await,
        Command::Projects { command: None } => {
            let projects = lockstep.projects().await?;
            if projects.is_empty() {
                outln!("no project has definitions applied yet; run `lockstep apply`")?;
            }
            let default = lockstep.project(None).await.ok();
            for project in &projects {
                let marker = if default.as_deref() == Some(project.name.as_str()) {
                    "*"
                } else {
                    " "
                };
                outln!(
                    "{marker} {:<24} {} entities, {} sources, {} feature views, {} on-demand views, {} feature services",
                    safe(&project.name),
                    project.entities,
                    project.sources,
                    project.feature_views,
                    project.on_demand_views,
                    project.feature_services
                )?;
            }
            if projects.len() > 1 && default.is_none() {
                outln!(
                    "(no default: name one with --project, LOCKSTEP_PROJECT or the config key `project`)"
                )?;
            }
            Ok(())
        }
        Command::Projects {
            command: Some(super::ProjectsCommand::Delete { name }),
        } => {
            let report = lockstep.delete_project(&name).await?;
            outln!(
                "project {} deleted: {} definitions removed; its offline tables and online values stay",
                safe(&name),
                report.deleted.len()
            )?;
            Ok(())
        }
        Command::Materialize { from, to, views } => {
            online::materialize(
                &lockstep,
                MaterializeRequest {
                    project: None,
                    views,
                    from: Some(from),
                    to,
                    incremental: false,
                },
            )
            .await
        }
        Command::MaterializeIncremental { to, views } => {
            online::materialize(
                &lockstep,
                MaterializeRequest {
                    project: None,
                    views,
                    from: None,
                    to,
                    incremental: true,
                },
            )
            .await
        }
        Command::Rehydrate { views, fresh } => {
            online::rehydrate(&lockstep, None, views, fresh).await
        }
        Command::Push { source, rows, to } => {
            online::push(&lockstep, None, &source, &rows, to.into()).await
        }
        Command::TrainingSet {
            entities,
            features,
            out,
            full_feature_names,
            timestamp_column,
        } => {
            let (feature_service, features) = if features.contains(':') {
                (
                    None,
                    features.split(',').map(|f| f.trim().to_owned()).collect(),
                )
            } else {
                (Some(features), Vec::new())
            };
            let request = TrainingSetRequest {
                project: None,
                feature_service,
                features,
                full_feature_names,
                timestamp_column: Some(timestamp_column),
            };
            offline::training_set(&lockstep, request, &entities, &out).await
        }
        Command::Audit {
            service,
            since,
            limit,
            show,
        } => {
            let request = crate::pipeline::AuditRequest {
                project: None,
                since: since.unwrap_or(i64::MIN),
                limit,
                max_differences: show,
                ..crate::pipeline::AuditRequest::new(service)
            };
            audit::audit(&lockstep, request).await
        }
        Command::Demo { .. }
        | Command::Build { .. }
        | Command::New { .. }
        | Command::Transform { .. }
        | Command::CompileWorker { .. }
        | Command::Completions { .. }
        | Command::Datagen { .. } => {
            unreachable!("handled without the registry")
        }
    }
}

async fn serve(lockstep: Lockstep, config: Config) -> anyhow::Result<()> {
    let access = auth::Access::from_spec(std::env::var(auth::TOKENS_ENV).ok().as_deref())
        .map_err(anyhow::Error::msg)?;
    let listen = config.server.listen;
    api::check_access(&access, listen).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    out::status(&format!(
        "lockstep serving on http://{}",
        listener.local_addr()?
    ));
    let state = Arc::new(AppState {
        lockstep,
        access,
        server: config.server,
    });
    api::serve(state, listener).await?;
    Ok(())
}

fn read(file: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}
