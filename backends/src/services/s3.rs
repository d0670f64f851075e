use opendal::services::S3;
use opendal::{HttpTransporter, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;

use crate::config::{Addressing, S3Config, S3Flavor, Timeouts};
use crate::error::BuildError;
use crate::profile::StoreProfile;

pub(super) fn build(
    config: &S3Config,
    timeouts: &Timeouts,
) -> Result<(Operator, StoreProfile), BuildError> {
    let kind = config.flavor.kind();
    let preset = config.flavor.preset();
    let mut builder = S3::default().bucket(&config.bucket).root(&config.root);

    let region = config.region();
    if let Some(region) = region {
        builder = builder.region(region);
    }
    builder = match (&config.endpoint, region) {
        (Some(endpoint), _) => builder.endpoint(endpoint),
        (None, Some(region)) => builder.endpoint(&format!("https://s3.{region}.amazonaws.com")),
        (None, None) => builder,
    };
    if config.addressing() == Addressing::VirtualHost {
        builder = builder.enable_virtual_host_style();
    }

    if let (Some(key_id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
        builder = builder
            .access_key_id(&key_id.resolve("storage.access_key_id")?)
            .secret_access_key(&secret.resolve("storage.secret_access_key")?);
        if let Some(token) = &config.session_token {
            builder = builder.session_token(&token.resolve("storage.session_token")?);
        }
    }
    if config.flavor != S3Flavor::Aws || config.access_key_id.is_some() {
        // Explicit settings only: a stray AWS_* variable or ~/.aws file must not
        // silently change which store or identity a self-hosted setup talks to.
        builder = builder.disable_config_load().disable_ec2_metadata();
    }
    let operator =
        Operator::new(builder).map_err(|source| BuildError::Operator { kind, source })?;
    let transport = HttpTransporter::new(ReqwestTransport::new(http_client(config, timeouts)?));
    let context = operator.context().with_http_transport(transport);
    Ok((operator.with_context(context), preset.profile))
}

fn http_client(config: &S3Config, timeouts: &Timeouts) -> Result<reqwest::Client, BuildError> {
    let mut client = reqwest::Client::builder().connect_timeout(timeouts.connect);
    if let Some(path) = &config.ca_bundle {
        let ca_error = |reason: String| BuildError::CaBundle {
            path: path.clone(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(format!("cannot be read: {e}")))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| ca_error(format!("is not a PEM certificate bundle: {e}")))?;
        if certificates.is_empty() {
            return Err(ca_error("holds no PEM certificate".to_string()));
        }
        client = client.tls_certs_merge(certificates);
    }
    client
        .build()
        .map_err(|source| BuildError::HttpClient { source })
}
