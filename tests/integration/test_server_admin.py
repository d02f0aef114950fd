"""tunnel-server --admin: /healthz, /status (JSON), /metrics (Prometheus text
format 0.0.4), the HTML page (in headless Chromium), HTTP errors, slow and
surplus clients.

The server under test comes from TUNNEL_SERVER (default: the host build)
and runs behind TUNNEL_SERVER_RUN (default: TUNNEL_CLIENT_RUN, e.g. qemu),
the agent from TUNNEL_CLIENT (see agent.py). One server with a real agent,
a raw WebSocket agent with a hostile User-Agent and an expose to a local
echo service serves the read-only tests; the tests that tie up the endpoint
(slow clients, too many connections) get a server of their own.
"""
import datetime
import json
import os
import re
import resource
import shlex
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

import agent as agent_mod
import fake_runner as fr

ROOT = agent_mod.ROOT
SERVER = os.environ.get(
    "TUNNEL_SERVER", os.path.join(ROOT, "build", "x86_64-linux-musl", "tunnel-server")
)
SERVER_RUN = shlex.split(os.environ.get("TUNNEL_SERVER_RUN",
                                        os.environ.get("TUNNEL_CLIENT_RUN", "")))
# Either program emulated (or under valgrind) makes every wait longer.
SLOW = max(agent_mod.SLOW, (6.0 if "valgrind" in SERVER_RUN[0] else 4.0) if SERVER_RUN else 1.0)


def T(seconds):
    """A wait of `seconds` on the host, scaled for emulated/valgrind runs."""
    return seconds * SLOW

TOKEN = "s3cret-Token-4dm1n"
SERVER_ENV_VARS = (
    "TUNNEL_CONFIG", "TUNNEL_LISTEN", "TLS_CERT", "TLS_KEY", "TUNNEL_EXPOSE",
    "TUNNEL_TOKEN", "TUNNEL_TOKEN_FILE", "TUNNEL_NO_AUTH", "TUNNEL_ADMIN", "LOG_LEVEL",
    "MAX_MESSAGE", "MAX_AGENTS", "MAX_CONNECTIONS", "UDP_IDLE_TIMEOUT", "STALL_TIMEOUT",
    "PING_INTERVAL", "PING_TIMEOUT",
)
# A User-Agent that must come out escaped everywhere: markup, quotes, a
# backslash, a control byte and a byte that is not UTF-8.
HOSTILE_UA = b"<b>x</b>\"q\"&'\\ \x01\xff"
HOSTILE_UA_TEXT = "<b>x</b>\"q\"&'\\ \x01\ufffd"


def bound(name):
    """A limit from src/common/bounds.h, so the tests follow it."""
    with open(os.path.join(ROOT, "src", "common", "bounds.h")) as f:
        m = re.search(r"^#define %s (\d+)\s*$" % name, f.read(), re.M)
    assert m, "no %s in bounds.h" % name
    return int(m.group(1))


ADMIN_CONNS = bound("TS_ADMIN_CONNS")
ADMIN_TIMEOUT = bound("TS_ADMIN_TIMEOUT_MS") / 1000.0
REQUEST_MAX = bound("TS_ADMIN_REQUEST_MAX")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(text, n=40):
    return "\n".join(text.splitlines()[-n:])


