//! Test kit shared by the integration tests and the benchmarks: cgroups
//! made for one test and the workload binary that runs inside them.
use std::{
    ffi::{CString, OsStr, OsString},
    fs,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::OnceLock,
    time::Duration,
};

use dsh::cgroup::{
    CgroupId,
    layout::{CgroupLayout, cgroup_id},
};

/// Whether tracefs is mounted anywhere (dsh must not need it).
pub fn tracefs_mounted() -> bool {
    procfs::mounts()
        .unwrap_or_default()
        .iter()
        .any(|m| m.fs_vfstype == "tracefs")
}

/// Whether a file system is mounted on `path` itself.
pub fn mounted_at(path: &Path) -> bool {
    procfs::mounts()
        .unwrap_or_default()
        .iter()
        .any(|m| Path::new(&m.fs_file) == path)
}

/// A tmpfs of a given size on a fresh directory (a small disk to fill);
/// unmounted and removed on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn new(tag: &str, size: &str) -> Tmpfs {
        let dir = std::env::temp_dir().join(format!("dsh-it-{tag}-{}", std::process::id()));
        // Left mounted by an earlier run that died (pids are reused). Only
        // then: umount of a plain path prints an error for nothing.
        if mounted_at(&dir) {
            let _ = Command::new("umount").arg("-l").arg(&dir).status();
        }
        fs::create_dir_all(&dir).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount");
        assert!(ok.success(), "mounting a tmpfs on {}", dir.display());
        Tmpfs(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("remount");
        assert!(ok.success(), "resizing the tmpfs on {}", self.0.display());
    }

    /// Takes every free byte with a file.
    pub fn fill(&self) {
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=4k"])
            .arg(format!("of={}", self.0.join("filler").display()))
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the agent under test may still hold its journal open.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = fs::remove_dir(&self.0);
    }
}

/// tracefs mounted for bpftrace (it attaches classic tracepoints through
/// tracefs, which dsh itself never needs) while this lives: unmounted on
/// drop when it was mounted here.
pub struct TracefsForBpftrace {
    mounted_here: bool,
}

impl TracefsForBpftrace {
    pub fn mount(with_bpftrace: bool) -> Self {
        let mounted_here = with_bpftrace && !tracefs_mounted();
        if mounted_here {
            let ok = std::process::Command::new("mount")
                .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
                .status();
            assert!(
                ok.is_ok_and(|s| s.success()),
                "mounting tracefs for bpftrace failed"
            );
        }
        Self { mounted_here }
    }
}

impl Drop for TracefsForBpftrace {
    fn drop(&mut self) {
        if self.mounted_here {
            let _ = std::process::Command::new("umount")
                .arg("/sys/kernel/tracing")
                .status();
        }
    }
}

/// The `dsh-workload` binary: next to the running executable (or one
/// directory up, for test binaries in `deps/`), or `$DSH_WORKLOAD`.
pub fn workload() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Ok(p) = std::env::var("DSH_WORKLOAD") {
            return p;
        }
        let exe = std::env::current_exe().expect("current exe");
        for dir in exe.ancestors().skip(1).take(2) {
            let p = dir.join("dsh-workload");
            if p.exists() {
                return p.to_string_lossy().into_owned();
            }
        }
        panic!(
            "dsh-workload not found near {}; build the dsh-tests package",
            exe.display()
        )
    })
}

/// A cgroup made for one test, in the attribution hierarchy and in every v1
/// hierarchy (as container runtimes do), removed on drop even if the test fails.
pub struct TestCgroup {
    /// The directory name (lossy when it is not UTF-8).
    pub name: String,
    os_name: OsString,
    /// The directory in the hierarchy events are attributed to.
    pub dir: PathBuf,
    dirs: Vec<PathBuf>,
    layout: CgroupLayout,
}

impl TestCgroup {
    pub fn new(tag: &str) -> Self {
        Self::named(OsStr::new(&format!(
            "dsh-test-{tag}-{}",
            std::process::id()
        )))
    }

