//! Retransmits and resets per socket, counted for the socket's own cgroup.
//! These tracepoints fire in softirq and timers, where `current` is
//! whoever the CPU happened to run; the socket carries its cgroup2
//! (`sk_cgrp_data`, set at creation, inherited by accepted sockets from
//! their listener), so a server's retransmits count for the server.
use aya_ebpf::{
    btf_maps::PerCpuHashMap,
    macros::{btf_map, btf_tracepoint},
    programs::BtfTracePointContext,
};
use dsh_ebpf::{MAX_TCP_CGROUPS, TcpSocketStats, failure, sk_cgroup};

use super::{
    failures::count,
    kernel::{Failure, cgroup_id, config, off, read},
    maps::get_or_insert_zeroed,
};

/// States whose `struct sock *` is not a full socket (a time-wait or a
/// request sock): it has no `sk_cgrp_data`.
const TCP_TIME_WAIT: u8 = 6;
const TCP_NEW_SYN_RECV: u8 = 12;

/// Cgroup id → its sockets' retransmits and resets (user space reads and
/// prunes).
#[btf_map]
pub static TCP_SOCKETS: PerCpuHashMap<u64, TcpSocketStats, MAX_TCP_CGROUPS> = PerCpuHashMap::new();

static ZERO: TcpSocketStats = TcpSocketStats {
    retransmits: 0,
    resets_sent: 0,
    resets_received: 0,
    _pad: 0,
};

#[derive(Clone, Copy)]
enum Counter {
    Retransmit,
    ResetSent,
    ResetReceived,
}

/// `tcp_retransmit_skb(const struct sock *sk, const struct sk_buff *skb, ...)`.
#[btf_tracepoint(function = "tcp_retransmit_skb")]
pub fn dsh_tcp_retransmit_skb(ctx: BtfTracePointContext) -> u32 {
    on_socket(ctx.arg(0), Counter::Retransmit);
    0
}

/// `tcp_send_reset(const struct sock *sk, const struct sk_buff *skb[, reason])`
/// (the reason since 6.10): `sk` is NULL for a reset that answers no
/// socket, counted for nobody.
#[btf_tracepoint(function = "tcp_send_reset")]
pub fn dsh_tcp_send_reset(ctx: BtfTracePointContext) -> u32 {
    on_socket(ctx.arg(0), Counter::ResetSent);
    0
}

/// `tcp_receive_reset(struct sock *sk)`.
#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn dsh_tcp_receive_reset(ctx: BtfTracePointContext) -> u32 {
    on_socket(ctx.arg(0), Counter::ResetReceived);
    0
}

#[inline(always)]
fn on_socket(sk: *const u8, what: Counter) {
    if sk.is_null() || config().sk_cgroup_mode == sk_cgroup::NONE {
        return;
    }
    let id = match socket_cgroup_id(sk) {
        Ok(Some(id)) => id,
        Ok(None) => return,
        Err(f) => {
            count(f);
            return;
        }
    };
    let Some(stats) = get_or_insert_zeroed(&TCP_SOCKETS, &id, &ZERO) else {
        count(Failure(failure::TCP_SOCKET_COUNTERS_FULL));
        return;
    };
    // SAFETY: a per-CPU value of the map, this CPU's; programs do not
    // migrate while they run.
    let stats = unsafe { &mut *stats };
    match what {
        Counter::Retransmit => stats.retransmits += 1,
        Counter::ResetSent => stats.resets_sent += 1,
        Counter::ResetReceived => stats.resets_received += 1,
    }
}

/// The cgroup2 id of a full socket; `None` for a socket that is not full
/// or whose cgroup the kernel did not keep (5.10's data mode).
#[inline(always)]
fn socket_cgroup_id(sk: *const u8) -> Result<Option<u64>, Failure> {
    let state: u8 = read(sk, off!(skc_state))?;
    if state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV {
        return Ok(None);
    }
    let cgrp: *const u8 = if config().sk_cgroup_mode == sk_cgroup::VAL {
        let v: u64 = read(sk, off!(sk_cgroup))?;
        if v & 3 != 0 {
            return Ok(None);
        }
        v as *const u8
    } else {
        read(sk, off!(sk_cgroup))?
    };
    if cgrp.is_null() {
        return Ok(None);
    }
    cgroup_id(cgrp).map(Some)
}
