//! Builds [`Snapshot`]s from the [`Store`]: joins routes to Gateways and Services to their
//! EndpointSlices, applies `gatewayClasses`, resolves hostname addresses (in the background,
//! never on the query path), computes empty non-terminals and per-zone serials.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::kube::model::{Filters, Kind, ObjKind};
use crate::kube::snapshot::Snapshot;
use crate::kube::source::Feed;

/// What the index is built for.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// Kinds answered, in precedence order.
    pub kinds: Vec<Kind>,
    /// Zones (lower-case, absolute), for per-zone serials.
    pub zones: Vec<String>,
    pub filters: Filters,
}

impl IndexConfig {
    /// Every object kind that must be watched, de-duplicated.
    pub fn watched(&self) -> Vec<ObjKind> {
        let mut v: Vec<ObjKind> = self
            .kinds
            .iter()
            .flat_map(|k| k.watched().iter().copied())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Keeps `out` up to date with `feed` until the task is aborted: waits for changes, debounces
/// bursts, rebuilds, swaps. Also runs the background resolver for hostname addresses.
pub async fn run(_cfg: IndexConfig, _feed: Feed, _out: Arc<ArcSwap<Snapshot>>) {
    todo!("index")
}

/// One synchronous build (used by `run` and by tests).
pub fn build(_cfg: &IndexConfig, _feed: &Feed, _previous: Option<&Snapshot>) -> Snapshot {
    todo!("index")
}
