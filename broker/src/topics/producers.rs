//! Idempotent-producer state of one partition: the last batches of each producer,
//! to refuse gaps and to acknowledge retried duplicates without writing them twice.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use strata_core::batch::RecordBatch;

/// Batches remembered per producer: Kafka's clients keep at most five in flight.
const REMEMBERED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    batches: VecDeque<BatchMeta>,
    /// Largest record timestamp of the producer's last batch.
    pub last_timestamp: i64,
}

impl ProducerEntry {
    pub fn last_sequence(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_seq)
    }
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it.
    Append,
    /// Already written at this offset: acknowledge without writing.
    Duplicate { base_offset: u64 },
}

/// Why a batch is refused; each maps to one Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("sequence {got} does not follow {last} of producer {producer_id}")]
    OutOfOrder {
        producer_id: i64,
        last: i32,
        got: i32,
    },
    #[error("producer {producer_id} epoch {got} is older than {current}")]
    StaleEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
}

/// Every idempotent producer that wrote to the partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerTable {
    producers: BTreeMap<i64, ProducerEntry>,
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

impl ProducerTable {
    /// Decides about `batch` without changing the table.
    pub fn check(&self, batch: &RecordBatch) -> Result<Verdict, SequenceError> {
        let producer_id = batch.producer_id();
        if producer_id < 0 {
            return Ok(Verdict::Append);
        }
        let (epoch, first) = (batch.producer_epoch(), batch.base_sequence());
        let entry = match self.producers.get(&producer_id) {
            Some(entry) if epoch < entry.epoch => {
                return Err(SequenceError::StaleEpoch {
                    producer_id,
                    current: entry.epoch,
                    got: epoch,
                });
            }
            Some(entry) if epoch == entry.epoch => entry,
            // A producer we do not know, or a new epoch of one: it starts at 0.
            _ if first == 0 => return Ok(Verdict::Append),
            _ => {
                return Err(SequenceError::OutOfOrder {
                    producer_id,
                    last: -1,
                    got: first,
                });
            }
        };
        let last = batch.last_sequence();
        if let Some(seen) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return Ok(Verdict::Duplicate {
                base_offset: seen.base_offset,
            });
        }
        if first == next_sequence(entry.last_sequence()) {
            Ok(Verdict::Append)
        } else {
            Err(SequenceError::OutOfOrder {
                producer_id,
                last: entry.last_sequence(),
                got: first,
            })
        }
    }

    /// Records `batch`, written at `base_offset`.
    pub fn record(&mut self, batch: &RecordBatch, base_offset: u64) {
        let producer_id = batch.producer_id();
        if producer_id < 0 {
            return;
        }
        let epoch = batch.producer_epoch();
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_timestamp: -1,
            });
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: batch.base_sequence(),
            last_seq: batch.last_sequence(),
            base_offset,
        });
        entry.last_timestamp = batch.max_timestamp();
    }

    /// Drops what is known of `producer_id`: a write of it failed, so its next batch
    /// must start a fresh sequence rather than be taken for a duplicate.
    pub fn forget(&mut self, producer_id: i64) {
        self.producers.remove(&producer_id);
    }

    /// Keeps only batches written below `end_offset`: a batch at or past it was
    /// never acknowledged, and remembering it would acknowledge its retry unwritten.
    pub fn retain_below(&mut self, end_offset: u64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.base_offset < end_offset);
        }
        self.producers.retain(|_, entry| !entry.batches.is_empty());
    }

    pub fn entries(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, entry)| (*id, entry))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;
    use strata_core::batch::synthetic_batch;

    /// A batch of an idempotent producer.
    pub(crate) fn idempotent(
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        records: u32,
    ) -> RecordBatch {
        let mut bytes = synthetic_batch(records, 10, 0).bytes().to_vec();
        bytes[43..51].copy_from_slice(&producer_id.to_be_bytes());
        bytes[51..53].copy_from_slice(&epoch.to_be_bytes());
        bytes[53..57].copy_from_slice(&first_seq.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        RecordBatch::parse(Bytes::from(bytes)).expect("valid")
    }

    #[test]
    fn follows_sequences_and_spots_duplicates_and_gaps() {
        let mut table = ProducerTable::default();
        let first = idempotent(7, 0, 0, 5);
        assert_eq!(table.check(&first), Ok(Verdict::Append));
        table.record(&first, 100);
        let second = idempotent(7, 0, 5, 5);
        assert_eq!(table.check(&second), Ok(Verdict::Append));
        table.record(&second, 105);
        assert_eq!(
            table.check(&first),
            Ok(Verdict::Duplicate { base_offset: 100 })
        );
        assert!(matches!(
            table.check(&idempotent(7, 0, 11, 1)),
            Err(SequenceError::OutOfOrder {
                last: 9,
                got: 11,
                ..
            })
        ));
        assert!(matches!(
            table.check(&idempotent(8, 0, 3, 1)),
            Err(SequenceError::OutOfOrder { .. })
        ));
        assert_eq!(table.check(&idempotent(7, 1, 0, 1)), Ok(Verdict::Append));
        table.record(&idempotent(7, 1, 0, 1), 110);
        assert!(matches!(
            table.check(&idempotent(7, 0, 10, 1)),
            Err(SequenceError::StaleEpoch { current: 1, .. })
        ));
        table.forget(7);
        assert_eq!(table.check(&idempotent(7, 1, 0, 1)), Ok(Verdict::Append));
    }

    #[test]
    fn remembers_the_last_five_batches() {
        let mut table = ProducerTable::default();
        for i in 0..7 {
            table.record(&idempotent(1, 0, i, 1), i as u64);
        }
        assert_eq!(
            table.check(&idempotent(1, 0, 2, 1)),
            Ok(Verdict::Duplicate { base_offset: 2 })
        );
        assert!(table.check(&idempotent(1, 0, 1, 1)).is_err());
        let mut below = table.clone();
        below.retain_below(5);
        // Batch 5 (at offset 5) was never durable: its retry is written, not taken for
        // a duplicate.
        assert_eq!(below.check(&idempotent(1, 0, 5, 1)), Ok(Verdict::Append));
        assert_eq!(
            below.check(&idempotent(1, 0, 4, 1)),
            Ok(Verdict::Duplicate { base_offset: 4 })
        );
        let json = serde_json::to_string(&table).expect("serialises");
        let back: ProducerTable = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, table);
    }
}
