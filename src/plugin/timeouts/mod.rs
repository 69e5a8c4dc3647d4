//! `timeouts`: the read, write and idle timeouts of the server's stream transports (TCP and
//! DoT) and the number of queries served on one connection, as CoreDNS's *timeouts* plugin.
//!
//! The directive adds no handler; its setup records [`StreamTimeouts`] in the block's config and
//! the server applies them to the listeners the block is served on (when several blocks share a
//! listener, the later block's values win, as CoreDNS merges a server's sites).

mod setup;

pub use crate::plugin::config::StreamTimeouts;
pub use setup::setup;
