"""The agent's status port (--status-port), its log ring (--log-ring) and
SIGUSR1: HTTP answered by the agent itself through the tunnel."""
import json
import re
import signal
import time

import pytest

import agent as agent_mod
from agent import T
from fake_runner import CLOSE, CONNECT, CONNECTED, DATA, ERROR, TCP, UDP, describe_full

STATUS = 9999
TOKEN = "s3cret-status-t0ken"


def ask(s, cid, request, port=STATUS):
    """One exchange through the tunnel: CONNECT, the request, the answer
    up to the agent's CLOSE. Returns (status, headers, body)."""
    s.open_tcp(cid, port, T(5))
    s.send_data(cid, request)
    data, close = s.recv_until_close(cid, T(10))
    assert close.type == CLOSE, describe_full(close)
    s.send_msg(CLOSE, TCP, cid)
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, data[:200]
    lines = head.decode("ascii").split("\r\n")
    version, code, _ = lines[0].split(" ", 2)
    assert version == "HTTP/1.1", lines[0]
    headers = dict(line.split(": ", 1) for line in lines[1:])
    if not request.startswith(b"HEAD "):
        assert int(headers["Content-Length"]) == len(body), headers
    assert headers["Connection"] == "close"
    return int(code), headers, body


def get(s, cid, path, port=STATUS):
    return ask(s, cid, b"GET %s HTTP/1.1\r\nHost: agent\r\n\r\n" % path.encode(), port)


@pytest.fixture
def status_agent(runner, start_agent):
    a = start_agent(runner.url, "--status-port", STATUS, "--token", TOKEN)
    s = runner.accept(T(5))
    return a, s


@pytest.mark.core
def test_healthz_ready_and_unknown_paths(status_agent):
    a, s = status_agent
    assert get(s, 1, "/healthz")[0::2] == (200, b"ok\n")
    assert get(s, 2, "/ready")[0::2] == (200, b"ready\n")
    code, headers, body = get(s, 3, "/nope")
    assert code == 404 and body == b"Not Found\n"
    code, headers, body = ask(s, 4, b"HEAD /healthz HTTP/1.1\r\n\r\n")
    assert code == 200 and body == b"" and headers["Content-Length"] == "3"
    code, headers, _ = ask(s, 5, b"POST /status HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert code == 405 and headers["Allow"] == "GET, HEAD"
    a.assert_alive()


@pytest.mark.core
def test_status_json_has_the_documented_keys(status_agent, services):
    a, s = status_agent
    echo = services.echo()
    s.open_tcp(7, echo.port, T(5))
    s.send_data(7, b"x" * 1000)
    assert s.recv_data(7, 1000, T(5)) == b"x" * 1000
    code, headers, body = get(s, 8, "/status")
    assert code == 200 and headers["Content-Type"] == "application/json"
    st = json.loads(body)
    assert st["version"] and st["target"] and st["pid"] == a.pid
    assert isinstance(st["uptime_s"], int)
    sess = st["session"]
    assert sess["state"] == "open"
    assert sess["runner_url"].startswith("ws://127.0.0.1:")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", sess["connected_since"])
    assert sess["reconnects"] == 0 and sess["last_error"] is None
    c = st["counters"]
    for k in ("bytes_to_runner", "bytes_from_runner", "connections_opened",
              "connections_refused", "connections_errored", "messages_dropped"):
        assert isinstance(c[k], int), k
    assert c["bytes_from_runner"] >= 1000 and c["bytes_to_runner"] >= 1000
    assert c["connections_opened"] >= 2
    conns = {x["id"]: x for x in st["connections"]}
    assert conns[7]["proto"] == "tcp" and conns[7]["port"] == echo.port
    assert conns[7]["state"] == "open"
    assert conns[7]["bytes_in"] == 1000 and conns[7]["bytes_out"] == 1000
    assert conns[7]["queued"] == 0 and isinstance(conns[7]["age_s"], int)
    assert conns[8]["port"] == STATUS  # the asking connection itself
    assert st["truncated"] is False
    sysinfo = st["system"]
    for k in ("rss_kb", "mem_total_kb", "mem_available_kb", "disk_free_kb"):
        assert sysinfo[k] is None or isinstance(sysinfo[k], int), k
    # qemu-user fakes /proc/self/stat: RSS unknown there, never 0
    assert sysinfo["rss_kb"] is None or sysinfo["rss_kb"] > 0
    assert sysinfo["rss_kb"] is not None or "qemu" in " ".join(agent_mod.RUN_PREFIX)
    assert sysinfo["mem_total_kb"] > 0
    assert len(sysinfo["load"]) == 3 and all(isinstance(x, (int, float)) for x in sysinfo["load"])
    assert isinstance(sysinfo["cpu_user_s"], (int, float))
    assert isinstance(sysinfo["cpu_system_s"], (int, float))
    assert TOKEN not in body.decode()


LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>%s(?:,%s)*)\})? '
                    r'(?P<value>-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)$' % (LABEL, LABEL))


