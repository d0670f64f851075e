//! The Strata stream store. The store itself lands with the stream-store issue.
