"""UDP over the tunnel: one datagram per DATA message, both ways."""
import os
import socket
import time

import pytest

from agent import SLOW, T
import fake_runner as fr
from fake_runner import CLOSE, CONNECT, CONNECTED, DATA, ERROR, UDP, describe_full, pack


def recv_datagram(s, cid, timeout):
    m = s.recv_msg(cid, timeout)
    assert (m.type, m.proto, m.cid) == (DATA, UDP, cid), describe_full(m)
    return m.payload


@pytest.mark.core
def test_udp_datagram_boundaries(tunnel, services):
    """CONNECT proto=UDP -> CONNECTED (UDP); a 1-byte and a 60,000-byte datagram
    each come back as exactly one DATA of the same size."""
    s = tunnel.session
    echo = services.udp_echo()
    s.open_udp(60, echo.port, T(5))
    for size in (1, 60000, 1):
        d = os.urandom(size)
        s.send_msg(DATA, UDP, 60, 0, d)
        assert recv_datagram(s, 60, T(5)) == d
    assert [n for _, n in echo.received] == [1, 60000, 1]


@pytest.mark.core
def test_udp_burst_keeps_order_and_boundaries(tunnel, services):
    """Several datagrams in a row: never merged or split, order kept."""
    s = tunnel.session
    echo = services.udp_echo()
    s.open_udp(61, echo.port, T(5))
    grams = [bytes([i]) * (1 + i * 97) for i in range(20)]
    s.send_many([pack(DATA, UDP, 61, 0, g) for g in grams], timeout=T(5))
    got = [recv_datagram(s, 61, T(5)) for _ in grams]
    assert [len(g) for g in got] == [len(g) for g in grams]
    assert got == grams
    s.expect_silence(61, 0.2)


def test_udp_data_before_connected(tunnel, services):
    """Datagrams sent right behind the UDP CONNECT are delivered."""
    s = tunnel.session
    echo = services.udp_echo()
    grams = [b"first", b"second" * 10, b"third" * 100]
    s.send_many([pack(CONNECT, UDP, 62, echo.port)] + [pack(DATA, UDP, 62, 0, g) for g in grams],
                timeout=T(5))
    m = s.recv_msg(62, T(5))
    assert (m.type, m.proto, m.port) == (CONNECTED, UDP, 0), describe_full(m)
    assert [recv_datagram(s, 62, T(5)) for _ in grams] == grams


def test_udp_ids_have_their_own_sockets(tunnel, services):
    """Ten UDP ids to one service: each gets only its own replies."""
    s = tunnel.session
    echo = services.udp_echo()
    ids = range(70, 80)
    for cid in ids:
        s.open_udp(cid, echo.port, T(5))
    s.send_many([pack(DATA, UDP, cid, 0, b"id=%d" % cid) for cid in ids], timeout=T(5))
    for cid in ids:
        assert recv_datagram(s, cid, T(5)) == b"id=%d" % cid
    assert len({peer for peer, _ in echo.received}) == 10


@pytest.mark.core
def test_udp_idle_connection_gets_close(runner, start_agent, services):
    """After --udp-idle-timeout without datagrams the agent sends CLOSE for
    the UDP id; a fresh CONNECT with that id then works."""
    start_agent(runner.url, "--udp-idle-timeout", "0.5")
    s = runner.accept(T(5))
    echo = services.udp_echo()
    s.open_udp(63, echo.port, T(5))
    s.send_msg(DATA, UDP, 63, 0, b"ping")
    assert recv_datagram(s, 63, T(5)) == b"ping"
    t0 = time.monotonic()
    m = s.recv_msg(63, T(5))
    waited = time.monotonic() - t0
    assert (m.type, m.proto, m.cid) == (CLOSE, UDP, 63), describe_full(m)
    assert waited >= 0.3, "closed after %.2fs of idleness, timeout is 0.5s" % waited
    s.open_udp(63, echo.port, T(5))
    s.send_msg(DATA, UDP, 63, 0, b"again")
    assert recv_datagram(s, 63, T(5)) == b"again"


