"""wss:// end to end: certificate verification, pins, --insecure, mutual
TLS, reconnects, and the start-up errors (exit 2) of the TLS options.

Certificates are made with the openssl CLI once per module (certs.py); the
fake runner serves them through Python's ssl module.
"""
import os
import shutil
import socket
import subprocess
import time

import pytest

import agent as agent_mod
from agent import T, clean_env
import certs
import fake_runner as fr

LARGE = 1 << 20
PIECE = 64 * 1024


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    p = certs.Pki(d)
    p.root = p.ca("root")                                  # RSA root
    p.inter = p.root.sub_ca("inter", key="ec")             # EC intermediate
    p.rsa = p.inter.issue("srv-rsa", dns=["localhost"], ips=["127.0.0.1"])
    p.ec = p.root.issue("srv-ec", dns=["localhost"], key="ec")
    p.ec384 = p.inter.issue("srv-ec384", dns=["localhost"], key="ec384")
    p.wrong_host = p.root.issue("srv-wrong", dns=["wrong.example"])
    p.expired = p.root.issue("srv-old", dns=["localhost"],
                             start="20200101000000Z", end="20210101000000Z")
    p.future = p.root.issue("srv-future", dns=["localhost"],
                            start="20990101000000Z", end="21000101000000Z")
    p.other_root = p.ca("other-root", key="ec")
    p.stranger = p.other_root.issue("srv-stranger", dns=["localhost"])
    p.selfsigned = p.self_signed("srv-self", dns=["localhost"], key="ec")
    p.client_ca = p.ca("client-ca", key="ec")
    p.client_rsa = p.client_ca.issue("client-rsa", key="rsa", client=True)
    p.client_ec = p.client_ca.issue("client-ec", key="ec", client=True)
    p.client_ec_sec1 = certs.traditional(p.client_ec.key, p.path("client-ec.sec1.key"), "ec")
    p.client_rsa_pkcs1 = certs.traditional(p.client_rsa.key, p.path("client-rsa.pkcs1.key"), "rsa")
    p.client_stranger = p.other_root.issue("client-stranger", key="ec", client=True)
    return p


@pytest.fixture
def tls_runner():
    """tls_runner(leaf, client_ca=None, **ssl_tweaks) -> a started FakeRunner
    serving wss:// with that certificate; checked and closed at teardown."""
    runners = []

    def make(leaf, client_ca=None, ctx=None):
        r = fr.FakeRunner(ssl=ctx or certs.server_context(leaf, client_ca))
        runners.append(r)
        return r

    yield make
    for r in runners:
        r.close()
    for r in runners:
        bad = r.violations()
        assert not bad, "protocol violations by the agent:\n" + "\n".join(bad)


def by_name(runner):
    """The runner's URL with the host name the certificates carry."""
    return runner.url.replace("127.0.0.1", "localhost")


