use std::path::PathBuf;

/// Why the probe could not do what was asked; each says what failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("dsh needs root: loading eBPF programs requires CAP_BPF and CAP_SYS_ADMIN")]
    NotRoot,
    #[error(
        "this kernel has no BTF (/sys/kernel/btf/vmlinux); dsh needs a kernel built with \
         CONFIG_DEBUG_INFO_BTF=y (5.8 or newer)"
    )]
    NoBtf,
    #[error("reading /proc/self/mounts")]
    Mounts(#[source] std::io::Error),
    #[error(
        "no cgroup hierarchy to attribute tasks to (neither cgroup2 nor a v1 memory hierarchy is mounted)"
    )]
    NoCgroupHierarchy,
    #[error(
        "this kernel has no cgroup local storage (BPF_MAP_TYPE_CGRP_STORAGE, Linux 6.2+); \
         count syscalls with --syscall-counters hash (or auto)"
    )]
    NoCgroupStorage,
    #[error("this kernel ({release}) lacks what dsh needs (Linux 5.8+ with BTF): {missing}")]
    KernelLacks { release: String, missing: String },
    #[error("resolving kernel struct layouts from BTF")]
    Btf(#[from] super::btf::BtfError),
    #[error("reading the kernel's BTF (/sys/kernel/btf/vmlinux)")]
    KernelBtf(#[source] aya::BtfError),
    #[error("loading the eBPF object")]
    Load(#[source] aya::EbpfError),
    #[error("the eBPF object has no program {0}")]
    MissingProgram(String),
    #[error("the eBPF object has no map {0}")]
    MissingMap(&'static str),
    #[error("eBPF program {program}")]
    Program {
        program: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("eBPF map {0}")]
    Map(&'static str, #[source] aya::maps::MapError),
    #[error("opening cgroup {path}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the event stream")]
    Stream(#[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::ProbeError;
    use crate::report::chain;

    /// aya's load error prints its cause and returns it as its source too:
    /// the line `dsh agent` ends with says each part once.
    #[test]
    fn a_load_error_names_its_cause_once() {
        let e = ProbeError::Load(aya::EbpfError::MapError(aya::maps::MapError::CreateError {
            name: "CRITICAL_EVENTS".into(),
            io_error: std::io::Error::from_raw_os_error(1),
        }));
        assert_eq!(
            chain(&e),
            "loading the eBPF object: map error: failed to create map `CRITICAL_EVENTS`: \
             Operation not permitted (os error 1)"
        );
    }
}
