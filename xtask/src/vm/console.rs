//! Reading a test VM's serial console: the `DSHVM:` lines its `/init`
//! prints, libtest's `test NAME ... ok|FAILED` lines, panic messages, and
//! what a missing result means.
use std::{collections::BTreeMap, time::Duration};

/// What libtest said about one test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Ok,
    Failed,
    Ignored,
}

/// Everything the console said, as read.
#[derive(Debug, Default)]
pub struct Console {
    /// `uname -r` as the guest printed it.
    pub kernel: Option<String>,
    /// The layout line of `/init` (hierarchies or controllers).
    pub layout: Option<String>,
    pub setup_failed: Option<String>,
    tests_started: bool,
    pub tests_exit: Option<i32>,
    /// `/init` got to the end.
    pub done: bool,
    verdicts: BTreeMap<String, Verdict>,
    /// A test libtest announced but gave no verdict for.
    unfinished: Option<String>,
    /// Test name → first line of its panic message (with its location).
    panics: BTreeMap<String, String>,
    pub kernel_panic: Option<String>,
}

/// One expected test's result in one VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Failed, or no result: the reason.
    Failed(String),
}

impl Outcome {
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Passed)
    }
}

/// A test's line as libtest prints it: `test NAME ... ok`, or, when the
/// test wrote to the console itself, `test NAME ... ` then its output and
/// the verdict alone on a later line.
enum TestLine {
    Started(String),
    Verdict(String, Verdict),
}

/// Follows libtest's lines, remembering which test awaits its verdict.
#[derive(Default)]
struct Progress {
    pending: Option<String>,
}

fn verdict(word: &str) -> Option<Verdict> {
    match word {
        "ok" => Some(Verdict::Ok),
        "FAILED" => Some(Verdict::Failed),
        v if v.starts_with("ignored") => Some(Verdict::Ignored),
        _ => None,
    }
}

impl Progress {
    fn read(&mut self, line: &str) -> Option<TestLine> {
        if let Some(rest) = line.strip_prefix("test ")
            && let Some((name, after)) = rest.split_once(" ...")
        {
            return Some(match verdict(after.trim()) {
                Some(v) => {
                    self.pending = None;
                    TestLine::Verdict(name.to_owned(), v)
                }
                None => {
                    self.pending = Some(name.to_owned());
                    TestLine::Started(name.to_owned())
                }
            });
        }
        let v = verdict(line)?;
        let name = self.pending.take()?;
        Some(TestLine::Verdict(name, v))
    }
}

pub fn parse(text: &str) -> Console {
    let mut c = Console::default();
    let mut progress = Progress::default();
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    for (i, raw) in lines.iter().enumerate() {
        // The guest's first line shares the console with the firmware's
        // escape sequences: look for our markers anywhere in a line.
        if let Some(at) = raw.find("DSHVM:") {
            let (word, rest) = raw[at + 6..]
                .split_once(' ')
                .unwrap_or((&raw[at + 6..], ""));
            match word {
                "kernel" => c.kernel = Some(rest.to_owned()),
                "layout" => c.layout = Some(rest.to_owned()),
                "setup-failed" => c.setup_failed = Some(rest.to_owned()),
                "tests-start" => c.tests_started = true,
                "tests-exit" => c.tests_exit = rest.trim().parse().ok(),
                "done" => c.done = true,
                _ => {}
            }
            continue;
        }
        let line = raw.trim();
        match progress.read(line) {
            Some(TestLine::Verdict(name, v)) => {
                c.verdicts.insert(name, v);
                continue;
            }
            Some(TestLine::Started(name)) => {
                c.unfinished = Some(name);
                continue;
            }
            None => {}
        }
        if let Some(rest) = line.strip_prefix("thread '")
            && let Some((name, after)) = rest.split_once('\'')
            && let Some(at) = after.find("panicked at ")
        {
            let location = after[at + 12..].trim_end_matches(':');
            let message = lines[i + 1..]
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.is_empty())
                .unwrap_or("");
            c.panics
                .entry(name.to_owned())
                .or_insert_with(|| shorten(&format!("{message} ({location})")));
            continue;
        }
        if let Some(at) = line.find("Kernel panic") {
            c.kernel_panic.get_or_insert_with(|| line[at..].to_owned());
        }
    }
    // A verdict that came after all is not unfinished.
    if c.unfinished
        .as_ref()
        .is_some_and(|u| c.verdicts.contains_key(u))
    {
        c.unfinished = None;
    }
    c
}

/// How long each test took: from the previous verdict (or the start of
/// the tests) to its own, by when the lines reached the host.
pub fn test_times(lines: &[(Duration, String)]) -> BTreeMap<String, Duration> {
    let mut out = BTreeMap::new();
    let mut since = None;
    let mut progress = Progress::default();
    for (at, line) in lines {
        if line.contains("DSHVM:tests-start") {
            since = Some(*at);
        } else if let Some(TestLine::Verdict(name, _)) = progress.read(line.trim())
            && let Some(t0) = since
        {
            out.insert(name, at.saturating_sub(t0));
            since = Some(*at);
        }
    }
    out
}

