#!/usr/bin/env python3
"""Regenerates the seed corpora under fuzz/seeds/ from real inputs:

- query: the queries dig and kdig send (many options: EDNS, DO, NSID, cookies, ECS, padding,
  odd classes and opcodes), captured by a UDP proxy in front of exdns running the fuzz config;
- forward_relay: each captured query with exdns's real reply to it, as
  [query length][query][reply with ID 0x4242];
- corefile: Corefile.example, every `corefile` example in docs/plugins/*.md, the fuzz config and
  the Corefiles written as string literals in tests/*.rs;
- manifests: fixtures/demo and test/ manifests;
- doh: DoH requests (METHOD, PATH?QUERY, CONTENT-TYPE, BODY lines) around the query seeds:
  GET and POST of each, and the request variants the DoH rules refuse;
- tsig: requests signed by dnspython (an independent TSIG implementation) with the fuzz key of
  src/fuzzing.rs at its time, with every algorithm, and the same spoiled (unknown key and
  algorithm, wrong MAC, clock skew, truncated MACs, a record after the TSIG, cut short).

Needs a debug build (cargo build), dig and kdig, and dnspython for the tsig seeds. Run from
anywhere: python3 fuzz/make_seeds.py (python3 fuzz/make_seeds.py tsig|doh: only those seeds)
"""

import hashlib
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")
EXDNS = os.path.join(ROOT, "target", "debug", "exdns")


