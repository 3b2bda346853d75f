//! `cargo xtask vm-test`: the privileged integration tests that need no
//! Docker, run inside VMs booting Debian's 5.10, 6.1 and 6.12 kernels
//! under each cgroup layout. A test that fails, panics, hangs or leaves no
//! result fails its cell; a kernel that cannot be fetched fails its cells
//! with the reason. The last run's table lands in `target/vm/matrix.md`,
//! and a whole-matrix run's in `docs/vm-matrix.md`.
mod console;
mod initramfs;
mod kernel;
mod matrix;
mod modules;
mod qemu;

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

pub use kernel::Kernel;

use crate::{
    bootstrap::{self, Toolchain},
    cargo_build::profile_dir,
    cmd::{check, on_path, say},
    docker::ensure_packages,
    workspace_root,
};
use console::Outcome;
pub use matrix::{GROUPS, MATRIX};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Layout {
    /// cgroup v1 controllers only, no cgroup2 mount.
    V1,
    /// cgroup2 only, every controller enabled for the root's children.
    V2,
    /// v1 controllers plus cgroup2 at /sys/fs/cgroup/unified.
    Hybrid,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::V1 => "v1",
            Layout::V2 => "v2",
            Layout::Hybrid => "hybrid",
        }
    }
}

/// The kernels a run boots: one by its name, or `all`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernels(pub Vec<Kernel>);

impl std::str::FromStr for Kernels {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "all" {
            return Ok(Self(Kernel::ALL.to_vec()));
        }
        <Kernel as clap::ValueEnum>::from_str(s, false)
            .map(|k| Self(vec![k]))
            .map_err(|_| {
                let names: Vec<&str> = Kernel::ALL.iter().map(|k| k.name()).collect();
                format!("unknown kernel {s:?}: one of {} or all", names.join(", "))
            })
    }
}

#[derive(clap::Args, Clone, Debug)]
pub struct VmArgs {
    /// The kernel to boot; `all` runs the whole matrix.
    #[arg(long, default_value = "all")]
    pub kernel: Kernels,
    /// One cgroup layout for every chosen kernel (default: the matrix's
    /// layouts of each kernel).
    #[arg(long, value_enum)]
    pub layout: Option<Layout>,
    /// Only this test (exact name; repeatable). Default: every VM test.
    #[arg(long = "test")]
    pub tests: Vec<String>,
    /// VMs run at once.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Seconds one VM may take, boot to power-off.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

impl Default for VmArgs {
    fn default() -> Self {
        Self {
            kernel: Kernels(Kernel::ALL.to_vec()),
            layout: None,
            tests: Vec::new(),
            jobs: 2,
            timeout: 300,
        }
    }
}

/// One VM's run.
pub struct Cell {
    pub kernel: Kernel,
    pub layout: Layout,
    /// `uname -r` in the guest, else the cached kernel's.
    pub release: Option<String>,
    pub outcomes: Vec<(String, Outcome)>,
    pub elapsed: Duration,
    /// How long each test took, as the console showed it.
    pub test_times: BTreeMap<String, Duration>,
    /// Why the whole cell failed, if it did apart from its tests.
    pub problem: Option<String>,
}

impl Cell {
    pub fn passed(&self) -> bool {
        self.problem.is_none() && self.outcomes.iter().all(|(_, o)| o.passed())
    }

    /// Failed tests grouped by reason (one load failure fails them all).
    pub fn failures(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, o) in &self.outcomes {
            if let Outcome::Failed(why) = o {
                by_reason.entry(why).or_default().push(name);
            }
        }
        by_reason
    }

    pub fn label(&self) -> String {
        format!("{} {}", self.kernel.name(), self.layout.name())
    }
}

fn plan(args: &VmArgs) -> Vec<(Kernel, Layout)> {
    let mut cells = Vec::new();
    for &k in &args.kernel.0 {
        match args.layout {
            Some(l) => cells.push((k, l)),
            None => cells.extend(MATRIX.iter().filter(|(mk, _)| *mk == k)),
        }
    }
    cells
}

pub fn run(args: &VmArgs) -> anyhow::Result<()> {
    let tc = bootstrap::run()?;
    run_with(&tc, args)
}

