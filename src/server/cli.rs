//! The command line, spelled as CoreDNS spells it: `-conf FILE -dns.port N -pidfile F -quiet
//! -plugins -version` (single dash, as Go's flag package; double dash works too), plus the exdns
//! extension `-check`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;

use crate::server::lifecycle::{Server, Source};

#[derive(Parser, Debug)]
#[command(
    name = "exdns",
    disable_version_flag = true,
    about = "A CoreDNS-compatible DNS server for Kubernetes edges and VPN gateways"
)]
pub struct Args {
    /// Corefile to load (default: ./Corefile, else the built-in `.:53 { whoami log }`);
    /// `stdin` reads it from standard input.
    #[arg(long = "conf", value_name = "FILE")]
    pub conf: Option<String>,
    /// Default port for dns:// keys without one.
    #[arg(long = "dns.port", value_name = "PORT", default_value_t = 53)]
    pub dns_port: u16,
    /// Write the process ID to this file.
    #[arg(long = "pidfile", value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Quiet mode (no initialization output).
    #[arg(long = "quiet", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub quiet: Option<bool>,
    /// List installed plugins.
    #[arg(long = "plugins", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub plugins: Option<bool>,
    /// Show version.
    #[arg(long = "version", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub version: Option<bool>,
    /// Parse the Corefile and set up every plugin, report errors, start nothing (exit 0 or 1).
    #[arg(long = "check", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub check: Option<bool>,
    /// Print the DS records (SHA-256) of these DNSSEC key files for the parent zone, then exit
    /// (an exdns extension; `dnssec-dsfromkey -2` prints the same). The owner is the zone the
    /// key file names, or ZONE with `-ds.zone`.
    #[arg(long = "ds", value_name = "KEYFILE", num_args = 1..)]
    pub ds: Vec<PathBuf>,
    /// The zone `-ds` prints DS records for (a key may sign a zone below its owner).
    #[arg(long = "ds.zone", value_name = "ZONE")]
    pub ds_zone: Option<String>,
}

const LONG_FLAGS: &[&str] = &[
    "conf", "dns.port", "pidfile", "quiet", "plugins", "version", "check", "help", "ds", "ds.zone",
];

/// Rewrites Go-style single-dash long flags (`-conf`, `-dns.port=53`) to clap's `--` form.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 || a.starts_with("--") || !a.starts_with('-') {
                return a;
            }
            let name = a[1..].split('=').next().unwrap_or("");
            if LONG_FLAGS.contains(&name) {
                format!("-{a}")
            } else {
                a
            }
        })
        .collect()
}

pub fn version_text() -> String {
    format!(
        "exdns-{}\n{}/{}, rust, {}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        option_env!("EXDNS_REVISION").unwrap_or("dev")
    )
}

pub fn plugins_text() -> String {
    let mut s = String::from(
        "Server types:\n  dns\n\nCaddyfile loaders:\n  flag\n  default\n\nOther plugins:\n",
    );
    let mut names: Vec<&str> = crate::plugin::DIRECTIVES.iter().map(|d| d.name).collect();
    names.sort_unstable();
    for n in names {
        s.push_str(&format!("  dns.{n}\n"));
    }
    s
}

/// Picks the config source as CoreDNS does.
pub fn source_for(conf: Option<&str>) -> Result<Source, String> {
    match conf {
        Some("stdin") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("reading Corefile from stdin: {e}"))?;
            Ok(Source::Inline {
                text,
                label: PathBuf::from("stdin"),
            })
        }
        Some(p) => {
            let path = PathBuf::from(p);
            if !path.exists() {
                return Err(format!("open {p}: no such file or directory"));
            }
            Ok(Source::File(path))
        }
        None if Path::new("Corefile").exists() => Ok(Source::File(PathBuf::from("Corefile"))),
        None => Ok(Source::Inline {
            text: String::new(),
            label: PathBuf::from("<default>"),
        }),
    }
}

/// `-ds`: the DS record of each key file, for the parent (exit 1 on the first bad file).
fn print_ds(files: &[PathBuf], zone: Option<&str>) -> i32 {
    use crate::dns::dnssec::SigningKey;
    use hickory_proto::rr::Name;
    let zone = match zone.map(|z| {
        Name::from_ascii(z).map(|mut n| {
            n.set_fqdn(true);
            n.to_lowercase()
        })
    }) {
        None => None,
        Some(Ok(z)) => Some(z),
        Some(Err(e)) => {
            eprintln!("-ds.zone: {e}");
            return 1;
        }
    };
    for f in files {
        match SigningKey::load(f) {
            Ok(k) => {
                let owner = zone.clone().unwrap_or_else(|| k.owner.clone());
                println!("{}", k.ds_text(&owner, 3600));
            }
            Err(e) => {
                eprintln!("{e}");
                return 1;
            }
        }
    }
    0
}

