//! The two ring buffers: drained synchronously (`EventRings`) or as one
//! async stream (`EventStream`), critical channel first either way.
use aya::maps::{Map, MapData, RingBuf};
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

fn ring(map: Map) -> Result<Ring, ProbeError> {
    RingBuf::try_from(map).map_err(|e| ProbeError::Map("ring buffer", e))
}

fn pop(ring: &mut Ring) -> Option<Result<Event, DecodeError>> {
    ring.next().map(|item| Event::decode(&item))
}

/// Both channels, read without waiting.
pub struct EventRings {
    critical: Ring,
    chatty: Ring,
    /// Records that could not be decoded (a user/kernel ABI mismatch).
    pub undecodable: u64,
}

impl EventRings {
    pub(super) fn new(critical: Map, chatty: Map) -> Result<Self, ProbeError> {
        Ok(Self {
            critical: ring(critical)?,
            chatty: ring(chatty)?,
            undecodable: 0,
        })
    }

    /// Every event already in the buffers.
    pub fn drain(&mut self) -> Vec<Event> {
        drain(&mut self.critical, &mut self.chatty, &mut self.undecodable)
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
            critical: register(self.critical)?,
            chatty: register(self.chatty)?,
            drain_timer: drain,
            undecodable: self.undecodable,
            critical_mark: 0,
            chatty_mark: 0,
        })
    }
}

pub struct EventStream {
    critical: AsyncFd<Ring>,
    chatty: AsyncFd<Ring>,
    /// Kept here, not a sleep made in `next`: callers drop `next`'s future
    /// whenever something else happens first (every 25 ms in the agent),
    /// and a fresh sleep would never run out.
    drain_timer: tokio::time::Interval,
    pub undecodable: u64,
    /// How far each ring has been read (see `read_up_to`).
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
            self.critical.get_mut(),
            self.chatty.get_mut(),
            &mut self.undecodable,
        )
    }

    /// Kernel time up to which both rings have been read: no record still
    /// to come is older, bar one a program is writing at this moment.
    pub fn read_up_to(&self) -> u64 {
        self.critical_mark.min(self.chatty_mark)
    }

    /// Up to `max` records from each ring, critical first, without
    /// waiting; both rings are looked at every time, so both read marks
    /// move even while one ring is flooded.
    fn poll(&mut self, max: usize) -> Vec<Event> {
        let mut out = Vec::new();
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
    /// does not put events in time order (`dsh agent --print-events`).
    pub async fn next(&mut self) -> Result<Event, ProbeError> {
        loop {
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

/// Pops everything from both rings, critical first; undecodable records are
/// counted and dropped.
fn drain(critical: &mut Ring, chatty: &mut Ring, undecodable: &mut u64) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(r) = pop(critical).or_else(|| pop(chatty)) {
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
