//! Workloads the integration tests run inside test cgroups. Each does one
//! precise thing so the tests can assert exact effects.
//!
//! Usage: dsh-workload <command> [args]
use std::{
    ffi::CString,
    io::{Read as _, Write as _},
    net::TcpListener,
    os::unix::fs::OpenOptionsExt as _,
    process::exit,
};

fn arg(i: usize) -> String {
    std::env::args().nth(i).unwrap_or_else(|| {
        eprintln!("dsh-workload: missing argument {i}");
        exit(64)
    })
}

fn num(i: usize) -> u64 {
    arg(i).parse().unwrap_or_else(|_| {
        eprintln!("dsh-workload: argument {i} is not a number");
        exit(64)
    })
}

/// A listener on 127.0.0.1:PORT with this backlog (std's is 128); exits
/// on failure. Its descriptor, kept open by the caller.
fn backlog_listener(port: u16, backlog: i32) -> i32 {
    // SAFETY: plain socket calls on a descriptor this process owns; the
    // address is a valid, initialised sockaddr_in of its size.
    let (fd, ok) = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_port = port.to_be();
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let ok = fd >= 0
            && libc::bind(
                fd,
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ) == 0
            && libc::listen(fd, backlog) == 0;
        (fd, ok)
    };
    if !ok {
        eprintln!(
            "dsh-workload: listen {port}: {}",
            std::io::Error::last_os_error()
        );
        exit(1)
    }
    fd
}

/// Moves this process into a new network namespace and brings its
/// loopback up; exits on failure.
fn own_netns() {
    // SAFETY: unshare has no memory preconditions; the ifreq is zeroed,
    // named "lo" (NUL-terminated) and lives across both ioctls on a
    // descriptor this process owns.
    let ok = unsafe {
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            false
        } else {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            let mut ifr: libc::ifreq = std::mem::zeroed();
            for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
                *d = *s as libc::c_char;
            }
            let up = fd >= 0 && libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) == 0 && {
                ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr) == 0
            };
            libc::close(fd);
            up
        }
    };
    if !ok {
        eprintln!(
            "dsh-workload: own netns: {}",
            std::io::Error::last_os_error()
        );
        exit(1)
    }
}

