//! The two ring buffers and the OOM-kill slots: drained synchronously
//! (`EventRings`) or as one async stream (`EventStream`), critical channel
//! (OOM kills first) first either way.
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use aya::maps::{Array, Map, MapData, MapError, RingBuf};
use dsh_ebpf::{OOM_SLOTS, OomEvent};
use tokio::io::unix::AsyncFd;

use super::{
    ProbeError,
    event::{DecodeError, Event},
};
use crate::clock::BootClock;

type Ring = RingBuf<MapData>;

/// How often the rings are read when no wake-up came (the programs submit
/// without waking the reader). Each read moves the rings' read marks,
/// which release the agent's re-ordered events (`agent::reorder`): an event
/// waits at most about this long plus the ordering margin. 20 looks a
/// second at two rings cost the idle agent next to nothing (the read is a
/// load from shared memory, no syscall).
pub const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Records taken from each ring per read: enough to keep up with a flood,
/// few enough that the other ring is looked at often.
const READ_BATCH: usize = 1024;

/// The OOM-kill mailbox's figures, shared with `Probe::channel_stats`,
/// which adds them to the critical channel's.
#[derive(Debug, Default)]
pub struct OomCounts {
    /// Records the program has written, as last read.
    pub written: AtomicU64,
    /// Records overwritten before they were read.
    pub lost: AtomicU64,
}

/// The OOM-kill mailbox: record `n` is in slot `n % OOM_SLOTS`, and
/// `OOM_WRITTEN` counts the records written (see `dsh_ebpf::OOM_SLOTS`).
pub struct OomSlots {
    slots: Array<MapData, [u8; size_of::<OomEvent>()]>,
    written: Array<MapData, u64>,
    /// Records read (or counted lost) so far.
    read: u64,
    /// The newest record's time: records are written in time order.
    last_ns: u64,
    counts: Arc<OomCounts>,
}

impl OomSlots {
    pub(super) fn new(
        slots: Map,
        written: Map,
        counts: Arc<OomCounts>,
    ) -> Result<Self, ProbeError> {
        Ok(Self {
            slots: Array::try_from(slots).map_err(|e| ProbeError::Map("OOM_EVENTS", e))?,
            written: Array::try_from(written).map_err(|e| ProbeError::Map("OOM_WRITTEN", e))?,
            read: 0,
            last_ns: 0,
            counts,
        })
    }

    fn written(&self) -> Result<u64, MapError> {
        self.written.get(&0, 0)
    }

    /// The records written since the last call, oldest first. The
    /// program may be writing slot `written % OOM_SLOTS` at any moment,
    /// so at most `OOM_SLOTS - 1` records are readable; any older, or
    /// overwritten while being read, are counted lost. A record not yet
    /// visible whole (not an OOM record, or older than the one before it:
    /// the count's store may be seen before the record's on a weakly
    /// ordered CPU) is left, with those after it, for the next call.
    fn take(&mut self) -> Result<Vec<Event>, MapError> {
        let written = self.written()?;
        if written == self.read {
            return Ok(Vec::new());
        }
        let n = u64::from(OOM_SLOTS);
        let first = self.read.max(written.saturating_sub(n - 1));
        let mut records = Vec::new();
        let mut upto = first;
        for seq in first..written {
            let record = self.slots.get(&((seq % n) as u32), 0)?;
            let Ok(event) = Event::decode(&record) else {
                break;
            };
            if event.boot_ns < self.last_ns {
                break;
            }
            self.last_ns = event.boot_ns;
            records.push((seq, event));
            upto = seq + 1;
        }
        let readable_from = self.written()?.saturating_sub(n - 1);
        let before = records.len();
        records.retain(|&(seq, _)| seq >= readable_from);
        let lost = (first - self.read) + (before - records.len()) as u64;
        self.read = upto;
        self.counts.written.store(upto, Ordering::Relaxed);
        self.counts.lost.fetch_add(lost, Ordering::Relaxed);
        Ok(records.into_iter().map(|(_, e)| e).collect())
    }

