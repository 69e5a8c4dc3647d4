//! `forward FROM TO... { ... }` parsing, following CoreDNS's `parseStanza`/`parseBlock`
//! (plugin/forward/setup.go) option for option, error for error, plus the exdns options
//! `read_timeout`, `source_address` and `interface`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::dot::client_config;
use super::pin::valid_interface_name;
use super::policy::{MAX_UPSTREAMS, Policy};
use super::{Config, Forward, TlsArgs, UpstreamSpec};
use crate::corefile::{Dispenser, ParseError};
use crate::plugin::names::rcode_mnemonic;
use crate::plugin::util::{format_duration, go_quote, io_error_text, parse_go_duration};
use crate::plugin::zones::normalize_zone;
use crate::plugin::{Plugin, SetupCtx};

/// CA bundles tried, in order, when `tls` names no CA (after `$SSL_CERT_FILE`).
pub const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Parses one `forward` directive and builds its handler.
pub fn setup(
    d: &mut Dispenser,
    _ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    let (file, line) = {
        let mut probe = d.clone();
        probe.next();
        (probe.file().to_string(), probe.line())
    };
    let cfg = parse(d)?;
    super::metrics::register();
    let fwd = Forward::new(cfg).map_err(|e| ParseError::new(file, line, e))?;
    Ok(Some(Arc::new(fwd)))
}

/// Parses one `forward` directive into a [`Config`] (TLS files loaded, TLS client config built).
pub fn parse(d: &mut Dispenser) -> Result<Config, ParseError> {
    d.next(); // "forward"
    let (file, line) = (d.file().to_string(), d.line());
    let here = |msg: String| ParseError::new(file.clone(), line, msg);

    if !d.next_arg() {
        return Err(d.arg_err());
    }
    let orig_from = d.val().to_string();
    let zones = match normalize_zone(&orig_from) {
        Ok(z) if !z.is_empty() => z,
        _ => return Err(d.err(format!("unable to normalize '{orig_from}'"))),
    };
    if zones.len() > 1 {
        tracing::warn!(
            "Unsupported CIDR notation: '{orig_from}' expands to multiple zones. Using only '{}'.",
            zones[0]
        );
    }
    let mut cfg = Config::new(&zones[0]);

    let to = d.remaining_args();
    if to.is_empty() {
        return Err(d.arg_err());
    }
    // As CoreDNS: an https:// upstream takes no path (/dns-query is the path).
    for addr in &to {
        if let ("https", h) = transport(addr)
            && h.contains('/')
        {
            return Err(here(format!(
                "paths are not allowed in HTTPS upstream addresses (the /dns-query path is used by default): {addr}"
            )));
        }
    }
    let hosts = host_port_or_file(&to).map_err(|e| d.err(e))?;

    let mut tls_material: Option<TlsMaterial> = None;
    while d.next_block() {
        parse_option(d, &mut cfg, &mut tls_material)?;
    }

    for host_with_zone in &hosts {
        let (host, server_name) = split_zone(host_with_zone);
        let (trans, h) = transport(&host);
        if trans != "dns" && trans != "tls" && trans != "https" {
            return Err(here(format!(
                "'{trans}' is not supported as a destination protocol in forward: {host}"
            )));
        }
        let tls = trans == "tls";
        let https = trans == "https";
        let mut name = None;
        if tls && !server_name.is_empty() {
            if let Some(global) = &cfg.tls_servername {
                return Err(here(format!(
                    "both forward ('{global}') and proxy level ('{server_name}') TLS servernames are set for upstream proxy '{host}'"
                )));
            }
            name = Some(server_name.clone());
        }
        // CoreDNS's DoH client uses the forward's TLS config: `tls_servername` names it.
        if (tls || https) && name.is_none() {
            name = cfg.tls_servername.clone();
        }
        let addr: SocketAddr = h
            .parse()
            .map_err(|_| here(format!("invalid upstream address '{h}'")))?;
        if let Some(n) = &name
            && ServerName::try_from(n.clone()).is_err()
        {
            return Err(here(format!("invalid TLS server name '{n}'")));
        }
        cfg.upstreams.push(UpstreamSpec {
            addr,
            tls,
            https,
            server_name: name,
        });
    }

    if cfg.upstreams.len() > MAX_UPSTREAMS {
        return Err(here(format!(
            "more than {MAX_UPSTREAMS} TOs configured: {}",
            cfg.upstreams.len()
        )));
    }

    if let Some(src) = cfg.source_address
        && let Some(up) = cfg
            .upstreams
            .iter()
            .find(|u| u.addr.is_ipv4() != src.is_ipv4())
    {
        return Err(here(format!(
            "source_address {src} and upstream {} are not of the same address family",
            up.addr
        )));
    }

    if cfg.upstreams.iter().any(|u| u.tls || u.https) {
        let material = tls_material.unwrap_or_default();
        let roots = match material.roots {
            Some(r) => r,
            None => system_roots().map_err(here)?,
        };
        cfg.tls_config = Some(client_config(roots, material.client).map_err(here)?);
    }
    Ok(cfg)
}

