//! `dsh agent`: load the programs and (for now) print decoded kernel events.
use std::{io::Write as _, process::ExitCode, time::Duration};

use anyhow::{Context as _, bail};
use dsh::{
    clock::BootClock,
    probe::{Probe, ProbeOptions},
};
use dsh_ebpf::channel;
use tokio::signal::unix::{SignalKind, signal};

#[derive(clap::Args, Default)]
pub struct AgentArgs {
    /// Print every decoded kernel event as a JSON line on stdout.
    #[arg(long)]
    pub events: bool,
    /// Also attach the sys_enter hook for syscall latency histograms.
    #[arg(long)]
    pub syscall_latency: bool,
}

pub fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    if !args.events {
        bail!("the collector is not built yet; `dsh agent --events` prints the kernel's events");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(print_events(args))
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
                        serde_json::to_writer(&mut out, &line)?;
                        out.write_all(b"\n")?;
                    }
                }
                out.flush()?;
            }
            ev = events.next() => {
                let ev = ev?;
                let line = Line { ts: clock.to_timestamp(ev.boot_ns).to_string(), event: &ev };
                serde_json::to_writer(&mut out, &line)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    drop(events);
    drop(probe);
    Ok(ExitCode::SUCCESS)
}
