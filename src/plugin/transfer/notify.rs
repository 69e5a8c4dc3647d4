//! The zone watcher: follows each zone's serial, feeds the IXFR journal and sends NOTIFY
//! (RFC 1996) to the `to` addresses when it changes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, Record};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use super::journal::Journals;
use super::{To, Transferer, Xfr, notify_message};

/// How often serials are looked at (a lookup each; no zone is read unless it changed).
pub const POLL: Duration = Duration::from_millis(200);
/// NOTIFY attempts and the first wait for an answer (doubling: 1, 2, 4, 8, 16, 32 s).
const ATTEMPTS: u32 = 6;
const FIRST_WAIT: Duration = Duration::from_secs(1);

/// `exdns_transfer_notifies_total{outcome}`.
static NOTIFIES: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    crate::metrics::counter_vec(
        "exdns_transfer_notifies_total",
        "NOTIFY messages sent to secondaries, by outcome: accepted (NOERROR), rejected (another rcode), unanswered (every retry timed out), superseded (a newer change replaced it), error (could not be sent).",
        &["outcome"],
    )
});

/// Runs until aborted: every [`POLL`], each zone's serial; on a change, the journal takes the
/// new version and the `to` addresses are notified (a pending NOTIFY of an older version of
/// the zone is replaced: bursts of changes coalesce).
pub async fn watch(
    xfrs: Vec<Xfr>,
    sources: Vec<Arc<dyn Transferer>>,
    journals: Arc<Journals>,
    listen: Vec<SocketAddr>,
) {
    let mut pending: HashMap<(String, SocketAddr), JoinHandle<()>> = HashMap::new();
    loop {
        for x in &xfrs {
            for zone in &x.zones {
                let Some((src, serial)) = sources
                    .iter()
                    .find_map(|s| s.serial(zone).map(|n| (s.clone(), n)))
                else {
                    continue;
                };
                if journals.serial(zone) == Some(serial) {
                    continue;
                }
                // Reading and diffing a large zone takes a moment: off the runtime's workers.
                let (j, z) = (journals.clone(), zone.clone());
                let read = tokio::task::spawn_blocking(move || {
                    let records = src.records(&z)?;
                    let changed = j.observe(&z, &records);
                    Some((changed, records.into_iter().next()))
                })
                .await;
                let Ok(Some((true, Some(soa)))) = read else {
                    continue;
                };
                let Ok(zname) = Name::from_ascii(zone) else {
                    continue;
                };
                for t in &x.to {
                    let To::Addr(target) = t else { continue };
                    let source = x.source.or_else(|| source_for(&listen, *target));
                    let key = (zone.clone(), *target);
                    if let Some(old) = pending.remove(&key)
                        && !old.is_finished()
                    {
                        old.abort();
                        NOTIFIES.with_label_values(&["superseded"]).inc();
                    }
                    let task = tokio::spawn(send(zname.clone(), soa.clone(), *target, source));
                    pending.insert(key, task);
                }
            }
        }
        pending.retain(|_, t| !t.is_finished());
        tokio::time::sleep(POLL).await;
    }
}

/// The block's own address of `target`'s family, when it listens on one (not a wildcard,
/// and not loopback unless the target is).
fn source_for(listen: &[SocketAddr], target: SocketAddr) -> Option<IpAddr> {
    listen.iter().map(|a| a.ip()).find(|ip| {
        ip.is_ipv4() == target.is_ipv4()
            && !ip.is_unspecified()
            && (!ip.is_loopback() || target.ip().is_loopback())
    })
}

/// Sends one NOTIFY and waits for its answer, retrying with backoff.
async fn send(zone: Name, soa: Record, target: SocketAddr, source: Option<IpAddr>) {
    let bind = match (source, target) {
        (Some(ip), _) => SocketAddr::new(ip, 0),
        (None, SocketAddr::V4(_)) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        (None, SocketAddr::V6(_)) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let sock = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => {
            NOTIFIES.with_label_values(&["error"]).inc();
            tracing::warn!(target: "exdns::plugin::transfer", "cannot send notify for zone \"{zone}\" to {target} from {bind}: {e}");
            return;
        }
    };
    let mut wait = FIRST_WAIT;
    for _ in 0..ATTEMPTS {
        let id: u16 = rand::random();
        let Ok(bytes) = notify_message(id, &zone, Some(soa.clone())).to_vec() else {
            return;
        };
        if let Err(e) = sock.send_to(&bytes, target).await {
            tracing::debug!(target: "exdns::plugin::transfer", "notify for zone \"{zone}\" to {target}: {e}");
        }
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = [0u8; 4096];
        loop {
            let got = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await;
            let Ok(Ok((n, from))) = got else { break };
            if from.ip() != target.ip() {
                continue;
            }
            let Ok(reply) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if reply.metadata.id != id {
                continue;
            }
            let rcode = reply.metadata.response_code;
            if rcode == ResponseCode::NoError {
                NOTIFIES.with_label_values(&["accepted"]).inc();
                tracing::debug!(target: "exdns::plugin::transfer", "Sent notify for zone \"{zone}\" to {target}");
            } else {
                NOTIFIES.with_label_values(&["rejected"]).inc();
                tracing::warn!(target: "exdns::plugin::transfer", "notify for zone \"{zone}\" was not accepted by \"{target}\": rcode was \"{rcode}\"");
            }
            return;
        }
        wait *= 2;
    }
    NOTIFIES.with_label_values(&["unanswered"]).inc();
    tracing::warn!(target: "exdns::plugin::transfer", "notify for zone \"{zone}\" to {target} was not answered after {ATTEMPTS} attempts");
}
