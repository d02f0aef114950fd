"""A fake runner and local test services for the integration suite.

Everything here is synchronous from the test's point of view: the servers run
in background threads (the WebSocket server in its own asyncio event loop),
and every blocking call takes a timeout (seconds, already scaled by the caller
if it wants agent.SLOW). Nothing here can hang a test forever.

Stable API (other test modules, e.g. test_tls.py and test_deploy.py, import it):

    runner = FakeRunner(ssl=None, host="127.0.0.1", port=0, rcvbuf=None)
        ssl: an ssl.SSLContext passed to websockets.serve, or None for ws://.
        runner.url   "ws://127.0.0.1:PORT" or "wss://..." ("ws://[::1]:PORT"
                     for an IPv6 host); the base URL, without /ws/tunnel/...
        runner.port, runner.host
        runner.accept(timeout) -> Session   next accepted WebSocket session
                                            (raises AssertionError on timeout)
        runner.attempts                     list of (path, headers) of every
                                            upgrade request seen, refused or not
        runner.attempt_times                their time.monotonic() stamps
        runner.wait_attempts(n, timeout)    until at least n requests were seen
        runner.refuse = (status, body)      answer upgrades with this HTTP
                                            status instead; None = accept
        runner.stop() / runner.start()      stop listening (closes sessions
                                            with 1001) / listen again on the
                                            same port ("runner restart")
        runner.violations()                 protocol rule breaches by the agent
        runner.close()                      stop everything (idempotent)
    FakeRunner is also a context manager.

    Session (one accepted WebSocket):
        .path, .headers                 request path and headers
        .send(bytes|str)                one binary (bytes) or text (str) message
        .send_msg(type, proto, cid, port=0, payload=b"")
        .send_many(list, timeout)       several messages back to back from one
                                        coroutine (they reach the agent together)
        .send_background(list)          same, returns a concurrent Future
        .send_fragmented(parts)         one message sent as len(parts) frames
        .accepted_at, .ended_at         time.monotonic() stamps
        .recv_msg(cid=None, timeout)    next binary message (as Msg), for one
                                        client id or any; AssertionError on timeout
        .try_recv_msg(cid=None, timeout) same, but None on timeout
        .recv_text(timeout)             next text message from the agent
        .wait_closed(timeout) -> code   close code the agent sent (1006 if none)
        .close(code=1000, reason="", timeout)
        .drop()                         abort the TCP connection, no close frame
        .ping(timeout)                  WebSocket ping; True once the pong came
        .ignore_pings()                 stop answering the agent's pings
        .pause_reading() / .resume_reading()  stop/restart consuming messages
        helpers: .open_tcp / .open_udp / .recv_data / .recv_until_close /
                 .expect_silence / .pingpong (see their docstrings)

Message helpers: pack(type, proto, cid, port=0, payload=b"") and unpack(bytes)
-> Msg(type, proto, cid, port, payload); constants CONNECT..PONG, TCP, UDP.

Local services (127.0.0.1 only, threads, .port, .close()): TcpEcho,
TCP services take held=True to keep a connect to them in progress until
.release(),
TcpSink (records bytes until EOF; may read slowly or never), TcpSendClose
(sends N bytes then closes, or resets), UdpEcho, UdpTicker, closed_port(). Raw runners
for failure modes: RawServer(mode) with modes "silent" (never answers),
"garbage" (answers non-HTTP text), "upgrade_silent" (completes the WebSocket
upgrade by hand, then never sends a byte, recording the frames it receives).
"""
import asyncio
import base64
import collections
import hashlib
import socket
import struct
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout

import websockets
import websockets.exceptions

CONNECT, CONNECTED, DATA, CLOSE, ERROR, PING, PONG = 1, 2, 3, 4, 5, 6, 7
TCP, UDP = 0, 1
TYPE_NAMES = {1: "CONNECT", 2: "CONNECTED", 3: "DATA", 4: "CLOSE", 5: "ERROR",
              6: "PING", 7: "PONG"}
HEADER = struct.Struct(">BBIH")
MAX_AGENT_DATA = 65536  # the agent never sends a DATA payload larger than this

Msg = collections.namedtuple("Msg", "type proto cid port payload")


def pack(mtype, proto, cid, port=0, payload=b""):
    return HEADER.pack(mtype, proto, cid, port) + bytes(payload)