/// What `tls [CERT KEY] [CA]` loaded.
#[derive(Default)]
struct TlsMaterial {
    /// `None`: the system's CAs.
    roots: Option<RootCertStore>,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

fn parse_option(
    d: &mut Dispenser,
    cfg: &mut Config,
    tls: &mut Option<TlsMaterial>,
) -> Result<(), ParseError> {
    match d.val() {
        "except" => {
            let ignore = d.remaining_args();
            if ignore.is_empty() {
                return Err(d.arg_err());
            }
            for name in &ignore {
                match normalize_zone(name) {
                    Ok(zones) => cfg.ignored.extend(zones),
                    Err(_) => return Err(d.err(format!("unable to normalize '{name}'"))),
                }
            }
        }
        "max_fails" => {
            if !d.next_arg() {
                return Err(d.arg_err());
            }
            cfg.max_fails = parse_uint32(d.val()).map_err(|e| d.err(e))?;
        }
        "health_check" => {
            if !d.next_arg() {
                return Err(d.arg_err());
            }
            let dur = parse_go_duration(d.val()).map_err(|e| d.err(e))?;
            if dur < 0 {
                return Err(d.err(format!("health_check can't be negative: {dur}")));
            }
            cfg.hc_interval = nanos(dur);
            cfg.hc_domain = ".".to_string();
            while d.next_arg() {
                match d.val() {
                    "no_rec" => cfg.hc_recursion_desired = false,
                    "domain" => {
                        if !d.next_arg() {
                            return Err(d.arg_err());
                        }
                        let domain = d.val().to_string();
                        if !is_domain_name(&domain) {
                            return Err(
                                d.err(format!("health_check: invalid domain name {domain}"))
                            );
                        }
                        cfg.hc_domain = normalize_name(&domain);
                    }
                    other => {
                        return Err(d.err(format!("health_check: unknown option {other}")));
                    }
                }
            }
        }
        "force_tcp" => {
            if d.next_arg() {
                return Err(d.arg_err());
            }
            cfg.force_tcp = true;
        }
        "prefer_udp" => {
            if d.next_arg() {
                return Err(d.arg_err());
            }
            cfg.prefer_udp = true;
        }
        "tls" => {
            let args = d.remaining_args();
            if args.len() > 3 {
                return Err(d.arg_err());
            }
            let mut a = TlsArgs::default();
            match args.len() {
                1 => a.ca = Some(args[0].clone()),
                2 => {
                    a.cert = Some(args[0].clone());
                    a.key = Some(args[1].clone());
                }
                3 => {
                    a.cert = Some(args[0].clone());
                    a.key = Some(args[1].clone());
                    a.ca = Some(args[2].clone());
                }
                _ => {}
            }
            let mut m = TlsMaterial::default();
            if let (Some(cert), Some(key)) = (&a.cert, &a.key) {
                m.client = Some(load_pair(cert, key).map_err(|e| d.err(e))?);
            }
            if let Some(ca) = &a.ca {
                m.roots = Some(load_roots(ca).map_err(|e| d.err(e))?);
            }
            *tls = Some(m);
            cfg.tls = Some(a);
        }
        "doh_method" => {
            if !d.next_arg() {
                return Err(d.arg_err());
            }
            cfg.doh_method = match d.val() {
                "POST" => super::doh::Method::Post,
                "GET" => super::doh::Method::Get,
                _ => return Err(d.err("doh_method must be either POST or GET")),
            };
        }
        "tls_servername" => {
            if !d.next_arg() {
                return Err(d.arg_err());
            }
            let name = d.val().to_string();
            if ServerName::try_from(name.clone()).is_err() {
                return Err(d.err(format!("invalid tls_servername '{name}'")));
            }
            cfg.tls_servername = Some(name);
        }
        "expire" => {
            if !d.next_arg() {
                return Err(d.arg_err());
            }
            let dur = parse_go_duration(d.val()).map_err(|e| d.err(e))?;
            if dur < 0 {
                return Err(d.err(format!("expire can't be negative: {}", go_signed(dur))));
            }
            cfg.expire = nanos(dur);
        }
        "policy" => {
            if !d.next_arg() {
                return Err(d.arg_err());
            }
            cfg.policy = match d.val() {
                "random" => Policy::Random,
                "round_robin" => Policy::RoundRobin,
                "sequential" => Policy::Sequential,
                other => return Err(d.err(format!("unknown policy '{other}'"))),
            };
        }
        "max_concurrent" => {
            if !d.next_arg() {
                return Err(d.arg_err());
            }
            let n = go_atoi(d.val()).map_err(|e| d.err(e))?;
            if n < 0 {
                return Err(d.err(format!("max_concurrent can't be negative: {n}")));
            }
            cfg.max_concurrent = n;
        }
        "next" => {
            let codes = rcode_args(d, |_| Ok(()))?;
            cfg.next_rcodes.extend(codes);
        }
        "failfast_all_unhealthy_upstreams" => {
            if !d.remaining_args().is_empty() {
                return Err(d.arg_err());
            }
            cfg.failfast_all_unhealthy_upstreams = true;
        }
        "failover" => {
            let codes = rcode_args(d, |code| {
                if code == 0 {
                    Err("NoError cannot be used in failover")
                } else {
                    Ok(())
                }
            })?;
            cfg.failover_rcodes.extend(codes);
        }
        "read_timeout" => {
            if !d.next_arg() {
                return Err(d.arg_err());
            }
            let dur = parse_go_duration(d.val()).map_err(|e| d.err(e))?;
            if dur <= 0 {
                return Err(d.err(format!("read_timeout must be positive: {}", go_signed(dur))));
            }
            cfg.read_timeout = nanos(dur);
        }
        "source_address" => {
            if !d.next_arg() {
                return Err(d.arg_err());
            }
            let ip: IpAddr = d
                .val()
                .parse()
                .map_err(|_| d.err(format!("source_address: invalid IP address '{}'", d.val())))?;
            cfg.source_address = Some(ip);
        }
        "interface" => {
            if !d.next_arg() {
                return Err(d.arg_err());
            }
            let name = d.val();
            if !valid_interface_name(name) {
                return Err(d.err(format!("interface: invalid interface name '{name}'")));
            }
            cfg.interface = Some(name.to_string());
        }
        _ => return Err(d.unknown_property()),
    }
    Ok(())
}

fn nanos(n: i128) -> Duration {
    if n <= 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(n.min(u64::MAX as i128) as u64)
    }
}

