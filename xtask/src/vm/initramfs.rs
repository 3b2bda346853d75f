//! The VM's initramfs: busybox, the test binaries and the libraries they
//! link, the disk modules of one kernel, and the `/init` that runs the
//! tests. Written as an uncompressed `newc` cpio archive (the kernel reads
//! it as is; no `cpio` binary on this machine, and nothing to decompress
//! in an emulated guest).
use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use super::kernel::KernelFiles;
use crate::cmd::output;

/// The guest's init: mounts, cgroup layout, disk, tests (see the file).
const INIT: &str = include_str!("init.sh");

/// Where the test binaries live in the guest.
pub const GUEST_DIR: &str = "/dsh";

/// The binaries the guest runs, built on the host.
pub struct Payload {
    /// The integration test binary.
    pub tests: PathBuf,
    pub dsh: PathBuf,
    pub workload: PathBuf,
    /// Exact names of the tests to run.
    pub test_names: Vec<String>,
}

/// An in-memory `newc` archive.
#[derive(Clone, Default)]
pub struct Cpio {
    buf: Vec<u8>,
    next_ino: u32,
    dirs: BTreeSet<String>,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.next_ino += 1;
        let name = name.trim_start_matches('/');
        let fields = [
            self.next_ino,
            mode,
            0, // uid
            0, // gid
            if mode & 0o170000 == 0o040000 { 2 } else { 1 },
            0, // mtime: reproducible archives
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0, // check (only for the "070702" format)
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// A directory and its missing ancestors.
    pub fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        if path.is_empty() || self.dirs.contains(path) {
            return;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.dirs.insert(path.to_owned());
        self.entry(path, 0o040755, &[]);
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        if let Some((parent, _)) = path.trim_start_matches('/').rsplit_once('/') {
            self.dir(parent);
        }
        self.entry(path, 0o100000 | mode, data);
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        if let Some((parent, _)) = path.trim_start_matches('/').rsplit_once('/') {
            self.dir(parent);
        }
        self.entry(path, 0o120777, target.as_bytes());
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.buf
    }
}

/// Everything but the kernel's modules, shared by every kernel's archive.
pub fn common(payload: &Payload, stage: &Path) -> anyhow::Result<Cpio> {
    let mut cpio = Cpio::default();
    for d in ["dev", "proc", "sys", "tmp", "run", "mnt", "var/tmp", "etc"] {
        cpio.dir(d);
    }
    let busybox = Path::new("/bin/busybox");
    cpio.file(
        "bin/busybox",
        0o755,
        &fs::read(busybox).context("reading /bin/busybox")?,
    );
    let applets = output(Command::new(busybox).arg("--list"))?;
    for applet in applets.lines().map(str::trim) {
        // A link named busybox would point at itself (ELOOP at boot).
        if !applet.is_empty() && applet != "busybox" {
            cpio.symlink(&format!("bin/{applet}"), "busybox");
        }
    }
    cpio.file("init", 0o755, INIT.as_bytes());
    let mut libs = BTreeSet::new();
    for (bin, name) in [
        (&payload.tests, "integration"),
        (&payload.dsh, "dsh"),
        (&payload.workload, "dsh-workload"),
    ] {
        let stripped = strip(bin, &stage.join(name))?;
        cpio.file(&format!("{GUEST_DIR}/{name}"), 0o755, &fs::read(&stripped)?);
        libs.extend(shared_libraries(bin)?);
    }
    libs.extend(shared_libraries(busybox)?);
    for lib in libs {
        let data = fs::read(&lib).with_context(|| format!("reading {}", lib.display()))?;
        cpio.file(&lib.to_string_lossy(), 0o755, &data);
    }
    let mut list = payload.test_names.join("\n");
    list.push('\n');
    cpio.file(&format!("{GUEST_DIR}/tests"), 0o644, list.as_bytes());
    Ok(cpio)
}

/// The common part plus one kernel's modules (`/modules/NN-name.ko`,
/// loaded by `/init` in name order), written to `out`.
pub fn write(common: &Cpio, kernel: &KernelFiles, out: &Path) -> anyhow::Result<()> {
    let mut cpio = common.clone();
    for m in &kernel.modules {
        let name = m.file_name().context("module path")?.to_string_lossy();
        cpio.file(&format!("modules/{name}"), 0o644, &fs::read(m)?);
    }
    cpio.dir("modules");
    fs::write(out, cpio.finish()).with_context(|| format!("writing {}", out.display()))
}

/// A copy without debug info: a tenth of the size, in guest memory.
fn strip(bin: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(out.parent().context("stage dir")?)?;
    output(
        Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(out)
            .arg(bin),
    )
    .with_context(|| format!("stripping {}", bin.display()))?;
    Ok(out.to_owned())
}

/// The shared libraries (and the loader) a binary needs, as `ldd` finds
/// them on this host; none for a static binary.
fn shared_libraries(bin: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if String::from_utf8_lossy(&out.stderr).contains("not a dynamic executable")
            || text.contains("statically linked")
        {
            return Ok(Vec::new());
        }
        bail!(
            "ldd {} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_ldd(&text).with_context(|| format!("libraries of {}", bin.display()))
}

fn parse_ldd(text: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.contains("statically linked") {
            continue;
        }
        let path = match line.split_once("=>") {
            Some((name, rest)) => {
                let path = rest.split_whitespace().next().unwrap_or("");
                if path == "not" {
                    bail!("{} is not found on this host", name.trim());
                }
                path
            }
            None => line.split_whitespace().next().unwrap_or(""),
        };
        // linux-vdso.so.1 has no file: the kernel maps it.
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        assert!(parse_ldd("\tlibfoo.so => not found\n").is_err());
    }

    #[test]
    fn newc_entries_are_aligned_and_dirs_come_first() {
        let mut c = Cpio::default();
        c.file("a/b/c", 0o644, b"hello");
        let bytes = c.finish();
        assert!(bytes.len().is_multiple_of(4));
        let text = String::from_utf8_lossy(&bytes);
        let (a, ab, abc) = (
            text.find("a\0").unwrap(),
            text.find("a/b\0").unwrap(),
            text.find("a/b/c\0").unwrap(),
        );
        assert!(a < ab && ab < abc);
        assert!(text.starts_with("070701"));
        assert!(text.contains("TRAILER!!!"));
    }
}
