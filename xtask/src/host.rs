//! Host set-up shared by the test and bench commands.
use anyhow::Context as _;

use crate::cmd::{check, say};

/// tracefs must be absent while the tests (and the benchmark) load the
/// programs: they prove dsh needs none.
pub fn unmount_tracefs() -> anyhow::Result<()> {
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [_, target, "tracefs", ..] = f[..] {
            say(&format!(
                "unmounting tracefs at {target} (the tests must pass without it)"
            ));
            check(std::process::Command::new("umount").arg(target))?;
        }
    }
    Ok(())
}
