//! `strata`: the Strata broker and its tools.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use strata_broker::cli::Cli;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("STRATA_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    Cli::parse().run()
}
