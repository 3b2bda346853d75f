//! Per-cgroup block I/O: bytes, ops and latency, issue to completion.
//!
//! Attributed to the request's blkcg (`rq->bio->bi_blkg->blkcg->css.cgroup`)
//! when it is not the root: that is the cgroup whose pages or task caused
//! the I/O, even for writeback done later by kernel workers. On a hybrid host
//! that is the v1 blkio cgroup, whose id differs from the cgroup2 one; user
//! space maps both ids to the container. Otherwise, the issuing task's cgroup.
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use dsh_ebpf::{BlockStats, InflightRequest, failure};

use super::{
    failures::{count, counted},
    kernel::{Failure, cgroup_id, config, current_cgroup_id, log2_bucket, now_ns, off, read},
    maps::{BLOCK_INFLIGHT, BLOCK_STATS, get_or_insert_zeroed},
};

/// `REQ_OP_MASK`: the low 8 bits of `cmd_flags` are the operation.
const REQ_OP_MASK: u32 = 0xff;
const REQ_OP_READ: u32 = 0;
const REQ_OP_WRITE: u32 = 1;

/// A zeroed value to insert from (kept off the stack).
static ZERO: BlockStats = BlockStats::ZERO;

/// The request's blkcg cgroup id, or 0 when it has none or it is the root.
#[inline(always)]
fn blkcg_cgroup_id(rq: *const u8) -> Result<u64, Failure> {
    if config().has_blkcg == 0 {
        return Ok(0);
    }
    let bio: *const u8 = read(rq, off!(request_bio))?;
    if bio.is_null() {
        return Ok(0);
    }
    let blkg: *const u8 = read(bio, off!(bio_blkg))?;
    if blkg.is_null() {
        return Ok(0);
    }
    let blkcg: *const u8 = read(blkg, off!(blkg_blkcg))?;
    let css = blkcg.wrapping_add(off!(blkcg_css));
    let cgrp: *const u8 = read(css, off!(css_cgroup))?;
    let level: i32 = read(cgrp, off!(cgroup_level))?;
    if level == 0 {
        return Ok(0);
    }
    cgroup_id(cgrp)
}

/// `block_rq_issue(struct request *rq)`; before 5.10,
/// `block_rq_issue(struct request_queue *q, struct request *rq)`.
#[btf_tracepoint(function = "block_rq_issue")]
pub fn dsh_block_rq_issue(ctx: BtfTracePointContext) -> u32 {
    // A constant to the verifier: the branch not taken is never checked, so
    // reading an argument the kernel's prototype lacks does not fail it.
    let rq = if config().block_rq_issue_arg == 1 {
        ctx.arg(1)
    } else {
        ctx.arg(0)
    };
    counted(try_issue(rq))
}

fn try_issue(rq: *const u8) -> Result<(), Failure> {
    let flags: u32 = read(rq, off!(request_cmd_flags))?;
    let bytes: u32 = read(rq, off!(request_data_len))?;
    let direction = match flags & REQ_OP_MASK {
        REQ_OP_READ => 0,
        REQ_OP_WRITE => 1,
        _ => 2,
    };
    // An unreadable blkcg is counted, and the issuing task stands in.
    let mut cgroup_id = blkcg_cgroup_id(rq).unwrap_or_else(|f| {
        count(f);
        0
    });
    if cgroup_id == 0 {
        cgroup_id = current_cgroup_id();
    }
    let inflight = InflightRequest {
        issued_ns: now_ns(),
        cgroup_id,
        direction,
        bytes,
    };
    BLOCK_INFLIGHT
        .insert(rq as u64, inflight, 0)
        .map_err(|_| Failure(failure::BLOCK_INFLIGHT_FULL))
}

/// `block_rq_complete(struct request *rq, blk_status_t error, unsigned int nr_bytes)`
#[btf_tracepoint(function = "block_rq_complete")]
pub fn dsh_block_rq_complete(ctx: BtfTracePointContext) -> u32 {
    counted(try_complete(ctx.arg(0)))
}

fn try_complete(rq: *const u8) -> Result<(), Failure> {
    let key = rq as u64;
    // SAFETY: a map value pointer from a successful lookup is valid for a
    // read; the entry is removed only below, by this program.
    let Some(inflight) = BLOCK_INFLIGHT.get_ptr(key).map(|p| unsafe { *p }) else {
        return Ok(()); // issued before the programs were attached
    };
    // Gone already if another completion of the same request raced us.
    let _ = BLOCK_INFLIGHT.remove(key);
    if inflight.direction > 1 {
        return Ok(());
    }
    let stats = get_or_insert_zeroed(&BLOCK_STATS, &inflight.cgroup_id, &ZERO)
        .ok_or(Failure(failure::BLOCK_STATS_FULL))?;
    let b = log2_bucket(now_ns().wrapping_sub(inflight.issued_ns));
    // SAFETY: this CPU's value in a per-CPU hash; programs do not nest on a
    // CPU, so nothing else writes it meanwhile.
    let s = unsafe { &mut *stats };
    if inflight.direction == 1 {
        s.write_bytes += inflight.bytes as u64;
        s.write_ops += 1;
    } else {
        s.read_bytes += inflight.bytes as u64;
        s.read_ops += 1;
    }
    s.latency[b] += 1;
    Ok(())
}
