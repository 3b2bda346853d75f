//! Signals: who sent what to whom, and delivery.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use dsh_ebpf::{COMM_LEN, SignalEvent, channel, kind};

use super::{
    churn::is_main_process,
    events::{emit, header},
    failures::count,
    kernel::{current_cgroup_id, off, read, task_cgroup_id},
    oom::note_signal_target,
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
    // Before any filter: the OOM killer's SIGKILL is often sent from
    // within the victim's own cgroup.
    note_signal_target(sig, target);
    if is_housekeeping(sig) {
        return 0;
    }
    let target_cgroup_id = task_cgroup_id(target);
    if target_cgroup_id == current_cgroup_id() {
        // Within one cgroup: whatever it kills shows in the exit's status.
        return 0;
    }
    // Read before `emit`, so the record is filled by plain stores: a
    // closure with the reads in it was outlined into a BPF subprogram that
    // the verifier rejected (a stack pointer left in R0 on return).
    let ids = read::<u32>(target, off!(task_pid)).and_then(|pid| {
        let tgid = read::<u32>(target, off!(task_tgid))?;
        let comm = read::<[u8; COMM_LEN]>(target, off!(task_comm))?;
        Ok((pid, tgid, comm))
    });
    let (target_pid, target_tgid, target_comm) = ids.unwrap_or_else(|f| {
        count(f);
        (0, 0, [0; COMM_LEN])
    });
    let fill = |e: &mut SignalEvent| {
        e.hdr = header(kind::SIGNAL_GENERATE);
        e.signal = sig as u32;
        e.result = result;
        e.group = group as u32;
        e.target_pid = target_pid;
        e.target_tgid = target_tgid;
        e.target_comm = target_comm;
        e.target_cgroup_id = target_cgroup_id;
    };
    let chan = if is_fatal(sig) {
        channel::CRITICAL
    } else {
        channel::CHATTY
    };
    emit(chan, fill);
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
    emit::<SignalEvent>(channel::CHATTY, |e| {
        let hdr = header(kind::SIGNAL_DELIVER);
        e.hdr = hdr;
        e.signal = sig as u32;
        e.target_pid = hdr.pid;
        e.target_tgid = hdr.tgid;
        e.target_cgroup_id = hdr.cgroup_id;
        e.target_comm = hdr.comm;
    });
    0
}
