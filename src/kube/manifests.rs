//! The manifests source (being built on its own branch).

use std::path::PathBuf;

use crate::kube::model::{Filters, ObjKind};
use crate::kube::source::Feed;

pub async fn run(_dir: PathBuf, _kinds: Vec<ObjKind>, _filters: Filters, _feed: Feed) {
    todo!("manifests")
}