/// A signed duration as Go prints it (`-1.5s`).
fn go_signed(n: i128) -> String {
    if n < 0 {
        format!("-{}", format_duration(nanos(-n)))
    } else {
        format_duration(nanos(n))
    }
}

/// Go's `strconv.ParseUint(s, 10, 32)` with its error wording.
fn parse_uint32(s: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            go_quote(s)
        ));
    }
    s.parse::<u32>().map_err(|_| {
        format!(
            "strconv.ParseUint: parsing {}: value out of range",
            go_quote(s)
        )
    })
}

/// Go's `strconv.Atoi`, with its error wording.
fn go_atoi(s: &str) -> Result<i64, String> {
    use std::num::IntErrorKind;
    s.parse::<i64>().map_err(|e| match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => {
            format!("strconv.Atoi: parsing {}: value out of range", go_quote(s))
        }
        _ => format!("strconv.Atoi: parsing {}: invalid syntax", go_quote(s)),
    })
}

/// miekg/dns's `StringToRcode[strings.ToUpper(s)]`.
/// The rcode names of a `next`/`failover` line, each checked in order by `check`.
fn rcode_args(
    d: &mut Dispenser,
    check: impl Fn(u16) -> Result<(), &'static str>,
) -> Result<Vec<u16>, ParseError> {
    let args = d.remaining_args();
    if args.is_empty() {
        return Err(d.arg_err());
    }
    let mut codes = Vec::with_capacity(args.len());
    for rc in &args {
        let code =
            rcode_from_name(rc).ok_or_else(|| d.err(format!("{rc} is not a valid rcode")))?;
        check(code).map_err(|e| d.err(e))?;
        codes.push(code);
    }
    Ok(codes)
}

