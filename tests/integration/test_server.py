"""tunnel-server end to end: public clients -> tunnel-server -> the real agent
(or a hand-driven WebSocket, or a stand-in for the Rust client) -> local
services, all on loopback.

The server binary comes from TUNNEL_SERVER and runs behind TUNNEL_SERVER_RUN
(server_util.py); the agent from TUNNEL_CLIENT behind TUNNEL_CLIENT_RUN.
"""
import asyncio
import hashlib
import os
import random
import signal
import socket
import struct
import threading
import time

import pytest

import certs
import fake_runner as fr
import server_util as su
from server_util import T, connect, echo_check, recv_all, recv_exact, closed_within

AGENT = "r1"
MiB = 1 << 20


def tcp_expose(agent_port, agent=AGENT, public_port=None):
    """(public port, "--expose" value) for a TCP expose on 127.0.0.1."""
    pub = public_port or su.free_port()
    return pub, "127.0.0.1:%d=%s:%d" % (pub, agent, agent_port)


def udp_expose(agent_port, agent=AGENT):
    pub = su.free_port(socket.SOCK_DGRAM)
    return pub, "udp:127.0.0.1:%d=%s:%d" % (pub, agent, agent_port)


def expose_args(*specs):
    args = []
    for s in specs:
        args += ["--expose", s]
    return args


def serve(start_server, start_agent, specs, server_args=(), agent_args=(), agent=AGENT,
          **server_kw):
    """A server with these exposes and one real agent registered."""
    srv = start_server(*(expose_args(*specs) + list(server_args)), **server_kw)
    a = start_agent(srv.url, *agent_args, cid=agent)
    srv.wait_agent(agent)
    return srv, a


def agent_wait_log(a, text, timeout, count=1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if a.log().count(text) >= count:
            return True
        time.sleep(0.02)
    return a.log().count(text) >= count


def log_lines(text, *needles):
    """The log lines holding every needle."""
    return [ln for ln in text.splitlines() if all(n in ln for n in needles)]


def udp_client(port):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    c.settimeout(T(5))
    c.connect(("127.0.0.1", port))
    return c


def udp_recv(c, srv):
    """One datagram from c; a clear failure (with the server's last log
    lines) when none comes."""
    try:
        return c.recv(65536)
    except socket.timeout:
        raise AssertionError("no datagram back within %.1fs; server log tail:\n%s"
                             % (c.gettimeout(), su.tail(srv.log(), 6))) from None


def write_atomic(path, text):
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, str(path))


# ---------------------------------------------------------------------------
# TCP through an expose


@pytest.mark.core
def test_tcp_request_response(start_server, start_agent, services):
    """Requests through an expose to a local echo and an HTTP service: every
    connection gets its answer; the service's close (CLOSE from the agent)
    reaches the client after the last byte of the reply."""
    echo = services.echo()
    http = services._add(su.HttpService(body_size=100000))
    p_echo, e_echo = tcp_expose(echo.port)
    p_http, e_http = tcp_expose(http.port)
    srv, a = serve(start_server, start_agent, [e_echo, e_http])
    for i in range(3):
        with connect(p_echo) as c:
            msg = b"request %d over the tunnel" % i
            c.sendall(msg)
            assert recv_exact(c, len(msg), T(5)) == msg
    with connect(p_http) as c:
        c.sendall(b"GET /page HTTP/1.0\r\nHost: x\r\n\r\n")
        reply, how = recv_all(c, T(10))
    assert how == "eof", "the reply did not end with EOF (%s)" % how
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK"), reply[:200]
    assert b"'GET /page HTTP/1.0'" in body
    length = int([ln for ln in head.split(b"\r\n") if ln.startswith(b"Content-Length")][0]
                 .split(b":")[1])
    assert len(body) == length, "reply cut short: %d of %d body bytes" % (len(body), length)
    assert body.endswith(bytes(i & 0xFF for i in range(100000)))
    srv.assert_alive()


def test_tcp_1mib_each_way_byte_exact(start_server, start_agent, services):
    """1 MiB up and 1 MiB down at the same time through an echo, hashed."""
    echo = services.echo()
    pub, spec = tcp_expose(echo.port)
    serve(start_server, start_agent, [spec])
    echo_check(pub, os.urandom(MiB), T(30))


def test_tcp_upload_then_eof_delivers_every_byte(start_server, start_agent, services):
    """The client sends 1 MiB and shuts down its side: the service gets every
    byte, then EOF (the client's EOF became CLOSE after the last DATA)."""
    sink = services.sink(keep=False)
    pub, spec = tcp_expose(sink.port)
    serve(start_server, start_agent, [spec])
    data = os.urandom(MiB)
    with connect(pub) as c:
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        assert sink.eof[0].wait(T(20)), "service saw no EOF (%d bytes)" % sink.count[0]
        assert closed_within(c, T(3)) is not None, "public socket still open after the linger"
    assert sink.count[0] == len(data)
    assert sink.sha[0].digest() == hashlib.sha256(data).digest()


def test_tcp_download_then_close_delivers_every_byte(start_server, start_agent, services):
    """The service sends 1 MiB and closes: the client reads every byte, then
    EOF (CLOSE from the agent is honoured after the DATA before it)."""
    data = os.urandom(MiB)
    src = services.send_close(data)
    pub, spec = tcp_expose(src.port)
    serve(start_server, start_agent, [spec])
    with connect(pub) as c:
        got, how = recv_all(c, T(10))
    assert how == "eof", how
    assert len(got) == len(data) and hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_service_that_speaks_first(start_server, start_agent, services):
    """A client that sends nothing (SSH, SMTP, MySQL wait for the server's
    banner): the connection is still carried to the service at once, and
    its banner reaches the client promptly."""
    banner = b"220 service ready\r\n"
    src = services.send_close(banner)
    pub, spec = tcp_expose(src.port)
    srv, a = serve(start_server, start_agent, [spec])
    with connect(pub) as c:
        t0 = time.monotonic()
        got, how = recv_all(c, T(5))
        took = time.monotonic() - t0
    assert got == banner, "no banner within %.1fs (got %r, %s); agent saw %d CONNECT" % (
        T(5), got, how, a.log().count("conn connecting"))
    assert took < T(1), "banner after %.2fs" % took


def test_tcp_many_small_writes(start_server, start_agent, services):
    """3,000 writes of 1 to 64 bytes with TCP_NODELAY come back in order."""
    echo = services.echo()
    pub, spec = tcp_expose(echo.port)
    serve(start_server, start_agent, [spec])
    rnd = random.Random(7)
    pieces = [bytes([rnd.randrange(256)]) * rnd.randint(1, 64) for _ in range(3000)]
    total = b"".join(pieces)
    with connect(pub) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        got = []

        def reader():
            try:
                got.append(recv_exact(c, len(total), T(30)))
            except AssertionError as e:
                got.append(e)
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        for p in pieces:
            c.sendall(p)
        t.join(T(30))
    assert got and not isinstance(got[0], AssertionError), got
    assert got[0] == total


