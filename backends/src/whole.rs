//! Writing a whole object at once, with the flush shaped for the backend.
//!
//! OpenDAL's `fs` writer syncs a file once, on close. For an object of tens of MiB
//! that one flush holds the disk's write cache for its whole length, and every
//! `fdatasync` of a WAL on the same disk waits behind it: the WAL's p99 becomes the
//! object's flush time. Written as a run of appends, each synced on close, the disk
//! drains the object piece by piece and a WAL sync waits behind one piece at most
//! ([`Flush::Paced`]), at the cost of one `fsync` per piece: an upload that has
//! fallen behind the WAL flushes once instead ([`Flush::Once`]).

use opendal::{Buffer, Error, ErrorKind, Operator};

/// The piece of an object synced at a time on a local directory: a WAL sync waits
/// behind at most this much object data. Measured on the project's VM (Kafka produce
/// at 50 MiB/s, p99 per record): 4 MiB pieces 19 ms, 1 MiB 10 ms, 256 KiB 7.5 ms,
/// 128 KiB no better; smaller pieces cost upload throughput (one fsync each).
pub const LOCAL_SYNC_PIECE: usize = 256 << 10;

/// How a whole-object write reaches a local directory's disk. Remote stores take
/// either the same way: one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Synced piece by piece ([`LOCAL_SYNC_PIECE`]): a WAL sync on the same disk waits
    /// behind one piece at most, at the cost of one `fsync` per piece.
    Paced,
    /// Synced once, when written: the fastest write, for when no WAL sync is waiting
    /// on this disk or appends already wait for this write (an upload that is behind).
    Once,
}

/// Writes `data` as the object at `path` of a local directory, replacing anything
/// there.
///
/// With [`Flush::Paced`] an object larger than [`LOCAL_SYNC_PIECE`] exists under its
/// final name, partly written, until this returns; callers reference an object only
/// after it returns (a crash in between leaves an object no metadata points at).
pub(crate) async fn write_local(
    operator: &Operator,
    flush: Flush,
    path: &str,
    data: Buffer,
) -> opendal::Result<()> {
    if flush == Flush::Once || data.len() <= LOCAL_SYNC_PIECE {
        operator.write(path, data).await?;
        return Ok(());
    }
    let mut written = 0;
    let mut size = 0;
    for start in (0..data.len()).step_by(LOCAL_SYNC_PIECE) {
        let piece = data.slice(start..data.len().min(start + LOCAL_SYNC_PIECE));
        let metadata = operator
            .write_with(path, piece.clone())
            .append(start > 0)
            .await?;
        written += piece.len();
        size = metadata.content_length();
    }
    // A retried append (the retry layer, after an error that hid a completed write)
    // would leave a piece twice: the size tells.
    if size != written as u64 {
        return Err(Error::new(
            ErrorKind::Unexpected,
            format!("object is {size} bytes after writing {written} in pieces"),
        )
        .with_context("path", path));
    }
    Ok(())
}

#[cfg(all(test, feature = "fs"))]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{Storage, StorageConfig};

    fn local(root: &std::path::Path) -> Storage {
        let document = format!("[storage]\nkind = \"fs\"\nroot = \"{}\"\n", root.display());
        let config = StorageConfig::from_document(&document).expect("valid config");
        Storage::open(&config).expect("opens")
    }

    #[tokio::test]
    async fn pieces_add_up_to_the_object_and_replace_an_older_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = local(dir.path());
        let data: Bytes = (0..(3 * LOCAL_SYNC_PIECE + 12345))
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into();
        storage
            .write_whole(
                "o/big",
                Bytes::from(vec![9u8; 5 * LOCAL_SYNC_PIECE]),
                Flush::Once,
            )
            .await
            .expect("first write");
        storage
            .write_whole("o/big", data.clone(), Flush::Paced)
            .await
            .expect("second write");
        let read = storage.operator().read("o/big").await.expect("read");
        assert_eq!(read.to_bytes(), data);

        // An object in pieces of its own (uploads pass the record batches as they
        // are held), none aligned with the synced pieces.
        let parts: Vec<Bytes> = (0..data.len())
            .step_by(7001)
            .map(|start| data.slice(start..data.len().min(start + 7001)))
            .collect();
        for flush in [Flush::Paced, Flush::Once] {
            storage
                .write_whole("o/parts", Buffer::from(parts.clone()), flush)
                .await
                .expect("write of a buffer in parts");
            let read = storage.operator().read("o/parts").await.expect("read");
            assert_eq!(read.to_bytes(), data, "{flush:?}");
        }

        storage
            .write_whole("o/small", Bytes::from_static(b"small"), Flush::Paced)
            .await
            .expect("small write");
        let read = storage.operator().read("o/small").await.expect("read");
        assert_eq!(read.to_bytes(), Bytes::from_static(b"small"));
    }
}
