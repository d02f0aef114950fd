#!/usr/bin/python3
"""The benchmark: the agent's CPU per GiB, latency and scale, side by side
with another agent binary.

usage: tests/bench/bench.py --agent PATH [--compare PATH] [--runs R] [--quick]
                            [--json OUT] [--only NAMES] [--peer PATH] [--svc PATH]
                            [--server PATH] [--compare-server PATH] [--fleet PATH]

For every scenario, every run and every binary (interleaved: A, B, A, B...)
the driver starts the runner-side peer (tests/bench/peer.c), the agent
dialling it, and the local services it needs (tests/bench/svc.c, kept
across runs); once the peer says `ready` it reads the agent's CPU time,
writes `go`, waits for the peer's `result {JSON}`, reads the CPU time and
memory again and stops both. Every wait is bounded: a hung or failed step is
an `error` line and the next measurement goes on.

Scenarios (full sizes; --quick: tiny sizes and one run, for the test suite):
  up         runner -> agent -> sink, 1 GiB in DATA of 64 KiB
  down       source -> agent -> runner, 1 GiB
  streams    64 echo streams at once, 16 MiB each way each
  rr         20,000 sequential round trips of 64 B through an echo, and the
             same without the tunnel (`svc rr`, the direct floor)
  conns      10,000 connections at once, 1 KiB echoed each
  bulk-idle  10,000 idle connections to a hold service, then the `down` stream
  idle       nothing: the agent's RSS one second after the tunnel is up
  wss-up, wss-down  up and down over wss:// (a test PKI made with openssl),
             reported as not available when the peer has no TLS

Server scenarios: tunnel-server (--server, default the host build; with
--compare-server another server build side by side, columns A and B) with
one --expose to the agent (--agent, always column A's agent); a public
client (`svc push|pull|conns`) -> the expose -> the agent -> a local svc.
For every run a fresh server and agent; once the server logs `agent
connected` the driver reads both CPU times, runs the client, and reads them
again with the memory when it prints its result.
  relay-up     svc push: 1 GiB public client -> sink
  relay-down   svc pull: 1 GiB source -> public client
  relay-conns  svc conns: 10,000 public connections at once, 1 KiB echoed
               each; every one stays open until all are echoed
  fleet        no agent: tests/bench/fleet opens 10,000 idle WebSocket
               agents on a server with --ping-interval 2 --ping-timeout 2
               and holds them ~8 s; every agent must stay connected and be
               pinged at least twice, never more than FLEET_GAP_SLACK_MS
               later than the interval
Their figures: throughput, server and agent CPU per GiB (or per
connection), peak RSS of both; fleet: agents connected, pings, the longest
gap between pings, server RSS once all are connected (and per agent),
server CPU per agent connect and per ping. relay-conns and fleet also show
the system's TCP listen-queue overflows during the run (/proc/net/netstat,
system-wide). A target line per scenario with a memory goal (relay-conns:
server peak RSS <= 32 MiB; fleet: server RSS <= 64 MiB) follows the table;
a missed target is reported, not a failure.

Figures (median over runs, min..max): agent CPU seconds per GiB moved and
MiB/s (byte scenarios), CPU us per round trip, p50/p99/p99.9 RTT, the direct
floor and the added p50 (rr), served/errors, connections per second and peak
RSS (conns), idle RSS, and bulk-idle's throughput and CPU/GiB relative to
`down` of the same binary. One table on stdout; every raw run and the
medians in JSON (default build/bench/bench.json).

CPU is the agent's on-CPU time from /proc (every thread's schedstat, in
nanoseconds; the utime + stime of /proc/PID/stat in clock ticks is kept as cpu_ticks_s in
the JSON, too coarse for the quick sizes). Memory is VmHWM (peak) and VmRSS
from /proc/PID/status.

Exit status: 0 when every measurement passed its checks (bytes moved as
requested, no errors, every connection served, every fleet agent connected
and pinged in time, the server exiting 0), 1 otherwise, 2 for usage.
"""
import argparse
import ctypes
import hashlib
import json
import os
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST_BUILD = os.path.join(ROOT, "build", "x86_64-linux-musl")
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
CONTAINER_ID = "bench"
TLS_NAME = "bench.test"

# Variables of the agent that must not leak in from the caller's environment.
AGENT_ENV_VARS = (
    "RUNNER_URL", "CONTAINER_ID", "RECONNECT_DELAY", "MAX_RECONNECT_DELAY",
    "MAX_RECONNECT", "LOG_LEVEL", "CONNECT_TIMEOUT", "PING_INTERVAL",
    "PING_TIMEOUT", "UDP_IDLE_TIMEOUT", "STALL_TIMEOUT", "MAX_CONNECTIONS",
    "MAX_UDP", "MAX_MESSAGE", "SSL_CERT_FILE", "TLS_SERVER_NAME", "TLS_PIN",
    "TLS_CERT", "TLS_KEY", "TLS_INSECURE", "TUNNEL_TOKEN",
)
# ... and of tunnel-server.
SERVER_ENV_VARS = (
    "TUNNEL_CONFIG", "TUNNEL_LISTEN", "TLS_CERT", "TLS_KEY", "TUNNEL_EXPOSE",
    "TUNNEL_TOKEN", "TUNNEL_TOKEN_FILE", "TUNNEL_NO_AUTH", "TUNNEL_ADMIN",
    "LOG_LEVEL", "MAX_MESSAGE", "MAX_AGENTS", "MAX_CONNECTIONS",
    "UDP_IDLE_TIMEOUT", "STALL_TIMEOUT", "PING_INTERVAL", "PING_TIMEOUT",
)
# The fleet scenario's server keepalive (seconds), and how much later than
# the interval a ping may come (the server checks its timers every 250 ms;
# the rest is loop and scheduling latency).
FLEET_PING_INTERVAL = 2
FLEET_PING_TIMEOUT = 2
FLEET_GAP_SLACK_MS = 1000
# Memory targets of the server scenarios: (scenario, figure, limit KiB).
TARGETS = [("relay-conns", "server_hwm_kib", 32 * 1024),
           ("fleet", "server_rss_connected_kib", 64 * 1024)]
# The agent's default connection limit; scenarios above it raise it with the
# MAX_CONNECTIONS variable (an agent that does not know it ignores it).
AGENT_DEFAULT_MAX_CONNECTIONS = 1024

