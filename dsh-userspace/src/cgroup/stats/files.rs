//! Where the readers get a file's text: cgroupfs through kept-open files
//! (`Reader`), or given contents (`Texts`, for tests and fuzzing).
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::StatsError;

/// Linux ENODEV (19 on every architecture): what reading a cgroupfs file returns
/// when the file was opened before its cgroup was removed.
const ENODEV: i32 = 19;
/// Reads files into one reused buffer, keeping them open for the next time.
#[derive(Default)]
pub(super) struct Reader {
    /// The last file read: its bytes are `bytes[..len]`; `bytes` only
    /// grows, so reads after the first neither allocate nor zero it.
    pub(super) bytes: Vec<u8>,
    pub(super) len: usize,
    /// Cgroup directory → its files held open, by name. Keyed by the
    /// directory's bytes: `Path`'s component-wise hash and equality were a
    /// tenth of the agent's time with 500 cgroups.
    pub(super) open: HashMap<OsString, Vec<(&'static str, Slot)>>,
    /// Files not held yet are opened, read and closed (not kept).
    pub(super) close_after: bool,
}

/// One file of a cgroup directory: held open, or found absent (its
/// controller not enabled there) and not looked for again until `RECHECK`
/// has passed (a failed open and a stat of the directory per tick each).
pub(super) enum Slot {
    Open(File),
    Absent(Instant),
}

/// How long an absent file is taken to stay absent (a cgroup v2 controller
/// can be enabled after the cgroup was made).
const RECHECK: Duration = Duration::from_secs(10);

/// Where the readers get a file's text from: cgroupfs (`Reader`), or given
/// contents (`Texts`).
pub(super) trait Files {
    /// Reads `dir/name` and parses it. Ok(None): the file is absent but `dir`
    /// still exists (controller not enabled). A parser error is the offending line.
    fn parse<T>(
        &mut self,
        dir: &Path,
        name: &'static str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, StatsError>;
}

pub(super) struct Texts<F>(pub(super) F);

impl<F: FnMut(&Path) -> Option<String>> Files for Texts<F> {
    fn parse<T>(
        &mut self,
        dir: &Path,
        name: &'static str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, StatsError> {
        let path = dir.join(name);
        match (self.0)(&path) {
            Some(text) => f(&text)
                .map(Some)
                .map_err(|line| StatsError::Malformed { path, line }),
            None => Ok(None),
        }
    }
}

impl Reader {
    /// The whole file `dir/name` from offset 0 into `bytes[..len]`, through a
    /// kept-open fd. Ok(false): the file was found absent lately.
    fn fill(&mut self, dir: &Path, name: &'static str) -> io::Result<bool> {
        use std::os::unix::fs::FileExt as _;
        let files = match self.open.get_mut(dir.as_os_str()) {
            Some(files) => files,
            None => self.open.entry(dir.as_os_str().to_owned()).or_default(),
        };
        let found = files.iter().position(|(n, _)| *n == name);
        if let Some(at) = found
            && let Slot::Absent(since) = &files[at].1
        {
            if since.elapsed() < RECHECK {
                return Ok(false);
            }
            files.swap_remove(at);
        }
        let once;
        let (file, at) = match found.filter(|&at| at < files.len() && files[at].0 == name) {
            Some(at) => match &files[at].1 {
                Slot::Open(f) => (f, Some(at)),
                Slot::Absent(_) => return Ok(false),
            },
            None if self.close_after => {
                once = File::open(dir.join(name))?;
                (&once, None)
            }
            None => {
                files.push((name, Slot::Open(File::open(dir.join(name))?)));
                let at = files.len() - 1;
                match &files[at].1 {
                    Slot::Open(f) => (f, Some(at)),
                    Slot::Absent(_) => return Ok(false),
                }
            }
        };
        const CHUNK: usize = 4096;
        let mut len = 0;
        loop {
            if self.bytes.len() < len + CHUNK {
                self.bytes.resize(len + CHUNK, 0);
            }
            let n = match file.read_at(&mut self.bytes[len..len + CHUNK], len as u64) {
                Ok(n) => n,
                Err(e) => {
                    if let Some(at) = at {
                        files.swap_remove(at);
                    }
                    return Err(e);
                }
            };
            len += n;
            // cgroupfs files are seq files: one read returns everything
            // that fits, so a short read is the end (no second read for 0).
            if n < CHUNK {
                break;
            }
        }
        self.len = len;
        Ok(true)
    }

    /// Remembers that `dir/name` is absent while `dir` exists.
    fn absent(&mut self, dir: &Path, name: &'static str) {
        let files = self.open.entry(dir.as_os_str().to_owned()).or_default();
        files.retain(|(n, _)| *n != name);
        files.push((name, Slot::Absent(Instant::now())));
    }
}

impl Files for Reader {
    fn parse<T>(
        &mut self,
        dir: &Path,
        name: &'static str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, StatsError> {
        match self.fill(dir, name) {
            // Valid UTF-8 (always, from the kernel) is parsed in place.
            Ok(true) => match std::str::from_utf8(&self.bytes[..self.len]) {
                Ok(text) => f(text),
                Err(_) => f(&String::from_utf8_lossy(&self.bytes[..self.len])),
            }
            .map(Some)
            .map_err(|line| StatsError::Malformed {
                path: dir.join(name),
                line,
            }),
            Ok(false) => Ok(None),
            Err(e) if e.raw_os_error() == Some(ENODEV) => Err(StatsError::Vanished(dir.to_owned())),
            // A file the kernel shows but will not serve (`*.pressure` with
            // psi=0 on kernels before 6.1): absent, not looked at again
            // until RECHECK has passed.
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                self.absent(dir, name);
                Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::metadata(dir) {
                Err(d) if d.kind() == io::ErrorKind::NotFound => {
                    self.open.remove(dir.as_os_str());
                    Err(StatsError::Vanished(dir.to_owned()))
                }
                _ => {
                    self.absent(dir, name);
                    Ok(None)
                }
            },
            Err(source) => Err(StatsError::Io {
                path: dir.join(name),
                source,
            }),
        }
    }
}
