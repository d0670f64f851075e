//! The conformance suite against a real SeaweedFS S3 endpoint, through the `minio`
//! and `cubefs` presets (MinIO and CubeFS servers cannot be installed here) and the
//! plain `s3` kind with path addressing.

use strata_integration::conformance::{self, Backend, CheckExpectation, StorageCheck};
use strata_integration::faults::{self, S3Target};
use strata_integration::s3_document;

fn main() {
    let server = strata_integration::start_or_fail("seaweedfs");
    let endpoint = server.setting("S3_ENDPOINT");
    let bucket = server.setting("S3_BUCKET");
    let access = server.setting("S3_ACCESS_KEY_ID");
    let secret = server.setting("S3_SECRET_ACCESS_KEY");
    let reader_access = server.setting("S3_READONLY_ACCESS_KEY_ID");
    let reader_secret = server.setting("S3_READONLY_SECRET_ACCESS_KEY");

    let mut trials = Vec::new();
    for preset in ["minio", "cubefs"] {
        let config = s3_document(preset, &endpoint, &bucket, &access, &secret);
        let checks = vec![
            StorageCheck {
                name: "passes",
                config: config.clone(),
                expect: CheckExpectation::Passes,
            },
            StorageCheck {
                name: "wrong_secret",
                config: s3_document(preset, &endpoint, &bucket, &access, "not-the-secret"),
                expect: CheckExpectation::FailsWith("bad-credentials"),
            },
            StorageCheck {
                name: "missing_bucket",
                config: s3_document(preset, &endpoint, "no-such-bucket", &access, &secret),
                expect: CheckExpectation::FailsWith("bucket-missing"),
            },
            StorageCheck {
                name: "closed_port",
                config: s3_document(preset, "http://127.0.0.1:1", &bucket, &access, &secret),
                expect: CheckExpectation::FailsWith("endpoint-unreachable"),
            },
            StorageCheck {
                name: "read_only_user",
                config: s3_document(preset, &endpoint, &bucket, &reader_access, &reader_secret),
                expect: CheckExpectation::FailsWith("permission-denied"),
            },
        ];
        trials.extend(conformance::trials(Backend {
            label: format!("{preset}-on-seaweedfs"),
            config,
            restricted_config: Some(s3_document(
                preset,
                &endpoint,
                &bucket,
                &reader_access,
                &reader_secret,
            )),
            checks,
        }));
    }
    let plain_s3 = format!(
        "[storage]\nkind = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\n\
         addressing = \"path\"\naccess_key_id = \"{access}\"\nsecret_access_key = \"{secret}\"\n"
    );
    trials.extend(conformance::trials(Backend {
        label: "s3-on-seaweedfs".to_string(),
        config: plain_s3.clone(),
        restricted_config: None,
        checks: vec![StorageCheck {
            name: "passes",
            config: plain_s3,
            expect: CheckExpectation::Passes,
        }],
    }));
    trials.extend(faults::trials(
        "faults-on-seaweedfs",
        S3Target {
            kind: "minio",
            endpoint,
            bucket,
            access,
            secret,
        },
    ));
    strata_integration::run_suite("seaweedfs suite", server, trials)
}
