//! `hosts`: A, AAAA and PTR answers from an `/etc/hosts`-style file and inline entries
//! (CoreDNS's *hosts*).
//!
//! The file is parsed into an immutable map that queries read without locking; a background task
//! (started in `on_startup`, stopped in `on_shutdown`) re-reads it when its mtime or size changes
//! and swaps the new map in.
//!
//! Answers follow CoreDNS: the owner is the lower-cased query name and AA is set. A name that is
//! in the data but has no address of the asked family (or an asked type other than A/AAAA/PTR)
//! gets an authoritative NODATA. A name that is not in the data goes to the next plugin when
//! `fallthrough` covers it, else the query fails with SERVFAIL (CoreDNS's choice: without a SOA it
//! cannot build a proper NXDOMAIN). A PTR query with no reverse entry always goes to the next
//! plugin.

mod setup;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use prometheus::Gauge;

use crate::dns::request::{Outcome, Request};
use crate::metrics;
use crate::plugin::util::TaskSlot;
use crate::plugin::zones::{fqdn_lower, match_zone};
use crate::plugin::{Next, Plugin, StartupCtx};

pub use setup::setup;

/// The file read when the directive names none.
pub const DEFAULT_PATH: &str = "/etc/hosts";
/// TTL of the generated records.
pub const DEFAULT_TTL: u32 = 3600;
/// How often the file is checked for changes.
pub const DEFAULT_RELOAD: Duration = Duration::from_secs(5);

/// `coredns_hosts_entries`: entries from the file and the Corefile together.
static ENTRIES: LazyLock<Gauge> = LazyLock::new(|| {
    metrics::float_gauge(
        "coredns_hosts_entries",
        "The combined number of entries in hosts and Corefile.",
    )
});

/// `coredns_hosts_reload_timestamp_seconds`: the modification time of the file last loaded.
static RELOAD_TIMESTAMP: LazyLock<Gauge> = LazyLock::new(|| {
    metrics::float_gauge(
        "coredns_hosts_reload_timestamp_seconds",
        "The timestamp of the last reload of hosts file.",
    )
});

/// Addresses by name and names by address, built once per (re)load and never mutated.
#[derive(Debug, Default)]
pub(crate) struct HostsMap {
    /// Lower-case absolute name → IPv4 addresses, in file order.
    name4: HashMap<String, Vec<Ipv4Addr>>,
    name6: HashMap<String, Vec<Ipv6Addr>>,
    /// Address (IPv4-mapped IPv6 as IPv4) → names, for PTR answers.
    addr: HashMap<IpAddr, Vec<Name>>,
}

impl HostsMap {
    /// Parses hosts-file text. `#` starts a comment; a line is `ADDRESS NAME [NAME...]`; lines
    /// without a name or with an unparsable address are skipped, as are names outside `origins`.
    /// An IPv6 zone (`fe80::1%eth0`) is dropped. Repeated (name, address) pairs count once.
    pub(crate) fn parse(text: &str, origins: &[String], auto_reverse: bool) -> HostsMap {
        let mut map = HostsMap::default();
        let mut seen: HashSet<(String, IpAddr)> = HashSet::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let Some(addr) = fields.next() else { continue };
            let addr = addr.split('%').next().unwrap_or(addr);
            let Ok(ip) = addr.parse::<IpAddr>() else {
                continue;
            };
            let ip = ip.to_canonical();
            for raw in fields {
                let name = fqdn_lower(raw);
                if match_zone(origins, &name).is_none() {
                    continue;
                }
                if !seen.insert((name.clone(), ip)) {
                    continue;
                }
                if auto_reverse && let Ok(target) = Name::from_ascii(&name) {
                    map.addr.entry(ip).or_default().push(target);
                }
                match ip {
                    IpAddr::V4(a) => map.name4.entry(name).or_default().push(a),
                    IpAddr::V6(a) => map.name6.entry(name).or_default().push(a),
                }
            }
        }
        map
    }

    /// Entries as CoreDNS counts them: every address of every name plus every reverse name.
    pub(crate) fn len(&self) -> usize {
        self.name4.values().map(Vec::len).sum::<usize>()
            + self.name6.values().map(Vec::len).sum::<usize>()
            + self.addr.values().map(Vec::len).sum::<usize>()
    }

    fn has_name(&self, name: &str) -> bool {
        self.name4.contains_key(name) || self.name6.contains_key(name)
    }
}

