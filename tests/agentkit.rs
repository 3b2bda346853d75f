//! Driving the real `dsh` binary: an agent process per test with its own
//! state dir, the CLI against it, and Docker containers that clean up.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::Value;

/// A binary next to the test executable (target/debug), or from `env`.
fn sibling(name: &str, env: &str) -> &'static str {
    static CACHE: OnceLock<std::sync::Mutex<Vec<(String, &'static str)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, p)) = cache.iter().find(|(n, _)| n == name) {
        return p;
    }
    let path = std::env::var(env).ok().unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("current exe");
        exe.ancestors()
            .skip(1)
            .take(2)
            .map(|d| d.join(name))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{name} not found near {}; build it first", exe.display()))
            .to_string_lossy()
            .into_owned()
    });
    let leaked: &'static str = Box::leak(path.into_boxed_str());
    cache.push((name.to_owned(), leaked));
    leaked
}

pub fn dsh_bin() -> &'static str {
    sibling("dsh", "DSH_BIN")
}

pub fn xtask_bin() -> &'static str {
    sibling("xtask", "DSH_XTASK")
}

/// A copy of `dsh` that another user can execute, wherever the clone lives.
///
/// The build's own binary sits under the clone's `target/`, which another
/// user may not be able to traverse (`mktemp -d` makes 0700 directories;
/// so is `/root`): running it as nobody then fails with EACCES before dsh
/// says anything. The copy lives in a fresh 0755 directory in the first
/// temporary directory every user can reach, removed on drop.
pub struct OthersCopy {
    dir: PathBuf,
    pub path: PathBuf,
}

