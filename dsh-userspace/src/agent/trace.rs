//! `dsh trace` inside the agent: start the kernel-side trace for one
//! container, answer the client when its time is up.
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::Agent;
use crate::{api::Reply, report::chain};

/// A `dsh trace` in progress: answered when its time is up.
pub(super) struct PendingTrace {
    reply: oneshot::Sender<Reply>,
    key: String,
    id: String,
    cgroup: String,
    started: Instant,
    deadline: tokio::time::Instant,
    block_before: Option<dsh_ebpf::BlockStats>,
    tcp_before: Option<dsh_ebpf::TcpConnectStats>,
    sockets_before: Option<dsh_ebpf::TcpSocketStats>,
    dests_before: Vec<(std::net::SocketAddr, u64)>,
}

/// The longest trace a client may ask for. A trace whose client goes away
/// (Ctrl-C) stops at the next tick, so a long one holds nothing hostage.
const MAX_TRACE: Duration = Duration::from_secs(24 * 3600);

pub(super) fn deadline(t: &Option<PendingTrace>) -> tokio::time::Instant {
    t.as_ref().map_or_else(
        || tokio::time::Instant::now() + Duration::from_secs(3600),
        |t| t.deadline,
    )
}

impl Agent {
    /// The container's block counters (request blkcg and issuing task ids).
    fn block_of(&self, key: &str) -> Option<dsh_ebpf::BlockStats> {
        let all = self.probe.block_stats().ok()?;
        let mut sum = dsh_ebpf::BlockStats::ZERO;
        for (id, s) in all {
            let owner = self
                .model
                .key_of_blkcg(id)
                .or_else(|| self.model.key_of_cgroup(id));
            if owner == Some(key) {
                sum.add(&s);
            }
        }
        Some(sum)
    }

    /// The container's TCP connect counters (its cgroups' ids).
    fn tcp_of(&self, key: &str) -> Option<dsh_ebpf::TcpConnectStats> {
        let all = self.probe.tcp_connects().ok()?;
        let mut sum = dsh_ebpf::TcpConnectStats::default();
        for (id, s) in all {
            if self.model.key_of_cgroup(id) == Some(key) {
                sum.add(&s);
            }
        }
        Some(sum)
    }

    /// The container's sockets' retransmits and resets; `None` where the
    /// kernel does not count them.
    fn sockets_of(&self, key: &str) -> Option<dsh_ebpf::TcpSocketStats> {
        if !self.probe.counts_tcp_sockets() {
            return None;
        }
        let all = self.probe.tcp_sockets().ok()?;
        let mut sum = dsh_ebpf::TcpSocketStats::default();
        for (id, s) in all {
            if self.model.key_of_cgroup(id) == Some(key) {
                sum.add(&s);
            }
        }
        Some(sum)
    }

    /// The container's failed connects by destination, cumulative.
    fn destinations_of(&self, key: &str) -> Vec<(std::net::SocketAddr, u64)> {
        let all = self.probe.tcp_failed_destinations().unwrap_or_default();
        let mut out: Vec<(std::net::SocketAddr, u64)> = Vec::new();
        for (id, d) in all {
            if self.model.key_of_cgroup(id) == Some(key) {
                match out.iter_mut().find(|(a, _)| *a == d.addr) {
                    Some(e) => e.1 += d.failures,
                    None => out.push((d.addr, d.failures)),
                }
            }
        }
        out
    }

    /// Starts a trace (answered by `finish_trace`), or answers at once
    /// with why not.
    pub(super) fn start_trace(
        &mut self,
        name: &str,
        duration: Duration,
        reply: oneshot::Sender<Reply>,
    ) {
        let refuse = |reply: oneshot::Sender<Reply>, msg: String| {
            let _ = reply.send(Reply::Error(msg));
        };
        if self.trace.is_some() {
            return refuse(
                reply,
                "another dsh trace is running; try again when it ends".into(),
            );
        }
        if duration.is_zero() || duration > MAX_TRACE {
            return refuse(
                reply,
                format!(
                    "a trace lasts between 1ms and {}h",
                    MAX_TRACE.as_secs() / 3600
                ),
            );
        }
        let key = match self.model.resolve(name) {
            Ok(k) => k,
            Err(e) => return refuse(reply, e.to_string()),
        };
        let Some(c) = self.model.get(&key) else {
            return refuse(reply, format!("container {name} vanished"));
        };
        let Some(cgroup_id) = c.cgroup_id else {
            return refuse(
                reply,
                format!("{} is not running (its cgroup is gone)", c.display_id()),
            );
        };
        let (id, cgroup) = (c.display_id().to_owned(), c.identity.cgroup.clone());
        if let Err(e) = self.probe.start_trace(cgroup_id) {
            return refuse(reply, format!("starting the trace: {}", chain(&e)));
        }
        self.trace = Some(PendingTrace {
            block_before: self.block_of(&key),
            tcp_before: self.tcp_of(&key),
            sockets_before: self.sockets_of(&key),
            dests_before: self.destinations_of(&key),
            reply,
            key,
            id,
            cgroup,
            started: Instant::now(),
            deadline: tokio::time::Instant::now() + duration,
        });
    }

    /// Stops a trace whose client has gone away (the server drops its
    /// question when the client's socket closes): the in-kernel filter costs
    /// every task on the host, and only one trace runs at a time.
    pub(super) fn stop_abandoned_trace(&mut self) {
        if !self.trace.as_ref().is_some_and(|t| t.reply.is_closed()) {
            return;
        }
        let Some(t) = self.trace.take() else { return };
        if let Err(e) = self.probe.stop_trace() {
            log::warn!("stopping the abandoned trace of {}: {e}", t.id);
        }
        log::info!("dsh trace of {} stopped early: its client went away", t.id);
    }

    pub(super) fn finish_trace(&mut self) {
        let Some(t) = self.trace.take() else { return };
        let reply = match self.probe.stop_trace() {
            Ok(raw) => {
                let block = crate::trace::block_row(
                    t.block_before.as_ref(),
                    self.block_of(&t.key).as_ref(),
                );
                let secs = t.started.elapsed().as_secs_f64();
                let mut report = crate::trace::report(&t.id, &t.cgroup, secs, &raw, block);
                report.tcp =
                    crate::trace::tcp_row(t.tcp_before.as_ref(), self.tcp_of(&t.key).as_ref());
                report.tcp.sockets = t
                    .sockets_before
                    .zip(self.sockets_of(&t.key))
                    .map(|(b, a)| crate::trace::TcpSocketRow::between(&b, &a));
                let dests = crate::model::tcp_kernel::top_between(
                    &t.dests_before,
                    &self.destinations_of(&t.key),
                );
                report.tcp.failing_destinations = dests.top;
                report.tcp.failing_destinations_other = dests.other;
                Reply::Trace(Box::new(report))
            }
            Err(e) => Reply::Error(format!("reading the trace: {}", chain(&e))),
        };
        let _ = t.reply.send(reply);
    }
}
