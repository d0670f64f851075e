//! Room on a local directory's disk, checked before each turn of the raw write and
//! the ingest.
//!
//! Both sides' data stays on the disk until the read phases (removing the raw
//! objects between turns changed what the next turn measured, see `turns`), so a
//! run on a local directory needs about as much room as both sides write: ~2 GB per
//! second of phase on the project's VM. Without a check, a run that does not fit
//! fills the disk halfway, the store's writes fail with "No space left on device"
//! after their retries, and the turns written on a full disk count in the figures.

use std::path::{Path, PathBuf};

use super::MIB;

const GIB: f64 = MIB * 1024.0;

/// Room the raw write's warm-up leaves for the store's first turn and its metadata:
/// that turn is checked at the rates seen in the warm-up, which has to end first.
pub(super) const RESERVE: u64 = 1 << 30;

/// The filesystem a local-directory store writes to.
pub(super) struct Room {
    /// The store's root, which may not exist yet.
    root: PathBuf,
}

impl Room {
    pub(super) fn new(root: &Path) -> Room {
        Room {
            root: root.to_path_buf(),
        }
    }

    /// Bytes an unprivileged writer may still use on the root's filesystem.
    fn available(&self) -> Result<u64, String> {
        // The root is created by the first write: ask the closest directory that
        // exists, which is on the same filesystem unless a mount point lies between.
        let existing = self
            .root
            .ancestors()
            .find(|dir| dir.is_dir())
            .ok_or_else(|| format!("{}: no existing directory above it", self.root.display()))?;
        let stats = rustix::fs::statvfs(existing)
            .map_err(|e| format!("free space of {}: {e}", existing.display()))?;
        Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
    }

    /// Fails, naming the figures, unless `needed` bytes fit on the disk beside what
    /// is there. `what` says what would write them.
    pub(super) fn ensure(&self, needed: u64, what: &str) -> Result<(), String> {
        let available = self.available()?;
        if needed <= available {
            return Ok(());
        }
        Err(format!(
            "{}: {:.1} GiB free, but {what} would write about {:.1} GiB, kept until the read \
             phases; stopped before the disk fills: run with fewer --seconds or on a disk \
             with more room",
            self.root.display(),
            available as f64 / GIB,
            needed as f64 / GIB,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_need_beyond_the_disk_is_refused_with_the_figures() {
        let dir = tempfile::tempdir().expect("temp dir");
        let room = Room::new(&dir.path().join("not/yet/created"));
        room.ensure(1 << 20, "one MiB").expect("a MiB fits");
        let refused = room
            .ensure(u64::MAX, "the next pair of turns")
            .expect_err("more than any disk holds");
        assert!(refused.contains("not/yet/created"), "{refused}");
        assert!(refused.contains("GiB free"), "{refused}");
        assert!(
            refused.contains("the next pair of turns would write about"),
            "{refused}"
        );
        assert!(refused.contains("--seconds"), "{refused}");
    }
}
