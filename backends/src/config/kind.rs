//! The names accepted by `storage.kind`, and the cargo feature each needs.

use std::fmt;

/// A value of `storage.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageKind {
    Fs,
    Memory,
    S3,
    Minio,
    Ceph,
    Cubefs,
    Hdfs,
}

impl StorageKind {
    pub(crate) const EXPECTED: &'static str =
        r#"one of "fs", "memory", "s3", "minio", "ceph", "cubefs", "hdfs""#;

    /// Every kind, in the order the docs list them.
    pub const ALL: [StorageKind; 7] = [
        StorageKind::Fs,
        StorageKind::Memory,
        StorageKind::S3,
        StorageKind::Minio,
        StorageKind::Ceph,
        StorageKind::Cubefs,
        StorageKind::Hdfs,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StorageKind::Fs => "fs",
            StorageKind::Memory => "memory",
            StorageKind::S3 => "s3",
            StorageKind::Minio => "minio",
            StorageKind::Ceph => "ceph",
            StorageKind::Cubefs => "cubefs",
            StorageKind::Hdfs => "hdfs",
        }
    }

    /// The cargo feature of `strata-backends` that compiles this kind in.
    pub fn feature(self) -> &'static str {
        match self {
            StorageKind::Fs => "fs",
            StorageKind::Memory => "memory",
            StorageKind::S3 | StorageKind::Minio | StorageKind::Ceph | StorageKind::Cubefs => "s3",
            StorageKind::Hdfs => "hdfs",
        }
    }

    /// Whether this build of Strata can open this kind.
    pub fn is_compiled_in(self) -> bool {
        const COMPILED: [(&str, bool); 4] = [
            ("fs", cfg!(feature = "fs")),
            ("memory", cfg!(feature = "memory")),
            ("s3", cfg!(feature = "s3")),
            ("hdfs", cfg!(feature = "hdfs")),
        ];
        COMPILED
            .iter()
            .any(|&(feature, on)| on && feature == self.feature())
    }
}

impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
