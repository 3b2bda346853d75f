//! TCP connects per cgroup, from the socket state changes the listen
//! program already sees: SYN_SENT is entered in the connecting task (its
//! cgroup and the time are kept, keyed by the socket); the answer arrives
//! in softirq or a timer, so it is counted for the cgroup kept, never for
//! `current`. No per-packet program.
use aya_ebpf::{btf_maps::LruHashMap, btf_maps::PerCpuHashMap, macros::btf_map};
use dsh_ebpf::{MAX_TCP_CGROUPS, MAX_TCP_CONNECTING, TcpConnectStart, TcpConnectStats, failure};

use super::{
    failures::count,
    kernel::{Failure, current_cgroup_id, now_ns, off, read},
    maps::get_or_insert_zeroed,
};

const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_CLOSE: i32 = 7;

const ENETUNREACH: i32 = 101;
const ECONNRESET: i32 = 104;
const ETIMEDOUT: i32 = 110;
const ECONNREFUSED: i32 = 111;
const EHOSTUNREACH: i32 = 113;

/// `struct sock *` → who began its connect, and when. An LRU: sockets whose
/// end is never seen (none should be) age out.
#[btf_map]
pub static TCP_CONNECTING: LruHashMap<u64, TcpConnectStart, MAX_TCP_CONNECTING> = LruHashMap::new();

/// Cgroup id → its connects by how they ended (user space reads and prunes).
#[btf_map]
pub static TCP_CONNECTS: PerCpuHashMap<u64, TcpConnectStats, MAX_TCP_CGROUPS> =
    PerCpuHashMap::new();

static ZERO: TcpConnectStats = TcpConnectStats {
    ok: 0,
    handshake_ns: 0,
    refused: 0,
    timed_out: 0,
    unreachable: 0,
    reset: 0,
    other_error: 0,
    aborted: 0,
};

#[inline(always)]
pub fn on_state(sk: *const u8, old_state: i32, new_state: i32) {
    if new_state == TCP_SYN_SENT {
        let start = TcpConnectStart {
            cgroup_id: current_cgroup_id(),
            start_ns: now_ns(),
        };
        // Full: the LRU evicts the oldest; no error to count.
        let _ = TCP_CONNECTING.insert(sk as u64, start, 0);
        return;
    }
    if old_state != TCP_SYN_SENT {
        return;
    }
    let key = sk as u64;
    let Some(start) = TCP_CONNECTING.get_ptr(key) else {
        return;
    };
    // SAFETY: a value of the map, valid while this program runs; copied out
    // before its entry is deleted.
    let start = unsafe { *start };
    let _ = TCP_CONNECTING.remove(key);
    let Some(stats) = get_or_insert_zeroed(&TCP_CONNECTS, &start.cgroup_id, &ZERO) else {
        count(Failure(failure::TCP_COUNTERS_FULL));
        return;
    };
    // SAFETY: a per-CPU value of the map, this CPU's; programs do not
    // migrate while they run.
    let stats = unsafe { &mut *stats };
    if new_state == TCP_ESTABLISHED {
        stats.ok += 1;
        stats.handshake_ns += now_ns().saturating_sub(start.start_ns);
    } else if new_state == TCP_CLOSE {
        match read::<i32>(sk, off!(sk_err)) {
            Ok(ECONNREFUSED) => stats.refused += 1,
            Ok(ETIMEDOUT) => stats.timed_out += 1,
            Ok(EHOSTUNREACH | ENETUNREACH) => stats.unreachable += 1,
            Ok(ECONNRESET) => stats.reset += 1,
            Ok(0) => stats.aborted += 1,
            Ok(_) => stats.other_error += 1,
            Err(f) => {
                stats.other_error += 1;
                count(f);
            }
        }
    }
}
