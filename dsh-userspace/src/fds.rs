//! The process's file descriptors: its open-files limit, how many it holds,
//! and one kept in reserve so a server out of descriptors can still take a
//! client off its listen queue and tell it why instead of leaving it to
//! hang.
use std::{
    fs::File,
    io,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// `RLIMIT_NOFILE` as the agent runs under it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NofileLimit {
    pub soft: u64,
    pub hard: u64,
    /// The soft limit the process was started with, when it was raised.
    pub raised_from: Option<u64>,
}

/// The open-files limit now.
pub fn nofile_limit() -> io::Result<NofileLimit> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    Ok(NofileLimit {
        soft,
        hard,
        raised_from: None,
    })
}

/// Raises the soft open-files limit to the hard one, as Go's runtime does
/// at start: systemd gives services 1,024 unless the unit says otherwise,
/// and Rust's standard library leaves the soft limit as it found it. The
/// soft limit only guards programs that use `select(2)`; dsh does not.
pub fn raise_soft_limit() -> io::Result<NofileLimit> {
    let before = nofile_limit()?;
    if before.soft >= before.hard {
        return Ok(before);
    }
    setrlimit(Resource::RLIMIT_NOFILE, before.hard, before.hard).map_err(io::Error::from)?;
    Ok(NofileLimit {
        raised_from: Some(before.soft),
        ..nofile_limit()?
    })
}

/// Descriptors the process holds now: the size `stat` gives
/// `/proc/self/fd` (Linux 6.2+: the count, no listing), else its entries
/// less the one the listing itself holds (a listing of 17,000 entries took
/// 10 ms here).
pub fn open_count() -> io::Result<u64> {
    let size = std::fs::metadata("/proc/self/fd")?.len();
    if size > 0 {
        return Ok(size);
    }
    let n = std::fs::read_dir("/proc/self/fd")?.count() as u64;
    Ok(n.saturating_sub(1))
}

/// Whether an error is the process (EMFILE) or the system (ENFILE) out of
/// file descriptors.
pub fn exhausted(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Whether an error's text says the same (errors that crossed a library as
/// strings: a runtime client's, a loader's).
pub fn exhausted_text(text: &str) -> bool {
    text.contains("Too many open files") || text.contains("os error 24")
}

/// Clients turned away (told so) because the process was out of descriptors.
static CLIENTS_REFUSED: AtomicU64 = AtomicU64::new(0);

pub fn clients_refused() -> u64 {
    CLIENTS_REFUSED.load(Ordering::Relaxed)
}

pub fn count_refused_client() {
    CLIENTS_REFUSED.fetch_add(1, Ordering::Relaxed);
}

/// One descriptor held back for the moment the process runs out: released
/// to accept a waiting client (and tell it so), taken again after.
pub struct Spare(Option<File>);

impl Spare {
    pub fn new() -> Self {
        Self(File::open("/dev/null").ok())
    }

    /// Frees the descriptor for one use; `restore` takes it back.
    pub fn release(&mut self) {
        self.0 = None;
    }

    pub fn restore(&mut self) {
        if self.0.is_none() {
            self.0 = File::open("/dev/null").ok();
        }
    }
}

impl Default for Spare {
    fn default() -> Self {
        Self::new()
    }
}

/// How long the spare descriptor waits for the client it makes way for, and
/// how long a server backs off after a failed accept.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// After a server's accept failed with `err`: when the process is out of
/// descriptors, the spare one takes the waiting client off the listen queue
/// (`accept` again, waiting at most 100 ms) and `refuse` tells it why, so it
/// is not left to time out. Either way the error is logged under `server`
/// and the server backs off 100 ms instead of spinning.
pub async fn after_failed_accept<S, A, F>(
    err: &io::Error,
    server: &str,
    spare: &mut Spare,
    accept: impl FnOnce() -> F,
    refuse: impl FnOnce(&S),
) where
    F: Future<Output = io::Result<(S, A)>>,
{
    if exhausted(err) {
        spare.release();
        if let Ok(Ok((stream, _))) = tokio::time::timeout(ACCEPT_PAUSE, accept()).await {
            refuse(&stream);
            count_refused_client();
        }
        spare.restore();
    }
    log::warn!("{server}: accept: {err}");
    tokio::time::sleep(ACCEPT_PAUSE).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_raised_to_hard_and_descriptors_counted() {
        let raised = raise_soft_limit().expect("raise");
        assert_eq!(raised.soft, raised.hard);
        let before = open_count().expect("count");
        let f = File::open("/dev/null").expect("open");
        // Other tests' threads open files too: at least one more.
        assert!(open_count().expect("count") > before || before > 1000);
        drop(f);
        assert!(exhausted(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(!exhausted(&io::Error::from_raw_os_error(libc::ENOENT)));
        assert!(exhausted_text("connect: Too many open files (os error 24)"));
        let mut s = Spare::new();
        assert!(s.0.is_some());
        s.release();
        assert!(s.0.is_none());
        s.restore();
        assert!(s.0.is_some());
    }
}
