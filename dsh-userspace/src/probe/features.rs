//! What dsh needs from the running kernel, checked in its BTF before
//! anything is loaded: BPF features (by the kernel version that added them),
//! the tracepoints, and the arguments the programs read, whose layout
//! changed between 5.8 and 6.18. Whatever is missing is named in one line
//! instead of a verifier log. Also the memory limit older kernels charge
//! BPF memory to.
use dsh_ebpf::victim_arg;

use super::btf::{Btf, Param};

/// BPF features the programs use, as `(enum, value, what to call it)`: a
/// kernel knows a helper, map type or attach type when its BTF has the
/// enum value.
const FEATURES: &[(&str, &str, &str)] = &[
    (
        "bpf_attach_type",
        "BPF_TRACE_RAW_TP",
        "BTF tracepoints (Linux 5.5)",
    ),
    (
        "bpf_func_id",
        "BPF_FUNC_probe_read_kernel",
        "bpf_probe_read_kernel (5.5)",
    ),
    (
        "bpf_func_id",
        "BPF_FUNC_probe_read_kernel_str",
        "bpf_probe_read_kernel_str (5.5)",
    ),
    (
        "bpf_map_type",
        "BPF_MAP_TYPE_RINGBUF",
        "BPF ring buffers (5.8)",
    ),
    (
        "bpf_func_id",
        "BPF_FUNC_ktime_get_boot_ns",
        "bpf_ktime_get_boot_ns (5.8)",
    ),
    (
        "bpf_func_id",
        "BPF_FUNC_get_current_cgroup_id",
        "bpf_get_current_cgroup_id (4.18)",
    ),
];

/// Whether the kernel charges BPF memory to the memory cgroup (5.11+)
/// rather than to RLIMIT_MEMLOCK. `bpf_ktime_get_coarse_ns` arrived in the
/// same release; libbpf uses the same sign.
pub fn bpf_memory_in_memcg(btf: &Btf) -> bool {
    btf.enum_value("bpf_func_id", "BPF_FUNC_ktime_get_coarse_ns")
        .is_ok()
}

/// `uname -r`, for error messages.
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "of unknown version".to_owned())
}

/// Kernels before 5.11 charge BPF maps and programs to RLIMIT_MEMLOCK
/// (often 64 KiB or 8 MiB, far below what the maps take), and map creation
/// fails with EPERM; later ones charge the memory cgroup instead. Unlimited
/// needs CAP_SYS_RESOURCE; without it, the soft limit goes up to the hard.
pub fn raise_memlock_limit() {
    let set = |cur, max| {
        let limit = libc::rlimit {
            rlim_cur: cur,
            rlim_max: max,
        };
        // SAFETY: setrlimit only reads the struct passed by reference.
        unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) == 0 }
    };
    if set(libc::RLIM_INFINITY, libc::RLIM_INFINITY) {
        return;
    }
    let err = std::io::Error::last_os_error();
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed by reference.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut now) } == 0 {
        set(now.rlim_max, now.rlim_max);
        log::warn!(
            "this kernel charges BPF memory to RLIMIT_MEMLOCK, which stays at {} KiB \
             (raising it: {err}); map creation may fail",
            now.rlim_max / 1024
        );
    }
}

/// An argument a program reads.
#[derive(Clone, Copy)]
enum Arg {
    Int,
    Struct(&'static str),
    /// Read, but any type will do (a string pointer, say).
    Any,
}

/// Tracepoints with a fixed prototype, and the leading arguments their
/// programs read.
const TRACEPOINTS: &[(&str, &[Arg])] = &[
    ("sys_enter", &[Arg::Struct("pt_regs"), Arg::Int]),
    ("sys_exit", &[Arg::Struct("pt_regs"), Arg::Int]),
    ("block_rq_complete", &[Arg::Struct("request")]),
    (
        "sched_process_exec",
        &[
            Arg::Struct("task_struct"),
            Arg::Int,
            Arg::Struct("linux_binprm"),
        ],
    ),
    ("sched_process_exit", &[Arg::Struct("task_struct")]),
    (
        "signal_generate",
        &[
            Arg::Int,
            Arg::Any,
            Arg::Struct("task_struct"),
            Arg::Int,
            Arg::Int,
        ],
    ),
    ("cgroup_mkdir", &[Arg::Struct("cgroup"), Arg::Any]),
    ("cgroup_rmdir", &[Arg::Struct("cgroup"), Arg::Any]),
    (
        "inet_sock_set_state",
        &[Arg::Struct("sock"), Arg::Int, Arg::Int],
    ),
    ("tcp_retransmit_skb", &[Arg::Struct("sock")]),
    ("tcp_send_reset", &[Arg::Struct("sock")]),
    ("tcp_receive_reset", &[Arg::Struct("sock")]),
];

/// The prototypes that vary between supported kernels, as the programs'
/// `ProbeConfig` needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prototypes {
    /// One of `dsh_ebpf::victim_arg`.
    pub oom_victim_arg: u32,
    /// Which argument of `block_rq_issue` is the request.
    pub block_rq_issue_arg: u32,
}

fn matches(param: &Param, arg: Arg) -> bool {
    match arg {
        Arg::Int => *param == Param::Int,
        Arg::Struct(name) => *param == Param::StructPtr(name.to_owned()),
        Arg::Any => true,
    }
}

