//! The bytes on the socket: dnstap protobuf messages (dnstap.proto, encoded by hand: two
//! messages of scalars and byte strings) in Frame Streams (fstrm) frames.

use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

/// The content type CoreDNS's (and every) dnstap writer announces.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// Frame Streams control frame types.
pub const CONTROL_ACCEPT: u32 = 0x01;
pub const CONTROL_START: u32 = 0x02;
pub const CONTROL_STOP: u32 = 0x03;
pub const CONTROL_READY: u32 = 0x04;
pub const CONTROL_FINISH: u32 = 0x05;
const FIELD_CONTENT_TYPE: u32 = 0x01;

/// dnstap.Message.Type.
pub const CLIENT_QUERY: u64 = 5;
pub const CLIENT_RESPONSE: u64 = 6;

/// One tapped message, as the query path hands it over: small, no allocation unless `full`.
#[derive(Debug)]
pub struct Record {
    pub response: bool,
    /// TCP (or DoT, which CoreDNS reports as TCP too) rather than UDP.
    pub tcp: bool,
    /// The client (after `proxyproto`).
    pub client: SocketAddr,
    pub query_time: SystemTime,
    /// Set on responses.
    pub response_time: Option<SystemTime>,
    /// The DNS message in wire form (`full`).
    pub wire: Option<Box<[u8]>>,
}

/// A control frame: the escape, its length, its type and the content type field when given.
pub fn control(out: &mut Vec<u8>, kind: u32, content_type: bool) {
    let body = 4 + if content_type {
        8 + CONTENT_TYPE.len()
    } else {
        0
    };
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(body as u32).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    if content_type {
        out.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        out.extend_from_slice(&(CONTENT_TYPE.len() as u32).to_be_bytes());
        out.extend_from_slice(CONTENT_TYPE);
    }
}

/// The fields of the writer that every payload carries.
pub struct Meta<'a> {
    pub identity: &'a [u8],
    pub version: &'a [u8],
    pub extra: Option<&'a [u8]>,
}

/// Appends `r` as one data frame (length, then the dnstap.Dnstap message). `scratch` holds the
/// inner message between calls (no allocation once it has grown).
pub fn frame(out: &mut Vec<u8>, scratch: &mut Vec<u8>, meta: &Meta<'_>, r: &Record) {
    scratch.clear();
    message(scratch, r);
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    bytes(out, 1, meta.identity);
    bytes(out, 2, meta.version);
    if let Some(e) = meta.extra {
        bytes(out, 3, e);
    }
    bytes(out, 14, scratch);
    uint(out, 15, 1); // Dnstap.Type MESSAGE
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// dnstap.Message.
fn message(out: &mut Vec<u8>, r: &Record) {
    uint(
        out,
        1,
        if r.response {
            CLIENT_RESPONSE
        } else {
            CLIENT_QUERY
        },
    );
    // SocketFamily INET = 1, INET6 = 2; SocketProtocol UDP = 1, TCP = 2.
    let (family, ip4, ip6);
    let addr: &[u8] = match r.client.ip().to_canonical() {
        IpAddr::V4(a) => {
            family = 1;
            ip4 = a.octets();
            &ip4
        }
        IpAddr::V6(a) => {
            family = 2;
            ip6 = a.octets();
            &ip6
        }
    };
    uint(out, 2, family);
    uint(out, 3, if r.tcp { 2 } else { 1 });
    bytes(out, 4, addr);
    uint(out, 6, u64::from(r.client.port()));
    let (sec, nsec) = split(r.query_time);
    uint(out, 8, sec);
    fixed32(out, 9, nsec);
    if let Some(rt) = r.response_time {
        let (sec, nsec) = split(rt);
        uint(out, 12, sec);
        fixed32(out, 13, nsec);
    }
    if let Some(w) = &r.wire {
        bytes(out, if r.response { 14 } else { 10 }, w);
    }
}

fn split(t: SystemTime) -> (u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn uint(out: &mut Vec<u8>, field: u64, v: u64) {
    varint(out, field << 3);
    varint(out, v);
}

fn fixed32(out: &mut Vec<u8>, field: u64, v: u32) {
    varint(out, (field << 3) | 5);
    out.extend_from_slice(&v.to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn varints() {
        for (v, want) in [
            (0u64, vec![0u8]),
            (1, vec![1]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (300, vec![0xac, 0x02]),
            (
                u64::MAX,
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out, want, "{v}");
        }
    }

    #[test]
    fn control_frames() {
        let mut out = Vec::new();
        control(&mut out, CONTROL_READY, true);
        let mut want = vec![0, 0, 0, 0, 0, 0, 0, 34, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 22];
        want.extend_from_slice(CONTENT_TYPE);
        assert_eq!(out, want);
        out.clear();
        control(&mut out, CONTROL_STOP, false);
        assert_eq!(out, [0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 3]);
    }

    /// The exact protobuf bytes of a response record, field by field.
    #[test]
    fn response_frame() {
        let r = Record {
            response: true,
            tcp: false,
            client: "[::ffff:192.0.2.1]:4660".parse().unwrap(),
            query_time: UNIX_EPOCH + Duration::new(1, 2),
            response_time: Some(UNIX_EPOCH + Duration::new(3, 4)),
            wire: Some(Box::from(&b"\xab"[..])),
        };
        let meta = Meta {
            identity: b"id",
            version: b"v",
            extra: Some(b"x"),
        };
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        frame(&mut out, &mut scratch, &meta, &r);
        let msg: Vec<u8> = [
            &[0x08, 6][..],           // type CLIENT_RESPONSE
            &[0x10, 1],               // family INET
            &[0x18, 1],               // protocol UDP
            &[0x22, 4, 192, 0, 2, 1], // query_address
            &[0x30, 0xb4, 0x24],      // query_port 4660
            &[0x40, 1],               // query_time_sec
            &[0x4d, 2, 0, 0, 0],      // query_time_nsec (fixed32)
            &[0x60, 3],               // response_time_sec
            &[0x6d, 4, 0, 0, 0],      // response_time_nsec
            &[0x72, 1, 0xab],         // response_message
        ]
        .concat();
        let mut body = vec![
            0x0a,
            2,
            b'i',
            b'd',
            0x12,
            1,
            b'v',
            0x1a,
            1,
            b'x',
            0x72,
            msg.len() as u8,
        ];
        body.extend_from_slice(&msg);
        body.extend_from_slice(&[0x78, 1]);
        let mut want = (body.len() as u32).to_be_bytes().to_vec();
        want.extend_from_slice(&body);
        assert_eq!(out, want);
    }
}
