//! Collapsing a warning that repeats: the same message is logged at most once per interval, and
//! the next time it is logged it says how many times it came in between — so a Prometheus that is
//! down for a whole fault gives a few lines with counts, not one line per query.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often the same warning is logged at most, by default.
pub const REPEAT_WARNING_AFTER: Duration = Duration::from_secs(60);

/// Which messages were logged when, and how many times each came since.
#[derive(Debug)]
pub struct Repeats {
    every: Duration,
    seen: HashMap<String, (Instant, u64)>,
}

impl Default for Repeats {
    fn default() -> Self {
        Self::new(REPEAT_WARNING_AFTER)
    }
}

impl Repeats {
    /// Logs each message at most once per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            seen: HashMap::new(),
        }
    }

    /// Notes `message` at `now`. `Some(n)`: log it now, saying it came `n` more times since it was
    /// last logged (0 the first time); `None`: stay quiet (it is counted).
    pub fn note(&mut self, message: &str, now: Instant) -> Option<u64> {
        let every = self.every;
        // Forget messages logged long ago with nothing counted since (bounded memory).
        self.seen
            .retain(|_, (at, since)| *since > 0 || now.duration_since(*at) < every);
        match self.seen.get_mut(message) {
            Some((at, since)) if now.duration_since(*at) < every => {
                *since += 1;
                None
            }
            Some((at, since)) => {
                let repeated = *since;
                (*at, *since) = (now, 0);
                Some(repeated)
            }
            None => {
                self.seen.insert(message.to_owned(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_warning_is_logged_once_a_minute_then_with_its_count() {
        let mut repeats = Repeats::default();
        let t0 = Instant::now();
        let down = "Prometheus at http://127.0.0.1:9090 is unreachable: connection refused";
        assert_eq!(repeats.note(down, t0), Some(0));
        for s in 1..15 {
            assert_eq!(repeats.note(down, t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(repeats.note("another failure", t0), Some(0));
        assert_eq!(
            repeats.note(down, t0 + REPEAT_WARNING_AFTER),
            Some(14),
            "logged again, with the 14 it held back"
        );
        assert_eq!(
            repeats.note(down, t0 + REPEAT_WARNING_AFTER + Duration::from_secs(1)),
            None
        );
    }
}
