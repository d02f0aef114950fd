"""How the agent reaches the runner: its own resolver (hosts file, DNS with
search domains), HTTP CONNECT proxies (--proxy, HTTP(S)_PROXY, NO_PROXY,
credentials, refusals), and --check."""
import base64
import os
import socket
import socketserver
import struct
import tempfile
import threading
import time

import pytest

import agent as agent_mod
from agent import T
import certs
import fake_runner as fr

DNS_ADDR = "127.0.0.77"  # a loopback address of its own: port 53 needs root


# ---------------------------------------------------------------------------
# A DNS server for the tests


class FakeDns:
    """UDP DNS on DNS_ADDR:53: A records from `names`, NXDOMAIN otherwise;
    `asked` records (name, qtype). silent=True drops every query."""

    def __init__(self, names, silent=False):
        self.names = {k.lower(): v for k, v in names.items()}
        self.silent = silent
        self.asked = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((DNS_ADDR, 53))
        except PermissionError:
            self.sock.close()
            pytest.skip("binding a DNS port needs root (CI runs as root)")
        self.sock.settimeout(0.2)
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            try:
                pkt, addr = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            qid, flags, qd = struct.unpack(">HHH", pkt[:6])
            off, labels = 12, []
            while pkt[off]:
                labels.append(pkt[off + 1:off + 1 + pkt[off]].decode())
                off += 1 + pkt[off]
            qtype, = struct.unpack(">H", pkt[off + 1:off + 3])
            question = pkt[12:off + 5]
            name = ".".join(labels).lower()
            self.asked.append((name, qtype))
            if self.silent:
                continue
            ip = self.names.get(name)
            rcode = 0 if ip is not None else 3
            answers = b""
            if ip is not None and qtype == 1:
                answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
            head = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, 1 if answers else 0, 0, 0)
            self.sock.sendto(head + question + answers, addr)

    def close(self):
        self._stop = True
        self.sock.close()
        self._t.join(2)


@pytest.fixture
def dns_env(tmp_path):
    """(make(names, silent=False, search="", ndots=None) -> (FakeDns, env))"""
    made = []

    def make(names, silent=False, search="", ndots=None, hosts=""):
        dns = FakeDns(names, silent)
        made.append(dns)
        conf = tmp_path / "resolv.conf"
        lines = ["nameserver %s" % DNS_ADDR]
        if search:
            lines.append("search " + search)
        lines.append("options timeout:1 attempts:1" + (" ndots:%d" % ndots if ndots else ""))
        conf.write_text("\n".join(lines) + "\n")
        hosts_file = tmp_path / "hosts"
        hosts_file.write_text(hosts)
        return dns, agent_mod.clean_env(RESOLV_CONF=str(conf), HOSTS_FILE=str(hosts_file))

    yield make
    for d in made:
        d.close()


def test_resolves_through_dns_with_search_domains(runner, start_agent, dns_env):
    dns, env = dns_env({"runner.corp.test": "127.0.0.1"}, search="corp.test")
    start_agent("ws://runner:%d" % runner.port, env=env)
    runner.accept(T(5))
    names = [n for n, _ in dns.asked]
    assert "runner.corp.test" in names, dns.asked
    assert {t for n, t in dns.asked if n == "runner.corp.test"} == {1, 28}  # A and AAAA


def test_name_with_enough_dots_is_asked_as_given_first(runner, start_agent, dns_env):
    dns, env = dns_env({"runner.example.test": "127.0.0.1"}, search="corp.test")
    start_agent("ws://runner.example.test:%d" % runner.port, env=env)
    runner.accept(T(5))
    assert dns.asked[0][0] == "runner.example.test", dns.asked
    assert not any(n.endswith("corp.test") for n, _ in dns.asked)


def test_hosts_file_wins_and_localhost_needs_no_file(runner, start_agent, dns_env):
    dns, env = dns_env({}, hosts="# comment\n127.0.0.1\trunner-h alias\n")
    start_agent("ws://runner-h:%d" % runner.port, env=env)
    runner.accept(T(5))
    assert dns.asked == []
    env2 = dict(env, HOSTS_FILE="/nonexistent/hosts")
    start_agent("ws://localhost:%d" % runner.port, cid="other", env=env2)
    runner.accept(T(5))
    assert dns.asked == []


