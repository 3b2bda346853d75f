//! containerd and podman for the tests, from Debian's packages: a
//! containerd of the tests' own (socket, root and state under
//! `/run/dsh-test` and `/var/lib/dsh-test`; Docker's bundled containerd is
//! another instance) and podman's API service on a test socket, each with
//! the busybox test image. Idempotent: what already runs is left alone.
use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    cmd::{daemonize, on_path, quiet, say},
    docker::{self, TEST_IMAGE},
    workspace_root,
};

/// The tests' containerd socket (tests/agentkit.rs names the same paths).
pub const CONTAINERD_SOCKET: &str = "/run/dsh-test/containerd.sock";
/// The tests' podman API socket.
pub const PODMAN_SOCKET: &str = "/run/dsh-test/podman.sock";
const CONTAINERD_ROOT: &str = "/var/lib/dsh-test/containerd";
const CONTAINERD_STATE: &str = "/run/dsh-test/containerd-state";
/// containerd's CRI plugin is off: no kubelet here, and it wants CNI.
const CONTAINERD_CONFIG: &str = "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n";

/// The image as containerd's `k8s.io` namespace and podman name it.
pub const CONTAINERD_IMAGE: &str = "docker.io/dsh-test/busybox:latest";
pub const PODMAN_IMAGE: &str = "localhost/dsh-test/busybox:latest";

pub fn ensure() -> anyhow::Result<()> {
    docker::ensure_engine()?; // the image comes from Docker's
    fs::create_dir_all("/run/dsh-test").context("creating /run/dsh-test")?;
    ensure_containerd()?;
    ensure_podman()
}

fn ctr() -> Command {
    let mut c = Command::new("ctr");
    c.args(["--address", CONTAINERD_SOCKET]);
    c
}

/// Starts `cmd` as a daemon (it outlives xtask, see [`daemonize`]), logging
/// to `target/<log>`, and waits until `up` says it answers.
fn start(mut cmd: Command, log: &str, up: impl Fn() -> bool) -> anyhow::Result<()> {
    let log = workspace_root().join("target").join(log);
    say(&format!("starting {cmd:?} (log: {})", log.display()));
    let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = daemonize(&mut cmd)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !up() {
        if let Some(status) = child.try_wait()? {
            bail!("{cmd:?} exited ({status}); see {}", log.display());
        }
        if Instant::now() > deadline {
            bail!("{cmd:?} did not come up in 30 s; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn ensure_containerd() -> anyhow::Result<()> {
    if !(on_path("containerd") && on_path("ctr") && on_path("runc")) {
        docker::ensure_packages(&["containerd", "runc"])?;
    }
    let up = || quiet(ctr().arg("version"));
    if !up() {
        let config = workspace_root().join("target/containerd-test.toml");
        fs::write(&config, CONTAINERD_CONFIG)
            .with_context(|| format!("writing {}", config.display()))?;
        let mut cmd = Command::new("containerd");
        cmd.arg("--config")
            .arg(&config)
            .args(["--address", CONTAINERD_SOCKET])
            .args(["--root", CONTAINERD_ROOT, "--state", CONTAINERD_STATE]);
        start(cmd, "containerd-test.log", up)?;
    }
    let images = ctr()
        .args(["-n", "k8s.io", "images", "ls", "-q"])
        .output()
        .context("running ctr images ls")?;
    if !String::from_utf8_lossy(&images.stdout)
        .lines()
        .any(|l| l == CONTAINERD_IMAGE)
    {
        say(&format!(
            "importing {CONTAINERD_IMAGE} into the test containerd"
        ));
        pipe_image(ctr().args(["-n", "k8s.io", "images", "import", "-"]))?;
    }
    Ok(())
}

fn ensure_podman() -> anyhow::Result<()> {
    if !on_path("podman") {
        docker::ensure_packages(&["podman"])?;
    }
    let up = || {
        Path::new(PODMAN_SOCKET).exists()
            && quiet(Command::new("podman").args([
                "--remote",
                "--url",
                &format!("unix://{PODMAN_SOCKET}"),
                "version",
            ]))
    };
    if !up() {
        let _ = fs::remove_file(PODMAN_SOCKET);
        let mut cmd = Command::new("podman");
        // No systemd here: cgroupfs puts containers in /libpod_parent.
        cmd.args(["--cgroup-manager=cgroupfs", "system", "service"])
            .args(["--time=0", &format!("unix://{PODMAN_SOCKET}")]);
        start(cmd, "podman-test.log", up)?;
    }
    if !quiet(Command::new("podman").args(["image", "exists", PODMAN_IMAGE])) {
        say(&format!("loading {PODMAN_IMAGE} into podman"));
        pipe_image(Command::new("podman").args(["load", "-q"]))?;
    }
    Ok(())
}

/// `docker save TEST_IMAGE | <into>`.
fn pipe_image(into: &mut Command) -> anyhow::Result<()> {
    let mut save = Command::new("docker")
        .args(["save", TEST_IMAGE])
        .stdout(Stdio::piped())
        .spawn()
        .context("running docker save")?;
    let loaded = into
        .stdin(save.stdout.take().context("docker save's stdout")?)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {into:?}"))?;
    let saved = save.wait().context("waiting for docker save")?;
    if !saved.success() || !loaded.success() {
        bail!("copying {TEST_IMAGE} failed (docker save: {saved}, {into:?}: {loaded})");
    }
    Ok(())
}
