//! The conformance suite on a local directory (the embedded default's backend).

use strata_integration::conformance::{self, Backend, StorageCheck};

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path().join("objects");
    let config = format!("[storage]\nkind = \"fs\"\nroot = \"{}\"\n", root.display());
    let trials = conformance::trials(Backend {
        label: "fs".to_string(),
        config: config.clone(),
        restricted_config: None,
        checks: vec![StorageCheck::passes(config)],
    });
    strata_integration::run_suite("fs suite", dir, trials)
}
