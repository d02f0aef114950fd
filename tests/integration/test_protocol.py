"""The tunnel protocol over ws:// against the fake runner (PROTOCOL.md)."""
import os
import re
import signal
import socket
import struct
import time

import pytest

from agent import T, clean_env
from conftest import CID
import fake_runner as fr
from fake_runner import (CLOSE, CONNECT, CONNECTED, DATA, ERROR, PING, PONG, TCP,
                         UDP, describe_full, pack)


def pattern(n, seed=0):
    """n deterministic, non-repeating-looking bytes."""
    block = bytes((i * 131 + seed * 7 + (i >> 8) * 17) & 0xFF for i in range(65521))
    reps = n // len(block) + 1
    return (block * reps)[:n]


# ---------------------------------------------------------------------------
# Where the agent connects


@pytest.mark.core
@pytest.mark.parametrize("suffix,path", [
    ("", "/ws/tunnel/" + CID),
    ("/", "/ws/tunnel/" + CID),
    ("/prefix/", "/prefix/ws/tunnel/" + CID),
    ("/a/b", "/a/b/ws/tunnel/" + CID),
])
def test_dials_tunnel_path(runner, start_agent, suffix, path):
    """The agent dials <base>/ws/tunnel/<id>: one trailing slash dropped,
    base path kept; the request is a proper upgrade with a Host header."""
    start_agent(runner.url + suffix)
    s = runner.accept(T(5))
    assert s.path == path
    assert s.headers.get("Host") in ("127.0.0.1:%d" % runner.port, "127.0.0.1")
    assert s.headers.get("Sec-WebSocket-Version") == "13"
    s.pingpong(timeout=T(5))


def test_environment_variables(runner, start_agent):
    """RUNNER_URL and CONTAINER_ID (no flags) are enough."""
    env = clean_env(RUNNER_URL=runner.url + "/", CONTAINER_ID="envid7",
                    RECONNECT_DELAY="0.1", LOG_LEVEL="debug")
    start_agent(None, cid=None, fast=False, env=env)
    s = runner.accept(T(5))
    assert s.path == "/ws/tunnel/envid7"


def test_container_id_characters(runner, start_agent):
    """Docker names and ids ([A-Za-z0-9_.-]) go into the path unchanged."""
    start_agent(runner.url, cid="vps-42_a.B")
    s = runner.accept(T(5))
    assert s.path == "/ws/tunnel/vps-42_a.B"


def test_default_port_80(start_agent):
    """ws://host without a port dials port 80."""
    try:
        r80 = fr.FakeRunner(port=80)
    except OSError as e:
        pytest.skip("cannot listen on 127.0.0.1:80 here: %s" % e)
    with r80:
        start_agent("ws://127.0.0.1")
        s = r80.accept(T(5))
        assert s.path == "/ws/tunnel/" + CID
        assert s.headers.get("Host") in ("127.0.0.1", "127.0.0.1:80")


def _have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def test_ipv6_literal(start_agent, services):
    """ws://[::1]:P works, and the Host header keeps the brackets."""
    if not _have_ipv6_loopback():
        pytest.skip("::1 is not available on this machine")
    with fr.FakeRunner(host="::1") as r6:
        assert r6.url.startswith("ws://[::1]:")
        start_agent(r6.url)
        s = r6.accept(T(5))
        assert s.path == "/ws/tunnel/" + CID
        assert s.headers.get("Host") in ("[::1]:%d" % r6.port, "[::1]")
        echo = services.echo()
        s.open_tcp(1, echo.port, T(5))
        s.send_msg(DATA, TCP, 1, 0, b"v6")
        assert s.recv_data(1, 2, T(5)) == b"v6"
        assert not r6.violations(), r6.violations()


def test_hostname(runner, start_agent):
    """A name (localhost) is resolved and dialed. (Falling back over several
    resolved addresses is not tested: /etc/hosts here maps localhost to
    127.0.0.1 only, and the suite does not edit system files.)"""
    start_agent("ws://localhost:%d" % runner.port)
    s = runner.accept(T(10))
    assert s.path == "/ws/tunnel/" + CID
    s.pingpong(timeout=T(5))


# ---------------------------------------------------------------------------
# TCP connections


