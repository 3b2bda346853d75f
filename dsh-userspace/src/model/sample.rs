//! Sampled figures into the model: cumulative counters in, rates out.
use jiff::{SignedDuration, Timestamp};

use super::{
    Model,
    container::{Counters, NetSample},
    syscalls::{SyscallAccounting, SyscallWindow},
};
use crate::cgroup::stats::CgroupStats;

impl Model {
    /// One sampling interval's figures for a container: cumulative counters
    /// in, rates out. Syscall rates come from these counters only when every
    /// syscall is counted; sampled ones come from `record_syscall_window`.
    /// `net`: None keeps the namespace figures as last sampled.
    pub fn record_sample(
        &mut self,
        key: &str,
        stats: CgroupStats,
        counters: Counters,
        net: impl Into<Option<NetSample>>,
        now: Timestamp,
    ) {
        let net = net.into();
        let window = self.rules.throttle_window;
        let tcp_keep = self.rules.tcp.keep();
        let accounting = self.syscall_accounting;
        let rules = &self.rules;
        let Some(c) = self.containers.get_mut(key) else {
            return;
        };
        let s = &mut c.sample;
        let mut counters = Counters {
            net: net.as_ref().map_or(s.net.counters, |n| n.counters),
            ..counters
        };
        if let Some(net) = net {
            match net.tcp {
                Some(t) => s.tcp.push(now, t, tcp_keep),
                None => s.tcp.clear(),
            }
            s.tcp.listen_queues.clone_from(&net.listen_queues);
            s.net = net;
        }
        s.net_rx_bytes_per_s = None;
        s.net_tx_bytes_per_s = None;
        match accounting {
            SyscallAccounting::Exact => {}
            SyscallAccounting::Sampled => {
                counters.syscalls = s.syscalls_estimated.0;
                counters.syscall_errors = s.syscalls_estimated.1;
            }
            SyscallAccounting::Off => {
                s.syscalls_per_s = 0.0;
                s.syscall_errors_per_s = 0.0;
            }
        }
        if let Some(prev) = s.prev
            && let Some(at) = prev.at
        {
            let dt = now.duration_since(at).as_secs_f64();
            if dt > 0.0 {
                let rate = |new: u64, old: u64| new.saturating_sub(old) as f64 / dt;
                s.cpu_used_cores = rate(stats.cpu_usage_ns, prev.cpu_ns) / 1e9;
                if accounting == SyscallAccounting::Exact {
                    s.syscalls_per_s = rate(counters.syscalls, prev.syscalls);
                    s.syscall_errors_per_s = rate(counters.syscall_errors, prev.syscall_errors);
                    let fds = counters
                        .fd_limit_errors
                        .saturating_sub(prev.fd_limit_errors);
                    s.sick.fd_limit_seen(fds, fds, rules.sick_keep(), now);
                }
                s.block_read_bytes_per_s = rate(counters.block_read, prev.block_read);
                s.block_write_bytes_per_s = rate(counters.block_write, prev.block_write);
                // A new namespace (restart) starts its counters again: no rate.
                if let (Some(n), Some(p)) = (counters.net, prev.net)
                    && n.rx_bytes >= p.rx_bytes
                    && n.tx_bytes >= p.tx_bytes
                {
                    s.net_rx_bytes_per_s = Some(rate(n.rx_bytes, p.rx_bytes));
                    s.net_tx_bytes_per_s = Some(rate(n.tx_bytes, p.tx_bytes));
                }
            }
        }
        s.throttle_window
            .push_back((now, stats.cpu_periods, stats.cpu_throttled_periods));
        while s
            .throttle_window
            .front()
            .is_some_and(|(t, ..)| now.duration_since(*t) > window + SignedDuration::from_secs(5))
        {
            s.throttle_window.pop_front();
        }
        s.prev = Some(Counters {
            at: Some(now),
            cpu_ns: stats.cpu_usage_ns,
            ..counters
        });
        s.sick.record(s.stats.as_ref(), &stats, rules, now);
        s.stats = Some(stats);
        self.health_transition(key, now);
    }

    /// A sampling window saw `n` EMFILE/ENFILE returns (`estimated` over
    /// the whole period); `soft_limit`: the main process's open-files limit.
    pub fn record_fd_limit(
        &mut self,
        key: &str,
        n: u64,
        estimated: u64,
        soft_limit: Option<u64>,
        now: Timestamp,
    ) {
        let keep = self.rules.sick_keep();
        if let Some(c) = self.containers.get_mut(key) {
            c.sample.sick.fd_limit_seen(n, estimated, keep, now);
            if soft_limit.is_some() {
                c.sample.sick.fd_soft_limit = soft_limit;
            }
        }
    }

    /// A sampling window ended: the container's syscall rates until the next
    /// one are what the window counted, and its estimated totals grow by the
    /// window's counts scaled to the period.
    pub fn record_syscall_window(&mut self, key: &str, w: SyscallWindow) {
        let Some(c) = self.containers.get_mut(key) else {
            return;
        };
        let s = &mut c.sample;
        (s.syscalls_per_s, s.syscall_errors_per_s) = w.rates();
        let (calls, errors) = w.scaled();
        s.syscalls_estimated.0 += calls;
        s.syscalls_estimated.1 += errors;
    }

    /// The kernel programs' connect counters of a container's cgroup.
    pub fn record_tcp_connects(
        &mut self,
        key: &str,
        stats: dsh_ebpf::TcpConnectStats,
        now: Timestamp,
    ) {
        let keep = self.rules.tcp.keep();
        if let Some(c) = self.containers.get_mut(key) {
            c.sample.tcp.push_connects(now, stats, keep);
        }
    }

    /// The kernel programs' retransmit and reset counters of a container's
    /// cgroup (zero when it had none).
    pub fn record_tcp_sockets(
        &mut self,
        key: &str,
        stats: dsh_ebpf::TcpSocketStats,
        now: Timestamp,
    ) {
        let keep = self.rules.tcp.keep();
        if let Some(c) = self.containers.get_mut(key) {
            c.sample.tcp.sockets.push(now, stats, keep);
        }
    }

    /// The cumulative failed connects per destination the kernel keeps for
    /// a container's cgroup (every container is given one reading a tick,
    /// empty when it has none).
    pub fn record_tcp_destinations(
        &mut self,
        key: &str,
        read: &[(std::net::SocketAddr, u64)],
        now: Timestamp,
    ) {
        let keep = self.rules.tcp.keep();
        if let Some(c) = self.containers.get_mut(key) {
            c.sample.tcp.destinations.push(now, read, keep);
        }
    }

    /// The cgroup vanished between the index and the read: a normal race.
    pub fn sample_vanished(&mut self, key: &str) {
        if let Some(c) = self.containers.get_mut(key) {
            c.sample.cpu_used_cores = 0.0;
        }
    }
}