fn rcode_from_name(s: &str) -> Option<u16> {
    let upper = s.to_ascii_uppercase();
    (0u16..=23).find(|&c| rcode_mnemonic(c.into()) == Some(upper.as_str()))
}

/// miekg/dns's `IsDomainName`: labels of 1 to 63 octets, 255 octets in all.
fn is_domain_name(s: &str) -> bool {
    if s == "." {
        return true;
    }
    let body = s.strip_suffix('.').unwrap_or(s);
    !body.is_empty() && body.len() <= 254 && body.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

/// `plugin.Name(s).Normalize()`: lower-case and absolute.
fn normalize_name(s: &str) -> String {
    let mut n = s.to_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

/// CoreDNS's `parse.Transport`: the scheme and the rest; no scheme is `dns`.
fn transport(s: &str) -> (&'static str, &str) {
    for scheme in ["tls", "dns", "quic", "grpc", "https3", "https", "unix"] {
        if let Some(rest) = s.strip_prefix(scheme).and_then(|r| r.strip_prefix("://")) {
            return (scheme, rest);
        }
    }
    ("dns", s)
}

/// The default port of a transport, as CoreDNS's `HostPortOrFile` adds it.
fn default_port(trans: &str) -> Option<&'static str> {
    match trans {
        "dns" => Some("53"),
        "tls" => Some("853"),
        "grpc" | "https" => Some("443"),
        "quic" => Some("853"),
        _ => None,
    }
}

/// Go's `net.JoinHostPort`.
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The part before the last `%`.
fn strip_zone(host: &str) -> &str {
    match host.rfind('%') {
        Some(i) => &host[..i],
        None => host,
    }
}

/// CoreDNS's `parse.HostPortOrFile`: each TO is `[scheme://]IP[:port]` (the default port
/// added) or a resolv.conf-style file whose `nameserver` lines give `IP:53` upstreams.
pub fn host_port_or_file(to: &[String]) -> Result<Vec<String>, String> {
    let mut servers = Vec::new();
    for h in to {
        let (trans, host) = transport(h);
        match crate::plugin::util::split_host_port(host) {
            Err(_) => {
                if strip_zone(host).parse::<IpAddr>().is_err() {
                    servers.extend(try_file(host)?);
                    continue;
                }
                let port = default_port(trans).unwrap_or("53");
                let joined = join_host_port(host, port);
                servers.push(if trans == "dns" {
                    joined
                } else {
                    format!("{trans}://{joined}")
                });
            }
            Ok((addr, _port)) => {
                if strip_zone(addr).parse::<IpAddr>().is_err() {
                    servers.extend(try_file(host)?);
                    continue;
                }
                servers.push(h.clone());
            }
        }
    }
    if servers.is_empty() {
        return Err("no nameservers found".to_string());
    }
    Ok(servers)
}

/// The `nameserver` lines of a resolv.conf-style file, as `IP:53`.
fn try_file(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|_| format!("not an IP address or file: {}", go_quote(path)))?;
    let mut servers = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut f = line.split_whitespace();
        if f.next() == Some("nameserver")
            && let Some(ip) = f.next()
        {
            if strip_zone(ip).parse::<IpAddr>().is_err() {
                return Err(format!("nameserver '{ip}' in {path} is not an IP address"));
            }
            servers.push(join_host_port(strip_zone(ip), "53"));
        }
    }
    Ok(servers)
}