@pytest.mark.core
def test_connect_connected_data_both_ways(tunnel, services):
    """CONNECT -> CONNECTED (same id, proto TCP, port 0) -> DATA both ways;
    a large id is carried as 4 big-endian bytes."""
    s = tunnel.session
    echo = services.echo()
    for cid in (1, 0xDEADBEEF):
        s.open_tcp(cid, echo.port, T(5))
        s.send_msg(DATA, TCP, cid, 0, b"hello %d" % cid)
        assert s.recv_data(cid, len(b"hello %d" % cid), T(5)) == b"hello %d" % cid


@pytest.mark.core
def test_one_mib_in_64k_messages_both_ways(tunnel, services):
    """1 MiB sent as DATA messages of 64 KiB comes back byte-exact, in DATA
    payloads of at most 64 KiB each."""
    s = tunnel.session
    echo = services.echo()
    data = os.urandom(1 << 20)
    s.open_tcp(3, echo.port, T(5))
    s.send_data(3, data, chunk=65536, timeout=T(30))
    assert s.recv_data(3, len(data), T(30)) == data


def test_one_mib_in_one_message(runner, start_agent, services):
    """With --max-message 8+1MiB, one DATA message carrying 1 MiB works."""
    start_agent(runner.url, "--max-message", 8 + (1 << 20))
    s = runner.accept(T(5))
    echo = services.echo()
    data = os.urandom(1 << 20)
    s.open_tcp(4, echo.port, T(5))
    s.send_msg(DATA, TCP, 4, 0, data, timeout=T(30))
    assert s.recv_data(4, len(data), T(30)) == data


@pytest.mark.core
@pytest.mark.parametrize("limit", [None, 65544])
def test_max_message_limit(runner, start_agent, services, limit):
    """A message of exactly --max-message bytes is accepted; one byte more
    closes the WebSocket with 1009, then the agent reconnects and serves;
    the old local connection is closed."""
    extra = [] if limit is None else ["--max-message", limit]
    size = limit or 1048576
    start_agent(runner.url, *extra)
    s = runner.accept(T(5))
    echo = services.echo()
    s.open_tcp(5, echo.port, T(5))
    data = pattern(size - 8, 1)
    s.send_msg(DATA, TCP, 5, 0, data, timeout=T(30))
    assert s.recv_data(5, len(data), T(30)) == data
    s.send(pack(DATA, TCP, 5, 0, b"x" * (size - 7)), timeout=T(30))
    assert s.wait_closed(T(10)) == 1009
    echo.wait_finished(1, T(5))
    s2 = runner.accept(T(10))
    assert s.ended_at <= s2.accepted_at, "dialed again before the old session ended"
    s2.pingpong(timeout=T(5))
    s2.open_tcp(5, echo.port, T(5))


def test_ping_between_fragments(tunnel, services):
    """Control frames may come between the fragments of a message (RFC 6455
    5.4): pings are answered and the message arrives whole."""
    s = tunnel.session
    echo = services.echo()
    s.open_tcp(18, echo.port, T(5))
    data = pattern(30000, 7)
    msg = pack(DATA, TCP, 18, 0, data)
    assert s.send_fragmented_with_ping([msg[:4], msg[4:20000], msg[20000:]], timeout=T(5))
    assert s.recv_data(18, len(data), T(5)) == data


def test_max_message_counts_all_fragments(runner, start_agent, services):
    """The limit applies to the whole message, not to each frame: 100 KB in
    four 25 KB fragments with --max-message 65544 closes with 1009."""
    start_agent(runner.url, "--max-message", 65544)
    s = runner.accept(T(5))
    msg = pack(DATA, TCP, 6, 0, b"f" * 100000)
    s.send_fragmented([msg[i:i + 25002] for i in range(0, len(msg), 25002)])
    assert s.wait_closed(T(3)) == 1009
    runner.accept(T(10)).pingpong(timeout=T(5))


