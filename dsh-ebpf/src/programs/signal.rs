//! Signals: who sent what to whom, and delivery.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use dsh_ebpf::{SignalEvent, channel, kind};

use super::{
    churn::is_main_process,
    events::{emit, header},
    kernel::{current_cgroup_id, off, read, task_cgroup_id},
};

/// Signals whose default action ends the process. These go on the critical
/// channel: they explain deaths. The rest (SIGCHLD, SIGWINCH, ...) are chatty.
#[inline(always)]
fn is_fatal(sig: i32) -> bool {
    matches!(
        sig,
        1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 11 | 13 | 14 | 15 | 24 | 25 | 26 | 27 | 31
    )
}

/// SIGCHLD, SIGCONT, SIGURG, SIGWINCH: housekeeping, not intent. A
/// fork-heavy container sends one SIGCHLD per child.
#[inline(always)]
fn is_housekeeping(sig: i32) -> bool {
    matches!(sig, 17 | 18 | 23 | 28)
}

/// `signal_generate(int sig, struct kernel_siginfo *info, struct task_struct *task,
///                  int group, int result)`: current is the sender. Sent only
/// for signals that cross a cgroup boundary (from outside the container, or
/// from it to the host), housekeeping ones aside.
#[btf_tracepoint(function = "signal_generate")]
pub fn dsh_signal_generate(ctx: BtfTracePointContext) -> u32 {
    let sig: i32 = ctx.arg(0);
    let target: *const u8 = ctx.arg(2);
    let group: i32 = ctx.arg(3);
    let result: i32 = ctx.arg(4);
    if is_housekeeping(sig) {
        return 0;
    }
    // SAFETY: `target` is the tracepoint's task argument; the reads are
    // probe reads, which fail rather than fault.
    let target_cgroup_id = unsafe { task_cgroup_id(target) };
    if target_cgroup_id == current_cgroup_id() {
        // Within one cgroup: whatever it kills shows in the exit's status.
        return 0;
    }
    let fill = |e: *mut SignalEvent| unsafe {
        (*e).hdr = header(kind::SIGNAL_GENERATE);
        (*e).signal = sig as u32;
        (*e).result = result;
        (*e).group = group as u32;
        (*e).target_pid = read(target, off!(task_pid)).unwrap_or(0);
        (*e).target_tgid = read(target, off!(task_tgid)).unwrap_or(0);
        (*e)._pad = 0;
        (*e).target_cgroup_id = target_cgroup_id;
        (*e).target_comm = read(target, off!(task_comm)).unwrap_or([0; 16]);
    };
    if is_fatal(sig) {
        emit::<SignalEvent>(channel::CRITICAL, fill);
    } else {
        emit::<SignalEvent>(channel::CHATTY, fill);
    }
    0
}

/// `signal_deliver(int sig, struct kernel_siginfo *info, struct k_sigaction *ka)`:
/// current is the receiver. Sent only for a signal that can end a cgroup's
/// main process (the rest are a fork-heavy container's SIGCHLDs, or
/// children's pipes closing: churn).
#[btf_tracepoint(function = "signal_deliver")]
pub fn dsh_signal_deliver(ctx: BtfTracePointContext) -> u32 {
    let sig: i32 = ctx.arg(0);
    if !is_fatal(sig) {
        return 0;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !is_main_process(current_cgroup_id(), tgid) {
        return 0;
    }
    emit::<SignalEvent>(channel::CHATTY, |e| unsafe {
        let hdr = header(kind::SIGNAL_DELIVER);
        (*e).hdr = hdr;
        (*e).signal = sig as u32;
        (*e).result = 0;
        (*e).group = 0;
        (*e).target_pid = hdr.pid;
        (*e).target_tgid = hdr.tgid;
        (*e)._pad = 0;
        (*e).target_cgroup_id = hdr.cgroup_id;
        (*e).target_comm = hdr.comm;
    });
    0
}