def test_first_bytes_kept_while_the_local_connect_is_pending(start_server, start_agent,
                                                             services):
    """The client writes at once, before the agent's local connect is done
    (the service holds it): nothing is lost, in order."""
    echo = services.echo(held=True)
    pub, spec = tcp_expose(echo.port)
    srv, a = serve(start_server, start_agent, [spec])
    early = os.urandom(50000)
    with connect(pub) as c:
        c.sendall(early)
        assert agent_wait_log(a, "conn connecting id=1 ", T(3)), su.tail(a.log())
        time.sleep(0.3)
        assert "conn open id=1 " not in a.log(), "the service was supposed to hold the connect"
        echo.release()
        assert recv_exact(c, len(early), T(10)) == early
        c.sendall(b"and later bytes")
        assert recv_exact(c, 15, T(5)) == b"and later bytes"


def test_eof_before_connected_still_delivers_every_byte(start_server, start_agent, services):
    """Data and EOF both before the local connect completed: the service gets
    all of it, then EOF."""
    sink = services.sink(held=True)
    pub, spec = tcp_expose(sink.port)
    srv, a = serve(start_server, start_agent, [spec])
    data = os.urandom(100000)
    with connect(pub) as c:
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        time.sleep(0.3)
        sink.release()
        assert sink.eof[0].wait(T(10)), "service saw no EOF (%d bytes)" % sink.count[0]
    assert bytes(sink.data[0]) == data


def test_first_bytes_go_out_before_connected(start_server, py_agents, services):
    """The server sends the client's first bytes as DATA right behind
    CONNECT, without waiting for CONNECTED (seen by a scripted agent whose
    local connect is held)."""
    echo = services.echo(held=True)
    pub, spec = tcp_expose(echo.port, agent="py1")
    srv = start_server(*expose_args(spec))
    pa = py_agents(srv.url, "py1")
    srv.wait_agent("py1")
    with connect(pub) as c:
        c.sendall(b"first bytes")
        assert su.wait_until(lambda: any(e.startswith("early-data 1 ") for e in pa.events),
                             T(3)), "no DATA before CONNECTED; agent saw %r" % pa.events
        assert "connected 1" not in pa.events
        echo.release()
        assert recv_exact(c, 11, T(10)) == b"first bytes"
    ev = pa.events
    assert ev.index("connect 1 tcp %d" % echo.port) < ev.index("early-data 1 11") \
        < ev.index("connected 1"), ev


# ---------------------------------------------------------------------------
# UDP through an expose


@pytest.mark.core
def test_udp_datagrams_both_ways_keep_boundaries(start_server, start_agent, services):
    """Datagrams of 1 to 60,000 bytes come back one for one; a burst of 20
    is never merged or split."""
    echo = services.udp_echo()
    pub, spec = udp_expose(echo.port)
    srv, a = serve(start_server, start_agent, [spec])
    c = udp_client(pub)
    with c:
        for size in (1, 1000, 60000, 1):
            d = os.urandom(size)
            c.send(d)
            assert udp_recv(c, srv) == d
        grams = [bytes([i]) * (1 + i * 97) for i in range(20)]
        for g in grams:
            c.send(g)
        got = [udp_recv(c, srv) for _ in grams]
    assert [len(g) for g in got] == [len(g) for g in grams]
    assert got == grams
    assert [n for _, n in echo.received] == [1, 1000, 60000, 1] + [len(g) for g in grams]
    assert len({peer for peer, _ in echo.received}) == 1, "one source, one flow"


def test_udp_two_sources_get_separate_flows(start_server, start_agent, services):
    """Two public source addresses: two client ids, two agent-side sockets,
    each source gets only its own replies."""
    echo = services.udp_echo()
    pub, spec = udp_expose(echo.port)
    srv, a = serve(start_server, start_agent, [spec])
    c1, c2 = udp_client(pub), udp_client(pub)
    with c1, c2:
        for i in range(5):
            c1.send(b"one %d" % i)
            c2.send(b"two %d" % i)
        got1 = [udp_recv(c1, srv) for _ in range(5)]
        got2 = [udp_recv(c2, srv) for _ in range(5)]
        assert got1 == [b"one %d" % i for i in range(5)]
        assert got2 == [b"two %d" % i for i in range(5)]
        c1.settimeout(0.3)
        with pytest.raises(socket.timeout):
            c1.recv(100)
    assert len({peer for peer, _ in echo.received}) == 2, echo.received
    log = srv.log()
    assert len(log_lines(log, "udp flow open")) == 2, log
    assert agent_wait_log(a, "proto=udp", T(1))
    assert len(log_lines(a.log(), "conn open", "proto=udp")) == 2, su.tail(a.log())


@pytest.mark.parametrize("side", ["server", "agent"])
def test_udp_idle_flow_ends_and_the_next_datagram_opens_a_new_one(side, start_server,
                                                                 start_agent, services):
    """A flow idle past --udp-idle-timeout (the server's, or the agent's,
    which sends CLOSE) ends; the next datagram from the same source opens a
    new flow with a new client id and a new agent-side socket."""
    echo = services.udp_echo()
    pub, spec = udp_expose(echo.port)
    srv_args = ["--udp-idle-timeout", "1"] if side == "server" else []
    agent_args = ["--udp-idle-timeout", "1"] if side == "agent" else []
    srv, a = serve(start_server, start_agent, [spec], srv_args, agent_args)
    with udp_client(pub) as c:
        c.send(b"first")
        assert udp_recv(c, srv) == b"first"
        why = "idle" if side == "server" else "closed by the agent"
        srv.assert_log('udp flow closed expose=udp:127.0.0.1:%d=%s:%d id=1 reason="%s"'
                       % (pub, AGENT, echo.port, why), T(4))
        assert agent_wait_log(a, "conn closed id=1 ", T(3)), su.tail(a.log())
        c.send(b"second")
        assert udp_recv(c, srv) == b"second"
    srv.assert_log("udp flow open expose=udp:127.0.0.1:%d=%s:%d id=2" % (pub, AGENT, echo.port),
                   T(1))
    assert len(log_lines(a.log(), "conn open", "proto=udp")) == 2, su.tail(a.log())
    assert len(echo.received) == 2


# ---------------------------------------------------------------------------
# Many clients


