//! Log lines shaped like CoreDNS's (`[INFO] plugin/reload: …`), written by a background thread
//! so a slow stdout never stalls the query path.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `[LEVEL] plugin/NAME: message` for events from `exdns::plugin::NAME…`, `[LEVEL] message` else.
pub struct CoreDnsFormat;

impl<S, N> FormatEvent<S, N> for CoreDnsFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => "[ERROR]",
            Level::WARN => "[WARNING]",
            Level::INFO => "[INFO]",
            Level::DEBUG => "[DEBUG]",
            Level::TRACE => "[TRACE]",
        };
        write!(w, "{level} ")?;
        let mut msg = String::new();
        ctx.field_format()
            .format_fields(Writer::new(&mut msg), event)?;
        if let Some(p) = plugin_of(meta.target()) {
            // Some messages already name their plugin (CoreDNS wording); never say it twice.
            let prefix = format!("plugin/{p}: ");
            if !msg.starts_with(&prefix) {
                w.write_str(&prefix)?;
            }
        }
        w.write_str(&msg)?;
        writeln!(w)
    }
}

/// `exdns::plugin::cache::setup` → `cache`; `exdns::plugin::loop_detect` → `loop`; the cluster
/// side (`exdns::kube::…`, the sources and index behind `k8s_gateway`) → `k8s_gateway`, as
/// CoreDNS's k8s_gateway logs its controller's lines.
pub fn plugin_of(target: &str) -> Option<&str> {
    if target == "exdns::kube" || target.starts_with("exdns::kube::") {
        return Some("k8s_gateway");
    }
    let rest = target.strip_prefix("exdns::plugin::")?;
    let name = rest.split("::").next()?;
    Some(match name {
        "loop_detect" => "loop",
        n => n,
    })
}

/// The log filter when `RUST_LOG` is not set: info, except kube's watcher, which warns about a
/// 403 on every retry (with the whole Status in Debug form); exdns logs those itself, once per
/// run of failures (`kube::watch`), and kube's client, which logs a bare "failed with status 500"
/// for every failed request (exdns's own warning carries the Status message).
pub const DEFAULT_FILTER: &str =
    "info,kube_runtime::watcher=error,kube_client::client::builder=off";

/// [`DEFAULT_FILTER`] with exdns's own debug lines, while a block has `debug`.
pub const DEBUG_FILTER: &str =
    "info,exdns=debug,kube_runtime::watcher=error,kube_client::client::builder=off";

type FilterHandle = tracing_subscriber::reload::Handle<
    tracing_subscriber::EnvFilter,
    tracing_subscriber::fmt::Formatter<
        tracing_subscriber::fmt::format::DefaultFields,
        CoreDnsFormat,
        tracing_appender::non_blocking::NonBlocking,
    >,
>;

/// How the `debug` directive switches the filter (absent when `RUST_LOG` chose it).
static FILTER: std::sync::OnceLock<FilterHandle> = std::sync::OnceLock::new();

/// Installs the global subscriber. `RUST_LOG` replaces the filter (default: [`DEFAULT_FILTER`]).
/// The returned guard flushes the log thread when dropped.
pub fn init() -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(64 * 1024)
        .finish(std::io::stdout());
    let from_env = tracing_subscriber::EnvFilter::try_from_default_env().ok();
    let env_chosen = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .event_format(CoreDnsFormat)
        .with_filter_reloading();
    let handle = builder.reload_handle();
    if builder.try_init().is_ok() && !env_chosen {
        let _ = FILTER.set(handle);
    }
    guard
}

/// `debug` in the running configuration: exdns's debug lines on or off (CoreDNS's `log.D`).
/// Nothing changes when `RUST_LOG` chose the filter.
pub fn set_debug(on: bool) {
    if let Some(h) = FILTER.get() {
        let f = if on { DEBUG_FILTER } else { DEFAULT_FILTER };
        let _ = h.reload(tracing_subscriber::EnvFilter::new(f));
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::{DEFAULT_FILTER, plugin_of};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn default_filter_drops_kube_watcher_retry_warnings_only() {
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(DEFAULT_FILTER))
            .with_writer(move || w.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(target: "kube_runtime::watcher", "watch list error with 403");
            tracing::error!(target: "kube_runtime::watcher", "a watcher bug");
            tracing::warn!(target: "kube_client::client", "client warning");
            tracing::error!(target: "kube_client::client::builder", "failed with status 500");
            tracing::info!(target: "exdns::kube::watch", "watching Ingress");
            tracing::debug!(target: "exdns::kube::watch", "failed again");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(!out.contains("watch list error with 403"), "{out}");
        assert!(!out.contains("failed again"), "{out}");
        assert!(!out.contains("failed with status"), "{out}");
        for kept in ["a watcher bug", "client warning", "watching Ingress"] {
            assert!(out.contains(kept), "{kept} missing from {out}");
        }
    }

    #[test]
    fn plugin_names_from_targets() {
        assert_eq!(plugin_of("exdns::plugin::cache::setup"), Some("cache"));
        assert_eq!(plugin_of("exdns::plugin::loop_detect"), Some("loop"));
        assert_eq!(plugin_of("exdns::kube::watch"), Some("k8s_gateway"));
        assert_eq!(plugin_of("exdns::kube"), Some("k8s_gateway"));
        assert_eq!(plugin_of("exdns::kubernetes"), None);
        assert_eq!(plugin_of("exdns::server::udp"), None);
        assert_eq!(plugin_of("query"), None);
    }
}