fn main() {
    match arg(1).as_str() {
        // N getppid calls.
        "getppid" => {
            for _ in 0..num(2) {
                // SAFETY: getppid has no preconditions.
                unsafe { libc::getppid() };
            }
        }
        // N getppid calls; prints the mean ns per call (for the benchmarks).
        "getppid-timed" => {
            let n = num(2);
            let start = std::time::Instant::now();
            for _ in 0..n {
                // SAFETY: getppid has no preconditions.
                unsafe { libc::getppid() };
            }
            println!("{:.2}", start.elapsed().as_nanos() as f64 / n as f64);
        }
        // getppid at RATE calls a second for SECONDS (in 10 ms batches);
        // prints "ready" first, then the calls made.
        "syscall-rate" => {
            let (rate, secs) = (num(2), num(3));
            println!("ready");
            std::io::stdout().flush().ok();
            let start = std::time::Instant::now();
            let mut calls = 0u64;
            while start.elapsed().as_secs() < secs {
                let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
                while calls < due {
                    // SAFETY: getppid has no preconditions.
                    unsafe { libc::getppid() };
                    calls += 1;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            println!("{calls}");
        }
        // N times fork, exec /bin/true, wait; prints the mean µs per process.
        "spawn-timed" => {
            let n = num(2);
            let path = c"/bin/true";
            let argv = [path.as_ptr(), std::ptr::null()];
            let start = std::time::Instant::now();
            for _ in 0..n {
                // SAFETY: the child only calls execv and _exit, both
                // async-signal-safe, on data made before the fork.
                match unsafe { libc::fork() } {
                    // SAFETY: in the child: execv with the NUL-terminated
                    // argv above (alive until the exec), else _exit.
                    0 => unsafe {
                        libc::execv(path.as_ptr(), argv.as_ptr());
                        libc::_exit(127)
                    },
                    -1 => {
                        eprintln!("dsh-workload: fork failed");
                        exit(1)
                    }
                    pid => {
                        let mut status = 0;
                        // SAFETY: waiting for our own child.
                        unsafe { libc::waitpid(pid, &mut status, 0) };
                    }
                }
            }
            println!("{:.2}", start.elapsed().as_secs_f64() * 1e6 / n as f64);
        }
        // N failing close(-1) calls (EBADF).
        // N stat() calls on a path that does not exist (ENOENT each).
        "stat-missing" => {
            for _ in 0..num(2) {
                let _ = std::fs::metadata("/nonexistent/dsh-trace-probe");
            }
        }
        "close-bad" => {
            for _ in 0..num(2) {
                // SAFETY: closing an invalid fd only returns EBADF.
                unsafe { libc::close(-1) };
            }
        }
        "exit" => exit(num(2) as i32),
        "segv" => {
            // SAFETY: deliberately not safe: the point is to die of SIGSEGV.
            unsafe { std::ptr::write_volatile(std::ptr::null_mut::<u64>(), 1) };
        }
        // Write N MiB to PATH with O_DIRECT (straight to the block device).
        "direct-write" => {
            let path = arg(2);
            let mib = num(3) as usize;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_DIRECT)
                .open(&path)
                .unwrap_or_else(|e| {
                    eprintln!("dsh-workload: open {path}: {e}");
                    exit(1)
                });
            // O_DIRECT needs an aligned buffer: over-allocate and align.
            let chunk = 1 << 20;
            let mut raw = vec![0u8; chunk + 4096];
            let off = raw.as_ptr().align_offset(4096);
            let buf = &mut raw[off..off + chunk];
            buf.fill(0xa5);
            for _ in 0..mib {
                f.write_all(buf).unwrap_or_else(|e| {
                    eprintln!("dsh-workload: write {path}: {e}");
                    exit(1)
                });
            }
            f.sync_all().ok();
        }
        // Touch N MiB of anonymous memory (to exceed a memory limit).
        "hog" => {
            let mib = num(2) as usize;
            let mut v: Vec<Vec<u8>> = Vec::new();
            for _ in 0..mib {
                v.push(vec![1u8; 1 << 20]);
            }
            std::hint::black_box(&v);
        }
        // Listen on 127.0.0.1:PORT, print "ready", wait for stdin to close.
        "listen" => {
            let port = num(2);
            let l = TcpListener::bind(("127.0.0.1", port as u16)).unwrap_or_else(|e| {
                eprintln!("dsh-workload: bind {port}: {e}");
                exit(1)
            });
            println!("ready");
            std::io::stdout().flush().ok();
            let mut sink = Vec::new();
            std::io::stdin().read_to_end(&mut sink).ok();
            drop(l);
        }
        // Listen on 0.0.0.0:PORT until killed (a container's server).
        "serve" => {
            let port = num(2);
            let _l = TcpListener::bind(("0.0.0.0", port as u16)).unwrap_or_else(|e| {
                eprintln!("dsh-workload: bind {port}: {e}");
                exit(1)
            });
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        // In a network namespace of its own (loopback up): a listener on
        // 127.0.0.1:7000 with backlog 1 that never accepts, and RATE
        // connects a second to it and to port 9 (nobody there) for SECONDS;
        // prints "ready" once in the namespace. A plain cgroup's sick server
        // and client, for hosts without Docker.
        "netns-sick" => {
            let (rate, secs) = (num(2), num(3));
            own_netns();
            let _listener = backlog_listener(7000, 1);
            println!("ready");
            std::io::stdout().flush().ok();
            let start = std::time::Instant::now();
            let mut held = Vec::new();
            while start.elapsed().as_secs() < secs {
                for port in [7000u16, 9] {
                    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                    let timeout = std::time::Duration::from_millis(5);
                    if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, timeout) {
                        held.push(s);
                    }
                }
                held.truncate(16);
                std::thread::sleep(std::time::Duration::from_millis(1000 / rate.max(1)));
            }
        }
        // In a network namespace of its own: REFUSED connects to
        // 127.0.0.1:9 (each gets a reset); BLOCKED connects to a listener
        // whose accept queue is full (their SYNs are dropped and sent
        // again after a second); RESETS connections it accepts and closes
        // unread (each close sends a reset). Prints "done".
        "tcp-trouble" => {
            let (refused, blocked, resets) = (num(2), num(3), num(4));
            own_netns();
            for _ in 0..refused {
                let _ = std::net::TcpStream::connect("127.0.0.1:9");
            }
            // Backlog 0: the queue is full once one connection waits.
            let _full = backlog_listener(7001, 0);
            let first = std::net::TcpStream::connect("127.0.0.1:7001");
            let waiting: Vec<_> = (0..blocked)
                .map(|_| {
                    std::thread::spawn(|| {
                        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 7001));
                        let _ = std::net::TcpStream::connect_timeout(
                            &addr,
                            std::time::Duration::from_millis(2500),
                        );
                    })
                })
                .collect();
            for w in waiting {
                let _ = w.join();
            }
            drop(first);
            let server = TcpListener::bind("127.0.0.1:7002").unwrap_or_else(|e| {
                eprintln!("dsh-workload: listen 7002: {e}");
                exit(1)
            });
            for _ in 0..resets {
                let Ok(mut c) = std::net::TcpStream::connect("127.0.0.1:7002") else {
                    continue;
                };
                let _ = c.write_all(b"unread");
                // Accepted and closed with the bytes unread: a reset.
                if let Ok((s, _)) = server.accept() {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    drop(s);
                }
            }
            println!("done");
        }
        // N connects to ADDR (host:port), each closed at once; prints how
        // many were established.
        "connect" => {
            let (addr, n) = (arg(2), num(3));
            let ok = (0..n)
                .filter(|_| std::net::TcpStream::connect(addr.as_str()).is_ok())
                .count();
            println!("{ok}");
        }
        // Listen on 127.0.0.1:PORT with a backlog of N and never accept,
        // until killed (a server whose accept queue overflows).
        "backlog" => {
            let _fd = backlog_listener(num(2) as u16, num(3) as i32);
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        // Print "ready", then sleep until killed.
        "sleep" => {
            println!("ready");
            std::io::stdout().flush().ok();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        // kill(PID, SIG)
        "kill" => {
            // SAFETY: kill has no memory-safety preconditions.
            let r = unsafe { libc::kill(num(2) as i32, num(3) as i32) };
            exit(if r == 0 { 0 } else { 1 });
        }
        // Pushes TEXT and a newline into the input of the terminal on fd 0
        // (TIOCSTI, as a hostile program would); says whether it could.
        "tiocsti" => {
            let text = format!("{}\n", arg(2));
            for b in text.bytes() {
                // SAFETY: TIOCSTI reads one byte, which lives for the call.
                if unsafe { libc::ioctl(0, libc::TIOCSTI, &b) } < 0 {
                    println!("tiocsti: {}", std::io::Error::last_os_error());
                    exit(1);
                }
            }
            println!("tiocsti: pushed {} bytes", text.len());
        }
        // Exec PATH (for exec events with a known filename).
        "exec" => {
            let path = CString::new(arg(2)).unwrap_or_else(|_| exit(64));
            let argv = [path.as_ptr(), std::ptr::null()];
            // SAFETY: argv is NUL-terminated and outlives the call.
            unsafe { libc::execv(path.as_ptr(), argv.as_ptr()) };
            exit(127);
        }
        // For SECS seconds (or until the file STOP exists), fork children
        // that live 100 ms, as many as the pids limit lets live; a refused
        // fork (EAGAIN) is tried again 10 ms later. Prints how many were
        // refused; with STOP, then sleeps until killed.
        "fork-until-refused" => {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(num(2));
            let stop = std::env::args().nth(3);
            let stopped = || {
                stop.as_ref()
                    .is_some_and(|f| std::path::Path::new(f).exists())
            };
            let mut refused = 0u64;
            while std::time::Instant::now() < until && !stopped() {
                // SAFETY: the child only sleeps and calls _exit.
                match unsafe { libc::fork() } {
                    0 => {
                        // SAFETY: usleep and _exit are async-signal-safe.
                        unsafe {
                            libc::usleep(100_000);
                            libc::_exit(0)
                        }
                    }
                    -1 => {
                        refused += 1;
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    _ => {}
                }
                // SAFETY: a null status pointer is allowed (status not stored).
                while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
            }
            // SAFETY: as above; wait returns -1 (ECHILD) once all are reaped.
            while unsafe { libc::wait(std::ptr::null_mut()) } > 0 {}
            println!("{refused}");
            if stop.is_some() {
                ready_then_sleep();
            }
        }
        // Fork N children that exit at once, as fast as possible; reap them.
        "fork-burst" => {
            let n = num(2);
            for _ in 0..n {
                // SAFETY: the child only calls _exit.
                match unsafe { libc::fork() } {
                    // SAFETY: _exit is async-signal-safe and touches no memory.
                    0 => unsafe { libc::_exit(0) },
                    -1 => {
                        // Out of pids for the moment: reap and go on.
                        // SAFETY: a null status pointer is allowed (status not stored).
                        unsafe { libc::wait(std::ptr::null_mut()) };
                    }
                    _ => {}
                }
                // Reap whatever has finished, without blocking.
                // SAFETY: a null status pointer is allowed (status not stored).
                while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
            }
            // SAFETY: as above; wait returns -1 (ECHILD) once all are reaped.
            while unsafe { libc::wait(std::ptr::null_mut()) } > 0 {}
        }
        // N unix socket pairs, held open (kernel memory: socket inodes,
        // files); print "ready", then sleep until killed.
        "sockets" => {
            for _ in 0..num(2) {
                let mut fds = [0i32; 2];
                // SAFETY: fds has room for the two descriptors.
                if unsafe {
                    libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr())
                } != 0
                {
                    eprintln!(
                        "dsh-workload: socketpair: {}",
                        std::io::Error::last_os_error()
                    );
                    exit(1);
                }
            }
            ready_then_sleep();
        }
        // Fill pipe buffers (kernel memory the memory cgroup charges) until
        // the container's working set reaches PERCENT of its limit, as read
        // from its own cgroup files; print "ready", then sleep until killed.
        "pipes-to" => {
            let target = num(2);
            let chunk = vec![7u8; 65536];
            loop {
                let (ws, limit) = own_working_set();
                if ws.saturating_mul(100) >= limit.saturating_mul(target) {
                    break;
                }
                let mut fds = [0i32; 2];
                // SAFETY: fds has room for the two descriptors.
                if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) } != 0 {
                    eprintln!("dsh-workload: pipe2: {}", std::io::Error::last_os_error());
                    exit(1);
                }
                // SAFETY: chunk is valid for its length; a full pipe says EAGAIN.
                unsafe { libc::write(fds[1], chunk.as_ptr().cast(), chunk.len()) };
            }
            ready_then_sleep();
        }
        other => {
            eprintln!("dsh-workload: unknown command {other}");
            exit(64)
        }
    }
}

