//! The container's own powers, copied from its main process onto the
//! command before exec, so entering a container never gives it more than it
//! has (what `docker exec` gets from the runtime's profile).
//!
//! Read from the host's /proc before any namespace is joined; applied in the
//! command's process, in the order the kernel's rules need
//! (capabilities(7), prctl(2)):
//! 1. inheritable set, while the permitted set still covers any bit;
//! 2. bounding set (PR_CAPBSET_DROP needs CAP_SETPCAP: before the uid change);
//! 3. PR_SET_KEEPCAPS, then groups, gid, uid (keep-caps keeps the permitted
//!    set across a change away from uid 0);
//! 4. effective, permitted, inheritable exactly the container's (capset);
//! 5. ambient last (a raise needs the cap in permitted and inheritable);
//! 6. no_new_privs when the container has it; non-dumpable until exec.
//!
//! Capability sets are copied as the kernel's 64-bit masks, bit for bit,
//! with capset(2) and prctl(2) directly: a crate's list of known
//! capabilities would miss the ones newer than it.
use std::io;

use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};

/// One process's identity and capability sets, from /proc/PID/status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Real, effective, saved.
    pub uid: [u32; 3],
    pub gid: [u32; 3],
    pub groups: Vec<u32>,
    pub inheritable: u64,
    pub permitted: u64,
    pub effective: u64,
    pub bounding: u64,
    pub ambient: u64,
    pub no_new_privs: bool,
    /// 2: a seccomp filter, which cannot be copied (docs/limits.md).
    pub seccomp: u32,
    /// The AppArmor profile to exec into, when AppArmor is enabled and the
    /// process is confined.
    pub apparmor: Option<String>,
}

impl Credentials {
    /// From the host's /proc, for `pid`.
    pub fn of(pid: u32) -> io::Result<Self> {
        let status = procfs::process::Process::new(pid as i32)
            .and_then(|p| p.status())
            .map_err(|e| match e {
                // The process is gone: the caller says so.
                procfs::ProcError::NotFound(_) => io::Error::from(io::ErrorKind::NotFound),
                e => io::Error::other(e),
            })?;
        let apparmor = if apparmor_enabled() {
            match std::fs::read_to_string(format!("/proc/{pid}/attr/current")) {
                Ok(label) => apparmor_profile(&label),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        Ok(Self {
            uid: [status.ruid, status.euid, status.suid],
            gid: [status.rgid, status.egid, status.sgid],
            groups: status.groups,
            inheritable: status.capinh,
            permitted: status.capprm,
            effective: status.capeff,
            bounding: status.capbnd.unwrap_or(u64::MAX),
            ambient: status.capamb.unwrap_or(0),
            no_new_privs: status.nonewprivs.unwrap_or(0) != 0,
            seccomp: status.seccomp.unwrap_or(0),
            apparmor,
        })
    }

    /// The effective uid the command will run as.
    pub fn euid(&self) -> u32 {
        self.uid[1]
    }
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

/// `docker-default (enforce)` → `docker-default`; unconfined → none.
fn apparmor_profile(label: &str) -> Option<String> {
    let label = label.trim_end_matches(['\n', '\0']).trim();
    let name = match label.rsplit_once(" (") {
        Some((name, mode)) if mode.ends_with(')') => name,
        _ => label,
    };
    (!name.is_empty() && name != "unconfined").then(|| name.to_owned())
}

/// Sets the AppArmor profile the next exec enters. Called in the first
/// child, before any namespace is joined (the host's /proc/self is this
/// process); a fork inherits the pending profile.
pub fn set_apparmor_on_exec(profile: &str) -> Result<(), String> {
    std::fs::write("/proc/self/attr/exec", format!("exec {profile}"))
        .map_err(|e| format!("setting the container's AppArmor profile {profile}: {e}"))
}

/// Makes this process non-dumpable: the container's processes, once they
/// share its uid, cannot ptrace it or open its /proc files before exec.
pub fn non_dumpable() -> Result<(), String> {
    prctl(libc::PR_SET_DUMPABLE, 0, "PR_SET_DUMPABLE")
}

/// Takes on `creds` (see the module's order), in the process about to exec.
pub fn apply(creds: &Credentials) -> Result<(), String> {
    let current = capget()?;
    capset(current.effective, current.permitted, creds.inheritable)
        .map_err(|e| format!("setting the inheritable capabilities: {e}"))?;
    for cap in 0..64 {
        // SAFETY: PR_CAPBSET_READ takes an int and reads no memory.
        let known = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong) };
        if known < 0 {
            break; // past the kernel's last capability
        }
        if known == 1 && creds.bounding & (1 << cap) == 0 {
            prctl(libc::PR_CAPBSET_DROP, cap, "PR_CAPBSET_DROP")?;
        }
    }
    prctl(libc::PR_SET_KEEPCAPS, 1, "PR_SET_KEEPCAPS")?;
    let gids: Vec<Gid> = creds.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    setgroups(&gids).map_err(|e| format!("setgroups: {e}"))?;
    let [r, e, s] = creds.gid.map(Gid::from_raw);
    setresgid(r, e, s).map_err(|e| format!("setresgid: {e}"))?;
    let [r, e, s] = creds.uid.map(Uid::from_raw);
    setresuid(r, e, s).map_err(|e| format!("setresuid: {e}"))?;
    capset(creds.effective, creds.permitted, creds.inheritable)
        .map_err(|e| format!("setting the container's capabilities: {e}"))?;
    prctl(libc::PR_SET_KEEPCAPS, 0, "PR_SET_KEEPCAPS")?;
    // SAFETY: PR_CAP_AMBIENT takes ints and reads no memory.
    let cleared = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    // EINVAL: a kernel without ambient capabilities (< 4.3), where none can be set.
    if cleared < 0 && creds.ambient != 0 {
        return Err(format!(
            "clearing the ambient capabilities: {}",
            io::Error::last_os_error()
        ));
    }
    for cap in (0..64).filter(|c| creds.ambient & (1 << c) != 0) {
        // SAFETY: as above.
        let raised = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0,
                0,
            )
        };
        if raised < 0 {
            let e = io::Error::last_os_error();
            return Err(format!("raising ambient capability {cap}: {e}"));
        }
    }
    if creds.no_new_privs {
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS")?;
    }
    // A uid change resets dumpable to fs.suid_dumpable, which may be 1.
    non_dumpable()
}

