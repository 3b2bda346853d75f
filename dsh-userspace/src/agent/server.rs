//! The agent's Unix socket: root-only, one JSON request per connection.
//! Table and status requests are answered by the main loop (which owns the
//! model); log requests read the journal directly, a page at a time, and,
//! when following, continue from the main loop's broadcast of committed
//! lines.
//!
//! A client that misbehaves (connects and says nothing, sends a huge
//! request, stops reading a `log --follow`) must not hurt the agent: at most
//! `MAX_CONNECTIONS` are served at once (more are told so and closed), the
//! request must arrive within `REQUEST_TIMEOUT` and fit in
//! `api::MAX_REQUEST_BYTES`, and a reply the client does not take within
//! `WRITE_TIMEOUT` ends the connection. What the agent holds per client is
//! then bounded: a request buffer, one page of log lines, and its place in
//! the broadcast ring (shared by all followers, of fixed size).
use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use jiff::{SignedDuration, Timestamp};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{
        UnixListener, UnixStream,
        unix::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::{Semaphore, broadcast, mpsc, oneshot},
};

use crate::{
    api::{self, MAX_REQUEST_BYTES, Reply, Request, RequestError},
    fds,
    journal::{Journal, Lines, Query},
    model::entry::LogEntry,
};

/// Clients served at once (followers included); the next ones are turned away.
pub const MAX_CONNECTIONS: usize = 64;
/// A client must have sent its whole request this soon after connecting.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A reply line the client has not taken after this long ends the connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Log lines read from the journal and sent per round.
const LOG_PAGE: usize = 512;

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
    /// One container's recent figures.
    History {
        name: String,
    },
    /// What `dsh ps` should say besides its rows (`Reply::Warning`, or
    /// `Reply::End` for nothing).
    Notes,
    Trace {
        name: String,
        duration: Duration,
    },
}

pub type AskSender = mpsc::Sender<(Ask, oneshot::Sender<Reply>)>;

/// Binds the socket, readable and writable by root only.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    // Not `exists()`: a link is looked at, not followed (and removed).
    if path.symlink_metadata().is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another dsh agent is already serving {}; stop it first",
                path.display()
            );
        }
        std::fs::remove_file(path)?; // stale, from an agent that died
    }
    let listener = UnixListener::bind(path)?;
    // bind(2) made it (it refuses an existing path, a link included); no
    // link is followed to change its mode.
    nix::sys::stat::fchmodat(
        None,
        path,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )?;
    Ok(listener)
}

pub async fn serve(
    listener: UnixListener,
    ask: AskSender,
    journal: Arc<Journal>,
    lines: broadcast::Sender<LogEntry>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut spare = fds::Spare::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                let refuse = |stream: &UnixStream| {
                    let reply = Reply::Error(
                        "the dsh agent is out of file descriptors and cannot answer now; \
                         raise its open-files limit (LimitNOFILE=) or see its log"
                            .to_owned(),
                    );
                    say_and_close(stream, &reply);
                };
                fds::after_failed_accept(&e, "socket", &mut spare, || listener.accept(), refuse)
                    .await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            turn_away(&stream);
            continue;
        };
        let (ask, journal, lines) = (ask.clone(), journal.clone(), lines.clone());
        tokio::spawn(async move {
            if let Err(e) = handle(stream, ask, journal, lines).await {
                log::debug!("client: {e:#}");
            }
            drop(slot);
        });
    }
}

/// Tells a client beyond the limit why, without waiting for it: a fresh
/// socket's buffer takes the short line at once. Dropping the stream closes it.
fn turn_away(stream: &UnixStream) {
    let reply = Reply::Error(format!(
        "the dsh agent is serving {MAX_CONNECTIONS} clients already; try again shortly"
    ));
    say_and_close(stream, &reply);
}

fn say_and_close(stream: &UnixStream, reply: &Reply) {
    if let Ok(mut bytes) = serde_json::to_vec(reply) {
        bytes.push(b'\n');
        let _ = stream.try_write(&bytes);
    }
}

async fn send(w: &mut OwnedWriteHalf, reply: &Reply) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec(reply)?;
    bytes.push(b'\n');
    tokio::time::timeout(WRITE_TIMEOUT, w.write_all(&bytes))
        .await
        .map_err(|_| anyhow::anyhow!("client took no reply for {WRITE_TIMEOUT:?}"))??;
    Ok(())
}

