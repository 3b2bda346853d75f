//! The readers on fixture directories, on in-memory texts, and on a real
//! v1 hierarchy where the host has one.
use std::path::PathBuf;
use std::{fs, io::Write as _};

use super::files::Texts;
use super::fixtures::*;
use super::v1::read_v1_memory;
use super::*;

#[test]
fn v2() {
    let fx = Fixture::new("v2");
    let d = fx.sub(
        "cg",
        &[
            ("memory.stat", V2_MEMORY_STAT),
            ("memory.current", "3211264\n"),
            ("memory.max", "67108864\n"),
            ("memory.peak", "5242880\n"),
            ("memory.events", V2_EVENTS),
            ("cpu.stat", V2_CPU_STAT),
            ("cpu.max", "150000 100000\n"),
            ("pids.current", "4\n"),
            ("io.stat", V2_IO_STAT),
            ("pids.max", "12\n"),
            ("pids.events", "max 226\n"),
            ("io.pressure", V2_IO_PRESSURE),
        ],
    );
    let src = StatsSource::V2(d.clone());
    let s = read(&src).expect("read v2");
    assert_eq!(
        s,
        CgroupStats {
            mem_usage_bytes: 3211264,
            mem_anon_bytes: 1048576,
            mem_file_bytes: 2097152,
            mem_inactive_file_bytes: 1048576,
            mem_kernel_bytes: 65536,
            mem_limit_bytes: Some(64 << 20),
            mem_peak_bytes: Some(5 << 20),
            oom_kills: 2,
            cpu_usage_ns: 1_500_000,
            cpu_limit_cores: Some(1.5),
            cpu_periods: 40,
            cpu_throttled_periods: 7,
            pids: Some(4),
            io_read_bytes: 1459200 + 90430464,
            io_write_bytes: 314773504 + 299008000,
            pids_max: Some(12),
            pids_refused: 226,
            mem_high_events: 0,
            mem_max_events: 12,
            pressure: Some(Pressure {
                io: Some(Psi {
                    some: Stall {
                        avg10: 0.69,
                        avg60: 0.4,
                        total_us: 5_000_000
                    },
                    full: Stall {
                        avg10: 0.6,
                        avg60: 0.3,
                        total_us: 4_000_000
                    },
                }),
                ..Default::default()
            }),
        }
    );
    // The working set: usage less the inactive cache.
    assert_eq!(s.mem_used_bytes(), 3211264 - 1048576);
    // Before 5.18 memory.stat has no `kernel`, only its parts.
    put(
        &d,
        "memory.stat",
        "anon 1\nfile 2\nkernel_stack 16384\npagetables 8192\nsock 4096\nslab 100\n",
    );
    assert_eq!(read(&src).expect("read v2").mem_kernel_bytes, 28772);
    put(&d, "memory.stat", V2_MEMORY_STAT);
    // No memory.current (a v2 root): rss plus cache.
    fs::remove_file(d.join("memory.current")).expect("rm");
    assert_eq!(read(&src).expect("read v2").mem_used_bytes(), 3 << 20);

    // Unlimited; cpu, pids and io controllers not enabled (cpu.stat then has usage only).
    put(&d, "memory.max", "max\n");
    put(&d, "cpu.stat", "usage_usec 3\nuser_usec 2\nsystem_usec 1\n");
    for f in [
        "cpu.max",
        "pids.current",
        "io.stat",
        "memory.events",
        "io.pressure",
    ] {
        fs::remove_file(d.join(f)).expect("rm");
    }
    let s = read(&src).expect("read v2");
    assert_eq!(
        (s.mem_limit_bytes, s.cpu_limit_cores, s.pids),
        (None, None, None)
    );
    assert_eq!(
        (s.cpu_usage_ns, s.cpu_periods, s.oom_kills, s.io_read_bytes),
        (3000, 0, 0, 0)
    );
    // No pids controller: its other files are not looked at; no PSI: None.
    assert_eq!((s.pids_max, s.pids_refused, s.pressure), (None, 0, None));
    put(&d, "cpu.max", "max 100000\n");
    assert_eq!(read(&src).expect("read v2").cpu_limit_cores, None);

    // Malformed values are errors, with the offending line.
    put(&d, "cpu.max", "50000 0\n");
    assert_eq!(malformed(read(&src)), "50000 0");
    put(&d, "cpu.max", "max 100000\n");
    put(&d, "memory.stat", "anon 12x\nfile 3\n");
    assert_eq!(malformed(read(&src)), "anon 12x");
    put(&d, "memory.stat", "anon\n");
    assert_eq!(malformed(read(&src)), "anon");

    fs::remove_dir_all(&d).expect("rm");
    assert!(matches!(read(&src), Err(StatsError::Vanished(p)) if p == d));
}

