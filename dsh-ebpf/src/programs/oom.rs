//! OOM kills: `mark_victim` names the victim (the current task is whoever
//! ran the OOM killer).
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use dsh_ebpf::{OomEvent, channel, kind};

use super::{
    events::{emit, header},
    kernel::{off, read, task_cgroup_id},
};

/// `mm_struct.rss_stat` indices (include/linux/mm_types_task.h).
const MM_FILEPAGES: usize = 0;
const MM_ANONPAGES: usize = 1;
const MM_SHMEMPAGES: usize = 3;

#[inline(always)]
unsafe fn rss(mm: *const u8, index: usize) -> u64 {
    let counter =
        off!(mm_rss_stat) + index * off!(percpu_counter_size) + off!(percpu_counter_count);
    unsafe { read::<i64>(mm, counter) }.unwrap_or(0).max(0) as u64
}

/// `mark_victim(struct task_struct *task, uid_t uid)`
#[btf_tracepoint(function = "mark_victim")]
pub fn dsh_mark_victim(ctx: BtfTracePointContext) -> u32 {
    let victim: *const u8 = ctx.arg(0);
    emit::<OomEvent>(channel::CRITICAL, |e| unsafe {
        (*e).hdr = header(kind::OOM);
        (*e).victim_pid = read(victim, off!(task_pid)).unwrap_or(0);
        (*e).victim_tgid = read(victim, off!(task_tgid)).unwrap_or(0);
        (*e).victim_cgroup_id = task_cgroup_id(victim);
        (*e).victim_comm = read(victim, off!(task_comm)).unwrap_or([0; 16]);
        let mm: *const u8 = read(victim, off!(task_mm)).unwrap_or(core::ptr::null());
        if mm.is_null() {
            (*e).total_vm_pages = 0;
            (*e).anon_rss_pages = 0;
            (*e).file_rss_pages = 0;
            (*e).shmem_rss_pages = 0;
        } else {
            (*e).total_vm_pages = read(mm, off!(mm_total_vm)).unwrap_or(0);
            (*e).anon_rss_pages = rss(mm, MM_ANONPAGES);
            (*e).file_rss_pages = rss(mm, MM_FILEPAGES);
            (*e).shmem_rss_pages = rss(mm, MM_SHMEMPAGES);
        }
    });
    0
}