class Server:
    """A running tunnel-server; stderr goes to a file."""

    started = []  # every server, for the log tails of a failed test

    def __init__(self, *args, nofile=None):
        Server.started.append(self)
        self.port = free_port()
        self.admin = free_port()
        self._log = tempfile.TemporaryFile(mode="w+b")
        env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV_VARS}
        self.args = SERVER_RUN + [SERVER, "--listen", "127.0.0.1:%d" % self.port,
                     "--admin", "127.0.0.1:%d" % self.admin, "--log-level", "debug"]
        self.args += [str(a) for a in args]
        limit = None
        if nofile is not None:
            def limit():
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen(agent_mod._PDEATHSIG + self.args, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self._log, preexec_fn=limit)
        deadline = time.monotonic() + T(10)
        while True:
            assert self.proc.poll() is None, "server exited:\n" + self.log()
            try:
                # A whole exchange: once its answer is read, the probe no
                # longer counts toward the endpoint's connection limit.
                with socket.create_connection(("127.0.0.1", self.admin), 1) as probe:
                    probe.settimeout(T(2))
                    probe.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                    while probe.recv(4096):
                        pass
                break
            except OSError:
                assert time.monotonic() < deadline, "admin port never opened:\n" + self.log()
                time.sleep(0.05)

    def log(self):
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def assert_alive(self):
        assert self.proc.poll() is None, "server exited %s:\n%s" % (
            self.proc.returncode, tail(self.log()))

    def stop(self):
        """SIGTERM, then SIGKILL if it lingers; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(T(5))
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(T(5))

    def check_exit(self, rc):
        """A clean stop: exit 0 and no sanitizer report (ASan/UBSan builds)."""
        log = self.log()
        assert rc == 0, "server exit code %s:\n%s" % (rc, tail(log))
        assert "Sanitizer" not in log and "runtime error:" not in log, tail(log, 80)


class Response:
    def __init__(self, raw):
        self.raw = raw
        head, sep, self.body = raw.partition(b"\r\n\r\n")
        assert sep, "no header block in %r" % raw[:200]
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0])
        assert m, "bad status line %r" % lines[0]
        self.status = int(m.group(1))
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def text(self):
        return self.body.decode("utf-8")  # strict: the server writes UTF-8 only


def exchange(port, data, timeout=5.0):
    """Send data on a new connection and read until the server closes it.
    Every answer must carry Content-Length and Connection: close."""
    with socket.create_connection(("127.0.0.1", port), T(timeout)) as s:
        s.settimeout(T(timeout))
        s.sendall(data)
        chunks = []
        while True:
            d = s.recv(65536)
            if not d:
                break
            chunks.append(d)
    r = Response(b"".join(chunks))
    assert r.headers.get("connection") == "close"
    assert "content-length" in r.headers
    return r


def get(port, path, method="GET"):
    r = exchange(port, ("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: test\r\n\r\n"
                        % (method, path, port)).encode())
    if method != "HEAD":
        assert int(r.headers["content-length"]) == len(r.body)
    return r


def status(srv):
    r = get(srv.admin, "/status")
    assert r.status == 200
    assert r.headers["content-type"].startswith("application/json")
    return json.loads(r.text())


def wait_for(what, fn, timeout):
    deadline = time.monotonic() + T(timeout)
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def raw_agent(port, cid, user_agent, token):
    """A WebSocket upgrade by hand (whatever User-Agent bytes we like); the
    socket is kept open so the server lists the agent."""
    s = socket.create_connection(("127.0.0.1", port), T(5))
    s.settimeout(T(5))
    s.sendall(b"GET /ws/tunnel/" + cid.encode() + b" HTTP/1.1\r\nHost: x\r\n"
              b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
              b"User-Agent: " + user_agent + b"\r\n"
              b"Authorization: Bearer " + token.encode() + b"\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got:
        d = s.recv(4096)
        assert d, "upgrade refused: %r" % got
        got += d
    assert got.startswith(b"HTTP/1.1 101 "), got
    return s


@pytest.fixture(autouse=True)
def _server_logs_on_failure(request):
    """A failed test prints the log tail of every server it used."""
    first = len(Server.started)
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        new = Server.started[first:]
        for srv in [x for x in Server.started if x in new or x.proc.poll() is None]:
            print("---- server %s: log tail\n%s" % (" ".join(srv.args), tail(srv.log(), 80)))


@pytest.fixture(scope="module")
def stack():
    """Server (token required) + real agent box1 + raw agent evil1 + an
    expose of box1's echo service."""
    echo = fr.TcpEcho()
    pub = free_port()
    expose = "tcp:127.0.0.1:%d=box1:%d" % (pub, echo.port)
    srv = Server("--token", TOKEN, "--expose", expose)
    agent = None
    evil = None
    try:
        agent = agent_mod.spawn("--runner-url", "ws://127.0.0.1:%d" % srv.port,
                                "--container-id", "box1", "--log-level", "debug",
                                "--token", TOKEN, "--reconnect-delay", "0.1")
        evil = raw_agent(srv.port, "evil1", HOSTILE_UA, TOKEN)
        wait_for("agent box1 open", lambda: any(
            a["id"] == "box1" and a["state"] == "open" for a in status(srv)["agents"]), 10)
        srv.expose_name = expose
        srv.pub = pub
        srv.echo = echo
        yield srv
        srv.assert_alive()
    except BaseException:
        print("---- server log tail\n" + tail(srv.log(), 80))
        if agent is not None:
            print("---- agent log tail\n" + tail(agent.log(), 40))
        raise
    finally:
        if evil is not None:
            evil.close()
        if agent is not None:
            agent.stop()
        rc = srv.stop()
        echo.close()
    srv.check_exit(rc)


