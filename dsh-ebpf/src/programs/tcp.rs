//! TCP connects per cgroup, from the socket state changes the listen
//! program already sees: SYN_SENT is entered in the connecting task (its
//! cgroup and the time are kept, keyed by the socket); the answer arrives
//! in softirq or a timer, so it is counted for the cgroup kept, never for
//! `current`. No per-packet program.
use aya_ebpf::{btf_maps::LruHashMap, btf_maps::PerCpuHashMap, macros::btf_map};
use dsh_ebpf::{
    MAX_TCP_CGROUPS, MAX_TCP_CONNECTING, MAX_TCP_DESTINATIONS, TcpConnectStart, TcpConnectStats,
    TcpDestKey, failure,
};

use super::{
    failures::count,
    kernel::{Failure, atomic_add, config, current_cgroup_id, now_ns, off, read},
    maps::get_or_insert_zeroed,
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

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

/// (cgroup, destination) → connects to it that failed. An LRU: the
/// destinations that failed least recently go first; user space takes
/// differences between readings, so an entry evicted and made again only
/// loses the failures before its eviction.
#[btf_map]
pub static TCP_FAILED_DESTS: LruHashMap<TcpDestKey, u64, MAX_TCP_DESTINATIONS> = LruHashMap::new();

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
            Ok(0) => {
                stats.aborted += 1;
                return;
            }
            Ok(_) => stats.other_error += 1,
            Err(f) => {
                stats.other_error += 1;
                count(f);
            }
        }
        if config().has_tcp_sock != 0 {
            count_destination(sk, start.cgroup_id);
        }
    }
}

/// Counts a failed connect against its destination.
#[inline(always)]
fn count_destination(sk: *const u8, cgroup_id: u64) {
    let mut key = TcpDestKey {
        cgroup_id,
        addr: [0; 16],
        port: 0,
        family: 0,
        _pad: 0,
    };
    if let Err(f) = fill_destination(&mut key, sk) {
        count(f);
        return;
    }
    // An LRU makes room by evicting: never full.
    if let Some(n) = get_or_insert_zeroed(&TCP_FAILED_DESTS, &key, &0) {
        // SAFETY: a value of the map, a u64 in map memory that other CPUs
        // may add to at the same time: hence the atomic add.
        unsafe { atomic_add(n, 1) };
    }
}

#[inline(always)]
fn fill_destination(key: &mut TcpDestKey, sk: *const u8) -> Result<(), Failure> {
    let family: u16 = read(sk, off!(skc_family))?;
    key.family = family;
    key.port = u16::from_be(read(sk, off!(skc_dport))?);
    if family == AF_INET {
        let a: [u8; 4] = read(sk, off!(skc_daddr))?;
        key.addr[..4].copy_from_slice(&a);
    } else if family == AF_INET6 {
        key.addr = read(sk, off!(skc_v6_daddr))?;
    }
    Ok(())
}
