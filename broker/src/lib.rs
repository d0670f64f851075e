//! The Strata broker: the Kafka protocol front end over the stream store, and the
//! `strata` command.
//!
//! Layout: [`server`] reads frames and writes responses in order; [`api`] holds one
//! handler module per API family behind a single dispatch table; [`topics`] and
//! [`groups`] hold the state the handlers act on; [`broker`] opens and closes it all.

pub mod api;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dynamic_config;
pub mod fetch_sessions;
pub mod groups;
pub mod observability;
pub mod producer_ids;
pub mod server;
pub mod topics;
pub mod wal_dir;
