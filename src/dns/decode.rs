//! Query decoding without hickory's general decoder for the common shape (one question, at most
//! an OPT record), giving exactly the message hickory's decoder would give.

use hickory_proto::op::{Edns, EdnsFlags, Header, Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::dns::wire;

/// [`decode_laid_out`], scanning `buf` first.
#[cfg(test)]
pub(crate) fn decode_query(buf: &[u8], header: &Header) -> Option<Message> {
    decode_laid_out(buf, header, &wire::scan(buf)?)
}

/// The common query (laid out as `l`) decoded without hickory's general decoder: one question,
/// no records but an OPT record (its options decoded by hickory). `None` for anything else,
/// which `Message::from_vec` decodes.
pub fn decode_laid_out(buf: &[u8], header: &Header, l: &wire::Layout) -> Option<Message> {
    if l.an != 0 || l.ns != 0 || l.rrs.len() > usize::from(l.opt.is_some()) {
        return None;
    }
    // The question's name has no pointer (scan checked): it decodes on its own.
    let name = Name::read(&mut BinDecoder::new(&buf[wire::HEADER..l.qname_end])).ok()?;
    let mut msg = Message::new(
        header.metadata.id,
        header.metadata.message_type,
        header.metadata.op_code,
    );
    msg.metadata = header.metadata;
    let mut q = Query::query(name, RecordType::from(l.qtype));
    q.set_query_class(DNSClass::from(l.qclass));
    msg.queries.push(q);
    if let Some(i) = l.opt {
        let rr = l.rrs[i];
        if rr.rdata != rr.end {
            // Options (a cookie, from dig): hickory decodes the OPT record alone.
            let opt = Record::read(&mut BinDecoder::new(&buf[rr.start..rr.end])).ok()?;
            let e = Edns::from(&opt);
            // As hickory's decoder: the OPT record's high bits complete the header's rcode.
            msg.metadata.response_code =
                ResponseCode::from(e.rcode_high(), msg.metadata.response_code.low());
            msg.edns = Some(e);
            return Some(msg);
        }
        let ttl = rr.ttl(buf);
        let mut e = Edns::new();
        e.set_max_payload(wire::u16_at(buf, rr.ttl_at - 2));
        e.set_version((ttl >> 16) as u8);
        *e.flags_mut() = EdnsFlags::from(ttl as u16);
        e.set_rcode_high((ttl >> 24) as u8);
        msg.metadata.response_code =
            ResponseCode::from(e.rcode_high(), msg.metadata.response_code.low());
        msg.edns = Some(e);
    }
    Some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every query `dig` and `kdig` sent with many options (the fuzz seeds): the fast decoder
    /// gives exactly what hickory's decoder gives, or leaves the query to it.
    #[test]
    fn decode_query_agrees_with_hickory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/query");
        let (mut fast, mut total) = (0, 0);
        for entry in std::fs::read_dir(dir).unwrap() {
            let buf = std::fs::read(entry.unwrap().path()).unwrap();
            let Ok(header) = Header::read(&mut BinDecoder::new(&buf)) else {
                continue;
            };
            total += 1;
            if let Some(m) = decode_query(&buf, &header) {
                fast += 1;
                let h = Message::from_vec(&buf).expect("hickory decodes what the scan accepts");
                assert_eq!(m, h, "{buf:?}");
            }
        }
        assert!(
            total > 500 && fast > total / 2,
            "{fast} of {total} decoded fast"
        );
    }
}
