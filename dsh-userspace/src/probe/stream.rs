//! The two ring buffers: drained synchronously (`EventRings`) or as one
//! async stream (`EventStream`), critical channel first either way.
use aya::maps::{Map, MapData, RingBuf};
use tokio::io::unix::AsyncFd;

use super::{
    ProbeError,
    event::{DecodeError, Event},
};

type Ring = RingBuf<MapData>;

/// How often the rings are read when no wake-up came: well inside the
/// agent's re-ordering hold (`agent::reorder::HOLD_NS`, 100 ms), so events
/// still leave it in kernel time order; 20 looks a second at two rings
/// cost the idle agent next to nothing (the read is a load from shared
/// memory, no syscall).
pub const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

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

    /// The next event. The programs submit without waking the reader (a
    /// wake-up per event costs microseconds in the kernel) unless a ring is
    /// filling up, so this looks at the rings every `DRAIN_EVERY` as well as
    /// when woken.
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
            // Readiness is edge-triggered: clear it, then look again at the
            // top of the loop, so a record that arrived meanwhile is not missed.
            tokio::select! {
                biased;
                g = self.critical.readable_mut() => g.map_err(ProbeError::Stream)?.clear_ready(),
                g = self.chatty.readable_mut() => g.map_err(ProbeError::Stream)?.clear_ready(),
                _ = self.drain_timer.tick() => {}
            }
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