/// The fixtures above through the in-memory parser (what the fuzz
/// targets run), and the fuzz targets' seeds made of them.
#[test]
fn fixtures_parse_from_texts_and_seed_the_fuzzers() {
    use fuzz_input::{encode, parse_v1, parse_v2};
    let v2 = encode(&[
        Some(V2_MEMORY_STAT),
        Some("67108864\n"),
        Some(V2_EVENTS),
        Some(V2_CPU_STAT),
        Some("150000 100000\n"),
        Some("4\n"),
        Some(V2_IO_STAT),
    ]);
    let s = parse_v2(&v2).1.expect("v2 fixture");
    assert_eq!((s.mem_anon_bytes, s.cpu_limit_cores), (1048576, Some(1.5)));
    crate::fuzz_seeds::seed("cgroup_stats_v2", "fixture", &v2);
    let unlimited = encode(&[
        Some("anon 0\nfile 0\n"),
        Some("max\n"),
        None,
        Some("usage_usec 3\nuser_usec 2\nsystem_usec 1\n"),
        Some("max 100000\n"),
    ]);
    let s = parse_v2(&unlimited).1.expect("v2 unlimited");
    assert_eq!(
        (s.mem_limit_bytes, s.cpu_limit_cores, s.pids),
        (None, None, None)
    );
    crate::fuzz_seeds::seed("cgroup_stats_v2", "unlimited", &unlimited);
    let bad = encode(&[Some("anon 12x\nfile 3\n")]);
    assert!(
        matches!(parse_v2(&bad).1, Err(StatsError::Malformed { line, .. }) if line == "anon 12x")
    );
    crate::fuzz_seeds::seed("cgroup_stats_v2", "malformed", &bad);

    let v1 = encode(&[
        Some(V1_MEMORY_STAT),
        Some("67108864\n"),
        Some("oom_kill_disable 0\nunder_oom 0\noom_kill 5\n"),
        Some("nr_periods 10\nnr_throttled 3\nthrottled_time 123456\n"),
        Some("50000\n"),
        Some("100000\n"),
        Some("987654321\n"),
        Some("9\n"),
        Some(V1_BLKIO),
    ]);
    let s = parse_v1(&v1).1.expect("v1 fixture");
    assert_eq!((s.io_read_bytes, s.cpu_limit_cores), (4097, Some(0.5)));
    crate::fuzz_seeds::seed("cgroup_stats_v1", "fixture", &v1);
    let old_kernel = encode(&[
        Some(V1_MEMORY_STAT),
        Some("9223372036854771712\n"),
        Some("oom_kill_disable 0\nunder_oom 0\n"),
        None,
        Some("-1\n"),
        None,
        None,
        None,
        None,
        Some("8:0 Read 10\n8:0 Write 20\nTotal 30\n"),
    ]);
    let s = parse_v1(&old_kernel).1.expect("v1 old kernel");
    assert_eq!((s.mem_limit_bytes, s.io_write_bytes), (None, 20));
    crate::fuzz_seeds::seed("cgroup_stats_v1", "old-kernel", &old_kernel);
}

