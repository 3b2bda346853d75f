//! Syscall numbers → names for the architecture dsh runs on, from the
//! `syscall-numbers` tables (generated from the kernel's own syscall tables,
//! so new syscalls get names when the crate is updated, not when someone
//! edits a list here).
use core::ffi::c_long;

/// The name of syscall `nr` on this architecture; `syscall_N` if unknown.
pub fn name(nr: u32) -> String {
    // c_long is 64 bits on every target dsh builds for (x86_64, aarch64).
    syscall_numbers::native::sys_call_name(c_long::from(nr))
        .map_or_else(|| format!("syscall_{nr}"), str::to_owned)
}

#[cfg(test)]
mod tests {
    use syscall_numbers::native as sys;

    use super::name;

    #[test]
    fn names_come_from_this_architectures_table() {
        for (nr, expected) in [
            (sys::SYS_read, "read"),
            (sys::SYS_getppid, "getppid"),
            (sys::SYS_statx, "statx"),
            (sys::SYS_cachestat, "cachestat"),
            (sys::SYS_fchmodat2, "fchmodat2"),
            (sys::SYS_mseal, "mseal"),
        ] {
            assert_eq!(name(nr as u32), expected);
        }
        assert_eq!(name(99_999), "syscall_99999");
    }

    /// The old hand-written table stopped at 450: the syscalls this 6.18
    /// kernel added since are named too.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn x86_64_numbers_above_450() {
        assert_eq!(name(0), "read");
        assert_eq!(name(110), "getppid");
        assert_eq!(name(262), "newfstatat");
        assert_eq!(name(450), "set_mempolicy_home_node");
        assert_eq!(name(451), "cachestat");
        assert_eq!(name(452), "fchmodat2");
        assert_eq!(name(462), "mseal");
        assert_eq!(name(470), "listns");
        // x86_64 leaves 335..=423 unused: numbers, not empty names.
        assert_eq!(name(400), "syscall_400");
    }
}
