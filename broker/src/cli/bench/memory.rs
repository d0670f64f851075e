//! Peak memory per benchmark phase: the process's RSS (`VmHWM`) and, sampled beside
//! it, jemalloc's live allocations and resident pages, so a peak above budget can be
//! told apart as the store's data or the allocator's pages.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::MIB;
use crate::observability::allocator::AllocatorStats;

/// How often the allocator is sampled: short enough to catch an upload's buffers.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// The peaks of one phase, in MiB.
#[derive(Debug, Clone)]
pub(super) struct PhasePeak {
    pub name: &'static str,
    pub rss: f64,
    /// Largest live allocations; `None` without jemalloc statistics.
    pub allocated: Option<f64>,
    /// Largest bytes in pages holding live allocations: above `allocated` by the
    /// slack in those pages.
    pub active: Option<f64>,
    /// Largest resident pages: above `active` by freed pages not yet returned and
    /// the allocator's metadata.
    pub resident: Option<f64>,
}

/// Tracks peaks from [`Memory::reset`] to [`Memory::peak`].
pub(super) struct Memory {
    peaks: Arc<Peaks>,
    sampler: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Peaks {
    allocated: AtomicU64,
    active: AtomicU64,
    resident: AtomicU64,
}

impl Peaks {
    fn all(&self) -> [&AtomicU64; 3] {
        [&self.allocated, &self.active, &self.resident]
    }
}

impl Memory {
    pub(super) fn start() -> Self {
        let peaks = Arc::new(Peaks::default());
        let sampled = peaks.clone();
        let sampler = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(SAMPLE_EVERY);
            loop {
                ticks.tick().await;
                if let Some(stats) = AllocatorStats::read() {
                    sampled
                        .allocated
                        .fetch_max(stats.allocated, Ordering::Relaxed);
                    sampled.active.fetch_max(stats.active, Ordering::Relaxed);
                    sampled
                        .resident
                        .fetch_max(stats.resident, Ordering::Relaxed);
                }
            }
        });
        Memory { peaks, sampler }
    }

    /// Starts a new phase: peaks from now on.
    pub(super) fn reset(&self) {
        reset_peak_rss();
        for peak in self.peaks.all() {
            peak.store(0, Ordering::Relaxed);
        }
    }

    /// The peaks since the last reset.
    pub(super) fn peak(&self, name: &'static str) -> PhasePeak {
        let mib = |bytes: &AtomicU64| {
            let bytes = bytes.load(Ordering::Relaxed);
            (bytes > 0).then(|| bytes as f64 / MIB)
        };
        PhasePeak {
            name,
            rss: peak_rss_mib(),
            allocated: mib(&self.peaks.allocated),
            active: mib(&self.peaks.active),
            resident: mib(&self.peaks.resident),
        }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        self.sampler.abort();
    }
}

impl PhasePeak {
    /// The larger of each figure: one phase measured in parts.
    pub(super) fn max(self, other: PhasePeak) -> PhasePeak {
        let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        PhasePeak {
            name: self.name,
            rss: self.rss.max(other.rss),
            allocated: max(self.allocated, other.allocated),
            active: max(self.active, other.active),
            resident: max(self.resident, other.resident),
        }
    }
}

impl std::fmt::Display for PhasePeak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:.1}", self.name, self.rss)?;
        if let (Some(allocated), Some(active), Some(resident)) =
            (self.allocated, self.active, self.resident)
        {
            write!(
                f,
                " (allocated {allocated:.1}, in active pages {active:.1}, allocator resident {resident:.1})"
            )?;
        }
        Ok(())
    }
}

/// The process's peak RSS since the last [`reset_peak_rss`], in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Starts a new peak-RSS measurement (Linux: `5` to `clear_refs` resets `VmHWM` to
/// the current RSS). Without it the peaks are those since the process started.
fn reset_peak_rss() {
    if let Err(err) = std::fs::write("/proc/self/clear_refs", "5") {
        tracing::debug!(error = %err, "cannot reset the peak RSS; peaks are cumulative");
    }
}