#[test]
fn v1() {
    let fx = Fixture::new("v1");
    let mem = fx.sub(
        "memory",
        &[
            ("memory.stat", V1_MEMORY_STAT),
            ("memory.usage_in_bytes", "20480\n"),
            ("memory.kmem.usage_in_bytes", "6144\n"),
            ("memory.limit_in_bytes", "67108864\n"),
            ("memory.max_usage_in_bytes", "1048576\n"),
            ("memory.failcnt", "31\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n",
            ),
        ],
    );
    // cpu and cpuacct co-mounted in one directory, as on many distributions.
    let cpu = fx.sub(
        "cpu,cpuacct",
        &[
            (
                "cpu.stat",
                "nr_periods 10\nnr_throttled 3\nthrottled_time 123456\n",
            ),
            ("cpu.cfs_quota_us", "50000\n"),
            ("cpu.cfs_period_us", "100000\n"),
            ("cpuacct.usage", "987654321\n"),
        ],
    );
    let pids = fx.sub(
        "pids",
        &[
            ("pids.current", "9\n"),
            ("pids.max", "max\n"),
            ("pids.events", "max 7\n"),
        ],
    );
    let pids_dir = pids.clone();
    let blk = fx.sub(
        "blkio",
        &[("blkio.throttle.io_service_bytes_recursive", V1_BLKIO)],
    );
    let src = StatsSource::V1 {
        memory: Some(mem.clone()),
        cpu: Some(cpu.clone()),
        cpuacct: Some(cpu.clone()),
        pids: Some(pids),
        blkio: Some(blk.clone()),
        unified: None,
    };
    assert_eq!(
        read(&src).expect("read v1"),
        CgroupStats {
            mem_usage_bytes: 20480,
            mem_anon_bytes: 8192,
            mem_file_bytes: 4096,
            mem_inactive_file_bytes: 1024,
            mem_kernel_bytes: 6144,
            mem_limit_bytes: Some(64 << 20),
            mem_peak_bytes: Some(1 << 20),
            oom_kills: 5,
            cpu_usage_ns: 987654321,
            cpu_limit_cores: Some(0.5),
            cpu_periods: 10,
            cpu_throttled_periods: 3,
            pids: Some(9),
            io_read_bytes: 4097,
            io_write_bytes: 8194,
            pids_max: None,
            pids_refused: 7,
            mem_high_events: 0,
            mem_max_events: 31,
            pressure: None,
        }
    );

    assert_eq!(read(&src).expect("read v1").mem_used_bytes(), 20480 - 1024);
    // Without kmem accounting: kernel memory is what rss and cache leave.
    fs::remove_file(mem.join("memory.kmem.usage_in_bytes")).expect("rm");
    assert_eq!(read(&src).expect("read v1").mem_kernel_bytes, 20480 - 12288);

    // Unlimited: the kernel's PAGE_COUNTER_MAX value, and -1 quota.
    put(&mem, "memory.limit_in_bytes", "9223372036854771712\n");
    put(&cpu, "cpu.cfs_quota_us", "-1\n");
    let s = read(&src).expect("read v1");
    assert_eq!((s.mem_limit_bytes, s.cpu_limit_cores), (None, None));
    // A limit above host RAM but below 2^62 is also "unlimited".
    put(&mem, "memory.limit_in_bytes", "4294967296\n");
    let mut t = CgroupStats::default();
    read_v1_memory(&mut Reader::default(), &mem, 1 << 30, &mut t).expect("read");
    assert_eq!(t.mem_limit_bytes, None);

    // Old kernel: no oom_kill key. Older blkio: only the non-recursive throttle file.
    put(
        &mem,
        "memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\n",
    );
    fs::remove_file(blk.join("blkio.throttle.io_service_bytes_recursive")).expect("rm");
    put(
        &blk,
        "blkio.throttle.io_service_bytes",
        "8:0 Read 10\n8:0 Write 20\nTotal 30\n",
    );
    let s = read(&src).expect("read v1");
    assert_eq!(
        (s.oom_kills, s.io_read_bytes, s.io_write_bytes),
        (0, 10, 20)
    );
    // Files missing from existing dirs, and controllers absent entirely.
    fs::remove_file(blk.join("blkio.throttle.io_service_bytes")).expect("rm");
    fs::remove_file(mem.join("memory.stat")).expect("rm");
    let s = read(&src).expect("read v1");
    assert_eq!((s.io_read_bytes, s.mem_anon_bytes), (0, 0));
    let none = StatsSource::V1 {
        memory: None,
        cpu: None,
        cpuacct: None,
        pids: None,
        blkio: None,
        unified: None,
    };
    assert_eq!(read(&none).expect("read"), CgroupStats::default());

    put(&cpu, "cpu.cfs_quota_us", "half\n");
    assert_eq!(malformed(read(&src)), "half");
    put(&mem, "memory.limit_in_bytes", "lots\n");
    assert_eq!(malformed(read(&src)), "lots");
    put(&mem, "memory.limit_in_bytes", "1\n");
    // A cgroup in some hierarchies only: the others' figures stay.
    fs::remove_dir_all(&cpu).expect("rm");
    let s = read(&src).expect("a cgroup gone from one hierarchy only");
    assert_eq!((s.mem_limit_bytes, s.cpu_limit_cores), (Some(1), None));
    for d in [&mem, &blk, &pids_dir] {
        fs::remove_dir_all(d).expect("rm");
    }
    let gone = read(&src);
    assert!(
        matches!(&gone, Err(StatsError::Vanished(p)) if *p == mem),
        "{gone:?}"
    );
}

