//! Longest-zone routing within one listener.

use std::collections::HashMap;
use std::sync::Arc;

use crate::plugin::Plugin;
use crate::plugin::config::{BlockConfig, StreamTimeouts};
use crate::plugin::view::Facts;

/// One server block after setup: its plugin chain (shared by all its keys) and its settings.
pub struct Block {
    pub chain: Vec<Arc<dyn Plugin>>,
    pub config: BlockConfig,
    /// The block's zones, de-duplicated, in key order.
    pub zones: Vec<String>,
    /// Where the block starts, for messages.
    pub file: Arc<str>,
    pub line: usize,
}

impl Block {
    /// Names of chain plugins that report not ready.
    pub fn not_ready(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.chain
            .iter()
            .filter(|p| p.ready() == Some(false))
            .map(|p| p.name())
    }
}

/// A zone's label and its blocks.
type ZoneBlocks = (Arc<str>, Vec<Arc<Block>>);

/// The zones served on one listener.
#[derive(Clone)]
pub struct Router {
    /// CoreDNS's `server` label for this listener, e.g. `dns://:53`.
    pub server: Arc<str>,
    /// Each zone's blocks in Corefile order: blocks with a `view` and at most one without.
    zones: HashMap<String, ZoneBlocks, foldhash::fast::RandomState>,
    /// Some block has a `view`: routing evaluates views.
    views: bool,
    /// The TLS config for a `tls://` listener.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// What the blocks on this listener set of its stream limits (`timeouts`).
    pub timeouts: StreamTimeouts,
    /// Queries of classes other than IN are routed (else REFUSED before any plugin): a block on
    /// this listener has a plugin of [`ENABLE_CHAOS`], as CoreDNS's server decides.
    pub class_chaos: bool,
    /// `multisocket`: the SO_REUSEPORT sockets of this listener, for UDP and for TCP, from the
    /// first block that binds it (as CoreDNS); `None`: the default.
    pub num_sockets: Option<usize>,
    /// The PROXY protocol policy of this listener (`proxyproto` of its last block that has one).
    pub proxyproto: Option<Arc<crate::plugin::proxyproto::ProxyProto>>,
    /// `quic`: the limits of a `quic://` listener, from the first block that binds it (as
    /// CoreDNS).
    pub quic: crate::plugin::quic::QuicOptions,
    /// `https`: the connection cap of an `https://` listener, from the first block that binds
    /// it (as CoreDNS).
    pub https: crate::plugin::https::HttpsOptions,
    /// `https3`: the limits of an `https3://` listener, from the first block that binds it (as
    /// CoreDNS).
    pub https3: crate::plugin::https3::Https3Options,
}

/// The plugins whose presence in any block of a listener opens it to classes other than IN
/// (CoreDNS's `EnableChaos`; its `proxy` is long gone).
pub const ENABLE_CHAOS: &[&str] = &["chaos", "forward"];

impl Router {
    pub fn new(server: Arc<str>, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Router {
            server,
            zones: HashMap::default(),
            views: false,
            tls,
            timeouts: StreamTimeouts::default(),
            class_chaos: false,
            num_sockets: None,
            proxyproto: None,
            quic: Default::default(),
            https: Default::default(),
            https3: Default::default(),
        }
    }

    /// Adds `zone` (lower-case, absolute) served by `block`, after the zone's other blocks.
    /// Returns false if the zone already has a block without a `view` and `block` has none
    /// either (CoreDNS: "already defined"); blocks with a view may share a zone with any.
    pub fn insert(&mut self, zone: &str, block: Arc<Block>) -> bool {
        let viewless = block.config.view.is_none();
        if let Some((_, blocks)) = self.zones.get(zone)
            && viewless
            && blocks.iter().any(|b| b.config.view.is_none())
        {
            return false;
        }
        if block.chain.iter().any(|p| ENABLE_CHAOS.contains(&p.name())) {
            self.class_chaos = true;
        }
        if !viewless {
            self.views = true;
        }
        self.zones
            .entry(zone.to_string())
            .or_insert_with(|| (Arc::from(zone), Vec::new()))
            .1
            .push(block);
        true
    }

    /// Every (zone, block) pair; a zone shared by views appears once per block.
    pub fn zones(&self) -> impl Iterator<Item = (&str, &Arc<Block>)> {
        self.zones
            .iter()
            .flat_map(|(z, (_, bs))| bs.iter().map(move |b| (z.as_str(), b)))
    }

