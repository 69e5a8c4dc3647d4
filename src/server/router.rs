//! Longest-zone routing within one listener.

use std::collections::HashMap;
use std::sync::Arc;

use crate::plugin::Plugin;
use crate::plugin::config::{BlockConfig, StreamTimeouts};

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

/// The zones served on one listener.
#[derive(Clone)]
pub struct Router {
    /// CoreDNS's `server` label for this listener, e.g. `dns://:53`.
    pub server: Arc<str>,
    zones: HashMap<String, (Arc<str>, Arc<Block>), foldhash::fast::RandomState>,
    /// The TLS config for a `tls://` listener.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// What the blocks on this listener set of its stream limits (`timeouts`).
    pub timeouts: StreamTimeouts,
    /// Queries of classes other than IN are routed (else REFUSED before any plugin): a block on
    /// this listener has a plugin of [`ENABLE_CHAOS`], as CoreDNS's server decides.
    pub class_chaos: bool,
    /// The PROXY protocol policy of this listener (`proxyproto` of its last block that has one).
    pub proxyproto: Option<Arc<crate::plugin::proxyproto::ProxyProto>>,
}

/// The plugins whose presence in any block of a listener opens it to classes other than IN
/// (CoreDNS's `EnableChaos`; its `proxy` is long gone).
pub const ENABLE_CHAOS: &[&str] = &["chaos", "forward"];

impl Router {
    pub fn new(server: Arc<str>, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Router {
            server,
            zones: HashMap::default(),
            tls,
            timeouts: StreamTimeouts::default(),
            class_chaos: false,
            proxyproto: None,
        }
    }

    /// Adds `zone` (lower-case, absolute). Returns false if the zone is already routed.
    pub fn insert(&mut self, zone: &str, block: Arc<Block>) -> bool {
        if self.zones.contains_key(zone) {
            return false;
        }
        if block.chain.iter().any(|p| ENABLE_CHAOS.contains(&p.name())) {
            self.class_chaos = true;
        }
        self.zones
            .insert(zone.to_string(), (Arc::from(zone), block));
        true
    }

    pub fn zones(&self) -> impl Iterator<Item = (&str, &Arc<Block>)> {
        self.zones.iter().map(|(z, (_, b))| (z.as_str(), b))
    }

    /// The longest zone that `name` (lower-case, absolute) is in, and its block.
    pub fn route(&self, name: &str) -> Option<(&Arc<str>, &Arc<Block>)> {
        let mut rest = name;
        loop {
            if let Some((label, block)) = self.zones.get(rest) {
                return Some((label, block));
            }
            if rest == "." {
                return None;
            }
            // Drop the leftmost label (labels may contain escaped dots: `a\.b.example.`).
            let bytes = rest.as_bytes();
            let mut i = 0;
            let mut cut = None;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'.' => {
                        cut = Some(i + 1);
                        break;
                    }
                    _ => i += 1,
                }
            }
            rest = match cut {
                Some(c) if c < rest.len() => &rest[c..],
                _ => ".",
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(Arc::ptr_eq(r.route("www.example.org.").unwrap().1, &ex));
        assert!(Arc::ptr_eq(r.route("example.org.").unwrap().1, &ex));
        assert!(Arc::ptr_eq(r.route("xexample.org.").unwrap().1, &org));
        assert!(Arc::ptr_eq(r.route("a.b.c.org.").unwrap().1, &org));
        assert!(Arc::ptr_eq(r.route("example.com.").unwrap().1, &root));
        assert!(Arc::ptr_eq(r.route(".").unwrap().1, &root));
        assert_eq!(&**r.route("www.example.org.").unwrap().0, "example.org.");
    }

    #[test]
    fn no_zone_matches() {
        let mut r = Router::new(Arc::from("dns://:53"), None);
        r.insert("example.org.", block());
        assert!(r.route("example.com.").is_none());
        assert!(r.route(".").is_none());
        assert!(r.route("org.").is_none());
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

    #[test]
    fn escaped_dots_are_not_label_boundaries() {
        let mut r = Router::new(Arc::from("dns://:53"), None);
        r.insert("b.example.", block());
        assert!(r.route("a\\.b.example.").is_none());
        assert!(r.route("a.b.example.").is_some());
    }
}
