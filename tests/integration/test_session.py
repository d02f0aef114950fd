"""The WebSocket session: keepalive, reconnects, failures, signals, limits."""
import re
import signal
import time

import pytest

from agent import RUN_PREFIX, SLOW, T
import fake_runner as fr
from fake_runner import CLOSE, CONNECT, CONNECTED, DATA, ERROR, TCP, describe_full


# ---------------------------------------------------------------------------
# Keepalive


@pytest.mark.core
def test_runner_websocket_ping_is_answered(tunnel):
    """A WebSocket ping from the runner gets its pong (RFC 6455)."""
    for _ in range(3):
        assert tunnel.session.ping(T(3)), "no pong from the agent"


def test_agent_pings_an_idle_runner_and_stays(runner, start_agent):
    """With --ping-interval 0.3, an idle session gets WebSocket pings from the
    agent; a runner that answers them keeps the same session."""
    start_agent(runner.url, "--ping-interval", "0.3", "--ping-timeout", "0.5")
    s = runner.accept(T(5))
    time.sleep(T(2))
    assert s.pings_received >= 2, "agent sent %d pings in 2s" % s.pings_received
    assert not s.closed.is_set(), "session ended (code %s)" % s.close_code
    assert runner.try_accept(0) is None, "agent reconnected although pings were answered"
    s.pingpong(timeout=T(5))


@pytest.mark.core
def test_keepalive_detects_silent_runner(start_agent, services):
    """Against a runner that completes the upgrade and then never sends a
    byte, the agent pings, gives up after --ping-timeout and reconnects."""
    raw = services.raw("upgrade_silent")
    start_agent(raw.url, "--ping-interval", "0.5", "--ping-timeout", "0.5")
    raw.wait_connections(1, T(5))
    raw.wait_connections(2, T(8))
    gap = raw.conn_times[1] - raw.conn_times[0]
    assert gap >= 0.8, "reconnected after %.2fs: before ping interval + timeout" % gap
    ops = [op for op, _ in raw.frames[0]]
    assert 0x9 in ops, "no WebSocket ping on the silent session (frames: %r)" % ops


def test_keepalive_runner_ignoring_pings(runner, start_agent):
    """A runner that stops answering pings (but is otherwise up) is dropped
    and the agent connects again."""
    start_agent(runner.url, "--ping-interval", "0.4", "--ping-timeout", "0.4")
    s = runner.accept(T(5))
    s.ignore_pings()
    s.wait_closed(T(6))
    s2 = runner.accept(T(6))
    assert s.ended_at <= s2.accepted_at, "dialed again before the old session ended"
    s2.pingpong(timeout=T(5))


# ---------------------------------------------------------------------------
# Losing the runner


@pytest.mark.core
def test_runner_restart(tunnel, services):
    """The runner restarts on the same port: local connections of the old
    session are closed (the service sees EOF), the agent reconnects and serves."""
    r, s = tunnel.runner, tunnel.session
    sink = services.sink()
    s.open_tcp(1, sink.port, T(5))
    s.send_msg(DATA, TCP, 1, 0, b"before restart")
    r.stop()
    assert sink.eof[0].wait(T(5)), "local connection not closed after the WebSocket dropped"
    assert bytes(sink.data[0]) == b"before restart"
    r.start()
    s2 = r.accept(T(10))
    s2.pingpong(timeout=T(5))
    echo = services.echo()
    s2.open_tcp(1, echo.port, T(5))
    s2.send_msg(DATA, TCP, 1, 0, b"after restart")
    assert s2.recv_data(1, 13, T(5)) == b"after restart"


@pytest.mark.parametrize("how", ["drop", "close1000", "close1011"])
def test_session_lost_reconnects(tunnel, services, how):
    """The runner drops the TCP connection or closes the WebSocket: local
    connections are closed, ids do not survive, the agent reconnects."""
    r, s = tunnel.runner, tunnel.session
    echo = services.echo()
    s.open_tcp(2, echo.port, T(5))
    if how == "drop":
        s.drop()
    else:
        s.close(int(how[5:]), "bye", timeout=T(5))
        # RFC 6455 5.5.1: the agent answers the runner's close frame with one.
        assert s.wait_closed(T(3)) != 1006, "agent dropped TCP without a close frame"
    echo.wait_finished(1, T(5))
    s2 = r.accept(T(10))
    # id 2 did not survive: DATA for it is dropped (at most one CLOSE back).
    s2.send_msg(DATA, TCP, 2, 0, b"stale")
    s2.pingpong(timeout=T(5))
    stale = s2.take_pending(2)
    assert all(m.type == CLOSE for m in stale), [describe_full(m) for m in stale]
    assert echo.accepted == 1
    s2.open_tcp(2, echo.port, T(5))


