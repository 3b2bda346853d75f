//! A network namespace's own TCP counters, as the kernel keeps them per
//! namespace: `/proc/PID/net/snmp` (`Tcp:`) and `/proc/PID/net/netstat`
//! (`TcpExt:`). Cheap (two small reads a tick) and counted whatever dsh's
//! kernel programs see; they say how many, not to where.
use serde::{Deserialize, Serialize};

/// Cumulative TCP counters of one network namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpCounters {
    /// Connects begun (SYN sent).
    pub active_opens: u64,
    /// Connects that failed before being established (refused, timed out,
    /// unreachable).
    pub attempt_fails: u64,
    /// Established connections reset.
    pub estab_resets: u64,
    pub out_segs: u64,
    pub retrans_segs: u64,
    /// Resets sent.
    pub out_rsts: u64,
    /// Handshakes dropped because a listener's accept queue was full.
    pub listen_overflows: u64,
    /// Handshakes dropped at a listener for any reason (overflows included).
    pub listen_drops: u64,
}

/// The value line of `prefix` (`Tcp:`, `TcpExt:`): each name of the header
/// line paired with its number. Pairs, so a kernel that adds or reorders
/// fields is read right.
fn pairs<'a>(text: &'a str, prefix: &str) -> Result<Vec<(&'a str, i64)>, String> {
    let mut lines = text.lines().filter(|l| l.starts_with(prefix));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return Err(format!("no {prefix} header and values"));
    };
    let names = names[prefix.len()..].split_whitespace();
    let values = values[prefix.len()..]
        .split_whitespace()
        .map(|v| v.parse::<i64>().map_err(|_| format!("{prefix} {v:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names.zip(values).collect())
}

/// Fills `c` from the `Tcp:` lines of `net/snmp`.
pub fn parse_snmp(text: &str, c: &mut TcpCounters) -> Result<(), String> {
    let v = pairs(text, "Tcp:")?;
    let get = |name: &str| {
        v.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, x)| (*x).max(0) as u64)
            .ok_or_else(|| format!("Tcp: no {name}"))
    };
    *c = TcpCounters {
        active_opens: get("ActiveOpens")?,
        attempt_fails: get("AttemptFails")?,
        estab_resets: get("EstabResets")?,
        out_segs: get("OutSegs")?,
        retrans_segs: get("RetransSegs")?,
        out_rsts: get("OutRsts")?,
        ..*c
    };
    Ok(())
}

/// Fills `c` from the `TcpExt:` lines of `net/netstat`.
pub fn parse_netstat(text: &str, c: &mut TcpCounters) -> Result<(), String> {
    let v = pairs(text, "TcpExt:")?;
    let get = |name: &str| {
        v.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, x)| (*x).max(0) as u64)
            .ok_or_else(|| format!("TcpExt: no {name}"))
    };
    (c.listen_overflows, c.listen_drops) = (get("ListenOverflows")?, get("ListenDrops")?);
    Ok(())
}

impl TcpCounters {
    /// Every counter at least `prev`'s: the same namespace, read again (a
    /// new one starts from zero and gives no rate).
    pub fn follows(&self, prev: &Self) -> bool {
        self.active_opens >= prev.active_opens
            && self.attempt_fails >= prev.attempt_fails
            && self.out_segs >= prev.out_segs
            && self.retrans_segs >= prev.retrans_segs
            && self.listen_overflows >= prev.listen_overflows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From this project's test host (6.18).
    const SNMP: &str = "\
Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 100
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 5799 5680 14 204 0 2912609 2910617 620 0 151 0
Udp: InDatagrams NoPorts
Udp: 1 2
";
    const NETSTAT: &str = "\
TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed ListenOverflows ListenDrops TCPTimeouts
TcpExt: 0 0 0 1498 1500 7
IpExt: InNoRoutes
IpExt: 0
";

    #[test]
    fn tcp_and_tcpext_lines_by_name() {
        let mut c = TcpCounters::default();
        parse_snmp(SNMP, &mut c).unwrap();
        parse_netstat(NETSTAT, &mut c).unwrap();
        assert_eq!(
            c,
            TcpCounters {
                active_opens: 5799,
                attempt_fails: 14,
                estab_resets: 204,
                out_segs: 2910617,
                retrans_segs: 620,
                out_rsts: 151,
                listen_overflows: 1498,
                listen_drops: 1500,
            }
        );
    }

    #[test]
    fn missing_or_garbled_lines_are_errors() {
        let mut c = TcpCounters::default();
        assert!(parse_snmp("Ip: A\nIp: 1\n", &mut c).is_err());
        assert!(parse_snmp("Tcp: ActiveOpens\n", &mut c).is_err());
        assert!(parse_snmp("Tcp: ActiveOpens\nTcp: x\n", &mut c).is_err());
        assert!(parse_netstat("TcpExt: ListenOverflows\nTcpExt: 1\n", &mut c).is_err());
        assert_eq!(c, TcpCounters::default(), "nothing half-filled on errors");
    }
}
