//! `strata`: the Strata broker and its tools.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use strata_broker::cli::Cli;

// jemalloc returns freed memory to the OS and fragments less than glibc's malloc under
// the broker's pattern of many short-lived buffers of very different sizes.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start (`_RJEM_MALLOC_CONF` in the environment
/// still overrides them). A background thread hands freed pages back to the OS
/// after a tenth of a second instead of ten (and without waiting for the next
/// allocation): the broker's memory is bounded by its configured caches, and pages
/// freed when a cache turns over or an upload is done would otherwise count in its
/// RSS meanwhile. Measured with the store benchmark: at a few hundred MiB/s of
/// ingest, 1 s decay peaked at 539–594 MiB (SeaweedFS, local WAL); 250 ms at 510–516
/// MiB and 100 ms at 471–477 MiB (local directory, object WAL, 480–600 MiB/s), with
/// the same throughput; 0 (immediate) cost a third of it.
// SAFETY: jemalloc reads this symbol as a `const char *`; the slice's first word is
// a pointer to a NUL-terminated string that lives for the whole program.
#[allow(unsafe_code, non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0\0";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("STRATA_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Cli::parse().run()
}
