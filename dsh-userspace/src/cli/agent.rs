//! `dsh agent`: the collector (or, with `--events`, the raw kernel events).
use std::{io::Write as _, net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use dsh::{
    agent::{
        AgentConfig, RuntimeSockets, SyscallSchedule, default_crio_socket, default_podman_socket,
        probe_containerd_socket,
    },
    clock::BootClock,
    journal::Retention,
    model::{health::HealthRules, syscalls::SyscallAccounting, tcp::TcpRules},
    probe::{Probe, ProbeOptions, SyscallCounters},
    untrusted::json,
};
use dsh_ebpf::channel;
use jiff::SignedDuration;
use tokio::signal::unix::{SignalKind, signal};

#[derive(clap::Args)]
pub struct AgentArgs {
    /// Print every decoded kernel event as a JSON line on stdout instead of
    /// running the collector.
    #[arg(long)]
    pub events: bool,
    /// Also attach the sys_enter hook for syscall latency histograms.
    #[arg(long)]
    pub syscall_latency: bool,
    /// Syscall accounting: `sampled` (counted for --syscall-window out of
    /// every --syscall-period; rates are estimates), `exact` (every syscall
    /// counted, always) or `off` (no per-syscall program). `dsh trace` is
    /// exact either way.
    #[arg(long, default_value = "sampled", value_parser = accounting)]
    pub syscalls: SyscallAccounting,
    /// Sampled syscalls: how long each counting window lasts.
    #[arg(long, default_value = "500ms", value_parser = super::duration::interval)]
    pub syscall_window: Duration,
    /// Sampled syscalls: one window opens every this long.
    #[arg(long, default_value = "10s", value_parser = super::duration::interval)]
    pub syscall_period: Duration,
    /// Where per-cgroup syscall counters live: `cgroup-storage` (Linux
    /// 6.2+), `hash` (a per-CPU hash keyed by cgroup id, from 5.8), or
    /// `auto` (cgroup-storage where the kernel has it).
    #[arg(long, default_value = "auto", env = "DSH_SYSCALL_COUNTERS")]
    pub syscall_counters: SyscallCounters,
    /// Sampling interval (e.g. 1s, 500ms; at least 100ms).
    #[arg(long, default_value = "1s", value_parser = super::duration::interval)]
    pub interval: Duration,
    /// The Docker Engine API socket ("none": do not follow Docker).
    #[arg(long, default_value = "/var/run/docker.sock")]
    pub docker_socket: String,
    /// containerd's gRPC socket ("none": do not follow containerd). Default:
    /// the first of containerd's, k3s's, k0s's and microk8s's that exists.
    #[arg(long)]
    pub containerd_socket: Option<String>,
    /// podman's Docker-compatible API socket (`podman system service`).
    #[arg(long, default_value = default_podman_socket())]
    pub podman_socket: String,
    /// CRI-O's socket.
    #[arg(long, default_value = default_crio_socket())]
    pub crio_socket: String,
    /// Forget containers this long after their cgroup is gone (and no
    /// runtime knows them); their journal lines stay (e.g. 1h, 90s).
    #[arg(long, default_value = "1h", value_parser = super::duration::parse)]
    pub forget_after: Duration,
    /// Journal retention: drop lines older than this (e.g. 7d, 36h; at least 1d).
    #[arg(long, default_value = "7d", value_parser = super::duration::retention)]
    pub retention: Duration,
    /// Journal retention of chatty lines (process churn, ...): keep at most
    /// this many; state changes and crashes are kept for --retention.
    #[arg(long, default_value_t = 1_000_000)]
    pub retention_entries: u64,
    /// Journal byte budget: chatty lines are evicted, oldest first, while the
    /// stored lines take more than this many bytes.
    #[arg(long, default_value_t = 256 << 20)]
    pub journal_max_bytes: u64,
    /// Journal bound on one container's critical lines (state changes,
    /// crashes): past it its oldest are evicted, counted in `dsh status`.
    #[arg(long, default_value_t = dsh::journal::DEFAULT_MAX_CRITICAL_PER_CONTAINER)]
    pub retention_critical_per_container: u64,
    /// Health: memory above this % of the limit is a Warning.
    #[arg(long, default_value_t = 90.0)]
    pub mem_warn_percent: f64,
    /// Health: CPU throttled in more than this % of periods over a minute is a Warning.
    #[arg(long, default_value_t = 25.0)]
    pub throttle_warn_percent: f64,
    /// Health: this many restarts in the unhealthy window is a crash loop (UnHealthy).
    #[arg(long, default_value_t = 3)]
    pub crash_loop_restarts: usize,
    /// Health: an OOM kill, core dump or crash loop this recent is UnHealthy,
    /// and a container that died UnHealthy stays in plain `dsh ps` this long.
    #[arg(long, default_value = "10m", value_parser = super::duration::parse)]
    pub unhealthy_window: Duration,
    /// Health: forks refused at pids.max or EMFILE/ENFILE within this
    /// window are a Warning, which ends this long after the last one.
    #[arg(long, default_value = "1m", value_parser = super::duration::parse)]
    pub sick_window: Duration,
    /// Health: memory stalled (PSI some, last 10 s) above this % is a Warning.
    #[arg(long, default_value_t = 40.0)]
    pub stall_warn_percent: f64,
    /// Health: I/O stalled above this % while the memory limit is hit (page
    /// cache thrashing) is a Warning; I/O stall below the limit is none.
    #[arg(long, default_value_t = 15.0)]
    pub io_stall_warn_percent: f64,
    /// Health: memory fully stalled (PSI full) above this % for 30 s is UnHealthy.
    #[arg(long, default_value_t = 60.0)]
    pub memory_full_unhealthy_percent: f64,
    /// Health: the TCP reasons judge rates over this window (once 5 s of
    /// readings are in), and end this long after the condition stops.
    #[arg(long, default_value = "30s", value_parser = super::duration::parse)]
    pub tcp_window: Duration,
    /// Health: failed TCP connects above this rate (per second, over
    /// --tcp-window) and above --connect-fail-warn-percent of those begun
    /// are a Warning.
    #[arg(long, default_value_t = 1.0)]
    pub connect_fail_warn_per_s: f64,
    /// Health: the share (%) of connects begun that must fail, beside
    /// --connect-fail-warn-per-s, for a Warning.
    #[arg(long, default_value_t = 10.0)]
    pub connect_fail_warn_percent: f64,
    /// Health: retransmitted TCP segments above this % of those sent (over
    /// --tcp-window, at least 1/s) are a Warning.
    #[arg(long, default_value_t = 3.0)]
    pub retransmit_warn_percent: f64,
    /// Health: listen-queue overflows above this rate (per second, over
    /// --tcp-window) are a Warning.
    #[arg(long, default_value_t = 1.0)]
    pub listen_overflow_warn_per_s: f64,
    /// Serve Prometheus metrics at http://ADDR/metrics; 127.0.0.1:9688
    /// without ADDR. Off unless given; 0.0.0.0:9688 serves the network.
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = dsh::metrics::server::DEFAULT_ADDR
    )]
    pub metrics_addr: Option<SocketAddr>,
    /// This host's name in metrics (`node` label) and fleet views
    /// [default: the hostname].
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// One history sample per container (`dsh top`'s detail pane) every
    /// this long; 15 minutes are kept (at most 900 samples). For tests.
    #[arg(long, hide = true, default_value = "5s", value_parser = super::duration::interval)]
    pub history_every: Duration,
}