@pytest.fixture
def server():
    """A server of one's own (tests that tie up the admin endpoint)."""
    srv = Server()
    try:
        yield srv
        srv.assert_alive()
    except BaseException:
        print("---- server log tail\n" + tail(srv.log(), 80))
        raise
    finally:
        rc = srv.stop()
    srv.check_exit(rc)


def test_healthz(stack):
    r = get(stack.admin, "/healthz")
    assert r.status == 200
    assert r.body == b"ok\n"
    assert r.headers["content-length"] == "3"
    assert r.headers["content-type"].startswith("text/plain")
    # HTTP/1.0, bare LF line ends, a query string: still the same answer.
    r = exchange(stack.admin, b"GET /healthz?probe=1 HTTP/1.0\n\n")
    assert (r.status, r.body) == (200, b"ok\n")


def test_status_json(stack):
    st = status(stack)
    assert set(st) >= {"version", "uptime_s", "listen", "tls", "agents", "exposes", "counters"}
    assert isinstance(st["version"], str) and st["version"]
    assert isinstance(st["uptime_s"], int) and st["uptime_s"] >= 0
    assert st["listen"] == "127.0.0.1:%d" % stack.port
    assert st["tls"] is False
    agents = {a["id"]: a for a in st["agents"]}
    box = agents["box1"]
    assert box["user_agent"].startswith("tunnel-client/")
    assert box["addr"] == "127.0.0.1"
    assert box["state"] == "open"
    since = datetime.datetime.strptime(box["connected_since"], "%Y-%m-%dT%H:%M:%SZ")
    now = datetime.datetime.utcnow()
    assert abs((now - since).total_seconds()) < 120, box["connected_since"]
    for k in ("connections", "bytes_in", "bytes_out"):
        assert isinstance(box[k], int) and box[k] >= 0
    # The hostile User-Agent comes back intact as JSON text (the body was
    # decoded as strict UTF-8 and parsed, so it was escaped right).
    assert agents["evil1"]["user_agent"] == HOSTILE_UA_TEXT
    assert br"\u0001" in get(stack.admin, "/status").body
    ex = {e["name"]: e for e in st["exposes"]}[stack.expose_name]
    assert ex["proto"] == "tcp"
    assert ex["bind"] == "127.0.0.1:%d" % stack.pub
    assert ex["agent"] == "box1"
    assert ex["port"] == stack.echo.port
    assert ex["state"] == "ready"
    assert set(st["counters"]) == {
        "agents_accepted", "agents_refused", "agents_replaced", "public_accepted",
        "public_refused", "bytes_to_agents", "bytes_from_agents"}
    assert all(isinstance(v, int) for v in st["counters"].values())
    assert st["counters"]["agents_accepted"] >= 2


def test_status_counts_traffic(stack):
    before = status(stack)
    with socket.create_connection(("127.0.0.1", stack.pub), T(5)) as c:
        c.settimeout(T(5))
        c.sendall(b"hello admin")
        got = b""
        while len(got) < 11:
            d = c.recv(100)
            assert d, "echo through the tunnel ended early"
            got += d
        assert got == b"hello admin"
        during = status(stack)
        ex = {e["name"]: e for e in during["exposes"]}[stack.expose_name]
        assert ex["connections"] == 1
        assert {a["id"]: a for a in during["agents"]}["box1"]["connections"] == 1

    def after():
        st = status(stack)
        box = {a["id"]: a for a in st["agents"]}["box1"]
        ok = (st["counters"]["public_accepted"] == before["counters"]["public_accepted"] + 1
              and st["counters"]["bytes_to_agents"] >= before["counters"]["bytes_to_agents"] + 11
              and st["counters"]["bytes_from_agents"] >= before["counters"]["bytes_from_agents"] + 11
              and box["bytes_out"] >= 11 and box["bytes_in"] >= 11
              and {e["name"]: e for e in st["exposes"]}[stack.expose_name]["accepted"] >= 1)
        return st if ok else None

    wait_for("counters after one echo", after, 5)


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(,|$)')


