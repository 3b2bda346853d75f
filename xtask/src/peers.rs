//! Debian packages the tests use besides the container engine: a real
//! Prometheus server with promtool (`prometheus`) to scrape the agents and
//! check the exposition, `curl` to time a scrape as an operator would,
//! groff to render the man pages and systemd-analyze to verify the unit.
//! Installed once; the tests start their own server on a loopback port.
use std::{path::Path, process::Command};

use crate::{
    cmd::{check, on_path, quiet, say},
    docker::{ensure_packages, installed},
};

/// What Debian's `prometheus` starts by itself where systemd runs: a server
/// on every interface (:9090) and, as a recommended package, the node
/// exporter (:9100).
const PACKAGED_UNITS: [&str; 2] = ["prometheus", "prometheus-node-exporter"];

pub fn ensure() -> anyhow::Result<()> {
    let fresh = !installed("prometheus");
    ensure_packages(&["prometheus", "curl", "groff-base", "systemd"])?;
    if fresh {
        stop_packaged_servers()?;
    }
    Ok(())
}

/// The tests need the binaries, not a server listening on the network:
/// the units the package just started (none where systemd is not PID 1)
/// are stopped and disabled. A Prometheus installed before is left alone.
fn stop_packaged_servers() -> anyhow::Result<()> {
    // systemd's own test for "booted with systemd" (sd_booted).
    if !Path::new("/run/systemd/system").exists() || !on_path("systemctl") {
        return Ok(());
    }
    for unit in PACKAGED_UNITS {
        let enabled = quiet(Command::new("systemctl").args(["is-enabled", "--quiet", unit]));
        let active = quiet(Command::new("systemctl").args(["is-active", "--quiet", unit]));
        if enabled || active {
            say(&format!(
                "stopping and disabling {unit}.service, which the package started (the tests run their own on loopback)"
            ));
            check(Command::new("systemctl").args(["disable", "--now", unit]))?;
        }
    }
    Ok(())
}