@pytest.mark.core
@pytest.mark.parametrize("status", [404, 403, 502])
def test_refused_upgrade_is_retried(runner, start_agent, status):
    """An HTTP error instead of the upgrade: the agent retries (no crash) and
    connects once the runner accepts."""
    runner.refuse = (status, b"not today\n")
    a = start_agent(runner.url)
    runner.wait_attempts(2, T(5))
    a.assert_alive()
    assert runner.try_accept(0) is None
    runner.refuse = None
    s = runner.accept(T(5))
    s.pingpong(timeout=T(5))


def test_non_http_reply_is_retried(start_agent, services):
    """A server answering something that is not HTTP: retried, no crash."""
    raw = services.raw("garbage")
    a = start_agent(raw.url)
    raw.wait_connections(2, T(5))
    a.assert_alive()


def test_silent_server_hits_connect_timeout(start_agent, services):
    """A server that accepts TCP but never answers the upgrade: after
    --connect-timeout 1 the agent gives up on it and tries again."""
    raw = services.raw("silent")
    a = start_agent(raw.url, "--connect-timeout", "1")
    raw.wait_connections(1, T(5))
    raw.wait_connections(2, T(6))
    gap = raw.conn_times[1] - raw.conn_times[0]
    assert gap >= 0.9, "retried after %.2fs, before the 1s connect timeout" % gap
    a.assert_alive()


def test_backoff_doubles_up_to_cap(runner, start_agent):
    """Failed upgrades are retried after the reconnect delay, doubling per
    failure up to --max-reconnect-delay (with some jitter)."""
    runner.refuse = (503, b"busy\n")
    start_agent(runner.url, "--reconnect-delay", "0.2", "--max-reconnect-delay", "0.8",
                fast=False)
    runner.wait_attempts(6, T(8))
    t = runner.attempt_times
    gaps = [b - a for a, b in zip(t, t[1:])][:5]
    nominal = [0.2, 0.4, 0.8, 0.8, 0.8]
    for g, n in zip(gaps, nominal):
        assert 0.5 * n <= g <= T(1.5 * n + 0.25), "gaps %s, nominal %s" % (
            ["%.2f" % x for x in gaps], nominal)


def test_flapping_sessions_back_off(runner, start_agent):
    """A runner that accepts and closes every session at once must not be
    hammered: sessions that did not stay up do not reset the backoff."""
    start_agent(runner.url, "--reconnect-delay", "0.1", "--max-reconnect-delay", "0.8",
                fast=False)
    t_end = time.monotonic() + 2.5
    n = 0
    while time.monotonic() < t_end:
        s = runner.try_accept(max(0.0, t_end - time.monotonic()))
        if s is None:
            break
        n += 1
        s.close(1000, "go away", timeout=T(2))
    # With the delay doubling 0.1, 0.2, 0.4, 0.8, 0.8... about 6 sessions
    # fit in 2.5s; a fixed 0.1s delay would give about 20.
    print("%d sessions in 2.5s" % n)
    assert 2 <= n <= 10, "%d sessions in 2.5s" % n


def test_runner_drop_during_download(tunnel, services):
    """The runner vanishes while the agent is sending a large download: the
    agent survives (no SIGPIPE death), closes the local side, reconnects."""
    r, s = tunnel.runner, tunnel.session
    svc = services.send_close(b"\xa5" * (8 << 20))
    s.open_tcp(6, svc.port, T(5))
    s.recv_msg(6, T(5))
    s.drop()
    s2 = r.accept(T(10))
    s2.pingpong(timeout=T(5))
    tunnel.agent.assert_alive()


@pytest.mark.core
def test_max_reconnect_exits_1(start_agent):
    """--max-reconnect 2 against a closed port: exit code 1 in bounded time."""
    a = start_agent("ws://127.0.0.1:%d" % fr.closed_port(), "--max-reconnect", "2")
    rc = a.wait(T(10))
    assert rc == 1, "exit code %s" % rc


def test_max_reconnect_counts_refused_upgrades(runner, start_agent):
    """An HTTP 404 on every attempt counts as a failed connect too."""
    runner.refuse = (404, b"no such container\n")
    a = start_agent(runner.url, "--max-reconnect", "3")
    rc = a.wait(T(10))
    assert rc == 1, "exit code %s" % rc
    assert 2 <= len(runner.attempts) <= 4, len(runner.attempts)


