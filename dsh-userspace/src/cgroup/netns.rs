//! A container's network namespace, read from procfs through one of its
//! processes: interface counters (`/proc/PID/net/dev`, kept open and
//! re-read), addresses (`/proc/PID/net/fib_trie`) and listening TCP ports
//! (sock_diag through a socket made in the namespace, `listen`; the
//! `/proc/PID/net/tcp{,6}` files where that socket cannot be made). No
//! process is forked: procfs shows each process's own namespace.
use std::{
    collections::{BTreeSet, HashMap},
    fs::File,
    io,
    os::unix::fs::{FileExt as _, MetadataExt as _},
    path::Path,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use super::{
    listen::{ListenQuery, Listener, fullest, ports_of},
    snmp::{TcpCounters, parse_netstat, parse_snmp},
};

/// Interface counters of one network namespace, summed over its interfaces
/// except loopback (what `docker stats` shows as NET I/O).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_drops: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_drops: u64,
}

/// Sums `/proc/net/dev` (two header lines, then `iface: 16 numbers`).
pub fn parse_net_dev(text: &str) -> Result<NetCounters, String> {
    let mut c = NetCounters::default();
    for line in text.lines().skip(2) {
        let Some((iface, nums)) = line.split_once(':') else {
            return Err(line.to_owned());
        };
        if iface.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = nums
            .split_whitespace()
            .map(|n| n.parse().map_err(|_| line.to_owned()))
            .collect::<Result<_, _>>()?;
        if f.len() < 16 {
            return Err(line.to_owned());
        }
        // rx: bytes packets errs drop fifo frame compressed multicast;
        // tx: bytes packets errs drop fifo colls carrier compressed.
        c.rx_bytes += f[0];
        c.rx_packets += f[1];
        c.rx_errors += f[2];
        c.rx_drops += f[3];
        c.tx_bytes += f[8];
        c.tx_packets += f[9];
        c.tx_errors += f[10];
        c.tx_drops += f[11];
    }
    Ok(c)
}

/// Addresses kept per namespace: the endpoint shows one; a container that
/// adds 100,000 must not make the agent hold (and copy every tick) them all.
pub const MAX_ADDRS: usize = 8;

/// A namespace's own IPv4 addresses: the lowest [`MAX_ADDRS`], and how many
/// more it has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Addrs {
    pub kept: Vec<String>,
    pub not_kept: u64,
}

/// The namespace's own IPv4 addresses (not loopback) from `fib_trie`: a leaf
/// line `|-- A.B.C.D` followed by `/32 host LOCAL`. The file prints each
/// table (`Main:`, `Local:`) and, while the kernel keeps them merged, the
/// same addresses under both: the count is the largest table's, so nothing
/// per address is held beyond the kept few.
pub fn parse_fib_trie(text: &str) -> Addrs {
    let mut kept = BTreeSet::new();
    let (mut in_table, mut most) = (0u64, 0u64);
    let mut leaf: Option<&str> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if !line.starts_with(' ') && line.ends_with(':') {
            most = most.max(in_table);
            in_table = 0;
            leaf = None;
        } else if let Some(addr) = t.strip_prefix("|-- ") {
            leaf = Some(addr.trim());
        } else if t.starts_with("/32 host LOCAL")
            && let Some(a) = leaf.take()
            && !a.starts_with("127.")
            && let Ok(ip) = a.parse::<std::net::Ipv4Addr>()
        {
            in_table += 1;
            kept.insert(ip);
            // The lowest stay kept whatever order the file lists them in.
            if kept.len() > MAX_ADDRS {
                kept.pop_last();
            }
        } else if !t.starts_with('/') {
            leaf = None;
        }
    }
    let total = most.max(in_table);
    Addrs {
        not_kept: total.saturating_sub(kept.len() as u64),
        kept: kept.iter().map(ToString::to_string).collect(),
    }
}

