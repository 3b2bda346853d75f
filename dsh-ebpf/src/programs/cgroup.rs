//! Cgroup lifecycle: how dsh discovers containers without walking cgroupfs.
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use dsh_ebpf::{CgroupEvent, channel, kind};

use super::{
    events::{emit, header},
    failures::count,
    kernel::{cgroup_id, off, read, read_str},
};

#[inline(always)]
fn emit_cgroup(ctx: &BtfTracePointContext, event_kind: u32) {
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
}

/// `cgroup_mkdir(struct cgroup *cgrp, const char *path)`
#[btf_tracepoint(function = "cgroup_mkdir")]
pub fn dsh_cgroup_mkdir(ctx: BtfTracePointContext) -> u32 {
    emit_cgroup(&ctx, kind::CGROUP_MKDIR);
    0
}

/// `cgroup_rmdir(struct cgroup *cgrp, const char *path)`. The cgroup's
/// block, (hash layout) syscall and main-process entries are deleted by the
/// agent when this event reaches it (ids are never reused): three hash
/// deletes here, for every hierarchy's cgroups, doubled this program's time.
#[btf_tracepoint(function = "cgroup_rmdir")]
pub fn dsh_cgroup_rmdir(ctx: BtfTracePointContext) -> u32 {
    emit_cgroup(&ctx, kind::CGROUP_RMDIR);
    0
}
