//! SIGKILL crash tests of the stream store on a local directory and on real S3
//! servers (SeaweedFS, Ceph RGW): every acknowledged append survives, exactly once, in order,
//! and no orphan object survives cleanup; and the same through injected backend
//! faults.

use libtest_mimic::{Failed, Trial};
use strata_integration::store_crash::ChildWal;
use strata_integration::{s3_document, store_crash};

fn main() {
    store_crash::run_child_if_requested();
    let server = strata_integration::start_or_fail("seaweedfs");
    let endpoint = server.setting("S3_ENDPOINT");
    let bucket = server.setting("S3_BUCKET");
    let access = server.setting("S3_ACCESS_KEY_ID");
    let secret = server.setting("S3_SECRET_ACCESS_KEY");
    // Each trial of each run gets its own key prefix in the shared bucket: the
    // orphan check lists everything under it.
    let unique = std::process::id();
    let s3_under = |name: &str| {
        s3_document("minio", &endpoint, &bucket, &access, &secret).replacen(
            "[storage]\n",
            &format!("[storage]\nroot = \"/store-crash-{unique}-{name}\"\n"),
            1,
        )
    };
    let (s3_local_wal, s3_object_wal) = (s3_under("local-wal"), s3_under("object-wal"));
    let ceph = strata_integration::start_or_fail("ceph");
    let ceph_document = s3_document(
        "ceph",
        &ceph.setting("S3_ENDPOINT"),
        &ceph.setting("S3_BUCKET"),
        &ceph.setting("S3_ACCESS_KEY_ID"),
        &ceph.setting("S3_SECRET_ACCESS_KEY"),
    );
    let local = tempfile::tempdir().expect("a temporary directory");
    let fs = format!(
        "[storage]\nkind = \"fs\"\nroot = \"{}\"\n",
        local.path().display()
    );
    let trials = vec![
        Trial::test("store::sigkill_on_local_directory", move || {
            store_crash::sigkill_rounds(&fs, 4, ChildWal::Local).map_err(Failed::from)
        }),
        Trial::test("store::sigkill_on_seaweedfs", move || {
            store_crash::sigkill_rounds(&s3_local_wal, 4, ChildWal::Local).map_err(Failed::from)
        }),
        Trial::test("store::sigkill_object_wal_on_seaweedfs", move || {
            store_crash::sigkill_rounds(&s3_object_wal, 3, ChildWal::Object).map_err(Failed::from)
        }),
        Trial::test("store::sigkill_on_ceph", move || {
            store_crash::sigkill_rounds(&ceph_document, 3, ChildWal::Local).map_err(Failed::from)
        }),
        Trial::test("store::backend_faults_on_seaweedfs", {
            let (endpoint, bucket, access, secret) = (
                endpoint.clone(),
                bucket.clone(),
                access.clone(),
                secret.clone(),
            );
            move || {
                store_crash::backend_faults(&endpoint, &bucket, &access, &secret, ChildWal::Local)
                    .map_err(Failed::from)
            }
        }),
        Trial::test("store::backend_faults_object_wal_on_seaweedfs", move || {
            store_crash::backend_faults(&endpoint, &bucket, &access, &secret, ChildWal::Object)
                .map_err(Failed::from)
        }),
    ];
    strata_integration::run_suite("store crash suite", (server, ceph, local), trials)
}
