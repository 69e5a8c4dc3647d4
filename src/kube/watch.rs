//! The API-server source (being built on its own branch).

use std::path::PathBuf;

use crate::kube::model::{Filters, ObjKind};
use crate::kube::source::Feed;

pub async fn client(
    _kubeconfig: Option<(PathBuf, Option<String>)>,
) -> Result<kube::Client, String> {
    todo!("watch")
}

pub async fn run(_client: kube::Client, _kinds: Vec<ObjKind>, _filters: Filters, _feed: Feed) {
    todo!("watch")
}
