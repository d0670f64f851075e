//! Turns a failed storage operation into the cause an operator can act on.
//!
//! S3-compatible stores name their errors with stable codes (`NoSuchBucket`,
//! `SignatureDoesNotMatch`, ...) that OpenDAL keeps in the error's message; the
//! transport's own errors (refused, timed out) arrive as its source chain.

use std::error::Error as _;
use std::fmt;

use opendal::ErrorKind;

use crate::config::StorageKind;

/// What is wrong, in the terms an operator fixes it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    EndpointUnreachable,
    NameNodeUnreachable,
    TlsUntrusted,
    BadCredentials,
    BucketMissing,
    PermissionDenied,
    ClockSkew,
    WrongRegion,
    TimedOut,
    Throttled,
    Other,
}

impl Cause {
    /// A sentence saying what to check.
    pub fn advice(self) -> &'static str {
        match self {
            Cause::EndpointUnreachable => {
                "endpoint unreachable: nothing answered at storage.endpoint; check the URL, port and that the store is running"
            }
            Cause::NameNodeUnreachable => {
                "HDFS name node unreachable: nothing answered at storage.name_node; check the host, port and that the NameNode is running"
            }
            Cause::TlsUntrusted => {
                "untrusted TLS certificate: the endpoint's certificate is not signed by a trusted CA (or not for this host); set storage.ca_bundle to the CA's PEM file"
            }
            Cause::BadCredentials => {
                "bad credentials: the store rejected storage.access_key_id or storage.secret_access_key"
            }
            Cause::BucketMissing => {
                "bucket missing: storage.bucket does not exist on this store; create it or fix the name"
            }
            Cause::PermissionDenied => {
                "permission denied: the credentials are valid but may not use this bucket or prefix"
            }
            Cause::ClockSkew => {
                "clock skew: this machine's clock differs too much from the store's; sync it (NTP)"
            }
            Cause::WrongRegion => "wrong region: storage.region does not match the bucket's region",
            Cause::TimedOut => "timed out: the store did not answer within storage.timeouts",
            Cause::Throttled => {
                "throttled: the store keeps asking to slow down (503 SlowDown / 429)"
            }
            Cause::Other => "unexpected storage error",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Cause::EndpointUnreachable => "endpoint-unreachable",
            Cause::NameNodeUnreachable => "namenode-unreachable",
            Cause::TlsUntrusted => "tls-untrusted",
            Cause::BadCredentials => "bad-credentials",
            Cause::BucketMissing => "bucket-missing",
            Cause::PermissionDenied => "permission-denied",
            Cause::ClockSkew => "clock-skew",
            Cause::WrongRegion => "wrong-region",
            Cause::TimedOut => "timed-out",
            Cause::Throttled => "throttled",
            Cause::Other => "error",
        }
    }
}

/// A cause with the store's own words.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub cause: Cause,
    pub detail: String,
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.cause.advice(), self.detail)
    }
}

/// Classifies `err` from a `kind` backend.
pub fn diagnose(kind: StorageKind, err: &opendal::Error) -> Diagnosis {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(" <- ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    let cause = classify(kind, err.kind(), &text);
    Diagnosis {
        cause,
        detail: summarize(err, &text),
    }
}

/// The store's own words without the transport noise: the HTTP status and S3 error
/// code and message when there are some, else the innermost cause.
fn summarize(err: &opendal::Error, text: &str) -> String {
    let status = field_after(text, "status: ", |c| c.is_ascii_digit());
    let code = quoted_after(text, "code: \"");
    let message = quoted_after(text, "message: \"");
    match (status, code) {
        (Some(status), Some(code)) => shorten(&format!(
            "HTTP {status} {code}: {}",
            message.unwrap_or_default()
        )),
        _ => {
            let innermost = text.rsplit(" <- ").next().unwrap_or(text);
            shorten(&format!("{}: {innermost}", err.kind()))
        }
    }
}

fn field_after<'t>(text: &'t str, marker: &str, accept: impl Fn(char) -> bool) -> Option<&'t str> {
    let start = text.find(marker)? + marker.len();
    let rest = &text[start..];
    let end = rest.find(|c| !accept(c)).unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

fn quoted_after<'t>(text: &'t str, marker: &str) -> Option<&'t str> {
    let start = text.find(marker)? + marker.len();
    let rest = &text[start..];
    rest.find('"').map(|end| &rest[..end])
}

