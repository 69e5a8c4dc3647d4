//! `chaos [VERSION] [AUTHORS...]`: answers TXT queries of class CH for `version.bind`,
//! `version.server` (VERSION), `authors.bind` (AUTHORS, one TXT record each, in a random order),
//! `hostname.bind` and `id.server` (the host's name), as CoreDNS's *chaos*. Every other query
//! goes to the next plugin.
//!
//! Having `chaos` in a block also lets the server route queries of classes other than IN on the
//! block's listener (see `server::query`), as CoreDNS's `EnableChaos` does.

mod setup;
#[cfg(test)]
mod tests;

pub use setup::setup;

use async_trait::async_trait;
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use rand::seq::SliceRandom;

use crate::dns::request::{Outcome, Request};
use crate::plugin::util::{hostname, qname_as_sent};
use crate::plugin::{Next, Plugin};

pub const NAME: &str = "chaos";

/// The longest character string a TXT record holds; longer strings are cut to it (CoreDNS's
/// `trim` cuts at 255 bytes).
pub const MAX_STRING: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chaos {
    pub version: String,
    pub authors: Vec<String>,
}

/// `s` cut to [`MAX_STRING`] bytes, as Go's `s[:255]` (the bytes, whatever the encoding).
pub fn trim(s: &str) -> &[u8] {
    let b = s.as_bytes();
    &b[..b.len().min(MAX_STRING)]
}

/// The default VERSION: this build's name and version, as `exdns -version` prints them
/// (CoreDNS's is `CoreDNS-<version>`).
pub fn default_version() -> String {
    format!("exdns-{}", env!("CARGO_PKG_VERSION"))
}

/// The default AUTHORS: Cargo.toml's `authors` (CoreDNS's are the handles in its OWNERS files).
pub fn default_authors() -> Vec<String> {
    env!("CARGO_PKG_AUTHORS")
        .split(':')
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

#[async_trait]
impl Plugin for Chaos {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        if req.qclass() != DNSClass::CH || req.qtype() != RecordType::TXT {
            return next.serve(req).await;
        }
        let strings: Vec<Vec<u8>> = match req.name.as_str() {
            "authors.bind." => {
                let mut order: Vec<&String> = self.authors.iter().collect();
                order.shuffle(&mut rand::rng());
                order.into_iter().map(|a| trim(a).to_vec()).collect()
            }
            "version.bind." | "version.server." => vec![trim(&self.version).to_vec()],
            "hostname.bind." | "id.server." => vec![trim(&hostname()).to_vec()],
            _ => return next.serve(req).await,
        };
        let mut m = req.reply();
        let owner = qname_as_sent(req);
        for s in strings {
            let mut rr =
                Record::from_rdata(owner.clone(), 0, RData::TXT(TXT::from_bytes(vec![&s])));
            rr.dns_class = DNSClass::CH;
            m.answers.push(rr);
        }
        Outcome::reply(m, NAME)
    }
}
