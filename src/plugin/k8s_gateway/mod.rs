//! `k8s_gateway`: authoritative answers for the configured zones from the cluster's Ingresses,
//! LoadBalancer Services, Gateway API routes, DNSEndpoints, VirtualServers (and Nodes), as the
//! CoreDNS plugin of that name does, with the corrections in docs/plugins/k8s_gateway.md.
//!
//! The query path reads one immutable [`Snapshot`] (arc-swap); watchers and the index builder
//! replace it in the background.

pub mod answer;
pub mod setup;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use tokio::task::JoinHandle;

use crate::corefile::{Dispenser, ParseError};
use crate::dns::request::{Outcome, Request};
use crate::dns::view::{FastReply, QueryView};
use crate::kube::index::IndexConfig;
use crate::kube::model::ObjKind;
use crate::kube::snapshot::Snapshot;
use crate::kube::source::Feed;
use crate::plugin::transfer::Transferer;
use crate::plugin::{FastNext, Next, Plugin, SetupCtx, StartupCtx};
use hickory_proto::op::ResponseCode;

pub use setup::{Settings, SourceSpec};

pub const NAME: &str = "k8s_gateway";

/// The watchers and index behind one configuration. Shared by plugin instances with the same
/// settings, so a Corefile reload that leaves `k8s_gateway` unchanged keeps its synced data
/// (no SERVFAIL window while a new watch set lists everything again).
pub struct Instance {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    key: String,
    settings: Settings,
    tasks: Mutex<Option<Vec<JoinHandle<()>>>>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(tasks) = self.tasks.lock().unwrap_or_else(|e| e.into_inner()).take() {
            for t in tasks {
                t.abort();
            }
        }
    }
}

fn registry() -> &'static Mutex<HashMap<String, Weak<Instance>>> {
    static R: OnceLock<Mutex<HashMap<String, Weak<Instance>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Instance {
    /// The running instance for these settings, or a new (not yet started) one.
    pub fn get(settings: &Settings) -> Arc<Instance> {
        let key = format!(
            "{:?}|{:?}|{:?}|{:?}",
            settings.sources, settings.kinds, settings.filters, settings.zones
        );
        let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
        reg.retain(|_, w| w.strong_count() > 0);
        if let Some(i) = reg.get(&key).and_then(Weak::upgrade) {
            return i;
        }
        let i = Arc::new(Instance {
            snapshot: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
            key: key.clone(),
            settings: settings.clone(),
            tasks: Mutex::new(None),
        });
        reg.insert(key, Arc::downgrade(&i));
        i
    }

    /// Starts the sources and the index builder once.
    pub fn start(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if tasks.is_some() {
            return;
        }
        let s = &self.settings;
        let cfg = IndexConfig {
            kinds: s.kinds.clone(),
            zones: s.zones.clone(),
            filters: s.filters.clone(),
        };
        let watched: Vec<ObjKind> = cfg.watched();
        let feed = Feed::new();
        let mut handles = Vec::new();
        let multi = s.sources.len() > 1;
        let feeds: Vec<Feed> = (0..s.sources.len())
            .map(|i| {
                if multi {
                    feed.scoped(&format!("{i}"))
                } else {
                    feed.clone()
                }
            })
            .collect();
        for (src, feed) in s.sources.iter().zip(feeds) {
            let watched = watched.clone();
            let filters = s.filters.clone();
            match src.clone() {
                SourceSpec::Manifests(dir) => {
                    handles.push(tokio::spawn(crate::kube::manifests::run(
                        dir, watched, filters, feed,
                    )));
                }
                SourceSpec::Kube {
                    kubeconfig,
                    context,
                } => {
                    handles.push(tokio::spawn(async move {
                        let kc = kubeconfig.map(|p| (p, context));
                        match crate::kube::client::client(kc).await {
                            Ok(client) => crate::kube::watch::run(client, watched, filters, feed).await,
                            Err(e) => tracing::error!(target: "exdns::plugin::k8s_gateway", "cannot create the Kubernetes client: {e}"),
                        }
                    }));
                }
            }
        }
        handles.push(tokio::spawn(crate::kube::index::run(
            cfg,
            feed,
            self.snapshot.clone(),
        )));
        tracing::debug!(target: "exdns::plugin::k8s_gateway", "started watch set {}", self.key);
        *tasks = Some(handles);
    }
}

/// The plugin: settings plus the shared instance.
pub struct K8sGateway {
    pub settings: Settings,
    /// Names and records built once from the settings (no name is parsed per query).
    pub prepared: answer::Prepared,
    pub instance: Arc<Instance>,
}

pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    let settings = setup::parse(d, &ctx.zones())?;
    let instance = Instance::get(&settings);
    let prepared = answer::Prepared::new(&settings);
    Ok(Some(Arc::new(K8sGateway {
        settings,
        prepared,
        instance,
    })))
}

#[async_trait]
impl Plugin for K8sGateway {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        let snap = self.instance.snapshot.load();
        match answer::answer_prepared(&self.settings, &self.prepared, &snap, req) {
            answer::Answer::Reply(msg) => Outcome::reply(msg, NAME),
            answer::Answer::Code(rcode) => Outcome::code(rcode, NAME),
            answer::Answer::Next => next.serve(req).await,
        }
    }

    /// Names with addresses of the asked family, answered from the snapshot in wire form.
    fn fast(&self, q: &QueryView<'_>, _next: FastNext<'_>) -> Option<FastReply> {
        let snap = self.instance.snapshot.load();
        let bytes = answer::answer_fast(&self.settings, &snap, q)?;
        if bytes.len() > q.reply_limit() {
            return None;
        }
        Some(FastReply {
            bytes,
            rcode: ResponseCode::NoError,
            plugin: NAME,
        })
    }

    fn ready(&self) -> Option<bool> {
        Some(self.instance.snapshot.load().synced())
    }

    async fn on_startup(&self, _ctx: &StartupCtx) -> Result<(), String> {
        self.instance.start();
        Ok(())
    }

    fn transferer(self: Arc<Self>) -> Option<Arc<dyn Transferer>> {
        Some(self)
    }
}

/// Zone transfers read one snapshot: a transfer is one version of the zone.
impl Transferer for K8sGateway {
    fn serial(&self, zone: &str) -> Option<u32> {
        let snap = self.instance.snapshot.load();
        (snap.synced() && self.settings.zones.iter().any(|z| z == zone)).then(|| snap.serial(zone))
    }

    fn records(&self, zone: &str) -> Option<Vec<hickory_proto::rr::Record>> {
        let snap = self.instance.snapshot.load_full();
        answer::zone_records(&self.settings, &self.prepared, &snap, zone)
    }
}
