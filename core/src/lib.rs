//! The Strata stream store.
//!
//! A Kafka partition is a stream: an append-only sequence of record batches
//! addressed by offsets, kept in objects of the bucket. This crate knows nothing of
//! Kafka's wire protocol beyond the fixed header of a record batch ([`batch`]).
//!
//! [`store::StreamStore`] is the entry point; it is built from the object format
//! ([`object`]), checksummed log frames ([`frame`]), the local WAL ([`wal`]) and the
//! metadata store ([`meta`]). `docs/stream-store.md` maps it.

pub mod batch;
mod buffer_pool;
pub mod dir_lock;
pub mod frame;
pub mod meta;
pub mod object;
pub mod store;
pub mod wal;

#[cfg(test)]
mod test_support;
