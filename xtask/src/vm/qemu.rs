//! Booting one test VM: qemu with software emulation (a guest hangs under
//! KVM on the cloud VMs we build on, see docs/testing.md), the serial
//! console captured to a log file, killed at its deadline.
use std::{
    fs,
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;

pub struct Boot {
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
    /// A raw disk image, the guest's /dev/vda.
    pub disk: PathBuf,
    /// Kernel command line additions (e.g. `dsh.layout=v2`).
    pub append: String,
    pub cpus: u32,
    pub memory_mib: u32,
    pub timeout: Duration,
    /// Where the console goes, as it arrives.
    pub log: PathBuf,
}

pub struct Run {
    pub console: String,
    /// Each complete console line with when it arrived (since boot began).
    pub lines: Vec<(Duration, String)>,
    pub timed_out: bool,
    pub elapsed: Duration,
}

pub fn boot(b: &Boot) -> anyhow::Result<Run> {
    let started = Instant::now();
    let mut log =
        fs::File::create(&b.log).with_context(|| format!("creating {}", b.log.display()))?;
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-nodefaults", "-no-user-config", "-accel", "tcg"])
        .args(["-smp", &b.cpus.to_string(), "-m", &b.memory_mib.to_string()])
        .args(["-display", "none", "-serial", "stdio", "-no-reboot"])
        .arg("-kernel")
        .arg(&b.vmlinuz)
        .arg("-initrd")
        .arg(&b.initrd)
        .arg("-drive")
        .arg(format!("file={},format=raw,if=virtio", b.disk.display()))
        .arg("-append")
        // panic=-1 reboots on a kernel panic, and -no-reboot turns that
        // into qemu exiting; loglevel=2 keeps all but alerts off the console.
        .arg(format!("console=ttyS0 panic=-1 loglevel=2 {}", b.append))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let console = Arc::new(Mutex::new(Vec::new()));
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().context("qemu's stdout")?;
    let mut stderr = child.stderr.take().context("qemu's stderr")?;
    let reader = {
        let (console, lines) = (console.clone(), lines.clone());
        let mut log = log.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut partial = Vec::new();
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = log.write_all(&buf[..n]);
                console
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&buf[..n]);
                for &b in &buf[..n] {
                    if b == b'\n' {
                        let line = String::from_utf8_lossy(&partial).trim_end().to_owned();
                        lines
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((started.elapsed(), line));
                        partial.clear();
                    } else {
                        partial.push(b);
                    }
                }
            }
        })
    };
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = started + b.timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            timed_out = true;
            // Our own child, by its handle.
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = reader.join();
    let errors = errors.join().unwrap_or_default();
    if !errors.trim().is_empty() {
        let _ = writeln!(log, "\n[qemu stderr]\n{}", errors.trim());
    }
    let console =
        String::from_utf8_lossy(&console.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    if !timed_out && !status.success() && console.trim().is_empty() {
        anyhow::bail!("qemu failed ({status}): {}", errors.trim());
    }
    let lines = std::mem::take(&mut *lines.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Run {
        console,
        lines,
        timed_out,
        elapsed: started.elapsed(),
    })
}

/// A fresh ext4 disk image for one VM (the host's mkfs: busybox has none
/// for ext4), sparse, so it costs no disk space until written.
pub fn make_disk(path: &Path, mib: u64) -> anyhow::Result<()> {
    let f = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.set_len(mib << 20)?;
    drop(f);
    // /usr/sbin is not on every PATH.
    let mkfs = if crate::cmd::on_path("mkfs.ext4") {
        "mkfs.ext4"
    } else {
        "/usr/sbin/mkfs.ext4"
    };
    crate::cmd::output(
        Command::new(mkfs)
            .args(["-q", "-F", "-E", "nodiscard"])
            .arg(path),
    )
    .context("mkfs.ext4 (e2fsprogs) on the VM's disk image")?;
    Ok(())
}
