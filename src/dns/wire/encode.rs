//! A message encoder for the replies exdns writes itself (k8s_gateway, file, hosts, template...):
//! the record types those carry, with name compression (RFC 1035 4.1.4) against every name
//! already written, and no allocation but the output. Anything else — other record types, EDNS
//! options, TSIG — is left to hickory's encoder ([`encode`] returns `None`).
//!
//! hickory's `BinEncoder` keeps a heap-allocated copy of every label suffix it writes, which
//! made encoding about a quarter of the work of an authoritative answer.

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RData, Record};

/// Names are compressed against at most this many earlier label positions.
const MAX_TARGETS: usize = 64;

struct Encoder {
    buf: Vec<u8>,
    /// Offsets (within pointer range) where a written-out label starts.
    targets: [u16; MAX_TARGETS],
    n_targets: usize,
}

/// `msg` in wire form, or `None` when it holds something this encoder leaves to hickory.
pub fn encode(msg: &Message) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    encode_into(msg, &mut out)?;
    Some(out)
}

/// [`encode`] into `out` (cleared first), so that a caller can reuse one buffer. `None` (and
/// `out` in an unspecified state) when `msg` holds something left to hickory.
pub fn encode_into(msg: &Message, out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    let mut enc = Encoder {
        buf: std::mem::take(out),
        targets: [0; MAX_TARGETS],
        n_targets: 0,
    };
    let done = enc.message(msg);
    *out = enc.buf;
    done
}

/// A reply written straight from a query's wire form (the fast path, [`crate::dns::view`]):
/// the header and the client's question, then answer records one by one, names compressed as
/// [`encode`] compresses them, so the bytes are those `encode` gives for the same message.
pub struct ReplyWriter {
    enc: Encoder,
    /// Answers written; `None` once more than a header can count.
    answers: Option<u16>,
}

impl ReplyWriter {
    /// A reply with `id` and header `flags` (rcode included) to the question `qname` (wire form,
    /// uncompressed), `qtype`, `qclass`.
    pub fn new(id: u16, flags: u16, qname: &[u8], qtype: u16, qclass: u16) -> Self {
        let mut enc = Encoder {
            buf: Vec::with_capacity(512),
            targets: [0; MAX_TARGETS],
            n_targets: 0,
        };
        for v in [id, flags, 1, 0, 0, 0] {
            enc.u16(v);
        }
        enc.name_wire(qname, true);
        enc.u16(qtype);
        enc.u16(qclass);
        ReplyWriter {
            enc,
            answers: Some(0),
        }
    }

    /// Appends an answer record of class IN.
    pub fn record(&mut self, owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) {
        let e = &mut self.enc;
        e.name_wire(owner, true);
        e.u16(rtype);
        e.u16(1);
        e.u32(ttl);
        e.u16(rdata.len() as u16);
        e.buf.extend_from_slice(rdata);
        self.answers = self.answers.and_then(|n| n.checked_add(1));
    }

    /// The reply, with exdns's OPT record (the client's DO bit) when `opt` is given. `None` when
    /// it holds more answers than a header can count.
    pub fn finish(self, opt: Option<bool>) -> Option<Vec<u8>> {
        let mut buf = self.enc.buf;
        buf[6..8].copy_from_slice(&self.answers?.to_be_bytes());
        if let Some(dnssec_ok) = opt {
            super::append_opt(&mut buf, dnssec_ok);
        }
        Some(buf)
    }
}

impl Encoder {
    fn message(&mut self, msg: &Message) -> Option<()> {
        if msg.signature.is_some() {
            return None;
        }
        if let Some(e) = &msg.edns
            && !e.options().options.is_empty()
        {
            return None;
        }
        let m = &msg.metadata;
        let rcode = m.response_code;
        let mut flags: u16 = (u16::from(u8::from(m.op_code)) & 0xf) << 11;
        for (on, bit) in [
            (
                m.message_type == hickory_proto::op::MessageType::Response,
                0x8000,
            ),
            (m.authoritative, 0x0400),
            (m.truncation, 0x0200),
            (m.recursion_desired, 0x0100),
            (m.recursion_available, 0x0080),
            (m.authentic_data, 0x0020),
            (m.checking_disabled, 0x0010),
        ] {
            if on {
                flags |= bit;
            }
        }
        flags |= u16::from(rcode.low());
        let counts = [
            msg.queries.len(),
            msg.answers.len(),
            msg.authorities.len(),
            msg.additionals.len() + usize::from(msg.edns.is_some()),
        ];
        self.u16(m.id);
        self.u16(flags);
        for c in counts {
            self.u16(u16::try_from(c).ok()?);
        }
        for q in &msg.queries {
            self.name(q.name(), true);
            self.u16(q.query_type().into());
            self.u16(q.query_class().into());
        }
        for r in msg
            .answers
            .iter()
            .chain(&msg.authorities)
            .chain(&msg.additionals)
        {
            self.record(r)?;
        }
        if let Some(e) = &msg.edns {
            self.buf.push(0);
            self.u16(41);
            self.u16(e.max_payload().max(512));
            self.buf.push(rcode.high());
            self.buf.push(e.version());
            let f = e.flags();
            self.u16((f.z & 0x7fff) | if f.dnssec_ok { 0x8000 } else { 0 });
            self.u16(0);
        }
        Some(())
    }

    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Writes `name`, as a pointer to an earlier copy of its longest possible suffix when
    /// `compress` (labels compared exactly, so the case written is kept). The name is written
    /// out first; the first of its suffixes found earlier in the message is then replaced by a
    /// pointer.
    fn name(&mut self, name: &Name, compress: bool) {
        let start = self.buf.len();
        for l in name.iter() {
            self.buf.push(l.len() as u8);
            self.buf.extend_from_slice(l);
        }
        self.buf.push(0);
        self.compress(start, compress);
    }