/// The kernel's hostname: the default `--node-name`.
fn hostname() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.nodename().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// A socket flag: "none" (or empty) turns that runtime off.
fn followed(socket: &str) -> Option<String> {
    (!socket.is_empty() && socket != "none").then(|| socket.to_owned())
}

impl AgentArgs {
    pub fn config(&self, state_dir: PathBuf) -> AgentConfig {
        let rules = HealthRules {
            mem_warn_ratio: self.mem_warn_percent / 100.0,
            throttle_warn_ratio: self.throttle_warn_percent / 100.0,
            crash_loop_restarts: self.crash_loop_restarts,
            unhealthy_window: signed(self.unhealthy_window),
            sick_window: signed(self.sick_window),
            stall_warn_ratio: self.stall_warn_percent / 100.0,
            io_stall_warn_ratio: self.io_stall_warn_percent / 100.0,
            memory_full_unhealthy_ratio: self.memory_full_unhealthy_percent / 100.0,
            tcp: TcpRules {
                window: signed(self.tcp_window),
                connect_fail_per_s: self.connect_fail_warn_per_s,
                connect_fail_share: self.connect_fail_warn_percent / 100.0,
                retrans_share: self.retransmit_warn_percent / 100.0,
                listen_overflow_per_s: self.listen_overflow_warn_per_s,
                ..TcpRules::default()
            },
            ..HealthRules::default()
        };
        AgentConfig {
            state_dir,
            interval: self.interval,
            sockets: RuntimeSockets {
                docker: followed(&self.docker_socket),
                containerd: followed(
                    &self
                        .containerd_socket
                        .clone()
                        .unwrap_or_else(probe_containerd_socket),
                ),
                podman: followed(&self.podman_socket),
                crio: followed(&self.crio_socket),
            },
            rules,
            forget_after: signed(self.forget_after),
            retention: Retention {
                max_age: signed(self.retention),
                max_chatty_entries: self.retention_entries.max(1000),
                max_bytes: self.journal_max_bytes.max(64 << 10),
                max_critical_per_container: self.retention_critical_per_container.max(100),
            },
            syscall_latency: self.syscall_latency,
            syscalls: SyscallSchedule {
                accounting: self.syscalls,
                window: self.syscall_window,
                period: self.syscall_period,
            },
            syscall_counters: self.syscall_counters,
            metrics_addr: self.metrics_addr,
            node_name: self
                .node_name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(hostname),
            history_every: self.history_every,
        }
    }

