//! Container runtimes: names, images, ports and restart counts for the
//! containers discovered from cgroups. Each runtime is one small file behind
//! the `Runtime` trait (docker, podman, containerd, CRI-O); `supervise`
//! drives any of them (connect, list, follow, ping, reconnect) with a
//! timeout on every call, and feeds the agent `RuntimeUpdate`s. The model
//! does not care which runtime spoke.
pub mod containerd;
pub mod crio;
pub mod docker;
pub mod kube;
pub mod podman;

use std::{future::Future, pin::Pin, time::Duration};

use futures_util::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::{sync::mpsc, time::timeout};

/// What a container runtime says about a container (names, ports, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeMeta {
    /// Which runtime said so (`docker`, `containerd`, ...).
    #[serde(default)]
    pub runtime: String,
    /// The display name: Docker/podman/nerdctl name, `namespace/pod/container`
    /// for Kubernetes, else the runtime's id.
    pub name: String,
    pub image: String,
    /// The container's address on its network, if it has its own.
    pub ip: Option<String>,
    /// Container-side TCP ports the runtime publishes.
    pub ports: Vec<u16>,
    /// The runtime's own restart count.
    pub restart_count: u64,
    /// The runtime is about to start it again (Docker's `Restarting`, its
    /// restart policy's back-off between two starts).
    #[serde(default)]
    pub restarting: bool,
    /// Kubernetes identity, for containers the kubelet made.
    #[serde(default)]
    pub kube: Option<kube::KubeName>,
    /// A pod's sandbox (pause) container: plumbing, not listed.
    #[serde(default)]
    pub sandbox: bool,
}

impl RuntimeMeta {
    /// What stays the same across the runtime's restarts of one container
    /// (a new id each time): `k8s/<pod uid>/<container>` for Kubernetes.
    pub fn workload(&self) -> Option<String> {
        self.kube.as_ref().map(kube::KubeName::workload)
    }
}

#[derive(Debug)]
pub enum RuntimeUpdate {
    Connected {
        runtime: &'static str,
        version: String,
    },
    /// The runtime is unreachable; its metadata is no longer trusted.
    Disconnected {
        runtime: &'static str,
        error: String,
    },
    /// Metadata for one container (by runtime id); None: the runtime has no
    /// such container any more.
    Container {
        id: String,
        meta: Option<Box<RuntimeMeta>>,
    },
}

/// A container whose metadata changed, from the runtime's event stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Created, started, renamed, ...: look it up again.
    Changed(String),
    /// Removed from the runtime.
    Gone(String),
}

pub type Changes = Pin<Box<dyn Stream<Item = anyhow::Result<Change>> + Send>>;

/// A live connection: the runtime's version and its container events
/// (subscribed to before listing, so nothing in between is missed).
pub struct Connection {
    pub version: String,
    pub changes: Changes,
}

/// One runtime's client. Calls may hang (a stopped runtime accepts
/// connections and never answers): `supervise` bounds each with a timeout.
pub trait Runtime: Send + 'static {
    fn name(&self) -> &'static str;
    fn connect(&mut self) -> impl Future<Output = anyhow::Result<Connection>> + Send;
    /// Every container the runtime has now, with its metadata.
    fn list(&mut self) -> impl Future<Output = anyhow::Result<Vec<(String, RuntimeMeta)>>> + Send;
    /// One container; None when the runtime has no such container.
    fn inspect(
        &mut self,
        id: &str,
    ) -> impl Future<Output = anyhow::Result<Option<RuntimeMeta>>> + Send;
    /// A cheap call proving the runtime still answers.
    fn ping(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Timeouts and pacing of `supervise`.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    pub call_timeout: Duration,
    pub retry: Duration,
    pub ping_every: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(3),
            retry: Duration::from_secs(2),
            ping_every: Duration::from_secs(5),
        }
    }
}

/// Follows one runtime until the agent goes away (the receiver is
/// dropped), reconnecting as needed. `lookups` asks for containers the
/// agent found in cgroups before the runtime spoke of them (CRI-O has no
/// event stream; the others may race).
pub async fn supervise<R: Runtime>(
    mut rt: R,
    tx: mpsc::Sender<RuntimeUpdate>,
    mut lookups: mpsc::Receiver<String>,
    pacing: Pacing,
) {
    let runtime = rt.name();
    let mut last_error = String::new();
    loop {
        let error = match session(&mut rt, &tx, &mut lookups, pacing).await {
            Ok(()) => return, // the agent is shutting down
            Err(e) => crate::report::chain(e.as_ref()),
        };
        if error != last_error {
            // A runtime this host does not run is normal: said once, quietly
            // (`dsh status` shows it); a runtime that was there and fails warns.
            if last_error.is_empty() && error.starts_with("no socket at") {
                log::info!("{runtime}: {error}; followed once it appears");
            } else {
                log::warn!("{runtime}: {error}");
            }
        }
        last_error = error.clone();
        if tx
            .send(RuntimeUpdate::Disconnected { runtime, error })
            .await
            .is_err()
        {
            return;
        }
        // Lookups asked meanwhile are answered by the next listing.
        let retry = tokio::time::sleep(pacing.retry);
        tokio::pin!(retry);
        loop {
            tokio::select! {
                _ = &mut retry => break,
                l = lookups.recv() => if l.is_none() { return },
            }
        }
    }
}

/// Runs `f` within the call timeout, naming the runtime and the call.
async fn call<T>(
    runtime: &str,
    what: &str,
    limit: Duration,
    f: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => anyhow::bail!("{runtime} did not answer {what} within {limit:?}"),
    }
}

/// One connection: list what exists, then follow events, lookups and
/// pings. Ok only when the agent has gone.
async fn session<R: Runtime>(
    rt: &mut R,
    tx: &mpsc::Sender<RuntimeUpdate>,
    lookups: &mut mpsc::Receiver<String>,
    pacing: Pacing,
) -> anyhow::Result<()> {
    let runtime = rt.name();
    let limit = pacing.call_timeout;
    let conn = call(runtime, "connect", limit, rt.connect()).await?;
    let mut changes = conn.changes;
    let connected = RuntimeUpdate::Connected {
        runtime,
        version: conn.version,
    };
    if tx.send(connected).await.is_err() {
        return Ok(());
    }
    for (id, meta) in call(runtime, "list", limit, rt.list()).await? {
        let update = RuntimeUpdate::Container {
            id,
            meta: Some(Box::new(meta)),
        };
        if tx.send(update).await.is_err() {
            return Ok(());
        }
    }
    let mut ping = tokio::time::interval(pacing.ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        let update = tokio::select! {
            change = changes.next() => match change {
                None => anyhow::bail!("{runtime} closed its event stream"),
                Some(Err(e)) => return Err(e.context("event stream")),
                Some(Ok(Change::Gone(id))) => RuntimeUpdate::Container { id, meta: None },
                Some(Ok(Change::Changed(id))) => {
                    // A container removed meanwhile is not a fault.
                    let meta = call(runtime, "inspect", limit, rt.inspect(&id)).await?;
                    RuntimeUpdate::Container { id, meta: meta.map(Box::new) }
                }
            },
            lookup = lookups.recv() => {
                let Some(id) = lookup else { return Ok(()) };
                match call(runtime, "inspect", limit, rt.inspect(&id)).await? {
                    Some(meta) => RuntimeUpdate::Container { id, meta: Some(Box::new(meta)) },
                    // Another runtime's container, or one already gone.
                    None => continue,
                }
            }
            _ = ping.tick() => {
                call(runtime, "ping", limit, rt.ping()).await?;
                continue;
            }
        };
        if tx.send(update).await.is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests;
