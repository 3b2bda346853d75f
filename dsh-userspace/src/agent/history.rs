//! Each container's recent figures, for `dsh top`'s detail pane: a bounded
//! ring per container (`SPAN` of samples, one every `every`), kept in the
//! agent so a `top` opened now shows the minutes before it. A ring goes
//! with its container when the model forgets it.
//!
//! A sample is five `f32`s (20 bytes): at the default 5 s that is 180
//! samples, 3,600 bytes per container, about 3.5 MiB at 1,000 containers.
//! TCP's two figures (8 bytes a sample) get a ring only once a container
//! has a failed connect or a retransmit: most never do.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use jiff::Timestamp;

use crate::{
    api,
    model::{Model, state::State, tcp::TcpWindow},
};

/// How far back the history reaches.
pub const SPAN: Duration = Duration::from_secs(15 * 60);
/// The most samples a ring holds (12 minutes at `--history-every 1s`):
/// bounds memory whatever the flag says (14 MiB at 1,000 containers).
pub const MAX_SAMPLES: usize = 720;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Sample {
    cpu_cores: f32,
    mem_bytes: f32,
    net_rx: f32,
    net_tx: f32,
    syscalls: f32,
}

/// Failed connects/s and retransmits/s.
type TcpSample = [f32; 2];

/// A fixed-capacity ring: the oldest sample is overwritten once full.
#[derive(Debug)]
struct Ring {
    samples: Vec<Sample>,
    /// Parallel to `samples` once a TCP figure was not zero; empty before.
    tcp: Vec<TcpSample>,
    /// Where the next sample goes once `samples` is full.
    next: usize,
    cpu_limit_cores: Option<f64>,
    mem_limit_bytes: Option<u64>,
}

impl Ring {
    fn new(capacity: usize) -> Self {
        Self {
            samples: Vec::with_capacity(capacity),
            tcp: Vec::new(),
            next: 0,
            cpu_limit_cores: None,
            mem_limit_bytes: None,
        }
    }

    fn push(&mut self, s: Sample, tcp: TcpSample) {
        if self.tcp.is_empty() && tcp != [0.0; 2] {
            // The samples before were zeros.
            self.tcp = Vec::with_capacity(self.samples.capacity());
            self.tcp.resize(self.samples.len(), [0.0; 2]);
        }
        let keep_tcp = !self.tcp.is_empty();
        if self.samples.len() < self.samples.capacity() {
            self.samples.push(s);
            if keep_tcp {
                self.tcp.push(tcp);
            }
        } else if let Some(slot) = self.samples.get_mut(self.next) {
            *slot = s;
            if let Some(t) = self.tcp.get_mut(self.next) {
                *t = tcp;
            }
            self.next = (self.next + 1) % self.samples.len();
        }
    }

    /// Oldest first.
    fn ordered(&self) -> impl Iterator<Item = &Sample> {
        let (newer, older) = self.samples.split_at(self.next);
        older.iter().chain(newer)
    }

    /// The TCP figures, oldest first, one per sample (zeros before any).
    fn ordered_tcp(&self) -> Vec<TcpSample> {
        if self.tcp.is_empty() {
            return vec![[0.0; 2]; self.samples.len()];
        }
        let (newer, older) = self.tcp.split_at(self.next.min(self.tcp.len()));
        older.iter().chain(newer).copied().collect()
    }
}

pub struct History {
    every: Duration,
    capacity: usize,
    rings: HashMap<String, Ring>,
    last: Option<(Instant, Timestamp)>,
}

impl History {
    pub fn new(every: Duration) -> Self {
        let every = every.max(Duration::from_millis(100));
        let capacity =
            (SPAN.as_millis() / every.as_millis()).clamp(1, MAX_SAMPLES as u128) as usize;
        Self {
            every,
            capacity,
            rings: HashMap::new(),
            last: None,
        }
    }

