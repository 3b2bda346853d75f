//! OOM kills: `mark_victim` names the victim (the current task is whoever
//! ran the OOM killer).
//!
//! Before 6.1 the tracepoint passes only the victim's pid. The OOM killer
//! sends the victim SIGKILL just before it marks it (`__oom_kill_process`),
//! so `signal_generate` remembers the task of every SIGKILL by pid on those
//! kernels, and `mark_victim` looks its pid up there while the killer still
//! holds a reference to the task.
use aya_ebpf::{
    btf_maps::LruHashMap,
    macros::{btf_map, btf_tracepoint},
    programs::BtfTracePointContext,
};
use dsh_ebpf::{COMM_LEN, OomEvent, channel, failure, kind, victim_arg};

use super::{
    events::{emit, header},
    failures::count,
    kernel::{Failure, config, off, read, task_cgroup_id},
};

/// `mm_struct.rss_stat` indices (include/linux/mm_types_task.h).
const MM_FILEPAGES: usize = 0;
const MM_ANONPAGES: usize = 1;
const MM_SHMEMPAGES: usize = 3;

const SIGKILL: i32 = 9;

/// Pid → `struct task_struct *` of recent SIGKILL targets, on kernels whose
/// `mark_victim` passes a pid. LRU: entries no OOM kill asks for age out.
#[btf_map]
static SIGKILL_TARGETS: LruHashMap<u32, u64, 1024> = LruHashMap::new();

/// Called by `signal_generate` for every signal: remembers SIGKILL targets
/// where `mark_victim` will need them.
#[inline(always)]
pub fn note_signal_target(sig: i32, target: *const u8) {
    if config().oom_victim_arg != victim_arg::PID || sig != SIGKILL {
        return;
    }
    match read::<u32>(target, off!(task_pid)) {
        // A full LRU evicts its oldest entry: an insert does not fail for room.
        Ok(pid) => {
            let _ = SIGKILL_TARGETS.insert(pid, target as u64, 0);
        }
        Err(f) => count(f),
    }
}

#[inline(always)]
fn rss(mm: *const u8, index: usize) -> Result<u64, Failure> {
    let counter = off!(mm_rss_stat) + index * off!(rss_counter_stride) + off!(rss_counter_value);
    Ok(read::<i64>(mm, counter)?.max(0) as u64)
}

/// `mark_victim(struct task_struct *task, uid_t uid)`, or `mark_victim(int
/// pid)` before 6.1 (see the module comment).
#[btf_tracepoint(function = "mark_victim")]
pub fn dsh_mark_victim(ctx: BtfTracePointContext) -> u32 {
    let arg: u64 = ctx.arg(0);
    let victim = if config().oom_victim_arg == victim_arg::PID {
        let pid = arg as u32;
        // SAFETY: a map value pointer from a successful lookup is valid for
        // a read.
        let task = SIGKILL_TARGETS.get_ptr(pid).map(|t| unsafe { *t });
        let _ = SIGKILL_TARGETS.remove(pid);
        match task {
            Some(task) => task as *const u8,
            None => {
                count(Failure(failure::OOM_VICTIM_UNKNOWN));
                emit::<OomEvent>(channel::CRITICAL, |e| {
                    e.hdr = header(kind::OOM);
                    // The best guess left: a memcg OOM kill picks its
                    // victim from the cgroup of the task that ran into it.
                    e.victim_pid = pid;
                    e.victim_tgid = pid;
                    e.victim_cgroup_id = e.hdr.cgroup_id;
                });
                return 0;
            }
        }
    } else {
        arg as *const u8
    };
    emit::<OomEvent>(channel::CRITICAL, |e| {
        e.hdr = header(kind::OOM);
        e.victim_cgroup_id = task_cgroup_id(victim);
        if let Err(f) = fill_victim(e, victim) {
            count(f);
        }
    });
    0
}

#[inline(always)]
fn fill_victim(e: &mut OomEvent, victim: *const u8) -> Result<(), Failure> {
    e.victim_pid = read(victim, off!(task_pid))?;
    e.victim_tgid = read(victim, off!(task_tgid))?;
    e.victim_comm = read::<[u8; COMM_LEN]>(victim, off!(task_comm))?;
    let mm: *const u8 = read(victim, off!(task_mm))?;
    if !mm.is_null() {
        e.total_vm_pages = read(mm, off!(mm_total_vm))?;
        e.anon_rss_pages = rss(mm, MM_ANONPAGES)?;
        e.file_rss_pages = rss(mm, MM_FILEPAGES)?;
        e.shmem_rss_pages = rss(mm, MM_SHMEMPAGES)?;
    }
    Ok(())
}
