//! Copying a batch of streams' groups into stream objects, one per stream, with the
//! reads of their source objects shared.
//!
//! A stream-set object holds its streams side by side in stream order, and a wave's
//! streams (taken in stream order) mostly share their source objects. Copied one
//! stream at a time, each stream's part of each source object was a GET of its own:
//! a few hundred KiB when 64 streams share 16 MiB uploads, about 1,700 GETs per GiB
//! compacted. A batch plans its GETs together instead (`compaction_reads`): a GET
//! takes the blocks of the batch that lie back to back in one source object, so the
//! batch costs about one GET per source object.
//!
//! Memory stays bounded: GETs of at most [`SHARED_READ`] bytes, [`READS_AHEAD`] in
//! flight (16 MiB), blocks read ahead of their stream's order held up to a budget, a
//! read's share queued per copy, and one multipart writer per stream of the batch. A
//! read shared by several streams is copied out into one buffer per stream, so that a
//! writer's part never holds on to the other streams' share of a read.

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::compaction::WrittenGroup;
use super::compaction_reads::{InOrder, Source, plan_reads, split_by_owner};
use super::metadata::{ObjectRange, ObjectRecord, ObjectState, StreamId};
use super::{Inner, StoreError, read, upload};
use crate::object::{BlockEntry, ObjectId, ObjectKind, encode_tail, object_key};

/// Streams copied together, each into a writer of its own.
pub(super) const STREAMS_PER_BATCH: usize = 4;
/// The writers' part size.
const COPY_CHUNK: usize = 8 << 20;
/// GETs of a batch in flight at once: a remote store's GET is latency-bound, and a
/// batch's GETs are fewer and larger than its copies' were one stream at a time.
pub(super) const READS_AHEAD: usize = 8;
/// The most one GET of a batch reads (a single larger block alone): four streams'
/// parts of a 16 MiB upload shared by 32 streams, about 1.8 MiB.
const SHARED_READ: usize = 2 << 20;
/// Blocks queued per copy, in reads' shares: one, so that the next read's share is
/// ready when the writer has stored the last.
const QUEUED_READS: usize = 1;

/// One stream's group to copy into a new stream object.
pub(super) struct Planned<'a> {
    pub stream: StreamId,
    pub group: &'a [ObjectRange],
}

