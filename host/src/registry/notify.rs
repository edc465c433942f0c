//! Registry changes heard by every process sharing a Postgres registry: each write that
//! changes what is served sends a notification inside its transaction (Postgres delivers it
//! at commit, and never for a rollback), and a [`ChangeFeed`] listens for them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;

/// The one channel of every registry in a database; a notification names its schema.
const CHANNEL: &str = "lockstep_registry";

/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// Changes buffered for a slow follower before the listener waits for it.
const FEED_CAPACITY: usize = 64;

/// What a committed registry write changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum Change {
    /// A project's definitions were applied (or deleted).
    Definitions { project: String },
    /// An alias moved or a transform was marked unsafe: any project may serve differently.
    Transforms,
    /// Changes may have been missed: the feed (re)connected.
    Unknown,
}

/// A notification's payload: the change and the schema of the registry it happened in.
#[derive(Serialize, Deserialize)]
struct Payload {
    schema: String,
    #[serde(flatten)]
    change: Change,
}

/// Sends `change` to every listener of the registry in `schema` when the transaction
/// `connection` is in commits.
pub async fn notify(
    connection: &mut AnyConnection,
    schema: &str,
    change: Change,
) -> Result<(), sqlx::Error> {
    let payload = Payload {
        schema: schema.to_owned(),
        change,
    };
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(serde_json::to_string(&payload).expect("a change serializes"))
        .execute(connection)
        .await?;
    Ok(())
}

/// The changes committed to one registry, from any process, in commit order; starts with
/// [`Change::Unknown`] and says it again after every reconnection (what was committed while
/// not listening is not told). Dropping it stops listening.
pub struct ChangeFeed {
    changes: mpsc::Receiver<Change>,
    listener: tokio::task::JoinHandle<()>,
}

impl ChangeFeed {
    /// Listens, on a connection of its own, for the changes of the registry in `schema` at
    /// `url`. Must be called within a tokio runtime.
    pub fn listen(url: String, schema: String) -> Self {
        let (sender, changes) = mpsc::channel(FEED_CAPACITY);
        let listener = tokio::spawn(listen(url, schema, sender));
        Self { changes, listener }
    }

    /// The next change; `None` once the listener has stopped.
    pub async fn next(&mut self) -> Option<Change> {
        self.changes.recv().await
    }
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Connects, listens and forwards `schema`'s changes until the feed is dropped, connecting
/// again after `RECONNECT_DELAY` whenever the connection is lost.
async fn listen(url: String, schema: String, changes: mpsc::Sender<Change>) {
    let mut failing = false;
    loop {
        match PgListener::connect(&url).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    if failing {
                        tracing::info!("listening for registry changes again");
                        failing = false;
                    }
                    if changes.send(Change::Unknown).await.is_err() {
                        return;
                    }
                    // `Ok(None)`: the connection was lost; an error: it cannot be made again.
                    while let Ok(Some(notification)) = listener.try_recv().await {
                        let Some(change) = parse(notification.payload(), &schema) else {
                            continue;
                        };
                        if changes.send(change).await.is_err() {
                            return;
                        }
                    }
                }
                Err(error) => failing = warn_once(failing, &error),
            },
            Err(error) => failing = warn_once(failing, &error),
        }
        if changes.is_closed() {
            return;
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

/// Logs the first failure of a streak; returns that the streak is on.
fn warn_once(failing: bool, error: &sqlx::Error) -> bool {
    if !failing {
        tracing::warn!(%error, "cannot listen for registry changes; definitions are refreshed on their interval meanwhile");
    }
    true
}

/// The change a notification tells, if it is about the registry in `schema`.
fn parse(payload: &str, schema: &str) -> Option<Change> {
    serde_json::from_str::<Payload>(payload)
        .ok()
        .filter(|payload| payload.schema == schema)
        .map(|payload| payload.change)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_their_schema() {
        let payload = serde_json::to_string(&Payload {
            schema: "lockstep".into(),
            change: Change::Definitions {
                project: "movies".into(),
            },
        })
        .unwrap();
        assert_eq!(
            payload,
            r#"{"schema":"lockstep","change":"definitions","project":"movies"}"#
        );
        assert_eq!(
            parse(&payload, "lockstep"),
            Some(Change::Definitions {
                project: "movies".into()
            })
        );
        assert_eq!(parse(&payload, "other"), None);
        assert_eq!(parse("not json", "lockstep"), None);
    }
}
