//! A real Docker engine for the tests: installed from Debian's packages,
//! started by hand (no systemd here), with a busybox image imported from
//! the busybox-static binary (no registry is reachable).
use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    cmd::{daemonize, on_path, quiet, say},
    workspace_root,
};

pub const TEST_IMAGE: &str = "dsh-test/busybox:latest";

/// Busybox applets the test image links to.
const APPLETS: &[&str] = &[
    "sh", "sleep", "dd", "cat", "echo", "ls", "hostname", "ps", "kill", "true", "false", "stat",
    "nc", "httpd", "mkdir", "rm", "id", "env", "wget", "head", "seq",
];

/// How long to wait for another apt/dpkg (holding its lock) to finish.
const APT_LOCK_WAIT: Duration = Duration::from_secs(180);

fn engine_up() -> bool {
    quiet(Command::new("docker").arg("info"))
}

pub fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// `apt-get update` once, then `apt-get install`, waiting out a dpkg lock
/// held by someone else (up to a few minutes) rather than failing.
pub fn ensure_packages(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    say(&format!(
        "installing {} from Debian's packages",
        missing.join(" ")
    ));
    let lock_timeout = format!("DPkg::Lock::Timeout={}", APT_LOCK_WAIT.as_secs());
    let deadline = Instant::now() + APT_LOCK_WAIT;
    let mut updated = false;
    loop {
        if !updated {
            updated = quiet(
                Command::new("apt-get")
                    .args(["-o", &lock_timeout, "update", "-qq"])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            );
        }
        let ok = updated
            && Command::new("apt-get")
                .args(["-o", &lock_timeout, "install", "-y", "-qq"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .context("running apt-get")?
                .success();
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "apt-get {} failed; run `apt-get update && apt-get install -y {}` by hand",
                if updated { "install" } else { "update" },
                missing.join(" ")
            );
        }
        // Most likely another apt holds a lock it did not give up in time.
        say("apt-get failed (another apt running?); retrying in 5 s");
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// Starts dockerd in its own session (it outlives xtask and takes no
/// terminal signals), logging to `target/dockerd.log`, and waits for it.
fn start_dockerd() -> anyhow::Result<()> {
    let log = workspace_root().join("target/dockerd.log");
    say(&format!("starting dockerd (log: {})", log.display()));
    let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    // --live-restore: containers outlive a dockerd restart, as on production
    // hosts; the tests stop and restart dockerd under running containers.
    let mut child = daemonize(Command::new("dockerd").arg("--live-restore"))
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("starting dockerd")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !engine_up() {
        if let Some(status) = child.try_wait()? {
            bail!("dockerd exited ({status}); see {}", log.display());
        }
        if Instant::now() > deadline {
            bail!("dockerd did not come up in 60 s; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// A running engine with the test image, whatever it takes.
pub fn ensure_engine() -> anyhow::Result<()> {
    if !engine_up() {
        if !(on_path("dockerd") && on_path("docker") && Path::new("/bin/busybox").exists()) {
            ensure_packages(&["docker.io", "busybox-static"])?;
        }
        start_dockerd()?;
    }
    // `dsh ssh`'s test drives the shell through a terminal tmux provides.
    if !on_path("tmux") {
        ensure_packages(&["tmux"])?;
    }
    ensure_test_image()
}

fn ensure_test_image() -> anyhow::Result<()> {
    if quiet(Command::new("docker").args(["image", "inspect", TEST_IMAGE])) {
        return Ok(());
    }
    if !Path::new("/bin/busybox").exists() {
        ensure_packages(&["busybox-static"])?;
    }
    say(&format!("importing {TEST_IMAGE} from /bin/busybox"));
    let dir = workspace_root().join("target/busybox-image");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("bin"))?;
    fs::create_dir_all(dir.join("tmp"))?;
    fs::copy("/bin/busybox", dir.join("bin/busybox")).context("copying /bin/busybox")?;
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet))
            .with_context(|| format!("linking bin/{applet}"))?;
    }
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("running tar")?;
    let imported = Command::new("docker")
        .args(["import", "-", TEST_IMAGE])
        .stdin(tar.stdout.take().context("tar's stdout")?)
        .stdout(Stdio::null())
        .status()
        .context("running docker import")?;
    let tarred = tar.wait().context("waiting for tar")?;
    if !tarred.success() || !imported.success() {
        bail!("importing {TEST_IMAGE} failed (tar: {tarred}, docker import: {imported})");
    }
    Ok(())
}
