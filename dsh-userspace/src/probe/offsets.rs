//! dsh's table of kernel struct offsets, resolved from this kernel's BTF at
//! load time and handed to the programs as a read-only global: the Rust
//! eBPF toolchain emits no CO-RE relocations.
use dsh_ebpf::KernelOffsets;

use super::btf::{Btf, BtfError};

/// `enum cgroup_subsys_id` value of a v1 controller (`memory` → `memory_cgrp_id`).
pub fn v1_subsys_id(btf: &Btf, controller: &str) -> Result<u32, BtfError> {
    Ok(btf.enum_value("cgroup_subsys_id", &format!("{controller}_cgrp_id"))? as u32)
}

/// Where the OOM program finds a task's memory cgroup and its counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemcgOffsets {
    /// `css_set.subsys[memory_cgrp_id]`.
    pub css_set_subsys: u32,
    /// From the memcg's `cgroup_subsys_state` to `memory.usage`, `memory.max`.
    pub usage: u32,
    pub max: u32,
}

/// The memory controller's offsets; `None` where the kernel has no memory
/// cgroups (`CONFIG_MEMCG` off: no `memory_cgrp_id`, no `mem_cgroup`) or a
/// member is missing or out of range. Then no OOM figure is read in the
/// kernel, and user space reads the cgroup's files as before: an absent
/// figure, never a wrong one.
pub fn memcg_offsets(btf: &Btf) -> Option<MemcgOffsets> {
    let o = |s: &str, m: &str| btf.member_offset(s, &[m]).ok();
    let id = u32::try_from(btf.enum_value("cgroup_subsys_id", "memory_cgrp_id").ok()?).ok()?;
    let css_set_subsys = id.checked_mul(8)?.checked_add(o("css_set", "subsys")?)?;
    // container_of(css, struct mem_cgroup, css), then mem_cgroup.memory.
    let css = o("mem_cgroup", "css")?;
    let memory = o("mem_cgroup", "memory")?;
    let at = |member| {
        memory
            .checked_add(o("page_counter", member)?)?
            .checked_sub(css)
    };
    Some(MemcgOffsets {
        css_set_subsys,
        usage: at("usage")?,
        max: at("max")?,
    })
}

/// Where the TCP programs find a socket's state, destination and cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockOffsets {
    pub state: u32,
    pub daddr: u32,
    pub v6_daddr: u32,
    pub dport: u32,
    /// `sock.sk_cgrp_data`'s cgroup and how to read it (`sk_cgroup::*`);
    /// `None` where the kernel has no such member.
    pub cgroup: Option<(u32, u32)>,
}

/// The socket offsets; `None` where a `sock_common` member is missing
/// (then no destination is kept and retransmits and resets are not
/// counted in the kernel: an absent figure, never a wrong one).
pub fn sock_offsets(btf: &Btf) -> Option<SockOffsets> {
    let o = |m: &str| btf.member_offset("sock_common", &[m]).ok();
    let at = |path: &[&str]| btf.member_offset("sock", path).ok();
    // 5.15+: `struct sock_cgroup_data { struct cgroup *cgroup; ... }`;
    // before: a union whose `val` is the pointer unless its low bits say
    // it holds net_cls/net_prio data.
    let cgroup = at(&["sk_cgrp_data", "cgroup"])
        .map(|off| (off, dsh_ebpf::sk_cgroup::POINTER))
        .or_else(|| at(&["sk_cgrp_data", "val"]).map(|off| (off, dsh_ebpf::sk_cgroup::VAL)));
    Some(SockOffsets {
        state: o("skc_state")?,
        daddr: o("skc_daddr")?,
        v6_daddr: o("skc_v6_daddr")?,
        dport: o("skc_dport")?,
        cgroup,
    })
}