def test_huge_frame_length_is_refused_early(start_agent, services):
    """A frame header announcing 2**40 bytes ends the session with 1009 at
    once: the agent neither allocates nor waits for the payload."""
    def up(sock, idx, response):
        if idx == 0:
            sock.sendall(response + struct.pack(">BBQ", 0x82, 127, 1 << 40) + b"x" * 100)
        else:
            sock.sendall(response)
    raw = services.raw("upgrade_silent")
    raw.on_upgrade = up
    a = start_agent(raw.url)
    op, payload = raw.wait_frame(0, lambda op, p: op == 0x8, T(3))
    assert int.from_bytes(payload[:2], "big") == 1009, payload
    raw.wait_connections(2, T(5))
    a.assert_alive()


@pytest.mark.core
def test_data_before_connected_is_kept_in_order(tunnel, services):
    """DATA sent right behind CONNECT (before CONNECTED) is delivered, in order."""
    s = tunnel.session
    echo = services.echo()
    parts = [b"%05d:" % i + pattern(997, i) for i in range(50)]
    s.send_many([pack(CONNECT, TCP, 9, echo.port)] +
                [pack(DATA, TCP, 9, 0, p) for p in parts], timeout=T(10))
    m = s.recv_msg(9, T(5))
    assert (m.type, m.proto, m.port) == (CONNECTED, TCP, 0), describe_full(m)
    want = b"".join(parts)
    assert s.recv_data(9, len(want), T(10)) == want


@pytest.mark.core
def test_data_while_local_connect_in_progress(tunnel, services):
    """DATA for a connection whose local connect is still in progress (the
    service's listen queue is full) is kept and delivered in order once it
    completes; a duplicate CONNECT meanwhile gets "in use"; PING is answered
    while the connect is pending."""
    s = tunnel.session
    echo = services.echo(held=True)
    parts = [b"%03d;" % i + pattern(4000, i) for i in range(20)]
    s.send_many([pack(CONNECT, TCP, 14, echo.port)] +
                [pack(DATA, TCP, 14, 0, p) for p in parts], timeout=T(5))
    s.expect_silence(14, 0.3)
    s.pingpong(timeout=T(2))
    s.send_msg(CONNECT, TCP, 14, echo.port)
    m = s.recv_msg(14, T(2))
    assert (m.type, m.proto) == (ERROR, TCP) and b"in use" in m.payload.lower(), describe_full(m)
    echo.release()
    m = s.recv_msg(14, T(5))
    assert (m.type, m.proto, m.port) == (CONNECTED, TCP, 0), describe_full(m)
    want = b"".join(parts)
    assert s.recv_data(14, len(want), T(10)) == want


def test_close_while_local_connect_in_progress(tunnel, services):
    """CONNECT, DATA, CLOSE while the local connect is pending: the bytes are
    still written once it completes, then the service sees EOF."""
    s = tunnel.session
    sink = services.sink(held=True)
    data = pattern(100000, 5)
    s.send_many([pack(CONNECT, TCP, 15, sink.port)] + fr.data_messages(15, data) +
                [pack(CLOSE, TCP, 15)], timeout=T(5))
    time.sleep(0.3)
    sink.release()
    assert sink.eof[0].wait(T(5)), "no connection or no EOF (got %d bytes)" % sink.count[0]
    assert bytes(sink.data[0]) == data


def test_local_connect_timeout(runner, start_agent, services):
    """A local connect that never completes gets ERROR after --connect-timeout;
    the tunnel keeps serving meanwhile."""
    start_agent(runner.url, "--connect-timeout", "1")
    s = runner.accept(T(5))
    echo = services.echo(held=True)
    t0 = time.monotonic()
    s.send_msg(CONNECT, TCP, 16, echo.port)
    s.pingpong(timeout=T(1))
    m = s.recv_msg(16, T(5))
    took = time.monotonic() - t0
    assert (m.type, m.proto, m.cid) == (ERROR, TCP, 16), describe_full(m)
    assert took >= 0.8, "ERROR after %.2fs, before the 1s connect timeout" % took
    s.pingpong(timeout=T(2))


@pytest.mark.core
def test_connect_data_close_in_one_burst(tunnel, services):
    """CONNECT, DATA and CLOSE arriving together: every byte reaches the local
    service before it sees EOF."""
    s = tunnel.session
    sink = services.sink()
    data = pattern(200000, 3)
    s.send_many([pack(CONNECT, TCP, 10, sink.port)] + fr.data_messages(10, data, 50000) +
                [pack(CLOSE, TCP, 10)], timeout=T(10))
    sink.wait_finished(1, T(10))
    assert bytes(sink.data[0]) == data


