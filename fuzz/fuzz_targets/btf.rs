//! The BTF reader on a damaged vmlinux: arbitrary bytes, seeded with a
//! well-formed kernel. Properties: every question the loader asks is
//! answered (or refused) without panicking, and bytes past the sections the
//! header declares change no answer.
#![no_main]

use dsh::probe::{
    btf::Btf,
    offsets::{memcg_offsets, resolve_offsets, sock_offsets, v1_subsys_id},
};
use libfuzzer_sys::fuzz_target;

/// The loader's questions and their answers, as text.
fn answers(btf: &Btf) -> String {
    let memory = v1_subsys_id(btf, "memory");
    let offsets = resolve_offsets(
        btf,
        memory.as_ref().ok().copied(),
        memcg_offsets(btf),
        sock_offsets(btf),
    );
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        memory.map_err(|e| e.to_string()),
        offsets.map_err(|e| e.to_string()),
        btf.member_offset("sock", &["__sk_common", "skc_num"])
            .map_err(|e| e.to_string()),
        btf.struct_size("task_struct").map_err(|e| e.to_string()),
        btf.tracepoint_params("sys_exit"),
        btf.enum_value("cgroup_subsys_id", "cpuset_cgrp_id")
            .map_err(|e| e.to_string()),
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(btf) = Btf::parse(data) else {
        return;
    };
    let first = answers(&btf);
    let mut longer = data.to_vec();
    longer.extend_from_slice(&[0xa5; 32]);
    let again = Btf::parse(&longer).expect("bytes after the sections change nothing");
    assert_eq!(answers(&again), first);
});
