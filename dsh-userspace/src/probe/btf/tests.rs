//! The reader on this machine's vmlinux, on written kernels, and on damaged ones.
use super::*;

fn vmlinux() -> Btf {
    Btf::vmlinux().expect("this machine kind has /sys/kernel/btf/vmlinux")
}

#[test]
fn resolves_every_offset_on_this_kernel() {
    let btf = vmlinux();
    let memory = v1_subsys_id(&btf, "memory").unwrap();
    let o = resolve_offsets(&btf, Some(memory)).unwrap();
    let task = btf.struct_size("task_struct").unwrap();
    assert_ne!(o.task_pid, o.task_tgid);
    assert_eq!(
        o.task_tgid,
        o.task_pid + 4,
        "pid and tgid are adjacent pid_t"
    );
    for off in [
        o.task_comm,
        o.task_cgroups,
        o.task_exit_code,
        o.task_signal,
        o.task_mm,
    ] {
        assert!(off > 0 && off < task);
    }
    // skc_num follows skc_dport inside an anonymous struct in a union.
    assert_eq!(
        o.skc_num,
        btf.member_offset("sock_common", &["skc_dport"]).unwrap() + 2
    );
    assert!(o.kernfs_node_id < btf.struct_size("kernfs_node").unwrap());
    assert!(o.css_set_subsys_v1 >= btf.member_offset("css_set", &["subsys"]).unwrap());
    assert!(o.percpu_counter_size >= 8);
}

#[test]
fn tracepoint_prototypes_match_what_the_programs_read() {
    let btf = vmlinux();
    // The programs read these argument positions.
    for (tp, min_args) in [
        ("sys_exit", 2),
        ("sys_enter", 2),
        ("block_rq_issue", 1),
        ("block_rq_complete", 3),
        ("sched_process_exec", 3),
        ("sched_process_exit", 1),
        ("mark_victim", 1),
        ("signal_generate", 5),
        ("signal_deliver", 3),
        ("cgroup_mkdir", 2),
        ("cgroup_rmdir", 2),
        ("inet_sock_set_state", 3),
    ] {
        let n = btf
            .tracepoint_arity(tp)
            .unwrap_or_else(|| panic!("no tracepoint {tp}"));
        assert!(
            n >= min_args,
            "{tp} has {n} args, the program reads {min_args}"
        );
    }
}

#[test]
fn nested_paths_and_errors() {
    let btf = vmlinux();
    let sk = btf
        .member_offset("sock", &["__sk_common", "skc_num"])
        .unwrap();
    assert_eq!(sk, btf.member_offset("sock_common", &["skc_num"]).unwrap());
    assert!(matches!(
        btf.member_offset("no_such_struct", &["x"]),
        Err(BtfError::NoStruct(_))
    ));
    assert!(matches!(
        btf.member_offset("task_struct", &["no_such_field"]),
        Err(BtfError::NoMember { .. })
    ));
    assert!(
        btf.enum_value("cgroup_subsys_id", "no_such_cgrp_id")
            .is_err()
    );
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
    let o = resolve_offsets(&btf, Some(memory)).unwrap();
    assert_eq!((o.task_tgid, o.css_set_subsys_v1), (8, 8 + 8 * 4));
    assert_eq!(
        (o.skc_num, o.skc_v6_rcv_saddr, o.percpu_counter_size),
        (10, 24, 16)
    );
    assert_eq!(
        btf.member_offset("sock", &["__sk_common", "skc_num"])
            .unwrap(),
        10
    );
    assert_eq!(btf.tracepoint_arity("sys_exit"), Some(2));
    crate::fuzz_seeds::seed("btf", "synthetic-kernel", &blob);
}

/// Found by the `btf` fuzz target: an anonymous member whose type is
/// its own struct sent the member search round the cycle until the stack
/// overflowed; a wide tree of anonymous members would take forever.
#[test]
fn anonymous_member_cycles_and_trees_end() {
    use crate::probe::btf::writer::BtfWriter;
    let found = include_bytes!("../../../../fuzz/regressions/btf/anonymous-member-cycle");
    if let Ok(btf) = Btf::parse(found) {
        let _ = resolve_offsets(&btf, Some(4));
    }
    let mut w = BtfWriter::default();
    let long = w.int("long", 8);
    // Type 2 holds an anonymous member of type 2.
    w.composite("loop", false, 8, &[("", 2, 0), ("x", long, 0)]);
    // wide0 .. wide7: 64 anonymous members each of the next one.
    let mut inner = w.composite("wide8", false, 8, &[("y", long, 0)]);
    for level in (0..8).rev() {
        let members = vec![("", inner, 0); 64];
        inner = w.composite(&format!("wide{level}"), false, 8, &members);
    }
    let btf = Btf::parse(&w.finish()).unwrap();
    assert!(matches!(
        btf.member_offset("loop", &["nope"]),
        Err(BtfError::NoMember { .. })
    ));
    assert_eq!(btf.member_offset("loop", &["x"]).unwrap(), 0);
    let started = std::time::Instant::now();
    assert!(btf.member_offset("wide0", &["nope"]).is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // Deep enough to be found, within the bounds.
    assert_eq!(btf.member_offset("wide0", &["y"]).unwrap(), 0);
}

/// Offsets a damaged BTF puts near u32::MAX are refused, not wrapped.
#[test]
fn offsets_that_overflow_are_errors() {
    use crate::probe::btf::writer::BtfWriter;
    let mut w = BtfWriter::default();
    let long = w.int("long", 8);
    let far = w.composite("far", false, 8, &[("x", long, u32::MAX / 8 - 1)]);
    w.composite("outer", false, 8, &[("f", far, u32::MAX / 8 - 1)]);
    let btf = Btf::parse(&w.finish()).unwrap();
    assert!(matches!(
        btf.member_offset("outer", &["f", "x"]),
        Err(BtfError::Malformed(_))
    ));
    // A controller id no kernel has (from a damaged enum).
    let kernel = Btf::parse(&crate::probe::btf::writer::synthetic_kernel()).unwrap();
    assert!(resolve_offsets(&kernel, Some(4)).is_ok());
    assert!(matches!(
        resolve_offsets(&kernel, Some(u32::MAX)),
        Err(BtfError::Malformed(_))
    ));
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    assert!(Btf::parse(b"").is_err());
    assert!(Btf::parse(&[0u8; 64]).is_err(), "bad magic");
    let real = std::fs::read("/sys/kernel/btf/vmlinux").unwrap();
    for len in [24, 100, 4096, real.len() / 2] {
        let _ = Btf::parse(&real[..len]); // must return, whatever it returns
    }
    let mut header_lies = real[..24].to_vec();
    header_lies[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(Btf::parse(&header_lies).is_err());
}
