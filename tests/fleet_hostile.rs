//! The fleet view against a server that is not the Prometheus it claims:
//! a small HTTP server on loopback that answers every query with 1 GiB,
//! streamed (never held), so what dsh holds is dsh's own doing.
use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use crate::agentkit::dsh_bin;

const GIB: u64 = 1 << 30;

/// Answers one request with a 1 GiB JSON body, as long as it is read;
/// counts the bytes the kernel took.
fn answer_a_gib(stream: TcpStream, sent: &AtomicU64) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let mut out = stream;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {GIB}\r\n\r\n"
    );
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    let start = br#"{"status":"success","data":{"resultType":"vector","result":["#;
    let series = br#"{"metric":{"node":"n","id":"x"},"value":[1,"1"]},"#;
    let chunk: Vec<u8> = series
        .iter()
        .copied()
        .cycle()
        .take(series.len() * 1300)
        .collect();
    let mut left = GIB;
    let mut write = |bytes: &[u8]| -> bool {
        let n = bytes.len().min(left as usize);
        if out.write_all(&bytes[..n]).is_err() {
            return false;
        }
        left -= n as u64;
        sent.fetch_add(n as u64, Ordering::Relaxed);
        left > 0
    };
    if write(start) {
        while write(&chunk) {}
    }
}

#[test]
fn a_prometheus_that_answers_a_gib_gets_a_clear_error_and_bounded_memory() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding loopback");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let sent = Arc::new(AtomicU64::new(0));
    {
        let sent = sent.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sent = sent.clone();
                std::thread::spawn(move || answer_a_gib(stream, &sent));
            }
        });
    }
    let started = Instant::now();
    #[expect(
        clippy::zombie_processes,
        reason = "reaped by wait4 below, which also gives its peak RSS"
    )]
    let mut child = Command::new(dsh_bin())
        .args(["ps", "--prometheus", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running dsh ps --prometheus");
    let mut said = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut said)
        .expect("reading dsh's stderr");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with pointers to live locals.
    let waited = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(
        waited,
        child.id() as i32,
        "wait4: {}",
        std::io::Error::last_os_error()
    );
    let peak_mib = usage.ru_maxrss as f64 / 1024.0;
    let took = started.elapsed().as_secs_f64();
    println!(
        "a 1 GiB answer: dsh exited {} after {took:.2} s, peak RSS {peak_mib:.1} MiB, \
         {} MiB sent by the server; said: {}",
        libc::WEXITSTATUS(status),
        sent.load(Ordering::Relaxed) >> 20,
        said.trim()
    );
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 1,
        "{said}"
    );
    assert!(
        said.contains("with more than 32 MiB; narrow the query with --filter node=NAME"),
        "{said}"
    );
    assert!(peak_mib < 256.0, "dsh held {peak_mib:.0} MiB");
    assert!(
        sent.load(Ordering::Relaxed) < GIB / 4,
        "dsh read on after its limit"
    );
}