# Bounded waits, in seconds.
T_PORT = 10          # a started peer or service prints its port
T_STOP = 5           # a process exits after SIGTERM (or stdin EOF)
T_FLOOR = 120        # the direct rr floor
T_SERVER = 10        # tunnel-server is listening, an agent registered


class BenchError(Exception):
    """A failed or hung step of one measurement."""


class Unavailable(Exception):
    """The peer cannot run this scenario at all (e.g. no wss:// yet)."""


# ---------------------------------------------------------------------------
# processes

try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None


def _child_setup():
    # Raise the descriptor limit (conns, bulk-idle) and die with the driver.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


LIVE = []  # every Proc not yet stopped, for the final cleanup


class Proc:
    """A child with stdout read line by line under deadlines and stderr in a
    temporary file (a pipe could fill up and block it)."""

    def __init__(self, name, argv, stdin=False, env=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.err = tempfile.TemporaryFile(mode="w+b")
        self.buf = b""
        self.eof = False
        try:
            self.p = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=self.err, env=env, preexec_fn=_child_setup)
        except OSError as e:
            raise BenchError("cannot start %s (%s): %s" % (name, self.argv[0], e))
        os.set_blocking(self.p.stdout.fileno(), False)
        LIVE.append(self)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def tail(self, lines=6):
        if self.err.closed:
            return ""
        text = self.stderr_text().strip().splitlines()
        if not text:
            return ""
        return "; %s stderr: %s" % (self.name, " | ".join(text[-lines:]))

    def stderr_text(self):
        """What the process wrote to stderr so far (pread: the offset the
        child writes at is shared and must not move)."""
        fd = self.err.fileno()
        size = os.fstat(fd).st_size
        return os.pread(fd, size, 0).decode("utf-8", "replace") if size else ""

    def wait_stderr(self, needle, timeout, what, watch=()):
        """Wait until stderr contains needle; BenchError after timeout
        seconds or when this process or one in watch exits first."""
        deadline = time.monotonic() + timeout
        while True:
            if needle in self.stderr_text():
                return
            for w in (self,) + tuple(watch):
                rc = w.p.poll()
                if rc is not None:
                    raise BenchError("%s exited (%s) while we waited for %s%s"
                                     % (w.name, rc, what, w.tail()))
            if time.monotonic() >= deadline:
                raise BenchError("no %s within %g s%s" % (what, timeout, self.tail()))
            time.sleep(0.02)

    def _ended(self, what):
        try:
            rc = self.p.wait(T_STOP)
        except subprocess.TimeoutExpired:
            rc = "still running"
        return BenchError("%s closed its output (exit %s) while we waited for %s%s"
                          % (self.name, rc, what, self.tail()))

    def readline(self, timeout, what, watch=()):
        """The next stdout line (stripped); BenchError after timeout seconds,
        at EOF, or when a process in watch exits first."""
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1:]
                return line.decode("utf-8", "replace").strip()
            if self.eof:
                raise self._ended(what)
            for w in watch:
                rc = w.p.poll()
                if rc is not None:
                    raise BenchError("%s exited (%s) while we waited for %s%s"
                                     % (w.name, rc, what, w.tail()))
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("no %s from %s within %g s%s" % (what, self.name, timeout, self.tail()))
            ready, _, _ = select.select([fd], [], [], min(left, 0.25))
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    self.eof = True
                else:
                    self.buf += chunk

    def send(self, line):
        try:
            self.p.stdin.write(line.encode() + b"\n")
            self.p.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise BenchError("cannot write %r to %s: %s%s" % (line, self.name, e, self.tail()))

    def stop(self, graceful=True):
        """End the process: stdin EOF (if piped; with graceful, a bounded
        wait for it to exit by itself), SIGTERM and a bounded wait, SIGKILL
        as the fallback. Returns the exit code."""
        if self in LIVE:
            LIVE.remove(self)
        if self.p.stdin is not None:
            try:
                self.p.stdin.close()
            except OSError:
                pass
            if graceful:
                try:
                    return self.p.wait(T_STOP)
                except subprocess.TimeoutExpired:
                    pass
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(T_STOP)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait(T_STOP)
        finally:
            self.p.stdout.close()
            self.err.close()


def stop_all():
    for p in list(LIVE):
        try:
            p.stop()
        except Exception:
            pass


# ---------------------------------------------------------------------------
# /proc readings