    /// The events since the last call; `None` if a map read failed
    /// (logged; the records stay for the next call).
    fn poll(&mut self) -> Option<Vec<Event>> {
        match self.take() {
            Ok(events) => Some(events),
            Err(e) => {
                log::warn!("reading the OOM-kill slots: {e}");
                None
            }
        }
    }
}

/// The events of `records`; undecodable ones are counted and dropped.
fn decoded(
    records: impl Iterator<Item = Result<Event, DecodeError>>,
    undecodable: &mut u64,
) -> Vec<Event> {
    let mut out = Vec::new();
    for r in records {
        match r {
            Ok(e) => out.push(e),
            Err(err) => {
                *undecodable += 1;
                log::warn!("dropping undecodable event: {err}");
            }
        }
    }
    out
}

fn ring(map: Map) -> Result<Ring, ProbeError> {
    RingBuf::try_from(map).map_err(|e| ProbeError::Map("ring buffer", e))
}

fn pop(ring: &mut Ring) -> Option<Result<Event, DecodeError>> {
    ring.next().map(|item| Event::decode(&item))
}

/// Both channels, read without waiting.
pub struct EventRings {
    oom: OomSlots,
    critical: Ring,
    chatty: Ring,
    /// Records that could not be decoded (a user/kernel ABI mismatch).
    pub undecodable: u64,
}

impl EventRings {
    pub(super) fn new(oom: OomSlots, critical: Map, chatty: Map) -> Result<Self, ProbeError> {
        Ok(Self {
            oom,
            critical: ring(critical)?,
            chatty: ring(chatty)?,
            undecodable: 0,
        })
    }

    /// Every event already in the buffers.
    pub fn drain(&mut self) -> Vec<Event> {
        drain(
            &mut self.oom,
            &mut self.critical,
            &mut self.chatty,
            &mut self.undecodable,
        )
    }

    /// Registers the buffers with the tokio reactor (call inside a runtime).
    pub fn into_stream(self) -> Result<EventStream, ProbeError> {
        let register = |r: Ring| {
            // SAFETY: the ring buffer owns its map fd and keeps it open, with
            // the same number, until the AsyncFd drops it.
            unsafe { AsyncFd::register(r) }.map_err(|e| ProbeError::Stream(e.into_parts().1))
        };
        let mut drain = tokio::time::interval(DRAIN_EVERY);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(EventStream {
            oom: self.oom,
            oom_queue: Default::default(),
            critical: register(self.critical)?,
            chatty: register(self.chatty)?,
            drain_timer: drain,
            undecodable: self.undecodable,
            oom_mark: 0,
            critical_mark: 0,
            chatty_mark: 0,
        })
    }
}

pub struct EventStream {
    oom: OomSlots,
    /// OOM records read but not yet returned by `next`.
    oom_queue: std::collections::VecDeque<Event>,
    critical: AsyncFd<Ring>,
    chatty: AsyncFd<Ring>,
    /// Kept here, not a sleep made in `next`: callers drop `next`'s future
    /// whenever something else happens first (every 25 ms in the agent),
    /// and a fresh sleep would never run out.
    drain_timer: tokio::time::Interval,
    pub undecodable: u64,
    /// How far each source has been read (see `read_up_to`).
    oom_mark: u64,
    critical_mark: u64,
    chatty_mark: u64,
}

/// Pops one record and moves the ring's read mark: to the record's time,
/// or, when the ring is empty, to the time just before looking (any record
/// submitted later was stamped later, bar one still being written).
fn pop_marked(ring: &mut Ring, mark: &mut u64) -> Option<Result<Event, DecodeError>> {
    let before = BootClock::boot_ns_now();
    let popped = pop(ring);
    match &popped {
        Some(Ok(e)) => *mark = (*mark).max(e.boot_ns),
        Some(Err(_)) => {}
        None => *mark = (*mark).max(before),
    }
    popped
}

