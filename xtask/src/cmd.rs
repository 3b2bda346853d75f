//! Running commands: progress lines, status checks, captured output.
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// One progress line on stderr, before each slow step.
pub fn say(what: &str) {
    eprintln!("xtask: {what}");
}

/// Runs `cmd` with inherited stdio; an error unless it exits 0.
pub fn check(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` and returns its trimmed stdout; an error unless it exits 0.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Whether `cmd` exits 0, its output thrown away.
pub fn quiet(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether an executable named `name` is on PATH.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

/// Makes `cmd` a daemon that outlives xtask: its own session (no terminal
/// signals) and no inherited descriptors beyond stdio. A lock or pipe fd
/// left open by whoever ran xtask (`flock`, a test harness' pipe) would
/// otherwise stay held for the daemon's whole life.
pub fn daemonize(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe system calls (setsid, close_range).
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        })
    }
}