@pytest.mark.core
def test_many_concurrent_connections(tunnel, services):
    """200 concurrent TCP connections, each echoing its own data."""
    s = tunnel.session
    echo = services.echo()
    n = 200
    want = {cid: (b"<%d>" % cid) * (50 + cid * 3) for cid in range(1, n + 1)}
    s.send_many([pack(CONNECT, TCP, cid, echo.port) for cid in want], timeout=T(10))
    for cid in want:
        m = s.recv_msg(cid, T(10))
        assert (m.type, m.proto, m.port) == (CONNECTED, TCP, 0), describe_full(m)
    s.send_many([pack(DATA, TCP, cid, 0, d) for cid, d in want.items()], timeout=T(10))
    for cid, d in want.items():
        assert s.recv_data(cid, len(d), T(10)) == d, cid
    echo.wait_accepted(n, T(5))
    s.send_many([pack(CLOSE, TCP, cid) for cid in want], timeout=T(10))
    echo.wait_finished(n, T(10))
    s.pingpong(timeout=T(5))


@pytest.mark.core
def test_connect_refused_gives_error(tunnel):
    """A closed port answers ERROR (same id, TCP) with text saying refused."""
    s = tunnel.session
    s.send_msg(CONNECT, TCP, 11, fr.closed_port())
    m = s.recv_msg(11, T(5))
    assert (m.type, m.proto, m.cid) == (ERROR, TCP, 11), describe_full(m)
    text = m.payload.decode("utf-8")
    assert "refused" in text.lower(), text
    s.expect_silence(11, 0.3)
    s.pingpong(timeout=T(5))


@pytest.mark.core
def test_duplicate_connect_is_refused_and_live_one_kept(tunnel, services):
    """CONNECT for a live id answers ERROR "in use"; the live connection works."""
    s = tunnel.session
    echo = services.echo()
    s.open_tcp(12, echo.port, T(5))
    s.send_msg(DATA, TCP, 12, 0, b"before")
    assert s.recv_data(12, 6, T(5)) == b"before"
    s.send_msg(CONNECT, TCP, 12, echo.port)
    m = s.recv_msg(12, T(5))
    assert (m.type, m.proto, m.cid) == (ERROR, TCP, 12), describe_full(m)
    assert "in use" in m.payload.decode("utf-8").lower(), m.payload
    s.send_msg(DATA, TCP, 12, 0, b"after")
    assert s.recv_data(12, 5, T(5)) == b"after"
    s.send_msg(CLOSE, TCP, 12)
    echo.wait_finished(echo.accepted, T(5))


def test_id_reusable_after_close(tunnel, services):
    """After the runner closes an id, a CONNECT naming it again works (the
    user side numbers ids per forward session)."""
    s = tunnel.session
    echo = services.echo()
    s.open_tcp(13, echo.port, T(5))
    s.send_msg(CLOSE, TCP, 13)
    echo.wait_finished(1, T(5))
    time.sleep(0.1)
    s.send_msg(CONNECT, TCP, 13, echo.port)
    m = s.recv_msg(13, T(5))
    if m.type == CLOSE:  # an agent may confirm the runner's CLOSE first
        m = s.recv_msg(13, T(5))
    assert (m.type, m.proto) == (CONNECTED, TCP), describe_full(m)
    s.send_msg(DATA, TCP, 13, 0, b"again")
    assert s.recv_data(13, 5, T(5)) == b"again"


