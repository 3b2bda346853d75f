//! The agent's socket under abuse: idle and excess connections, an
//! oversized request, `log --follow` clients that stop reading.
use std::{
    io::{ErrorKind, Read as _, Write as _},
    os::unix::net::UnixStream,
    path::Path,
    time::{Duration, Instant},
};

use dsh::{
    agent::{MAX_CONNECTIONS, REQUEST_TIMEOUT, WRITE_TIMEOUT},
    api::{MAX_REQUEST_BYTES, socket_path},
};
use dsh_testkit::TestCgroup;

use crate::agentkit::{Agent, wait_until};

/// How much the agent's RSS may grow while stalled followers are fed
/// thousands of lines: its fixed buffers (journal cache, broadcast ring),
/// never the lines the followers did not take.
const STALLED_FOLLOWER_RSS_BOUND: u64 = 24 << 20;

fn connect(state_dir: &Path) -> UnixStream {
    UnixStream::connect(socket_path(state_dir)).expect("connecting to the agent")
}

fn proc_status(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

fn rss_bytes(pid: u32) -> u64 {
    proc_status(pid, "VmRSS:") * 1024
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("agent fds")
        .count()
}

/// What a connection holds right now without waiting: Some(text) once the
/// agent has closed it (its last words), None while it is still open.
fn closed_with(s: &mut UnixStream) -> Option<String> {
    s.set_nonblocking(true).expect("nonblocking");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&got).into_owned());
            }
            Err(e) => panic!("reading from the agent: {e}"),
        }
    }
}

#[test]
fn excess_connections_are_turned_away_and_idle_ones_closed() {
    let agent = Agent::fresh("sock-idle", &[]);
    let pid = agent.pid();
    let fds_before = open_fds(pid);
    let total = MAX_CONNECTIONS + 136;
    let mut conns: Vec<UnixStream> = (0..total).map(|_| connect(&agent.state_dir)).collect();
    // The ones beyond the bound are told why and closed at once.
    let mut last_words: Vec<Option<String>> = vec![None; total];
    wait_until(Duration::from_secs(4), "the excess turned away", || {
        for (c, words) in conns.iter_mut().zip(&mut last_words) {
            if words.is_none() {
                *words = closed_with(c);
            }
        }
        let n = last_words.iter().flatten().count();
        (n >= total - MAX_CONNECTIONS).then_some(())
    });
    let turned_away: Vec<&String> = last_words.iter().flatten().collect();
    assert_eq!(turned_away.len(), total - MAX_CONNECTIONS);
    for why in turned_away {
        assert!(why.contains("serving 64 clients already"), "{why:?}");
    }
    let mut idle: Vec<UnixStream> = conns
        .into_iter()
        .zip(&last_words)
        .filter(|(_, w)| w.is_none())
        .map(|(c, _)| c)
        .collect();
    // While the idle ones hold every slot, the CLI gets the same clear answer.
    let busy = agent.dsh(&["ps"]);
    assert!(!busy.status.success());
    let stderr = String::from_utf8_lossy(&busy.stderr);
    assert!(stderr.contains("serving 64 clients already"), "{stderr}");
    // Idle ones (no request) are closed after the request timeout.
    let started = Instant::now();
    wait_until(
        REQUEST_TIMEOUT + Duration::from_secs(5),
        "idle connections closed",
        || {
            idle.retain_mut(|c| closed_with(c).is_none());
            idle.is_empty().then_some(())
        },
    );
    assert!(started.elapsed() >= REQUEST_TIMEOUT - Duration::from_secs(2));
    assert!(agent.ok(&["ps"]).starts_with("id "));
    wait_until(Duration::from_secs(5), "the agent's fds back", || {
        (open_fds(pid) <= fds_before).then_some(())
    });
}

#[test]
fn an_oversized_request_is_refused_unread() {
    let agent = Agent::fresh("sock-big", &[]);
    let mut s = connect(&agent.state_dir);
    s.set_write_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let junk = vec![b'x'; 4 * MAX_REQUEST_BYTES];
    // The agent stops reading after the limit, answers, and closes: the
    // rest of the write fails (broken pipe) or lands in a dead buffer.
    let _ = s.write_all(&junk);
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(
        reply.contains(&format!("request larger than {MAX_REQUEST_BYTES} bytes")),
        "{reply:?}"
    );
    // A request just under the limit is read (and is not a request).
    let mut s = connect(&agent.state_dir);
    let mut near = vec![b' '; MAX_REQUEST_BYTES - 1];
    near.push(b'\n');
    s.write_all(&near).expect("write");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("reply");
    assert!(reply.contains("bad request"), "{reply:?}");
    assert!(agent.ok(&["ps"]).starts_with("id "));
}

#[test]
fn followers_that_stop_reading_do_not_grow_the_agent() {
    let agent = Agent::fresh("sock-stall", &[]);
    let pid = agent.pid();
    let cg = TestCgroup::new("stall");
    // Eight `log -a --follow` clients that never read a byte.
    let req = br#"{"op":"log","container":null,"all":true,"since_s":null,"follow":true}"#;
    let mut stalled: Vec<UnixStream> = (0..8)
        .map(|_| {
            let mut s = connect(&agent.state_dir);
            s.write_all(req).expect("request");
            s.write_all(b"\n").expect("request");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let rss_before = rss_bytes(pid);
    // Thousands of lines, one per child crash (plain exits are churn, summed
    // up once per sample): far more than the followers' socket buffers.
    let status = cg
        .command_of(
            Path::new("/bin/sh"),
            &[
                "-c",
                "i=0; while [ $i -lt 4000 ]; do /bin/sh -c 'kill -SEGV $$'; i=$((i+1)); done",
            ],
        )
        .status()
        .expect("exec loop");
    assert!(status.success());
    // Nobody reads for longer than the write timeout: the agent must give
    // up on them rather than hold what they did not take.
    let mut rss_peak = rss_before;
    let until = Instant::now() + WRITE_TIMEOUT + Duration::from_secs(5);
    while Instant::now() < until {
        rss_peak = rss_peak.max(rss_bytes(pid));
        std::thread::sleep(Duration::from_millis(250));
    }
    let journal_lines = agent
        .ok(&["log", "-a", &format!("/{}", cg.name)])
        .lines()
        .count();
    assert!(journal_lines > 1000, "only {journal_lines} lines");
    for s in &mut stalled {
        let got = drain_to_close(s);
        assert!(
            got < journal_lines,
            "a stalled follower was sent all {got} lines"
        );
    }
    let growth = rss_peak.saturating_sub(rss_before);
    println!(
        "agent RSS {} KiB before, peak {} KiB (+{} KiB) with 8 stalled followers and {journal_lines} lines",
        rss_before >> 10,
        rss_peak >> 10,
        growth >> 10
    );
    assert!(
        growth < STALLED_FOLLOWER_RSS_BOUND,
        "agent RSS grew by {growth} bytes"
    );
}

/// Reads what the agent wrote before it closed the connection; the number
/// of lines. Panics if the agent still holds it open.
fn drain_to_close(s: &mut UnixStream) -> usize {
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the agent did not close a stalled follower: {e}"),
    }
    got.iter().filter(|&&b| b == b'\n').count()
}