#[test]
fn v1_real_cgroupfs() {
    if v1_mount("memory").is_none() {
        // Straight to stderr: the harness captures println! of a passing
        // test, and this one passes having checked nothing.
        let _ = writeln!(
            std::io::stderr(),
            "cgroup::stats::tests::v1_real_cgroupfs RAN NOTHING: this host has no cgroup v1 \
             memory hierarchy; the v1 reader was checked on fixtures only (test `v1`)"
        );
        return;
    }
    let name = format!("dsh-stats-test-{}", std::process::id());
    let mut made = Cgroups(Vec::new());
    let mut mk = |ctrl: &str| -> Option<PathBuf> {
        let d = v1_mount(ctrl)?.join(&name);
        // cpu and cpuacct may share one hierarchy: create the dir once.
        if !made.0.contains(&d) {
            fs::create_dir(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
            made.0.push(d.clone());
        }
        Some(d)
    };
    let mem = mk("memory").expect("memory is mounted");
    let (cpu, cpuacct, pids) = (mk("cpu"), mk("cpuacct"), mk("pids"));
    put(&mem, "memory.limit_in_bytes", "67108864");
    if let Some(c) = &cpu {
        put(c, "cpu.cfs_period_us", "100000");
        put(c, "cpu.cfs_quota_us", "50000");
    }
    let (has_cpu, has_pids) = (cpu.is_some(), pids.is_some());
    let src = StatsSource::V1 {
        memory: Some(mem.clone()),
        cpu,
        cpuacct,
        pids,
        blkio: None,
        unified: None,
    };
    let s = read(&src).expect("read real cgroup");
    assert_eq!((s.mem_limit_bytes, s.mem_used_bytes()), (Some(64 << 20), 0));
    // Kept-open files read the current value again.
    let mut reader = StatsReader::default();
    assert_eq!(reader.read(&src).expect("first read"), s);
    put(&mem, "memory.limit_in_bytes", "33554432");
    let again = reader.read(&src).expect("second read");
    assert_eq!(again.mem_limit_bytes, Some(32 << 20));
    // The idle refresh reads the limit from cgroupfs too, and keeps what
    // it does not read.
    put(&mem, "memory.limit_in_bytes", "16777216");
    let marked = CgroupStats {
        oom_kills: 77,
        ..again.clone()
    };
    let idle = reader
        .refresh_idle(&src, true, &marked)
        .expect("idle refresh");
    assert_eq!((idle.mem_limit_bytes, idle.oom_kills), (Some(16 << 20), 77));
    assert!(reader.open_files() >= 3);
    assert_eq!(s.cpu_limit_cores, has_cpu.then_some(0.5));
    assert_eq!(s.pids, has_pids.then_some(0));
    for d in &made.0 {
        fs::remove_dir(d).unwrap_or_else(|e| panic!("rmdir {}: {e}", d.display()));
    }
    assert!(matches!(read(&src), Err(StatsError::Vanished(p)) if p == mem));
    // Through a file opened before the rmdir, too; and it is let go.
    let gone = reader.read(&src);
    assert!(matches!(gone, Err(StatsError::Vanished(_))), "{gone:?}");
    reader.retain(|_| false);
    assert_eq!(reader.open_files(), 0);
}

/// Contents by file name; `asked` collects the names read, in order.
fn texts<'a>(
    files: &'a std::collections::HashMap<&'static str, String>,
    asked: &'a mut Vec<String>,
) -> Texts<impl FnMut(&std::path::Path) -> Option<String> + 'a> {
    Texts(move |p: &std::path::Path| {
        let name = p.file_name()?.to_str()?;
        asked.push(name.to_owned());
        files.get(name).cloned()
    })
}