def parse_metrics(text):
    """Prometheus text format 0.0.4, line by line: every sample after its
    metric's HELP and TYPE. Returns {(name, labels): value}."""
    typed, out = {}, {}
    for line in text.split("\n"):
        if line == "":
            continue
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge"), line
            typed[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name = m.group("name")
        assert name in typed, "sample before its TYPE: %r" % line
        out[(name, m.group("labels") or "")] = float(m.group("value"))
    return out


@pytest.mark.core
def test_metrics_are_prometheus_text(status_agent):
    a, s = status_agent
    code, headers, body = get(s, 1, "/metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    m = parse_metrics(body.decode())
    assert m[("tunnel_client_session_up", "")] == 1
    assert m[("tunnel_client_connections", 'proto="tcp"')] >= 1
    assert ("tunnel_client_connections", 'proto="udp"') in m
    assert ("tunnel_client_bytes_total", 'direction="to_runner"') in m
    assert ("tunnel_client_bytes_total", 'direction="from_runner"') in m
    assert m[("tunnel_client_reconnects_total", "")] == 0
    build = [k for k in m if k[0] == "tunnel_client_build_info"]
    assert len(build) == 1 and 'version="' in build[0][1] and 'target="' in build[0][1]
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_open_fds", "process_max_fds", "process_start_time_seconds"):
        assert (name, "") in m, name
    assert m[("process_start_time_seconds", "")] > time.time() - 3600
    assert TOKEN not in body.decode()


@pytest.mark.core
def test_logs_are_the_recent_lines_without_secrets(runner, start_agent):
    a = start_agent(runner.url, "--status-port", STATUS, "--token", TOKEN, "--log-ring", 2048,
                    "--log-level", "debug")
    s = runner.accept(T(5))
    # Enough lines to wrap the 2 KiB ring several times.
    for cid in range(1, 30):
        s.send_msg(CONNECT, TCP, cid, 1)  # nothing listens on port 1: ERROR
        assert s.recv_msg(cid, T(5)).type == ERROR
    code, _, body = get(s, 100, "/logs")
    assert code == 200 and 0 < len(body) <= 2048
    text = body.decode()
    lines = text.split("\n")
    assert lines[-1] == "" and all(re.match(r"\d{4}-\d\d-\d\dT", x) for x in lines[:-1]), text
    assert "connect failed id=29" in text  # the newest lines are there
    assert "tunnel-client 0.1.0 starting" not in text  # the oldest are gone
    assert TOKEN not in text


def test_log_ring_off_gives_an_empty_log(runner, start_agent):
    start_agent(runner.url, "--status-port", STATUS, "--log-ring", 0)
    s = runner.accept(T(5))
    assert get(s, 1, "/logs")[0::2] == (200, b"")


def test_without_status_port_the_port_is_the_local_services(runner, start_agent, services):
    echo = services.echo()
    start_agent(runner.url)
    s = runner.accept(T(5))
    s.open_tcp(1, echo.port, T(5))
    s.send_data(1, b"GET /healthz HTTP/1.1\r\n\r\n")
    assert s.recv_data(1, 25, T(5)) == b"GET /healthz HTTP/1.1\r\n\r\n"  # echoed


@pytest.mark.core
def test_status_port_is_the_agents_whatever_allow_ports_says(runner, start_agent, services):
    """The same port with --status-port: the agent answers, not the echo
    service, though --allow-ports lists it for UDP only."""
    echo = services.echo()
    start_agent(runner.url, "--status-port", echo.port, "--allow-ports", "udp:%d" % echo.port)
    s = runner.accept(T(5))
    assert get(s, 1, "/healthz", echo.port)[0::2] == (200, b"ok\n")
    other = echo.port + 1 if echo.port < 65535 else 1
    s.send_msg(CONNECT, TCP, 2, other)
    m = s.recv_msg(2, T(5))
    assert m.type == ERROR and m.payload == b"port not allowed", describe_full(m)


def test_udp_to_the_status_port_goes_to_the_local_port(runner, start_agent, services):
    udp = services.udp_echo()
    start_agent(runner.url, "--status-port", udp.port)
    s = runner.accept(T(5))
    s.open_udp(1, udp.port, T(5))
    s.send_msg(DATA, UDP, 1, 0, b"datagram")
    m = s.recv_msg(1, T(5))
    assert (m.type, m.payload) == (DATA, b"datagram"), describe_full(m)


@pytest.mark.parametrize("request_bytes,code", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /status HTTP/1.1\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n", 431),
    (b"GET /status HTTP/1.1\r\nBad Header\r\n\r\n", 400),
])
def test_bad_requests_get_4xx(status_agent, request_bytes, code):
    a, s = status_agent
    assert ask(s, 1, request_bytes)[0] == code
    a.assert_alive()


def test_unfinished_request_is_closed_after_a_timeout(status_agent):
    a, s = status_agent
    s.open_tcp(1, STATUS, T(5))
    s.send_data(1, b"GET /status HTTP/1.1\r\n")  # never ends
    start = time.monotonic()
    data, close = s.recv_until_close(1, T(15))
    assert close.type == CLOSE and data == b""
    assert time.monotonic() - start >= 4  # TC_STATUS_TIMEOUT_MS, 5 s
    assert get(s, 2, "/healthz")[0] == 200  # the slot is free again


def test_busy_exchanges_get_error_then_recover(status_agent):
    a, s = status_agent
    for cid in range(1, 5):  # TC_STATUS_CONNS = 4, all left hanging
        s.open_tcp(cid, STATUS, T(5))
    s.send_msg(CONNECT, TCP, 5, STATUS)
    m = s.recv_msg(5, T(5))
    assert m.type == ERROR and b"refused" in m.payload.lower(), describe_full(m)
    s.send_msg(CLOSE, TCP, 1)
    deadline = time.monotonic() + T(5)
    while True:  # the agent frees the exchange once it sees the close
        s.send_msg(CONNECT, TCP, 6, STATUS)
        m = s.recv_msg(6, T(5))
        if m.type == CONNECTED:
            break
        assert m.type == ERROR and time.monotonic() < deadline, describe_full(m)
        time.sleep(0.05)
    s.send_data(6, b"GET /healthz HTTP/1.1\r\n\r\n")
    data, close = s.recv_until_close(6, T(10))
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"ok\n")
    a.assert_alive()