def parse_metrics(text):
    """Text format 0.0.4, strictly: {name: {labels tuple: value}} and types."""
    types = {}
    helps = set()
    samples = {}
    for line in text.split("\n"):
        if not line:
            continue
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helps, "second HELP for " + name
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert typ in ("counter", "gauge", "untyped", "histogram", "summary"), line
            assert name not in types, "second TYPE for " + name
            assert name not in samples, "TYPE after samples of " + name
            types[name] = typ
            continue
        assert not line.startswith("#"), "stray comment %r" % line
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name, labels, value = m.groups()
        pairs = []
        if labels:
            pos = 0
            while pos < len(labels):
                lm = LABEL.match(labels, pos)
                assert lm, "bad labels in %r" % line
                pairs.append((lm.group(1), lm.group(2)))
                pos = lm.end()
        float(value)
        assert name in types, "no TYPE for " + name
        key = tuple(sorted(pairs))
        assert key not in samples.setdefault(name, {}), "duplicate series %r" % line
        samples[name][key] = float(value)
    assert set(types) == helps, "HELP and TYPE differ: %r" % (set(types) ^ helps)
    return types, samples


def test_metrics(stack):
    r = get(stack.admin, "/metrics")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert r.body.endswith(b"\n")
    types, m = parse_metrics(r.text())
    want = {
        "tunnel_server_agents": "gauge",
        "tunnel_server_agent_connections": "gauge",
        "tunnel_server_agents_accepted_total": "counter",
        "tunnel_server_agents_refused_total": "counter",
        "tunnel_server_agents_replaced_total": "counter",
        "tunnel_server_public_connections": "gauge",
        "tunnel_server_public_accepted_total": "counter",
        "tunnel_server_public_refused_total": "counter",
        "tunnel_server_bytes_total": "counter",
        "tunnel_server_agent_up": "gauge",
        "tunnel_server_build_info": "gauge",
        "process_cpu_seconds_total": "counter",
        "process_resident_memory_bytes": "gauge",
        "process_virtual_memory_bytes": "gauge",
        "process_open_fds": "gauge",
        "process_max_fds": "gauge",
        "process_start_time_seconds": "gauge",
    }
    for name, typ in want.items():
        assert types.get(name) == typ, name
    assert m["tunnel_server_agent_up"][(("agent", "box1"),)] == 1
    assert m["tunnel_server_agent_up"][(("agent", "evil1"),)] == 1
    assert m["tunnel_server_agents"][()] == 2
    assert m["tunnel_server_agent_connections"][()] >= 2
    assert m["tunnel_server_agents_accepted_total"][()] >= 2
    assert (("expose", stack.expose_name),) in m["tunnel_server_public_connections"]
    assert set(m["tunnel_server_bytes_total"]) == {
        (("direction", "to_agents"),), (("direction", "from_agents"),)}
    (build,) = m["tunnel_server_build_info"].items()
    labels = dict(build[0])
    assert build[1] == 1 and labels["version"] == status(stack)["version"] and labels["target"]
    if not SERVER_RUN:  # qemu-user shows the guest a /proc/self/stat of zeros
        assert m["process_resident_memory_bytes"][()] > 0
        assert m["process_virtual_memory_bytes"][()] >= m["process_resident_memory_bytes"][()]
    assert m["process_open_fds"][()] >= 5  # listeners, agents, this request
    assert m["process_max_fds"][()] >= m["process_open_fds"][()]
    assert m["process_cpu_seconds_total"][()] >= 0
    start = m["process_start_time_seconds"][()]
    assert time.time() - 600 < start <= time.time() + 1, start