    /// [`Encoder::name`] for a name already in (uncompressed) wire form.
    fn name_wire(&mut self, name: &[u8], compress: bool) {
        let start = self.buf.len();
        self.buf.extend_from_slice(name);
        self.compress(start, compress);
    }

    /// Registers the name just written out at `start` as a compression target, replacing the
    /// first of its suffixes written earlier with a pointer when `compress`.
    fn compress(&mut self, start: usize, compress: bool) {
        let end = self.buf.len();
        let known = self.n_targets;
        let mut at = start;
        while self.buf[at] != 0 {
            if compress
                && let Some(t) = self.targets[..known]
                    .iter()
                    .copied()
                    .find(|&t| self.same_name(t as usize, at))
            {
                self.buf.truncate(at);
                self.u16(0xc000 | t);
                break;
            }
            if at < 0x3fff && self.n_targets < MAX_TARGETS {
                self.targets[self.n_targets] = at as u16;
                self.n_targets += 1;
            }
            at += 1 + self.buf[at] as usize;
        }
        debug_assert!(self.buf.len() <= end);
    }

    /// Whether the name at `earlier` (which may end in a pointer) is the uncompressed name
    /// written at `at`.
    fn same_name(&self, mut earlier: usize, mut at: usize) -> bool {
        let b = &self.buf;
        loop {
            while b[earlier] & 0xc0 == 0xc0 {
                earlier = (((b[earlier] & 0x3f) as usize) << 8) | b[earlier + 1] as usize;
            }
            let len = b[at] as usize;
            if b[earlier] as usize != len
                || b[earlier + 1..earlier + 1 + len] != b[at + 1..at + 1 + len]
            {
                return false;
            }
            if len == 0 {
                return true;
            }
            earlier += 1 + len;
            at += 1 + len;
        }
    }

    fn record(&mut self, r: &Record) -> Option<()> {
        self.name(&r.name, true);
        self.u16(r.record_type().into());
        self.u16(r.dns_class.into());
        self.u32(r.ttl);
        let len_at = self.buf.len();
        self.u16(0);
        match &r.data {
            RData::A(a) => self.buf.extend_from_slice(&a.0.octets()),
            RData::AAAA(a) => self.buf.extend_from_slice(&a.0.octets()),
            RData::NS(n) => self.name(&n.0, true),
            RData::CNAME(n) => self.name(&n.0, true),
            RData::PTR(n) => self.name(&n.0, true),
            RData::MX(mx) => {
                self.u16(mx.preference);
                self.name(&mx.exchange, true);
            }
            RData::SOA(soa) => {
                self.name(&soa.mname, true);
                self.name(&soa.rname, true);
                self.u32(soa.serial);
                self.u32(soa.refresh as u32);
                self.u32(soa.retry as u32);
                self.u32(soa.expire as u32);
                self.u32(soa.minimum);
            }
            RData::TXT(txt) => {
                for s in txt.txt_data.iter() {
                    self.buf.push(u8::try_from(s.len()).ok()?);
                    self.buf.extend_from_slice(s);
                }
            }
            RData::SRV(srv) => {
                self.u16(srv.priority);
                self.u16(srv.weight);
                self.u16(srv.port);
                // RFC 2782: the target is not compressed.
                self.name(&srv.target, false);
            }
            // Opaque RDATA (the DNSSEC records `dnssec` makes, types hickory does not know):
            // written as held, names inside never compressed.
            RData::Unknown { rdata, .. } => self.buf.extend_from_slice(&rdata.anything),
            _ => return None,
        }
        let len = u16::try_from(self.buf.len() - len_at - 2).ok()?;
        self.buf[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
        Some(())
    }
}