pub fn main() -> i32 {
    let args = match Args::try_parse_from(normalize_args(std::env::args())) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    if args.version == Some(true) {
        println!("{}", version_text());
        return 0;
    }
    if args.plugins == Some(true) {
        print!("{}", plugins_text());
        return 0;
    }
    if !args.ds.is_empty() {
        return print_ds(&args.ds, args.ds_zone.as_deref());
    }
    let source = match source_for(args.conf.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if args.check == Some(true) {
        return check(&source, args.dns_port);
    }
    let _log_guard = crate::server::logging::init();
    crate::metrics::init();
    raise_open_files_limit();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(run(source, args))
}

/// Raises the soft limit on open files to the hard limit, as the Go runtime does for CoreDNS:
/// every TCP/DoT client and upstream connection is a descriptor, and with the common soft limit
/// of 1024 the process would run out of them before the connection cap (1024 per listener) is
/// reached — new connections would then wait unaccepted instead of being closed.
fn raise_open_files_limit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            let want = rl.rlim_max;
            rl.rlim_cur = want;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                tracing::debug!("cannot raise the open files limit to {want}");
            }
        }
    }
}

/// `-check`: parse and set up every plugin; print errors; start nothing.
pub fn check(source: &Source, dns_port: u16) -> i32 {
    let result = source
        .read(dns_port)
        .and_then(|(cf, _)| crate::server::build::build(&cf).map(|c| (cf, c)));
    match result {
        Ok((cf, cfg)) => {
            println!(
                "{}: OK ({} server block(s), {} listener(s))",
                cf.path.display(),
                cfg.blocks.len(),
                cfg.listeners.len()
            );
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

async fn run(source: Source, args: Args) -> i32 {
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot install signal handlers: {e}");
            return 1;
        }
    };
    let server = Server::new(source, args.dns_port);
    let cfg = match server.start().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if let Some(p) = &args.pidfile
        && let Err(e) = std::fs::write(p, format!("{}\n", std::process::id()))
    {
        eprintln!("Could not write pidfile: {e}");
        return 1;
    }
    if args.quiet != Some(true) {
        for l in &cfg.banner {
            println!("{l}");
        }
        println!("{}", version_text());
    }
    for (k, a) in server.bound() {
        tracing::info!("listening on {k} at {a}");
    }
    for (name, a) in server.ops().bound_addrs() {
        tracing::info!("http endpoint {name} at {a}");
    }
    tracing::info!("exdns ready to serve");
    let reload_task = server.spawn_reload_loop();
    signals.wait(&server).await;
    reload_task.abort();
    server.shutdown().await;
    if let Some(p) = &args.pidfile {
        let _ = std::fs::remove_file(p);
    }
    0
}

/// The signals exdns acts on, installed before anything starts: a SIGUSR1 or SIGTERM that
/// arrives during startup must not fall to the default action (terminate).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            usr1: signal(SignalKind::user_defined1())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Returns on SIGTERM or SIGINT; SIGUSR1 and SIGHUP reload the Corefile.
    async fn wait(&mut self, server: &Arc<Server>) {
        loop {
            tokio::select! {
                _ = self.term.recv() => { tracing::info!("SIGTERM: shutting down"); return; }
                _ = self.int.recv() => { tracing::info!("SIGINT: shutting down"); return; }
                _ = self.usr1.recv() => { let _ = server.reload(true).await; }
                _ = self.hup.recv() => { let _ = server.reload(true).await; }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Args {
        Args::try_parse_from(normalize_args(v.iter().map(|s| s.to_string()))).unwrap()
    }

    #[test]
    fn single_dash_flags_as_coredns_spells_them() {
        let a = parse(&[
            "exdns",
            "-conf",
            "/etc/coredns/Corefile",
            "-dns.port",
            "1053",
            "-pidfile",
            "/tmp/p",
            "-quiet",
        ]);
        assert_eq!(a.conf.as_deref(), Some("/etc/coredns/Corefile"));
        assert_eq!(a.dns_port, 1053);
        assert_eq!(a.pidfile, Some(PathBuf::from("/tmp/p")));
        assert_eq!(a.quiet, Some(true));
    }

    #[test]
    fn double_dash_and_equals_forms() {
        let a = parse(&[
            "exdns",
            "--conf=/x",
            "-dns.port=5353",
            "-quiet=false",
            "--check",
        ]);
        assert_eq!(a.conf.as_deref(), Some("/x"));
        assert_eq!(a.dns_port, 5353);
        assert_eq!(a.quiet, Some(false));
        assert_eq!(a.check, Some(true));
    }

    #[test]
    fn defaults() {
        let a = parse(&["exdns"]);
        assert_eq!(a.conf, None);
        assert_eq!(a.dns_port, 53);
        assert_eq!(a.quiet, None);
    }

    #[test]
    fn unknown_flag_is_an_error() {
        assert!(
            Args::try_parse_from(normalize_args(
                ["exdns", "-bogus"].iter().map(|s| s.to_string())
            ))
            .is_err()
        );
    }

    #[test]
    fn plugins_list_has_every_directive() {
        let t = plugins_text();
        assert!(t.contains("  dns.cache\n"));
        assert!(t.contains("  dns.whoami\n"));
    }
}