/// The file side: where it is, what was loaded from it, and the inline entries next to it.
#[derive(Debug)]
pub(crate) struct HostsData {
    path: PathBuf,
    origins: Vec<String>,
    auto_reverse: bool,
    /// Entries from the Corefile (fixed at setup).
    inline: HostsMap,
    /// Entries from the file; replaced whole on reload.
    file: ArcSwap<HostsMap>,
    /// (mtime, size) of the file behind `file`; only the loader touches it.
    stamp: Mutex<Option<(Option<SystemTime>, u64)>>,
}

impl HostsData {
    pub(crate) fn new(
        path: PathBuf,
        origins: Vec<String>,
        auto_reverse: bool,
        inline: HostsMap,
    ) -> Self {
        HostsData {
            path,
            origins,
            auto_reverse,
            inline,
            file: ArcSwap::from_pointee(HostsMap::default()),
            stamp: Mutex::new(None),
        }
    }

    /// Re-reads the file when its modification time or size changed; blocking I/O. A file that
    /// cannot be opened keeps the entries loaded before (CoreDNS warned about it at setup).
    /// Returns whether a new map was swapped in.
    pub(crate) fn reload_if_changed(&self) -> bool {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return false;
        };
        let meta = match f.metadata() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("plugin/hosts: Failed to get file info: {e}");
                return false;
            }
        };
        if meta.is_dir() {
            return false;
        }
        let stamp = (meta.modified().ok(), meta.len());
        if *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) == Some(stamp) {
            return false;
        }
        let mut buf = Vec::with_capacity(meta.len() as usize);
        if let Err(e) = f.read_to_end(&mut buf) {
            tracing::warn!("plugin/hosts: Failed to read {}: {e}", self.path.display());
            return false;
        }
        let map = HostsMap::parse(
            &String::from_utf8_lossy(&buf),
            &self.origins,
            self.auto_reverse,
        );
        tracing::debug!("plugin/hosts: Parsed hosts file into {} entries", map.len());
        self.file.store(Arc::new(map));
        *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = Some(stamp);
        self.publish_metrics();
        if let Some(mtime) = stamp.0
            && let Ok(since) = mtime.duration_since(SystemTime::UNIX_EPOCH)
        {
            RELOAD_TIMESTAMP.set(since.as_secs_f64());
        }
        true
    }

    /// Sets `coredns_hosts_entries` from the current data.
    pub(crate) fn publish_metrics(&self) {
        ENTRIES.set((self.inline.len() + self.file.load().len()) as f64);
    }
}

/// The handler.
#[derive(Debug)]
pub struct Hosts {
    /// Zones answered from the data (PTR queries are answered whatever their zone).
    origins: Vec<String>,
    /// `fallthrough` zones; empty: no fallthrough.
    fall: Vec<String>,
    ttl: u32,
    /// Zero: no periodic reload.
    reload: Duration,
    data: Arc<HostsData>,
    task: TaskSlot,
}

/// What the data says about a query.
enum Lookup {
    Next,
    ServFail,
    Answer(Vec<Record>),
}

impl Hosts {
    pub(crate) fn new(
        origins: Vec<String>,
        fall: Vec<String>,
        ttl: u32,
        reload: Duration,
        data: Arc<HostsData>,
    ) -> Self {
        Hosts {
            origins,
            fall,
            ttl,
            reload,
            data,
            task: TaskSlot::default(),
        }
    }

    fn falls_through(&self, name: &str) -> bool {
        !self.fall.is_empty() && match_zone(&self.fall, name).is_some()
    }