/// The prototypes to load with, or everything this kernel lacks.
pub fn check(btf: &Btf) -> Result<Prototypes, Vec<String>> {
    let mut missing = Vec::new();
    for &(enum_name, value, what) in FEATURES {
        if btf.enum_value(enum_name, value).is_err() {
            missing.push(what.to_owned());
        }
    }
    let mut params = |tp: &str| {
        let p = btf.tracepoint_params(tp);
        if p.is_none() {
            missing.push(format!("tracepoint {tp}"));
        }
        p
    };
    let mut unexpected = Vec::new();
    for &(tp, args) in TRACEPOINTS {
        if let Some(p) = params(tp) {
            let fits = p.len() >= args.len() && p.iter().zip(args).all(|(p, &a)| matches(p, a));
            if !fits {
                unexpected.push(tp);
            }
        }
    }
    let request = Param::StructPtr("request".to_owned());
    let block_rq_issue_arg = match params("block_rq_issue") {
        Some(p) => match p.iter().take(2).position(|p| *p == request) {
            Some(i) => i as u32,
            None => {
                unexpected.push("block_rq_issue");
                0
            }
        },
        None => 0,
    };
    let oom_victim_arg = match params("mark_victim").as_deref() {
        Some([Param::StructPtr(s), ..]) if s == "task_struct" => victim_arg::TASK,
        Some([Param::Int, ..]) => victim_arg::PID,
        Some(_) => {
            unexpected.push("mark_victim");
            victim_arg::TASK
        }
        None => victim_arg::TASK,
    };
    missing.extend(
        unexpected
            .into_iter()
            .map(|tp| format!("tracepoint {tp} with the arguments dsh reads")),
    );
    if missing.is_empty() {
        Ok(Prototypes {
            oom_victim_arg,
            block_rq_issue_arg,
        })
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::btf::writer::Fixture;

    #[test]
    fn this_kernel_has_everything() {
        let data = crate::probe::btf::read(std::path::Path::new(crate::probe::btf::VMLINUX))
            .expect("this machine kind has kernel BTF");
        let btf = Btf::parse(&data).expect("the kernel's BTF parses");
        assert!(
            bpf_memory_in_memcg(&btf),
            "6.18 charges BPF memory to memcg"
        );
        assert!(!bpf_memory_in_memcg(&Fixture::default().build()));
        let p = check(&btf).unwrap_or_else(|m| panic!("missing: {m:?}"));
        // 6.18: mark_victim(task, uid), block_rq_issue(rq).
        assert_eq!(p.oom_victim_arg, victim_arg::TASK);
        assert_eq!(p.block_rq_issue_arg, 0);
    }

    /// Every tracepoint and feature of a 6.x kernel, with the two
    /// prototypes that vary given.
    fn kernel(mark_victim: &[Param], block_rq_issue: &[Param]) -> Fixture {
        let mut f = Fixture::default();
        for &(e, v, _) in FEATURES {
            f.enum_value(e, v);
        }
        for &(tp, args) in TRACEPOINTS {
            let params: Vec<Param> = args
                .iter()
                .map(|a| match a {
                    Arg::Int => Param::Int,
                    Arg::Struct(s) => Param::StructPtr((*s).to_owned()),
                    Arg::Any => Param::Other,
                })
                .collect();
            f.tracepoint(tp, &params);
        }
        f.tracepoint("mark_victim", mark_victim);
        f.tracepoint("block_rq_issue", block_rq_issue);
        f
    }

    fn sp(s: &str) -> Param {
        Param::StructPtr(s.to_owned())
    }

    #[test]
    fn kernel_5_x_prototypes_are_recognised() {
        // 5.10: mark_victim(int pid); 5.8/5.9: block_rq_issue(q, rq).
        let btf = kernel(&[Param::Int], &[sp("request_queue"), sp("request")]).build();
        assert_eq!(
            check(&btf),
            Ok(Prototypes {
                oom_victim_arg: victim_arg::PID,
                block_rq_issue_arg: 1,
            })
        );
        let btf = kernel(&[sp("task_struct"), Param::Int], &[sp("request")]).build();
        assert_eq!(
            check(&btf),
            Ok(Prototypes {
                oom_victim_arg: victim_arg::TASK,
                block_rq_issue_arg: 0,
            })
        );
    }

    #[test]
    fn what_is_missing_is_named() {
        let mut old = Fixture::default();
        // A 5.4-like kernel: BTF tracepoints and probe_read_kernel, no ring
        // buffers, no boot clock, and no cgroup tracepoints.
        old.enum_value("bpf_attach_type", "BPF_TRACE_RAW_TP");
        old.enum_value("bpf_func_id", "BPF_FUNC_probe_read_kernel");
        old.enum_value("bpf_func_id", "BPF_FUNC_probe_read_kernel_str");
        old.enum_value("bpf_func_id", "BPF_FUNC_get_current_cgroup_id");
        for &(tp, _) in TRACEPOINTS {
            if !tp.starts_with("cgroup_") {
                old.tracepoint(tp, &vec![Param::Other; 5]);
            }
        }
        old.tracepoint("mark_victim", &[sp("mm_struct")]);
        let missing = check(&old.build()).unwrap_err();
        for m in [
            "BPF ring buffers (5.8)",
            "bpf_ktime_get_boot_ns (5.8)",
            "tracepoint cgroup_mkdir",
            "tracepoint block_rq_issue",
            "tracepoint sys_exit with the arguments dsh reads",
            "tracepoint mark_victim with the arguments dsh reads",
        ] {
            assert!(missing.iter().any(|x| x == m), "{m:?} not in {missing:?}");
        }
        assert!(!missing.iter().any(|x| x.contains("probe_read_kernel")));
    }
}
