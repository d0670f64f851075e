//! The stream-store issue's targets (the table in docs/benchmarks.md), judged on
//! one run's figures: a run says what it met, for the WAL kind it ran, rather than
//! leaving the reader to hold each figure against its target by hand.

use std::fmt;
use std::time::Duration;

use super::ms;

/// The local WAL's append p99 at the fixed rate.
const LOCAL_WAL_P99: Duration = Duration::from_millis(5);
/// The rate the local WAL's p99 must hold at, MiB/s; a phase within 2 % of it counts.
const SUSTAINED_MIB: f64 = 50.0;
const SUSTAINED_SHARE: f64 = 0.98;
/// Ingest and cold reads against the raw operator's write and ranged read.
const SHARE_OF_RAW: f64 = 80.0;
/// Objects per GiB ingested with the local WAL (objects averaging 8 MiB or more).
const MAX_PUTS_PER_GIB: f64 = 128.0;
/// Peak RSS above the configured caches.
pub(super) const RSS_ALLOWANCE_MIB: f64 = 128.0;

/// What one run measured, as its figures were printed.
pub(super) struct Figures {
    /// The fixed-rate phase's append rate (MiB/s) and p99.
    pub fixed_rate_mib: f64,
    pub fixed_p99: Duration,
    /// With the object WAL: the window plus two raw PUT p99s, and the windows
    /// written and objects committed by the ingest phases.
    pub object_wal: Option<ObjectWalFigures>,
    /// Unthrottled ingest as a percentage of the raw write.
    pub ingest_share: f64,
    pub puts_per_gib: f64,
    /// Cold reads as percentages of the raw ranged read: as written, then compacted.
    pub cold_share: f64,
    pub compacted_share: f64,
    pub peak_rss_mib: f64,
    /// The configured caches plus [`RSS_ALLOWANCE_MIB`].
    pub rss_budget_mib: f64,
}

pub(super) struct ObjectWalFigures {
    pub bound: Duration,
    pub windows: u64,
    pub objects: u64,
}

/// One target's line: what it asks, what the run measured, whether that meets it.
#[derive(Debug, PartialEq)]
pub(super) struct Verdict {
    pub target: &'static str,
    pub measured: String,
    pub met: bool,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let met = if self.met { "met" } else { "NOT MET" };
        write!(f, "    {:<46} {:<30} {met}", self.target, self.measured)
    }
}

/// Every target that applies to the run's WAL kind.
pub(super) fn judge(figures: &Figures) -> Vec<Verdict> {
    let mut verdicts = Vec::with_capacity(7);
    match &figures.object_wal {
        None => {
            let sustained = figures.fixed_rate_mib >= SUSTAINED_MIB * SUSTAINED_SHARE;
            verdicts.push(Verdict {
                target: "local WAL p99 ≤ 5 ms sustaining 50 MiB/s",
                measured: format!(
                    "{:.2} ms at {:.1} MiB/s",
                    ms(figures.fixed_p99),
                    figures.fixed_rate_mib
                ),
                met: sustained && figures.fixed_p99 <= LOCAL_WAL_P99,
            });
        }
        Some(object_wal) => verdicts.push(Verdict {
            target: "object WAL p99 ≤ window + 2 PUT p99s",
            measured: format!(
                "{:.2} ms against {:.2} ms",
                ms(figures.fixed_p99),
                ms(object_wal.bound)
            ),
            met: figures.fixed_p99 <= object_wal.bound,
        }),
    }
    verdicts.push(share(
        "ingest ≥ 80 % of the raw write",
        figures.ingest_share,
    ));
    match &figures.object_wal {
        None => verdicts.push(Verdict {
            target: "≤ 128 PUTs per GiB ingested",
            measured: format!("{:.1}", figures.puts_per_gib),
            met: figures.puts_per_gib <= MAX_PUTS_PER_GIB,
        }),
        Some(object_wal) => verdicts.push(Verdict {
            target: "one PUT per object WAL window",
            measured: format!(
                "{} objects for {} windows",
                object_wal.objects, object_wal.windows
            ),
            met: object_wal.windows > 0 && object_wal.objects <= object_wal.windows,
        }),
    }
    verdicts.push(share(
        "cold read ≥ 80 % of the raw read",
        figures.cold_share,
    ));
    verdicts.push(share(
        "cold read, compacted, ≥ 80 % of the raw read",
        figures.compacted_share,
    ));
    verdicts.push(Verdict {
        target: "peak RSS ≤ caches + 128 MiB",
        measured: format!(
            "{:.1} MiB of {:.0}",
            figures.peak_rss_mib, figures.rss_budget_mib
        ),
        met: figures.peak_rss_mib <= figures.rss_budget_mib,
    });
    verdicts
}

