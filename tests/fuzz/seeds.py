#!/usr/bin/python3
"""Write the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

The seeds are small, valid (or nearly valid) inputs that walk each target's
main paths, so the fuzzer starts deep instead of rediscovering the framing.
Run it after changing a harness's input format; the files are committed.

usage: tests/fuzz/seeds.py [OUT_DIR]   (default: tests/fuzz/corpus)
"""
import base64
import os
import re
import shutil
import struct
import sys

CONNECT, CONNECTED, DATA, CLOSE, ERROR, PING, PONG = range(1, 8)
TCP, UDP = 0, 1


def msg(typ, proto, cid, port=0, payload=b""):
    return struct.pack(">BBIH", typ, proto, cid, port) + payload


def frame(payload, op=2, fin=True, mask=None):
    """A WebSocket frame; mask=b'....' for a client frame."""
    b0 = (0x80 if fin else 0) | op
    n = len(payload)
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        hdr = bytes([b0, mbit | n])
    elif n < 65536:
        hdr = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask is None:
        return hdr + payload
    return hdr + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


# ---- fuzz_agent: settings byte, then ops (see fuzz_agent.c step()) ----

def a_runner(data):
    if len(data) < 255:
        return bytes([0x00, len(data)]) + data
    return bytes([0x00, 0xff]) + struct.pack(">H", len(data)) + data


def a_runner_repeat(data, times16):
    return bytes([0x02, len(data), times16]) + data


def a_local(sel, data, mult=0):
    return bytes([0x03 | (mult << 4), sel, len(data)]) + data


def a_local_eof(sel, hup=0):
    return bytes([0x04 | (hup << 4), sel])


def a_local_err(sel, which=0, out=False):
    return bytes([0x05 | (which << 4) | (0x80 if out else 0), sel])


def a_budget(sel, b):
    return bytes([0x06, sel, b])


def a_connect_result(sel, ok=True):
    return bytes([0x07 | ((0 if ok else 8) << 4), sel])


A_ALL_CONNECT = bytes([0x08])


def a_time(shift):
    return bytes([0x09, shift])


def a_runner_budget(kib):
    return bytes([0x0a, kib])


def a_fail_next(connect=False, which=0):
    return bytes([0x0b | (which << 4) | (0x80 if connect else 0)])


def a_runner_drop(reset=False):
    return bytes([0x0c | (0x10 if reset else 0)])


A_STOP = bytes([0xdd])


