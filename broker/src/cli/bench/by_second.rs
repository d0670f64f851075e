//! A phase's throughput second by second.

use std::time::Duration;

use super::MIB;

/// Bytes completed in each second of a phase: whether its figure is a steady rate
/// or a burst averaged with a slower rest. The project's VM disk takes writes at
/// 1,400-1,700 MiB/s for some seconds, then at ~580, so a phase's average depends on
/// how much of it fell in the burst.
#[derive(Debug, Default)]
pub(super) struct BySecond {
    bytes: Vec<u64>,
}

impl BySecond {
    pub(super) fn add(&mut self, at: Duration, bytes: u64) {
        let second = at.as_secs() as usize;
        if self.bytes.len() <= second {
            self.bytes.resize(second + 1, 0);
        }
        self.bytes[second] += bytes;
    }

    pub(super) fn merge(&mut self, other: BySecond) {
        for (second, bytes) in other.bytes.into_iter().enumerate() {
            self.add(Duration::from_secs(second as u64), bytes);
        }
    }

    /// MiB/s of each whole second of a phase that lasted `elapsed`.
    pub(super) fn line(&self, elapsed: Duration) -> String {
        let whole = (elapsed.as_secs() as usize).min(self.bytes.len());
        self.bytes[..whole]
            .iter()
            .map(|&bytes| format!("{:.0}", bytes as f64 / MIB))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bytes_in_the_second_they_completed_and_prints_whole_seconds() {
        let mut first = BySecond::default();
        first.add(Duration::from_millis(100), 1 << 20);
        first.add(Duration::from_millis(2500), 3 << 20);
        let mut second = BySecond::default();
        second.add(Duration::from_millis(900), 1 << 20);
        second.add(Duration::from_millis(3100), 7 << 20);
        first.merge(second);
        assert_eq!(first.line(Duration::from_millis(3200)), "2 0 3");
        assert_eq!(first.line(Duration::from_secs(10)), "2 0 3 7");
    }
}
