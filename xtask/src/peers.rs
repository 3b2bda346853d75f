//! Debian packages the tests use besides the container engine: a real
//! Prometheus server with promtool (`prometheus`) to scrape the agents and
//! check the exposition, `curl` to time a scrape as an operator would,
//! groff to render the man pages and systemd-analyze to verify the unit.
//! Installed once; the tests start their own server on a loopback port.
use crate::docker::ensure_packages;

pub fn ensure() -> anyhow::Result<()> {
    ensure_packages(&["prometheus", "curl", "groff-base", "systemd"])
}