impl EventStream {
    /// Every event already in the buffers, without waiting (at shutdown).
    pub fn drain(&mut self) -> Vec<Event> {
        drain(
            &mut self.oom,
            self.critical.get_mut(),
            self.chatty.get_mut(),
            &mut self.undecodable,
        )
    }

    /// Kernel time up to which every source has been read: no record
    /// still to come is older, bar one a program is writing at this moment.
    pub fn read_up_to(&self) -> u64 {
        self.oom_mark.min(self.critical_mark).min(self.chatty_mark)
    }

    /// Up to `max` records from each ring, critical first, without
    /// waiting; both rings are looked at every time, so both read marks
    /// move even while one ring is flooded.
    fn poll(&mut self, max: usize) -> Vec<Event> {
        // The slots are read whole: a record written after this moment
        // was stamped after it.
        let before = BootClock::boot_ns_now();
        let mut out = Vec::new();
        if let Some(ooms) = self.oom.poll() {
            out = ooms;
            self.oom_mark = self.oom_mark.max(before);
        }
        for (ring, mark) in [
            (self.critical.get_mut(), &mut self.critical_mark),
            (self.chatty.get_mut(), &mut self.chatty_mark),
        ] {
            for _ in 0..max {
                match pop_marked(ring, mark) {
                    Some(Ok(e)) => out.push(e),
                    Some(Err(err)) => {
                        self.undecodable += 1;
                        log::warn!("dropping undecodable event: {err}");
                    }
                    None => break,
                }
            }
        }
        out
    }

    /// The next records (up to `READ_BATCH` from each ring): those already there,
    /// else those found at the next wake-up or drain tick, which may be
    /// none. Either way both read marks have moved, so the caller can
    /// release what it holds every `DRAIN_EVERY` even while no event comes.
    /// Cancel-safe: records are taken only in the synchronous reads.
    pub async fn next_batch(&mut self) -> Result<Vec<Event>, ProbeError> {
        let batch = self.poll(READ_BATCH);
        if !batch.is_empty() {
            return Ok(batch);
        }
        self.wait().await?;
        Ok(self.poll(READ_BATCH))
    }

    /// Until a ring's fd wakes the task (the programs wake the reader only
    /// when a ring is filling up) or the drain timer ticks. Readiness is
    /// edge-triggered: it is cleared here and the caller looks again, so a
    /// record that arrived meanwhile is not missed.
    async fn wait(&mut self) -> Result<(), ProbeError> {
        tokio::select! {
            biased;
            g = self.critical.readable_mut() => g.map_err(ProbeError::Stream)?.clear_ready(),
            g = self.chatty.readable_mut() => g.map_err(ProbeError::Stream)?.clear_ready(),
            _ = self.drain_timer.tick() => {}
        }
        Ok(())
    }

    /// The next event, in ring order (critical first), for a reader that
    /// does not put events in time order (`dsh agent --events`).
    pub async fn next(&mut self) -> Result<Event, ProbeError> {
        loop {
            if self.oom_queue.is_empty() {
                let ooms = self.oom.poll().unwrap_or_default();
                self.oom_queue.extend(ooms);
            }
            if let Some(e) = self.oom_queue.pop_front() {
                return Ok(e);
            }
            while let Some(r) = pop(self.critical.get_mut()).or_else(|| pop(self.chatty.get_mut()))
            {
                match r {
                    Ok(e) => return Ok(e),
                    Err(err) => {
                        self.undecodable += 1;
                        log::warn!("dropping undecodable event: {err}");
                    }
                }
            }
            self.wait().await?;
        }
    }
}

/// Takes everything from the OOM slots and both rings, critical first;
/// undecodable records are counted and dropped.
fn drain(
    oom: &mut OomSlots,
    critical: &mut Ring,
    chatty: &mut Ring,
    undecodable: &mut u64,
) -> Vec<Event> {
    let mut out = oom.poll().unwrap_or_default();
    out.extend(decoded(
        std::iter::from_fn(|| pop(critical).or_else(|| pop(chatty))),
        undecodable,
    ));
    out
}