    /// Whether some block on this listener has a `view`.
    pub fn has_views(&self) -> bool {
        self.views
    }

    /// The zone's first block, in Corefile order, that takes the query: its view passes or it
    /// has none.
    fn pick<'a>(&self, blocks: &'a [Arc<Block>], q: &Facts<'_>) -> Option<&'a Arc<Block>> {
        if !self.views {
            return blocks.first();
        }
        blocks
            .iter()
            .find(|b| b.config.view.as_ref().is_none_or(|v| v.filter(q)))
    }

    /// For a DS query: the topmost zone other than the root that the name is in and that has a
    /// block taking the query (the parent side of a delegation, as CoreDNS routes DS), else
    /// the root zone's.
    fn route_ds(&self, q: &Facts<'_>) -> Option<(&Arc<str>, &Arc<Block>)> {
        let mut found = None;
        let mut rest = q.name;
        while rest != "." {
            if let Some((label, blocks)) = self.zones.get(rest)
                && let Some(b) = self.pick(blocks, q)
            {
                found = Some((label, b));
            }
            rest = parent_of(rest);
        }
        found.or_else(|| {
            let (label, blocks) = self.zones.get(".")?;
            Some((label, self.pick(blocks, q)?))
        })
    }

    /// The block serving the query `q` (its name lower-case, absolute) and its zone: the
    /// longest zone the name is in that has a block taking the query — the zone's first block,
    /// in Corefile order, whose view passes or that has none — as CoreDNS's server picks. DS
    /// queries go to the parent side ([`Router::route_ds`]).
    pub fn route(&self, q: &Facts<'_>) -> Option<(&Arc<str>, &Arc<Block>)> {
        if q.qtype == u16::from(hickory_proto::rr::RecordType::DS) {
            return self.route_ds(q);
        }
        let mut rest = q.name;
        loop {
            if let Some((label, blocks)) = self.zones.get(rest)
                && let Some(b) = self.pick(blocks, q)
            {
                return Some((label, b));
            }
            if rest == "." {
                return None;
            }
            rest = parent_of(rest);
        }
    }
}

