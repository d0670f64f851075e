//! The reads of a compaction batch: which GETs read the batch's blocks, and how
//! each copy receives its blocks in order from them.
//!
//! Each copy writes its blocks in offset order; the planner takes a copy's next
//! block, and grows a GET with whichever block of the batch starts where it ends in
//! the same object. Such a block is usually another copy's next one (stream-set
//! objects hold their streams back to back), but in a merged object a stream's parts
//! from several uploads lie together while its offsets go through other objects in
//! between: a block further on in a copy's order is read too, and held until the
//! copy reaches it, up to [`PARKED_BYTES`] held at a time.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};

use crate::object::{BlockEntry, ObjectId};

/// Blocks read ahead of their copy's order, held at most at a time (a merged
/// object's share of a batch of streams is usually a few hundred KiB).
const PARKED_BYTES: u64 = 2 << 20;

/// One GET of a batch: blocks back to back in `object`, `owners[i]` the copy that
/// takes `blocks[i]`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SharedRead {
    pub object: ObjectId,
    pub blocks: Vec<BlockEntry>,
    pub owners: Vec<usize>,
}

/// A block of a copy: its source object and entry there.
pub(super) type Source = (ObjectId, BlockEntry);

/// Plans the GETs that read every block of `copies` (each in the order the copy
/// writes them), at most `budget` bytes each (a single larger block alone).
///
/// The copies move through their sources together: one that ran ahead would read
/// alone the parts the others reach later. A GET starts at the next block of the
/// copy least far through its bytes (ties: the object most copies wait in, then the
/// first block there).
pub(super) fn plan_reads(copies: &[Vec<Source>], budget: usize) -> Vec<SharedRead> {
    let mut plan = Planner::new(copies);
    let mut reads = Vec::new();
    while let Some((owner, at)) = plan.first() {
        let object = copies[owner][at].0;
        let mut read = SharedRead {
            object,
            blocks: Vec::new(),
            owners: Vec::new(),
        };
        let mut bytes = 0u64;
        let mut next = Some((owner, at));
        while let Some((owner, at)) = next {
            let entry = copies[owner][at].1;
            plan.take(owner, at);
            bytes += u64::from(entry.len);
            read.blocks.push(entry);
            read.owners.push(owner);
            let end = entry.position + u64::from(entry.len);
            next = plan
                .untaken_at(object, end)
                .filter(|&(o, a)| bytes + u64::from(copies[o][a].1.len) <= budget as u64)
                .filter(|&(o, a)| plan.is_next(o, a) || plan.may_park(copies[o][a].1.len));
        }
        reads.push(read);
    }
    reads
}

/// What the planner has taken so far.
struct Planner<'a> {
    copies: &'a [Vec<Source>],
    /// Each copy's blocks not yet planned, by (object, position).
    untaken: HashMap<(ObjectId, u64), (usize, usize)>,
    taken: Vec<Vec<bool>>,
    /// Each copy's first block not yet written: the ones before it are written as
    /// soon as they arrive.
    cursor: Vec<usize>,
    /// Bytes taken per copy, and each copy's total.
    done: Vec<u128>,
    totals: Vec<u128>,
    /// Bytes read ahead of their copy's cursor.
    parked: u64,
}

impl<'a> Planner<'a> {
    fn new(copies: &'a [Vec<Source>]) -> Self {
        let untaken = copies
            .iter()
            .enumerate()
            .flat_map(|(owner, blocks)| {
                blocks
                    .iter()
                    .enumerate()
                    .map(move |(at, (object, entry))| ((*object, entry.position), (owner, at)))
            })
            .collect();
        Planner {
            copies,
            untaken,
            taken: copies
                .iter()
                .map(|blocks| vec![false; blocks.len()])
                .collect(),
            cursor: vec![0; copies.len()],
            done: vec![0; copies.len()],
            totals: copies
                .iter()
                .map(|blocks| {
                    blocks
                        .iter()
                        .map(|(_, e)| u128::from(e.len))
                        .sum::<u128>()
                        .max(1)
                })
                .collect(),
            parked: 0,
        }
    }