/// Reads one request line: at most `MAX_REQUEST_BYTES` (plus its newline),
/// within `REQUEST_TIMEOUT`.
async fn read_request(
    reader: &mut BufReader<OwnedReadHalf>,
) -> anyhow::Result<Result<Request, RequestError>> {
    let mut line = Vec::new();
    let limit = MAX_REQUEST_BYTES as u64 + 1;
    let mut bounded = (&mut *reader).take(limit);
    tokio::time::timeout(REQUEST_TIMEOUT, bounded.read_until(b'\n', &mut line))
        .await
        .map_err(|_| anyhow::anyhow!("no request within {REQUEST_TIMEOUT:?}"))??;
    if !line.ends_with(b"\n") && line.len() as u64 == limit {
        return Ok(Err(RequestError::TooLarge));
    }
    Ok(api::decode_request(&line))
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
    let mut reader = BufReader::new(r);
    let req = match read_request(&mut reader).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return send(&mut w, &Reply::Error(e.to_string())).await,
        // Closed by us (e.g. no request in time): say why, best effort.
        Err(e) => {
            let _ = send(&mut w, &Reply::Error(e.to_string())).await;
            return Err(e);
        }
    };
    match req {
        Request::Ps { all } => {
            if let Reply::Warning(note) = ask_main(&ask, Ask::Notes).await {
                send(&mut w, &Reply::Warning(note)).await?;
            }
            send(&mut w, &ask_main(&ask, Ask::Ps { all }).await).await
        }
        Request::Status => send(&mut w, &ask_main(&ask, Ask::Status).await).await,
        Request::Resolve { name } => {
            send(&mut w, &ask_main(&ask, Ask::Resolve { name }).await).await
        }
        Request::History { container } => {
            let q = Ask::History { name: container };
            send(&mut w, &ask_main(&ask, q).await).await
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
            log(&mut w, &mut reader, &ask, &journal, &lines, q).await
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
    w: &mut OwnedWriteHalf,
    reader: &mut BufReader<OwnedReadHalf>,
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
    let mut names = names(ask).await;
    let wanted_key = |k: &str| keys.as_ref().is_none_or(|ks| ks.iter().any(|x| x == k));
    let mut last_seq = 0;
    let from = Backlog {
        journal,
        keys: keys.clone(),
        since,
        state_changes_only: !all,
    };
    if let Some(why) = from.send_after(w, &mut last_seq, &names).await? {
        let note = format!(
            "the journal cannot be read ({why}); showing only lines the agent holds in memory"
        );
        send(w, &Reply::Warning(note)).await?;
    }
    let Some(rx) = rx.as_mut() else {
        return send(w, &Reply::End).await;
    };
    // The request is all a client says: anything more is read and dropped,
    // and the end of its stream (it went away) ends ours, so a follower that
    // left frees its slot even on a quiet host.
    let mut scratch = [0u8; 256];
    loop {
        let received = tokio::select! {
            r = rx.recv() => r,
            n = reader.read(&mut scratch) => match n {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => continue,
            },
        };
        let mut e = match received {
            Ok(e) => e,
            // Fell behind the ring: the journal has every line.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                from.send_after(w, &mut last_seq, &names).await?;
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => {
                return send(w, &Reply::End).await;
            }
        };
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

/// Where a `log` reply reads lines back from.
struct Backlog<'a> {
    journal: &'a Arc<Journal>,
    keys: Option<Vec<String>>,
    since: Option<Timestamp>,
    state_changes_only: bool,
}

impl Backlog<'_> {
    /// Sends every line after `*last_seq`, one journal page at a time, and
    /// moves `*last_seq` on; Some(why) when the journal itself could not be
    /// read (only lines held in memory were sent).
    async fn send_after(
        &self,
        w: &mut OwnedWriteHalf,
        last_seq: &mut u64,
        names: &HashMap<String, String>,
    ) -> anyhow::Result<Option<String>> {
        let mut unavailable = None;
        loop {
            let lines = query(
                self.journal,
                self.keys.clone(),
                self.since,
                *last_seq,
                self.state_changes_only,
            )
            .await?;
            unavailable = unavailable.or(lines.unavailable);
            let full = lines.entries.len() == LOG_PAGE;
            for mut e in lines.entries {
                *last_seq = e.seq;
                rename(&mut e, names);
                send(w, &Reply::Entry(Box::new(e))).await?;
            }
            if !full {
                return Ok(unavailable);
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

/// A page of lines of some containers (or all), merged in seq order.
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
                limit: Some(LOG_PAGE),
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
                // Each key's page is its first lines: the first of all are among them.
                out.entries.sort_by_key(|e| e.seq);
                out.entries.truncate(LOG_PAGE);
                out
            }
        }
    })
    .await?;
    Ok(lines)
}
