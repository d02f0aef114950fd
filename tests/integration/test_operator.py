"""Operator controls of the agent: --header, --token, --allow-ports, SIGHUP."""
import signal
import time

import pytest

import agent as agent_mod
from agent import T
from fake_runner import CONNECT, CONNECTED, ERROR, TCP, UDP, describe_full


@pytest.mark.core
def test_headers_token_and_user_agent_on_the_upgrade(runner, start_agent):
    """--header lines and --token reach the upgrade request, with the
    User-Agent naming the version and target; the token is never logged."""
    a = start_agent(runner.url, "--header", "X-Fleet: routers", "--header", "X-Site:  lab 7 ",
                    "--token", "s3cr3t-t0ken", "--log-level", "trace")
    s = runner.accept(T(5))
    h = s.headers
    assert h["X-Fleet"] == "routers"
    assert h["X-Site"] == "lab 7"
    assert h["Authorization"] == "Bearer s3cr3t-t0ken"
    assert h["User-Agent"].startswith("tunnel-client/") and "(" in h["User-Agent"], h["User-Agent"]
    assert "s3cr3t-t0ken" not in a.log()


def test_headers_from_the_environment_one_per_line(runner, start_agent):
    env = agent_mod.clean_env(TUNNEL_HEADERS="X-One: 1\nX-Two: 2\r\n", TUNNEL_TOKEN="tok-env")
    start_agent(runner.url, env=env)
    s = runner.accept(T(5))
    assert s.headers["X-One"] == "1" and s.headers["X-Two"] == "2"
    assert s.headers["Authorization"] == "Bearer tok-env"


@pytest.mark.parametrize("value,why", [
    ("Host: evil", "upgrade request's own header"),
    ("sec-websocket-key: x", "upgrade request's own header"),
    ("Connection: close", "upgrade request's own header"),
    ("User-Agent: x", "upgrade request's own header"),
    ("X-Bad: a\rb", "control character"),
    ("X-Bad: a\nInjected: 1", "control character"),
    ("No colon here", "expected 'Name: value'"),
    (": no name", "expected 'Name: value'"),
    ("Bad Name: x", "expected 'Name: value'"),
])
def test_bad_header_is_a_start_up_error(value, why):
    r = agent_mod.run("-r", "ws://127.0.0.1:1", "-c", "x", "--header", value)
    assert r.returncode == 2, r
    assert "--header" in r.stderr and why in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("token", ["has space", "line\nbreak", "x" * 300])
def test_bad_token_is_a_start_up_error(token):
    r = agent_mod.run("-r", "ws://127.0.0.1:1", "-c", "x", "--token", token)
    assert r.returncode == 2 and "--token" in r.stderr, r
    assert token not in r.stderr


def test_authorization_header_and_token_together_refused():
    r = agent_mod.run("-r", "ws://127.0.0.1:1", "-c", "x", "--token", "t",
                      "--header", "Authorization: Basic eDp5")
    assert r.returncode == 2 and "Authorization" in r.stderr, r
    assert "eDp5" not in r.stderr


@pytest.mark.core
def test_allow_ports_refuses_other_ports(runner, start_agent, services):
    echo = services.echo()
    udp = services.udp_echo()
    a = start_agent(runner.url, "--allow-ports", "%d,udp:%d" % (echo.port, udp.port))
    s = runner.accept(T(5))
    s.open_tcp(1, echo.port, T(5))
    s.send_msg(CONNECT, UDP, 2, udp.port)
    m = s.recv_msg(2, T(5))
    assert m.type == CONNECTED, describe_full(m)
    # The same UDP port over TCP, and another port: refused.
    for cid, proto, port in ((3, TCP, udp.port), (4, TCP, echo.port + 1 if echo.port < 65535 else 1)):
        s.send_msg(CONNECT, proto, cid, port)
        m = s.recv_msg(cid, T(5))
        assert (m.type, m.proto) == (ERROR, proto), describe_full(m)
        assert m.payload == b"port not allowed"
    assert "port not allowed" in a.log()
    a.assert_alive()


@pytest.mark.parametrize("value", ["", "0", "70000", "80-22", "22,", "http", "tcp:udp:1"])
def test_bad_allow_ports_is_a_start_up_error(value):
    r = agent_mod.run("-r", "ws://127.0.0.1:1", "-c", "x", "--allow-ports", value)
    assert r.returncode == 2 and "--allow-ports" in r.stderr, r


def test_sighup_ends_the_backoff_wait(runner, start_agent):
    """SIGHUP while waiting to reconnect dials at once."""
    a = start_agent(runner.url, "--reconnect-delay", "30", "--max-reconnect-delay", "30", fast=False)
    s = runner.accept(T(5))
    s.close(1000)
    deadline = time.monotonic() + T(5)
    while "reconnecting in" not in a.log():
        assert time.monotonic() < deadline, a.log()
        time.sleep(0.05)
    time.sleep(T(0.2))
    a.signal(signal.SIGHUP)
    runner.accept(T(3))  # well before the 22+ s backoff
    assert "dialling now" in a.log()
    a.assert_alive()
