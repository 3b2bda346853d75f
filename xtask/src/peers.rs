//! Debian packages the tests use besides the container engine: a real
//! Prometheus server with promtool (`prometheus`) to scrape the agents and
//! check the exposition, and `curl` to time a scrape as an operator would.
//! Installed once; the tests start their own server on a loopback port.
use crate::docker::ensure_packages;

pub fn ensure() -> anyhow::Result<()> {
    ensure_packages(&["prometheus", "curl"])
}