/// CoreDNS's `splitZone`: `[scheme://]HOST%NAME[:port]` → (`[scheme://]HOST[:port]`, `NAME`).
pub fn split_zone(host: &str) -> (String, String) {
    let (trans, rest) = match host.split_once("://") {
        Some((t, r)) => (t, r),
        None => ("", host),
    };
    let mut new_host = rest.to_string();
    let mut zone = String::new();
    if let Some(pct) = rest.rfind('%') {
        new_host = rest[..pct].to_string();
        if new_host.starts_with('[') {
            new_host.push(']');
        }
        zone = rest[pct + 1..].to_string();
        if let Some(colon) = zone.rfind(':') {
            new_host.push_str(&zone[colon..]);
            zone.truncate(colon);
            if zone.ends_with(']') {
                zone.pop();
            }
        }
    }
    if !trans.is_empty() {
        new_host = format!("{trans}://{new_host}");
    }
    (new_host, zone)
}

fn read(path: &str, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what}: open {path}: {}", io_error_text(&e)))
}

/// `tls CERT KEY`: the client certificate chain and key.
fn load_pair(
    cert: &str,
    key: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let data = read(cert, "could not load TLS cert")?;
    let chain = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("could not load TLS cert: {cert}: {e}"))?;
    if chain.is_empty() {
        return Err(format!(
            "could not load TLS cert: {cert}: no CERTIFICATE PEM block found"
        ));
    }
    let data = read(key, "could not load TLS cert")?;
    let key_der = match rustls_pemfile::private_key(&mut data.as_slice()) {
        Ok(Some(k)) => k,
        Ok(None) => {
            return Err(format!(
                "could not load TLS cert: {key}: no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY PEM block found"
            ));
        }
        Err(e) => return Err(format!("could not load TLS cert: {key}: {e}")),
    };
    Ok((chain, key_der))
}

/// `tls [CERT KEY] CA`: the CAs the upstream's certificate is verified against.
fn load_roots(path: &str) -> Result<RootCertStore, String> {
    crate::plugin::tls::load_roots(path)
}

/// The system's CAs: `$SSL_CERT_FILE`, else the first of [`SYSTEM_CA_FILES`] that holds any.
fn system_roots() -> Result<RootCertStore, String> {
    let env = std::env::var("SSL_CERT_FILE")
        .ok()
        .filter(|s| !s.is_empty());
    let candidates = env
        .iter()
        .map(String::as_str)
        .chain(SYSTEM_CA_FILES.iter().copied());
    for path in candidates {
        let Ok(data) = std::fs::read(path) else {
            continue;
        };
        let mut roots = RootCertStore::empty();
        let mut rd = data.as_slice();
        let certs: Vec<_> = rustls_pemfile::certs(&mut rd)
            .filter_map(Result::ok)
            .collect();
        roots.add_parsable_certificates(certs);
        if !roots.is_empty() {
            return Ok(roots);
        }
    }
    Err(format!(
        "no system CA certificates found (tried $SSL_CERT_FILE, {}); name a CA with 'tls CA'",
        SYSTEM_CA_FILES.join(", ")
    ))
}
