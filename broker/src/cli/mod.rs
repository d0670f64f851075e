//! The `strata` command line.

mod bench;
mod serve;
mod storage;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::StrataConfig;

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Kafka-compatible streaming on object storage"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Kafka broker.
    Serve {
        /// Config file; the embedded default (a local directory) when omitted.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Storage backend tools.
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
    /// Benchmarks that print figures.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// The stream store (local WAL) beside the raw operator, on the configured store.
    Store {
        /// Config file; the embedded default (a local directory) when omitted.
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        args: bench::BenchArgs,
    },
    /// The embedded metadata store's commits beside the disk's fsync rate, in the
    /// configured data directory.
    Meta {
        /// Config file; the embedded default (a local directory) when omitted.
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        args: bench::meta::MetaBenchArgs,
    },
}

#[derive(Debug, Subcommand)]
enum StorageCommand {
    /// Exercise the configured store (write, read, range-read, stat, list,
    /// multipart write, conditional create, delete) and name the cause of a failure.
    Check {
        /// Config file; the embedded default (a local directory) when omitted.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

impl Cli {
    /// Runs the command; the exit code says whether it succeeded.
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Serve { config } => {
                let config = match load(config.as_deref()) {
                    Ok(config) => config,
                    Err(code) => return code,
                };
                runtime().map_or(ExitCode::FAILURE, |rt| rt.block_on(serve::run(config)))
            }
            Command::Bench {
                command: BenchCommand::Store { config, args },
            } => {
                let Some(metrics) = bench::install_recorder() else {
                    eprintln!("error: a metrics recorder is already installed");
                    return ExitCode::FAILURE;
                };
                let config = match load(config.as_deref()) {
                    Ok(config) => config,
                    Err(code) => return code,
                };
                let Some(rt) = runtime() else {
                    return ExitCode::FAILURE;
                };
                match rt.block_on(bench::run(&config.storage, args, metrics)) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(err) => {
                        eprintln!("error: {err}");
                        ExitCode::FAILURE
                    }
                }
            }
            Command::Bench {
                command: BenchCommand::Meta { config, args },
            } => {
                let config = match load(config.as_deref()) {
                    Ok(config) => config,
                    Err(code) => return code,
                };
                let Some(rt) = runtime() else {
                    return ExitCode::FAILURE;
                };
                match rt.block_on(bench::meta::run(&config.broker.data_dir, args)) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(err) => {
                        eprintln!("error: {err}");
                        ExitCode::FAILURE
                    }
                }
            }
            Command::Storage {
                command: StorageCommand::Check { config },
            } => {
                let config = match load(config.as_deref()) {
                    Ok(config) => config,
                    Err(code) => return code,
                };
                runtime().map_or(ExitCode::FAILURE, |rt| {
                    rt.block_on(storage::check(&config.storage))
                })
            }
        }
    }
}

/// Loads the config (exit 2 with the reason when it is refused) and exports what the
/// process environment must carry for it.
fn load(path: Option<&std::path::Path>) -> Result<StrataConfig, ExitCode> {
    match StrataConfig::load(path, std::env::vars()) {
        Ok(config) => {
            export_hdfs_user(&config);
            Ok(config)
        }
        Err(err) => {
            eprintln!("error: {err}");
            Err(ExitCode::from(2))
        }
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| eprintln!("error: cannot start the async runtime: {err}"))
        .ok()
}

/// hdfs-native takes the simple-auth user only from `HADOOP_USER_NAME`.
#[allow(unsafe_code)]
fn export_hdfs_user(config: &StrataConfig) {
    if let strata_backends::config::BackendConfig::Hdfs(hdfs) = &config.storage.backend
        && let Some(user) = &hdfs.user
    {
        // SAFETY: called before the runtime starts, while this process has one thread,
        // so no other thread can be reading the environment.
        unsafe { std::env::set_var("HADOOP_USER_NAME", user) };
    }
}