@pytest.mark.core
def test_sigusr1_logs_the_status(status_agent, services):
    a, s = status_agent
    echo = services.echo()
    s.open_tcp(3, echo.port, T(5))
    a.signal(signal.SIGUSR1)
    deadline = time.monotonic() + T(5)
    while "status conn id=3" not in a.log():
        assert time.monotonic() < deadline, a.log()[-2000:]
        time.sleep(0.05)
    log = a.log()
    assert re.search(r"status state=open .*connections=1 ", log), log[-2000:]
    assert re.search(r"status conn id=3 proto=tcp port=%d state=open" % echo.port, log)
    assert TOKEN not in log
    a.assert_alive()


def test_sigusr1_while_waiting_to_reconnect(start_agent):
    a = start_agent("ws://127.0.0.1:1", "--reconnect-delay", 30)
    deadline = time.monotonic() + T(5)
    while "reconnecting in" not in a.log():
        assert time.monotonic() < deadline, a.log()
        time.sleep(0.05)
    a.signal(signal.SIGUSR1)
    while "status state=waiting" not in a.log():
        assert time.monotonic() < deadline + T(5), a.log()
        time.sleep(0.05)
    a.assert_alive()


@pytest.mark.parametrize("args,what", [
    (("--status-port", "0"), "--status-port"),
    (("--status-port", "65536"), "--status-port"),
    (("--status-port", "http"), "--status-port"),
    (("--log-ring", "-1"), "--log-ring"),
    (("--log-ring", "2000000"), "--log-ring"),
])
def test_bad_status_options(args, what):
    r = agent_mod.run("-r", "ws://127.0.0.1:1", "-c", "x", *args)
    assert r.returncode == 2 and what in r.stderr, r
    assert len(r.stderr.strip().splitlines()) == 1


def test_status_port_from_the_environment(runner, start_agent):
    start_agent(runner.url, env=agent_mod.clean_env(STATUS_PORT=STATUS, LOG_RING=4096))
    s = runner.accept(T(5))
    assert get(s, 1, "/healthz")[0] == 200
