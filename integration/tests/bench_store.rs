//! `strata bench store` runs to the end on a local directory and prints every figure
//! the stream store's benchmark is read for (docs/benchmarks.md), with the local and
//! the object WAL. Short phases: this checks the command, not the machine's speed.

use std::process::Command;
use std::time::Duration;

use strata_integration::bounded::Bounded;
use strata_integration::cli::strata_binary;

/// A one-second run takes some ten seconds in a debug build; past this it is hung.
const BENCH_DEADLINE: Duration = Duration::from_secs(300);

/// Lines every run prints, each naming a figure.
const FIGURES: &[&str] = &[
    "raw operator     write",
    "raw write by second:",
    "raw operator     read",
    "append unthrottled",
    "append fixed rate",
    "unthrottled by second:",
    "ingest vs raw write",
    "object-store writes, unthrottled",
    "metadata commits, unthrottled",
    "PUTs per GiB ingested",
    "tail read (log cache)",
    "cold read (objects)",
    "merge",
    "compaction",
    "cold read, compacted",
    "peak RSS",
    "targets (docs/benchmarks.md), judged on this run:",
    "ingest ≥ 80 % of the raw write",
    "cold read ≥ 80 % of the raw read",
    "cold read, compacted, ≥ 80 % of the raw read",
    "peak RSS ≤ caches + 128 MiB",
];

fn bench(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("strata.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nkind = \"fs\"\nroot = \"{}\"\n",
            dir.path().join("objects").display()
        ),
    )
    .expect("config written");
    let strata = strata_binary().unwrap_or_else(|e| panic!("{e}"));
    let finished = Bounded::spawn(
        format!("strata bench store {extra:?}"),
        Command::new(strata)
            .args(["bench", "store", "--seconds", "1", "--streams", "4", "-c"])
            .arg(&config)
            .args(extra),
    )
    .and_then(|bench| bench.wait(BENCH_DEADLINE))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(finished.status.success(), "{}", finished.failure());
    let (stdout, stderr) = (finished.stdout, finished.stderr);
    // The bench closes each store before opening the next: nothing it does looks like
    // a crash's leftovers, and nothing fails on the way.
    for unexpected in ["a crash left", "ERROR", "WARN"] {
        assert!(
            !stderr.contains(unexpected),
            "{unexpected:?} in the log of strata bench store {extra:?}:\n{stderr}"
        );
    }
    // Everything the run wrote is gone.
    let left = std::fs::read_dir(dir.path().join("objects"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "the bench left {left} entries in its root");
    stdout
}

fn assert_prints(stdout: &str, figures: &[&str]) {
    for figure in figures {
        assert!(
            stdout
                .lines()
                .any(|line| line.trim_start().starts_with(figure)),
            "no {figure:?} line in:\n{stdout}"
        );
    }
}

#[test]
fn local_wal_run_prints_every_figure() {
    let stdout = bench(&[]);
    assert_prints(stdout.as_str(), FIGURES);
    assert_prints(
        &stdout,
        &[
            "WAL write+fsync at fixed rate",
            "upload rounds behind the WAL, unthrottled",
            "local WAL p99 ≤ 5 ms sustaining 50 MiB/s",
            "≤ 128 PUTs per GiB ingested",
        ],
    );
}

#[test]
fn object_wal_run_prints_every_figure() {
    let stdout = bench(&["--object-wal-window-ms", "20"]);
    assert_prints(&stdout, FIGURES);
    assert_prints(
        &stdout,
        &[
            "raw PUT of one window",
            "object WAL window",
            "bound at fixed rate: window + 2 PUT p99s",
            "object WAL hedged writes, unthrottled",
            "object WAL windows written",
            "object WAL p99 ≤ window + 2 PUT p99s",
        ],
    );
    // Whatever the machine's speed, each window is one object: the verdict that
    // does not depend on timing is held to.
    let puts_per_window = stdout
        .lines()
        .find(|line| {
            line.trim_start()
                .starts_with("one PUT per object WAL window")
        })
        .unwrap_or_else(|| panic!("no one-PUT-per-window verdict in:\n{stdout}"));
    assert!(
        puts_per_window.trim_end().ends_with(" met"),
        "{puts_per_window}"
    );
}