fn shorten(s: &str) -> String {
    const MAX: usize = 300;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

impl Console {
    /// Each expected test's outcome; a missing result is a failure with
    /// the likeliest reason.
    pub fn outcomes(&self, expected: &[&str], timed_out: bool) -> Vec<(String, Outcome)> {
        expected
            .iter()
            .map(|name| (name.to_string(), self.outcome(name, timed_out)))
            .collect()
    }

    fn outcome(&self, name: &str, timed_out: bool) -> Outcome {
        let failed = |why: &str| Outcome::Failed(why.to_owned());
        match self.verdicts.get(name) {
            Some(Verdict::Ok) => return Outcome::Passed,
            Some(Verdict::Failed) => {
                return failed(
                    self.panics
                        .get(name)
                        .map_or("failed (no panic message on the console)", String::as_str),
                );
            }
            Some(Verdict::Ignored) => return failed("ignored: a VM test must run"),
            None => {}
        }
        if let Some(why) = &self.setup_failed {
            return failed(&format!("not run: VM setup failed: {why}"));
        }
        if self.unfinished.as_deref() == Some(name) {
            return match (&self.kernel_panic, timed_out) {
                (Some(p), _) => failed(&format!("crashed the kernel: {p}")),
                (None, true) => failed("hung: still running when the VM timed out"),
                (None, false) => failed("the VM ended while it ran"),
            };
        }
        if let Some(p) = &self.kernel_panic {
            return failed(&format!("not run: {p}"));
        }
        if timed_out {
            return failed("not run: the VM timed out before it");
        }
        if !self.tests_started {
            return failed("not run: the VM never started the tests");
        }
        failed("no result on the console (is its name in the VM test list right?)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "\x1b[2JDSHVM:kernel 6.12.117+deb13-amd64\r
DSHVM:layout v2 controllers: cpu io memory pids\r
DSHVM:tests-start\r
\r
running 3 tests\r
test a::passes ... ok\r
test b::fails ... FAILED\r
test c::hangs ... ";

    #[test]
    fn verdicts_panics_and_a_hang() {
        let text = format!(
            "{RUN}\nthread 'b::fails' (91) panicked at tests/b.rs:3:5:\nloading dsh's programs failed: boom\n"
        );
        let c = parse(&text);
        assert_eq!(c.kernel.as_deref(), Some("6.12.117+deb13-amd64"));
        assert!(c.layout.as_deref().unwrap().starts_with("v2 "));
        let out = c.outcomes(&["a::passes", "b::fails", "c::hangs", "d::never"], true);
        assert_eq!(out[0].1, Outcome::Passed);
        assert_eq!(
            out[1].1,
            Outcome::Failed("loading dsh's programs failed: boom (tests/b.rs:3:5)".into())
        );
        assert_eq!(
            out[2].1,
            Outcome::Failed("hung: still running when the VM timed out".into())
        );
        assert_eq!(
            out[3].1,
            Outcome::Failed("not run: the VM timed out before it".into())
        );
    }

    #[test]
    fn setup_failure_and_kernel_panic_explain_missing_results() {
        let c = parse("DSHVM:kernel 5.10\nDSHVM:setup-failed mount /dev/vda (ext4)\nDSHVM:done\n");
        assert!(c.done);
        assert_eq!(
            c.outcomes(&["x"], false)[0].1,
            Outcome::Failed("not run: VM setup failed: mount /dev/vda (ext4)".into())
        );
        let c = parse(&format!(
            "{RUN}\n[ 9.1] Kernel panic - not syncing: Attempted to kill init!\n"
        ));
        let out = c.outcomes(&["c::hangs", "d::never"], false);
        assert_eq!(
            out[0].1,
            Outcome::Failed(
                "crashed the kernel: Kernel panic - not syncing: Attempted to kill init!".into()
            )
        );
        assert!(matches!(&out[1].1, Outcome::Failed(w) if w.starts_with("not run: Kernel panic")));
    }

    #[test]
    fn times_between_verdicts() {
        let at = |s| Duration::from_secs(s);
        let lines = [
            (at(3), "DSHVM:tests-start".to_owned()),
            (at(5), "running 2 tests".to_owned()),
            (at(10), "test a ... ok".to_owned()),
            (at(30), "test b ... FAILED".to_owned()),
        ];
        let t = test_times(&lines);
        assert_eq!((t["a"], t["b"]), (at(7), at(20)));
    }

    /// A test that writes to the console itself gets its verdict on a
    /// line of its own, after its output.
    #[test]
    fn a_verdict_after_the_tests_own_output() {
        let text = "DSHVM:tests-start
test s::speaks ... hash: 100000 syscalls for 100000 calls
ok
test s::fails ... no cgroup local storage here
FAILED
test s::next ... ok
ok
";
        let c = parse(text);
        let out = c.outcomes(&["s::speaks", "s::fails", "s::next"], false);
        assert_eq!(out[0].1, Outcome::Passed);
        assert!(matches!(&out[1].1, Outcome::Failed(w) if w.contains("no panic message")));
        assert_eq!(out[2].1, Outcome::Passed);
        let at = |s| Duration::from_secs(s);
        let lines: Vec<(Duration, String)> = text
            .lines()
            .zip([1, 2, 4, 5, 7, 8, 9])
            .map(|(l, t)| (at(t), l.to_owned()))
            .collect();
        let t = test_times(&lines);
        assert_eq!(
            (t["s::speaks"], t["s::fails"], t["s::next"]),
            (at(3), at(3), at(1))
        );
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn a_finished_run() {
        let c = parse(&format!("{RUN}ok\nDSHVM:tests-exit 101\nDSHVM:done\n"));
        assert_eq!(c.tests_exit, Some(101));
        assert!(c.done);
        assert_eq!(c.outcomes(&["c::hangs"], false)[0].1, Outcome::Passed);
        assert!(matches!(
            &c.outcomes(&["b::fails"], false)[0].1,
            Outcome::Failed(w) if w.contains("no panic message")
        ));
    }
}