    /// A cgroup of exactly this name: any bytes but '/', NUL and newline
    /// (what a container may choose under cgroup delegation).
    pub fn named(os_name: &OsStr) -> Self {
        let layout = CgroupLayout::detect().expect("reading mounts");
        let name = os_name.to_string_lossy().into_owned();
        let root = layout
            .attribution_root()
            .expect("a cgroup hierarchy")
            .to_owned();
        let mut roots: Vec<PathBuf> = vec![root.clone()];
        for (controller, mount) in &layout.v1 {
            if !roots.contains(mount) && !controller.starts_with("name=") {
                roots.push(mount.clone());
            }
        }
        let mut dirs = Vec::new();
        for r in roots {
            let d = r.join(os_name);
            match fs::create_dir(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => panic!("mkdir {}: {e}", d.display()),
            }
            // A v1 cpuset cgroup takes no task (ENOSPC) until it has cpus
            // and mems; inherit the parent's, as container runtimes do.
            for knob in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = fs::read_to_string(r.join(knob)) {
                    let _ = fs::write(d.join(knob), v.trim());
                }
            }
            dirs.push(d);
        }
        Self {
            dir: root.join(os_name),
            name,
            os_name: os_name.to_owned(),
            dirs,
            layout,
        }
    }

    /// Removes (while still empty) its directories in every v1 hierarchy
    /// but those of `keep`: a cgroup present in some hierarchies only, as
    /// a systemd unit with memory accounting and no CPU accounting has it.
    /// Returns whether any was removed (none on a v2-only host).
    pub fn only_in_v1(&mut self, keep: &[&str]) -> bool {
        let kept: Vec<PathBuf> = keep
            .iter()
            .filter_map(|c| self.layout.v1.get(*c))
            .map(|m| m.join(&self.os_name))
            .collect();
        let before = self.dirs.len();
        let dir = self.dir.clone();
        self.dirs.retain(|d| {
            if *d == dir || kept.contains(d) {
                return true;
            }
            fs::remove_dir(d).unwrap_or_else(|e| panic!("rmdir {}: {e}", d.display()));
            false
        });
        self.dirs.len() < before
    }

    /// The id events carry for tasks in this cgroup.
    pub fn id(&self) -> CgroupId {
        cgroup_id(&self.dir).expect("stat test cgroup")
    }

    /// The id block I/O carries when attributed by the request's blkcg.
    pub fn blkcg_id(&self) -> CgroupId {
        let root = self.layout.blkcg_root().expect("a blkcg hierarchy");
        cgroup_id(&root.join(&self.os_name)).expect("stat blkcg cgroup")
    }

    /// Caps memory (v1 memory controller, or cgroup2's memory.max).
    pub fn set_memory_limit(&self, bytes: u64) {
        let file = match self.layout.v1.get("memory") {
            Some(m) => m.join(&self.os_name).join("memory.limit_in_bytes"),
            None => self.dir.join("memory.max"),
        };
        fs::write(&file, bytes.to_string())
            .unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    }

    /// Caps the number of tasks (v1 pids controller, or cgroup2's pids.max).
    pub fn set_pids_limit(&self, n: u64) {
        let file = match self.layout.v1.get("pids") {
            Some(m) => m.join(&self.os_name).join("pids.max"),
            None => self.dir.join("pids.max"),
        };
        fs::write(&file, n.to_string()).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    }

    /// A workload command whose process joins this cgroup before it execs.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(Path::new(workload()), args)
    }

    /// `program args...`, joining this cgroup before it execs.
    pub fn command_of(&self, program: &Path, args: &[&str]) -> Command {
        let procs: Vec<CString> = self
            .dirs
            .iter()
            .map(|d| {
                CString::new(d.join("cgroup.procs").into_os_string().into_encoded_bytes())
                    .expect("path")
            })
            .collect();
        let mut cmd = Command::new(program);
        cmd.args(args);
        // SAFETY: between fork and exec only async-signal-safe calls (open,
        // write, close) on data prepared before the fork; no allocation.
        unsafe {
            cmd.pre_exec(move || {
                for p in &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
                    libc::close(fd);
                    if !ok {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            })
        };
        cmd
    }

    /// Runs a workload in this cgroup to completion.
    pub fn run(&self, args: &[&str]) -> ExitStatus {
        self.command(args)
            .stdin(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
    }

    fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for d in &self.dirs {
            for _ in 0..50 {
                if fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Plain cgroups each holding a sleeping process, named `{tag}{i}` (as
/// `TestCgroup::new`), the many idle containers of the scale tests and
/// benchmarks. On drop the processes are killed and reaped, then each
/// `TestCgroup`'s own drop removes its directories.
pub struct Sleepers {
    tag: String,
    held: Vec<(TestCgroup, Child)>,
}

impl Sleepers {
    /// `n` cgroups named `{tag}0` to `{tag}{n - 1}`.
    pub fn new(tag: &str, n: usize) -> Sleepers {
        let mut sleepers = Sleepers {
            tag: tag.to_owned(),
            held: Vec::with_capacity(n),
        };
        sleepers.grow(n);
        sleepers
    }

    /// Adds cgroups until there are `n`.
    pub fn grow(&mut self, n: usize) {
        while self.held.len() < n {
            let cg = TestCgroup::new(&format!("{}{}", self.tag, self.held.len()));
            let child = cg
                .command_of(Path::new("/bin/sleep"), &["3600"])
                .stdin(Stdio::null())
                .spawn()
                .expect("sleep in a test cgroup");
            self.held.push((cg, child));
        }
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        for (_, child) in &mut self.held {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
