//! What a store guarantees beyond OpenDAL's [`opendal::Capability`].
//!
//! OpenDAL says which options a service *sends*; some S3-compatible servers accept a
//! conditional header and then ignore it. The profile records what the server is
//! known to *honour*, so that the stream store asks it before relying on a write to
//! fence a stale owner.

/// How far a create-only write (`If-None-Match: *`, `O_EXCL`) can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionalCreate {
    /// Atomic for single PUTs and multipart uploads alike.
    Any,
    /// Atomic only for single-request writes: a multipart upload overwrites.
    SinglePutOnly,
    /// Not offered, or not honoured: never rely on it.
    Unsupported,
}

/// The guarantees of one store, filled from its preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreProfile {
    pub conditional_create: ConditionalCreate,
    /// `If-Match` on PUT works as OpenDAL sends it.
    pub conditional_overwrite: bool,
    /// `If-Match` on DELETE is honoured.
    pub conditional_delete: bool,
    /// A multipart upload's completion returns the object's ETag.
    pub multipart_returns_etag: bool,
}

impl StoreProfile {
    /// AWS S3 and stores that follow it fully.
    pub const FULL_S3: StoreProfile = StoreProfile {
        conditional_create: ConditionalCreate::Any,
        conditional_overwrite: true,
        conditional_delete: true,
        multipart_returns_etag: true,
    };

    /// A local directory or process memory: create-new is atomic, nothing else.
    pub const LOCAL: StoreProfile = StoreProfile {
        conditional_create: ConditionalCreate::Any,
        conditional_overwrite: false,
        conditional_delete: false,
        multipart_returns_etag: false,
    };

    /// HDFS: no conditional headers at all (create-if-absent exists in HDFS, but
    /// OpenDAL's service does not expose it).
    pub const HDFS: StoreProfile = StoreProfile {
        conditional_create: ConditionalCreate::Unsupported,
        conditional_overwrite: false,
        conditional_delete: false,
        multipart_returns_etag: false,
    };
}
