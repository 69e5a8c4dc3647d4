//! DNS messages at the byte level, for the paths that never need a decoded `Message`: a cached
//! reply is answered by copying its bytes and patching the ID, the question's case and the TTLs;
//! an upstream's reply is relayed after its structure and question were checked in place.
//!
//! [`scan`] checks a message's structure (every name, pointer and record within bounds, the
//! names inside well-known record types included) and returns where each record is;
//! [`finalize`] turns a reply into the reply to one request (ID, OPT per RFC 6891) and [`fit`]
//! truncates it for the client's size, exactly as `reply::encode_reply` does for a decoded
//! `Message`.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Name;

use crate::dns::request::ADVERTISED_UDP_SIZE;
use crate::dns::request::{Outcome, Request};

/// Size of the DNS header.
pub const HEADER: usize = 12;
/// Record type numbers used here.
pub const T_NS: u16 = 2;
pub const T_CNAME: u16 = 5;
pub const T_SOA: u16 = 6;
pub const T_PTR: u16 = 12;
pub const T_MX: u16 = 15;
pub const T_SRV: u16 = 33;
pub const T_DNAME: u16 = 39;
pub const T_OPT: u16 = 41;
pub const T_TXT: u16 = 16;
pub const T_A: u16 = 1;
pub const T_AAAA: u16 = 28;

/// Header flag bits (in the 16-bit flags word at offset 2).
pub const QR: u16 = 0x8000;
pub const AA: u16 = 0x0400;
pub const TC: u16 = 0x0200;
pub const RD: u16 = 0x0100;
pub const RA: u16 = 0x0080;
pub const AD: u16 = 0x0020;
pub const CD: u16 = 0x0010;

/// Compression pointers followed per name at most (a name has at most 127 labels).
pub const MAX_POINTERS: usize = 127;

/// Where one resource record is in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rr {
    /// Offset of its owner name.
    pub start: usize,
    pub rtype: u16,
    pub class: u16,
    /// Offset of its 32-bit TTL field.
    pub ttl_at: usize,
    /// Offset of its RDATA.
    pub rdata: usize,
    /// Offset just past it.
    pub end: usize,
}

impl Rr {
    pub fn ttl(&self, buf: &[u8]) -> u32 {
        u32::from_be_bytes(
            buf[self.ttl_at..self.ttl_at + 4]
                .try_into()
                .unwrap_or([0; 4]),
        )
    }
}

/// The structure of a message with exactly one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// End of the question's name (it starts at [`HEADER`]).
    pub qname_end: usize,
    pub qtype: u16,
    pub qclass: u16,
    /// Records of the answer, authority and additional sections, in order.
    pub rrs: Vec<Rr>,
    pub an: usize,
    pub ns: usize,
    /// Index in `rrs` of the OPT record, if any.
    pub opt: Option<usize>,
    /// End of the last record (trailing bytes after it are not part of the message).
    pub end: usize,
}

impl Layout {
    pub fn answers(&self) -> &[Rr] {
        &self.rrs[..self.an]
    }
    pub fn authorities(&self) -> &[Rr] {
        &self.rrs[self.an..self.an + self.ns]
    }
}

pub fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// The flags word of a message of at least [`HEADER`] bytes.
pub fn flags(buf: &[u8]) -> u16 {
    u16_at(buf, 2)
}

pub fn set_flags(buf: &mut [u8], f: u16) {
    put_u16(buf, 2, f)
}

/// The 4-bit header rcode.
pub fn header_rcode(buf: &[u8]) -> u16 {
    flags(buf) & 0x000f
}

/// The offset just past the name at `at` (its zero octet, or its first compression pointer),
/// without following or checking pointers: a walk over a message exdns built or already
/// [`scan`]ned. `None` when it runs out of `buf` or meets a reserved label type.
pub fn skip_name(buf: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *buf.get(at)? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(at + 1),
            0x00 => at += 1 + len,
            0xc0 if at + 2 <= buf.len() => return Some(at + 2),
            _ => return None,
        }
    }
}

