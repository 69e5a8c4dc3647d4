//! Where sources deliver object changes: the shared [`Store`] plus a change signal the index
//! builder waits on. Sources never touch the query path.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::kube::model::{Contribution, Event, ObjKey, ObjKind, Store};

/// A handle sources write to and the index builder reads from. Cheap to clone.
#[derive(Clone, Default)]
pub struct Feed {
    inner: Arc<FeedInner>,
    /// Set on feeds of one of several sources: keys are prefixed so objects of different
    /// clusters never collide, and references (route parents, EndpointSlice services) stay
    /// within their own cluster.
    scope: Option<Arc<str>>,
}

/// Registered scopes, and per kind the scopes that have synced it.
type Scopes = (Vec<Arc<str>>, HashMap<ObjKind, HashSet<Arc<str>>>);

#[derive(Default)]
struct FeedInner {
    store: Mutex<Store>,
    changed: Notify,
    version: AtomicU64,
    /// Scopes created with [`Feed::scoped`], and which of them have synced each kind: a kind
    /// is synced when every scope has synced it.
    scopes: Mutex<Scopes>,
}

impl Feed {
    pub fn new() -> Self {
        Feed::default()
    }

    /// A feed into the same store whose object keys are scoped to `scope` (one cluster or
    /// manifests directory among several).
    /// Create every scoped feed before starting any source, so that no kind counts as synced
    /// before all sources are known.
    pub fn scoped(&self, scope: &str) -> Feed {
        let scope: Arc<str> = Arc::from(scope);
        let mut sc = self.inner.scopes.lock().unwrap_or_else(|e| e.into_inner());
        if !sc.0.contains(&scope) {
            sc.0.push(scope.clone());
        }
        Feed {
            inner: self.inner.clone(),
            scope: Some(scope),
        }
    }