/// Copies each of `batch` (at most [`STREAMS_PER_BATCH`] streams) into a stream
/// object of its own, in `batch`'s order; on error every object begun is discarded.
pub(super) async fn write_stream_objects(
    inner: &Inner,
    batch: &[Planned<'_>],
) -> Result<Vec<WrittenGroup>, StoreError> {
    let mut copies = Vec::with_capacity(batch.len());
    if let Err(err) = copy_batch(inner, batch, &mut copies).await {
        for copy in &mut copies {
            copy.discard(inner).await?;
        }
        return Err(err);
    }
    let written: Vec<WrittenGroup> = copies
        .iter()
        .zip(batch)
        .map(|(copy, planned)| copy.written(planned.group))
        .collect();
    for (object, planned) in written.iter().zip(batch) {
        tracing::debug!(stream = planned.stream.0, object = %object.id, ranges = planned.group.len(), bytes = object.copied_bytes, "compacted ranges into a stream object");
    }
    Ok(written)
}

/// Begins a copy per stream of `batch` into `copies`, copies their blocks and
/// completes their objects.
async fn copy_batch(
    inner: &Inner,
    batch: &[Planned<'_>],
    copies: &mut Vec<Copy>,
) -> Result<(), StoreError> {
    for _ in batch {
        copies.push(Copy::begin(inner).await?);
    }
    copy_blocks(inner, batch, copies).await?;
    let finishes: Vec<_> = copies.iter_mut().map(Copy::finish).collect();
    futures::future::try_join_all(finishes).await?;
    Ok(())
}

/// One stream's new object being written.
struct Copy {
    id: ObjectId,
    key: String,
    prepared: ObjectRecord,
    writer: opendal::Writer,
    /// The blocks written so far, at their positions in the new object.
    entries: Vec<BlockEntry>,
    position: u64,
    size: u64,
    /// Whether the object is complete (its writer closed).
    finished: bool,
}

impl Copy {
    async fn begin(inner: &Inner) -> Result<Self, StoreError> {
        let (id, prepared) = inner.new_object(ObjectKind::Stream, 0).await?;
        let key = object_key(id);
        let writer = match inner
            .storage
            .operator()
            .writer_with(&key)
            .chunk(COPY_CHUNK)
            .await
        {
            Ok(writer) => writer,
            Err(err) => {
                upload::discard_object(inner, id).await?;
                return Err(StoreError::storage("write", &key)(err));
            }
        };
        Ok(Copy {
            id,
            key,
            prepared,
            writer,
            entries: Vec::new(),
            position: 0,
            size: 0,
            finished: false,
        })
    }

    /// Appends `blocks` (this stream's next, in order) to the object.
    async fn write(&mut self, blocks: Vec<(BlockEntry, Bytes)>) -> Result<(), StoreError> {
        for (entry, data) in blocks {
            self.writer
                .write(data)
                .await
                .map_err(StoreError::storage("write", &self.key))?;
            self.entries.push(BlockEntry {
                position: self.position,
                ..entry
            });
            self.position += u64::from(entry.len);
        }
        Ok(())
    }

    /// Writes the index and footer and completes the object.
    async fn finish(&mut self) -> Result<(), StoreError> {
        let tail = encode_tail(ObjectKind::Stream, &self.entries, self.position);
        self.size = self.position + tail.len() as u64;
        self.writer
            .write(Bytes::from(tail))
            .await
            .map_err(StoreError::storage("write", &self.key))?;
        self.writer
            .close()
            .await
            .map_err(StoreError::storage("write", &self.key))?;
        self.finished = true;
        metrics::counter!("strata_compaction_written_bytes_total").increment(self.size);
        Ok(())
    }

    /// Removes the object, aborting its writer first if it is still open (a remote
    /// store would otherwise keep the multipart upload's parts).
    async fn discard(&mut self, inner: &Inner) -> Result<(), StoreError> {
        if !self.finished
            && let Err(err) = self.writer.abort().await
            && err.kind() != opendal::ErrorKind::Unsupported
        {
            tracing::debug!(object = %self.id, error = %err, "aborting a compaction's writer failed; the object is removed anyway");
        }
        upload::discard_object(inner, self.id).await
    }

    /// The finished object, holding `group` as one range.
    fn written(&self, group: &[ObjectRange]) -> WrittenGroup {
        let merged = ObjectRange {
            start_offset: group[0].start_offset,
            end_offset: group[group.len() - 1].end_offset,
            object: self.id,
            bytes: group.iter().map(|r| r.bytes).sum(),
            max_timestamp: group
                .iter()
                .map(|r| r.max_timestamp)
                .max()
                .unwrap_or(i64::MIN),
        };
        WrittenGroup {
            id: self.id,
            committed: ObjectRecord {
                state: ObjectState::Committed,
                size: self.size,
                ..self.prepared
            },
            merged,
            copied_bytes: self.position,
        }
    }
}

/// Reads every block of `batch`'s groups, a planned GET at a time ([`READS_AHEAD`]
/// in flight), and hands each copy its blocks in order. Each copy writes from a
/// queue of its own: a writer waiting for its part to be stored holds up neither the
/// reads nor the other copies.
async fn copy_blocks(
    inner: &Inner,
    batch: &[Planned<'_>],
    copies: &mut [Copy],
) -> Result<(), StoreError> {
    let mut sources = Vec::with_capacity(batch.len());
    for planned in batch {
        sources.push(blocks_to_copy(inner, planned).await?);
    }
    let (queues, received): (Vec<_>, Vec<_>) = (0..copies.len())
        .map(|_| mpsc::channel::<Vec<(BlockEntry, Bytes)>>(QUEUED_READS))
        .unzip();
    let writes: Vec<_> = copies
        .iter_mut()
        .zip(received)
        .map(|(copy, mut received)| async move {
            while let Some(blocks) = received.recv().await {
                copy.write(blocks).await?;
            }
            Ok::<_, StoreError>(())
        })
        .collect();
    let (read, written) = futures::join!(
        read_in_order(inner, batch, &sources, queues),
        futures::future::try_join_all(writes)
    );
    // A writer's error first: the reads stop when a writer does.
    written?;
    read
}

/// Reads the blocks of `sources` (one list per copy of `batch`) and queues each
/// copy's blocks to it in order.
async fn read_in_order(
    inner: &Inner,
    batch: &[Planned<'_>],
    sources: &[Vec<Source>],
    queues: Vec<mpsc::Sender<Vec<(BlockEntry, Bytes)>>>,
) -> Result<(), StoreError> {
    let reads = plan_reads(sources, SHARED_READ);
    let mut in_order: Vec<InOrder> = sources.iter().map(|blocks| InOrder::new(blocks)).collect();
    // Collected first: a stream over a closure borrowing `reads`, held across the
    // awaits below, makes the future not `Send` for the compiler.
    let fetches: Vec<_> = reads
        .iter()
        .map(|planned| async move {
            let read = read::read_contiguous(inner, planned.object, &planned.blocks).await;
            (read, planned)
        })
        .collect();
    let mut fetched = futures::stream::iter(fetches).buffered(READS_AHEAD);
    while let Some((read, planned)) = fetched.next().await {
        let shares = split_by_owner(read?, &planned.owners, queues.len());
        for ((queue, in_order), share) in queues.iter().zip(&mut in_order).zip(shares) {
            if share.is_empty() {
                continue;
            }
            let due = in_order.arrive(planned.object, share);
            if !due.is_empty() && queue.send(due).await.is_err() {
                return Err(StoreError::Task("a compaction copy stopped writing".into()));
            }
        }
    }
    if let Some(owner) = in_order.iter().position(|copy| !copy.is_complete()) {
        return Err(StoreError::Task(format!(
            "compaction of stream {} planned reads that missed some of its blocks",
            batch[owner].stream.0
        )));
    }
    Ok(())
}

/// Every block of `planned`'s group, in offset order, with its source object.
async fn blocks_to_copy(inner: &Inner, planned: &Planned<'_>) -> Result<Vec<Source>, StoreError> {
    let mut blocks = Vec::new();
    for range in planned.group {
        let index = read::load_index(inner, range.object).await?;
        blocks.extend(
            index
                .blocks_of(planned.stream.0)
                .iter()
                .filter(|e| {
                    e.start_offset >= range.start_offset && e.end_offset <= range.end_offset
                })
                .map(|entry| (range.object, *entry)),
        );
    }
    Ok(blocks)
}