/// Ports in state LISTEN (0A) in `/proc/net/tcp` or `tcp6`.
pub fn parse_tcp_listen(text: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (local, state) = (f.get(1)?, f.get(3)?);
            if *state != "0A" {
                return None;
            }
            u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The inode of a process's network namespace (equal inodes: one namespace).
pub fn netns_of(pid: u32) -> io::Result<u64> {
    Ok(std::fs::metadata(format!("/proc/{pid}/ns/net"))?.ino())
}

/// The host's network namespace: PID 1's, else the agent's own (PID 1's
/// is unreadable without every capability PID 1 holds). Read once.
pub fn host_netns() -> Option<u64> {
    static HOST: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *HOST.get_or_init(|| {
        netns_of(1)
            .or_else(|_| Ok::<_, io::Error>(std::fs::metadata("/proc/self/ns/net")?.ino()))
            .ok()
    })
}

/// Which namespace each container's main process is in, stat'ed again only
/// for a new main process or every `REFRESH` (a process seldom changes
/// namespace; a stat of `/proc/PID/ns/net` per container per tick was a
/// tenth of the idle agent's time at 500 containers).
#[derive(Default)]
pub struct NetnsIds {
    known: HashMap<String, (u32, u64, Instant)>,
}

impl NetnsIds {
    /// The namespace of `key`'s main process `pid`.
    pub fn of(&mut self, key: &str, pid: u32) -> io::Result<u64> {
        if let Some(&(p, ns, at)) = self.known.get(key)
            && p == pid
            && at.elapsed() < REFRESH
        {
            return Ok(ns);
        }
        let ns = netns_of(pid).inspect_err(|_| {
            self.known.remove(key);
        })?;
        self.known.insert(key.to_owned(), (pid, ns, Instant::now()));
        Ok(ns)
    }

    /// Forgets containers `keep` says no to.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.known.retain(|k, _| keep(k));
    }
}

/// What the agent knows of one process's namespace this tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetnsView {
    pub netns: u64,
    pub counters: NetCounters,
    pub addrs: Addrs,
    pub listen_ports: Vec<u16>,
    /// The namespace's TCP counters; None where its `snmp` or `netstat`
    /// could not be read.
    pub tcp: Option<TcpCounters>,
    /// Listeners with connections waiting to be accepted, fullest first
    /// (at most [`super::listen::MAX_QUEUES`]).
    pub listen_queues: Vec<Listener>,
}

/// How often addresses and listening sockets are read again (they change
/// rarely; counters are read every tick).
const REFRESH: Duration = Duration::from_secs(10);

struct Open {
    pid: u32,
    netns: u64,
    dev: File,
    /// `net/snmp` and `net/netstat`, when they could be opened.
    snmp: Option<(File, File)>,
    /// The TCP counters read last.
    tcp: Option<TcpCounters>,
    /// None: no socket could be made in the namespace (no CAP_SYS_ADMIN);
    /// the procfs files are read instead.
    listen: Option<ListenQuery>,
    refreshed: Instant,
    addrs: Addrs,
    listen_ports: Vec<u16>,
    listen_queues: Vec<Listener>,
}

/// Keeps each container's `/proc/PID/net/dev` open between ticks, keyed by
/// container; an open file pins its namespace, so containers that stopped
/// are let go with `retain`.
#[derive(Default)]
pub struct NetnsReader {
    open: HashMap<String, Open>,
    buf: Vec<u8>,
}

