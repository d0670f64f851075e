//! The conformance suite against a real SeaweedFS S3 endpoint, through the `minio`
//! and `cubefs` presets (MinIO and CubeFS servers cannot be installed here) and the
//! plain `s3` kind with path addressing, plus fault injection in front of it.

use strata_integration::conformance::{self, Backend, StorageCheck};
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
        let document = |endpoint: &str, bucket: &str, access: &str, secret: &str| {
            s3_document(preset, endpoint, bucket, access, secret)
        };
        let config = document(&endpoint, &bucket, &access, &secret);
        let read_only = document(&endpoint, &bucket, &reader_access, &reader_secret);
        let checks = vec![
            StorageCheck::passes(config.clone()),
            StorageCheck::fails(
                "wrong_secret",
                document(&endpoint, &bucket, &access, "not-the-secret"),
                "bad-credentials",
            ),
            StorageCheck::fails(
                "missing_bucket",
                document(&endpoint, "no-such-bucket", &access, &secret),
                "bucket-missing",
            ),
            StorageCheck::fails(
                "closed_port",
                document("http://127.0.0.1:1", &bucket, &access, &secret),
                "endpoint-unreachable",
            ),
            StorageCheck::fails("read_only_user", read_only.clone(), "permission-denied"),
            StorageCheck::fails("clock_two_hours_ahead", config.clone(), "clock-skew")
                .with_clock_offset("+2h"),
        ];
        trials.extend(conformance::trials(Backend {
            label: format!("{preset}-on-seaweedfs"),
            config,
            restricted_config: Some(read_only),
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
        checks: vec![StorageCheck::passes(plain_s3)],
    }));
    // TLS through the testbed's own CA, with the secret read from a file.
    let secrets = tempfile::tempdir().expect("a temporary directory");
    let secret_file = secrets.path().join("secret");
    std::fs::write(&secret_file, format!("{secret}\n")).expect("write the secret file");
    let tls_endpoint = server.setting("S3_TLS_ENDPOINT");
    let tls = |ca_bundle: Option<&str>| {
        let ca_line = ca_bundle
            .map(|path| format!("ca_bundle = \"{path}\"\n"))
            .unwrap_or_default();
        format!(
            "[storage]\nkind = \"minio\"\nbucket = \"{bucket}\"\nendpoint = \"{tls_endpoint}\"\n\
             access_key_id = \"{access}\"\nsecret_access_key = {{ file = \"{}\" }}\n{ca_line}",
            secret_file.display()
        )
    };
    let ca_bundle = server.setting("S3_CA_BUNDLE");
    trials.extend(conformance::trials(Backend {
        label: "tls-on-seaweedfs".to_string(),
        config: tls(Some(&ca_bundle)),
        restricted_config: None,
        checks: vec![
            StorageCheck::passes(tls(Some(&ca_bundle))),
            StorageCheck::fails("without_ca_bundle", tls(None), "tls-untrusted"),
        ],
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
    strata_integration::run_suite("seaweedfs suite", (server, secrets), trials)
}
