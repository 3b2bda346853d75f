//! The kernel's TCP figures per container each tick, beside the
//! connects `sample` reads: its sockets' retransmits and resets, and its
//! failed connects' destinations.
use std::collections::HashMap;

use jiff::Timestamp;

use crate::{model::Model, probe::Probe, report::chain};

/// The kernel's per-socket retransmits and resets and its failed connects'
/// destinations, for every live container: one reading each a tick (zero,
/// or none, for those with nothing), so the windows span the whole time.
pub(super) fn record(model: &mut Model, probe: &Probe, live: &[String], now: Timestamp) {
    if probe.counts_tcp_sockets() {
        match probe.tcp_sockets() {
            Ok(mut stats) => {
                let mut by_key: HashMap<String, dsh_ebpf::TcpSocketStats> = HashMap::new();
                for (id, s) in stats.drain() {
                    if let Some(key) = model.key_of_cgroup(id) {
                        by_key.entry(key.to_owned()).or_default().add(&s);
                    }
                }
                for key in live {
                    let s = by_key.get(key).copied().unwrap_or_default();
                    model.record_tcp_sockets(key, s, now);
                }
            }
            Err(e) => log::warn!("reading TCP socket counters: {}", chain(&e)),
        }
    }
    match probe.tcp_failed_destinations() {
        Ok(dests) => {
            let mut by_key: HashMap<String, Vec<(std::net::SocketAddr, u64)>> = HashMap::new();
            for (id, d) in dests {
                if let Some(key) = model.key_of_cgroup(id) {
                    by_key
                        .entry(key.to_owned())
                        .or_default()
                        .push((d.addr, d.failures));
                }
            }
            for key in live {
                let read = by_key.get(key).map_or(&[][..], Vec::as_slice);
                model.record_tcp_destinations(key, read, now);
            }
        }
        Err(e) => log::warn!("reading failed connects' destinations: {}", chain(&e)),
    }
}