def test_unknown_name_and_silent_nameserver_are_logged(start_agent, dns_env):
    dns, env = dns_env({})
    a = start_agent("ws://nosuch:1", "--max-reconnect", "1", env=env)
    assert a.wait(T(10)) == 1
    assert 'resolve failed host=nosuch reason="no such host"' in a.log()
    dns.close()
    dns2, env2 = dns_env({}, silent=True)
    a = start_agent("ws://quiet:1", "--max-reconnect", "1", env=env2)
    assert a.wait(T(10)) == 1
    assert "no answer from nameserver %s" % DNS_ADDR in a.log(), a.log()


# ---------------------------------------------------------------------------
# An HTTP CONNECT proxy for the tests


class Proxy(socketserver.ThreadingTCPServer):
    """CONNECT host:port -> tunnel; answer = None (tunnel) or raw bytes to
    send instead; auth = expected "user:pass" or None."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, answer=None, auth=None):
        self.answer, self.auth, self.requests = answer, auth, []
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self):
        return self.server_address[1]

    def close(self):
        self.shutdown()
        self.server_close()


class ProxyHandler(socketserver.BaseRequestHandler):
    def handle(self):
        c = self.request
        c.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head:
            d = c.recv(4096)
            if not d:
                return
            head += d
        lines = head.split(b"\r\n")
        self.server.requests.append(lines)
        if self.server.answer is not None:
            c.sendall(self.server.answer)
            return
        if self.server.auth is not None:
            want = b"Proxy-Authorization: Basic " + base64.b64encode(self.server.auth.encode())
            if want not in lines:
                c.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                return
        host, port = lines[0].split()[1].rsplit(b":", 1)
        up = socket.create_connection((host.strip(b"[]").decode(), int(port)), 5)
        c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        c.settimeout(None)
        def pipe(a, b):
            try:
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    b.sendall(d)
            except OSError:
                pass
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        t = threading.Thread(target=pipe, args=(up, c), daemon=True)
        t.start()
        pipe(c, up)
        t.join(5)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A root CA and a runner certificate for runner.test (EC keys: fast)."""
    p = certs.Pki(str(tmp_path_factory.mktemp("pki")))
    p.root = p.ca("root", key="ec")
    p.leaf = p.root.issue("runner", dns=["runner.test"], key="ec")
    return p


@pytest.fixture
def proxy():
    made = []

    def make(**kw):
        p = Proxy(**kw)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


@pytest.mark.core
def test_proxy_flag_with_credentials(runner, start_agent, proxy, services):
    p = proxy(auth="bob:s3cr:et")
    a = start_agent(runner.url, "--proxy", "http://bob:s3cr%%3Aet@127.0.0.1:%d" % p.port)
    s = runner.accept(T(5))
    assert p.requests and p.requests[0][0] == ("CONNECT 127.0.0.1:%d HTTP/1.1" % runner.port).encode()
    echo = services.echo()
    s.open_tcp(1, echo.port, T(5))
    s.send_msg(fr.DATA, fr.TCP, 1, 0, b"via proxy")
    assert s.recv_data(1, 9, T(5)) == b"via proxy"
    assert "s3cr" not in a.log() and "Ym9i" not in a.log()


def test_http_proxy_from_environment_and_no_proxy(runner, start_agent, proxy):
    p = proxy()
    env = agent_mod.clean_env(HTTP_PROXY="127.0.0.1:%d" % p.port)
    start_agent(runner.url, env=env)
    runner.accept(T(5))
    assert len(p.requests) == 1
    env = agent_mod.clean_env(HTTP_PROXY="127.0.0.1:%d" % p.port, NO_PROXY="example.org,127.0.0.1")
    start_agent(runner.url, cid="direct", env=env)
    runner.accept(T(5))
    assert len(p.requests) == 1  # bypassed


def test_https_proxy_for_wss_keeps_tls_end_to_end(start_agent, proxy, pki):
    with fr.FakeRunner(ssl=certs.server_context(pki.leaf)) as r:
        p = proxy()
        env = agent_mod.clean_env(HTTPS_PROXY="http://127.0.0.1:%d" % p.port,
                                  HTTP_PROXY="http://127.0.0.1:1")
        start_agent(r.url, "--ca-file", pki.root.cert, "--tls-server-name", "runner.test",
                    env=env)
        r.accept(T(5))
        assert len(p.requests) == 1


