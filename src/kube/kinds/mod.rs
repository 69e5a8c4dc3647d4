//! Per-kind conversion: a raw Kubernetes object (as JSON) → what it contributes to the index.
//! The same functions serve the API-server watchers and the manifests source.

use crate::kube::model::{Contribution, Filters, ObjKey, ObjKind};

/// Converts one object of `kind`. `Ok(None)`: the object exists but contributes nothing
/// (ignored by label, filtered out, no usable names). `Err`: the object is malformed (the
/// message names what is wrong; the caller logs it and skips the object).
pub fn contribute(
    _kind: ObjKind,
    _obj: &serde_json::Value,
    _filters: &Filters,
) -> Result<(ObjKey, Option<Contribution>), String> {
    todo!("kinds")
}