impl OthersCopy {
    pub fn new() -> OthersCopy {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        let everyone_can_enter = |d: &Path| {
            d.ancestors()
                .all(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
        };
        let base = [std::env::temp_dir(), PathBuf::from("/tmp")]
            .into_iter()
            .find(|d| everyone_can_enter(d))
            .expect("a temporary directory every user can enter ($TMPDIR or /tmp)");
        let dir = base.join(format!("dsh-it-bin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&dir)
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        // The umask may have taken bits from the mode: set it outright.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = dir.join("dsh");
        std::fs::copy(dsh_bin(), &path)
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", dsh_bin(), path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        OthersCopy { dir, path }
    }
}

impl Drop for OthersCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `f` until it returns Some, or panics with `what` after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub struct Agent {
    child: Option<Child>,
    pub state_dir: PathBuf,
    args: Vec<String>,
    /// The agent's stderr (its log), appended across restarts.
    pub log_path: PathBuf,
    /// RUST_LOG for the agent.
    log_level: String,
    /// A command the agent runs under (`prlimit --nofile=...`), if any.
    wrapper: Vec<String>,
}

impl Agent {
    /// A fresh state dir for `tag` (emptied) and an agent on it.
    pub fn fresh(tag: &str, args: &[&str]) -> Agent {
        Self::fresh_logging(tag, args, "info")
    }

    /// A fresh agent logging at `level` (RUST_LOG) to its own file.
    pub fn fresh_logging(tag: &str, args: &[&str], level: &str) -> Agent {
        let state_dir = std::env::temp_dir().join(format!("dsh-it-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        let log_path =
            std::env::temp_dir().join(format!("dsh-it-agent-{tag}-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&log_path);
        Self::launch(&state_dir, args, log_path, level)
    }

    /// A fresh agent started through `wrapper` (e.g. `prlimit
    /// --nofile=1024:20000`), which execs it.
    pub fn fresh_under(tag: &str, wrapper: &[&str], args: &[&str]) -> Agent {
        let state_dir = std::env::temp_dir().join(format!("dsh-it-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        let log_path =
            std::env::temp_dir().join(format!("dsh-it-agent-{tag}-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&log_path);
        let mut agent = Agent {
            child: None,
            state_dir,
            args: args.iter().map(|s| s.to_string()).collect(),
            log_path,
            log_level: "info".to_owned(),
            wrapper: wrapper.iter().map(|s| s.to_string()).collect(),
        };
        agent.spawn();
        agent
    }

    /// An agent on an existing state dir (a restart).
    pub fn start(state_dir: &Path, args: &[&str]) -> Agent {
        let log_path =
            std::env::temp_dir().join(format!("dsh-it-agent-{}.log", std::process::id()));
        Self::launch(state_dir, args, log_path, "info")
    }

    fn launch(state_dir: &Path, args: &[&str], log_path: PathBuf, level: &str) -> Agent {
        let mut agent = Agent {
            child: None,
            state_dir: state_dir.to_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
            log_path,
            log_level: level.to_owned(),
            wrapper: Vec::new(),
        };
        agent.spawn();
        agent
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("agent log");
        let log_start = log.metadata().map_or(0, |m| m.len());
        // Tests sample every 500 ms unless they ask for another interval.
        let interval: &[&str] = if self.args.iter().any(|a| a == "--interval") {
            &[]
        } else {
            &["--interval", "500ms"]
        };
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(dsh_bin());
                c
            }
            None => Command::new(dsh_bin()),
        };
        let child = cmd
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("agent")
            .args(interval)
            .args(&self.args)
            .env("RUST_LOG", &self.log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning dsh agent");
        self.child = Some(child);
        wait_until(Duration::from_secs(30), "the agent's socket", || {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                // Its own words, not only a status: in a VM the log file
                // is out of reach once the test has failed.
                let text = std::fs::read(&self.log_path).unwrap_or_default();
                let said = String::from_utf8_lossy(text.get(log_start as usize..).unwrap_or(&[]));
                panic!("dsh agent exited at start-up ({status}): {}", said.trim());
            }
            self.dsh(&["status", "--json"])
                .status
                .success()
                .then_some(())
        });
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Runs the CLI against this agent.
    pub fn dsh(&self, args: &[&str]) -> Output {
        Command::new(dsh_bin())
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(args)
            .output()
            .expect("running dsh")
    }

    /// The CLI's stdout; panics (with stderr) if it failed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.dsh(args);
        assert!(
            out.status.success(),
            "dsh {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `dsh ps -a --json`.
    pub fn rows(&self) -> Vec<Value> {
        serde_json::from_str(&self.ok(&["ps", "-a", "--json"])).expect("ps --json is JSON")
    }

    pub fn row(&self, id: &str) -> Option<Value> {
        self.rows().into_iter().find(|r| r["id"] == id)
    }

    /// `dsh log -a [NAME] --json`, parsed.
    pub fn log_json(&self, name: Option<&str>) -> Vec<Value> {
        self.try_log_json(name)
            .unwrap_or_else(|e| panic!("dsh log {name:?} failed: {e}"))
    }

    /// Like `log_json`, but a failure (e.g. a name not known yet) is an Err.
    pub fn try_log_json(&self, name: Option<&str>) -> Result<Vec<Value>, String> {
        let mut args = vec!["log", "-a", "--json"];
        args.extend(name);
        let out = self.dsh(&args);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("log --json lines are JSON"))
            .collect())
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status --json is JSON")
    }

    /// SIGINT, and the agent must exit 0 (programs detached, journal flushed).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
            let status = c.wait().expect("waiting for the agent");
            assert!(status.success(), "dsh agent exited with {status} on SIGINT");
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the agent again on its state dir, after `stop` or `kill9`.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the agent is still running");
        self.spawn();
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.state_dir);
        // A failing test keeps the agent's log for whoever reads its
        // report; a passing one leaves nothing behind in the temp dir.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("running docker");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub const IMAGE: &str = "dsh-test/busybox:latest";

/// The `dsh ps` header as the product contract prints it, byte for byte.
pub const CONTRACT_HEADER: &str = "id                       endpoint           state               rtime  btime  cpu(u/l)  mem(u/l)   restart  health";

/// A Docker container removed (with `docker rm -f`) on drop.
pub struct Container {
    pub name: String,
    pub id: String,
}

impl Container {
    /// `docker run -d --name <unique> OPTS... IMAGE CMD...`
    pub fn run(tag: &str, opts: &[&str], cmd: &[&str]) -> Container {
        Self::run_image(tag, IMAGE, opts, cmd)
    }

    /// `docker run -d --name <unique> OPTS... IMAGE CMD...` of another image.
    pub fn run_image(tag: &str, image: &str, opts: &[&str], cmd: &[&str]) -> Container {
        let name = format!("dsh-it-{tag}-{}", std::process::id());
        let _ = Command::new("docker").args(["rm", "-f", &name]).output();
        let mut args = vec!["run", "-d", "--name", &name];
        args.extend(opts);
        args.push(image);
        args.extend(cmd);
        let id = docker(&args);
        Container { name, id }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

/// Bind mounts that let the host-built `dsh-workload` run in the busybox
/// image (it needs the host's libc and loader).
pub fn workload_mounts() -> Vec<String> {
    vec![
        "-v".into(),
        "/usr/lib:/lib:ro".into(),
        "-v".into(),
        "/usr/lib64:/lib64:ro".into(),
        "-v".into(),
        format!("{}:/dsh-workload:ro", dsh_testkit::workload()),
    ]
}

/// A tmux server of its own, killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn new(tag: &str) -> Tmux {
        Tmux {
            socket: format!("dsh-it-{tag}-{}", std::process::id()),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running tmux (install it: apt-get install tmux)")
    }

    /// Starts session `it`, 200x40, running `line` in a shell.
    pub fn start(&self, line: &str) {
        self.start_sized(line, 200, 40);
    }

    /// Starts session `it`, `width`x`height`, running `line` in a shell.
    pub fn start_sized(&self, line: &str, width: u16, height: u16) {
        let (w, h) = (width.to_string(), height.to_string());
        let out = self.cmd(&["new-session", "-d", "-s", "it", "-x", &w, "-y", &h, line]);
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn pane(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "it"]).stdout).into_owned()
    }

    /// The pane with its colours and attributes as escape sequences.
    pub fn pane_escaped(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-e", "-t", "it"]).stdout)
            .into_owned()
    }

    /// A tmux format of the pane, e.g. `#{alternate_on}`.
    pub fn display(&self, format: &str) -> String {
        let out = self.cmd(&["display-message", "-p", "-t", "it", format]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "it"];
        args.extend(keys);
        self.cmd(&args);
    }

    pub fn alive(&self) -> bool {
        self.cmd(&["has-session", "-t", "it"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// The tests' own containerd and podman API sockets (`cargo xtask
/// runtimes-up` starts both; xtask/src/runtimes.rs names the same paths).
pub const CONTAINERD_SOCKET: &str = "/run/dsh-test/containerd.sock";
pub const PODMAN_SOCKET: &str = "/run/dsh-test/podman.sock";
pub const CONTAINERD_IMAGE: &str = "docker.io/dsh-test/busybox:latest";
pub const PODMAN_IMAGE: &str = "localhost/dsh-test/busybox:latest";

/// The tests' containerd and podman, started once per test run.
pub fn runtimes_up() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        let ok = Command::new(xtask_bin())
            .arg("runtimes-up")
            .status()
            .expect("xtask runtimes-up");
        assert!(ok.success(), "starting the tests' containerd and podman");
    });
}

/// Runs a command; its stdout, or a panic with its stderr.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    run_ok_in(".", program, args)
}

/// [`run_ok`] in another working directory.
pub fn run_ok_in(dir: &str, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `ctr` on the tests' containerd, in the kubelet's namespace.
pub fn ctr(args: &[&str]) -> String {
    let mut all = vec!["--address", CONTAINERD_SOCKET, "-n", "k8s.io"];
    all.extend(args);
    run_ok("ctr", &all)
}

/// A 64-hex id unique to this test run and `n`.
pub fn hex_id(n: u32) -> String {
    format!("{:056x}{:08x}", std::process::id(), n)
}

/// A containerd container made the way the kubelet makes them (labels,
/// cgroup parent), removed on drop.
pub struct KubeContainer {
    pub id: String,
}

impl KubeContainer {
    /// `ctr run -d --cgroup CGROUP --label ... IMAGE ID CMD...`; `container`
    /// None makes a pod sandbox.
    pub fn run(
        id: String,
        cgroup: &str,
        pod: (&str, &str, &str),
        container: Option<&str>,
        opts: &[&str],
        cmd: &[&str],
    ) -> KubeContainer {
        let (ns, name, uid) = pod;
        let labels = [
            format!("io.kubernetes.pod.namespace={ns}"),
            format!("io.kubernetes.pod.name={name}"),
            format!("io.kubernetes.pod.uid={uid}"),
            match container {
                Some(c) => format!("io.kubernetes.container.name={c}"),
                None => "io.cri-containerd.kind=sandbox".to_owned(),
            },
        ];
        let mut args = vec!["run", "-d", "--cgroup", cgroup];
        for l in &labels {
            args.extend(["--label", l.as_str()]);
        }
        args.extend(opts);
        args.extend([CONTAINERD_IMAGE, id.as_str()]);
        args.extend(cmd);
        ctr(&args);
        KubeContainer { id }
    }

    /// Kills the task and removes the container (what the kubelet does
    /// before it starts the container again under a new id).
    pub fn remove(&self) {
        let _ = Command::new("ctr")
            .args(["--address", CONTAINERD_SOCKET, "-n", "k8s.io"])
            .args(["task", "rm", "-f", &self.id])
            .output();
        let _ = Command::new("ctr")
            .args(["--address", CONTAINERD_SOCKET, "-n", "k8s.io"])
            .args(["container", "rm", &self.id])
            .output();
    }
}

impl Drop for KubeContainer {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A podman container (`podman run -d --name <unique>`), removed on drop.
pub struct PodmanContainer {
    pub name: String,
}

impl PodmanContainer {
    pub fn run(tag: &str, opts: &[&str], cmd: &[&str]) -> PodmanContainer {
        let name = format!("dsh-it-{tag}-{}", std::process::id());
        let _ = Command::new("podman").args(["rm", "-f", &name]).output();
        // No systemd here; and podman's default limits exceed this
        // machine's hard ones (`error setting rlimit`).
        let mut args = vec![
            "--cgroup-manager=cgroupfs",
            "run",
            "-d",
            "--name",
            &name,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ];
        args.extend(opts);
        args.push(PODMAN_IMAGE);
        args.extend(cmd);
        // podman's conmon (2.1.6 in Debian 12) writes an `oom` file into the
        // working directory it inherits (containers/conmon#504): not the
        // checkout's.
        run_ok_in("/run/dsh-test", "podman", &args);
        PodmanContainer { name }
    }
}

impl Drop for PodmanContainer {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.name])
            .output();
    }
}

/// The messages of `dsh log -a NAME --json`, once one contains `needle`.
/// A `dsh ps --json` row's health reasons, as text.
pub fn health_reasons(row: &Value) -> Vec<String> {
    row["health_reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn log_msgs_with(agent: &Agent, name: &str, needle: &str) -> Vec<String> {
    wait_until(Duration::from_secs(10), needle, || {
        let msgs: Vec<String> = agent
            .try_log_json(Some(name))
            .ok()?
            .iter()
            .map(|e| e["msg"].as_str().unwrap_or_default().to_owned())
            .collect();
        msgs.iter().any(|m| m.contains(needle)).then_some(msgs)
    })
}

/// Pod-level cgroups (`/kubepods/...`) runc made for test containers,
/// removed on drop from every hierarchy, deepest first (runc removes only
/// the containers' own).
pub struct PodCgroups(pub Vec<String>);

impl Drop for PodCgroups {
    fn drop(&mut self) {
        let Ok(mounts) = std::fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        let roots: Vec<PathBuf> = mounts.flatten().map(|e| e.path()).collect();
        // Their parents too, when empty (never on a host with real pods).
        let mut rels = self.0.clone();
        for r in &self.0 {
            let mut p = std::path::Path::new(r);
            while let Some(parent) = p.parent().filter(|p| p.as_os_str().len() > 1) {
                rels.push(parent.to_string_lossy().into_owned());
                p = parent;
            }
        }
        rels.sort_by_key(|r| std::cmp::Reverse(r.len()));
        rels.dedup();
        for rel in rels {
            for root in roots.iter().chain([&PathBuf::from("/sys/fs/cgroup")]) {
                let _ = std::fs::remove_dir(root.join(rel.trim_start_matches('/')));
            }
        }
    }
}
