//! The conformance suite against a real Ceph RGW 16.2 (one mon, one OSD, radosgw).

use strata_integration::conformance::{self, Backend, StorageCheck};
use strata_integration::s3_document;

fn main() {
    let server = strata_integration::start_or_fail("ceph");
    let endpoint = server.setting("S3_ENDPOINT");
    let bucket = server.setting("S3_BUCKET");
    let access = server.setting("S3_ACCESS_KEY_ID");
    let secret = server.setting("S3_SECRET_ACCESS_KEY");
    let other_access = server.setting("S3_OTHER_ACCESS_KEY_ID");
    let other_secret = server.setting("S3_OTHER_SECRET_ACCESS_KEY");
    let ceph = |endpoint: &str, bucket: &str, access: &str, secret: &str| {
        s3_document("ceph", endpoint, bucket, access, secret)
    };

    let config = ceph(&endpoint, &bucket, &access, &secret);
    let checks = vec![
        StorageCheck::passes(config.clone()),
        StorageCheck::fails(
            "wrong_secret",
            ceph(&endpoint, &bucket, &access, "not-the-secret"),
            "bad-credentials",
        ),
        StorageCheck::fails(
            "missing_bucket",
            ceph(&endpoint, "no-such-bucket", &access, &secret),
            "bucket-missing",
        ),
        StorageCheck::fails(
            "closed_port",
            ceph("http://127.0.0.1:1", &bucket, &access, &secret),
            "endpoint-unreachable",
        ),
        StorageCheck::fails(
            "other_users_bucket",
            ceph(&endpoint, &bucket, &other_access, &other_secret),
            "permission-denied",
        ),
        StorageCheck::fails("clock_two_hours_behind", config.clone(), "clock-skew")
            .with_clock_offset("-2h"),
    ];
    let trials = conformance::trials(Backend {
        label: "ceph".to_string(),
        restricted_config: Some(ceph(&endpoint, &bucket, &other_access, &other_secret)),
        config,
        checks,
    });
    strata_integration::run_suite("ceph suite", server, trials)
}
