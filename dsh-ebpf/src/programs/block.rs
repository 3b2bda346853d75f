//! Per-cgroup block I/O: bytes, ops and latency, issue to completion.
//!
//! Attributed to the request's blkcg (`rq->bio->bi_blkg->blkcg->css.cgroup`)
//! when it is not the root: that is the cgroup whose pages or task caused
//! the I/O, even for writeback done later by kernel workers. On a hybrid host
//! that is the v1 blkio cgroup, whose id differs from the cgroup2 one; user
//! space maps both ids to the container. Otherwise, the issuing task's cgroup.
use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::btf_tracepoint, programs::BtfTracePointContext};
use dsh_ebpf::{BlockStats, InflightRequest};

use super::{
    kernel::{cgroup_id, config, current_cgroup_id, log2_bucket, off, read},
    maps::{BLOCK_INFLIGHT, BLOCK_STATS},
};

/// `REQ_OP_MASK`: the low 8 bits of `cmd_flags` are the operation.
const REQ_OP_MASK: u32 = 0xff;
const REQ_OP_READ: u32 = 0;
const REQ_OP_WRITE: u32 = 1;

/// The request's blkcg cgroup id, or 0 when it has none or it is the root.
#[inline(always)]
unsafe fn blkcg_cgroup_id(rq: *const u8) -> u64 {
    if config().has_blkcg == 0 {
        return 0;
    }
    let id = (|| -> Result<u64, i64> {
        let bio: *const u8 = unsafe { read(rq, off!(request_bio)) }?;
        if bio.is_null() {
            return Ok(0);
        }
        let blkg: *const u8 = unsafe { read(bio, off!(bio_blkg)) }?;
        if blkg.is_null() {
            return Ok(0);
        }
        let blkcg: *const u8 = unsafe { read(blkg, off!(blkg_blkcg)) }?;
        let css = blkcg.wrapping_add(off!(blkcg_css));
        let cgrp: *const u8 = unsafe { read(css, off!(css_cgroup)) }?;
        let level: i32 = unsafe { read(cgrp, off!(cgroup_level)) }?;
        if level == 0 {
            return Ok(0);
        }
        unsafe { cgroup_id(cgrp) }
    })();
    id.unwrap_or(0)
}

/// `block_rq_issue(struct request *rq)`
#[btf_tracepoint(function = "block_rq_issue")]
pub fn dsh_block_rq_issue(ctx: BtfTracePointContext) -> u32 {
    let rq: *const u8 = ctx.arg(0);
    let _ = try_issue(rq);
    0
}

fn try_issue(rq: *const u8) -> Result<(), i64> {
    let flags: u32 = unsafe { read(rq, off!(request_cmd_flags)) }?;
    let bytes: u32 = unsafe { read(rq, off!(request_data_len)) }?;
    let direction = match flags & REQ_OP_MASK {
        REQ_OP_READ => 0,
        REQ_OP_WRITE => 1,
        _ => 2,
    };
    let mut cgroup_id = unsafe { blkcg_cgroup_id(rq) };
    if cgroup_id == 0 {
        cgroup_id = current_cgroup_id();
    }
    let inflight = InflightRequest {
        issued_ns: unsafe { bpf_ktime_get_ns() },
        cgroup_id,
        direction,
        bytes,
    };
    BLOCK_INFLIGHT
        .insert(rq as u64, inflight, 0)
        .map_err(|e| e as i64)
}

/// `block_rq_complete(struct request *rq, blk_status_t error, unsigned int nr_bytes)`
#[btf_tracepoint(function = "block_rq_complete")]
pub fn dsh_block_rq_complete(ctx: BtfTracePointContext) -> u32 {
    let rq: *const u8 = ctx.arg(0);
    let key = rq as u64;
    let Some(inflight) = BLOCK_INFLIGHT.get_ptr(key).map(|p| unsafe { *p }) else {
        return 0;
    };
    let _ = BLOCK_INFLIGHT.remove(key);
    if inflight.direction > 1 {
        return 0;
    }
    let stats = match BLOCK_STATS.get_ptr_mut(inflight.cgroup_id) {
        Some(p) => p,
        None => {
            if BLOCK_STATS
                .insert(inflight.cgroup_id, BlockStats::ZERO, 0)
                .is_err()
            {
                return 0;
            }
            match BLOCK_STATS.get_ptr_mut(inflight.cgroup_id) {
                Some(p) => p,
                None => return 0,
            }
        }
    };
    let b = log2_bucket(unsafe { bpf_ktime_get_ns() }.wrapping_sub(inflight.issued_ns));
    // Per-CPU value: only this CPU writes it.
    let s = unsafe { &mut *stats };
    if inflight.direction == 1 {
        s.write_bytes += inflight.bytes as u64;
        s.write_ops += 1;
    } else {
        s.read_bytes += inflight.bytes as u64;
        s.read_ops += 1;
    }
    s.latency[b] += 1;
    0
}