#[test]
fn idle_refresh_v2_reads_what_changes_without_running_and_keeps_the_rest() {
    let mut files: std::collections::HashMap<&'static str, String> = [
        ("memory.stat", V2_MEMORY_STAT),
        ("memory.current", "3211264\n"),
        ("memory.max", "67108864\n"),
        ("memory.peak", "5242880\n"),
        ("memory.events", V2_EVENTS),
        ("cpu.stat", V2_CPU_STAT),
        ("cpu.max", "150000 100000\n"),
        ("pids.current", "4\n"),
        ("pids.max", "12\n"),
        ("pids.events", "max 226\n"),
        ("io.stat", V2_IO_STAT),
        ("io.pressure", V2_IO_PRESSURE),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    let src = StatsSource::V2(PathBuf::from("/cg"));
    let mut asked = Vec::new();
    let last = read_all(&mut texts(&files, &mut asked), &src, 1 << 40).expect("full read");
    // Reclaim, `docker update`, write-back and an I/O stall: all without
    // running. The counters below move only while tasks run (here they
    // are made to move anyway, to show they are not read).
    for (f, v) in [
        (
            "memory.stat",
            "anon 1048576\nfile 4096\ninactive_file 0\nkernel 8192\n",
        ),
        ("memory.current", "1060864\n"),
        ("memory.max", "max\n"),
        ("cpu.max", "max 100000\n"),
        ("pids.max", "max\n"),
        ("io.stat", "8:0 rbytes=1 wbytes=2\n"),
        (
            "io.pressure",
            "some avg10=1.00 avg60=0.00 avg300=0.00 total=6000000\n",
        ),
        ("memory.peak", "9999999\n"),
        ("memory.events", "max 13\noom_kill 3\nhigh 1\n"),
        (
            "cpu.stat",
            "usage_usec 1500\nnr_periods 41\nnr_throttled 8\n",
        ),
        ("pids.current", "5\n"),
        ("pids.events", "max 227\n"),
    ] {
        files.insert(f, v.to_owned());
    }
    asked.clear();
    let s = refresh_all(&mut texts(&files, &mut asked), &src, 1 << 40, &last).expect("refresh");
    assert_eq!(
        asked,
        [
            "memory.stat",
            "memory.current",
            "memory.max",
            "cpu.max",
            "pids.max",
            "io.stat",
            "cpu.pressure",
            "memory.pressure",
            "io.pressure"
        ]
    );
    let io = s.pressure.and_then(|p| p.io).expect("io pressure");
    assert_eq!(io.some.total_us, 6_000_000);
    assert_eq!(
        CgroupStats {
            pressure: None,
            ..s
        },
        CgroupStats {
            mem_usage_bytes: 1060864,
            mem_anon_bytes: 1048576,
            mem_file_bytes: 4096,
            mem_inactive_file_bytes: 0,
            mem_kernel_bytes: 8192,
            mem_limit_bytes: None,
            cpu_limit_cores: None,
            pids_max: None,
            io_read_bytes: 1,
            io_write_bytes: 2,
            pressure: None,
            ..last.clone()
        }
    );
    // Kept: the last read's counters.
    assert_eq!(
        (s.oom_kills, s.mem_max_events, s.cpu_throttled_periods),
        (2, 12, 7)
    );
    assert_eq!(
        (s.pids, s.pids_refused, s.mem_peak_bytes),
        (Some(4), 226, Some(5 << 20))
    );
}