def test_errors(stack):
    r = get(stack.admin, "/nope")
    assert r.status == 404
    r = get(stack.admin, "/healthz/")
    assert r.status == 404
    r = exchange(stack.admin, b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert r.status == 405
    assert "GET" in r.headers["allow"]
    r = exchange(stack.admin, b"DELETE / HTTP/1.1\r\n\r\n")
    assert r.status == 405
    for garbage in (b"garbage\r\n\r\n", b"GET /\r\n\r\n", b"GET / HTTP/1.1\r\nNo colon\r\n\r\n",
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64)),
                    b"GET / HTTP/9.9\r\n\r\n"):
        r = exchange(stack.admin, garbage)
        assert r.status == 400, garbage
    # A header block over the limit: 431, read whole by the client even
    # though it sent far more than the server read.
    pad = b"X-Pad: " + b"a" * (REQUEST_MAX + 1000) + b"\r\n"
    r = exchange(stack.admin, b"GET / HTTP/1.1\r\n" + pad * 4 + b"\r\n")
    assert r.status == 431
    # Just under the limit is fine.
    head = b"GET /healthz HTTP/1.1\r\nX-Pad: "
    fill = REQUEST_MAX - len(head) - 4
    r = exchange(stack.admin, head + b"a" * fill + b"\r\n\r\n")
    assert (r.status, r.body) == (200, b"ok\n")
    r = exchange(stack.admin, head + b"a" * (fill + 1) + b"\r\n\r\n")
    assert r.status == 431
    # HEAD: the headers of GET, no body.
    r = get(stack.admin, "/status", method="HEAD")
    assert r.status == 200 and r.body == b"" and int(r.headers["content-length"]) > 100
    stack.assert_alive()
    assert get(stack.admin, "/healthz").status == 200


def test_no_token_anywhere(stack):
    for path in ("/", "/status", "/metrics", "/healthz"):
        body = get(stack.admin, path).body
        assert TOKEN.encode() not in body, path
        assert b"Bearer" not in body, path
    assert TOKEN not in stack.log()


def chromium():
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    pytest.fail("chromium is not installed: run scripts/install-build-deps.sh "
                "(or apt-get install chromium) to test the admin page in a browser")


def test_page_in_chromium(stack, tmp_path):
    browser = chromium()
    raw = get(stack.admin, "/")
    assert raw.status == 200
    assert raw.headers["content-type"].startswith("text/html")
    html = raw.text()
    # Self-contained: nothing to fetch, and it refreshes itself.
    assert not re.search(r"<(script|link|img|iframe)\b", html, re.I)
    assert not re.search(r"(src|href)=\"?(https?:)?//", html, re.I)
    assert re.search(r"<meta http-equiv=\"?refresh\"? content=\"?5", html, re.I)
    assert TOKEN not in html
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--user-data-dir=%s" % (tmp_path / "profile"),
           "--dump-dom", "http://127.0.0.1:%d/" % stack.admin]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=T(90), stdin=subprocess.DEVNULL,
                           start_new_session=True)
    except subprocess.TimeoutExpired:
        pytest.fail("chromium did not finish within %ds" % T(90))
    dom = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, tail(p.stderr.decode("utf-8", "replace"))
    agents = re.search(r'<table id="agents">(.*?)</table>', dom, re.S)
    assert agents, "no agents table in the DOM:\n" + dom[:2000]
    rows = re.findall(r"<tr>(.*?)</tr>", agents.group(1), re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows]
    by_id = {c[0]: c for c in cells if c}
    assert "box1" in by_id, dom[:2000]
    assert by_id["box1"][2].startswith("tunnel-client/")
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", by_id["box1"][4])
    # The hostile User-Agent is text in the browser, not markup.
    assert "evil1" in by_id
    assert by_id["evil1"][2].startswith("&lt;b&gt;x&lt;/b&gt;"), by_id["evil1"]
    assert "<b>x</b>" not in dom
    exposes = re.search(r'<table id="exposes">(.*?)</table>', dom, re.S)
    assert exposes and stack.expose_name in exposes.group(1)


def test_slow_clients_are_closed(server):
    silent = socket.create_connection(("127.0.0.1", server.admin), T(5))
    partial = socket.create_connection(("127.0.0.1", server.admin), T(5))
    partial.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    for s in (silent, partial):
        s.settimeout(T(ADMIN_TIMEOUT + 3))
        try:
            got = s.recv(100)
        except ConnectionResetError:
            got = b""
        except socket.timeout:
            pytest.fail("a client that sent no whole request was not closed")
        assert got == b""
        s.close()
    took = time.monotonic() - t0
    assert ADMIN_TIMEOUT - 1 <= took <= T(ADMIN_TIMEOUT + 2), took
    assert get(server.admin, "/healthz").status == 200


