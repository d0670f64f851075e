//! SIGKILL crash tests of the stream store on a local directory and on a real S3
//! server (SeaweedFS): every acknowledged append survives, exactly once, in order,
//! and no orphan object survives cleanup; and the same through injected backend
//! faults.

use libtest_mimic::{Failed, Trial};
use strata_integration::{s3_document, store_crash};

fn main() {
    store_crash::run_child_if_requested();
    let server = strata_integration::start_or_fail("seaweedfs");
    let endpoint = server.setting("S3_ENDPOINT");
    let bucket = server.setting("S3_BUCKET");
    let access = server.setting("S3_ACCESS_KEY_ID");
    let secret = server.setting("S3_SECRET_ACCESS_KEY");
    let s3 = s3_document("minio", &endpoint, &bucket, &access, &secret);
    // Each run gets its own key prefix in the shared bucket.
    let unique = std::process::id();
    let s3 = s3.replacen(
        "[storage]\n",
        &format!("[storage]\nroot = \"/store-crash-{unique}\"\n"),
        1,
    );
    let local = tempfile::tempdir().expect("a temporary directory");
    let fs = format!(
        "[storage]\nkind = \"fs\"\nroot = \"{}\"\n",
        local.path().display()
    );
    let trials = vec![
        Trial::test("store::sigkill_on_local_directory", move || {
            store_crash::sigkill_rounds(&fs, 4).map_err(Failed::from)
        }),
        Trial::test("store::sigkill_on_seaweedfs", move || {
            store_crash::sigkill_rounds(&s3, 4).map_err(Failed::from)
        }),
        Trial::test("store::backend_faults_on_seaweedfs", move || {
            store_crash::backend_faults(&endpoint, &bucket, &access, &secret).map_err(Failed::from)
        }),
    ];
    strata_integration::run_suite("store crash suite", (server, local), trials)
}
