#!/usr/bin/env python3
"""A DNS-over-QUIC client for tests/doq.rs, on aioquic (RFC 9250).

  doq.py PORT CA HOSTNAME query NAME TYPE      dnspython's dns.query.quic: prints the reply
  doq.py PORT CA HOSTNAME raw HEX [ALPN]       sends HEX (a DNS message) length-prefixed on one
                                               stream with FIN; prints "reply HEX" (each message
                                               on the stream) or "closed CODE" (connection closed
                                               by the server with that error code) or
                                               "failed REASON"
  doq.py PORT CA HOSTNAME idle N SECONDS       opens N connections, prints "ready", holds them
                                               SECONDS without a query
  doq.py PORT CA HOSTNAME stall                opens a stream, sends 1 byte, waits: prints
                                               "closed CODE" when the server closes
"""
import asyncio
import ssl
import sys

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamDataReceived, StreamReset

PORT, CA, HOSTNAME, MODE = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ARGS = sys.argv[5:]


class Client(QuicConnectionProtocol):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.done = asyncio.get_event_loop().create_future()
        self.data = b""

    def quic_event_received(self, event):
        if isinstance(event, StreamDataReceived):
            self.data += event.data
            if event.end_stream and not self.done.done():
                self.done.set_result(("reply", self.data))
        elif isinstance(event, StreamReset) and not self.done.done():
            self.done.set_result(("reset", event.error_code))
        elif isinstance(event, ConnectionTerminated) and not self.done.done():
            self.done.set_result(("closed", event.error_code))


def config(alpn="doq"):
    c = QuicConfiguration(is_client=True, alpn_protocols=[alpn], server_name=HOSTNAME)
    c.load_verify_locations(CA)
    c.verify_mode = ssl.CERT_REQUIRED
    c.idle_timeout = 30
    return c


async def raw(msg, alpn):
    try:
        async with connect("127.0.0.1", PORT, configuration=config(alpn),
                           create_protocol=Client) as c:
            sid = c._quic.get_next_available_stream_id()
            c._quic.send_stream_data(sid, len(msg).to_bytes(2, "big") + msg, end_stream=True)
            c.transmit()
            kind, val = await asyncio.wait_for(c.done, 10)
    except Exception as e:  # handshake failures
        print("failed", type(e).__name__, e)
        return
    if kind == "reply":
        out, i = [], 0
        while i + 2 <= len(val):
            n = int.from_bytes(val[i:i + 2], "big")
            out.append(val[i + 2:i + 2 + n].hex())
            i += 2 + n
        print("reply", " ".join(out))
    else:
        print(kind, hex(val))


async def stall():
    async with connect("127.0.0.1", PORT, configuration=config(), create_protocol=Client) as c:
        sid = c._quic.get_next_available_stream_id()
        c._quic.send_stream_data(sid, b"\x00", end_stream=False)
        c.transmit()
        kind, val = await asyncio.wait_for(c.done, 30)
        print(kind, hex(val))


async def idle(n, seconds):
    conns = []
    for _ in range(n):
        cm = connect("127.0.0.1", PORT, configuration=config(), create_protocol=Client)
        try:
            conns.append((cm, await cm.__aenter__()))
        except Exception as e:
            print("connect failed", e, file=sys.stderr)
    print("ready", len(conns), flush=True)
    await asyncio.sleep(seconds)


def query(name, rdtype):
    import dns.message
    import dns.query
    q = dns.message.make_query(name, rdtype)
    r = dns.query.quic(q, "127.0.0.1", port=PORT, verify=CA, server_hostname=HOSTNAME, timeout=10)
    print(r.to_text())


if MODE == "query":
    query(ARGS[0], ARGS[1])
elif MODE == "raw":
    asyncio.run(raw(bytes.fromhex(ARGS[0]), ARGS[1] if len(ARGS) > 1 else "doq"))
elif MODE == "idle":
    asyncio.run(idle(int(ARGS[0]), float(ARGS[1])))
elif MODE == "stall":
    asyncio.run(stall())
