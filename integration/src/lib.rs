//! End-to-end tests for Strata against real servers.
//!
//! Each backend has its own test target (`tests/storage_<backend>.rs`) with its own
//! `main`: it starts that backend's server through `deploy/testbed/`, runs the shared
//! [`conformance`] suite and the `strata storage check` cases, then stops the server.

pub mod bounded;
pub mod broker;
pub mod chaos;
pub mod cli;
pub mod clients;
pub mod conformance;
pub mod dashboards;
pub mod faults;
pub mod store_crash;
pub mod testbed;

use libtest_mimic::{Arguments, Trial};

/// A `[storage]` document for an S3-family `kind`.
pub fn s3_document(kind: &str, endpoint: &str, bucket: &str, access: &str, secret: &str) -> String {
    format!(
        "[storage]\nkind = \"{kind}\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\n\
         access_key_id = \"{access}\"\nsecret_access_key = \"{secret}\"\n\
         [storage.retry]\nmax_retries = 2\nmin_delay = \"50ms\"\nmax_delay = \"500ms\"\n"
    )
}

/// Runs a backend suite: prints its size, runs the trials, stops the server (by
/// dropping `server`) and exits with the suite's status.
pub fn run_suite<S>(suite: &str, server: S, trials: Vec<Trial>) -> ! {
    let args = Arguments::from_args();
    eprintln!("=== {suite}: {} tests", trials.len());
    let conclusion = libtest_mimic::run(&args, trials);
    drop(server);
    conclusion.exit()
}

/// Starts a testbed server or exits the suite with a failure naming it.
pub fn start_or_fail(name: &str) -> testbed::Testbed {
    match testbed::Testbed::start(name) {
        Ok(testbed) => testbed,
        Err(err) => {
            eprintln!("error: {err}");
            eprintln!(
                "test result: FAILED. 0 passed; 1 failed (testbed server {name} did not start)"
            );
            std::process::exit(101);
        }
    }
}