def unpack(message):
    if len(message) < 8:
        raise ValueError("message shorter than 8 bytes: %r" % (message,))
    t, p, c, port = HEADER.unpack_from(message)
    return Msg(t, p, c, port, bytes(message[8:]))


def describe(msg):
    name = TYPE_NAMES.get(msg.type, "type%d" % msg.type)
    return "%s(proto=%d cid=%d port=%d len=%d)" % (
        name, msg.proto, msg.cid, msg.port, len(msg.payload))


def free_port(family=socket.AF_INET, host="127.0.0.1", kind=socket.SOCK_STREAM):
    s = socket.socket(family, kind)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def closed_port():
    """A TCP port on 127.0.0.1 with nothing listening (bound, then closed)."""
    return free_port()


# --------------------------------------------------------------------------
# Fake runner


class Session:
    """One accepted WebSocket from the agent, driven from the test thread."""

    def __init__(self, runner, ws):
        self.runner = runner
        self.ws = ws
        self.loop = runner._loop
        self.path = ws.path
        self.headers = ws.request_headers
        self.accepted_at = time.monotonic()
        self._cond = threading.Condition()
        self._seq = 0
        self._by_cid = collections.defaultdict(collections.deque)
        self._texts = collections.deque()
        self.messages = []          # every (time, Msg) received, in order
        self.closed = threading.Event()
        self.close_code = None
        self.close_reason = None
        self.ended_at = None
        self.violation_list = []
        self._connected = set()     # ids the agent reported CONNECTED and not yet closed
        self._ended_ids = set()     # ids the agent sent CLOSE/ERROR for
        self._runner_closed = set()  # ids the runner sent CLOSE for (DATA may race)
        self.pings_received = 0     # WebSocket pings from the agent
        self._gate = asyncio.Event()  # cleared: the runner stops reading
        self._gate.set()
        self._ignore_pings = False
        real_pong = ws.pong

        async def pong(data=b""):
            self.pings_received += 1
            if not self._ignore_pings:
                await real_pong(data)
        ws.pong = pong

    # ---- called in the loop thread
    def _on_message(self, message):
        with self._cond:
            if isinstance(message, str):
                self._texts.append(message)
                self.violation_list.append("text message from the agent: %r" % message[:80])
                self._cond.notify_all()
                return
            if len(message) < 8:
                self.violation_list.append("binary message shorter than 8 bytes: %r" % message)
                self._cond.notify_all()
                return
            m = unpack(message)
            self._check(m)
            self._seq += 1
            self.messages.append((time.monotonic(), m))
            self._by_cid[m.cid].append((self._seq, m))
            self._cond.notify_all()

    def _check(self, m):
        v = self.violation_list
        if m.type not in (CONNECTED, DATA, CLOSE, ERROR, PONG):
            v.append("agent sent a message type it must not send: %s" % describe(m))
        if m.proto not in (TCP, UDP):
            v.append("agent sent an unknown proto: %s" % describe(m))
        if m.port != 0:
            v.append("agent reply with port != 0: %s" % describe(m))
        if m.type == DATA:
            if len(m.payload) > MAX_AGENT_DATA:
                v.append("agent DATA payload over 64 KiB: %s" % describe(m))
            if m.cid in self._ended_ids:
                v.append("agent sent DATA after CLOSE/ERROR for cid %d" % m.cid)
            elif m.cid not in self._connected and m.cid not in self._runner_closed:
                v.append("agent sent DATA for cid %d before CONNECTED" % m.cid)
        elif m.type == CONNECTED:
            if m.cid in self._connected:
                v.append("agent sent CONNECTED twice for cid %d" % m.cid)
            self._connected.add(m.cid)
            self._ended_ids.discard(m.cid)
            self._runner_closed.discard(m.cid)
        elif m.type == ERROR and b"in use" in m.payload.lower():
            pass  # a refused duplicate CONNECT leaves the live id alone
        elif m.type in (CLOSE, ERROR):
            self._connected.discard(m.cid)
            self._ended_ids.add(m.cid)

    def _on_end(self):
        with self._cond:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            self.ended_at = time.monotonic()
            self.closed.set()
            self._cond.notify_all()

    # ---- thread bridge
    def _call(self, coro, timeout):
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except FutureTimeout:
            fut.cancel()
            raise AssertionError("fake runner: operation timed out after %.1fs" % timeout)

    # ---- sending
    def _note_sent(self, message):
        if isinstance(message, (bytes, bytearray, memoryview)) and len(message) >= 8 \
                and message[0] == CLOSE:
            cid = HEADER.unpack_from(message)[2]
            with self._cond:
                if cid in self._connected:
                    self._connected.discard(cid)
                    self._runner_closed.add(cid)

    async def _send_one(self, message):
        self._note_sent(message)
        await self.ws.send(message)

    def send(self, message, timeout=10):
        """Send one message: bytes -> binary, str -> text."""
        self._call(self._send_one(message), timeout)

    def send_msg(self, mtype, proto, cid, port=0, payload=b"", timeout=10):
        self.send(pack(mtype, proto, cid, port, payload), timeout)

    async def _send_all(self, messages):
        for m in messages:
            await self._send_one(m)

    def send_many(self, messages, timeout=30):
        """Send a list of messages back to back, from one coroutine."""
        self._call(self._send_all(list(messages)), timeout)

    def send_background(self, messages):
        """Start sending; returns a concurrent.futures.Future."""
        return asyncio.run_coroutine_threadsafe(self._send_all(messages), self.loop)

    def send_fragmented(self, parts, timeout=10):
        """One binary message sent as one WebSocket frame per part."""
        self._call(self.ws.send([bytes(p) for p in parts]), timeout)

    def send_fragmented_with_ping(self, parts, timeout=10):
        """One binary message in len(parts) frames with a WebSocket ping
        between every two of them; True once every pong came back."""
        waiters = []

        async def gen():
            for i, p in enumerate(parts):
                if i:
                    waiters.append(await self.ws.ping(b"mid-message %d" % i))
                yield bytes(p)

        async def go():
            await self.ws.send(gen())
            await asyncio.wait_for(asyncio.gather(*waiters), timeout)
        self._call(go(), timeout + 1)
        return True

    def send_data(self, cid, data, chunk=65536, proto=TCP, timeout=60):
        """Send data for cid as DATA messages of at most chunk bytes."""
        self.send_many(data_messages(cid, data, chunk, proto), timeout)

    # ---- receiving
    def try_recv_msg(self, cid=None, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if cid is None:
                    best = None
                    for q in self._by_cid.values():
                        if q and (best is None or q[0][0] < best[0][0]):
                            best = q
                    if best is not None:
                        return best.popleft()[1]
                else:
                    q = self._by_cid.get(cid)
                    if q:
                        return q.popleft()[1]
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.5))

    def recv_msg(self, cid=None, timeout=5.0):
        m = self.try_recv_msg(cid, timeout)
        if m is None:
            raise AssertionError("no message%s from the agent within %.1fs%s" % (
                "" if cid is None else " for cid %d" % cid, timeout,
                " (session closed, code %s)" % self.close_code if self.closed.is_set() else ""))
        return m

    def recv_text(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._texts:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no text message within %.1fs" % timeout)
                self._cond.wait(left)
            return self._texts.popleft()

    def take_pending(self, cid):
        """Remove and return the unread messages for cid."""
        with self._cond:
            q = self._by_cid.get(cid)
            out = [m for _, m in q] if q else []
            if q:
                q.clear()
            return out

    def pending(self, cid=None):
        with self._cond:
            if cid is None:
                return [m for q in self._by_cid.values() for _, m in q]
            return [m for _, m in self._by_cid.get(cid, ())]

    # ---- state
    def wait_closed(self, timeout=5.0):
        """Wait until the session ended; returns the close code from the agent."""
        if not self.closed.wait(timeout):
            raise AssertionError("session still open after %.1fs" % timeout)
        return self.close_code

    def close(self, code=1000, reason="", timeout=10):
        try:
            self._call(self.ws.close(code, reason), timeout)
        except websockets.exceptions.ConnectionClosed:
            pass

    def drop(self):
        """Abort the TCP connection: no close frame."""
        self.loop.call_soon_threadsafe(self.ws.transport.abort)

    def ping(self, timeout=5.0):
        """Send a WebSocket ping; True when the agent's pong arrives in time."""
        async def do():
            waiter = await self.ws.ping(b"fake-runner")
            await asyncio.wait_for(waiter, timeout)
        try:
            self._call(do(), timeout + 1)
            return True
        except (asyncio.TimeoutError, AssertionError, websockets.exceptions.ConnectionClosed):
            return False

    def pause_reading(self):
        """Stop reading the agent's messages (TCP backpressure builds up)."""
        self.loop.call_soon_threadsafe(self._gate.clear)

    def resume_reading(self):
        self.loop.call_soon_threadsafe(self._gate.set)

    def ignore_pings(self):
        """From now on the server does not answer the agent's pings."""
        self._ignore_pings = True

    # ---- protocol helpers
    def open_tcp(self, cid, port, timeout=5.0):
        """CONNECT TCP and expect CONNECTED (same id, TCP, port 0)."""
        self.send_msg(CONNECT, TCP, cid, port)
        m = self.recv_msg(cid, timeout)
        assert (m.type, m.proto, m.cid, m.port) == (CONNECTED, TCP, cid, 0), describe_full(m)
        return m

    def open_udp(self, cid, port, timeout=5.0):
        self.send_msg(CONNECT, UDP, cid, port)
        m = self.recv_msg(cid, timeout)
        assert (m.type, m.proto, m.cid, m.port) == (CONNECTED, UDP, cid, 0), describe_full(m)
        return m

    def recv_data(self, cid, nbytes, timeout=10.0, proto=TCP):
        """Collect DATA payloads for cid until nbytes arrived; returns bytes.
        Fails on any other message type for that id."""
        deadline = time.monotonic() + timeout
        parts, got = [], 0
        while got < nbytes:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("cid %d: got %d of %d bytes within %.1fs" % (
                    cid, got, nbytes, timeout))
            m = self.recv_msg(cid, left)
            assert m.type == DATA and m.proto == proto, \
                "cid %d: expected DATA after %d bytes, got %s" % (cid, got, describe_full(m))
            assert len(m.payload) <= MAX_AGENT_DATA, describe(m)
            parts.append(m.payload)
            got += len(m.payload)
        return b"".join(parts)

    def recv_until_close(self, cid, timeout=10.0):
        """Collect DATA for cid until the agent's CLOSE; returns (bytes, close Msg)."""
        deadline = time.monotonic() + timeout
        parts = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("cid %d: no CLOSE within %.1fs (%d bytes so far)" % (
                    cid, timeout, sum(map(len, parts))))
            m = self.recv_msg(cid, left)
            if m.type == DATA:
                parts.append(m.payload)
                continue
            assert m.type == CLOSE, "cid %d: expected DATA or CLOSE, got %s" % (cid, describe_full(m))
            return b"".join(parts), m

    def expect_silence(self, cid=None, duration=0.3):
        m = self.try_recv_msg(cid, duration)
        assert m is None, "unexpected message from the agent: %s" % describe_full(m)

    def pingpong(self, cid=0xFFFFFF00, proto=TCP, timeout=5.0):
        """Tunnel-level PING; asserts the PONG (same id and proto)."""
        self.send_msg(PING, proto, cid)
        m = self.recv_msg(cid, timeout)
        assert (m.type, m.proto, m.cid) == (PONG, proto, cid), describe_full(m)


def describe_full(m):
    if m is None:
        return "None"
    text = describe(m)
    if m.type == ERROR:
        text += " text=%r" % m.payload[:200]
    return text


def data_messages(cid, data, chunk=65536, proto=TCP):
    view = memoryview(data)
    return [pack(DATA, proto, cid, 0, view[i:i + chunk]) for i in range(0, len(data), chunk)]


class FakeRunner:
    """A websockets server standing in for the runner; see the module doc."""

    def __init__(self, ssl=None, host="127.0.0.1", port=0, ping_interval=None,
                 start=True, rcvbuf=None):
        self.ssl = ssl
        self.rcvbuf = rcvbuf  # SO_RCVBUF of the sessions' sockets (None: kernel default)
        self.host = host
        self.port = port or free_port(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        self.ping_interval = ping_interval
        self.refuse = None
        self.attempts = []
        self.attempt_times = []     # time.monotonic() of each upgrade request
        self.sessions = []
        self._accept_q = collections.deque()
        self._cond = threading.Condition()
        self._server = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="fake-runner")
        self._thread.start()
        self._closed = False
        if start:
            self.start()

    @property
    def url(self):
        scheme = "wss" if self.ssl is not None else "ws"
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d" % (scheme, host, self.port)

    def _run(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _process_request(self, path, headers):
        with self._cond:
            self.attempts.append((path, headers))
            self.attempt_times.append(time.monotonic())
            self._cond.notify_all()
        refuse = self.refuse
        if refuse is not None:
            status, body = refuse
            return status, [("Content-Type", "text/plain")], body
        return None

    async def _handler(self, ws, path=None):
        session = Session(self, ws)
        with self._cond:
            self.sessions.append(session)
            self._accept_q.append(session)
            self._cond.notify_all()
        try:
            while True:
                await session._gate.wait()
                session._on_message(await ws.recv())
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            session._on_end()

    async def _serve(self):
        where = {"host": self.host, "port": self.port}
        if self.rcvbuf:
            # Accepted sockets inherit SO_RCVBUF from the listening socket.
            ls = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            try:
                ls.bind((self.host, self.port))
            except OSError:
                ls.close()
                raise
            where = {"sock": ls}
        self._server = await websockets.serve(
            self._handler, ssl=self.ssl, **where,
            process_request=self._process_request, ping_interval=self.ping_interval,
            max_size=None, max_queue=16, close_timeout=2, compression=None)

    def start(self):
        """(Re)start listening on the same port."""
        if self._server is None:
            deadline = time.monotonic() + 5
            while True:
                try:
                    self._run(self._serve())
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def stop(self, timeout=10):
        """Stop listening and close every session (going away, 1001)."""
        if self._server is not None:
            server, self._server = self._server, None

            async def down():
                for sess in self.sessions:
                    sess._gate.set()  # a paused handler must see the close
                server.close()
                await server.wait_closed()
            self._run(down(), timeout)

    def accept(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._accept_q:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("the agent did not open a WebSocket within %.1fs "
                                         "(%d upgrade requests seen)" % (timeout, len(self.attempts)))
                self._cond.wait(left)
            return self._accept_q.popleft()

    def try_accept(self, timeout=0.0):
        try:
            return self.accept(timeout)
        except AssertionError:
            return None

    def wait_attempts(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.attempts) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("only %d of %d upgrade requests within %.1fs" % (
                        len(self.attempts), n, timeout))
                self._cond.wait(left)
            return list(self.attempts)

    def violations(self):
        out = []
        for i, s in enumerate(self.sessions):
            with s._cond:
                out += ["session %d: %s" % (i, v) for v in s.violation_list]
        return out

    def close(self):
        if self._closed:
            return
        self._closed = True
        try:
            self.stop()
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------
# Raw runners for failure modes


def _ws_accept(key):
    return base64.b64encode(hashlib.sha1(
        key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()


def parse_frames(buf):
    """Parse client frames from buf; returns (list of (opcode, payload), rest)."""
    frames = []
    while True:
        if len(buf) < 2:
            return frames, buf
        b0, b1 = buf[0], buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return frames, buf
            n, off = struct.unpack(">H", buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                return frames, buf
            n, off = struct.unpack(">Q", buf[2:10])[0], 10
        mask = b""
        if b1 & 0x80:
            mask, off = buf[off:off + 4], off + 4
        if len(buf) < off + n:
            return frames, buf
        payload = buf[off:off + n]
        if mask:
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        frames.append((b0 & 0x0F, payload))
        buf = buf[off + n:]


def server_frame(opcode, payload=b"", fin=True, rsv=0):
    """An unmasked frame as a server sends it."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack(">BB", b0, n)
    elif n < 65536:
        head = struct.pack(">BBH", b0, 126, n)
    else:
        head = struct.pack(">BBQ", b0, 127, n)
    return head + bytes(payload)


class _Listener:
    """What RawServer and the TCP services share: a listening socket served
    by a thread, accepted connections in self._conns, a condition to wait on.
    Subclasses set self.sock, self._stop, self._cond, self._conns, self._thread."""

    def _wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("after %.1fs: %s" % (timeout, what()))
                self._cond.wait(left)

    def _shutdown(self):
        """Stop accepting and close every connection (the thread ends)."""
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self._cond:
            for c in self._conns:
                try:
                    c.close()
                except OSError:
                    pass


class RawServer(_Listener):
    """A TCP server with a misbehaving runner; counts connections.

    modes: "silent"         accept and never send a byte
           "garbage"        read the request, answer non-HTTP text, close
           "upgrade_silent" complete the WebSocket upgrade, then never send;
                            frames received are recorded in .frames[i]
                            (opcode, unmasked payload)
    on_upgrade(sock, idx, response): with "upgrade_silent", called instead of
    sending the 101 response bytes, to send them (and more) its own way;
    server_frame() builds frames to send.
    """

    def __init__(self, mode, host="127.0.0.1", on_upgrade=None):
        self.mode = mode
        self.on_upgrade = on_upgrade
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = "ws://%s:%d" % (host, self.port)
        self.connections = 0
        self.requests = []
        self.frames = collections.defaultdict(list)
        self.conn_times = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._conns = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._cond:
                idx = self.connections
                self.connections += 1
                self.conn_times.append(time.monotonic())
                self._conns.append(c)
                self._cond.notify_all()
            threading.Thread(target=self._serve, args=(c, idx), daemon=True).start()

    def _read_request(self, c):
        buf = b""
        c.settimeout(0.2)
        while b"\r\n\r\n" not in buf and not self._stop.is_set():
            try:
                d = c.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return None, b""
            if not d:
                return None, b""
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        with self._cond:
            self.requests.append(head.decode("latin-1"))
        return head.decode("latin-1"), rest

    def _serve(self, c, idx):
        try:
            if self.mode == "silent":
                self._drain(c, idx, None)
            elif self.mode == "garbage":
                req, _ = self._read_request(c)
                if req is not None:
                    c.sendall(b"SSH-2.0-OpenSSH_9.2 definitely not HTTP\r\n\r\n")
                c.close()
            elif self.mode == "upgrade_silent":
                req, rest = self._read_request(c)
                if req is None:
                    return
                key = ""
                for line in req.split("\r\n"):
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "sec-websocket-key":
                        key = v.strip()
                response = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                            % _ws_accept(key)).encode()
                if self.on_upgrade is not None:
                    self.on_upgrade(c, idx, response)
                else:
                    c.sendall(response)
                self._drain(c, idx, rest)
        except OSError:
            pass

    def _drain(self, c, idx, buf):
        c.settimeout(0.2)
        while not self._stop.is_set():
            try:
                d = c.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not d:
                break
            if buf is not None:
                buf += d
                frames, buf = parse_frames(buf)
                with self._cond:
                    self.frames[idx].extend(frames)
                    self._cond.notify_all()
        c.close()

    def wait_frame(self, idx, pred, timeout=5.0):
        """Wait for a frame on connection idx with pred(opcode, payload)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for op, payload in self.frames[idx]:
                    if pred(op, payload):
                        return op, payload
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no matching frame on connection %d within %.1fs; "
                                         "frames: %r" % (idx, timeout, [
                                             (op, p[:16]) for op, p in self.frames[idx]]))
                self._cond.wait(left)

    def wait_connections(self, n, timeout=5.0):
        self._wait(lambda: self.connections >= n, timeout,
                   lambda: "only %d of %d connections" % (self.connections, n))

    def close(self):
        self._shutdown()
        self._thread.join(2)


# --------------------------------------------------------------------------
# Local services


class _TcpService(_Listener):
    """Accept loop in a thread; one thread per connection running self.serve.

    held=True: the listen queue is full (backlog 0 plus one filler connection)
    and nothing is accepted until release(): a connect to it stays in progress
    (the kernel drops the SYN; the client retransmits it after about 1 s).
    """

    rcvbuf = None

    def __init__(self, held=False):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0 if held else 512)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._go = threading.Event()
        self._filler = None
        if held:
            self._filler = socket.create_connection(("127.0.0.1", self.port), 2)
            self._filler_addr = self._filler.getsockname()
        else:
            self._go.set()
        self.accepted = 0
        self.finished = 0       # connections whose handler has ended (EOF seen)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._conns = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def release(self):
        """Start accepting (held services)."""
        self._go.set()

    def _accept_loop(self):
        while not self._stop.is_set():
            if not self._go.wait(0.1):
                continue
            try:
                c, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self._filler is not None and peer == self._filler_addr:
                c.close()
                self._filler.close()
                self._filler = None
                continue
            with self._cond:
                idx = self.accepted
                self.accepted += 1
                self._conns.append(c)
                self._cond.notify_all()
            threading.Thread(target=self._run, args=(c, idx), daemon=True).start()

    def _run(self, c, idx):
        try:
            self.serve(c, idx)
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass
            with self._cond:
                self.finished += 1
                self._cond.notify_all()

    def _recv(self, c, n):
        """recv with a stop check; returns b"" on EOF or stop."""
        c.settimeout(0.2)
        while not self._stop.is_set():
            try:
                return c.recv(n)
            except socket.timeout:
                continue
        return b""

    def wait_accepted(self, n, timeout=5.0):
        self._wait(lambda: self.accepted >= n, timeout,
                   lambda: "%d of %d connections accepted" % (self.accepted, n))

    def wait_finished(self, n, timeout=5.0):
        self._wait(lambda: self.finished >= n, timeout,
                   lambda: "%d of %d connections saw EOF" % (self.finished, n))

    def close(self):
        self._shutdown()
        if self._filler is not None:
            self._filler.close()
        self._thread.join(2)


class TcpEcho(_TcpService):
    """Echoes everything back; half-closes when the peer does."""

    def serve(self, c, idx):
        while True:
            d = self._recv(c, 65536)
            if not d:
                break
            c.sendall(d)
        try:
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class TcpSink(_TcpService):
    """Records what each connection receives until EOF.

    read_size/delay: read at most read_size bytes, then sleep delay seconds
    (a slow reader); never_read=True: never read at all (until closed).
    .data[idx] bytes (keep=True) or .sha[idx] / .count[idx]; .eof[idx] Event.
    """

    def __init__(self, read_size=65536, delay=0.0, never_read=False, keep=True,
                 rcvbuf=None, pauses=(), held=False):
        self.read_size = read_size
        self.delay = delay
        self.never_read = never_read
        self.keep = keep
        self.rcvbuf = rcvbuf
        self.pauses = dict(pauses)  # byte count -> seconds to pause once reached
        self.data = collections.defaultdict(bytearray)
        self.sha = collections.defaultdict(hashlib.sha256)
        self.count = collections.defaultdict(int)
        self.eof = collections.defaultdict(threading.Event)
        super().__init__(held)

    def serve(self, c, idx):
        if self.never_read:
            while not self._stop.wait(0.1):
                pass
            return
        pauses = sorted(self.pauses.items())
        while True:
            d = self._recv(c, self.read_size)
            if not d:
                break
            if self.keep:
                self.data[idx] += d
            self.sha[idx].update(d)
            self.count[idx] += len(d)
            while pauses and self.count[idx] >= pauses[0][0]:
                time.sleep(pauses.pop(0)[1])
            if self.delay:
                time.sleep(self.delay)
        self.eof[idx].set()


class TcpSendClose(_TcpService):
    """Sends `data` to each connection, then closes (reset=True: RST instead)."""

    def __init__(self, data=b"", reset=False, held=False):
        self.payload = data
        self.reset = reset
        super().__init__(held)

    def serve(self, c, idx):
        if self.payload:
            c.sendall(self.payload)
        if self.reset:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()


class UdpEcho:
    """Echoes each datagram back to its sender."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = []   # (peer, length)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                d, peer = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.received.append((peer, len(d)))
            self._on_datagram(d, peer)

    def _on_datagram(self, d, peer):
        try:
            self.sock.sendto(d, peer)
        except OSError:
            pass

    def close(self):
        self._stop.set()
        self.sock.close()
        self._thread.join(2)


class UdpTicker(UdpEcho):
    """After a peer's first datagram, sends it `count` datagrams b"tick N",
    one every `interval` seconds (traffic from the service side only)."""

    def __init__(self, count=8, interval=0.2):
        self.count = count
        self.interval = interval
        super().__init__()

    def _on_datagram(self, d, peer):
        threading.Thread(target=self._tick, args=(peer,), daemon=True).start()

    def _tick(self, peer):
        for i in range(self.count):
            if self._stop.wait(self.interval):
                return
            try:
                self.sock.sendto(b"tick %d" % i, peer)
            except OSError:
                return