#[test]
fn idle_refresh_v1_reads_what_changes_without_running_and_keeps_the_rest() {
    let mut files: std::collections::HashMap<&'static str, String> = [
        ("memory.stat", V1_MEMORY_STAT),
        ("memory.usage_in_bytes", "20480\n"),
        ("memory.kmem.usage_in_bytes", "6144\n"),
        ("memory.limit_in_bytes", "67108864\n"),
        ("memory.max_usage_in_bytes", "1048576\n"),
        ("memory.failcnt", "31\n"),
        (
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n",
        ),
        (
            "cpu.stat",
            "nr_periods 10\nnr_throttled 3\nthrottled_time 1\n",
        ),
        ("cpu.cfs_quota_us", "50000\n"),
        ("cpu.cfs_period_us", "100000\n"),
        ("cpuacct.usage", "987654321\n"),
        ("pids.current", "9\n"),
        ("pids.max", "max\n"),
        ("pids.events", "max 7\n"),
        ("blkio.throttle.io_service_bytes_recursive", V1_BLKIO),
        ("memory.pressure", V2_IO_PRESSURE),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    let dir = |c: &str| Some(PathBuf::from("/").join(c));
    let src = StatsSource::V1 {
        memory: dir("memory"),
        cpu: dir("cpu"),
        cpuacct: dir("cpuacct"),
        pids: dir("pids"),
        blkio: dir("blkio"),
        unified: dir("unified"),
    };
    let mut asked = Vec::new();
    let last = read_all(&mut texts(&files, &mut asked), &src, 1 << 40).expect("full read");
    assert_eq!(asked.len(), 18, "{asked:?}");
    for (f, v) in [
        (
            "memory.stat",
            "total_rss 4096\ntotal_cache 0\ntotal_inactive_file 0\n",
        ),
        ("memory.usage_in_bytes", "8192\n"),
        ("memory.kmem.usage_in_bytes", "4096\n"),
        ("memory.limit_in_bytes", "9223372036854771712\n"),
        ("cpu.cfs_quota_us", "-1\n"),
        ("pids.max", "100\n"),
        (
            "blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 1\n8:0 Write 2\n",
        ),
        (
            "memory.pressure",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n",
        ),
        ("memory.max_usage_in_bytes", "2097152\n"),
        ("memory.failcnt", "32\n"),
        ("memory.oom_control", "oom_kill 6\n"),
        ("cpu.stat", "nr_periods 11\nnr_throttled 4\n"),
        ("pids.current", "10\n"),
        ("pids.events", "max 8\n"),
    ] {
        files.insert(f, v.to_owned());
    }
    asked.clear();
    let s = refresh_all(&mut texts(&files, &mut asked), &src, 1 << 40, &last).expect("refresh");
    assert_eq!(
        asked,
        [
            "memory.stat",
            "memory.usage_in_bytes",
            "memory.kmem.usage_in_bytes",
            "memory.limit_in_bytes",
            "cpu.cfs_quota_us",
            "pids.max",
            "blkio.throttle.io_service_bytes_recursive",
            "cpu.pressure",
            "memory.pressure",
            "io.pressure"
        ]
    );
    let mem = s.pressure.and_then(|p| p.memory).expect("memory pressure");
    assert_eq!(mem.some.total_us, 1);
    assert_eq!(
        CgroupStats {
            pressure: None,
            ..s
        },
        CgroupStats {
            mem_usage_bytes: 8192,
            mem_anon_bytes: 4096,
            mem_file_bytes: 0,
            mem_inactive_file_bytes: 0,
            mem_kernel_bytes: 4096,
            mem_limit_bytes: None,
            cpu_limit_cores: None,
            pids_max: Some(100),
            io_read_bytes: 1,
            io_write_bytes: 2,
            pressure: None,
            ..last.clone()
        }
    );
    assert_eq!(
        (s.mem_peak_bytes, s.mem_max_events, s.oom_kills),
        (Some(1 << 20), 31, 5)
    );
    assert_eq!(
        (
            s.cpu_usage_ns,
            s.cpu_throttled_periods,
            s.pids,
            s.pids_refused
        ),
        (987654321, 3, Some(9), 7)
    );
    // A quota set again is read with its period.
    files.insert("cpu.cfs_quota_us", "25000\n".to_owned());
    asked.clear();
    let s = refresh_all(&mut texts(&files, &mut asked), &src, 1 << 40, &s).expect("refresh");
    assert_eq!(s.cpu_limit_cores, Some(0.25));
    assert!(asked.iter().any(|f| f == "cpu.cfs_period_us"), "{asked:?}");
}

#[test]
fn idle_refresh_of_a_removed_cgroup_says_vanished() {
    let fx = Fixture::new("idle-vanished");
    let mem = fx.sub(
        "memory",
        &[
            ("memory.stat", V1_MEMORY_STAT),
            ("memory.usage_in_bytes", "20480\n"),
        ],
    );
    let pids = fx.sub("pids", &[("pids.max", "max\n")]);
    let src = StatsSource::V1 {
        memory: Some(mem.clone()),
        cpu: None,
        cpuacct: None,
        pids: Some(pids.clone()),
        blkio: None,
        unified: None,
    };
    let mut reader = StatsReader::default();
    let last = reader.read(&src).expect("read");
    put(&mem, "memory.usage_in_bytes", "4096\n");
    let s = reader.refresh_idle(&src, true, &last).expect("refresh");
    assert_eq!(s.mem_usage_bytes, 4096);
    // Gone from one hierarchy: the other's figures stand; from both: gone.
    fs::remove_dir_all(&pids).expect("rm");
    assert!(reader.refresh_idle(&src, true, &s).is_ok());
    fs::remove_dir_all(&mem).expect("rm");
    // (A fresh reader: fixture files held open stay readable, unlike
    // cgroupfs ones, which then fail with ENODEV.)
    let gone = StatsReader::default().refresh_idle(&src, true, &s);
    assert!(
        matches!(&gone, Err(StatsError::Vanished(p)) if *p == mem),
        "{gone:?}"
    );
}