fn ready_then_sleep() -> ! {
    println!("ready");
    std::io::stdout().flush().ok();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// The container's working set and limit from its own cgroup (v1 memory
/// controller as Docker mounts it, else cgroup2).
fn own_working_set() -> (u64, u64) {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let stat_key = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0u64)
    };
    let num = |t: Option<String>| t.and_then(|t| t.trim().parse::<u64>().ok());
    if let (Some(usage), Some(limit)) = (
        num(read("/sys/fs/cgroup/memory/memory.usage_in_bytes")),
        num(read("/sys/fs/cgroup/memory/memory.limit_in_bytes")),
    ) {
        let stat = read("/sys/fs/cgroup/memory/memory.stat").unwrap_or_default();
        return (
            usage.saturating_sub(stat_key(&stat, "total_inactive_file")),
            limit,
        );
    }
    let (Some(usage), Some(limit)) = (
        num(read("/sys/fs/cgroup/memory.current")),
        num(read("/sys/fs/cgroup/memory.max")),
    ) else {
        eprintln!("dsh-workload: no memory limit readable in /sys/fs/cgroup");
        exit(1)
    };
    let stat = read("/sys/fs/cgroup/memory.stat").unwrap_or_default();
    (
        usage.saturating_sub(stat_key(&stat, "inactive_file")),
        limit,
    )
}
