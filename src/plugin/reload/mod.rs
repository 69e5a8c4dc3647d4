//! `reload`: re-read the Corefile when its content changes, checking every INTERVAL (± a random
//! JITTER). A new config that fails to load leaves the running one in place.
//!
//! The directive adds no handler; its setup records the interval and jitter in the block's config
//! and the server runs the check loop.

use std::time::Duration;

mod setup;

pub use setup::setup;

/// How often the Corefile is checked when no interval is given.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// The jitter when none is given.
pub const DEFAULT_JITTER: Duration = Duration::from_secs(15);
/// The shortest interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_secs(2);
/// The smallest jitter accepted.
pub const MIN_JITTER: Duration = Duration::from_secs(1);