    fn lookup(&self, req: &Request) -> Lookup {
        let qtype = req.qtype();
        let name = req.name.as_str();
        if qtype != RecordType::PTR && match_zone(&self.origins, name).is_none() {
            return Lookup::Next;
        }
        let file = self.data.file.load();
        let maps: [&HostsMap; 2] = [&file, &self.data.inline];
        let mut answers = Vec::new();
        match qtype {
            RecordType::PTR => {
                let Some(ip) = address_from_reverse(name) else {
                    return Lookup::Next;
                };
                let owner = req.qname().to_lowercase();
                for m in maps {
                    for target in m.addr.get(&ip).into_iter().flatten() {
                        answers.push(Record::from_rdata(
                            owner.clone(),
                            self.ttl,
                            RData::PTR(PTR(target.clone())),
                        ));
                    }
                }
                if answers.is_empty() {
                    return Lookup::Next;
                }
            }
            RecordType::A => {
                let owner = req.qname().to_lowercase();
                for m in maps {
                    for ip in m.name4.get(name).into_iter().flatten() {
                        answers.push(Record::from_rdata(
                            owner.clone(),
                            self.ttl,
                            RData::A(A(*ip)),
                        ));
                    }
                }
            }
            RecordType::AAAA => {
                let owner = req.qname().to_lowercase();
                for m in maps {
                    for ip in m.name6.get(name).into_iter().flatten() {
                        answers.push(Record::from_rdata(
                            owner.clone(),
                            self.ttl,
                            RData::AAAA(AAAA(*ip)),
                        ));
                    }
                }
            }
            _ => {}
        }
        if answers.is_empty() && !maps.iter().any(|m| m.has_name(name)) {
            return if self.falls_through(name) {
                Lookup::Next
            } else {
                Lookup::ServFail
            };
        }
        Lookup::Answer(answers)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.task.stop();
    }
}

/// The address a reverse name (`4.3.2.1.in-addr.arpa.`, 32 nibbles `.ip6.arpa.`) stands for;
/// IPv4-mapped IPv6 addresses come back as IPv4.
pub(crate) fn address_from_reverse(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa.") {
        let mut labels = rest.rsplit('.');
        let mut text = String::with_capacity(15);
        for i in 0..4 {
            if i > 0 {
                text.push('.');
            }
            text.push_str(labels.next()?);
        }
        if labels.next().is_some() {
            return None;
        }
        return text.parse::<Ipv4Addr>().ok().map(IpAddr::V4);
    }
    if let Some(rest) = name.strip_suffix(".ip6.arpa.") {
        let mut bits: u128 = 0;
        let mut count = 0;
        for label in rest.rsplit('.') {
            let &[c] = label.as_bytes() else {
                return None;
            };
            let nibble = (c as char).to_digit(16)?;
            bits = (bits << 4) | u128::from(nibble);
            count += 1;
            if count > 32 {
                return None;
            }
        }
        if count != 32 {
            return None;
        }
        return Some(IpAddr::V6(Ipv6Addr::from(bits)).to_canonical());
    }
    None
}

#[async_trait]
impl Plugin for Hosts {
    fn name(&self) -> &'static str {
        "hosts"
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        match self.lookup(req) {
            Lookup::Next => next.serve(req).await,
            Lookup::ServFail => Outcome::code(ResponseCode::ServFail, "hosts"),
            Lookup::Answer(answers) => {
                let mut m = req.reply();
                m.metadata.authoritative = true;
                m.answers = answers;
                Outcome::reply(m, "hosts")
            }
        }
    }

    async fn on_startup(&self, _ctx: &StartupCtx) -> Result<(), String> {
        let data = self.data.clone();
        let _ = tokio::task::spawn_blocking(move || data.reload_if_changed()).await;
        if self.reload.is_zero() {
            return Ok(());
        }
        let data = self.data.clone();
        let every = self.reload;
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let data = data.clone();
                let _ = tokio::task::spawn_blocking(move || data.reload_if_changed()).await;
            }
        });
        self.task.set(task);
        Ok(())
    }

    fn on_shutdown(&self) {
        self.task.stop();
    }
}

#[cfg(test)]
mod tests;
