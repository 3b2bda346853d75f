//! The agent's side of `--metrics-addr`: it binds the listener, and after
//! every tick copies the model into a fresh snapshot that scrapes read.
use std::{net::SocketAddr, sync::Arc};

use jiff::Timestamp;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use super::{Agent, sample::self_usage};
use crate::metrics::{
    AgentFigures, Snapshot,
    server::{self, Published},
    snapshot,
};

pub struct Publisher {
    tx: watch::Sender<Arc<Published>>,
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
    pub(super) fn serve_metrics(&mut self, listener: TcpListener) -> JoinHandle<()> {
        let addr = listener
            .local_addr()
            .ok()
            .or(self.cfg.metrics_addr)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (tx, rx) = watch::channel(Published::new(self.metrics_snapshot()));
        self.metrics = Some(Publisher { tx, addr });
        log::info!("dsh agent: metrics at http://{addr}/metrics");
        tokio::spawn(server::serve(listener, rx))
    }

    /// Replaces the snapshot scrapes read (they may still hold the old one).
    pub(super) fn publish_metrics(&self) {
        if let Some(p) = &self.metrics {
            p.tx.send_replace(Published::new(self.metrics_snapshot()));
        }
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