@pytest.mark.parametrize("answer,why", [
    (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n", "HTTP 407"),
    (b"HTTP/1.1 403 Forbidden\r\n\r\n", "HTTP 403"),
    (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", "HTTP 502"),
    (b"SSH-2.0-OpenSSH\r\n", "not HTTP"),
])
def test_refusing_proxy_is_logged_and_retried(runner, start_agent, proxy, answer, why):
    p = proxy(answer=answer)
    a = start_agent(runner.url, "--proxy", "http://127.0.0.1:%d" % p.port)
    deadline = time.monotonic() + T(5)
    while len(p.requests) < 2:
        assert time.monotonic() < deadline, a.log()
        time.sleep(0.05)
    assert "proxy tunnel failed" in a.log() and why in a.log(), a.log()
    a.assert_alive()


def test_bad_proxy_url_is_a_start_up_error():
    r = agent_mod.run("-r", "ws://h:1", "-c", "x", "--proxy", "https://u:pw@p:1")
    assert r.returncode == 2 and "--proxy" in r.stderr and "pw" not in r.stderr, r
    r = agent_mod.run("-r", "ws://h:1", "-c", "x", env=agent_mod.clean_env(HTTP_PROXY="ftp://p"))
    assert r.returncode == 2 and "HTTP_PROXY" in r.stderr, r


# ---------------------------------------------------------------------------
# --check


def check(*args, env=None):
    return agent_mod.run("--check", *args, env=env, timeout=20)


def steps(out):
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}


@pytest.mark.core
def test_check_against_a_good_runner_keeps_the_live_tunnel(runner, start_agent):
    start_agent(runner.url)
    live = runner.accept(T(5))
    r = check("-r", runner.url, "-c", agent_mod_cid())
    assert r.returncode == 0, r
    st = steps(r.stdout)
    assert st == {"resolve": "ok", "connect": "ok", "probe": "ok", "verdict": "ok"}, r.stdout
    # No second tunnel was registered, and the live one still serves.
    assert runner.try_accept(T(0.5)) is None
    assert live.ping(T(5))
    assert live.ended_at is None


def agent_mod_cid():
    import conftest
    return conftest.CID


class HttpRefuser(socketserver.ThreadingTCPServer):
    """Answers every request with one HTTP status, as a runner that refuses
    (a reverse proxy's 403, a wrong base path's 404)."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, status):
        self.status = status
        super().__init__(("127.0.0.1", 0), HttpRefuserHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class HttpRefuserHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(5)
        head = b""
        while b"\r\n\r\n" not in head:
            d = self.request.recv(4096)
            if not d:
                return
            head += d
        self.request.sendall(b"HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                             % self.server.status)


@pytest.mark.parametrize("status,why", [(b"404 Not Found", "check the runner URL"),
                                        (b"403 Forbidden", "check --token"),
                                        (b"101 Switching Protocols", "cannot speak")])
def test_check_against_a_refusing_runner(status, why):
    srv = HttpRefuser(status)
    try:
        r = check("-r", "ws://127.0.0.1:%d" % srv.server_address[1], "-c", "box")
    finally:
        srv.shutdown()
        srv.server_close()
    assert r.returncode == 1, r
    st = steps(r.stdout)
    assert st["probe"] == "FAIL" and st["verdict"] == "FAIL", r.stdout
    assert status.decode() in r.stdout and why in r.stdout, r.stdout


def test_check_when_the_runner_closes_at_once(runner):
    runner.refuse = (404, b"no such tunnel")  # the fake runner then just closes
    r = check("-r", runner.url, "-c", "box")
    assert r.returncode == 1
    assert steps(r.stdout)["probe"] == "FAIL" and "no answer to the probe" in r.stdout


def test_check_against_a_dead_address():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = check("-r", "ws://127.0.0.1:%d" % port, "-c", "box")
    assert r.returncode == 1
    st = steps(r.stdout)
    assert st["connect"] == "FAIL" and st["verdict"] == "FAIL", r.stdout
    assert "connection refused" in r.stdout


def test_check_tls_good_and_wrong_certificate(pki):
    with fr.FakeRunner(ssl=certs.server_context(pki.leaf)) as r:
        ok = check("-r", r.url, "-c", "box", "--ca-file", pki.root.cert,
                   "--tls-server-name", "runner.test")
        assert ok.returncode == 0, ok
        assert steps(ok.stdout)["tls"] == "ok" and "suite=" in ok.stdout
        bad = check("-r", r.url, "-c", "box", "--ca-file", pki.root.cert,
                    "--tls-server-name", "other.test")
        assert bad.returncode == 1, bad
        assert steps(bad.stdout)["tls"] == "FAIL" and "host name mismatch" in bad.stdout
