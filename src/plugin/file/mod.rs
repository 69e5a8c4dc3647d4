//! `file`: authoritative answers from RFC 1035 master files (CoreDNS's *file*).
//!
//! Each zone the directive names is parsed from the file (hickory's zone-file parser: `$ORIGIN`,
//! `$TTL`, `$INCLUDE`, `@`, parentheses, relative names) into an immutable [`zone::Zone`] that
//! queries read through an [`ArcSwapOption`] without locking. A background task (started in
//! `on_startup`, stopped in `on_shutdown`) re-reads the file every `reload` interval and swaps a
//! new zone in when its SOA serial changed; a file that no longer parses keeps the zone loaded
//! before (the error is logged with the file's path and line).
//!
//! Answers follow CoreDNS (see [`zone::Zone::lookup`]): AA set except on referrals, the apex NS
//! RRset in the authority section of positive answers, the SOA in negative ones, CNAMEs followed
//! inside the zone, RFC 4592 wildcards. A query outside the plugin's zones goes to the next
//! plugin; with `fallthrough`, so do names that do not exist (and empty non-terminal or wildcard
//! NODATA answers, CoreDNS's "success without answer").

mod setup;
mod zone;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus::IntGaugeVec;

use crate::dns::request::{Outcome, Request};
use crate::metrics;
use crate::plugin::util::{TaskSlot, format_duration, io_error_text};
use crate::plugin::zones::in_zone;
use crate::plugin::{Next, Plugin, StartupCtx};

pub use setup::setup;
use zone::{Kind, Zone};

/// How often the file is checked for a new SOA serial by default.
pub const DEFAULT_RELOAD: Duration = Duration::from_secs(60);

/// `coredns_file_entries{dns_name}`: the records of each owner name of the loaded zones.
static ENTRIES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    metrics::gauge_vec(
        "coredns_file_entries",
        "The combined number of entries in zone file and Corefile.",
        &["dns_name"],
    )
});