/// Checks the name at `pos`, following compression pointers (which must point backwards), and
/// returns the offset just past it where it is written. `None` when it is out of bounds, uses a
/// reserved label type, is longer than 255 octets or follows more than [`MAX_POINTERS`]
/// pointers (a chain of pointers would otherwise cost up to 32k steps per name).
pub fn check_name(buf: &[u8], pos: usize) -> Option<usize> {
    let mut at = pos;
    let mut end: Option<usize> = None;
    let mut total = 0usize;
    let mut hops = 0;
    loop {
        let len = *buf.get(at)? as usize;
        match len & 0xc0 {
            0x00 => {
                total += len + 1;
                if total > 255 {
                    return None;
                }
                if len == 0 {
                    return Some(end.unwrap_or(at + 1));
                }
                at += 1 + len;
                if at >= buf.len() {
                    return None;
                }
            }
            0xc0 => {
                let target = ((len & 0x3f) << 8) | *buf.get(at + 1)? as usize;
                if target >= at || target < HEADER {
                    return None;
                }
                if end.is_none() {
                    end = Some(at + 2);
                }
                hops += 1;
                if hops > MAX_POINTERS {
                    return None;
                }
                at = target;
            }
            _ => return None,
        }
    }
}

/// Checks the structure of `buf` (exactly one question; every record's name, fixed fields and
/// RDATA within bounds; names inside NS, CNAME, PTR, DNAME, MX, SRV and SOA records; A and
/// AAAA of their exact size; at most one OPT, in the additional section, owned by the root).
pub fn scan(buf: &[u8]) -> Option<Layout> {
    if buf.len() < HEADER || u16_at(buf, 4) != 1 {
        return None;
    }
    let an = u16_at(buf, 6) as usize;
    let ns = u16_at(buf, 8) as usize;
    let ar = u16_at(buf, 10) as usize;
    let qname_end = check_name(buf, HEADER)?;
    // The question's name is written out (a pointer there could only point into the header).
    if qname_end <= HEADER || buf[qname_end - 1] != 0 {
        return None;
    }
    if qname_end + 4 > buf.len() {
        return None;
    }
    let qtype = u16_at(buf, qname_end);
    let qclass = u16_at(buf, qname_end + 2);
    let mut at = qname_end + 4;
    let mut rrs = Vec::with_capacity(an + ns + ar);
    let mut opt = None;
    for i in 0..an + ns + ar {
        let start = at;
        let name_end = check_name(buf, at)?;
        if name_end + 10 > buf.len() {
            return None;
        }
        let rtype = u16_at(buf, name_end);
        let class = u16_at(buf, name_end + 2);
        let rdlen = u16_at(buf, name_end + 8) as usize;
        let rdata = name_end + 10;
        let end = rdata + rdlen;
        if end > buf.len() {
            return None;
        }
        check_rdata(buf, rtype, rdata, end)?;
        if rtype == T_OPT {
            if i < an + ns || opt.is_some() || buf[start] != 0 {
                return None;
            }
            opt = Some(i);
        }
        rrs.push(Rr {
            start,
            rtype,
            class,
            ttl_at: name_end + 4,
            rdata,
            end,
        });
        at = end;
    }
    Some(Layout {
        qname_end,
        qtype,
        qclass,
        rrs,
        an,
        ns,
        opt,
        end: at,
    })
}

/// Checks the RDATA of the well-known types whose content matters to a client or to the cache.
fn check_rdata(buf: &[u8], rtype: u16, start: usize, end: usize) -> Option<()> {
    let name_to = |at: usize| check_name(&buf[..end], at);
    let ok = match rtype {
        T_A => end - start == 4,
        T_AAAA => end - start == 16,
        T_NS | T_CNAME | T_PTR | T_DNAME => name_to(start)? == end,
        T_MX => end - start > 2 && name_to(start + 2)? == end,
        T_SRV => end - start > 6 && name_to(start + 6)? == end,
        T_TXT => {
            // Character strings filling the RDATA exactly.
            let mut at = start;
            while at < end {
                at += 1 + buf[at] as usize;
            }
            at == end
        }
        T_SOA => {
            let m = name_to(start)?;
            let r = name_to(m)?;
            r + 20 == end
        }
        _ => true,
    };
    ok.then_some(())
}