def test_id_reusable_while_old_connection_drains(tunnel, services):
    """The runner closes an id whose bytes are still being written to a slow
    service, then a new forward session reuses the id at once: the new
    CONNECT succeeds, and the old service still gets every byte, then EOF."""
    s = tunnel.session
    sink = services.sink(read_size=16384, delay=0.002, rcvbuf=8192)
    echo = services.echo()
    s.open_tcp(47, sink.port, T(5))
    data = pattern(3 << 20, 9)
    s.send_many(fr.data_messages(47, data) + [pack(CLOSE, TCP, 47),
                                              pack(CONNECT, TCP, 47, echo.port)], timeout=T(20))
    m = s.recv_msg(47, T(10))
    assert (m.type, m.proto) == (CONNECTED, TCP), \
        "CONNECT of a closed (draining) id: %s" % describe_full(m)
    assert not sink.eof[0].is_set(), "test too slow: the old connection was already gone"
    s.send_msg(DATA, TCP, 47, 0, b"new session")
    assert s.recv_data(47, 11, T(5)) == b"new session"
    assert sink.eof[0].wait(T(20)), "old connection: %d bytes, no EOF" % sink.count[0]
    assert bytes(sink.data[0]) == data


# ---------------------------------------------------------------------------
# Keepalive and malformed input


@pytest.mark.core
@pytest.mark.parametrize("proto", [TCP, UDP])
def test_tunnel_ping_gets_pong(tunnel, proto):
    """PING answers PONG with the same client id and proto."""
    s = tunnel.session
    for cid in (0, 77, 0xFFFFFFFF):
        s.send_msg(PING, proto, cid)
        m = s.recv_msg(cid, T(5))
        assert (m.type, m.proto, m.cid, m.port) == (PONG, proto, cid, 0), describe_full(m)


@pytest.mark.core
def test_malformed_messages_are_ignored(tunnel, services):
    """Short messages, unknown types, unknown protos, wrong-direction types
    and text messages are dropped; the tunnel keeps serving."""
    s = tunnel.session
    echo = services.echo()
    junk = [b"", b"\x01", b"\x06\x00\x00\x00", b"\x01\x00\x00\x00\x00\x15\x00",
            pack(0, TCP, 21, echo.port), pack(8, TCP, 22, echo.port, b"x"),
            pack(0xFF, TCP, 23, echo.port, b"y" * 100),
            pack(CONNECT, 2, 24, echo.port), pack(CONNECT, 0xFF, 25, echo.port),
            pack(DATA, 7, 26, 0, b"zz"),
            pack(CONNECTED, TCP, 27), pack(ERROR, TCP, 28, 0, b"oops"), pack(PONG, TCP, 29)]
    s.send_many(junk, timeout=T(5))
    s.send("hello, agent", timeout=T(5))
    s.send(pack(CONNECT, TCP, 30, echo.port).decode("latin-1"), timeout=T(5))
    s.pingpong(timeout=T(5))
    for cid in (21, 22, 23, 24, 25, 27, 28, 29, 30):
        assert not s.pending(cid), (cid, [describe_full(m) for m in s.pending(cid)])
    # DATA with an unknown proto may at most be answered like an unknown id.
    for m in s.pending(26):
        assert m.type == CLOSE, describe_full(m)
    s.open_tcp(31, echo.port, T(5))
    s.send_msg(DATA, TCP, 31, 0, b"still here")
    assert s.recv_data(31, 10, T(5)) == b"still here"
    time.sleep(0.2)
    assert echo.accepted == 1, "a malformed CONNECT opened a local connection"
    tunnel.agent.assert_alive()
    assert not s.closed.is_set()


@pytest.mark.core
def test_fragmented_messages(tunnel, services):
    """A tunnel message split over several WebSocket frames (continuation
    frames, even inside the 8-byte header) is one message."""
    s = tunnel.session
    echo = services.echo()
    s.send_fragmented([b"\x01\x00\x00", b"\x00\x00\x11", b"", pack(CONNECT, TCP, 17, echo.port)[6:]])
    m = s.recv_msg(17, T(5))
    assert (m.type, m.proto) == (CONNECTED, TCP), describe_full(m)
    data = pattern(150000, 6)
    msg = pack(DATA, TCP, 17, 0, data)
    s.send_fragmented([msg[:5], msg[5:70000], msg[70000:]])
    assert s.recv_data(17, len(data), T(5)) == data


