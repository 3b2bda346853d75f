//! A real Prometheus (Debian's package) started by the test on a loopback
//! port with its own data dir, and `curl` as an operator would use it.
use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::agentkit::wait_until;

/// One HTTP GET with the real curl: status, body, and curl's total time.
pub struct Fetched {
    pub status: u16,
    pub body: String,
    pub seconds: f64,
}

pub fn curl(url: &str, extra: &[&str]) -> Fetched {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code} %{time_total}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("running curl (cargo xtask test installs it)");
    assert!(
        out.status.success(),
        "curl {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').expect("curl's -w line");
    let (code, time) = tail.split_once(' ').expect("code and time");
    Fetched {
        status: code.parse().expect("http code"),
        body: body.to_owned(),
        seconds: time.parse().expect("time_total"),
    }
}

/// The agent's bound metrics address, from `dsh status`.
pub fn metrics_url(agent: &crate::agentkit::Agent) -> String {
    let status = agent.status();
    let addr = status["metrics_addr"]
        .as_str()
        .unwrap_or_else(|| panic!("no metrics_addr in status: {status}"));
    format!("http://{addr}/metrics")
}

/// A strict parser reads `exposition`: promtool exits 1 on a parse error
/// and 3 on lint advice. Prometheus 2.42's linter reads OpenMetrics
/// counters (`# TYPE x counter`, samples `x_total`) as help-less `x_total`
/// series: that advice is all it may give.
pub fn promtool_check(exposition: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool (cargo xtask test installs it)");
    {
        use std::io::Write as _;
        let mut stdin = promtool.stdin.take().expect("promtool stdin");
        stdin
            .write_all(exposition.as_bytes())
            .expect("feeding promtool");
    }
    let checked = promtool.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        matches!(checked.status.code(), Some(0 | 3)),
        "promtool check metrics failed ({}): {said}",
        checked.status
    );
    for line in said.lines().filter(|l| !l.trim().is_empty()) {
        assert!(line.ends_with("no help text"), "promtool: {line}");
    }
}

/// A port free right now (Prometheus cannot be told to pick one itself).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a loopback port")
        .port()
}

pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    pub url: String,
}

impl Prometheus {
    /// Scrapes `targets` (host:port) every second.
    pub fn start(tag: &str, targets: &[String]) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("dsh-it-prom-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: dsh\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("prometheus.yml");
        // Another process may take the free port before Prometheus binds
        // it: then it exits at once, and a new port is tried.
        for _ in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
            let mut child = Command::new("prometheus")
                .arg(format!(
                    "--config.file={}",
                    dir.join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("starting prometheus (cargo xtask test installs it)");
            let url = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                let ready = Command::new("curl")
                    .args(["-sf", "-o", "/dev/null"])
                    .arg(format!("{url}/-/ready"))
                    .status()
                    .is_ok_and(|s| s.success());
                if ready {
                    return Prometheus { child, dir, url };
                }
                assert!(
                    Instant::now() < deadline,
                    "prometheus not ready in 60 s: {}",
                    std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        panic!(
            "prometheus did not start: {}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
    }

    /// An instant query through the HTTP API: the result vector.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let got = curl(
            &format!("{}/api/v1/query", self.url),
            &["-G", "--data-urlencode", &format!("query={promql}")],
        );
        let v: Value = serde_json::from_str(&got.body)
            .unwrap_or_else(|e| panic!("{promql}: {e}: {}", got.body));
        assert_eq!(v["status"], "success", "{promql}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `promql` returns series from exactly these nodes.
    pub fn wait_for_nodes(&self, promql: &str, nodes: &[&str], timeout: Duration) -> Vec<Value> {
        let mut want: Vec<&str> = nodes.to_vec();
        want.sort_unstable();
        wait_until(timeout, promql, || {
            let result = self.query(promql);
            let mut got: Vec<&str> = result
                .iter()
                .filter_map(|s| s["metric"]["node"].as_str())
                .collect();
            got.sort_unstable();
            (got == want).then(|| result.clone())
        })
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