def test_successful_session_resets_failure_count(runner, start_agent):
    """--max-reconnect counts consecutive failures: a session that came up
    resets the count, so the agent survives more total failures."""
    a = start_agent(runner.url, "--max-reconnect", "2")
    for _ in range(3):
        s = runner.accept(T(5))
        s.pingpong(timeout=T(5))
        runner.refuse = (502, b"bad gateway\n")
        n = len(runner.attempts)
        s.drop()
        runner.wait_attempts(n + 1, T(5))
        runner.refuse = None
    a.assert_alive()


def test_idle_agent_uses_no_cpu(tunnel, services):
    """With idle connections, a pending local connect, a half-closed one and
    a UDP id open, the agent sleeps in poll(): almost no CPU over 1.5s."""
    s, a = tunnel.session, tunnel.agent
    echo, held, udp = services.echo(), services.echo(held=True), services.udp_echo()
    gone = services.send_close(b"bye")
    s.open_tcp(1, echo.port, T(5))
    s.send_msg(CONNECT, TCP, 2, held.port)
    s.open_udp(3, udp.port, T(5))
    s.open_tcp(4, gone.port, T(5))
    s.recv_until_close(4, T(5))
    time.sleep(0.3)
    cpu0 = a.cpu_seconds()
    time.sleep(1.5)
    used = a.cpu_seconds() - cpu0
    assert used < 0.1 * SLOW, "agent used %.2fs CPU in 1.5s while idle" % used


def test_backoff_uses_no_cpu(start_agent):
    """Waiting for the next reconnect is a sleep, not a spin."""
    a = start_agent("ws://127.0.0.1:%d" % fr.closed_port(), "--reconnect-delay", "3",
                    fast=False)
    time.sleep(0.5)
    cpu0 = a.cpu_seconds()
    time.sleep(1.5)
    used = a.cpu_seconds() - cpu0
    assert used < 0.1 * SLOW, "agent used %.2fs CPU in 1.5s of backoff" % used


# ---------------------------------------------------------------------------
# Signals


@pytest.mark.core
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_with_1001_and_exits_0(tunnel, services, sig):
    """SIGTERM/SIGINT: the runner sees a close frame 1001, local connections
    are closed, the agent exits 0 within a second."""
    s, a = tunnel.session, tunnel.agent
    sink = services.sink()
    s.open_tcp(3, sink.port, T(5))
    t0 = time.monotonic()
    a.signal(sig)
    rc = a.wait(T(1) + 0.5)
    took = time.monotonic() - t0
    assert rc == 0, "exit code %s" % rc
    assert took <= T(1), "exit took %.2fs" % took
    assert s.wait_closed(T(2)) == 1001
    assert sink.eof[0].wait(T(2))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_while_reconnecting_exits_0(start_agent, sig):
    """A signal during the reconnect backoff also exits 0 promptly."""
    a = start_agent("ws://127.0.0.1:%d" % fr.closed_port(), "--reconnect-delay", "5",
                    "--max-reconnect-delay", "5", fast=False)
    time.sleep(T(0.5))
    a.assert_alive()
    t0 = time.monotonic()
    a.signal(sig)
    rc = a.wait(T(1) + 0.5)
    assert rc == 0, "exit code %s" % rc
    assert time.monotonic() - t0 <= T(1)


def test_signal_exits_promptly_when_runner_not_reading(tunnel, services):
    """SIGTERM while the runner has stopped reading and the agent's send path
    is full: it still exits 0 within a second (no endless flush)."""
    s, a = tunnel.session, tunnel.agent
    svc = services.send_close(b"\x00" * (32 << 20))
    s.pause_reading()
    s.send_msg(fr.CONNECT, TCP, 7, svc.port)
    time.sleep(T(0.8))
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    rc = a.wait(T(1) + 0.5)
    assert rc == 0, "exit code %s" % rc
    assert time.monotonic() - t0 <= T(1)


def test_signal_exits_promptly_while_data_streams(tunnel, services):
    """SIGTERM while a download keeps every poll busy (the local socket
    always readable, the runner reading): the signal is not starved by
    descriptors that are always ready; exit 0 within a second."""
    s, a = tunnel.session, tunnel.agent
    svc = services.send_close(b"\x5a" * (256 << 20))
    s.send_msg(fr.CONNECT, TCP, 8, svc.port)
    m = s.recv_msg(8, T(5))
    assert m.type == fr.CONNECTED, fr.describe_full(m)
    assert s.recv_msg(8, T(5)).type == DATA  # bytes are flowing
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    rc = a.wait(T(1) + 0.5)
    assert rc == 0, "exit code %s" % rc
    assert time.monotonic() - t0 <= T(1)