/// Every offset the programs read, from this kernel's BTF; the memcg ones
/// 0 without `memcg`, the socket ones 0 without `sock` (the programs then
/// do not read them).
pub fn resolve_offsets(
    btf: &Btf,
    v1_subsys_id: Option<u32>,
    memcg: Option<MemcgOffsets>,
    sock: Option<SockOffsets>,
) -> Result<KernelOffsets, BtfError> {
    let o = |s: &str, m: &str| btf.member_offset(s, &[m]);
    Ok(KernelOffsets {
        task_pid: o("task_struct", "pid")?,
        task_tgid: o("task_struct", "tgid")?,
        task_comm: o("task_struct", "comm")?,
        task_cgroups: o("task_struct", "cgroups")?,
        task_exit_code: o("task_struct", "exit_code")?,
        task_signal: o("task_struct", "signal")?,
        task_real_parent: o("task_struct", "real_parent")?,
        task_start_time: o("task_struct", "start_time")?,
        css_set_dfl_cgrp: o("css_set", "dfl_cgrp")?,
        css_set_subsys_v1: match v1_subsys_id {
            // A damaged enum can give any id: refused, not wrapped.
            Some(id) => id
                .checked_mul(8)
                .and_then(|off| off.checked_add(o("css_set", "subsys").ok()?))
                .ok_or(BtfError::Malformed("css_set.subsys[id] out of range"))?,
            None => 0,
        },
        css_set_subsys_memory: memcg.map_or(0, |m| m.css_set_subsys),
        css_cgroup: o("cgroup_subsys_state", "cgroup")?,
        memcg_usage: memcg.map_or(0, |m| m.usage),
        memcg_max: memcg.map_or(0, |m| m.max),
        cgroup_kn: o("cgroup", "kn")?,
        cgroup_level: o("cgroup", "level")?,
        cgroup_root: o("cgroup", "root")?,
        cgroup_root_hierarchy_id: o("cgroup_root", "hierarchy_id")?,
        kernfs_node_id: o("kernfs_node", "id")?,
        kernfs_node_name: o("kernfs_node", "name")?,
        signal_live: o("signal_struct", "live")?,
        request_cmd_flags: o("request", "cmd_flags")?,
        request_data_len: o("request", "__data_len")?,
        request_bio: o("request", "bio")?,
        bio_blkg: o("bio", "bi_blkg")?,
        blkg_blkcg: o("blkcg_gq", "blkcg")?,
        blkcg_css: o("blkcg", "css")?,
        binprm_filename: o("linux_binprm", "filename")?,
        skc_family: o("sock_common", "skc_family")?,
        skc_num: o("sock_common", "skc_num")?,
        skc_rcv_saddr: o("sock_common", "skc_rcv_saddr")?,
        skc_v6_rcv_saddr: o("sock_common", "skc_v6_rcv_saddr")?,
        sk_err: o("sock", "sk_err")?,
        skc_state: sock.map_or(0, |s| s.state),
        skc_daddr: sock.map_or(0, |s| s.daddr),
        skc_v6_daddr: sock.map_or(0, |s| s.v6_daddr),
        skc_dport: sock.map_or(0, |s| s.dport),
        sk_cgroup: sock.and_then(|s| s.cgroup).map_or(0, |c| c.0),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::probe::btf::{VMLINUX, read};

    fn vmlinux() -> Btf {
        let data = read(Path::new(VMLINUX)).expect("this machine kind has kernel BTF");
        Btf::parse(&data).expect("the kernel's BTF parses")
    }

    #[test]
    fn resolves_every_offset_on_this_kernel() {
        let btf = vmlinux();
        let memory = v1_subsys_id(&btf, "memory").unwrap();
        let memcg = memcg_offsets(&btf).expect("this kernel has memory cgroups");
        let sock = sock_offsets(&btf).expect("this kernel's sock_common has them all");
        // 6.18: `struct sock_cgroup_data` holds the pointer.
        assert_eq!(sock.cgroup.map(|c| c.1), Some(dsh_ebpf::sk_cgroup::POINTER));
        assert_eq!(
            sock.dport + 2,
            btf.member_offset("sock_common", &["skc_num"]).unwrap()
        );
        let o = resolve_offsets(&btf, Some(memory), Some(memcg), Some(sock)).unwrap();
        assert_ne!(o.sk_cgroup, 0);
        let task = btf.struct_size("task_struct").unwrap();
        // On a v1 host the attribution controller is the memory one.
        assert_eq!(o.css_set_subsys_memory, o.css_set_subsys_v1);
        let memory_at = btf.member_offset("mem_cgroup", &["memory"]).unwrap();
        assert_eq!(btf.member_offset("mem_cgroup", &["css"]).unwrap(), 0);
        assert_eq!(
            (o.memcg_usage, o.memcg_max),
            (
                memory_at + btf.member_offset("page_counter", &["usage"]).unwrap(),
                memory_at + btf.member_offset("page_counter", &["max"]).unwrap()
            )
        );
        assert_ne!(o.task_pid, o.task_tgid);
        assert_eq!(
            o.task_tgid,
            o.task_pid + 4,
            "pid and tgid are adjacent pid_t"
        );
        for off in [o.task_comm, o.task_cgroups, o.task_exit_code, o.task_signal] {
            assert!(off > 0 && off < task);
        }
        // skc_num follows skc_dport inside an anonymous struct in a union.
        assert_eq!(
            o.skc_num,
            btf.member_offset("sock_common", &["skc_dport"]).unwrap() + 2
        );
        assert!(o.kernfs_node_id < btf.struct_size("kernfs_node").unwrap());
        assert!(o.css_set_subsys_v1 >= btf.member_offset("css_set", &["subsys"]).unwrap());
    }

    /// Another kernel's BTF (written, not read from this machine): every
    /// offset lands where that kernel put it, anonymous members included.
    /// The blob is also the `btf` fuzz target's seed.
    #[test]
    fn a_synthetic_kernel_resolves_where_it_says() {
        use crate::probe::btf::writer::{KERNEL_STRUCTS, MEMORY_CGRP_ID, synthetic_kernel};
        let blob = synthetic_kernel();
        let btf = Btf::parse(&blob).unwrap();
        for (strukt, members) in KERNEL_STRUCTS {
            for (i, m) in members.iter().enumerate() {
                assert_eq!(btf.member_offset(strukt, &[m]).unwrap(), 8 * i as u32);
            }
        }
        let memory = v1_subsys_id(&btf, "memory").unwrap();
        assert_eq!(memory, MEMORY_CGRP_ID as u32);
        let memcg = memcg_offsets(&btf);
        assert_eq!(
            memcg,
            Some(MemcgOffsets {
                css_set_subsys: 8 + 8 * 4,
                usage: 8,
                max: 8 + 8,
            })
        );
        assert_eq!(sock_offsets(&btf), None, "no skc_daddr in the fixture");
        let o = resolve_offsets(&btf, Some(memory), memcg, None).unwrap();
        assert_eq!((o.task_tgid, o.css_set_subsys_v1), (8, 8 + 8 * 4));
        assert_eq!(
            (o.css_set_subsys_memory, o.memcg_usage, o.memcg_max),
            (8 + 8 * 4, 8, 16)
        );
        assert_eq!((o.skc_num, o.skc_v6_rcv_saddr, o.sk_err), (10, 24, 40));
        assert_eq!(
            btf.member_offset("sock", &["__sk_common", "skc_num"])
                .unwrap(),
            10
        );
        assert_eq!(btf.tracepoint_params("sys_exit").map(|p| p.len()), Some(2));
        crate::fuzz_seeds::seed("btf", "synthetic-kernel", &blob);
    }

    /// A controller id no kernel has (from a damaged enum) is refused.
    #[test]
    fn a_controller_id_out_of_range_is_an_error() {
        let kernel = Btf::parse(&crate::probe::btf::writer::synthetic_kernel()).unwrap();
        assert!(resolve_offsets(&kernel, Some(4), None, None).is_ok());
        assert!(matches!(
            resolve_offsets(&kernel, Some(u32::MAX), None, None),
            Err(BtfError::Malformed(_))
        ));
    }

    /// A kernel without memory cgroups (`CONFIG_MEMCG` off) or without
    /// `page_counter.max`: no memcg offsets, so no figure is read in the
    /// kernel; the other offsets resolve as before.
    #[test]
    fn a_kernel_without_memcg_has_no_memcg_offsets() {
        use crate::probe::btf::writer::{Field, Fixture};
        let mut k = Fixture::default();
        k.enum_value("cgroup_subsys_id", "cpuset_cgrp_id");
        k.strukt("css_set", 64, vec![("subsys", Field::Int, 0)]);
        assert_eq!(memcg_offsets(&k.build()), None, "no memory_cgrp_id");
        k.enum_value("cgroup_subsys_id", "memory_cgrp_id");
        assert_eq!(memcg_offsets(&k.build()), None, "no struct mem_cgroup");
        k.strukt("page_counter", 16, vec![("usage", Field::Int, 0)]);
        k.strukt(
            "mem_cgroup",
            64,
            vec![
                ("css", Field::Int, 0),
                ("memory", Field::Struct("page_counter"), 16),
            ],
        );
        assert_eq!(memcg_offsets(&k.build()), None, "no page_counter.max");
        let mut k = Fixture::default();
        k.enum_value("cgroup_subsys_id", "cpuset_cgrp_id");
        k.enum_value("cgroup_subsys_id", "memory_cgrp_id");
        k.strukt("css_set", 64, vec![("subsys", Field::Int, 0)]);
        k.strukt(
            "page_counter",
            16,
            vec![("usage", Field::Int, 0), ("max", Field::Int, 8)],
        );
        k.strukt(
            "mem_cgroup",
            64,
            vec![
                ("css", Field::Int, 0),
                ("memory", Field::Struct("page_counter"), 16),
            ],
        );
        assert_eq!(
            memcg_offsets(&k.build()),
            Some(MemcgOffsets {
                css_set_subsys: 8,
                usage: 16,
                max: 24
            })
        );
    }

    /// A socket's cgroup: the pointer member where the kernel has one
    /// (5.15+), 5.10's `val` otherwise, nothing without `sk_cgrp_data`;
    /// no socket offsets at all without the destination members.
    #[test]
    fn the_sockets_cgroup_is_read_as_each_kernel_keeps_it() {
        use crate::probe::btf::writer::{Field, Fixture};
        use dsh_ebpf::sk_cgroup;
        let sock_common = |k: &mut Fixture| {
            k.strukt(
                "sock_common",
                64,
                vec![
                    ("skc_daddr", Field::Int, 0),
                    ("skc_dport", Field::Int, 12),
                    ("skc_state", Field::Int, 18),
                    ("skc_v6_daddr", Field::Int, 56),
                ],
            );
        };
        let sock = |k: &mut Fixture, data: Option<&'static str>| {
            let mut m = vec![("__sk_common", Field::Struct("sock_common"), 0)];
            if let Some(d) = data {
                m.push(("sk_cgrp_data", Field::Struct(d), 600));
            }
            k.strukt("sock", 1024, m);
        };
        let mut k = Fixture::default();
        k.strukt("sock_cgroup_data", 16, vec![("cgroup", Field::Int, 0)]);
        sock(&mut k, Some("sock_cgroup_data"));
        assert_eq!(sock_offsets(&k.build()), None, "no sock_common members");
        let mut k = Fixture::default();
        sock_common(&mut k);
        k.strukt("sock_cgroup_data", 16, vec![("cgroup", Field::Int, 0)]);
        sock(&mut k, Some("sock_cgroup_data"));
        let new = sock_offsets(&k.build()).unwrap();
        assert_eq!(new.cgroup, Some((600, sk_cgroup::POINTER)));
        assert_eq!(
            (new.state, new.daddr, new.dport, new.v6_daddr),
            (18, 0, 12, 56)
        );
        let mut k = Fixture::default();
        sock_common(&mut k);
        k.strukt("sock_cgroup_data", 8, vec![("val", Field::Int, 0)]);
        sock(&mut k, Some("sock_cgroup_data"));
        assert_eq!(
            sock_offsets(&k.build()).unwrap().cgroup,
            Some((600, sk_cgroup::VAL))
        );
        let mut k = Fixture::default();
        sock_common(&mut k);
        sock(&mut k, None);
        assert_eq!(sock_offsets(&k.build()).unwrap().cgroup, None);
    }
}