def test_200_concurrent_public_clients(start_server, start_agent, services):
    """200 clients at once, each echoing its own 1-32 KiB, all exact."""
    echo = services.echo()
    pub, spec = tcp_expose(echo.port)
    srv, a = serve(start_server, start_agent, [spec])

    async def one(i):
        data = random.Random(i).randbytes(1024 * (1 + i % 32))
        r, w = await asyncio.open_connection("127.0.0.1", pub)
        try:
            w.write(data)
            await w.drain()
            back = await r.readexactly(len(data))
        finally:
            w.close()
        return back == data

    async def main():
        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(200)),
                                                     return_exceptions=True), T(60))

    results = asyncio.run(main())
    bad = [(i, r) for i, r in enumerate(results) if r is not True]
    assert not bad, "%d of 200 clients failed, e.g. %r" % (len(bad), bad[:5])
    srv.assert_alive()
    a.assert_alive()


def test_max_connections_per_agent(start_server, start_agent, services):
    """--max-connections 2: a third live connection is closed at once and
    logged; after one ends, a new one is served."""
    echo = services.echo()
    pub, spec = tcp_expose(echo.port)
    srv, a = serve(start_server, start_agent, [spec], ["--max-connections", "2"])
    c1, c2 = connect(pub), connect(pub)
    for c in (c1, c2):
        c.sendall(b"hi")
        assert recv_exact(c, 2) == b"hi"
    c3 = connect(pub)
    assert closed_within(c3, T(1)) is not None, "third connection was not closed"
    srv.assert_log("agent at --max-connections", T(1))
    c1.close()
    srv.assert_log("public client done", T(2))
    time.sleep(0.1)
    su.wait_until(lambda: "client closed" in srv.log(), T(3))
    echo_check(pub, b"served again")
    c2.close()
    c3.close()


def test_exposes_from_the_environment(start_server, start_agent, services):
    """TUNNEL_EXPOSE holds several exposes, comma-separated."""
    echo = services.echo()
    uecho = services.udp_echo()
    p1, e1 = tcp_expose(echo.port)
    p2, e2 = udp_expose(uecho.port)
    srv = start_server(env=su.clean_env(TUNNEL_EXPOSE="%s,%s" % (e1, e2)))
    start_agent(srv.url, cid=AGENT)
    srv.wait_agent(AGENT)
    echo_check(p1, b"from the environment")
    log = srv.log()
    assert "expose listening tcp:127.0.0.1:%d=" % p1 in log
    assert "expose listening udp:127.0.0.1:%d=" % p2 in log
    assert "exposes=2" in log