def cpu_seconds(pid):
    """(precise, ticks): the process's CPU time (user + system) from /proc:
    the sum of its threads' on-CPU nanoseconds (/proc/PID/task/*/schedstat,
    so a multi-threaded agent counts whole), and utime + stime from
    /proc/PID/stat in clock ticks (too coarse for the quick sizes)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    precise = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                precise += int(f.read().split()[0])
        except OSError:
            pass  # a thread that just ended
    return (precise / 1e9 if precise else ticks), ticks


def memory_kib(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(line.split()[1])
    return out


def listen_overflows():
    """The system's TcpExt ListenOverflows counter (every listener on the
    machine), or None where /proc/net/netstat does not have it."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[0::2], lines[1::2]):
        if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            if "ListenOverflows" in table:
                return int(table["ListenOverflows"])
    return None


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def describe(path):
    """Path, size, sha256, and whether its --help offers --ca-file and
    --tls-server-name (an agent without them, such as the Rust client, gets
    the test CA through SSL_CERT_FILE and checks the certificate against
    127.0.0.1, which the test certificate also names)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        r = subprocess.run([path, "--help"], capture_output=True, timeout=T_STOP)
        helptext = (r.stdout + r.stderr).decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired):
        helptext = ""
    return {"path": os.path.abspath(path), "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "tls_flags": "--ca-file" in helptext and "--tls-server-name" in helptext}


# ---------------------------------------------------------------------------
# services and the test PKI

class Services:
    """svc processes by mode, started on first use and kept across runs."""

    def __init__(self, svc):
        self.svc = svc
        self.procs = {}

    def port(self, mode):
        p = self.procs.get(mode)
        if p is not None and not p[0].alive():
            print("note: svc %s had exited (%s); restarting it%s"
                  % (mode, p[0].p.returncode, p[0].tail()), flush=True)
            p = None
        if p is None:
            proc = Proc("svc " + mode, [self.svc, mode])
            line = proc.readline(T_PORT, "its port line")
            if not line.startswith("port "):
                proc.stop()
                raise BenchError("svc %s printed %r instead of its port" % (mode, line))
            p = (proc, int(line.split()[1]))
            self.procs[mode] = p
        return p[1]

    def close(self):
        for proc, _ in self.procs.values():
            proc.stop()
        self.procs = {}


def make_pki(directory):
    """An EC P-256 CA and a server certificate for DNS:bench.test, made with
    the openssl CLI. Returns {"ca", "cert", "key"} paths."""
    def run(*args):
        r = subprocess.run(["openssl"] + list(args), capture_output=True, timeout=60, cwd=directory)
        if r.returncode != 0:
            raise BenchError("openssl %s: %s" % (args[0], r.stderr.decode(errors="replace").strip()))

    ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    run("genpkey", *ec, "-out", "ca.key")
    run("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=tunnel-client bench CA",
        "-days", "30", "-sha256", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("genpkey", *ec, "-out", "server.key")
    run("req", "-new", "-key", "server.key", "-subj", "/CN=" + TLS_NAME, "-out", "server.csr")
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:%s,IP:127.0.0.1\n" % TLS_NAME)
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "30", "-sha256", "-extfile", "server.ext", "-out", "server.pem")
    return {k: os.path.join(directory, v)
            for k, v in (("ca", "ca.pem"), ("cert", "server.pem"), ("key", "server.key"))}


# ---------------------------------------------------------------------------
# scenarios

class Scenario:
    """name: ours; peer: the peer's scenario; kind: which figures; services:
    the svc modes it needs; args(ports): the peer's options; expect: the
    bytes and served count a good result reports; conns: local connections
    the agent holds at once (raises MAX_CONNECTIONS when above the default)."""

    def __init__(self, name, peer, kind, services, args, expect_bytes, expect_served=None,
                 conns=1, tls=False, timeout=300, count=None, size=None, server=False,
                 client=None, server_args=(), seconds=None):
        self.name, self.peer, self.kind = name, peer, kind
        self.services, self.args = services, args
        self.expect_bytes, self.expect_served = expect_bytes, expect_served
        self.conns, self.tls, self.timeout = conns, tls, timeout
        self.count, self.size = count, size
        # Server scenarios: no peer; args(ports) are the client's options
        # (ports has "public", the expose, besides the services), client
        # is "fleet" or the svc mode, server_args tunnel-server's extra
        # options, seconds the fleet's idle time.
        self.server, self.client = server, client
        self.server_args, self.seconds = list(server_args), seconds


def scenarios(quick):
    n = 8 * MIB if quick else GIB
    streams = 64
    per_stream = 64 * KIB if quick else 16 * MIB
    rr_count, rr_size = (200, 64) if quick else (20000, 64)
    conns, conn_size = (200, KIB) if quick else (10000, KIB)
    idle = 200 if quick else 10000
    timeout = 60 if quick else 300
    return [
        Scenario("up", "up", "bytes", ["sink"],
                 lambda p: ["--port", p["sink"], "--bytes", n], n, timeout=timeout),
        Scenario("down", "down", "bytes", ["source"],
                 lambda p: ["--port", p["source"], "--bytes", n], n, timeout=timeout),
        Scenario("streams", "streams", "bytes", ["echo"],
                 lambda p: ["--port", p["echo"], "--bytes", streams * per_stream, "--streams", streams],
                 2 * streams * per_stream, expect_served=streams, conns=streams, timeout=timeout),
        Scenario("rr", "rr", "rr", ["echo"],
                 lambda p: ["--port", p["echo"], "--count", rr_count, "--size", rr_size],
                 2 * rr_count * rr_size, timeout=timeout, count=rr_count, size=rr_size),
        Scenario("conns", "conns", "conns", ["echo"],
                 lambda p: ["--port", p["echo"], "--count", conns, "--size", conn_size],
                 2 * conns * conn_size, expect_served=conns, conns=conns, timeout=timeout,
                 count=conns, size=conn_size),
        Scenario("bulk-idle", "bulk-idle", "bytes", ["source", "hold"],
                 lambda p: ["--port", p["source"], "--bytes", n, "--idle", idle,
                            "--idle-port", p["hold"]],
                 n, conns=idle + 1, timeout=timeout, count=idle),
        Scenario("idle", "idle", "idle", [], lambda p: [], 0, timeout=timeout),
        Scenario("wss-up", "up", "bytes", ["sink"],
                 lambda p: ["--port", p["sink"], "--bytes", n], n, tls=True, timeout=timeout),
        Scenario("wss-down", "down", "bytes", ["source"],
                 lambda p: ["--port", p["source"], "--bytes", n], n, tls=True, timeout=timeout),
    ] + server_scenarios(quick)


def server_scenarios(quick):
    n = 8 * MIB if quick else GIB
    conns, conn_size = (200, KIB) if quick else (10000, KIB)
    agents, seconds = (200, 5) if quick else (10000, 8)
    timeout = 60 if quick else 300
    return [
        Scenario("relay-up", None, "relay", ["sink"],
                 lambda p: ["--port", p["public"], "--bytes", n], n, timeout=timeout,
                 server=True, client="push"),
        Scenario("relay-down", None, "relay", ["source"],
                 lambda p: ["--port", p["public"], "--bytes", n], n, timeout=timeout,
                 server=True, client="pull"),
        Scenario("relay-conns", None, "relay-conns", ["echo"],
                 lambda p: ["--port", p["public"], "--count", conns, "--size", conn_size],
                 2 * conns * conn_size, expect_served=conns, conns=conns, timeout=timeout,
                 count=conns, size=conn_size, server=True, client="conns"),
        Scenario("fleet", None, "fleet", [],
                 lambda p: ["--url", "ws://127.0.0.1:%s" % p["listen"], "--count", agents,
                            "--seconds", seconds, "--prefix", "fleet"],
                 0, expect_served=agents, conns=agents, timeout=seconds + 60, count=agents,
                 server=True, client="fleet", seconds=seconds,
                 server_args=["--ping-interval", FLEET_PING_INTERVAL,
                              "--ping-timeout", FLEET_PING_TIMEOUT]),
    ]


def agent_env(scenario):
    env = {k: v for k, v in os.environ.items() if k not in AGENT_ENV_VARS}
    if scenario.conns + 16 > AGENT_DEFAULT_MAX_CONNECTIONS:
        env["MAX_CONNECTIONS"] = str(scenario.conns + 64)
    return env


def server_env():
    return {k: v for k, v in os.environ.items() if k not in SERVER_ENV_VARS}


def check_server(scenario, result):
    """Problems with a server scenario's client result."""
    bad = []
    if scenario.kind == "fleet":
        want = scenario.expect_served
        limit = FLEET_PING_INTERVAL * 1000 + FLEET_GAP_SLACK_MS
        if result.get("connected") != want or result.get("failed") != 0:
            bad.append("%s of %d agents connected, %s failed (%s)" % (
                result.get("connected"), want, result.get("failed"), result.get("errors")))
        if result.get("closed_by_server") != 0:
            bad.append("the server closed %s agents" % result.get("closed_by_server"))
        if not isinstance(result.get("pings_min"), int) or result["pings_min"] < 2:
            bad.append("an agent was pinged %s times (at least 2 expected)" % result.get("pings_min"))
        for key in ("max_gap_ms", "max_tail_ms"):
            if not isinstance(result.get(key), (int, float)) or result[key] > limit:
                bad.append("%s %s > %d (ping interval %d s + %d ms)" % (
                    key, result.get(key), limit, FLEET_PING_INTERVAL, FLEET_GAP_SLACK_MS))
        return bad
    if result.get("bytes") != scenario.expect_bytes:
        bad.append("moved %s bytes, expected %d" % (result.get("bytes"), scenario.expect_bytes))
    if result.get("errors") != 0:
        bad.append("%s errors" % result.get("errors"))
    if scenario.expect_served is not None and result.get("served") != scenario.expect_served:
        bad.append("served %s, expected %d" % (result.get("served"), scenario.expect_served))
    if result.get("dropped", 0) != 0:
        bad.append("%s connections closed while held open" % result.get("dropped"))
    if not isinstance(result.get("seconds"), (int, float)) or result["seconds"] < 0:
        bad.append("no seconds in the result")
    return bad


