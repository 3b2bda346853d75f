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

use crate::{bootstrap::say, workspace_root};

pub const TEST_IMAGE: &str = "dsh-test/busybox:latest";

/// Busybox applets the test image links to.
const APPLETS: &[&str] = &[
    "sh", "sleep", "dd", "cat", "echo", "ls", "hostname", "ps", "kill", "true", "false", "stat",
    "nc", "httpd", "mkdir", "rm", "id", "env", "wget", "head", "seq",
];

fn quiet(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn engine_up() -> bool {
    quiet(Command::new("docker").arg("info"))
}

/// apt-get install, waiting out a dpkg lock held by someone else.
pub fn ensure_packages(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !quiet(Command::new("dpkg-query").args(["-W", "-f=${Status}", p])) || !installed(p)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    say(&format!(
        "installing {} from Debian's packages",
        missing.join(" ")
    ));
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut updated = false;
    loop {
        if !updated {
            updated = quiet(Command::new("apt-get").args(["update", "-qq"]));
        }
        let ok = Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .context("running apt-get")?
            .success();
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("apt-get install {} failed", missing.join(" "));
        }
        // Most likely another apt holds the dpkg lock.
        std::thread::sleep(Duration::from_secs(5));
    }
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// A running engine with the test image, whatever it takes.
pub fn ensure_engine() -> anyhow::Result<()> {
    if !engine_up() {
        ensure_packages(&["docker.io", "busybox-static"])?;
        let log = workspace_root().join("target/dockerd.log");
        say(&format!("starting dockerd (log: {})", log.display()));
        let out = fs::File::create(&log).context("creating the dockerd log")?;
        // setsid: dockerd outlives xtask and takes no terminal signals.
        Command::new("setsid")
            .arg("dockerd")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting dockerd")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !engine_up() {
            if Instant::now() > deadline {
                bail!("dockerd did not come up in 60 s; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    ensure_test_image()
}

fn ensure_test_image() -> anyhow::Result<()> {
    if quiet(Command::new("docker").args(["image", "inspect", TEST_IMAGE])) {
        return Ok(());
    }
    ensure_packages(&["busybox-static"])?;
    say(&format!("importing {TEST_IMAGE} from /bin/busybox"));
    let dir = workspace_root().join("target/busybox-image");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("bin"))?;
    fs::create_dir_all(dir.join("tmp"))?;
    fs::copy("/bin/busybox", dir.join("bin/busybox")).context("copying /bin/busybox")?;
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet))?;
    }
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("running tar")?;
    let ok = Command::new("docker")
        .args(["import", "-", TEST_IMAGE])
        .stdin(tar.stdout.context("tar stdout")?)
        .stdout(Stdio::null())
        .status()
        .context("running docker import")?
        .success();
    if !ok || !Path::new("/bin/busybox").exists() {
        bail!("docker import of {TEST_IMAGE} failed");
    }
    Ok(())
}