fn prctl(op: libc::c_int, arg: libc::c_ulong, name: &str) -> Result<(), String> {
    // SAFETY: the options used here take integer arguments only.
    if unsafe { libc::prctl(op, arg, 0, 0, 0) } < 0 {
        return Err(format!("{name}: {}", io::Error::last_os_error()));
    }
    Ok(())
}

/// capget(2)/capset(2)'s version 3 header and data (two 32-bit halves).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;

struct Sets {
    effective: u64,
    permitted: u64,
}

fn capget() -> Result<Sets, String> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are the v3 layout capget(2) writes: one header,
    // two data structs, both live for the call.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if r < 0 {
        return Err(format!("capget: {}", io::Error::last_os_error()));
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok(Sets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
    })
}

fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let half = |m: u64, i: usize| (m >> (32 * i)) as u32;
    let data: [CapData; 2] = std::array::from_fn(|i| CapData {
        effective: half(effective, i),
        permitted: half(permitted, i),
        inheritable: half(inheritable, i),
    });
    // SAFETY: the v3 layout capset(2) reads: one header, two data structs.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apparmor_labels() {
        assert_eq!(
            apparmor_profile("docker-default (enforce)\n").as_deref(),
            Some("docker-default")
        );
        assert_eq!(
            apparmor_profile("my profile (complain)").as_deref(),
            Some("my profile")
        );
        assert_eq!(apparmor_profile("unconfined\n"), None);
        assert_eq!(apparmor_profile(""), None);
        assert_eq!(apparmor_profile("bare").as_deref(), Some("bare"));
    }

    /// This test process's own credentials read back as the kernel reports
    /// them (capget agrees with /proc/self/status).
    #[test]
    fn own_credentials() {
        let me = Credentials::of(std::process::id()).unwrap();
        let sets = capget().unwrap();
        assert_eq!(sets.effective, me.effective);
        assert_eq!(sets.permitted, me.permitted);
        assert_eq!(me.euid(), nix::unistd::geteuid().as_raw());
        let gone = Credentials::of(u32::MAX).unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
    }
}
