//! The cluster side: object kinds, sources (API server watchers, manifest files), the store and
//! the index that `k8s_gateway` answers from.

pub mod client;
pub mod crds;
pub mod index;
pub mod kinds;
pub mod manifests;
pub mod metrics;
pub mod model;
pub mod selector;
pub mod snapshot;
pub mod source;
pub mod watch;