def wait_log(a, text, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in a.log():
            return True
        if not a.alive():
            return text in a.log()
        time.sleep(0.05)
    return False


def env_without_ca(**extra):
    return clean_env(**extra)  # SSL_CERT_FILE and TLS_* are never inherited


def transfer_1mib(session, echo_port, cid=7):
    """CONNECT to a local echo service, DATA 1 MiB in 64 KiB pieces, and
    compare what comes back byte for byte."""
    data = os.urandom(LARGE)
    session.open_tcp(cid, echo_port, T(5))
    sender = session.send_background(fr.data_messages(cid, data, PIECE))
    back = session.recv_data(cid, LARGE, timeout=T(60))
    sender.result(T(60))
    assert back == data, "echoed bytes differ"


def fails_with(a, reason, timeout=10):
    """The agent (started with --max-reconnect 1) gives up with reason."""
    rc = a.wait(T(timeout))
    log = a.log()
    assert rc == 1, "agent did not give up (rc %s); log:\n%s" % (rc, agent_mod.tail(log))
    assert "TLS handshake failed" in log and reason in log, agent_mod.tail(log)


# ---------------------------------------------------------------------------
# A verified chain works end to end


@pytest.mark.parametrize("which", ["rsa", "ec", "ec384"])
def test_valid_chain_end_to_end(pki, which, tls_runner, start_agent, services):
    """RSA leaf under an EC intermediate (ECDHE_RSA), EC P-256 leaf under the
    RSA root (ECDHE_ECDSA), P-384 leaf: PING/PONG, then 1 MiB echoed exactly."""
    r = tls_runner(getattr(pki, which))
    a = start_agent(by_name(r), "--ca-file", pki.root.cert)
    s = r.accept(T(10))
    s.pingpong(timeout=T(5))
    transfer_1mib(s, services.echo().port)
    a.assert_alive()
    assert "--insecure" not in a.log()


@pytest.mark.parametrize("leaf,cipher", [
    ("rsa", "ECDHE-RSA-AES128-GCM-SHA256"),
    ("rsa", "ECDHE-RSA-AES256-GCM-SHA384"),
    ("rsa", "ECDHE-RSA-CHACHA20-POLY1305"),
    ("ec", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ("ec", "ECDHE-ECDSA-AES256-GCM-SHA384"),
    ("ec", "ECDHE-ECDSA-CHACHA20-POLY1305"),
])
def test_each_cipher_suite(pki, leaf, cipher, tls_runner, start_agent, services):
    """Every suite the agent offers works when the runner allows only it."""
    import ssl
    ctx = certs.server_context(getattr(pki, leaf))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(cipher)
    r = tls_runner(None, ctx=ctx)
    a = start_agent(by_name(r), "--ca-file", pki.root.cert)
    s = r.accept(T(10))
    s.pingpong(timeout=T(5))
    echo = services.echo()
    s.open_tcp(3, echo.port, T(5))
    data = os.urandom(200000)
    s.send_many(fr.data_messages(3, data, PIECE), T(10))
    assert s.recv_data(3, len(data), T(10)) == data
    assert "suite=" + cipher in a.log()


def test_self_signed_runner_certificate_as_ca_file(pki, tls_runner, start_agent):
    """The common small deployment: the runner's self-signed certificate is
    the CA file."""
    r = tls_runner(pki.selfsigned)
    start_agent(by_name(r), "--ca-file", pki.selfsigned.only)
    r.accept(T(10)).pingpong(timeout=T(5))


def test_ca_file_from_environment(pki, tls_runner, start_agent):
    """SSL_CERT_FILE works like --ca-file."""
    r = tls_runner(pki.rsa)
    start_agent(by_name(r), env=clean_env(SSL_CERT_FILE=pki.root.cert))
    r.accept(T(10)).pingpong(timeout=T(5))


def test_server_name_with_ip_url(pki, tls_runner, start_agent):
    """wss://127.0.0.1 with --tls-server-name localhost: SNI and the name
    check use the given name."""
    r = tls_runner(pki.ec)
    assert "127.0.0.1" in r.url
    start_agent(r.url, "--ca-file", pki.root.cert, "--tls-server-name", "localhost")
    r.accept(T(10)).pingpong(timeout=T(5))


def test_ip_url_without_server_name_is_exit_2(pki):
    """BearSSL checks DNS names only: an IP URL verified against a CA needs
    --tls-server-name (or a pin), and the error says so."""
    res = agent_mod.run("-r", "wss://127.0.0.1:9", "-c", "x", "--ca-file", pki.root.cert)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "--tls-server-name" in res.stderr, res.stderr


def test_reconnect_over_tls_after_runner_restart(pki, tls_runner, start_agent, services):
    r = tls_runner(pki.rsa)
    start_agent(by_name(r), "--ca-file", pki.root.cert)
    s = r.accept(T(10))
    s.pingpong(timeout=T(5))
    r.stop()
    r.start()
    s2 = r.accept(T(10))
    s2.pingpong(timeout=T(5))
    echo = services.echo()
    s2.open_tcp(1, echo.port, T(5))
    s2.send_msg(fr.DATA, fr.TCP, 1, 0, b"after restart")
    assert s2.recv_data(1, 13, T(5)) == b"after restart"


# ---------------------------------------------------------------------------
# Rejections: the reason in words, no upgrade request ever sent


@pytest.mark.parametrize("which,reason", [
    ("stranger", "unknown CA"),
    ("selfsigned", "unknown CA"),
    ("wrong_host", "host name mismatch"),
    ("expired", "certificate expired or not yet valid"),
    ("future", "certificate expired or not yet valid"),
])
def test_bad_certificate_rejected(pki, which, reason, tls_runner, start_agent):
    r = tls_runner(getattr(pki, which))
    a = start_agent(by_name(r), "--ca-file", pki.root.cert, "--max-reconnect", "1")
    fails_with(a, reason)
    assert r.attempts == [], "an upgrade request was sent over an unverified connection"


def test_system_bundle_is_the_default(pki, tls_runner, start_agent):
    """Without --ca-file the system bundle is loaded (no exit 2), and it does
    not know our test root."""
    if not any(os.path.exists(p) for p in ("/etc/ssl/certs/ca-certificates.crt",
                                            "/etc/ssl/cert.pem",
                                            "/etc/pki/tls/certs/ca-bundle.crt",
                                            "/etc/ssl/ca-bundle.pem")):
        pytest.skip("no system CA bundle here")
    r = tls_runner(pki.rsa)
    a = start_agent(by_name(r), "--max-reconnect", "1")
    fails_with(a, "unknown CA")


class SServer:
    """`openssl s_server` on a free port: unlike Python's asyncio TLS, it
    sends the alert that explains a refusal."""

    def __init__(self, leaf, *args):
        self.port = fr.free_port()
        cmd = ["openssl", "s_server", "-quiet", "-accept", "127.0.0.1:%d" % self.port,
               "-cert", leaf.only, "-key", leaf.key]
        if leaf.above:
            cmd += ["-cert_chain", leaf.above]
        self.proc = subprocess.Popen(cmd + list(args), stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + T(10)
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise AssertionError("openssl s_server did not start")

    @property
    def url(self):
        return "wss://localhost:%d" % self.port

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def s_server():
    servers = []

    def make(leaf, *args):
        s = SServer(leaf, *args)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def test_tls13_only_runner(pki, s_server, start_agent):
    """BearSSL speaks TLS 1.2 at most: a 1.3-only runner refuses, in words."""
    srv = s_server(pki.rsa, "-tls1_3")
    a = start_agent(srv.url, "--ca-file", pki.root.cert, "--max-reconnect", "1")
    fails_with(a, "runner sent TLS alert protocol_version (70)")


@pytest.mark.parametrize("curve", ["P-256", "P-384", "X25519", "P-521"])
def test_each_ecdhe_curve(pki, curve, s_server, start_agent):
    """The key exchange on each curve the agent offers (openssl s_server,
    which can be limited to one group; it speaks no WebSocket, so only the
    handshake is checked)."""
    srv = s_server(pki.ec, "-groups", curve, "-tls1_2")
    a = start_agent(srv.url, "--ca-file", pki.root.cert)
    assert wait_log(a, "TLS handshake done", T(10)), agent_mod.tail(a.log())


def test_alert_from_runner_refusing_client(pki, s_server, start_agent):
    """A runner that requires a client certificate and says so with an alert."""
    srv = s_server(pki.rsa, "-Verify", "1", "-verify_return_error", "-CAfile",
                   pki.client_ca.cert)
    a = start_agent(srv.url, "--ca-file", pki.root.cert, "--max-reconnect", "1")
    fails_with(a, "runner sent TLS alert handshake_failure (40); the runner asked for a "
                  "client certificate (--tls-cert, --tls-key)")


def test_plain_runner_behind_wss_url(start_agent, runner):
    """A wss:// URL pointing at a plain ws:// runner fails the handshake."""
    url = runner.url.replace("ws://", "wss://")
    a = start_agent(url, "--insecure", "--max-reconnect", "1")
    rc = a.wait(T(10))
    assert rc == 1 and "TLS handshake failed" in a.log(), agent_mod.tail(a.log())
    assert not any(p.startswith("/ws/tunnel/") for p, _ in runner.attempts)


# ---------------------------------------------------------------------------
# Pins


def test_pin_match_without_any_ca(pki, tls_runner, start_agent, services):
    """A self-signed runner, no CA at all, an IP URL: the pin alone decides."""
    r = tls_runner(pki.selfsigned)
    a = start_agent(r.url, "--tls-pin", certs.pin_of(pki.selfsigned.only), env=env_without_ca())
    s = r.accept(T(10))
    s.pingpong(timeout=T(5))
    transfer_1mib(s, services.echo().port)
    assert "--insecure" not in a.log()


def test_pin_of_ca_issued_leaf_and_list(pki, tls_runner, start_agent):
    """A pin list (rotation) where the second entry matches an RSA leaf."""
    r = tls_runner(pki.rsa)
    pins = certs.pin_of(pki.ec.only) + "," + certs.pin_of(pki.rsa.only)
    start_agent(by_name(r), env=clean_env(TLS_PIN=pins))
    r.accept(T(10)).pingpong(timeout=T(5))


def test_pin_mismatch(pki, tls_runner, start_agent):
    r = tls_runner(pki.selfsigned)
    a = start_agent(r.url, "--tls-pin", certs.pin_of(pki.ec.only), "--max-reconnect", "1")
    fails_with(a, "public key does not match --tls-pin")
    assert r.attempts == []


# ---------------------------------------------------------------------------
# --insecure


def test_insecure_warns_at_every_connect(pki, tls_runner, start_agent):
    r = tls_runner(pki.selfsigned)
    a = start_agent(r.url, "--insecure")
    r.accept(T(10)).pingpong(timeout=T(5))
    r.stop()
    r.start()
    r.accept(T(10)).pingpong(timeout=T(5))
    warnings = [l for l in a.log().splitlines() if "WARN" in l and "--insecure" in l]
    assert len(warnings) >= 2, agent_mod.tail(a.log())


# ---------------------------------------------------------------------------
# Mutual TLS


@pytest.mark.parametrize("cert,key", [
    ("client_rsa", None), ("client_ec", None),
    ("client_rsa", "client_rsa_pkcs1"), ("client_ec", "client_ec_sec1"),
])
def test_mutual_tls_accepted(pki, cert, key, tls_runner, start_agent):
    leaf = getattr(pki, cert)
    keyfile = getattr(pki, key) if key else leaf.key
    r = tls_runner(pki.rsa, client_ca=pki.client_ca)
    start_agent(by_name(r), "--ca-file", pki.root.cert, "--tls-cert", leaf.cert,
                "--tls-key", keyfile)
    r.accept(T(10)).pingpong(timeout=T(5))


def test_mutual_tls_refused_without_client_cert(pki, tls_runner, start_agent):
    """An asyncio runner hangs up without an alert; the agent still says why."""
    r = tls_runner(pki.rsa, client_ca=pki.client_ca)
    a = start_agent(by_name(r), "--ca-file", pki.root.cert, "--max-reconnect", "1")
    fails_with(a, "the runner asked for a client certificate (--tls-cert, --tls-key)")
    assert r.attempts == []


def test_mutual_tls_refused_with_foreign_client_cert(pki, tls_runner, start_agent):
    r = tls_runner(pki.rsa, client_ca=pki.client_ca)
    a = start_agent(by_name(r), "--ca-file", pki.root.cert, "--tls-cert",
                    pki.client_stranger.cert, "--tls-key", pki.client_stranger.key,
                    "--max-reconnect", "1")
    fails_with(a, "the runner may have refused our client certificate")
    assert r.attempts == []


# ---------------------------------------------------------------------------
# Start-up errors: one line, exit 2


def _exit2(*args, env=None):
    res = agent_mod.run("-r", "wss://runner.example:8443", "-c", "x", *args, env=env)
    assert res.returncode == 2, (args, res.returncode, res.stderr)
    assert res.stderr.count("\n") == 1, res.stderr
    return res.stderr


def test_missing_ca_file_exit_2():
    err = _exit2("--ca-file", "/nonexistent/ca.pem")
    assert "/nonexistent/ca.pem" in err and "No such file" in err


def test_ca_file_without_certificates_exit_2(pki):
    err = _exit2("--ca-file", pki.ec.key)
    assert "no certificate" in err


def test_ca_file_unreadable_exit_2(pki, tmp_path):
    err = _exit2("--ca-file", str(tmp_path))  # a directory
    assert str(tmp_path) in err


@pytest.mark.parametrize("pin", ["sha256:", "nope", "sha256:AAAA", "sha1:" + "A" * 43 + "="])
def test_bad_pin_exit_2(pin):
    err = _exit2("--tls-pin", pin)
    assert "--tls-pin" in err


def test_mismatched_client_key_exit_2(pki):
    err = _exit2("--ca-file", pki.root.cert, "--tls-cert", pki.client_rsa.cert,
                 "--tls-key", pki.client_ec.key)
    assert "does not match" in err


def test_unreadable_client_cert_or_key_exit_2(pki):
    err = _exit2("--ca-file", pki.root.cert, "--tls-cert", "/nonexistent/c.pem",
                 "--tls-key", pki.client_ec.key)
    assert "/nonexistent/c.pem" in err
    err = _exit2("--ca-file", pki.root.cert, "--tls-cert", pki.client_ec.cert,
                 "--tls-key", "/nonexistent/k.pem")
    assert "/nonexistent/k.pem" in err
    err = _exit2("--ca-file", pki.root.cert, "--tls-cert", pki.client_ec.cert)
    assert "--tls-key" in err


def test_no_ca_anywhere_exit_2():
    """No --ca-file, no SSL_CERT_FILE, no pin, no --insecure and no system
    bundle (hidden by empty mounts in a private mount namespace)."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare")
    script = ("for d in /etc/ssl /etc/pki; do [ -d $d ] && mount -t tmpfs none $d; done; "
              'exec "$@"')
    cmd = [unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh"] + \
        agent_mod.command("-r", "wss://runner.example:8443", "-c", "x")
    try:
        res = subprocess.run(cmd, env=clean_env(), capture_output=True, text=True,
                             timeout=T(10))
    except subprocess.TimeoutExpired:
        pytest.fail("agent did not exit")
    if "unshare:" in res.stderr or "mount:" in res.stderr:
        pytest.skip("cannot make a mount namespace here: " + res.stderr.strip())
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert "no CA bundle found" in res.stderr and "--ca-file" in res.stderr \
        and "--tls-pin" in res.stderr, res.stderr