    /// Where the next GET starts: (copy, index of its next block).
    fn first(&self) -> Option<(usize, usize)> {
        let heads: Vec<(usize, usize)> = (0..self.copies.len())
            .filter(|&owner| self.cursor[owner] < self.copies[owner].len())
            .map(|owner| (owner, self.cursor[owner]))
            .collect();
        let object_of = |(owner, at): (usize, usize)| self.copies[owner][at].0;
        let waiting_in = |object| heads.iter().filter(|&&h| object_of(h) == object).count();
        // Least far through: the smallest share done, compared without division.
        let behind = |a: usize, b: usize| {
            (self.done[a] * self.totals[b]).cmp(&(self.done[b] * self.totals[a]))
        };
        heads.iter().copied().min_by(|&x, &y| {
            let key = |(owner, at): (usize, usize)| {
                let (object, entry) = self.copies[owner][at];
                (object, entry.position)
            };
            behind(x.0, y.0)
                .then(waiting_in(object_of(y)).cmp(&waiting_in(object_of(x))))
                .then(key(x).cmp(&key(y)))
        })
    }

    fn untaken_at(&self, object: ObjectId, position: u64) -> Option<(usize, usize)> {
        self.untaken.get(&(object, position)).copied()
    }

    fn is_next(&self, owner: usize, at: usize) -> bool {
        self.cursor[owner] == at
    }

    fn may_park(&self, len: u32) -> bool {
        self.parked + u64::from(len) <= PARKED_BYTES
    }

    /// Plans block `at` of `owner`; moves the copy's cursor past what it now holds.
    fn take(&mut self, owner: usize, at: usize) {
        let (object, entry) = self.copies[owner][at];
        self.untaken.remove(&(object, entry.position));
        self.taken[owner][at] = true;
        self.done[owner] += u128::from(entry.len);
        if at != self.cursor[owner] {
            self.parked += u64::from(entry.len);
            return;
        }
        self.cursor[owner] += 1;
        while let Some(true) = self.taken[owner].get(self.cursor[owner]) {
            let parked = self.copies[owner][self.cursor[owner]].1.len;
            self.parked -= u64::from(parked);
            self.cursor[owner] += 1;
        }
    }
}

/// Hands one copy its blocks in its order, whatever order they are read in: a
/// block read ahead is held until the ones before it have arrived.
pub(super) struct InOrder {
    order: Vec<(ObjectId, u64)>,
    next: usize,
    held: HashMap<(ObjectId, u64), (BlockEntry, Bytes)>,
}

impl InOrder {
    pub(super) fn new(blocks: &[Source]) -> Self {
        InOrder {
            order: blocks.iter().map(|(o, e)| (*o, e.position)).collect(),
            next: 0,
            held: HashMap::new(),
        }
    }

    /// Takes `blocks` read from `object`; returns those now due, in order.
    pub(super) fn arrive(
        &mut self,
        object: ObjectId,
        blocks: Vec<(BlockEntry, Bytes)>,
    ) -> Vec<(BlockEntry, Bytes)> {
        for (entry, data) in blocks {
            self.held.insert((object, entry.position), (entry, data));
        }
        let mut due = Vec::new();
        while let Some(block) = self
            .order
            .get(self.next)
            .and_then(|key| self.held.remove(key))
        {
            due.push(block);
            self.next += 1;
        }
        due
    }

    /// Whether every block has been handed over.
    pub(super) fn is_complete(&self) -> bool {
        self.next == self.order.len()
    }

    /// Bytes held until the blocks before them arrive.
    #[cfg(test)]
    fn held_bytes(&self) -> u64 {
        self.held
            .values()
            .map(|(entry, _)| u64::from(entry.len))
            .sum()
    }
}

