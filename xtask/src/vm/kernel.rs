//! Debian's kernels for the VM matrix, fetched with `apt-get download` from
//! this machine's own mirror through a sources list of our own (the host's
//! apt state is never read or written), and cached under `target/vm/kernels`.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use super::modules;
use crate::{cmd::say, workspace_root};

/// The modules the VM loads: a virtio disk with an ext4 file system on it,
/// for the block I/O test (virtio_pci is built in on some kernels).
const DISK_MODULES: &[&str] = &["virtio_pci", "virtio_blk", "ext4"];

/// The host's archive key ring; it signs every current Debian suite.
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

const FALLBACK_MIRROR: &str = "http://deb.debian.org/debian";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Kernel {
    #[value(name = "5.10")]
    V5_10,
    #[value(name = "6.1")]
    V6_1,
    #[value(name = "6.12")]
    V6_12,
}

impl Kernel {
    pub const ALL: [Kernel; 3] = [Kernel::V5_10, Kernel::V6_1, Kernel::V6_12];

    pub fn name(self) -> &'static str {
        match self {
            Kernel::V5_10 => "5.10",
            Kernel::V6_1 => "6.1",
            Kernel::V6_12 => "6.12",
        }
    }

    /// The Debian suite whose default kernel this is.
    pub fn suite(self) -> &'static str {
        match self {
            Kernel::V5_10 => "bullseye",
            Kernel::V6_1 => "bookworm",
            Kernel::V6_12 => "trixie",
        }
    }

    pub fn distribution(self) -> &'static str {
        match self {
            Kernel::V5_10 => "Debian 11",
            Kernel::V6_1 => "Debian 12",
            Kernel::V6_12 => "Debian 13",
        }
    }
}

/// A kernel ready to boot: its image and the disk modules in load order.
#[derive(Clone, Debug)]
pub struct KernelFiles {
    /// `uname -r` of the kernel, e.g. `6.1.0-50-amd64`.
    pub release: String,
    pub vmlinuz: PathBuf,
    /// Uncompressed `.ko` files, dependencies first.
    pub modules: Vec<PathBuf>,
}

fn vm_dir() -> PathBuf {
    workspace_root().join("target/vm")
}

