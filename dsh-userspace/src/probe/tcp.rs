//! TCP per cgroup as the kernel programs counted it: connects
//! (`TCP_CONNECTS`), failed connects' destinations (`TCP_FAILED_DESTS`),
//! retransmits and resets per socket (`TCP_SOCKETS`).
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use aya::maps::MapData;
use dsh_ebpf::{TcpConnectStats, TcpDestKey, TcpSocketStats};

use super::{Probe, ProbeError};
use crate::cgroup::CgroupId;

impl Probe {
    /// Connect counters of every cgroup that began one, summed over CPUs.
    pub fn tcp_connects(&self) -> Result<HashMap<CgroupId, TcpConnectStats>, ProbeError> {
        self.per_cgroup_sums(
            "TCP_CONNECTS",
            TcpConnectStats::default(),
            TcpConnectStats::add,
        )
    }
}

impl Probe {
    /// Whether the programs count retransmits and resets per socket's
    /// cgroup on this kernel (see `dsh_ebpf::sk_cgroup`).
    pub fn counts_tcp_sockets(&self) -> bool {
        self.sk_cgroup_mode != dsh_ebpf::sk_cgroup::NONE
    }

    /// Where retransmits and resets are counted, for `dsh status`.
    pub fn tcp_sockets_counted(&self) -> &'static str {
        if self.counts_tcp_sockets() {
            "per socket's cgroup"
        } else if self.layout.kind == crate::cgroup::layout::CgroupLayoutKind::V1 {
            "per network namespace only (v1-only host: no socket has a cgroup2)"
        } else {
            "per network namespace only (this kernel's sockets keep no cgroup)"
        }
    }

    /// Retransmit and reset counters of every cgroup whose sockets had one,
    /// summed over CPUs (empty where the kernel's sockets do not say their
    /// cgroup: see `dsh_ebpf::sk_cgroup`).
    pub fn tcp_sockets(&self) -> Result<HashMap<CgroupId, TcpSocketStats>, ProbeError> {
        self.per_cgroup_sums(
            "TCP_SOCKETS",
            TcpSocketStats::default(),
            TcpSocketStats::add,
        )
    }

    /// Every (cgroup, destination) of a failed connect the kernel still
    /// keeps, with its cumulative failures.
    pub fn tcp_failed_destinations(
        &self,
    ) -> Result<Vec<(CgroupId, FailedDestination)>, ProbeError> {
        let map: aya::maps::HashMap<&MapData, TcpDestKey, u64> =
            aya::maps::HashMap::try_from(self.map("TCP_FAILED_DESTS")?)
                .map_err(|e| ProbeError::Map("TCP_FAILED_DESTS", e))?;
        let mut out = Vec::new();
        for item in map.iter() {
            let (k, failures) = match item {
                Ok(kv) => kv,
                // Evicted between listing and reading.
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => return Err(ProbeError::Map("TCP_FAILED_DESTS", e)),
            };
            if let Some(addr) = socket_addr(&k) {
                out.push((
                    CgroupId::new(k.cgroup_id),
                    FailedDestination { addr, failures },
                ));
            }
        }
        Ok(out)
    }
}

/// A destination and the connects to it that failed (cumulative as read
/// here; over a span where the model and trace show it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FailedDestination {
    /// Shown as `127.0.0.1:9` or `[::1]:9`: an address the kernel read,
    /// never text from the container.
    pub addr: SocketAddr,
    pub failures: u64,
}

/// The address a key names; an IPv4-mapped IPv6 address (a dual-stack
/// socket dialling IPv4) as the IPv4 one. `None` for another family.
fn socket_addr(k: &TcpDestKey) -> Option<SocketAddr> {
    const AF_INET: u16 = 2;
    const AF_INET6: u16 = 10;
    let ip = match k.family {
        AF_INET => IpAddr::V4(Ipv4Addr::new(k.addr[0], k.addr[1], k.addr[2], k.addr[3])),
        AF_INET6 => Ipv6Addr::from(k.addr).to_canonical(),
        _ => return None,
    };
    Some(SocketAddr::new(ip, k.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_addresses() {
        let mut k = TcpDestKey {
            cgroup_id: 7,
            port: 9,
            family: 2,
            ..Default::default()
        };
        k.addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(socket_addr(&k).unwrap().to_string(), "127.0.0.1:9");
        k.family = 10;
        k.addr = Ipv6Addr::LOCALHOST.octets();
        assert_eq!(socket_addr(&k).unwrap().to_string(), "[::1]:9");
        k.addr = Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped().octets();
        assert_eq!(socket_addr(&k).unwrap().to_string(), "10.1.2.3:9");
        k.family = 1;
        assert_eq!(socket_addr(&k), None);
    }
}