def check(scenario, result):
    """Problems with a result (an empty list when it is sane)."""
    if scenario.server:
        return check_server(scenario, result)
    bad = []
    if result.get("bytes") != scenario.expect_bytes:
        bad.append("moved %s bytes, expected %d" % (result.get("bytes"), scenario.expect_bytes))
    if result.get("errors") != 0:
        bad.append("%s errors" % result.get("errors"))
    if scenario.expect_served is not None and result.get("served") != scenario.expect_served:
        bad.append("served %s, expected %d" % (result.get("served"), scenario.expect_served))
    if scenario.kind == "rr":
        rtt = result.get("rtt_us") or {}
        if not all(isinstance(rtt.get(k), (int, float)) for k in ("p50", "p99", "p999")):
            bad.append("no rtt_us in the result")
    if not isinstance(result.get("seconds"), (int, float)) or result["seconds"] < 0:
        bad.append("no seconds in the result")
    return bad


def measure(scenario, binary, peer_path, services, pki):
    """One measurement of one binary; returns the raw record (with "error"
    set on failure). Raises Unavailable when the peer cannot do it at all."""
    rec = {"scenario": scenario.name, "binary": binary["label"]}
    peer = agent = None
    try:
        ports = {m: services.port(m) for m in scenario.services}
        if scenario.kind == "rr":
            rec["direct"] = direct_floor(services.svc, ports["echo"], scenario.count, scenario.size)
        argv = [peer_path, "--scenario", scenario.peer] + scenario.args(ports)
        if scenario.tls:
            argv += ["--tls-cert", pki["cert"], "--tls-key", pki["key"]]
        peer = Proc("peer", argv, stdin=True)
        line = peer.readline(T_PORT, "its port line")
        if line.startswith("error"):
            peer.stop()
            if scenario.tls:
                raise Unavailable(line[5:].strip())
            raise BenchError("peer: " + line[5:].strip())
        if not line.startswith("port "):
            raise BenchError("peer printed %r instead of its port" % line)
        port = int(line.split()[1])
        scheme = "wss" if scenario.tls else "ws"
        cmd = [binary["path"], "-r", "%s://127.0.0.1:%d" % (scheme, port), "-c", CONTAINER_ID,
               "--log-level", "warn"]
        env = agent_env(scenario)
        if scenario.tls and binary["tls_flags"]:
            cmd += ["--ca-file", pki["ca"], "--tls-server-name", TLS_NAME]
        elif scenario.tls:
            env["SSL_CERT_FILE"] = pki["ca"]
        agent = Proc("agent " + binary["label"], cmd, env=env)
        expect(peer, "ready", 60 + scenario.conns / 100, [agent])
        if scenario.kind == "idle":
            time.sleep(1.0)
        cpu0, ticks0 = cpu_seconds(agent.pid)
        t0 = time.monotonic()
        peer.send("go")
        line = expect(peer, "result", scenario.timeout, [agent])
        wall = time.monotonic() - t0
        cpu1, ticks1 = cpu_seconds(agent.pid)
        mem = memory_kib(agent.pid)
        try:
            result = json.loads(line[len("result"):])
        except ValueError as e:
            raise BenchError("peer's result is not JSON (%s): %s" % (e, line))
        rec.update({"result": result, "cpu_s": cpu1 - cpu0, "cpu_ticks_s": ticks1 - ticks0,
                    "wall_s": wall, "hwm_kib": mem.get("VmHWM"), "rss_kib": mem.get("VmRSS")})
        bad = check(scenario, result)
        if bad:
            raise BenchError("bad result: " + "; ".join(bad))
        if rec["cpu_s"] <= 0 and scenario.kind != "idle":
            raise BenchError("no agent CPU time measured")
    except BenchError as e:
        rec["error"] = str(e)
    except OSError as e:  # /proc or the CPU clock of an agent that just died
        rec["error"] = "reading the agent: %s" % e
    finally:
        # The peer first (stdin EOF: it closes the tunnel and exits 0), then
        # the agent, which is by then waiting to redial.
        if peer is not None and peer in LIVE:
            rc = peer.stop(graceful="error" not in rec)
            if "error" not in rec and rc != 0:
                rec["error"] = "peer exited %s%s" % (rc, peer.tail())
        if agent is not None:
            rc = agent.stop()
            rec["agent_exit"] = rc
            if "error" not in rec and rc not in (0, -signal.SIGTERM):
                rec["error"] = "agent exited %s after SIGTERM%s" % (rc, agent.tail())
    return rec