impl NetnsReader {
    /// The namespace `netns` (as `NetnsIds` found it) of `pid`, the
    /// container `key`'s main process.
    pub fn read(&mut self, key: &str, pid: u32, netns: u64) -> io::Result<NetnsView> {
        if self
            .open
            .get(key)
            .is_none_or(|o| o.pid != pid || o.netns != netns)
        {
            self.open.remove(key);
            let dev = File::open(format!("/proc/{pid}/net/dev"))?;
            let listen = ListenQuery::open(pid)
                .inspect_err(|e| {
                    log::debug!(
                        "sock_diag in the namespace of pid {pid}: {e}; reading /proc/{pid}/net/tcp"
                    )
                })
                .ok();
            let snmp = File::open(format!("/proc/{pid}/net/snmp"))
                .and_then(|s| Ok((s, File::open(format!("/proc/{pid}/net/netstat"))?)))
                .inspect_err(|e| log::debug!("TCP counters of pid {pid}: {e}"))
                .ok();
            let mut o = Open {
                pid,
                netns,
                dev,
                snmp,
                tcp: None,
                listen,
                refreshed: Instant::now(),
                addrs: Addrs::default(),
                listen_ports: Vec::new(),
                listen_queues: Vec::new(),
            };
            refresh(&mut o);
            self.open.insert(key.to_owned(), o);
        }
        let Some(o) = self.open.get_mut(key) else {
            return Err(io::Error::other("netns reader lost its entry"));
        };
        if o.refreshed.elapsed() >= REFRESH {
            refresh(o);
        }
        let read = read_all(&o.dev, &mut self.buf);
        if let Err(e) = read {
            self.open.remove(key);
            return Err(e);
        }
        let counters = parse_net_dev(&String::from_utf8_lossy(&self.buf))
            .map_err(|line| io::Error::other(format!("/proc/{pid}/net/dev: {line:?}")))?;
        let tcp = o.snmp.as_ref().and_then(|(snmp, netstat)| {
            match read_tcp(snmp, netstat, &mut self.buf) {
                Ok(t) => Some(t),
                Err(e) => {
                    log::debug!("TCP counters of pid {pid}: {e}");
                    None
                }
            }
        });
        // A listener overflowed since the last read: which one is asked now,
        // not at the next refresh.
        if let (Some(new), Some(old)) = (tcp, o.tcp)
            && new.listen_overflows > old.listen_overflows
            && let Some(l) = o.listen.as_ref().and_then(|q| q.listeners().ok())
        {
            o.listen_queues = fullest(&l);
        }
        o.tcp = tcp;
        Ok(NetnsView {
            netns: o.netns,
            counters,
            addrs: o.addrs.clone(),
            listen_ports: o.listen_ports.clone(),
            tcp,
            listen_queues: o.listen_queues.clone(),
        })
    }

    /// Closes the files of containers `keep` says no to.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.open.retain(|k, _| keep(k));
    }

    /// Descriptors held for one container (`net/dev`, `snmp`, `netstat`,
    /// its netlink socket).
    pub fn held(&self, key: &str) -> usize {
        self.open.get(key).map_or(0, |o| {
            1 + usize::from(o.listen.is_some()) + 2 * usize::from(o.snmp.is_some())
        })
    }
}

/// Addresses and listening ports, read again (a process gone: kept as was).
fn refresh(o: &mut Open) {
    o.refreshed = Instant::now();
    let dir = format!("/proc/{}/net", o.pid);
    if let Ok(t) = std::fs::read_to_string(Path::new(&dir).join("fib_trie")) {
        o.addrs = parse_fib_trie(&t);
    }
    if let Some(l) = o.listen.as_ref().and_then(|q| q.listeners().ok()) {
        o.listen_ports = ports_of(&l);
        o.listen_queues = fullest(&l);
        return;
    }
    let mut ports = Vec::new();
    for f in ["tcp", "tcp6"] {
        if let Ok(t) = std::fs::read_to_string(Path::new(&dir).join(f)) {
            ports.extend(parse_tcp_listen(&t));
        }
    }
    ports.sort_unstable();
    ports.dedup();
    o.listen_ports = ports;
}

/// The namespace's TCP counters from its open `snmp` and `netstat`.
fn read_tcp(snmp: &File, netstat: &File, buf: &mut Vec<u8>) -> io::Result<TcpCounters> {
    let mut c = TcpCounters::default();
    read_all(snmp, buf)?;
    parse_snmp(&String::from_utf8_lossy(buf), &mut c).map_err(io::Error::other)?;
    read_all(netstat, buf)?;
    parse_netstat(&String::from_utf8_lossy(buf), &mut c).map_err(io::Error::other)?;
    Ok(c)
}

