//! Scraping never holds up sampling: with 500 containers (plain cgroups,
//! each with a sleeping process) a `curl` of /metrics answers within 50 ms,
//! and scraping back to back changes the agent's sample lag by less than
//! one sampling interval.
use std::{
    path::Path,
    process::{Child, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use dsh_testkit::TestCgroup;

use crate::{
    agentkit::{Agent, wait_until},
    promkit::{curl, metrics_url},
};

const CGROUPS: usize = 500;
/// The interval the test harness runs agents at (`agentkit`).
const INTERVAL_MS: f64 = 500.0;

/// The largest sample lag `dsh status` reports while polled for `window`.
fn max_lag(agent: &Agent, window: Duration) -> f64 {
    let until = Instant::now() + window;
    let mut max: f64 = 0.0;
    while Instant::now() < until {
        let lag = agent.status()["sample_lag_ms"]
            .as_f64()
            .expect("sample_lag_ms");
        max = max.max(lag);
        std::thread::sleep(Duration::from_millis(100));
    }
    max
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[i]
}

#[test]
fn scraping_500_containers_is_fast_and_leaves_sampling_alone() {
    let agent = Agent::fresh("scrape500", &["--metrics-addr", "127.0.0.1:0"]);
    let url = metrics_url(&agent);
    let mut cgroups: Vec<(TestCgroup, Child)> = Vec::with_capacity(CGROUPS);
    for i in 0..CGROUPS {
        let cg = TestCgroup::new(&format!("scr{i}"));
        let child = cg
            .command_of(Path::new("/bin/sleep"), &["3600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep in a test cgroup");
        cgroups.push((cg, child));
    }
    let prefix = "id=\"/dsh-test-scr";
    let body = wait_until(
        Duration::from_secs(120),
        "500 containers in /metrics",
        || {
            let got = curl(&url, &[]);
            let n = got
                .body
                .lines()
                .filter(|l| l.starts_with("dsh_container_info{") && l.contains(prefix))
                .count();
            (n >= CGROUPS).then_some(got.body)
        },
    );
    let samples = body.lines().filter(|l| !l.starts_with('#')).count();

    let quiet = max_lag(&agent, Duration::from_secs(5));
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let (stop, url) = (stop.clone(), url.clone());
        std::thread::spawn(move || {
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let got = curl(&url, &[]);
                assert_eq!(got.status, 200);
                times.push(got.seconds * 1e3);
            }
            times
        })
    };
    let busy = max_lag(&agent, Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    let mut times = scraper.join().expect("scraper thread");
    times.sort_by(f64::total_cmp);
    let (median, p90, max) = (
        percentile(&times, 50.0),
        percentile(&times, 90.0),
        percentile(&times, 100.0),
    );
    println!(
        "scrape of {CGROUPS} containers ({samples} samples, {} KiB): {} scrapes, \
         median {median:.1} ms, p90 {p90:.1} ms, max {max:.1} ms; \
         max sample lag {quiet:.1} ms quiet, {busy:.1} ms while scraping",
        body.len() / 1024,
        times.len()
    );
    assert!(times.len() >= 10, "only {} scrapes in 5 s", times.len());
    assert!(p90 < 50.0, "scrapes take {p90:.1} ms (p90): {times:?}");
    assert!(
        busy - quiet < INTERVAL_MS,
        "scraping moved the sample lag from {quiet:.1} ms to {busy:.1} ms"
    );
    for (_, child) in &mut cgroups {
        let _ = child.kill();
        let _ = child.wait();
    }
}
