//! jemalloc's own accounting, beside the process RSS: what the broker's live
//! allocations hold (`allocated`), what the allocator keeps in pages of its own
//! (`active`, `resident`) and what it has mapped but handed back (`retained`).
//! RSS above `allocated` is the allocator's, not a leak of the broker's.

use metrics::gauge;

/// One reading of jemalloc's statistics, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Bytes in live allocations.
    pub allocated: u64,
    /// Bytes in pages holding live allocations (allocated plus their pages' slack).
    pub active: u64,
    /// Bytes of physically resident pages the allocator maps, its metadata included.
    pub resident: u64,
    /// Bytes of virtual memory returned to the OS but kept mapped for reuse.
    pub retained: u64,
}

impl AllocatorStats {
    /// The current figures; `None` when jemalloc is not the allocator of this
    /// process (unit tests) or its statistics cannot be read.
    pub fn read() -> Option<Self> {
        use tikv_jemalloc_ctl::{epoch, stats};
        // The statistics are a snapshot taken when the epoch advances.
        epoch::advance().ok()?;
        let stats = AllocatorStats {
            allocated: stats::allocated::read().ok()? as u64,
            active: stats::active::read().ok()? as u64,
            resident: stats::resident::read().ok()? as u64,
            retained: stats::retained::read().ok()? as u64,
        };
        (stats.resident > 0).then_some(stats)
    }
}

/// Sets the `strata_allocator_*` gauges from a fresh reading.
pub fn record() {
    if let Some(stats) = AllocatorStats::read() {
        gauge!("strata_allocator_allocated_bytes").set(stats.allocated as f64);
        gauge!("strata_allocator_active_bytes").set(stats.active as f64);
        gauge!("strata_allocator_resident_bytes").set(stats.resident as f64);
        gauge!("strata_allocator_retained_bytes").set(stats.retained as f64);
    }
}