def start_server(scenario, server, ports):
    """tunnel-server on a free port (a few tries: a port picked free can be
    taken before the server binds it), with the scenario's expose; returns
    the Proc once it logs that it listens. Sets ports["listen"]."""
    last = None
    for _ in range(3):
        ports["listen"] = free_port()
        argv = [server["path"], "--listen", "127.0.0.1:%d" % ports["listen"]]
        if scenario.services:
            ports["public"] = free_port()
            argv += ["--expose", "tcp:127.0.0.1:%d=%s:%d" % (
                ports["public"], CONTAINER_ID, ports[scenario.services[0]])]
        argv += [str(a) for a in scenario.server_args]
        proc = Proc("server " + server["label"], argv, env=server_env())
        try:
            proc.wait_stderr("listening on", T_SERVER, "tunnel-server's `listening on` log line")
            return proc
        except BenchError as e:
            last = e
            text = proc.stderr_text()
            proc.stop()
            if "in use" not in text:
                raise
    raise last


def measure_server(scenario, server, agent_path, tools, services):
    """One measurement of one tunnel-server binary (server["label"]) in a
    server scenario; returns the raw record ("error" set on failure)."""
    rec = {"scenario": scenario.name, "binary": server["label"], "server": server["path"],
           "agent": None if scenario.client == "fleet" else agent_path}
    srv = agent = client = None
    watch = []
    try:
        ports = {m: services.port(m) for m in scenario.services}
        overflows0 = listen_overflows()
        srv = start_server(scenario, server, ports)
        watch = [srv]
        rec["server_rss_base_kib"] = memory_kib(srv.pid).get("VmRSS")
        if scenario.client != "fleet":
            cmd = [agent_path, "-r", "ws://127.0.0.1:%d" % ports["listen"], "-c", CONTAINER_ID,
                   "--log-level", "warn"]
            agent = Proc("agent A", cmd, env=agent_env(scenario))
            watch = [srv, agent]
            srv.wait_stderr("agent connected id=%s" % CONTAINER_ID, T_SERVER,
                            "the agent's `agent connected` on the server", [agent])
        procs = {"server": srv, "agent": agent}
        cpu0 = {k: cpu_seconds(p.pid)[0] for k, p in procs.items() if p is not None}
        tool = tools["fleet"] if scenario.client == "fleet" else tools["svc"]
        argv = [tool] + ([] if scenario.client == "fleet" else [scenario.client])
        argv += [str(a) for a in scenario.args(ports)]
        t0 = time.monotonic()
        client = Proc(scenario.client, argv)
        if scenario.client == "fleet":
            line = client.readline(60 + scenario.count / 100, "`connected N`", watch)
            cpu_up = cpu_seconds(srv.pid)[0]
            rec["connect_wall_s"] = time.monotonic() - t0
            rec["server_rss_connected_kib"] = memory_kib(srv.pid).get("VmRSS")
            rec["connect_cpu_s"] = cpu_up - cpu0["server"]
            if not line.startswith("connected "):
                rec["fleet_line"] = line
            line = client.readline(scenario.seconds + 60, "the fleet's result", watch)
            rec["idle_cpu_s"] = cpu_seconds(srv.pid)[0] - cpu_up
        else:
            line = client.readline(scenario.timeout, "the client's result", watch)
        rec["wall_s"] = time.monotonic() - t0
        for k, p in procs.items():
            if p is None:
                continue
            mem = memory_kib(p.pid)
            rec["%s_cpu_s" % k] = cpu_seconds(p.pid)[0] - cpu0[k]
            rec["%s_hwm_kib" % k] = mem.get("VmHWM")
            rec["%s_rss_kib" % k] = mem.get("VmRSS")
        overflows1 = listen_overflows()
        if overflows0 is not None and overflows1 is not None:
            rec["listen_overflows"] = overflows1 - overflows0
        try:
            result = json.loads(line)
        except ValueError as e:
            raise BenchError("%s's result is not JSON (%s): %s%s" % (client.name, e, line, client.tail()))
        rec["result"] = result
        try:
            client.p.wait(T_STOP)  # its result is out: it exits by itself
        except subprocess.TimeoutExpired:
            pass
        rc = client.stop()
        if rc != 0:
            raise BenchError("%s exited %s%s" % (client.name, rc, client.tail()))
        bad = check(scenario, result)
        if "fleet_line" in rec:
            bad.insert(0, "fleet: " + rec["fleet_line"])
        if bad:
            raise BenchError("bad result: " + "; ".join(bad))
        if rec["server_cpu_s"] <= 0:
            raise BenchError("no server CPU time measured")
    except BenchError as e:
        rec["error"] = str(e)
    except OSError as e:  # /proc of a process that just died
        rec["error"] = "reading /proc: %s" % e
    finally:
        if client is not None and client in LIVE:
            client.stop()
        if srv is not None and "error" in rec:
            rec["server_log"] = srv.tail(10)
        # The agent first (it closes its tunnel), then the server.
        for key, p in (("agent", agent), ("server", srv)):
            if p is None:
                continue
            tail = p.tail()
            rc = p.stop()
            rec["%s_exit" % key] = rc
            if "error" not in rec and rc not in (0, -signal.SIGTERM):
                rec["error"] = "%s exited %s after SIGTERM%s" % (p.name, rc, tail)
    return rec


def expect(peer, word, timeout, watch):
    """Read peer lines until one starts with word; `error` lines fail."""
    deadline = time.monotonic() + timeout
    while True:
        line = peer.readline(max(0.0, deadline - time.monotonic()), "`%s`" % word, watch)
        if line.startswith("error"):
            raise BenchError("peer: " + line[5:].strip() + peer.tail())
        if line.split(" ", 1)[0] == word:
            return line


def direct_floor(svc, port, count, size):
    """svc rr straight to the echo: the round trip without the tunnel."""
    try:
        r = subprocess.run([svc, "rr", "--port", str(port), "--count", str(count), "--size", str(size)],
                           capture_output=True, text=True, timeout=T_FLOOR, preexec_fn=_child_setup)
    except subprocess.TimeoutExpired:
        raise BenchError("svc rr did not finish within %d s" % T_FLOOR)
    if r.returncode != 0:
        raise BenchError("svc rr exited %d: %s" % (r.returncode, r.stderr.strip()))
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise BenchError("svc rr printed %r" % r.stdout)


# ---------------------------------------------------------------------------
# figures

