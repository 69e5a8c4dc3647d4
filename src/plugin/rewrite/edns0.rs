//! `edns0` rules: set, append, replace or unset an EDNS0 option of the request (`local`,
//! `nsid`, `subnet`), optionally taking it out of the reply again (`revert`).

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::Edns;
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption, NSIDPayload};

use super::rules::ResponseRule;
use crate::dns::request::Request;

/// EDNS0 option codes (RFC 5001, RFC 7871).
const NSID: u16 = 3;
const SUBNET: u16 = 8;

/// The payload size of an OPT record a rule has to add to a request without one.
const ADDED_OPT_PAYLOAD: u16 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Modify a matching option, or add one.
    Set,
    /// Add the option when there is no matching one.
    Append,
    /// Modify a matching option only.
    Replace,
    /// Remove matching options.
    Unset,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "set" => Action::Set,
            "append" => Action::Append,
            "replace" => Action::Replace,
            "unset" => Action::Unset,
            _ => return None,
        })
    }
}

/// A placeholder for `local` data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variable {
    QName,
    QType,
    ClientIp,
    ClientPort,
    Protocol,
    ServerIp,
    ServerPort,
    /// `{PLUGIN/LABEL}` metadata. exdns has no metadata plugin: such a rule never applies.
    Metadata(String),
}

impl Variable {
    /// `{qname}` … or a metadata label `{plugin/label}`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Variable> {
        Some(match s {
            "{qname}" => Variable::QName,
            "{qtype}" => Variable::QType,
            "{client_ip}" => Variable::ClientIp,
            "{client_port}" => Variable::ClientPort,
            "{protocol}" => Variable::Protocol,
            "{server_ip}" => Variable::ServerIp,
            "{server_port}" => Variable::ServerPort,
            _ => {
                let label = s.strip_prefix('{')?.strip_suffix('}')?;
                let p = label.find('/')?;
                if p == 0 || p + 1 >= label.len() || label.rfind('/') != Some(p) {
                    return None;
                }
                Variable::Metadata(label.to_string())
            }
        })
    }

    /// The option data for `req`, as CoreDNS encodes it: names and the protocol as text, the
    /// type and ports as 2 bytes, addresses as 4 or 16 bytes.
    fn data(&self, req: &Request) -> Option<Vec<u8>> {
        Some(match self {
            Variable::QName => req
                .msg
                .queries
                .first()
                .map(|q| q.name().to_ascii())?
                .into_bytes(),
            Variable::QType => u16::from(req.qtype()).to_be_bytes().to_vec(),
            Variable::ClientIp => ip_bytes(req.src.ip()),
            Variable::ClientPort => req.src.port().to_be_bytes().to_vec(),
            Variable::Protocol => req.proto.as_str().as_bytes().to_vec(),
            Variable::ServerIp => ip_bytes(req.local.ip()),
            Variable::ServerPort => req.local.port().to_be_bytes().to_vec(),
            Variable::Metadata(_) => return None,
        })
    }
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalData {
    Bytes(Vec<u8>),
    Variable(Variable),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edns0Kind {
    /// `local ACTION CODE DATA`: an option matched by its code.
    Local { code: u16, data: LocalData },
    /// `nsid ACTION`: an empty NSID option (a request for the server's NSID).
    Nsid,
    /// `subnet ACTION V4BITS V6BITS`: the client's address truncated to that many bits.
    Subnet { v4: u8, v6: u8 },
}

/// One `edns0` rule.
#[derive(Debug, Clone)]
pub struct Edns0Rule {
    pub action: Action,
    pub kind: Edns0Kind,
    pub revert: bool,
}

impl Edns0Rule {
    fn code(&self) -> u16 {
        match self.kind {
            Edns0Kind::Local { code, .. } => code,
            Edns0Kind::Nsid => NSID,
            Edns0Kind::Subnet { .. } => SUBNET,
        }
    }

    /// The option this rule writes for `req`; `None` when its data cannot be had (a metadata
    /// variable), which leaves the request alone.
    fn option(&self, req: &Request) -> Option<EdnsOption> {
        Some(match &self.kind {
            Edns0Kind::Local { code, data } => {
                let bytes = match data {
                    LocalData::Bytes(b) => b.clone(),
                    LocalData::Variable(v) => v.data(req)?,
                };
                EdnsOption::Unknown(*code, bytes)
            }
            Edns0Kind::Nsid => EdnsOption::NSID(NSIDPayload::new(Vec::new()).ok()?),
            Edns0Kind::Subnet { v4, v6 } => EdnsOption::Subnet(subnet_of(req.src.ip(), *v4, *v6)),
        })
    }

    /// Applies the rule to the request; `None` when it did nothing, else the response rules it
    /// leaves (its `revert`).
    pub fn rewrite<'a>(&self, cur: &mut Cow<'a, Request>) -> Option<Vec<ResponseRule>> {
        let code = self.code();
        if self.action == Action::Unset {
            let present = cur.msg.edns.as_ref().is_some_and(|e| {
                e.options()
                    .options
                    .iter()
                    .any(|(c, _)| u16::from(*c) == code)
            });
            if !present {
                return None;
            }
            if let Some(e) = cur.to_mut().msg.edns.as_mut() {
                e.options_mut()
                    .options
                    .retain(|(c, _)| u16::from(*c) != code);
            }
            return Some(Vec::new());
        }
        let option = self.option(cur)?;
        // As in CoreDNS, a request without an OPT record gets one from any edns0 rule that
        // could apply, whether or not the rule then changes an option.
        let edns = cur.to_mut().msg.edns.get_or_insert_with(|| {
            let mut e = Edns::new();
            e.set_max_payload(ADDED_OPT_PAYLOAD);
            e
        });
        let opts = &mut edns.options_mut().options;
        let found = opts.iter().position(|(c, _)| u16::from(*c) == code);
        let original = match (self.action, found) {
            (Action::Set | Action::Replace, Some(i)) => {
                Some(std::mem::replace(&mut opts[i].1, option))
            }
            (Action::Set | Action::Append, None) => {
                opts.push((EdnsCode::from(code), option));
                None
            }
            _ => return None,
        };
        Some(if self.revert {
            vec![ResponseRule::EdnsRevert { code, original }]
        } else {
            Vec::new()
        })
    }
}

/// The client subnet option for a client at `ip`: its address truncated to `v4` or `v6` bits,
/// that many source bits, scope 0.
pub fn subnet_of(ip: IpAddr, v4: u8, v6: u8) -> ClientSubnet {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(v4.min(32));
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            ClientSubnet::new(
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask)),
                bits as u8,
                0,
            )
        }
        IpAddr::V6(a) => {
            let bits = u32::from(v6.min(128));
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            ClientSubnet::new(
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask)),
                bits as u8,
                0,
            )
        }
    }
}