    /// Called every sampling tick: takes a sample of every container when
    /// one is due, and drops the rings of containers the model forgot.
    pub fn on_tick(&mut self, model: &Model, now: Instant) {
        if self
            .last
            .is_some_and(|(at, _)| now.duration_since(at) < self.every)
        {
            return;
        }
        let at = Timestamp::now();
        self.last = Some((now, at));
        let span = jiff::SignedDuration::try_from(self.every).unwrap_or(jiff::SignedDuration::ZERO);
        self.rings.retain(|key, _| model.get(key).is_some());
        for c in model.containers().filter(|c| !c.sandbox) {
            let live = c.state == State::Running && c.cgroup_id.is_some();
            let stats = c.sample.stats.as_ref();
            let ring = self
                .rings
                .entry(c.key().to_owned())
                .or_insert_with(|| Ring::new(self.capacity));
            ring.cpu_limit_cores = stats.and_then(|s| s.cpu_limit_cores);
            ring.mem_limit_bytes = stats.and_then(|s| s.mem_limit_bytes);
            // A stopped container's samples are zeros: its restarts show as gaps.
            let sample = if live {
                Sample {
                    cpu_cores: c.sample.cpu_used_cores as f32,
                    mem_bytes: stats.map_or(0, |s| s.mem_used_bytes()) as f32,
                    net_rx: c.sample.net_rx_bytes_per_s.unwrap_or(0.0) as f32,
                    net_tx: c.sample.net_tx_bytes_per_s.unwrap_or(0.0) as f32,
                    syscalls: c.sample.syscalls_per_s as f32,
                }
            } else {
                Sample::default()
            };
            let tcp = if live {
                [
                    tcp_connect_fails(&c.sample.tcp, at, span) as f32,
                    tcp_retransmits(&c.sample.tcp, at, span) as f32,
                ]
            } else {
                [0.0; 2]
            };
            ring.push(sample, tcp);
        }
    }

    pub fn report(&self, key: &str) -> api::History {
        let mut h = api::History {
            key: key.to_owned(),
            interval_ms: self.every.as_millis() as u64,
            newest_at_ms: self.last.map_or(0, |(_, t)| t.as_millisecond()),
            ..api::History::default()
        };
        let Some(ring) = self.rings.get(key) else {
            return h;
        };
        h.cpu_limit_cores = ring.cpu_limit_cores;
        h.mem_limit_bytes = ring.mem_limit_bytes;
        for s in ring.ordered() {
            h.cpu_cores.push(s.cpu_cores);
            h.mem_bytes.push(s.mem_bytes);
            h.net_rx_bytes_per_s.push(s.net_rx);
            h.net_tx_bytes_per_s.push(s.net_tx);
            h.syscalls_per_s.push(s.syscalls);
        }
        for [fails, retransmits] in ring.ordered_tcp() {
            h.tcp_connect_fails_per_s.push(fails);
            h.tcp_retransmits_per_s.push(retransmits);
        }
        h
    }

    /// Bytes the rings hold (their buffers and keys; the map's own table
    /// is counted by entry).
    pub fn bytes(&self) -> usize {
        self.rings
            .iter()
            .map(|(k, r)| {
                k.capacity()
                    + r.samples.capacity() * size_of::<Sample>()
                    + r.tcp.capacity() * size_of::<TcpSample>()
                    + size_of::<(String, Ring)>()
            })
            .sum()
    }
}

/// Failed connects per second over the last `span`: the kernel's count
/// for the cgroup, else the namespace's.
fn tcp_connect_fails(w: &TcpWindow, now: Timestamp, span: jiff::SignedDuration) -> f64 {
    match w.connect_rates(now, span) {
        Some(c) => c.failed as f64 / c.span_s,
        None => w.rates(now, span).map_or(0.0, |r| r.connect_fails_per_s),
    }
}

