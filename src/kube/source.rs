//! Where sources deliver object changes: the shared [`Store`] plus a change signal the index
//! builder waits on. Sources never touch the query path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::kube::model::{Event, ObjKind, Store};

/// A handle sources write to and the index builder reads from. Cheap to clone.
#[derive(Clone, Default)]
pub struct Feed {
    inner: Arc<FeedInner>,
}

#[derive(Default)]
struct FeedInner {
    store: Mutex<Store>,
    changed: Notify,
    version: AtomicU64,
}

impl Feed {
    pub fn new() -> Self {
        Feed::default()
    }

    /// Applies `ev` for `kind`; wakes the index builder if anything changed.
    pub fn apply(&self, kind: ObjKind, ev: Event) {
        let changed = self
            .inner
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .apply(kind, ev);
        if changed {
            self.bump();
        }
    }

    /// Marks `kind` as synced (its initial list is complete, or it is known not to be served).
    pub fn set_synced(&self, kind: ObjKind, synced: bool) {
        let mut s = self.inner.store.lock().unwrap_or_else(|e| e.into_inner());
        if s.is_synced(kind) != synced {
            s.set_synced(kind, synced);
            drop(s);
            self.bump();
        }
    }

    /// Wakes the index builder without a store change (e.g. a hostname resolved).
    pub fn bump(&self) {
        self.inner.version.fetch_add(1, Ordering::AcqRel);
        self.inner.changed.notify_one();
    }

    /// Runs `f` on the store (under its lock: keep it short).
    pub fn with_store<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.inner.store.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Increases with every change.
    pub fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }

    /// Waits for the next change (returns at once if one happened since the last wait).
    pub async fn changed(&self) {
        self.inner.changed.notified().await
    }
}
