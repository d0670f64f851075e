//! The conformance suite on process memory.

use strata_integration::conformance::{self, Backend, StorageCheck};

fn main() {
    let config = "[storage]\nkind = \"memory\"\n".to_string();
    let trials = conformance::trials(Backend {
        label: "memory".to_string(),
        config: config.clone(),
        restricted_config: None,
        checks: vec![StorageCheck::passes(config)],
    });
    strata_integration::run_suite("memory suite", (), trials)
}