def save(target, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fuzz_corefile():
    src = open(os.path.join(ROOT, "src", "fuzzing.rs")).read()
    text = src.split('pub const QUERY_COREFILE: &str = r#"', 1)[1].split('"#;', 1)[0]
    return text.replace("{MANIFESTS}", os.path.join(ROOT, "fixtures", "demo"))


def start_exdns(corefile):
    d = tempfile.mkdtemp()
    path = os.path.join(d, "Corefile")
    with open(path, "w") as f:
        f.write(corefile.replace(":53 ", ":0 ").replace(":53\n", ":0\n"))
    p = subprocess.Popen([EXDNS, "-conf", path], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    addr = None
    for line in p.stdout:
        m = re.search(r"listening on dns://\S+ at (\S+)", line)
        if m and addr is None:
            host, port = m.group(1).rsplit(":", 1)
            addr = ("127.0.0.1", int(port))
        if "exdns ready to serve" in line:
            break
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    return p, addr


def proxy(upstream, pairs, stop):
    """A UDP proxy: records (query, reply) and passes both on."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]

    def run():
        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        up.settimeout(2)
        while not stop.is_set():
            r, _, _ = select.select([s], [], [], 0.1)
            if not r:
                continue
            q, client = s.recvfrom(65535)
            up.sendto(q, upstream)
            try:
                reply, _ = up.recvfrom(65535)
            except socket.timeout:
                reply = None
            pairs.append((q, reply))
            if reply is not None:
                s.sendto(reply, client)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return port, t


QUESTIONS = [
    ("www.example.com", "A"), ("www.example.com", "AAAA"), ("example.com", "SOA"),
    ("example.com", "NS"), ("example.com", "ANY"), ("example.com", "MX"),
    ("example.com", "CAA"), ("shop-lb.example.com", "A"), ("x.apps.example.com", "A"),
    ("smtp.example.com", "AAAA"), ("info.example.com", "TXT"), ("nope.example.com", "A"),
    ("exdns.kube-system.example.com", "A"), ("www.alias.example.com", "A"),
    ("www.example.net", "A"), ("www.example.net", "AAAA"), ("v6.example.net", "ANY"),
    ("host.example.net", "MX"), ("3.2.1.10.in-addr.arpa", "PTR"),
    ("1.2.0.192.in-addr.arpa", "PTR"), ("google.com", "A"), (".", "NS"),
    ("example.net", "AXFR"), ("example.net", "IXFR"), ("WwW.ExAmPlE.CoM", "A"),
    ("_http._tcp.example.com", "SRV"), ("a.b.c.d.e.f.example.com", "HTTPS"),
]
DIG_OPTS = [
    [], ["+dnssec"], ["+nsid"], ["+cookie"], ["+subnet=192.0.2.0/24"], ["+bufsize=4096"],
    ["+noedns"], ["+norec", "+cd", "+adflag"], ["+ednsopt=100:abcd"], ["+edns=1"],
    ["+bufsize=512", "+ednsflags=0x80"], ["-c", "CH"], ["-c", "ANY"], ["+opcode=2"],
    ["+header-only"], ["+qid=0", "+zflag"], ["+expire", "+padding=128"],
]


def capture_queries():
    p, addr = start_exdns(fuzz_corefile())
    pairs = []
    stop = threading.Event()
    port, t = proxy(addr, pairs, stop)
    try:
        for name, qtype in QUESTIONS:
            for opts in DIG_OPTS:
                subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+tries=1", "+timeout=2",
                                "+notcp", "+ignore", *opts, name, qtype],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name, qtype in QUESTIONS[:8]:
            for opts in [[], ["+dnssec", "+nsid"], ["+padding"], ["+tc"]]:
                subprocess.run(["kdig", "@127.0.0.1", "-p", str(port), "+retry=0", "+time=2",
                                "+notcp", *opts, name, qtype],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        stop.set()
        t.join()
        p.terminate()
        p.wait()
    return pairs


def rust_literals(text):
    """Plain Rust string literals (escapes \\n, \\", \\\\; format!'s {{ }})."""
    out = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', text):
        s = m.group(1)
        if "{\\n" not in s:
            continue
        s = s.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        out.append(s.replace("{{", "{").replace("}}", "}"))
    return out


def corefiles():
    out = [open(os.path.join(ROOT, "Corefile.example")).read(), fuzz_corefile()]
    docs = os.path.join(ROOT, "docs", "plugins")
    for f in sorted(os.listdir(docs)):
        text = open(os.path.join(docs, f)).read()
        out += re.findall(r"~~~ ?corefile\n(.*?)~~~", text, re.S)
    tests = os.path.join(ROOT, "tests")
    for f in sorted(os.listdir(tests)):
        if f.endswith(".rs"):
            out += rust_literals(open(os.path.join(tests, f)).read())
    return out


def manifests():
    out = []
    for d in ["fixtures/demo", "test"]:
        for f in sorted(os.listdir(os.path.join(ROOT, d))):
            if f.endswith((".yaml", ".yml", ".json")):
                out.append(open(os.path.join(ROOT, d, f), "rb").read())
    return out


def fuzzing_const(name):
    src = open(os.path.join(ROOT, "src", "fuzzing.rs")).read()
    return re.search(r"pub const " + name + r": [^=]+= \"?([^\";]+)\"?;", src).group(1)


def tsig_seeds():
    import dns.message
    import dns.name
    import dns.tsig

    key_name = fuzzing_const("TSIG_KEY")
    secret = fuzzing_const("TSIG_SECRET")
    t = int(fuzzing_const("TSIG_TIME").replace("_", ""))
    out = []

    def signed(qname, qtype, algorithm, at, name=key_name, key_secret=secret, edns=False, mac_len=None):
        q = dns.message.make_query(qname, qtype, use_edns=0 if edns else False, id=0x2d65)
        key = dns.tsig.Key(name, key_secret, algorithm)
        q.use_tsig(key, fudge=300)
        real = __import__("time").time
        __import__("time").time = lambda: at
        try:
            wire = bytearray(q.to_wire())
        finally:
            __import__("time").time = real
        if mac_len is not None:
            # Cut the MAC to mac_len octets (MAC size, MAC and RDLENGTH fixed up).
            owner = dns.name.from_text(name).to_wire()
            start = len(wire) - (len(owner) + 10) - (len(dns.name.from_text(algorithm).to_wire()) + 16 + q.mac.__len__())
            rdata = start + len(owner) + 10
            size_at = rdata + len(dns.name.from_text(algorithm).to_wire()) + 8
            full = int.from_bytes(wire[size_at:size_at + 2], "big")
            del wire[size_at + 2 + mac_len:size_at + 2 + full]
            wire[size_at:size_at + 2] = mac_len.to_bytes(2, "big")
            wire[rdata - 2:rdata] = (len(wire) - rdata).to_bytes(2, "big")
        return bytes(wire)

    algs = ["hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"]
    for alg in algs:
        out.append(signed("www.tsig.example.org.", "A", alg, t))
        out.append(signed("tsig.example.org.", "AXFR", alg, t, edns=True))
        out.append(signed("www.tsig.example.org.", "A", alg, t + 3600))
    good = out[0]
    out.append(signed("www.tsig.example.org.", "A", "hmac-sha256", t, name="other.key."))
    out.append(signed("www.tsig.example.org.", "A", "hmac-md5.sig-alg.reg.int.", t))
    out.append(signed("www.tsig.example.org.", "A", "hmac-sha256", t, key_secret="AAAAAAAAAAAAAAAA"))
    for n in [10, 16, 20, 31]:
        out.append(signed("www.tsig.example.org.", "A", "hmac-sha256", t, mac_len=n))
    tampered = bytearray(good)
    tampered[13] ^= 0x20
    out.append(bytes(tampered))
    # A record after the TSIG record; the TSIG record cut short.
    after = bytearray(good)
    after[11] += 1
    out.append(bytes(after) + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00")
    out.append(good[:-5])
    out.append(dns.message.make_query("www.tsig.example.org.", "A").to_wire())
    return out


def doh_seeds():
    import base64

    queries = []
    d = os.path.join(SEEDS, "query")
    for name in sorted(os.listdir(d))[:40]:
        with open(os.path.join(d, name), "rb") as f:
            queries.append(f.read())
    ct = b"application/dns-message"
    out = []
    for q in queries:
        b64 = base64.urlsafe_b64encode(q).rstrip(b"=")
        out.append(b"GET\n/dns-query?dns=" + b64 + b"\n\n")
        out.append(b"POST\n/dns-query\n" + ct + b"\n" + q)
    q = queries[0]
    b64 = base64.urlsafe_b64encode(q).rstrip(b"=")
    out += [
        b"GET\n/dns-query?dns=" + b64 + b"&dns=" + b64 + b"\n\n",
        b"GET\n/dns-query?ct=x&dns=" + b64 + b"\n\n",
        b"GET\n/dns-query?dns=" + base64.urlsafe_b64encode(q) + b"\n\n",
        b"GET\n/dns-query?dns=%41%41\n\n",
        b"GET\n/resolve?dns=" + b64 + b"\n\n",
        b"GET\n/dns-query\n\n",
        b"PUT\n/dns-query\n" + ct + b"\n" + q,
        b"POST\n/dns-query\ntext/plain\n" + q,
        b"POST\n/dns-query\nApplication/DNS-Message; charset=x\n" + q,
        b"POST\n/dns-query\n" + ct + b"\n" + bytes(65536),
        b"POST\n/dns-query\n" + ct + b"\n" + q[:7],
        b"POST\n/dns-query\n" + ct + b"\n" + bytes([q[0], q[1], q[2] | 0x80]) + q[3:],
    ]
    return out


def main():
    if sys.argv[1:] == ["doh"]:
        for data in doh_seeds():
            save("doh", data)
        print("doh", len(os.listdir(os.path.join(SEEDS, "doh"))))
        return
    if sys.argv[1:] == ["tsig"]:
        for data in tsig_seeds():
            save("tsig", data)
        print("tsig", len(os.listdir(os.path.join(SEEDS, "tsig"))))
        return
    if not os.path.exists(EXDNS):
        sys.exit("build exdns first: cargo build")
    pairs = capture_queries()
    for q, reply in pairs:
        save("query", q)
        if reply is not None and len(q) < 256:
            save("forward_relay", bytes([len(q)]) + q + b"\x42\x42" + reply[2:])
    for text in corefiles():
        save("corefile", text.encode())
    for data in manifests():
        save("manifests", data)
    for data in tsig_seeds():
        save("tsig", data)
    for data in doh_seeds():
        save("doh", data)
    for t in ["query", "forward_relay", "corefile", "manifests", "tsig", "doh"]:
        print(t, len(os.listdir(os.path.join(SEEDS, t))))


if __name__ == "__main__":
    main()