# (scenario kind, figure key, label, unit)
FIGURES = {
    "bytes": [("mib_s", "throughput", "MiB/s"), ("cpu_s_per_gib", "agent CPU", "s/GiB"),
              ("hwm_kib", "peak RSS", "KiB")],
    "rr": [("p50", "RTT p50", "us"), ("p99", "RTT p99", "us"), ("p999", "RTT p99.9", "us"),
           ("direct_p50", "direct p50", "us"), ("direct_p99", "direct p99", "us"),
           ("added_p50", "added p50", "us"), ("cpu_us_per_rt", "agent CPU", "us/round trip"),
           ("hwm_kib", "peak RSS", "KiB")],
    "conns": [("served", "served", "conns"), ("errors", "errors", ""),
              ("conns_s", "rate", "conns/s"), ("cpu_us_per_conn", "agent CPU", "us/conn"),
              ("hwm_kib", "peak RSS", "KiB")],
    "idle": [("rss_kib", "idle RSS", "KiB"), ("hwm_kib", "peak RSS", "KiB")],
    # server scenarios: columns are tunnel-server builds, the agent is --agent
    "relay": [("mib_s", "throughput", "MiB/s"), ("server_cpu_s_per_gib", "server CPU", "s/GiB"),
              ("agent_cpu_s_per_gib", "agent CPU", "s/GiB"),
              ("server_hwm_kib", "server peak RSS", "KiB"), ("agent_hwm_kib", "agent peak RSS", "KiB")],
    "relay-conns": [("served", "served", "conns"), ("errors", "errors", ""),
                    ("conns_s", "rate", "conns/s"),
                    ("server_cpu_us_per_conn", "server CPU", "us/conn"),
                    ("agent_cpu_us_per_conn", "agent CPU", "us/conn"),
                    ("server_hwm_kib", "server peak RSS", "KiB"),
                    ("agent_hwm_kib", "agent peak RSS", "KiB"),
                    ("listen_overflows", "listen overflows (system)", "")],
    "fleet": [("connected", "agents connected", ""), ("failed", "agents failed", ""),
              ("closed_by_server", "closed by server", ""),
              ("pings_min", "pings per agent, min", ""), ("pings_max", "pings per agent, max", ""),
              ("max_gap_ms", "longest ping gap", "ms"),
              ("server_rss_connected_kib", "server RSS, all connected", "KiB"),
              ("server_bytes_per_agent", "server RSS per agent", "B"),
              ("server_hwm_kib", "server peak RSS", "KiB"),
              ("connect_cpu_us_per_agent", "server CPU per connect", "us"),
              ("idle_cpu_us_per_ping", "server CPU per ping", "us"),
              ("listen_overflows", "listen overflows (system)", "")],
}
# bulk-idle relative to down of the same binary (ratios of the medians).
RATIO_ROWS = [("bulk_vs_down_mib_s", "throughput vs down", "x"),
              ("bulk_vs_down_cpu", "CPU/GiB vs down", "x")]


def server_figures(scenario, rec):
    r = rec["result"]
    f = {"server_hwm_kib": rec.get("server_hwm_kib"), "listen_overflows": rec.get("listen_overflows")}
    if scenario.kind == "fleet":
        n = r.get("connected") or 0
        base = rec.get("server_rss_base_kib")
        conn = rec.get("server_rss_connected_kib")
        f.update({k: r.get(k) for k in ("connected", "failed", "closed_by_server", "pings_min",
                                        "pings_max", "max_gap_ms")})
        f["server_rss_connected_kib"] = conn
        f["server_bytes_per_agent"] = ((conn - base) * 1024.0 / n
                                       if n and conn is not None and base is not None else None)
        f["connect_cpu_us_per_agent"] = rec["connect_cpu_s"] / n * 1e6 if n else None
        f["idle_cpu_us_per_ping"] = (rec["idle_cpu_s"] / r["pings"] * 1e6
                                     if r.get("pings") else None)
        return f
    f["agent_hwm_kib"] = rec.get("agent_hwm_kib")
    secs = r["seconds"]
    if scenario.kind == "relay":
        moved = r["bytes"]
        f["mib_s"] = moved / MIB / secs if secs > 0 else None
        for k in ("server", "agent"):
            f["%s_cpu_s_per_gib" % k] = rec["%s_cpu_s" % k] / (moved / GIB) if moved else None
    else:
        served = r["served"]
        f.update({"served": served, "errors": r["errors"],
                  "conns_s": served / secs if secs > 0 else None})
        for k in ("server", "agent"):
            f["%s_cpu_us_per_conn" % k] = rec["%s_cpu_s" % k] / served * 1e6 if served else None
    return f


def figures(scenario, rec):
    """The figures of one good raw record."""
    if scenario.server:
        return server_figures(scenario, rec)
    r = rec["result"]
    cpu, secs, moved = rec["cpu_s"], r["seconds"], r["bytes"]
    f = {"hwm_kib": rec["hwm_kib"]}
    if scenario.kind == "bytes":
        f["mib_s"] = moved / MIB / secs if secs > 0 else None
        f["cpu_s_per_gib"] = cpu / (moved / GIB) if moved else None
    elif scenario.kind == "rr":
        rtt, direct = r["rtt_us"], rec["direct"]
        count = r.get("count", scenario.count)
        f.update({"p50": rtt["p50"], "p99": rtt["p99"], "p999": rtt["p999"],
                  "direct_p50": direct["p50"], "direct_p99": direct["p99"],
                  "added_p50": rtt["p50"] - direct["p50"],
                  "cpu_us_per_rt": cpu / count * 1e6 if count else None})
    elif scenario.kind == "conns":
        f.update({"served": r["served"], "errors": r["errors"],
                  "conns_s": r["served"] / secs if secs > 0 else None,
                  "cpu_us_per_conn": cpu / r["served"] * 1e6 if r["served"] else None})
    elif scenario.kind == "idle":
        f["rss_kib"] = rec["rss_kib"]
    return f


def summarise(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "values": v}


def fmt(x):
    if x is None:
        return "-"
    a = abs(x)
    if a >= 1000 or x == int(x):
        return "%.0f" % x
    if a >= 100:
        return "%.1f" % x
    if a >= 1:
        return "%.2f" % x
    return "%.3f" % x


def cell(s, runs):
    if s is None:
        return "-"
    if runs > 1 and len(s["values"]) > 1:
        return "%s (%s..%s)" % (fmt(s["median"]), fmt(s["min"]), fmt(s["max"]))
    return fmt(s["median"])


