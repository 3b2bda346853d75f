//! A redis server for the production benchmark, and redis-benchmark against it.
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use dsh_testkit::TestCgroup;

/// A redis server on loopback in a cgroup of its own; killed on drop.
pub(crate) struct Redis {
    child: Child,
    port: u16,
    _cg: TestCgroup,
}

impl Redis {
    pub(crate) fn start() -> Redis {
        let cg = TestCgroup::new("redis");
        let port = 17_000 + (std::process::id() % 1000) as u16;
        let child = cg
            .command_of(
                Path::new("/usr/bin/redis-server"),
                &[
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (install redis-server and redis-tools; cargo xtask bench does)");
        let redis = Redis {
            child,
            port,
            _cg: cg,
        };
        let t0 = Instant::now();
        while !redis.ping() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        redis
    }

    fn ping(&self) -> bool {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "ping"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
    }

    /// `redis-benchmark -t set,get -n N` (50 clients): requests per second,
    /// the two tests averaged.
    pub(crate) fn benchmark(&self, requests: u64) -> f64 {
        let out = Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-t", "set,get", "-c", "50", "--csv", "-n"])
            .arg(requests.to_string())
            .stderr(Stdio::null())
            .output()
            .expect("redis-benchmark");
        assert!(out.status.success(), "redis-benchmark failed");
        let rps: Vec<f64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("\"SET\"") || l.starts_with("\"GET\""))
            .filter_map(|l| l.split(',').nth(1)?.trim_matches('"').parse().ok())
            .collect();
        assert_eq!(rps.len(), 2, "redis-benchmark --csv: {out:?}");
        rps.iter().sum::<f64>() / 2.0
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
