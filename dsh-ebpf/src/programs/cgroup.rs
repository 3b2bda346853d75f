//! Cgroup lifecycle: how dsh discovers containers without walking cgroupfs.
use aya_ebpf::{
    helpers::bpf_probe_read_kernel_str_bytes, macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use dsh_ebpf::{CgroupEvent, channel, kind};

use super::{
    churn,
    events::{emit, header},
    kernel::{cgroup_id, off, read},
    maps::BLOCK_STATS,
};

#[inline(always)]
fn emit_cgroup(ctx: &BtfTracePointContext, event_kind: u32) -> u64 {
    let cgrp: *const u8 = ctx.arg(0);
    let path: *const u8 = ctx.arg(1);
    let id = unsafe { cgroup_id(cgrp) }.unwrap_or(0);
    emit::<CgroupEvent>(channel::CRITICAL, |e| unsafe {
        (*e).hdr = header(event_kind);
        (*e).id = id;
        (*e).level = read(cgrp, off!(cgroup_level)).unwrap_or(0);
        (*e).hierarchy_id = match read::<*const u8>(cgrp, off!(cgroup_root)) {
            Ok(root) => read(root, off!(cgroup_root_hierarchy_id)).unwrap_or(0),
            Err(_) => 0,
        };
        (*e).path[0] = 0;
        let _ = bpf_probe_read_kernel_str_bytes(path, &mut (*e).path);
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
/// cgroup's block counters; syscall counters live in cgroup local storage,
/// which the kernel frees itself.
#[btf_tracepoint(function = "cgroup_rmdir")]
pub fn dsh_cgroup_rmdir(ctx: BtfTracePointContext) -> u32 {
    let id = emit_cgroup(&ctx, kind::CGROUP_RMDIR);
    if id != 0 {
        let _ = BLOCK_STATS.remove(id);
        churn::forget_cgroup(id);
    }
    0
}
