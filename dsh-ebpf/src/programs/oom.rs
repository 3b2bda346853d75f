//! OOM kills: `mark_victim` names the victim (the current task is whoever
//! ran the OOM killer).
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use dsh_ebpf::{COMM_LEN, OomEvent, channel, kind};

use super::{
    events::{emit, header},
    failures::count,
    kernel::{Failure, off, read, task_cgroup_id},
};

/// `mm_struct.rss_stat` indices (include/linux/mm_types_task.h).
const MM_FILEPAGES: usize = 0;
const MM_ANONPAGES: usize = 1;
const MM_SHMEMPAGES: usize = 3;

#[inline(always)]
fn rss(mm: *const u8, index: usize) -> Result<u64, Failure> {
    let counter =
        off!(mm_rss_stat) + index * off!(percpu_counter_size) + off!(percpu_counter_count);
    Ok(read::<i64>(mm, counter)?.max(0) as u64)
}

/// `mark_victim(struct task_struct *task, uid_t uid)`
#[btf_tracepoint(function = "mark_victim")]
pub fn dsh_mark_victim(ctx: BtfTracePointContext) -> u32 {
    let victim: *const u8 = ctx.arg(0);
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
