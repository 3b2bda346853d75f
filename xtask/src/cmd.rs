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

/// For daemons started from a test run: close every descriptor but stdio
/// in the child, or the daemon keeps whatever the caller held (such as
/// `flock`'s lock on the shared test lock) for as long as it runs.
pub trait CloseInherited {
    fn pre_exec_close_inherited(&mut self) -> &mut Self;
}

impl CloseInherited for std::process::Command {
    fn pre_exec_close_inherited(&mut self) -> &mut Self {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: close_range is async-signal-safe and touches no memory;
        // stdio (0-2) stays, set up by Command before this runs.
        unsafe {
            self.pre_exec(|| {
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                Ok(())
            })
        }
    }
}
