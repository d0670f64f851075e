//! Copying a batch of streams' groups into stream objects, one per stream, with the
//! reads of their source objects shared.
//!
//! A stream-set object holds its streams side by side in stream order, and a wave's
//! streams (taken in stream order) mostly share their source objects. Copied one
//! stream at a time, each stream's part of each source object was a GET of its own:
//! a few hundred KiB when 64 streams share 16 MiB uploads, about 1,700 GETs per GiB
//! compacted. A batch plans its GETs together instead: a GET takes the next blocks of
//! every stream of the batch that lie back to back in one source object, so the
//! batch's streams cost one GET per source object where their parts are adjacent.
//!
//! Memory stays bounded: GETs of at most [`SHARED_READ`] bytes, [`READS_AHEAD`] in
//! flight, and one multipart writer per stream of the batch. A read shared by several
//! streams is copied out into one buffer per stream, so that a writer's part never
//! holds on to the other streams' share of a read.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::compaction::WrittenGroup;
use super::metadata::{ObjectRange, ObjectRecord, ObjectState, StreamId};
use super::{Inner, StoreError, read, upload};
use crate::object::{BlockEntry, ObjectId, ObjectKind, encode_tail, object_key};

/// Streams copied together, each into a writer of its own.
pub(super) const STREAMS_PER_BATCH: usize = 4;
/// The writers' part size.
const COPY_CHUNK: usize = 8 << 20;
/// GETs of a batch in flight at once. A stream's part of a source object is often a
/// few hundred KiB, and one GET at a time left a copy waiting on a remote store's
/// latency.
pub(super) const READS_AHEAD: usize = 4;
/// The most one GET of a batch reads: the reads in flight hold a part's worth,
/// beside the writers' parts.
const SHARED_READ: usize = COPY_CHUNK / READS_AHEAD;

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
    let mut result = Ok(());
    for _ in batch {
        match Copy::begin(inner).await {
            Ok(copy) => copies.push(copy),
            Err(err) => {
                result = Err(err);
                break;
            }
        }
    }
    if result.is_ok() {
        result = copy_blocks(inner, batch, &mut copies).await;
    }
    let mut written = Vec::with_capacity(copies.len());
    if result.is_ok() {
        let finishes: Vec<_> = copies.iter_mut().map(Copy::finish).collect();
        let finished = futures::future::join_all(finishes).await;
        result = finished.into_iter().collect::<Result<(), _>>();
        if result.is_ok() {
            written = copies
                .iter()
                .zip(batch)
                .map(|(copy, planned)| copy.written(planned.group))
                .collect();
        }
    }
    if let Err(err) = result {
        for copy in &copies {
            upload::discard_object(inner, copy.id).await?;
        }
        return Err(err);
    }
    for (object, planned) in written.iter().zip(batch) {
        tracing::debug!(stream = planned.stream.0, object = %object.id, ranges = planned.group.len(), bytes = object.copied_bytes, "compacted ranges into a stream object");
    }
    Ok(written)
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
        metrics::counter!("strata_compaction_written_bytes_total").increment(self.size);
        Ok(())
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
/// in flight), and hands each copy its blocks in order.
async fn copy_blocks(
    inner: &Inner,
    batch: &[Planned<'_>],
    copies: &mut [Copy],
) -> Result<(), StoreError> {
    let mut queues = Vec::with_capacity(batch.len());
    for planned in batch {
        queues.push(blocks_to_copy(inner, planned).await?);
    }
    let reads = plan_reads(queues, SHARED_READ);
    // Collected first: a stream over a closure borrowing `reads`, held across the
    // awaits below, makes the future not `Send` for the compiler.
    let fetches: Vec<_> = reads
        .iter()
        .map(|planned| async move {
            let read = read::read_contiguous(inner, planned.object, &planned.blocks).await;
            (read, &planned.owners)
        })
        .collect();
    let mut fetched = futures::stream::iter(fetches).buffered(READS_AHEAD);
    while let Some((read, owners)) = fetched.next().await {
        let shares = split_by_owner(read?, owners, copies.len());
        let writes: Vec<_> = copies
            .iter_mut()
            .zip(shares)
            .filter(|(_, share)| !share.is_empty())
            .map(|(copy, share)| copy.write(share))
            .collect();
        futures::future::try_join_all(writes).await?;
    }
    Ok(())
}

/// Every block of `planned`'s group, in offset order, with its source object.
async fn blocks_to_copy(
    inner: &Inner,
    planned: &Planned<'_>,
) -> Result<VecDeque<(ObjectId, BlockEntry)>, StoreError> {
    let mut blocks = VecDeque::new();
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

/// One GET of a batch: blocks back to back in `object`, `owners[i]` the copy that
/// takes `blocks[i]`.
#[derive(Debug, PartialEq, Eq)]
struct SharedRead {
    object: ObjectId,
    blocks: Vec<BlockEntry>,
    owners: Vec<usize>,
}

/// Plans the GETs that read every block of `queues` (one per copy, each in the
/// order the copy writes them) at most `budget` bytes each (a single larger block
/// alone). Only the next block of a copy is ever taken, so each copy receives its
/// blocks in order whatever the sources' layout.
///
/// The copies move through their sources together: a copy that ran ahead would read
/// alone the parts the others reach later. A GET starts at the next block of the
/// copy least far through its bytes (ties: the object most copies wait in, then the
/// first block there), and grows while some copy's next block starts where it ends.
/// A merged object holds each stream's parts from several uploads together, between
/// which the stream's parts in other objects come: its copies read it a part at a
/// time and catch up with the others before they move on.
fn plan_reads(mut queues: Vec<VecDeque<(ObjectId, BlockEntry)>>, budget: usize) -> Vec<SharedRead> {
    let totals: Vec<u128> = queues
        .iter()
        .map(|queue| {
            queue
                .iter()
                .map(|(_, e)| u128::from(e.len))
                .sum::<u128>()
                .max(1)
        })
        .collect();
    let mut taken = vec![0u128; queues.len()];
    let mut reads = Vec::new();
    loop {
        let heads: Vec<(ObjectId, u64, usize)> = queues
            .iter()
            .enumerate()
            .filter_map(|(owner, queue)| queue.front().map(|(o, e)| (*o, e.position, owner)))
            .collect();
        let waiting_in = |object: ObjectId| heads.iter().filter(|(o, _, _)| *o == object).count();
        // Least far through: the smallest share taken, compared without division.
        let behind = |a: usize, b: usize| (taken[a] * totals[b]).cmp(&(taken[b] * totals[a]));
        let first = heads
            .iter()
            .min_by(|(oa, pa, a), (ob, pb, b)| {
                behind(*a, *b)
                    .then(waiting_in(*ob).cmp(&waiting_in(*oa)))
                    .then((oa, pa).cmp(&(ob, pb)))
            })
            .copied();
        let Some((object, _, owner)) = first else {
            return reads;
        };
        let mut read = SharedRead {
            object,
            blocks: Vec::new(),
            owners: Vec::new(),
        };
        let mut next_owner = Some(owner);
        let mut bytes = 0u64;
        while let Some(owner) = next_owner {
            let Some((_, entry)) = queues[owner].pop_front() else {
                break;
            };
            let end = entry.position + u64::from(entry.len);
            bytes += u64::from(entry.len);
            taken[owner] += u128::from(entry.len);
            read.blocks.push(entry);
            read.owners.push(owner);
            next_owner = queues.iter().position(|queue| {
                queue.front().is_some_and(|(o, e)| {
                    *o == object && e.position == end && bytes + u64::from(e.len) <= budget as u64
                })
            });
        }
        reads.push(read);
    }
}

/// `blocks` (as read, in the read's order) shared out between `copies` copies by
/// `owners`. A read taken by one copy is handed over as read; shares of a read taken
/// by several are each copied into a buffer of their own, so that no copy keeps the
/// whole read alive.
fn split_by_owner(
    blocks: Vec<(BlockEntry, Bytes)>,
    owners: &[usize],
    copies: usize,
) -> Vec<Vec<(BlockEntry, Bytes)>> {
    let mut shares: Vec<Vec<(BlockEntry, Bytes)>> = (0..copies).map(|_| Vec::new()).collect();
    let shared = owners.iter().any(|&owner| owner != owners[0]);
    if !shared {
        if let Some(&owner) = owners.first() {
            shares[owner] = blocks;
        }
        return shares;
    }
    let mut buffers: Vec<BytesMut> = (0..copies).map(|_| BytesMut::new()).collect();
    let mut lens: Vec<Vec<BlockEntry>> = (0..copies).map(|_| Vec::new()).collect();
    for ((entry, data), &owner) in blocks.iter().zip(owners) {
        buffers[owner].extend_from_slice(data);
        lens[owner].push(*entry);
    }
    drop(blocks);
    for (owner, (buffer, entries)) in buffers.into_iter().zip(lens).enumerate() {
        let mut buffer = buffer.freeze();
        shares[owner] = entries
            .into_iter()
            .map(|entry| (entry, buffer.split_to(entry.len as usize)))
            .collect();
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(position: u64, len: u32, start_offset: u64) -> BlockEntry {
        BlockEntry {
            stream_id: 0,
            start_offset,
            end_offset: start_offset + 1,
            position,
            len,
            record_count: 1,
            max_timestamp: 0,
            checksum: 0,
        }
    }

    /// Two source objects, each holding streams 0..3 back to back (100 bytes each).
    fn two_objects(copies: usize) -> Vec<VecDeque<(ObjectId, BlockEntry)>> {
        (0..copies)
            .map(|copy| {
                [ObjectId(7), ObjectId(9)]
                    .into_iter()
                    .enumerate()
                    .map(|(at, object)| (object, entry(copy as u64 * 100, 100, at as u64)))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn adjacent_parts_of_the_batch_share_a_read() {
        let reads = plan_reads(two_objects(3), 1 << 20);
        assert_eq!(reads.len(), 2, "{reads:?}");
        assert_eq!(reads[0].object, ObjectId(7));
        assert_eq!(reads[0].owners, vec![0, 1, 2]);
        assert_eq!(reads[1].object, ObjectId(9));
        assert_eq!(reads[1].owners, vec![0, 1, 2]);
    }

    #[test]
    fn copies_move_through_their_sources_together() {
        // Uploads 1, 2, 4 and 6 hold the four streams back to back; uploads 3 and 5
        // were merged into object 96, which holds each stream's two parts together.
        let queues: Vec<VecDeque<(ObjectId, BlockEntry)>> = (0..4u64)
            .map(|copy| {
                let upload = |object: u64, n: u64| (ObjectId(object), entry(copy * 100, 100, n));
                let merged =
                    |part: u64, n: u64| (ObjectId(96), entry(copy * 200 + part * 100, 100, n));
                VecDeque::from([
                    upload(1, 0),
                    upload(2, 1),
                    merged(0, 2),
                    upload(4, 3),
                    merged(1, 4),
                    upload(6, 5),
                ])
            })
            .collect();
        let reads = plan_reads(queues, 1 << 20);
        let shared: Vec<(u64, usize)> =
            reads.iter().map(|r| (r.object.0, r.owners.len())).collect();
        // Each upload one GET for the four; the merged object a GET per stream and
        // part (a stream's parts there are apart in its offsets).
        assert_eq!(
            shared,
            [
                vec![(1, 4), (2, 4)],
                vec![(96, 1); 4],
                vec![(4, 4)],
                vec![(96, 1); 4],
                vec![(6, 4)]
            ]
            .concat(),
            "{reads:?}"
        );
    }

    #[test]
    fn reads_stop_at_the_budget_but_take_a_larger_block_alone() {
        let reads = plan_reads(two_objects(3), 250);
        assert_eq!(
            reads.iter().map(|r| r.owners.clone()).collect::<Vec<_>>(),
            vec![vec![0, 1], vec![2], vec![0, 1], vec![2]]
        );
        let alone = plan_reads(two_objects(2), 50);
        assert_eq!(alone.len(), 4, "each 100-byte block a read of its own");
    }

    #[test]
    fn each_copy_gets_its_blocks_in_order_whatever_the_layout() {
        // Copy 0 reads object 9 before 7 (a merged object of a higher id holding
        // older offsets); copy 1 the other way round.
        let queues = vec![
            VecDeque::from([
                (ObjectId(9), entry(0, 10, 0)),
                (ObjectId(7), entry(0, 10, 1)),
            ]),
            VecDeque::from([
                (ObjectId(7), entry(10, 10, 0)),
                (ObjectId(9), entry(10, 10, 1)),
            ]),
        ];
        let reads = plan_reads(queues, 1 << 20);
        for owner in 0..2 {
            let offsets: Vec<u64> = reads
                .iter()
                .flat_map(|r| r.blocks.iter().zip(&r.owners))
                .filter(|(_, o)| **o == owner)
                .map(|(e, _)| e.start_offset)
                .collect();
            assert_eq!(offsets, vec![0, 1], "copy {owner}: {reads:?}");
        }
    }

    #[test]
    fn shared_reads_are_split_into_buffers_of_their_own() {
        let read = Bytes::from_static(b"aaabbbbcc");
        let blocks = vec![
            (entry(0, 3, 0), read.slice(0..3)),
            (entry(3, 4, 0), read.slice(3..7)),
            (entry(7, 2, 1), read.slice(7..9)),
        ];
        let shares = split_by_owner(blocks.clone(), &[1, 1, 0], 3);
        assert_eq!(shares[1].len(), 2);
        assert_eq!(&shares[1][0].1[..], b"aaa");
        assert_eq!(&shares[1][1].1[..], b"bbbb");
        assert_eq!(&shares[0][0].1[..], b"cc");
        assert!(shares[2].is_empty());
        let alone = split_by_owner(blocks, &[2, 2, 2], 3);
        assert_eq!(alone[2].len(), 3);
        assert_eq!(
            alone[2][2].1.as_ptr(),
            read[7..].as_ptr(),
            "one copy's read is handed over as read"
        );
    }
}
