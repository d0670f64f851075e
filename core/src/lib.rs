//! The Strata stream store.
//!
//! A Kafka partition is a stream: an append-only sequence of record batches
//! addressed by offsets, kept in objects of the bucket. This crate knows nothing of
//! Kafka's wire protocol. Built so far: the object format ([`object`]).

pub mod batch;
pub mod frame;
pub mod meta;
pub mod object;
pub mod store;
pub mod wal;