@pytest.mark.core
def test_unknown_ids(tunnel):
    """DATA for an unknown id: nothing or one CLOSE; CLOSE for an unknown id:
    no crash, no DATA/ERROR."""
    s = tunnel.session
    s.send_msg(DATA, TCP, 555, 0, b"nobody home")
    s.send_msg(CLOSE, TCP, 556)
    s.pingpong(timeout=T(5))
    time.sleep(0.2)
    got = s.pending(555)
    assert len(got) <= 1 and all(m.type == CLOSE and m.proto == TCP for m in got), \
        [describe_full(m) for m in got]
    got = s.pending(556)
    assert len(got) <= 1 and all(m.type == CLOSE for m in got), [describe_full(m) for m in got]
    tunnel.agent.assert_alive()


# ---------------------------------------------------------------------------
# Closing


@pytest.mark.core
def test_runner_close_flushes_data_first(tunnel, services):
    """CLOSE from the runner: all DATA sent before it reaches a slow local
    reader before the reader sees EOF."""
    s = tunnel.session
    sink = services.sink(read_size=8192, delay=0.002, rcvbuf=16384)
    s.open_tcp(40, sink.port, T(5))
    data = pattern(2 << 20, 4)
    s.send_many(fr.data_messages(40, data, 65536) + [pack(CLOSE, TCP, 40)], timeout=T(30))
    assert sink.eof[0].wait(T(30)), "sink never saw EOF (got %d bytes)" % sink.count[0]
    assert len(sink.data[0]) == len(data)
    assert bytes(sink.data[0]) == data
    s.pingpong(timeout=T(5))


@pytest.mark.core
def test_local_eof_sends_data_then_one_close(tunnel, services):
    """Local service sends bytes then closes: DATA (each <= 64 KiB) then exactly
    one CLOSE, and nothing for that id afterwards."""
    s = tunnel.session
    data = os.urandom(300000)
    svc = services.send_close(data)
    s.open_tcp(41, svc.port, T(5))
    got, close = s.recv_until_close(41, T(10))
    assert close.proto == TCP
    assert got == data
    s.send_msg(DATA, TCP, 41, 0, b"late")  # may be answered with one CLOSE
    s.pingpong(timeout=T(5))
    time.sleep(0.3)
    late = s.pending(41)
    assert len(late) <= 1 and all(m.type == CLOSE for m in late), \
        [describe_full(m) for m in late]


@pytest.mark.core
def test_local_eof_close_not_ahead_of_queued_data(start_agent, services):
    """Control messages may jump ahead of queued DATA, but never the CLOSE of
    the same id: with a runner that reads slowly (small receive buffer, pauses)
    while a service sends 4 MiB and closes, every DATA byte still comes before
    that id's CLOSE."""
    with fr.FakeRunner(rcvbuf=8192) as r:
        start_agent(r.url)
        s = r.accept(T(5))
        data = pattern(4 << 20, 8)
        svc = services.send_close(data)
        s.pause_reading()
        s.send_msg(CONNECT, TCP, 46, svc.port)
        time.sleep(T(1))
        s.resume_reading()
        m = s.recv_msg(46, T(5))
        assert m.type == CONNECTED, describe_full(m)
        got = []
        n = 0
        while True:
            m = s.recv_msg(46, T(20))
            if m.type == CLOSE:
                break
            assert m.type == DATA, describe_full(m)
            got.append(m.payload)
            n += len(m.payload)
            if n < (1 << 20) and len(got) % 4 == 0:
                s.pause_reading()  # keep the agent's send queue backed up
                time.sleep(0.05)
                s.resume_reading()
        assert n == len(data), "CLOSE after %d of %d bytes" % (n, len(data))
        assert b"".join(got) == data
        s.expect_silence(46, 0.3)
        bad = r.violations()
        assert not bad, bad


def test_local_eof_without_data(tunnel, services):
    """A service that closes at once: CONNECTED then one CLOSE."""
    s = tunnel.session
    svc = services.send_close(b"")
    s.open_tcp(42, svc.port, T(5))
    got, _ = s.recv_until_close(42, T(5))
    assert got == b""
    s.expect_silence(42, 0.3)