/// Retransmits per second over the last `span`: the cgroup's own sockets'
/// where the kernel counts them, else the namespace's segments.
fn tcp_retransmits(w: &TcpWindow, now: Timestamp, span: jiff::SignedDuration) -> f64 {
    match w.sockets.rates(now, span) {
        Some(s) => s.retransmits_per_s,
        None => w.rates(now, span).map_or(0.0, |r| r.retrans_segs_per_s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dsh agent --history-every`'s default.
    const DEFAULT_EVERY: Duration = Duration::from_secs(5);

    fn s(v: f32) -> Sample {
        Sample {
            cpu_cores: v,
            ..Sample::default()
        }
    }

    #[test]
    fn ring_keeps_the_newest_capacity_samples_in_order() {
        let mut r = Ring::new(3);
        for v in 0..2 {
            r.push(s(v as f32), [0.0; 2]);
        }
        let got: Vec<f32> = r.ordered().map(|s| s.cpu_cores).collect();
        assert_eq!(got, [0.0, 1.0]);
        for v in 2..10 {
            r.push(s(v as f32), [0.0; 2]);
            assert!(r.samples.len() <= 3);
            assert_eq!(r.samples.capacity(), 3, "never grows past its capacity");
        }
        let got: Vec<f32> = r.ordered().map(|s| s.cpu_cores).collect();
        assert_eq!(got, [7.0, 8.0, 9.0]);
    }

    /// The TCP ring appears with the first figure that is not zero, its
    /// samples aligned with the others' (zeros before).
    #[test]
    fn the_tcp_ring_is_made_on_the_first_failure_and_stays_aligned() {
        let mut r = Ring::new(3);
        r.push(s(0.0), [0.0; 2]);
        assert!(r.tcp.is_empty(), "no ring while nothing failed");
        assert_eq!(r.ordered_tcp(), [[0.0; 2]]);
        r.push(s(1.0), [5.0, 0.0]);
        for v in 2..5 {
            r.push(s(v as f32), [0.0, v as f32]);
        }
        let cpu: Vec<f32> = r.ordered().map(|s| s.cpu_cores).collect();
        assert_eq!(cpu, [2.0, 3.0, 4.0]);
        assert_eq!(r.ordered_tcp(), [[0.0, 2.0], [0.0, 3.0], [0.0, 4.0]]);
        assert_eq!(r.tcp.capacity(), 3);
    }

    #[test]
    fn capacity_covers_the_span_and_is_bounded() {
        assert_eq!(History::new(DEFAULT_EVERY).capacity, 180);
        assert_eq!(History::new(Duration::from_secs(10)).capacity, 90);
        assert_eq!(History::new(Duration::from_secs(2)).capacity, 450);
        assert_eq!(History::new(Duration::from_millis(1)).capacity, MAX_SAMPLES);
        assert_eq!(History::new(Duration::from_secs(3600)).capacity, 1);
    }

    #[test]
    fn a_thousand_containers_cost_under_16_mib() {
        assert_eq!(size_of::<Sample>(), 20);
        let mut h = History::new(DEFAULT_EVERY);
        for i in 0..1000 {
            let mut r = Ring::new(h.capacity);
            for v in 0..h.capacity * 2 {
                r.push(s(v as f32), [0.0; 2]);
            }
            h.rings.insert(format!("{i:064x}"), r);
        }
        let bytes = h.bytes();
        assert!(bytes < 4 << 20, "{bytes} bytes");
        // Even at the densest sampling the flag allows.
        let worst = 1000 * (MAX_SAMPLES * size_of::<Sample>() + 64 + size_of::<(String, Ring)>());
        assert!(worst < 16 << 20, "{worst} bytes");
    }

    #[test]
    fn forgotten_containers_lose_their_ring_and_unknown_keys_are_empty() {
        let mut h = History::new(Duration::from_secs(1));
        h.rings.insert("gone".into(), Ring::new(h.capacity));
        let model = Model::new(
            crate::model::health::HealthRules::default(),
            jiff::SignedDuration::from_secs(60),
        );
        h.on_tick(&model, Instant::now());
        assert!(h.rings.is_empty());
        let r = h.report("gone");
        assert!(r.cpu_cores.is_empty() && r.interval_ms == 1000);
    }
}