/// Whether the question of `reply` is the one of `query` (name compared without case, type and
/// class): CoreDNS's `request.Match` on wire bytes. Both must have been scanned.
pub fn same_question(query: &[u8], q: &Layout, reply: &[u8], r: &Layout) -> bool {
    q.qtype == r.qtype
        && q.qclass == r.qclass
        && q.qname_end == r.qname_end
        && query[HEADER..q.qname_end].eq_ignore_ascii_case(&reply[HEADER..r.qname_end])
}

/// The response code of a reply: the header's 4 bits with the OPT record's 8 extended bits.
pub fn rcode(buf: &[u8], layout: &Layout) -> ResponseCode {
    let high = layout.opt.map_or(0, |i| buf[layout.rrs[i].ttl_at]);
    ResponseCode::from(high, header_rcode(buf) as u8)
}

/// Size of an OPT record without options.
pub const OPT_SIZE: usize = 11;

/// The OPT record exdns writes: root owner, our UDP size, version 0, the DO bit as asked.
fn push_opt(out: &mut Vec<u8>, dnssec_ok: bool) {
    out.extend_from_slice(&[0, 0, 41]);
    out.extend_from_slice(&ADVERTISED_UDP_SIZE.to_be_bytes());
    out.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
}

/// Appends exdns's OPT record to `out` (a reply without one) when `req` had EDNS.
pub fn add_opt(req: &Request, out: &mut Vec<u8>) {
    if let Some(e) = &req.msg.edns {
        append_opt(out, e.flags().dnssec_ok);
    }
}

/// Appends exdns's OPT record with `dnssec_ok` to `out` (a reply without one), counted in ARCOUNT.
pub fn append_opt(out: &mut Vec<u8>, dnssec_ok: bool) {
    let ar = u16_at(out, 10).saturating_add(1);
    push_opt(out, dnssec_ok);
    put_u16(out, 10, ar);
}

/// Writes EDNS option `code` with `data` into the reply `buf`'s OPT record, replacing every
/// option `code` already there (an upstream's, or the client's echoed), the other options kept
/// in order. Returns false and leaves `buf` as it was when it has no OPT record, the OPT record
/// is not its last record (a reply from elsewhere that exdns did not lay out) or the option
/// would not fit in the record.
pub fn put_option(buf: &mut Vec<u8>, code: u16, data: &[u8]) -> bool {
    let Some(layout) = scan(buf) else {
        return false;
    };
    let Some(i) = layout.opt else {
        return false;
    };
    if i + 1 != layout.rrs.len() {
        return false;
    }
    let rr = layout.rrs[i];
    let rdata = buf[rr.rdata..rr.end].to_vec();
    let mut kept = Vec::with_capacity(rdata.len() + 4 + data.len());
    let mut at = 0;
    while at + 4 <= rdata.len() {
        let end = (at + 4 + u16_at(&rdata, at + 2) as usize).min(rdata.len());
        if u16_at(&rdata, at) != code {
            kept.extend_from_slice(&rdata[at..end]);
        }
        at = end;
    }
    let Ok(len) = u16::try_from(data.len()) else {
        return false;
    };
    kept.extend_from_slice(&code.to_be_bytes());
    kept.extend_from_slice(&len.to_be_bytes());
    kept.extend_from_slice(data);
    let Ok(rdlen) = u16::try_from(kept.len()) else {
        return false;
    };
    // The OPT record is the last: its RDATA ends the message.
    buf.truncate(rr.rdata);
    buf.extend_from_slice(&kept);
    put_u16(buf, rr.rdata - 2, rdlen);
    true
}

