"""How the integration tests find, start and talk to tunnel-server.

TUNNEL_SERVER names the binary (default: the host build), TUNNEL_SERVER_RUN
an optional runner prefix such as "qemu-mips-static" (default: the same as
TUNNEL_CLIENT_RUN, so a cross run emulates both programs).

    srv = Server(["--expose", "127.0.0.1:PORT=r1:80"], listen_port=None)
        srv.url            "ws://127.0.0.1:PORT" (the agent's --runner-url)
        srv.port           the agent listener's port
        srv.log()          stderr so far; srv.wait_log(text, timeout, count=1)
        srv.wait_agent(id, timeout, count=1)   until "agent connected id=ID"
                                               was logged count times
        srv.signal(sig), srv.wait(timeout), srv.stop(), srv.vm_kib()
    run_server(*args, timeout) -> CompletedProcess (text) for start-up errors

Public clients: connect(port), echo_check(port, data), recv_exact(sock, n),
closed_within(sock, timeout) -> "eof" | "reset" | None.

RawWs: a WebSocket client driven by hand (an agent that misbehaves on
purpose): the upgrade with or without a token, frames masked or not, close
codes as the server sent them. http_upgrade() returns just the HTTP status.

PyAgent: a stand-in for the Rust tunnel-client (built on python3-websockets):
dials URL/ws/tunnel/ID, answers CONNECT by connecting to 127.0.0.1:port and
sending CONNECTED (ERROR on failure), relays DATA both ways, CLOSE on EOF,
PONG for PING; UDP: one connected socket per id, one datagram per DATA.
"""
import asyncio
import base64
import hashlib
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import websockets
import websockets.exceptions

import agent as agent_mod
import fake_runner as fr

ROOT = agent_mod.ROOT
BINARY = os.environ.get(
    "TUNNEL_SERVER", os.path.join(ROOT, "build", "x86_64-linux-musl", "tunnel-server"))
RUN_PREFIX = shlex.split(os.environ.get("TUNNEL_SERVER_RUN",
                                        os.environ.get("TUNNEL_CLIENT_RUN", "")))


def _slow(prefix):
    if not prefix:
        return 1.0
    return 6.0 if "valgrind" in prefix[0] else 4.0


# Either program emulated (or under valgrind) makes every wait longer.
SLOW = max(agent_mod.SLOW, _slow(RUN_PREFIX))
EMULATED = bool(RUN_PREFIX or agent_mod.RUN_PREFIX)


def T(seconds):
    """A wait of `seconds` on the host, scaled for emulated/valgrind runs."""
    return seconds * SLOW


# Settings of the server that must not leak in from the caller's environment.
SERVER_ENV_VARS = (
    "TUNNEL_CONFIG", "TUNNEL_LISTEN", "TLS_CERT", "TLS_KEY", "TUNNEL_EXPOSE", "TUNNEL_TOKEN",
    "TUNNEL_TOKEN_FILE", "TUNNEL_NO_AUTH", "TUNNEL_ADMIN", "LOG_LEVEL", "MAX_MESSAGE",
    "MAX_AGENTS", "MAX_CONNECTIONS", "UDP_IDLE_TIMEOUT", "STALL_TIMEOUT", "PING_INTERVAL",
    "PING_TIMEOUT",
)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in SERVER_ENV_VARS and k not in agent_mod.AGENT_ENV_VARS}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def command(*args):
    return RUN_PREFIX + [BINARY] + [str(a) for a in args]


def run_server(*args, env=None, timeout=10):
    """Run the server to completion (start-up errors); CompletedProcess (text)."""
    return subprocess.run(command(*args), env=env if env is not None else clean_env(),
                          capture_output=True, text=True, timeout=timeout * SLOW)


def free_port(kind=socket.SOCK_STREAM, host="127.0.0.1"):
    return fr.free_port(socket.AF_INET, host, kind)


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


_PDEATHSIG = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []


class Server:
    """A running tunnel-server; stderr goes to a file (see module doc)."""

    def __init__(self, args=(), listen_port=None, listen_host="127.0.0.1", log_level="debug",
                 env=None, ready=True, listen=True):
        self.port = listen_port or free_port(host="127.0.0.1")
        self.host = listen_host
        args = [str(a) for a in args]
        if listen:
            args = ["--listen", "%s:%d" % (listen_host, self.port)] + args
        if log_level:
            args = ["--log-level", log_level] + args
        self.args = args
        self.scheme = "wss" if "--tls-cert" in args else "ws"
        self._log = tempfile.TemporaryFile(mode="w+b")
        self.signalled = None
        self.expect_exit = not ready  # the test waits for an exit itself
        self.proc = subprocess.Popen(
            _PDEATHSIG + command(*args), env=env if env is not None else clean_env(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log)
        if ready:
            self.wait_ready()

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % (self.scheme, self.port)

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def wait_log(self, text, timeout, count=1):
        """True once text appears count times in the log (False on timeout
        or when the server exited without it)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.log().count(text) >= count:
                return True
            if time.monotonic() >= deadline or not self.alive():
                return self.log().count(text) >= count
            time.sleep(0.02)

    def assert_log(self, text, timeout, count=1):
        assert self.wait_log(text, timeout, count), \
            "server log has %r fewer than %d times after %.1fs; log tail:\n%s" % (
                text, count, timeout, tail(self.log()))

    def wait_ready(self, timeout=None):
        timeout = timeout or T(5)
        if not self.wait_log(" listening on ", timeout):
            rc = self.proc.poll()
            raise AssertionError("tunnel-server did not start within %.1fs (exit %s); log:\n%s"
                                 % (timeout, rc, tail(self.log())))

    def wait_agent(self, agent_id, timeout=None, count=1):
        """Until the server logged agent_id's upgrade count times."""
        self.assert_log("agent connected id=%s " % agent_id, timeout or T(5), count)

    def alive(self):
        return self.proc.poll() is None

    def assert_alive(self):
        rc = self.proc.poll()
        assert rc is None, "tunnel-server exited with %s; log tail:\n%s" % (rc, tail(self.log()))

    def signal(self, sig):
        self.signalled = sig
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """Kill if still running (teardown); returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(10)

    def vm_kib(self, field="VmHWM"):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return None


# ---------------------------------------------------------------------------
# Public clients


def connect(port, timeout=None, host="127.0.0.1", rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout or T(5))
    s.connect((host, port))
    return s


def recv_exact(sock, n, timeout=None):
    """n bytes from sock; AssertionError on EOF or timeout."""
    deadline = time.monotonic() + (timeout or T(10))
    parts, got = [], 0
    while got < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("got %d of %d bytes in time" % (got, n))
        sock.settimeout(left)
        try:
            d = sock.recv(min(1 << 20, n - got))
        except socket.timeout:
            continue
        if not d:
            raise AssertionError("connection closed after %d of %d bytes" % (got, n))
        parts.append(d)
        got += len(d)
    return b"".join(parts)


def recv_all(sock, timeout=None):
    """Every byte until EOF; (bytes, how) with how "eof", "reset" or
    "timeout"."""
    deadline = time.monotonic() + (timeout or T(10))
    parts = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(parts), "timeout"
        sock.settimeout(left)
        try:
            d = sock.recv(1 << 20)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return b"".join(parts), "reset"
        if not d:
            return b"".join(parts), "eof"
        parts.append(d)


def closed_within(sock, timeout):
    """How the peer ended the connection within timeout, discarding any
    bytes: "eof", "reset", or None if it is still open."""
    _, how = recv_all(sock, timeout)
    return None if how == "timeout" else how


def send_in_thread(sock, data):
    """sendall in a thread (so the caller can read meanwhile); join() it.
    .error holds an exception it met."""
    t = threading.Thread(target=_sendall, args=(sock, data), daemon=True)
    t.error = None
    t.start()
    return t


def _sendall(sock, data):
    t = threading.current_thread()
    try:
        sock.sendall(data)
    except OSError as e:
        t.error = e


def echo_check(port, data, timeout=None):
    """Through an expose to an echo service: send data, expect it back."""
    timeout = timeout or T(10)
    with connect(port, timeout) as c:
        sender = send_in_thread(c, data)
        back = recv_exact(c, len(data), timeout)
        sender.join(timeout)
    assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest(), \
        "echoed %d bytes differ" % len(data)


def wait_until(pred, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


# ---------------------------------------------------------------------------
# A WebSocket client by hand


def client_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length=None):
    """A frame as a client sends it (masked unless mask=False); length
    overrides the header's payload length."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload) if length is None else length
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack(">BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack(">BBH", b0, mbit | 126, n)
    else:
        head = struct.pack(">BBQ", b0, mbit | 127, n)
    if not mask:
        return head + bytes(payload)
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if len(payload) < 4096 else \
        _mask_fast(payload, key)
    return head + key + body


def _mask_fast(payload, key):
    n = len(payload)
    k = int.from_bytes((key * ((n + 3) // 4))[:n], "big")
    return (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big")


def upgrade_request(port, agent_id, token=None, path=None, extra=""):
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % (path or "/ws/tunnel/" + agent_id),
             "Host: 127.0.0.1:%d" % port, "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13",
             "User-Agent: raw-test-client"]
    if token is not None:
        lines.append("Authorization: Bearer " + token)
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode(), key


def _read_head(sock, timeout):
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\r\n\r\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no HTTP response head within %.1fs: %r" % (timeout, buf[:200]))
        sock.settimeout(left)
        try:
            d = sock.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            d = b""
        if not d:
            raise AssertionError("connection closed before the HTTP response ended: %r"
                                 % buf[:200])
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def http_upgrade(port, agent_id, token=None, path=None, timeout=None):
    """Send an upgrade request; returns (status, response head, socket)."""
    s = connect(port, timeout)
    req, _ = upgrade_request(port, agent_id, token, path)
    s.sendall(req)
    head, _ = _read_head(s, timeout or T(5))
    status = int(head.split(" ", 2)[1])
    return status, head, s


class RawWs:
    """A WebSocket session to tunnel-server driven by hand.

    .status / .head: the upgrade response; frames the server sends land in
    .frames as (opcode, payload); .close_code is the code of its close frame
    (None before one came), .eof is set once the server closed the TCP
    connection."""

    def __init__(self, port, agent_id, token=None, timeout=None):
        self.sock = connect(port, timeout)
        req, key = upgrade_request(port, agent_id, token)
        self.sock.sendall(req)
        self.head, self._buf = _read_head(self.sock, timeout or T(5))
        self.status = int(self.head.split(" ", 2)[1])
        if self.status == 101:
            assert fr._ws_accept(key) in self.head, self.head
        self.frames = []
        self.close_code = None
        self.eof = False
        self.answer_pings = True
        self.answer_close = True
        self.pings = 0
        self._take(b"")

    def _take(self, data):
        frames, self._buf = fr.parse_frames(self._buf + data)
        for op, payload in frames:
            self.frames.append((op, payload))
            if op == 0x8 and self.close_code is None:
                self.close_code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 \
                    else 1005
                if self.answer_close:
                    self.send_frame(0x8, payload[:2])
            elif op == 0x9:
                self.pings += 1
                if self.answer_pings:
                    self.send_frame(0xA, payload)

    def send_raw(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def send_frame(self, opcode, payload=b"", **kw):
        self.send_raw(client_frame(opcode, payload, **kw))

    def send_binary(self, payload):
        self.send_frame(0x2, payload)

    def pump(self, timeout):
        """Read what comes within timeout (until EOF)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return
            except OSError:
                d = b""
            if not d:
                self.eof = True
                return
            self._take(d)

    def wait_for(self, pred, timeout):
        """Read until pred(self) holds, the server closed, or timeout; the
        final pred(self)."""
        deadline = time.monotonic() + timeout
        while not pred(self) and not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.pump(min(left, 0.1))
        return pred(self)

    def wait_close(self, timeout):
        """The server's close code (None if the connection ended without a
        close frame, AssertionError if still open)."""
        self.wait_for(lambda w: w.close_code is not None or w.eof, timeout)
        assert self.close_code is not None or self.eof, \
            "server neither closed nor sent a close frame in %.1fs" % timeout
        return self.close_code

    def ping_ok(self, timeout):
        """A WebSocket ping answered with its pong: the session is alive."""
        token = os.urandom(8)
        self.send_frame(0x9, token)
        return self.wait_for(lambda w: (0xA, token) in w.frames, timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------
# A stand-in for the Rust tunnel-client


class PyAgent:
    """See the module doc. .connected (Event) is set once the upgrade
    succeeded, .ended once the session is over; .events lists what it did
    ("connect 1 tcp 8080", "connected 1", "error 1 ...", "close 1")."""

    def __init__(self, url, agent_id, token=None, ssl=None):
        self.url = url.rstrip("/") + "/ws/tunnel/" + agent_id
        self.token = token
        self.ssl = ssl
        self.connected = threading.Event()
        self.ended = threading.Event()
        self.events = []
        self.error = None
        self.close_code = None
        self.ws = None
        self._conns = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="py-agent")
        self._thread.start()
        self._main_fut = asyncio.run_coroutine_threadsafe(self._main(), self._loop)

    # ---- the session
    async def _main(self):
        headers = {"User-Agent": "py-agent (Rust client stand-in)"}
        if self.token is not None:
            headers["Authorization"] = "Bearer " + self.token
        try:
            async with websockets.connect(self.url, extra_headers=headers, ssl=self.ssl,
                                          max_size=None, ping_interval=None,
                                          compression=None, close_timeout=1) as ws:
                self.ws = ws
                self.connected.set()
                try:
                    async for message in ws:
                        await self._on_message(message)
                except websockets.exceptions.ConnectionClosed:
                    pass
                self.close_code = ws.close_code
        except Exception as e:  # the test looks at .error
            self.error = e
        finally:
            for c in list(self._conns.values()):
                c.shut()
            self._conns.clear()
            self.ended.set()

    async def _send(self, mtype, proto, cid, payload=b""):
        try:
            await self.ws.send(fr.pack(mtype, proto, cid, 0, payload))
        except websockets.exceptions.ConnectionClosed:
            pass

    async def _on_message(self, message):
        if isinstance(message, str) or len(message) < 8:
            return
        m = fr.unpack(message)
        if m.type == fr.CONNECT:
            self.events.append("connect %d %s %d" % (m.cid, "udp" if m.proto else "tcp", m.port))
            c = _PyConn(self, m.cid, m.proto)
            self._conns[m.cid] = c
            c.task = asyncio.ensure_future(c.run(m.port))
        elif m.type == fr.DATA:
            c = self._conns.get(m.cid)
            if c is not None:
                await c.write(m.payload)
        elif m.type == fr.CLOSE:
            c = self._conns.pop(m.cid, None)
            if c is not None:
                self.events.append("close %d" % m.cid)
                await c.close_after_writes()
        elif m.type == fr.PING:
            await self._send(fr.PONG, m.proto, m.cid)

    def close(self):
        async def go():
            if self.ws is not None:
                await self.ws.close()
        try:
            asyncio.run_coroutine_threadsafe(go(), self._loop).result(5)
        except Exception:
            pass
        self.ended.wait(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class _PyConn(asyncio.DatagramProtocol):
    """One tunnelled connection of PyAgent."""

    def __init__(self, agent, cid, proto):
        self.agent = agent
        self.cid = cid
        self.proto = proto
        self.pending = []       # DATA before the local connect finished
        self.writer = None
        self.transport = None   # UDP
        self.ready = asyncio.Event()
        self.failed = False
        self.task = None
        self.done = False

    async def run(self, port):
        a = self.agent
        try:
            if self.proto == fr.UDP:
                loop = asyncio.get_running_loop()
                self.transport, _ = await loop.create_datagram_endpoint(
                    lambda: self, remote_addr=("127.0.0.1", port))
            else:
                reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as e:
            self.failed = True
            self.ready.set()
            a.events.append("error %d %s" % (self.cid, e.strerror or e))
            a._conns.pop(self.cid, None)
            await a._send(fr.ERROR, self.proto, self.cid, (e.strerror or str(e)).encode())
            return
        a.events.append("connected %d" % self.cid)
        await a._send(fr.CONNECTED, self.proto, self.cid)
        for d in self.pending:
            self._write_now(d)
        self.pending = []
        self.ready.set()
        if self.proto == fr.UDP:
            return
        while True:
            try:
                d = await reader.read(65536)
            except OSError:
                d = b""
            if not d:
                break
            await a._send(fr.DATA, fr.TCP, self.cid, d)
        if a._conns.get(self.cid) is self:
            a._conns.pop(self.cid, None)
            a.events.append("eof %d" % self.cid)
            await a._send(fr.CLOSE, fr.TCP, self.cid)
        self.shut()

    def _write_now(self, d):
        if self.proto == fr.UDP:
            self.transport.sendto(d)
        else:
            self.writer.write(d)

    async def write(self, d):
        if not self.ready.is_set():
            self.agent.events.append("early-data %d %d" % (self.cid, len(d)))
            self.pending.append(d)
            return
        if self.failed or self.done:
            return
        self._write_now(d)
        if self.writer is not None:
            try:
                await self.writer.drain()
            except OSError:
                pass

    async def close_after_writes(self):
        await self.ready.wait()
        if self.writer is not None and not self.done:
            try:
                await self.writer.drain()
            except OSError:
                pass
        self.shut()

    def shut(self):
        if self.done:
            return
        self.done = True
        if self.writer is not None:
            self.writer.close()
        if self.transport is not None:
            self.transport.close()

    # UDP from the local service
    def datagram_received(self, data, addr):
        asyncio.ensure_future(self.agent._send(fr.DATA, fr.UDP, self.cid, data))


# ---------------------------------------------------------------------------
# Local services beyond fake_runner's


class HttpService(fr._TcpService):
    """Answers one HTTP request per connection (a body of body_size bytes
    after a greeting line), then closes."""

    def __init__(self, body_size=0, held=False):
        self.body_size = body_size
        super().__init__(held)

    def serve(self, c, idx):
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = self._recv(c, 4096)
            if not d:
                return
            buf += d
        first = buf.split(b"\r\n", 1)[0].decode("latin-1")
        body = ("hello from 127.0.0.1:%d; you asked for %r\n" % (self.port, first)).encode()
        body += bytes(i & 0xFF for i in range(self.body_size))
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n%s" % (len(body), body))


class TcpSource(fr._TcpService):
    """Sends to every connection as fast as it takes it (up to total
    bytes), reading nothing; .sent[idx] counts, .ended[idx] is set when a
    send failed or total was reached."""

    def __init__(self, total=256 << 20, chunk=65536):
        self.total = total
        self.block = os.urandom(chunk)
        self.sent = {}
        self.ended = {}
        self.failed = {}
        super().__init__()

    def serve(self, c, idx):
        with self._cond:
            self.sent[idx] = 0
            self.ended[idx] = threading.Event()
        c.settimeout(0.2)
        try:
            while self.sent[idx] < self.total and not self._stop.is_set():
                try:
                    n = c.send(self.block)
                except socket.timeout:
                    continue
                self.sent[idx] += n
        except OSError as e:
            self.failed[idx] = e
        finally:
            self.ended[idx].set()