    /// Applies `ev` for `kind`; wakes the index builder if anything changed.
    pub fn apply(&self, kind: ObjKind, ev: Event) {
        let ev = match &self.scope {
            Some(s) => scope_event(s, kind, ev),
            None => ev,
        };
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
    ///
    /// For scoped feeds the kind is synced once every scope has synced it. The scopes' lock is
    /// held until the store is written: computed under it and written after it, two scopes
    /// syncing at once could write their results in the wrong order and leave the kind
    /// unsynced for good (seen as a cluster pair that never became ready).
    pub fn set_synced(&self, kind: ObjKind, synced: bool) {
        let mut scopes = None;
        let synced = match &self.scope {
            None => synced,
            Some(scope) => {
                let sc = scopes.insert(self.inner.scopes.lock().unwrap_or_else(|e| e.into_inner()));
                let (all, done) = &mut **sc;
                let set = done.entry(kind).or_default();
                if synced {
                    set.insert(scope.clone());
                } else {
                    set.remove(scope);
                }
                all.iter().all(|s| set.contains(s))
            }
        };
        // Lock order: scopes, then store (nothing takes them the other way round).
        let mut s = self.inner.store.lock().unwrap_or_else(|e| e.into_inner());
        let changed = s.is_synced(kind) != synced;
        if changed {
            s.set_synced(kind, synced);
        }
        drop(s);
        drop(scopes);
        if changed {
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

    /// Runs `f` on the store with write access (under its lock: keep it short). The index
    /// builder takes the store's change log this way.
    pub(crate) fn with_store_mut<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut self.inner.store.lock().unwrap_or_else(|e| e.into_inner()))
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

fn scope_key(scope: &str, k: ObjKey) -> ObjKey {
    ObjKey {
        namespace: format!("{scope}\u{1f}{}", k.namespace),
        name: k.name,
    }
}

fn scope_contribution(scope: &str, c: Contribution) -> Contribution {
    match c {
        Contribution::Names(mut names) => {
            for n in &mut names {
                if let Some(k) = n.endpoints_of.take() {
                    n.endpoints_of = Some(scope_key(scope, k));
                }
            }
            Contribution::Names(names)
        }
        Contribution::Route {
            hostnames,
            parents,
            ttl,
            inherit,
            sections,
        } => Contribution::Route {
            hostnames,
            parents: parents.into_iter().map(|p| scope_key(scope, p)).collect(),
            ttl,
            inherit,
            sections: sections
                .into_iter()
                .map(|(p, s)| (scope_key(scope, p), s))
                .collect(),
        },
        Contribution::EndpointSlice { service, addrs } => Contribution::EndpointSlice {
            service: scope_key(scope, service),
            addrs,
        },
        Contribution::Service {
            mut names,
            selector,
            addrs,
        } => {
            for n in &mut names {
                if let Some(k) = n.endpoints_of.take() {
                    n.endpoints_of = Some(scope_key(scope, k));
                }
            }
            Contribution::Service {
                names,
                selector,
                addrs,
            }
        }
        Contribution::IstioVirtualService {
            names,
            gateways,
            export_to,
            target,
            ttl,
        } => Contribution::IstioVirtualService {
            names,
            gateways: gateways.into_iter().map(|g| scope_key(scope, g)).collect(),
            export_to,
            target,
            ttl,
        },
        g @ (Contribution::Gateway { .. } | Contribution::IstioGateway { .. }) => g,
    }
}

/// Replace events of a scoped feed only replace that scope's objects.
fn scope_event(scope: &str, _kind: ObjKind, ev: Event) -> Event {
    match ev {
        Event::Apply(k, c) => {
            Event::Apply(scope_key(scope, k), c.map(|c| scope_contribution(scope, c)))
        }
        Event::Delete(k) => Event::Delete(scope_key(scope, k)),
        Event::Replace(items) => Event::ReplaceScope(
            format!("{scope}\u{1f}"),
            items
                .into_iter()
                .map(|(k, c)| (scope_key(scope, k), scope_contribution(scope, c)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::model::NameData;

    fn names(n: &str) -> Contribution {
        Contribution::Names(vec![NameData {
            name: n.into(),
            ..Default::default()
        }])
    }

    #[test]
    fn scoped_sources_do_not_collide_and_sync_together() {
        let feed = Feed::new();
        let a = feed.scoped("0");
        let b = feed.scoped("1");
        let k = ObjKey::new("ns", "x");
        a.apply(
            ObjKind::Ingress,
            Event::Replace(vec![(k.clone(), names("a.example.com"))]),
        );
        b.apply(
            ObjKind::Ingress,
            Event::Replace(vec![(k.clone(), names("b.example.com"))]),
        );
        assert_eq!(
            feed.with_store(|s| s.get(ObjKind::Ingress).unwrap().len()),
            2
        );
        a.set_synced(ObjKind::Ingress, true);
        assert!(
            !feed.with_store(|s| s.is_synced(ObjKind::Ingress)),
            "b has not listed yet"
        );
        b.set_synced(ObjKind::Ingress, true);
        assert!(feed.with_store(|s| s.is_synced(ObjKind::Ingress)));
        // A re-list of one scope leaves the other's objects alone.
        a.apply(ObjKind::Ingress, Event::Replace(vec![]));
        let left: Vec<ObjKey> =
            feed.with_store(|s| s.get(ObjKind::Ingress).unwrap().keys().cloned().collect());
        assert_eq!(left.len(), 1);
        assert!(left[0].namespace.starts_with("1"));
    }

    /// Scopes syncing the same kind at the same moment, from different threads: the kind always
    /// ends synced (the result of the last scope to sync must be the one written).
    #[test]
    fn concurrent_scoped_syncs_end_synced() {
        let mut unsynced = 0;
        for _ in 0..2000 {
            let feed = Feed::new();
            let scopes: Vec<Feed> = (0..3).map(|i| feed.scoped(&i.to_string())).collect();
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(scopes.len()));
            let threads: Vec<_> = scopes
                .into_iter()
                .map(|f| {
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        f.set_synced(ObjKind::Ingress, true);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            if !feed.with_store(|s| s.is_synced(ObjKind::Ingress)) {
                unsynced += 1;
            }
        }
        assert_eq!(unsynced, 0, "runs left unsynced");
    }

    #[test]
    fn scoped_references_stay_in_their_scope() {
        let feed = Feed::new();
        let a = feed.scoped("0");
        a.apply(
            ObjKind::HTTPRoute,
            Event::Apply(
                ObjKey::new("apps", "r"),
                Some(Contribution::Route {
                    hostnames: vec!["x.example.com".into()],
                    parents: vec![ObjKey::new("gw", "g")],
                    ttl: None,
                    inherit: false,
                    sections: vec![],
                }),
            ),
        );
        let c = feed.with_store(|s| {
            s.get(ObjKind::HTTPRoute)
                .unwrap()
                .values()
                .next()
                .cloned()
                .unwrap()
        });
        match c {
            Contribution::Route { parents, .. } => assert_eq!(parents[0].namespace, "0\u{1f}gw"),
            other => panic!("{other:?}"),
        }
    }
}