/// CoreDNS's `request.Match` on wire bytes: `buf` is a response whose one question is `req`'s
/// name (any case) and type.
pub fn is_reply_to(buf: &[u8], layout: &Layout, req: &Request) -> bool {
    req.msg.queries.len() == 1
        && flags(buf) & QR != 0
        && layout.qtype == u16::from(req.qtype())
        && qname_is(buf, layout, req.qname())
}

/// Whether the question name written at `buf[HEADER..layout.qname_end]` is `name`, without
/// regard to case.
pub fn qname_is(buf: &[u8], layout: &Layout, name: &Name) -> bool {
    let mut at = HEADER;
    for label in name.iter() {
        let end = at + 1 + label.len();
        if end > layout.qname_end
            || buf[at] as usize != label.len()
            || !buf[at + 1..end].eq_ignore_ascii_case(label)
        {
            return false;
        }
        at = end;
    }
    at + 1 == layout.qname_end
}

/// Writes the case of `name`'s letters over `qname` (the same name in wire form, as a cache
/// entry stores it). Leaves it unchanged when the lengths differ, which equal names never do.
pub fn copy_qname_case(qname: &mut [u8], name: &Name) {
    let mut at = 0;
    for label in name.iter() {
        let end = at + 1 + label.len();
        if end >= qname.len() {
            return;
        }
        qname[at + 1..end].copy_from_slice(label);
        at = end;
    }
}

/// Makes `buf` (a reply laid out as `layout`) the reply to `req`, as `reply::encode_reply` does
/// for a decoded message: the request's ID and opcode, QR set; when the request had EDNS, an OPT
/// record with exdns's UDP size, version 0 and the client's DO bit (the reply's OPT options and
/// extended rcode kept), else no OPT (an extended rcode then becomes SERVFAIL); bytes after the
/// last record dropped. Truncation for the client's size is left to [`fit`]. `Err` gives the
/// bytes back untouched when the reply's OPT must go but is not its last record (the caller
/// decodes instead: see [`finalize_or_decode`]).
pub fn finalize(req: &Request, mut buf: Vec<u8>, layout: &Layout) -> Result<Vec<u8>, Vec<u8>> {
    if req.msg.edns.is_none() && layout.opt.is_some_and(|i| i + 1 != layout.rrs.len()) {
        return Err(buf);
    }
    buf.truncate(layout.end);
    put_u16(&mut buf, 0, req.id());
    let opcode = u8::from(req.msg.metadata.op_code) as u16;
    let f = (flags(&buf) & !0x7800) | QR | (opcode << 11);
    set_flags(&mut buf, f);
    match (&req.msg.edns, layout.opt) {
        (Some(e), Some(i)) => {
            let rr = layout.rrs[i];
            put_u16(&mut buf, rr.ttl_at - 2, ADVERTISED_UDP_SIZE);
            buf[rr.ttl_at + 1] = 0; // version
            let z = u16_at(&buf, rr.ttl_at + 2) & 0x7fff;
            let dnssec = if e.flags().dnssec_ok { 0x8000 } else { 0 };
            put_u16(&mut buf, rr.ttl_at + 2, z | dnssec);
        }
        (Some(_), None) => add_opt(req, &mut buf),
        (None, Some(i)) => {
            let rr = layout.rrs[i];
            let high = buf[rr.ttl_at];
            buf.truncate(rr.start);
            let ar = u16_at(&buf, 10) - 1;
            put_u16(&mut buf, 10, ar);
            if high != 0 {
                let f = (flags(&buf) & !0x000f) | u16::from(ResponseCode::ServFail);
                set_flags(&mut buf, f);
            }
        }
        (None, None) => {}
    }
    Ok(buf)
}

