//! Cgroup lifecycle: how dsh discovers containers without walking cgroupfs.
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use dsh_ebpf::{CgroupEvent, channel, kind};

use super::{
    churn,
    events::{emit, header},
    failures::count,
    kernel::{cgroup_id, off, read, read_str},
    maps::{BLOCK_STATS, SYSCALL_COUNTS},
};

#[inline(always)]
fn emit_cgroup(ctx: &BtfTracePointContext, event_kind: u32) -> u64 {
    let cgrp: *const u8 = ctx.arg(0);
    let path: *const u8 = ctx.arg(1);
    let id = cgroup_id(cgrp).unwrap_or_else(|f| {
        count(f);
        0
    });
    emit::<CgroupEvent>(channel::CRITICAL, |e| {
        e.hdr = header(event_kind);
        e.id = id;
        let root = read::<*const u8>(cgrp, off!(cgroup_root));
        match (
            read::<u32>(cgrp, off!(cgroup_level)),
            root.and_then(|r| read::<u32>(r, off!(cgroup_root_hierarchy_id))),
        ) {
            (Ok(level), Ok(hierarchy_id)) => {
                e.level = level;
                e.hierarchy_id = hierarchy_id;
            }
            (Err(f), _) | (_, Err(f)) => count(f),
        }
        read_str(path, &mut e.path);
    });
    id
}

/// `cgroup_mkdir(struct cgroup *cgrp, const char *path)`
#[btf_tracepoint(function = "cgroup_mkdir")]
pub fn dsh_cgroup_mkdir(ctx: BtfTracePointContext) -> u32 {
    emit_cgroup(&ctx, kind::CGROUP_MKDIR);
    0
}

/// `cgroup_rmdir(struct cgroup *cgrp, const char *path)`. Also frees the
/// cgroup's block and (hash layout) syscall counters; cgroup local storage
/// is freed by the kernel itself.
#[btf_tracepoint(function = "cgroup_rmdir")]
pub fn dsh_cgroup_rmdir(ctx: BtfTracePointContext) -> u32 {
    let id = emit_cgroup(&ctx, kind::CGROUP_RMDIR);
    if id != 0 {
        // Absent when the cgroup did no block I/O, or made no syscall.
        let _ = BLOCK_STATS.remove(id);
        let _ = SYSCALL_COUNTS.remove(id);
        churn::forget_cgroup(id);
    }
    0
}