def test_signal_exits_promptly_with_silent_runner(start_agent, services):
    """SIGTERM against a runner that never answers the close frame: the
    agent sends close 1001 and exits 0 within a second anyway."""
    raw = services.raw("upgrade_silent")
    a = start_agent(raw.url)
    raw.wait_connections(1, T(5))
    time.sleep(T(0.3))
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    rc = a.wait(T(1) + 0.5)
    assert rc == 0, "exit code %s" % rc
    assert time.monotonic() - t0 <= T(1)
    op, payload = raw.wait_frame(0, lambda op, p: op == 0x8, T(1))
    assert int.from_bytes(payload[:2], "big") == 1001, payload


# ---------------------------------------------------------------------------
# Limits and flow control


def test_max_connections(runner, start_agent, services):
    """--max-connections N: the N+1th CONNECT gets ERROR; after a CLOSE a new
    one is accepted."""
    start_agent(runner.url, "--max-connections", "3")
    s = runner.accept(T(5))
    echo = services.echo()
    for cid in (1, 2, 3):
        s.open_tcp(cid, echo.port, T(5))
    s.send_msg(CONNECT, TCP, 4, echo.port)
    m = s.recv_msg(4, T(5))
    assert (m.type, m.proto) == (ERROR, TCP), describe_full(m)
    s.send_msg(CLOSE, TCP, 1)
    echo.wait_finished(1, T(5))
    time.sleep(0.2)
    s.open_tcp(5, echo.port, T(5))
    s.send_msg(DATA, TCP, 5, 0, b"ok")
    assert s.recv_data(5, 2, T(5)) == b"ok"


def _max_connections_logged(a, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r"max_connections=(\d+)", a.log())
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    raise AssertionError("no max_connections in the log:\n" + a.log()[-2000:])


needs_real_fd_limit = pytest.mark.skipif(
    bool(RUN_PREFIX) and "valgrind" in RUN_PREFIX[0],
    reason="valgrind keeps descriptors for itself and shows the agent a lower limit")


@needs_real_fd_limit
def test_default_max_connections_follows_fd_limit(runner, start_agent, services):
    """With no --max-connections, the limit is the open-file limit less 32
    descriptors for the agent itself; the next CONNECT gets ERROR."""
    a = start_agent(runner.url, nofile=(64, 64))
    assert _max_connections_logged(a, T(5)) == 32
    s = runner.accept(T(5))
    echo = services.echo()
    for cid in range(1, 33):
        s.open_tcp(cid, echo.port, T(5))
    s.send_msg(CONNECT, TCP, 33, echo.port)
    m = s.recv_msg(33, T(5))
    assert (m.type, m.proto) == (ERROR, TCP), describe_full(m)
    assert b"too many connections" in m.payload, describe_full(m)
    s.send_msg(DATA, TCP, 32, 0, b"still")
    assert s.recv_data(32, 5, T(5)) == b"still"


@needs_real_fd_limit
def test_soft_fd_limit_is_raised_to_hard(runner, start_agent):
    """The agent raises its soft open-file limit to the hard limit, and its
    default --max-connections follows the raised limit."""
    a = start_agent(runner.url, nofile=(40, 200))
    assert _max_connections_logged(a, T(5)) == 200 - 32
    runner.accept(T(5))
    with open("/proc/%d/limits" % a.pid) as f:
        line = [x for x in f if x.startswith("Max open files")][0]
    assert line.split()[3:5] == ["200", "200"], line


def test_out_of_descriptors_gets_error_and_tunnel_stays(runner, start_agent, services):
    """--max-connections above what the open-file limit allows: a warning at
    start; a CONNECT that finds no descriptor gets ERROR with the reason,
    live connections keep working, and a freed descriptor serves again."""
    a = start_agent(runner.url, "--max-connections", "100", nofile=(48, 48))
    s = runner.accept(T(5))
    assert "more than the open-file limit allows" in a.log()
    echo = services.echo()
    opened = []
    for cid in range(1, 60):
        s.send_msg(CONNECT, TCP, cid, echo.port)
        m = s.recv_msg(cid, T(5))
        if m.type == ERROR:
            # EMFILE in musl's words, or glibc's (sanitizer builds)
            assert (b"no file descriptors available" in m.payload
                    or b"too many open files" in m.payload), describe_full(m)
            break
        assert m.type == CONNECTED, describe_full(m)
        opened.append(cid)
    else:
        raise AssertionError("no CONNECT failed for want of descriptors")
    assert len(opened) >= 10
    s.send_msg(DATA, TCP, opened[0], 0, b"alive")
    assert s.recv_data(opened[0], 5, T(5)) == b"alive"
    s.send_msg(CLOSE, TCP, opened[-1])
    echo.wait_finished(1, T(5))
    time.sleep(T(0.2))
    s.open_tcp(1000, echo.port, T(5))