/// `blocks` (as read, in the read's order) shared out between `copies` copies by
/// `owners`. A read taken by one copy is handed over as read; shares of a read taken
/// by several are each copied into a buffer of their own, so that no copy keeps the
/// whole read alive.
pub(super) fn split_by_owner(
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
    let mut entries: Vec<Vec<BlockEntry>> = (0..copies).map(|_| Vec::new()).collect();
    for ((entry, data), &owner) in blocks.iter().zip(owners) {
        buffers[owner].extend_from_slice(data);
        entries[owner].push(*entry);
    }
    drop(blocks);
    for (owner, (buffer, entries)) in buffers.into_iter().zip(entries).enumerate() {
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

    /// Two source objects, each holding the copies' streams back to back (100
    /// bytes each).
    fn two_objects(copies: usize) -> Vec<Vec<Source>> {
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

    /// Runs `reads` through an [`InOrder`] per copy; returns each copy's offsets as
    /// handed over.
    fn delivered(copies: &[Vec<Source>], reads: &[SharedRead]) -> Vec<Vec<u64>> {
        let mut in_order: Vec<InOrder> = copies.iter().map(|c| InOrder::new(c)).collect();
        let mut out = vec![Vec::new(); copies.len()];
        for read in reads {
            let blocks = read
                .blocks
                .iter()
                .map(|e| (*e, Bytes::from(vec![0; e.len as usize])))
                .collect();
            for (owner, share) in split_by_owner(blocks, &read.owners, copies.len())
                .into_iter()
                .enumerate()
            {
                for (entry, _) in in_order[owner].arrive(read.object, share) {
                    out[owner].push(entry.start_offset);
                }
            }
        }
        assert!(in_order.iter().all(InOrder::is_complete), "{reads:?}");
        out
    }

    #[test]
    fn adjacent_parts_of_the_batch_share_a_read() {
        let copies = two_objects(3);
        let reads = plan_reads(&copies, 1 << 20);
        assert_eq!(reads.len(), 2, "{reads:?}");
        assert_eq!(reads[0].object, ObjectId(7));
        assert_eq!(reads[0].owners, vec![0, 1, 2]);
        assert_eq!(reads[1].object, ObjectId(9));
        assert_eq!(reads[1].owners, vec![0, 1, 2]);
        assert_eq!(delivered(&copies, &reads), vec![vec![0, 1]; 3]);
    }

    #[test]
    fn reads_stop_at_the_budget_but_take_a_larger_block_alone() {
        let reads = plan_reads(&two_objects(3), 250);
        assert_eq!(
            reads.iter().map(|r| r.owners.clone()).collect::<Vec<_>>(),
            vec![vec![0, 1], vec![2], vec![0, 1], vec![2]]
        );
        let alone = plan_reads(&two_objects(2), 50);
        assert_eq!(alone.len(), 4, "each 100-byte block a read of its own");
    }

    #[test]
    fn each_copy_gets_its_blocks_in_order_whatever_the_layout() {
        // Copy 0 reads object 9 before 7 (a merged object of a higher id holding
        // older offsets); copy 1 the other way round.
        let copies = vec![
            vec![
                (ObjectId(9), entry(0, 10, 0)),
                (ObjectId(7), entry(0, 10, 1)),
            ],
            vec![
                (ObjectId(7), entry(10, 10, 0)),
                (ObjectId(9), entry(10, 10, 1)),
            ],
        ];
        let reads = plan_reads(&copies, 1 << 20);
        assert_eq!(delivered(&copies, &reads), vec![vec![0, 1]; 2]);
    }

    /// Uploads 1, 2, 4 and 6 hold the four streams back to back; uploads 3 and 5
    /// were merged into object 96, which holds each stream's two parts together.
    /// Every part is `len` bytes.
    fn merged_between_uploads(len: u32) -> Vec<Vec<Source>> {
        let len_at = u64::from(len);
        (0..4u64)
            .map(|copy| {
                let upload = |object: u64, n: u64| (ObjectId(object), entry(copy * len_at, len, n));
                let merged =
                    |part: u64, n: u64| (ObjectId(96), entry((copy * 2 + part) * len_at, len, n));
                vec![
                    upload(1, 0),
                    upload(2, 1),
                    merged(0, 2),
                    upload(4, 3),
                    merged(1, 4),
                    upload(6, 5),
                ]
            })
            .collect()
    }

    /// What each of the four copies of [`merged_between_uploads`] is handed: its
    /// six blocks, in order.
    fn all_six_in_order() -> Vec<Vec<u64>> {
        vec![(0..6).collect(); 4]
    }

    #[test]
    fn a_merged_object_is_read_once_for_the_batch() {
        let copies = merged_between_uploads(100);
        let reads = plan_reads(&copies, 1 << 20);
        let shared: Vec<(u64, usize)> =
            reads.iter().map(|r| (r.object.0, r.owners.len())).collect();
        assert_eq!(
            shared,
            vec![(1, 4), (2, 4), (96, 8), (4, 4), (6, 4)],
            "{reads:?}"
        );
        assert_eq!(delivered(&copies, &reads), all_six_in_order());
    }

    #[test]
    fn blocks_read_ahead_stay_within_their_budget() {
        // Parts of 1 MiB: the merged object's second parts cannot all be held.
        let scaled = merged_between_uploads(1 << 20);
        let reads = plan_reads(&scaled, 16 << 20);
        let merged_reads = reads.iter().filter(|r| r.object == ObjectId(96)).count();
        assert!(
            merged_reads > 1,
            "four 1 MiB parts held at once, over the {PARKED_BYTES}-byte budget: {reads:?}"
        );
        assert_eq!(delivered(&scaled, &reads), all_six_in_order());
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

    /// Each copy's blocks, given as the sequence of source objects it goes through
    /// (`visits`) and the blocks' lengths; in each object the copies' blocks lie
    /// back to back in copy order, each copy's in its own order, as uploads and
    /// merges lay them out.
    fn laid_out(visits: &[Vec<(u64, u32)>]) -> Vec<Vec<Source>> {
        let mut next_position: HashMap<u64, u64> = HashMap::new();
        let mut copies: Vec<Vec<Source>> = vec![Vec::new(); visits.len()];
        for (copy, blocks) in visits.iter().enumerate() {
            for (offset, &(object, len)) in blocks.iter().enumerate() {
                let position = next_position.entry(object).or_insert(0);
                copies[copy].push((ObjectId(object), entry(*position, len, offset as u64)));
                *position += u64::from(len);
            }
        }
        copies
    }

    proptest::proptest! {
        #[test]
        fn every_block_is_read_once_and_handed_over_in_order(
            visits in proptest::collection::vec(
                proptest::collection::vec((1u64..6, 1u32..(1 << 20)), 1..24),
                1..5,
            ),
            budget in (1usize << 10)..(4 << 20),
        ) {
            let copies = laid_out(&visits);
            let reads = plan_reads(&copies, budget);
            let mut seen = std::collections::HashSet::new();
            let mut in_order: Vec<InOrder> = copies.iter().map(|c| InOrder::new(c)).collect();
            for read in &reads {
                let bytes: u64 = read.blocks.iter().map(|e| u64::from(e.len)).sum();
                proptest::prop_assert!(bytes <= budget as u64 || read.blocks.len() == 1);
                for pair in read.blocks.windows(2) {
                    proptest::prop_assert_eq!(pair[0].position + u64::from(pair[0].len), pair[1].position);
                }
                for (entry, owner) in read.blocks.iter().zip(&read.owners) {
                    proptest::prop_assert!(seen.insert((read.object, entry.position)), "read twice");
                    let before = in_order[*owner].next;
                    let due = in_order[*owner].arrive(read.object, vec![(*entry, Bytes::new())]);
                    for (at, (delivered, _)) in due.into_iter().enumerate() {
                        proptest::prop_assert_eq!(delivered, copies[*owner][before + at].1);
                    }
                }
                let held: u64 = in_order.iter().map(InOrder::held_bytes).sum();
                proptest::prop_assert!(held <= PARKED_BYTES, "{} bytes held", held);
            }
            proptest::prop_assert!(in_order.iter().all(InOrder::is_complete));
        }
    }
}
