use super::*;

fn storage(text: &str) -> Result<StorageConfig, ConfigError> {
    StorageConfig::from_document(text)
}

fn message(text: &str) -> String {
    match storage(text) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn fs_section_parses_with_default_tuning() {
    let config = storage("[storage]\nkind = \"fs\"\nroot = \"/tmp/x\"\n").expect("valid");
    assert_eq!(config.backend.kind(), StorageKind::Fs);
    assert_eq!(config.tuning.max_concurrent_requests.get(), 64);
    assert_eq!(config.tuning.retry.max_retries, 4);
}

#[test]
fn presets_fill_path_style_and_a_region() {
    let config = storage(
        r#"[storage]
kind = "ceph"
bucket = "strata"
endpoint = "http://127.0.0.1:7480"
access_key_id = "a"
secret_access_key = { env = "CEPH_SECRET" }
"#,
    )
    .expect("valid");
    let BackendConfig::S3(s3) = config.backend else {
        panic!("not s3")
    };
    assert_eq!(s3.flavor, S3Flavor::Ceph);
    assert_eq!(s3.addressing(), Addressing::Path);
    assert_eq!(s3.region(), Some("us-east-1"));
    assert_eq!(
        s3.flavor.preset().profile.conditional_create,
        crate::profile::ConditionalCreate::SinglePutOnly
    );
}

#[test]
fn aws_defaults_to_virtual_host_and_needs_a_region_without_endpoint() {
    let err = message("[storage]\nkind = \"s3\"\nbucket = \"b-1\"\n");
    assert!(
        err.contains("storage.region") && err.contains("\"s3\""),
        "{err}"
    );
    let config = storage("[storage]\nkind = \"s3\"\nbucket = \"b-1\"\nregion = \"eu-west-1\"\n")
        .expect("valid");
    let BackendConfig::S3(s3) = config.backend else {
        panic!("not s3")
    };
    assert_eq!(s3.addressing(), Addressing::VirtualHost);
}

#[test]
fn unknown_kind_names_the_value_and_the_choices() {
    let err = message("[storage]\nkind = \"ftp\"\n");
    assert!(
        err.contains("storage.kind") && err.contains("\"ftp\"") && err.contains("\"hdfs\""),
        "{err}"
    );
}

#[test]
fn unknown_key_is_refused_with_its_path() {
    let err = message("[storage]\nkind = \"fs\"\nroot = \"/x\"\nbuckit = \"b\"\n");
    assert!(
        err.contains("buckit") && err.contains("kind = \"fs\""),
        "{err}"
    );
    let err =
        message("[storage]\nkind = \"fs\"\nroot = \"/x\"\n[storage.retry]\nmax_retires = 3\n");
    assert!(
        err.contains("storage.retry") && err.contains("max_retires"),
        "{err}"
    );
}

#[test]
fn bad_values_name_key_value_and_expectation() {
    let err =
        message("[storage]\nkind = \"fs\"\nroot = \"/x\"\n[storage.timeouts]\nio = \"soon\"\n");
    assert!(
        err.contains("storage.timeouts.io") && err.contains("soon"),
        "{err}"
    );

    let err = message(
        "[storage]\nkind = \"minio\"\nbucket = \"Bad_Bucket\"\nendpoint = \"http://h:9000\"\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\n",
    );
    assert!(
        err.contains("storage.bucket") && err.contains("Bad_Bucket") && err.contains("3-63"),
        "{err}"
    );

    let err = message(
        "[storage]\nkind = \"minio\"\nbucket = \"b-1\"\nendpoint = \"localhost:9000\"\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\n",
    );
    assert!(
        err.contains("storage.endpoint")
            && err.contains("localhost:9000")
            && err.contains("http://"),
        "{err}"
    );

    let err = message(
        "[storage]\nkind = \"minio\"\nbucket = \"b-1\"\nendpoint = \"http://h:9000\"\naddressing = \"pathy\"\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\n",
    );
    assert!(
        err.contains("storage.addressing") && err.contains("pathy") && err.contains("virtual-host"),
        "{err}"
    );

    let err = message("[storage]\nkind = \"hdfs\"\nname_node = \"127.0.0.1:8020\"\n");
    assert!(
        err.contains("storage.name_node") && err.contains("hdfs://host:port"),
        "{err}"
    );

    let err = message("[storage]\nkind = \"fs\"\nroot = \"/x\"\nmax_concurrent_requests = 0\n");
    assert!(err.contains("storage.max_concurrent_requests"), "{err}");

    let err = message(
        "[storage]\nkind = \"fs\"\nroot = \"/x\"\n[storage.retry]\nmin_delay = \"10s\"\nmax_delay = \"1s\"\n",
    );
    assert!(
        err.contains("storage.retry.min_delay") && err.contains("10s"),
        "{err}"
    );
}

#[test]
fn self_hosted_presets_require_an_endpoint_and_both_keys() {
    let err = message(
        "[storage]\nkind = \"cubefs\"\nbucket = \"b-1\"\naccess_key_id = \"a\"\nsecret_access_key = \"b\"\n",
    );
    assert!(
        err.contains("storage.endpoint") && err.contains("cubefs"),
        "{err}"
    );
    let err = message(
        "[storage]\nkind = \"minio\"\nbucket = \"b-1\"\nendpoint = \"http://h:9000\"\naccess_key_id = \"a\"\n",
    );
    assert!(err.contains("storage.secret_access_key"), "{err}");
}

#[test]
fn every_example_in_conf_parses() {
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
    let mut seen = 0;
    for name in [
        "strata.toml",
        "s3.toml",
        "minio.toml",
        "ceph.toml",
        "cubefs.toml",
        "hdfs.toml",
    ] {
        let text =
            std::fs::read_to_string(conf.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        storage(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        seen += 1;
    }
    assert_eq!(seen, 6);
}