fn share(target: &'static str, percent: f64) -> Verdict {
    Verdict {
        target,
        measured: format!("{percent:.0} %"),
        met: percent >= SHARE_OF_RAW,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local_wal_run() -> Figures {
        Figures {
            fixed_rate_mib: 49.9,
            fixed_p99: Duration::from_micros(2_090),
            object_wal: None,
            ingest_share: 31.0,
            puts_per_gib: 67.7,
            cold_share: 47.0,
            compacted_share: 113.0,
            peak_rss_mib: 366.5,
            rss_budget_mib: 384.0 + RSS_ALLOWANCE_MIB,
        }
    }

    fn met(verdicts: &[Verdict]) -> Vec<(&'static str, bool)> {
        verdicts.iter().map(|v| (v.target, v.met)).collect()
    }

    #[test]
    fn a_local_wal_run_is_judged_on_each_of_its_targets() {
        assert_eq!(
            met(&judge(&local_wal_run())),
            vec![
                ("local WAL p99 ≤ 5 ms sustaining 50 MiB/s", true),
                ("ingest ≥ 80 % of the raw write", false),
                ("≤ 128 PUTs per GiB ingested", true),
                ("cold read ≥ 80 % of the raw read", false),
                ("cold read, compacted, ≥ 80 % of the raw read", true),
                ("peak RSS ≤ caches + 128 MiB", true),
            ]
        );
    }

    #[test]
    fn a_low_p99_below_the_sustained_rate_does_not_meet_the_latency_target() {
        let slow = Figures {
            fixed_rate_mib: 40.0,
            ..local_wal_run()
        };
        assert!(!judge(&slow)[0].met);
        let late = Figures {
            fixed_p99: Duration::from_micros(5_001),
            ..local_wal_run()
        };
        assert!(!judge(&late)[0].met);
    }

    #[test]
    fn an_object_wal_run_is_judged_on_its_bound_and_its_puts_per_window() {
        let run = |p99_ms: u64, objects: u64| Figures {
            fixed_p99: Duration::from_millis(p99_ms),
            object_wal: Some(ObjectWalFigures {
                bound: Duration::from_millis(240),
                windows: 100,
                objects,
            }),
            ..local_wal_run()
        };
        let verdicts = judge(&run(156, 100));
        assert_eq!(verdicts[0].target, "object WAL p99 ≤ window + 2 PUT p99s");
        assert!(verdicts[0].met);
        assert_eq!(verdicts[2].target, "one PUT per object WAL window");
        assert!(verdicts[2].met);
        let verdicts = judge(&run(241, 101));
        assert!(!verdicts[0].met);
        assert!(!verdicts[2].met, "{}", verdicts[2]);
    }

    #[test]
    fn a_verdict_line_names_target_figure_and_outcome() {
        let line = judge(&local_wal_run())[1].to_string();
        assert!(line.contains("ingest ≥ 80 % of the raw write"), "{line}");
        assert!(line.contains("31 %"), "{line}");
        assert!(line.ends_with("NOT MET"), "{line}");
    }
}