def closed_soon(s, wait):
    s.settimeout(wait)
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_too_many_connections(server):
    extra = 8
    idle = [socket.create_connection(("127.0.0.1", server.admin), T(5))
            for _ in range(ADMIN_CONNS + extra)]
    try:
        t0 = time.monotonic()
        # The surplus ones are accepted and closed at once; the first
        # ADMIN_CONNS wait for their request.
        closed = [closed_soon(s, 0.05) for s in idle]
        deadline = time.monotonic() + T(2)
        while sum(closed) < extra and time.monotonic() < deadline:
            closed = [c or closed_soon(s, 0.05) for c, s in zip(closed, idle)]
        assert sum(closed) == extra, closed
        assert not any(closed[:ADMIN_CONNS])
        # A request now finds the endpoint full: closed, not hung.
        with socket.create_connection(("127.0.0.1", server.admin), T(5)) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
            assert closed_soon(s, T(2))
        server.assert_alive()
        # Once the idle ones time out, requests are answered again.
        for s in idle[:ADMIN_CONNS]:
            assert closed_soon(s, max(0.1, t0 + T(ADMIN_TIMEOUT + 2) - time.monotonic()))
        assert get(server.admin, "/healthz").body == b"ok\n"
        assert "admin connection refused" in server.log()
    finally:
        for s in idle:
            s.close()
    assert status(server)["agents"] == []


def test_big_answer_to_a_slow_reader(server):
    # Enough agents with a User-Agent that grows when escaped for answers of
    # tens of KiB; a reader with a small window takes them a bit at a time,
    # so the server writes each one in many pieces.
    n = 150
    ua = b'tunnel-client/0 "' + b"\\" * 40 + b'" \x02' + b"x" * 40
    agents = [raw_agent(server.port, "a%03d" % i, ua, "") for i in range(n)]
    try:
        wait_for("%d agents listed" % n, lambda: len(status(server)["agents"]) == n, 10)
        for path in ("/status", "/", "/metrics"):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(T(10))
            s.connect(("127.0.0.1", server.admin))
            s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\n\r\n")
            chunks = []
            deadline = time.monotonic() + T(20)
            while True:
                assert time.monotonic() < deadline, "answer to a slow reader never ended"
                d = s.recv(2048)
                if not d:
                    break
                chunks.append(d)
                time.sleep(0.001)
            s.close()
            r = Response(b"".join(chunks))
            assert r.status == 200
            assert int(r.headers["content-length"]) == len(r.body)
            assert len(r.body) > (5000 if path == "/metrics" else 30000), path
            if path == "/status":
                st = json.loads(r.text())
                assert sorted(a["id"] for a in st["agents"]) == ["a%03d" % i for i in range(n)]
                assert all(a["user_agent"] == ua.decode() for a in st["agents"])
            elif path == "/metrics":
                types, m = parse_metrics(r.text())
                assert len(m["tunnel_server_agent_up"]) == n
    finally:
        for a in agents:
            a.close()


def test_admin_address_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV_VARS}
        p = subprocess.run(SERVER_RUN + [SERVER, "--listen", "127.0.0.1:%d" % free_port(),
                            "--admin", "127.0.0.1:%d" % port], env=env,
                           capture_output=True, text=True, timeout=T(10))
    assert p.returncode == 2
    assert "--admin 127.0.0.1:%d" % port in p.stderr


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(bool(SERVER_RUN), reason="an emulator or valgrind needs descriptors of its own")
def test_out_of_descriptors():
    # Room for a few connections only: accept() fails with EMFILE while the
    # rest wait in the listen queue. The endpoint rests instead of spinning
    # on its ever-readable listener, and serves again once descriptors free.
    srv = Server(nofile=8)
    try:
        conns = [socket.create_connection(("127.0.0.1", srv.admin), T(5)) for _ in range(8)]
        cpu0 = cpu_seconds(srv.proc.pid)
        time.sleep(2)
        assert cpu_seconds(srv.proc.pid) - cpu0 < 0.5
        srv.assert_alive()
        assert 0 < srv.log().count("admin accept failed") < 40
        for c in conns:
            c.close()
        wait_for("an answer", lambda: exchange_ok(srv.admin), 5)
    except BaseException:
        print("---- server log tail\n" + tail(srv.log(), 40))
        raise
    finally:
        rc = srv.stop()
    srv.check_exit(rc)


def exchange_ok(port):
    try:
        return get(port, "/healthz").body == b"ok\n"
    except (OSError, AssertionError):
        return False
