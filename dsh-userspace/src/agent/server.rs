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
    journal::{Journal, Lines, Query},
    model::entry::LogEntry,
};

/// What the main loop answers.
pub enum Ask {
    Ps {
        all: bool,
    },
    Status,
    Resolve {
        name: String,
    },
    /// The container a name resolves to for `dsh log`, and the earlier
    /// containers that bore it.
    Incarnations {
        name: String,
    },
    Names,
    Trace {
        name: String,
        duration: Duration,
    },
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
            let q = LogAsk {
                container,
                all,
                since_ms,
                follow,
            };
            log(&mut w, &ask, &journal, &lines, q).await
        }
    }
}

struct LogAsk {
    container: Option<String>,
    all: bool,
    since_ms: Option<i64>,
    follow: bool,
}

/// `dsh log`: the backlog from the journal (durable lines and those waiting
/// in memory), then, when following, lines as they are committed.
async fn log(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    ask: &AskSender,
    journal: &Arc<Journal>,
    lines: &broadcast::Sender<LogEntry>,
    q: LogAsk,
) -> anyhow::Result<()> {
    let all = q.all;
    // The containers whose lines to show: the one the name resolves to, and
    // with --all the earlier containers that bore the name.
    let keys: Option<Vec<String>> = match q.container {
        None => None,
        Some(name) => match ask_main(ask, Ask::Incarnations { name }).await {
            Reply::Incarnations { current, earlier } => {
                let mut keys = if all { earlier.clone() } else { Vec::new() };
                keys.push(current.clone());
                if all && !earlier.is_empty() {
                    send(w, &Reply::Incarnations { current, earlier }).await?;
                }
                Some(keys)
            }
            other => return send(w, &other).await,
        },
    };
    // Subscribe before reading the journal: a line committed in between
    // arrives twice at worst, and seq filters the repeat.
    let mut rx = q.follow.then(|| lines.subscribe());
    // A `--since` older than jiff's timestamps reach means "everything".
    let since = q.since_ms.map(|ms| {
        Timestamp::now()
            .checked_sub(SignedDuration::from_millis(ms))
            .unwrap_or(Timestamp::MIN)
    });
    let mut last_seq = 0;
    let mut names = names(ask).await;
    let wanted_key = |k: &str| keys.as_ref().is_none_or(|ks| ks.iter().any(|x| x == k));
    let backlog = query(journal, keys.clone(), since, 0, !all).await?;
    if let Some(why) = backlog.unavailable {
        let note = format!(
            "the journal cannot be read ({why}); showing only lines the agent holds in memory"
        );
        send(w, &Reply::Warning(note)).await?;
    }
    for mut e in backlog.entries {
        last_seq = e.seq;
        rename(&mut e, &names);
        send(w, &Reply::Entry(Box::new(e))).await?;
    }
    let Some(rx) = rx.as_mut() else {
        return send(w, &Reply::End).await;
    };
    loop {
        let batch = match rx.recv().await {
            Ok(e) => vec![e],
            Err(broadcast::error::RecvError::Lagged(_)) => {
                query(journal, keys.clone(), since, last_seq, !all)
                    .await?
                    .entries
            }
            Err(broadcast::error::RecvError::Closed) => {
                return send(w, &Reply::End).await;
            }
        };
        for mut e in batch {
            if e.seq > last_seq && wanted_key(&e.key) && (all || e.is_state_change()) {
                last_seq = e.seq;
                if e.id.starts_with('/') && !names.contains_key(&e.key) {
                    names = self::names(ask).await;
                }
                rename(&mut e, &names);
                send(w, &Reply::Entry(Box::new(e))).await?;
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

/// Lines of some containers (or all), merged in seq order.
async fn query(
    journal: &Arc<Journal>,
    keys: Option<Vec<String>>,
    since: Option<Timestamp>,
    after_seq: u64,
    state_changes_only: bool,
) -> anyhow::Result<Lines> {
    let journal = journal.clone();
    let lines = tokio::task::spawn_blocking(move || {
        let one = |key: Option<&str>| {
            journal.query(&Query {
                key,
                since,
                after_seq,
                state_changes_only,
            })
        };
        match keys {
            None => one(None),
            Some(keys) => {
                let mut out = Lines::default();
                for k in &keys {
                    let l = one(Some(k));
                    out.entries.extend(l.entries);
                    out.unavailable = out.unavailable.or(l.unavailable);
                }
                out.entries.sort_by_key(|e| e.seq);
                out
            }
        }
    })
    .await?;
    Ok(lines)
}