def test_local_reset_gives_one_close(tunnel, services):
    """A service that resets the connection: one CLOSE (or ERROR instead of
    CONNECTED when the reset beats the connect), then DATA to it is harmless."""
    s = tunnel.session
    svc = services.send_close(b"", reset=True)
    s.send_msg(CONNECT, TCP, 43, svc.port)
    m = s.recv_msg(43, T(5))
    if m.type == CONNECTED:
        m = s.recv_msg(43, T(5))
        assert m.type == CLOSE, describe_full(m)
    else:
        assert m.type == ERROR, describe_full(m)
    s.send_many(fr.data_messages(43, os.urandom(200000)), timeout=T(10))
    s.pingpong(timeout=T(5))
    time.sleep(0.2)
    assert all(x.type == CLOSE for x in s.pending(43))
    tunnel.agent.assert_alive()


def test_runner_close_while_service_writes(tunnel, services):
    """CLOSE from the runner while the service is still sending: the agent
    never sends DATA after its own CLOSE for that id, and a write into the
    closed local socket never kills it (SIGPIPE)."""
    s = tunnel.session
    svc = services.send_close(os.urandom(4 << 20))
    s.open_tcp(44, svc.port, T(5))
    assert s.recv_msg(44, T(5)).type == DATA
    s.send_msg(CLOSE, TCP, 44)
    s.send_many(fr.data_messages(44, b"x" * 300000), timeout=T(10))
    s.pingpong(timeout=T(5))
    tunnel.agent.assert_alive()


# ---------------------------------------------------------------------------
# Logs


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:?00) +"
                      r"(TRACE|DEBUG|INFO|WARN|WARNING|ERROR)\b")


def test_log_lines_have_time_and_level_and_no_payload(runner, start_agent, services):
    """Every stderr line starts with an ISO-8601 UTC time and a level word;
    payload bytes never appear, even at trace level."""
    a = start_agent(runner.url, "--log-level", "trace")
    s = runner.accept(T(5))
    echo = services.echo()
    marker = b"SECRET-PAYLOAD-7f3a9c-DO-NOT-LOG"
    s.open_tcp(50, echo.port, T(5))
    s.send_msg(DATA, TCP, 50, 0, marker)
    assert s.recv_data(50, len(marker), T(5)) == marker
    s.send_msg(CONNECT, TCP, 51, fr.closed_port())
    assert s.recv_msg(51, T(5)).type == ERROR
    s.send_msg(CLOSE, TCP, 50)
    a.signal(signal.SIGTERM)
    assert a.wait(T(3)) == 0
    log = a.log()
    lines = log.splitlines()
    assert len(lines) >= 3, log
    bad = [l for l in lines if not LOG_LINE.match(l)]
    assert not bad, bad[:5]
    assert marker.decode() not in log
    assert marker.hex() not in log.lower()
    assert "7f3a9c" not in log


@pytest.mark.parametrize("level,allowed", [("warn", ("WARN", "WARNING", "ERROR")),
                                           ("error", ("ERROR",))])
def test_log_level_filters(runner, start_agent, services, level, allowed):
    """--log-level warn/error: a normal session logs nothing below that level."""
    a = start_agent(runner.url, "--log-level", level, "--reconnect-delay", "0.1", fast=False)
    s = runner.accept(T(5))
    echo = services.echo()
    s.open_tcp(52, echo.port, T(5))
    s.send_msg(CLOSE, TCP, 52)
    s.pingpong(timeout=T(5))
    a.signal(signal.SIGTERM)
    assert a.wait(T(3)) == 0
    for line in a.log().splitlines():
        m = LOG_LINE.match(line)
        assert m and m.group(3) in allowed, line


def test_empty_tcp_data_is_harmless(tunnel, services):
    """An empty DATA payload for a TCP id changes nothing."""
    s = tunnel.session
    echo = services.echo()
    s.open_tcp(53, echo.port, T(5))
    s.send_many([pack(DATA, TCP, 53), pack(DATA, TCP, 53, 0, b"x"), pack(DATA, TCP, 53)],
                timeout=T(5))
    assert s.recv_data(53, 1, T(5)) == b"x"
    s.expect_silence(53, 0.2)


def test_connect_to_port_zero(tunnel):
    """CONNECT to port 0 is answered with ERROR for that id, nothing worse."""
    s = tunnel.session
    s.send_msg(CONNECT, TCP, 54, 0)
    m = s.recv_msg(54, T(5))
    assert (m.type, m.proto) == (ERROR, TCP), describe_full(m)
    s.pingpong(timeout=T(5))
