//! Process exec and exit.
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use dsh_ebpf::{ExecEvent, ExitEvent, channel, kind};

use super::{
    churn::{count_exec, count_exit, exec_starts_main, exit_is_notable},
    events::{emit, header},
    failures::{count, counted},
    kernel::{Failure, off, read, read_str},
    signal::take_main_signals,
};

#[inline(always)]
fn parent_tgid(task: *const u8) -> Result<u32, Failure> {
    let parent: *const u8 = read(task, off!(task_real_parent))?;
    read(parent, off!(task_tgid))
}

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`
#[btf_tracepoint(function = "sched_process_exec")]
pub fn dsh_sched_process_exec(ctx: BtfTracePointContext) -> u32 {
    let task: *const u8 = ctx.arg(0);
    let old_pid: i32 = ctx.arg(1);
    let bprm: *const u8 = ctx.arg(2);
    let hdr = header(kind::EXEC);
    // Churn is counted, not sent (see `churn`).
    if !exec_starts_main(hdr.cgroup_id, hdr.tgid) && count_exec(hdr.cgroup_id, hdr.comm) {
        return 0;
    }
    emit::<ExecEvent>(channel::CHATTY, |e| {
        e.hdr = hdr;
        e.ppid = parent_tgid(task).unwrap_or_else(|f| {
            count(f);
            0
        });
        e.old_pid = old_pid as u32;
        match read::<*const u8>(bprm, off!(binprm_filename)) {
            Ok(name) => read_str(name, &mut e.filename),
            Err(f) => count(f),
        }
    });
    0
}

/// `sched_process_exit(struct task_struct *p, ...)`, called for every thread.
/// Only the last thread of a group ends the process: `signal->live` has
/// already been decremented by `do_exit` when the tracepoint fires.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn dsh_sched_process_exit(ctx: BtfTracePointContext) -> u32 {
    counted(try_exit(ctx.arg(0)))
}

fn try_exit(task: *const u8) -> Result<(), Failure> {
    let signal: *const u8 = read(task, off!(task_signal))?;
    let live: i32 = read(signal, off!(signal_live))?;
    if live != 0 {
        return Ok(());
    }
    let exit_code: i32 = read(task, off!(task_exit_code))?;
    let hdr = header(kind::EXIT);
    // Churn is counted, not sent (see `churn`).
    if !exit_is_notable(hdr.cgroup_id, hdr.tgid, exit_code)
        && count_exit(hdr.cgroup_id, hdr.comm, exit_code)
    {
        return Ok(());
    }
    let start_ns: u64 = read(task, off!(task_start_time))?;
    let ppid = parent_tgid(task)?;
    // Read before `emit`, so the record is filled by plain stores (see
    // `events::emit`).
    let outside = take_main_signals(hdr.cgroup_id, hdr.tgid);
    emit::<ExitEvent>(channel::CRITICAL, |e| {
        e.hdr = hdr;
        e.exit_code = exit_code as u32;
        e.ppid = ppid;
        e.start_ns = start_ns;
        e.outside = outside;
    });
    Ok(())
}