/// One zone of the directive: where it is read from and what was loaded.
#[derive(Debug)]
pub(crate) struct ZoneSlot {
    /// Lower-case absolute origin.
    origin: String,
    path: PathBuf,
    /// `None` until the file could be read once (queries get SERVFAIL meanwhile).
    zone: ArcSwapOption<Zone>,
    /// Hash of the file text last parsed, so an unchanged file is not parsed again.
    seen: Mutex<Option<u64>>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reloaded {
    /// A zone with a new serial is served.
    Loaded(u32),
    /// Same text, or same SOA serial: nothing changed.
    Unchanged,
    /// The file could not be read or parsed; the previous zone (if any) stays.
    Failed(String),
}

fn text_hash(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl ZoneSlot {
    fn new(origin: String, path: PathBuf) -> Self {
        ZoneSlot {
            origin,
            path,
            zone: ArcSwapOption::empty(),
            seen: Mutex::new(None),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves `zone` from now on and publishes its entries.
    fn install(&self, zone: Zone, text: &str) {
        let old = self.zone.swap(Some(Arc::new(zone)));
        *self.seen() = Some(text_hash(text));
        let new = self.zone.load();
        let new = new.as_ref().map(|z| z.entries()).unwrap_or_default();
        if let Some(old) = old {
            for (name, _) in old.entries() {
                if new.binary_search_by(|(n, _)| n.cmp(name)).is_err() {
                    let _ = ENTRIES.remove_label_values(&[name]);
                }
            }
        }
        for (name, count) in new {
            ENTRIES.with_label_values(&[name]).set(*count as i64);
        }
    }

    /// Re-reads the file (blocking I/O) and swaps in the zone when its SOA serial changed
    /// (CoreDNS compares for a different serial, not a larger one). Errors keep the loaded
    /// zone and are logged with the file's path.
    pub(crate) fn reload(&self) -> Reloaded {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) => {
                let msg = format!(
                    "Failed to open zone \"{}\" in \"{}\": {}",
                    self.origin,
                    self.path.display(),
                    io_error_text(&e)
                );
                tracing::error!("plugin/file: {msg}");
                return Reloaded::Failed(msg);
            }
        };
        let hash = text_hash(&text);
        if *self.seen() == Some(hash) {
            return Reloaded::Unchanged;
        }
        match Zone::parse(&text, &self.path, &self.origin) {
            Err(e) => {
                *self.seen() = Some(hash);
                let msg = format!(
                    "Parsing zone \"{}\" failed, keeping the zone loaded before: {}",
                    self.origin,
                    e.with_path(&self.path)
                );
                tracing::error!("plugin/file: {msg}");
                Reloaded::Failed(msg)
            }
            Ok(zone) => {
                let current = self.zone.load().as_ref().map(|z| z.serial());
                if current == Some(zone.serial()) {
                    *self.seen() = Some(hash);
                    tracing::debug!(
                        "plugin/file: no change in SOA serial for origin {} in file {}, with {} SOA serial",
                        self.origin,
                        self.path.display(),
                        zone.serial()
                    );
                    return Reloaded::Unchanged;
                }
                let serial = zone.serial();
                self.install(zone, &text);
                tracing::info!(
                    "plugin/file: Successfully reloaded zone \"{}\" in \"{}\" with {serial} SOA serial",
                    self.origin,
                    self.path.display()
                );
                Reloaded::Loaded(serial)
            }
        }
    }
}

/// The handler.
#[derive(Debug)]
pub struct File {
    /// One slot per origin, in directive order.
    zones: Vec<Arc<ZoneSlot>>,
    /// `fallthrough` zones; empty: no fallthrough.
    fall: Vec<String>,
    /// Zero: no periodic reload.
    reload: Duration,
    task: TaskSlot,
}

impl File {
    /// The slot of the longest origin `name` is in.
    fn zone_for(&self, name: &str) -> Option<&ZoneSlot> {
        let mut best: Option<&ZoneSlot> = None;
        for z in &self.zones {
            if in_zone(name, &z.origin) && best.is_none_or(|b| z.origin.len() > b.origin.len()) {
                best = Some(z);
            }
        }
        best
    }

    fn falls_through(&self, name: &str) -> bool {
        self.fall.iter().any(|z| in_zone(name, z))
    }

    /// The zone origins, for logs and tests.
    pub fn origins(&self) -> Vec<String> {
        self.zones.iter().map(|z| z.origin.clone()).collect()
    }

    /// Re-reads every zone's file now (blocking I/O): what the periodic reload does.
    #[cfg(test)]
    pub(crate) fn reload_now(&self) -> Vec<Reloaded> {
        self.zones.iter().map(|z| z.reload()).collect()
    }
}

impl Drop for File {
    fn drop(&mut self) {
        self.task.stop();
    }
}

#[async_trait]
impl Plugin for File {
    fn name(&self) -> &'static str {
        "file"
    }

    async fn serve(&self, req: &Request, next: Next<'_>) -> Outcome {
        let name = req.name.as_str();
        let Some(slot) = self.zone_for(name) else {
            return next.serve(req).await;
        };
        let qtype = req.qtype();
        // Zone transfers are the transfer plugin's (not configured here): refused.
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return Outcome::code(ResponseCode::Refused, "file");
        }
        let answer = {
            let zone = slot.zone.load();
            let Some(zone) = zone.as_ref() else {
                // The file was never read (missing at startup, reload pending).
                return Outcome::code(ResponseCode::ServFail, "file");
            };
            zone.lookup(name, req.qname(), qtype)
        };
        if answer.answers.is_empty()
            && matches!(answer.kind, Kind::NameError | Kind::EmptySuccess)
            && self.falls_through(name)
        {
            return next.serve(req).await;
        }
        let mut m = req.reply();
        m.metadata.authoritative = answer.authoritative;
        m.metadata.response_code = answer.rcode;
        m.answers = answer.answers;
        m.authorities = answer.authority;
        if !req.do_bit() && answer.kind == Kind::Delegation {
            // A referral's DS RRset is for DNSSEC-aware clients only (RFC 4035 §3.1.4.1).
            m.authorities.retain(|r| r.record_type() != RecordType::DS);
        }
        m.additionals = answer.additional;
        Outcome::reply(m, "file")
    }

    async fn on_startup(&self, _ctx: &StartupCtx) -> Result<(), String> {
        if self.reload.is_zero() {
            return Ok(());
        }
        let zones = self.zones.clone();
        let every = self.reload;
        tracing::debug!(
            "plugin/file: checking {} zone(s) for a new SOA serial every {}",
            zones.len(),
            format_duration(every)
        );
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let zones = zones.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    for z in &zones {
                        z.reload();
                    }
                })
                .await;
            }
        });
        self.task.set(task);
        Ok(())
    }

    fn transferer(self: Arc<Self>) -> Option<Arc<dyn crate::plugin::transfer::Transferer>> {
        Some(self)
    }

    fn on_shutdown(&self) {
        self.task.stop();
    }
}

#[cfg(test)]
mod tests;

/// Transfers read the loaded zone (one immutable version; a reload swaps in a new one).
impl crate::plugin::transfer::Transferer for File {
    fn serial(&self, zone: &str) -> Option<u32> {
        let slot = self.zones.iter().find(|z| z.origin == zone)?;
        slot.zone.load().as_ref().map(|z| z.serial())
    }

    fn records(&self, zone: &str) -> Option<Vec<hickory_proto::rr::Record>> {
        let slot = self.zones.iter().find(|z| z.origin == zone)?;
        slot.zone.load().as_ref().map(|z| z.records())
    }
}
