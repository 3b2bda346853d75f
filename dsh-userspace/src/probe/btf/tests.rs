//! The reader on this machine's vmlinux, on written BTF and on damaged BTF.
use super::*;

fn vmlinux() -> Btf {
    let data = read(Path::new(VMLINUX)).expect("this machine kind has kernel BTF");
    Btf::parse(&data).expect("the kernel's BTF parses")
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

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    assert!(Btf::parse(b"").is_err());
    assert!(Btf::parse(&[0u8; 64]).is_err(), "bad magic");
    let real = read(Path::new(VMLINUX)).unwrap();
    for len in [24, 100, 4096, real.len() / 2] {
        let _ = Btf::parse(&real[..len]); // must return, whatever it returns
    }
    let mut header_lies = real[..24].to_vec();
    header_lies[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(Btf::parse(&header_lies).is_err());
}

/// Found by the `btf` fuzz target: an anonymous member whose type is
/// its own struct sent the member search round the cycle until the stack
/// overflowed; a wide tree of anonymous members would take forever.
#[test]
fn anonymous_member_cycles_and_trees_end() {
    use crate::probe::btf::writer::BtfWriter;
    let found = include_bytes!("../../../../fuzz/regressions/btf/anonymous-member-cycle");
    if let Ok(btf) = Btf::parse(found) {
        // Every question the loader asks of a kernel.
        for (strukt, members) in crate::probe::btf::writer::KERNEL_STRUCTS {
            for m in *members {
                let _ = btf.member_offset(strukt, &[m]);
            }
        }
        let _ = btf.member_offset("sock", &["__sk_common", "skc_num"]);
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

/// Member offsets a damaged BTF puts near u32::MAX are refused, not wrapped.
#[test]
fn member_offsets_that_overflow_are_errors() {
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
}