def test_ipv6_listener_and_expose(start_server, start_agent, services):
    """--listen [::1]:PORT and an expose on [::1]: the agent dials
    ws://[::1]:PORT and a client on ::1 is served."""
    try:
        lp = fr.free_port(socket.AF_INET6, "::1")
        pub = fr.free_port(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    echo = services.echo()
    srv = start_server("--listen", "[::1]:%d" % lp,
                       "--expose", "[::1]:%d=%s:%d" % (pub, AGENT, echo.port),
                       listen=False, listen_port=lp)
    start_agent("ws://[::1]:%d" % lp, cid=AGENT)
    srv.wait_agent(AGENT)
    with socket.create_connection(("::1", pub), T(5)) as c:
        c.sendall(b"over IPv6")
        assert recv_exact(c, 9) == b"over IPv6"


# ---------------------------------------------------------------------------
# Failures: refused port, no agent, agent gone, agent replaced


@pytest.mark.core
def test_refused_local_port_closes_the_public_client(start_server, start_agent):
    """Nothing listens on the agent's port: the agent answers ERROR and the
    public client is closed promptly; the server log says why."""
    port = fr.closed_port()
    pub, spec = tcp_expose(port)
    srv, a = serve(start_server, start_agent, [spec])
    with connect(pub) as c:
        c.sendall(b"anyone there?")
        t0 = time.monotonic()
        how = closed_within(c, T(3))
        took = time.monotonic() - t0
    assert how is not None, "public client not closed"
    assert took < T(1.5), "closed only after %.2fs" % took
    srv.assert_log("reason=\"agent: ", T(1))
    lines = log_lines(srv.log(), "public conn closed", "reason=\"agent: ")
    assert lines and "refused" in lines[0].lower(), lines
    srv.assert_alive()
    # the tunnel goes on
    a.assert_alive()


@pytest.mark.core
def test_no_agent_closes_at_once_then_a_late_agent_serves(start_server, start_agent, services):
    """No agent registered: the public connection is closed at once and the
    log says so; once the agent dials in, new connections are served."""
    echo = services.echo()
    pub, spec = tcp_expose(echo.port)
    srv = start_server(*expose_args(spec))
    with connect(pub) as c:
        t0 = time.monotonic()
        how = closed_within(c, T(2))
        took = time.monotonic() - t0
    assert how is not None, "public connection not closed without an agent"
    assert took < T(0.5), "closed only after %.2fs" % took
    srv.assert_log('public conn refused expose=tcp:127.0.0.1:%d=%s:%d' % (pub, AGENT, echo.port),
                   T(1))
    assert "agent %s is not connected" % AGENT in srv.log()
    start_agent(srv.url, cid=AGENT)
    srv.wait_agent(AGENT)
    echo_check(pub, b"served now")


def test_agent_killed_closes_its_connections_and_a_restart_serves(start_server, start_agent,
                                                                  services):
    """kill -9 the agent: its public connections end, the server logs the
    agent gone; new connections are refused until a restarted agent
    registers and serves them."""
    echo = services.echo()
    pub, spec = tcp_expose(echo.port)
    srv, a = serve(start_server, start_agent, [spec])
    c = connect(pub)
    c.sendall(b"alive?")
    assert recv_exact(c, 6) == b"alive?"
    a.signal(signal.SIGKILL)
    assert a.wait(T(5)) is not None
    assert closed_within(c, T(3)) is not None, "public connection outlived its agent"
    c.close()
    srv.assert_log("agent gone id=%s " % AGENT, T(2))
    with connect(pub) as c2:
        assert closed_within(c2, T(2)) is not None
    start_agent(srv.url, cid=AGENT)
    srv.wait_agent(AGENT, count=2)
    echo_check(pub, b"served by the restarted agent")


def test_agent_replaced_newest_wins(start_server, start_agent, services):
    """A second agent with the same id replaces the first: the old session
    gets close 1001 and its connections end; the new one serves; killing the
    old process afterwards does not unregister the new one."""
    echo = services.echo()
    pub, spec = tcp_expose(echo.port)
    # the old agent must not dial again during the test
    slow = ["--reconnect-delay", "60", "--max-reconnect-delay", "60"]
    srv, old = serve(start_server, start_agent, [spec], agent_args=slow)
    c1 = connect(pub)
    c1.sendall(b"via old")
    assert recv_exact(c1, 7) == b"via old"
    new = start_agent(srv.url, cid=AGENT)
    srv.wait_agent(AGENT, count=2)
    srv.assert_log('agent closing id=%s code=1001 reason="replaced by a new connection"' % AGENT,
                   T(2))
    echo_check(pub, b"via new")
    assert agent_wait_log(new, "conn open id=", T(2)), su.tail(new.log())
    assert len(log_lines(old.log(), "conn open id=")) == 1
    assert closed_within(c1, T(3)) is not None, "old session's connection not closed"
    c1.close()
    srv.assert_log("agent gone id=%s" % AGENT, T(3))
    old_saw_1001 = agent_wait_log(old, "runner sent close code=1001", T(1))
    old.signal(signal.SIGKILL)
    old.wait(T(5))
    time.sleep(0.3)
    echo_check(pub, b"still via new")
    assert len(log_lines(new.log(), "conn open id=")) == 2
    # The replaced session is told so with a close frame (not just dropped
    # when the close wait runs out).
    assert old_saw_1001, "the old agent got no close 1001:\n" + su.tail(old.log(), 8)


@pytest.mark.parametrize("old_ends", ["reset", "answers_close", "never_answers"])
def test_old_session_end_does_not_unregister_the_new_one(old_ends, start_server, start_agent,
                                                        services):
    """A hand-driven old session for the id is replaced by the real agent;
    however the old one ends afterwards (reset, a clean close answer, or
    never answering so the server's close wait runs out), the new agent
    stays registered and serves."""
    echo = services.echo()
    pub, spec = tcp_expose(echo.port)
    srv = start_server(*expose_args(spec))
    old = su.RawWs(srv.port, AGENT)
    assert old.status == 101, old.head
    srv.wait_agent(AGENT)
    old.answer_close = old_ends == "answers_close"
    start_agent(srv.url, cid=AGENT)
    srv.wait_agent(AGENT, count=2)
    old.wait_for(lambda w: w.close_code is not None or w.eof, T(3))
    code = old.close_code
    if old_ends == "reset":
        old.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        old.close()
    elif old_ends == "answers_close":
        assert old.wait_for(lambda w: w.eof, T(3)), "server kept the old socket open"
    srv.assert_log("agent gone id=%s " % AGENT, T(3))
    echo_check(pub, b"served by the new agent")
    time.sleep(1.2)  # past the server's close wait for the old session
    echo_check(pub, b"and still")
    old.close()
    assert code == 1001, "the replaced session got close code %s, not 1001" % code


# ---------------------------------------------------------------------------
# Authentication


@pytest.mark.core
def test_missing_or_wrong_token_is_401_before_the_upgrade(start_server, start_agent, services):
    """--token: no token or a wrong one gets 401 and no upgrade, nothing is
    registered; the right token upgrades; the token never reaches the log."""
    token = "s3cret-t0ken-value"
    echo = services.echo()
    pub, spec = tcp_expose(echo.port)
    srv = start_server("--token", token, *expose_args(spec))
    for given in (None, "wrong-token", token + "x", ""):
        status, head, s = su.http_upgrade(srv.port, AGENT, given)
        assert status == 401, head
        assert "sec-websocket-accept" not in head.lower(), head
        assert closed_within(s, T(2)) is not None, "refused connection left open"
        s.close()
    srv.assert_log('status=401 reason="no token"', T(1))
    srv.assert_log('status=401 reason="wrong token"', T(1))
    assert "agent connected" not in srv.log()
    with connect(pub) as c:
        assert closed_within(c, T(2)) is not None
    assert "agent %s is not connected" % AGENT in srv.log()
    ok = su.RawWs(srv.port, AGENT, token)
    assert ok.status == 101, ok.head
    ok.close()
    srv.assert_log("agent gone id=%s" % AGENT, T(2))
    # the real agent with the right token serves
    a = start_agent(srv.url, "--token", token, cid=AGENT)
    srv.wait_agent(AGENT, count=2)
    echo_check(pub, b"authorised")
    # one with a wrong token is refused and does not replace it
    bad = start_agent(srv.url, "--token", "not-it", "--max-reconnect", "1", cid=AGENT)
    assert bad.wait(T(10)) == 1, su.tail(bad.log())
    assert "HTTP 401" in bad.log(), su.tail(bad.log())
    echo_check(pub, b"still the first agent")
    assert token not in srv.log() and "not-it" not in srv.log()
    assert token not in a.log()


def test_token_file_per_id_and_default(start_server, start_agent, services, tmp_path):
    """--token-file: an id's own line beats the '*' default; an id without
    its own line takes the default; comments are ignored."""
    tf = tmp_path / "tokens"
    tf.write_text("# agent tokens\nr1 tok-one   # router one\n\n* tok-default\n")
    echo = services.echo()
    p1, e1 = tcp_expose(echo.port, agent="r1")
    p2, e2 = tcp_expose(echo.port, agent="r2")
    srv = start_server("--token-file", tf, *expose_args(e1, e2))
    cases = [("r1", "tok-one", 101), ("r1", "tok-default", 401), ("r1", None, 401),
             ("r2", "tok-default", 101), ("r2", "tok-one", 401), ("r3", "tok-default", 101),
             ("r3", None, 401)]
    for aid, tok, want in cases:
        status, head, s = su.http_upgrade(srv.port, aid, tok)
        s.close()
        assert status == want, "%s with %s: %s" % (aid, tok, head)
    start_agent(srv.url, "--token", "tok-one", cid="r1")
    start_agent(srv.url, "--token", "tok-default", cid="r2")
    srv.wait_agent("r1", count=2)
    srv.wait_agent("r2", count=2)
    echo_check(p1, b"r1 with its own token")
    echo_check(p2, b"r2 with the default")
    log = srv.log()
    assert "tok-one" not in log and "tok-default" not in log


def test_token_file_without_tokens_does_not_open_the_door(start_server, tmp_path):
    """A --token-file holding no token at all (only comments) must not turn
    authentication off, here on a non-loopback listener: the server refuses
    to start (exit 2) or refuses agents without a token (401)."""
    tf = tmp_path / "tokens"
    tf.write_text("# nobody yet\n")
    srv = start_server("--token-file", tf, listen_host="0.0.0.0", ready=False)
    if srv.wait(T(2)) is not None:
        assert srv.proc.returncode == 2, su.tail(srv.log())
        return
    srv.wait_ready()
    status, head, s = su.http_upgrade(srv.port, AGENT, None)
    s.close()
    assert status == 401, "an empty --token-file let an agent in without a token:\n" + head


def test_frames_right_behind_the_upgrade_request(start_server):
    """A WebSocket frame sent in the same write as the upgrade request is
    not lost: the ping in it is answered."""
    srv = start_server()
    with connect(srv.port) as s:
        req, _ = su.upgrade_request(srv.port, "eager")
        s.sendall(req + su.client_frame(0x9, b"eager ping"))
        head, rest = su._read_head(s, T(3))
        assert head.startswith("HTTP/1.1 101"), head
        buf = rest
        deadline = time.monotonic() + T(3)
        while not fr.parse_frames(buf)[0] and time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                buf += s.recv(100)
            except socket.timeout:
                break
    assert fr.parse_frames(buf)[0][:1] == [(0xA, b"eager ping")], buf


def test_request_that_is_not_an_upgrade_is_refused(start_server):
    """A plain GET, a wrong path or a bad id: an HTTP error, no agent."""
    srv = start_server()
    s = connect(srv.port)
    s.sendall(b"GET /ws/tunnel/r1 HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _ = su._read_head(s, T(3))
    s.close()
    assert head.split(" ")[1][0] == "4", head
    for path in ("/other/r1", "/ws/tunnel/", "/ws/tunnel/bad%20id", "/ws/tunnel/a/b"):
        status, head, s = su.http_upgrade(srv.port, AGENT, path=path)
        s.close()
        assert 400 <= status < 500, "%s: %s" % (path, head)
    assert "agent connected" not in srv.log()
    srv.assert_alive()


# ---------------------------------------------------------------------------
# Start-up checks


@pytest.mark.core
def test_public_listener_without_token_is_exit_2(start_server):
    """--listen 0.0.0.0:PORT with no token: exit 2 and one line saying what
    to do; with --no-auth (or a token) it starts."""
    port = su.free_port(host="0.0.0.0")
    res = su.run_server("--listen", "0.0.0.0:%d" % port)
    assert res.returncode == 2, res
    assert res.stderr.count("\n") == 1, res.stderr
    assert "--token" in res.stderr and "--no-auth" in res.stderr, res.stderr
    srv = start_server("--no-auth", listen_host="0.0.0.0", listen_port=port)
    assert "listening on 0.0.0.0:%d" % port in srv.log()
    srv.signal(signal.SIGTERM)
    assert srv.wait(T(3)) == 0
    srv2 = start_server("--token", "t", listen_host="0.0.0.0", listen_port=port)
    srv2.signal(signal.SIGTERM)
    assert srv2.wait(T(3)) == 0


@pytest.mark.parametrize("args,names", [
    (["--expose", "127.0.0.1:80"], "--expose"),
    (["--expose", "127.0.0.1:8080=bad id:80"], "--expose"),
    (["--expose", "tcp:127.0.0.1:8080=r1:0"], "--expose"),
    (["--listen", "nowhere"], "--listen"),
    (["--tls-cert", "/nonexistent.pem"], "--tls-key"),
    (["--max-message", "10"], "--max-message"),
    (["--bogus"], "--bogus"),
])
def test_bad_options_exit_2_with_one_line(args, names):
    res = su.run_server(*args)
    assert res.returncode == 2, res
    assert res.stderr.count("\n") == 1 and names in res.stderr, res.stderr


def test_expose_port_in_use_is_exit_2():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    with busy:
        port = busy.getsockname()[1]
        res = su.run_server("--listen", "127.0.0.1:%d" % su.free_port(),
                            "--expose", "127.0.0.1:%d=r1:80" % port)
    assert res.returncode == 2, res
    assert res.stderr.count("\n") == 1 and str(port) in res.stderr, res.stderr


# ---------------------------------------------------------------------------
# Misbehaving agents


def _good_agent(start_server, start_agent, services, *server_args):
    echo = services.echo()
    pub, spec = tcp_expose(echo.port, agent="good")
    srv = start_server(*(expose_args(spec) + list(server_args)))
    start_agent(srv.url, cid="good")
    srv.wait_agent("good")
    return srv, pub


BAD_CLOSES = {
    # name: (send, close code the server sends, or None for a dropped connection)
    "garbage": (lambda w: w.send_raw(b"\xff\xfe not a frame " + bytes(range(256))), None),
    "unmasked": (lambda w: w.send_frame(0x2, fr.pack(fr.DATA, fr.TCP, 1, 0, b"x"), mask=False),
                 1002),
    "reserved_bits": (lambda w: w.send_frame(0x2, fr.pack(fr.DATA, fr.TCP, 1), rsv=4), 1002),
    "unknown_opcode": (lambda w: w.send_frame(0x3, b"zz"), 1002),
    "continuation_first": (lambda w: w.send_frame(0x0, b"zz"), 1002),
    "over_max_message": (lambda w: w.send_binary(os.urandom(70000)), 1009),
    "over_max_message_fragmented": (lambda w: (
        w.send_frame(0x2, fr.pack(fr.DATA, fr.TCP, 99) + os.urandom(40000), fin=False),
        w.send_frame(0x0, os.urandom(40000))), 1009),
    "length_over_2_63": (lambda w: w.send_raw(b"\x82\xff\x80" + b"\x00" * 7 + b"abcd"), None),
    "long_control_frame": (lambda w: w.send_frame(0x9, b"p" * 200), None),
}


@pytest.mark.parametrize("case", sorted(BAD_CLOSES))
def test_bad_frames_close_that_agent_only(case, start_server, start_agent, services):
    """A protocol violation closes that agent's session (1002, 1009 over
    --max-message, or a dropped connection); the server goes on serving
    the other agent and new sessions."""
    srv, pub = _good_agent(start_server, start_agent, services, "--max-message", "65544")
    send, code = BAD_CLOSES[case]
    w = su.RawWs(srv.port, "bad")
    assert w.status == 101
    srv.wait_agent("bad")
    send(w)
    got = w.wait_close(T(3))
    if code is not None:
        assert got == code, "close code %s, expected %s" % (got, code)
    assert w.wait_for(lambda x: x.eof, T(3)), "server kept the connection open"
    w.close()
    srv.assert_log("agent gone id=bad ", T(2))
    srv.assert_alive()
    echo_check(pub, b"the good agent still serves")
    again = su.RawWs(srv.port, "bad")
    assert again.status == 101 and again.ping_ok(T(2))
    again.close()


BAD_DROPS = {
    "text_message": (lambda w: w.send_frame(0x1, b"hello, server"), "text message from agent"),
    "unknown_type": (lambda w: w.send_binary(fr.pack(9, fr.TCP, 1, 0, b"xx")),
                     "unknown message type"),
    "short_message": (lambda w: w.send_binary(b"\x03\x00\x00"), "shorter than 8 bytes"),
    "unknown_proto": (lambda w: w.send_binary(fr.pack(fr.DATA, 7, 1, 0, b"xx")), "unknown proto"),
    "data_for_unknown_id": (lambda w: w.send_binary(fr.pack(fr.DATA, fr.TCP, 4242, 0, b"xx")),
                            None),
    "close_for_unknown_id": (lambda w: w.send_binary(fr.pack(fr.CLOSE, fr.TCP, 4242)), None),
    "connect_from_agent": (lambda w: w.send_binary(fr.pack(fr.CONNECT, fr.TCP, 5, 80)), None),
    "empty_binary": (lambda w: w.send_binary(b""), "shorter than 8 bytes"),
}


@pytest.mark.parametrize("case", sorted(BAD_DROPS))
def test_bad_messages_are_dropped_and_the_session_stays(case, start_server, start_agent,
                                                        services):
    """Text messages, short ones, unknown types and protos, stray ids: logged
    and dropped; that session stays up (it answers a ping) and the others
    are served."""
    srv, pub = _good_agent(start_server, start_agent, services)
    send, logged = BAD_DROPS[case]
    w = su.RawWs(srv.port, "bad")
    assert w.status == 101
    srv.wait_agent("bad")
    for _ in range(3):
        send(w)
    assert w.ping_ok(T(2)), "session closed (code %s)" % w.close_code
    assert w.close_code is None and not w.eof
    if logged:
        srv.assert_log(logged, T(1))
    echo_check(pub, b"the good agent still serves")
    w.close()
    srv.assert_alive()


def test_oversized_udp_datagram_from_an_agent_is_not_delivered_cut(start_server, services):
    """An agent's DATA for a UDP flow that goes over --max-message in a
    second fragment: the session is closed 1009 and the public client gets
    no datagram at all (never a piece of one)."""
    pub, spec = udp_expose(9, agent="bad")
    srv = start_server("--max-message", "65544", *expose_args(spec))
    w = su.RawWs(srv.port, "bad")
    assert w.status == 101
    srv.wait_agent("bad")
    with udp_client(pub) as c:
        c.send(b"open a flow")
        w.ping_ok(T(2))  # (traffic from the agent gets the CONNECT flushed)
        assert w.wait_for(lambda x: any(op == 2 and p[:1] == bytes([fr.CONNECT])
                                        for op, p in x.frames), T(3)), w.frames
        connect_msg = fr.unpack([p for op, p in w.frames if op == 2][0])
        assert connect_msg.proto == fr.UDP
        w.send_frame(0x2, fr.pack(fr.DATA, fr.UDP, connect_msg.cid) + b"A" * 40000, fin=False)
        w.send_frame(0x0, b"B" * 40000)
        assert w.wait_close(T(3)) == 1009
        c.settimeout(0.5)
        try:
            d = c.recv(65536)
        except socket.timeout:
            d = None
    assert d is None, "public client got a %d-byte piece of an oversized datagram" % len(d)
    w.close()
    srv.assert_alive()


def test_silent_agent_is_pinged_then_dropped(start_server):
    """--ping-interval 1 --ping-timeout 1: an agent that never answers gets
    a ping, then is dropped ("agent silent"); one that answers stays."""
    srv = start_server("--ping-interval", "1", "--ping-timeout", "1")
    quiet = su.RawWs(srv.port, "quiet")
    lively = su.RawWs(srv.port, "lively")
    quiet.answer_pings = False
    deadline = time.monotonic() + T(4)
    while time.monotonic() < deadline and not quiet.eof:
        quiet.pump(0.05)
        lively.pump(0.05)
    assert quiet.pings >= 1, "no ping for a silent agent"
    assert quiet.eof, "silent agent not dropped"
    srv.assert_log('agent gone id=quiet addr=127.0.0.1 reason="agent silent"', T(1))
    assert lively.pings >= 1
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:
        lively.pump(0.1)
    assert not lively.eof and lively.ping_ok(T(2)), "an agent answering pings was dropped"
    quiet.close()
    lively.close()


# ---------------------------------------------------------------------------
# Backpressure


def test_slow_public_reader_memory_bounded_and_stall_timeout(start_server, start_agent,
                                                             services):
    """A public client that never reads while the service sends without end:
    the server's memory stays bounded, the client is closed after
    --stall-timeout (logged), the service's connection ends, and the other
    connections go on (another agent's during the stall, this agent's after)."""
    source = services._add(su.TcpSource())
    echo = services.echo()
    p_src, e_src = tcp_expose(source.port)
    p_echo, e_echo = tcp_expose(echo.port)
    p_other, e_other = tcp_expose(echo.port, agent="r2")
    stall = 2.0
    srv = start_server("--stall-timeout", str(stall), *expose_args(e_src, e_echo, e_other))
    start_agent(srv.url, cid=AGENT)
    start_agent(srv.url, cid="r2")
    srv.wait_agent(AGENT)
    srv.wait_agent("r2")
    base = srv.vm_kib("VmHWM")
    c = connect(p_src, rcvbuf=4096)
    c.sendall(b"go")  # (the service never reads it)
    t0 = time.monotonic()
    source.wait_accepted(1, T(3))
    echo_check(p_other, os.urandom(100000))  # another agent is not held up
    assert srv.wait_log("public client stalled", stall + T(5)), su.tail(srv.log())
    took = time.monotonic() - t0
    assert took >= stall - 0.3, "closed after %.2fs, before --stall-timeout" % took
    hwm = srv.vm_kib("VmHWM")
    got, how = recv_all(c, T(20))
    c.close()
    assert how in ("eof", "reset"), "stalled client not closed (%s)" % how
    assert source.ended[0].wait(T(5)), "the service's connection was not closed"
    assert len(got) < source.sent[0], (len(got), source.sent[0])
    echo_check(p_echo, os.urandom(200000))  # this agent's tunnel flows again
    if not su.EMULATED:
        assert hwm < 32 * 1024, "server VmHWM %d KiB" % hwm
    assert hwm - base < 24 * 1024, "server VmHWM grew from %d to %d KiB" % (base, hwm)
    srv.assert_alive()


# ---------------------------------------------------------------------------
# Configuration reload


def test_config_reload_adds_and_removes_exposes(start_server, start_agent, services, tmp_path):
    """SIGHUP re-reads --config: an added expose works, a removed one
    refuses connections (its open connection is closed), a connection on an
    expose that stayed is not touched; a broken file is logged and the
    running configuration stays."""
    echo = services.echo()
    lp = su.free_port()
    p1, e1 = tcp_expose(echo.port)   # removed
    p2, e2 = tcp_expose(echo.port)   # added
    p3, e3 = tcp_expose(echo.port)   # stays
    cfg = tmp_path / "server.conf"
    write_atomic(cfg, "# test server\nlisten 127.0.0.1:%d\nlog-level debug\n"
                      "expose %s\nexpose %s   # stays\n" % (lp, e1, e3))
    srv = start_server("--config", cfg, listen=False, log_level=None, listen_port=lp)
    start_agent(srv.url, cid=AGENT)
    srv.wait_agent(AGENT)
    echo_check(p1, b"one")
    echo.wait_finished(1, T(3))
    keep = connect(p3)
    keep.sendall(b"before reload")
    assert recv_exact(keep, 13) == b"before reload"
    gone = connect(p1)
    gone.sendall(b"x")
    assert recv_exact(gone, 1) == b"x"
    with pytest.raises(OSError):
        connect(p2, T(1)).close()

    write_atomic(cfg, "listen 127.0.0.1:%d\nlog-level debug\nexpose %s\nexpose %s\n"
                 % (lp, e3, e2))
    time.sleep(0.3)  # a quiet tunnel: nothing else would flush what the reload queues
    srv.proc.send_signal(signal.SIGHUP)
    srv.assert_log("configuration reloaded exposes=2", T(3))
    assert closed_within(gone, T(2)) is not None, "connection of a removed expose left open"
    # ... and the agent was told (CLOSE): the service side of it ends too
    echo.wait_finished(2, T(2))
    echo_check(p2, b"added")
    with pytest.raises(ConnectionRefusedError):
        connect(p1, T(1)).close()
    keep.sendall(b"after reload")
    assert recv_exact(keep, 12) == b"after reload"
    log = srv.log()
    assert log_lines(log, "expose closed tcp:127.0.0.1:%d=" % p1)
    assert not log_lines(log, "expose closed tcp:127.0.0.1:%d=" % p3)
    assert len(log_lines(log, "expose listening tcp:127.0.0.1:%d=" % p3)) == 1

    write_atomic(cfg, "listen 127.0.0.1:%d\nexpose %s\nexpose not-an-expose\n" % (lp, e3))
    srv.proc.send_signal(signal.SIGHUP)
    srv.assert_log("reload failed, keeping the running configuration", T(3))
    line = log_lines(srv.log(), "reload failed")[0]
    assert "not-an-expose" in line and str(cfg) in line, line
    echo_check(p2, b"still there")
    echo_check(p3, b"also there")
    keep.sendall(b"still open")
    assert recv_exact(keep, 10) == b"still open"
    with pytest.raises(ConnectionRefusedError):
        connect(p1, T(1)).close()
    keep.close()
    gone.close()
    srv.assert_alive()


def test_config_reload_twice_with_a_new_listen_address(start_server, start_agent, services,
                                                       tmp_path):
    """Reloads may not move the agent listener: a new --listen in the file is
    warned about (it takes a restart) and the server goes on, on the old
    address, however many reloads come."""
    echo = services.echo()
    lp = su.free_port()
    p1, e1 = tcp_expose(echo.port)
    cfg = tmp_path / "server.conf"
    write_atomic(cfg, "listen 127.0.0.1:%d\nexpose %s\n" % (lp, e1))
    srv = start_server("--config", cfg, listen=False, listen_port=lp)
    start_agent(srv.url, cid=AGENT)
    srv.wait_agent(AGENT)
    srv.proc.send_signal(signal.SIGHUP)
    srv.assert_log("configuration reloaded exposes=1", T(3))
    other = su.free_port()
    write_atomic(cfg, "listen 127.0.0.1:%d\nexpose %s\n" % (other, e1))
    for n in (2, 3):
        srv.proc.send_signal(signal.SIGHUP)
        srv.assert_log("configuration reloaded exposes=1", T(3), count=n)
    srv.assert_alive()
    warn = log_lines(srv.log(), "takes a restart")
    assert len(warn) == 2 and all("still on 127.0.0.1:%d" % lp in w for w in warn), warn
    echo_check(p1, b"still serving")
    status, head, s = su.http_upgrade(lp, "probe")
    s.close()
    assert status == 101


def test_config_reload_replaces_tokens(start_server, start_agent, services, tmp_path):
    """A reload with a new token: new upgrades need it, the agent already
    connected is left alone."""
    echo = services.echo()
    lp = su.free_port()
    p1, e1 = tcp_expose(echo.port)
    cfg = tmp_path / "server.conf"
    write_atomic(cfg, "listen 127.0.0.1:%d\ntoken first-token\nexpose %s\n" % (lp, e1))
    srv = start_server("--config", cfg, listen=False, listen_port=lp)
    start_agent(srv.url, "--token", "first-token", cid=AGENT)
    srv.wait_agent(AGENT)
    write_atomic(cfg, "listen 127.0.0.1:%d\ntoken second-token\nexpose %s\n" % (lp, e1))
    srv.proc.send_signal(signal.SIGHUP)
    srv.assert_log("configuration reloaded", T(3))
    for tok, want in (("first-token", 401), ("second-token", 101)):
        status, head, s = su.http_upgrade(lp, "other", tok)
        s.close()
        assert status == want, (tok, head)
    echo_check(p1, b"connected agent untouched")
    assert "first-token" not in srv.log() and "second-token" not in srv.log()


# ---------------------------------------------------------------------------
# wss://


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = certs.Pki(tmp_path_factory.mktemp("server-pki"))
    p.root = p.ca("root", key="ec")
    p.ec = p.root.issue("srv-ec", dns=["localhost"], ips=["127.0.0.1"], key="ec")
    p.rsa = p.root.sub_ca("inter", key="ec").issue("srv-rsa", dns=["localhost"])
    p.other = p.ca("other-root", key="ec")
    return p


@pytest.mark.parametrize("leaf", ["ec", "rsa"])
def test_wss_end_to_end(leaf, pki, start_server, start_agent, services):
    """--tls-cert/--tls-key: the agent verifies the server against the test
    CA (name from --tls-server-name, the URL being an IP) and 1 MiB goes
    each way exactly. RSA leaf with its chain, or an EC leaf."""
    cert = getattr(pki, leaf)
    echo = services.echo()
    pub, spec = tcp_expose(echo.port)
    srv = start_server("--tls-cert", cert.cert, "--tls-key", cert.key, *expose_args(spec))
    assert srv.url.startswith("wss://127.0.0.1:")
    assert " (wss)" in log_lines(srv.log(), "listening on")[0]
    a = start_agent(srv.url, "--ca-file", pki.root.cert, "--tls-server-name", "localhost",
                    cid=AGENT)
    srv.wait_agent(AGENT, T(10))
    echo_check(pub, os.urandom(MiB), T(30))
    a.assert_alive()


@pytest.mark.parametrize("how,reason", [
    ("other_ca", "unknown CA"),
    ("wrong_name", "host name mismatch"),
])
def test_wss_wrong_certificate_fails_with_the_reason(how, reason, pki, start_server,
                                                     start_agent):
    srv = start_server("--tls-cert", pki.ec.cert, "--tls-key", pki.ec.key)
    ca = pki.other.cert if how == "other_ca" else pki.root.cert
    name = "wrong.example" if how == "wrong_name" else "localhost"
    a = start_agent(srv.url, "--ca-file", ca, "--tls-server-name", name, "--max-reconnect", "1",
                    cid=AGENT)
    rc = a.wait(T(10))
    log = a.log()
    assert rc == 1, "agent did not give up (rc %s): %s" % (rc, su.tail(log))
    assert "TLS handshake failed" in log and reason in log, su.tail(log)
    assert "agent connected" not in srv.log()
    srv.assert_alive()


def test_plain_agent_on_a_wss_listener_is_dropped(pki, start_server, start_agent, services):
    """A ws:// agent speaking plain HTTP to the wss:// listener fails its
    handshake; a wss:// agent is served right after."""
    echo = services.echo()
    pub, spec = tcp_expose(echo.port)
    srv = start_server("--tls-cert", pki.ec.cert, "--tls-key", pki.ec.key, *expose_args(spec))
    plain = start_agent(srv.url.replace("wss://", "ws://"), "--max-reconnect", "1", cid=AGENT)
    assert plain.wait(T(10)) == 1, su.tail(plain.log())
    assert srv.wait_log("agent is not speaking TLS (ws:// at one end, wss:// at the other?)",
                        T(5)), su.tail(srv.log())
    start_agent(srv.url, "--ca-file", pki.root.cert, "--tls-server-name", "localhost", cid=AGENT)
    srv.wait_agent(AGENT, T(10))
    echo_check(pub, b"over TLS")


def test_wss_agent_on_a_plain_listener_both_say_why(pki, start_server, start_agent):
    """The other mismatch: a wss:// agent dialing a plain listener. The
    server refuses its ClientHello naming the mistake (not "not an HTTP
    request"), and the agent, which gets a plain HTTP answer, says the
    runner is not speaking TLS (not a TLS version problem)."""
    srv = start_server()
    a = start_agent(srv.url.replace("ws://", "wss://"), "--ca-file", pki.root.cert,
                    "--tls-server-name", "localhost", "--max-reconnect", "1", cid=AGENT)
    assert a.wait(T(10)) == 1, su.tail(a.log())
    assert "runner is not speaking TLS (ws:// at one end, wss:// at the other?)" in a.log(), \
        su.tail(a.log())
    assert "TLS 1.2" not in a.log(), su.tail(a.log())
    assert srv.wait_log('reason="a TLS handshake on a plain ws:// listener (the agent dials wss://)"',
                        T(5)), su.tail(srv.log())
    srv.assert_alive()


def test_request_that_is_not_http_is_refused_in_words(start_server):
    """Bytes that are neither HTTP nor TLS: 400, and the log says what the
    server expected (a request, not a response)."""
    srv = start_server()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=T(5)) as s:
        s.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 400 ")
    assert srv.wait_log('reason="not an HTTP request"', T(5)), su.tail(srv.log())


# ---------------------------------------------------------------------------
# SIGTERM


@pytest.mark.core
def test_sigterm_closes_agents_1001_and_exits_0(start_server, start_agent, services):
    """SIGTERM: close 1001 to every agent (a real one and a hand-driven one
    see it), exit 0 within a second."""
    echo = services.echo()
    pub, spec = tcp_expose(echo.port)
    srv, a = serve(start_server, start_agent, [spec])
    raw = su.RawWs(srv.port, "raw")
    assert raw.status == 101
    srv.wait_agent("raw")
    echo_check(pub, b"before")
    waiter = threading.Thread(target=lambda: raw.wait_for(lambda w: w.eof, T(3)), daemon=True)
    waiter.start()
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    rc = srv.wait(T(3))
    took = time.monotonic() - t0
    waiter.join(T(3))
    assert rc == 0, "exit code %s" % rc
    assert took < T(1.0), "exit took %.2fs" % took
    assert raw.close_code == 1001, raw.close_code
    assert agent_wait_log(a, "runner sent close code=1001", T(2)), su.tail(a.log())
    assert "stopped" in srv.log()


def test_sigterm_with_an_agent_that_never_answers(start_server):
    """An agent that ignores the close frame does not hold the exit past
    about a second."""
    srv = start_server()
    raw = su.RawWs(srv.port, "deaf")
    raw.answer_close = False
    srv.wait_agent("deaf")
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    rc = srv.wait(T(3))
    took = time.monotonic() - t0
    assert rc == 0, rc
    assert took < T(1.5), "exit took %.2fs" % took
    raw.pump(T(0.5))
    assert raw.close_code == 1001
    raw.close()


# ---------------------------------------------------------------------------
# A stand-in for the Rust client


def test_rust_client_stand_in_serves_exposes(start_server, py_agents, services):
    """A Python agent that behaves like the Rust tunnel-client (dials the same
    URL, CONNECT -> local connect -> CONNECTED, DATA both ways, CLOSE on EOF)
    serves TCP exposes (1 MiB exact, request/response with close), and a
    refused port closes the client."""
    echo = services.echo()
    http = services._add(su.HttpService())
    p_echo, e_echo = tcp_expose(echo.port, agent="rust1")
    p_http, e_http = tcp_expose(http.port, agent="rust1")
    p_ref, e_ref = tcp_expose(fr.closed_port(), agent="rust1")
    srv = start_server(*expose_args(e_echo, e_http, e_ref))
    pa = py_agents(srv.url, "rust1")
    assert pa.connected.wait(T(5)), pa.error
    srv.wait_agent("rust1")
    echo_check(p_echo, os.urandom(MiB), T(30))
    with connect(p_http) as c:
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reply, how = recv_all(c, T(5))
    assert how == "eof" and reply.startswith(b"HTTP/1.0 200 OK"), (how, reply[:100])
    with connect(p_ref) as c:
        c.sendall(b"x")
        assert closed_within(c, T(2)) is not None
    srv.assert_log("reason=\"agent: ", T(1))
    assert any(e.startswith("error ") for e in pa.events), pa.events
    srv.assert_alive()


def test_rust_client_stand_in_serves_udp(start_server, py_agents, services):
    """The stand-in serves a UDP expose: datagrams both ways, one for one."""
    uecho = services.udp_echo()
    p_udp, e_udp = udp_expose(uecho.port, agent="rust1")
    srv = start_server(*expose_args(e_udp))
    pa = py_agents(srv.url, "rust1")
    assert pa.connected.wait(T(5)), pa.error
    srv.wait_agent("rust1")
    with udp_client(p_udp) as c:
        for d in (b"a", os.urandom(30000), b"bc"):
            c.send(d)
            assert udp_recv(c, srv) == d
    assert [n for _, n in uecho.received] == [1, 30000, 2]