fn classify(kind: StorageKind, error_kind: ErrorKind, text: &str) -> Cause {
    let has = |needle: &str| text.contains(needle);
    let lower = text.to_ascii_lowercase();
    let has_lower = |needle: &str| lower.contains(needle);
    if has("InvalidAccessKeyId") || has("SignatureDoesNotMatch") || has("InvalidToken") {
        Cause::BadCredentials
    } else if has("NoSuchBucket") {
        Cause::BucketMissing
    } else if has("RequestTimeTooSkewed") {
        Cause::ClockSkew
    } else if has("AuthorizationHeaderMalformed")
        || has("PermanentRedirect")
        || has("IllegalLocationConstraintException")
        || has_lower("region")
            && (has_lower("wrong") || has_lower("incorrect") || has_lower("expecting"))
    {
        Cause::WrongRegion
    } else if has("AccessDenied") || error_kind == ErrorKind::PermissionDenied {
        Cause::PermissionDenied
    } else if has("SlowDown") || error_kind == ErrorKind::RateLimited {
        Cause::Throttled
    } else if has_lower("invalid peer certificate") || has_lower("certificate verify failed") {
        Cause::TlsUntrusted
    } else if has_lower("connection refused")
        || has_lower("tcp connect")
        || has_lower("dns error")
        || has_lower("failed to lookup address")
        || has_lower("no route to host")
        || has_lower("error sending request")
        || has_lower("connection reset")
    {
        if kind == StorageKind::Hdfs {
            Cause::NameNodeUnreachable
        } else {
            Cause::EndpointUnreachable
        }
    } else if has_lower("timed out") || has_lower("timeout") {
        if kind == StorageKind::Hdfs {
            Cause::NameNodeUnreachable
        } else {
            Cause::TimedOut
        }
    } else {
        Cause::Other
    }
}

/// Keeps error lines readable: S3 bodies can carry whole XML documents.
fn shorten(text: &str) -> String {
    const MAX: usize = 300;
    let single_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match single_line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &single_line[..cut]),
        None => single_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(kind: StorageKind, error_kind: ErrorKind, text: &str) -> Cause {
        classify(kind, error_kind, text)
    }

    #[test]
    fn s3_codes_map_to_causes() {
        let s3 = StorageKind::Ceph;
        assert_eq!(
            cause(
                s3,
                ErrorKind::PermissionDenied,
                "<Code>SignatureDoesNotMatch</Code>"
            ),
            Cause::BadCredentials
        );
        assert_eq!(
            cause(
                s3,
                ErrorKind::PermissionDenied,
                "<Code>InvalidAccessKeyId</Code>"
            ),
            Cause::BadCredentials
        );
        assert_eq!(
            cause(s3, ErrorKind::NotFound, "<Code>NoSuchBucket</Code>"),
            Cause::BucketMissing
        );
        assert_eq!(
            cause(
                s3,
                ErrorKind::PermissionDenied,
                "<Code>RequestTimeTooSkewed</Code>"
            ),
            Cause::ClockSkew
        );
        assert_eq!(
            cause(
                s3,
                ErrorKind::Unexpected,
                "<Code>AuthorizationHeaderMalformed</Code> the region 'x' is wrong; expecting 'y'"
            ),
            Cause::WrongRegion
        );
        assert_eq!(
            cause(s3, ErrorKind::PermissionDenied, "<Code>AccessDenied</Code>"),
            Cause::PermissionDenied
        );
        assert_eq!(
            cause(s3, ErrorKind::Unexpected, "<Code>SlowDown</Code>"),
            Cause::Throttled
        );
    }

    #[test]
    fn transport_failures_name_the_endpoint_or_name_node() {
        let refused = "send http request <- error sending request <- tcp connect error: Connection refused (os error 111)";
        assert_eq!(
            cause(StorageKind::Minio, ErrorKind::Unexpected, refused),
            Cause::EndpointUnreachable
        );
        assert_eq!(
            cause(
                StorageKind::Hdfs,
                ErrorKind::Unexpected,
                "IO error: Connection refused (os error 111)"
            ),
            Cause::NameNodeUnreachable
        );
        assert_eq!(
            cause(
                StorageKind::S3,
                ErrorKind::Unexpected,
                "operation timeout reached"
            ),
            Cause::TimedOut
        );
    }

    #[test]
    fn long_bodies_are_shortened_to_one_line() {
        let text = format!("a\nb {}", "x".repeat(1000));
        let short = shorten(&text);
        assert!(short.len() < 420 && !short.contains('\n') && short.ends_with("..."));
    }
}