/// `name` without its leftmost label (labels may contain escaped dots: `a\.b.example.`); the
/// root for a single label.
fn parent_of(name: &str) -> &str {
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'.' => {
                return if i + 1 < name.len() {
                    &name[i + 1..]
                } else {
                    "."
                };
            }
            _ => i += 1,
        }
    }
    "."
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An A query for `name` from 127.0.0.1 over UDP.
    fn f(name: &str) -> Facts<'_> {
        Facts {
            name,
            qtype: 1,
            qclass: 1,
            src: "127.0.0.1:5353".parse().unwrap(),
            local: "127.0.0.1:53".parse().unwrap(),
            proto: crate::dns::request::Proto::Udp,
            size: 40,
            id: 1,
            opcode: 0,
            edns: None,
        }
    }

    fn block() -> Arc<Block> {
        Arc::new(Block {
            chain: vec![],
            config: BlockConfig::default(),
            zones: vec![],
            file: Arc::from("x"),
            line: 1,
        })
    }

    #[test]
    fn longest_zone_wins() {
        let mut r = Router::new(Arc::from("dns://:53"), None);
        let root = block();
        let org = block();
        let ex = block();
        r.insert(".", root.clone());
        r.insert("org.", org.clone());
        r.insert("example.org.", ex.clone());
        assert!(Arc::ptr_eq(r.route(&f("www.example.org.")).unwrap().1, &ex));
        assert!(Arc::ptr_eq(r.route(&f("example.org.")).unwrap().1, &ex));
        assert!(Arc::ptr_eq(r.route(&f("xexample.org.")).unwrap().1, &org));
        assert!(Arc::ptr_eq(r.route(&f("a.b.c.org.")).unwrap().1, &org));
        assert!(Arc::ptr_eq(r.route(&f("example.com.")).unwrap().1, &root));
        assert!(Arc::ptr_eq(r.route(&f(".")).unwrap().1, &root));
        assert_eq!(
            &**r.route(&f("www.example.org.")).unwrap().0,
            "example.org."
        );
    }

    #[test]
    fn no_zone_matches() {
        let mut r = Router::new(Arc::from("dns://:53"), None);
        r.insert("example.org.", block());
        assert!(r.route(&f("example.com.")).is_none());
        assert!(r.route(&f(".")).is_none());
        assert!(r.route(&f("org.")).is_none());
        assert!(!r.insert("example.org.", block()));
    }

    /// CoreDNS's `EnableChaos`: a listener routes other classes once any of its blocks has
    /// `chaos` or `forward`, whatever the other blocks hold.
    #[test]
    fn chaos_or_forward_opens_the_listener_to_other_classes() {
        struct Named(&'static str);
        #[async_trait::async_trait]
        impl crate::plugin::Plugin for Named {
            fn name(&self) -> &'static str {
                self.0
            }
            async fn serve(
                &self,
                req: &crate::dns::request::Request,
                next: crate::plugin::Next<'_>,
            ) -> crate::dns::request::Outcome {
                next.serve(req).await
            }
        }
        let with = |names: &[&'static str]| {
            Arc::new(Block {
                chain: names
                    .iter()
                    .map(|n| Arc::new(Named(n)) as Arc<dyn crate::plugin::Plugin>)
                    .collect(),
                config: BlockConfig::default(),
                zones: vec![],
                file: Arc::from("x"),
                line: 1,
            })
        };
        // (the blocks' plugins, classes routed)
        let cases: &[(&[&[&'static str]], bool)] = &[
            (&[&["whoami"]], false),
            (&[&["log", "cache", "whoami"], &["any"]], false),
            (&[&["chaos"]], true),
            (&[&["whoami"], &["log", "chaos", "whoami"]], true),
            (&[&["cache", "forward"]], true),
            (&[&["proxy"]], false),
        ];
        for (blocks, open) in cases {
            let mut r = Router::new(Arc::from("dns://:53"), None);
            for (i, chain) in blocks.iter().enumerate() {
                assert!(r.insert(&format!("z{i}."), with(chain)));
            }
            assert_eq!(r.class_chaos, *open, "{blocks:?}");
        }
    }

    /// CoreDNS's `view` routing: a zone's blocks are tried in Corefile order, the first whose
    /// view passes (or that has none) wins; none passing sends the name on to shorter zones.
    #[test]
    fn views_pick_among_blocks_in_order() {
        let viewed = |expr: &str| {
            let config = BlockConfig {
                view: Some(Arc::new(crate::plugin::view::View {
                    name: Arc::from("v"),
                    progs: vec![crate::plugin::view::Program::compile(expr).unwrap()],
                })),
                ..Default::default()
            };
            Arc::new(Block {
                chain: vec![],
                config,
                zones: vec![],
                file: Arc::from("x"),
                line: 1,
            })
        };
        let mut r = Router::new(Arc::from("dns://:53"), None);
        let tcp = viewed("proto() == 'tcp'");
        let a = viewed("type() == 'A'");
        let rest = block();
        let org = viewed("name() == 'nothing.'");
        assert!(r.insert(".", tcp.clone()));
        assert!(r.insert(".", a.clone()));
        assert!(r.insert(".", rest.clone()));
        assert!(!r.insert(".", block()), "a second block without view");
        assert!(r.insert(".", viewed("true")), "views may come after");
        assert!(r.insert("org.", org));
        assert!(r.has_views());
        let mut q = f("www.example.org.");
        assert!(Arc::ptr_eq(r.route(&q).unwrap().1, &a));
        assert_eq!(&**r.route(&q).unwrap().0, ".");
        q.qtype = 28;
        assert!(Arc::ptr_eq(r.route(&q).unwrap().1, &rest));
        q.proto = crate::dns::request::Proto::Tcp;
        assert!(Arc::ptr_eq(r.route(&q).unwrap().1, &tcp));
        // Only views on a zone, none passing, no shorter zone: nothing.
        let mut r = Router::new(Arc::from("dns://:53"), None);
        r.insert("org.", viewed("false"));
        assert!(r.route(&f("example.org.")).is_none());
    }

    #[test]
    fn escaped_dots_are_not_label_boundaries() {
        let mut r = Router::new(Arc::from("dns://:53"), None);
        r.insert("b.example.", block());
        assert!(r.route(&f("a\\.b.example.")).is_none());
        assert!(r.route(&f("a.b.example.")).is_some());
    }
}
