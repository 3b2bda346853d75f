//! The agent's side of `--metrics-addr`: it binds the listener, and copies
//! the model into a fresh snapshot for scrapes: after every tick while they
//! come, else when one asks (an agent nobody scrapes copies nothing).
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use jiff::Timestamp;
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
};

use super::{Agent, sample::self_usage};
use crate::metrics::{
    AgentFigures, Snapshot,
    server::{self, Published, Snapshots},
    snapshot,
};

/// A scrape's request for a snapshot now, answered once it is published.
pub type Refresh = oneshot::Sender<()>;

pub struct Publisher {
    tx: watch::Sender<Arc<Published>>,
    /// A scrape came since the last tick's snapshot.
    wanted: Arc<AtomicBool>,
    /// The bound address (the port is the kernel's choice for port 0).
    pub addr: SocketAddr,
}

pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = server::bind(addr).await?;
    if !addr.ip().is_loopback() {
        log::warn!(
            "metrics on {addr}: container names, images and health are readable by anyone who can reach it"
        );
    }
    Ok(listener)
}

impl Agent {
    /// Starts serving scrapes; snapshots follow every tick.
    pub(super) fn serve_metrics(
        &mut self,
        listener: TcpListener,
        refresh: mpsc::Sender<Refresh>,
    ) -> JoinHandle<()> {
        let addr = listener
            .local_addr()
            .ok()
            .or(self.cfg.metrics_addr)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (tx, rx) = watch::channel(Published::new(self.metrics_snapshot()));
        let wanted = Arc::new(AtomicBool::new(false));
        self.metrics = Some(Publisher {
            tx,
            wanted: wanted.clone(),
            addr,
        });
        log::info!("dsh agent: metrics at http://{addr}/metrics");
        let snapshots = Snapshots {
            published: rx,
            wanted,
            refresh,
        };
        tokio::spawn(server::serve(listener, snapshots))
    }

    /// After a tick: a fresh snapshot if scrapes came since the last one,
    /// else the last one is marked stale (the next scrape asks for one).
    pub(super) fn publish_metrics(&self) {
        if let Some(p) = &self.metrics {
            if p.wanted.swap(false, Ordering::Relaxed) {
                p.tx.send_replace(Published::new(self.metrics_snapshot()));
            } else {
                p.tx.borrow().mark_stale();
            }
        }
    }

    /// A scrape found the snapshot stale: a fresh one, unless another
    /// scrape's request already made it.
    pub(super) fn on_metrics_refresh(&self, done: Refresh) {
        if let Some(p) = &self.metrics
            && p.tx.borrow().is_stale()
        {
            p.tx.send_replace(Published::new(self.metrics_snapshot()));
        }
        let _ = done.send(());
    }

    fn metrics_snapshot(&self) -> Snapshot {
        let (cpu_ns, rss) = self_usage();
        let fds = self.sampler.budget.figures();
        let agent = AgentFigures {
            channels: self
                .meter
                .channels
                .iter()
                .map(|c| (c.name.clone(), c.events, c.lost))
                .collect(),
            programs: self
                .meter
                .program_totals()
                .iter()
                .map(|p| (p.name.clone(), p.run_count, p.run_time_ns))
                .collect(),
            journal_write_errors: self.journal.status().health.write_errors,
            syscall_accounting: self.cfg.syscalls.accounting.as_str(),
            cpu_seconds: cpu_ns as f64 / 1e9,
            resident_memory_bytes: rss,
            open_fds: fds.open,
            max_fds: fds.soft_limit,
            container_fds: fds.held_for_containers,
            containers_read_slowly: fds.containers_read_slowly as u64,
            clients_refused: fds.clients_refused,
        };
        snapshot::build(&self.model, &self.cfg.node_name, agent, Timestamp::now())
    }
}