/// The outcome for a reply in wire form whose full response code is `rcode`: finalized for
/// `req` ([`finalize`]), or decoded for the server to rebuild when it cannot be (an empty reply
/// with `rcode` if it does not even decode).
pub fn finalize_or_decode(
    req: &Request,
    buf: Vec<u8>,
    layout: &Layout,
    rcode: ResponseCode,
    plugin: &'static str,
) -> Outcome {
    match finalize(req, buf, layout) {
        Ok(bytes) => {
            // What the client sees of an extended rcode without EDNS: SERVFAIL.
            let rcode = if req.msg.edns.is_none() && rcode.high() > 0 {
                ResponseCode::ServFail
            } else {
                rcode
            };
            Outcome::Wire {
                bytes,
                rcode,
                plugin,
            }
        }
        Err(bytes) => Outcome::Wire {
            bytes,
            rcode,
            plugin,
        }
        .decoded(req),
    }
}

/// `buf` (a reply finalized for `req`) as sent: unchanged when it fits what the client can
/// take ([`Request::reply_limit`]), else truncated as `reply::encode_reply` truncates — TC set,
/// the question and the OPT record kept, every other record dropped.
pub fn fit(req: &Request, buf: Vec<u8>) -> Vec<u8> {
    fit_within(req, buf, req.reply_limit())
}

/// [`fit`] to `max` bytes instead of the client's limit (the tsig plugin keeps room for the
/// TSIG record it appends).
pub fn fit_within(req: &Request, buf: Vec<u8>, max: usize) -> Vec<u8> {
    if buf.len() <= max {
        return buf;
    }
    let Some(layout) = scan(&buf) else {
        // Cannot happen for a finalized reply; an empty SERVFAIL is still a valid answer.
        return crate::dns::reply::encode_error(&req.msg, ResponseCode::ServFail)
            .unwrap_or_default();
    };
    let qend = layout.qname_end + 4;
    let mut out = Vec::with_capacity(qend + 64);
    out.extend_from_slice(&buf[..qend]);
    set_flags(&mut out, flags(&buf) | TC);
    put_u16(&mut out, 6, 0);
    put_u16(&mut out, 8, 0);
    put_u16(&mut out, 10, 0);
    if let Some(i) = layout.opt {
        let rr = layout.rrs[i];
        put_u16(&mut out, 10, 1);
        if out.len() + (rr.end - rr.start) <= max {
            out.extend_from_slice(&buf[rr.start..rr.end]);
        } else {
            // The options do not fit: the OPT record without them.
            out.extend_from_slice(&buf[rr.start..rr.rdata]);
            let at = out.len() - 2;
            put_u16(&mut out, at, 0);
        }
    }
    out
}

/// The question's name of `buf` as `request::lower_fqdn` writes it (lower case, absolute),
/// read straight from the wire when it is written out and needs no escaping
/// (`request::push_plain_label`); `None` otherwise.
pub fn plain_lower_qname(buf: &[u8]) -> Option<String> {
    // The text form is the wire form without its first length octet, each other length octet
    // (and the final zero) turned into a dot: copy once, then fix it up label by label.
    let mut end = HEADER;
    loop {
        let len = *buf.get(end)? as usize;
        if len > 63 {
            return None;
        }
        end += 1 + len;
        if len == 0 {
            break;
        }
    }
    if end == HEADER + 1 {
        return Some(".".to_string());
    }
    let mut v = buf.get(HEADER + 1..end)?.to_vec();
    if v.len() > 254 {
        return None;
    }
    let (mut at, mut len) = (0, buf[HEADER] as usize);
    while len != 0 {
        if !crate::dns::request::lower_plain_label(&mut v[at..at + len]) {
            return None;
        }
        at += len;
        len = v[at] as usize;
        v[at] = b'.';
        at += 1;
    }
    String::from_utf8(v).ok()
}

/// Lower-cases the ASCII letters of the question's name in place (a cache entry's canonical
/// form; the case of each client's question is copied back when it is answered).
pub fn lowercase_qname(buf: &mut [u8], layout: &Layout) {
    buf[HEADER..layout.qname_end].make_ascii_lowercase();
}

pub mod encode;

#[cfg(test)]
mod tests;