def agent_seeds():
    r = lambda m: a_runner(frame(m))  # noqa: E731
    s = {}
    s["tcp_echo"] = bytes([0x03]) + r(msg(CONNECT, TCP, 1, 80)) + r(msg(DATA, TCP, 1, 0, b"hello")) \
        + a_local(0, b"world") + a_local_eof(0) + r(msg(CLOSE, TCP, 1))
    s["connect_pending"] = bytes([0x01]) + r(msg(CONNECT, TCP, 7, 8080)) + r(msg(DATA, TCP, 7, 0, b"early")) \
        + r(msg(CLOSE, TCP, 7)) + a_connect_result(0) + a_time(10)
    s["connect_refused"] = bytes([0x01]) + r(msg(CONNECT, TCP, 2, 22)) + a_connect_result(0, ok=False) \
        + r(msg(DATA, TCP, 2, 0, b"x"))
    s["udp"] = bytes([0x03]) + r(msg(CONNECT, UDP, 3, 53)) + r(msg(DATA, UDP, 3, 0, b"q1")) \
        + r(msg(DATA, UDP, 3)) + a_local(0, b"answer") + a_time(20)
    s["ping_dup"] = bytes([0x03]) + r(msg(PING, TCP, 9)) + r(msg(CONNECT, TCP, 4, 80)) \
        + r(msg(CONNECT, TCP, 4, 80)) + r(msg(DATA, TCP, 99, 0, b"?")) + r(b"\x01\x00") \
        + r(msg(0x42, TCP, 1)) + r(msg(DATA, 7, 1))
    s["ws_control"] = bytes([0x03]) + a_runner(frame(b"hi", op=0x9)) + a_runner(frame(b"text", op=1)) \
        + a_runner(frame(msg(DATA, TCP, 1)[:4], fin=False) + frame(b"\x00\x00\x00\x00", op=0x9)
                   + frame(msg(DATA, TCP, 1)[4:] + b"tail", op=0)) \
        + a_runner(frame(struct.pack(">H", 1000) + b"bye", op=0x8))
    big = msg(DATA, TCP, 5, 0, b"")
    s["backpressure"] = bytes([0x03]) + r(msg(CONNECT, TCP, 5, 80)) + a_budget(0, 0) \
        + a_runner(bytes([0x82, 127]) + struct.pack(">Q", 8 + 600000) + big) \
        + a_runner_repeat(b"0123456789abcdef" * 8, 255) + a_time(14) + a_budget(0, 255)
    s["upstream_bulk"] = bytes([0x03]) + r(msg(CONNECT, TCP, 6, 80)) + a_runner_budget(1) \
        + a_local(0, b"x" * 200, mult=15) + a_runner_budget(255) + a_local_err(0, 1)
    s["limits"] = bytes([0x0b]) + r(msg(CONNECT, TCP, 1, 80)) + r(msg(CONNECT, TCP, 2, 1500)) \
        + r(msg(CONNECT, TCP, 3, 3)) + r(msg(CONNECT, TCP, 4, 4)) + r(msg(CONNECT, UDP, 5, 53)) \
        + r(msg(CONNECT, UDP, 6, 5000)) + r(msg(CONNECT, TCP, 7, 443)) + a_fail_next() \
        + r(msg(CLOSE, TCP, 1)) + r(msg(CONNECT, TCP, 8, 80)) + a_time(12)
    s["proxy_token_trace"] = bytes([0x3f]) + r(msg(CONNECT, TCP, 1, 80)) + a_local(0, b"data") \
        + a_runner_drop() + r(msg(CONNECT, TCP, 1, 80))
    s["raw_101"] = bytes([0x02]) + a_runner(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                            b"Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
    s["stop"] = bytes([0x03]) + r(msg(CONNECT, TCP, 1, 80)) + A_STOP + a_time(5)
    s["reset_and_close"] = bytes([0x03]) + r(msg(CONNECT, TCP, 1, 80)) + r(msg(DATA, TCP, 1, 0, b"a" * 100)) \
        + a_local_err(0, 0, out=True) + r(msg(DATA, TCP, 1, 0, b"b")) + a_runner_drop(reset=True)
    return s


def agent_status_seeds(s):
    r = lambda m: a_runner(frame(m))  # noqa: E731
    for path in (b"/status", b"/metrics", b"/healthz", b"/ready", b"/logs", b"/nope"):
        s["status_" + path[1:].decode()] = bytes([0x43]) + r(msg(CONNECT, TCP, 1, 9090)) \
            + r(msg(DATA, TCP, 1, 0, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")) + a_time(3) \
            + r(msg(CLOSE, TCP, 1))
    s["status_bad"] = bytes([0x43]) + r(msg(CONNECT, TCP, 2, 9090)) + r(msg(DATA, TCP, 2, 0, b"POST / HTTP/1.0\r\n\r\n")) \
        + r(msg(CONNECT, TCP, 3, 9090)) + r(msg(DATA, TCP, 3, 0, b"GET /status HTTP/1.1\r\n")) + a_time(14)


# ---- fuzz_server: settings byte, then ops (see fuzz_server.c step()) ----

M0 = b"\x00\x00\x00\x00"


def c_frame(payload, op=2):
    return frame(payload, op=op, mask=M0)


def s_agent(sel, data):
    if len(data) < 255:
        return bytes([0x00, sel, len(data)]) + data
    return bytes([0x00, sel, 0xff]) + struct.pack(">H", len(data)) + data


def s_new_agent(a2=False, wrong=False):
    # then a turn with nothing new (0x0f), so the upgrade completes first
    return bytes([0x03 | (0x10 if a2 else 0) | (0x20 if wrong else 0), 0x0f])


def s_new_public(sel=0):
    return bytes([0x04, sel])


def s_public(sel, data):
    return bytes([0x05, sel, len(data)]) + data


def s_eof(role, sel, hup=False):
    return bytes([0x06 | (role << 4) | (0x80 if hup else 0), sel])


def s_err(role, sel):
    return bytes([0x07 | (role << 4), sel])


def s_budget(role, sel, b):
    return bytes([0x08 | (role << 4), sel, b])


def s_udp(expose_sel, src, data):
    return bytes([0x09, (expose_sel << 3) | src, len(data)]) + data


def s_time(shift):
    return bytes([0x0a, shift])


def s_reload(text):
    return bytes([0x0b, len(text)]) + text


def s_admin(sel, data):
    return bytes([0x0c, 0x0d, sel, len(data)]) + data


UPGRADE = (b"GET /ws/tunnel/a1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def server_seeds():
    a = lambda m: s_agent(0, c_frame(m))  # noqa: E731
    s = {}
    s["tcp_relay"] = bytes([0x01]) + s_new_agent() + s_new_public(0) + a(msg(CONNECTED, TCP, 1)) \
        + s_public(0, b"GET / HTTP/1.0\r\n\r\n") + a(msg(DATA, TCP, 1, 0, b"HTTP/1.0 200 OK\r\n\r\nhi")) \
        + a(msg(CLOSE, TCP, 1)) + s_time(12)
    s["udp_flow"] = bytes([0x01]) + s_new_agent() + s_udp(0, 3, b"query") + a(msg(CONNECTED, UDP, 1)) \
        + a(msg(DATA, UDP, 1, 0, b"answer")) + s_udp(0, 3, b"again") + s_udp(0, 4, b"other") + s_time(13)
    s["refused"] = bytes([0x03]) + s_new_agent(wrong=True) + s_new_agent(a2=True) + s_new_public(1) \
        + s_agent(1, c_frame(msg(ERROR, TCP, 1, 0, b"connection refused")))
    s["raw_upgrade"] = bytes([0x00]) + s_new_agent() + s_agent(0, UPGRADE) + a(msg(PONG, TCP, 0)) \
        + s_agent(0, c_frame(b"ping", op=9)) + s_agent(0, c_frame(b"t", op=1)) \
        + s_agent(0, frame(msg(DATA, TCP, 1)[:3], fin=False, mask=M0) + frame(msg(DATA, TCP, 1)[3:], op=0, mask=M0)) \
        + s_agent(0, c_frame(struct.pack(">H", 1000), op=8))
    s["bad_requests"] = bytes([0x00]) + s_new_agent() + s_agent(0, b"GET /ws/tunnel/a1 HTTP/1.0\r\n\r\n") \
        + s_new_agent() + s_agent(1, b"GET /other HTTP/1.1\r\n\r\n") + s_new_agent() \
        + s_agent(2, UPGRADE.replace(b"13", b"8")) + s_new_agent() + s_agent(3, b"x" * 100)
    s["replace_and_limits"] = bytes([0x05]) + s_new_agent() + s_new_public(0) + s_new_public(0) + s_new_public(0) \
        + s_new_agent() + s_new_agent() + a(msg(CONNECTED, TCP, 1)) + s_time(15)
    s["backpressure"] = bytes([0x01]) + s_new_agent() + s_new_public(0) + a(msg(CONNECTED, TCP, 1)) \
        + s_budget(1, 0, 0) + s_agent(0, frame(msg(DATA, TCP, 1, 0, b"x" * 60000), mask=M0)) \
        + bytes([0x02, 0, 200, 255]) + frame(msg(DATA, TCP, 1, 0, b"y" * 180), mask=M0)[:200] \
        + s_time(14) + s_budget(1, 0, 255)
    s["admin"] = bytes([0x09]) + s_new_agent() + s_admin(0, b"GET /status HTTP/1.1\r\n\r\n") \
        + s_admin(1, b"GET /metrics HTTP/1.1\r\n\r\n") + s_admin(2, b"GET / HTTP/1.1\r\n\r\n") \
        + s_admin(3, b"GET /healthz HTTP/1.0\r\n\r\n") + s_admin(4, b"BAD\r\n\r\n")
    s["reload"] = bytes([0x21]) + s_new_agent() + s_reload(b"expose tcp:127.0.0.1:9005=a1:81\n") \
        + s_new_public(2) + s_reload(b"bad line\n") + s_reload(b"max-connections 1\nexpose udp:127.0.0.1:9004=a1:5353\n")
    s["eof_err"] = bytes([0x01]) + s_new_agent() + s_new_public(0) + s_eof(1, 0) + a(msg(CONNECTED, TCP, 1)) \
        + s_new_public(0) + s_err(1, 1) + s_eof(0, 0, hup=True)
    s["trace"] = bytes([0x13]) + s_new_agent() + s_new_public(0) + a(msg(CONNECTED, TCP, 1)) + s_time(20)
    return s


# ---- the parser targets ----

def http_seeds():
    return {
        "get": b"\x40GET /status?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "lf": b"\x10\nGET / HTTP/1.0\nX: \xc3\xa9\t<b>\n\n",
        "bad": b"\x08GET  / HTTP/1.1\r\n\r\n",
        "escape": b"\x20GET /\"'<&>\\ HTTP/1.1\r\n\r\n\x01\x7f\xff\xed\xa0\x80\xf4\x90",
    }


def hs_request_seeds():
    return {"upgrade": UPGRADE.replace(b"\r\n\r\n", b"\r\nAuthorization: Bearer t\r\nUser-Agent: x\r\n\r\n"),
            "short": b"GET / HTTP/1.1\r\n\r\n",
            "version": UPGRADE.replace(b"13", b"12")}


def proxy_seeds():
    return {"ok": b"\x00HTTP/1.1 200 Connection established\r\n\r\nextra",
            "refused": b"\x00HTTP/1.0 407 Proxy Authentication Required\r\nX: y\r\n\r\n",
            "url": b"\x01http://user:p%40ss@proxy.example:3128\0wss://runner.example/base",
            "bare": b"\x01[::1]:8080\0ws://127.0.0.1:8001",
            "bypass": b"\x02.example.com, localhost,10.0.0.1\0runner.example.com"}


def allow_seeds():
    return {"list": b"22,80,8000-8999,udp:53,tcp:1000-2000\0\x00\x16\x80\x35\x1f\x40",
            "bad": b"1-0,,udp:\0\x00\x01"}


def agent_options_seeds():
    return {"full": b"X-A: 1\nX-B: 2\r\n\0" b"22,udp:53\0--runner-url\0ws://h:1/b\0-c\0id\0--header\0X-C: 3"
                    b"\0--allow-ports=80\0--max-udp\0300\0--reconnect-delay\00.25\0--log-level\0debug",
            "bad_header": b"Host: x\0\0-r\0ws://h\0-c\0i\0--header\0Sec-WebSocket-Key: a",
            "token": b"\0\0-r\0wss://h\0-c\0i\0--token\0abc\0--header\0Authorization: x"}


def server_config_seeds():
    return {"full": b"# settings\nlisten 127.0.0.1:8001\nexpose tcp:0.0.0.0:8080=router1:80\n"
                    b"expose udp:[::]:5353=r2:53\ntoken-file /nonexistent\nno-auth\nmax-agents 10\n"
                    b"ping-interval 0.5\n",
            "bad": b"listen\nconfig x\nunknown 1\n",
            "exposes": b"expose tcp:127.0.0.1:1=a:1\nexpose tcp:127.0.0.1:1=b:2\n\t expose  udp:1.2.3.4:9=c.d_e-f:65535  # c\n"}


def token_file_seeds():
    return {"tokens": b"# tokens\nrouter1 s3cret\n* fallback # any\n\t r2\ttok2\r\n",
            "bad": b"only-an-id\n",
            "long": b"a " + b"t" * 300 + b"\n"}


def dns_answer(qid_flags, name, rtype, rdata_list, rcode=0):
    hdr = struct.pack(">HHHHHH", 0, 0x8180 | rcode, 1, len(rdata_list), 0, 0)
    q = b"".join(bytes([len(x)]) + x for x in name.split(b".")) + b"\0" + struct.pack(">HH", rtype, 1)
    ans = b"".join(b"\xc0\x0c" + struct.pack(">HHIH", rtype, 1, 60, len(d)) + d for d in rdata_list)
    pkt = hdr + q + ans
    return bytes([qid_flags, len(pkt)]) + pkt


def resolve_seeds():
    conf = b"nameserver 127.0.0.1\nnameserver ::1\nsearch example.com lan\noptions ndots:2 timeout:1 attempts:2\n"
    return {
        "hosts": b"runner\0" b"127.0.0.1 localhost\n10.1.2.3 runner runner.lan # c\n::1 runner\n\0\0",
        "dns": b"runner.example.com\0\0" + conf + b"\0"
               + dns_answer(0x01, b"runner.example.com", 1, [b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"])
               + dns_answer(0x12, b"runner.example.com", 28, [b"\x20\x01" + b"\0" * 13 + b"\x01"]),
        "search": b"runner\0\0" + conf + b"\0" + dns_answer(0x01, b"runner.example.com", 1, [], rcode=3)
                  + dns_answer(0x02, b"runner.example.com", 28, [], rcode=3)
                  + dns_answer(0x01, b"runner.lan", 1, [b"\xc0\xa8\x01\x01"]),
        "stranger": b"a.b.c\0\0nameserver 10.0.0.1\n\0" + dns_answer(0x0d, b"a.b.c", 1, [b"\x01\x02\x03\x04"])
                    + dns_answer(0x09, b"a.b.c", 1, [b"\x01\x02\x03\x04"]),
    }


def parsers_seeds():
    return {"tunnel": b"\x00" + msg(DATA, TCP, 7, 0, b"abc"),
            "response": b"\x01HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            "url": b"\x02wss://user:pw@[::1]:8443/base/",
            "num": b"\x030.250"}


# A certificate for runner.test that fuzz_tls_client's test CA signed
# (made once with openssl; neither private key was kept).
RUNNER_TEST_CERT = base64.b64decode("""
MIIBuzCCAWCgAwIBAgIUTGYpfAOjNgUE+MnTftVC2vr9vekwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMZnV6eiB0ZXN0IENBMCAXDTI2MTEyNjE0MDk0MloYDzIxMjYx
MTAyMTQwOTQyWjAWMRQwEgYDVQQDDAtydW5uZXIudGVzdDBZMBMGByqGSM49AgEG
CCqGSM49AwEHA0IABIZXRK+37cfNKvO7BI3bDlIywP8Vr0tlUkgVlz9JpBi+g1KH
sqOjF3QVPKbNVMwgXM/cP2btxbWix7/6eJ6vsSKjgYgwgYUwFgYDVR0RBA8wDYIL
cnVubmVyLnRlc3QwCQYDVR0TBAIwADALBgNVHQ8EBAMCB4AwEwYDVR0lBAwwCgYI
KwYBBQUHAwEwHQYDVR0OBBYEFGLuPYpau6kU1qk7Kd8IfzrPr+HkMB8GA1UdIwQY
MBaAFHP90mpTAy5IOmFaGwFrUWoJ4JHDMAoGCCqGSM49BAMCA0kAMEYCIQCbycGd
n6aMPbPj8Edg1PfauF/o+4E+J9T6TU8/bgtR1wIhAP2t4W7SXviVZWcmnL6VvMAI
VHJ3kagpxYkB26HcTe2J
""")


def tls_client_seeds():
    """The runner's first flight, built by hand: ServerHello (ECDHE-ECDSA
    AES-128-GCM, secure renegotiation), a chain the agent accepts (a
    runner.test certificate from the test CA), an ECDHE ServerKeyExchange
    whose signature cannot verify, ServerHelloDone: whole, in small pieces,
    record by record; the test CA's own certificate as the chain (a name
    mismatch); and an alert."""
    here = os.path.dirname(os.path.abspath(__file__))
    src = open(os.path.join(here, "fuzz_tls_client.c")).read()
    ca = base64.b64decode("".join(re.findall(r'"([A-Za-z0-9+/=]{4,})\\n"', src)))

    def hs(t, body):
        return bytes([t]) + len(body).to_bytes(3, "big") + body

    def record(ct, body):
        return bytes([ct]) + b"\x03\x03" + len(body).to_bytes(2, "big") + body

    exts = b"\xff\x01\x00\x01\x00"
    hello = hs(2, b"\x03\x03" + bytes(range(32)) + b"\x00" + b"\xc0\x2b\x00"
               + len(exts).to_bytes(2, "big") + exts)
    def chain(der):
        return hs(11, (len(der) + 3).to_bytes(3, "big") + len(der).to_bytes(3, "big") + der)

    cert = chain(RUNNER_TEST_CERT)
    point = b"\x04" + bytes(range(1, 65))
    sig = b"\x30\x44\x02\x20" + b"\x11" * 32 + b"\x02\x20" + b"\x22" * 32
    ske = hs(12, b"\x03\x00\x17" + bytes([len(point)]) + point + b"\x04\x03"
             + len(sig).to_bytes(2, "big") + sig)
    flight = record(22, hello + cert + ske + hs(14, b""))
    pieces = bytearray()
    for i in range(0, len(flight), 7):
        chunk = flight[i:i + 7]
        pieces += bytes([len(chunk) - 1]) + chunk
    return {"flight": b"\x01" + flight,
            "flight_pieces": b"\x00" + bytes(pieces),
            "records_apart": b"\x01" + record(22, hello) + record(22, cert) + record(22, ske + hs(14, b"")),
            "ca_as_runner": b"\x01" + record(22, hello + chain(ca) + ske + hs(14, b"")),
            "alert": b"\x01" + record(21, b"\x02\x28")}


def tls_session_seeds():
    """Scripts on an established session (fuzz_tls_session.c): op = what
    | end << 4 | size class << 5; end 0 the agent, 1 the server."""
    def op(what, end=0, cls=0):
        return bytes([what | end << 4 | cls << 5])

    def write(end, data, cls=0):
        return op(0, end, cls) + bytes([len(data)]) + data

    def deliver_all(end):
        return op(1, end, 7) + b"\0"

    def poll(end):
        return op(11, end)

    echo = (write(0, b"GET /ws HTTP/1.1") + deliver_all(0) + poll(1)
            + write(1, b"HTTP/1.1 101 ok") + deliver_all(1) + poll(0))
    bulk = (op(7, 1, 0) + b"\x40" + write(0, bytes(range(200)), 6) + poll(0)
            + b"".join(op(1, 0, 3) + b"\x10" + poll(1) for _ in range(8)) + op(7, 1, 7) + b"\0")
    tamper = write(1, b"frame bytes" * 10) + op(2, 1) + b"\x00\x07\x01" + deliver_all(1) + poll(0)
    drop = write(0, b"abc" * 30) + op(3, 0) + b"\x04" + deliver_all(0) + poll(1)
    slip = op(4, 1) + b"\x0a\x17\x03\x03\x00\x05hello" + write(1, b"xyz") + deliver_all(1) + poll(0)
    close = write(0, b"last words") + op(5, 0) + deliver_all(0) + poll(1) + deliver_all(1) + poll(0)
    reneg = op(9, 1) + deliver_all(1) + poll(0) + deliver_all(0) + poll(1)
    client_reneg = op(9, 0) + deliver_all(0) + poll(1) + deliver_all(1) + poll(0)
    reset = write(1, b"data" * 40) + op(6, 0, 1) + deliver_all(1) + poll(0)
    trim = echo + op(8, 0) + op(8, 1) + echo
    # A slow application: 100 bytes a turn, its engine and staging buffer
    # left holding records when it gives its buffers back.
    slow = (op(10, 0) + b"\x63" + write(1, bytes(range(250)), 3) + deliver_all(1) + poll(0)
            + op(8, 0) + poll(0) + op(8, 0))
    seeds = {}
    for k, suite in enumerate(("aes128", "aes256", "chacha")):
        seeds["echo_" + suite] = bytes([k]) + echo
        seeds["bulk_" + suite] = bytes([k]) + bulk
    for name, script in (("tamper", tamper), ("drop", drop), ("slip", slip), ("close", close),
                         ("reneg", reneg), ("client_reneg", client_reneg), ("reset", reset),
                         ("trim", trim), ("slow", slow)):
        seeds[name] = b"\0" + script
    return seeds


def all_agent_seeds():
    s = agent_seeds()
    agent_status_seeds(s)
    return s


TARGETS = {
    "fuzz_agent": all_agent_seeds,
    "fuzz_server": server_seeds,
    "fuzz_http": http_seeds,
    "fuzz_hs_request": hs_request_seeds,
    "fuzz_proxy": proxy_seeds,
    "fuzz_allow": allow_seeds,
    "fuzz_agent_options": agent_options_seeds,
    "fuzz_server_config": server_config_seeds,
    "fuzz_token_file": token_file_seeds,
    "fuzz_resolve": resolve_seeds,
    "fuzz_parsers": parsers_seeds,
    "fuzz_tls_client": tls_client_seeds,
    "fuzz_tls_session": tls_session_seeds,
}


def main(argv):
    root = os.path.dirname(os.path.abspath(__file__))
    out = argv[1] if len(argv) > 1 else os.path.join(root, "corpus")
    only = argv[2:]
    for target, make in TARGETS.items():
        if only and target not in only:
            continue
        d = os.path.join(out, target)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, data in make().items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print("%s: %d seeds" % (target, len(make())))


if __name__ == "__main__":
    main(sys.argv)
