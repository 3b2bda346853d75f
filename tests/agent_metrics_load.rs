//! Scraping never holds up sampling: with 500 containers (plain cgroups,
//! each with a sleeping process) a `curl` of /metrics answers within 50 ms,
//! and scraping back to back changes the agent's sample lag by less than
//! one sampling interval; 16 clients that ask for /metrics and never read
//! neither delay a scrape of a 2 MB exposition nor are held for good.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use dsh_testkit::Sleepers;

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
    let cgroups = Sleepers::new("scr", CGROUPS);
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
    drop(cgroups);
}

/// Clients that ask for /metrics and never read.
const STALLED_CLIENTS: usize = 16;
/// Requests each stalled client pipelines: several expositions are more
/// than loopback's socket buffers hold, so the agent's writes do stall.
const PIPELINED: usize = 8;

/// A client that sends `PIPELINED` scrapes in one write and reads nothing.
fn stalled_client(addr: &str) -> std::net::TcpStream {
    use std::io::Write as _;
    let mut s = std::net::TcpStream::connect(addr).expect("connecting a stalled client");
    let one = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    s.write_all(one.repeat(PIPELINED).as_bytes())
        .expect("sending the requests");
    s
}

/// Reads `s` to its end by `deadline`: when the agent closed it (EOF or
/// reset), or `None` if it still held it open; and the bytes it had sent.
fn let_go(mut s: std::net::TcpStream, deadline: Instant) -> (Option<Instant>, usize) {
    use std::io::{ErrorKind, Read as _};
    let mut buf = vec![0u8; 1 << 16];
    let mut read = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (None, read);
        }
        s.set_read_timeout(Some(left)).expect("read timeout");
        match s.read(&mut buf) {
            Ok(0) => return (Some(Instant::now()), read),
            Ok(n) => read += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return (Some(Instant::now()), read);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (None, read);
            }
            Err(e) => panic!("reading a stalled client: {e}"),
        }
    }
}

/// The case: 1,000 containers and a 1.9 MB exposition (the agent
/// keeps about 12 descriptors per container within its budget).
#[test]
fn clients_that_never_read_do_not_delay_a_scrape_of_a_2_mb_exposition() {
    const CONTAINERS: usize = 1_000;
    const EXPOSITION_BYTES: usize = 1_900_000;
    let padding = "x".repeat(16);
    let agent = Agent::fresh("stalled", &["--metrics-addr", "127.0.0.1:0"]);
    let url = metrics_url(&agent);
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();
    // The index goes after the padding: names as long as before.
    let cgroups = Sleepers::new(&format!("stl{padding}-"), CONTAINERS);
    let prefix = "id=\"/dsh-test-stl";
    let body = wait_until(
        Duration::from_secs(180),
        "1,000 containers in /metrics",
        || {
            let got = curl(&url, &["--max-time", "10"]);
            let n = got
                .body
                .lines()
                .filter(|l| l.starts_with("dsh_container_info{") && l.contains(prefix))
                .count();
            (n >= CONTAINERS).then_some(got.body)
        },
    );
    assert!(
        body.len() >= EXPOSITION_BYTES,
        "the exposition is {} bytes, smaller than the case's",
        body.len()
    );
    let quiet = curl(&url, &["--max-time", "10"]).seconds;

    let connected = Instant::now();
    let stalled: Vec<_> = (0..STALLED_CLIENTS)
        .map(|_| stalled_client(&addr))
        .collect();
    // Let the agent fill their socket buffers and block on them.
    std::thread::sleep(Duration::from_millis(500));
    let mut times = Vec::new();
    for _ in 0..5 {
        let got = curl(&url, &["--max-time", "15"]);
        assert_eq!(got.status, 200);
        assert!(got.body.len() * 2 > body.len(), "a whole exposition");
        times.push(got.seconds);
    }
    let worst = times.iter().copied().fold(0.0, f64::max);
    println!(
        "exposition of {CONTAINERS} containers: {} KiB, scraped in {:.0} ms alone; with \
         {STALLED_CLIENTS} clients that never read ({PIPELINED} requests each): scrapes {:?} ms",
        body.len() / 1024,
        quiet * 1e3,
        times.iter().map(|t| (t * 1e3).round()).collect::<Vec<_>>(),
    );
    // Reading would unstall them: first wait, reading nothing, until the
    // agent holds none of its connections open, then check each client
    // sees its end.
    let port = addr.rsplit(':').next().expect("a port").to_owned();
    let held = || {
        crate::agentkit::run_ok(
            "ss",
            &["-Htn", "state", "established", &format!("sport = :{port}")],
        )
        .lines()
        .count()
    };
    let at_start = held();
    let freed = wait_until(Duration::from_secs(30), "stalled clients let go", || {
        (held() == 0).then(Instant::now)
    });
    let mut bytes = 0;
    for s in stalled {
        let (gone, n) = let_go(s, Instant::now() + Duration::from_secs(5));
        assert!(
            gone.is_some(),
            "a stalled client's connection is still open"
        );
        bytes += n;
    }
    println!(
        "{at_start} connections held; the stalled ones let go {:.1} s after they asked, \
         having been sent {} KiB each",
        (freed - connected).as_secs_f64(),
        bytes / STALLED_CLIENTS / 1024,
    );
    assert!(
        worst < 1.0,
        "a scrape took {worst:.2} s beside stalled clients"
    );
    drop(cgroups);
}
