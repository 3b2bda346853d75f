//! Timed readings of cumulative counters, kept over a window: the shape the
//! TCP figures share (a namespace's counters, the kernel's connects and a
//! cgroup's socket counters), each turned into rates over a span.
use std::collections::VecDeque;

use jiff::{SignedDuration, Timestamp};

/// Readings oldest first.
#[derive(Clone, Debug)]
pub struct Readings<T> {
    at: VecDeque<(Timestamp, T)>,
}

impl<T> Default for Readings<T> {
    fn default() -> Self {
        Self {
            at: VecDeque::new(),
        }
    }
}

impl<T> Readings<T> {
    /// Adds a reading. One that does not follow the last (`follows(new,
    /// last)` false: a counter went down, a new namespace) starts the
    /// window again; readings older than `keep` are let go.
    pub fn push(
        &mut self,
        now: Timestamp,
        v: T,
        keep: SignedDuration,
        follows: impl Fn(&T, &T) -> bool,
    ) {
        if self.at.back().is_some_and(|(_, last)| !follows(&v, last)) {
            self.at.clear();
        }
        self.at.push_back((now, v));
        while self
            .at
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > keep)
        {
            self.at.pop_front();
        }
    }

    pub fn last(&self) -> Option<&T> {
        self.at.back().map(|(_, v)| v)
    }

    pub fn clear(&mut self) {
        self.at.clear();
    }

    /// The latest reading, the oldest within `span` of `now`, and the
    /// seconds between them (none unless more than zero).
    pub fn over(&self, now: Timestamp, span: SignedDuration) -> Option<(&T, &T, f64)> {
        let (t1, last) = self.at.back()?;
        let (t0, first) = self
            .at
            .iter()
            .find(|(t, _)| now.duration_since(*t) <= span)?;
        let dt = t1.duration_since(*t0).as_secs_f64();
        (dt > 0.0).then_some((last, first, dt))
    }

    /// The last two readings and the seconds between them.
    pub fn latest_two(&self) -> Option<(&T, &T, f64)> {
        let n = self.at.len();
        let (t1, last) = self.at.get(n.checked_sub(1)?)?;
        let (t0, prev) = self.at.get(n.checked_sub(2)?)?;
        let dt = t1.duration_since(*t0).as_secs_f64();
        (dt > 0.0).then_some((last, prev, dt))
    }
}

#[cfg(test)]
mod tests {
    use super::Readings;
    use jiff::{SignedDuration, Timestamp};

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).expect("a time")
    }

    #[test]
    fn spans_keep_and_restart() {
        let keep = SignedDuration::from_secs(10);
        let mut r = Readings::default();
        let follows = |n: &u64, l: &u64| n >= l;
        for s in 0..=20 {
            r.push(at(s), s as u64 * 2, keep, follows);
        }
        // Kept: seconds 10 to 20; over the last 5 s: 30 -> 40 in 5 s.
        assert_eq!(
            r.over(at(20), SignedDuration::from_secs(5)),
            Some((&40, &30, 5.0))
        );
        assert_eq!(
            r.over(at(20), SignedDuration::from_secs(60)),
            Some((&40, &20, 10.0))
        );
        assert_eq!(r.latest_two(), Some((&40, &38, 1.0)));
        // A counter that went down starts again: one reading, no span.
        r.push(at(21), 1, keep, follows);
        assert_eq!(r.last(), Some(&1));
        assert_eq!(r.over(at(21), SignedDuration::from_secs(5)), None);
        assert_eq!(r.latest_two(), None);
    }
}
