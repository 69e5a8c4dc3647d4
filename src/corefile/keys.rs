//! Server block keys: `[SCHEME://]ZONE[:PORT]`, CIDR keys to reverse zones.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    Dns,
    Tls,
    Https,
    Grpc,
    Quic,
}

impl Scheme {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scheme::Dns => "dns",
            Scheme::Tls => "tls",
            Scheme::Https => "https",
            Scheme::Grpc => "grpc",
            Scheme::Quic => "quic",
        }
    }
}

/// One server block key, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub scheme: Scheme,
    /// Lower-case, absolute zone (`example.org.`, `.` for the root). A CIDR key expands to
    /// several keys, one per reverse zone.
    pub zone: String,
    pub port: u16,
    /// The key as written.
    pub raw: String,
}

impl fmt::Display for Key {
    /// `dns://example.org.:53`, as CoreDNS prints keys in errors and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme.as_str(), self.zone, self.port)
    }
}

/// Parses one key; a CIDR key yields one key per reverse zone. `dns_port` is the `-dns.port` flag.
pub fn parse_key(_raw: &str, _dns_port: u16) -> Result<Vec<Key>, String> {
    todo!("keys")
}
