//! The manifests in deploy/ run what they say: the systemd unit's ExecStart
//! and the DaemonSet's args start a real agent, confined to the
//! capabilities both grant, with every flag known to `dsh agent --help` and
//! every host path present.
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::{
    agentkit::{dsh_bin, wait_until},
    promkit::curl,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_owned()
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dsh-it-deploy-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// `dsh --help` and `dsh agent --help` together: the flags there are.
fn known_flags() -> String {
    let help = |args: &[&str]| {
        let out = Command::new(dsh_bin())
            .args(args)
            .output()
            .expect("dsh --help");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    help(&["--help"]) + &help(&["agent", "--help"])
}

fn assert_flags_known(args: &[String], what: &str) {
    let help = known_flags();
    for a in args.iter().filter(|a| a.starts_with("--")) {
        let flag = a.split('=').next().unwrap_or(a);
        assert!(
            help.contains(&format!("{flag} ")),
            "{what} uses {flag}, which dsh does not know"
        );
    }
}

/// An agent run as a manifest runs it: these args, only these
/// capabilities (the bounding set: root gets nothing else), no new
/// privileges. SIGTERM on drop if still running.
struct Confined {
    child: Child,
}

impl Confined {
    fn start(caps: &[String], args: &[String], env: &[(String, String)], log: &Path) -> Confined {
        let bounding: Vec<String> = caps.iter().map(|c| format!("+{c}")).collect();
        let child = Command::new("setpriv")
            .arg("--no-new-privs")
            .arg("--bounding-set")
            .arg(format!("-all,{}", bounding.join(",")))
            .arg("--")
            .arg(dsh_bin())
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("agent log"))
            .spawn()
            .expect("setpriv (util-linux)");
        Confined { child }
    }

    /// Waits for the socket; the status once every program is attached.
    fn status(&mut self, state_dir: &Path, log: &Path) -> Value {
        wait_until(Duration::from_secs(30), "the confined agent", || {
            if let Ok(Some(s)) = self.child.try_wait() {
                panic!(
                    "the agent exited ({s}): {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            let out = Command::new(dsh_bin())
                .arg("--state-dir")
                .arg(state_dir)
                .args(["status", "--json"])
                .output()
                .ok()?;
            out.status.success().then_some(())?;
            serde_json::from_slice(&out.stdout).ok()
        })
    }

    /// The manifest's stop: SIGTERM, exit 0 within `timeout`.
    fn stop(mut self, timeout: Duration) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = wait_until(timeout, "the agent to stop on SIGTERM", || {
            self.child.try_wait().ok().flatten()
        });
        assert!(
            status.success(),
            "the agent exited with {status} on SIGTERM"
        );
    }
}

impl Drop for Confined {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running, confined agent's status must show it fully working.
fn assert_working(status: &Value, node: &str) {
    assert_eq!(status["node"], node, "{status}");
    let programs = status["programs"].as_array().expect("programs");
    assert!(
        programs.iter().any(|p| p["attached"] == true),
        "no program attached: {status}"
    );
    let url = format!(
        "http://{}/metrics",
        status["metrics_addr"].as_str().expect("metrics_addr")
    );
    let got = curl(&url, &[]);
    assert_eq!(got.status, 200, "{}", got.body);
    assert!(
        got.body.contains("dsh_bpf_program_runs_total{"),
        "{}",
        got.body
    );
}

/// `[Section]` → key → values (a key may repeat).
fn parse_unit(text: &str) -> Unit {
    let mut out: Unit = HashMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((k, v)) = line.split_once('=') {
            out.entry(section.clone())
                .or_default()
                .entry(k.to_owned())
                .or_default()
                .push(v.to_owned());
        }
    }
    out
}

type Unit = HashMap<String, HashMap<String, Vec<String>>>;

/// CapabilityBoundingSet= as setpriv names them (`bpf`, `sys_admin`).
fn unit_caps(unit: &Unit) -> Vec<String> {
    unit["Service"]["CapabilityBoundingSet"][0]
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_lowercase())
        .collect()
}

#[test]
fn systemd_unit_runs_the_agent_it_describes() {
    let path = repo().join("deploy/systemd/dsh.service");
    let text = std::fs::read_to_string(&path).expect("deploy/systemd/dsh.service");
    let unit = parse_unit(&text);
    let service = &unit["Service"];
    let one = |k: &str| -> &str {
        let v = service.get(k).unwrap_or_else(|| panic!("no {k}="));
        assert_eq!(v.len(), 1, "{k}= given {} times", v.len());
        &v[0]
    };
    assert_eq!(one("Restart"), "on-failure");
    assert!(
        unit["Unit"].contains_key("StartLimitBurst"),
        "a start limit"
    );
    assert_eq!(one("StateDirectory"), "dsh");
    assert_eq!(one("StateDirectoryMode"), "0700");
    // Hardening the agent's work allows (README: systemd).
    for (key, want) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("RestrictNamespaces", "net"),
        ("PrivateIPC", "yes"),
        ("UMask", "0077"),
    ] {
        assert_eq!(one(key), want, "{key}=");
    }
    assert!(one("SystemCallFilter").starts_with('~'), "a deny list");
    // systemd's default soft limit (1,024) runs out at a few dozen containers.
    let nofile: u64 = one("LimitNOFILE").parse().expect("LimitNOFILE= a number");
    assert!(nofile >= 16_384, "LimitNOFILE={nofile}");
    let exec: Vec<String> = one("ExecStart")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        exec[0], "/usr/local/bin/dsh",
        "the path the README installs to"
    );
    assert_flags_known(&exec[1..], "ExecStart");

    // systemd's own check of the unit, with the binary and the man pages
    // its Documentation= names where this build has them.
    let dir = scratch("unit");
    let man = dir.join("man");
    let out = Command::new(dsh_bin())
        .arg("man")
        .arg("--dir")
        .arg(man.join("man1"))
        .output()
        .expect("dsh man");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let local = dir.join("dsh.service");
    std::fs::write(&local, text.replace("/usr/local/bin/dsh", dsh_bin())).expect("unit copy");
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&local)
        .env("MANPATH", &man)
        .output()
        .expect("systemd-analyze (Debian's systemd)");
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );

    // ExecStart as written, with the state dir and the metrics port moved
    // to this test's own (the host's /var/lib/dsh and :9688 are not ours).
    let state = dir.join("state");
    let mut args = exec[1..].to_vec();
    let mut swap = |flag: &str, check: &dyn Fn(&str), new: String| {
        let i = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("ExecStart has no {flag}"));
        check(&args[i + 1]);
        args[i + 1] = new;
    };
    swap(
        "--state-dir",
        &|v| assert_eq!(v, "/var/lib/dsh", "the StateDirectory= path"),
        state.display().to_string(),
    );
    swap(
        "--metrics-addr",
        &|v| assert!(v.starts_with("127.0.0.1:"), "loopback by default: {v}"),
        "127.0.0.1:0".to_owned(),
    );
    let caps = unit_caps(&unit);
    let env: Vec<(String, String)> = service
        .get("Environment")
        .into_iter()
        .flatten()
        .filter_map(|e| e.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let log = dir.join("agent.log");
    let mut agent = Confined::start(&caps, &args, &env, &log);
    let status = agent.status(&state, &log);
    let hostname = hostname();
    assert_working(&status, &hostname);
    agent.stop(Duration::from_secs(
        one("TimeoutStopSec")
            .trim_end_matches('s')
            .parse()
            .expect("seconds"),
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_owned()
}

fn yaml_docs(text: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| {
            let v = serde_yaml_ng::Value::deserialize(doc).expect("valid YAML");
            serde_json::to_value(v).expect("YAML as JSON")
        })
        .collect()
}

/// The DaemonSet of deploy/kubernetes/dsh.yaml.
fn daemonset() -> Value {
    let path = repo().join("deploy/kubernetes/dsh.yaml");
    yaml_docs(&std::fs::read_to_string(&path).expect("deploy/kubernetes/dsh.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

/// Where the tests' containerd and podman listen (`agentkit`).
const RUNTIME_DIR: &str = "/run/dsh-test";

#[test]
fn kubernetes_daemonset_runs_the_agent_it_describes() {
    crate::agentkit::runtimes_up();
    for socket in [
        crate::agentkit::CONTAINERD_SOCKET,
        crate::agentkit::PODMAN_SOCKET,
    ] {
        assert!(socket.starts_with(RUNTIME_DIR), "{socket}");
    }
    let ds = &daemonset();
    let pod = &ds["spec"]["template"]["spec"];
    let meta = &ds["spec"]["template"]["metadata"];
    assert_eq!(pod["hostPID"], true);
    assert_eq!(
        pod["automountServiceAccountToken"], false,
        "no service-account token in the pod"
    );
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "the runtime's syscall filter"
    );
    assert!(
        pod["tolerations"].as_array().is_some_and(|t| !t.is_empty()),
        "tolerations"
    );
    let c = &pod["containers"][0];
    let command = strings(&c["command"]);
    assert_eq!(command, ["/usr/local/bin/dsh"]);
    let env: HashMap<String, &Value> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| (e["name"].as_str().expect("env name").to_owned(), e))
        .collect();
    assert_eq!(
        env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName",
        "the downward API's node name"
    );
    let args = strings(&c["args"]);
    assert_flags_known(&args, "the DaemonSet");
    assert!(
        args.iter().any(|a| a == "--node-name=$(NODE_NAME)"),
        "{args:?}"
    );

    // Mounts: each names a volume; each volume's host path exists here
    // unless the kubelet makes it; only the state dir is writable; no
    // volume is a directory that holds more than one runtime's sockets.
    let volumes: HashMap<&str, (&str, &str)> = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| {
            let host = v["hostPath"]["path"]
                .as_str()
                .expect("hostPath volumes only");
            let kind = v["hostPath"]["type"].as_str().unwrap_or("");
            (v["name"].as_str().expect("volume name"), (host, kind))
        })
        .collect();
    for (name, (host, _)) in &volumes {
        assert!(
            !["/", "/run", "/var/run", "/var", "/var/lib"].contains(host),
            "volume {name} mounts all of {host}"
        );
    }
    let mut mounts: Vec<(String, String)> = Vec::new();
    for m in c["volumeMounts"].as_array().expect("volumeMounts") {
        let (name, at) = (
            m["name"].as_str().unwrap(),
            m["mountPath"].as_str().unwrap(),
        );
        let (host, kind) = volumes
            .get(name)
            .unwrap_or_else(|| panic!("mount {name} has no volume"));
        let writable = m["readOnly"] != true;
        assert_eq!(
            writable,
            at == "/var/lib/dsh",
            "{at}: only the state dir is writable"
        );
        if !writable && *kind != "DirectoryOrCreate" {
            assert!(Path::new(host).exists(), "host path {host} missing");
        }
        // This host's runtimes for the tests listen in their own directory:
        // the containerd and podman volumes are moved there, as the state
        // dir is moved to the test's own.
        let host = match *host {
            "/run/containerd" | "/run/podman" => RUNTIME_DIR,
            h => h,
        };
        mounts.push((at.to_owned(), host.to_string()));
    }
    for fixed in ["/sys/fs/cgroup", "/sys/kernel/btf"] {
        assert!(
            mounts.iter().any(|(at, host)| at == fixed && host == fixed),
            "{fixed} mounted where dsh reads it"
        );
    }

    // The args, with paths seen from the host through the mounts, the
    // state dir and port moved to this test's own, and $(NODE_NAME) as
    // the kubelet expands it.
    let dir = scratch("k8s");
    let state = dir.join("state");
    let mut port = None;
    let host_args: Vec<String> = args
        .iter()
        .map(|a| {
            let Some((flag, value)) = a.split_once('=') else {
                return a.clone();
            };
            let value = match flag {
                "--state-dir" => state.display().to_string(),
                "--node-name" => value.replace("$(NODE_NAME)", "k8s-node-1"),
                "--metrics-addr" => {
                    port = value.rsplit(':').next().map(str::to_owned);
                    "127.0.0.1:0".to_owned()
                }
                _ if value.starts_with('/') => {
                    let (at, host) = mounts
                        .iter()
                        .find(|(at, _)| value.starts_with(&format!("{at}/")))
                        .unwrap_or_else(|| panic!("{a}: not inside a mount"));
                    let on_host = format!("{host}{}", &value[at.len()..]);
                    // A node runs one or two runtimes: the sockets of the
                    // others are absent, and the agent says so.
                    assert!(
                        flag.ends_with("-socket") || Path::new(&on_host).exists(),
                        "{a}: {on_host} missing"
                    );
                    on_host
                }
                _ => value.to_owned(),
            };
            format!("{flag}={value}")
        })
        .collect();
    let port = port.expect("--metrics-addr in the args");
    assert_eq!(c["ports"][0]["containerPort"].to_string(), port);
    assert_eq!(meta["annotations"]["prometheus.io/port"], port.as_str());
    assert_eq!(meta["annotations"]["prometheus.io/scrape"], "true");

    let mut caps: Vec<String> = strings(&c["securityContext"]["capabilities"]["add"])
        .iter()
        .map(|c| c.to_lowercase())
        .collect();
    assert_eq!(
        strings(&c["securityContext"]["capabilities"]["drop"]),
        ["ALL"]
    );
    let unit = parse_unit(
        &std::fs::read_to_string(repo().join("deploy/systemd/dsh.service")).expect("unit"),
    );
    let mut unit_caps = unit_caps(&unit);
    caps.sort();
    unit_caps.sort();
    assert_eq!(caps, unit_caps, "the DaemonSet and the unit grant the same");
    let log = dir.join("agent.log");
    let mut agent = Confined::start(&caps, &host_args, &[], &log);
    let status = agent.status(&state, &log);
    assert_working(&status, "k8s-node-1");
    // The runtime sockets the args name answer through their mounts.
    wait_until(
        Duration::from_secs(20),
        "containerd and podman through their mounts",
        || {
            let out = Command::new(dsh_bin())
                .arg("--state-dir")
                .arg(&state)
                .args(["status", "--json"])
                .output()
                .ok()?;
            let s: Value = serde_json::from_slice(&out.stdout).ok()?;
            let connected = |name: &str| {
                s["runtimes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["name"] == name && r["connected"] == true)
            };
            (connected("containerd") && connected("podman")).then_some(())
        },
    );
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace period");
    agent.stop(Duration::from_secs(grace));
    let _ = std::fs::remove_dir_all(&dir);
}

/// docs/security.md's NetworkPolicy for the metrics port selects the
/// DaemonSet's pods in its namespace and opens the port they serve on,
/// to a selected client only.
#[test]
fn the_documented_network_policy_fits_the_daemonset() {
    let readme =
        std::fs::read_to_string(repo().join("docs/security.md")).expect("docs/security.md");
    let policy = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split_once("```").map(|(yaml, _)| yaml))
        .find(|yaml| yaml.contains("kind: NetworkPolicy"))
        .expect("a NetworkPolicy example in docs/security.md");
    let policy = &yaml_docs(policy)[0];
    let ds = &daemonset();
    assert_eq!(policy["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(policy["metadata"]["namespace"], ds["metadata"]["namespace"]);
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"], ds["spec"]["template"]["metadata"]["labels"],
        "selects the agent's pods"
    );
    assert_eq!(strings(&policy["spec"]["policyTypes"]), ["Ingress"]);
    let rules = policy["spec"]["ingress"].as_array().expect("ingress rules");
    assert_eq!(rules.len(), 1, "{policy}");
    let port = &ds["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"];
    assert_eq!(rules[0]["ports"][0]["port"], *port, "the metrics port");
    let from = rules[0]["from"].as_array().expect("from");
    assert!(
        !from.is_empty()
            && from
                .iter()
                .all(|f| f["podSelector"].is_object() || f["ipBlock"].is_object()),
        "only selected clients: {policy}"
    );
}

/// The DaemonSet asks for the runtime's default seccomp profile: the agent
/// loads and serves under it. Docker's default profile (what
/// `RuntimeDefault` is on a Docker or containerd node; both come from
/// moby's) with the DaemonSet's capabilities, the host's root mounted
/// read-only and the agent run from it with chroot (the filter stays).
/// Docker 20.10 knows no CAP_BPF or CAP_PERFMON: CAP_SYS_ADMIN, which the
/// DaemonSet also grants, covers bpf(2) and perf_event_open(2) in the
/// profile as in the kernel.
#[test]
fn the_agent_runs_under_the_runtimes_default_seccomp_profile() {
    let ds = &daemonset();
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let caps = strings(&pod["containers"][0]["securityContext"]["capabilities"]["add"]);
    // The host's own bounding set lacks CAP_SYS_RESOURCE (platform notes):
    // Docker cannot grant it here, and the agent runs without it.
    let granted: Vec<&str> = caps
        .iter()
        .map(String::as_str)
        .filter(|c| ["SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"].contains(c))
        .collect();
    assert!(granted.contains(&"SYS_ADMIN"), "{caps:?}");
    let dir = scratch("seccomp");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    /// Removes the container however the test ends.
    struct Removed(String);
    impl Drop for Removed {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        }
    }
    let name = format!("dsh-it-seccomp-{}", std::process::id());
    let _ = Command::new("docker").args(["rm", "-f", &name]).output();
    let _removed = Removed(name.clone());
    let mut run = Command::new("docker");
    // The host's network only so that this test reaches the metrics port
    // on loopback; the filter does not depend on it.
    run.args([
        "run",
        "--rm",
        "--name",
        &name,
        "--pid=host",
        "--network=host",
    ])
    .args(["--security-opt", "no-new-privileges", "--cap-drop", "ALL"])
    .args(["--cap-add", "SYS_CHROOT"]);
    for c in &granted {
        run.args(["--cap-add", c]);
    }
    let log = dir.join("agent.log");
    let mut child = run
        .arg("-v")
        .arg("/:/host:ro")
        .arg("-v")
        .arg(format!("{}:/host{}", dir.display(), dir.display()))
        .args([
            "dsh-test/busybox",
            "/bin/busybox",
            "chroot",
            "/host",
            dsh_bin(),
        ])
        .arg("--state-dir")
        .arg(&dir)
        .args(["agent", "--metrics-addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("docker run");
    let status = wait_until(Duration::from_secs(60), "the agent under seccomp", || {
        if let Ok(Some(s)) = child.try_wait() {
            panic!(
                "docker run exited ({s}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let out = Command::new(dsh_bin())
            .arg("--state-dir")
            .arg(&dir)
            .args(["status", "--json"])
            .output()
            .ok()?;
        out.status.success().then_some(())?;
        serde_json::from_slice::<Value>(&out.stdout).ok()
    });
    let seccomp = Command::new("docker")
        .args(["inspect", "--format", "{{.State.Pid}}", &name])
        .output()
        .expect("docker inspect");
    let pid = String::from_utf8_lossy(&seccomp.stdout).trim().to_owned();
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    assert!(
        proc_status.contains("Seccomp:\t2"),
        "the agent runs under a seccomp filter: {proc_status}"
    );
    let node = status["node"].as_str().unwrap_or_default().to_owned();
    assert_working(&status, &node);
    let stop = Command::new("docker")
        .args(["stop", "-t", "30", &name])
        .output()
        .expect("docker stop");
    assert!(stop.status.success());
    let exited = child.wait().expect("docker run");
    assert!(
        exited.success(),
        "the agent exited with {exited} on SIGTERM: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