def test_udp_traffic_keeps_connection_open(runner, start_agent, services):
    """Datagrams more often than --udp-idle-timeout keep the id alive."""
    start_agent(runner.url, "--udp-idle-timeout", "0.6")
    s = runner.accept(T(5))
    echo = services.udp_echo()
    s.open_udp(64, echo.port, T(5))
    for i in range(6):
        s.send_msg(DATA, UDP, 64, 0, b"%d" % i)
        assert recv_datagram(s, 64, T(5)) == b"%d" % i
        time.sleep(0.25)
    m = s.recv_msg(64, T(5))
    assert m.type == CLOSE, describe_full(m)


def test_max_udp(runner, start_agent, services):
    """--max-udp N: the next UDP CONNECT gets ERROR; TCP is not affected."""
    start_agent(runner.url, "--max-udp", "2")
    s = runner.accept(T(5))
    echo = services.udp_echo()
    tcp = services.echo()
    s.open_udp(80, echo.port, T(5))
    s.open_udp(81, echo.port, T(5))
    s.send_msg(CONNECT, UDP, 82, echo.port)
    m = s.recv_msg(82, T(5))
    assert m.type == ERROR and m.proto == UDP, describe_full(m)
    s.open_tcp(83, tcp.port, T(5))
    s.send_msg(CLOSE, UDP, 80)
    time.sleep(0.2)
    s.open_udp(84, echo.port, T(5))


def test_udp_service_traffic_keeps_connection_open(runner, start_agent, services):
    """Datagrams from the service (none from the runner) also count as
    activity: no CLOSE while they flow, CLOSE after they stop."""
    start_agent(runner.url, "--udp-idle-timeout", "0.6")
    s = runner.accept(T(5))
    ticker = services.udp_ticker(count=8, interval=0.2)
    s.open_udp(65, ticker.port, T(5))
    s.send_msg(DATA, UDP, 65, 0, b"start")
    for i in range(8):
        assert recv_datagram(s, 65, T(2)) == b"tick %d" % i
    t0 = time.monotonic()
    m = s.recv_msg(65, T(5))
    assert (m.type, m.proto) == (CLOSE, UDP), describe_full(m)
    assert time.monotonic() - t0 >= 0.3


def test_udp_to_closed_port(tunnel, services):
    """Datagrams to a UDP port nobody listens on (ICMP port unreachable):
    at most one CLOSE/ERROR for that id, the agent keeps serving and does
    not spin on the socket error."""
    s, a = tunnel.session, tunnel.agent
    port = fr.free_port(kind=socket.SOCK_DGRAM)
    s.send_msg(CONNECT, UDP, 66, port)
    m = s.recv_msg(66, T(5))
    if m.type == CONNECTED:
        for i in range(3):
            s.send_msg(DATA, UDP, 66, 0, b"anyone? %d" % i)
            time.sleep(0.05)
    else:
        assert m.type == ERROR, describe_full(m)
    s.pingpong(timeout=T(5))
    time.sleep(0.3)
    rest = s.take_pending(66)
    assert len(rest) <= 1 and all(x.type in (CLOSE, ERROR) for x in rest), \
        [describe_full(x) for x in rest]
    cpu0 = a.cpu_seconds()
    time.sleep(1.0)
    used = a.cpu_seconds() - cpu0
    assert used < 0.1 * SLOW, "agent used %.2fs CPU in 1s while idle" % used
    echo = services.udp_echo()
    s.open_udp(67, echo.port, T(5))
    s.send_msg(DATA, UDP, 67, 0, b"fine")
    assert recv_datagram(s, 67, T(5)) == b"fine"


def test_udp_empty_datagram(tunnel, services):
    """A zero-length datagram is a datagram: an empty DATA goes out as one,
    and an empty datagram back is one empty DATA, not an end of stream."""
    s = tunnel.session
    echo = services.udp_echo()
    s.open_udp(68, echo.port, T(5))
    s.send_msg(DATA, UDP, 68, 0, b"")
    assert recv_datagram(s, 68, T(5)) == b""
    s.send_msg(DATA, UDP, 68, 0, b"after")
    assert recv_datagram(s, 68, T(5)) == b"after"
    assert [n for _, n in echo.received] == [0, 5]