# ---------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description="tunnel-client benchmark (see the module docstring)")
    ap.add_argument("--agent", required=True, help="the agent binary to measure (column A)")
    ap.add_argument("--compare", help="another agent binary, measured side by side (column B)")
    ap.add_argument("--runs", type=int, help="runs per scenario and binary (default 3; 1 with --quick)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one run: a smoke test")
    ap.add_argument("--json", default=os.path.join(ROOT, "build", "bench", "bench.json"),
                    help="where to write every raw run and the medians")
    ap.add_argument("--only", help="comma-separated scenario names")
    ap.add_argument("--peer", default=os.path.join(HOST_BUILD, "bench", "peer"))
    ap.add_argument("--svc", default=os.path.join(HOST_BUILD, "bench", "svc"))
    ap.add_argument("--fleet", help="the idle-agent load generator (default: next to --svc)")
    ap.add_argument("--server", help="the tunnel-server to measure in the server scenarios "
                    "(column A; default the host build)")
    ap.add_argument("--compare-server", help="another tunnel-server binary, measured side by "
                    "side in the server scenarios (column B)")
    a = ap.parse_args(argv)
    if a.runs is None:
        a.runs = 1 if a.quick else 3
    if a.runs < 1:
        ap.error("--runs must be at least 1")
    if a.fleet is None:
        a.fleet = os.path.join(os.path.dirname(os.path.abspath(a.svc)), "fleet")
    for path, what in ((a.agent, "--agent"), (a.compare, "--compare"), (a.peer, "--peer"),
                       (a.svc, "--svc"), (a.server, "--server"),
                       (a.compare_server, "--compare-server")):
        if path is not None and not (os.path.isfile(path) and os.access(path, os.X_OK)):
            ap.error("%s %s: not an executable file%s" % (
                what, path, " (build it with `make bench` or ./build.sh bench)"
                if what in ("--peer", "--svc") else ""))
    return a


