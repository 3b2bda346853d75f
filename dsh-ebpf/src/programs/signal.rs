//! Signals: who sent what to whom, and delivery.
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use dsh_ebpf::{COMM_LEN, SignalEvent, channel, kind};

use super::{
    events::{emit, header},
    failures::count,
    kernel::{off, read, task_cgroup_id},
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

/// `signal_generate(int sig, struct kernel_siginfo *info, struct task_struct *task,
///                  int group, int result)`: current is the sender.
#[btf_tracepoint(function = "signal_generate")]
pub fn dsh_signal_generate(ctx: BtfTracePointContext) -> u32 {
    let sig: i32 = ctx.arg(0);
    let target: *const u8 = ctx.arg(2);
    let group: i32 = ctx.arg(3);
    let result: i32 = ctx.arg(4);
    note_signal_target(sig, target);
    let fill = |e: &mut SignalEvent| {
        e.hdr = header(kind::SIGNAL_GENERATE);
        e.signal = sig as u32;
        e.result = result;
        e.group = group as u32;
        let ids = read::<u32>(target, off!(task_pid)).and_then(|pid| {
            let tgid = read::<u32>(target, off!(task_tgid))?;
            let comm = read::<[u8; COMM_LEN]>(target, off!(task_comm))?;
            Ok((pid, tgid, comm))
        });
        match ids {
            Ok((pid, tgid, comm)) => {
                e.target_pid = pid;
                e.target_tgid = tgid;
                e.target_comm = comm;
            }
            Err(f) => count(f),
        }
        e.target_cgroup_id = task_cgroup_id(target);
    };
    if is_fatal(sig) {
        emit(channel::CRITICAL, fill);
    } else {
        emit(channel::CHATTY, fill);
    }
    0
}

/// `signal_deliver(int sig, struct kernel_siginfo *info, struct k_sigaction *ka)`:
/// current is the receiver.
#[btf_tracepoint(function = "signal_deliver")]
pub fn dsh_signal_deliver(ctx: BtfTracePointContext) -> u32 {
    let sig: i32 = ctx.arg(0);
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
