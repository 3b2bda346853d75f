//! Host set-up shared by the test and bench commands.
use anyhow::Context as _;

use crate::cmd::{check, say};

/// tracefs must be absent while the tests (and the benchmark) load the
/// programs: they prove dsh needs none.
pub fn unmount_tracefs() -> anyhow::Result<()> {
    let mounts = procfs::mounts().context("reading /proc/self/mounts")?;
    for m in mounts.iter().filter(|m| m.fs_vfstype == "tracefs") {
        let target = &m.fs_file;
        say(&format!(
            "unmounting tracefs at {target} (the tests must pass without it)"
        ));
        check(std::process::Command::new("umount").arg(target))?;
    }
    Ok(())
}
