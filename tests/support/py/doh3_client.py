"""A DoH3 client for tests/doh.rs: dnspython's HTTP/3 (aioquic) connection, one request per case
on one QUIC connection, with the method, path, content type and body each case gives.

Usage: doh3_client.py PORT CA_PEM SERVER_NAME [second] < cases.json
cases: [{"method": "GET", "path": "/dns-query?dns=...", "ctype": "" | "...", "body": HEX}]
Prints {"max_streams_bidi": the server's QUIC stream credit (aioquic's view of its transport
parameters), "results": one object per case: {"status", "body" (hex), "content_type",
"cache_control"}}. With `second`, also "second": what a second QUIC connection opened while the
first is still open got: "ok" (handshake done) or the QUIC error code the server closed it with.
"""

import json
import sys

import dns.quic

from dns.quic._common import UnexpectedEOF


def header(headers, name):
    for k, v in headers or []:
        if k == name:
            return v.decode()
    return None


def main():
    port, ca, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    second = "" if sys.argv[4:] == ["second"] else None
    cases = json.load(sys.stdin)
    out = []
    credit = None
    with dns.quic.SyncQuicManager(verify_mode=ca, server_name=name, h3=True) as manager:
        conn = manager.connect("127.0.0.1", port)
        for c in cases:
            body = bytes.fromhex(c["body"])
            with conn.make_stream(10) as s:
                if credit is None:
                    # The handshake is done (make_stream waits for it) and no stream has closed
                    # yet: the credit is the server's initial_max_streams_bidi.
                    credit = conn._connection._remote_max_streams_bidi
                headers = [
                    (b":method", c["method"].encode()),
                    (b":scheme", b"https"),
                    (b":authority", f"{name}:{port}".encode()),
                    (b":path", c["path"].encode()),
                ]
                if c.get("ctype"):
                    headers.append((b"content-type", c["ctype"].encode()))
                # As dnspython's own send_h3, with the method and headers of the case.
                s._connection.send_headers(s._stream_id, headers, not body)
                if body:
                    s._connection.send_data(s._stream_id, body, True)
                wire = s.receive(10)
                h = s.headers()
                out.append(
                    {
                        "status": int(header(h, b":status") or 0),
                        "body": wire.hex(),
                        "content_type": header(h, b"content-type"),
                        "cache_control": header(h, b"cache-control"),
                    }
                )
        if second is not None:
            second = second_connection(port, ca, name)
    print(json.dumps({"max_streams_bidi": credit, "results": out, "second": second}))


def second_connection(port, ca, name):
    """Opens another connection (its own manager: dnspython shares one per address)."""
    with dns.quic.SyncQuicManager(verify_mode=ca, server_name=name, h3=True) as manager:
        conn = manager.connect("127.0.0.1", port)
        try:
            conn.make_stream(10).close()
            return "ok"
        except UnexpectedEOF:
            closed = conn._connection._close_event
            return closed.error_code if closed is not None else "eof"


main()