    /// Flag combinations that make no sense, as a usage error's message.
    pub fn conflicts(&self) -> Option<String> {
        if self.syscall_window >= self.syscall_period {
            return Some(format!(
                "--syscall-window ({:?}) must be shorter than --syscall-period ({:?})",
                self.syscall_window, self.syscall_period
            ));
        }
        if self.syscall_latency && self.syscalls == SyscallAccounting::Off {
            return Some(
                "--syscall-latency needs syscall counting; not with --syscalls off".into(),
            );
        }
        None
    }
}

fn accounting(s: &str) -> Result<SyscallAccounting, String> {
    s.parse()
}

/// Durations past jiff's ~292 years are "forever".
fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

pub fn run(args: AgentArgs, state_dir: PathBuf) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if let Some(msg) = args.conflicts() {
        clap::Error::raw(clap::error::ErrorKind::ArgumentConflict, format!("{msg}\n")).exit();
    }
    if args.events {
        return rt.block_on(print_events(args));
    }
    let cfg = args.config(state_dir);
    rt.block_on(dsh::agent::run(cfg, None))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Serialize)]
struct Line<'a, T: serde::Serialize> {
    ts: String,
    #[serde(flatten)]
    event: &'a T,
}

#[derive(serde::Serialize)]
struct LostLine {
    kind: &'static str,
    channel: &'static str,
    lost_total: u64,
}

async fn print_events(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let mut probe = Probe::load(ProbeOptions {
        syscall_latency: args.syscall_latency,
        syscalls_detached: args.syscalls == SyscallAccounting::Off,
        syscall_counters: args.syscall_counters,
        ..ProbeOptions::default()
    })?;
    let mut events = probe.event_rings()?.into_stream()?;
    let clock = BootClock::now();
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut lost_seen = [0u64; channel::COUNT as usize];
    eprintln!("dsh: programs attached; printing events (Ctrl-C to stop)");
    let mut out = std::io::stdout().lock();
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = tick.tick() => {
                // Losses are reported, never silent.
                for (chan, stats) in probe.channel_stats()?.iter().enumerate() {
                    if stats.lost > lost_seen[chan] {
                        lost_seen[chan] = stats.lost;
                        let line = LostLine {
                            kind: "lost",
                            channel: if chan as u32 == channel::CRITICAL { "critical" } else { "chatty" },
                            lost_total: stats.lost,
                        };
                        json::to_writer(&mut out, &line)?;
                        out.write_all(b"\n")?;
                    }
                }
                out.flush()?;
            }
            ev = events.next() => {
                let ev = ev?;
                let line = Line { ts: clock.to_timestamp(ev.boot_ns).to_string(), event: &ev };
                json::to_writer(&mut out, &line)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    drop(events);
    drop(probe);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        agent: AgentArgs,
    }

    fn parse(args: &[&str]) -> AgentArgs {
        Wrap::try_parse_from(std::iter::once("dsh").chain(args.iter().copied()))
            .map(|w| w.agent)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn metrics_are_off_loopback_by_default_and_anywhere_when_asked() {
        assert_eq!(parse(&[]).metrics_addr, None);
        let bare = parse(&["--metrics-addr", "--interval", "2s"]);
        assert_eq!(bare.metrics_addr, Some("127.0.0.1:9688".parse().unwrap()));
        assert_eq!(bare.interval, Duration::from_secs(2));
        let all = parse(&["--metrics-addr=0.0.0.0:9100"]);
        assert_eq!(all.metrics_addr, Some("0.0.0.0:9100".parse().unwrap()));
        assert!(Wrap::try_parse_from(["dsh", "--metrics-addr", "nowhere"]).is_err());
    }

    #[test]
    fn node_name_defaults_to_the_hostname() {
        let cfg = parse(&[]).config(PathBuf::from("/tmp/x"));
        assert_eq!(cfg.node_name, hostname());
        assert!(!cfg.node_name.is_empty());
        let cfg = parse(&["--node-name", "edge-1"]).config(PathBuf::from("/tmp/x"));
        assert_eq!(cfg.node_name, "edge-1");
    }

    #[test]
    fn tcp_thresholds_default_to_the_rules_and_follow_their_flags() {
        let tcp = parse(&[]).config(PathBuf::from("/tmp/x")).rules.tcp;
        assert_eq!(tcp, TcpRules::default());
        let tcp = parse(&[
            "--connect-fail-warn-per-s",
            "5",
            "--connect-fail-warn-percent",
            "50",
            "--retransmit-warn-percent",
            "8",
            "--listen-overflow-warn-per-s",
            "0.5",
        ])
        .config(PathBuf::from("/tmp/x"))
        .rules
        .tcp;
        assert_eq!(
            (
                tcp.connect_fail_per_s,
                tcp.connect_fail_share,
                tcp.retrans_share,
                tcp.listen_overflow_per_s
            ),
            (5.0, 0.5, 0.08, 0.5)
        );
        assert_eq!(tcp.window, TcpRules::default().window);
        let tcp = parse(&["--tcp-window", "10s"])
            .config(PathBuf::from("/tmp/x"))
            .rules
            .tcp;
        assert_eq!(tcp.window, SignedDuration::from_secs(10));
    }
}
