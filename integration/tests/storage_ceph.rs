//! The conformance suite against a real Ceph RGW 16.2 (one mon, one OSD, radosgw).

use strata_integration::conformance::{self, Backend, CheckExpectation, StorageCheck};
use strata_integration::s3_document;

fn main() {
    let server = strata_integration::start_or_fail("ceph");
    let endpoint = server.setting("S3_ENDPOINT");
    let bucket = server.setting("S3_BUCKET");
    let access = server.setting("S3_ACCESS_KEY_ID");
    let secret = server.setting("S3_SECRET_ACCESS_KEY");
    let other_access = server.setting("S3_OTHER_ACCESS_KEY_ID");
    let other_secret = server.setting("S3_OTHER_SECRET_ACCESS_KEY");

    let config = s3_document("ceph", &endpoint, &bucket, &access, &secret);
    let checks = vec![
        StorageCheck {
            name: "passes",
            config: config.clone(),
            expect: CheckExpectation::Passes,
        },
        StorageCheck {
            name: "wrong_secret",
            config: s3_document("ceph", &endpoint, &bucket, &access, "not-the-secret"),
            expect: CheckExpectation::FailsWith("bad-credentials"),
        },
        StorageCheck {
            name: "missing_bucket",
            config: s3_document("ceph", &endpoint, "no-such-bucket", &access, &secret),
            expect: CheckExpectation::FailsWith("bucket-missing"),
        },
        StorageCheck {
            name: "closed_port",
            config: s3_document("ceph", "http://127.0.0.1:1", &bucket, &access, &secret),
            expect: CheckExpectation::FailsWith("endpoint-unreachable"),
        },
        StorageCheck {
            name: "other_users_bucket",
            config: s3_document("ceph", &endpoint, &bucket, &other_access, &other_secret),
            expect: CheckExpectation::FailsWith("permission-denied"),
        },
    ];
    let trials = conformance::trials(Backend {
        label: "ceph".to_string(),
        config,
        restricted_config: Some(s3_document(
            "ceph",
            &endpoint,
            &bucket,
            &other_access,
            &other_secret,
        )),
        checks,
    });
    strata_integration::run_suite("ceph suite", server, trials)
}
