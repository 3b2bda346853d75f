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
        Ok(EventStream {
            critical: register(self.critical)?,
            chatty: register(self.chatty)?,
            undecodable: self.undecodable,
            critical_mark: 0,
            chatty_mark: 0,
        })
    }
}

pub struct EventStream {
    critical: AsyncFd<Ring>,
    chatty: AsyncFd<Ring>,
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
    pub fn poll(&mut self, max: usize) -> Vec<Event> {
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

    /// The next records (up to `max` from each ring), waiting for some
    /// without polling: the ring buffers' fds wake the task.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Event>, ProbeError> {
        loop {
            let batch = self.poll(max);
            if !batch.is_empty() {
                return Ok(batch);
            }
            self.wait_readable().await?;
        }
    }

    /// Edge-triggered readiness: clear it, then look again (the caller
    /// loops), so a record that arrived meanwhile is not missed.
    async fn wait_readable(&mut self) -> Result<(), ProbeError> {
        tokio::select! {
            biased;
            g = self.critical.readable_mut() => g.map_err(ProbeError::Stream)?.clear_ready(),
            g = self.chatty.readable_mut() => g.map_err(ProbeError::Stream)?.clear_ready(),
        }
        Ok(())
    }

    /// The next event. Waits without polling: the ring buffers' fds wake
    /// the task when the kernel submits records.
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
            self.wait_readable().await?;
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