/// The kernel from the cache, or fetched (and cached) if missing.
pub fn fetch(kernel: Kernel) -> anyhow::Result<KernelFiles> {
    let dir = vm_dir().join("kernels").join(kernel.suite());
    if let Some(files) = cached(&dir)? {
        return Ok(files);
    }
    say(&format!(
        "fetching the {} kernel of {} ({})",
        kernel.name(),
        kernel.distribution(),
        kernel.suite()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let apt = Apt::new(kernel.suite())?;
    apt.update()?;
    let package = apt.kernel_package()?;
    let deb = apt.download(&package, &dir)?;
    let unpacked = dir.join("unpacked");
    unpack(&deb, &unpacked)?;
    let files = install(&unpacked, &dir).with_context(|| format!("unpacking {package}"))?;
    fs::remove_dir_all(&unpacked).ok();
    fs::remove_file(&deb).ok();
    // Written last: a cache without it is a fetch that did not finish.
    fs::write(dir.join("release"), &files.release)?;
    say(&format!(
        "kernel {} cached in {}",
        files.release,
        dir.display()
    ));
    Ok(files)
}

fn cached(dir: &Path) -> anyhow::Result<Option<KernelFiles>> {
    let Ok(release) = fs::read_to_string(dir.join("release")) else {
        return Ok(None);
    };
    let mut modules: Vec<PathBuf> = fs::read_dir(dir.join("modules"))
        .with_context(|| format!("reading {}/modules", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    // Named `NN-name.ko`: the order they load in.
    modules.sort();
    Ok(Some(KernelFiles {
        release: release.trim().to_owned(),
        vmlinuz: dir.join("vmlinuz"),
        modules,
    }))
}

/// `dpkg-deb --fsys-tarfile DEB | tar -x -C DIR`.
fn unpack(deb: &Path, dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("running dpkg-deb")?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(dir)
        .stdin(dpkg.stdout.take().context("dpkg-deb's stdout")?)
        .status()
        .context("running tar")?;
    let dpkg = dpkg.wait()?;
    if !dpkg.success() || !tar.success() {
        bail!(
            "unpacking {} failed (dpkg-deb: {dpkg}, tar: {tar})",
            deb.display()
        );
    }
    Ok(())
}

/// Moves the kernel image and the disk modules (with their dependencies,
/// decompressed) from an unpacked package into the cache directory.
fn install(unpacked: &Path, dir: &Path) -> anyhow::Result<KernelFiles> {
    let boot = unpacked.join("boot");
    let vmlinuz = fs::read_dir(&boot)
        .with_context(|| format!("reading {}", boot.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .context("the package has no boot/vmlinuz-*")?;
    let release = vmlinuz
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_start_matches("vmlinuz-")
                .to_owned()
        })
        .unwrap_or_default();
    // Debian 13 moved modules to /usr/lib (merged /usr).
    let tree = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| unpacked.join(d).join(&release))
        .find(|d| d.is_dir())
        .with_context(|| format!("the package has no lib/modules/{release}"))?;
    let order = modules::load_order(&tree, DISK_MODULES)?;
    let out = dir.join("modules");
    fs::create_dir_all(&out)?;
    let mut modules = Vec::new();
    for (i, m) in order.iter().enumerate() {
        let dest = out.join(format!("{i:02}-{}.ko", m.name));
        fs::write(&dest, modules::read_module(&m.path)?)
            .with_context(|| format!("writing {}", dest.display()))?;
        modules.push(dest);
    }
    fs::copy(&vmlinuz, dir.join("vmlinuz")).context("copying the kernel image")?;
    Ok(KernelFiles {
        release,
        vmlinuz: dir.join("vmlinuz"),
        modules,
    })
}

/// apt-get with a sources list, lists and cache of our own: one suite of
/// this machine's mirror.
struct Apt {
    opts: Vec<String>,
}

impl Apt {
    fn new(suite: &str) -> anyhow::Result<Apt> {
        let dir = vm_dir().join("apt").join(suite);
        for d in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(dir.join(d))?;
        }
        let signed = if Path::new(KEYRING).exists() {
            format!(" [signed-by={KEYRING}]")
        } else {
            String::new()
        };
        let list = dir.join("sources.list");
        fs::write(&list, format!("deb{signed} {} {suite} main\n", mirror()))?;
        let mut opts = vec![
            format!("Dir::Etc::sourcelist={}", list.display()),
            "Dir::Etc::sourceparts=-".to_owned(),
            format!("Dir::State::Lists={}", dir.join("lists").display()),
            format!("Dir::Cache={}", dir.join("cache").display()),
            // Packages installed on the host are no business of this list.
            "Dir::State::status=/dev/null".to_owned(),
            // Downloads land in target/, which apt's sandbox user may not write.
            "APT::Sandbox::User=root".to_owned(),
            "Acquire::Languages=none".to_owned(),
        ];
        for target in [
            "DEP-11",
            "DEP-11-icons",
            "DEP-11-icons-small",
            "DEP-11-icons-hidpi",
        ] {
            opts.push(format!(
                "Acquire::IndexTargets::deb::{target}::DefaultEnabled=false"
            ));
        }
        Ok(Apt { opts })
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        for o in &self.opts {
            c.arg("-o").arg(o);
        }
        c
    }

    /// Runs an apt tool; on failure, apt's own error lines, not the
    /// whole command line.
    fn run(&self, program: &str, args: &[&str], dir: Option<&Path>) -> anyhow::Result<String> {
        let mut cmd = self.command(program);
        cmd.args(args);
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        let out = cmd.output().with_context(|| format!("running {program}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("E:")).collect();
            let why = if errors.is_empty() {
                stderr
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or("no message")
                    .to_owned()
            } else {
                errors.join("; ")
            };
            bail!("{program} {}: {why}", args.join(" "));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn update(&self) -> anyhow::Result<()> {
        self.run("apt-get", &["update", "-qq"], None).map(drop)
    }

    /// The versioned image package Debian's `linux-image-amd64` points to.
    fn kernel_package(&self) -> anyhow::Result<String> {
        let deps = self.run("apt-cache", &["depends", "linux-image-amd64"], None)?;
        deps.lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|p| p.starts_with("linux-image-"))
            .map(str::to_owned)
            .context("linux-image-amd64 depends on no linux-image-* package")
    }

    fn download(&self, package: &str, dir: &Path) -> anyhow::Result<PathBuf> {
        self.run("apt-get", &["download", "-qq", package], Some(dir))?;
        fs::read_dir(dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .with_context(|| format!("apt-get download {package} left no .deb"))
    }
}

/// The mirror this machine's own Debian packages come from (deb822
/// `debian.sources` or a one-line `sources.list`).
fn mirror() -> String {
    let deb822 = fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    let from_deb822 = deb822.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name).map(str::trim))
        };
        let suites = field("Suites:")?;
        // The main archive, not the security one (another tree).
        if suites.split_whitespace().all(|s| s.ends_with("-security")) {
            return None;
        }
        field("URIs:")?.split_whitespace().next().map(str::to_owned)
    });
    let from_list = || {
        let list = fs::read_to_string("/etc/apt/sources.list").ok()?;
        list.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next()? == "deb").then_some(())?;
            let mut uri = f.next()?;
            if uri.starts_with('[') {
                // `[option=value ...]` before the URI.
                while !uri.ends_with(']') {
                    uri = f.next()?;
                }
                uri = f.next()?;
            }
            let suite = f.next()?;
            (!suite.ends_with("-security")).then(|| uri.to_owned())
        })
    };
    from_deb822
        .or_else(from_list)
        .unwrap_or_else(|| FALLBACK_MIRROR.to_owned())
}
