//! The Strata broker: the Kafka protocol front end and the `strata` command.
//!
//! For now it carries the config loader and the storage tools; the Kafka listener
//! (`strata serve`) lands with the broker issue.

pub mod cli;
pub mod config;