/// The whole file from offset 0 (procfs regenerates it on every read).
fn read_all(f: &File, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = f.read_at(&mut chunk, buf.len() as u64)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // /proc/net/dev of a Docker container on this project's test host.
    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     720       8    0    0    0     0          0         0      720       8    0    0    0     0       0          0
  eth0: 1048726     757    1    2    0     0          0         0    53170     731    3    4    0     0       0          0
veth_very_long_name0:10 1 0 0 0 0 0 0 20 2 0 0 0 0 0 0
";

    #[test]
    fn net_dev_sums_all_but_loopback() {
        let c = parse_net_dev(NET_DEV).unwrap();
        assert_eq!(
            c,
            NetCounters {
                rx_bytes: 1048736,
                rx_packets: 758,
                rx_errors: 1,
                rx_drops: 2,
                tx_bytes: 53190,
                tx_packets: 733,
                tx_errors: 3,
                tx_drops: 4,
            }
        );
        assert!(parse_net_dev("h\nh\n  eth0: 1 2 x\n").is_err());
        assert!(parse_net_dev("h\nh\n  eth0: 1 2 3\n").is_err());
        assert_eq!(parse_net_dev("h\nh\n").unwrap(), NetCounters::default());
    }

    // /proc/net/fib_trie of a Docker container (Main and Local tables).
    const FIB_TRIE: &str = "\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 172.17.0.0/16 2 0 2
        +-- 172.17.0.0/30 2 0 2
           |-- 172.17.0.0
              /16 link UNICAST
           |-- 172.17.0.2
              /32 host LOCAL
        |-- 172.17.255.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 172.17.0.2
        /32 host LOCAL
";

    #[test]
    fn fib_trie_gives_local_addresses() {
        let a = parse_fib_trie(FIB_TRIE);
        assert_eq!(a.kept, ["172.17.0.2"]);
        assert_eq!(a.not_kept, 0, "listed under both tables, counted once");
        assert_eq!(parse_fib_trie(""), Addrs::default());
    }

    /// A container that adds 100,000 /32s to its own namespace: the agent
    /// keeps the lowest few and counts the rest.
    #[test]
    fn addresses_beyond_a_handful_are_counted_not_kept() {
        const N: u32 = 100_000;
        let leaf = |i: u32| {
            let ip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 9, 0, 0)) + i);
            format!("     |-- {ip}\n        /32 host LOCAL\n")
        };
        // Highest first: what is kept does not depend on the file's order.
        let table: String = (0..N).rev().map(leaf).collect();
        let text =
            format!("Main:\n  +-- 0.0.0.0/0 3 0 5\n{table}Local:\n  +-- 0.0.0.0/0 3 0 5\n{table}");
        let a = parse_fib_trie(&text);
        assert_eq!(a.kept.len(), MAX_ADDRS);
        assert_eq!(a.kept[0], "10.9.0.0");
        assert_eq!(a.kept[MAX_ADDRS - 1], "10.9.0.7");
        assert_eq!(a.not_kept, u64::from(N) - MAX_ADDRS as u64);
        // Only in the local table (tables not merged): the same count.
        let local_only = format!("Main:\n  +-- 0.0.0.0/0 3 0 5\nLocal:\n{table}");
        assert_eq!(parse_fib_trie(&local_only), a);
    }

    #[test]
    fn tcp_listeners() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1E61 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 020011AC:1E61 010011AC:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
";
        assert_eq!(parse_tcp_listen(tcp), [80, 7777]);
    }

    #[test]
    fn own_namespace_is_read_and_kept_open() {
        let me = std::process::id();
        let mut r = NetnsReader::default();
        let v = r
            .read("self", me, netns_of(me).unwrap())
            .expect("own netns");
        assert_eq!(v.netns, netns_of(me).unwrap());
        let again = r
            .read("self", me, netns_of(me).unwrap())
            .expect("again, through the open file");
        assert!(again.counters.rx_bytes >= v.counters.rx_bytes);
        let tcp = again.tcp.expect("own TCP counters");
        assert!(tcp.follows(&v.tcp.expect("first TCP counters")));
        assert_eq!(r.held("self"), 4, "net/dev, snmp, netstat, netlink socket");
        r.retain(|_| false);
        assert!(r.open.is_empty());
        assert!(r.read("gone", u32::MAX, 1).is_err());
    }
}