/// The matrix with an already bootstrapped toolchain (`cargo xtask test`).
pub fn run_with(tc: &Toolchain, args: &VmArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let tests: Vec<String> = if args.tests.is_empty() {
        GROUPS
            .iter()
            .flat_map(|(_, t)| t.iter().map(|s| s.to_string()))
            .collect()
    } else {
        args.tests.clone()
    };
    let cells = plan(args);
    ensure_tools()?;
    let payload = build(tc, tests)?;
    let vm = workspace_root().join("target/vm");
    for d in ["logs", "disks", "stage"] {
        fs::create_dir_all(vm.join(d))?;
    }
    let common = initramfs::common(&payload, &vm.join("stage"))?;
    let mut kernels: BTreeMap<Kernel, Result<(kernel::KernelFiles, PathBuf), String>> =
        BTreeMap::new();
    for &(k, _) in &cells {
        if kernels.contains_key(&k) {
            continue;
        }
        let ready = kernel::fetch(k).and_then(|files| {
            let initrd = vm.join(format!("initrd-{}.cpio", k.name()));
            initramfs::write(&common, &files, &initrd)?;
            Ok((files, initrd))
        });
        kernels.insert(k, ready.map_err(|e| format!("{e:#}")));
    }
    say(&format!(
        "booting {} VM(s), {} at a time, {} tests each (logs: {})",
        cells.len(),
        args.jobs.max(1),
        payload.test_names.len(),
        vm.join("logs").display()
    ));
    let names: Vec<&str> = payload.test_names.iter().map(String::as_str).collect();
    // Popped from the end: reversed, so cells start in the matrix's order.
    let queue = Mutex::new(cells.iter().copied().enumerate().rev().collect::<Vec<_>>());
    let done: Mutex<Vec<(usize, Cell)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..args.jobs.max(1) {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    let Some((i, (k, l))) = next else { break };
                    let cell = run_cell(k, l, &kernels[&k], &names, args, &vm);
                    say(&summary_line(&cell));
                    done.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((i, cell));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_by_key(|(i, _)| *i);
    let cells: Vec<Cell> = done.into_iter().map(|(_, c)| c).collect();
    let table = matrix::markdown(&cells, GROUPS, started.elapsed());
    let out = vm.join("matrix.md");
    fs::write(&out, &table).with_context(|| format!("writing {}", out.display()))?;
    // A whole-matrix run is the one docs/testing.md shows.
    if args.layout.is_none() && args.tests.is_empty() && args.kernel.0 == Kernel::ALL {
        let doc = workspace_root().join("docs/vm-matrix.md");
        let text = format!(
            "# The VM matrix's last run\n\nWritten by `cargo xtask vm-test` (and `cargo xtask test`); \
             see [testing.md](testing.md#the-vm-matrix) for what each cell proves.\n\n{table}"
        );
        fs::write(&doc, text).with_context(|| format!("writing {}", doc.display()))?;
    }
    eprintln!("\n{table}");
    let failed: Vec<String> = cells
        .iter()
        .filter(|c| !c.passed())
        .map(Cell::label)
        .collect();
    say(&format!(
        "VM matrix: {} of {} cells passed in {:.0} s (table: {})",
        cells.len() - failed.len(),
        cells.len(),
        started.elapsed().as_secs_f64(),
        out.display()
    ));
    if !failed.is_empty() {
        bail!("VM cells failed: {}", failed.join(", "));
    }
    Ok(())
}

fn summary_line(c: &Cell) -> String {
    let passed = c.outcomes.iter().filter(|(_, o)| o.passed()).count();
    let mut line = format!(
        "vm {}: {passed}/{} passed in {:.0} s",
        c.label(),
        c.outcomes.len(),
        c.elapsed.as_secs_f64()
    );
    if let Some(p) = &c.problem {
        line.push_str(&format!("; {p}"));
    }
    let mut slowest: Vec<(&String, &Duration)> = c.test_times.iter().collect();
    slowest.sort_by(|a, b| b.1.cmp(a.1));
    let slowest: Vec<String> = slowest
        .iter()
        .take(3)
        .map(|(n, t)| format!("{n} {:.0} s", t.as_secs_f64()))
        .collect();
    if !slowest.is_empty() {
        line.push_str(&format!(" (slowest: {})", slowest.join(", ")));
    }
    for (why, names) in c.failures() {
        match names[..] {
            [name] => line.push_str(&format!("\n    {name}: {why}")),
            _ => line.push_str(&format!("\n    {} tests: {why}", names.len())),
        }
    }
    line
}

fn run_cell(
    kernel: Kernel,
    layout: Layout,
    ready: &Result<(kernel::KernelFiles, PathBuf), String>,
    tests: &[&str],
    args: &VmArgs,
    vm: &Path,
) -> Cell {
    let started = Instant::now();
    let mut cell = Cell {
        kernel,
        layout,
        release: None,
        outcomes: Vec::new(),
        elapsed: Duration::ZERO,
        test_times: BTreeMap::new(),
        problem: None,
    };
    let fail_all = |cell: &mut Cell, why: String| {
        cell.outcomes = tests
            .iter()
            .map(|t| (t.to_string(), Outcome::Failed(format!("not run: {why}"))))
            .collect();
        cell.problem = Some(why);
        cell.elapsed = started.elapsed();
    };
    let (files, initrd) = match ready {
        Ok(r) => r,
        Err(e) => {
            fail_all(
                &mut cell,
                format!("kernel {} not fetched: {e}", kernel.name()),
            );
            return cell;
        }
    };
    cell.release = Some(files.release.clone());
    let label = format!("{}-{}", kernel.name(), layout.name());
    let disk = vm.join("disks").join(format!("{label}.img"));
    let result = qemu::make_disk(&disk, 256).and_then(|()| {
        qemu::boot(&qemu::Boot {
            vmlinuz: files.vmlinuz.clone(),
            initrd: initrd.clone(),
            disk: disk.clone(),
            append: format!("dsh.layout={}", layout.name()),
            cpus: 2,
            memory_mib: 1024,
            timeout: Duration::from_secs(args.timeout),
            log: vm.join("logs").join(format!("{label}.log")),
        })
    });
    let _ = fs::remove_file(&disk);
    let run = match result {
        Ok(r) => r,
        Err(e) => {
            fail_all(&mut cell, format!("{e:#}"));
            return cell;
        }
    };
    let console = console::parse(&run.console);
    cell.test_times = console::test_times(&run.lines);
    cell.outcomes = console.outcomes(tests, run.timed_out);
    cell.release = console.kernel.clone().or(cell.release);
    cell.problem = if run.timed_out {
        Some(format!("timed out after {} s", args.timeout))
    } else if let Some(p) = console.kernel_panic {
        Some(p)
    } else if !console.done {
        Some("the VM stopped before /init finished".to_owned())
    } else if console.tests_exit != Some(0) && cell.outcomes.iter().all(|(_, o)| o.passed()) {
        Some(format!(
            "the test binary exited with {:?} though every test passed",
            console.tests_exit
        ))
    } else {
        None
    };
    cell.elapsed = run.elapsed;
    cell
}

/// qemu, busybox, mkfs.ext4 and xz, from Debian's packages if missing.
fn ensure_tools() -> anyhow::Result<()> {
    let mut missing = Vec::new();
    if !on_path("qemu-system-x86_64") {
        missing.push("qemu-system-x86");
    }
    if !Path::new("/bin/busybox").exists() {
        missing.push("busybox-static");
    }
    if !on_path("mkfs.ext4") && !Path::new("/usr/sbin/mkfs.ext4").exists() {
        missing.push("e2fsprogs");
    }
    if !on_path("xz") {
        missing.push("xz-utils");
    }
    if !missing.is_empty() {
        ensure_packages(&missing)?;
    }
    Ok(())
}

/// Builds dsh, the workload and the integration test binary (dev profile,
/// as the host's tests use them).
fn build(tc: &Toolchain, test_names: Vec<String>) -> anyhow::Result<initramfs::Payload> {
    say("building dsh, dsh-workload and the integration tests for the VMs");
    // The same two builds as the host's tests (`xtask test`): one package
    // at a time, so features unify the same way and nothing is compiled
    // again. Building the integration tests builds dsh-workload too.
    check(
        tc.cargo()
            .args(["build", "--package", "dsh-userspace", "--bin", "dsh"]),
    )?;
    let out = tc
        .cargo()
        .args([
            "test",
            "--package",
            "dsh-tests",
            "--test",
            "integration",
            "--no-run",
            "--message-format",
            "json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("building the integration tests")?;
    if !out.status.success() {
        bail!("building the integration tests failed");
    }
    let tests = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "integration")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo named no integration test executable")?;
    let dir = profile_dir(false);
    Ok(initramfs::Payload {
        tests,
        dsh: dir.join("dsh"),
        workload: dir.join("dsh-workload"),
        test_names,
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use super::{Kernel, Kernels};

    #[test]
    fn kernels_parse_a_name_or_all() {
        assert_eq!(Kernels::from_str("6.1"), Ok(Kernels(vec![Kernel::V6_1])));
        assert_eq!(Kernels::from_str("all"), Ok(Kernels(Kernel::ALL.to_vec())));
        let err = Kernels::from_str("4.19").unwrap_err();
        assert!(err.contains("5.10, 6.1, 6.12 or all"), "{err}");
    }
}