def executable(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def main(argv):
    a = parse_args(argv)
    all_scenarios = scenarios(a.quick)
    names = [s.name for s in all_scenarios]
    if a.only:
        wanted = [x.strip() for x in a.only.split(",") if x.strip()]
        unknown = [x for x in wanted if x not in names]
        if unknown:
            print("bench.py: unknown scenario %s (known: %s)" % (", ".join(unknown), ", ".join(names)),
                  file=sys.stderr)
            return 2
        all_scenarios = [s for s in all_scenarios if s.name in wanted]
    binaries = [dict(describe(a.agent), label="A")]
    if a.compare:
        binaries.append(dict(describe(a.compare), label="B"))
    # The server scenarios compare tunnel-server builds; a missing default
    # build (or fleet tool) makes them not available rather than failed.
    servers, no_server = [], None
    if any(sc.server for sc in all_scenarios):
        server = a.server or os.path.join(HOST_BUILD, "tunnel-server")
        if not executable(server):
            no_server = "no tunnel-server at %s (./build.sh builds it; or --server PATH)" % server
        else:
            servers.append(dict(describe(server), label="A"))
            if a.compare_server:
                servers.append(dict(describe(a.compare_server), label="B"))
    print("binaries measured:")
    for b in binaries:
        print("  %s = %s  (%d bytes, sha256 %s)%s" % (
            b["label"], b["path"], b["size"], b["sha256"][:16],
            "" if b["tls_flags"] else "; no --ca-file: wss trust via SSL_CERT_FILE"))
    if servers:
        print("servers measured (server scenarios; agent A relays):")
        for b in servers:
            print("  %s = %s  (%d bytes, sha256 %s)" % (b["label"], b["path"], b["size"],
                                                       b["sha256"][:16]))
    print("peer %s, svc %s; %d run(s), %s sizes" % (a.peer, a.svc, a.runs, "quick" if a.quick else "full"),
          flush=True)
    tools = {"svc": os.path.abspath(a.svc), "fleet": os.path.abspath(a.fleet)}

    def binaries_of(sc):
        return servers if sc.server else binaries

    records, unavailable, failures = [], {}, 0
    services = Services(os.path.abspath(a.svc))
    tmp = tempfile.TemporaryDirectory(prefix="tc-bench-")
    pki = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        for sc in all_scenarios:
            if sc.server and (no_server or (sc.client == "fleet" and not executable(tools["fleet"]))):
                unavailable[sc.name] = no_server or (
                    "no fleet tool at %s (build it with `make bench` or ./build.sh bench)"
                    % tools["fleet"])
                print("%-10s not available: %s" % (sc.name, unavailable[sc.name]), flush=True)
                continue
            if sc.tls and pki is None:
                try:
                    pki = make_pki(tmp.name)
                except (BenchError, OSError, subprocess.TimeoutExpired) as e:
                    unavailable[sc.name] = "cannot make the test PKI: %s" % e
                    print("%-10s not available: %s" % (sc.name, unavailable[sc.name]), flush=True)
                    continue
            if sc.tls and "wss" in unavailable:
                unavailable[sc.name] = unavailable["wss"]
                print("%-10s not available: %s" % (sc.name, unavailable[sc.name]), flush=True)
                continue
            try:
                for run in range(a.runs):
                    for b in binaries_of(sc):
                        t0 = time.monotonic()
                        if sc.server:
                            rec = measure_server(sc, b, binaries[0]["path"], tools, services)
                        else:
                            rec = measure(sc, b, os.path.abspath(a.peer), services, pki)
                        rec["run"] = run
                        records.append(rec)
                        took = time.monotonic() - t0
                        if "error" in rec:
                            failures += 1
                            print("error: %s run %d %s: %s" % (sc.name, run + 1, b["label"], rec["error"]),
                                  flush=True)
                        else:
                            print("%-10s run %d %s  %s  (%.1f s)" % (sc.name, run + 1, b["label"],
                                                                  brief(sc, rec), took), flush=True)
            except Unavailable as e:
                unavailable[sc.name] = str(e)
                if sc.tls:
                    unavailable["wss"] = str(e)
                print("%-10s not available: %s" % (sc.name, e), flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        failures += 1
    finally:
        services.close()
        stop_all()
        tmp.cleanup()

    medians = aggregate(all_scenarios, binaries_of, records)
    labels = [b["label"] for b in (binaries if len(binaries) >= len(servers) else servers)]
    print_table(all_scenarios, labels, medians, unavailable, a.runs)
    targets = check_targets(all_scenarios, binaries_of, medians, unavailable)
    out = {
        "binaries": binaries,
        "servers": servers,
        "config": {"quick": a.quick, "runs": a.runs, "peer": os.path.abspath(a.peer),
                   "svc": os.path.abspath(a.svc), "fleet": tools["fleet"], "cpus": os.cpu_count(),
                   "scenarios": {s.name: scenario_config(s) for s in all_scenarios}},
        "unavailable": {k: v for k, v in unavailable.items() if k != "wss"},
        "runs": records,
        "medians": medians,
        "targets": targets,
        "failures": failures,
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    print("raw runs and medians: %s" % a.json)
    if failures:
        print("%d measurement(s) failed" % failures)
    return 1 if failures else 0


class _AnyPort(dict):
    def __missing__(self, key):
        return "PORT"


def scenario_config(s):
    c = {"peer_scenario": s.peer, "tls": s.tls, "expect_bytes": s.expect_bytes,
         "expect_served": s.expect_served, "count": s.count, "size": s.size}
    if s.server:
        c.update({"server": True, "client": s.client,
                  "client_args": [str(x) for x in s.args(_AnyPort())],
                  "server_args": [str(x) for x in s.server_args], "seconds": s.seconds,
                  "peer_args": []})
    else:
        c["peer_args"] = [str(x) for x in s.args({m: "PORT" for m in s.services})]
    return c


def check_targets(all_scenarios, binaries_of, medians, unavailable):
    """Print and return the memory targets of the server scenarios that ran."""
    out = []
    for name, key, limit in TARGETS:
        sc = next((x for x in all_scenarios if x.name == name), None)
        if sc is None or name in unavailable:
            continue
        for b in binaries_of(sc):
            m = (medians.get(name, {}).get(key) or {}).get(b["label"])
            value = m["median"] if m else None
            out.append({"scenario": name, "figure": key, "binary": b["label"],
                        "limit_kib": limit, "value_kib": value,
                        "met": value is not None and value <= limit})
    if out:
        print("targets:")
        for t in out:
            print("  %-11s %s %s: %s KiB (%.1f MiB) <= %d MiB: %s" % (
                t["scenario"], t["binary"], t["figure"], fmt(t["value_kib"]),
                (t["value_kib"] or 0) / 1024.0, t["limit_kib"] // 1024,
                "no measurement" if t["value_kib"] is None else "met" if t["met"] else "MISSED"))
    return out


def brief(sc, rec):
    f = figures(sc, rec)
    if sc.kind == "relay":
        return "%s MiB/s, server %s s CPU/GiB, agent %s s CPU/GiB, server peak RSS %s KiB" % (
            fmt(f["mib_s"]), fmt(f["server_cpu_s_per_gib"]), fmt(f["agent_cpu_s_per_gib"]),
            fmt(f["server_hwm_kib"]))
    if sc.kind == "relay-conns":
        return ("served %d, errors %d, %s conns/s, server peak RSS %s KiB, agent %s KiB, "
                "listen overflows %s" % (f["served"], f["errors"], fmt(f["conns_s"]),
                                         fmt(f["server_hwm_kib"]), fmt(f["agent_hwm_kib"]),
                                         fmt(f["listen_overflows"])))
    if sc.kind == "fleet":
        return ("connected %s, pings %s..%s, max gap %s ms, server RSS %s KiB (%s B/agent), "
                "listen overflows %s" % (f["connected"], f["pings_min"], f["pings_max"],
                                         fmt(f["max_gap_ms"]), fmt(f["server_rss_connected_kib"]),
                                         fmt(f["server_bytes_per_agent"]),
                                         fmt(f["listen_overflows"])))
    if sc.kind == "bytes":
        return "%s MiB/s, %s s CPU/GiB" % (fmt(f["mib_s"]), fmt(f["cpu_s_per_gib"]))
    if sc.kind == "rr":
        return "p50 %s us (direct %s), %s us CPU/rt" % (fmt(f["p50"]), fmt(f["direct_p50"]),
                                                        fmt(f["cpu_us_per_rt"]))
    if sc.kind == "conns":
        return "served %d, errors %d, %s conns/s, peak RSS %s KiB" % (
            f["served"], f["errors"], fmt(f["conns_s"]), fmt(f["hwm_kib"]))
    return "RSS %s KiB" % fmt(f["rss_kib"])


def aggregate(all_scenarios, binaries_of, records):
    """{scenario: {figure: {label: summary}}} over the good runs."""
    out = {}
    for sc in all_scenarios:
        per = {}
        for key, _, _ in FIGURES[sc.kind]:
            per[key] = {}
            for b in binaries_of(sc):
                vals = [figures(sc, r)[key] for r in records
                        if r["scenario"] == sc.name and r["binary"] == b["label"] and "error" not in r]
                per[key][b["label"]] = summarise(vals)
        out[sc.name] = per
    if "bulk-idle" in out and "down" in out:
        for key, src in (("bulk_vs_down_mib_s", "mib_s"), ("bulk_vs_down_cpu", "cpu_s_per_gib")):
            out["bulk-idle"][key] = {}
            for b in binaries_of(next(x for x in all_scenarios if x.name == "bulk-idle")):
                x = out["bulk-idle"][src].get(b["label"])
                y = out["down"][src].get(b["label"])
                out["bulk-idle"][key][b["label"]] = (
                    summarise([x["median"] / y["median"]]) if x and y and y["median"] else None)
    return out


def print_table(all_scenarios, labels, medians, unavailable, runs):
    head = ["scenario", "figure"] + labels + (["A/B"] if len(labels) == 2 else [])
    rows = []
    for sc in all_scenarios:
        if sc.name in unavailable:
            rows.append([sc.name, "not available"] + ["-"] * (len(head) - 2))
            continue
        figs = list(FIGURES[sc.kind])
        if sc.name == "bulk-idle":
            figs += RATIO_ROWS
        for key, label, unit in figs:
            per = medians.get(sc.name, {}).get(key)
            if per is None:
                continue
            row = [sc.name, "%s %s" % (label, unit) if unit else label]
            row += [cell(per.get(lab), runs) for lab in labels]
            if len(labels) == 2:
                x, y = per.get("A"), per.get("B")
                row.append("%.2f" % (x["median"] / y["median"]) if x and y and y["median"] else "-")
            rows.append(row)
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    if runs > 1:
        print("(median over %d runs, min..max in brackets)" % runs)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    finally:
        stop_all()
