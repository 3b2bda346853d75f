//! The agent's Unix socket: root-only, one JSON request per connection.
//! Table and status requests are answered by the main loop (which owns the
//! model); log requests read the journal directly and, when following,
//! continue from the main loop's broadcast of committed lines.
use std::{
    collections::HashMap, os::unix::fs::PermissionsExt as _, path::Path, sync::Arc, time::Duration,
};

use jiff::{SignedDuration, Timestamp};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{broadcast, mpsc, oneshot},
};

use crate::{
    api::{Reply, Request},
    journal::{Journal, Query},
    model::entry::LogEntry,
};

/// What the main loop answers.
pub enum Ask {
    Ps { all: bool },
    Status,
    Resolve { name: String },
    Names,
    Trace { name: String, duration: Duration },
}

pub type AskSender = mpsc::Sender<(Ask, oneshot::Sender<Reply>)>;

/// Binds the socket, readable and writable by root only.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another dsh agent is already serving {}; stop it first",
                path.display()
            );
        }
        std::fs::remove_file(path)?; // stale, from an agent that died
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub async fn serve(
    listener: UnixListener,
    ask: AskSender,
    journal: Arc<Journal>,
    lines: broadcast::Sender<LogEntry>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (ask, journal, lines) = (ask.clone(), journal.clone(), lines.clone());
        tokio::spawn(async move {
            if let Err(e) = handle(stream, ask, journal, lines).await {
                log::debug!("client: {e:#}");
            }
        });
    }
}

async fn send(w: &mut tokio::net::unix::OwnedWriteHalf, reply: &Reply) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec(reply)?;
    bytes.push(b'\n');
    w.write_all(&bytes).await?;
    Ok(())
}

async fn ask_main(ask: &AskSender, q: Ask) -> Reply {
    let (tx, rx) = oneshot::channel();
    if ask.send((q, tx)).await.is_err() {
        return Reply::Error("the agent is shutting down".to_owned());
    }
    rx.await
        .unwrap_or_else(|_| Reply::Error("the agent is shutting down".to_owned()))
}

async fn handle(
    stream: UnixStream,
    ask: AskSender,
    journal: Arc<Journal>,
    lines: broadcast::Sender<LogEntry>,
) -> anyhow::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(r);
    tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await??;
    let req: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => return send(&mut w, &Reply::Error(format!("bad request: {e}"))).await,
    };
    match req {
        Request::Ps { all } => send(&mut w, &ask_main(&ask, Ask::Ps { all }).await).await,
        Request::Status => send(&mut w, &ask_main(&ask, Ask::Status).await).await,
        Request::Resolve { name } => {
            send(&mut w, &ask_main(&ask, Ask::Resolve { name }).await).await
        }
        Request::Trace {
            container,
            duration_ms,
        } => {
            let q = Ask::Trace {
                name: container,
                duration: Duration::from_millis(duration_ms),
            };
            // The client sends nothing more: a read that ends means it went
            // away (Ctrl-C). Dropping the question closes its reply channel,
            // and the agent stops the trace at its next tick.
            let mut more = [0u8; 1];
            tokio::select! {
                reply = ask_main(&ask, q) => send(&mut w, &reply).await,
                _ = reader.read(&mut more) => Ok(()),
            }
        }
        Request::Log {
            container,
            all,
            since_ms,
            follow,
        } => {
            let key = match container {
                None => None,
                Some(name) => match ask_main(&ask, Ask::Resolve { name }).await {
                    Reply::Resolved(row) => Some(row.key),
                    other => return send(&mut w, &other).await,
                },
            };
            // Subscribe before reading the journal: a line committed in
            // between arrives twice at worst, and seq filters the repeat.
            let mut rx = follow.then(|| lines.subscribe());
            // A `--since` older than jiff's timestamps reach means "everything".
            let since = since_ms.map(|ms| {
                Timestamp::now()
                    .checked_sub(SignedDuration::from_millis(ms))
                    .unwrap_or(Timestamp::MIN)
            });
            let mut last_seq = 0;
            let mut names = names(&ask).await;
            let backlog = query(&journal, key.clone(), since, 0, !all).await;
            for mut e in backlog? {
                last_seq = e.seq;
                rename(&mut e, &names);
                send(&mut w, &Reply::Entry(Box::new(e))).await?;
            }
            let Some(rx) = rx.as_mut() else {
                return send(&mut w, &Reply::End).await;
            };
            loop {
                let batch = match rx.recv().await {
                    Ok(e) => vec![e],
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        query(&journal, key.clone(), since, last_seq, !all).await?
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return send(&mut w, &Reply::End).await;
                    }
                };
                for mut e in batch {
                    let wanted = e.seq > last_seq
                        && key.as_ref().is_none_or(|k| *k == e.key)
                        && (all || e.is_state_change());
                    if wanted {
                        last_seq = e.seq;
                        if e.id.starts_with('/') && !names.contains_key(&e.key) {
                            names = self::names(&ask).await;
                        }
                        rename(&mut e, &names);
                        send(&mut w, &Reply::Entry(Box::new(e))).await?;
                    }
                }
            }
        }
    }
}

async fn names(ask: &AskSender) -> HashMap<String, String> {
    match ask_main(ask, Ask::Names).await {
        Reply::Names(n) => n,
        _ => HashMap::new(),
    }
}

/// A line written before the runtime named its container (the cgroup path
/// stood in) shows the name the container has now.
fn rename(e: &mut LogEntry, names: &HashMap<String, String>) {
    if e.id.starts_with('/')
        && let Some(name) = names.get(&e.key)
    {
        e.id.clone_from(name);
    }
}

async fn query(
    journal: &Arc<Journal>,
    key: Option<String>,
    since: Option<Timestamp>,
    after_seq: u64,
    state_changes_only: bool,
) -> anyhow::Result<Vec<LogEntry>> {
    let journal = journal.clone();
    let entries = tokio::task::spawn_blocking(move || {
        journal.query(&Query {
            key: key.as_deref(),
            since,
            after_seq,
            state_changes_only,
        })
    })
    .await??;
    Ok(entries)
}
