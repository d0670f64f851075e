//! `strata storage check`.

use std::process::ExitCode;

use strata_backends::config::BackendConfig;
use strata_backends::probe::{self, Outcome};
use strata_backends::{Storage, StorageConfig};

pub(super) async fn check(config: &StorageConfig) -> ExitCode {
    let storage = match Storage::open(config) {
        Ok(storage) => storage,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    println!(
        "storage check: kind={} {}",
        storage.kind(),
        target(&config.backend)
    );
    let report = probe::probe(&storage).await;
    for step in &report.steps {
        println!("  {step}");
    }
    match report.failure() {
        None => {
            let unsupported = report
                .steps
                .iter()
                .filter(|s| matches!(s.outcome, Outcome::Unsupported(_)))
                .count();
            println!(
                "storage check passed ({} capabilities, {unsupported} unsupported)",
                report.steps.len()
            );
            ExitCode::SUCCESS
        }
        Some(diagnosis) => {
            println!(
                "storage check FAILED [{}]: {}",
                diagnosis.cause.label(),
                diagnosis.cause.advice()
            );
            ExitCode::FAILURE
        }
    }
}

/// Where the probe goes, without secrets.
fn target(backend: &BackendConfig) -> String {
    match backend {
        BackendConfig::Fs(fs) => format!("root={}", fs.root.display()),
        BackendConfig::Memory(_) => "in-process memory".to_string(),
        BackendConfig::S3(s3) => format!(
            "endpoint={} bucket={} root={} region={}",
            s3.endpoint.as_deref().unwrap_or("(AWS regional)"),
            s3.bucket,
            s3.root,
            s3.region().unwrap_or("(default chain)")
        ),
        BackendConfig::Hdfs(hdfs) => format!("name_node={} root={}", hdfs.name_node, hdfs.root),
    }
}
