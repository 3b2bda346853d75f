//! Kernel timestamps (ns since boot) to wall-clock time.
use nix::time::{ClockId, clock_gettime};

/// Maps `CLOCK_BOOTTIME` nanoseconds to Unix time, fixed at creation (a
/// wall-clock step later shifts nothing already converted).
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    unix_minus_boot_ns: i128,
}

fn ns(clock: ClockId) -> i128 {
    let t = clock_gettime(clock).expect("CLOCK_BOOTTIME and CLOCK_REALTIME exist on Linux");
    t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128
}

impl BootClock {
    pub fn now() -> Self {
        Self {
            unix_minus_boot_ns: ns(ClockId::CLOCK_REALTIME) - ns(ClockId::CLOCK_BOOTTIME),
        }
    }

    pub fn to_timestamp(self, boot_ns: u64) -> jiff::Timestamp {
        let unix = self.unix_minus_boot_ns + boot_ns as i128;
        jiff::Timestamp::from_nanosecond(unix).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// Nanoseconds since boot, now.
    pub fn boot_ns_now() -> u64 {
        ns(ClockId::CLOCK_BOOTTIME) as u64
    }
}
